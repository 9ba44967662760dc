"""Portable apply (issue 10, item 5): the platform decisions behind one door each.

The Windows branches run here with the OS faked at the boundary only: a fake ``msvcrt`` module
with Windows' byte-range lock semantics (per file, per handle, mandatory), a fake ``kernel32``
and a recorder in place of ``taskkill``. The code above them (the journal's lock, the fleet lock,
the lock-holder probe) is qfix's real code on real files. The POSIX branches run for real: here,
and in the apply, journal and fleet tests.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from repair import platform_ops, process
from repair.apply.journal import StateDir, _lock_holder, pending_apply, prefix_of, stop_children
from repair.errors import Locked
from repair.fleet.expect import fleet_lock

ROOT = Path(__file__).resolve().parent.parent
WINDOWS_FACTS = ROOT / "tests" / "data" / "windows-venv-facts.json"


class FakeMsvcrt:
    """msvcrt.locking as the CRT documents it: locks ``nbytes`` from the current position of
    ``fd``; LK_NBLCK raises EACCES when another handle holds any of them; LK_UNLCK releases."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4

    def __init__(self) -> None:
        self.held: dict[tuple[int, int, int], int] = {}  # (dev, inode, offset) -> fd
        self.calls: list[tuple[int, int, int]] = []  # (mode, offset, nbytes)
        self.guard = threading.Lock()

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, offset)
        with self.guard:
            self.calls.append((mode, offset, nbytes))
            if mode == self.LK_UNLCK:
                if self.held.get(key) != fd:
                    raise OSError(errno.EACCES, "not locked by this handle")
                del self.held[key]
                return
            assert mode == self.LK_NBLCK, "qfix polls LK_NBLCK, never LK_LOCK (10 s give-up)"
            if key in self.held:
                raise OSError(errno.EACCES, "Permission denied")
            self.held[key] = fd

    def close(self, fd: int) -> None:
        """Closing a handle drops its locks (LockFileEx docs); called where the test closes."""
        with self.guard:
            for key in [k for k, v in self.held.items() if v == fd]:
                del self.held[key]


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMsvcrt]:
    """This process makes Windows' calls: OS_NAME "nt", msvcrt faked, os.close drops locks."""
    fake = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(platform_ops, "OS_NAME", "nt")
    real_close = os.close

    def close(fd: int) -> None:
        fake.close(fd)
        real_close(fd)

    monkeypatch.setattr(os, "close", close)
    yield fake


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


# --------------------------------------------------------------------------- Windows locks


def test_windows_lock_is_one_byte_past_the_holder_text(tmp_path: Path, windows: FakeMsvcrt):
    a, b = _open(tmp_path / "lock"), _open(tmp_path / "lock")
    try:
        assert platform_ops.lock(a, exclusive=True, blocking=False)
        platform_ops.write_head(a, "4242")
        assert windows.calls == [(windows.LK_NBLCK, 1 << 30, 1)]
        # the holder's text is outside the locked byte: another handle may read it
        assert all(off >= len("4242") for _, off, _ in windows.calls)
        assert platform_ops.read_head(b) == "4242"
        t0 = time.monotonic()
        assert not platform_ops.lock(b, exclusive=True, blocking=False)
        assert time.monotonic() - t0 >= platform_ops._WIN_RETRY  # the short retry ran
        # no shared locks in msvcrt: a shared request is an exclusive one, and fails too
        assert not platform_ops.lock(b, exclusive=False, blocking=False)
        platform_ops.unlock(a)
        assert platform_ops.lock(b, exclusive=False, blocking=False)
    finally:
        os.close(a)
        os.close(b)


def test_windows_blocking_lock_waits_for_the_release(tmp_path: Path, windows: FakeMsvcrt):
    a, b = _open(tmp_path / "lock"), _open(tmp_path / "lock")
    try:
        assert platform_ops.lock(a, exclusive=True, blocking=True)
        threading.Timer(0.4, platform_ops.unlock, args=(a,)).start()
        t0 = time.monotonic()
        assert platform_ops.lock(b, exclusive=True, blocking=True)
        assert time.monotonic() - t0 >= 0.3
    finally:
        os.close(a)
        os.close(b)


