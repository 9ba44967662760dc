"""Repairs applied for real, and the refusals: real venvs, real pip and uv, the local
PyTorch-style index on 127.0.0.1 (tests/index_server.py) for the torch variants."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repair import process
from repair.apply.transaction import StateDir, apply_plan, installed_versions, rollback
from repair.apply.venv import create_venv
from repair.errors import ApplyRefused, BadInput, ExitCode, Locked, PlanFileError
from repair.facts import Facts, PythonInfo
from repair.fingerprint import fingerprint
from repair.pipeline import make_settings
from repair.planfile import check_fingerprint, plan_from_doc
from tests.test_apply_support import (  # noqa: F401 (fixtures)
    clean_index,
    clone,
    cuda_plan,
    freeze,
    henv,
    hermetic_env,
    index,
    plan,
    run_child,
    step,
    wait_for,
)

OFFICIAL = "https://download.pytorch.org/whl"


def torch_cuda(python: Path | str) -> str:
    """torch.version.cuda as the target interpreter reports it (a real import)."""
    done = process.run([str(python), "-c", "import torch.version as v; print(v.cuda)"], timeout=60)
    assert done.ok, done.stderr
    return done.stdout.strip()


def official(the_plan: dict) -> dict:
    """The plan as the planner writes it: torch steps point at the official PyTorch index."""
    for s in the_plan["steps"]:
        if s.get("group") == "torch":
            variant = s["to"].partition("+")[2]
            s["index_url"] = f"{OFFICIAL}/{variant}"
    the_plan["torch_index_base"] = OFFICIAL
    return the_plan


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_cpu_torch_to_cuda_variant(tmp_path: Path, henv: dict, installer: str) -> None:
    python = clone(tmp_path / "venv")
    assert torch_cuda(python) == "None"
    lines: list[str] = []
    out = apply_plan(
        official(cuda_plan("cu126")),
        python=str(python),
        installer=installer,
        torch_index=index().torch_base,
        verify=lambda: torch_cuda(python) == "12.6",
        progress=lines.append,
    )
    assert out.ok and out.exit_code is ExitCode.OK, out.error
    assert out.verified is True and not out.rolled_back
    assert out.installer == installer
    frozen = freeze(python)
    assert "torch==2.7.1+cu126" in frozen and "torchvision==0.22.1+cu126" in frozen
    assert "bitsandbytes==0.48.2" in frozen and "qfix-demo" not in frozen
    assert (out.before["torch"], out.after["torch"]) == ("2.7.1+cpu", "2.7.1+cu126")
    # the --torch-index base replaced the official one; nothing went to download.pytorch.org
    torch_cmd = out.commands[1]
    assert f"{index().torch_base}/cu126" in torch_cmd and "torch==2.7.1+cu126" in torch_cmd
    assert not any(OFFICIAL in a for c in out.commands for a in c)
    # the rest was installed with torch pinned by a constraint
    assert "-c" in out.commands[2]
    # progress: one line per step, and the state folder is clean
    assert sum(line.startswith("[") for line in lines) == 3, lines
    state = StateDir(python.parent.parent / ".qfix")
    assert json.loads(state.journal.read_text())["state"] == "committed"
    assert not state.backup.exists()


def test_wrong_cuda_variant_to_the_right_one(
    tmp_path: Path, henv: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cu128 (needs a newer driver) -> cu118; the index base comes from $QFIX_TORCH_INDEX,
    resolved once by the pipeline's settings and handed to the transaction."""
    monkeypatch.setenv("QFIX_TORCH_INDEX", index().torch_base)
    base = make_settings(python=sys.executable, needs_index=True).torch_index_base
    assert base == index().torch_base
    python = clone(tmp_path / "venv")
    first = apply_plan(
        official(cuda_plan("cu128", extra=False)),
        python=str(python),
        installer="pip",
        torch_index=base,
        progress=lambda s: None,
    )
    assert first.ok, first.error
    assert torch_cuda(python) == "12.8"
    fix = official(
        plan(
            step("install", "torch", "2.7.1+cu128", "2.7.1+cu118", None, "torch"),
            step("install", "torchvision", "0.22.1+cu128", "0.22.1+cu118", None, "torch"),
        )
    )
    out = apply_plan(
        fix,
        python=str(python),
        installer="uv",
        torch_index=base,
        progress=lambda s: None,
        verify=lambda: torch_cuda(python) == "11.8",
    )
    assert out.ok and out.verified, out.error
    assert "torch==2.7.1+cu118" in freeze(python)


