"""Failures that tell the truth (issue 16): an unfinished apply is state every command sees,
anything unexpected is one line and exit 70, probes honour QFIX_PROBE_TIMEOUT.

Real venvs, real pip, a real index on 127.0.0.1, real SIGKILLs (QFIX_TEST_KILL_AT), and the real
`qfix` command line in a child process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from repair import cli
from repair.apply.journal import StateDir
from repair.apply.transaction import apply_plan, rollback
from repair.errors import ExitCode, NoResource
from tests.test_apply_faults import assert_restored
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
    run_child,
    small_template,
    tree,
    tree_diff,
)


def qfix(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "repair", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )


def killed_apply(tmp_path: Path, point: str) -> tuple[Path, str, dict[str, str]]:
    """A venv whose apply was SIGKILLed at ``point``; returns it, its freeze before, the env."""
    python = clone(tmp_path / "venv")
    before = freeze(python)
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT=point)
    child = run_child(tmp_path, cuda_plan(), python, env=env, verify="pass")
    out, _ = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, out
    return python, before, hermetic_env(tmp_path)


@pytest.mark.parametrize("point", ["step:1:after", "verify"])
def test_sigkill_then_every_command_reports_the_pending_rollback(
    tmp_path: Path, point: str
) -> None:
    python, before, env = killed_apply(tmp_path, point)
    changed = freeze(python)
    assert changed != before
    rollback_cmd = f"qfix rollback --python {python}"
    for args in (["plan"], ["plan", "--json"], ["detect"], ["detect", "--json"]):
        done = qfix(*args, "--python", str(python), env=env)
        assert done.returncode == ExitCode.UNFINISHED, (args, done.returncode, done.stderr)
        first = said(done.stderr).splitlines()[0]
        assert first.startswith("qfix: warning: an earlier qfix apply on"), first
        assert rollback_cmd in first and ("applying" in first or "verifying" in first), first
        if "--json" in args:
            json.loads(done.stdout)  # the JSON on stdout stays a clean document
    # apply refuses and changes nothing; "--yes" is no way around it
    done = qfix("apply", "--yes", "--python", str(python), env=env)
    assert done.returncode == ExitCode.UNFINISHED, done.stderr
    assert said(done.stderr).startswith("qfix: error: an earlier qfix apply"), done.stderr
    assert "Nothing to apply" not in done.stdout + done.stderr
    assert freeze(python) == changed
    # the rollback named in the warning restores, and the warning is gone
    done = qfix("rollback", "--python", str(python), env=env)
    assert done.returncode == ExitCode.OK, done.stderr
    assert freeze(python) == before
    done = qfix("detect", "--json", "--python", str(python), env=env)
    assert done.returncode == ExitCode.OK and "warning" not in done.stderr, done.stderr


def test_unexpected_error_is_one_line_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The catch-all: a bug is not exit 1 ("problems found") and not a traceback."""
    from repair import pipeline

    def broken(*a: object, **k: object) -> None:
        raise KeyError("gpus")  # what a bug in qfix looks like

    monkeypatch.setattr(pipeline, "analyse", broken)
    monkeypatch.setattr(sys, "argv", ["qfix", "plan", "--facts", "example:healthy"])
    monkeypatch.delenv("QFIX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == ExitCode.INTERNAL == 70
    err = said(capsys.readouterr().err)
    assert err.splitlines()[0] == "qfix: error: internal error: KeyError: 'gpus'", err
    assert "bug in qfix" in err and "Traceback" not in err and len(err.splitlines()) == 2


def test_unclassified_disk_error_is_exit_12(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An ENOSPC that no layer classified still reaches the user as one line and exit 12."""
    from repair import pipeline

    def full(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(pipeline, "analyse", full)
    monkeypatch.setattr(sys, "argv", ["qfix", "plan", "--facts", "example:healthy"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == ExitCode.NO_RESOURCE
    err = said(capsys.readouterr().err)
    assert err.startswith("qfix: error: could not go on: no space left on the device ("), err


def test_rollback_honours_the_probe_timeout(tmp_path: Path) -> None:
    """`qfix rollback --python` on an interpreter that hangs stops after QFIX_PROBE_TIMEOUT
    (issue 16, 7.: it used to wait 60 s), exit 2, one line."""
    hang = tmp_path / "hang" / "python3"  # not a venv layout: find_state must ask it
    hang.parent.mkdir()
    hang.write_text("#!/bin/sh\nsleep 120\n")
    hang.chmod(hang.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, QFIX_PROBE_TIMEOUT="2", PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    done = qfix("rollback", "--python", str(hang), env=env, timeout=60)
    took = time.monotonic() - t0
    assert took < 15, took
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert said(done.stderr).startswith("qfix: error: ") and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- full, read-only disks


@contextlib.contextmanager
def mounted(kind: str, target: Path, *args: str) -> Iterator[Path]:
    """A real mount (we are root in the test machine), unmounted after; skip where not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount {kind} here: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def du_mib(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def fill(mount: Path) -> Path:
    """Write a ballast file until the tmpfs is full (ENOSPC); returns it."""
    ballast = mount / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
    return ballast


def template_on(mount: Path) -> Path:
    return clone(mount / "venv")


def test_no_room_for_the_downloads_is_refused_before_any_change(tmp_path: Path, henv: dict) -> None:
    size = du_mib(small_template()) + 16
    with mounted("tmpfs", tmp_path / "m", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs") as m:
        python = template_on(m)
        before, before_tree = freeze(python), tree(python.parent.parent)
        the_plan = cuda_plan()
        the_plan["download_bytes"] = {"torch": 300 * 1024 * 1024}
        with pytest.raises(NoResource) as err:
            apply_plan(the_plan, python=str(python), installer="pip", progress=lambda s: None)
        assert err.value.exit_code == ExitCode.NO_RESOURCE == 12
        msg = err.value.message
        assert msg.startswith(f"could not apply the plan to {python.parent.parent}: not enough")
        assert f"free space on {m}" in msg and "MB needed" in msg, msg
        assert "nothing was changed" in (err.value.tip or "")
        assert freeze(python) == before
        assert not tree_diff(before_tree, tree(python.parent.parent))
        assert not (python.parent.parent / ".qfix" / "journal.json").exists()


def test_disk_full_at_commit_rolls_back_and_leaves_a_consistent_journal(
    tmp_path: Path, henv: dict
) -> None:
    """The journal write at commit hits ENOSPC (the issue: a traceback, journal at
    "verifying"). Now: rolled back (exit 3), or, where even that cannot finish, exit 4 with what
    to free, an unfinished journal every command reports, and a rollback that restores exactly
    once space is freed."""
    size = du_mib(small_template()) + 100
    with mounted("tmpfs", tmp_path / "m", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs") as m:
        python = template_on(m)
        before, before_tree = freeze(python), tree(python.parent.parent)
        before_manifest = manifest(python.parent.parent)
        ballast: list[Path] = []

        def verify_then_fill() -> bool:
            ballast.append(fill(m))
            return True

        out = apply_plan(
            cuda_plan(),
            python=str(python),
            installer="pip",
            verify=verify_then_fill,
            progress=lambda s: None,
        )
        assert not out.ok and out.error and "\n" not in out.error
        assert "no space left on the device" in out.error and "(None)" not in out.error
        state = StateDir(python.parent.parent / ".qfix")
        if out.exit_code == ExitCode.APPLY_FAILED:
            assert out.rolled_back and "rolled back" in out.error
        else:
            assert out.exit_code == ExitCode.ROLLBACK_FAILED, out
            assert f"qfix rollback --python {python}" in out.error, out.error
            assert f"on {m}" in out.error, out.error
            ballast[0].unlink()
            assert rollback(str(python), progress=lambda s: None).ok
        ballast[0].unlink(missing_ok=True)
        assert json.loads(state.journal.read_text())["state"] == "rolled-back"
        assert_restored(python, before, before_tree, before_manifest)


def test_disk_filled_while_installing(tmp_path: Path, henv: dict) -> None:
    """Another writer fills the disk while the installer runs (the issue: exit 4 "rollback
    failed: No space left on device (None)" though a later rollback restored exactly)."""
    size = du_mib(small_template()) + 100
    with mounted("tmpfs", tmp_path / "m", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs") as m:
        python = template_on(m)
        before, before_tree = freeze(python), tree(python.parent.parent)
        before_manifest = manifest(python.parent.parent)
        index().set_fault(None, slow=6.0)  # each wheel takes ~6 s: time to fill the disk
        child = run_child(tmp_path, cuda_plan(), python, env=henv)
        state = StateDir(python.parent.parent / ".qfix")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                steps = json.loads(state.journal.read_text())["steps"]
                if steps[1]["status"] == "running":
                    break
            time.sleep(0.05)
        ballast = fill(m)
        out, _ = child.communicate(timeout=300)
        index().reset()
        result = json.loads(out.split("OUTCOME ", 1)[1])
        assert "Traceback" not in out, out
        assert result["exit_code"] in (ExitCode.APPLY_FAILED, ExitCode.ROLLBACK_FAILED), out
        assert "(None)" not in result["error"], result["error"]
        if result["exit_code"] == ExitCode.ROLLBACK_FAILED:
            assert f"qfix rollback --python {python}" in result["error"], result["error"]
            done = qfix("plan", "--python", str(python), env=henv)
            assert done.returncode == ExitCode.UNFINISHED, done.stderr
        ballast.unlink()
        if result["exit_code"] == ExitCode.ROLLBACK_FAILED:
            assert rollback(str(python), progress=lambda s: None).ok
        assert_restored(python, before, before_tree, before_manifest)


def test_read_only_bind_mount_is_refused_not_a_failed_rollback(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    before = freeze(python)
    ro = tmp_path / "ro"
    with mounted("a bind mount", ro, "--bind", str(python.parent.parent)):
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, text=True
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        ro_python = ro / "bin" / "python"
        done = qfix("apply", "--yes", "--installer", "pip", "--python", str(ro_python), env=henv)
        assert done.returncode == ExitCode.NO_RESOURCE, (done.returncode, done.stderr)
        first = said(done.stderr).splitlines()[0]
        assert first.startswith("qfix: error: could not ") and "read-only" in first, first
        assert "rollback" not in done.stderr and "Traceback" not in done.stderr
        with pytest.raises(NoResource, match="read-only"):
            apply_plan(cuda_plan(), python=str(ro_python), installer="pip", progress=print)
    assert freeze(python) == before


@pytest.mark.parametrize("what", ["prefix", "site-packages"])
def test_immutable_root_is_refused_before_any_change(tmp_path: Path, henv: dict, what: str) -> None:
    python = clone(tmp_path / "venv")
    prefix = python.parent.parent
    if what == "site-packages":
        (prefix / ".qfix").mkdir()  # an earlier apply made it: the roots decide
        target = next(prefix.glob("lib/python*/site-packages"))
    else:
        target = prefix
    before, before_tree = freeze(python), tree(prefix)
    done = subprocess.run(["chattr", "+i", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not allowed here: {done.stderr.strip()}")
    try:
        with pytest.raises(NoResource) as err:
            apply_plan(cuda_plan(), python=str(python), installer="pip", progress=lambda s: None)
        assert "operation not permitted (an immutable file? see lsattr)" in err.value.message
        assert str(target) in err.value.message, err.value.message
        assert err.value.exit_code == ExitCode.NO_RESOURCE
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert freeze(python) == before
    assert not tree_diff(before_tree, tree(prefix))


# --------------------------------------------------------------------------- secrets


SECRET = "s3cr3t-t0ken"


def test_credentials_never_leave_in_outputs_logs_or_state_files(tmp_path: Path, henv: dict) -> None:
    """A credentialed index URL: masked in the progress lines, the outcome JSON, the journal,
    the installer log; the state folder 0700 and its files 0600; the saved plan 0600."""
    python = clone(tmp_path / "venv")
    base = index().torch_base.replace("http://", f"http://mirror-user:{SECRET}@")
    lines: list[str] = []
    out = apply_plan(
        cuda_plan(), python=str(python), installer="pip", torch_index=base, progress=lines.append
    )
    assert out.ok, out.error
    assert any(c for c in out.commands if any(SECRET in a for a in c)), "the installer got it"
    state = StateDir(python.parent.parent / ".qfix")
    shown = "\n".join(lines) + json.dumps(out.to_dict()) + state.journal.read_text()
    shown += state.installer_log.read_text(errors="replace")
    assert SECRET not in shown
    assert "mirror-user" not in json.dumps(out.to_dict()) and "***@127.0.0.1" in shown
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700
    for f in state.path.iterdir():
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f, oct(f.stat().st_mode))

    # the command line: plan as text and JSON, the saved plan, rollback
    url = f"https://mirror-user:{SECRET}@mirror.example/whl"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    saved = tmp_path / "plan.json"
    for args in (
        ["plan", "--facts", "example:driver-too-old", "--torch-index", url],
        ["plan", "--facts", "example:driver-too-old", "--json", "--torch-index", url],
        ["plan", "--facts", "example:driver-too-old", "--torch-index", url, "--out", str(saved)],
        ["rollback", "--json", "--python", str(python)],
    ):
        done = qfix(*args, env=env)
        assert done.returncode in (0, 1), (args, done.stderr)
        assert SECRET not in done.stdout + done.stderr, args
        if "--torch-index" in args:
            assert "https://***@mirror.example/whl" in done.stdout, done.stdout[-2000:]
    assert SECRET in saved.read_text(), "the saved plan keeps what apply installs from"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- other writers


def outside_install(python: Path, tmp_path: Path) -> None:
    """What a colleague's `pip install` does to the venv while qfix is verifying."""
    from tests.index_server import build_wheel

    wheel = build_wheel(tmp_path, "outside-pkg", "1.0", files={"outside_pkg/__init__.py": ""})
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_outside_install_is_not_erased_by_the_rollback(tmp_path: Path, henv: dict) -> None:
    python = clone(tmp_path / "venv")
    before, before_tree = freeze(python), tree(python.parent.parent)
    before_manifest = manifest(python.parent.parent)

    def verify() -> bool:
        outside_install(python, tmp_path)
        return False  # the check fails: the automatic rollback would erase outside-pkg

    out = apply_plan(
        cuda_plan(), python=str(python), installer="pip", verify=verify, progress=lambda s: None
    )
    assert out.exit_code == ExitCode.OUTSIDE_CHANGES == 13, out
    assert "outside-pkg 1.0" in (out.error or "") and "--force" in (out.error or ""), out.error
    assert "outside-pkg @ file:" in freeze(python), "nothing was rolled back over it"
    # every command reports the unfinished apply; a plain rollback refuses again (exit 13)
    done = qfix("plan", "--python", str(python), env=henv)
    assert done.returncode == ExitCode.UNFINISHED, done.stderr
    done = qfix("rollback", "--python", str(python), env=henv)
    assert done.returncode == ExitCode.OUTSIDE_CHANGES, done.stderr
    assert "outside-pkg @ file:" in freeze(python)
    # --force restores the exact state before the apply
    done = qfix("rollback", "--force", "--python", str(python), env=henv)
    assert done.returncode == ExitCode.OK, done.stderr
    assert_restored(python, before, before_tree, before_manifest)


def test_outside_install_during_a_committed_apply_is_kept_and_reported(
    tmp_path: Path, henv: dict
) -> None:
    python = clone(tmp_path / "venv")
    lines: list[str] = []
    out = apply_plan(
        cuda_plan(),
        python=str(python),
        installer="pip",
        verify=lambda: outside_install(python, tmp_path) or True,
        progress=lines.append,
    )
    assert out.ok and out.outside_changes == {"outside-pkg": "1.0"}, out
    assert out.to_dict()["outside_changes"] == {"outside-pkg": "1.0"}
    assert any("kept what another process changed" in line for line in lines), lines
    assert "outside-pkg @ file:" in freeze(python)


def said(stderr: str) -> str:
    """stderr without the line naming the target (every command prints it first, issue 10)."""
    return "\n".join(x for x in stderr.splitlines() if not x.startswith("qfix: target:")) + "\n"
