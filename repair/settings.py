"""Settings: every input of a run (flags and environment variables) resolved once, up front.

The pipeline builds one frozen ``Settings`` from the command line and ``os.environ``; nothing
below it reads ``QFIX_TORCH_INDEX`` or ``QFIX_PROBE_TIMEOUT`` again or re-checks a choice. Pure:
the environment comes in as a mapping. Each resolver raises BadInput (exit 2) with one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .commands import validate_index_url
from .errors import BadInput

DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl"
TORCH_INDEX_ENV = "QFIX_TORCH_INDEX"
PROBE_TIMEOUT_ENV = "QFIX_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 20.0
INSTALLERS = ("auto", "uv", "pip")
VERIFY_MODES = ("none", "auto", "tiny", "skip")


@dataclass(frozen=True, slots=True)
class Settings:
    """What one qfix command runs with. ``python`` is None where no interpreter is read
    (``--facts FILE``); ``torch_index_flag`` is ``--torch-index`` as given (it overrides even a
    saved plan's base); ``installer`` is auto/uv/pip until apply resolves it to uv or pip."""

    python: str | None = None
    torch_index_base: str = DEFAULT_TORCH_INDEX
    torch_index_flag: str | None = None
    installer: str = "auto"
    verify: str = "none"
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT


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
