"""The `qfix` command line: parse, call the pipeline, render, exit.

Every command has --json. Errors reach the user as one line (plus a tip) and the exit code of
their class (repair.errors.ExitCode); never a traceback for an expected failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from . import __version__
from .commands import redact_text
from .errors import BadInput, ExitCode, QfixError
from .fleet.cli import fleet_app

if TYPE_CHECKING:
    from .terminal import Terminal

if TYPE_CHECKING:
    from .settings import Settings


app = typer.Typer(
    name="qfix",
    help="Diagnose and repair torch + bitsandbytes 4-bit (QLoRA) setups.\n\n"
    "qfix reads the NVIDIA driver and GPUs (NVML), the torch build and bitsandbytes of a Python "
    "environment, explains what is wrong, plans the smallest repair as a dry-run diff, applies it "
    "inside a virtual environment with rollback, and proves it with a real 4-bit load.\n\n"
    "Exit codes: 0 healthy/repaired, 1 problems found, 2 bad input, 3 apply failed (rolled "
    "back), 4 rollback failed, 5 locked, 6 refused, 7 cannot tell (nothing found, but a "
    "version or the facts missing), 10 verified on the CPU only, 11 an unfinished apply must "
    "be rolled back first, "
    "12 no space/read-only/permission, 13 changed by another process, 70 internal error (a "
    "bug). With --json, errors "
    'are JSON on stdout too: {"error": ..., "exit_code": ...}.',
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(fleet_app, name="fleet")

PythonOpt = Annotated[
    str | None,
    typer.Option(
        "--python",
        help="Target interpreter or venv directory (default, in uv's order: $VIRTUAL_ENV, "
        "$CONDA_PREFIX, a .venv here or in a parent folder, the Python running qfix unless it "
        "is qfix's own pipx/uv tool venv, the first python3 on PATH).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
FactsOpt = Annotated[
    str | None,
    typer.Option(
        "--facts",
        help="Read facts from a qfix.facts/1 file ('-' = stdin) instead of probing this machine.",
        show_default=False,
    ),
]
ResolveOpt = Annotated[
    bool,
    typer.Option(
        "--resolve",
        help="Also resolve the plan with the installer's dry run, as apply would (changes "
        "nothing): a pin the index lacks is refused (exit 6), and the download sizes come "
        "from the index files.",
    ),
]
RequirementsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--requirements",
        "-r",
        help="The project's requirements file (pip's format; repeatable): the plan never "
        "leaves its pins, and apply passes them to the installer as constraints.",
        show_default=False,
    ),
]
ConstraintOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--constraint",
        "-c",
        help="The project's constraints file (pip's format; repeatable), like --requirements.",
        show_default=False,
    ),
]
TorchIndexOpt = Annotated[
    str | None,
    typer.Option(
        "--torch-index",
        help="Base of the PyTorch wheel index (mirrors); default "
        "$QFIX_TORCH_INDEX, else https://download.pytorch.org/whl.",
        show_default=False,
    ),
]


# -q (-1): errors and results only; 0: progress lines; -v (1): also every line of the installers.
_verbosity = 0


def _write(stream: TextIO, text: str) -> None:
    """Write ``text`` as the stream can encode it (ASCII look-alikes on an ASCII terminal)."""
    from .render import for_terminal

    stream.write(for_terminal(text, getattr(stream, "encoding", None)))
    stream.flush()


_STARTED = time.time()  # the command's start, for --record's timing
RecordOpt = Annotated[
    str | None,
    typer.Option(
        "--record",
        help="Also write this node's qfix.node/1 record to this file, or into this directory "
        "as <node>.<command>.json (atomic; for `qfix fleet`).",
        show_default=False,
    ),
]


def _record(path: str | None, kind: str, doc: dict[str, Any], code: int) -> None:
    """``--record``: this node's qfix.node/1 record around ``doc`` (a render *_to_dict value)."""
    if path is not None:
        from .fleet.records import write_record

        write_record(path, kind, doc, code, _STARTED)


