"""Helpers for the pure-core tests: load examples, analyse facts without any process."""

from __future__ import annotations

import json
from pathlib import Path

from repair.catalogue import load_catalogue
from repair.diagnose import Diagnosis, diagnose
from repair.explain import explain
from repair.facts import Facts, facts_from_dict
from repair.knowledge import load_knowledge
from repair.planner import Plan, make_plan
from repair.view import make_view

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "plans" / "examples"
INDEX = "https://download.pytorch.org/whl"


def example_doc(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def example_facts(name: str) -> Facts:
    return facts_from_dict(example_doc(name), name)


def analyse(facts: Facts) -> tuple[Diagnosis, Plan]:
    """What `qfix plan --facts` computes (a ticket's reported error included), without commands."""
    kb = load_knowledge()
    cat = load_catalogue()
    view = make_view(facts)
    text = facts.extra.get("reported_error")
    reported = tuple(m.id for m in explain(text, cat)) if text else ()
    diag = diagnose(view, kb, cat, reported)
    return diag, make_plan(view, diag, kb, torch_index_base=INDEX)


def explained_ids(text: str) -> set[str]:
    return {m.id for m in explain(text, load_catalogue())}
