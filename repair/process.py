"""The one door through which qfix starts processes.

Every child is an argv list (never a shell), always has a time limit, and its failure is data
(``Completed``) or a ``ProcessFailure`` that says what was run and why it failed. Keeping this in
one module lets tests check that the pure core never starts a process.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class ProcessFailure(Exception):
    """The program could not be started at all (missing, not executable, not a program)."""

    def __init__(self, argv: Sequence[str], reason: str) -> None:
        super().__init__(f"could not run {argv[0]}: {reason}")
        self.argv = tuple(argv)
        self.reason = reason


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: str | None = None,
) -> Completed:
    """Run ``argv`` to completion or until ``timeout`` seconds; never raises for a bad exit.

    On a timeout the whole process group is killed (a hung ``import torch`` may have children).
    """
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ProcessFailure(argv, "no such file") from None
    except PermissionError:
        raise ProcessFailure(argv, "permission denied (not executable)") from None
    except OSError as exc:  # ENOEXEC: a file that is not a program
        raise ProcessFailure(argv, exc.strerror or str(exc)) from None
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
        return Completed(argv, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return Completed(argv, -9, out or "", err or "", timed_out=True)
    except BaseException:
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
