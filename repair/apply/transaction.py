"""Applying a plan to a virtual environment as a transaction, and rolling it back.

The guarantee: after ``apply_plan`` the environment is either the planned one (installed and, when
asked, verified) or exactly the one it was before, file for file, so ``pip freeze`` is unchanged.
That holds when an install fails, when verification fails, on Ctrl-C and SIGTERM (rolled back at
once), and after SIGKILL or a power cut (``rollback()``, i.e. ``qfix rollback``, finishes it).

The parts: the lock and the journal (``journal.py``), the hard-link snapshot and its restore
(``snapshot.py``), and here the state machine that walks the journal through
``snapshotting -> prepared -> applying -> verifying -> committed`` or ``-> rolling-back ->
rolled-back``.

* **Installer lock** ``<venv>/.qfix/installer.lock``: each installer runs under a tiny wrapper that
  takes this lock and ``exec``s pip/uv with the lock inherited, writing its pid to
  ``installer.pid``. An installer dies with qfix (``PR_SET_PDEATHSIG``, ``repair.process``);
  should one still hold the lock, ``rollback()`` kills its process group and waits for the lock
  before touching any file. Every child's pid is also in ``children.json`` (``journal.py``):
  rollback and the next apply stop what a killed run left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import platform_ops, process, shellquote
from ..commands import Command, redact_text
from ..errors import (
    ApplyRefused,
    ExitCode,
    OutsideChanges,
    QfixError,
    RollbackFailed,
    Unfinished,
    is_resource_error,
)
from ..indexconfig import InstallerChoice
from ..plan import Plan, Step
from ..planfile import plan_from_doc
from ..settings import DEFAULT_PROBE_TIMEOUT
from . import installers, space
from .journal import (
    JOURNAL_SCHEMA,
    KILL_DELAY_ENV,
    KILL_ENV,
    STATE_DIR,
    UNFINISHED,
    JournalState,
    StateDir,
    discard_backup,
    hook,
    now,
    record_child,
    stop_children,
)
from .snapshot import Restorer, Snapshot, installed_versions, snapshot_roots
from .venv import TargetKind, TargetPaths, inspect_target, require_changeable, require_writable

__all__ = [
    "KILL_ENV",
    "STATE_DIR",
    "UNFINISHED",
    "Outcome",
    "StateDir",
    "Terminated",
    "apply_plan",
    "find_state",
    "installed_versions",
    "rollback",
]

STEP_TIMEOUT = 3600.0  # a cold CUDA torch download is 2-3 GB

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an apply or a rollback did. ``exit_code`` is the documented exit code for it."""

    ok: bool
    rolled_back: bool
    steps_done: tuple[str, ...]
    error: str | None
    exit_code: ExitCode
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase
    verified: bool | None = None  # None: verification was not run
    python: str | None = None
    installer: str | None = None
    commands: tuple[tuple[str, ...], ...] = ()
    before: Mapping[str, str] = field(default_factory=dict)  # name -> version before
    after: Mapping[str, str] = field(default_factory=dict)  # name -> version at the end
    # name -> version now (None: removed) that another process changed during the apply
    outside_changes: Mapping[str, str | None] = field(default_factory=dict)
    # what the dry runs before the change found to download (repair.dryrun.Download), and why
    # sizes are missing when a whole installer cannot give them (uv)
    downloads: tuple[Any, ...] = ()
    download_note: str | None = None

    @classmethod
    def refused(cls, exc: QfixError, *, python: str | None = None) -> Outcome:
        """An Outcome for an apply that stopped before any change (Locked, ApplyRefused...)."""
        return cls(
            ok=False,
            rolled_back=False,
            steps_done=(),
            error=exc.message,
            exit_code=exc.exit_code,
            python=python,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rolled_back": self.rolled_back,
            "steps_done": list(self.steps_done),
            "error": None if self.error is None else redact_text(self.error),
            "exit_code": int(self.exit_code),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "verified": self.verified,
            "python": self.python,
            "installer": self.installer,
            "commands": [[redact_text(a) for a in c] for c in self.commands],
            "before": dict(self.before),
            "after": dict(self.after),
            "outside_changes": dict(self.outside_changes),
        }


# --------------------------------------------------------------------------- test hook


