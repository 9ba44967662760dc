"""The one door for what POSIX and Windows do differently, except starting and killing processes
(that is ``repair.process``): file locks, the pid written in a lock file, making a rename durable,
and what the OS says about a pid (is it alive, when did it start).

Every function takes ``os_name`` (``os.name``: ``"posix"`` or ``"nt"``; None: ``OS_NAME``,
this machine's), so the Windows branches are unit-tested on Linux with their OS modules faked
at the boundary (a fake ``msvcrt`` in ``sys.modules``, a fake ``kernel32``), and no module of
qfix imports ``fcntl`` or ``msvcrt`` at its top: ``import repair...`` works without either.

Locks: ``fcntl.flock`` on POSIX (flock(2): tied to the open file, dropped by the kernel when
the process dies, so a killed run never leaves a stale lock). On Windows ``msvcrt.locking``
(``LockFile``: also released when the handle closes or the process ends, per the Win32
``LockFileEx`` documentation) on one byte at ``_WIN_LOCK_OFFSET``. That byte lies far past the
data on purpose: Windows byte-range locks are mandatory, and the holder's pid is written at
offset 0 for the refusal message, which a second process must still be able to read.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import time
from pathlib import Path
from types import ModuleType
from typing import Any

WINDOWS = "nt"
# One byte at 1 GiB: past any text qfix writes in a lock file (a pid, a node name); Windows
# allows locking a range beyond the end of the file (LockFileEx: "Locking a region that goes
# beyond the current end-of-file position is not an error").
_WIN_LOCK_OFFSET = 1 << 30
# msvcrt has no shared lock. qfix takes a shared lock only to *test* whether somebody holds the
# exclusive one (journal._lock_holder) and drops it at once, so on Windows it is an exclusive
# lock held for microseconds; a non-blocking exclusive attempt retries for this long before it
# reports "held", so such a probe never makes a real apply refuse with Locked.
_WIN_RETRY = 0.25
_WIN_POLL = 0.01
# kernel32 (learn.microsoft.com, OpenProcess / GetExitCodeProcess / GetProcessTimes)
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259


# The one module-level switch: which OS's calls the functions below (and repair.process) make
# when no ``os_name`` is passed. Only tests set it (to "nt", with msvcrt faked) to run the
# journal's and the fleet's real locking code through the Windows branch on Linux.
OS_NAME: str = os.name


def _name(os_name: str | None) -> str:
    return OS_NAME if os_name is None else os_name


def _msvcrt() -> ModuleType:
    import msvcrt  # Windows only; tests put a fake in sys.modules

    return msvcrt


# --------------------------------------------------------------------------- locks


def lock(fd: int, *, exclusive: bool, blocking: bool, os_name: str | None = None) -> bool:
    """Lock the open file ``fd``. True when held; False when ``blocking`` is off and another
    process holds it (a lock that conflicts). OSError for anything else (no lock support)."""
    if _name(os_name) == WINDOWS:
        return _win_lock(fd, blocking)
    import fcntl  # POSIX only

    flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, flags | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def unlock(fd: int, *, os_name: str | None = None) -> None:
    """Release the lock on ``fd`` (closing ``fd`` releases it too, on both systems)."""
    if _name(os_name) == WINDOWS:
        msvcrt = _msvcrt()
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _win_lock(fd: int, blocking: bool) -> bool:
    """msvcrt.locking locks from the file position: seek to the lock byte first. LK_NBLCK
    raises OSError when the range is locked (msvcrt docs); LK_LOCK would give up after 10 s, so
    a blocking lock polls LK_NBLCK instead."""
    msvcrt = _msvcrt()
    deadline = time.monotonic() + _WIN_RETRY
    while True:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except PermissionError:  # EACCES: locked by another handle
            pass
        except OSError as exc:
            if exc.errno not in (13, 36):  # EACCES, EDEADLOCK (the CRT's "locked" errors)
                raise
        if not blocking and time.monotonic() >= deadline:
            return False
        time.sleep(_WIN_POLL)


def read_head(fd: int, size: int = 64) -> str:
    """The text at the start of ``fd`` (the holder a lock file names). os.pread is POSIX-only."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, size).decode(errors="replace").strip()


def write_head(fd: int, text: str) -> None:
    """Replace the content of ``fd`` with ``text`` (the lock holder's pid or node)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode())


# --------------------------------------------------------------------------- durability


def fsync_dir(path: Path, *, os_name: str | None = None) -> None:
    """Make a rename in ``path`` durable. POSIX: fsync the folder (fsync(2): a file's fsync
    does not cover its directory entry). Windows cannot open a folder as a file; NTFS journals
    its metadata, and ``os.replace`` there is MoveFileEx, so there is nothing to do."""
    if _name(os_name) == WINDOWS:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- processes


def start_time(pid: int, *, os_name: str | None = None, kernel32: Any = None) -> int | None:
    """When ``pid`` started, in the OS's own unit (Linux: clock ticks after boot, field 22 of
    /proc/PID/stat, proc(5); Windows: its creation FILETIME), or None when there is no such
    process or the OS does not say (macOS). Two equal values mean the same process, so a pid
    the OS handed to another program meanwhile is never killed as ours."""
    if _name(os_name) == WINDOWS:
        return _win_start_time(pid, kernel32 or _kernel32())
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and ")": split after its last ")"
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, *, kernel32: Any = None) -> bool:
    """Windows: does ``pid`` name a running process (OpenProcess + GetExitCodeProcess)?
    POSIX callers ask about the whole group instead (``repair.process.group_alive``)."""
    k32 = kernel32 or _kernel32()
    handle = k32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False  # no such process (or not ours to see: then not ours to kill either)
    try:
        code = ctypes.c_ulong(0)
        if not k32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        return code.value == _STILL_ACTIVE
    finally:
        k32.CloseHandle(handle)


def _win_start_time(pid: int, k32: Any) -> int | None:
    handle = k32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return None
    try:
        created, ended, kernel, user = (ctypes.c_ulonglong(0) for _ in range(4))
        ok = k32.GetProcessTimes(
            handle,
            ctypes.byref(created),
            ctypes.byref(ended),
            ctypes.byref(kernel),
            ctypes.byref(user),
        )
        return int(created.value) if ok else None
    finally:
        k32.CloseHandle(handle)


@functools.cache
def _kernel32() -> Any:
    """kernel32 with the prototypes declared: a HANDLE is pointer-sized, ctypes' default int
    would cut it on 64-bit Windows. FILETIME (two DWORDs, low first) is read as one uint64."""
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle, filetime = ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulonglong)
    k32.OpenProcess.restype = handle
    k32.OpenProcess.argtypes = (ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    k32.CloseHandle.argtypes = (handle,)
    k32.GetExitCodeProcess.argtypes = (handle, ctypes.POINTER(ctypes.c_ulong))
    k32.GetProcessTimes.argtypes = (handle, filetime, filetime, filetime, filetime)
    return k32


def is_windows(os_name: str | None = None) -> bool:
    return _name(os_name) == WINDOWS


# --------------------------------------------------------------------------- signals

# The signal that ends a process at once. Windows has no SIGKILL; there ``os.kill`` with any
# other signal is TerminateProcess (Python docs, os.kill), which is as final.
HARD_KILL: int = getattr(signal, "SIGKILL", signal.SIGTERM)


def signals(*names: str) -> tuple[signal.Signals, ...]:
    """The named signals this OS has (Windows has no SIGHUP: ``signal.SIGHUP`` would raise)."""
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))
