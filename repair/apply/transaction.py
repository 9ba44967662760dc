"""Applying a plan to a virtual environment as a transaction, and rolling it back.

The guarantee: after ``apply_plan`` the environment is either the planned one (installed and, when
asked, verified) or exactly the one it was before, file for file, so ``pip freeze`` is unchanged.
That holds when an install fails, when verification fails, on Ctrl-C and SIGTERM (rolled back at
once), and after SIGKILL or a power cut (``rollback()``, i.e. ``qfix rollback``, finishes it).

How:

* **Lock** ``<venv>/.qfix/lock`` (``flock``): a second apply on the same venv refuses at once
  (``Locked``, exit 5). The kernel drops the lock when its process dies, so a killed run never
  leaves a stale lock behind.
* **Snapshot** before the first change: the venv's tree is mirrored into
  ``<venv>/.qfix/backup/tree`` with hard links (one ``link()`` per file, ~0.8 s for a 31,000-file
  torch + transformers venv, no bytes copied), plus a manifest of each file's size and mtime.
  pip and uv never write into an installed file: pip unlinks before writing
  (``pip/_internal/operations/install/wheel.py``, "Unlinking the file allows writing of new
  contents"), distlib's script writer removes first, uv links or renames into place. So the old
  inodes stay intact under the backup names whatever the installers do, and rollback needs no
  network and no wheel: it takes seconds even for torch. A file that *was* rewritten in place
  (its backup's size or mtime moved) is reported, never silently kept.
* **Journal** ``<venv>/.qfix/journal.json``, replaced atomically and fsynced at every state change:
  ``snapshotting -> prepared -> applying -> verifying -> committed`` or ``-> rolling-back ->
  rolled-back``. ``rollback()`` reads it to finish whatever a killed run left.
* **Rollback** makes the tree equal to the snapshot again: whatever is not in the snapshot goes
  (new distributions, half-written files, a killed install's dist-info), every file whose inode is
  not the snapshot's is linked back. It is idempotent, so a rollback killed halfway is simply
  run again.
* **Installer lock** ``<venv>/.qfix/installer.lock``: each installer runs under a tiny wrapper that
  takes this lock and ``exec``s pip/uv with the lock inherited, writing its pid to
  ``installer.pid``. If qfix is SIGKILLed mid-install the installer lives on (it runs in its own
  session); ``rollback()`` sees the lock held, kills that process group, and waits for the lock
  before touching any file.

Test hook (documented, inert unless set): ``QFIX_TEST_KILL_AT=<point>`` makes this process
SIGKILL itself at that point, so the tests can prove recovery at every stage. Points:
``snapshot`` (halfway through the snapshot), ``prepared``, ``step:<i>:before``,
``step:<i>:during`` (while installer ``i`` runs, ``QFIX_TEST_KILL_DELAY`` seconds after it
started, default 0.5), ``step:<i>:after`` (installer finished, journal not yet updated),
``verify``, ``commit`` (committed, backup not yet removed), ``rollback`` (halfway through an
automatic rollback).
"""

from __future__ import annotations

import contextlib
import datetime
import email.parser
import errno
import fcntl
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import process
from ..errors import ApplyRefused, ExitCode, Locked, QfixError, RollbackFailed
from ..plan import Plan
from ..planfile import plan_from_doc
from . import installers
from .venv import TargetKind, TargetPaths, inspect_target, require_changeable

JOURNAL_SCHEMA = "qfix.journal/1"
STATE_DIR = ".qfix"
KILL_ENV = "QFIX_TEST_KILL_AT"
KILL_DELAY_ENV = "QFIX_TEST_KILL_DELAY"
UNFINISHED = ("snapshotting", "prepared", "applying", "verifying", "rolling-back")
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
            "error": self.error,
            "exit_code": int(self.exit_code),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "verified": self.verified,
            "python": self.python,
            "installer": self.installer,
            "commands": [list(c) for c in self.commands],
            "before": dict(self.before),
            "after": dict(self.after),
        }


# --------------------------------------------------------------------------- test hook


