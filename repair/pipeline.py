"""The orchestration of the flow: probe -> Facts -> diagnose -> plan -> apply -> verify.

The CLI calls these functions and renders what they return; the edges (probes, installers, the
4-bit load) are imported lazily so that `qfix plan --facts FILE` never loads them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from . import settings as resolve
from . import shellquote
from .catalogue import Catalogue, load_catalogue
from .commands import build_commands, constraint_lines
from .diagnose import Diagnosis, diagnose, only_reported
from .dryrun import DryRun, package_lines, space_estimate, summary_line
from .errors import BadInput, FactsError
from .explain import Explanation, Planned, explain
from .facts import Facts, Gpu, facts_from_json
from .findings import Finding
from .indexconfig import InstallerChoice
from .jsonload import MAX_BYTES as MAX_JSON_BYTES
from .knowledge import HfRule, Knowledge, load_knowledge, load_sources
from .pins import ProjectPins, pins_from_facts
from .plan import Plan
from .planner import evaluate_variant, make_plan
from .settings import DEFAULT_TORCH_INDEX, Settings
from .signatures import (
    HF_FEATURE_WORDS,
    implied_property_lines,
    implied_to_dict,
    load_signatures,
)
from .view import View, make_view

# --------------------------------------------------------------------------- settings


def make_settings(
    *,
    python: str | None = None,
    facts_file: str | None = None,
    torch_index: str | None = None,
    installer: str = "auto",
    verify: str = "none",
    venv_new: str | None = None,
    plan_file: str | None = None,
    needs_index: bool = False,
    environ: Mapping[str, str] | None = None,
    system: bool = False,
    break_system_packages: bool = False,
    pin_files: tuple[Sequence[str] | None, Sequence[str] | None] = (None, None),
) -> Settings:
    """Every input resolved once from the flags and ``environ`` (default: os.environ).

    The target interpreter is resolved when one will be read (not for ``--facts FILE``; for
    ``--venv NEW`` it is the base Python, ``--python`` or the one running qfix); the torch index
    base only where a plan or an apply uses it (``needs_index``). BadInput/InterpreterError
    (exit 2) on a bad value. ``pin_files``: the project's requirements and constraints files
    (``--requirements``/``--constraint``), read here once (BadInput naming file and line).
    """
    from .probe import interpreter

    env = os.environ if environ is None else environ
    if facts_file is not None and python is not None:
        raise BadInput("give either --python or --facts, not both")
    if venv_new is not None and plan_file is not None:
        raise BadInput("--venv NEW plans for the new venv itself; do not give --plan")
    installer = resolve.installer_choice(installer)
    verify = resolve.verify_mode(verify)
    pins = None
    requirements, constraints = pin_files[0] or (), pin_files[1] or ()
    if requirements or constraints:  # bad files fail before any interpreter is read
        from .projectpins import read_project_pins

        pins = read_project_pins(requirements, constraints)
    target = reason = None
    warnings: tuple[str, ...] = ()
    timeout = resolve.DEFAULT_PROBE_TIMEOUT
    if facts_file is None:
        found = interpreter.discover_target(python, env)
        target, reason, warnings = found.python, found.reason, found.warnings
        if venv_new is not None:
            reason = f"the base of the new venv {venv_new}; {reason}"
        timeout = resolve.probe_timeout(env)
    setup = None
    if target is not None and needs_index:
        from .apply.installers import resolve_installer

        setup = resolve_installer(installer, env, python=target)
    return Settings(
        python=target,
        target_reason=reason,
        target_warnings=warnings,
        setup=setup,
        system=system or break_system_packages,
        break_system_packages=break_system_packages,
        torch_index_base=(
            resolve.torch_index_base(torch_index, env) if needs_index else DEFAULT_TORCH_INDEX
        ),
        torch_index_flag=torch_index,
        installer=installer,
        verify=verify,
        probe_timeout=timeout,
        project_pins=pins,
    )


# --------------------------------------------------------------------------- facts


def detect(settings: Settings, *, deep: bool = False, prefetch: bool = False) -> Facts:
    """Read this machine (driver, GPUs) and the target interpreter of ``settings`` into Facts.

    ``prefetch``: also load the knowledge base while the target answers (for plan and matrix).
    """
    from concurrent.futures import ThreadPoolExecutor  # here: ~6 ms that `--facts`/fleet skip

    from .probe import interpreter, system

    target = _target(settings)
    timeout = settings.probe_timeout
    # The target answers in a child process; read the host meanwhile (the child runs on another
    # core while this thread waits on NVML, nvcc and the knowledge base): ~40 ms of every plan.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(interpreter.probe_target, target, deep=deep, timeout=timeout)
        driver, gpus = system.probe_driver()
        host = system.probe_host()
        nvcc = system.probe_nvcc()
        if prefetch:
            load_knowledge()  # cached: analyse() and matrix() find it loaded
            load_catalogue()
        report = pending.result()
    merged_host = replace(
        report.host,
        wsl=host.wsl if report.host.wsl is None else report.host.wsl,
        os_release=report.host.os_release or host.os_release,
        l4t=host.l4t,
        container=host.container,
    )
    extra: dict[str, Any] = {"packages_source": "probe", **report.extra}
    return Facts(
        host=merged_host,
        driver=driver,
        # NVML lists no AMD GPU: there, those ROCm's torch saw in the deep probe, if any
        gpus=gpus or hip_devices(extra) or gpus,
        python=report.python,
        packages=report.packages,
        torch=report.torch,
        bitsandbytes=report.bitsandbytes,
        env=report.env,
        toolkit_nvcc=nvcc,
        extra=extra,
    )


def hip_devices(extra: Mapping[str, Any]) -> tuple[Gpu, ...] | None:
    """The AMD GPUs a ROCm build of torch saw in the deep probe (name and LLVM target), for a
    host where NVML lists none; None when the probe did not report them."""
    steps = (extra.get("deep") or {}).get("steps") or {}
    devices = (steps.get("cuda") or {}).get("devices")
    if not isinstance(devices, list) or not devices:
        return None
    return tuple(
        Gpu(
            index=i,
            name=d.get("name") if isinstance(d.get("name"), str) else None,
            vendor="amd",
            gfx=d.get("gfx") if isinstance(d.get("gfx"), str) else None,
        )
        for i, d in enumerate(devices)
        if isinstance(d, dict)
    )


def _target(settings: Settings) -> str:
    if settings.python is None:  # Settings made for --facts FILE: nothing to probe
        raise BadInput("no target interpreter: --facts reads a file, it probes nothing")
    return settings.python


def read_facts(path: str) -> Facts:
    """A qfix.facts/1 file ('-' = stdin); FactsError (exit 2) names the file and the field."""
    if path == "-":  # one byte over the limit is enough for jsonload to refuse it
        return facts_from_json(sys.stdin.read(MAX_JSON_BYTES + 1), "stdin")
    if path.startswith(EXAMPLE_PREFIX):
        p = example_path(path[len(EXAMPLE_PREFIX) :])
        return facts_from_json(p.read_text(encoding="utf-8"), path)
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_JSON_BYTES:  # never read a huge file whole
            raise FactsError(
                f"facts file {path}: too large ({p.stat().st_size} bytes; "
                f"the limit is {MAX_JSON_BYTES} bytes)"
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FactsError(f"facts file {path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise FactsError(f"facts file {path}: cannot read it ({exc.__class__.__name__})") from None
    return facts_from_json(text, path)


EXAMPLE_PREFIX = "example:"


def example_path(name: str) -> Path:
    """A facts file shipped in plans/examples/ (``example:seed`` or ``example:seed.json``)."""
    from .knowledge import plans_directory

    folder = plans_directory() / "examples"
    p = folder / (name if name.endswith(".json") else f"{name}.json")
    if "/" in name or "\\" in name or not p.is_file():  # no way out of the folder, on Windows too
        known = ", ".join(sorted(x.stem for x in folder.glob("*.json")))
        raise FactsError(f"no shipped example {name!r}; known: {known}")
    return p


def get_facts(settings: Settings, facts_file: str | None, *, deep: bool = False) -> Facts:
    """The facts to plan from: a file, else a fresh probe (knowledge base loaded meanwhile)."""
    if facts_file is not None:
        return read_facts(facts_file)
    return detect(settings, deep=deep, prefetch=True)


# --------------------------------------------------------------------------- diagnose & plan


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: Facts
    view: View
    diagnosis: Diagnosis
    plan: Plan
    knowledge: Knowledge
    catalogue: Catalogue
    # What the error text proves where the facts lack it (the plan's "read from the error
    # message" lines, also at the head of plan.unknown)
    read_from_error: tuple[str, ...] = ()


def analyse(
    facts: Facts,
    *,
    torch_index: str | None = None,
    error_text: str | None = None,
    pins: ProjectPins | None = None,
) -> Analysis:
    """Diagnose and plan. ``torch_index``: the index base as Settings resolved it (default: the
    official one). ``error_text`` (or a ticket's reported error) is explained and the classes it
    points to count where the facts cannot rule them out. ``pins``: the project's pins
    (Settings.project_pins); the plan never leaves them (repair.pinplan), and the facts carry
    those that hold for the target (``project_pins``) for the project-pin-conflict rule."""
    kb = load_knowledge()
    cat = load_catalogue()
    pin_unknown: tuple[str, ...] = ()
    if not pins and (carried := pins_from_facts(facts)):  # a ticket's own project_pins
        pins = ProjectPins((), carried, read=("the facts' project_pins",))
    if pins:
        pins, pin_unknown = pins.for_target(facts)
        facts = replace(
            facts, extra={**facts.extra, "project_pins": [p.to_dict() for p in pins.pins]}
        )
    text = error_text or facts.extra.get("reported_error")
    text = text if isinstance(text, str) and text.strip() else None
    read_from_error: list[str] = []
    if text is not None:
        facts, read_from_error = _facts_from_error(facts, text)
    view = make_view(facts, kb)
    reported = tuple(m.id for m in explain(text, cat)) if text else ()
    diag = diagnose(view, kb, cat, reported)
    base = torch_index or DEFAULT_TORCH_INDEX
    if pins:
        from .pinplan import plan_within_pins

        plan = plan_within_pins(view, diag, kb, pins, torch_index_base=base, unknown=pin_unknown)
    else:
        plan = make_plan(view, diag, kb, torch_index_base=base)
    if read_from_error:
        plan = replace(plan, unknown=(*read_from_error, *plan.unknown))
    # "cannot tell" is the verdict where nothing was found; a finding (from the facts or an
    # error text) and its plan stand on their own, with what could not be known listed below
    thin = too_thin_to_judge(facts) if plan.healthy else None
    unjudged = unjudged_versions(view) if plan.healthy else None
    if text is not None and plan.healthy and not set(reported) & set(diag.ids):
        # An error the facts do not explain is not "healthy": say so, and exit 1.
        plan = replace(
            plan,
            healthy=False,
            notes=(
                *plan.notes,
                (
                    "the error message is not explained: "
                    + (
                        "it matches no known failure class"
                        if not reported
                        else "the facts rule out every class it matches"
                    )
                    + "; check torch.cuda.is_available() and the bitsandbytes import "
                    "in the process "
                    "that failed, and restart that runtime after installing"
                ),
            ),
        )
    if thin is not None or unjudged is not None:
        plan = replace(plan, healthy=False, cannot_tell=thin or unjudged)
    plan = with_commands(plan, installed=facts.packages)
    return Analysis(facts, view, diag, plan, kb, cat, tuple(read_from_error))


def unjudged_versions(view: View) -> str | None:
    """Why a plan with no finding still cannot say "healthy", or None. Every check of torch and
    of bitsandbytes starts from a version or a build; where the facts give neither for a package
    that is (or may be) installed, nothing about it was judged, so the verdict is "cannot tell"
    (exit 7), with what to collect, never "healthy"."""
    missing = []
    torch_known = (
        view.torch is not None
        or view.torch_cuda is not None
        or bool(view.torch_hip)
        or view.torch_cpu_build is not None
        or bool(view.facts.torch and view.facts.torch.arch_list)
    )
    if not torch_known and view.torch_installed is not False:
        missing.append("torch")
    bnb_known = view.bnb is not None or bool(
        view.facts.bitsandbytes and view.facts.bitsandbytes.native_libs
    )
    if not bnb_known and view.bnb_installed is not False:
        missing.append("bitsandbytes")
    if not missing:
        return None
    return (
        f"the facts give no version of {' or '.join(missing)}, and every check of "
        f"{'them' if len(missing) > 1 else 'it'} starts from one; collect the facts with "
        "`qfix detect --json` in the target environment"
    )


def too_thin_to_judge(facts: Facts) -> str | None:
    """Why the facts cannot carry a verdict, or None: a document that names neither the
    packages nor the torch or bitsandbytes build of the target (``{"schema": "qfix.facts/1"}``)
    is "cannot tell", never "healthy"."""
    if facts.names_no_package:
        return (
            "the facts name no packages and no torch or bitsandbytes build of the target; "
            "collect them with `qfix detect --json` on that machine"
        )
    return None


def _facts_from_error(facts: Facts, text: str) -> tuple[Facts, list[str]]:
    """Facts an error message states that the facts lack (torch's "found version 11060"), and
    the constraints it proves (plans/signatures.toml, repair/signatures.py)."""
    from .explain import driver_cuda_from_error
    from .facts import Driver
    from .signatures import implied_facts

    facts, implied = implied_facts(facts, text)
    cuda = driver_cuda_from_error(text)
    d = facts.driver
    if cuda is None or (d is not None and (d.version or d.cuda)):
        return facts, implied
    driver = (
        replace(d, found=True, cuda=cuda)
        if d is not None
        else Driver(found=True, cuda=cuda, source="error message")
    )
    return replace(facts, driver=driver), [
        *implied,
        f"driver: supports CUDA {cuda} (read from the error message; its version is not known)",
    ]


CONSTRAINTS_PLACEHOLDER = "qfix-constraints.txt"


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def with_commands(
    plan: Plan,
    installer: str = "pip",
    installed: Mapping[str, str | None] | None = None,
    setup: InstallerChoice | None = None,
    break_system_packages: bool = False,
) -> Plan:
    """The plan with the exact installer commands (argv lists built by the installer module).

    ``setup``: the installer resolved for the target (Settings.setup); the commands are then
    exactly those apply runs (uv's path, the index isolation of the torch step)."""
    if not plan.steps:
        return plan
    python = plan.python or "python"
    uv = "uv"
    if setup is not None:
        from .apply.installers import find_uv

        installer, uv = setup.name, find_uv() or "uv"
        plan = replace(plan, installer=(setup.name, setup.reason))
    cmds = build_commands(
        plan.steps,
        python=python,
        installer=installer,
        torch_index_base=plan.torch_index_base,
        constraint_file=CONSTRAINTS_PLACEHOLDER,
        uv=uv,
        setup=setup,
        break_system_packages=break_system_packages,
        os_name=shellquote.target_os_name(plan.platform, plan.python),
    )
    # Pins for what stays installed: only versions an installer could be given.
    valid = {k: v for k, v in (installed or {}).items() if v is not None and _is_version(v)}
    return replace(
        plan,
        commands=tuple(c.shown() for c in cmds),
        constraints=(*constraint_lines(plan.steps, valid), *plan.pin_constraints),
    )


def explain_text(text: str, facts: Facts | None) -> Explanation:
    """`qfix explain`: the catalogue's signatures, and what `qfix plan --error` makes of the same
    text with the same facts (none: an empty report) through the same ``analyse``: every class
    that plan names is a match, with the plan's findings and manual steps for it, and what the
    text proves is listed as that plan lists it. Only ``facts`` confirm a class."""
    cat = load_catalogue()
    kb = load_knowledge()
    base = facts if facts is not None else Facts()
    alone = diagnose(make_view(base, kb), kb, cat)  # what the facts say without the text
    # a suspect is the facts' open question, not a class they confirm
    alone = replace(
        alone, findings=tuple(f for f in alone.findings if not f.evidence.get("suspected"))
    )
    analysis = analyse(base, error_text=text)
    text_ids = set(analysis.diagnosis.ids) - (set() if facts is not None else set(alone.ids))
    # what the text proves as the plan reads it: with the facts' part (whose "No GPU found" it
    # is, repair/signatures.py _no_gpu_gate), not the text's alone
    implied = analysis.view.implied
    sigs = {sig.id: sig for sig in load_signatures()}
    sources = load_sources()
    references = sources.resolve(
        "; ".join(src for sid in implied.signatures for src in sigs[sid].sources)
    )
    planned: dict[str, Planned] = {}
    for fid in analysis.diagnosis.ids:
        if fid not in text_ids:
            continue
        cause = _feature_cause(analysis.diagnosis, fid, kb, implied.hf_feature, cat)
        planned[fid] = Planned(
            findings=tuple(
                f.summary
                for f in analysis.diagnosis.findings
                if f.id == fid and not only_reported(f)
            ),
            advice=tuple(m.text for m in analysis.plan.manual if m.id == fid),
            references=references,
            cause=cause,
            cause_references=sources.resolve(cause) if cause else (),
            steps=tuple(
                f"{st.package} "
                + (f"{st.from_} -> " if st.from_ and st.from_ != "unknown" else "to ")
                + (st.to or "(removed)")
                for st in analysis.plan.steps
                if fid in st.because
            ),
        )
    ruled_out = analysis.diagnosis.ruled_out
    return Explanation(
        explain(
            text, cat, alone if facts is not None else None, planned=planned, ruled_out=ruled_out
        ),
        read_from_error=(*analysis.read_from_error, *implied_property_lines(implied)),
        implied=implied_to_dict(implied) if not implied.empty else {},
        ruled_out=tuple(ruled_out),
    )


def _feature_cause(
    diagnosis: Diagnosis, fid: str, kb: Knowledge, feature: str | None, cat: Catalogue
) -> str | None:
    """The cause of class ``fid`` where the text proves a feature with floors of its own
    (plans/huggingface.toml; signatures' ``hf_feature``) and the class's findings name them:
    those floors lead, and the class's general cause follows only where another of its
    findings is one of the general floors (None: the class's cause stands)."""
    if feature is None:
        return None
    found = [f for f in diagnosis.findings if f.id == fid]

    def floor_of(f: Finding) -> HfRule | None:
        return next(
            (
                r
                for r in kb.hf
                if r.feature == feature
                and f.evidence.get("package") == r.package
                and f.evidence.get("minimum") == str(r.minimum)
            ),
            None,
        )

    floors = [floor_of(f) for f in found]
    mine: list[HfRule] = []
    for r in floors:
        if r is not None and r not in mine:
            mine.append(r)
    if not mine:
        return None
    words = HF_FEATURE_WORDS.get(feature, feature)
    # the floor and its source key; the plan line above it gives the floor's reason
    cause = "; ".join(
        f"{words} needs {r.package} >= {r.minimum} ({r.source.split()[0]})" for r in mine
    )
    others = None in floors
    return f"{cause}." + (f" Also: {cat.get(fid).explanation}" if others else "")


@dataclass(frozen=True, slots=True)
class MatrixCell:
    release: str
    variant: str
    ok: bool
    reasons: tuple[str, ...]
    mode: str | None
    # sass | ptx | gfx | unknown | n/a (planner.TorchChoice.coverage); None where it cannot work
    coverage: str | None = None


def matrix(facts: Facts) -> tuple[View, tuple[MatrixCell, ...]]:
    """Every torch release x variant of this platform: would it work here, and why not."""
    kb = load_knowledge()
    view = make_view(facts, kb)
    # The builds that could apply to this host: CUDA and CPU builds (ROCm ones on a ROCm host).
    kinds = {"rocm", "cpu"} if view.rocm else {"cuda", "cpu"}
    cells = []
    for rel in reversed(kb.torch.releases):
        for var in rel.variants_for(view.platform or ""):
            if var.kind not in kinds:
                continue
            choice, reasons = evaluate_variant(view, kb, rel, var)
            cells.append(
                MatrixCell(
                    str(rel.series),
                    var.name,
                    choice is not None,
                    tuple(reasons),
                    choice.driver_mode if choice else None,
                    choice.coverage if choice else None,
                )
            )
    return view, tuple(cells)


# --------------------------------------------------------------------------- verify & apply


def verify(
    settings: Settings,
    *,
    device: str,
    model: str,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    output: Callable[[str], None] | None = None,
) -> Any:
    from .verify.runner import run_verify

    if device not in ("auto", "cuda", "cpu"):
        raise BadInput(f"--device must be auto, cuda or cpu, not {device!r}")
    if model not in ("auto", "tiny", "none"):
        raise BadInput(f"--model must be auto, tiny or none, not {model!r}")
    return run_verify(
        _target(settings),
        device=device,
        model=model,
        timeout=timeout,
        progress=progress,
        output=output,
    )


@dataclass(frozen=True, slots=True)
class ApplyPrep:
    """What `qfix apply` will change: the target and the plan (saved: loaded from --plan)."""

    python: str
    plan: Plan
    saved: bool


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: Any  # repair.apply.transaction.Outcome
    plan: Plan
    verdict: Any | None  # the last verify Verdict, when verification ran
    python: str


def prepare_apply(settings: Settings, *, venv_new: str | None, plan_file: str | None) -> ApplyPrep:
    """The target interpreter and the plan to apply. ``venv_new`` creates a fresh venv first.

    A saved plan (``plan_file``) is applied only when qfix itself would make it: it is read
    within limits and validated (exit 2), then refused (ApplyRefused, exit 6) unless it was made
    for this state of the environment (fingerprint), touches only the packages qfix repairs, and
    equals the plan computed now with this run's torch index base (repair.planfile). The plan
    returned is then qfix's own, equal to the file's in everything that reaches an installer.
    """
    from .apply.venv import create_venv
    from .fingerprint import fingerprint
    from .planfile import check_fingerprint, check_same, check_scope, load_plan_doc

    target = _target(settings)
    if venv_new is not None:
        target = create_venv(Path(venv_new), target)
    if plan_file is not None:
        doc = load_plan_doc(plan_file)  # bad files fail before the target is even read
        facts = detect(replace(settings, python=target), prefetch=True)
        saved = Plan.from_dict(doc)
        check_fingerprint(saved, fingerprint(facts))
        bnb = facts.bitsandbytes
        providers = [d.partition(" ")[0] for d in (bnb.distributions if bnb else ())]
        check_scope(saved, load_knowledge(), providers)
        # exactly as `qfix plan` computes it (no --error text: apply reads the environment only)
        own = analyse(facts, torch_index=settings.torch_index_base, pins=settings.project_pins).plan
        check_same(doc, own, str(plan_file))
        return ApplyPrep(target, own, saved=True)
    facts = detect(replace(settings, python=target), prefetch=True)
    analysis = analyse(facts, torch_index=settings.torch_index_base, pins=settings.project_pins)
    plan = replace(analysis.plan, python=target)
    return ApplyPrep(
        target,
        with_commands(
            plan,
            installed=facts.packages,
            setup=settings.setup,
            break_system_packages=settings.break_system_packages,
        ),
        saved=False,
    )


def apply_index_base(settings: Settings, prep: ApplyPrep) -> str | None:
    """The torch index base an apply installs from: this run's (``--torch-index``, else
    $QFIX_TORCH_INDEX, else the official one). A saved plan was refused unless its own base is
    this one, so a file cannot bring an index of its own."""
    return settings.torch_index_base


def new_venv_python(venv_new: str) -> str:
    """The interpreter ``--venv NEW`` will have (for the target line before it exists)."""
    from .apply.venv import venv_python

    return str(venv_python(Path(venv_new)))


def run_apply(
    settings: Settings,
    prep: ApplyPrep,
    *,
    allow_conda: bool,
    progress: Callable[[str], None],
    output: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Apply the plan as one transaction; the 4-bit verification decides whether it stays.

    The installer is resolved here (auto: uv when found, else pip); the index base by
    ``apply_index_base``. Before any change, the dry run (``resolve_apply``) refuses a pin the
    index lacks and shows what will be downloaded; its real sizes feed the space check.
    """
    from .apply.installers import choose_installer
    from .apply.transaction import apply_plan
    from .verify.runner import run_verify

    target = prep.python
    verdicts: list[Any] = []

    # A missing optional package (transformers, accelerate) is never a reason to roll a repair
    # back: after a change, tiny runs as auto (the model when it can load, else one line why not).
    model = "auto" if settings.verify == "tiny" else settings.verify

    def verify_after() -> bool:
        progress(f"verifying with a real 4-bit load ({model} model)")
        v = run_verify(
            target, device="auto", model=model, timeout=600, progress=progress, output=output
        )
        verdicts.append(v)
        return bool(v.ok)

    dry: list[DryRun] = []
    outcome = apply_plan(
        prep.plan,
        python=target,
        installer=settings.setup.name if settings.setup else choose_installer(settings.installer),
        setup=settings.setup,
        torch_index=apply_index_base(settings, prep),
        verify=None if settings.verify == "skip" else verify_after,
        progress=progress,
        output=output,
        allow_conda=allow_conda,
        probe_timeout=settings.probe_timeout,
        allow_system=settings.system,
        break_system_packages=settings.break_system_packages,
        before_change=lambda which, installed: _resolve_first(
            settings, prep, which, installed, progress, output, dry
        ),
    )
    if dry:
        outcome = replace(outcome, downloads=dry[0].downloads, download_note=dry[0].note)
    return ApplyResult(outcome, prep.plan, verdicts[-1] if verdicts else None, target)


def _show_downloads(
    dry: DryRun, progress: Callable[[str], None], output: Callable[[str], None] | None
) -> None:
    """The dry runs' downloads before the first change: one line, and one per package as
    installer output (the terminal prints those under -v only)."""
    progress(summary_line(dry))
    if output is not None:
        for line in package_lines(dry):
            output(line.strip())  # the terminal indents a child's lines itself


def _resolve_first(
    settings: Settings,
    prep: ApplyPrep,
    which: str,
    installed: Mapping[str, str],
    progress: Callable[[str], None],
    output: Callable[[str], None] | None,
    found: list[DryRun],
) -> Mapping[str, int | None]:
    """Every pinned release resolved against the indexes apply will use, before any change
    (ApplyRefused, exit 6, when one is not there), and what the installs would download: shown,
    kept in ``found`` for the outcome, and returned as package -> bytes for the space check.
    apply_plan calls this under its lock, after its own pre-change checks: a target it refuses
    anyway (not a venv without --system, a tree that cannot take a file: exit 12, checked once,
    in apply_plan) is refused for that reason and nothing is resolved."""
    dry = _dry_run(settings, prep.python, prep.plan, progress, which=which, installed=installed)
    found.append(dry)
    _show_downloads(dry, progress, output)
    return space_estimate(dry.downloads, prep.plan.download)


def _dry_run(
    settings: Settings,
    python: str,
    plan: Plan,
    progress: Callable[[str], None],
    *,
    which: str,
    installed: Mapping[str, str | None],
) -> DryRun:
    """The installer's dry run of every install command of ``plan`` for ``python``, exactly as
    apply would run them (installer ``which``, index base, constraints from ``installed``)."""
    from .apply import installers, sizes

    setup = settings.setup
    valid = {k: v for k, v in installed.items() if v is not None and _is_version(v)}
    commands = build_commands(
        plan.steps,
        python=python,
        installer=which,
        torch_index_base=settings.torch_index_base,
        constraint_file=installers.CONSTRAINTS_MARK,
        uv=installers.find_uv() or "uv",
        setup=setup,
        break_system_packages=settings.break_system_packages,
    )
    pip = setup.config.pip if setup else None
    return installers.check_resolvable(
        commands,
        which,
        pins=[*constraint_lines(plan.steps, valid), *plan.pin_constraints],
        progress=progress,
        network=None if pip is None else sizes.Network(pip.proxy, pip.cert, pip.client_cert),
    )


def resolve_plan(
    settings: Settings, plan: Plan, *, progress: Callable[[str], None]
) -> DryRun | None:
    """`qfix plan --resolve`: the dry run apply would make, for the preview (changes nothing;
    ApplyRefused, exit 6, when the index lacks a pinned release). None: no step, or no target
    interpreter (``--facts``)."""
    if not plan.steps or settings.python is None:
        return None
    from .apply import installers
    from .probe.interpreter import probe_target

    setup = settings.setup
    which = setup.name if setup else installers.choose_installer(settings.installer)
    installed = probe_target(settings.python, timeout=settings.probe_timeout).packages
    return _dry_run(settings, settings.python, plan, progress, which=which, installed=installed)


def run_rollback(
    settings: Settings, progress: Callable[[str], None], *, force: bool = False
) -> Any:
    from .apply.transaction import rollback

    return rollback(
        _target(settings), progress=progress, probe_timeout=settings.probe_timeout, force=force
    )
