"""Settings: every input of a run (flags and environment variables) resolved once, up front.

The pipeline builds one frozen ``Settings`` from the command line and ``os.environ``; nothing
below it reads ``QFIX_TORCH_INDEX`` or ``QFIX_PROBE_TIMEOUT`` again or re-checks a choice. Pure:
the environment comes in as a mapping. Each resolver raises BadInput (exit 2) with one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import shellquote
from .commands import validate_index_url
from .errors import BadInput
from .indexconfig import InstallerChoice
from .pins import ProjectPins

DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl"
TORCH_INDEX_ENV = "QFIX_TORCH_INDEX"
PROBE_TIMEOUT_ENV = "QFIX_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 20.0
INSTALLERS = ("auto", "uv", "pip")
VERIFY_MODES = ("none", "auto", "tiny", "skip")


# Files a tool installer leaves at the root of the private venv it made for an application:
# pipx writes pipx_metadata.json (pipx/src/pipx/pipx_metadata_file.py), uv writes
# uv-receipt.toml (https://docs.astral.sh/uv/concepts/tools/#tool-environments).
TOOL_VENV_MARKERS = ("pipx_metadata.json", "uv-receipt.toml")


@dataclass(frozen=True, slots=True)
class Target:
    """The interpreter a command reads or changes, and why that one (printed by every command:
    ``qfix: target: <python> (<reason>)``; ``target: {python, reason}`` in JSON)."""

    python: str
    reason: str
    # What was passed over on the way, said on stderr and in JSON (``target.warnings``): a
    # project's ./.venv whose interpreter is missing or cannot run.
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"python": self.python, "reason": self.reason, "warnings": list(self.warnings)}


def is_tool_venv(prefix: str, base_prefix: str, root_files: frozenset[str]) -> bool:
    """Whether the environment at ``prefix`` is an application's private venv made by pipx or
    ``uv tool`` (``root_files``: the names of the files at its root). Such a venv holds qfix
    and its dependencies only: it is never the environment the user means to repair."""
    return prefix != base_prefix and bool(root_files & set(TOOL_VENV_MARKERS))


def next_step_target(python: str | None, *, os_name: str | None = None) -> str:
    """`` --python <python>`` for a command printed as a next step, so that pasting it acts on
    the environment this one looked at (empty when no interpreter was read: ``--facts``).
    ``os_name``: the shell it is pasted into when that is another machine's ("nt" for a
    Windows host's facts); default this machine's."""
    if not python:
        return ""
    quoted = (
        shellquote.quote(python) if os_name is None else shellquote.quote(python, os_name=os_name)
    )
    return f" --python {quoted}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What one qfix command runs with. ``python`` is None where no interpreter is read
    (``--facts FILE``); ``torch_index_flag`` is ``--torch-index`` as given (it overrides even a
    saved plan's base); ``installer`` is auto/uv/pip until apply resolves it to uv or pip."""

    python: str | None = None
    target_reason: str | None = None  # why ``python`` (see Target)
    target_warnings: tuple[str, ...] = ()  # what discovery passed over (Target.warnings)
    torch_index_base: str = DEFAULT_TORCH_INDEX
    torch_index_flag: str | None = None
    installer: str = "auto"
    verify: str = "none"
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    # The installer resolved before any preview (pip or uv, why, the user's index settings);
    # None where no environment is read (--facts) or none will be installed into.
    setup: InstallerChoice | None = None
    # --system (a non-venv interpreter by consent) and --break-system-packages (which implies it
    # and also overrides an externally-managed marker).
    system: bool = False
    break_system_packages: bool = False
    # --requirements / --constraint, read once (repair.projectpins); None when none was given
    project_pins: ProjectPins | None = None

    @property
    def target(self) -> Target | None:
        if self.python is None:
            return None
        return Target(self.python, self.target_reason or "", self.target_warnings)


def torch_index_base(cli_value: str | None, environ: Mapping[str, str]) -> str:
    """The base of the PyTorch-style index: ``--torch-index``, else $QFIX_TORCH_INDEX, else the
    official https://download.pytorch.org/whl. Validated (https, or http on loopback)."""
    return validate_index_url(cli_value or environ.get(TORCH_INDEX_ENV) or DEFAULT_TORCH_INDEX)


def probe_timeout(environ: Mapping[str, str]) -> float:
    """$QFIX_PROBE_TIMEOUT (seconds for the target interpreter to answer), default 20."""
    try:
        timeout = float(environ.get(PROBE_TIMEOUT_ENV, str(DEFAULT_PROBE_TIMEOUT)))
    except ValueError:
        timeout = float("nan")
    if not math.isfinite(timeout) or timeout <= 0 or timeout > 3600:
        raise BadInput(f"{PROBE_TIMEOUT_ENV} must be a number of seconds between 0 and 3600")
    return timeout


def installer_choice(choice: str) -> str:
    if choice not in INSTALLERS:
        raise BadInput(f"--installer must be auto, uv or pip, not {choice!r}")
    return choice


def verify_mode(mode: str) -> str:
    if mode not in VERIFY_MODES:
        raise BadInput(f"--verify must be none, auto, tiny or skip, not {mode!r}")
    return mode
