"""The scenario table of `nox -s repairs` (tests/repairs/scenarios.py), checked at facts level.

For every scenario, the planner run on the scenario's own facts (what ``qfix plan --facts`` does)
must report exactly the expected findings, diff and manual steps, and the facts after the expected
steps must plan healthy. The nox sessions then prove the same rows on real venvs, after checking
that ``qfix detect`` reports these very facts. Fast: no install, no venv (about a second).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repair.catalogue import load_catalogue
from repair.facts import facts_from_json
from repair.pipeline import analyse
from tests.index_server import RELEASES
from tests.repairs import scenarios as sc

REPO = Path(__file__).resolve().parent.parent
BASE = "https://download.pytorch.org/whl"
IDS = [s.id for s in sc.SCENARIOS]


def plan_for(facts: dict) -> dict:
    """``qfix plan --facts FILE --json`` in-process: the same functions, no child process."""
    return analyse(facts_from_json(json.dumps(facts), "scenario")).plan.to_dict()


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=IDS)
def test_plan_matches_the_table(scenario: sc.Scenario) -> None:
    doc = plan_for(scenario.facts())
    assert sorted(f["id"] for f in doc["findings"]) == sorted(scenario.findings)
    got = [(s["action"], s["package"], s["from"], s["to"]) for s in doc["steps"]]
    assert got == [s.key() for s in scenario.steps]
    for s, want in zip(doc["steps"], scenario.steps, strict=True):
        expected_index = None if want.variant is None else f"{BASE}/{want.variant}"
        assert s["index_url"] == expected_index, s
    assert sorted(m["id"] for m in doc["manual"] if m["required"]) == sorted(
        scenario.manual_required
    )
    assert doc["healthy"] is scenario.healthy_before
    errors = sorted(f["id"] for f in doc["findings"] if f["severity"] == "error")
    assert errors == sorted(scenario.error_findings)


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=IDS)
def test_expected_repair_plans_healthy(scenario: sc.Scenario) -> None:
    """The state the session must reach (steps applied, user_unsets removed) plans healthy: no
    error finding, no step, no required manual step."""
    doc = plan_for(scenario.facts(after=True))
    assert doc["healthy"] is True, doc["findings"]
    assert doc["steps"] == []
    assert not [f for f in doc["findings"] if f["severity"] == "error"]


def test_the_cli_agrees_on_one_scenario(tmp_path: Path) -> None:
    """One round trip through the real command line (`python -m repair plan --facts`)."""
    scenario = sc.BY_ID["gpu-arch-sm60"]
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(scenario.facts()))
    done = subprocess.run(
        [sys.executable, "-m", "repair", "plan", "--facts", str(facts), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert [(s["action"], s["package"], s["from"], s["to"]) for s in doc["steps"]] == [
        s.key() for s in scenario.steps
    ]


def test_table_is_consistent() -> None:
    catalogue = load_catalogue()
    known = set(catalogue.ids)
    assert len(IDS) == len(set(IDS))
    for s in sc.SCENARIOS:
        # ids go into `nox -s "repairs(<id>)"` and into folder names
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", s.id), s.id
        assert set(s.findings) <= known, s.id
        assert set(s.manual_required) <= set(s.findings), s.id
        assert s.installer in sc.INSTALLERS, s.id
        assert s.bitsandbytes in sc.BNB_TORCH_REQUIREMENT, s.id
        assert s.bitsandbytes_after in sc.BNB_TORCH_REQUIREMENT, s.id
        for step in s.steps:
            assert step.action in ("install", "uninstall"), s.id
            # torch-family installs come from a variant folder, everything else does not
            assert (step.variant is not None) == (step.package == "torch"), s.id
        # a load can be checked before the repair only where torch is a real build
        assert (s.verify_before is not None) <= s.real_torch_before, s.id
        assert set(s.user_unsets) <= {k for k, _ in s.env}, s.id
    assert sc.LIGHT_IDS and sc.HEAVY_IDS


def test_warning_only_ids_are_warnings_in_the_catalogue() -> None:
    catalogue = load_catalogue()
    for fid in sc.WARNING_ONLY:
        assert catalogue.get(fid).severity == "warning", fid
    used = {f for s in sc.SCENARIOS for f in s.findings} - set(sc.WARNING_ONLY)
    for fid in used:
        assert catalogue.get(fid).severity == "error", fid


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=IDS)
def test_every_generated_torch_is_on_the_local_index(scenario: sc.Scenario) -> None:
    """run.py installs generated torch builds from tests/index_server.py: each one the table
    names (before or as a target) must be a release x variant that the index generates."""
    for version in (scenario.torch, scenario.torch_after):
        if version in sc.REAL_TORCHES:
            continue
        release, _, variant = version.partition("+")
        assert release in RELEASES, version
        assert variant in RELEASES[release][2], version
