"""``qfix verify``: prove an environment with a real 4-bit load in its own interpreter.

``script.py`` is what the target interpreter runs (it imports torch and bitsandbytes there, never
here); ``runner.py`` starts it with a time limit and turns its report into a ``Verdict``.
"""

from .runner import (
    DEVICES,
    MODELS,
    SCHEMA,
    Check,
    Verdict,
    format_verdict,
    run_verify,
    verdict_from_completed,
    verdict_to_dict,
)

__all__ = [
    "DEVICES",
    "MODELS",
    "SCHEMA",
    "Check",
    "Verdict",
    "format_verdict",
    "run_verify",
    "verdict_from_completed",
    "verdict_to_dict",
]