def _out(text: str, *, whole: bool = False) -> None:
    """The result on stdout. Credentials in any URL are masked in everything qfix prints, text
    and JSON (issue 16); text for a person at a terminal is wrapped to its width (a pipe and
    JSON get it whole, and so does anything made to be pasted: ``whole``)."""
    text = redact_text(text)
    width = _columns()
    if not whole and width is not None:
        from .terminal import fit_to_width

        text = fit_to_width(text, width)
    _write(sys.stdout, text + "\n")


def _digest_line(digest: str) -> str:
    """ "Plan digest: sha256:<64 hex>" is 84 columns: on a narrower terminal the digest goes
    whole on a line of its own, to be copied, rather than wrapped by the terminal."""
    line = f"Plan digest: {digest}"
    width = _columns()
    return f"Plan digest:\n  {digest}" if width is not None and len(line) > width else line


def _columns() -> int | None:
    """The columns text for a person may use: the terminal's on stdout, else None (a pipe, a
    file: whole lines, tables as tables)."""
    if not sys.stdout.isatty():
        return None
    return max(40, shutil.get_terminal_size((100, 24)).columns - 1)


def _say_target(settings: Settings, as_json: bool, python: str | None = None) -> None:
    """Which environment this command looks at and why: one line on stderr (text mode; not
    with -q, which leaves errors and results only)."""
    target = settings.target
    if target is not None and _verbosity >= 0:
        for warning in target.warnings:  # in JSON mode too: stderr is not the document
            _write(sys.stderr, f"qfix: warning: {redact_text(warning)}\n")
    if target is not None and not as_json and _verbosity >= 0:
        shown = python or target.python
        why = target.reason if python is None else f"new venv; {target.reason}"
        sys.stderr.write(f"qfix: target: {shown} ({why})\n")


def _json_target(text: str, settings: Settings, python: str | None = None) -> str:
    """The JSON document with ``target: {python, reason}`` (merged into a plan's own target)."""
    target = settings.target
    if target is None:
        return text
    doc = json.loads(text)
    if isinstance(doc, dict):
        info = target.to_dict()
        if python is not None:
            info = {**info, "python": python, "reason": f"new venv; {target.reason}"}
        old = doc.get("target")
        doc["target"] = {**(old if isinstance(old, dict) else {}), **info}
    return json.dumps(doc, indent=2)


def _progress(line: str) -> None:
    if _verbosity >= 0:
        _write(sys.stderr, f"qfix: {redact_text(line)}\n")


def _terminal(as_json: bool) -> Terminal:
    """Progress on stderr for this command (nothing with --json or -q; a live status line and a
    ticker only when stderr is a terminal)."""
    from .terminal import Terminal

    return Terminal(sys.stderr, verbosity=-1 if as_json else _verbosity)


@app.command()
def detect(
    python: PythonOpt = None,
    as_json: JsonOpt = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also import torch and bitsandbytes in a "
            "child process (time-limited) to record CUDA availability, "
            "the compiled arch list and whether the native library "
            "loads.",
        ),
    ] = False,
    record: RecordOpt = None,
) -> int:
    """Print the facts of this machine and a Python environment (qfix.facts/1 with --json)."""
    from . import pipeline
    from .render import render_facts

    settings = pipeline.make_settings(python=python)
    _say_target(settings, as_json)
    pending = _warn_pending(settings.python)
    with _terminal(as_json) as term:
        term.wait(f"reading {settings.python}" + (" (--deep imports torch)" if deep else ""))
        facts = pipeline.detect(settings, deep=deep)
    if record is not None:
        from .facts import facts_to_dict

        _record(record, "detect", facts_to_dict(facts), ExitCode.OK)
    text = render_facts(facts, as_json=as_json)
    _out(_json_target(text, settings) if as_json else text, whole=as_json)
    return ExitCode.UNFINISHED if pending else ExitCode.OK


