"""The real thing: a venv with the real torch 2.13.0 CPU wheel (31,000 files) and the real
bitsandbytes 0.38.1 from PyPI (the venv_bnb038 fixture, copied once for this module).

In file order: a torch-sized change killed mid-install and rolled back (its time is measured by
bench/bench_apply.py, not asserted here: a timed test flakes on a loaded machine), a
torch-sized change rolled back after a failed verification, then the bitsandbytes 0.38.1 ->
0.50.2 repair from real PyPI with torch left untouched. The rollbacks leave the copy exactly as
it was, so the later tests start from the fixture's state.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from repair import process
from repair.apply.transaction import StateDir, apply_plan, rollback
from repair.errors import ExitCode
from tests.test_apply_support import (
    freeze,
    hermetic_env,
    index,
    pid_alive,
    plan,
    run_child,
    step,
    tree,
    tree_diff,
)
from tests.venvs import Venv, copy_venv

pytestmark = pytest.mark.venv


@pytest.fixture(scope="module")
def real(venv_bnb038: Venv, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return copy_venv(venv_bnb038, tmp_path_factory.mktemp("real") / "venv")


def torch_dist(venv: Venv) -> Path:
    return venv.site_packages / "torch-2.13.0+cpu.dist-info"


def cuda_variant_plan() -> dict:
    base = index().torch_base
    return plan(step("install", "torch", "2.13.0+cpu", "2.13.0+cu130", f"{base}/cu130", "torch"))


def test_torch_sized_change_killed_mid_install_rolls_back_exactly(
    real: Venv, tmp_path: Path
) -> None:
    index().reset()
    python = real.python
    before_freeze, before_tree = freeze(python), tree(real.path)
    assert "torch==2.13.0+cpu" in before_freeze
    state = StateDir(real.path / ".qfix")
    child = run_child(
        tmp_path, cuda_variant_plan(), python, installer="pip", env=hermetic_env(tmp_path)
    )
    # SIGKILL qfix the moment pip has begun to remove the real torch (its dist-info moves away)
    deadline = time.monotonic() + 300
    while torch_dist(real).exists():
        assert child.poll() is None, child.stdout.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "pip never started on torch"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    orphan = int(state.installer_pid.read_text())
    assert json.loads(state.journal.read_text())["state"] == "applying"

    result = rollback(str(python), progress=lambda s: None)

    assert result.ok and result.rolled_back, result.error
    assert not pid_alive(orphan)
    diff = tree_diff(before_tree, tree(real.path))
    assert not diff, "\n".join(diff)
    assert freeze(python) == before_freeze


def test_torch_sized_change_failed_verification_rolls_back(
    real: Venv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index().reset()
    for k, v in hermetic_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    python = real.python
    before_freeze, before_tree = freeze(python), tree(real.path)
    out = apply_plan(
        cuda_variant_plan(),
        python=str(python),
        installer="uv",
        verify=lambda: False,
        progress=lambda s: None,
    )
    assert out.rolled_back and out.exit_code is ExitCode.APPLY_FAILED, out.error
    assert out.after["torch"] == "2.13.0+cpu"
    assert "rollback" in out.timings, out.timings  # measured; its speed is bench_apply's job
    assert not tree_diff(before_tree, tree(real.path))
    assert freeze(python) == before_freeze


def test_bnb_038_to_050_from_pypi_keeps_torch(real: Venv) -> None:
    python = real.python
    torch_inode = (torch_dist(real) / "RECORD").stat().st_ino
    fix = plan(step("install", "bitsandbytes", "0.38.1", "0.50.2", None, "pypi"))
    fix["findings"] = [{"id": "bnb-no-4bit", "severity": "error", "summary": "", "evidence": {}}]

    def four_bit_ready() -> bool:
        done = process.run(
            [
                str(python),
                "-c",
                "import bitsandbytes as b, bitsandbytes.nn as n; "
                "assert hasattr(n, 'Linear4bit'); print(b.__version__)",
            ],
            timeout=300,
        )
        return done.ok and done.stdout.strip() == "0.50.2"

    out = apply_plan(
        fix, python=str(python), installer="auto", verify=four_bit_ready, progress=lambda s: None
    )
    assert out.ok and out.verified, out.error
    frozen = freeze(python)
    assert "bitsandbytes==0.50.2" in frozen and "torch==2.13.0+cpu" in frozen
    assert (torch_dist(real) / "RECORD").stat().st_ino == torch_inode, "torch was reinstalled"
    assert any("-c" in cmd for cmd in out.commands), "torch must be pinned by a constraint"