def _hook(point: str) -> None:
    """The SIGKILL test hook (module docstring). Does nothing unless QFIX_TEST_KILL_AT == point."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _kill_while_running(pidfile: Path) -> threading.Thread:
    """For ``step:<i>:during``: SIGKILL this process once the installer has been running a while."""
    delay = float(os.environ.get(KILL_DELAY_ENV, "0.5"))

    def watch() -> None:
        while not pidfile.exists():
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGKILL)

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
        for sig in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            olds[sig] = signal.signal(sig, lambda s, f: got.append(s))
    except ValueError:
        pass  # not the main thread
    try:
        yield got
    finally:
        for signum, old in olds.items():
            signal.signal(signum, old)


# --------------------------------------------------------------------------- state folder


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` and make it durable (write, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class StateDir:
    """``<venv>/.qfix``: lock, journal, snapshot and the installer's lock and pid."""

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
        journal["updated"] = _now()
        _write_json(self.journal, journal)

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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- snapshot


def snapshot_roots(target: TargetPaths, kind: TargetKind) -> list[str]:
    """The folders an install may change. For a venv its whole prefix (small, and everything in
    it is the venv's); for conda only the install folders, not the whole conda tree."""
    if kind is TargetKind.VENV:
        cands = [target.prefix, target.purelib, target.platlib, target.scripts]
    else:
        cands = [target.purelib, target.platlib, target.scripts]
    roots: list[str] = []
    for c in sorted({os.path.abspath(c) for c in cands if c and os.path.isdir(c)}, key=len):
        if not any(c == r or c.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            roots.append(c)
    return roots


class _Snapshot:
    """Mirror of the roots under backup/tree/<i> with hard links; manifest of size+mtime."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.files: dict[str, dict[str, list[int]]] = {}
        self.special: dict[str, list[str]] = {}
        self.copied: dict[str, list[str]] = {}
        self.count = 0

    def take(self, roots: list[str]) -> int:
        tree = self.state.backup / "tree"
        tree.mkdir(parents=True)
        total = sum(1 for _ in roots)
        for i, root in enumerate(roots):
            key = str(i)
            self.files[key] = {}
            self.special[key] = []
            self.copied[key] = []
            self._mirror(root, str(tree / key), "", key, halfway=(i == total - 1))
        manifest = {
            "roots": roots,
            "files": self.files,
            "special": self.special,
            "copied": self.copied,
        }
        # Durable before the journal says "prepared": fsync of the manifest (and then of the
        # journal) commits the filesystem's metadata journal, and with it every link made
        # above, on ext4, XFS and btrfs, which log metadata in order. sync(2) would do it
        # everywhere but flushes every dirty page of the machine (seconds behind a big copy).
        _write_json(self.state.manifest, manifest)
        return self.count

    def _mirror(self, src: str, dst: str, rel: str, key: str, halfway: bool) -> None:
        exclude = str(self.state.path)
        os.mkdir(dst, stat_mode(src))
        with os.scandir(src) as it:
            entries = sorted(it, key=lambda e: e.name)
        for n, e in enumerate(entries):
            if e.path == exclude:
                continue
            if halfway and rel == "" and n == len(entries) // 2:
                _hook("snapshot")
            r = rel + e.name
            d = os.path.join(dst, e.name)
            if e.is_symlink():
                os.symlink(os.readlink(e.path), d)
            elif e.is_dir(follow_symlinks=False):
                self._mirror(e.path, d, r + "/", key, halfway=False)
            elif e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                try:
                    os.link(e.path, d)
                except OSError as exc:
                    # another filesystem under the venv, or protected_hardlinks: copy instead
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
                    shutil.copy2(e.path, d, follow_symlinks=False)
                    self.copied[key].append(r)
                self.files[key][r] = [st.st_size, st.st_mtime_ns]
                self.count += 1
            else:
                self.special[key].append(r)  # sockets, fifos: left alone both ways


def stat_mode(path: str) -> int:
    return os.stat(path, follow_symlinks=False).st_mode & 0o7777


class _Restorer:
    """Makes each root equal to its mirror again. Idempotent: safe to run after a killed run."""

    def __init__(self, state: StateDir, manifest: Mapping[str, Any]) -> None:
        self.state = state
        self.manifest = manifest
        self.removed = 0
        self.relinked = 0
        self.damaged: list[str] = []
        self.key = "0"

    def run(self) -> None:
        tree = self.state.backup / "tree"
        for i, root in enumerate(self.manifest["roots"]):
            self.key = str(i)
            backup = tree / self.key
            if not backup.is_dir():
                raise RollbackFailed(f"the snapshot of {root} is missing ({backup})")
            if not os.path.isdir(root):
                os.makedirs(root, exist_ok=True)
            self._sync(root, str(backup), "", top=True)

    def _sync(self, live: str, backup: str, rel: str, top: bool = False) -> None:
        exclude = str(self.state.path)
        files: Mapping[str, list[int]] = self.manifest["files"].get(self.key, {})
        special = set(self.manifest.get("special", {}).get(self.key, ()))
        copied = set(self.manifest.get("copied", {}).get(self.key, ()))
        with os.scandir(backup) as it:
            want = {e.name: e for e in it}
        with os.scandir(live) as it:
            have = {e.name: e for e in it if e.path != exclude}
        # 1. what the snapshot does not have goes: new dists, half-written files, new pycs
        for name, e in have.items():
            if name not in want and (rel + name) not in special:
                _remove(e.path)
                self.removed += 1
        if rel.endswith("site-packages/") or (top and live.rstrip(os.sep).endswith("packages")):
            _hook("rollback")  # test hook: the new distributions gone, the old not yet back
        # 2. what it has comes back, with its own inode
        for name, b in want.items():
            r = rel + name
            target = os.path.join(live, name)
            h = have.get(name)
            if b.is_symlink():
                link = os.readlink(b.path)
                if h is not None and h.is_symlink() and os.readlink(target) == link:
                    continue
                if h is not None:
                    _remove(target)
                os.symlink(link, target)
                self.relinked += 1
            elif b.is_dir(follow_symlinks=False):
                if h is not None and not (h.is_dir(follow_symlinks=False) and not h.is_symlink()):
                    _remove(target)
                    h = None
                if h is None:
                    os.mkdir(target, stat_mode(b.path))
                self._sync(target, b.path, r + "/")
            else:
                bst = b.stat(follow_symlinks=False)
                expect = files.get(r)
                if expect is not None and [bst.st_size, bst.st_mtime_ns] != list(expect):
                    self.damaged.append(r)  # rewritten in place: the old bytes are gone
                if (
                    h is not None
                    and r not in copied
                    and h.is_file(follow_symlinks=False)
                    and not h.is_symlink()
                ):
                    hst = h.stat(follow_symlinks=False)
                    if (hst.st_ino, hst.st_dev) == (bst.st_ino, bst.st_dev):
                        continue
                tmp = target + ".qfix-restore"
                if os.path.lexists(tmp):
                    _remove(tmp)
                if r in copied:
                    shutil.copy2(b.path, tmp, follow_symlinks=False)
                else:
                    os.link(b.path, tmp)
                if h is not None and h.is_dir(follow_symlinks=False) and not h.is_symlink():
                    _remove(target)
                os.replace(tmp, target)
                self.relinked += 1


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --------------------------------------------------------------------------- distributions


def installed_versions(dirs: list[str]) -> dict[str, str]:
    """name -> version of the distributions in ``dirs`` (site-packages), read from their
    metadata files in this process (headers only), as ``pip freeze`` sees them."""
    parser = email.parser.HeaderParser()
    out: dict[str, str] = {}
    for d in dict.fromkeys(dirs):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(".dist-info"):
                meta = os.path.join(e.path, "METADATA")
            elif e.name.endswith(".egg-info"):
                meta = os.path.join(e.path, "PKG-INFO") if e.is_dir() else e.path
            else:
                continue
            try:
                with open(meta, encoding="utf-8", errors="replace") as f:
                    head = f.read(16384)
            except OSError:
                continue
            msg = parser.parsestr(head.split("\n\n", 1)[0] + "\n")
            name, version = msg.get("Name"), msg.get("Version")
            if name and version:
                out.setdefault(str(name).strip(), str(version).strip())
    return out


# --------------------------------------------------------------------------- installer runs

# Runs the installer under the installer lock (see module docstring). Stdlib, any Python 3.
_HOLD_LOCK_AND_EXEC = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.set_inheritable(fd, True)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
os.execvp(sys.argv[3], sys.argv[3:])
"""


def _run_installer(state: StateDir, argv: list[str], timeout: float) -> process.Completed:
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
    return process.run(wrapped, timeout=timeout)


def _stop_orphaned_installer(state: StateDir, progress: Progress, wait: float = 60) -> None:
    """If an installer left by a killed apply still runs, kill its process group and wait."""
    state.path.mkdir(exist_ok=True)
    fd = os.open(state.installer_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            try:
                pid = int(state.installer_pid.read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if pid > 0:
                if not told:
                    progress(f"stopping the installer left running by a killed apply (pid {pid})")
                    told = True
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RollbackFailed(
                    f"an installer (pid {pid or '?'}) still holds {state.installer_lock}; "
                    "cannot roll back while it runs",
                    tip="stop it, then run qfix rollback",
                )
            time.sleep(0.05)
    finally:
        os.close(fd)


def _tail(done: process.Completed, lines: int = 3) -> str:
    """The installer's own error lines (pip: ``ERROR: ...``, uv: ``error: ...``), else its last
    lines: what the user needs in the one-line failure message."""
    text = [t.strip() for t in (done.stderr + "\n" + done.stdout).splitlines() if t.strip()]
    first = next((i for i, t in enumerate(text) if t.startswith(("ERROR", "error:"))), None)
    useful = text[first : first + lines] if first is not None else text[-lines:]
    return " | ".join(useful) if useful else f"exit status {done.returncode}"


# --------------------------------------------------------------------------- apply


class _StepFailed(Exception):
    pass


class _VerifyFailed(Exception):
    pass


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
    index; None: the plan's own index URLs.
    """
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    if not isinstance(plan, Plan):
        plan = plan_from_doc(plan)
    target = inspect_target(python)
    kind = require_changeable(target.info, allow_conda=allow_conda)
    which = installer if installer in ("pip", "uv") else installers.choose_installer(installer)
    uv = installers.find_uv() or "uv"
    base = torch_index
    state = StateDir(Path(target.prefix) / STATE_DIR)
    steps = plan.steps
    site = [target.purelib, target.platlib]

    with state.locked("apply a plan"):
        journal = state.read_journal()
        if journal is not None and journal.get("state") in UNFINISHED:
            raise ApplyRefused(
                f"an earlier qfix apply on {target.prefix} did not finish (state "
                f"{journal.get('state')!r}): the environment may be half changed",
                tip=f"run `qfix rollback --python {python}` first",
            )
        before = installed_versions(site)
        if which == "pip" and "pip" not in {installers.normalize(n) for n in before}:
            raise ApplyRefused(
                f"{python} has no pip, and uv was not chosen or found",
                tip="install uv, or run `<python> -m ensurepip` in the venv",
            )
        commands = installers.build_commands(
            steps,
            python=python,
            installer=which,
            torch_index_base=base,
            constraint_file=str(state.constraints),
            uv=uv,
        )
        if not commands:
            ok = True if verify is None else bool(verify())
            return Outcome(
                ok=ok,
                rolled_back=False,
                steps_done=(),
                error=None if ok else "verification failed (nothing to apply)",
                exit_code=ExitCode.OK if ok else ExitCode.PROBLEMS,
                timings={"total": time.monotonic() - t_start},
                verified=None if verify is None else ok,
                python=python,
                installer=which,
                before=before,
                after=before,
            )
        pins = installers.constraint_lines(steps, before)
        journal = {
            "schema": JOURNAL_SCHEMA,
            "id": uuid.uuid4().hex,
            "state": "snapshotting",
            "python": python,
            "prefix": target.prefix,
            "kind": kind.value,
            "pid": os.getpid(),
            "started": _now(),
            "installer": which,
            "plan_fingerprint": plan.fingerprint,
            "before": before,
            "roots": snapshot_roots(target, kind),
            "steps": [
                {"label": c.label, "argv": list(c.argv), "status": "pending"} for c in commands
            ],
            "error": None,
        }
        done: list[str] = []
        verified: bool | None = None
        error: str | None = None
        interrupted = False
        try:
            with _signals_raise():
                if state.backup.exists():
                    shutil.rmtree(state.backup)  # a leftover of a finished run
                state.write_journal(journal)
                t0 = time.monotonic()
                count = _Snapshot(state).take(journal["roots"])
                timings["snapshot"] = time.monotonic() - t0
                state.constraints.write_text("".join(p + "\n" for p in pins))
                journal["state"] = "prepared"
                state.write_journal(journal)
                progress(
                    f"snapshot: {count} files of {target.prefix} kept for rollback "
                    f"({timings['snapshot']:.1f} s)"
                )
                _hook("prepared")
                journal["state"] = "applying"
                for i, (label, argv) in enumerate(commands):
                    journal["steps"][i]["status"] = "running"
                    state.write_journal(journal)
                    progress(f"[{i + 1}/{len(commands)}] {label}")
                    _hook(f"step:{i}:before")
                    with contextlib.suppress(FileNotFoundError):
                        state.installer_pid.unlink()
                    if os.environ.get(KILL_ENV) == f"step:{i}:during":
                        _kill_while_running(state.installer_pid)
                    t0 = time.monotonic()
                    result = _run_installer(state, list(argv), step_timeout)
                    timings[f"step:{i}"] = time.monotonic() - t0
                    _hook(f"step:{i}:after")
                    if not result.ok:
                        journal["steps"][i]["status"] = "failed"
                        why = "timed out" if result.timed_out else _tail(result)
                        raise _StepFailed(
                            f"could not {label} into {target.prefix} with {which}: {why}"
                        )
                    journal["steps"][i]["status"] = "done"
                    state.write_journal(journal)
                    done.append(label)
                if verify is not None:
                    journal["state"] = "verifying"
                    state.write_journal(journal)
                    progress("verify: running the 4-bit check in the repaired environment")
                    _hook("verify")
                    t0 = time.monotonic()
                    try:
                        verified = bool(verify())
                    except Exception as exc:  # a crashing check is a failed check
                        verified = False
                        error = f"verification crashed: {exc}"
                    timings["verify"] = time.monotonic() - t0
                    if not verified:
                        raise _VerifyFailed(error or "verification failed after the install")
                journal["state"] = "committed"
                journal["after"] = installed_versions(site)
                state.write_journal(journal)
            _hook("commit")
            t0 = time.monotonic()
            _discard_backup(state)
            timings["commit"] = time.monotonic() - t0
            timings["total"] = time.monotonic() - t_start
            progress(f"applied {len(done)} step(s) in {timings['total']:.1f} s")
            return Outcome(
                ok=True,
                rolled_back=False,
                steps_done=tuple(done),
                error=None,
                exit_code=ExitCode.OK,
                timings=timings,
                verified=verified,
                python=python,
                installer=which,
                commands=tuple(c.argv for c in commands),
                before=before,
                after=journal["after"],
            )
        except (_StepFailed, _VerifyFailed) as exc:
            error = str(exc)
        except KeyboardInterrupt:
            error, interrupted = "interrupted (Ctrl-C)", True
        except Terminated as exc:
            error, interrupted = f"interrupted ({exc.args[0] if exc.args else 'SIGTERM'})", True
        except BaseException as exc:
            # Anything else (a bug, a full disk): restore, then let it surface.
            _rollback_now(state, journal, progress, f"unexpected error: {exc!r}")
            raise
        progress(f"apply failed: {error}")
        t0 = time.monotonic()
        rb = _rollback_now(state, journal, progress, error)
        timings["rollback"] = time.monotonic() - t0
        timings["total"] = time.monotonic() - t_start
        if rb is not None:
            return Outcome(
                ok=False,
                rolled_back=False,
                steps_done=tuple(done),
                error=f"{error}; and the rollback failed: {rb}",
                exit_code=ExitCode.ROLLBACK_FAILED,
                timings=timings,
                verified=verified,
                python=python,
                installer=which,
                commands=tuple(c.argv for c in commands),
                before=before,
                after=installed_versions(site),
            )
        suffix = "" if not interrupted else " by request"
        return Outcome(
            ok=False,
            rolled_back=True,
            steps_done=tuple(done),
            error=f"{error}; the environment was rolled back{suffix}",
            exit_code=ExitCode.APPLY_FAILED,
            timings=timings,
            verified=verified,
            python=python,
            installer=which,
            commands=tuple(c.argv for c in commands),
            before=before,
            after=installed_versions(site),
        )


def _discard_backup(state: StateDir) -> None:
    for path in (state.backup, state.constraints, state.installer_pid):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _rollback_now(
    state: StateDir, journal: dict[str, Any], progress: Progress, reason: str
) -> str | None:
    """Roll back in-process (signals deferred). Returns None, or why it failed."""
    with _signals_deferred():
        try:
            _finish(state, journal, progress, reason)
            return None
        except RollbackFailed as exc:
            return exc.message
        except OSError as exc:
            return f"{exc.strerror or exc} ({exc.filename})"


def _finish(state: StateDir, journal: dict[str, Any], progress: Progress, reason: str) -> bool:
    """Bring an unfinished transaction to ``rolled-back``. True when files had to be restored."""
    st = journal.get("state")
    if st == "snapshotting":
        # Killed before the first change: nothing to restore, only a partial backup to drop.
        _discard_backup(state)
        journal.update(state="rolled-back", error=reason, finished=_now())
        state.write_journal(journal)
        progress("rolled back: no change had been made yet")
        return False
    if st not in UNFINISHED:
        return False
    t0 = time.monotonic()
    journal.update(state="rolling-back", error=journal.get("error") or reason)
    state.write_journal(journal)
    _stop_orphaned_installer(state, progress)
    try:
        manifest = json.loads(state.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RollbackFailed(
            f"the snapshot manifest {state.manifest} is unreadable: {exc}",
            tip="the backup under .qfix/backup is kept; restore it by hand",
        ) from None
    progress(f"rolling back {journal.get('prefix')} to its state before the apply")
    restorer = _Restorer(state, manifest)
    restorer.run()
    if restorer.damaged:
        shown = ", ".join(restorer.damaged[:5])
        more = f" and {len(restorer.damaged) - 5} more" if len(restorer.damaged) > 5 else ""
        journal.update(state="rolled-back", damaged=restorer.damaged, finished=_now())
        state.write_journal(journal)
        raise RollbackFailed(
            f"rolled back, but {len(restorer.damaged)} file(s) were rewritten in place by the "
            f"installer and could not be restored: {shown}{more}",
            tip="reinstall the distributions that own them",
        )
    journal.update(state="rolled-back", finished=_now())
    state.write_journal(journal)
    _discard_backup(state)
    progress(
        f"rolled back in {time.monotonic() - t0:.1f} s ({restorer.removed} new entries "
        f"removed, {restorer.relinked} restored)"
    )
    return True


# --------------------------------------------------------------------------- rollback


def find_state(python: str) -> StateDir:
    """The .qfix folder of ``python``'s environment. The venv layout is tried first without
    running the interpreter (it may be what a killed install broke)."""
    exe = Path(python).absolute()
    for prefix in (exe.parent.parent,):
        if (prefix / "pyvenv.cfg").is_file():
            return StateDir(prefix / STATE_DIR)
    return StateDir(Path(inspect_target(python).prefix) / STATE_DIR)


def rollback(python: str, progress: Progress = print) -> Outcome:
    """Finish an apply that did not (``qfix rollback``): restore the snapshot the journal names.

    Needs no network and no installer. Nothing to do (no journal, or the last apply committed or
    was rolled back) is ok with ``rolled_back=False``. Raises Locked while an apply runs.
    """
    t_start = time.monotonic()
    state = find_state(python)
    if not state.path.is_dir():
        progress(f"nothing to roll back: no qfix apply ran in {state.path.parent}")
        return Outcome(
            ok=True,
            rolled_back=False,
            steps_done=(),
            error=None,
            exit_code=ExitCode.OK,
            python=python,
        )
    with state.locked("roll back"):
        journal = state.read_journal()
        if journal is None or journal.get("state") not in UNFINISHED:
            last = "none" if journal is None else f"{journal.get('state')} {journal.get('updated')}"
            # A committed run killed before it removed its backup leaves one behind: drop it.
            _discard_backup(state)
            progress(f"nothing to roll back in {state.path.parent} (last apply: {last})")
            return Outcome(
                ok=True,
                rolled_back=False,
                steps_done=(),
                error=None,
                exit_code=ExitCode.OK,
                python=python,
            )
        steps_done = tuple(
            s["label"] for s in journal.get("steps", ()) if s.get("status") == "done"
        )
        try:
            with _signals_deferred():
                restored = _finish(
                    state, journal, progress, "the apply was interrupted (qfix rollback)"
                )
        except RollbackFailed as exc:
            return Outcome(
                ok=False,
                rolled_back=False,
                steps_done=steps_done,
                error=exc.message,
                exit_code=ExitCode.ROLLBACK_FAILED,
                timings={"total": time.monotonic() - t_start},
                python=python,
            )
        except OSError as exc:
            return Outcome(
                ok=False,
                rolled_back=False,
                steps_done=steps_done,
                error=f"rollback failed: {exc.strerror or exc} ({exc.filename})",
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