def _error_option(error: str | None, facts: str | None) -> str | None:
    """`plan --error`: the text given, or stdin's for '-'; BadInput when it is empty."""
    if error == "-":
        if facts == "-":
            raise BadInput("--facts - and --error - cannot both read stdin; give one as a file")
        error = sys.stdin.read()
        if not error.strip():
            raise BadInput("--error is empty: stdin gave no error text (pipe the failing output)")
    elif error is not None and not error.strip():
        raise BadInput("--error is empty: give the error message the user saw, or - for stdin")
    return error


@app.command()
def plan(
    python: PythonOpt = None,
    facts: FactsOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save the plan (qfix.plan/1) for `qfix apply --plan FILE`."),
    ] = None,
    torch_index: TorchIndexOpt = None,
    error: Annotated[
        str | None,
        typer.Option(
            "--error",
            help="An error message the user saw ('-' = stdin): the classes it points to "
            "count where the facts cannot rule them out.",
            show_default=False,
        ),
    ] = None,
    record: RecordOpt = None,
    resolve: ResolveOpt = False,
    requirements: RequirementsOpt = None,
    constraint: ConstraintOpt = None,
) -> int:
    """Diagnose and show the smallest repair as a dry-run diff. Exit 0 healthy, 1 repair needed,
    7 cannot tell (nothing found, but torch's or bitsandbytes' version missing), 11 an
    unfinished apply."""
    from . import pipeline
    from .render import render_plan

    if resolve and facts is not None:
        raise BadInput("--resolve needs an environment to resolve for, not --facts")
    error = _error_option(error, facts)
    settings = pipeline.make_settings(
        python=python,
        facts_file=facts,
        torch_index=torch_index,
        needs_index=True,
        pin_files=(requirements, constraint),
    )
    _say_target(settings, as_json)
    pending = _warn_pending(settings.python)
    with _terminal(as_json) as term:
        if facts is None:
            term.wait(f"reading {settings.python}")
        analysis = pipeline.analyse(
            pipeline.get_facts(settings, facts),
            torch_index=settings.torch_index_base,
            error_text=error,
            pins=settings.project_pins,
        )
    result = pipeline.with_commands(
        analysis.plan, installed=analysis.facts.packages, setup=settings.setup
    )
    _record(record, "plan", result.to_dict(), _verdict_code(result))
    if out is not None:
        try:
            # The saved plan keeps the index URLs as given (apply installs from them), so it is
            # readable by its owner only, like pip.conf with a token.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as f:
                f.write(render_plan(result, as_json=True) + "\n")
        except OSError as exc:
            raise BadInput(f"could not write the plan to {out}: {exc.strerror}") from None
    text = _plan_text(result, settings, as_json=as_json, resolve=resolve)
    _out(_json_target(text, settings) if as_json else text, whole=as_json)
    if not as_json and not result.cannot_tell:
        # what a reviewer approves (JSON: "digest"); see docs/apply.md. "Cannot tell" has
        # nothing to approve, and its empty plan's digest would read like a healthy one's.
        _out("\n" + _digest_line(result.digest()))
    if out is not None and not as_json:
        _out(f"\nPlan saved to {out}")
    if pending:
        return ExitCode.UNFINISHED
    return _verdict_code(result)


def _verdict_code(plan: Any) -> ExitCode:
    """A plan's exit code, and its node record's: 7 cannot tell, 0 healthy, 1 problems."""
    if plan.cannot_tell:
        return ExitCode.CANNOT_TELL
    return ExitCode.OK if plan.healthy else ExitCode.PROBLEMS