def test_windows_probe_of_the_lock_never_makes_an_apply_refuse(tmp_path: Path, windows):
    """journal._lock_holder takes the (exclusive, on Windows) lock for an instant; an apply
    trying at that very moment retries instead of reporting Locked."""
    state = StateDir(tmp_path / ".qfix")
    state.make()
    probe = _open(state.lock)
    assert platform_ops.lock(probe, exclusive=False, blocking=False)
    threading.Timer(0.05, os.close, args=(probe,)).start()
    with state.locked("apply a plan"):
        assert state.lock.read_text() == str(os.getpid())


def test_windows_journal_lock_refuses_a_second_apply_naming_the_first(tmp_path: Path, windows):
    state = StateDir(tmp_path / ".qfix")
    with state.locked("apply a plan"):
        with pytest.raises(Locked, match=rf"\(pid {os.getpid()}\)"), state.locked("roll back"):
            pass
        assert _lock_holder(state) == os.getpid()  # what every command reports meanwhile
    assert _lock_holder(state) is None
    with state.locked("roll back"):  # released on close
        pass


def test_windows_fleet_lock_waits_then_names_the_node(tmp_path: Path, windows: FakeMsvcrt):
    with fleet_lock(tmp_path, 1, "node-a"):
        t0 = time.monotonic()
        with pytest.raises(Locked, match="node-a"), fleet_lock(tmp_path, 0.5, "node-b"):
            pass
        assert time.monotonic() - t0 >= 0.5
    with fleet_lock(tmp_path, 0.5, "node-b"):
        assert (tmp_path / "fleet.lock").read_text().startswith("node-b (pid ")


def test_windows_fsync_dir_does_not_open_a_folder(tmp_path: Path, monkeypatch):
    opened: list[Any] = []
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a) or -1)
    platform_ops.fsync_dir(tmp_path, os_name="nt")
    assert opened == []


# --------------------------------------------------------------------------- Windows processes


class FakeProc:
    def __init__(self, running: bool) -> None:
        self.running, self.killed = running, 0

    def poll(self) -> int | None:
        return None if self.running else 1

    def kill(self) -> None:
        self.killed += 1


def test_windows_tree_kill_runs_taskkill_then_falls_back_to_terminate():
    ran: list[list[str]] = []

    def taskkill(status: int):
        def run(argv):
            ran.append(list(argv))
            return status

        return run

    proc = FakeProc(running=True)
    assert process.kill_tree(4321, proc, os_name="nt", taskkill=taskkill(0))  # type: ignore[arg-type]
    assert ran == [["taskkill", "/F", "/T", "/PID", "4321"]] and proc.killed == 0
    # 128: "process not found" (or no taskkill at all: -1): TerminateProcess the child itself
    assert process.kill_tree(4321, proc, os_name="nt", taskkill=taskkill(128))  # type: ignore[arg-type]
    assert proc.killed == 1
    # a child already reaped is not killed again (its pid may be another process's now)
    done = FakeProc(running=False)
    assert not process.kill_tree(4321, done, os_name="nt", taskkill=taskkill(128))  # type: ignore[arg-type]
    assert done.killed == 0


def test_windows_children_start_in_a_new_process_group_without_preexec():
    win = process.popen_options("nt")
    assert win == {"creationflags": 0x200}  # CREATE_NEW_PROCESS_GROUP
    posix = process.popen_options("posix")
    assert posix["start_new_session"] is True and "creationflags" not in posix


class FakeKernel32:
    """OpenProcess / GetExitCodeProcess / GetProcessTimes / CloseHandle for a table of pids."""

    def __init__(self, procs: dict[int, tuple[int, int]]) -> None:  # pid -> (exit code, created)
        self.procs, self.handles, self.closed = procs, {}, []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        assert access == 0x1000 and inherit is False  # PROCESS_QUERY_LIMITED_INFORMATION
        if pid not in self.procs:
            return 0
        handle = 100 + len(self.handles)
        self.handles[handle] = pid
        return handle

    def GetExitCodeProcess(self, handle: int, code: Any) -> int:
        code._obj.value = self.procs[self.handles[handle]][0]
        return 1

    def GetProcessTimes(self, handle: int, created: Any, *rest: Any) -> int:
        created._obj.value = self.procs[self.handles[handle]][1]
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.closed.append(handle)
        return 1


