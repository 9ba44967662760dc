"""Run the real 4-bit load (``script.py``) in the target interpreter and judge it: a ``Verdict``.

The script runs as a child process of the target interpreter with a time limit (through
``repair.process.run``, the one door for processes), so a broken CUDA setup that hangs or crashes
on import costs a failed verdict, never qfix itself. Everything after the child has finished
(``verdict_from_completed``) is pure and is tested with recorded outputs.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, ExitCode
from ..process import VERIFY_LIMIT, Completed, ProcessFailure, one_line, run
from ..render import verdict_to_dict as verdict_to_dict  # qfix.verify/1: render owns it
from . import script as _script

SCHEMA = "qfix.verify/1"
DEVICES = ("auto", "cuda", "cpu")
MODELS = _script.MODELS  # auto (the tiny model when transformers is installed), tiny, none
SCRIPT = Path(_script.__file__).resolve()


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the 4-bit load checked, with what it measured."""

    name: str  # "import-torch", "device", "linear-nf4@cuda:0", "tiny-model@cpu", ...
    ok: bool
    details: Mapping[str, Any] = field(default_factory=dict)  # measured errors, bytes, ms
    error: str | None = None  # one line: what failed, on which device, with the numbers
    failure_id: str | None = None  # failure class (plans/failures.toml) when one fits


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of ``run_verify``; ``exit_code`` is what ``qfix verify`` exits with."""

    ok: bool
    gpu_exercised: bool
    device: str  # "cuda", "cpu" or "none" (nothing ran)
    checks: tuple[Check, ...]
    failure_ids: tuple[str, ...]
    summary: str
    exit_code: ExitCode
    python: str = ""
    requested_device: str = "auto"
    model: str = "tiny"
    versions: Mapping[str, str | None] = field(default_factory=dict)
    gpus: tuple[Mapping[str, Any], ...] = ()  # every visible GPU: device, name, capability
    gpu_note: str | None = None  # why the GPU path was not exercised, when it was not
    elapsed_s: float | None = None
    # --model auto: why the tiny model did not run (an optional package is not installed)
    model_skipped: str | None = None


def run_verify(
    python: str,
    *,
    device: str = "auto",
    model: str = "auto",
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
    output: Callable[[str], None] | None = None,
) -> Verdict:
    """Run the real 4-bit load in the interpreter ``python`` and judge it.

    ``device``: ``auto`` (every visible GPU, else the CPU backend), ``cuda`` (GPUs only; fails
    without one) or ``cpu``. ``model``: ``tiny`` also loads a tiny causal LM with
    ``BitsAndBytesConfig(load_in_4bit=True)``; ``auto`` does so when transformers and accelerate
    are installed and otherwise skips it, saying why (never a failure); ``none`` checks the 4-bit
    layers only (faster, no transformers needed). Never raises for a broken target: a target
    that cannot be started is a
    Verdict with ``ExitCode.BAD_INPUT``; a hang or a crash is a failed Verdict that says where it
    stopped.
    ``progress`` hears each check as it finishes (read from the child's stderr while it runs);
    ``output`` hears each step as it starts ("step: import torch") and, prefixed by "| ", every
    other line the child prints (library warnings), for a live status line or ``-v``.
    Raises ``BadInput`` only for an unknown ``device``/``model`` or a non-positive ``timeout``.
    """
    if device not in DEVICES:
        raise BadInput(f"unknown device {device!r} for verify", tip="use auto, cuda or cpu")
    if model not in MODELS:
        raise BadInput(f"unknown model {model!r} for verify", tip="use auto, tiny or none")
    if not timeout > 0:
        raise BadInput(f"the verify time limit must be positive, got {timeout!r}")
    say = progress or (lambda _text: None)
    say(
        f"running a real 4-bit load in {python} (device {device}, model {model}, "
        f"limit {timeout:g} s)"
    )
    argv = [python, str(SCRIPT), "--device", device, "--model", model]
    started = time.monotonic()
    said: list[str] = []

    def live(line: str) -> None:
        if line.startswith(_script.CHECK_PREFIX):
            try:
                check = _check_from(json.loads(line[len(_script.CHECK_PREFIX) :]))
            except json.JSONDecodeError:
                return
            if check is not None:
                said.append(check.name)
                say(_check_line(check))
        elif line.startswith(_script.STEP_PREFIX):
            if output is not None:
                output("step: " + line[len(_script.STEP_PREFIX) :].strip())
        elif output is not None:
            output("| " + line)

    try:
        done = run(argv, timeout=timeout, limit=VERIFY_LIMIT, on_line=live)  # tens of KB
    except ProcessFailure as exc:
        return _cannot_run(python, device, model, exc.reason)
    verdict = verdict_from_completed(
        done,
        python=python,
        device=device,
        model=model,
        timeout=timeout,
        elapsed_s=time.monotonic() - started,
    )
    for check in verdict.checks:
        if check.name in said:
            said.remove(check.name)  # said while it ran
        else:
            say(_check_line(check))
    if verdict.model_skipped:
        say(f"{'skip':6} tiny-model  {verdict.model_skipped} (optional)")
    return verdict


# --------------------------------------------------------------------------- judging (pure)


def verdict_from_completed(
    done: Completed,
    *,
    python: str,
    device: str,
    model: str,
    timeout: float,
    elapsed_s: float | None = None,
) -> Verdict:
    """Judge a finished (or killed) run of the verify script."""
    doc, why = _result_document(done.stdout)
    if doc is not None:
        return _from_document(doc, python=python, device=device, model=model, elapsed_s=elapsed_s)
    # No result: the child hung, crashed, or the target could not run the script at all.
    checks, last_step = _streamed(done.stderr)
    tail = _stderr_tail(done.stderr)
    details = {
        "returncode": done.returncode,
        "timed_out": done.timed_out,
        "last_step": last_step,
        "stderr_tail": tail,
    }
    if done.exceeded and last_step is not None:
        error = f"the verify script was stopped in step '{last_step}': {done.why()}"
        fid = None
    elif done.exceeded:
        return _cannot_run(
            python, device, model, f"it could not run the verify script ({done.why()})"
        )
    elif done.timed_out:
        where = f" (stopped in step '{last_step}')" if last_step else ""
        error = (
            f"the 4-bit load did not finish within {timeout:g} s{where}; a hung CUDA "
            "initialisation or driver call is the usual cause"
        )
        fid = _script.classify("\n".join(tail))
    elif last_step is None:
        reason = tail[-1] if tail else why
        return _cannot_run(
            python,
            device,
            model,
            f"it could not run the verify script ({reason})",
            returncode=done.returncode,
            stderr_tail=tail,
        )
    else:
        error = f"the verify script {_died(done.returncode)} in step '{last_step}'"
        if tail:
            error += f": {tail[-1]}"
        fid = _script.classify("\n".join(tail))
    checks.append(Check("verify-script", False, details, error, fid))
    return _judge(
        tuple(checks),
        python=python,
        requested=device,
        model=model,
        device="none",
        gpu_exercised=False,
        versions={},
        gpus=(),
        gpu_note=None,
        elapsed_s=elapsed_s,
    )


def _result_document(stdout: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON after the last marker line, or None and why not."""
    marker = f"\n{_script.MARKER}\n"
    text = "\n" + stdout
    at = text.rfind(marker)
    if at < 0:
        return None, "no result on stdout"
    try:
        doc = json.loads(text[at + len(marker) :])
    except json.JSONDecodeError as exc:
        return None, f"unreadable result ({exc.msg})"
    if not isinstance(doc, dict) or doc.get("schema") != _script.SCHEMA:
        return None, "the result has an unknown schema"
    if not isinstance(doc.get("checks"), list):
        return None, "the result has no checks"
    return doc, ""


def _check_from(raw: Any) -> Check | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    details = raw.get("details")
    error = raw.get("error")
    fid = raw.get("failure_id")
    return Check(
        name=raw["name"],
        ok=raw.get("ok") is True,
        details=details if isinstance(details, dict) else {},
        error=error if isinstance(error, str) else None,
        failure_id=fid if isinstance(fid, str) else None,
    )


def _from_document(
    doc: dict[str, Any], *, python: str, device: str, model: str, elapsed_s: float | None
) -> Verdict:
    checks = [c for c in (_check_from(raw) for raw in doc["checks"]) if c is not None]
    if len(checks) != len(doc["checks"]):
        checks.append(
            Check("verify-script", False, {}, "the verify script reported a malformed check")
        )
    names = [c.name for c in checks]
    raw_skip = doc.get("model_skipped")
    skipped = raw_skip if isinstance(raw_skip, str) and model == "auto" else None
    wants_model = model == "tiny" or (model == "auto" and skipped is None)
    # A run that passed every check it reported must also have reported the checks that prove a
    # 4-bit load: both quant types on some device, and the model when one was asked for.
    if checks and all(c.ok for c in checks):
        missing = [
            want
            for want in ("linear-nf4@", "linear-fp4@") + (("tiny-model@",) if wants_model else ())
            if not any(n.startswith(want) for n in names)
        ]
        if missing:
            checks.append(
                Check(
                    "verify-script",
                    False,
                    {"missing": missing},
                    "the verify script ended without the checks "
                    + ", ".join(m.rstrip("@") for m in missing),
                )
            )
    gpu_checks = [c for c in checks if "@cuda:" in c.name]
    raw_versions = doc.get("versions")
    versions: dict[str, str | None] = {}
    if isinstance(raw_versions, dict):
        versions = {str(k): v if isinstance(v, str) else None for k, v in raw_versions.items()}
    gpus = tuple(g for g in doc.get("devices") or () if isinstance(g, dict))
    note = doc.get("gpu_note")
    return _judge(
        tuple(checks),
        python=python,
        requested=device,
        model=model,
        device=str(doc.get("device") or "none"),
        gpu_exercised=doc.get("gpu_exercised") is True and bool(gpu_checks),
        versions=versions,
        gpus=gpus,
        gpu_note=note if isinstance(note, str) else None,
        elapsed_s=elapsed_s,
        model_skipped=skipped,
    )


def _judge(
    checks: tuple[Check, ...],
    *,
    python: str,
    requested: str,
    model: str,
    device: str,
    gpu_exercised: bool,
    versions: Mapping[str, str | None],
    gpus: tuple[Mapping[str, Any], ...],
    gpu_note: str | None,
    elapsed_s: float | None,
    model_skipped: str | None = None,
) -> Verdict:
    failed = [c for c in checks if not c.ok]
    ok = bool(checks) and not failed
    ids: list[str] = []
    for c in failed:
        if c.failure_id and c.failure_id not in ids:
            ids.append(c.failure_id)
    if not ok:
        code = ExitCode.PROBLEMS
    elif gpu_exercised:
        code = ExitCode.OK
    else:
        code = ExitCode.VERIFY_CPU_ONLY
    verdict = Verdict(
        ok=ok,
        gpu_exercised=gpu_exercised,
        device=device,
        checks=checks,
        failure_ids=tuple(ids),
        summary="",
        exit_code=code,
        python=python,
        requested_device=requested,
        model=model,
        versions=dict(versions),
        gpus=gpus,
        gpu_note=gpu_note,
        elapsed_s=None if elapsed_s is None else round(elapsed_s, 3),
        model_skipped=model_skipped,
    )
    return _with_summary(verdict)


def _with_summary(v: Verdict) -> Verdict:
    from dataclasses import replace

    stack = ", ".join(
        f"{k} {val}" for k, val in v.versions.items() if k in ("torch", "bitsandbytes") and val
    )
    ran_model = any(c.name.startswith("tiny-model@") for c in v.checks)
    what = "NF4 and FP4 layers" + (" and the tiny 4-bit model" if ran_model else "")
    if v.ok and v.gpu_exercised:
        where = ", ".join(_gpu_label(g) for g in v.gpus) or "the GPU"
        text = f"4-bit load verified on {where}: {what} passed ({stack})."
    elif v.ok:
        text = (
            f"4-bit load verified on the CPU backend only: {what} passed ({stack}). "
            f"The GPU path was NOT exercised: {v.gpu_note or 'no GPU was checked'}."
        )
    else:
        failed = [c for c in v.checks if not c.ok]
        first = failed[0]
        text = f"4-bit verification failed: {first.error or first.name}"
        if first.failure_id:
            text += f" [{first.failure_id}]"
        if len(failed) > 1:
            text += f" (and {len(failed) - 1} more failed check{'s' if len(failed) > 2 else ''})"
    if v.model_skipped and v.ok:
        text += (
            f" The tiny model was skipped: {v.model_skipped} (optional; install transformers "
            "and accelerate to check it too)."
        )
    return replace(v, summary=text)


def _gpu_label(g: Mapping[str, Any]) -> str:
    name = g.get("name")
    sm = g.get("sm")
    extra = ", ".join(str(x) for x in (name, sm) if x)
    return f"{g.get('device', 'cuda')} ({extra})" if extra else str(g.get("device", "cuda"))


def _cannot_run(
    python: str,
    device: str,
    model: str,
    reason: str,
    *,
    returncode: int | None = None,
    stderr_tail: list[str] | None = None,
) -> Verdict:
    check = Check(
        "run-target",
        False,
        {"returncode": returncode, "stderr_tail": stderr_tail or []},
        f"cannot run the target interpreter {python}: {reason}",
    )
    return Verdict(
        ok=False,
        gpu_exercised=False,
        device="none",
        checks=(check,),
        failure_ids=(),
        summary=check.error or "",
        exit_code=ExitCode.BAD_INPUT,
        python=python,
        requested_device=device,
        model=model,
    )


def _streamed(stderr: str) -> tuple[list[Check], str | None]:
    """The checks a killed child had finished, and the step it was in."""
    checks: list[Check] = []
    last_step: str | None = None
    for line in stderr.splitlines():
        if line.startswith(_script.STEP_PREFIX):
            last_step = line[len(_script.STEP_PREFIX) :].strip() or last_step
        elif line.startswith(_script.CHECK_PREFIX):
            try:
                check = _check_from(json.loads(line[len(_script.CHECK_PREFIX) :]))
            except json.JSONDecodeError:
                continue
            if check is not None:
                checks.append(check)
    return checks, last_step


def _stderr_tail(stderr: str, keep: int = 6) -> list[str]:
    """The last lines of stderr that are not our own step/check lines (for the JSON report)."""
    lines = [
        one_line(ln, 400)  # printable: a broken target may write binary garbage
        for ln in stderr[-256 * 1024 :].splitlines()
        if ln.strip() and not ln.startswith((_script.STEP_PREFIX, _script.CHECK_PREFIX))
    ]
    return lines[-keep:]


def _died(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode} without a result"


# --------------------------------------------------------------------------- rendering


def _check_line(c: Check) -> str:
    head = f"{'ok' if c.ok else 'FAILED':6} {c.name}"
    d = c.details
    if "err_vs_full" in d:
        head += (
            f"  error vs full precision {d['err_vs_full']:.3f} (bounds "
            f"{d.get('bounds_vs_full')}), vs dequantized {d.get('err_vs_dequant', 0):.1e} "
            f"(tol {d.get('tol_vs_dequant', 0):.1e}), 4-bit weights "
            f"{d.get('memory_ratio', 0):.0%} of {d.get('compute_dtype')}, "
            f"{d.get('time_ms', 0):.0f} ms"
        )
    elif "logits_err_vs_full" in d:
        head += (
            f"  {d.get('linear4bit_layers')}/{d.get('linear_layers')} linear layers 4-bit, "
            f"logits error {d['logits_err_vs_full']:.3f} (bound {d.get('logits_bound')}), "
            f"{d.get('generated_tokens')} tokens generated, memory "
            f"{d.get('memory_ratio', 0):.0%} of {d.get('compute_dtype')}, "
            f"{d.get('time_ms', 0):.0f} ms"
        )
    if c.error:
        head += f"  {c.error}"
    if c.failure_id:
        head += f"  [{c.failure_id}]"
    return head


def format_verdict(v: Verdict) -> str:
    """Plain-text report: one line per check, then the summary (for the CLI's human output)."""
    return "\n".join([*(_check_line(c) for c in v.checks), "", v.summary])
