"""Every real failure report (../shared/cases, copied into plans/examples/ by
tools/make_examples.py) gets its expected diagnosis and satisfies its `expect` block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from repair.facts import facts_from_dict
from repair.knowledge import load_knowledge
from repair.view import arch_coverage, parse_version
from tests.core_helpers import EXAMPLES, analyse, explained_ids

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


def _torch_step(plan):
    return next((s for s in plan.steps if s.package == "torch"), None)


def _bnb_step(plan):
    return next((s for s in plan.steps if s.package == "bitsandbytes"), None)


@pytest.mark.parametrize("name", CASES)
def test_case(name: str) -> None:
    doc = json.loads(CASE_FILES[name].read_text())
    expect = doc["expect"]
    diag, plan = analyse(facts_from_dict(doc, name))
    ids = set(diag.ids) | explained_ids(doc.get("error", ""))
    assert ids & set(expect["ids_any"]), f"{name}: got {sorted(ids)}"

    torch_step = _torch_step(plan)
    if expect.get("torch_unchanged") is True:
        assert torch_step is None, f"{name}: torch must stay, plan moves it to {torch_step.to}"
    if expect.get("torch_unchanged") is False:
        assert torch_step is not None, f"{name}: torch must move"
    kb = load_knowledge()
    if expect.get("torch_cuda_max") and torch_step is not None:
        var = plan.torch_variant
        assert var is not None and var.startswith("cu"), var
        rel = kb.torch.release(torch_step.to)
        cuda = rel.variant(var).cuda
        assert cuda <= Version(expect["torch_cuda_max"]), f"{name}: {var} > {expect}"
    if expect.get("torch_needs_arch") and torch_step is not None:
        arch = expect["torch_needs_arch"]
        cc = Version(f"{arch[3:-1]}.{arch[-1]}")
        assert plan.torch_arch_list is not None
        assert arch_coverage(plan.torch_arch_list, cc) == "sass", plan.torch_arch_list
    if expect.get("bnb_min"):
        step = _bnb_step(plan)
        assert step is not None, f"{name}: expected a bitsandbytes step"
        assert Version(step.to) >= Version(expect["bnb_min"])
    if expect.get("manual") is True:
        assert any(m.required for m in plan.manual), f"{name}: expected a required manual step"
    if expect.get("manual") is False:
        assert not any(m.required for m in plan.manual), [m.text for m in plan.manual]
        assert plan.steps, f"{name}: a venv repair was expected"
    for text in expect.get("manual_mentions", []):
        assert any(text in m.text for m in plan.manual), f"{name}: no manual step names {text}"
    if expect.get("transformers_min"):
        step = next((s for s in plan.steps if s.package == "transformers"), None)
        have = parse_version(
            step.to.lstrip(">=") if step else doc["facts"]["packages"].get("transformers")
        )
        assert have is not None and have >= Version(expect["transformers_min"])
