"""The installer qfix runs: uv when it can be found, else pip (the effectful part: PATH lookup).

The commands themselves are pure and live in ``repair.commands`` (re-exported here for the
transaction): every command names the target interpreter explicitly (``<python> -m pip`` /
``uv pip --python <python>``), so qfix never installs into the interpreter it happens to run from.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..commands import Command as Command
from ..commands import build_commands as build_commands
from ..commands import constraint_lines as constraint_lines
from ..commands import normalize as normalize
from ..errors import BadInput


def find_uv() -> str | None:
    """uv on PATH, else beside the running interpreter (qfix installed with uv in its venv)."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


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