def _kill_while_running(started: Callable[[], bool]) -> threading.Thread:
    """For ``step:<i>:during`` and ``verify:during``: SIGKILL this process once the child has
    been running a while (``started()`` says it runs)."""
    delay = float(os.environ.get(KILL_DELAY_ENV, "0.5"))

    def watch() -> None:
        while not started():
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(os.getpid(), platform_ops.HARD_KILL)

    t = threading.Thread(target=watch, daemon=True, name="qfix-test-kill")
    t.start()
    return t


# --------------------------------------------------------------------------- signals


class Terminated(BaseException):
    """SIGTERM during a transaction (a BaseException, like KeyboardInterrupt, so it unwinds
    through everything and process.run kills the running installer on its way out)."""


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """In the transaction SIGTERM/SIGHUP raise Terminated (SIGINT: KeyboardInterrupt already)."""

    def on_term(signum: int, frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    olds: dict[signal.Signals, Any] = {}
    try:
        # SIGHUP: the terminal went away (POSIX only; Windows has neither SIGHUP nor its case)
        for sig in platform_ops.signals("SIGTERM", "SIGHUP"):
            olds[sig] = signal.signal(sig, on_term)
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        pass
    try:
        yield
    finally:
        for signum, old in olds.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """While rolling back, SIGINT/SIGTERM are noted, not obeyed: a half-done rollback is worse
    than a rollback that takes its few seconds."""
    got: list[int] = []
    olds: dict[signal.Signals, Any] = {}
    try:
        for sig in platform_ops.signals("SIGINT", "SIGTERM", "SIGHUP"):
            olds[sig] = signal.signal(sig, lambda s, f: got.append(s))
    except ValueError:
        pass  # not the main thread
    try:
        yield got
    finally:
        for signum, old in olds.items():
            signal.signal(signum, old)


# --------------------------------------------------------------------------- installer runs

# Runs the installer under the installer lock (see module docstring). Stdlib, any Python 3, on
# qfix's own interpreter (-I: nothing of the target's or the user's on its path), so it cannot
# import repair.platform_ops and carries the same two branches itself. POSIX: flock, then exec
# with the lock inherited (the installer holds it until it ends). Windows: exec there starts a
# new process and ends this one (the CRT's _execv), which would drop the lock, so the wrapper
# keeps it and waits for the installer; the taskkill /T that ends the wrapper ends both. The
# Windows lock is the byte at 1 GiB, as in repair.platform_ops.
_HOLD_LOCK_AND_EXEC = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
if os.name == "nt":
    import msvcrt, subprocess
    while True:
        os.lseek(fd, 1 << 30, 0)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            break
        except OSError:
            time.sleep(0.05)
else:
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.set_inheritable(fd, True)
with open(os.open(sys.argv[2] + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
if os.name == "nt":
    sys.exit(subprocess.call(sys.argv[3:]))
os.execvp(sys.argv[3], sys.argv[3:])
"""


def _run_installer(
    state: StateDir,
    argv: list[str],
    timeout: float,
    output: Callable[[str], None] | None = None,
    env: Sequence[tuple[str, str | None]] = (),
) -> process.Completed:
    with contextlib.suppress(FileNotFoundError):
        state.installer_pid.unlink()
    wrapped = [
        sys.executable,
        "-I",
        "-c",
        _HOLD_LOCK_AND_EXEC,
        str(state.installer_lock),
        str(state.installer_pid),
        *argv,
    ]
    # Installers may write without bound (pip's progress, a build's log): all of it goes to
    # .qfix/installer.log, memory keeps a head and a tail for the error message. Owner-only, as
    # pip echoes index URLs (credentials included) into it.
    child_env = None
    if env:  # the torch step's index isolation (repair.commands.Command.env)
        child_env = {k: v for k, v in os.environ.items() if k not in dict(env)}
        child_env.update({k: v for k, v in env if v is not None})
    # ``output`` sees each line as it comes (the CLI's live status line, or every line with -v).
    os.close(os.open(state.installer_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return process.run(
        wrapped,
        timeout=timeout,
        limit=None,
        log=str(state.installer_log),
        on_line=output,
        env=child_env,
    )


def _count_children(state: StateDir) -> int:
    try:
        return len(json.loads(state.children.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return 0


def _stop_orphaned_installer(state: StateDir, progress: Progress, wait: float = 60) -> None:
    """If an installer left by a killed apply still runs, kill its process group and wait."""
    state.path.mkdir(exist_ok=True)
    fd = os.open(state.installer_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            if platform_ops.lock(fd, exclusive=True, blocking=False):
                return
            try:
                pid = int(state.installer_pid.read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if pid > 0:
                if not told:
                    progress(f"stopping the installer left running by a killed apply (pid {pid})")
                    told = True
                process.kill_tree(pid)
            if time.monotonic() > deadline:
                raise RollbackFailed(
                    f"an installer (pid {pid or '?'}) still holds {state.installer_lock}; "
                    "cannot roll back while it runs",
                    tip="stop it, then run qfix rollback",
                )
            time.sleep(0.05)
    finally:
        os.close(fd)


# "OSError: [Errno 28] No space left on device": the last line of a Python traceback
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b:?")


def _tail(done: process.Completed, lines: int = 3) -> str:
    """The installer's own error lines (pip: ``ERROR: ...``, uv: ``error: ...``), else its last
    lines: what the user needs in the one-line failure message."""
    text = [
        process.one_line(t, 300)
        for t in (done.stderr + "\n" + done.stdout).splitlines()
        if process.one_line(t, 300)
    ]
    first = next((i for i, t in enumerate(text) if t.startswith(("ERROR", "error:"))), None)
    useful = text[first : first + lines] if first is not None else text[-lines:]
    if first is None and any(t.startswith("Traceback (most recent call last)") for t in text):
        # the installer itself crashed (a full disk while pip starts): its exception line, not
        # the frames of its traceback, which the one-line message must never show
        raised = [t for t in text if _EXCEPTION_LINE.match(t)]
        useful = raised[-1:] or useful[-1:]
    if done.exceeded or done.returncode < 0:
        useful = [done.why(), *useful]
    return " | ".join(useful) if useful else f"exit status {done.returncode}"


# --------------------------------------------------------------------------- apply


class _StepFailed(Exception):
    pass


class _VerifyFailed(Exception):
    pass


@dataclass(slots=True)
class _Run:
    """One apply in progress: what the state machine advances (mutable on purpose)."""

    state: StateDir
    journal: dict[str, Any]
    python: str
    prefix: str
    installer: str
    commands: list[Command]
    before: dict[str, str]
    site: list[str]
    progress: Progress
    t_start: float
    output: Callable[[str], None] | None = None  # each installer line, as it comes
    timings: dict[str, float] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    verified: bool | None = None

    def enter(self, state: JournalState) -> None:
        """Move the journal to ``state``, durably. When the write fails (a full disk) the
        journal in memory keeps its state too, so the rollback that follows knows what it
        must undo (a "committed" that never reached the disk would undo nothing)."""
        previous = self.journal["state"]
        self.journal["state"] = state
        try:
            self.state.write_journal(self.journal)
        except BaseException:
            self.journal["state"] = previous
            raise

    def outcome(
        self,
        *,
        ok: bool,
        rolled_back: bool,
        error: str | None,
        code: ExitCode,
        after: dict[str, str] | None = None,
    ) -> Outcome:
        """The Outcome now; ``after`` defaults to the versions installed now."""
        self.timings["total"] = time.monotonic() - self.t_start
        return Outcome(
            ok=ok,
            rolled_back=rolled_back,
            steps_done=tuple(self.done),
            error=error,
            exit_code=code,
            timings=self.timings,
            verified=self.verified,
            python=self.python,
            installer=self.installer,
            commands=tuple(c.argv for c in self.commands),
            before=self.before,
            after=installed_versions(self.site) if after is None else after,
        )


# before_change(installer, installed) -> package -> download bytes (None: the plan's estimate)
BeforeChange = Callable[[str, Mapping[str, str]], Mapping[str, int | None] | None]


def apply_plan(
    plan: Plan | dict[str, Any],
    *,
    python: str,
    installer: str = "auto",
    torch_index: str | None = None,
    verify: Callable[[], bool] | None = None,
    progress: Progress = print,
    allow_conda: bool = False,
    step_timeout: float = STEP_TIMEOUT,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    output: Callable[[str], None] | None = None,
    setup: InstallerChoice | None = None,
    allow_system: bool = False,
    break_system_packages: bool = False,
    before_change: BeforeChange | None = None,
) -> Outcome:
    """Apply ``plan`` (``qfix.plan/1``) to the venv of ``python`` as one transaction.

    Raises before any change: PlanFileError/BadInput (unsafe plan), ApplyRefused (not a venv,
    externally managed, conda without ``allow_conda``, an unfinished earlier apply), Locked
    (another apply holds the venv). Otherwise returns an Outcome: ok and committed, or rolled
    back (exit 3) after a failed install, a failed ``verify()``, Ctrl-C or SIGTERM; or exit 4 when
    even the rollback failed (the journal stays for ``qfix rollback``).
    ``plan``: the typed Plan (a ``qfix.plan/1`` dict is validated and parsed first).
    ``installer``: uv or pip as the pipeline resolved it (auto: resolved here). ``torch_index``:
    the index base the pipeline resolved (Settings), which replaces the base of the torch steps'
    index; None: the plan's own index URLs. ``output``: called with each line the installers
    print, as it comes (the whole output is in ``.qfix/installer.log`` beside the journal).
    ``before_change(installer, installed)``: called under the lock once the target kind and
    writable roots passed and before the free-space check and the snapshot, with the installer
    chosen and the versions installed; it refuses by raising (the pipeline resolves every pin
    against the user's indexes there: ApplyRefused, nothing changed) and may return package ->
    bytes, the real download sizes the space check uses (None: the plan's estimate).
    """
    t_start = time.monotonic()
    if not isinstance(plan, Plan):
        plan = plan_from_doc(plan)
    target = inspect_target(python, timeout=probe_timeout)
    kind = require_changeable(
        target.info,
        allow_conda=allow_conda,
        allow_system=allow_system,
        break_system_packages=break_system_packages,
    )
    if kind is not TargetKind.VENV:  # --system, --allow-conda: files this user may not write?
        require_writable(target)
        progress(f"warning: changing {python}, which is not a virtual environment ({kind.value})")
    which = installer if installer in ("pip", "uv") else installers.choose_installer(installer)
    state = StateDir(Path(target.prefix) / STATE_DIR)
    site = [target.purelib, target.platlib]

    with state.locked("apply a plan"):
        stop_children(state, progress)  # what a killed earlier run left running
        _refuse_unfinished(state, target.prefix, python)
        before = installed_versions(site)
        _require_pip(which, before, python)
        commands = _build_commands(
            plan.steps, python, which, torch_index, state, setup, break_system_packages
        )
        journal = _new_journal(plan, python, target, kind, which, before, commands)
        if commands:
            _check_before_change(plan, target, journal, which, before_change)
        run = _Run(
            state=state,
            journal=journal,
            python=python,
            prefix=target.prefix,
            installer=which,
            commands=commands,
            before=before,
            site=site,
            progress=progress,
            t_start=t_start,
            output=output,
        )
        if not commands:
            return _nothing_to_apply(run, verify)
        pins = [*installers.constraint_lines(plan.steps, before), *plan.pin_constraints]
        return _transact(run, pins, verify, step_timeout)


def _check_before_change(
    plan: Plan,
    target: TargetPaths,
    journal: dict[str, Any],
    which: str,
    before_change: BeforeChange | None,
) -> None:
    """Before the first change: every root the snapshot covers must take a new file, and the
    disk must hold the downloads (issue 16: refused, not rolled back, exit 12). The only
    writability check of an apply (the pipeline's resolution runs after it, as
    ``before_change``), so a read-only tree is refused for that reason, once."""
    what = f"apply the plan to {target.prefix}"
    site = [target.purelib, target.platlib]
    space.check_writable([*journal["roots"], *dict.fromkeys(site)], what)
    download = None if before_change is None else before_change(which, journal["before"])
    space.check_space(target.prefix, plan.download if download is None else download, what)


def _require_pip(which: str, before: Mapping[str, str], python: str) -> None:
    """pip installs only into an environment that has pip (uv needs none)."""
    if which == "pip" and "pip" not in {installers.normalize(n) for n in before}:
        raise ApplyRefused(
            f"{python} has no pip, and uv was not chosen or found",
            tip="install uv, or run `<python> -m ensurepip` in the venv",
        )


def _refuse_unfinished(state: StateDir, prefix: str, python: str) -> None:
    journal = state.read_journal()
    if journal is not None and journal.get("state") in UNFINISHED:
        raise Unfinished(
            f"an earlier qfix apply on {prefix} did not finish (state "
            f"{journal.get('state')!r}): the environment may be half changed",
            tip=f"run `qfix rollback --python {python}` first",
        )


def _build_commands(
    steps: tuple[Step, ...],
    python: str,
    which: str,
    torch_index: str | None,
    state: StateDir,
    setup: InstallerChoice | None = None,
    break_system_packages: bool = False,
) -> list[Command]:
    return installers.build_commands(
        steps,
        python=python,
        installer=which,
        torch_index_base=torch_index,
        constraint_file=str(state.constraints),
        uv=installers.find_uv() or "uv",
        setup=setup,
        break_system_packages=break_system_packages,
    )


def _new_journal(
    plan: Plan,
    python: str,
    target: TargetPaths,
    kind: TargetKind,
    which: str,
    before: dict[str, str],
    commands: list[Command],
) -> dict[str, Any]:
    return {
        "schema": JOURNAL_SCHEMA,
        "id": uuid.uuid4().hex,
        "state": JournalState.SNAPSHOTTING,
        "python": python,
        "prefix": target.prefix,
        "kind": kind.value,
        "pid": os.getpid(),
        "started": now(),
        "installer": which,
        "plan_fingerprint": plan.fingerprint,
        "before": before,
        "roots": snapshot_roots(target, kind),
        "site": [target.purelib, target.platlib],
        # the distributions as qfix last left them (after each finished step): what differs
        # from this later was changed by another process (issue 16)
        "observed": before,
        # redacted: the journal outlives the run, and an index URL may carry a token
        "steps": [
            {
                "label": redact_text(c.label),
                "argv": [redact_text(a) for a in c.argv],
                "status": "pending",
            }
            for c in commands
        ],
        "error": None,
    }


def _nothing_to_apply(run: _Run, verify: Callable[[], bool] | None) -> Outcome:
    """No command to run: no transaction, only the check (when asked)."""
    ok = True if verify is None else bool(verify())
    return Outcome(
        ok=ok,
        rolled_back=False,
        steps_done=(),
        error=None if ok else "verification failed (nothing to apply)",
        exit_code=ExitCode.OK if ok else ExitCode.PROBLEMS,
        timings={"total": time.monotonic() - run.t_start},
        verified=None if verify is None else ok,
        python=run.python,
        installer=run.installer,
        before=run.before,
        after=run.before,
    )


def _transact(
    run: _Run, pins: list[str], verify: Callable[[], bool] | None, step_timeout: float
) -> Outcome:
    """snapshot -> install each step -> verify -> commit; any failure or signal -> rollback.
    ``pins``: the constraints of every step but torch's (torch pinned while the rest installs,
    and the project's own pins, --requirements/--constraint)."""
    interrupted = False
    try:
        with _signals_raise(), process.recording(lambda pid: record_child(run.state, pid)):
            _take_snapshot(run, pins)
            hook("prepared")
            run.journal["state"] = JournalState.APPLYING  # written with the first step
            for i in range(len(run.commands)):
                _install_step(run, i, step_timeout)
            if verify is not None:
                _verify(run, verify)
            run.journal["after"] = installed_versions(run.site)
            outside = outside_changes(run.journal, run.journal["after"])
            if outside:
                # kept: a commit removes nothing; the user hears of it
                run.journal["outside_changes"] = outside
                run.progress(
                    f"kept what another process changed during the apply: {_show(outside)}"
                )
            run.enter(JournalState.COMMITTED)
        hook("commit")
        return _commit(run)
    except (_StepFailed, _VerifyFailed) as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error, interrupted = "interrupted (Ctrl-C)", True
    except Terminated as exc:
        error, interrupted = f"interrupted ({exc.args[0] if exc.args else 'SIGTERM'})", True
    except OSError as exc:
        if not is_resource_error(exc):
            _rollback_now(run.state, run.journal, run.progress, f"unexpected error: {exc!r}")
            raise
        # A full, read-only or locked-down disk while changing: roll back (which frees what the
        # apply wrote), then say what happened, in one line.
        return _after_resource_error(run, exc)
    except BaseException as exc:
        # Anything else (a bug): restore, then let it surface.
        _rollback_now(run.state, run.journal, run.progress, f"unexpected error: {exc!r}")
        raise
    return _after_failure(run, error, interrupted)


def _after_resource_error(run: _Run, exc: OSError) -> Outcome:
    why = space.describe_oserror(exc)
    changed = run.journal.get("state") not in (JournalState.SNAPSHOTTING, JournalState.PREPARED)
    if not changed:
        # Nothing was changed yet: drop the partial snapshot; no rollback to report.
        _rollback_now(run.state, run.journal, run.progress, why)
        return run.outcome(
            ok=False,
            rolled_back=False,
            error=f"could not prepare the apply to {run.prefix}: {why}; nothing was changed",
            code=ExitCode.NO_RESOURCE,
            after=run.before,
        )
    return _after_failure(run, f"{why} while changing {run.prefix}", False)


def _take_snapshot(run: _Run, pins: list[str]) -> None:
    state = run.state
    if state.backup.exists():
        shutil.rmtree(state.backup)  # a leftover of a finished run
    with contextlib.suppress(FileNotFoundError):
        state.installer_log.unlink()  # the log of the last apply only
    state.write_journal(run.journal)
    t0 = time.monotonic()
    count = Snapshot(state).take(run.journal["roots"])
    run.timings["snapshot"] = time.monotonic() - t0
    with open(os.open(state.constraints, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("".join(p + "\n" for p in pins))
    run.enter(JournalState.PREPARED)
    run.progress(
        f"snapshot: {count} files of {run.prefix} kept for rollback "
        f"({run.timings['snapshot']:.1f} s)"
    )


def _install_step(run: _Run, i: int, step_timeout: float) -> None:
    label, step = run.commands[i].label, run.journal["steps"][i]
    step["status"] = "running"
    run.state.write_journal(run.journal)
    run.progress(f"[{i + 1}/{len(run.commands)}] {label}")
    hook(f"step:{i}:before")
    with contextlib.suppress(FileNotFoundError):
        run.state.installer_pid.unlink()
    if os.environ.get(KILL_ENV) == f"step:{i}:during":
        _kill_while_running(run.state.installer_pid.exists)
    t0 = time.monotonic()
    result = _run_installer(
        run.state, list(run.commands[i].argv), step_timeout, run.output, run.commands[i].env
    )
    run.timings[f"step:{i}"] = time.monotonic() - t0
    hook(f"step:{i}:after")
    if not result.ok:
        step["status"] = "failed"
        why = "timed out" if result.timed_out else _tail(result)
        if "Errno 28" in why or "No space left" in why:
            why += (
                f" (the disk of {space.mount_point(run.prefix)} or of the temporary folder is full)"
            )
        raise _StepFailed(
            f"could not {label} into {run.prefix} with {run.installer}: {why} "
            f"(full installer log: {run.state.installer_log})"
        )
    step["status"] = "done"
    run.journal["observed"] = installed_versions(run.site)
    run.state.write_journal(run.journal)
    run.done.append(label)


def _verify(run: _Run, verify: Callable[[], bool]) -> None:
    run.enter(JournalState.VERIFYING)
    run.progress("verify: running the 4-bit check in the repaired environment")
    hook("verify")
    if os.environ.get(KILL_ENV) == "verify:during":
        n = len(run.commands)  # one recorded child per step so far; the next is the check
        _kill_while_running(lambda: _count_children(run.state) > n)
    t0 = time.monotonic()
    error = None
    try:
        run.verified = bool(verify())
    except Exception as exc:  # a crashing check is a failed check
        run.verified = False
        error = f"verification crashed: {exc}"
    run.timings["verify"] = time.monotonic() - t0
    if not run.verified:
        raise _VerifyFailed(error or "verification failed after the install")


def _commit(run: _Run) -> Outcome:
    t0 = time.monotonic()
    discard_backup(run.state)
    run.timings["commit"] = time.monotonic() - t0
    out = replace(
        run.outcome(
            ok=True, rolled_back=False, error=None, code=ExitCode.OK, after=run.journal["after"]
        ),
        outside_changes=run.journal.get("outside_changes") or {},
    )
    run.progress(f"applied {len(run.done)} step(s) in {run.timings['total']:.1f} s")
    return out


def _after_failure(run: _Run, error: str, interrupted: bool) -> Outcome:
    """Roll back after a failed step, a failed check or a signal, and say how that went."""
    run.progress(f"apply failed: {error}")
    t0 = time.monotonic()
    rb = _rollback_now(run.state, run.journal, run.progress, error)
    run.timings["rollback"] = time.monotonic() - t0
    if rb is not None:
        code = ExitCode.ROLLBACK_FAILED
        if rb.startswith(_OUTSIDE):
            code = ExitCode.OUTSIDE_CHANGES
            rb = rb.removeprefix(_OUTSIDE)
        return run.outcome(
            ok=False,
            rolled_back=False,
            error=f"{error}; and the rollback could not finish: {rb}",
            code=code,
        )
    suffix = "" if not interrupted else " by request"
    return run.outcome(
        ok=False,
        rolled_back=True,
        error=f"{error}; the environment was rolled back{suffix}",
        code=ExitCode.APPLY_FAILED,
    )


def _rollback_now(
    state: StateDir, journal: dict[str, Any], progress: Progress, reason: str
) -> str | None:
    """Roll back in-process (signals deferred). Returns None, or why it failed."""
    with _signals_deferred():
        try:
            _finish(state, journal, progress, reason)
            return None
        except RollbackFailed as exc:
            mark = _OUTSIDE if isinstance(exc, OutsideChanges) else ""
            return mark + exc.message + (f" ({exc.tip})" if exc.tip else "")
        except OSError as exc:
            return f"{exc.strerror or exc} ({exc.filename})"


_OUTSIDE = "outside:"


def outside_changes(
    journal: Mapping[str, Any], now_installed: Mapping[str, str]
) -> dict[str, str | None]:
    """name -> version now (None: removed) of the distributions that differ from what qfix
    last left (``observed``, after its last finished step) and that no step of qfix touched
    since. While a step runs (or failed halfway) its installer may change anything, so nothing
    is attributed to another process then (docs/apply.md, "Changes by another process")."""
    steps = journal.get("steps") or []
    if any(isinstance(s, dict) and s.get("status") in ("running", "failed") for s in steps):
        return {}
    seen = journal.get("observed")
    if not isinstance(seen, dict):
        return {}
    out: dict[str, str | None] = {}
    for name in sorted(set(seen) | set(now_installed)):
        if seen.get(name) != now_installed.get(name):
            out[name] = now_installed.get(name)
    return out


def _show(changes: Mapping[str, str | None]) -> str:
    return ", ".join(f"{n} {'removed' if v is None else v}" for n, v in changes.items())


def _finish(
    state: StateDir,
    journal: dict[str, Any],
    progress: Progress,
    reason: str,
    *,
    force: bool = False,
) -> bool:
    """Bring an unfinished transaction to ``rolled-back``. True when files had to be restored.
    OutsideChanges (nothing touched, the journal unchanged) when another process changed the
    environment meanwhile and ``force`` is not given."""
    st = journal.get("state")
    if st == JournalState.SNAPSHOTTING:
        # Killed before the first change: nothing to restore, only a partial backup to drop.
        # Nothing changed, so nothing can have failed: a journal the disk will not take (full,
        # read-only) is not reported as a failed rollback (issue 16).
        with contextlib.suppress(OSError):
            discard_backup(state)
        journal.update(state=JournalState.ROLLED_BACK, error=reason, finished=now())
        with contextlib.suppress(OSError):
            state.write_journal(journal)
        progress("rolled back: no change had been made yet")
        return False
    if st not in UNFINISHED:
        return False
    site = journal.get("site")
    steps = journal.get("steps") or []
    mid_step = any(isinstance(s, dict) and s.get("status") in ("running", "failed") for s in steps)
    if not force and not mid_step and st != JournalState.ROLLING_BACK and isinstance(site, list):
        outside = outside_changes(journal, installed_versions([str(d) for d in site]))
        if outside:
            raise OutsideChanges(
                f"another process changed {journal.get('prefix')} during the apply "
                f"({_show(outside)}); a rollback would undo that too, so nothing was rolled back",
                tip="run `qfix rollback --force --python "
                + shellquote.quote(str(journal.get("python")))
                + "` to restore the state before the apply anyway (it removes those changes too)",
            )
    t0 = time.monotonic()
    journal.update(state=JournalState.ROLLING_BACK, error=journal.get("error") or reason)
    # On a full disk this write may fail: the restore goes on anyway (it removes what the apply
    # wrote, which frees the space), and the journal on disk still says "unfinished".
    _try_write(state, journal)
    stop_children(state, progress)
    _stop_orphaned_installer(state, progress)
    progress(f"rolling back {journal.get('prefix')} to its state before the apply")
    restorer = Restorer(state, _read_manifest(state))
    prefix, python = str(journal.get("prefix") or state.path.parent), str(journal.get("python"))
    try:
        restorer.run()
    except OSError as exc:
        _try_write(state, journal)
        raise RollbackFailed(
            f"the rollback of {prefix} stopped: {space.describe_oserror(exc)}",
            tip=space.rollback_tip(prefix, python),
        ) from None
    if restorer.damaged:
        shown = ", ".join(restorer.damaged[:5])
        more = f" and {len(restorer.damaged) - 5} more" if len(restorer.damaged) > 5 else ""
        journal.update(state=JournalState.ROLLED_BACK, damaged=restorer.damaged, finished=now())
        state.write_journal(journal)
        raise RollbackFailed(
            f"rolled back, but {len(restorer.damaged)} file(s) were rewritten in place by the "
            f"installer and could not be restored: {shown}{more}",
            tip="reinstall the distributions that own them",
        )
    journal.update(state=JournalState.ROLLED_BACK, finished=now())
    failed = _try_write(state, journal)
    if failed is not None:
        raise RollbackFailed(
            f"{prefix} was restored, but its journal could not record it: "
            f"{space.describe_oserror(failed)}",
            tip=space.rollback_tip(prefix, python),
        )
    discard_backup(state)
    progress(
        f"rolled back in {time.monotonic() - t0:.1f} s ({restorer.removed} new entries "
        f"removed, {restorer.relinked} restored)"
    )
    return True


def _try_write(state: StateDir, journal: dict[str, Any]) -> OSError | None:
    try:
        state.write_journal(journal)
    except OSError as exc:
        return exc
    return None


def _read_manifest(state: StateDir) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(state.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RollbackFailed(
            f"the snapshot manifest {state.manifest} is unreadable: {exc}",
            tip="the backup under .qfix/backup is kept; restore it by hand",
        ) from None
    return manifest


# --------------------------------------------------------------------------- rollback


def find_state(python: str, probe_timeout: float = DEFAULT_PROBE_TIMEOUT) -> StateDir:
    """The .qfix folder of ``python``'s environment, found from the path without running the
    interpreter where possible: it may be what a killed install broke, or hang (issue 14).
    ``<prefix>/bin/python`` with a ``<prefix>/.qfix`` or a ``pyvenv.cfg`` needs no run; anything
    else is asked, within ``probe_timeout`` ($QFIX_PROBE_TIMEOUT, resolved in Settings)."""
    exe = Path(python).absolute()
    prefix = exe.parent.parent
    if (prefix / STATE_DIR).is_dir() or (prefix / "pyvenv.cfg").is_file():
        return StateDir(prefix / STATE_DIR)
    return StateDir(Path(inspect_target(python, timeout=probe_timeout).prefix) / STATE_DIR)


def rollback(
    python: str,
    progress: Progress = print,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    *,
    force: bool = False,
) -> Outcome:
    """Finish an apply that did not (``qfix rollback``): restore the snapshot the journal names.

    Needs no network and no installer. ``force``: roll back even over changes another process
    made meanwhile (else exit 13, nothing touched). Nothing to do (no journal, or the last apply
    committed or was rolled back) is ok with ``rolled_back=False``. Raises Locked while an apply
    runs.
    """
    t_start = time.monotonic()
    state = find_state(python, probe_timeout)
    nothing = Outcome(
        ok=True, rolled_back=False, steps_done=(), error=None, exit_code=ExitCode.OK, python=python
    )
    if not state.path.is_dir():
        progress(f"nothing to roll back: no qfix apply ran in {state.path.parent}")
        return nothing
    with state.locked("roll back"):
        stop_children(state, progress)
        journal = state.read_journal()
        if journal is None or journal.get("state") not in UNFINISHED:
            last = "none" if journal is None else f"{journal.get('state')} {journal.get('updated')}"
            # A committed run killed before it removed its backup leaves one behind: drop it.
            discard_backup(state)
            progress(f"nothing to roll back in {state.path.parent} (last apply: {last})")
            return nothing
        steps_done = tuple(
            s["label"] for s in journal.get("steps", ()) if s.get("status") == "done"
        )
        try:
            with _signals_deferred():
                restored = _finish(
                    state,
                    journal,
                    progress,
                    "the apply was interrupted (qfix rollback)",
                    force=force,
                )
        except OutsideChanges as exc:
            return Outcome(
                ok=False,
                rolled_back=False,
                steps_done=steps_done,
                error=f"{exc.message}; {exc.tip}",
                exit_code=ExitCode.OUTSIDE_CHANGES,
                timings={"total": time.monotonic() - t_start},
                python=python,
            )
        except (RollbackFailed, OSError) as exc:
            if isinstance(exc, RollbackFailed):
                why = exc.message
            else:
                why = f"rollback failed: {exc.strerror or exc} ({exc.filename})"
            return Outcome(
                ok=False,
                rolled_back=False,
                steps_done=steps_done,
                error=why,
                exit_code=ExitCode.ROLLBACK_FAILED,
                timings={"total": time.monotonic() - t_start},
                python=python,
            )
        return Outcome(
            ok=True,
            rolled_back=restored,
            steps_done=steps_done,
            error=None,
            exit_code=ExitCode.OK,
            timings={"rollback": time.monotonic() - t_start},
            python=python,
            before=journal.get("before") or {},
        )
