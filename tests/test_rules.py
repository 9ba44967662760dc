"""The rules package: one rule per failure class, and every rule behaves on its own.

- every id of plans/failures.toml has exactly one rule, or is listed as signature-only;
  every rule and every ruled_out check names a class of the catalogue;
- each rule, run alone on its class's example (plans/examples/<example>, the facts only, no error
  message), yields its class and nothing else; on the healthy machine it yields nothing;
- diagnose is the loop over the rules: its findings are the rules' findings, in catalogue order.
"""

from __future__ import annotations

import pytest

from repair.catalogue import load_catalogue
from repair.diagnose import contradicted, diagnose
from repair.facts import facts_from_dict
from repair.findings import Finding, Severity, Unknown
from repair.knowledge import load_knowledge
from repair.rules import EXCLUSIONS, RULES, SIGNATURE_ONLY, make_context, rule, ruled_out
from repair.view import make_view
from tests.core_helpers import example_facts

CAT = load_catalogue()
KB = load_knowledge()
RULED = [c for c in CAT.classes if c.id not in SIGNATURE_ONLY]


def _context(example: str):
    facts = example_facts(example)
    return make_context(make_view(facts, KB), KB, CAT)


def test_every_class_has_one_rule_and_every_rule_a_class():
    assert set(RULES) | set(SIGNATURE_ONLY) == set(CAT.ids)
    assert not set(RULES) & set(SIGNATURE_ONLY), "a signature-only class has a rule"
    assert set(EXCLUSIONS) <= set(CAT.ids)


def test_signature_only_classes_are_explained_by_their_signatures():
    for fid in SIGNATURE_ONLY:
        assert CAT.get(fid).signatures, fid


def test_a_second_rule_for_a_class_is_refused():
    with pytest.raises(ValueError, match="two rules"):
        rule("bnb-no-4bit")(lambda ctx: ())
    with pytest.raises(ValueError, match="two ruled_out"):
        ruled_out("bnb-no-4bit")(lambda view, kb: False)


@pytest.mark.parametrize("cls", RULED, ids=lambda c: c.id)
def test_rule_fires_on_its_example(cls):
    items = list(RULES[cls.id](_context(cls.example)))
    found = [x for x in items if isinstance(x, Finding)]
    assert found, f"{cls.id}'s rule is quiet on {cls.example}"
    assert {f.id for f in found} == {cls.id}, "a rule yields only its own class"
    assert all(isinstance(f.severity, Severity) for f in found)


@pytest.mark.parametrize("cls", RULED, ids=lambda c: c.id)
def test_rule_is_quiet_on_the_healthy_machine(cls):
    assert list(RULES[cls.id](_context("healthy.json"))) == []


def test_diagnose_is_the_loop_over_the_rules():
    for cls in RULED:
        ctx = _context(cls.example)
        diag = diagnose(ctx.view, KB, CAT)
        by_rules: list[Finding] = []
        unknown: list[Unknown] = []
        for fid in CAT.ids:
            for x in RULES.get(fid, lambda ctx: ())(ctx):
                (unknown if isinstance(x, Unknown) else by_rules).append(x)
        unique = {(f.id, f.summary): f for f in reversed(by_rules)}
        assert diag.findings == tuple(f for f in by_rules if unique[(f.id, f.summary)] is f)
        assert diag.unknown == tuple(dict.fromkeys(unknown))
        order = [CAT.ids.index(f.id) for f in diag.findings]
        assert order == sorted(order)


def test_unknowns_are_typed_and_keyed():
    # an empty report: nothing is known, and each rule says which fact it missed
    empty = facts_from_dict({"schema": "qfix.facts/1"}, "empty")
    diag = diagnose(make_view(empty, KB), KB, CAT)
    assert all(isinstance(u, Unknown) for u in diag.unknown)
    assert [u.key for u in diag.unknown] == ["driver", "gpus", "torch", "bitsandbytes"]
    # the JSON keeps the texts
    assert diag.unknown_texts == ("driver", "gpus", "torch", "bitsandbytes")


def test_a_full_probe_rules_out_what_no_rule_found_but_not_a_runtime_state():
    healthy = make_view(example_facts("healthy.json"), KB)
    assert healthy.packages_complete
    assert contradicted(healthy, KB, "bnb-no-4bit")
    # cuda-init-failed is a state of the running machine: a probe of files cannot exclude it
    assert not contradicted(healthy, KB, "cuda-init-failed")
