"""The one door through which qfix starts processes.

Every child is an argv list (never a shell), always has a time limit, and its failure is data
(``Completed``) or a ``ProcessFailure`` that says what was run and why it failed. Keeping this in
one module lets tests check that the pure core never starts a process.

A target interpreter may be hostile or broken (a wrapper that loops printing, 100 MB of stderr,
binary output, a hang that ignores SIGTERM), so every child is also bounded (issue 14):

* **Output**: stdout and stderr are read as streams by two threads, never with
  ``communicate()``. A call names ``limit``, the bytes per stream it may keep (``PROBE_LIMIT``
  1 MiB for a probe answer of a few KB, ``VERIFY_LIMIT`` 4 MiB for a verify report of tens of
  KB); a child that writes more is killed at once and its ``Completed`` says so
  (``exceeded``). ``limit=None`` (installers) keeps only a head and a tail in memory and, with
  ``log``, writes the whole stream to that file.
* **Lifetime**: each child runs in a session of its own (its group can be killed whole) and, on
  Linux, with ``PR_SET_PDEATHSIG`` = SIGKILL (prctl(2)): when qfix dies, even by SIGKILL, the
  kernel kills the child too. prctl(2) notes the signal is sent when the *thread* that forked
  the child ends; ``run`` waits for its child in the thread that started it, so that thread
  always outlives the child. ``recording()`` lets apply write down every child it starts, for
  what the death signal cannot reach (a grandchild in the child's group). On Windows a child
  gets a process group of its own and its tree is ended with ``taskkill /F /T`` instead
  (``kill_tree``, "process trees" below).
* **Messages**: ``one_line()`` makes any output printable and one line, for error messages.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import platform_ops

KiB = 1024
MiB = 1024 * KiB
PROBE_LIMIT = 1 * MiB  # a probe answer is a few KB (tests/golden: 3-9 KB)
VERIFY_LIMIT = 4 * MiB  # a verify report is tens of KB
KEEP = 64 * KiB  # head and tail kept in memory of an unlimited stream (installer messages)
_CHUNK = 64 * KiB
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    exceeded: str | None = None  # "stdout"/"stderr": it wrote more than the limit, was killed
    limit: int | None = None  # the per-stream limit it ran under (bytes)
    pid: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.exceeded is None

    def why(self) -> str:
        """Why the child failed, one printable line ("" when it did not)."""
        if self.exceeded is not None:
            return f"it wrote more than {_size(self.limit or 0)} on {self.exceeded} and was stopped"
        if self.timed_out:
            return "it did not finish in time and was stopped"
        if self.returncode < 0:
            try:
                return f"it was killed by signal {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"it was killed by signal {-self.returncode}"
        if self.returncode != 0:
            return f"it exited with status {self.returncode}"
        return ""


class ProcessFailure(Exception):
    """The program could not be started at all (missing, not executable, not a program)."""

    def __init__(self, argv: Sequence[str], reason: str) -> None:
        super().__init__(f"could not run {argv[0]}: {reason}")
        self.argv = tuple(argv)
        self.reason = reason


# --------------------------------------------------------------------------- recording children

_recorders: list[Callable[[int], None]] = []
_recorders_lock = threading.Lock()


@contextlib.contextmanager
def recording(record: Callable[[int], None]) -> Iterator[None]:
    """Call ``record(pid)`` for every child started (by any thread) while this is active."""
    with _recorders_lock:
        _recorders.append(record)
    try:
        yield
    finally:
        with _recorders_lock:
            _recorders.remove(record)


def _announce(pid: int) -> None:
    with _recorders_lock:
        recorders = list(_recorders)
    for record in recorders:
        record(pid)


# --------------------------------------------------------------------------- the door


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: str | None = None,
    limit: int | None = PROBE_LIMIT,
    log: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Completed:
    """Run ``argv`` to completion or until ``timeout`` seconds; never raises for a bad exit.

    ``limit``: bytes each of stdout and stderr may hold; more kills the child (``exceeded``).
    ``None``: no limit, memory keeps ``KEEP`` bytes of head and tail, ``log`` gets everything.
    On a timeout or an overflow the whole process group is killed (a hung ``import torch`` may
    have children). ``on_line``: called with each line of stdout or stderr as it arrives (from
    the reader threads; a line ends at ``\n`` or ``\r``, the way progress bars redraw), so a
    person sees a long install or check move.
    """
    argv = tuple(str(a) for a in argv)
    proc = _start(argv, env, cwd, input_text is not None)
    _announce(proc.pid)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(log, "ab")) if log else None  # noqa: SIM115
        out, err = _Stream(limit, sink, on_line), _Stream(limit, sink, on_line)
        readers = [
            threading.Thread(target=s.pump, args=(f, proc), daemon=True, name="qfix-read")
            for s, f in ((out, proc.stdout), (err, proc.stderr))
        ]
        if input_text is not None:
            readers.append(threading.Thread(target=_feed, args=(proc, input_text), daemon=True))
        try:
            for t in readers:
                t.start()
            timed_out = _wait(proc, readers, timeout, (out, err))
        except BaseException:
            kill_tree(proc.pid, proc)
            raise
        exceeded = "stdout" if out.over else "stderr" if err.over else None
    return Completed(
        argv,
        -9 if timed_out else proc.returncode,
        out.text(),
        err.text(),
        timed_out=timed_out,
        exceeded=exceeded,
        limit=limit,
        pid=proc.pid,
    )


def _start(
    argv: tuple[str, ...], env: Mapping[str, str] | None, cwd: str | None, stdin: bool
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            cwd=cwd,
            **popen_options(),
        )
    except FileNotFoundError:
        raise ProcessFailure(argv, "no such file") from None
    except PermissionError:
        raise ProcessFailure(argv, "permission denied (not executable)") from None
    except subprocess.SubprocessError as exc:  # the preexec set-up failed
        raise ProcessFailure(argv, str(exc)) from None
    except OSError as exc:  # ENOEXEC: a file that is not a program
        raise ProcessFailure(argv, exc.strerror or str(exc)) from None


def _wait(
    proc: subprocess.Popen[bytes],
    readers: list[threading.Thread],
    timeout: float,
    streams: tuple[_Stream, _Stream],
) -> bool:
    """Wait for the child and its pipes; kill the group on timeout or overflow. True: timed out."""
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        try:
            proc.wait(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            pass
        if any(s.over for s in streams):
            kill_tree(proc.pid, proc)
        elif time.monotonic() > deadline:
            timed_out = True
            kill_tree(proc.pid, proc)
    if any(s.over for s in streams):
        timed_out = False
    # What the child started and left behind in its group (a daemon, a "forked and left"
    # grandchild that may hold our pipes) does not outlive it. Safe after the child was reaped:
    # Linux hands out no pid while a process group of that id still exists. Windows has no
    # group that outlives its leader (taskkill /T finds a tree through living parents only), so
    # there is nothing to end once the child has gone.
    if not platform_ops.is_windows():
        kill_tree(proc.pid, proc)
    for t in readers:
        t.join(timeout=2)
    return timed_out


class _Stream:
    """One output stream: kept whole up to ``limit``, or head + tail when unlimited."""

    def __init__(
        self,
        limit: int | None,
        sink: BinaryIO | None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.limit = limit
        self.sink = sink
        self.on_line = on_line
        self.partial = b""  # the unfinished last line, for on_line (at most _CHUNK bytes)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.over = False

    def pump(self, pipe: BinaryIO | None, proc: subprocess.Popen[bytes]) -> None:
        if pipe is None:
            return
        with pipe:
            while chunk := pipe.read1(_CHUNK):  # type: ignore[attr-defined]
                self.total += len(chunk)
                if self.sink is not None:
                    self.sink.write(chunk)
                    self.sink.flush()  # the log is read while the installer runs (tail -f)
                if self.on_line is not None:
                    self._lines(chunk)
                if self.limit is not None:
                    if self.total > self.limit:
                        self.over = True
                        kill_tree(proc.pid, proc)
                        return
                    self.head += chunk
                elif len(self.head) < KEEP:
                    self.head += chunk[: KEEP - len(self.head)]
                else:
                    self.tail += chunk
                    if len(self.tail) > KEEP:
                        del self.tail[: len(self.tail) - KEEP]

    def _lines(self, chunk: bytes) -> None:
        assert self.on_line is not None
        parts = (self.partial + chunk).replace(b"\r", b"\n").split(b"\n")
        self.partial = parts.pop()[-_CHUNK:]
        for raw in parts:
            if raw.strip():
                with contextlib.suppress(Exception):  # a display error never stops the child
                    self.on_line(raw.decode("utf-8", errors="replace").rstrip())

    def text(self) -> str:
        data = bytes(self.head)
        cut = self.total - len(self.head) - len(self.tail)
        if self.tail or cut > 0:
            data += f"\n[... {cut} bytes not kept ...]\n".encode() + bytes(self.tail)
        return data.decode("utf-8", errors="replace")


def _feed(proc: subprocess.Popen[bytes], text: str) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError), proc.stdin:
        proc.stdin.write(text.encode())


# --------------------------------------------------------------------------- process trees
#
# The platform decision for children, in one place; ``os_name`` (``os.name``) is a parameter so
# the Windows branches are unit-tested here with the OS calls faked (tests/test_platform_ops.py).
#
# POSIX: each child leads a session and process group of its own (setsid(2) through
# ``start_new_session``), so one ``killpg(SIGKILL)`` ends it and whatever it started. Windows has
# no process groups that can be signalled: the child is started with CREATE_NEW_PROCESS_GROUP
# (so a Ctrl-C meant for qfix does not reach it first) and its tree is ended with
# ``taskkill /F /T /PID n`` (/T: "terminates the specified process and any child processes which
# were started by it", taskkill docs), falling back to TerminateProcess (``Popen.kill``).
# Windows gets no PR_SET_PDEATHSIG: a job object with KILL_ON_JOB_CLOSE would be its analogue.

_CREATE_NEW_PROCESS_GROUP = 0x00000200  # subprocess.CREATE_NEW_PROCESS_GROUP, Windows only
TASKKILL = ("taskkill", "/F", "/T", "/PID")
_TASKKILL_TIMEOUT = 30.0


def popen_options(os_name: str | None = None) -> dict[str, Any]:
    """The Popen arguments that put a child in a group of its own (see above)."""
    if platform_ops.is_windows(os_name):
        return {"creationflags": _CREATE_NEW_PROCESS_GROUP}
    # preexec: only prctl, no lock taken (PLW1509)
    return {"start_new_session": True, "preexec_fn": _die_with_parent()}


def kill_tree(
    pid: int,
    proc: subprocess.Popen[bytes] | None = None,
    *,
    os_name: str | None = None,
    taskkill: Callable[[Sequence[str]], int] | None = None,
) -> bool:
    """End ``pid`` and what it started, at once. True when a process was hit.

    ``proc``: the Popen of ``pid`` when this process started it; its ``kill()`` is the fallback
    and is a no-op once the child was reaped, where a bare ``os.kill`` could hit a reused pid.
    ``taskkill``: runs the taskkill argv, returns its exit status (tests pass a recorder).
    """
    if platform_ops.is_windows(os_name):
        status = (taskkill or _run_taskkill)([*TASKKILL, str(pid)])
        if status == 0:
            return True
        return _kill_one(pid, proc)
    try:
        os.killpg(pid, platform_ops.HARD_KILL)
        return True
    except (ProcessLookupError, PermissionError):
        return _kill_one(pid, proc)


def _kill_one(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    try:
        if proc is not None:
            if proc.poll() is not None:
                return False
            proc.kill()
        else:
            os.kill(pid, platform_ops.HARD_KILL)
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:  # Windows: TerminateProcess on a pid that is gone
        return False
    return True


def _run_taskkill(argv: Sequence[str]) -> int:
    """taskkill itself: a short, bounded child whose output nobody needs."""
    try:
        return subprocess.run(  # noqa: S603 - argv list, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_TASKKILL_TIMEOUT,
            check=False,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return -1


def group_alive(pgid: int, *, os_name: str | None = None, kernel32: Any = None) -> bool:
    """Is anything left of the group ``pgid`` a child led (POSIX: ``killpg(pgid, 0)``)? Windows
    has no such group: whether the process ``pgid`` itself still runs (OpenProcess)."""
    if platform_ops.is_windows(os_name):
        return platform_ops.pid_alive(pgid, kernel32=kernel32)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --------------------------------------------------------------------------- dying with qfix


@functools.cache
def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


# Resolved once, in the parent, on first use (find_library runs ldconfig: a few ms that `qfix fleet
# plan` need not pay at import): the function the forked child calls takes no lock and allocates
# nothing Python would need a lock for (preexec_fn runs between fork and exec).


def _die_with_parent() -> Callable[[], None] | None:
    prctl = _load_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # qfix died before the prctl: nobody would kill us
            os._exit(1)

    return preexec


# --------------------------------------------------------------------------- worker processes
#
# ``map_in_workers``: a pure function over chunks of work, each chunk in a forked child (fleet
# plan reads, keys and plans 10,000 records on all CPUs: repair.fleet.parallel). Fork, not spawn:
# the child has the parent's modules, knowledge base and closures already, so nothing but the
# result crosses the boundary (pickled, through a pipe). Each child dies with qfix
# (PR_SET_PDEATHSIG, as above), is killed at the deadline, and is always reaped before
# ``map_in_workers`` returns or raises; any failure is ``WorkerFailure``, never a partial result.

WORKER_LIMIT = 256 * MiB  # the most one worker's pickled result may be


class WorkerFailure(Exception):
    """A worker did not return its result (it raised, was killed, timed out, wrote too much):
    the caller does the work itself instead."""


def can_fork_workers() -> bool:
    """Whether ``map_in_workers`` can run here (POSIX fork)."""
    return hasattr(os, "fork") and not platform_ops.is_windows()


def map_in_workers(
    fn: Callable[[Any], Any],
    chunks: Sequence[Any],
    *,
    timeout: float,
    during: Callable[[], object] | None = None,
    limit: int = WORKER_LIMIT,
) -> list[Any]:
    """``[fn(chunk) for chunk in chunks]``, each call in a forked child, all at once; the results
    in the order of ``chunks``. ``during`` runs in this process while the children work.
    WorkerFailure when any child fails or all have not finished within ``timeout`` seconds."""
    if not can_fork_workers():
        raise WorkerFailure("no fork on this platform")
    import pickle
    import selectors

    deadline = time.monotonic() + timeout
    workers: dict[int, int] = {}  # read end of its pipe -> pid
    try:
        for chunk in chunks:
            fd, pid = _fork_worker(fn, chunk, tuple(workers))
            workers[fd] = pid
        if during is not None:
            during()
        data = _read_workers(list(workers), deadline, limit, selectors.DefaultSelector())
        for fd, pid in list(workers.items()):
            _, status = os.waitpid(pid, 0)
            del workers[fd]
            os.close(fd)
            if status != 0:
                raise WorkerFailure(f"worker {pid} ended with wait status {status}")
        try:
            return [pickle.loads(d) for d in data]  # noqa: S301 - our own children's output
        except Exception as exc:
            raise WorkerFailure(f"unreadable worker result: {exc}") from None
    finally:
        for fd, pid in workers.items():  # on any failure: no child outlives this call
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(fd)


def _fork_worker(fn: Callable[[Any], Any], chunk: Any, others: tuple[int, ...]) -> tuple[int, int]:
    """Start one worker: (the read end of its result pipe, its pid)."""
    import pickle

    parent = os.getpid()
    prctl = _load_prctl()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, and never runs the parent's exit handlers
        code = 1
        try:
            for fd in (r, *others):
                os.close(fd)
            if prctl is not None:
                prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() == parent:  # else qfix died before the prctl: nobody waits
                payload = pickle.dumps(fn(chunk), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as out:
                    out.write(payload)
                code = 0
        except BaseException:  # noqa: BLE001, S110 - the parent sees the exit status
            pass
        finally:
            os._exit(code)
    os.close(w)
    return r, pid


def _read_workers(fds: list[int], deadline: float, limit: int, sel: Any) -> list[bytes]:
    """Everything each pipe holds until its end, read side by side (a child blocks on a full
    pipe until it is read)."""
    import selectors

    got: dict[int, bytearray] = {fd: bytearray() for fd in fds}
    with sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        open_fds = len(fds)
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailure("workers did not finish in time")
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fd)
                    open_fds -= 1
                    continue
                got[key.fd] += chunk
                if len(got[key.fd]) > limit:
                    raise WorkerFailure(f"a worker wrote more than {_size(limit)}")
    return [bytes(got[fd]) for fd in fds]


# --------------------------------------------------------------------------- messages


def one_line(text: str, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters (for error messages):
    control characters, undecodable bytes and line breaks become spaces, runs of them one."""
    sample = text[:4096]
    bad = sum(1 for ch in sample if ch == "\ufffd" or not (ch.isprintable() or ch.isspace()))
    if sample and bad * 8 > len(sample):  # mostly undecodable: say what it is, not the bytes
        return "(binary output)"
    out = []
    space = False
    for ch in text:
        if ch.isprintable() and not ch.isspace() and ch != "\ufffd":
            out.append(ch)
            space = False
        elif not space:
            out.append(" ")
            space = True
        if len(out) > limit:
            break
    line = "".join(out).strip()
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def last_line(text: str, limit: int = 200) -> str:
    """The last non-blank line of ``text``, printable (see ``one_line``)."""
    for line in reversed(text[-64 * KiB :].splitlines()):
        if line.strip():
            return one_line(line, limit)
    return ""


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n} bytes"
