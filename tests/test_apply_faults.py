"""Faults during an apply: killed (SIGKILL) at every stage, the index failing halfway, a failed
verification, Ctrl-C and SIGTERM. After the automatic rollback, or after ``rollback()`` (what
``qfix rollback`` runs) for a killed run, ``pip freeze --all``, the whole tree of the venv (every
path, inode, size and mtime) and the manifest of site-packages and bin (every file's size,
sha256 and mode) are exactly what they were before; and no process qfix started is left alive.

Real venvs, real pip and uv, a real index on 127.0.0.1 (tests/index_server.py); the kills are real
SIGKILLs of a child running ``apply_plan`` (the QFIX_TEST_KILL_AT hook of transaction.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from repair.apply.transaction import StateDir, apply_plan, rollback
from repair.errors import ExitCode, Unfinished
from tests.hostile import MARK_ENV, marked_pids
from tests.test_apply_support import (  # noqa: F401 (fixtures)
    REPO,
    clean_index,
    clone,
    cuda_plan,
    freeze,
    henv,
    hermetic_env,
    index,
    manifest,
    pid_alive,
    plan,
    run_child,
    step,
    tree,
    tree_diff,
    wait_for,
)


def assert_restored(
    python: Path, before_freeze: str, before_tree: dict, before_manifest: dict
) -> None:
    prefix = python.parent.parent
    diff = tree_diff(before_tree, tree(prefix))
    assert not diff, "venv tree differs after rollback:\n" + "\n".join(diff)
    diff = tree_diff(before_manifest, manifest(prefix))
    assert not diff, "file contents or modes differ after rollback:\n" + "\n".join(diff)
    assert freeze(python) == before_freeze
    state = StateDir(prefix / ".qfix")
    assert not state.backup.exists(), "the snapshot should be gone after a finished rollback"
    assert json.loads(state.journal.read_text())["state"] == "rolled-back"


# (installer, kill point, verify verdict, slow index seconds, env changed at the kill?)
KILL_POINTS = [
    ("pip", "snapshot", "none", 0.0, False),
    ("pip", "prepared", "none", 0.0, False),
    ("pip", "step:0:after", "none", 0.0, True),
    ("uv", "step:1:before", "none", 0.0, True),
    ("pip", "step:1:during", "none", 3.0, True),
    ("uv", "step:1:during", "none", 3.0, True),
    ("pip", "step:2:after", "none", 0.0, True),
    ("uv", "verify", "pass", 0.0, True),
    ("pip", "rollback", "fail", 0.0, True),
]


@pytest.mark.parametrize(
    ("installer", "point", "verdict", "slow", "changed"),
    KILL_POINTS,
    ids=[f"{p[1]}-{p[0]}" for p in KILL_POINTS],
)
def test_sigkill_then_rollback_restores_exactly(
    tmp_path: Path, installer: str, point: str, verdict: str, slow: float, changed: bool
) -> None:
    python = clone(tmp_path / "venv")
    prefix = python.parent.parent
    state = StateDir(prefix / ".qfix")
    before_freeze, before_tree = freeze(python), tree(prefix)
    before_manifest = manifest(prefix)
    idx = index()
    idx.set_fault(slow=slow)
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT=point, QFIX_TEST_KILL_DELAY="0.5")
    child = run_child(tmp_path, cuda_plan(), python, installer=installer, verify=verdict, env=env)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, out
    journal = json.loads(state.journal.read_text())
    assert journal["state"] in (
        "snapshotting",
        "prepared",
        "applying",
        "verifying",
        "rolling-back",
    ), journal["state"]
    orphan = None
    if point.endswith(":during"):
        orphan = int(state.installer_pid.read_text())
        assert wait_gone(orphan), "the installer dies with qfix (PR_SET_PDEATHSIG)"
    if changed:
        assert tree(prefix) != before_tree, "the kill point should come after a real change"
    idx.reset()  # the orphan may still be downloading; rollback must not wait for the index

    result = rollback(str(python), progress=lambda line: None)

    assert result.ok and result.exit_code is ExitCode.OK, result
    if orphan is not None:
        assert not pid_alive(orphan)
    assert_restored(python, before_freeze, before_tree, before_manifest)
    # and the venv is usable again: a new apply goes through
    again = rollback(str(python), progress=lambda line: None)
    assert again.ok and not again.rolled_back


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_sigkill_during_verify_then_rollback_leaves_no_process(tmp_path: Path) -> None:
    """SIGKILL qfix while its verify child runs: the child dies with it (PR_SET_PDEATHSIG), and
    what that child started in its group is stopped by ``qfix rollback`` before it restores."""
    python = clone(tmp_path / "venv")
    prefix = python.parent.parent
    state = StateDir(prefix / ".qfix")
    before_freeze, before_tree = freeze(python), tree(prefix)
    before_manifest = manifest(prefix)
    mark = uuid.uuid4().hex
    env = hermetic_env(
        tmp_path, QFIX_TEST_KILL_AT="verify:during", QFIX_TEST_KILL_DELAY="1.0", **{MARK_ENV: mark}
    )
    child = run_child(tmp_path, cuda_plan(), python, installer="uv", verify="child:", env=env)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, out
    journal = json.loads(state.journal.read_text())
    assert journal["state"] == "verifying"
    kids = json.loads(state.children.read_text())
    assert len(kids) == len(journal["steps"]) + 1, kids  # every installer and the verify child
    verify_pid = kids[-1]["pid"]
    assert wait_gone(verify_pid), "the verify child dies with qfix (PR_SET_PDEATHSIG)"
    left = marked_pids(mark)
    assert left, "its own child lives on in its group: rollback has something to stop"
    try:
        result = rollback(str(python), progress=lambda line: None)
        assert result.ok and result.rolled_back, result
        assert not marked_pids(mark), "qfix rollback must stop every recorded child first"
    finally:
        for pid in marked_pids(mark):
            os.kill(pid, signal.SIGKILL)
    assert_restored(python, before_freeze, before_tree, before_manifest)
    assert not state.children.exists()


def test_kill_after_commit_keeps_the_new_state(tmp_path: Path) -> None:
    python = clone(tmp_path / "venv")
    state = StateDir(python.parent.parent / ".qfix")
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT="commit")
    child = run_child(tmp_path, cuda_plan(), python, env=env)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, out
    after = freeze(python)
    assert "torch==2.7.1+cu126" in after and "qfix-demo" not in after
    result = rollback(str(python), progress=lambda line: None)
    assert result.ok and not result.rolled_back
    assert freeze(python) == after, "a committed apply is not undone by qfix rollback"
    assert not state.backup.exists(), "the leftover snapshot of a committed run is dropped"


def test_unfinished_apply_blocks_the_next_until_rollback(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT="step:1:after")
    child = run_child(tmp_path, cuda_plan(), python, env=env)
    child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL
    with pytest.raises(Unfinished, match="did not finish") as err:
        apply_plan(cuda_plan(), python=str(python), installer="pip", progress=lambda s: None)
    assert err.value.exit_code == ExitCode.UNFINISHED and "qfix rollback" in (err.value.tip or "")
    assert rollback(str(python), progress=lambda s: None).rolled_back
    out = apply_plan(cuda_plan(), python=str(python), installer="pip", progress=lambda s: None)
    assert out.ok, out.error


@pytest.mark.parametrize(
    ("installer", "prefix", "fail_after", "failing"),
    [
        ("pip", "/simple/", 0, "bitsandbytes==0.48.2"),  # third command: after two real changes
        ("uv", "/simple/", 0, "bitsandbytes==0.48.2"),
        ("pip", "/whl/", 1, "torch==2.7.1+cu126"),  # inside the torch command
    ],
)
def test_index_answers_500_halfway(
    tmp_path: Path, henv: dict, installer: str, prefix: str, fail_after: int, failing: str
) -> None:
    python = clone(tmp_path / "venv")
    before_freeze, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)
    index().set_fault(fail_after, prefix=prefix)
    lines: list[str] = []
    out = apply_plan(cuda_plan(), python=str(python), installer=installer, progress=lines.append)
    assert not out.ok and out.rolled_back
    assert out.exit_code is ExitCode.APPLY_FAILED
    assert failing in out.error and "rolled back" in out.error, out.error
    assert out.steps_done[0] == "uninstall qfix-demo"  # a real change happened first
    assert any(line.startswith("rolling back") for line in lines), lines
    assert any(r.startswith(prefix) for r in index().requests)
    assert_restored(python, before_freeze, before_tree, before_manifest)


def test_failed_verification_rolls_back(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    before_freeze, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)
    seen: list[str] = []

    def verify() -> bool:
        # the check really runs in the changed environment
        seen.append(freeze(python))
        return False

    out = apply_plan(
        cuda_plan(), python=str(python), installer="uv", verify=verify, progress=lambda s: None
    )
    assert "torch==2.7.1+cu126" in seen[0]
    assert (out.ok, out.rolled_back, out.verified) == (False, True, False)
    assert out.exit_code is ExitCode.APPLY_FAILED and "verification failed" in out.error
    assert len(out.steps_done) == 3
    assert_restored(python, before_freeze, before_tree, before_manifest)


def test_crashing_verification_rolls_back(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    before_freeze, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)

    def verify() -> bool:
        raise RuntimeError("CUDA error: no kernel image is available")

    out = apply_plan(
        cuda_plan(extra=False),
        python=str(python),
        installer="pip",
        verify=verify,
        progress=lambda s: None,
    )
    assert out.rolled_back and "verification crashed: CUDA error" in out.error
    assert_restored(python, before_freeze, before_tree, before_manifest)


@pytest.mark.parametrize(
    ("sig", "installer", "word"),
    [
        (signal.SIGTERM, "pip", "SIGTERM"),
        (signal.SIGINT, "uv", "Ctrl-C"),
        (signal.SIGHUP, "uv", "SIGHUP"),
    ],
)
def test_signal_during_install_rolls_back(
    tmp_path: Path, sig: int, installer: str, word: str
) -> None:
    python = clone(tmp_path / "venv")
    prefix = python.parent.parent
    state = StateDir(prefix / ".qfix")
    before_freeze, before_tree = freeze(python), tree(prefix)
    before_manifest = manifest(prefix)
    index().set_fault(slow=5.0)
    steps = [s for s in cuda_plan()["steps"] if s["action"] == "install"]  # torch command first
    child = run_child(tmp_path, plan(*steps), python, installer=installer)
    wait_for(state.installer_pid, child)
    installer_pid = int(state.installer_pid.read_text())
    child.send_signal(sig)
    out, _ = child.communicate(timeout=120)
    index().reset()
    assert child.returncode == ExitCode.APPLY_FAILED, out
    assert f"interrupted ({word})" in out and "rolled back" in out, out
    assert not pid_alive(installer_pid), "the running installer must be stopped"
    assert_restored(python, before_freeze, before_tree, before_manifest)


def test_file_rewritten_in_place_is_reported_not_hidden(tmp_path: Path) -> None:
    """If something rewrote an installed file in place (not what pip/uv do), its old bytes are
    gone with the shared inode: rollback must say so (exit 4) instead of claiming success."""
    python = clone(tmp_path / "venv")
    prefix = python.parent.parent
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT="step:0:after")
    child = run_child(tmp_path, cuda_plan(), python, env=env)
    child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL
    victim = next(prefix.glob("lib/python*/site-packages/torch/version.py"))
    with open(victim, "a") as f:  # in place: same inode as the snapshot's link
        f.write("# changed in place\n")
    result = rollback(str(python), progress=lambda s: None)
    assert not result.ok and result.exit_code is ExitCode.ROLLBACK_FAILED
    assert "torch/version.py" in result.error and "rewritten in place" in result.error


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_rollback_needs_no_network(tmp_path: Path) -> None:
    """rollback() in a child with no network at all (a new network namespace: not even
    loopback is up) and PIP_NO_INDEX=1, the index server stopped as well."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn not permitted here: {probe.stderr.decode().strip()}")
    python = clone(tmp_path / "venv")
    before_freeze, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT="step:2:after")
    child = run_child(tmp_path, cuda_plan(), python, env=env)
    child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL
    idx = index()
    idx.stop()
    try:
        code = (
            "import sys; from repair.apply.transaction import rollback; "
            "o = rollback(sys.argv[1]); sys.exit(0 if o.ok and o.rolled_back else 1)"
        )
        done = subprocess.run(
            ["unshare", "-rn", sys.executable, "-c", code, str(python)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(REPO),
            env={**env, "PIP_NO_INDEX": "1", "QFIX_TEST_KILL_AT": ""},
        )
    finally:
        idx.start()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_restored(python, before_freeze, before_tree, before_manifest)


def test_step_failing_on_its_own_is_rolled_back(tmp_path: Path, henv: dict) -> None:
    """A step that fails for a reason of its own (no such version on the index)."""
    python = clone(tmp_path / "venv")
    before_freeze, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)
    the_plan = cuda_plan(extra=False)
    the_plan["steps"].append(step("install", "bitsandbytes", "0.43.3", "9.9", None, "pypi"))
    out = apply_plan(the_plan, python=str(python), installer="pip", progress=lambda s: None)
    assert out.exit_code is ExitCode.APPLY_FAILED and "bitsandbytes==9.9" in out.error
    assert_restored(python, before_freeze, before_tree, before_manifest)
