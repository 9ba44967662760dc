"""The Python face of `qfix plan`: ask "will 4-bit work here?" from a training script.

    from repair import preflight
    preflight.require_4bit()          # raises Not4BitReady with the diagnosis and the fix
    model = AutoModelForCausalLM.from_pretrained(..., quantization_config=BitsAndBytesConfig(...))

It runs the same pipeline as `qfix plan` (design, "A Python API beside the CLI"): the running
interpreter is read by the stdlib target script in a child process (it never imports torch, so a
broken CUDA setup cannot hang or crash the caller), the host by NVML; diagnosis and planning are
the pure core. Nothing is installed or changed. Measured in bench/bench_preflight.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from . import shellquote
from .facts import Facts
from .findings import Finding, Severity
from .plan import Plan

__all__ = ["Not4BitReady", "Preflight", "check", "require_4bit"]


@dataclass(frozen=True, slots=True)
class Preflight:
    """What `qfix plan` would say: the facts read, the findings, and the repair plan."""

    python: str
    facts: Facts
    findings: tuple[Finding, ...]
    plan: Plan

    @property
    def ok(self) -> bool:
        """True when 4-bit should work here (warnings such as "no GPU: CPU backend" allowed)."""
        return self.plan.healthy

    @property
    def fix_command(self) -> str:
        """The exact command that repairs this environment (the plan, applied with rollback;
        within the project's pins when ``check`` was given them)."""
        pins = "".join(
            f" {flag} {shellquote.quote(path)}"
            for flag, path in (
                o.split(" ", 1) for o in self.plan.project_pins if o.startswith("--")
            )
        )
        return f"qfix apply --python {shellquote.quote(self.python)}{pins} --yes"


class Not4BitReady(RuntimeError):
    """4-bit quantization will not work in this interpreter; the message is the diagnosis and
    the exact command that fixes it. ``result`` holds the findings and the plan."""

    def __init__(self, result: Preflight) -> None:
        self.result = result
        super().__init__(_message(result))


def check(
    python: str | None = None,
    *,
    timeout: float = 20.0,
    requirements: Sequence[str] = (),
    constraints: Sequence[str] = (),
) -> Preflight:
    """Diagnose ``python`` (default: the running interpreter) for 4-bit; changes nothing.
    ``requirements``/``constraints``: the project's files (as ``qfix plan -r/-c``).

    Raises repair.errors.QfixError only when the interpreter cannot be read at all, or a
    requirements file is bad (BadInput naming the file and line)."""
    from . import pipeline
    from .settings import Settings

    target = python or sys.executable
    pins = None
    if requirements or constraints:
        from .projectpins import read_project_pins

        pins = read_project_pins(requirements, constraints)
    settings = Settings(python=target, target_reason="preflight", probe_timeout=timeout)
    facts = pipeline.detect(settings, prefetch=True)
    analysis = pipeline.analyse(facts, pins=pins)
    plan = pipeline.with_commands(analysis.plan, installed=facts.packages)
    return Preflight(target, facts, analysis.plan.findings, plan)


def require_4bit(
    python: str | None = None,
    *,
    timeout: float = 20.0,
    requirements: Sequence[str] = (),
    constraints: Sequence[str] = (),
) -> Preflight:
    """``check()``, raising Not4BitReady unless 4-bit will work; returns the result when it will."""
    result = check(python, timeout=timeout, requirements=requirements, constraints=constraints)
    if not result.ok:
        raise Not4BitReady(result)
    return result


def _message(result: Preflight) -> str:
    errors = [f for f in result.findings if f.severity is Severity.ERROR] or list(result.findings)
    lines = [f"4-bit quantization will not work in {result.python}:"]
    lines += [f"  - {f.id}: {f.summary}" for f in errors]
    if result.plan.steps:
        lines.append(f"Fix it with: {result.fix_command}")
        lines.append(f"  (preview first: qfix plan --python {shellquote.quote(result.python)})")
    lines += [f"  manual: {m.text}" for m in result.plan.manual if m.required]
    if not result.plan.steps and not any(m.required for m in result.plan.manual):
        lines.append(f"See: qfix plan --python {shellquote.quote(result.python)}")
    return "\n".join(lines)
