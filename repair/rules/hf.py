"""The rule of hf-stack-too-old: transformers/accelerate/peft below the 4-bit floors
(compat-facts D; S25, S28, S29; plans/huggingface.toml) and the floors of a feature an error
text shows the job uses, and diffusers below the release whose 4-bit quantizer takes Apple's GPU
where an error text shows its refusal (S114)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..findings import Finding, Severity
from ..knowledge import CPU_4BIT, TRANSFORMERS_REFUSING_WITHOUT_CUDA, HfRule, Knowledge
from ..view import View, public
from .registry import Context, rule, ruled_out

# The features a QLoRA job needs (plans/huggingface.toml `feature`); 4-bit saving, moving and
# quant_storage are needs of some jobs only, and 8-bit merges are not 4-bit at all.
HF_FEATURES = ("4bit-load", "kbit-training")
# CPU 4-bit (knowledge.CPU_4BIT) is not asked on macOS: there torch also lists "mps", so
# transformers 4.45 to 4.52 keep "cpu" (the devices are not {"cpu"} alone) and the gate S100
# reads does not hold as it does. Releases up to 4.44.2 refuse everywhere, a Mac included: they
# raise "No GPU found. A GPU is needed for quantization." whenever torch.cuda.is_available() is
# False (S100 read 4.44.2; S25 the older ones), so there the floor is asked all the same.
# 4.44.2 is the last 4.44 release (PyPI): every release below 4.45.0 is read as refusing
# (knowledge.TRANSFORMERS_REFUSING_WITHOUT_CUDA, the range an error text's "No GPU found" proves)


def _applies(view: View, hf: HfRule) -> bool:
    """The floor's ``when`` conditions on the other packages hold (all known and inside, or
    unknown with a range an error text proves wholly inside)."""
    for other, spec in hf.when.items():
        ov = view.package(other)
        if ov is None:
            if not _range_within(view.implied.range(other), spec):
                return False
        elif public(ov) not in spec:
            return False
    return True


def _range_within(have: SpecifierSet | None, spec: SpecifierSet) -> bool:
    """Whether every version of ``have`` (its >, >=, <, <= bounds) lies inside ``spec``; an
    empty ``spec`` holds everything."""
    if have is None:
        return False
    lows = [(Version(c.version), c.operator == ">=") for c in have if c.operator in (">=", ">")]
    highs = [(Version(c.version), c.operator == "<=") for c in have if c.operator in ("<", "<=")]
    for c in spec:
        bound = Version(c.version)
        if c.operator in (">=", ">") and lows:
            low, inclusive = max(lows)
            ok = low > bound or (low == bound and (c.operator == ">=" or not inclusive))
        elif c.operator in ("<", "<=") and highs:
            high, inclusive = min(highs)
            ok = high < bound or (high == bound and (c.operator == "<=" or not inclusive))
        else:
            ok = False  # no bound on that side, or an operator that is not a bound
        if not ok:
            return False
    return True


def _refused_without_cuda(view: View) -> bool:
    """transformers is known (or proven by an error text) to be a release that refuses a 4-bit
    load whenever CUDA is unavailable (4.44.2 and older, S100)."""
    have = view.package("transformers")
    if have is not None:
        return public(have) in TRANSFORMERS_REFUSING_WITHOUT_CUDA
    return _range_within(view.implied.range("transformers"), TRANSFORMERS_REFUSING_WITHOUT_CUDA)


def features(view: View, kb: Knowledge) -> tuple[str, ...]:
    """The plans/huggingface.toml features the job needs: a QLoRA job's, `4bit-cpu` where the
    host has no NVIDIA GPU and some bitsandbytes runs 4-bit on its CPU (not a ROCm host:
    torch.cuda is its GPU; on a Mac only for the releases that refuse without CUDA anywhere),
    and one an error text shows it uses (a refused .to() on a 4-bit model: `4bit-move`)."""
    wanted: tuple[str, ...] = HF_FEATURES
    if (
        view.has_nvidia_gpu is False
        and not view.rocm
        and (view.system != "Darwin" or _refused_without_cuda(view))
        # some release runs 4-bit on this CPU (none on an Intel Mac: a floor for it would ask
        # for a step no one can take)
        and (view.platform is None or bool(kb.bnb.native_on(view.platform, cpu_4bit=True)))
    ):
        wanted += (CPU_4BIT,)
    extra = view.implied.hf_feature
    return wanted + ((extra,) if extra and extra not in wanted else ())


@rule("hf-stack-too-old")
def hf_stack_too_old(ctx: Context) -> Iterator[Finding]:
    yield from _bnb_floor_in_text(ctx)
    view = ctx.view
    wanted = features(view, ctx.kb)
    for hf in ctx.kb.hf:
        if hf.feature not in wanted:
            continue
        have = view.package(hf.package)
        if have is None:
            yield from _implied_below(ctx, hf)
            continue
        if not _applies(view, hf) or public(have) >= hf.minimum:
            continue
        found = ctx.finding(
            "hf-stack-too-old",
            f"{hf.package} {have} is below {hf.minimum}: {hf.reason}",
            package=hf.package,
            installed=str(have),
            minimum=str(hf.minimum),
            when={k: str(s) for k, s in hf.when.items()},
        )
        # CPU 4-bit is the way on a host without a GPU, not a fault of it: a warning, as
        # bnb-no-cpu-4bit is for bitsandbytes (the plan still carries the step)
        yield replace(found, severity=Severity.WARNING) if hf.feature == CPU_4BIT else found


def _bnb_floor_in_text(ctx: Context) -> Iterator[Finding]:
    """A library's own check named the bitsandbytes it needs (plans/signatures.toml
    bnb-floor-required) and the installed one is below it or not known. Where bitsandbytes is
    not installed at all, bnb-missing says so, and the release it plans meets the floor
    (planner._below_hf_floors)."""
    view = ctx.view
    floor = view.implied.bnb_floor
    if floor is None or view.bnb_installed is False or view.implied.bnb_absent:
        return
    have = view.bnb
    if have is not None and public(have) >= floor:
        return  # the check failed for another reason (its import, or no CUDA in old releases)
    yield ctx.finding(
        "hf-stack-too-old",
        f"the failing library's own check asks for bitsandbytes >= {floor} (read from the error "
        f"message); installed: {have if have is not None else 'a version not reported'}",
        package="bitsandbytes",
        installed=str(have) if have is not None else None,
        minimum=str(floor),
        source="error message",
    )


def _implied_below(ctx: Context, hf: HfRule) -> Iterator[Finding]:
    """The version is unknown, but an error message proves a range wholly below the floor (a
    keyword argument the release does not accept yet; plans/signatures.toml)."""
    spec = ctx.view.implied.range(hf.package)
    uppers = [Version(c.version) for c in spec or () if c.operator in ("<", "<=")]
    if not _applies(ctx.view, hf) or not uppers or min(uppers) > hf.minimum:
        return
    yield ctx.finding(
        "hf-stack-too-old",
        f"{hf.package} {spec} (read from the error message) is below {hf.minimum}: {hf.reason}",
        package=hf.package,
        installed=str(spec),
        minimum=str(hf.minimum),
        source="error message",
    )


@ruled_out("hf-stack-too-old")
def _hf_known(view: View, kb: Knowledge) -> bool:
    # the floors were checked against known versions and did not fire
    return view.package("transformers") is not None and view.package("accelerate") is not None