def _plan_text(result: Any, settings: Settings, *, as_json: bool, resolve: bool) -> str:
    """The plan as text or JSON; with ``--resolve`` also what the dry run would download (text:
    lines after the plan; JSON: a ``resolved`` object)."""
    from . import pipeline
    from .dryrun import dry_run_to_dict
    from .render import render_plan, render_resolved

    text = render_plan(
        result,
        as_json=as_json,
        elsewhere=settings.python is None,
        width=_columns(),
    )
    if not resolve:
        return text
    with _terminal(as_json) as term:
        dry = pipeline.resolve_plan(settings, result, progress=term.progress)
    if as_json:
        return json.dumps({**json.loads(text), "resolved": dry_run_to_dict(dry)}, indent=2)
    return text + render_resolved(dry)


@app.command()
def explain(
    text: Annotated[
        str | None,
        typer.Argument(
            help="The error message or traceback; '-' (or no TEXT) reads it from stdin, as "
            "in `python train.py 2>&1 | qfix explain -`.",
            show_default=False,
        ),
    ] = None,
    facts: FactsOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Match an error message or traceback against the failure catalogue and what `qfix plan
    --error` reads from it. Exit 0 when explained, 1 when no class matched, 2 bad input."""
    from . import pipeline
    from .render import render_explain

    if text is None or text == "-":
        if sys.stdin.isatty():
            raise BadInput(
                "give the error text as an argument, or pipe it in: "
                "`python train.py 2>&1 | qfix explain -`"
            )
        text = sys.stdin.read()
    if not text.strip():
        raise BadInput("the error text is empty")
    result = pipeline.explain_text(text, pipeline.read_facts(facts) if facts else None)
    _out(render_explain(result, as_json=as_json, facts_given=bool(facts)), whole=as_json)
    return ExitCode.OK if result.matches else ExitCode.PROBLEMS


@app.command()
def matrix(
    python: PythonOpt = None,
    facts: FactsOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Show which torch releases x CUDA variants would work with this driver and these GPUs."""
    from . import pipeline
    from .render import render_matrix

    settings = pipeline.make_settings(python=python, facts_file=facts)
    _say_target(settings, as_json)
    view, cells = pipeline.matrix(pipeline.get_facts(settings, facts))
    text = render_matrix(view, cells, as_json=as_json, width=None if as_json else _columns())
    _out(_json_target(text, settings) if as_json else text, whole=as_json)
    return ExitCode.OK


@app.command()
def verify(
    python: PythonOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto | cuda | cpu")] = "auto",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="auto: also load a tiny causal LM in 4-bit when transformers and accelerate "
            "are installed (skipped, with one line, when not); tiny: require it; none: layers only",
        ),
    ] = "auto",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before the check is stopped.")
    ] = 300.0,
    as_json: JsonOpt = False,
    record: RecordOpt = None,
) -> int:
    """Prove the environment with a real 4-bit load (NF4/FP4 layers, optionally a tiny model).
    Exit 0 GPU path passed, 10 passed on the CPU only, 1 failed."""
    from . import pipeline
    from .render import render_verdict, verdict_to_dict

    settings = pipeline.make_settings(python=python)
    _say_target(settings, as_json)
    pending = _warn_pending(settings.python)
    with _terminal(as_json) as term:
        verdict = pipeline.verify(
            settings,
            device=device,
            model=model,
            timeout=timeout,
            progress=term.progress,
            output=term.output,
        )
    _record(record, "verify", verdict_to_dict(verdict), int(verdict.exit_code))
    text = render_verdict(verdict, as_json=as_json)
    _out(_json_target(text, settings) if as_json else text, whole=as_json)
    return ExitCode.UNFINISHED if pending else int(verdict.exit_code)


