"""Golden dry-run diffs: the rendered plan of each scenario, compared with tests/golden/.

Regenerate after an intended change with QFIX_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repair.pipeline import with_commands
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
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_plan(name: str) -> None:
    _, plan = analyse(example_facts(name))
    plan = with_commands(plan)
    text = (
        render_plan(plan)
        + "\n\n--- json ---\n"
        + json.dumps({k: v for k, v in plan.to_dict().items() if k != "fingerprint"}, indent=1)
        + "\n"
    )
    path = GOLDEN / (name.removesuffix(".json") + ".txt")
    if os.environ.get("QFIX_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
        if not os.environ.get("QFIX_UPDATE_GOLDEN"):
            pytest.fail(f"golden file {path.name} was missing and has been written; review it")
    assert text == path.read_text()
