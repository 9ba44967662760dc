"""Every real failure report (../shared/cases, copied into plans/examples/ by
tools/make_examples.py) gets its expected diagnosis and satisfies its `expect` block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core_helpers import EXAMPLES, case_failure

# The shared cases (plans/examples/) and more real reports written the same way in review
# (tests/data/cases/, each citing its thread): all must satisfy their expect blocks.
MORE = Path(__file__).parent / "data" / "cases"
CASE_FILES = {
    p.name: p
    for d in (EXAMPLES, MORE)
    for p in sorted(d.glob("*.json"))
    if "expect" in json.loads(p.read_text())
}
CASES = sorted(CASE_FILES)
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "cases"


def test_cases_are_present():
    assert len(CASES) >= 16, CASES
    assert "seed.json" in CASES


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/cases not beside this checkout")
def test_examples_are_the_shared_cases():
    for case in SHARED.glob("*.json"):
        assert (EXAMPLES / case.name).read_text() == case.read_text(), (
            f"{case.name} differs: run tools/make_examples.py"
        )


@pytest.mark.parametrize("name", CASES)
def test_case(name: str) -> None:
    failure = case_failure(json.loads(CASE_FILES[name].read_text()), name)
    assert failure is None, f"{name}: {failure}"


def test_case_failure_reports_the_first_missed_expectation() -> None:
    # The shared check can fail: the seed ticket with expectations qfix does not meet.
    doc = json.loads((EXAMPLES / "seed.json").read_text())
    assert case_failure(doc, "seed.json") is None
    wrong_id = {**doc, "expect": {**doc["expect"], "ids_any": ["rocm-host"]}}
    assert (case_failure(wrong_id, "seed.json") or "").startswith("ids_any:")
    keep_torch = {**doc, "expect": {**doc["expect"], "torch_unchanged": True}}
    assert (case_failure(keep_torch, "seed.json") or "").startswith("torch_unchanged:")
    newer_bnb = {**doc, "expect": {**doc["expect"], "bnb_min": "9.0"}}
    assert (case_failure(newer_bnb, "seed.json") or "").startswith("bnb_min:")
