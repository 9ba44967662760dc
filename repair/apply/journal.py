"""The state folder of a transaction, ``<venv>/.qfix``, and its journal.

* **Lock** ``<venv>/.qfix/lock`` (``flock``): a second apply on the same venv refuses at once
  (``Locked``, exit 5). The kernel drops the lock when its process dies, so a killed run never
  leaves a stale lock behind.
* **Journal** ``<venv>/.qfix/journal.json``, replaced atomically and fsynced at every state change:
  ``snapshotting -> prepared -> applying -> verifying -> committed`` or ``-> rolling-back ->
  rolled-back`` (``JournalState``). ``rollback()`` reads it to finish whatever a killed run left.

Test hook (documented, inert unless set): ``QFIX_TEST_KILL_AT=<point>`` makes this process
SIGKILL itself at that point, so the tests can prove recovery at every stage. Points:
``snapshot`` (halfway through the snapshot), ``prepared``, ``step:<i>:before``,
``step:<i>:during`` (while installer ``i`` runs, ``QFIX_TEST_KILL_DELAY`` seconds after it
started, default 0.5), ``step:<i>:after`` (installer finished, journal not yet updated),
``verify``, ``commit`` (committed, backup not yet
removed), ``rollback`` (halfway through an automatic rollback).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import json
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Locked, RollbackFailed

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
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` and make it durable (write, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
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
        write_json(self.journal, journal)

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold the transaction lock, or raise Locked at once."""
        self.path.mkdir(exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise Locked(
                    f"another qfix apply or rollback (pid {holder}) is changing "
                    f"{self.path.parent}; refusing to {what} at the same time",
                    tip="wait for it to finish; a killed one releases the lock by itself",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def discard_backup(state: StateDir) -> None:
    """Drop what a finished transaction no longer needs (backup, constraints, pids)."""
    for path in (state.backup, state.constraints, state.installer_pid):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
