"""`qfix apply` and `qfix rollback` as users run them: a real repair, refusals and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run
from tests.venvs import Venv, copy_venv


@pytest.fixture()
def broken(tmp_path: Path, venv_bnb038: Venv) -> Venv:
    """A private copy of the torch 2.13 CPU + bitsandbytes 0.38.1 venv."""
    return copy_venv(venv_bnb038, tmp_path / "venv")


def freeze(v: Venv) -> str:
    return subprocess.run(
        [str(v.python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.venv
def test_apply_repairs_and_verifies(broken: Venv) -> None:
    p = run("apply", "--yes", "--json", "--python", str(broken.python), timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "qfix.apply/1" and doc["outcome"]["ok"] is True
    assert doc["outcome"]["after"]["bitsandbytes"] == "0.50.2"
    assert doc["outcome"]["before"]["torch"] == doc["outcome"]["after"]["torch"]  # untouched
    assert doc["verify"]["ok"] is True and doc["verify"]["gpu_exercised"] is False
    after = run("plan", "--json", "--python", str(broken.python))
    assert after.returncode == 0, after.stdout  # healthy now (only the no-GPU warning)


@pytest.mark.venv
def test_stale_and_unsafe_plans_are_refused(broken: Venv, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    p = run("plan", "--python", str(broken.python), "--out", str(plan))
    assert p.returncode == 1 and plan.exists()
    doc = json.loads(plan.read_text())

    bad = dict(doc, steps=[dict(doc["steps"][0], package="bitsandbytes; rm -rf /")])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    p = run("apply", "--yes", "--python", str(broken.python), "--plan", str(tmp_path / "bad.json"))
    assert_one_line_error(p, 2)

    http = dict(doc, steps=[dict(doc["steps"][0], index_url="http://example.com/simple")])
    (tmp_path / "http.json").write_text(json.dumps(http))
    p = run("apply", "--yes", "--python", str(broken.python), "--plan", str(tmp_path / "http.json"))
    assert_one_line_error(p, 2)

    before = freeze(broken)
    broken.pip("install", "--quiet", "--no-deps", "six==1.16.0")  # the environment changes
    p = run("apply", "--yes", "--python", str(broken.python), "--plan", str(plan))
    assert_one_line_error(p, 6)
    assert "six" in freeze(broken) and freeze(broken) != before


def test_system_interpreter_is_refused() -> None:
    base = getattr(sys, "_base_executable", None) or sys.executable
    p = run("apply", "--yes", "--python", base, timeout=120)
    assert_one_line_error(p, 6)
    assert "--venv" in p.stderr


def test_apply_needs_a_yes_without_a_terminal(venv_bare: Venv) -> None:
    p = run("apply", "--python", str(venv_bare.python), stdin="", timeout=120)
    assert_one_line_error(p, 2)
    assert "--yes" in p.stderr


def test_rollback_with_nothing_to_undo(venv_bare: Venv) -> None:
    p = run("rollback", "--json", "--python", str(venv_bare.python))
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["schema"] == "qfix.rollback/1", (p.stdout, p.stderr)


def test_bad_installer_option() -> None:
    p = run("apply", "--installer", "conda")
    assert_one_line_error(p, 2)


def test_env_is_untouched_by_help() -> None:
    assert run("apply", "--help").returncode == 0
    assert "QFIX_TEST_KILL_AT" not in os.environ


@pytest.mark.venv
def test_venv_new_gets_the_planned_stack(tmp_path: Path) -> None:
    """--venv NEW: a fresh venv with the planned torch (from a local PyTorch-style index) and the
    real bitsandbytes from PyPI. The generated torch cannot be imported, so verification is
    skipped here; the real 4-bit load is exercised by the other apply tests."""
    from tests.index_server import IndexServer

    new = tmp_path / "new-venv"
    with IndexServer(tmp_path / "index") as index:
        p = run(
            "apply",
            "--venv",
            str(new),
            "--yes",
            "--json",
            "--verify",
            "skip",
            "--torch-index",
            index.torch_base,
            timeout=900,
        )
    assert p.returncode == 0, (p.stdout, p.stderr)
    doc = json.loads(p.stdout)
    after = doc["outcome"]["after"]
    assert after["torch"].startswith(doc["plan"]["torch_target"]["version"].split("+")[0])
    assert after["bitsandbytes"] == doc["plan"]["bitsandbytes_target"]
    assert (new / "bin" / "python").exists()
    again = run("apply", "--venv", str(new), "--yes")  # never over an existing venv
    assert_one_line_error(again, 2)
