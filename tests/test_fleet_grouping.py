"""Grouping, by property: node-local noise never splits a group, a plan-relevant change always
does, and no group ever holds two different plans (every shipped example, noise added)."""

from __future__ import annotations

import json
import random
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair.digest import plan_digest
from repair.fleet.grouping import (
    _marshal_key,
    canonical,
    cheap_key,
    default_plan_fn,
    group_records,
)
from repair.fleet.records import parse_record
from tests.fleet_support import detect_record, example_facts, with_noise

EXAMPLES = example_facts()
NAMES = [n for n, _ in EXAMPLES]
PLAN = default_plan_fn()


@cache
def _plan_of(key: str) -> str:
    return plan_digest(PLAN(json.loads(key)), "{python}")


def node_digest(facts: dict) -> str:
    """The digest a node plans for itself: its own facts, its own interpreter path."""
    plan = PLAN(facts)
    return plan_digest(plan, (facts.get("python") or {}).get("executable"))


settings.register_profile(
    "fleet", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@settings(settings.get_profile("fleet"))
@given(st.sampled_from(range(len(EXAMPLES))), st.integers(0, 10_000), st.integers(0, 10_000))
def test_noise_never_splits_a_group(i: int, seed_a: int, seed_b: int) -> None:
    _, facts = EXAMPLES[i]
    a = with_noise(facts, random.Random(seed_a), seed_a)
    b = with_noise(facts, random.Random(seed_b), seed_b)
    assert canonical(a)[0] == canonical(b)[0]


@settings(settings.get_profile("fleet"))
@given(st.sampled_from(range(len(EXAMPLES))), st.integers(0, 10_000))
def test_two_nodes_of_one_group_plan_the_same_decisions(i: int, seed: int) -> None:
    _, facts = EXAMPLES[i]
    node = with_noise(facts, random.Random(seed), seed)
    # the node's own plan (its interpreter path normalised) == the group's plan
    assert node_digest(node) == _plan_of(canonical(node)[0])


PLAN_CHANGES = [
    ("bitsandbytes", lambda f: f["packages"].__setitem__("bitsandbytes", "0.38.1")),
    ("driver", lambda f: (f.get("driver") or {}).update(version="450.80.02", cuda="11.0")),
    ("gpu", lambda f: f.__setitem__("gpus", [{"index": 0, "name": "Tesla K80",
                                              "compute_capability": "3.7"}])),
    ("transformers", lambda f: f["packages"].__setitem__("transformers", "4.20.0")),
    ("BNB_CUDA_VERSION", lambda f: f["env"].__setitem__("BNB_CUDA_VERSION", "999")),
]  # fmt: skip


@settings(settings.get_profile("fleet"))
@given(st.sampled_from(range(len(EXAMPLES))), st.sampled_from(range(len(PLAN_CHANGES))),
       st.integers(0, 10_000))  # fmt: skip
def test_a_fact_change_always_splits(i: int, c: int, seed: int) -> None:
    _, facts = EXAMPLES[i]
    if not facts.get("packages") or not facts.get("python") or not facts.get("env"):
        return
    changed = json.loads(json.dumps(facts))
    PLAN_CHANGES[c][1](changed)
    if changed == facts:
        return  # the example already had this value
    noisy_changed = with_noise(changed, random.Random(seed), seed)
    noisy_same = with_noise(facts, random.Random(seed + 1), seed + 1)
    assert canonical(noisy_changed)[0] != canonical(noisy_same)[0]


def test_each_change_of_the_list_changes_the_plan_of_the_healthy_example() -> None:
    facts = dict(EXAMPLES)["healthy"]
    before = _plan_of(canonical(facts)[0])
    for name, change in PLAN_CHANGES:
        changed = json.loads(json.dumps(facts))
        change(changed)
        assert _plan_of(canonical(changed)[0]) != before, name


def test_no_group_holds_two_plans_across_all_examples_with_noise() -> None:
    rng = random.Random(13)
    records, truth = [], {}
    for n in range(len(EXAMPLES) * 4):
        name, facts = EXAMPLES[n % len(EXAMPLES)]
        node = f"gpu{n:03d}"
        noisy = with_noise(facts, rng, n)
        records.append(parse_record(detect_record(node, noisy), node))
        truth[node] = node_digest(noisy)
    groups = group_records(records, PLAN)
    for g in groups:
        assert {truth[n] for n in g.nodes} == {g.digest}, (g.id, g.nodes)
    # every example is its own group (the examples differ in facts that matter)
    assert len(groups) == len({canonical(f)[0] for _, f in EXAMPLES})


def _reordered(value):
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def test_key_order_never_splits_and_each_group_is_planned_once() -> None:
    """Nodes are bucketed by the unsorted (cheap) key first; a writer with another key order
    lands in another bucket, and the buckets merge by the canonical key before planning."""
    rng = random.Random(7)
    calls: list[str] = []

    def counting_plan(doc):
        calls.append(json.dumps(doc, sort_keys=True))
        return PLAN(doc)

    records = []
    for n in range(12):
        _, facts = EXAMPLES[n % 3]
        noisy = with_noise(facts, rng, n)
        doc = _reordered(noisy) if n % 2 else noisy
        records.append(parse_record(detect_record(f"n{n:02d}", doc), f"n{n:02d}"))
    groups = group_records(records, counting_plan)
    assert sorted(len(g.nodes) for g in groups) == [4, 4, 4]
    assert len(calls) == len(set(calls)) == 3  # one plan per group, never one per bucket


# --------------------------------------------------------------------------- first-pass keys

PATHS = ["/scratch/u1/env", "/scratch/u2/env", "/a", "/a/b", "/s/u1", "u1", "x/y", '/p"q',
         "/p\\q", "/\u00e9/env", "/x\n", "/scratch/u1/env/bin/python", "", None]  # fmt: skip
PIECES = ["{E}", "{P}", "/lib", "/", '"', "\\", "\u00e9", " ", "env", "{python}"]


def _fill(template: str, exe: str | None, prefix: str | None) -> str:
    return template.replace("{E}", exe or "").replace("{P}", prefix or "")


@settings(settings.get_profile("fleet"), max_examples=300)
@given(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.lists(st.lists(st.sampled_from(PIECES), max_size=4).map("".join), min_size=4, max_size=4),
)
def test_marshal_key_never_merges_what_cheap_key_splits(exes, prefixes, texts) -> None:
    # Two nodes whose facts are one template filled with each node's own paths: wherever the
    # faster marshal key calls them equal, the JSON cheap key must too (it may only split more).
    def node(exe: str | None, prefix: str | None) -> dict:
        return {
            "schema": "qfix.facts/1",
            "python": {"executable": exe, "prefix": prefix, "base": _fill(texts[0], exe, prefix)},
            "torch_path": _fill(texts[1], exe, prefix),
            "env": {"LD_LIBRARY_PATH": _fill(texts[2], exe, prefix)},
            _fill(texts[3], exe, prefix) or "k": 1,
        }

    a, b = node(exes[0], prefixes[0]), node(exes[1], prefixes[1])
    fast_a, fast_b = _marshal_key(a), _marshal_key(b)
    if fast_a is not None and fast_a == fast_b:
        assert cheap_key(a) == cheap_key(b)
    if fast_a is not None and fast_b is not None and cheap_key(a) == cheap_key(b):
        assert fast_a == fast_b  # and it splits no more than the cheap key either


def test_marshal_key_serves_the_shipped_examples_with_noise() -> None:
    rng = random.Random(5)
    for _, facts in EXAMPLES:
        a, b = with_noise(facts, rng, 1), with_noise(facts, rng, 2)
        assert _marshal_key(a) is not None and _marshal_key(a) == _marshal_key(b)
        assert cheap_key(a) == cheap_key(b)
    tricky = with_noise(EXAMPLES[0][1], rng, 3)
    tricky["python"] = {**(tricky.get("python") or {}), "executable": '/env "x"/bin/python'}
    assert _marshal_key(tricky) is None  # a quote in the path: the JSON key decides
