"""The state folder of a transaction, ``<venv>/.qfix``, and its journal.

* **Lock** ``<venv>/.qfix/lock`` (``flock``; ``LockFile`` on Windows, ``repair.platform_ops``):
  a second apply on the same venv refuses at once
  (``Locked``, exit 5). The kernel drops the lock when its process dies, so a killed run never
  leaves a stale lock behind.
* **Children** ``<venv>/.qfix/children.json``: every process an apply starts (installers, the
  verify child) with its pid and start time (``/proc/PID/stat`` field 22, so a reused pid is
  never mistaken for it). A child dies with qfix (``PR_SET_PDEATHSIG``, ``repair.process``), but
  what it started may not: ``qfix rollback`` and the next apply kill each recorded child's
  process group before they touch a file (``stop_children``).
* **Journal** ``<venv>/.qfix/journal.json``, replaced atomically and fsynced at every state change:
  ``snapshotting -> prepared -> applying -> verifying -> committed`` or ``-> rolling-back ->
  rolled-back`` (``JournalState``). ``rollback()`` reads it to finish whatever a killed run left.

Test hook (documented, inert unless set): ``QFIX_TEST_KILL_AT=<point>`` makes this process
SIGKILL itself at that point, so the tests can prove recovery at every stage. Points:
``snapshot`` (halfway through the snapshot), ``prepared``, ``step:<i>:before``,
``step:<i>:during`` (while installer ``i`` runs, ``QFIX_TEST_KILL_DELAY`` seconds after it
started, default 0.5), ``step:<i>:after`` (installer finished, journal not yet updated),
``verify`` (before the check starts), ``verify:during`` (while the verify child runs,
``QFIX_TEST_KILL_DELAY`` seconds after it started), ``commit`` (committed, backup not yet
removed), ``rollback`` (halfway through an automatic rollback).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import platform_ops, process, shellquote
from ..commands import redact_text
from ..errors import Locked, RollbackFailed, is_resource_error, resource_error

JOURNAL_SCHEMA = "qfix.journal/1"
STATE_DIR = ".qfix"
KILL_ENV = "QFIX_TEST_KILL_AT"
KILL_DELAY_ENV = "QFIX_TEST_KILL_DELAY"


class JournalState(str, enum.Enum):
    """The ``state`` of journal.json. str-valued: the file holds the plain strings, as before."""

    SNAPSHOTTING = "snapshotting"
    PREPARED = "prepared"
    APPLYING = "applying"
    VERIFYING = "verifying"
    COMMITTED = "committed"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"

    def __str__(self) -> str:
        return self.value


UNFINISHED = (
    JournalState.SNAPSHOTTING,
    JournalState.PREPARED,
    JournalState.APPLYING,
    JournalState.VERIFYING,
    JournalState.ROLLING_BACK,
)


def hook(point: str) -> None:
    """The SIGKILL test hook (module docstring). Does nothing unless QFIX_TEST_KILL_AT == point."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), platform_ops.HARD_KILL)


