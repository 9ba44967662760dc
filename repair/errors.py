"""Errors that stop qfix itself, and the exit-code table scripts rely on.

Problems found in an environment are data (findings), never exceptions. An exception here means
qfix cannot go on; the CLI turns it into one line on stderr (plus a tip) and its exit code.
"""

from __future__ import annotations

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
    VERIFY_CPU_ONLY = 10  # verify passed on the CPU backend only; the GPU path was not exercised


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


class Locked(QfixError):
    exit_code = ExitCode.LOCKED