def test_fresh_venv_made_by_create_venv(tmp_path: Path, henv: dict) -> None:
    path = tmp_path / "fresh"
    python = create_venv(path, sys.executable)
    assert Path(python) == path / "bin" / "python" and Path(python).exists()
    new = plan(
        step("install", "torch", None, "2.13.0+cu130", f"{index().torch_base}/cu130", "torch"),
        step(
            "install", "torchvision", None, "0.28.0+cu130", f"{index().torch_base}/cu130", "torch"
        ),
        step("install", "bitsandbytes", None, "0.48.2", None, "pypi"),
    )
    out = apply_plan(
        new,
        python=python,
        installer="pip",
        progress=lambda s: None,
        verify=lambda: torch_cuda(python) == "13.0",
    )
    assert out.ok and out.verified, out.error
    versions = installed_versions([str(next(path.glob("lib/python*/site-packages")))])
    assert versions["torch"] == "2.13.0+cu130" and versions["bitsandbytes"] == "0.48.2"
    with pytest.raises(BadInput, match="exists and is not empty"):
        create_venv(path, sys.executable)


def test_two_applies_at_once(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    state = StateDir(python.parent.parent / ".qfix")
    index().set_fault(slow=1.5)
    first = run_child(tmp_path, cuda_plan(), python, env=henv)
    try:
        wait_for(state.installer_pid, first)
        t0 = time.monotonic()
        with pytest.raises(Locked, match="another qfix apply") as err:
            apply_plan(cuda_plan(), python=str(python), installer="pip", progress=lambda s: None)
        assert time.monotonic() - t0 < 5, "the second apply must refuse at once, not wait"
        assert err.value.exit_code == ExitCode.LOCKED
        with pytest.raises(Locked):
            rollback(str(python), progress=lambda s: None)
    finally:
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert "torch==2.7.1+cu126" in freeze(python)


def test_stale_plan_is_refused(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    site = [str(next((python.parent.parent).glob("lib/python*/site-packages")))]

    def facts() -> Facts:
        return Facts(
            python=PythonInfo(executable=str(python), version="3.11"),
            packages=installed_versions(site),
        )

    the_plan = cuda_plan()
    the_plan["fingerprint"] = fingerprint(facts())
    the_plan = plan_from_doc(the_plan)
    check_fingerprint(the_plan, fingerprint(facts()))  # same state: fine
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "qfix-demo==2.0"],
        check=True,
        env=henv,
        timeout=120,
    )
    with pytest.raises(ApplyRefused, match="different state of .* re-run qfix plan") as err:
        check_fingerprint(the_plan, fingerprint(facts()))
    assert err.value.exit_code == ExitCode.REFUSED


def _base_interpreter() -> str:
    return str(Path(sys.base_prefix) / "bin" / "python3")


@pytest.mark.parametrize("which", ["externally-managed", "system"])
def test_system_interpreters_are_never_changed(which: str) -> None:
    if which == "externally-managed":
        python = "/usr/bin/python3.11"
        marker = Path("/usr/lib/python3.11/EXTERNALLY-MANAGED")
        if not (Path(python).exists() and marker.exists()):
            pytest.skip("no externally managed system Python here")
        expect = "externally managed"
    else:
        python = _base_interpreter()
        if not Path(python).exists() or sys.base_prefix == sys.prefix:
            pytest.skip("tests do not run from a venv")
        expect = "not a virtual environment"
    prefix = Path(
        process.run([python, "-c", "import sys; print(sys.prefix)"], timeout=30).stdout.strip()
    )
    with pytest.raises(ApplyRefused, match=expect) as err:
        apply_plan(cuda_plan(), python=python, installer="pip", progress=lambda s: None)
    assert err.value.exit_code == ExitCode.REFUSED and "--venv NEW" in (err.value.tip or "")
    assert not (prefix / ".qfix").exists(), "not even the state folder may be created there"


@pytest.mark.parametrize(
    "bad",
    [
        {"package": "torch; rm -rf /"},
        {"package": "--index-url=http://evil.example/simple"},
        {"package": "-e ."},
        {"to": "2.7.1+cu126 --pre"},
        {"index_url": "http://evil.example/whl/cu126"},
        {"index_url": "ftp://mirror.example/whl"},
    ],
)
def test_unsafe_plan_is_refused_before_any_change(tmp_path: Path, henv: dict, bad: dict) -> None:
    python = clone(tmp_path / "venv")
    the_plan = cuda_plan()
    the_plan["steps"][1].update(bad)
    with pytest.raises(PlanFileError) as err:
        apply_plan(the_plan, python=str(python), installer="pip", progress=lambda s: None)
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert "steps[1]" in err.value.message
    assert not (python.parent.parent / ".qfix").exists()


def test_healthy_plan_changes_nothing(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    before = freeze(python)
    out = apply_plan(
        plan(), python=str(python), installer="pip", progress=lambda s: None, verify=lambda: True
    )
    assert out.ok and out.steps_done == () and out.verified
    assert freeze(python) == before
