"""qfix.facts/1: parsing, rendering, and bad input (a clear FactsError, never a traceback)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repair.errors import ExitCode, FactsError
from repair.facts import facts_from_dict, facts_from_json, facts_to_dict
from tests.core_helpers import EXAMPLES, analyse

ALL = sorted(p.name for p in EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("name", ALL)
def test_examples_round_trip(name):
    f = facts_from_json((EXAMPLES / name).read_text(), name)
    again = facts_from_dict(facts_to_dict(f), "again")
    assert facts_to_dict(again) == facts_to_dict(f)


@pytest.mark.parametrize(
    "doc, needle",
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"schema": "qfix.facts/2"}', "unknown schema"),
        ('{"schema": "qfix.facts/1", "gpus": {"a": 1}}', "'gpus' must be a list"),
        (
            '{"schema": "qfix.facts/1", "gpus": [{"compute_capability": "eight"}]}',
            "gpus[0].compute_capability",
        ),
        ('{"schema": "qfix.facts/1", "driver": {"found": "yes"}}', "driver.found"),
        ('{"schema": "qfix.facts/1", "python": {"in_venv": 1}}', "python.in_venv"),
        ('{"schema": "qfix.facts/1", "packages": {"torch": 2}}', "packages.torch"),
        (
            '{"schema": "qfix.facts/1", "bitsandbytes": {"native_libs": "x.so"}}',
            "bitsandbytes.native_libs",
        ),
    ],
)
def test_malformed(doc, needle):
    with pytest.raises(FactsError) as err:
        facts_from_json(doc, "f.json")
    assert needle in err.value.message and "f.json" in err.value.message
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    "torch, driver, bnb",
    [
        ("2.5.0a0+872d972e41.nv24.08", "470.256.02", "0.45.0"),
        ("1.12.1+cu113", "470.256.02", "0.41.3.post2"),
        ("not-a-version", "banana", "0.x"),
        ("2.6.0.dev20241112+cu124", "560.35.03", "0.46.0.dev0"),
    ],
)
def test_odd_versions_give_a_plan(torch, driver, bnb):
    f = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "driver": {"found": True, "version": driver},
            "gpus": [{"index": 0, "compute_capability": "8.0"}],
            "packages": {"torch": torch, "bitsandbytes": bnb},
            "torch": {"version": torch},
        },
        "odd",
    )
    diag, plan = analyse(f)
    assert plan.to_dict()["schema"] == "qfix.plan/1"


def test_partial_facts_list_unknowns():
    f = facts_from_dict({"schema": "qfix.facts/1"}, "empty")
    diag, plan = analyse(f)
    assert {"driver", "torch", "bitsandbytes"} <= {u.split(":")[0] for u in plan.unknown}


def test_compute_capability_forms():
    doc = {
        "schema": "qfix.facts/1",
        "gpus": [
            {"compute_capability": 8.6},
            {"compute_capability": "sm_120"},
            {"compute_capability": "75"},
        ],
    }
    f = facts_from_dict(doc, "x")
    assert [g.compute_capability for g in f.gpus] == ["8.6", "12.0", "7.5"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=12,
)
SECTIONS = [
    "host",
    "driver",
    "gpus",
    "python",
    "packages",
    "torch",
    "bitsandbytes",
    "env",
    "toolkit",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=6))
def test_fuzzed_facts_never_crash(sections):
    doc = {"schema": "qfix.facts/1", **sections}
    try:
        f = facts_from_dict(json.loads(json.dumps(doc)), "fuzz")
    except FactsError as err:
        assert "\n" not in err.message
        return
    analyse(f)  # a plan or a clear error, never a traceback


def test_host_libstdcxx_is_optional_and_round_trips():
    base = {"schema": "qfix.facts/1", "host": {"system": "Linux", "machine": "x86_64"}}
    assert facts_from_dict(base).host.libstdcxx is None
    doc = json.loads(json.dumps(base))
    doc["host"]["libstdcxx"] = {"path": "/usr/lib/libstdc++.so.6.0.30", "glibcxx": "3.4.30"}
    f = facts_from_dict(doc)
    assert f.host.libstdcxx is not None
    assert (f.host.libstdcxx.path, f.host.libstdcxx.glibcxx) == (
        "/usr/lib/libstdc++.so.6.0.30",
        "3.4.30",
    )
    out = facts_to_dict(f)
    assert out["host"]["libstdcxx"] == doc["host"]["libstdcxx"]
    assert facts_to_dict(facts_from_dict(out)) == out
    # the symbol-version name itself is accepted too; a path alone says nothing about the level
    doc["host"]["libstdcxx"] = {"glibcxx": "GLIBCXX_3.4.19", "path": None}
    assert facts_from_dict(doc).host.libstdcxx.glibcxx == "3.4.19"
    doc["host"]["libstdcxx"] = {"path": "/x/libstdc++.so.6"}
    assert facts_from_dict(doc).host.libstdcxx.glibcxx is None


@pytest.mark.parametrize(
    "value, needle",
    [
        ('"3.4.30"', "'host.libstdcxx' must be an object"),
        ('{"glibcxx": "banana"}', "'host.libstdcxx.glibcxx' must be a GLIBCXX version"),
        ('{"glibcxx": "4.0.1"}', "'host.libstdcxx.glibcxx' must be a GLIBCXX version"),
        ('{"glibcxx": true}', "'host.libstdcxx.glibcxx' must be a string"),
        ('{"glibcxx": ["3.4.30"]}', "'host.libstdcxx.glibcxx' must be a string"),
        ('{"path": {}}', "'host.libstdcxx.path' must be a string"),
    ],
)
def test_malformed_host_libstdcxx_is_one_line(value, needle):
    doc = '{"schema": "qfix.facts/1", "host": {"libstdcxx": ' + value + "}}"
    with pytest.raises(FactsError) as err:
        facts_from_json(doc, "f.json")
    assert needle in err.value.message, err.value.message
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    ("torch", "kept"),
    [
        ({"version": "2.4.1", "hip": None}, {"hip": None}),  # "not ROCm", said alone
        ({"version": "2.4.1"}, {}),  # nothing said of the build
        ({"version": "2.4.1", "cuda": None, "hip": None}, {"cuda": None, "hip": None}),
    ],
)
def test_a_stated_hip_survives_a_round_trip_and_an_unstated_one_stays_unstated(torch, kept):
    """A report's `"hip": null` (torch.version.hip is None: not a ROCm build) is a fact of its
    own, kept when the facts are written again; a build not stated stays not stated."""
    f = facts_from_dict({"schema": "qfix.facts/1", "torch": torch})
    written = facts_to_dict(f)["torch"]
    assert {k: written[k] for k in ("cuda", "hip") if k in written} == kept
    again = facts_from_dict({"schema": "qfix.facts/1", "torch": written})
    assert again.torch == f.torch
