"""`qfix apply --plan FILE` against a real venv: tampered plans whose fingerprint is the
environment's real one are refused before anything changes (every file of site-packages and bin
byte-identical afterwards), and the untouched plan still applies and verifies.

The venv is a private copy of the real torch 2.13 CPU + bitsandbytes 0.38.1 one (tests/venvs.py);
the repair installs the real bitsandbytes wheel the way test_cli_apply does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repair.digest import plan_digest
from repair.probe.interpreter import MARK_REPORT
from tests.test_apply_support import manifest, tree_diff
from tests.test_cli import assert_one_line_error, run
from tests.venvs import Venv, copy_venv


@pytest.fixture()
def broken(tmp_path: Path, venv_bnb038: Venv) -> Venv:
    return copy_venv(venv_bnb038, tmp_path / "venv")


def _tampered(doc: dict[str, Any], python: str) -> dict[str, tuple[dict[str, Any], int, str]]:
    """name -> (document, exit code, a part of the error line). Each keeps the real fingerprint
    and, where the change is in the decisions, a digest recomputed to match (a careful tamperer)."""

    def edit(change: Any, code: int = 6, part: str = "") -> tuple[dict[str, Any], int, str]:
        d = json.loads(json.dumps(doc))
        change(d)
        d["digest"] = plan_digest(d)
        return d, code, part

    bnb = next(i for i, s in enumerate(doc["steps"]) if s["package"] == "bitsandbytes")
    pip = {"action": "uninstall", "package": "pip", "from": None, "to": None, "group": "uninstall"}
    other = dict(doc["steps"][bnb], package="six", to="1.16.0", because=[])
    return {
        "uninstall-pip": edit(lambda d: d["steps"].append(pip), part="would uninstall pip"),
        "other-package": edit(lambda d: d["steps"].append(other), part="would install six"),
        "other-version": edit(
            lambda d: d["steps"][bnb].update(to="0.45.0"), part=f"steps[{bnb}].to: expected"
        ),
        "other-index": edit(
            lambda d: d["steps"][bnb].update(index_url="https://mirror.example/simple"),
            part=f"steps[{bnb}].index_url",
        ),
        "other-torch-index": edit(
            lambda d: d.update(torch_index_base="https://mirror.example/whl"),
            part="torch_index_base: expected",
        ),
        "extra-commands": edit(
            lambda d: d["commands"].append([python, "-m", "pip", "uninstall", "-y", "pip"]),
            part="commands[",
        ),
        "changed-constraints": edit(
            lambda d: d.update(constraints=["torch==2.5.1"]), part="constraints[0]: "
        ),
        "dropped-step": edit(lambda d: d["steps"].pop(bnb), part=f"steps[{bnb}]: expected"),
        "digest-kept": (
            dict(
                doc,
                steps=[dict(s, to="0.45.0") if i == bnb else s for i, s in enumerate(doc["steps"])],
            ),
            6,
            "does not match its own steps",
        ),
        "deep": (
            {"schema": "qfix.plan/1", "fingerprint": doc["fingerprint"], "x": [[[[[[[[[[]]]]]]]]]]},
            2,
            "nested more than",
        ),
    }


@pytest.mark.venv
def test_tampered_plans_change_nothing_and_the_real_one_applies(
    broken: Venv, tmp_path: Path
) -> None:
    python = str(broken.python)
    saved = tmp_path / "plan.json"
    p = run("plan", "--python", python, "--out", str(saved))
    assert p.returncode == 1, p.stderr
    doc = json.loads(saved.read_text())
    assert f"Plan digest: {doc['digest']}" in p.stdout  # what a reviewer approves
    assert any(s["package"] == "bitsandbytes" for s in doc["steps"]), doc["steps"]

    before = manifest(broken.path)
    for name, (bad, code, part) in _tampered(doc, python).items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(bad) if name != "deep" else _deep_text(bad), encoding="utf-8")
        p = run("apply", "--yes", "--python", python, "--plan", str(f))
        assert_one_line_error(p, code)
        assert part in p.stderr, (name, p.stderr)
        assert not (broken.path / ".qfix").exists(), name  # no transaction was even begun
    assert manifest(broken.path) == before, tree_diff(before, manifest(broken.path))

    # the untouched plan: applied and verified with a real 4-bit load on the CPU
    p = run("apply", "--yes", "--json", "--python", python, "--plan", str(saved), timeout=900)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr)
    out = json.loads(p.stdout)
    assert out["plan"]["digest"] == doc["digest"]
    assert out["outcome"]["after"]["bitsandbytes"] == doc["bitsandbytes_target"]
    assert out["verify"]["ok"] is True


def _deep_text(bad: dict[str, Any]) -> str:
    """The "deep" document, its list nested 100,000 levels (the issue's RecursionError)."""
    return json.dumps(bad).replace("[[[[[[[[[[]]]]]]]]]]", "[" * 100_000 + "]" * 100_000)


def test_deep_facts_file_and_deep_probe_answer_are_one_line(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text('{"schema": "qfix.facts/1", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    p = run("plan", "--facts", str(facts))
    assert_one_line_error(p, 2)
    assert "nested more than 64 levels" in p.stderr

    # a target whose answer is nested 100,000 levels deep (a hostile or broken interpreter)
    answer = tmp_path / "answer.txt"
    answer.write_text(MARK_REPORT + "[" * 100_000 + "]" * 100_000 + "\n")
    target = tmp_path / "python"
    target.write_text(f"#!/bin/sh\ncat '{answer}'\n")
    target.chmod(0o755)
    for command in ("detect", "plan"):
        p = run(command, "--python", str(target))
        assert_one_line_error(p, 2)
        assert "nested more than 64 levels" in p.stderr, p.stderr
