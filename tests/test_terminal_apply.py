"""Apply as a person runs it (issue 11): the repair of bitsandbytes 0.38.1 stays when the tiny
model cannot run (no transformers), and an install shows its progress on a terminal while it
runs (a slow local index on loopback, tests/index_server.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_terminal import QFIX, _env, first_time, in_pty, run, screen
from tests.venvs import Venv, copy_venv

pytestmark = pytest.mark.venv


def test_apply_verify_tiny_without_transformers_keeps_the_repair(
    venv_bnb038: Venv, tmp_path: Path
) -> None:
    """The issue's case: bitsandbytes 0.38.1 repaired to 0.50.2 beside torch 2.13.0 and no
    transformers; `--verify tiny` must not roll the repair back for a missing optional package."""
    venv = copy_venv(venv_bnb038, tmp_path / "venv")
    p = run(
        "apply", "--yes", "--json", "--verify", "tiny", "--installer", "pip",
        "--python", str(venv.python),
        timeout=900,
    )  # fmt: skip
    doc = json.loads(p.stdout)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    assert doc["outcome"]["ok"] and not doc["outcome"]["rolled_back"]
    assert doc["outcome"]["after"]["bitsandbytes"] == "0.50.2"
    assert doc["verify"]["ok"] and "transformers" in doc["verify"]["model_skipped"]
    assert "transformers" not in doc["outcome"]["after"]


def test_apply_shows_the_download_while_it_runs(tmp_path: Path) -> None:
    """A new venv from a slow local index (every wheel takes ~4 s): the status line names the
    torch wheel and its size while pip still downloads it, and the next step follows Done."""
    from tests.index_server import IndexServer

    new = tmp_path / "new-venv"
    with IndexServer(tmp_path / "index") as index:
        index.set_fault(slow=4.0)
        argv = [
            *QFIX, "apply", "--venv", str(new), "--yes", "--installer", "pip",
            "--verify", "skip", "--torch-index", index.torch_base,
        ]  # fmt: skip
        chunks, rc = in_pty(argv, env=_env())
    text = screen(chunks)
    assert rc == 0, text[-3000:]
    shown = first_time(chunks, b"... downloading torch-2.14.1+cpu")
    step2 = first_time(chunks, b"qfix: [2/")
    assert shown is not None and step2 is not None, text[-3000:]
    assert step2 - shown >= 2.0, (shown, step2)  # seen while the slow download ran
    assert "Plan (will be applied)" in text
    assert "Next" in text and f"$ qfix verify --python {new}/bin/python" in text
