"""Golden dry-run diffs: the rendered plan of each scenario, compared with tests/golden/.

Regenerate after an intended change with QFIX_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repair.pipeline import with_commands
from repair.plan import Plan
from repair.planfile import plan_from_doc
from repair.render import render_plan
from tests.core_helpers import analyse, example_facts

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = [
    "seed.json",
    "healthy.json",
    "F13.json",
    "F15.json",
    "F18.json",
    "F19.json",
    "F27.json",
    "F30.json",
    "F32.json",
    "F49.json",
    "bnb-duplicate.json",
    "driver-too-old.json",
    "cpu-host-old-bnb.json",
    "family-mismatch.json",
    "bnb-torch-mismatch.json",
    "rocm.json",
    "rocm-cuda-torch.json",
    "torch-dll-windows.json",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_plan(name: str) -> None:
    facts = example_facts(name)
    _, plan = analyse(facts)
    plan = with_commands(plan, installed=facts.packages)  # as the pipeline calls it
    text = (
        render_plan(plan)
        + "\n\n--- json ---\n"
        # the fingerprint and the digest are hashes of what is shown (tests/test_planfile.py)
        + json.dumps(
            {k: v for k, v in plan.to_dict().items() if k not in ("fingerprint", "digest")},
            indent=1,
        )
        + "\n"
    )
    path = GOLDEN / (name.removesuffix(".json") + ".txt")
    if os.environ.get("QFIX_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
        if not os.environ.get("QFIX_UPDATE_GOLDEN"):
            pytest.fail(f"golden file {path.name} was missing and has been written; review it")
    assert text == path.read_text()


def _shipped_examples() -> list[str]:
    from repair.knowledge import plans_directory

    return sorted(p.name for p in (plans_directory() / "examples").glob("*.json"))


@pytest.mark.parametrize("name", _shipped_examples())
def test_every_shipped_plan_round_trips_through_the_plan_file(name: str) -> None:
    """A saved plan is the same typed Plan: parse(validate(to_dict)) gives back the document."""
    _, plan = analyse(example_facts(name))
    doc = plan.to_dict()
    assert doc["steps"] or plan.healthy or plan.manual  # a real plan, not an empty shell
    assert Plan.from_dict(doc).to_dict() == doc
    assert plan_from_doc(json.loads(json.dumps(doc))).to_dict() == doc
