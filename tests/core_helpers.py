"""Helpers for the pure-core tests: load examples, analyse facts without any process."""

from __future__ import annotations

import json
from pathlib import Path

from packaging.version import Version

from repair import pipeline
from repair.catalogue import load_catalogue
from repair.diagnose import Diagnosis
from repair.explain import explain
from repair.facts import Facts, facts_from_dict
from repair.knowledge import load_knowledge
from repair.planner import Plan, Step
from repair.view import arch_coverage, parse_version

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "plans" / "examples"
INDEX = "https://download.pytorch.org/whl"


def example_doc(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def example_facts(name: str) -> Facts:
    return facts_from_dict(example_doc(name), name)


def analyse(facts: Facts) -> tuple[Diagnosis, Plan]:
    """What `qfix plan --facts` computes (a ticket's reported error included)."""
    a = pipeline.analyse(facts, torch_index=INDEX)
    return a.diagnosis, a.plan


def explained_ids(text: str) -> set[str]:
    return {m.id for m in explain(text, load_catalogue())}


def _step(plan: Plan, package: str) -> Step | None:
    return next((s for s in plan.steps if s.package == package), None)


def case_failure(doc: dict, name: str) -> str | None:
    """The first expectation of a real-report case (`expect` block) that qfix's analysis misses.

    None when every expectation holds. Shared by tests/test_cases.py (each case must pass) and
    tools/score_cases.py (scores a round of new cases), so both apply exactly the same checks."""
    expect = doc["expect"]
    diag, plan = analyse(facts_from_dict(doc, name))
    ids = set(diag.ids) | explained_ids(doc.get("error", ""))
    if not ids & set(expect["ids_any"]):
        return f"ids_any: got {sorted(ids)}, expected one of {expect['ids_any']}"

    torch_step = _step(plan, "torch")
    if expect.get("torch_unchanged") is True and torch_step is not None:
        return f"torch_unchanged: torch must stay, plan moves it to {torch_step.to}"
    if expect.get("torch_unchanged") is False and torch_step is None:
        return "torch_unchanged: torch must move, the plan keeps it"
    kb = load_knowledge()
    if expect.get("torch_cuda_max") and torch_step is not None:
        var = plan.torch_variant
        if var is None or not var.startswith("cu"):
            return f"torch_cuda_max: the plan's torch variant is {var}, not a CUDA build"
        cuda = kb.torch.release(torch_step.to).variant(var).cuda
        if cuda > Version(expect["torch_cuda_max"]):
            return f"torch_cuda_max: {var} > {expect['torch_cuda_max']}"
    if expect.get("torch_needs_arch") and torch_step is not None:
        arch = expect["torch_needs_arch"]
        cc = Version(f"{arch[3:-1]}.{arch[-1]}")
        if plan.torch_arch_list is None:
            return "torch_needs_arch: the plan's torch arch list is unknown"
        if arch_coverage(plan.torch_arch_list, cc) != "sass":
            return f"torch_needs_arch: {arch} not SASS in {plan.torch_arch_list}"
    if expect.get("bnb_min"):
        step = _step(plan, "bitsandbytes")
        if step is None:
            return "bnb_min: expected a bitsandbytes step, the plan has none"
        if step.to is None or Version(step.to) < Version(expect["bnb_min"]):
            return f"bnb_min: bitsandbytes to {step.to} < {expect['bnb_min']}"
    required = [m.text for m in plan.manual if m.required]
    if expect.get("manual") is True and not required:
        return "manual: expected a required manual step, the plan has none"
    if expect.get("manual") is False:
        if required:
            return f"manual: no required manual step expected, got {required}"
        if not plan.steps:
            return "manual: a venv repair was expected, the plan has no step"
    for text in expect.get("manual_mentions", []):
        if not any(text in m.text for m in plan.manual):
            return f"manual_mentions: no manual step names {text!r}"
    if expect.get("transformers_min"):
        step = _step(plan, "transformers")
        have = parse_version(
            step.to.lstrip(">=")
            if step and step.to
            else doc["facts"]["packages"].get("transformers")
        )
        if have is None or have < Version(expect["transformers_min"]):
            return f"transformers_min: transformers {have} < {expect['transformers_min']}"
    return None