def test_windows_alive_and_start_time_through_kernel32():
    k32 = FakeKernel32({10: (259, 133_000_000_000_000_000), 11: (0, 5)})
    assert process.group_alive(10, os_name="nt", kernel32=k32)  # STILL_ACTIVE
    assert not process.group_alive(11, os_name="nt", kernel32=k32)  # exited, handle still open
    assert not process.group_alive(12, os_name="nt", kernel32=k32)  # no such process
    assert platform_ops.start_time(10, os_name="nt", kernel32=k32) == 133_000_000_000_000_000
    assert platform_ops.start_time(12, os_name="nt", kernel32=k32) is None
    assert sorted(k32.closed) == sorted(k32.handles)  # every handle opened was closed


def test_windows_stop_children_leaves_a_reused_pid_alone(tmp_path: Path, monkeypatch):
    """A recorded child whose pid now names another process (another creation time) is not
    killed; the one that is still ours is ended with taskkill /T."""
    k32 = FakeKernel32({20: (259, 111), 21: (259, 999)})
    monkeypatch.setattr(platform_ops, "OS_NAME", "nt")
    monkeypatch.setattr(platform_ops, "_kernel32", lambda: k32)
    ran: list[list[str]] = []
    monkeypatch.setattr(process, "_run_taskkill", lambda argv: ran.append(list(argv)) or 0)
    state = StateDir(tmp_path / ".qfix")
    state.make()
    kids = [{"pid": 20, "start": 111}, {"pid": 21, "start": 222}, {"pid": 22, "start": 333}]
    state.children.write_text(json.dumps(kids))
    k32.procs[20] = (0, 111)  # taskkill "worked": the alive check sees it gone
    said: list[str] = []
    assert stop_children(state, said.append, wait=1) == 1
    assert ran == [["taskkill", "/F", "/T", "/PID", "20"]]
    assert "[20]" in said[0] and not state.children.exists()


def test_prefix_of_windows_layouts_finds_the_pending_apply(tmp_path: Path):
    """A Windows venv keeps python.exe in Scripts, a Windows base install in its prefix: both
    lead to ``<prefix>/.qfix``, so an unfinished apply is reported for either (issue 16)."""
    venv, base = tmp_path / "venv", tmp_path / "Python311"
    assert prefix_of(str(venv / "Scripts" / "python.exe")) == venv
    assert prefix_of(str(venv / "bin" / "python")) == venv
    assert prefix_of(str(base / "python.exe")) == base
    state = StateDir(base / ".qfix")
    base.mkdir()
    state.make()
    state.write_journal({"schema": "qfix.journal/1", "state": "applying", "prefix": str(base)})
    pending = pending_apply(str(base / "python.exe"))
    assert pending is not None and pending.state == "applying", pending


# --------------------------------------------------------------------------- POSIX, for real