def fsync_dir(path: Path) -> None:
    platform_ops.fsync_dir(path)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` and make it durable (write, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    # 0600: the journal holds the installer commands, and an index URL may carry a token
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    with open(
        os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8"
    ) as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class StateDir:
    """``<venv>/.qfix``: lock, journal, snapshot, the installer's lock and pid."""

    path: Path

    @property
    def lock(self) -> Path:
        return self.path / "lock"

    @property
    def journal(self) -> Path:
        return self.path / "journal.json"

    @property
    def backup(self) -> Path:
        return self.path / "backup"

    @property
    def manifest(self) -> Path:
        return self.path / "backup" / "manifest.json"

    @property
    def installer_lock(self) -> Path:
        return self.path / "installer.lock"

    @property
    def installer_pid(self) -> Path:
        return self.path / "installer.pid"

    @property
    def constraints(self) -> Path:
        return self.path / "constraints.txt"

    @property
    def children(self) -> Path:
        return self.path / "children.json"

    @property
    def installer_log(self) -> Path:
        """Everything the installers wrote (the last apply's), for a failure's full story."""
        return self.path / "installer.log"

    def make(self) -> None:
        """Create the folder owner-only (0700): its logs and journal name the user's index URLs."""
        self.path.mkdir(mode=0o700, exist_ok=True)
        if stat.S_IMODE(self.path.stat().st_mode) != 0o700:
            os.chmod(self.path, 0o700)  # made by an older qfix with the umask's mode

    def read_journal(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.journal.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RollbackFailed(f"the qfix journal {self.journal} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != JOURNAL_SCHEMA:
            raise RollbackFailed(f"{self.journal} is not a {JOURNAL_SCHEMA} journal")
        return data

    def write_journal(self, journal: dict[str, Any]) -> None:
        journal["updated"] = now()
        if isinstance(journal.get("error"), str):  # an installer's message may quote an index URL
            journal["error"] = redact_text(journal["error"])
        write_json(self.journal, journal)

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold the transaction lock, or raise Locked at once. A state folder that cannot be
        made (read-only, immutable, full) is NoResource (exit 12): nothing was changed."""
        try:
            self.make()
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if not is_resource_error(exc):
                raise
            raise resource_error(
                exc, f"{what} in {self.path.parent}", tip="nothing was changed"
            ) from None
        try:
            if not platform_ops.lock(fd, exclusive=True, blocking=False):
                holder = platform_ops.read_head(fd) or "?"
                raise Locked(
                    f"another qfix apply or rollback (pid {holder}) is changing "
                    f"{self.path.parent}; refusing to {what} at the same time",
                    tip="wait for it to finish; a killed one releases the lock by itself",
                )
            platform_ops.write_head(fd, str(os.getpid()))
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock (flock and LockFile alike)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def discard_backup(state: StateDir) -> None:
    """Drop what a finished transaction no longer needs (backup, constraints, pids)."""
    for path in (state.backup, state.constraints, state.installer_pid, state.children):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


# --------------------------------------------------------------------------- children


def start_time(pid: int) -> int | None:
    """When ``pid`` started (``platform_ops.start_time``: /proc/PID/stat field 22 on Linux, the
    creation time on Windows), or None when there is no such process or the OS does not say."""
    return platform_ops.start_time(pid)


def record_child(state: StateDir, pid: int) -> None:
    """Add ``pid`` to children.json, durably, before anything else waits on it."""
    try:
        kids = json.loads(state.children.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kids = []
    if not isinstance(kids, list):
        kids = []
    kids.append({"pid": pid, "start": start_time(pid), "recorded": now()})
    write_json(state.children, kids)


def stop_children(state: StateDir, progress: Callable[[str], None], wait: float = 5.0) -> int:
    """Kill the process group of every recorded child still alive; wait until they are gone.
    Returns how many were stopped. A pid now held by another process (its start time differs)
    is left alone; a recorded pid with no process left may still lead a group of orphans (the
    kernel does not hand out a pid while a group of that id lives), so the group is killed."""
    try:
        kids = json.loads(state.children.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    stopped: list[int] = []
    for kid in kids if isinstance(kids, list) else ():
        pid, start = kid.get("pid"), kid.get("start")
        if not isinstance(pid, int) or pid <= 1:
            continue
        now_start = start_time(pid)
        if now_start is not None and start is not None and now_start != start:
            continue  # the pid was reused: not ours
        if now_start is None and start is not None and platform_ops.is_windows():
            continue  # gone: Windows keeps no group of orphans under that pid to end
        if process.kill_tree(pid):
            stopped.append(pid)
    if stopped:
        progress(f"stopped {len(stopped)} process(es) left running by a killed qfix: {stopped}")
    deadline = time.monotonic() + wait
    while any(_group_alive(pid) for pid in stopped) and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        state.children.unlink()
    return len(stopped)


def _group_alive(pgid: int) -> bool:
    return process.group_alive(pgid)


# --------------------------------------------------------------------------- unfinished applies


@dataclass(frozen=True, slots=True)
class Pending:
    """An apply on the target that did not finish (killed, power cut, a rollback that failed),
    or one running now: what every command reports first (issue 16)."""

    prefix: str
    state: str  # a JournalState value, or "unreadable"
    started: str | None
    updated: str | None
    step: str | None  # the step running or last done
    python: str
    running_pid: int | None  # an apply or rollback holds the lock now

    @property
    def command(self) -> str:
        return f"qfix rollback --python {shellquote.quote(self.python)}"

    def describe(self) -> str:
        if self.running_pid is not None:
            return (
                f"a qfix apply or rollback (pid {self.running_pid}) is changing {self.prefix} "
                f"now (state {self.state!r}); what this command reads may change under it"
            )
        doing = f" while {self.state}" + (f" ({self.step})" if self.step else "")
        return (
            f"an earlier qfix apply on {self.prefix} did not finish: it stopped{doing}, started "
            f"{self.started or '?'}, last recorded {self.updated or '?'}; the environment may be "
            f"half changed and must be rolled back first: run `{self.command}`"
        )


def prefix_of(python: str) -> Path:
    """The environment folder of ``python`` from its path alone (``<prefix>/bin/python``, a
    Windows venv's ``<prefix>\\Scripts\\python.exe``, a Windows base install's
    ``<prefix>\\python.exe``, or the folder itself): nothing is run, a half-installed target
    may hang or crash."""
    p = Path(python).absolute()
    if p.is_dir():
        return p
    return p.parent.parent if p.parent.name.lower() in ("bin", "scripts") else p.parent


def pending_apply(python: str) -> Pending | None:
    """The unfinished or running apply on ``python``'s environment, or None. Reads only
    ``<prefix>/.qfix`` (no process, no interpreter run); an unreadable journal counts as
    unfinished, as ``qfix rollback`` would stop on it too."""
    state = StateDir(prefix_of(python) / STATE_DIR)
    if not state.journal.is_file():
        return None
    holder = _lock_holder(state)
    try:
        journal = state.read_journal()
    except RollbackFailed:
        return Pending(str(state.path.parent), "unreadable", None, None, None, python, holder)
    if journal is None or (journal.get("state") not in UNFINISHED and holder is None):
        return None
    raw_steps = journal.get("steps")
    steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
    step = None
    for s in steps:
        if isinstance(s, dict) and s.get("status") in ("running", "done", "failed"):
            step = f"{s.get('status')}: {s.get('label')}"
    return Pending(
        str(journal.get("prefix") or state.path.parent),
        str(journal.get("state")),
        journal.get("started") if isinstance(journal.get("started"), str) else None,
        journal.get("updated") if isinstance(journal.get("updated"), str) else None,
        step,
        python,
        holder,
    )


def _lock_holder(state: StateDir) -> int | None:
    """The pid in the lock file when someone holds the lock now, else None."""
    try:
        fd = os.open(state.lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            free = platform_ops.lock(fd, exclusive=False, blocking=False)
        except OSError:
            return None
        if free:
            return None
        text = platform_ops.read_head(fd)
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
