"""The preflight API in real venvs: a training script asks before it loads a model.

The script runs in the venv's own interpreter (with this checkout on PYTHONPATH), as
``from repair import preflight`` would in a user's training script.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.venvs import Venv, copy_venv

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from repair import preflight
try:
    r = preflight.require_4bit()
    print(json.dumps({"ok": True, "findings": [f.id for f in r.findings],
                      "torch": "torch" in sys.modules}))
except preflight.Not4BitReady as exc:
    r = exc.result
    print(json.dumps({"ok": False, "message": str(exc), "findings": [f.id for f in r.findings],
                      "steps": [s.package for s in r.plan.steps], "fix": r.fix_command,
                      "torch": "torch" in sys.modules}))
"""


def ask(venv: Venv) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [str(venv.python), "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def freeze(venv: Venv) -> str:
    return venv.pip("freeze", "--all").stdout


@pytest.mark.venv
def test_healthy_venv_passes(venv_torch213: Venv) -> None:
    got = ask(venv_torch213)
    assert got["ok"] is True, got
    assert got["torch"] is False  # read without importing torch


@pytest.fixture()
def broken(venv_bnb038: Venv, tmp_path: Path) -> Venv:
    """torch 2.13 CPU + bitsandbytes 0.38.1 (no 4-bit), with what qfix's core imports
    (packaging), as after `pip install qfix` in a training venv."""
    venv = copy_venv(venv_bnb038, tmp_path / "venv")
    venv.pip("install", "--quiet", "packaging")
    return venv


@pytest.mark.venv
def test_broken_venv_raises_the_diagnosis_and_the_fix(broken: Venv) -> None:
    venv_bnb038 = broken
    before = freeze(venv_bnb038)
    got = ask(venv_bnb038)
    assert got["ok"] is False
    assert "bnb-no-4bit" in got["findings"] and "bitsandbytes" in got["steps"]
    message = got["message"]
    assert message.startswith(f"4-bit quantization will not work in {venv_bnb038.python}")
    assert "bnb-no-4bit" in message
    assert f"Fix it with: qfix apply --python {venv_bnb038.python} --yes" in message
    assert got["torch"] is False
    assert freeze(venv_bnb038) == before  # never changes anything
