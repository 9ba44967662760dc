"""The installer qfix runs and what it reads: the user's index files, uv on PATH, dry runs.

The commands themselves are pure and live in ``repair.commands`` (re-exported here for the
transaction): every command names the target interpreter explicitly (``<python> -m pip`` /
``uv pip --python <python>``), so qfix never installs into the interpreter it happens to run from.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .. import dryrun, indexconfig, process
from ..commands import Command as Command
from ..commands import build_commands as build_commands
from ..commands import constraint_lines as constraint_lines
from ..commands import normalize as normalize
from ..dryrun import Download, DryRun
from ..errors import ApplyRefused, BadInput
from ..indexconfig import IndexConfig, InstallerChoice
from . import sizes


def find_uv() -> str | None:
    """uv on PATH, else beside the running interpreter (qfix installed with uv in its venv)."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def read_index_config(
    environ: Mapping[str, str], *, python: str | None, cwd: str | None = None
) -> IndexConfig:
    """The user's pip and uv index settings, read from the files in each tool's own order (the
    site file of ``python``'s venv included) and the environment."""
    home = os.path.expanduser("~")
    windows = os.name == "nt"
    prefix = None
    if python:
        venv = Path(python).absolute().parent.parent
        prefix = str(venv) if (venv / "pyvenv.cfg").is_file() else None
    pip_files = indexconfig.pip_config_files(environ, home=home, prefix=prefix, windows=windows)
    uv_files = indexconfig.uv_config_files(
        environ, home=home, cwd=cwd or os.getcwd(), windows=windows
    )
    return IndexConfig(
        pip=indexconfig.pip_config(_texts(p for _, p in pip_files), environ),
        uv=indexconfig.uv_config(_texts(uv_files), environ),
    )


def _texts(paths: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        try:
            out.append((path, Path(path).read_text(encoding="utf-8")))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read the installer configuration {path}: {exc}") from None
    return out


def resolve_installer(
    choice: str, environ: Mapping[str, str], *, python: str | None
) -> InstallerChoice:
    """The installer that will run for ``python`` and why (before any preview is rendered)."""
    config = read_index_config(environ, python=python)
    return indexconfig.choose(choice, config, find_uv() is not None)


def choose_installer(choice: str = "auto") -> str:
    """``"uv"`` or ``"pip"``: ``auto`` picks uv when it can be found (it is several times faster,
    see bench/bench_apply.py), else pip. Asking for uv when there is none is BadInput."""
    if choice not in ("auto", "uv", "pip"):
        raise BadInput(f"unknown installer {choice!r} (choose auto, uv or pip)")
    if choice == "pip":
        return "pip"
    if find_uv() is not None:
        return "uv"
    if choice == "uv":
        raise BadInput(
            "--installer uv: uv was not found on PATH",
            tip="install uv (https://docs.astral.sh/uv/) or use --installer pip",
        )
    return "pip"


def dry_run_argv(cmd: Command, installer: str, *, report: str | None = None) -> list[str] | None:
    """The resolve-only form of an install command (None for an uninstall): pip's
    ``--dry-run --report`` (pip >= 22.2), uv's ``--dry-run``. The non-torch step gets
    ``--no-deps``: its torch pin is satisfied only after the torch step has run, from another
    index, so a dry run of it checks that each pinned release is on the user's index."""
    argv = list(cmd.argv)
    if "install" not in argv:
        return None
    at = argv.index("install") + 1
    extra = ["--dry-run"]
    if installer == "pip":
        extra += ["--quiet"] + (["--report", report] if report else [])
    if "-c" in argv:
        extra.append("--no-deps")
    return [*argv[:at], *extra, *argv[at:]]


def check_resolvable(
    commands: Sequence[Command],
    installer: str,
    *,
    pins: Sequence[str],
    timeout: float = 600,
    progress: Callable[[str], None] = lambda _line: None,
    size_deadline: float = sizes.DEADLINE,
    network: sizes.Network | None = None,
) -> DryRun:
    """Resolve every install command against the indexes it will use, changing nothing, and
    return what the installs would download.

    A pinned release an index does not offer fails here, before the snapshot or any
    install: ApplyRefused (exit 6), the command's label and the installer's last line named.
    With pip, each dry run writes its installation report and the size of each file is read
    from the index (``repair.apply.sizes``, within ``size_deadline`` seconds); with uv the
    packages are listed without sizes (its dry run names no files). ``network``: pip's proxy and
    certificates for those lookups."""
    found: list[Download] = []
    cached: int | None = None
    note = None if installer == "pip" else "sizes: not available with uv's dry run"
    with tempfile.TemporaryDirectory(prefix="qfix-resolve-") as tmp:
        constraints = Path(tmp) / "qfix-constraints.txt"
        constraints.write_text("".join(p + "\n" for p in pins), encoding="utf-8")
        for i, cmd in enumerate(commands):
            report = Path(tmp) / f"report-{i}.json"
            argv = dry_run_argv(cmd, installer, report=str(report) if installer == "pip" else None)
            if argv is None:
                continue
            argv = [str(constraints) if a == CONSTRAINTS_MARK else a for a in argv]
            progress(f"resolving (dry run): {cmd.label}")
            done = _run_dry(argv, cmd, installer, timeout)
            if done is None:  # pip < 22.2: the install itself will tell
                progress(f"{installer} is too old for a dry run; not resolved before the change")
                return DryRun(installer, note="sizes: the installer is too old for a dry run")
            if installer == "pip":
                found.extend(_read_report(report))
            else:
                listed, from_cache = dryrun.parse_uv_dry_run(done.stderr + "\n" + done.stdout)
                found.extend(listed)
                if from_cache is not None:
                    cached = (cached or 0) + from_cache
    urls = [d.url for d in found if d.url]
    if urls:
        progress(f"reading the size of {len(urls)} file(s) from the index")
    return DryRun(
        installer,
        dryrun.merge_sizes(found, sizes.sizes(urls, deadline=size_deadline, network=network)),
        cached=cached,
        note=note,
    )


def _run_dry(
    argv: list[str], cmd: Command, installer: str, timeout: float
) -> process.Completed | None:
    """One dry run; None when the installer has no dry run (pip < 22.2); ApplyRefused when the
    index does not offer a pinned release."""
    env = None
    if cmd.env:
        env = {k: v for k, v in os.environ.items() if k not in dict(cmd.env)}
        env.update({k: v for k, v in cmd.env if v is not None})
    try:
        done = process.run(argv, timeout=timeout, env=env)
    except process.ProcessFailure as exc:
        raise ApplyRefused(
            f"could not run {installer} to resolve {cmd.label}: {exc.reason}"
        ) from None
    if done.ok:
        return done
    text = done.stderr + done.stdout
    if "no such option: --dry-run" in text or "no such option: --report" in text:
        return None
    why = "timed out" if done.timed_out else process.last_line(text)
    raise ApplyRefused(
        f"cannot {cmd.label}: the index does not offer it ({why}); nothing was changed",
        tip="check the pinned version and the index (--torch-index, your pip/uv index settings)",
    )


def _read_report(path: Path) -> tuple[Download, ...]:
    """The packages of one pip report; none when pip wrote none or one qfix cannot read (the
    resolution itself succeeded: only the sizes are lost)."""
    try:
        return dryrun.parse_pip_report(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return ()


# The placeholder a command built for a dry run names as its constraints file.
CONSTRAINTS_MARK = "qfix-constraints.txt"