# `qfix apply` options, named here to keep the command short (same flags and help text).
ApplyVenvOpt = Annotated[
    str | None,
    typer.Option(
        "--venv",
        help="Create this new venv and install the "
        "planned stack there (for a system or externally "
        "managed Python).",
        show_default=False,
    ),
]
ApplyPlanOpt = Annotated[
    str | None,
    typer.Option(
        "--plan",
        help="Apply a plan saved by `qfix plan --out`, only when it is exactly the plan "
        "qfix computes now (refused, exit 6, if the environment changed or the file was "
        "edited).",
        show_default=False,
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask before changing the environment.")
]
InstallerOpt = Annotated[
    str, typer.Option("--installer", help="auto (uv when present, else pip) | uv | pip")
]
AllowCondaOpt = Annotated[
    bool, typer.Option("--allow-conda", help="Allow changing a conda environment.")
]
SystemOpt = Annotated[
    bool,
    typer.Option(
        "--system",
        help="Allow changing an interpreter that is not a venv (Colab, Kaggle, Docker), with "
        "the same lock, snapshot and rollback.",
    ),
]
BreakSystemOpt = Annotated[
    bool,
    typer.Option(
        "--break-system-packages",
        help="Like --system, and also change an externally managed (PEP 668) interpreter.",
    ),
]
ApplyVerifyOpt = Annotated[
    str,
    typer.Option(
        "--verify",
        help="The 4-bit check after the change: none (layers), auto or tiny (also a tiny "
        "model when transformers and accelerate are installed), skip",
    ),
]
ExpectPlanOpt = Annotated[
    str | None,
    typer.Option(
        "--expect-plan",
        help="Fleets: re-plan here and refuse (exit 6) unless this node's plan has this "
        "digest (or equals this saved plan / fleet plan's group); a shared venv is changed "
        "once, under a lock waited for at most --lock-wait seconds.",
        show_default=False,
    ),
]
LockWaitOpt = Annotated[float, typer.Option("--lock-wait", help="See --expect-plan.")]


@app.command()
def apply(
    python: PythonOpt = None,
    venv: ApplyVenvOpt = None,
    plan_file: ApplyPlanOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    installer: InstallerOpt = "auto",
    torch_index: TorchIndexOpt = None,
    allow_conda: AllowCondaOpt = False,
    system: SystemOpt = False,
    break_system_packages: BreakSystemOpt = False,
    verify_model: ApplyVerifyOpt = "none",
    expect_plan: ExpectPlanOpt = None,
    lock_wait: LockWaitOpt = 900.0,
    record: RecordOpt = None,
    requirements: RequirementsOpt = None,
    constraint: ConstraintOpt = None,
) -> int:
    """Apply the plan inside a virtual environment: show the diff, ask, install, verify with a real
    4-bit load; roll back automatically on any failure or interruption."""
    from . import pipeline
    from .render import apply_to_dict, render_apply, render_apply_plan

    if expect_plan is not None and (not yes or venv is not None or plan_file is not None):
        raise BadInput("--expect-plan needs --yes and neither --venv nor --plan")
    settings = pipeline.make_settings(
        python=python,
        torch_index=torch_index,
        installer=installer,
        verify=verify_model,
        venv_new=venv,
        plan_file=plan_file,
        needs_index=True,
        system=system,
        break_system_packages=break_system_packages,
        pin_files=(requirements, constraint),
    )
    if venv is None:
        _refuse_pending(settings.python)
    if expect_plan is not None:
        return _apply_expected(
            settings,
            expect_plan,
            as_json=as_json,
            allow_conda=allow_conda,
            lock_wait=lock_wait,
            record=record,
        )
    new_python = None if venv is None else pipeline.new_venv_python(venv)
    _say_target(settings, as_json, new_python)
    with _terminal(as_json) as term:
        term.wait(f"reading the environment of {settings.python}")
        prep = pipeline.prepare_apply(settings, venv_new=venv, plan_file=plan_file)
    if not prep.plan.steps:
        code = _verdict_code(prep.plan)
        _record(record, "apply", apply_to_dict(prep.plan, None, None), code)
        text = (
            render_apply(prep.plan, None, None, as_json=True)
            if as_json
            else render_apply_plan(prep.plan, saved=prep.saved, width=_columns())
        )
        _out(_json_target(text, settings, new_python) if as_json else text, whole=as_json)
        return code
    if not as_json:
        _out(render_apply_plan(prep.plan, saved=prep.saved, width=_columns()))
    if not yes:
        _confirm(prep.python)
    with _terminal(as_json) as term:
        result = pipeline.run_apply(
            settings, prep, allow_conda=allow_conda, progress=term.progress, output=term.output
        )
    _record(
        record,
        "apply",
        apply_to_dict(result.plan, result.outcome, result.verdict),
        int(result.outcome.exit_code),
    )
    text = render_apply(result.plan, result.outcome, result.verdict, as_json=as_json)
    _out(_json_target(text, settings, new_python) if as_json else text, whole=as_json)
    return int(result.outcome.exit_code)


def _warn_pending(python: str | None) -> bool:
    """Report an unfinished (or running) apply on the target first; True when there is one.
    detect, plan and verify still do their work and then exit 11 (README, "Exit codes")."""
    if python is None:
        return False
    from .apply.journal import pending_apply

    pending = pending_apply(python)
    if pending is None:
        return False
    sys.stderr.write(f"qfix: warning: {pending.describe()}\n")
    return True


def _refuse_pending(python: str | None) -> None:
    """apply changes nothing while an earlier apply is unfinished (exit 11) or one runs (5)."""
    if python is None:
        return
    from .apply.journal import pending_apply
    from .errors import Locked, Unfinished

    pending = pending_apply(python)
    if pending is None:
        return
    if pending.running_pid is not None:
        raise Locked(pending.describe(), tip="wait for it to finish")
    raise Unfinished(pending.describe(), tip="`qfix rollback` restores the exact previous state")


def _apply_expected(
    settings: Settings,
    expect_plan: str,
    *,
    as_json: bool,
    allow_conda: bool,
    lock_wait: float,
    record: str | None,
) -> int:
    """`qfix apply --expect-plan`: re-plan here, apply only the expected plan (fleets)."""
    from .fleet.expect import apply_expected
    from .render import render_expected_apply

    with _terminal(as_json) as term:
        done = apply_expected(
            settings,
            expect_plan,
            allow_conda=allow_conda,
            lock_wait=lock_wait,
            record=record,
            started=_STARTED,
            progress=term.progress,
        )
    _out(
        render_expected_apply(done.plan, done.outcome, done.verdict, done.note, as_json=as_json),
        whole=as_json,
    )
    return done.exit_code


def _confirm(target: str) -> None:
    """Ask before changing the environment; no terminal to ask in is BadInput, a no exits 1."""
    if not sys.stdin.isatty():
        raise BadInput(
            "qfix apply changes the environment and needs a yes: run it in a terminal or pass --yes"
        )
    if not typer.confirm(f"\nApply this plan to {target}?", default=False):
        sys.stderr.write("qfix: nothing was changed\n")
        raise typer.Exit(int(ExitCode.PROBLEMS))


@app.command()
def rollback(
    python: PythonOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Roll back even over what another process installed or removed during the "
            "apply (refused otherwise, exit 13).",
        ),
    ] = False,
) -> int:
    """Finish the rollback of an apply that was killed: restore the exact previous state."""
    from . import pipeline
    from .render import render_rollback

    settings = pipeline.make_settings(python=python)
    _say_target(settings, as_json)
    outcome = pipeline.run_rollback(
        settings, (lambda _line: None) if as_json else _progress, force=force
    )
    text = render_rollback(outcome, as_json=as_json)
    _out(_json_target(text, settings) if as_json else text, whole=as_json)
    return int(outcome.exit_code)


