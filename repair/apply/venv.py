"""Which kind of interpreter a target is, whether qfix may change it, and fresh venvs for `--venv`.

qfix changes only virtual environments (design, "Apply and rollback"). A system interpreter, or
one marked externally managed (PEP 668: an ``EXTERNALLY-MANAGED`` file in its stdlib folder, as
Debian and Ubuntu ship), belongs to the OS package manager; pip itself refuses it since 23.0.
A conda environment is changeable but pip installs there bypass conda's own solver, so it needs
an explicit ``allow_conda``.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from .. import process, shellquote
from ..errors import ApplyRefused, BadInput, InterpreterError
from ..facts import PythonInfo

# The kind and the install paths come from the one target script (probe/target_script.py,
# ``--where``) and its one parser, the same that `qfix detect` reads the python section with.
from ..probe.interpreter import TargetPaths as TargetPaths
from ..probe.interpreter import inspect_target as inspect_target


class TargetKind(str, enum.Enum):
    VENV = "venv"
    CONDA = "conda"
    SYSTEM = "system"
    EXTERNALLY_MANAGED = "externally-managed"
    UNKNOWN = "unknown"


def classify_target(info: PythonInfo) -> TargetKind:
    """venv / conda / system / externally managed / unknown, from the probe's PythonInfo.

    A venv wins over everything else: PEP 668 says the marker of the base interpreter does not
    apply inside a virtual environment made from it.
    """
    if info.in_venv:
        return TargetKind.VENV
    if info.conda:
        return TargetKind.CONDA
    if info.externally_managed:
        return TargetKind.EXTERNALLY_MANAGED
    if info.in_venv is False:
        return TargetKind.SYSTEM
    return TargetKind.UNKNOWN


def require_changeable(
    info: PythonInfo,
    *,
    allow_conda: bool = False,
    allow_system: bool = False,
    break_system_packages: bool = False,
) -> TargetKind:
    """The kind of ``info``'s interpreter if qfix may change it; else ApplyRefused (exit 6).

    ``allow_system`` (``--system``, implied by ``--break-system-packages``): a non-venv
    interpreter (Colab, Kaggle, Docker images install into one) by consent; one marked
    externally managed (PEP 668) needs ``break_system_packages``, the flag pip itself asks for.
    """
    kind = classify_target(info)
    python = info.executable or "the target interpreter"
    allow_system = allow_system or break_system_packages
    quoted = shellquote.quote(python)
    ways = (
        f"pass --system to change it anyway (Colab, Kaggle, Docker: same lock, snapshot and "
        f"rollback), or `qfix apply --python {quoted} --venv NEW` to build a fresh venv with the "
        "fixed stack"
    )
    if kind is TargetKind.VENV:
        return kind
    if kind is TargetKind.CONDA:
        if allow_conda:
            return kind
        raise ApplyRefused(
            f"{python} is a conda environment: pip/uv installs there bypass conda's solver",
            tip=f"pass --allow-conda to change it anyway, or use "
            f"`qfix apply --python {quoted} --venv NEW`",
        )
    if kind is TargetKind.EXTERNALLY_MANAGED:
        if break_system_packages:
            return kind
        raise ApplyRefused(
            f"{python} is externally managed (PEP 668): its packages belong to the OS package "
            "manager"
            + ("; --system is not enough here" if allow_system else ", qfix will not change it"),
            tip=f"`qfix apply --python {quoted} --venv NEW` builds a fresh venv; "
            "--break-system-packages overrides the OS's marker as pip's flag of that name does",
        )
    if kind is TargetKind.SYSTEM:
        if allow_system:
            return kind
        raise ApplyRefused(
            f"{python} is not a virtual environment: qfix changes it only with --system",
            tip=ways,
        )
    raise ApplyRefused(f"cannot tell whether {python} is a virtual environment", tip=ways)


def require_writable(paths: TargetPaths) -> None:
    """ApplyRefused (exit 6) unless qfix may write every folder an install and its journal
    touch: a system interpreter owned by root, run by a user, is refused before any change."""
    for folder in (paths.prefix, paths.purelib, paths.platlib, paths.scripts):
        if folder and os.path.isdir(folder) and not os.access(folder, os.W_OK):
            raise ApplyRefused(
                f"cannot write to {folder}: this user may not change {paths.prefix}",
                tip="run as the owner of that interpreter, or use `qfix apply --venv NEW`",
            )


def venv_python(path: Path) -> Path:
    """The interpreter of the venv at ``path`` (not resolved: bin/python is a symlink)."""
    if os.name == "nt":
        return path.absolute() / "Scripts" / "python.exe"
    return path.absolute() / "bin" / "python"


def create_venv(path: Path, base_python: str, *, timeout: float = 600) -> str:
    """Create a fresh venv (with pip) at ``path`` from ``base_python``; return its interpreter.

    Refuses (BadInput) a path that exists and is not an empty folder: `--venv NEW` means new.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadInput(
            f"--venv {path}: exists and is not empty; qfix creates new environments only",
            tip="choose a new path, or --python PATH to repair that one",
        )
    try:
        done = process.run([base_python, "-m", "venv", str(path)], timeout=timeout)
    except process.ProcessFailure as exc:
        raise InterpreterError(f"cannot run {base_python} to create {path}: {exc.reason}") from None
    if not done.ok:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = "timed out" if done.timed_out else (lines[-1] if lines else f"exit {done.returncode}")
        raise BadInput(
            f"could not create a virtual environment at {path} with {base_python}: {why}",
            tip="on Debian/Ubuntu install python3-venv",
        )
    python = venv_python(path)
    if not python.exists():
        raise BadInput(f"{base_python} -m venv {path} made no interpreter at {python}")
    return str(python)
