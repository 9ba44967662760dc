"""Facts x Findings x knowledge -> Plan. Pure: no process, no network, no torch import.

The planner searches the candidate targets -- torch release x variant, then a bitsandbytes release
for it -- that satisfy every hard constraint (driver incl. minor-version compatibility and its PTX
caveat, every GPU's arch, Python, platform, glibc, bitsandbytes' native library and torch bounds,
distributions pinning torch) and prefers, in this order:

1. keep what works (no step for a package that has no finding against it);
2. a bitsandbytes with the current loader (>= 0.43.1: importable without CUDA, no libcudart search;
   compat-facts C4/C6 and S23 issue_patterns call the older loaders fragile) over a legacy one,
   even when that means moving torch;
3. keep torch; else the same torch release (a variant change only); else the newest release;
4. variants the driver runs with its own toolkit driver over minor-version compatibility, SASS over
   PTX, confirmed facts over UNCONFIRMED ones, then the highest CUDA.
What a venv cannot fix becomes a manual step with the exact minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import groupby
from operator import itemgetter
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .containers import NOTEBOOKS, gpu_how, notebook_gpu_text, start_with_gpu, where_words
from .facts import listed_installed
from .findings import Diagnosis, Finding, Severity, Unknown, only_reported
from .fingerprint import fingerprint
from .knowledge import (
    CPU_4BIT,
    BnbConflict,
    BnbRelease,
    Knowledge,
    Range,
    TorchRelease,
    TorchVariant,
    lib_rocm,
)
from .libraries import (
    CT2,
    ct2_cuda_manual,
    ct2_needs_step,
    ct2_target,
    cudnn_manual,
    cudnn_shadow_major,
    library_driver_manual,
    torch_cudnn_of,
)
from .pins import torch_dependents
from .plan import TORCH_FAMILY, Manual, Plan, Step  # noqa: F401
from .rules.environment import in_conda
from .runtime_advice import runtime_manual, stays_required, torch_wheels_text
from .signatures import advice_for
from .view import (
    KEPLER_BELOW,
    MODERN_BNB_LOADER,
    View,
    amd_targets,
    arch_coverage,
    bnb_available_libs,
    bnb_forks,
    bnb_loader,
    bnb_release,
    board_in_index_builds,
    cuda_companion,
    cuda_from_tag,
    cuda_variant_name,
    driver_fit,
    extension_cuda_major,
    extension_torch_cuda,
    gpu_sms,
    known_bad_torch,
    libstdcxx_misfit,
    parse_version,
    pick_cuda_lib,
    public,
    sass_ccs_cover,
    series,
    torch_arch_list,
    unreadable_versions,
    wheel_misfits,
)
from .wheeltags import PIP_KNOWS_NEW_TAGS, needs_new_pip, pip_may_not_know, tag_need

SCHEMA = "qfix.plan/1"
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl"
UNCONFIRMED = "(UNCONFIRMED)"  # marks a reason that rests on an unconfirmed fact
NO_CUDA_TORCH = "; do not install CUDA builds of torch here"  # ends every ROCm step
# Distributions known to pin exact torch releases (the issue's examples: xformers, vllm).
TORCH_PINNERS = ("xformers", "vllm")
TORCH_FINDINGS = {"torch-missing", "torch-cpu-build", "driver-too-old", "gpu-arch-unsupported"}
BNB_FINDINGS = {
    "bnb-missing",
    "bnb-no-4bit",
    "bnb-no-cuda-lib",
    "bnb-torch-mismatch",
    "bnb-duplicate-install",
    "bnb-platform-unsupported",
    "gpu-too-old-for-bnb",
    "bnb-known-bad-release",
    "bnb-no-cpu-4bit",
}


@dataclass(frozen=True, slots=True)
class TorchChoice:
    """A torch release x variant that can work here, with how the driver runs it."""

    release: TorchRelease
    variant: TorchVariant
    driver_mode: str | None  # full | minor-compat | None (driver unknown)
    coverage: str  # sass | ptx | gfx (an AMD GPU's target) | unknown | n/a
    pin_conflicts: tuple[str, ...]
    target: Version  # the torch version: the installed one when its release stays, else latest
    # its wheels' local label on this platform (the variant's name; None: the macOS CPU wheels
    # and others that carry none, plans/torch.toml [cpu_unlabelled])
    label: str | None

    @property
    def version(self) -> str:
        return labelled(self.target, self.label)


def labelled(version: Version, label: str | None) -> str:
    """A pin's version with its wheels' local label ("2.5.1+cu121"; "2.5.1" where none)."""
    return f"{version}+{label}" if label else str(version)


# --------------------------------------------------------------------------- torch candidates


def evaluate_variant(
    view: View,
    kb: Knowledge,
    rel: TorchRelease,
    var: TorchVariant,
) -> tuple[TorchChoice | None, list[str]]:
    """Whether torch ``rel`` x ``var`` can work here; the reasons when it cannot.

    Used by the planner and by `qfix matrix`, so both tell the same story.
    """
    reasons: list[str] = []
    if (
        view.python is not None
        and Version(f"{view.python.major}.{view.python.minor}") not in rel.python
        and public(view.python) not in rel.python
    ):
        reasons.append(
            f"no wheel for Python {view.python.major}.{view.python.minor} "
            f"(torch {rel.series}: {rel.python})"
        )
    if view.glibc_short_of(rel.glibc_min) and (view.platform or "").startswith("linux"):
        reasons.append(f"needs glibc >= {rel.glibc_min}")
    nvidia = view.has_nvidia_gpu is not False and not view.rocm
    if view.rocm:
        # On an AMD host only ROCm builds apply, and only those compiled for the GPUs' targets
        # (plans/torch.toml `gfx`, S93/S101); which ROCm the host's amdgpu driver runs is not in
        # the facts, so a build that fits is possible, not proven.
        coverage = _rocm_variant_fit(view, kb, var, reasons)
        return (
            (None, reasons)
            if reasons
            else (TorchChoice(rel, var, None, coverage, (), *_target_of(view, kb, rel, var)), [])
        )
    mode: str | None = None
    coverage = "n/a"
    if var.cuda is None:
        if var.kind != "cpu":
            reasons.append(f"a {var.kind.upper() if var.kind == 'xpu' else 'ROCm'} build")
        elif nvidia and view.has_nvidia_gpu:
            reasons.append("a CPU build on a host with an NVIDIA GPU")
    else:
        mode, coverage = _cuda_variant_fit(view, kb, var, var.cuda, reasons)
    target, label = _target_of(view, kb, rel, var)
    conflicts = tuple(
        f"{name} requires torch{spec}"
        for name, spec in torch_dependents(view.facts).items()
        if target not in spec
    )
    if reasons:
        return None, reasons
    return TorchChoice(rel, var, mode, coverage, conflicts, target, label), []


def _target_of(
    view: View, kb: Knowledge, rel: TorchRelease, var: TorchVariant
) -> tuple[Version, str | None]:
    """The torch version to install from ``rel`` x ``var`` and its wheels' local label here: a
    variant change keeps the installed version when the release has it (smallest change; a pin
    such as xformers' torch==2.5.0 keeps holding), else the release's latest."""
    installed = public(view.torch) if view.torch is not None else None
    target = installed if installed in rel.versions else rel.latest
    return target, kb.torch.local_label(var.name, view.platform, target)


def _rocm_variant_fit(view: View, kb: Knowledge, var: TorchVariant, reasons: list[str]) -> str:
    """The GPU coverage of a build on an AMD host: "gfx" (compiled for every listed AMD GPU's
    target), "unknown" (the build's targets are not known) or "n/a" (the GPUs' targets are not
    known); adds why it cannot work to ``reasons``."""
    if var.rocm is None:
        reasons.append("an AMD/ROCm host: only ROCm builds apply")
        return "n/a"
    gfx = amd_gfx(view, kb)
    if not gfx:
        return "n/a"
    missing = _gfx_missing(var, gfx)
    if missing is None:
        return "unknown"
    if missing:
        reasons.append(
            f"no code for {', '.join(missing)} in its GPU targets ({' '.join(var.gfx or ())})"
        )
    return "gfx"


def _gfx_missing(var: TorchVariant, gfx: Iterable[str]) -> list[str] | None:
    """The GPU targets of ``gfx`` a ROCm build has no code for; None where its list is unknown."""
    return None if var.gfx is None else [g for g in gfx if g not in var.gfx]


def _cuda_variant_fit(
    view: View, kb: Knowledge, var: TorchVariant, cuda: Version, reasons: list[str]
) -> tuple[str | None, str]:
    """(driver mode, arch coverage) of a CUDA variant here; adds why it cannot work to
    ``reasons`` (the driver, compat-facts A1/A2; each GPU against the arch list, B3)."""
    if view.has_nvidia_gpu is False:
        reasons.append("no NVIDIA GPU here: a CUDA build would only run on the CPU")
    fit = driver_fit(view, kb, cuda)
    if fit.ok is False:
        need = fit.compat_min or fit.full_min
        reasons.append(f"driver too old for CUDA {cuda} (needs >= {need})")
    arch = var.arch_for(view.platform) if view.platform else var.arch_list
    if arch is None:
        # the build's list is unknown, but a CUDA release that removed an architecture (A3:
        # 13.0 removed Maxwell, Pascal and Volta) builds no code for it
        for cc in view.ccs:
            if (gone := kb.drivers.arch_gone(cuda, cc)) is not None:
                reasons.append(f"no code for sm_{cc.major}{cc.minor}: CUDA {gone.cuda} removed it")
        return fit.mode, "unknown"
    if not view.ccs:
        return fit.mode, "unknown"
    covs = []
    for cc in view.ccs:
        cov = arch_coverage(arch, cc)
        if cov is None:
            reasons.append(f"no code for sm_{cc.major}{cc.minor} in {' '.join(arch)}")
        elif cov == "ptx" and fit.mode == "minor-compat":
            reasons.append(
                f"sm_{cc.major}{cc.minor} only as PTX, which a driver "
                "on minor-version compatibility cannot JIT"
            )
        covs.append(cov)
    return fit.mode, "ptx" if "ptx" in covs else "sass"


def torch_candidates(view: View, kb: Knowledge) -> list[TorchChoice]:
    """Every torch release x variant that can work here, best first."""
    if view.platform is None:
        return []
    current = series(view.torch) if view.torch is not None else None
    out = []
    for rel in kb.torch.releases:
        for var in rel.variants_for(view.platform):
            choice, _ = evaluate_variant(view, kb, rel, var)
            if choice is not None and kb.torch.is_known_bad(choice.target, view.platform):
                # never back to a known-bad build: the series' newest, where that is not one
                bad = kb.torch.is_known_bad(rel.latest, view.platform)
                choice = None if bad else replace(choice, target=rel.latest)
            if choice is not None:
                out.append(choice)

    def demand(c: TorchChoice) -> Version:
        """The driver a build needs at least (minor-version compatibility floor of its CUDA
        major): with the driver unknown, the smallest demand is the safest assumption."""
        if c.variant.cuda is None or c.driver_mode is not None:
            return Version("0")
        return kb.drivers.minor_compat_min(c.variant.cuda.major, view.driver_os) or Version("0")

    # the torch build a CUDA extension of the job (xFormers) was compiled against, where its
    # message shows it (S131): its library loads beside that build
    built = parse_version(cuda_companion(view))

    # a toolkit's cuDNN of torch's own major stood in for torch's (S119): a build of another
    # cuDNN major opens files that copy cannot stand in for
    shadow = cudnn_shadow_major(view, kb)

    def key(c: TorchChoice) -> tuple[Any, ...]:
        cuda = c.variant.cuda or Version("0")
        return (
            bool(c.pin_conflicts),
            shadow is not None and not _dodges_cudnn(kb, c, shadow),
            # and keeps torch's CUDA: the toolkit stays on the loader path, and a newer CUDA's
            # libraries can bind to its older copies as cuDNN did (nvJitLink, S52)
            shadow is not None and not _same_cuda(c.variant.cuda, view.torch_cuda),
            built is not None and (public(built), built.local) != (c.target, c.label),
            c.variant.cuda is None and view.has_nvidia_gpu is not False,
            c.driver_mode is None and view.has_nvidia_gpu is not False,  # unproven driver
            demand(c),
            not (
                c.release.confirmed
                and c.variant.is_confirmed("index")
                and c.variant.is_confirmed(f"platforms.{view.platform}")
            ),
            current is None or c.release.series != current,
            -c.release.series.major,
            -c.release.series.minor,
            c.driver_mode == "minor-compat",
            c.coverage != "sass" and c.coverage != "n/a",
            not c.variant.arch_confirmed_for(view.platform or ""),
            # With a known driver the highest CUDA it runs; unknown: the lowest driver demand.
            (-cuda.major, -cuda.minor) if c.driver_mode else (cuda.major, cuda.minor),
        )

    # A build whose arch list for this platform is unknown is no repair for a GPU (aarch64 lists
    # differ from x86_64 ones, compat-facts B3): better no candidate and a manual step.
    if view.ccs:
        out = [c for c in out if c.coverage != "unknown"]
    major = extension_cuda_major(view)
    if major is not None:
        # the job compiles CUDA extensions with a toolkit of this major (S120)
        out = [c for c in out if c.variant.cuda is not None and c.variant.cuda.major == major]
    return sorted(out, key=key)


def _dodges_cudnn(kb: Knowledge, c: TorchChoice, shadow: int) -> bool:
    """A CUDA build of torch whose cuDNN major is known and newer than ``shadow``'s: the move
    goes forward (a torch of an older cuDNN major would dodge it too, at the cost of years of
    torch)."""
    brought = torch_cudnn_of(kb, c.target) if c.variant.cuda is not None else None
    return brought is not None and brought > shadow


def _same_cuda(a: Version | None, b: Version | None) -> bool:
    return a is not None and b is not None and (a.major, a.minor) == (b.major, b.minor)


def cudnn_dodge(view: View, kb: Knowledge, ids: set[str]) -> TorchChoice | None:
    """The torch build to move to where a toolkit's cuDNN stands in for torch's own (the
    stale-toolkit-on-path finding, cudnn_shadow_major) and a build of another cuDNN major fits
    here within the project's pins; None otherwise."""
    shadow = cudnn_shadow_major(view, kb)
    if shadow is None or "stale-toolkit-on-path" not in ids:
        return None
    best = next(iter(torch_candidates(view, kb)), None)
    if best is None or best.pin_conflicts or not _dodges_cudnn(kb, best, shadow):
        return None
    return best


# --------------------------------------------------------------------------- bitsandbytes


def _conflict(
    view: View, kb: Knowledge, r: BnbRelease, torch_v: Version | None, cuda: Version | None
) -> BnbConflict | None:
    """The [[conflict]] that stops ``r`` importing beside that torch here (an error text may
    show it whatever the platform: Implied.shown)."""
    return kb.bnb.conflict(
        r.version, view.platform, torch_v, cuda_build=cuda is not None, proven=view.implied.shown
    )


def bnb_fits(
    view: View,
    kb: Knowledge,
    r: BnbRelease,
    torch_v: Version | None,
    cuda: Version | None,
    cpu_only: bool,
) -> list[str]:
    """Why bitsandbytes ``r`` cannot serve torch ``torch_v`` (CUDA ``cuda``) here; [] = it can."""
    why: list[str] = []
    if not r.has_4bit:
        why.append("no 4-bit")
    if r.known_bad:
        why.append(f"known bad: {r.known_bad}")
    build = r.builds.get(view.platform or "")
    if build is None or not build.native:
        why.append(f"no native build for {view.platform}")
        return why
    why += wheel_misfits(view, build)
    if (
        view.python is not None
        and r.python is not None
        and not r.admits_python(public(view.python))
    ):
        why.append(f"Python {view.python} outside {r.python}")
    if torch_v is not None and not r.admits_torch(public(torch_v)):
        why.append(f"torch {torch_v} outside {r.torch}")
    elif (clash := _conflict(view, kb, r, torch_v, cuda)) is not None:
        why.append(f"torch {torch_v}: {clash.why}")
    elif torch_v is None and r.torch and cuda is not None:
        # torch's version unknown, its CUDA known: bounds that admit no torch built for that
        # CUDA cannot be met without another torch (conservative choice, issue 12 item 5)
        torches = torch_range(kb, view, cuda)
        if torches and not any(r.admits_torch(t) for t in torches):
            why.append(f"torch {r.torch}: no torch built for CUDA {cuda} is in that range")
    libstdcxx = libstdcxx_misfit(view, kb, build)
    if libstdcxx is not None:
        why.append(libstdcxx)
    if cpu_only:
        if not (r.cpu_4bit and build.cpu_lib):
            why.append("no CPU 4-bit")
    elif (
        cuda is None
        and (view.driver is not None or view.driver_cuda is not None)
        and build.cuda_libs
    ):
        # torch's CUDA unknown, the driver known: at least one of the release's CUDA libraries
        # must be a CUDA the driver runs (A1/A2), or no torch build could make it load.
        if not any(
            (v := cuda_from_tag(t)) is not None and driver_fit(view, kb, v).ok is not False
            for t in build.cuda_libs
        ):
            why.append("no CUDA library the installed driver can run")
    elif cuda is not None:
        lib = pick_cuda_lib(build.cuda_libs, cuda, r.loader)
        ccs = view.ccs
        if lib is None:
            why.append(f"no library for CUDA {cuda}")
        else:
            if view.wants_nocublaslt(r) and build.nocublaslt and lib not in build.nocublaslt:
                why.append(f"no cuda{lib}_nocublaslt for GPUs below 7.5")
            sass = build.sass(lib)
            band = build.sass_band(lib)
            # The SASS bands come from build scripts, UNCONFIRMED against the real fatbins
            # (compat-facts C2): an unconfirmed gap only ranks a release lower (choose_bnb).
            mark = "" if band is not None and band.confirmed else f" {UNCONFIRMED}"
            for cc in ccs:
                if sass and not sass_ccs_cover(sass, cc) and cc < max(sass):
                    why.append(f"cuda{lib} library has no code for sm_{cc.major}{cc.minor}{mark}")
            need = build.lib_glibc_min.get(lib)
            if view.glibc_short_of(need):
                why.append(f"cuda{lib} library needs glibc >= {need}")
    return why + _below_hf_floors(view, kb, r)


def _below_hf_floors(view: View, kb: Knowledge, r: BnbRelease) -> list[str]:
    """The bitsandbytes floors of plans/huggingface.toml that the installed stack sets, and the
    one a library's own check named in the error text, that ``r`` is below."""
    floor = view.implied.bnb_floor
    named = (
        [f"below {floor}: the failing library's own check asks for it (the error message)"]
        if floor is not None and r.version < floor
        else []
    )
    return named + [
        f"below {rule.minimum}: {rule.reason}"
        for rule in kb.hf
        if rule.package == "bitsandbytes"
        and r.version < rule.minimum
        and rule.when
        and all(
            (ov := view.package(o)) is not None and public(ov) in s for o, s in rule.when.items()
        )
    ]


def choose_bnb(
    view: View, kb: Knowledge, torch_v: Version | None, cuda: Version | None, cpu_only: bool
) -> BnbRelease | None:
    """The newest bitsandbytes that fits, preferring the current loader (see module doc) and
    releases against which only UNCONFIRMED facts speak least."""
    scored = []
    torches, lowest = unknown_torch_bounds(view, kb, torch_v, cuda)
    for r in kb.bnb.releases:
        why = bnb_fits(view, kb, r, torch_v, cuda, cpu_only)
        if all(w.endswith(UNCONFIRMED) for w in why):
            # Python unknown: prefer a release whose Requires-Python holds across every Python
            # the torch target supports; torch's version unknown but its CUDA known: one whose
            # torch bounds hold for every torch release built for that CUDA, and that imports
            # beside each of them (a [[conflict]]: 0.45.0 with the cu124 torch 2.6.0), so that
            # installing it cannot need another torch (module doc, conservative choice; issue
            # 12 item 5)
            # where none holds for all of them, the one that holds for the most (0.45.5 for
            # CUDA 11.8: not beside torch 2.0's triton, S136; 0.45.0 not beside 2.6's, S83)
            held = sum(
                r.admits_torch(t) and _conflict(view, kb, r, t, cuda) is None for t in torches
            )
            python_ok = lowest is None or r.admits_python(lowest)
            safe = python_ok and held == len(torches)
            scored.append(
                (r.version >= MODERN_BNB_LOADER, not why, safe, python_ok, held, r.version, r)
            )
    return max(scored, key=lambda x: x[:6])[6] if scored else None


def unknown_torch_bounds(
    view: View, kb: Knowledge, torch_v: Version | None, cuda: Version | None
) -> tuple[tuple[Version, ...], Version | None]:
    """What a bitsandbytes choice must hold across where torch or Python is unknown: the torch
    releases a torch of unknown version but known CUDA can be (torch_range; () where torch's
    version is known), and the oldest Python the torch target supports (None: Python known)."""
    torches = torch_range(kb, view, cuda) if torch_v is None else ()
    lowest = lowest_python(kb, torch_v, torches) if view.python is None else None
    return torches, lowest


def torch_range(kb: Knowledge, view: View, cuda: Version | None) -> tuple[Version, ...]:
    """The torch releases an installed torch of unknown version but known CUDA ``cuda`` can be:
    those of the knowledge base with a build for that CUDA on this platform (none: unknown)."""
    if cuda is None:
        return ()
    return _torches_with(
        kb,
        lambda var: (
            var.cuda is not None
            and (var.cuda.major, var.cuda.minor) == (cuda.major, cuda.minor)
            and (view.platform is None or view.platform in var.platforms)
        ),
    )


def _torches_with(kb: Knowledge, has: Callable[[TorchVariant], bool]) -> tuple[Version, ...]:
    """Every torch version of the releases with a build that ``has`` accepts."""
    releases = [rel for rel in kb.torch.releases if any(has(var) for var in rel.variants)]
    return tuple(v for rel in releases for v in rel.versions)


# The CPython minor releases the knowledge base's torch releases span (plans/torch.toml).
_PYTHONS = tuple(Version(f"3.{m}") for m in range(7, 16))


def lowest_python(
    kb: Knowledge, torch_v: Version | None, torches: tuple[Version, ...] = ()
) -> Version | None:
    """The oldest Python the torch release of ``torch_v`` supports; torch unknown: the oldest
    one of the releases it can be (``torches``, torch_range: those built for its CUDA), or of
    any torch release of the knowledge base when even that is unknown."""
    if torch_v is not None:
        found = kb.torch.release(torch_v)
        rels = [found] if found is not None else list(kb.torch.releases)
    else:
        rels = [r for r in kb.torch.releases if any(v in torches for v in r.versions)]
        rels = rels or list(kb.torch.releases)
    return next((p for p in _PYTHONS if any(r.admits_python(p) for r in rels)), None)


# --------------------------------------------------------------------------- the plan


def _from(installed: bool | None, version: Version | None) -> str | None:
    """The 'from' of a step: the installed version, 'unknown' when installed without a reported
    version (or when that is unknown), None when not installed."""
    if version is not None:
        return str(version)
    return None if installed is False else "unknown"


# Findings that say the installed bitsandbytes release itself is at fault (a duplicate install or a
# missing one is not: the same or the best release is installed once).
BNB_RELEASE_FAULTS = (
    BNB_FINDINGS
    - {
        "bnb-duplicate-install",
        "bnb-missing",
        "bnb-no-cuda-lib",
        "bnb-torch-mismatch",
        "gpu-too-old-for-bnb",
    }
) | {"bnb-cuda-override", "cuda-libs-not-found", "stale-toolkit-on-path", "hf-stack-too-old"}
# (bnb-no-cuda-lib, bnb-torch-mismatch and gpu-too-old-for-bnb depend on the torch build: the
# installed release is kept when it fits the torch target, which bnb_fits checks.)
# Findings a bitsandbytes step may name in its `because`.
BNB_STEP_REASONS = BNB_FINDINGS | {
    "bnb-cuda-override",
    "cuda-libs-not-found",
    "stale-toolkit-on-path",
}


def _bnb_hf_floor(by_id: Mapping[str, list[Finding]]) -> bool:
    """An hf-stack-too-old finding names bitsandbytes itself (transformers needs a newer one)."""
    return any(
        f.evidence.get("package") == "bitsandbytes" for f in by_id.get("hf-stack-too-old", ())
    )


def _bnb_must_change(view: View, ids: set[str], by_id: Mapping[str, list[Finding]]) -> bool:
    """Whether the installed bitsandbytes must be replaced or (re)installed."""
    legacy = view.bnb is None or view.bnb < MODERN_BNB_LOADER
    platform = by_id.get("bnb-platform-unsupported", [])
    if platform and all(f.evidence.get("libstdcxx") for f in platform):
        ids = ids - {"bnb-platform-unsupported"}  # the C++ runtime, not the wheel, is at fault
    gate = by_id.get("gpu-too-old-for-bnb", [])
    if gate and all(f.evidence.get("serving_gate") for f in gate):
        ids = ids - {"gpu-too-old-for-bnb"}  # vLLM's own gate: no bitsandbytes moves it
    return (
        bool(ids & BNB_FINDINGS)
        or _bnb_hf_floor(by_id)
        # F32: the override bug is fixed in 0.44.0 (PR#1318)
        or ("bnb-cuda-override" in ids and view.bnb is not None and view.bnb < Version("0.44.0"))
        # a bitsandbytes keyed on torch.version.cuda makes the libcudart search harmless
        or (bool(_search_faults(ids, by_id)) and legacy and bool(view.bnb_installed))
        or ("bnb-platform-unsupported" in ids and view.bnb is None)
    )


def _search_faults(ids: set[str], by_id: Mapping[str, list[Finding]]) -> set[str]:
    """The library-search findings the legacy loader can be at fault for: a copy that a wheel
    bundles (torchvision.libs/libcudart.<hash>.so.12) is that wheel's, not bitsandbytes'."""
    out = ids & {"cuda-libs-not-found", "stale-toolkit-on-path"}
    libs = by_id.get("cuda-libs-not-found", [])
    if libs and all(_not_bnbs(f) for f in libs):
        out.discard("cuda-libs-not-found")  # another library's own, never bitsandbytes' search
    toolkits = by_id.get("stale-toolkit-on-path", [])
    if toolkits and all(f.evidence.get("extension_build") for f in toolkits):
        out.discard("stale-toolkit-on-path")  # the compiler's toolkit, not a library search
    return out


def _not_bnbs(f: Finding) -> bool:
    """A cuda-libs-not-found finding about another library's own files: a wheel's bundled copy,
    a cuDNN, or CTranslate2's cuBLAS."""
    return any(f.evidence.get(k) for k in ("bundled_by", "cudnn_major", "ct2_cuda_major"))


def _pair(
    view: View, kb: Knowledge, cands: list[TorchChoice], keep_bnb: bool, *, modern_only: bool
) -> tuple[TorchChoice, BnbRelease] | None:
    """The best torch candidate with a bitsandbytes that serves it: the first one served by the
    current loader (module doc, 2), else (unless ``modern_only``) the first one served at all."""
    fallback = None
    for c in cands:
        cpu_only = view.has_nvidia_gpu is False or c.variant.cuda is None
        r = _keep_or_choose_bnb(view, kb, c.target, c.variant.cuda, cpu_only, keep=keep_bnb)
        if r is not None and r.version < MODERN_BNB_LOADER and keep_bnb:
            # the kept release is a legacy one: a current one beside this torch is a better
            # pair than a lesser torch that a current one would be chosen for anyway
            fresh = _keep_or_choose_bnb(view, kb, c.target, c.variant.cuda, cpu_only, keep=False)
            r = fresh if fresh is not None and fresh.version >= MODERN_BNB_LOADER else r
        if r is None:
            continue
        if r.version >= MODERN_BNB_LOADER:
            return c, r
        fallback = fallback or (c, r)
    return None if modern_only else fallback


def _choose_targets(
    view: View,
    kb: Knowledge,
    ids: set[str],
    bnb_change: bool,
    keep_bnb: bool,
    notes: list[str],
    manual: list[Manual],
    unknown: list[Unknown],
) -> tuple[TorchChoice | None, BnbRelease | None]:
    """The torch build and bitsandbytes release to move to (None: leave it as it is)."""
    if "gpu-too-old-for-bnb" in ids and any(cc < KEPLER_BELOW for cc in view.ccs):
        notes.append(
            "GPU below compute capability 5.0: torch and bitsandbytes are left alone; "
            "see the manual steps"
        )
        return None, None
    if view.rocm or "jetson-l4t" in ids:
        return _rocm_or_jetson_targets(view, kb, ids, notes)
    # a torch that cannot import is reinstalled, unless the fault is Windows' own runtime
    broken = view.facts.torch is not None and bool(view.facts.torch.error)
    # a system toolkit asks torch to move: the job compiles against another CUDA major, or the
    # toolkit's cuDNN stood in for torch's own, which a torch of another cuDNN major ends
    toolkit_move = extension_cuda_major(view) is not None or cudnn_dodge(view, kb, ids) is not None
    fixed = _fixed_torch(view, kb)  # a known-bad build: the release that fixed it, same build
    if ids & TORCH_FINDINGS or (broken and "torch-dll-load-failed" not in ids) or toolkit_move:
        cands = torch_candidates(view, kb)
        pair = _pair(view, kb, cands, keep_bnb, modern_only=False)
        if pair is not None:
            return pair
        if cands:
            notes.append("no bitsandbytes release fits the chosen torch build")
            return cands[0], None
        _no_torch_candidate(view, kb, manual)
        return None, None
    if fixed is not None:
        if not bnb_change:
            return fixed, None  # the same series: bitsandbytes as it is fits it as before
        cpu_only = fixed.variant.cuda is None
        return fixed, _keep_or_choose_bnb(
            view, kb, fixed.target, fixed.variant.cuda, cpu_only, keep=keep_bnb
        )
    if not bnb_change:
        return None, None  # an unreported bitsandbytes is listed as unknown, not reinstalled
    if view.torch is not None and kb.torch.release(view.torch) is None:
        unknown.append(
            Unknown(
                "torch-release",
                f"torch {view.torch} is not in the knowledge base: it is left as it is",
            )
        )
        return None, _keep_or_choose_bnb(
            view, kb, view.torch, view.torch_cuda, view.torch_cuda is None, keep=keep_bnb
        )
    # torch stays; bitsandbytes follows it -- unless only a legacy loader serves this torch.
    torch_known = view.torch is not None or view.torch_cuda is not None
    if view.torch is None:
        unknown.append(
            Unknown(
                "torch-version", "torch version: bitsandbytes' torch bounds could not be checked"
            )
        )
    cpu_only = view.has_nvidia_gpu is False or (torch_known and view.torch_cuda is None)
    current = _keep_or_choose_bnb(view, kb, view.torch, view.torch_cuda, cpu_only, keep=keep_bnb)
    if torch_known and (current is None or current.version < MODERN_BNB_LOADER):
        pair = _pair(view, kb, torch_candidates(view, kb), keep_bnb, modern_only=True)
        if pair is not None:
            notes.append(
                f"torch moves to {pair[0].version}: no bitsandbytes with the current "
                f"loader (>= {MODERN_BNB_LOADER}) serves torch "
                f"{view.torch or f'with CUDA {view.torch_cuda}'}"
            )
            return pair
    return None, current


def _fixed_torch(view: View, kb: Knowledge) -> TorchChoice | None:
    """Where the installed torch is a known-bad build (plans/torch.toml [[known_bad]]): the
    best candidate of the fixed release's series (torch_candidates lifts it past the bad
    release), the installed build first (its label, else its CUDA). None for an unlabelled torch
    in a conda env (conda's build, not the affected wheel), or where no build of that series
    fits here."""
    bad = known_bad_torch(view, kb)
    label = view.torch.local if view.torch is not None else None
    if bad is None or (in_conda(view) and not label):
        return None  # a label (+cu121) is a pip wheel's, in a conda env too
    fixed = series(bad.fixed_in)
    cands = [
        c
        for c in torch_candidates(view, kb)
        if c.release.series == fixed and c.target >= bad.fixed_in
    ]
    cands.sort(key=lambda c: (c.variant.name != label, c.variant.cuda != view.torch_cuda))
    return cands[0] if cands else None


def _rocm_or_jetson_targets(
    view: View, kb: Knowledge, ids: set[str], notes: list[str]
) -> tuple[TorchChoice | None, BnbRelease | None]:
    """_choose_targets on an AMD host or a Jetson: torch's ROCm build for a CUDA or CPU torch
    (rocm_torch_target), else bitsandbytes for torch's ROCm (rocm_bnb_target), else hands off."""
    if view.rocm and "jetson-l4t" not in ids:
        if rocm_torch := rocm_torch_target(view, kb):
            notes.append(_rocm_torch_note(view, kb, *rocm_torch))
            return rocm_torch
        if rocm_bnb := rocm_bnb_target(view, kb):
            # torch's ROCm build stays (pinned); bitsandbytes moves to a PyPI release that ships
            # a library for torch's ROCm version (issue 12 item 4)
            notes.append(_rocm_bnb_note(view, rocm_bnb))
            return None, rocm_bnb
        if _rocm_bnb_fits(view, kb):
            notes.append(
                f"ROCm host: torch and bitsandbytes {view.bnb} stay; it ships a library for "
                f"torch's ROCm {_rocm_of(view)}"
            )
            return None, None
    if "jetson-l4t" in ids and (jetson_torch := jetson_index_torch(view, kb, ids)) is not None:
        notes.append(
            f"Jetson with {'/'.join(sorted(gpu_sms(view)))}: PyTorch's own linux-aarch64 build "
            f"{jetson_torch.variant.name} of torch {jetson_torch.release.series} carries it "
            f"({_arch_source_words(jetson_torch.variant.arch_source)}), and the installed "
            f"torch does not: torch moves to {jetson_torch.version}; bitsandbytes is left alone "
            "(see the manual steps)"
        )
        return jetson_torch, None
    # Builds that do not come from PyPI or the PyPI-style PyTorch index: hands off.
    notes.append(
        ("Jetson (L4T)" if "jetson-l4t" in ids else "ROCm host")
        + ": torch and bitsandbytes are left alone; see the manual steps"
    )
    return None, None


def jetson_index_torch(view: View, kb: Knowledge, ids: set[str]) -> TorchChoice | None:
    """A Jetson whose GPU PyTorch's own linux-aarch64 builds compile for (Thor's sm_110 is in
    the measured arch list of the cu130 wheels, plans/torch.toml), beside a torch whose arch
    list lacks it (the facts, or the knowledge base for its build): the first such candidate.
    None where NVIDIA's Jetson build is the only way (Orin's sm_87 is in no index build) or the
    installed torch already has code for the GPU."""
    if not view.ccs:
        return None
    have, _ = torch_arch_list(view, kb)
    if have is not None and all(arch_coverage(have, cc) == "sass" for cc in view.ccs):
        return None
    if have is None and "gpu-arch-unsupported" not in ids:
        return None
    # the board's own architecture named in the build's aarch64 list: SASS of a lower minor
    # (sm_80 for Orin's 8.7) says nothing of a JetPack board, whose torch is NVIDIA's build
    sms = gpu_sms(view)
    return next(
        (
            c
            for c in torch_candidates(view, kb)
            if sms <= set(c.variant.arch_for("linux-aarch64") or ())
        ),
        None,
    )


def _bnb_steps(
    view: View,
    ids: set[str],
    by_id: Mapping[str, list[Finding]],
    torch_choice: TorchChoice | None,
    bnb: BnbRelease,
    steps: list[Step],
    unknown: list[Unknown],
) -> None:
    """Install ``bnb`` (after removing every duplicate) unless it is what is installed."""
    if (
        view.bnb is not None
        and public(view.bnb) == bnb.version
        and "bnb-duplicate-install" not in ids
    ):
        return
    because = sorted(ids & BNB_STEP_REASONS)
    if not because and view.rocm and "rocm-host" in ids:
        because = ["rocm-host"]  # the release with a library for torch's ROCm (rocm_bnb_target)
    if _bnb_hf_floor(by_id):
        because.append("hf-stack-too-old")
    if torch_choice is not None and not because:
        because = sorted(ids & TORCH_FINDINGS)  # it follows torch to its new CUDA
    if "bnb-duplicate-install" in ids:
        dists = view.facts.bitsandbytes.distributions if view.facts.bitsandbytes else ()
        # forks named only in the package list (bitsandbytes-windows as the only copy)
        dists = tuple(dists) + tuple(
            f"{n} {v}" if v else n for n, v in bnb_forks(view.facts) if n not in str(dists)
        )
        if not dists:  # the copies were counted but not named: remove the main one at least
            dists = (f"bitsandbytes {view.bnb}" if view.bnb else "bitsandbytes",)
            unknown.append(
                Unknown("bnb-duplicates", "the duplicate bitsandbytes distributions were not named")
            )
        for d in dists:
            name, _, ver = d.partition(" ")
            steps.append(
                Step(
                    "uninstall",
                    name,
                    ver or None,
                    None,
                    None,
                    ("bnb-duplicate-install",),
                    "uninstall",
                )
            )
    if not because and view.bnb_installed is None:
        unknown.append(
            Unknown(
                "bitsandbytes-target",
                "bitsandbytes: not reported; the plan installs the release that fits",
            )
        )
    steps.append(
        Step(
            "install",
            "bitsandbytes",
            _from(view.bnb_installed, view.bnb),
            str(bnb.version),
            None,
            tuple(because),
            "pypi",
        )
    )


def make_plan(
    view: View,
    diag: Diagnosis,
    kb: Knowledge,
    *,
    python: str | None = None,
    torch_index_base: str = DEFAULT_TORCH_INDEX,
) -> Plan:
    """The smallest change that makes a 4-bit load work here (see the module doc)."""
    ids = set(diag.ids)
    by_id: dict[str, list[Finding]] = {}
    for f in diag.findings:
        by_id.setdefault(f.id, []).append(f)
    unknown = [*diag.unknown, *_assumptions(view)]
    notes: list[str] = []
    manual: list[Manual] = []
    steps: list[Step] = []
    base = torch_index_base.rstrip("/")
    _environment_manual(view, kb, ids, by_id, manual)
    if diag.ruled_out:
        notes.append(
            "the error message also points to "
            + ", ".join(diag.ruled_out)
            + "; the facts, with what the message itself proves, rule that out"
        )
    bnb_change = _bnb_must_change(view, ids, by_id)
    chooses_from = _target_reasons(view, ids, by_id)
    torch_choice, bnb_choice = _choose_targets(
        view,
        kb,
        chooses_from,
        bnb_change,
        _keep_bnb(view, kb, ids, bnb_change),
        notes,
        manual,
        unknown,
    )
    _torch_side(view, kb, diag, torch_choice, base, steps, manual, unknown)
    if bnb_choice is not None:
        _bnb_side(view, kb, ids, by_id, torch_choice, bnb_choice, steps, manual, unknown)
    elif bnb_change and not (
        view.rocm or "jetson-l4t" in ids or any(cc < KEPLER_BELOW for cc in view.ccs)
    ):
        _no_bnb_candidate(view, kb, manual)
    bnb_final = _bnb_final(view, bnb_choice)
    _hf_steps(view, kb, by_id, steps, manual, bnb_final)
    _library_steps(view, kb, by_id, steps)
    manual = _torch_wheels_by_the_move(view, steps, manual)
    manual = _cudnn_by_the_move(view, kb, steps, manual)
    if view.implied.frozen_app and steps:
        manual, notes = _without_the_steps(steps, manual, notes)
        # the other way where a required step already repairs it outside the program
        manual.append(_frozen_app_manual(steps, alone=not any(m.required for m in manual)))
        steps, torch_choice, bnb_choice = [], None, None  # nothing the plan installs
    installer = _installer_step(view, kb, steps, notes)
    if installer is not None:
        steps.insert(0, installer)
    manual = _search_made_moot(view, by_id, bnb_final, manual)
    errors = [f for f in diag.findings if f.severity == Severity.ERROR]
    return Plan(
        healthy=not errors and not steps and not any(m.required for m in manual),
        findings=diag.findings,
        steps=tuple(steps),
        manual=tuple(manual),
        unknown=tuple(dict.fromkeys(u.text for u in unknown)),
        fingerprint=fingerprint(view.facts),
        python=python or (view.facts.python.executable if view.facts.python else None),
        platform=view.platform,
        torch_index_base=base,
        torch_target=torch_choice.version if torch_choice else None,
        torch_variant=torch_choice.variant.name if torch_choice else None,
        torch_arch_list=(
            torch_choice.variant.arch_for(view.platform or "") if torch_choice else None
        ),
        bnb_target=str(bnb_choice.version) if bnb_choice else None,
        notes=tuple(notes),
        download=_download(view, bnb_choice, steps),
    )


def _bnb_final(view: View, bnb_choice: BnbRelease | None) -> Version | None:
    """The bitsandbytes the environment has once the plan is applied."""
    if bnb_choice is not None:
        return bnb_choice.version
    return public(view.bnb) if view.bnb is not None else None


def _torch_move(steps: list[Step]) -> Step | None:
    """The plan's step that installs torch at a version, if it has one."""
    return next((s for s in steps if s.package == "torch" and s.to), None)


def _torch_wheels_by_the_move(view: View, steps: list[Step], manual: list[Manual]) -> list[Manual]:
    """Where the plan moves torch, its install brings torch's NVIDIA wheels (S132): the step
    that reinstalls the installed torch would undo the move, so it becomes the check after."""
    move = _torch_move(steps)
    if move is None:
        return manual
    text = torch_wheels_text(view)
    if not any(m.text == text for m in manual):
        return manual
    check = (
        f"the torch step installs torch {move.to} with its NVIDIA wheels (nvidia-*-cuN); if "
        "torch's preload still finds them on no sys.path entry, they went to another "
        "site-packages than this interpreter imports from (`pip show -f` names where)"
    )
    return [Manual(m.id, check, False) if m.text == text else m for m in manual]


def _without_the_steps(
    steps: list[Step], manual: list[Manual], notes: list[str]
) -> tuple[list[Manual], list[str]]:
    """The manual steps and notes of a plan whose steps a frozen program cannot take (S126):
    those that describe the steps' targets go; an optional step of a class the steps served
    (the driver upgrade beside a torch move) is what is left to do there, so it is required."""
    targets = [s.to.lstrip("=") for s in steps if s.to]
    served = {b for s in steps for b in s.because}
    kept = [
        Manual(m.id, m.text, True) if (not m.required and m.id in served) else m
        for m in manual
        if not any(t in m.text for t in targets)
    ]
    return kept, [n for n in notes if not any(t in n for t in targets)]


def _frozen_app_manual(steps: list[Step], *, alone: bool) -> Manual:
    """The failing program is a frozen executable (S126): the packages it runs ship inside it,
    so no installer step reaches them. What the steps would change is said for the program's
    own build (or a run from source) to take up: required ``alone``, else the other way beside
    a required step outside the program."""
    changes = "; ".join(
        f"{s.package} to {s.to.lstrip('=')}" if s.to else f"{s.package} removed" for s in steps
    )
    why = steps[0].because[0] if steps[0].because else "bnb-missing"
    collect = (
        " (bitsandbytes' native library is collected only when the build is told to: "
        "PyInstaller's `--collect-all bitsandbytes`)"
        if any(s.package == "bitsandbytes" and "bnb-missing" in s.because for s in steps)
        else ""
    )
    text = (
        ("" if alone else "or: ")
        + "the failing program is a frozen (PyInstaller) executable: the Python packages it "
        "runs are inside it, where pip cannot change them. What this plan would change in an "
        f"environment ({changes}) has to come with a build of the program that has it (its "
        f"own release){collect}, or run the program from source in a Python environment and "
        "apply the plan there"
    )
    return Manual(why, text, alone)


def _search_made_moot(
    view: View, by_id: FindingsById, bnb_final: Version | None, manual: list[Manual]
) -> list[Manual]:
    """What the planned bitsandbytes makes moot: the legacy loader's library search (WSL). Not a
    broken libcuda, torch's own runtime, or another library's files, which no bitsandbytes
    searches."""
    other = any(_not_bnbs(f) for f in by_id.get("cuda-libs-not-found", ()))
    if bnb_final is None or bnb_final < MODERN_BNB_LOADER or stays_required(view, by_id) or other:
        return manual
    return [replace(m, required=False) if m.id == "cuda-libs-not-found" else m for m in manual]


def _assumptions(view: View) -> list[Unknown]:
    """What the view assumed or lacks that bounds every target (platform, torch build, Python)."""
    out = []
    if view.platform_assumed:
        out.append(Unknown("platform", f"platform (assumed {view.platform})"))
    if view.torch_build_assumed:
        out.append(Unknown("torch-build", f"torch build: {view.torch_build_assumed}"))
    for name, cc in view.cc_inferred:
        out.append(
            Unknown(
                "compute-capability",
                f"compute capability of {name}: {cc}, from NVIDIA's table (S106), not measured",
            )
        )
    for where, text in unreadable_versions(view.facts):
        out.append(
            Unknown(
                "unreadable-version",
                f"{where}: {text!r} is not a version (PEP 440); read as unknown",
            )
        )
    if view.python is None:
        out.append(
            Unknown(
                "python",
                "Python version (torch and bitsandbytes releases bound it; bitsandbytes "
                ">= 0.49 needs 3.10)",
            )
        )
    return out


def _keep_bnb(view: View, kb: Knowledge, ids: set[str], bnb_change: bool) -> bool:
    """Keep the installed release unless it is at fault itself, or its library fault cannot be
    re-checked against a torch target (the CUDA it loads for is unknown, or is the system
    toolkit's for the legacy libcudart search, compat-facts C4)."""
    relookup = "bnb-no-cuda-lib" in ids and (
        view.torch_cuda is None or bnb_loader(view, kb) == "libcudart-search"
    )
    return not (bnb_change and (ids & BNB_RELEASE_FAULTS or relookup))


def _torch_side(
    view: View,
    kb: Knowledge,
    diag: Diagnosis,
    torch_choice: TorchChoice | None,
    base: str,
    steps: list[Step],
    manual: list[Manual],
    unknown: list[Unknown],
) -> None:
    """The steps for torch (and its family): to the chosen build, or the family to torch."""
    if torch_choice is not None:
        _torch_steps(view, torch_choice, diag, base, steps, unknown, kb)
        _driver_alternative(view, kb, torch_choice, manual)
        # the torch target fixes the CUDA version bitsandbytes loads for
        unknown[:] = [u for u in unknown if u.key != "bnb-runtime-cuda"]
        return
    if "torch-family-mismatch" not in diag.ids:
        return
    if view.torch is None:
        # the text proves the mismatch (torchvision's own check, S117), but the torch whose
        # companions are the fix is not in the facts: say how to get the one step qfix would plan
        unknown.append(
            Unknown(
                "torch-for-family",
                "torch's version: the fix is torchvision/torchaudio at the release paired with "
                "the installed torch, from its index (`pip show torch`); `qfix plan` run in that "
                "environment reads torch and plans them",
            )
        )
        return
    rel = kb.torch.release(view.torch)
    label = view.torch.local or (_unlabelled_variant(view, rel) if rel is not None else None)
    if rel is not None and label and rel.variant(label) is None:
        # a local build (Jetson's "+nv23.06", a source build): its companions come from where
        # torch came from, not from a PyTorch index folder of that label
        unknown.append(
            Unknown(
                "torch-for-family",
                f"torch {view.torch} is a local build: its torchvision/torchaudio come from the "
                "same source (JetPack's wheels, or a build from source), not a PyTorch index",
            )
        )
    elif rel is not None:
        index = f"{base}/{label}" if label else None
        _family_steps(
            view, rel, public(view.torch), label, index, (), diag, steps, unknown, moves=False
        )


def _unlabelled_variant(view: View, rel: TorchRelease) -> str | None:
    """The PyTorch-index variant of an unlabelled torch whose CUDA the facts give and which is
    not PyPI's default build for this platform (a conda or a mirror's torch built for CUDA 11.8
    where PyPI's is 12.1): its companions come from that variant's folder, whose builds carry
    torch's CUDA (a PyPI companion of another CUDA major refuses to load, S133). None where PyPI's
    own build fits or no such variant exists."""
    if view.torch_cuda is None or view.platform is None:
        return None
    name = cuda_variant_name(view.torch_cuda)
    default = rel.pypi_default.get(view.platform)
    if default == name or rel.variant(name) is None:
        return None
    return name


def _bnb_side(
    view: View,
    kb: Knowledge,
    ids: set[str],
    by_id: Mapping[str, list[Finding]],
    torch_choice: TorchChoice | None,
    bnb_choice: BnbRelease,
    steps: list[Step],
    manual: list[Manual],
    unknown: list[Unknown],
) -> None:
    """The steps for the chosen bitsandbytes, and what a legacy one asks of the driver."""
    _bnb_steps(view, ids, by_id, torch_choice, bnb_choice, steps, unknown)
    target = torch_choice.target if torch_choice is not None else view.torch
    wants_line = view.python is None and any(s.package == "bitsandbytes" for s in steps)
    # the bounds choose_bnb weighed, worked out again only where this line needs them
    torches, lowest = (
        unknown_torch_bounds(view, kb, target, view.torch_cuda) if wants_line else ((), None)
    )
    if lowest is not None:
        # says what the general line says, for the release chosen: one line, not two
        unknown[:] = [u for u in unknown if u.key != "python"]
        if target:
            which = f"torch {target}"
        elif torches:
            which = f"a torch built for CUDA {view.torch_cuda}"
        else:
            which = "any torch release"
        why = (
            f"holds for every Python {which} supports (>= {lowest})"
            if bnb_choice.admits_python(lowest)
            else f"is the only fit; it does not admit Python {lowest}"
        )
        unknown.append(
            Unknown(
                "python-bnb",
                f"Python version: bitsandbytes {bnb_choice.version} was chosen because its "
                f"Requires-Python ({bnb_choice.python or 'none'}) {why}",
            )
        )
    if torch_choice is None and view.torch is None:
        _bnb_torch_line(view, kb, bnb_choice, unknown)
    if bnb_choice.version < MODERN_BNB_LOADER and view.driver is not None:
        _modern_bnb_driver(view, kb, manual)
    if torch_choice is None and view.torch_installed and view.torch is None and steps:
        unknown.append(
            Unknown(
                "torch-pin",
                "torch's installed version is not known, so the commands cannot pin it: "
                "add torch==<installed version> to qfix-constraints.txt (qfix apply "
                "pins the version it finds)",
            )
        )


def _bnb_torch_line(view: View, kb: Knowledge, bnb: BnbRelease, unknown: list[Unknown]) -> None:
    """torch's version unknown but its CUDA known: where the chosen bitsandbytes (choose_bnb's,
    which holds for the most of them, or a pinned one) does not import beside every torch
    release of that CUDA, say which it leaves out, in place of the general line."""
    torches, _ = unknown_torch_bounds(view, kb, None, view.torch_cuda)
    left = [
        t
        for t in torches
        if not bnb.admits_torch(t) or _conflict(view, kb, bnb, t, view.torch_cuda) is not None
    ]
    if not left:
        return
    unknown[:] = [u for u in unknown if u.key != "torch-version"]
    unknown.append(
        Unknown(
            "torch-bnb",
            f"torch's version: bitsandbytes {bnb.version} does not import beside torch "
            f"{', '.join(str(t) for t in left)}, which are built for CUDA {view.torch_cuda} too "
            "(`pip show torch`; beside one of those, the check after the install fails and qfix "
            "apply rolls the change back)",
        )
    )


def _keep_or_choose_bnb(
    view: View,
    kb: Knowledge,
    torch_v: Version | None,
    cuda: Version | None,
    cpu_only: bool,
    keep: bool = True,
) -> BnbRelease | None:
    """The installed bitsandbytes when it fits the torch target (and ``keep``: it has no finding
    of its own), else the best release that does."""
    if view.bnb is not None and keep:
        cur = kb.bnb.release(view.bnb)
        if cur is not None and not bnb_fits(view, kb, cur, torch_v, cuda, cpu_only):
            libs = bnb_available_libs(view, kb)
            if libs is not None and (
                cpu_only or cuda is None or pick_cuda_lib(libs[0], cuda, cur.loader) is not None
            ):
                return cur
    return choose_bnb(view, kb, torch_v, cuda, cpu_only)


def _family_steps(
    view: View,
    rel: TorchRelease,
    torch_v: Version,
    label: str | None,
    index: str | None,
    because: tuple[str, ...],
    diag: Diagnosis,
    steps: list[Step],
    unknown: list[Unknown],
    *,
    moves: bool = True,
) -> None:
    """torchvision/torchaudio to the releases that match ``torch_v`` (same variant label and
    index), for those installed: they move in lockstep with torch (compat-facts B1). Where
    torch ``moves``, one listed as installed at a version the facts do not give moves too:
    whatever it is, it was built for the torch that is leaving (its C++ ops refuse another
    torch, S117); beside a torch that stays, only one a finding or the error names moves."""
    fam = rel.family_for(torch_v)
    mismatch = {
        str(f.evidence.get("package")) for f in diag.findings if f.id == "torch-family-mismatch"
    }
    if "torch-family-mismatch" in diag.ids and view.implied.companion_named:
        # the error names the companion whose compiled part does not load beside this torch
        mismatch.add(view.implied.companion_named)
    for name in ("torchvision", "torchaudio"):
        have = view.package(name)
        listed = have is not None or name in mismatch or (moves and view.installed(name) is True)
        if not listed or any(s.package == name for s in steps):
            continue
        if not moves and name not in mismatch:
            continue  # beside a torch that stays, a companion that pairs with it stays too
        target = getattr(fam, name) if fam is not None else None
        if target is None:
            unknown.append(
                Unknown("family", f"{name}: no release matching torch {torch_v} is known")
            )
            continue
        to = labelled(target, label)
        if have is not None and to == str(have) and name not in mismatch:
            continue
        why = (("torch-family-mismatch",) if name in mismatch else ()) + because
        steps.append(
            Step("install", name, _from(True, have), to, index, tuple(dict.fromkeys(why)), "torch")
        )


def _torch_steps(
    view: View,
    c: TorchChoice,
    diag: Diagnosis,
    base: str,
    steps: list[Step],
    unknown: list[Unknown],
    kb: Knowledge,
) -> None:
    # torch moves for its own findings, else for bitsandbytes' (no current bitsandbytes serves it)
    because = (
        tuple(i for i in diag.ids if i in TORCH_FINDINGS)
        or (("rocm-host",) if c.variant.rocm else ())  # rocm_torch_target
        or (
            ("stale-toolkit-on-path",)
            if extension_cuda_major(view) is not None
            or cudnn_dodge(view, kb, set(diag.ids)) is not None
            else ()
        )
        or (("torch-dll-load-failed",) if known_bad_torch(view, kb) is not None else ())
        or tuple(i for i in diag.ids if i in BNB_FINDINGS | {"hf-stack-too-old"})
    )
    index = f"{base}/{c.variant.name}"
    steps.append(
        Step(
            "install",
            "torch",
            _from(view.torch_installed, view.torch),
            c.version,
            index,
            because,
            "torch",
        )
    )
    _family_steps(view, c.release, c.target, c.label, index, because, diag, steps, unknown)
    if c.driver_mode is None and c.variant.cuda is not None and view.has_nvidia_gpu is not False:
        need = kb.drivers.minor_compat_min(c.variant.cuda.major, view.driver_os)
        unknown.append(
            Unknown(
                "driver-version",
                f"driver version: {c.version} needs a driver that runs CUDA "
                f"{c.variant.cuda}"
                + (f" (>= {need} through minor-version compatibility)" if need else "")
                + "; check `nvidia-smi`",
            )
        )
    # GPUs unknown too: the build's arch list for this platform is still worth saying unknown
    arch_unproven = c.variant.cuda is not None and c.variant.arch_for(view.platform or "") is None
    if (c.coverage == "unknown" and view.ccs) or (
        not view.ccs and view.has_nvidia_gpu is not False and arch_unproven
    ):
        unknown.append(
            Unknown(
                "torch-arch-list",
                f"arch list of torch {c.release.series} {c.variant.name} on "
                f"{view.platform}: the GPUs' support is not proven",
            )
        )
    pinners = [p for p in TORCH_PINNERS if view.installed(p)]
    if pinners and "torch_dependents" not in view.facts.extra:
        unknown.append(
            Unknown(
                "torch-pinners",
                ", ".join(pinners) + " pin torch releases and their requirements were not "
                f"reported: check that they accept torch {c.version} (pip show) first",
            )
        )
    for conflict in c.pin_conflicts:
        unknown.append(Unknown("conflict", f"conflict: {conflict}; it must move too or be removed"))


def _target_reasons(view: View, ids: set[str], by_id: FindingsById) -> set[str]:
    """The findings that may move torch: a GPU the facts do not show is no reason for a move,
    nor a driver below the CUDA of another library than torch."""
    out = ids - {"gpu-arch-unsupported"} if arch_unseen(view, by_id) else set(ids)
    if _libraries_only(by_id, "driver-too-old") or _ptx_jit_only(by_id):
        # another library's CUDA, or a JIT that every build of torch's CUDA major would need
        # the same driver for: no torch move answers it
        out.discard("driver-too-old")
    return out


def _ptx_jit_only(by_id: FindingsById) -> bool:
    """Every driver-too-old finding is the PTX JIT that minor-version compatibility refuses
    (rules.gpu.ptx_jit_refused): only the driver of torch's CUDA toolkit answers it."""
    found = by_id.get("driver-too-old", [])
    return bool(found) and all(f.evidence.get("ptx_jit") for f in found)


def _libraries_only(by_id: FindingsById, fid: str) -> bool:
    """Every finding of ``fid`` is about a library beside torch (its evidence names it)."""
    found = by_id.get(fid, [])
    return bool(found) and all(f.evidence.get("library") for f in found)


def _library_steps(view: View, kb: Knowledge, by_id: FindingsById, steps: list[Step]) -> None:
    """CTranslate2 to the release that fits the driver and the cuDNN there (repair/libraries.py),
    where a finding blames its CUDA or the cuDNN it asked for."""
    because = tuple(
        fid
        for fid, key, value in (
            ("driver-too-old", "library", CT2),
            ("cuda-libs-not-found", "requested_by", CT2),
        )
        if any(f.evidence.get(key) == value for f in by_id.get(fid, ()))
    )
    target = ct2_target(view, kb) if because else None
    if target is None or not ct2_needs_step(view, kb, target):
        return
    steps.append(
        Step(
            "install",
            CT2,
            _from(view.installed(CT2), view.package(CT2)),
            target.target,
            None,
            because,
            "pypi",
        )
    )


def _hf_steps(
    view: View,
    kb: Knowledge,
    findings_by_id: dict[str, list[Finding]],
    steps: list[Step],
    manual: list[Manual],
    bnb_final: Version | None,
) -> None:
    """Raise transformers/accelerate/peft to their floors -- unless the interpreter is too old
    for the release that floor names (its Requires-Python, plans/huggingface.toml): then the
    step could not install, and upgrading Python is the manual step.

    Each upgrade stays within the installed major release (the smallest change), and the floors
    are checked again against the planned ranges until none is left (transformers 4.30 needs
    accelerate >= 0.20: plans/huggingface.toml)."""
    wanted: dict[str, Version] = {}
    for f in findings_by_id.get("hf-stack-too-old", []):
        pkg = str(f.evidence.get("package"))
        if pkg not in ("None", "bitsandbytes"):
            wanted[pkg] = max(wanted.get(pkg, Version("0")), Version(str(f.evidence["minimum"])))
    for _ in range(3):  # the floors chain at most transformers -> accelerate/peft
        ranges = {p: _hf_range(view, p, m) for p, m in wanted.items()}
        more = _hf_floors_for(view, kb, ranges, wanted)
        if not more:
            break
        wanted.update(more)
    for pkg, minimum in wanted.items():
        if any(s.package == pkg for s in steps):
            continue
        blocked = [
            r
            for r in kb.hf
            if r.package == "python"
            and view.python is not None
            and public(view.python) < r.minimum
            and pkg in r.when
            and minimum in r.when[pkg]
        ]
        if blocked:
            r = blocked[0]
            manual.append(
                Manual(
                    "hf-stack-too-old",
                    f"upgrade Python to >= {r.minimum} (this environment has "
                    f"{view.python}): {pkg} >= {minimum} needs it ({r.reason}); "
                    "then re-run qfix plan in a new venv",
                    True,
                )
            )
            continue
        ceiling = _hf_ceiling(kb, pkg, bnb_final) & _hf_range(view, pkg, minimum)
        uppers = [Version(c.version) for c in ceiling if c.operator == "<"]
        if uppers and min(uppers) <= minimum:
            # every release from the floor demands a newer bitsandbytes than the plan keeps
            # (plans/huggingface.toml): no installable range, so the choice is the user's
            manual.append(
                Manual(
                    "hf-stack-too-old",
                    f"{pkg} >= {minimum} needs a newer bitsandbytes than {bnb_final}, which "
                    f"this plan keeps: upgrade bitsandbytes and {pkg} together, or change the "
                    "code instead (the finding says how)",
                    True,
                )
            )
            continue
        spec = f">={minimum}" + (f",<{min(uppers)}" if uppers else "")
        have = view.package(pkg)
        steps.append(
            Step(
                "install",
                pkg,
                _from(listed_installed(view.facts, pkg), have),
                spec,
                None,
                ("hf-stack-too-old",),
                "pypi",
            )
        )


def _hf_range(view: View, package: str, minimum: Version) -> SpecifierSet:
    """Where an upgrade of ``package`` lands: from ``minimum`` up to the next major release of
    the installed one (when the floor itself stays below it)."""
    have = view.package(package)
    if have is not None and minimum < Version(f"{have.major + 1}"):
        return Range(f">={minimum},<{have.major + 1}")
    return Range(f">={minimum}")


def _hf_floors_for(
    view: View, kb: Knowledge, ranges: Mapping[str, SpecifierSet], wanted: Mapping[str, Version]
) -> dict[str, Version]:
    """Floors of transformers/accelerate/peft that the planned ranges bring in (a rule applies
    when its `when` range meets the planned range), beyond what is installed or wanted."""
    out: dict[str, Version] = {}
    for rule in kb.hf:
        if rule.feature not in ("4bit-load", "kbit-training") or rule.package in (
            "python",
            "bitsandbytes",
        ):
            continue
        if not rule.when or not all(
            _meets(ranges.get(p), view.package(p), s) for p, s in rule.when.items()
        ):
            continue
        have = view.package(rule.package)
        floor = max(wanted.get(rule.package, Version("0")), have or Version("0"))
        if (have is not None or rule.package in wanted) and floor < rule.minimum:
            out[rule.package] = max(out.get(rule.package, Version("0")), rule.minimum)
    return out


def _meets(planned: SpecifierSet | None, have: Version | None, when: SpecifierSet) -> bool:
    """Whether a planned range (or the installed version) falls in a rule's `when` range."""
    if planned is None:
        return have is not None and public(have) in when
    points = [Version(c.version) for c in planned if c.operator == ">="]
    points += [Version(c.version) for c in when if c.operator in (">=", "==")]
    return any(p in planned and p in when for p in points)


def _hf_ceiling(kb: Knowledge, package: str, bnb: Version | None) -> SpecifierSet:
    """Keep ``package`` below the releases that demand a newer bitsandbytes than the one the
    plan leaves (plans/huggingface.toml: e.g. transformers >= 5.0 needs bitsandbytes >= 0.46.1):
    only torch is pinned while the rest installs, so without this pip may pick such a release."""
    out = SpecifierSet()
    if bnb is None:
        return out
    for rule in kb.hf:
        if rule.package != "bitsandbytes" or package not in rule.when or bnb >= rule.minimum:
            continue
        for clause in rule.when[package]:
            if clause.operator == ">=":
                out &= SpecifierSet(f"<{clause.version}")
    return out


def _environment_manual(
    view: View, kb: Knowledge, ids: set[str], by_id: dict[str, list[Finding]], manual: list[Manual]
) -> None:
    """The manual steps for what a virtual environment cannot change, in a fixed order."""
    for advise in _ENVIRONMENT_ADVICE:
        step = advise(view, kb, ids, by_id)
        if step is not None:
            manual.append(step)


FindingsById = Mapping[str, list[Finding]]
Advice = Callable[[View, Knowledge, set[str], FindingsById], "Manual | None"]


# torch's Windows loader could not load its DLLs (rules/torch.py, S98): the runtime it names
TORCH_DLL_ADVICE = (
    "install the latest Microsoft Visual C++ Redistributable (x64), the one torch's own message "
    "links (https://aka.ms/vs/17/release/vc_redist.x64.exe), then open a new shell and import "
    "torch again. The Visual C++ runtime is a part of Windows that reinstalling torch does not "
    "install"
)


STALE_TOOLKIT_ADVICE = (
    "remove the old CUDA toolkit's lib64 (e.g. /usr/local/cuda/lib64) "
    "from LD_LIBRARY_PATH; torch brings its own CUDA runtime"
)


def _torch_dll_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """torch's DLLs cannot load: the Visual C++ runtime, which no package brings -- unless the
    build is a known-bad one, whose fixed release the steps install."""
    if "torch-dll-load-failed" not in ids:
        return None
    if known_bad_torch(view, kb) is not None and not view.implied.vc_runtime_missing:
        # a known-bad build: the runtime does not bring what it lacks (S121); the steps move
        # torch, or the no-candidate step says why none fits
        return None
    dll = view.implied.torch_dll
    suspects = [
        k
        for k in kb.torch.known_bad
        if view.torch is None and dll and k.dll.lower() == dll.lower()
        if view.platform in k.platforms
    ]
    if suspects and not view.implied.vc_runtime_missing:
        # torch's version unreported, its failing DLL that of a known-bad build: say which
        # release to look for, beside the runtime advice (S121)
        k = suspects[0]
        text = (
            f"{dll} is the DLL that fails in torch {k.version}'s Windows wheels ({k.why}; "
            f"{k.source}): if `pip show torch` says {k.version}, install {k.fixed_in} of the "
            f"same build, or bring the DLL it lacks; otherwise, {TORCH_DLL_ADVICE[0].lower()}"
            f"{TORCH_DLL_ADVICE[1:]}"
        )
        return Manual("torch-dll-load-failed", text, True)
    return Manual("torch-dll-load-failed", TORCH_DLL_ADVICE, True)


def _stale_toolkit_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """A system toolkit on the loader path; required where the error shows it shadowing one of
    torch's own CUDA libraries (no package change fixes that, S52)."""
    if "stale-toolkit-on-path" not in ids:
        return None
    ptxas = next(
        (f for f in by_id.get("stale-toolkit-on-path", ()) if f.evidence.get("ptxas_unknown_arch")),
        None,
    )
    if ptxas is not None:
        return _ptxas_advice(ptxas)
    major = extension_cuda_major(view)
    if major is not None:
        return _extension_toolkit_advice(view, kb, major)
    shadowed = view.implied.cuda_lib_shadowed
    if not shadowed:
        return Manual("stale-toolkit-on-path", STALE_TOOLKIT_ADVICE, False)
    if view.ld_library_path_unset:
        wheels = (
            " and check that the nvidia-nvjitlink wheel is as new as nvidia-cusparse "
            "(`pip list | grep nvidia`)"
            if shadowed == "libnvJitLink"
            else ""
        )
        text = (
            f"an older {shadowed} than torch's CUDA wheels need is found first, though "
            f"LD_LIBRARY_PATH is unset: look for it with `ldconfig -p | grep "
            f"{shadowed.removeprefix('lib')}` (a system CUDA listed in /etc/ld.so.conf.d)" + wheels
        )
    else:
        text = (
            f"{STALE_TOOLKIT_ADVICE}: an older {shadowed} found there first is what torch's "
            f"libraries loaded (`unset LD_LIBRARY_PATH`, or put the venv's nvidia/*/lib first)"
        )
    return Manual("stale-toolkit-on-path", text, True)


def _cudnn_by_the_move(
    view: View, kb: Knowledge, steps: list[Step], manual: list[Manual]
) -> list[Manual]:
    """Where the plan's torch step is a build of a newer cuDNN major than the toolkit's copy
    that stood in for torch's own (cudnn_shadow_major), that step ends the shadowing: taking the
    toolkit off the loader path becomes the alternative, named with the step's release. Any
    other plan (no torch step, or one a pin or a GPU held back) keeps it required."""
    shadow = cudnn_shadow_major(view, kb)
    move = _torch_move(steps)
    target = parse_version(move.to) if move is not None else None
    to = public(target) if target is not None else None
    new = torch_cudnn_of(kb, to) if to is not None else None
    if shadow is None or new is None or new <= shadow:
        return manual
    return [
        Manual(
            m.id,
            f"or keep torch {view.torch}: {m.text}. The torch step serves instead because the "
            f"toolkit's cuDNN is major {shadow}, the one torch {view.torch} opens, and torch "
            f"{to} opens cuDNN {new}'s files (libcudnn*.so.{new}), which that copy cannot stand "
            f"in for; should torch {to} fail the same way, that folder holds cuDNN {new} too, "
            "and this step mends it",
            False,
        )
        if m.id == "stale-toolkit-on-path" and m.required
        else m
        for m in manual
    ]


def _ptxas_advice(finding: Finding) -> Manual:
    """A ptxas older than the GPU compiled a kernel (S128): Triton's JIT (or an extension build)
    needs one that knows the architecture; no torch step proves its Triton brings one."""
    sm = finding.evidence["ptxas_unknown_arch"]
    path = finding.evidence.get("TRITON_PTXAS_PATH")
    where = (
        f"TRITON_PTXAS_PATH names {path}, a ptxas that does not know it: point it"
        if path
        else "point TRITON_PTXAS_PATH (Triton's) or the toolkit on PATH (an extension build)"
    )
    text = (
        f"{where} at the ptxas of a CUDA toolkit that knows {sm} (`<ptxas> --help | grep "
        f"{sm}`), or take a torch whose bundled Triton carries a newer ptxas; the kernel then "
        "compiles for this GPU"
    )
    return Manual("stale-toolkit-on-path", text, True)


def _extension_toolkit_advice(view: View, kb: Knowledge, major: int) -> Manual:
    """The toolkit that compiles extensions has another CUDA major than torch (S120): the plan
    moves torch to a build of the toolkit's major where one fits; keeping torch needs a toolkit
    of torch's major, which no package change installs."""
    nvcc = view.implied.extension_nvcc
    torch_cuda = extension_torch_cuda(view)  # known: a major was shown to differ
    torch_major = f"{torch_cuda.major}.x" if torch_cuda is not None else "torch's CUDA"
    text = (
        f"keep torch and compile with a CUDA {torch_major} toolkit instead of nvcc {nvcc}: "
        "install it and point CUDA_HOME at it (`$CUDA_HOME/bin/nvcc --version` must show "
        f"release {torch_major}); extensions are compiled with CUDA_HOME's nvcc, whose major "
        "must be torch's"
    )
    if torch_candidates(view, kb):
        return Manual("stale-toolkit-on-path", "or " + text, False)
    return Manual(
        "stale-toolkit-on-path",
        f"no torch build of CUDA {major} fits here: {text}",
        True,
    )


def _override_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    if "bnb-cuda-override" not in ids:
        return None
    conda = view.facts.python is not None and view.facts.python.conda
    where = (
        "`conda env config vars unset BNB_CUDA_VERSION` (conda keeps it per environment), and "
        if conda
        else ""
    )
    return Manual(
        "bnb-cuda-override",
        "unset BNB_CUDA_VERSION: " + where + "`unset BNB_CUDA_VERSION` and "
        "remove its `export` from your shell profile (~/.bashrc, ~/.profile) "
        "or container environment; do not set it to an empty value "
        "(bitsandbytes 0.50+ raises on that)",
        True,
    )


def _mixed_gpus_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    if "mixed-gpus" not in ids:
        return None
    finding = by_id["mixed-gpus"][0]
    gpus = ", ".join(f"{g.index} = {g.name} ({g.compute_capability})" for g in view.gpus or ())
    return Manual(
        "mixed-gpus",
        "make only the GPUs you train on visible, of one architecture: "
        f"export CUDA_VISIBLE_DEVICES=<indices> ({gpus}); otherwise "
        "device_map='auto' places layers on all of them",
        finding.severity == Severity.ERROR,
    )


def _libs_advice(view: View, kb: Knowledge, ids: set[str], by_id: FindingsById) -> Manual | None:
    if "cuda-libs-not-found" not in ids:
        return None
    ct2 = [f for f in by_id["cuda-libs-not-found"] if f.evidence.get("ct2_cuda_major")]
    if ct2:
        return ct2_cuda_manual(view, kb, ct2[0])
    cudnn = [f for f in by_id["cuda-libs-not-found"] if f.evidence.get("cudnn_major")]
    if cudnn:
        return cudnn_manual(view, kb, cudnn[0])
    runtime = runtime_manual(view, by_id)  # libcuda broken, a CUDA N runtime missing
    if runtime is not None:
        return runtime
    unregistered = advice_for(view.implied, implying="libcuda_unregistered")
    if unregistered:
        return Manual("cuda-libs-not-found", unregistered, True)
    if view.facts.host and view.facts.host.wsl:
        return Manual(
            "cuda-libs-not-found",
            "WSL: export LD_LIBRARY_PATH=/usr/lib/wsl/lib:$LD_LIBRARY_PATH (add it to ~/.bashrc)",
            True,
        )
    if view.system != "Windows":
        return Manual(
            "cuda-libs-not-found",
            "or put the directory holding libcudart.so on LD_LIBRARY_PATH; a "
            "bitsandbytes >= 0.43.1 needs no search",
            False,
        )
    return None


def _serving_gate_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """vLLM's own compute-capability gate for bitsandbytes quantization: nothing in the
    environment moves it (plans/signatures.toml vllm-quant-capability-gate)."""
    gate = [f for f in by_id.get("gpu-too-old-for-bnb", []) if f.evidence.get("serving_gate")]
    if not gate:
        return None
    need, have = gate[0].evidence["minimum"], gate[0].evidence["compute_capability"]
    return Manual(
        "gpu-too-old-for-bnb",
        f"vLLM serves bitsandbytes-quantized models only on GPUs of compute capability >= "
        f"{need} (this one: {have}); no torch or bitsandbytes build changes vLLM's check. Load "
        "the model in 4-bit with transformers' BitsAndBytesConfig instead (bitsandbytes' own "
        f"GPU floor then applies), use a quantization vLLM allows on a {have} GPU, or run on a "
        f"GPU of compute capability >= {need}",
        # the facts list other GPUs: the check saw another device, whose choice may be the fix
        not gate[0].evidence.get("other_device"),
    )


def _kepler_advice(view: View, kb: Knowledge, ids: set[str], by_id: FindingsById) -> Manual | None:
    if not any(f.evidence.get("kepler") for f in by_id.get("gpu-too-old-for-bnb", [])):
        return None
    no_torch = any(f.evidence.get("no_build") for f in by_id.get("gpu-arch-unsupported", []))
    return Manual(
        "gpu-too-old-for-bnb",
        "GPUs below compute capability 5.0 get no bitsandbytes 4-bit build "
        "from pip (Kepler dropped in 0.39.0): build bitsandbytes from source "
        "for a Kepler (3.x) GPU, or run on a GPU of compute capability "
        ">= 5.0"
        + (
            "; this GPU is below every torch build too, so only a newer GPU helps"
            if no_torch
            else ""
        ),
        True,
    )


def _jetson_advice(view: View, kb: Knowledge, ids: set[str], by_id: FindingsById) -> Manual | None:
    if "jetson-l4t" not in ids:
        return None
    cc = max(view.ccs, default=None)
    flag = f" -DCOMPUTE_CAPABILITY={cc.major}{cc.minor}" if cc is not None else ""
    return Manual(
        "jetson-l4t",
        "Jetson: build bitsandbytes from source with the CUDA backend for "
        f"this board (cmake -DCOMPUTE_BACKEND=cuda{flag}; see bitsandbytes' "
        "installation docs), "
        + (
            "take torch from the plan (PyPI's aarch64 CUDA build carries this GPU)"
            if jetson_index_torch(view, kb, ids) is not None
            else "keep a torch built for this board (NVIDIA's Jetson build, or PyTorch's own "
            "aarch64 CUDA build where it names the board's architecture)"
            if board_in_index_builds(view, kb)
            else _jetson_torch_words(view)
        )
        + ", and upgrade JetPack (not the driver) when a newer CUDA is needed; PyPI's aarch64 "
        "bitsandbytes wheels are built for SBSA servers",
        True,
    )


def _jetson_torch_words(view: View) -> str:
    """Keep NVIDIA's Jetson build of torch; but a torch known not to be one (a CPU-only build,
    or one with a PyTorch index's +cuXY label) that saw no GPU (torch.cuda.is_available()
    False) is no build for this board: replace it."""
    t = view.facts.torch
    label = (view.torch.local or "") if view.torch is not None else ""
    # NVIDIA's Jetson wheels carry an "nv" label part or none at all (JetPack 4's 1.10.0, the
    # jetson-ai-lab builds): only a CPU build or a PyTorch-index label is known not to be one
    if (
        view.torch is not None
        and t is not None
        and t.cuda_available is False
        and (view.torch_cpu_build or label.startswith("cu"))
    ):
        return (
            f"replace torch {view.torch}, which sees no GPU on this board, by NVIDIA's Jetson "
            "build for this JetPack (its PyTorch wheel, or the l4t-pytorch container)"
        )
    return "keep NVIDIA's Jetson build of torch"


CUDA_INIT_ADVICE = (
    "CUDA could not initialise: check `nvidia-smi`; on NVSwitch systems "
    "(HGX/DGX A100, H100) install and start nvidia-fabricmanager of the "
    "same version as the driver (`systemctl start nvidia-fabricmanager`); "
    "after a driver update, reboot. No package change fixes this."
)


# torch.cuda.is_available() was False for a CUDA torch with no CUDA error in the text
# (rules/gpu.py cuda_unavailable_to_a_cuda_torch): where the GPU is most often lost.
def cuda_unavailable_advice(view: View) -> str:
    """The advice for a CUDA torch that sees no GPU (in a container: how it gets one, unless the
    driver answered inside it)."""
    clause = _container_clause(view)
    # a hosted notebook's user has no driver to update and no NVSwitch to start
    host_side = (
        ""
        if view.container in NOTEBOOKS
        else "; on NVSwitch systems start nvidia-fabricmanager; after a driver update, reboot"
    )
    return (
        "torch is a CUDA build, but this process sees no usable GPU: "
        + (f"{clause}; " if clause else "")
        + "check `nvidia-smi` in the same shell, and CUDA_VISIBLE_DEVICES (an empty value or -1 "
        f"hides every GPU){host_side}. No package change fixes this."
    )


def _cuda_unavailable_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """torch.cuda.is_available() was False with torch's build unknown: the CUDA torch step
    helps a CPU-only torch; for a CUDA torch that cannot initialise, this is the other way."""
    if not any(f.evidence.get("or_cuda_init") for f in by_id.get("torch-cpu-build", [])):
        return None
    return Manual(
        "torch-cpu-build",
        'if torch already is a CUDA build (`python -c "import torch; '
        'print(torch.version.cuda)"` prints a version), the torch step does not fix it: CUDA '
        "cannot initialise in that process. " + _init_checks(view),
        False,
    )


def _bnb_other_build_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """bitsandbytes' own CUDA check reported a kernel missing for the GPU, yet the PyPI wheel of
    the installed release has code for it in the library its loader takes (S111, plans/
    bitsandbytes.toml SASS bands): the library that ran is not that wheel's."""
    found = next(
        (f for f in by_id.get("gpu-too-old-for-bnb", ()) if f.evidence.get("pypi_library_covers")),
        None,
    )
    if found is None:
        return None
    lib = found.evidence["pypi_library_covers"]
    reinstall = f"`pip install --force-reinstall --no-deps bitsandbytes=={view.bnb}`"
    if found.evidence.get("pypi_targets_confirmed"):
        text = (
            f"bitsandbytes {view.bnb}'s PyPI wheel has code for this GPU in its {lib} library, "
            "so the library that ran is another build (built from source for other GPUs, a "
            f"copied file, or one BNB_CUDA_VERSION chose): reinstall the wheel ({reinstall}) "
            "with BNB_CUDA_VERSION unset"
        )
    else:
        cc = min(view.ccs)
        text = (
            f"plans/ lists code for this GPU in bitsandbytes {view.bnb}'s {lib} library from its "
            "build scripts only (UNCONFIRMED: the wheel's SASS was not inspected), and the "
            "library's own check found none: if another build replaced the wheel's, reinstall "
            f"it ({reinstall}, BNB_CUDA_VERSION unset); if the wheel itself lacks it, build "
            "bitsandbytes from source for this GPU (cmake -DCOMPUTE_BACKEND=cuda "
            f"-DCOMPUTE_CAPABILITY={cc.major}{cc.minor}; see bitsandbytes' installation docs)"
        )
    return Manual("gpu-too-old-for-bnb", text, True)


def _cuda_init_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """The advice of the CUDA error the message shows (plans/signatures.toml), else the general
    one (802, fabric manager, reboot)."""
    if "cuda-init-failed" not in ids:
        return None
    found = by_id["cuda-init-failed"]
    hidden = next(
        (
            f.evidence["cuda_visible_devices"]
            for f in found
            if f.evidence.get("cuda_visible_devices") is not None
        ),
        None,
    )
    if hidden is not None:
        return Manual(
            "cuda-init-failed",
            f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU: unset it (`unset "
            "CUDA_VISIBLE_DEVICES`), or set it to the GPUs to use (`CUDA_VISIBLE_DEVICES=0`), "
            "where it is set (shell profile, job script, container environment)",
            True,
        )
    if any(f.evidence.get("driver_not_reached") for f in found):
        return Manual("cuda-init-failed", _driver_not_reached_text(view), True)
    mig = next((f.evidence["mig_gpus"] for f in found if f.evidence.get("mig_gpus")), None)
    if mig is not None:
        # the MIG User Guide's commands (S94): create GPU instances with their compute
        # instances, or leave MIG mode
        gpus = ",".join(map(str, mig))
        return Manual(
            "cuda-init-failed",
            f"{'GPU' if len(mig) == 1 else 'GPUs'} {gpus} {'is' if len(mig) == 1 else 'are'} in "
            "MIG mode: CUDA sees only its MIG "
            "instances (`nvidia-smi -L` lists them as `MIG ... Device`). Create them (`sudo "
            "nvidia-smi mig -lgip` lists the profiles; `sudo nvidia-smi mig -cgi <profile> -C`), "
            f"or leave MIG mode (`sudo nvidia-smi -i {gpus} -mig 0`, then reset the GPU or "
            "reboot); in a container or a Slurm job, ask for a MIG device. No package change "
            "fixes this.",
            True,
        )
    unavailable = any(f.evidence.get("cuda_unavailable") for f in found)
    text = (
        advice_for(view.implied, implying="cuda_forked")
        or advice_for(view.implied, implying="cuda_error")
        or (cuda_unavailable_advice(view) if unavailable else CUDA_INIT_ADVICE)
    )
    if view.implied.cuda_error == 804 and view.torch_cuda is not None:
        need = kb.drivers.minor_compat_min(view.torch_cuda.major, view.driver_os)
        if need is not None:
            text += f" For torch's CUDA {view.torch_cuda}: driver >= {need}."
    return Manual("cuda-init-failed", text, True)


def _arch_source_words(code: str | None) -> str:
    """Where plans/torch.toml's arch list of a build comes from, in words (its arch_source
    legend: M measured in the wheel, B the build script, R RELEASE.md, T a third party)."""
    kinds = {
        "M": "measured in the wheel",
        "B": "from PyTorch's build script",
        "R": "from PyTorch's RELEASE.md",
        "T": "measured by a third party",
    }
    kind = kinds.get((code or "")[:1])
    return f"plans/torch.toml, {kind}" if kind else "plans/torch.toml"


def _driver_not_reached_text(view: View) -> str:
    """Where a driver new enough for the runtime was reported but the process that failed got
    "insufficient driver" (35): it did not reach the driver. In a container, how to give it the
    GPU; elsewhere, where the driver's libcuda may be lost."""
    lead = (
        f"driver {view.facts.driver.version if view.facts.driver else view.driver} runs this "
        "CUDA runtime, so the process that failed did not reach the driver: "
    )
    if view.container is not None:
        return (
            lead
            + _container_gpu_text(
                view.container, (view.facts.env or {}).get("NVIDIA_VISIBLE_DEVICES"), meant=True
            )
            + ". No package change fixes this."
        )
    return (
        lead
        + start_with_gpu(None)
        + "; run `nvidia-smi` where the program runs, check that `ldconfig -p | grep "
        "libcuda.so.1` lists the driver's library, and reboot after a driver update. No "
        "package change fixes this."
    )


def _insufficient_driver_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """cudaErrorInsufficientDriver (35) in the message: the driver upgrade is the fix that holds
    whatever runtime failed; a torch build for an older CUDA (the steps) is the venv alternative.
    It is required unless the facts show that the planned torch fits (driver and torch known)."""
    if _libraries_only(by_id, "driver-too-old"):
        return library_driver_manual(view, kb, by_id["driver-too-old"][0])
    if _ptx_jit_only(by_id):
        f = by_id["driver-too-old"][0]
        return Manual(
            "driver-too-old",
            f"upgrade the NVIDIA driver to >= {f.evidence['minimum_driver']}, the driver of "
            f"CUDA {f.evidence['torch_cuda']}'s own toolkit: the process JIT-compiles PTX (a "
            "kernel built as PTX only, or one Triton or an extension compiles), and a driver "
            "that runs this CUDA only through minor-version compatibility cannot (NVIDIA's "
            "caveat, compat-facts A2)"
            + (
                f"; where torch's own PTX is what is compiled, a torch build of CUDA "
                f"{view.driver_cuda} or older, which this driver runs natively, avoids it"
                if view.driver_cuda is not None
                else ""
            ),
            True,
        )
    if not view.implied.driver_below_torch_cuda or "driver-too-old" not in ids:
        return None
    if view.torch_cuda is not None:
        need = kb.drivers.minor_compat_min(
            view.torch_cuda.major, view.driver_os
        ) or kb.drivers.toolkit_min(view.torch_cuda, view.driver_os)
        target = f"to >= {need} (torch's CUDA {view.torch_cuda} runtime)"
    else:
        have = f" (this driver runs up to CUDA {view.driver_cuda})" if view.driver_cuda else ""
        target = f"to the minimum of the CUDA runtime that failed{have}"
    return Manual(
        "driver-too-old",
        "the error says the driver is older than the CUDA runtime: upgrade the NVIDIA driver "
        + target
        + "; or, inside the venv, use a torch build for an older CUDA (the steps, where planned)",
        view.torch_cuda is None or view.driver is None,
    )


def _libstdcxx_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """The loader's libstdc++ lacks a symbol version (plans/signatures.toml): no wheel change
    fixes that; the C++ runtime must be newer (in a conda env, the env's own libstdc++)."""
    found = [f for f in by_id.get("bnb-platform-unsupported", []) if f.evidence.get("libstdcxx")]
    if not found:
        return None
    sym = found[0].evidence["libstdcxx"]
    if found[0].evidence.get("conda"):
        text = (
            f"conda: the environment's own libstdc++ (its lib/ comes first) lacks {sym}: "
            "update it inside the env (`conda install -c conda-forge libstdcxx-ng`; "
            "`libstdcxx` on current conda-forge), then re-run; the system's newer one is "
            "shadowed by the env's"
        )
    else:
        text = (
            f"the system libstdc++ lacks {sym}: install a newer GCC runtime (libstdc++6) or "
            "move to a newer OS release; a bitsandbytes built from source on this system "
            "also avoids it"
        )
    return Manual("bnb-platform-unsupported", text, True)


def _rocm_host_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """The ROCm step; a HIP error the message shows (no code object for the GPU's gfx target,
    plans/signatures.toml) comes first with its advice, since no bitsandbytes fixes it."""
    if "rocm-host" not in ids:
        return None
    if _rocm_bnb_fits(view, kb):
        return None  # the installed release ships a library for torch's ROCm
    if (moved := rocm_torch_target(view, kb)) is not None:
        return _rocm_torch_fallback(view, kb, *moved)
    if (chosen := rocm_bnb_target(view, kb)) is not None:
        return _rocm_fallback(view, kb, chosen)
    text = _rocm_advice(view, kb)
    wrong = view.torch_without_rocm()
    if wrong is not None:
        text = f"{_rocm_torch_advice(view, kb, wrong)} Then, for 4-bit: {text}"
    hip = advice_for(view.implied, implying="rocm")
    return Manual("rocm-host", f"{hip} Then, for 4-bit: {text}" if hip else text, True)


def _rocm_fallback(view: View, kb: Knowledge, chosen: BnbRelease) -> Manual:
    """The optional step beside the plan's ROCm bitsandbytes step: ``chosen`` (rocm_bnb_target,
    which covers every GPU target the knowledge base knows for it) loads a library built for a
    list of GPU targets (S89). Known to hold this GPU's, the source build is the last resort,
    not the likely fix."""
    gfx = amd_gfx(view, kb)
    rocm = _rocm_of(view)
    assert rocm is not None  # rocm_bnb_target chose it for torch's ROCm
    lib, targets = _rocm_lib(view, kb, chosen, rocm)
    cmake = f"`cmake -DCOMPUTE_BACKEND=hip -DBNB_ROCM_ARCH={gfx[0] if gfx else '<gfx target>'} .`"
    if gfx and targets is not None:
        text = (
            f"bitsandbytes {chosen.version}'s {lib} library is built for this GPU's target "
            f"{', '.join(gfx)} (S89): if the 4-bit check still fails after this plan, the cause "
            "is elsewhere -- give its error text to `qfix explain`; the last resort is "
            f"building bitsandbytes from source for it ({cmake})"
        )
    else:
        text = (
            "if the 4-bit check still fails after this plan, the bitsandbytes library may not "
            "be built for this GPU's target"
            + ("" if gfx else " (`rocminfo | grep gfx`)")
            + f": build bitsandbytes from source for it ({cmake})"
        )
    return Manual("rocm-host", text + NO_CUDA_TORCH, False)


def _rocm_torch_fallback(
    view: View, kb: Knowledge, c: TorchChoice, bnb: BnbRelease | None
) -> Manual:
    """The step beside the plan's move to torch's ROCm build (rocm_torch_target). Optional: the
    other builds of that release compiled for the GPUs' targets (those a bitsandbytes library
    serves too), should the host's amdgpu driver not run the chosen ROCm (not in the facts).
    Required where an installed or missing bitsandbytes has no PyPI release with a library for
    the new ROCm built for the GPU's target: 4-bit still needs it."""
    gfx = amd_gfx(view, kb)
    rocm = _rocm_mm(c.variant.rocm)
    kept = bnb if bnb is not None else bnb_release(view, kb)
    serves = kept is not None and _rocm_bnb_usable(view, kb, kept, rocm, (c.target,))
    # with a bitsandbytes that serves the chosen build, only builds it serves too
    lib_of = kept.lib_for_rocm if serves and kept is not None else None
    others = [
        v
        for v in c.release.variants_for(view.platform or "")
        if v.rocm
        and _gfx_missing(v, gfx) == []
        and v.name != c.variant.name
        and (lib_of is None or lib_of(_rocm_mm(v.rocm), view.platform or ""))
    ]
    text = (
        f"the plan installs torch {c.version}; its wheel carries the ROCm libraries, but the "
        "host's amdgpu kernel driver must support that ROCm version (AMD's ROCm compatibility "
        "matrix; not in the facts). If the 4-bit check fails with a HIP error, "
        + (
            f"torch {c.target} is also built for {', '.join(gfx)} as "
            f"{', '.join(v.name for v in others)} (`pip install "
            f"{_rocm_pins(c.release, c.target, others[-1].name)} --index-url "
            f"{DEFAULT_TORCH_INDEX}/{others[-1].name}`, or your mirror's folder; torchaudio "
            "from the same folder)"
            if others
            else "update the amdgpu driver (AMD's amdgpu-install) and run `qfix apply` again"
        )
        + NO_CUDA_TORCH
    )
    gap = view.bnb_installed is not None and not _bnb_built_here(view, kb) and not serves
    if gap:
        need = _rocm_advice(view, kb, rocm, tail="")
        text = f"for 4-bit with torch {c.version}: {need}. Also, {text}"
    return Manual("rocm-host", text, gap)


def _rocm_pins(rel: TorchRelease, version: Version, variant: str) -> str:
    """``torch==2.9.0+rocm6.4 torchvision==0.24.0+rocm6.4``: the local label pinned, since
    ``==2.9.0`` alone is satisfied by an installed ``2.9.0+cu128`` (PEP 440 ignores local
    labels), and pip would keep it."""
    family = rel.family_for(version)
    vision = family.torchvision if family is not None else None
    return f"torch=={version}+{variant}" + (
        f" torchvision=={vision}+{variant}" if vision is not None else ""
    )


def _rocm_torch_advice(view: View, kb: Knowledge, wrong: str) -> str:
    """torch is a CUDA or CPU build on an AMD host: the ROCm builds of its release (or of the
    newest release that has them here) from plans/torch.toml. Which ROCm version this GPU and
    the host's amdgpu driver support is not in the knowledge base, so this stays a manual step
    (rocm_torch_target plans one where a build is known to be compiled for the GPU's target);
    builds known to lack it are left out. The command pins the local label
    (``2.9.0+rocm6.4``): ``==2.9.0`` alone is satisfied by the installed ``2.9.0+cu128``
    (PEP 440 ignores local labels), and pip would keep it."""
    platform = view.platform or ""
    installed = kb.torch.release(view.torch) if view.torch is not None else None
    gfx = set(amd_gfx(view, kb))

    def fits(v: TorchVariant) -> bool:  # a ROCm build not known to lack the targets
        return v.rocm is not None and not _gfx_missing(v, gfx)

    by_series = sorted(kb.torch.releases, key=lambda r: r.series, reverse=True)
    covers = {r.series: any(map(fits, r.variants_for(platform))) for r in by_series}
    with_rocm = [r for r in by_series if covers[r.series]]
    rocm_series = [r for r in reversed(by_series) if any(v.rocm for v in r.variants_for(platform))]
    lacking = _runs([(str(r.series), not covers[r.series]) for r in rocm_series])
    rel = installed if installed in with_rocm else (with_rocm[0] if with_rocm else None)
    lack = (
        f"torch's ROCm builds of {', '.join(lacking)} are not compiled for this GPU's "
        f"target {', '.join(sorted(gfx))} (plans/torch.toml); "
        if lacking
        else ""
    )
    if rel is None:
        return (
            f"torch is {wrong}, and the knowledge base has no ROCm build of torch for "
            f"{platform or 'this platform'} (PyTorch's ROCm wheels are for Linux): run on a "
            "Linux host with ROCm, or use the CPU."
        )
    names = [v.name for v in rel.variants_for(platform) if fits(v)]
    version = public(view.torch) if installed is rel and view.torch else rel.latest
    pins = _rocm_pins(rel, version, names[-1])
    return (
        f"replace torch ({wrong}) with a ROCm build: {lack}torch {version} is on the PyTorch index "
        f"as {', '.join(names)} (`pip install {pins} --index-url "
        f"{DEFAULT_TORCH_INDEX}/{names[-1]}`, or your mirror's folder; torchaudio from the same "
        "folder); pick the ROCm version that this GPU and the host's amdgpu driver support "
        "(AMD's compatibility matrix, not in the knowledge base)."
    )


def _runs(flags: list[tuple[str, bool]]) -> list[str]:
    """The runs of consecutive flagged names, oldest first: ["1.11-2.4", "2.7"]."""
    runs = [
        [name for name, _ in run] for flagged, run in groupby(flags, key=itemgetter(1)) if flagged
    ]
    return [r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]


# NVIDIA's CUDA on WSL User Guide (S116): the Windows driver gives WSL 2 its GPU and libcuda
# (/usr/lib/wsl/lib), and no Linux driver may be installed inside WSL 2; WSL 1 has no GPU.
_WSL_DRIVER = (
    "under WSL the NVIDIA driver is the Windows one: install or update the NVIDIA driver on "
    "Windows (never a Linux driver inside WSL), restart WSL (`wsl --shutdown` in Windows), and "
    "`/usr/lib/wsl/lib/nvidia-smi` in WSL lists the GPU; WSL 1 has no GPU at all "
    "(`wsl --set-version <distro> 2`)"
)

# What an error text with signature torch-cuda-requested proves (plans/signatures.toml, S113).
_CUDA_ASKED = "the failing code asked torch for a CUDA device (read from the error message),"


def _mac_no_driver(view: View, kb: Knowledge, asked: bool) -> Manual:
    """A Mac has no NVIDIA driver to install (NVIDIA's CUDA 10.2 release notes: the last release
    to support macOS): the CPU build of the macOS wheels is the way."""
    native = kb.bnb.native_on(view.platform)
    # with no native build for this Mac, the required step of bnb-platform-unsupported says
    # what is left; this one only says there is no driver to install
    # (said only where the installed release may be older than the first such wheel)
    where = (
        f"bitsandbytes >= {native[0].version} has macOS wheels that run 4-bit on the CPU"
        if native and (view.bnb is None or view.bnb < native[0].version)
        else ""
    )
    if asked:
        text = (
            f"{_CUDA_ASKED} and a Mac has none (no NVIDIA driver to install): no package "
            "change makes that call work here. Run it on a machine with an NVIDIA GPU, or "
            "set the program to the CPU (or Apple's GPU, 'mps') where it offers that"
            + (f"; {where}" if where else "")
        )
        return Manual("no-nvidia-driver", text, True)
    text = "a Mac has no CUDA (no NVIDIA driver to install)" + (f": {where}" if where else "")
    return Manual("no-nvidia-driver", text, False)


# On an AMD host torch's "CUDA" device is the AMD GPU, in a ROCm build only: a CUDA call that
# found no NVIDIA driver (S113) ran in a torch that is not one.
_AMD_CUDA_ASKED = (
    f"{_CUDA_ASKED} and found no NVIDIA driver: on this AMD host torch reaches the GPU through "
    "its CUDA API only as a ROCm build, and this torch is not one (check: "
    '`python -c "import torch; print(torch.version.hip)"` prints None). Install torch, '
    "torchvision and torchaudio again from PyTorch's rocmX.Y index of a ROCm version AMD "
    "supports for this GPU; no NVIDIA driver is needed or usable here"
)


def _no_driver_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """No NVIDIA driver: install one for CUDA 4-bit; on a Mac there is none to install (NVIDIA's
    CUDA 10.2 release notes: the last release to support macOS), so the CPU build of the macOS
    wheels is the way."""
    if "no-nvidia-driver" not in ids:
        return None
    named = next(
        (f for f in by_id.get("no-nvidia-driver", ()) if f.evidence.get("gpu_without_driver")),
        None,
    )
    if named is not None and not (view.facts.host and view.facts.host.wsl) and not view.container:
        return _driver_for_named_gpu(view, kb, named, torch_moves=bool(ids & TORCH_FINDINGS))
    # The failing code itself asked torch for CUDA (S113: a CUDA call on a torch without CUDA,
    # or on one that finds no driver): no package change makes that call work on this machine,
    # so the step is required, whatever the venv steps do for bitsandbytes' CPU 4-bit.
    asked = view.implied.cuda_requested
    if view.system == "Darwin":
        return _mac_no_driver(view, kb, asked)
    if asked and view.rocm and not view.torch_hip:
        # rocm-host's own step names torch's ROCm build where the facts show torch is not one,
        # and the plan's torch step where it moves torch: then this text would repeat them;
        # PyTorch's ROCm wheels are Linux's (rocm-host says so elsewhere)
        told = view.torch_without_rocm() is not None or rocm_torch_target(view, kb) is not None
        linux = view.system in (None, "Linux")
        return Manual("no-nvidia-driver", _AMD_CUDA_ASKED, True) if linux and not told else None
    cpu = [r.minimum for r in kb.hf if r.feature == CPU_4BIT and r.package == "transformers"]
    floor = f" with transformers >= {max(cpu)}" if cpu else ""
    # a library that quantizes on a GPU only (diffusers) has no CPU way to wait on
    gpu_only = view.implied.gpu_only_library
    until = "" if gpu_only else f"; until then bitsandbytes >= 0.46.0 runs 4-bit on the CPU{floor}"
    container = view.container
    if container and view.system == "Linux":
        visible = (view.facts.env or {}).get("NVIDIA_VISIBLE_DEVICES")
        # NVIDIA's CUDA images set NVIDIA_VISIBLE_DEVICES (S105), and a CUDA torch was
        # installed for a GPU: either way the GPU was meant to be there
        meant = visible is not None or view.torch_cuda is not None or asked or bool(gpu_only)
        text = _container_gpu_text(container, visible, meant=meant)
        return Manual("no-nvidia-driver", f"{text}{until}", meant)
    if view.facts.host and view.facts.host.wsl:
        # WSL has no driver of its own: the Windows driver serves WSL 2 (S116)
        meant = view.torch_cuda is not None or asked or bool(gpu_only)
        why = (
            f"{gpu_only}'s bitsandbytes quantizer needs a GPU (read from the error message); "
            if gpu_only
            else f"{_CUDA_ASKED} and none was found; "
            if asked
            else ""
        )
        return Manual("no-nvidia-driver", f"{why}{_WSL_DRIVER}{until}", meant)
    if gpu_only:
        text = (
            f"{gpu_only}'s bitsandbytes quantizer refused this machine for want of a GPU (read "
            f"from the error message), and no {gpu_only} release quantizes on the CPU: it needs "
            "an NVIDIA GPU and driver (or an Intel GPU, 'xpu'); install them, or run it on a "
            "machine with them"
        )
        return Manual("no-nvidia-driver", text, True)
    if asked:
        text = (
            f"{_CUDA_ASKED} and no NVIDIA driver or GPU was found: install them (or run it on a "
            "machine with them), or set the program to another device it offers (the CPU, or an "
            f"Intel GPU's 'xpu'){until}"
        )
        return Manual("no-nvidia-driver", text, True)
    text = f"for CUDA 4-bit, install an NVIDIA driver and GPU{until}"
    return Manual("no-nvidia-driver", text, False)


def _driver_for_named_gpu(
    view: View, kb: Knowledge, finding: Finding, *, torch_moves: bool
) -> Manual:
    """An NVIDIA GPU the facts name, with no driver loaded: install the driver, at least the
    one torch's CUDA build needs where it is known and torch stays (plans/drivers.toml); where
    the plan moves torch, the build it installs decides."""
    gpus = ", ".join(str(g) for g in finding.evidence.get("gpus") or ())
    need = " (one that runs the torch build the plan installs)" if torch_moves else ""
    if view.torch_cuda is not None and not torch_moves:
        floor = kb.drivers.toolkit_min(view.torch_cuda, view.driver_os)
        if floor is not None:
            need = f" (>= {floor} for torch's CUDA {view.torch_cuda})"
    text = (
        f"install NVIDIA's driver for {gpus}{need}, then check that `nvidia-smi` lists it; "
        "on a cloud VM, an image or the provider's GPU-driver extension brings it"
    )
    return Manual("no-nvidia-driver", text, True)


def _init_checks(view: View) -> str:
    """What to check where CUDA cannot initialise in a process: the container's GPU (unless the
    driver answered inside it), then the host's side."""
    checks = "check `nvidia-smi`, CUDA_VISIBLE_DEVICES, and reboot after a driver update"
    clause = _container_clause(view)
    if clause is None:
        return checks[:1].upper() + checks[1:]
    # the general clause is for "in a container": the checks are for elsewhere
    then = "elsewhere" if view.container is None else "also"
    return f"{clause[:1].upper()}{clause[1:]}; {then} {checks}"


def _container_clause(view: View) -> str | None:
    """The container clause of a "this process sees no GPU" advice; None where the probe ran
    inside a named container and the driver answered there (it was started with the GPU)."""
    if view.container and view.driver_found is True:
        return None
    return start_with_gpu(view.container)


def _container_gpu_text(container: str, visible: str | None, *, meant: bool) -> str:
    """How a container gets the host's NVIDIA GPU and driver (S105: the NVIDIA Container
    Toolkit mounts the driver's libraries and devices into a container started with the GPU);
    ``meant``: the facts show a GPU was meant to be there, else the text is conditional."""
    notebook = notebook_gpu_text(container)
    if notebook is not None:
        return notebook
    how = gpu_how(container)
    where = where_words(container)
    lead = (
        f"{where} has no NVIDIA driver in it"
        if meant
        else f"if the host has an NVIDIA GPU, {where} does not see it"
    )
    text = (
        f"{lead}: the host's driver and GPUs "
        f"reach a container only when it is started with them -- {how}, with the NVIDIA "
        "Container Toolkit installed on the host; then `nvidia-smi` inside the container lists "
        "the GPU"
    )
    if visible is not None and visible.strip().lower() in ("", "void", "none"):
        text += (
            f" (NVIDIA_VISIBLE_DEVICES={visible!r} here exposes no GPU to the NVIDIA runtime: "
            "unset it or set it to `all`)"
        )
    return text


def _installer_step(view: View, kb: Knowledge, steps: list[Step], notes: list[str]) -> Step | None:
    """pip itself, where the target's pip is known to be older than 20.3 and so cannot read
    the manylinux_X_Y or macOS 11+ tags (S71) of a wheel the plan installs (bitsandbytes', or
    torch's PyPI wheel: _wheel_tag_for_new_pip), or of the bitsandbytes wheel the error text
    shows it refused: upgraded first, in a command of its own (pip's; uv skips it). Its why (the
    step's `because` names the finding it serves) is one line of ``notes``."""
    pip = view.package("pip")
    if pip is None or pip >= PIP_KNOWS_NEW_TAGS:
        return None
    needing = [(s, t) for s in steps if (t := _wheel_tag_for_new_pip(view, kb, s)) is not None]
    # a refusal the host explains needs no newer pip: no pip installs that wheel there
    refused = (
        view.refused_tag is not None
        and needs_new_pip(view.refused_tag)
        and not view.refusal_explained
    )
    if not needing and not refused:
        return None
    because = tuple(dict.fromkeys(b for s, _ in needing for b in s.because))
    if needing:
        step, tag = needing[0]
        wheel = f"the {tag} tag of the {step.package} {step.to} wheel"
    else:
        wheel = f"the {view.refused_tag} tag of the bitsandbytes wheel it refused"
    notes.append(
        f"pip {pip} is older than {PIP_KNOWS_NEW_TAGS} and cannot read {wheel} (S71), so pip "
        "is upgraded first, in a command of its own"
    )
    return Step(
        "install",
        "pip",
        str(pip),
        f">={PIP_KNOWS_NEW_TAGS}",
        None,
        because or ("bnb-platform-unsupported",),
        "installer",
    )


def _wheel_tag_for_new_pip(view: View, kb: Knowledge, step: Step) -> str | None:
    """The tag of the wheel ``step`` installs where only pip 20.3+ reads it (None: an older pip
    reads it, or the tag is unknown): a bitsandbytes release's (every platform's tag is known),
    or torch's where the target is the PyPI wheel whose tag the knowledge base holds (the
    series' latest, in its PyPI default build)."""
    platform = view.platform or ""
    parsed = parse_version(step.to)
    if parsed is None:
        return None
    tag: str | None = None
    if step.package == "bitsandbytes":
        r = kb.bnb.release(parsed)
        build = r.builds.get(platform) if r is not None else None
        tag = build.tag if build is not None else None
    elif step.package == "torch":
        t = kb.torch.release(parsed)
        if (
            t is not None
            and public(parsed) == t.latest
            and (parsed.local or "") == t.pypi_default.get(platform)
        ):
            tag = t.wheel_tags.get(platform)
    return tag if tag is not None and needs_new_pip(tag) else None


def _refused_wheel_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """pip refused a bitsandbytes wheel, but nothing the host is explains it
    (view.refusal_explained): pip may be too old for the tag's form (< 20.3, S71), or the wheel
    is for another CPU than this Python's."""
    tag = view.refused_tag
    if tag is None or view.refusal_explained:
        return None  # the host explains it: the glibc or macOS step says what to do
    need = tag_need(tag.split(".")[0])
    pip = parse_version(view.facts.package("pip"))
    libc = view.other_libc
    if need is not None and need.kind == "glibc" and libc is not None:
        text = (
            f"pip refused bitsandbytes' {tag} wheel: this host's C library is {libc}, not "
            "glibc, and no manylinux wheel installs on it (an Alpine image): use a glibc-based "
            "image (Debian, Ubuntu) or build bitsandbytes from source"
        )
        return Manual("bnb-platform-unsupported", text, True)
    if pip_may_not_know(tag, pip):
        what = "glibc" if need is not None and need.kind == "glibc" else "macOS"
        floor = f" {need.version}" if need is not None else ""
        below = f"this host's {what} is below{floor} and no bitsandbytes wheel for it installs"
        if pip is not None:
            # the plan's first step upgrades it (_installer_step)
            text = (
                f"pip refused bitsandbytes' {tag} wheel: pip before 20.3 does not know this "
                f"tag's form (this environment has pip {pip}), and the plan upgrades pip "
                "first (uv, where it installs, needs no upgrade). If pip 20.3 or later refuses "
                f"it too, {below}"
            )
            return Manual("bnb-platform-unsupported", text, False)
        text = (
            f"pip refused bitsandbytes' {tag} wheel: pip before 20.3 does not know this tag's "
            "form. Upgrade pip (`python -m pip install -U pip`) and install again; if a current "
            f"pip refuses it too, {below}"
        )
        return Manual("bnb-platform-unsupported", text, True)
    machine = view.facts.host.machine if view.facts.host else None
    text = (
        f"pip refused bitsandbytes' {tag} wheel: its platform tag is not one this Python "
        f"supports (this Python's CPU: {machine or 'unknown'}; an x86_64 Python under Rosetta on "
        "an Apple-silicon Mac or a 32-bit Python refuse the usual wheels). Check "
        '`python -c "import platform, sysconfig; print(platform.machine(), '
        'sysconfig.get_platform())"` and install with a native Python'
    )
    return Manual("bnb-platform-unsupported", text, True)


def arch_unseen(view: View, by_id: FindingsById) -> bool:
    """gpu-arch-unsupported only as an error text reports it ("no kernel image is available"),
    with neither the GPUs' compute capability nor torch's build in the facts: which kernel lacks
    the GPU -- torch's, bitsandbytes', or a model's own CUDA extension -- nothing here says, so
    no torch build is chosen for it (issue 12 item 5: no change that the facts cannot justify)."""
    found = by_id.get("gpu-arch-unsupported", [])
    torch_arch = view.facts.torch.arch_list if view.facts.torch else None
    return (
        bool(found)
        and all(only_reported(f) for f in found)
        and not view.ccs
        and view.torch is None
        and not torch_arch
    )


def _arch_unseen_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    if not arch_unseen(view, by_id):
        return None
    return Manual(
        "gpu-arch-unsupported",
        "a CUDA kernel has no code for this GPU, and the facts show neither the GPU nor torch's "
        "build: compare the GPU's compute capability (`nvidia-smi --query-gpu=name,compute_cap "
        "--format=csv`) with torch's (`python -c \"import torch; print(torch.__version__, "
        'torch.cuda.get_arch_list())"`). If torch lacks it, run `qfix plan` in that environment '
        "for a torch build that has it (it checks bitsandbytes' build too); if both have it, the "
        "kernel is another extension's (a model's own quantization kernels): it needs a build "
        "for this GPU, or a newer GPU",
        True,
    )


def _dependent_pin_advice(
    view: View, kb: Knowledge, ids: set[str], by_id: FindingsById
) -> Manual | None:
    """A distribution whose torch pin excludes every build for this GPU (rules/project.py): no
    torch step can serve both, so the distribution moves first (required)."""
    names = [
        str(f.evidence.get("package"))
        for f in by_id.get("project-pin-conflict", ())
        if f.evidence.get("dependent")
    ]
    if not names:
        return None
    who = ", ".join(names)
    text = (
        f"move {who} to a release whose requirement on torch allows a build with code for this "
        f"GPU (`pip index versions {names[0]}`, and its release notes), or change that pin "
        f"where {who} is your own project; then re-run `qfix plan`"
    )
    return Manual("project-pin-conflict", text, True)


_ENVIRONMENT_ADVICE: tuple[Advice, ...] = (
    _dependent_pin_advice,
    _torch_dll_advice,
    _arch_unseen_advice,
    _refused_wheel_advice,
    _override_advice,
    _mixed_gpus_advice,
    _libs_advice,
    _stale_toolkit_advice,
    _no_driver_advice,
    _kepler_advice,
    _serving_gate_advice,
    _bnb_other_build_advice,
    _jetson_advice,
    _cuda_init_advice,
    _cuda_unavailable_advice,
    _insufficient_driver_advice,
    _libstdcxx_advice,
    _rocm_host_advice,
)


def _rocm_of(view: View) -> Version | None:
    """torch's ROCm version (major.minor of torch.version.hip), or None."""
    hip = parse_version(view.torch_hip) if view.torch_hip else None
    return None if hip is None else Version(f"{hip.major}.{hip.minor}")


def _rocm_bnb_fits(view: View, kb: Knowledge) -> bool:
    """The installed bitsandbytes serves torch's ROCm: a release of the knowledge base that ships
    a library for it and is not known bad."""
    rocm = _rocm_of(view)
    cur = bnb_release(view, kb)
    return (
        rocm is not None
        and cur is not None
        and view.platform is not None
        and cur.lib_for_rocm(rocm, view.platform) is not None
        and not cur.known_bad
    )


def _bnb_built_here(view: View, kb: Knowledge) -> bool:
    """The installed bitsandbytes is not a PyPI release qfix knows: built from source (the facts
    say so, or a dev/local version), a release newer than the knowledge base, or a fork's ROCm
    library (``libbitsandbytes_hip*``). Its owner chose it; a plan does not swap it."""
    bnb = view.facts.bitsandbytes
    if bnb is not None and bnb.source_build:
        return True
    if bnb is not None and any("hip" in lib for lib in bnb.native_libs or ()):
        return True
    v = view.bnb
    return v is not None and (v.is_devrelease or bool(v.local) or kb.bnb.release(v) is None)


def torches_for_rocm(kb: Knowledge, view: View, rocm: Version) -> tuple[Version, ...]:
    """The torch versions an installed torch of unknown version but known ROCm can be: those of
    the knowledge base with a build for that ROCm on this platform."""
    want = f"{rocm.major}.{rocm.minor}"
    return _torches_with(kb, lambda var: var.rocm == want and var.available_on(view.platform or ""))


def rocm_bnb_target(view: View, kb: Knowledge) -> BnbRelease | None:
    """The bitsandbytes to install on a ROCm host, torch kept: a release that ships a library
    for torch's ROCm version (PyPI ROCm libraries from 0.49.0, compat-facts C1/C4) and fits
    otherwise (Python, the wheel's tags, torch's bounds: with torch's version unknown, across
    every torch that had a build for this ROCm, so the install cannot pull another torch). The
    newest with the exact library wins; the loader's fallback to another library of the same
    major counts only where no release has the exact one. None: nothing to do here -- torch's
    ROCm version unknown, the installed release serves, bitsandbytes not reported, one built
    here (``_bnb_built_here``), or the error text shows a fault of HIP's that no bitsandbytes
    fixes."""
    rocm = _rocm_of(view)
    if (
        rocm is None
        or view.platform is None
        or view.bnb_installed is None
        or _bnb_built_here(view, kb)
        or _rocm_bnb_fits(view, kb)
        or advice_for(view.implied, implying="rocm")
    ):
        return None
    torches = (view.torch,) if view.torch is not None else torches_for_rocm(kb, view, rocm)
    return _rocm_bnb_for(view, kb, rocm, torches)


def _rocm_bnb_for(
    view: View, kb: Knowledge, rocm: Version, torches: tuple[Version, ...]
) -> BnbRelease | None:
    """The newest release with a library for ``rocm`` built for the GPUs' targets and whose
    torch bounds admit every one of ``torches`` (rocm_bnb_target)."""
    if not torches or view.platform is None:
        return None
    fits = [r for r in kb.bnb.releases if _rocm_bnb_usable(view, kb, r, rocm, torches)]
    best = [r for r in fits if _exact_rocm_lib(view, r, rocm)] or fits
    return best[-1] if best else None


def rocm_torch_target(view: View, kb: Knowledge) -> tuple[TorchChoice, BnbRelease | None] | None:
    """A CUDA or CPU torch on an AMD host (issue 12 item 4): the ROCm build of torch to move to,
    and, where bitsandbytes is installed and does not serve that ROCm, the release that ships a
    library for it (torch pinned). Only builds compiled for every listed AMD GPU's target
    qualify (plans/torch.toml `gfx`; a build whose targets are unknown is no repair, as a CUDA
    build with an unknown arch list is none). The installed release's builds come first (its
    version kept), then the newest release's; within a release the lowest ROCm: which ROCm the
    host's amdgpu driver runs is not in the facts, so the smallest demand on it, as for CUDA
    builds under an unknown driver. torch's ROCm wheels carry the ROCm libraries they use
    (S103), so the venv change needs nothing else from the host. None: torch is a ROCm build or
    of unknown build, the GPUs' targets are unknown, the error text shows a HIP fault, or no
    known build covers them."""
    if (
        view.torch_without_rocm() is None
        or not amd_gfx(view, kb)
        or advice_for(view.implied, implying="rocm")
    ):
        return None
    cands = [c for c in torch_candidates(view, kb) if c.coverage == "gfx"]
    if not cands:
        return None
    rank: dict[Version, int] = {}
    for i, c in enumerate(cands):
        rank.setdefault(c.release.series, i)
    cands.sort(key=lambda c: (rank[c.release.series], _rocm_mm(c.variant.rocm)))
    if view.bnb_installed is None or _bnb_built_here(view, kb):
        return cands[0], None  # bitsandbytes unreported, or its owner's build: not touched
    cur = bnb_release(view, kb)
    pairs: list[tuple[TorchChoice, BnbRelease | None, bool]] = []
    for c in cands:
        rocm = _rocm_mm(c.variant.rocm)
        r = _rocm_bnb_for(view, kb, rocm, (c.target,))
        exact = r is not None and _exact_rocm_lib(view, r, rocm)
        # the installed release stays where it serves, unless only a release with the exact
        # library would
        if cur is not None and _rocm_bnb_usable(view, kb, cur, rocm, (c.target,)):
            cur_exact = _exact_rocm_lib(view, cur, rocm)
            if cur_exact or not exact:
                pairs.append((c, None, cur_exact))
                continue
        if r is not None:
            pairs.append((c, r, exact))
    if not pairs:
        return cands[0], None  # _rocm_host_advice makes bitsandbytes' side a required step
    # a library built for that ROCm exactly before one the loader takes for a neighbour (one
    # built with ROCm 6.4 may need what a 6.0 runtime lacks), then the order above
    best = ([p for p in pairs if p[2]] or pairs)[0]
    return best[0], best[1]


def _exact_rocm_lib(view: View, r: BnbRelease, rocm: Version) -> bool:
    lib = r.lib_for_rocm(rocm, view.platform or "")
    return lib is not None and lib_rocm(lib) == rocm


def _rocm_mm(rocm: str | None) -> Version:
    """A ROCm version as its major.minor ("6.2.4" -> 6.2): bitsandbytes' libraries are named so."""
    v = Version(rocm or "0")
    return Version(f"{v.major}.{v.minor}")


def _rocm_bnb_usable(
    view: View, kb: Knowledge, r: BnbRelease, rocm: Version, torches: tuple[Version, ...]
) -> bool:
    """Release ``r`` ships a library for ``rocm`` built for the GPUs' targets where known, is not
    known bad, and its torch bounds admit each of ``torches``."""
    return (
        r.lib_for_rocm(rocm, view.platform or "") is not None
        and not r.known_bad
        and not _rocm_gpus_uncovered(view, kb, r, rocm, amd_gfx(view, kb))
        and all(not bnb_fits(view, kb, r, t, None, cpu_only=False) for t in torches)
    )


def amd_gfx(view: View, kb: Knowledge) -> tuple[str, ...]:
    """The LLVM targets of the AMD GPUs the facts list (view.amd_targets, read once)."""
    return view.amd_targets if view.amd_targets is not None else amd_targets(view.facts, kb)


def _rocm_lib(
    view: View, kb: Knowledge, r: BnbRelease, rocm: Version
) -> tuple[str | None, frozenset[str] | None]:
    """The ROCm library ``r`` loads for ``rocm`` ("rocm64") and the GPU targets it has code for
    (S89); None for either where the knowledge base does not say."""
    lib = r.lib_for_rocm(rocm, view.platform or "")
    if lib is None:
        return None, None
    return lib, kb.bnb.lib_targets(r.version, view.platform or "", lib_rocm(lib))


def _rocm_gpus_uncovered(
    view: View, kb: Knowledge, r: BnbRelease, rocm: Version, gfx: tuple[str, ...]
) -> list[str]:
    """The listed AMD GPUs' targets ``gfx`` (amd_gfx) that the ROCm library ``r`` loads for
    ``rocm`` has no code for; [] when they are covered or when either side is not known."""
    _, targets = _rocm_lib(view, kb, r, rocm)
    return [] if targets is None else [g for g in gfx if g not in targets]


def _rocm_torch_note(view: View, kb: Knowledge, c: TorchChoice, bnb: BnbRelease | None) -> str:
    """The plan's note for a move to torch's ROCm build (rocm_torch_target)."""
    gfx = ", ".join(amd_gfx(view, kb))
    kept = view.torch is not None and c.target == public(view.torch)
    text = (
        f"AMD GPU ({gfx}) with "
        + (
            f"torch {view.torch} ({view.torch_without_rocm()})"
            if view.torch is not None
            else f"a torch of unreported version, {view.torch_without_rocm()}"
        )
        + f": torch moves to {c.version}{_rocm_downgrade(view, kb, c)}, "
        + ("a build of the installed release" if kept else f"torch {c.release.series}'s build")
        + f" known to be compiled for {gfx}: {c.variant.gfx_source or 'plans/torch.toml'}"
    )
    if bnb is not None:
        rocm = _rocm_mm(c.variant.rocm)
        lib = bnb.lib_for_rocm(rocm, view.platform or "")
        verb = "moves to" if view.bnb is not None else "installs as"
        text += (
            f"; bitsandbytes {verb} {bnb.version}, which loads its {lib} library for ROCm {rocm}"
        )
    return text


def _rocm_downgrade(view: View, kb: Knowledge, c: TorchChoice) -> str:
    """Why the move takes torch below the installed version, said where it does: the installed
    release has no ROCm build known to hold the GPUs' targets (its lists unknown, or lacking)."""
    if view.torch is None or c.target >= (installed := public(view.torch)):
        return ""
    rel = kb.torch.release(view.torch)
    if rel is None:
        return f" (down from {installed}: torch {series(view.torch)} is not in plans/)"
    builds = [v for v in rel.variants_for(view.platform or "") if v.rocm]
    if not builds:
        why = "has no ROCm build"
    elif any(v.gfx is None for v in builds):
        why = "has ROCm builds, whose GPU targets are not known"
    else:
        why = f"has no ROCm build compiled for {', '.join(amd_gfx(view, kb))}"
    return f" (down from {installed}: torch {series(view.torch)} {why})"


def _rocm_bnb_note(view: View, target: BnbRelease) -> str:
    """The plan's note for the ROCm step: which library the release loads for torch's ROCm."""
    rocm = _rocm_of(view)
    assert rocm is not None  # rocm_bnb_target chose it for torch's ROCm
    lib = target.lib_for_rocm(rocm, view.platform or "")
    how = (
        f"which ships libbitsandbytes_{lib} for torch's ROCm {rocm}"
        if _exact_rocm_lib(view, target, rocm)
        else f"whose loader takes its {lib} library for torch's ROCm {rocm} (no release ships "
        "one for that version exactly)"
    )
    return (
        f"ROCm host: torch stays ({view.torch or 'its ROCm build'}); bitsandbytes moves to "
        f"{target.version}, {how}"
    )


def _rocm_advice(
    view: View, kb: Knowledge, rocm: Version | None = None, *, tail: str = NO_CUDA_TORCH
) -> str:
    """What to do on a ROCm host, from the ROCm libraries the knowledge base says each
    bitsandbytes release ships (compat-facts C1/C4: PyPI ROCm builds from 0.49.0)."""
    rocm = rocm or _rocm_of(view)
    if rocm is None or view.platform is None:
        return (
            "ROCm: use a bitsandbytes release that ships a library for torch's ROCm version "
            "(PyPI ROCm libraries from 0.49.0), set BNB_ROCM_VERSION (0.50+) to a shipped "
            "one, or build bitsandbytes from source" + tail
        )
    py = public(view.python) if view.python is not None else None
    shipping = [r for r in kb.bnb.releases if r.lib_for_rocm(rocm, view.platform) is not None]
    fits = [r for r in shipping if py is None or r.admits_python(py)]
    gpus = amd_gfx(view, kb)
    uncovered = [_rocm_gpus_uncovered(view, kb, r, rocm, gpus) for r in fits]
    if fits and all(uncovered):
        gfx = ", ".join(sorted({g for missing in uncovered for g in missing}))
        return (
            f"ROCm {rocm}: the PyPI bitsandbytes libraries that serve it are not built for this "
            f"GPU's target {gfx} (S89: each library's list grows with the ROCm version it was "
            "built with): build bitsandbytes from source for it (`cmake -DCOMPUTE_BACKEND=hip "
            f"-DBNB_ROCM_ARCH={gfx.split(', ')[0]} .`), or move torch to a ROCm build whose "
            "bitsandbytes library includes it" + tail
        )
    if shipping and not fits:
        return (
            f"ROCm {rocm}: bitsandbytes >= {shipping[0].version} ships a library for it, but "
            f"needs Python {shipping[0].python}; this environment has Python {view.python}: "
            "create a venv with a newer Python (torch's ROCm build in it) and re-run qfix plan "
            "there" + tail
        )
    if fits:
        return (
            f"ROCm {rocm}: bitsandbytes >= {fits[0].version} ships a library for it "
            f"(newest: {fits[-1].version}); install it with torch pinned" + tail
        )
    shipped = sorted(
        {
            t
            for r in kb.bnb.releases
            for t in (r.builds[view.platform].rocm_libs if view.platform in r.builds else ())
        }
    )
    return (
        f"ROCm {rocm}: no PyPI bitsandbytes ships a library for it (shipped: "
        f"{', '.join('rocm' + t for t in shipped) or 'none'}); move torch to a ROCm build "
        "with a shipped library, or build bitsandbytes from source for this HIP version" + tail
    )


def _modern_bnb_driver(view: View, kb: Knowledge, manual: list[Manual]) -> None:
    """Only a legacy bitsandbytes fits this driver: the driver that a current one would need
    (the minor-version compatibility floor of its oldest CUDA library, A2)."""
    needs = [
        kb.drivers.minor_compat_min(v.major, view.driver_os)
        for r in kb.bnb.releases
        if r.version >= MODERN_BNB_LOADER and (b := r.builds.get(view.platform or "")) is not None
        for t in b.cuda_libs
        if (v := cuda_from_tag(t)) is not None
    ]
    need = min((n for n in needs if n is not None), default=None)
    if need is not None and view.driver is not None and view.driver < need:
        manual.append(
            Manual(
                "driver-too-old",
                f"upgrade the NVIDIA driver to >= {need} so that a current "
                f"bitsandbytes (>= {MODERN_BNB_LOADER}) can load; this driver "
                "allows only a legacy release",
                False,
            )
        )


def _driver_alternative(view: View, kb: Knowledge, c: TorchChoice, manual: list[Manual]) -> None:
    """When the driver limits the choice: the driver that would open the next CUDA major."""
    if c.variant.cuda is None or view.driver is None and view.driver_cuda is None:
        return
    system = view.driver_os
    majors = sorted(
        {
            v.cuda.major
            for v in c.release.variants_for(view.platform or "")
            if v.cuda is not None and v.cuda.major > c.variant.cuda.major
        }
    )
    for major in majors:
        need = kb.drivers.minor_compat_min(major, system)
        if need is not None and (view.driver is None or view.driver < need):
            manual.append(
                Manual(
                    "driver-too-old",
                    f"upgrade the NVIDIA driver to >= {need} to open "
                    f"CUDA {major}.x builds (NVIDIA minor-version compatibility)",
                    False,
                )
            )
            return


def _no_torch_candidate(view: View, kb: Knowledge, manual: list[Manual]) -> None:
    """No torch build fits: say what the driver (or platform) would need."""
    system = view.driver_os
    needs: list[Version] = []
    for rel in kb.torch.releases:
        for var in rel.variants_for(view.platform or ""):
            arch = var.arch_for(view.platform or "")
            if var.cuda is None or arch is None:
                continue
            if all(arch_coverage(arch, cc) == "sass" for cc in view.ccs):
                m = kb.drivers.minor_compat_min(var.cuda.major, system) or kb.drivers.toolkit_min(
                    var.cuda, system
                )
                if m is not None:
                    needs.append(m)
    if needs:
        manual.append(
            Manual(
                "driver-too-old",
                f"no torch build in the knowledge base runs on this driver with these "
                f"GPUs: upgrade the NVIDIA driver to >= {min(needs)}",
                True,
            )
        )
    else:
        manual.append(
            Manual(
                "gpu-arch-unsupported",
                "no torch build in the knowledge base covers these GPUs on this "
                "platform; a source build is needed",
                True,
            )
        )


def _no_bnb_candidate(view: View, kb: Knowledge, manual: list[Manual]) -> None:
    floor = None
    for r in kb.bnb.releases:
        b = r.builds.get(view.platform or "")
        if b is not None and b.native and b.glibc_min is not None:
            floor = b.glibc_min if floor is None else min(floor, b.glibc_min)
    if view.glibc_short_of(floor):
        text = (
            f"no bitsandbytes wheel runs on glibc {view.glibc_said}: the PyPI wheels "
            f"need glibc >= {floor} (manylinux_2_24){_untagged_floor(view, kb)}; move to a newer "
            "OS or build bitsandbytes from source"
        )
    else:
        text = _python_or_platform_text(view, kb)
    manual.append(Manual("bnb-platform-unsupported", text, True))


def _untagged_floor(view: View, kb: Knowledge) -> str:
    """ ", the untagged ones (<= 0.42.0) libstdc++ GLIBCXX_3.4.21 (this host's: ...)" when the
    libstdc++ here is known to be below every untagged 4-bit build's floor (S37)."""
    needs = [
        b.glibcxx_min
        for r in kb.bnb.releases
        if r.has_4bit
        and (b := r.builds.get(view.platform or "")) is not None
        and b.dist == "any"
        and b.glibcxx_min is not None
    ]
    if view.glibcxx is None or not needs or view.glibcxx >= min(needs):
        return ""
    return (
        f", the untagged ones (<= 0.42.0) libstdc++ GLIBCXX_{min(needs)} (this host's: "
        f"GLIBCXX_{view.glibcxx}, {view.glibcxx_said}; S37)"
    )


def _python_or_platform_text(view: View, kb: Knowledge) -> str:
    """Why no release fits: the platform has native builds only for newer Pythons (macOS wheels
    from 0.49.0 need 3.10), or it has none at all."""
    native = kb.bnb.native_on(view.platform)
    py = public(view.python) if view.python is not None else None
    if native and py is not None and not any(r.admits_python(py) for r in native):
        return (
            f"bitsandbytes builds for {view.platform} (from {native[0].version}) need Python "
            f"{native[0].python}; this environment has Python {view.python}: create a venv "
            "with a newer Python and re-run qfix plan there"
        )
    torch_v = public(view.torch) if view.torch is not None else None
    if native and torch_v is not None and not any(r.admits_torch(torch_v) for r in native):
        pre = " (a pre-release, below the release it precedes)" if torch_v.is_prerelease else ""
        return (
            f"the bitsandbytes builds for {view.platform} (from {native[0].version}) need torch "
            f"{native[0].torch}; torch {view.torch}{pre} is outside that, and no torch build "
            "that fits this GPU and driver was found to move to: install a released torch they "
            "accept (in a container, a newer base image), or build bitsandbytes from source "
            "against this torch"
        )
    macos = [m for r in native if (m := r.builds[view.platform or ""].macos_min) is not None]
    if macos and all(view.macos_short_of(m) for m in macos):
        return (
            f"the bitsandbytes wheels for {view.platform} need macOS >= {min(macos)}; this Mac's "
            f"is below {view.macos_below} (pip refused the {view.refused_tag} wheel): upgrade "
            "macOS or build bitsandbytes from source"
        )
    h = view.facts.host
    where = view.platform or f"{h.system if h else '?'}/{h.machine if h else '?'}"
    return (
        f"no bitsandbytes release in the knowledge base fits {where}; build "
        "bitsandbytes from source or change the platform" + _source_build_below_cublaslt(view, kb)
    )


# The first bitsandbytes built with CMake (its NO_CUBLASLT option; earlier releases used a
# Makefile), S88.
CMAKE_BUILD = Version("0.43.0")


def _source_build_below_cublaslt(view: View, kb: Knowledge) -> str:
    """What a source build must know on a GPU below the cuBLASLt bound: the releases whose loader
    looks for a separate ``_nocublaslt`` library there build it only with -DNO_CUBLASLT=ON; the
    first release after them needs no flag (S88)."""
    split = [r for r in kb.bnb.releases if r.nocublaslt_below is not None]
    if not split or not view.ccs:
        return ""
    bound = split[-1].nocublaslt_below
    if bound is None or min(view.ccs) >= bound:
        return ""
    after = next((r for r in kb.bnb.releases if r.version > split[-1].version), None)
    low = min(view.ccs)
    return (
        f" (on this GPU, compute capability {low}, below {bound}, bitsandbytes up to "
        f"{split[-1].version} looks for a separate `_nocublaslt` library, which a build of "
        f"{CMAKE_BUILD}-{split[-1].version} makes only with `cmake -DNO_CUBLASLT=ON`"
        + (f"; {after.version} and later need no such flag" if after is not None else "")
        + ")"
    )


def _download(view: View, bnb: BnbRelease | None, steps: list[Step]) -> dict[str, int | None]:
    """Download size per installed package, where the knowledge base has it (bitsandbytes)."""
    out: dict[str, int | None] = {}
    for s in steps:
        if s.action != "install":
            continue
        size = None
        if s.package == "bitsandbytes" and bnb is not None:
            build = bnb.builds.get(view.platform or "")
            size = build.size_bytes if build else None
        out[s.package] = size
    return out