@app.command()
def report(
    python: PythonOpt = None,
    facts: FactsOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Print a paste-ready Markdown block for a bug report: this machine, the environment's
    packages, torch build and bitsandbytes, and qfix's diagnosis."""
    from . import pipeline
    from .render import render_report

    settings = pipeline.make_settings(python=python, facts_file=facts)
    analysis = pipeline.analyse(pipeline.get_facts(settings, facts))
    _out(
        render_report(analysis.facts, analysis.plan, version=__version__, as_json=as_json),
        whole=True,  # a ticket's text, pasted as it is
    )
    return ExitCode.OK


def _version(value: bool) -> None:
    if value:
        print(f"qfix {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print results and errors only, no progress.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print every line the installers print.")
    ] = False,
) -> None:
    """qfix: diagnose and repair torch + bitsandbytes 4-bit setups."""
    global _verbosity
    if quiet and verbose:
        raise BadInput("give -q or -v, not both")
    _verbosity = -1 if quiet else 1 if verbose else 0


def _wants_json(argv: list[str]) -> bool:
    """--json anywhere before a bare ``--`` (errors can happen before typer has parsed it)."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in args


def _fail(message: str, code: int, tip: str | None, as_json: bool) -> None:
    from .render import render_error, render_error_json

    if as_json:
        _out(render_error_json(message, code, tip), whole=True)
    else:
        _write(sys.stderr, redact_text(render_error(QfixError(message, tip=tip))))
    sys.exit(code)


# Options of the commands that take a value: a -q/-v right after one of them is that value.
_VALUE_OPTIONS = frozenset(
    (
        "--python",
        "--facts",
        "--error",
        "--out",
        "--torch-index",
        "--venv",
        "--plan",
        "--installer",
        "--verify",
        "--device",
        "--model",
        "--timeout",
    )
)
_GLOBAL_FLAGS = frozenset(("-q", "--quiet", "-v", "--verbose"))


def _hoist_globals(argv: list[str]) -> list[str]:
    """``qfix plan -q`` as ``qfix -q plan``: people put -q/-v after the command, typer wants them
    before it (they are options of the root)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags, rest = [], []
    for i, arg in enumerate(argv):
        if i < end and arg in _GLOBAL_FLAGS and (i == 0 or argv[i - 1] not in _VALUE_OPTIONS):
            flags.append(arg)
        else:
            rest.append(arg)
    return flags + rest


