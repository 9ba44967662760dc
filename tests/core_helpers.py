"""Helpers for the pure-core tests: load examples, analyse facts without any process."""

from __future__ import annotations

import json
from pathlib import Path

from repair import pipeline
from repair.catalogue import load_catalogue
from repair.diagnose import Diagnosis
from repair.explain import explain
from repair.facts import Facts, facts_from_dict
from repair.planner import Plan

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