@pytest.mark.skipif(os.name != "posix", reason="POSIX process groups")
def test_posix_tree_kill_ends_the_group_and_group_alive_sees_it():
    child = subprocess.Popen(
        ["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        time.sleep(0.2)
        assert process.group_alive(child.pid)
        assert platform_ops.start_time(child.pid) is not None
        assert process.kill_tree(child.pid)
        child.wait(timeout=5)
        deadline = time.monotonic() + 5
        while process.group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not process.group_alive(child.pid)  # the backgrounded sleep went too
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert platform_ops.start_time(child.pid) is None


@pytest.mark.skipif(os.name != "posix", reason="POSIX flock")
def test_posix_lock_and_shared_probe(tmp_path: Path):
    a, b = _open(tmp_path / "lock"), _open(tmp_path / "lock")
    try:
        assert platform_ops.lock(a, exclusive=True, blocking=False)
        assert not platform_ops.lock(b, exclusive=False, blocking=False)
        platform_ops.unlock(a)
        assert platform_ops.lock(b, exclusive=False, blocking=False)
        assert platform_ops.lock(a, exclusive=False, blocking=False)  # shared: both hold it
    finally:
        os.close(a)
        os.close(b)


@pytest.mark.skipif(os.name != "posix", reason="POSIX flock")
def test_posix_fleet_lock_waits_then_names_the_node(tmp_path: Path):
    """The fleet lock through flock, for real (two open files: two flock holders)."""
    with fleet_lock(tmp_path, 1, "node-a"):
        t0 = time.monotonic()
        with pytest.raises(Locked, match=r"node-a \(pid"), fleet_lock(tmp_path, 0.4, "node-b"):
            pass
        assert time.monotonic() - t0 >= 0.4
    with fleet_lock(tmp_path, 0.4, "node-b"):
        assert (tmp_path / "fleet.lock").read_text() == f"node-b (pid {os.getpid()})\n"


# --------------------------------------------------------------------------- no POSIX modules

# Run in a child: every repair module imported, and `qfix plan --json --facts` run, with the
# POSIX-only modules unimportable (sys.modules[name] = None makes `import name` raise
# ImportError), as on Windows.
_NO_POSIX = r"""
import sys
for name in ("fcntl", "resource", "termios", "pty", "grp", "pwd"):
    sys.modules[name] = None
import importlib, pkgutil, repair
# repair.__main__ runs the CLI when imported: it is what the last line below does
names = sorted(m.name for m in pkgutil.walk_packages(repair.__path__, "repair."))
names.remove("repair.__main__")
for name in names:
    importlib.import_module(name)
print("imported", len(names), file=sys.stderr)
sys.argv = ["qfix", "plan", "--json", "--facts", sys.argv[1]]
from repair.cli import main
main()
"""


def test_every_module_imports_and_plan_runs_without_posix_modules():
    done = subprocess.run(
        [sys.executable, "-c", _NO_POSIX, str(WINDOWS_FACTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, (done.returncode, done.stderr)  # problems found, a plan made
    count = int(done.stderr.split("imported ", 1)[1].split()[0])
    assert count > 40, done.stderr
    plan = json.loads(done.stdout)
    assert plan["target"] == {
        "python": "C:\\Users\\me\\proj\\.venv\\Scripts\\python.exe",
        "platform": "windows-x86_64",
    }
    assert {f["id"] for f in plan["findings"]} == {"torch-cpu-build", "bnb-missing"}
    torch = next(s for s in plan["steps"] if s["package"] == "torch")
    assert torch["to"].endswith(("+cu124", "+cu126", "+cu128")), torch
    # every installer command runs the Windows venv's own interpreter
    for argv in plan["commands"]:
        assert "C:\\Users\\me\\proj\\.venv\\Scripts\\python.exe" in argv, argv


def test_ctypes_byref_is_what_the_fake_kernel32_reads():
    """The fake kernel32 above writes through ``byref(x)._obj``: pin that ctypes exposes it."""
    v = ctypes.c_ulong(0)
    ctypes.byref(v)._obj.value = 7  # type: ignore[attr-defined]
    assert v.value == 7


def test_example_name_with_a_windows_separator_is_refused(tmp_path: Path, monkeypatch):
    """``example:NAME`` reads plans/examples only: on Windows "..\\x" would leave it. Here a
    file whose name holds a backslash exists, so only the guard refuses it."""
    from repair import knowledge
    from repair.errors import FactsError
    from repair.pipeline import example_path

    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "ok.json").write_text("{}")
    (tmp_path / "examples" / "..\\ok.json").write_text("{}")
    monkeypatch.setattr(knowledge, "plans_directory", lambda: tmp_path)
    assert example_path("ok") == tmp_path / "examples" / "ok.json"
    with pytest.raises(FactsError, match="no shipped example"):
        example_path("..\\ok")