def main() -> None:
    """Console entry point: one place maps errors to exit codes (JSON on stdout with --json)."""
    argv = _hoist_globals(sys.argv[1:])
    as_json = _wants_json(argv)
    try:
        rc = app(args=argv, standalone_mode=False)
    except QfixError as exc:
        _fail(exc.message, int(exc.exit_code), exc.tip, as_json)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130, None, as_json)
    except Exception as exc:
        # click's usage errors (vendored inside typer >= 0.20, so matched by shape, not class)
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            if as_json:
                fmt = getattr(exc, "format_message", None)
                text = fmt() if callable(fmt) else str(exc)
                _fail(str(text), int(ExitCode.BAD_INPUT), None, True)
            exc.show()
            sys.exit(ExitCode.BAD_INPUT)
        _unexpected(exc, as_json)
    sys.exit(int(rc or 0))


def _unexpected(exc: BaseException, as_json: bool) -> None:
    """The catch-all: a full or read-only disk nobody classified is still exit 12 and one line;
    anything else is a bug in qfix, one line, a hint, and exit 70 (EX_SOFTWARE), never 1
    ("problems found"). QFIX_DEBUG=1 shows the traceback."""
    from .errors import is_resource_error, resource_error

    if is_resource_error(exc):
        err = resource_error(exc, "go on")  # type: ignore[arg-type]
        _fail(err.message, int(ExitCode.NO_RESOURCE), err.tip, as_json)
    if os.environ.get("QFIX_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    what = redact_text(f"{type(exc).__name__}: {exc}".replace("\n", " "))[:300]
    tip = (
        f"this is a bug in qfix {__version__}; please report it with the command you ran "
        "(QFIX_DEBUG=1 prints the traceback)"
    )
    _fail(f"internal error: {what}", int(ExitCode.INTERNAL), tip, as_json)
