"""Errors that stop qfix itself, and the exit-code table scripts rely on.

Problems found in an environment are data (findings), never exceptions. An exception here means
qfix cannot go on; the CLI turns it into one line on stderr (plus a tip) and its exit code.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (README, "Exit codes")."""

    OK = 0  # healthy, or repaired and verified
    PROBLEMS = 1  # problems found, or verification failed
    BAD_INPUT = 2  # bad input or usage: missing interpreter, malformed facts/plan file, ...
    APPLY_FAILED = 3  # an install failed; the environment was rolled back to its previous state
    ROLLBACK_FAILED = 4  # a rollback could not restore the previous state (the journal is kept)
    LOCKED = 5  # another qfix apply holds the lock on this environment
    REFUSED = 6  # apply refused: system/externally managed interpreter, stale plan, unsafe plan
    CANNOT_TELL = 7  # plan: the facts hold too little to judge (no packages, torch or bitsandbytes)
    UNFINISHED = 11  # an earlier apply did not finish: `qfix rollback` it first
    NO_RESOURCE = 12  # no space, read-only file system, permission denied, immutable file
    OUTSIDE_CHANGES = 13  # another process changed the environment during the apply: not undone
    VERIFY_CPU_ONLY = 10  # verify passed on the CPU backend only; the GPU path was not exercised
    INTERNAL = 70  # a bug in qfix (EX_SOFTWARE, sysexits.h): one line and a bug-report hint


class QfixError(Exception):
    """Base of every error qfix reports to the user as one line."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        # One line, always: a newline in user data (a field name, a path) is shown escaped.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message)
        self.message = message
        self.tip = tip


class BadInput(QfixError):
    """The user gave qfix something it cannot use (a path, a file, an option)."""

    exit_code = ExitCode.BAD_INPUT


class FactsError(BadInput):
    """A qfix.facts/1 document is malformed."""


class KnowledgeError(BadInput):
    """A file of the knowledge base (plans/*.toml) is malformed; names the file and the entry."""


class InterpreterError(BadInput):
    """The target interpreter is missing, is not a Python, crashed or hung."""


class PlanFileError(BadInput):
    """A saved qfix.plan/1 file is malformed or unsafe."""


class ApplyRefused(QfixError):
    exit_code = ExitCode.REFUSED


class ApplyFailed(QfixError):
    exit_code = ExitCode.APPLY_FAILED


class RollbackFailed(QfixError):
    exit_code = ExitCode.ROLLBACK_FAILED


class OutsideChanges(RollbackFailed):
    """Another process installed or removed distributions during the apply; the rollback
    would erase that too, so it stops (``qfix rollback --force`` goes on)."""

    exit_code = ExitCode.OUTSIDE_CHANGES


class Locked(QfixError):
    exit_code = ExitCode.LOCKED


class Unfinished(QfixError):
    """An earlier apply on this environment did not finish; it must be rolled back first."""

    exit_code = ExitCode.UNFINISHED


class NoResource(QfixError):
    """The file system refused: no space, read-only, permission denied, an immutable file."""

    exit_code = ExitCode.NO_RESOURCE


# errno -> what the user reads; the errors a full, read-only or locked-down disk gives (errno(3))
_RESOURCE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (an immutable file? see lsattr)",
}


def is_resource_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS


def resource_error(exc: OSError, action: str, *, tip: str | None = None) -> NoResource:
    """``exc`` (an ENOSPC/EROFS/EACCES/EPERM OSError) as one line: ``could not <action>: <why>
    (<path>)``. The path is the file the kernel refused, when it says which."""
    why = _RESOURCE_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename else ""
    return NoResource(f"could not {action}: {why}{where}", tip=tip)
