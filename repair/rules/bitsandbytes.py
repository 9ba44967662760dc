"""Rules about the installed bitsandbytes: present, with 4-bit, one copy, a native library that
fits torch, the platform and the GPUs (compat-facts C1-C6; F09, F21, F27, F30, F32, F41, F44)."""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import Version

from ..findings import Finding, Unknown
from ..knowledge import BNB_KNOWN_BAD_WARN, BnbConflict, BnbRelease, Knowledge
from ..view import (
    BNB_FORK_PATTERN,
    FIRST_4BIT,
    KEPLER_BELOW,
    MODERN_BNB_LOADER,
    TORCH_KEYED_LOADER,
    View,
    bnb_available_libs,
    bnb_forks,
    bnb_release,
    bnb_runtime_cuda,
    cuda_from_tag,
    installed_cuda_lib,
    parse_version,
    pick_cuda_lib,
    public,
    sass_ccs_cover,
)
from .platform import bnb_platform_unsupported
from .registry import (
    Context,
    absent_or_unknown,
    likeliest,
    older_bitsandbytes_suspected,
    rule,
    ruled_out,
    suspect,
)


@rule("bnb-missing")
def bnb_missing(ctx: Context) -> Iterator[Finding | Unknown]:
    view = ctx.view
    if view.bnb_installed is False and "hf-remote-code-missing-bnb" in view.implied.signatures:
        # transformers names a package whose import raised ImportError (S95): also one whose own
        # import failed on a module it needs
        yield ctx.finding(
            "bnb-missing",
            "bitsandbytes cannot be imported in the target (read from the error message): it "
            "is not installed, or its own import failed on a module it needs (bitsandbytes "
            '0.39.0-0.41.3.post2 import scipy without declaring it; `python -c "import '
            'bitsandbytes"` shows which)',
            source="error message",
        )
        return
    yield from absent_or_unknown(ctx, "bnb-missing", view.bnb_installed, "bitsandbytes")
    if view.bnb is not None and ctx.bnb_rel is None:
        yield Unknown("bnb-release", f"bitsandbytes {view.bnb} (not in the knowledge base)")


@ruled_out("bnb-missing")
def _bnb_installed(view: View, kb: Knowledge) -> bool:
    return view.bnb_installed is True


@rule("bnb-no-4bit")
def bnb_no_4bit(ctx: Context) -> Iterator[Finding]:
    bnb = ctx.view.bnb
    if bnb is not None and bnb < FIRST_4BIT:
        yield ctx.finding(
            "bnb-no-4bit",
            f"bitsandbytes {bnb} predates 4-bit (first in {FIRST_4BIT})",
            bitsandbytes=str(bnb),
        )
        return
    spec, inside = ctx.bnb_text_spec, ctx.bnb_in_text
    if bnb is None and inside and inside[-1].version < FIRST_4BIT:
        # an error message proves a range wholly below the first 4-bit release
        yield ctx.finding(
            "bnb-no-4bit",
            f"bitsandbytes {spec} (read from the error message) predates 4-bit "
            f"(first in {FIRST_4BIT})",
            bitsandbytes=str(spec),
            source="error message",
        )


@ruled_out("bnb-no-4bit")
def _bnb_has_4bit(view: View, kb: Knowledge) -> bool:
    return view.bnb is not None and view.bnb >= FIRST_4BIT


def _library_check_applies(ctx: Context) -> bool:
    """Whether the CUDA library bitsandbytes loads is checked: no BNB_CUDA_VERSION (its own rule),
    an NVIDIA GPU that takes the CUDA remedies (or one unknown, with a CUDA torch), a 4-bit
    release whose libraries are known."""
    view = ctx.view
    cuda_host = ctx.nvidia_here or (
        view.has_nvidia_gpu is None
        and view.torch_cuda is not None
        and not view.rocm
        and not ctx.jetson
    )
    return (
        (view.facts.env or {}).get("BNB_CUDA_VERSION") is None
        and cuda_host
        and view.bnb is not None
        and view.bnb >= FIRST_4BIT
        and ctx.bnb_libs is not None
    )


@rule("bnb-no-cuda-lib")
def bnb_no_cuda_lib(ctx: Context) -> Iterator[Finding | Unknown]:
    if ctx.view.torch_cuda_printed:
        yield Unknown(
            "torch-cuda-printed",
            f"torch.version.cuda {ctx.view.torch_cuda} (read from what bitsandbytes printed; "
            "not reported)",
        )
    # the facts' own library check, then the loader's message, then (nothing proven) which
    # releases of an unreported version lack torch's CUDA
    found = list(_library_of_other_major(ctx)) + list(_library_for_torch_cuda(ctx))
    if not any(isinstance(f, Finding) for f in found):
        found += list(_library_not_loaded(ctx))
    yield from found
    if any(isinstance(f, Finding) for f in found):
        return
    first = _first_lib_for_unknown_bnb(ctx)
    if first is not None:
        cuda, release = first
        yield Unknown(
            "bnb-version-for-cuda",
            f"bitsandbytes' version: its library for CUDA {cuda} (torch's) ships only from "
            f"{release.version}; an older release loads no CUDA library",
        )


def _first_lib_for_unknown_bnb(ctx: Context) -> tuple[Version, BnbRelease] | None:
    """_unknown_bnb_lib_gap, once per view (the rule and its suspect both ask)."""
    return ctx.once("bnb-lib-gap", _unknown_bnb_lib_gap)


def _unknown_bnb_lib_gap(ctx: Context) -> tuple[Version, BnbRelease] | None:
    """bitsandbytes installed at a version the facts do not give (or in a range an error text
    proves), torch's CUDA known, on a host not known to lack an NVIDIA GPU: torch's CUDA and
    the first release from which every release keyed on torch.version.cuda (0.40.1 on,
    compat-facts C4) has a library it loads for that CUDA here. None where the range has no
    such gap, where the gap is not one run of the oldest releases (0.46-0.49 dropped CUDA 11.7
    and 0.50 brought it back: "only from" would be false), or where the facts settle it (the
    library files the probe saw, or a library that loaded)."""
    view = ctx.view
    cuda = view.torch_cuda
    b = view.facts.bitsandbytes
    if (
        view.bnb is not None
        or view.bnb_installed is not True
        or cuda is None
        or (view.facts.env or {}).get("BNB_CUDA_VERSION") is not None
        or view.rocm
        or ctx.jetson
        or view.has_nvidia_gpu is False
        or view.platform is None
        or (b is not None and (b.native_libs or b.loaded is not None))
    ):
        return None
    platform = view.platform
    spec = ctx.bnb_text_spec
    # 4-bit releases with a native build here (those with none are bnb-platform-unsupported's to
    # name), inside the range an error text proves
    keyed = [
        r
        for r in ctx.kb.bnb.native_on(platform)
        if r.version >= TORCH_KEYED_LOADER and (spec is None or r.version in spec)
    ]

    def has_lib(r: BnbRelease) -> bool:
        return pick_cuda_lib(r.builds[platform].cuda_libs, cuda, r.loader) is not None

    flags = [has_lib(r) for r in keyed]
    if True not in flags or False not in flags:
        return None
    first = flags.index(True)
    if False in flags[first:]:
        return None  # a gap after a release that has it: no single "from"
    return cuda, keyed[first]


@suspect(
    "bnb-no-cuda-lib",
    # the platform's line on bitsandbytes' version says the same of another range: one line
    replaces=("bnb-version-for-cuda", "bnb-version-for-platform"),
    instead="bitsandbytes' version (installed, not reported): the suspected finding says which "
    "releases have no library for torch's CUDA",
    fallback=True,
)
def _bnb_older_than_cuda(ctx: Context) -> Iterator[Finding]:
    """With nothing else wrong, a bitsandbytes of unknown version beside a torch whose CUDA only
    later releases have a library for: an older release is the likeliest cause, and the plan
    moves bitsandbytes to one that has it, torch kept."""
    first = _first_lib_for_unknown_bnb(ctx)
    if first is None:
        return
    cuda, release = first
    lacks = f"bitsandbytes has a library for CUDA {cuda} (torch's) only from {release.version}"
    yield ctx.finding(
        "bnb-no-cuda-lib",
        older_bitsandbytes_suspected(lacks),
        cuda=str(cuda),
        cuda_source="torch.version.cuda",
        first=str(release.version),
    )


def _library_for_torch_cuda(ctx: Context) -> Iterator[Finding | Unknown]:
    """The installed release has no library for the CUDA version it keys on (the facts show it)."""
    if not _library_check_applies(ctx) or ctx.bnb_libs is None:
        return
    if ctx.bnb_cuda is None:
        yield Unknown(
            "bnb-runtime-cuda", "the CUDA version bitsandbytes loads for (torch.version.cuda)"
        )
    elif installed_cuda_lib(ctx.view, ctx.bnb_rel, ctx.bnb_libs, ctx.bnb_cuda) is None:
        yield ctx.finding(
            "bnb-no-cuda-lib",
            f"bitsandbytes {ctx.view.bnb} has no library for CUDA {ctx.bnb_cuda} "
            f"(from {ctx.bnb_cuda_source})",
            bitsandbytes=str(ctx.view.bnb),
            cuda=str(ctx.bnb_cuda),
            cuda_source=ctx.bnb_cuda_source,
            shipped=sorted(ctx.bnb_libs.full, key=lambda t: cuda_from_tag(t) or Version("0")),
        )


def _library_not_loaded(ctx: Context) -> Iterator[Finding | Unknown]:
    """bitsandbytes' own loader says it loaded no CUDA library (plans/signatures.toml: the legacy
    loader's "Setup Failed!", "compiled without GPU support", the CPU library's missing symbols;
    S38) on a host whose torch is a CUDA build that sees an NVIDIA GPU: the library for torch's
    CUDA is missing from the installed release, so one that has it is planned (torch kept). Not
    where another fault the text or the facts show explains the fallback (a CPU-only or ROCm
    torch, BNB_CUDA_VERSION, a CUDA that cannot start, a missing CUDA runtime, no build for this
    platform or C library), nor where the facts show the release has the library (ruled out)."""
    view, implied = ctx.view, ctx.view.implied
    if not implied.bnb_cuda_not_loaded or _explained_otherwise(ctx):
        return
    if _bnb_has_cuda_lib(view, ctx.kb):
        return
    if view.torch_cuda is None and not implied.torch_cuda_available:
        yield Unknown(
            "bnb-cuda-not-loaded",
            "bitsandbytes loaded no CUDA library (read from the error message); torch's build "
            "and whether this process sees the GPU are not known, so a CPU-only torch, a GPU "
            "hidden from the process (a container started without it, CUDA_VISIBLE_DEVICES) "
            'and a missing bitsandbytes library all fit: `nvidia-smi` and `python -c "import '
            'torch; print(torch.version.cuda, torch.cuda.is_available())"` tell them apart',
        )
        return
    spec = implied.range("bitsandbytes")
    shown = str(view.bnb) if view.bnb is not None else (str(spec) if spec else "(version unknown)")
    torch_side = (
        f"torch carries CUDA {view.torch_cuda}"
        if view.torch_cuda is not None
        else "torch sees the GPU (torch.cuda.is_available(), per the loader's message)"
    )
    # The legacy loader (before 0.43.1) chose its library by the CUDA runtime it found on its own
    # search path, not by torch's (compat-facts C4): there, no runtime found fits the text too.
    legacy = (view.bnb is not None and view.bnb < MODERN_BNB_LOADER) or (
        view.bnb is None
        and spec is not None
        and all(r.version < MODERN_BNB_LOADER for r in ctx.kb.bnb.releases if r.version in spec)
    )
    why = (
        "its loader (before 0.43.1) found no CUDA runtime on its search path, or no library "
        "for the CUDA version it detected"
        if legacy
        else "it has no library for torch's CUDA"
    )
    yield ctx.finding(
        "bnb-no-cuda-lib",
        f"bitsandbytes {shown} loaded no CUDA library (read from its loader's message) while "
        f"{torch_side}: {why}",
        bitsandbytes=str(view.bnb) if view.bnb is not None else None,
        bitsandbytes_range=str(spec) if view.bnb is None and spec else None,
        cuda=str(view.torch_cuda) if view.torch_cuda is not None else None,
        cuda_source="torch.version.cuda" if view.torch_cuda is not None else None,
        source="error message",
    )


def _explained_otherwise(ctx: Context) -> bool:
    """Whether a fault other than a missing bitsandbytes library explains its CPU fallback."""
    view, implied = ctx.view, ctx.view.implied
    gpu_here = ctx.nvidia_here or (
        view.has_nvidia_gpu is None and implied.torch_cuda_available and not ctx.jetson
    )
    return (
        not gpu_here
        or view.rocm
        or view.torch_cpu_build is True
        or view.system == "Darwin"
        or (view.facts.env or {}).get("BNB_CUDA_VERSION") is not None
        or implied.cuda_error is not None
        or implied.cuda_forked
        or implied.driver_below_torch_cuda
        or implied.cuda_lib_major is not None
        or implied.bnb_foreign_build
        or implied.libstdcxx is not None
        # no build of it runs here (another OS, a glibc below the wheel's): no library would load
        or any(isinstance(f, Finding) for f in bnb_platform_unsupported(ctx))
    )


def _library_of_other_major(ctx: Context) -> Iterator[Finding]:
    """A CUDA library of major N could not be opened (plans/signatures.toml) while torch carries
    CUDA M != N: torch loads its own runtime, so the library built for CUDA N is bitsandbytes'.
    Only a loader that does not key on torch.version.cuda picks it (the libcudart search up to
    0.40.0, a hand-made or source build; compat-facts C4), or BNB_CUDA_VERSION (its own rule);
    from 0.43.1 the library follows torch's CUDA (view.MODERN_BNB_LOADER)."""
    view = ctx.view
    major = view.implied.wanted_cuda_major
    torch_cuda = view.torch_cuda
    if (
        major is None
        or torch_cuda is None
        or torch_cuda.major == major
        or view.rocm
        or view.implied.cuda_lib_bundled_by is not None  # another wheel's own copy (S79, S80)
        or (view.facts.env or {}).get("BNB_CUDA_VERSION") is not None
        or (view.bnb is not None and view.bnb >= MODERN_BNB_LOADER)
    ):
        return
    yield ctx.finding(
        "bnb-no-cuda-lib",
        f"bitsandbytes {view.bnb or '(version unknown)'} loads a library built for CUDA {major} "
        f"(it cannot open {view.implied.cuda_lib or 'cudart'} of CUDA {major}) while torch "
        f"carries CUDA {torch_cuda}: a bitsandbytes >= {MODERN_BNB_LOADER} takes torch's CUDA",
        bitsandbytes=str(view.bnb) if view.bnb is not None else None,
        cuda=str(torch_cuda),
        cuda_source="torch.version.cuda",
        library_cuda_major=major,
        source="error message",
    )


@ruled_out("bnb-no-cuda-lib")
def _bnb_has_cuda_lib(view: View, kb: Knowledge) -> bool:
    # no NVIDIA driver or GPU at all (a Mac, a CPU host): no CUDA version to lack a library for,
    # whatever a loader message ("compiled without GPU support") says
    if view.has_nvidia_gpu is False and not view.rocm:
        return True
    # the same test as the rule, with the same CUDA source
    rel = bnb_release(view, kb)
    libs = bnb_available_libs(view, kb)
    cuda, _ = bnb_runtime_cuda(view, kb)
    return (
        rel is not None
        and cuda is not None
        and libs is not None
        and installed_cuda_lib(view, rel, libs, cuda) is not None
    )


@rule("bnb-torch-mismatch")
def bnb_torch_mismatch(ctx: Context) -> Iterator[Finding | Unknown]:
    view, rel = ctx.view, ctx.bnb_rel
    if view.bnb is None:
        yield from _range_conflict(ctx, view.torch)
        proven = _proven_conflict(ctx)
        if proven is not None:
            yield Unknown(
                "bnb-version-for-triton",
                f"bitsandbytes' version: {proven.releases} cannot import here ({proven.why})",
            )
    if view.bnb is None or rel is None:
        return
    if view.torch is not None and not rel.admits_torch(public(view.torch)):
        yield ctx.finding(
            "bnb-torch-mismatch",
            f"bitsandbytes {view.bnb} requires torch {rel.torch}; installed {view.torch}",
            bitsandbytes=str(view.bnb),
            torch=str(view.torch),
            requirement=str(rel.torch),
        )
        return
    clash = ctx.kb.bnb.conflict(
        rel.version,
        view.platform,
        view.torch,
        cuda_build=view.torch_cuda is not None,
        proven=view.implied.shown,
    )
    if clash is not None:
        # declared bounds admit the pair, but it cannot import (plans/bitsandbytes.toml)
        yield ctx.finding(
            "bnb-torch-mismatch",
            f"bitsandbytes {view.bnb} with torch {view.torch or '(version not reported)'}: "
            f"{clash.why}",
            bitsandbytes=str(view.bnb),
            torch=str(view.torch) if view.torch is not None else None,
            conflict=str(clash.releases),
        )


def _proven_conflict(ctx: Context) -> BnbConflict | None:
    """bitsandbytes installed, its version unknown, and the error text shows a clash by itself
    (a triton without triton.ops: plans/signatures.toml triton-ops-missing) but names no
    importer and no bitsandbytes range: the [[conflict]] that text proves, or None."""
    view = ctx.view
    if (
        view.bnb is not None
        or view.bnb_installed is not True
        or view.implied.range("bitsandbytes") is not None
    ):
        return None
    shown = view.implied.shown
    return next(
        (c for c in ctx.kb.bnb.conflicts if c.proven_by is not None and c.proven_by in shown),
        None,
    )


@suspect(
    "bnb-torch-mismatch",
    replaces="bnb-version-for-triton",
    instead="bitsandbytes' version (installed, not reported): the suspected finding says which "
    "releases cannot import beside what the error text shows",
)
def _bnb_that_cannot_import(ctx: Context) -> Iterator[Finding]:
    """With nothing else wrong, an installed bitsandbytes of unknown version is the likeliest
    importer of what the text shows missing (triton.ops): the plan moves it out of the range."""
    clash = _proven_conflict(ctx)
    if clash is None:
        return
    yield ctx.finding(
        "bnb-torch-mismatch",
        f"bitsandbytes (version not reported) with what the error message shows: releases "
        f"{clash.releases} cannot import here ({clash.why}); its version is not in the facts "
        "and " + likeliest("such a release", "`pip show bitsandbytes`"),
        conflict=str(clash.releases),
        source="error message",
    )


def _range_conflict(ctx: Context, torch: Version | None) -> Iterator[Finding]:
    """bitsandbytes' version unknown, a range an error text proves: every release in it
    conflicts with the installed torch here (plans/bitsandbytes.toml [[conflict]])."""
    spec, inside = ctx.bnb_text_spec, ctx.bnb_in_text
    cuda, shown = ctx.view.torch_cuda is not None, ctx.view.implied.shown
    clashes = [
        ctx.kb.bnb.conflict(r.version, ctx.view.platform, torch, cuda_build=cuda, proven=shown)
        for r in inside
    ]
    if inside and all(clashes) and clashes[0] is not None:
        yield ctx.finding(
            "bnb-torch-mismatch",
            f"bitsandbytes {spec} (read from the error message) with torch "
            f"{torch or '(version not reported)'}: {clashes[0].why}",
            bitsandbytes=str(spec),
            torch=str(torch) if torch is not None else None,
            conflict=str(clashes[0].releases),
            source="error message",
        )


@rule("bnb-cuda-override")
def bnb_cuda_override(ctx: Context) -> Iterator[Finding]:
    """BNB_CUDA_VERSION (compat-facts C4; F32)."""
    value = (ctx.view.facts.env or {}).get("BNB_CUDA_VERSION")
    if value is None:
        return
    rel = ctx.bnb_rel
    if ctx.view.torch_cpu_build and rel is not None and rel.version >= MODERN_BNB_LOADER:
        # From 0.43.1 a torch without CUDA loads the CPU library whatever the variable says
        # (cuda_specs is None when torch.cuda is unavailable, compat-facts C4).
        return
    problems = _override_problems(ctx, value.strip())
    if problems:
        yield ctx.finding(
            "bnb-cuda-override",
            f"BNB_CUDA_VERSION={value!r}: " + "; ".join(problems),
            BNB_CUDA_VERSION=value,
        )


def _override_problems(ctx: Context, v: str) -> list[str]:
    view, rel, libs = ctx.view, ctx.bnb_rel, ctx.bnb_libs
    problems = []
    if rel is not None and rel.loader == "same-major-fallback" and not v.isdigit():
        problems.append("0.50+ requires digits only; an empty or other value raises RuntimeError")
    elif v and not v.isdigit():
        problems.append("not a CUDA version such as 118")
    if v.isdigit() and libs is not None:
        wants_nc = view.wants_nocublaslt(rel)
        if view.bnb is not None and view.bnb < Version("0.44.0") and wants_nc:
            problems.append(
                "before 0.44.0 the override builds a wrong _nocublaslt file name on "
                "GPUs below 7.5 (bnb PR#1318)"
            )
        elif v not in (libs.nocublaslt if wants_nc else libs.full):
            problems.append(f"no libbitsandbytes_cuda{v} in this bitsandbytes")
    if view.rocm and v:
        problems.append("has no meaning for a ROCm torch (raises from 0.47)")
    forced = cuda_from_tag(v) if v.isdigit() else None
    lib_cuda = ctx.bnb_cuda
    if (
        not problems
        and forced is not None
        and lib_cuda is not None
        and forced.major != lib_cuda.major
    ):
        problems.append(
            f"forces CUDA {forced} while torch uses CUDA {lib_cuda}: the matching "
            "libcudart must then be on LD_LIBRARY_PATH"
        )
    return problems


@rule("bnb-duplicate-install")
def bnb_duplicate_install(ctx: Context) -> Iterator[Finding]:
    b = ctx.view.facts.bitsandbytes
    dists = tuple(b.distributions) if b else ()
    forks = [d for d in dists if BNB_FORK_PATTERN.match(d.split()[0])]
    # a fork in the package list, even as the only copy (bitsandbytes itself absent)
    forks += [f"{n} {v or '?'}" for n, v in bnb_forks(ctx.view.facts) if n not in str(dists)]
    if (b is not None and b.copies is not None and b.copies > 1) or forks:
        yield ctx.finding(
            "bnb-duplicate-install",
            f"{max(b.copies or 0, len(dists)) if b else len(forks)} "
            "distributions provide bitsandbytes: " + ", ".join(dists or forks),
            distributions=list(dists),
        )
    copied = _hand_copied_libraries(ctx)
    if copied:
        first = min(
            (
                r.version
                for r in ctx.kb.bnb.releases
                if any(p.startswith("windows") and b.native for p, b in r.builds.items())
            ),
            default=None,
        )
        yield ctx.finding(
            "bnb-duplicate-install",
            f"bitsandbytes {ctx.view.bnb} carries hand-copied {', '.join(copied)}: a community "
            "build (no official wheel of that release has Windows DLLs"
            + (f"; the first with them is {first}" if first else "")
            + ")",
            community_dlls=copied,
            first_windows_wheel=str(first) if first else None,
        )


def _hand_copied_libraries(ctx: Context) -> list[str]:
    """Native libraries in the installed bitsandbytes that no official wheel of its release ships
    for this OS: .dll files beside a release without a Windows wheel (the first is 0.43.0, C1/S21)
    are a community build copied in by hand (the DLLs of third-party Windows builds, with a
    patched cuda_setup/main.py; failure-cases.md, stale or duplicate installs)."""
    view, rel = ctx.view, ctx.bnb_rel
    b = view.facts.bitsandbytes
    if b is None or not b.native_libs or rel is None or view.system not in (None, "Windows"):
        return []
    if any(p.startswith("windows") and b.native for p, b in rel.builds.items()):
        return []  # the release has an official Windows wheel with its own DLLs
    dlls = sorted(n for n in b.native_libs if n.lower().endswith(".dll"))
    if not dlls:
        return []
    return dlls


@rule("gpu-too-old-for-bnb")
def gpu_too_old_for_bnb(ctx: Context) -> Iterator[Finding]:
    """A Kepler GPU (no 4-bit pip release has code for it), or a GPU below the SASS targets of the
    library bitsandbytes loads (compat-facts C2, C3)."""
    view = ctx.view
    kepler = [
        g
        for g in view.gpus or ()
        if (cc := parse_version(g.compute_capability)) is not None and cc < KEPLER_BELOW
    ]
    if kepler and not ctx.jetson:
        yield ctx.finding(
            "gpu-too-old-for-bnb",
            "GPU "
            + ", ".join(f"{g.index} {g.name or ''} ({g.compute_capability})" for g in kepler)
            + ": below 5.0 (Kepler or older), no pip release of bitsandbytes "
            "with 4-bit has code for it (Kepler binaries were dropped in 0.39.0)",
            gpus=[g.index for g in kepler],
            kepler=True,
        )
    below = list(_below_library_targets(ctx))
    yield from below
    if not below and not kepler:
        yield from _kernel_missing_from_text(ctx)
    yield from _serving_gate(ctx)


def _kernel_missing_from_text(ctx: Context) -> Iterator[Finding]:
    """bitsandbytes' own CUDA check printed that a kernel of its library has no code for the
    GPU (plans/signatures.toml bnb-kernel-missing, S111): its library lacks the GPU's
    architecture, whatever the facts say of its version."""
    view = ctx.view
    if not view.implied.bnb_kernel_missing:
        return
    gpus = ", ".join(
        f"{g.name or 'GPU ' + str(g.index)} ({g.compute_capability})"
        for g in view.gpus or ()
        if g.compute_capability
    )
    covering = _library_covering(ctx)
    yield ctx.finding(
        "gpu-too-old-for-bnb",
        f"bitsandbytes{' ' + str(view.bnb) if view.bnb else ''}: a kernel of its CUDA library has "
        f"no code for {gpus or 'the GPU'} (read from the error message: its own CUDA check "
        "reported it, so torch's build is not the cause)",
        compute_capability=[str(cc) for cc in view.ccs],
        source="error message",
        **(
            {"pypi_library_covers": covering[0], "pypi_targets_confirmed": covering[1]}
            if covering
            else {}
        ),
    )


def _library_covering(ctx: Context) -> tuple[str, bool] | None:
    """The library of the installed release's PyPI wheel that the loader takes for torch's CUDA,
    where plans/ lists SASS for every GPU of the facts in it, and whether that list is confirmed
    (a kernel missing from a confirmed list means another build ran: a source build, a copied
    file, BNB_CUDA_VERSION); else None."""
    loaded = _loaded_sass(ctx)
    if loaded is None:
        return None
    chosen, sass, confirmed = loaded
    if not all(sass_ccs_cover(sass, cc) for cc in ctx.view.ccs):
        return None
    return f"cuda{chosen}", confirmed


def _loaded_sass(ctx: Context) -> tuple[str, tuple[Version, ...], bool] | None:
    """The CUDA library tag the installed release loads here, the SASS targets plans/ lists for
    it, and whether that list is confirmed (C2); None where any of it, or the GPUs, is unknown."""
    view, rel, libs, cuda = ctx.view, ctx.bnb_rel, ctx.bnb_libs, ctx.bnb_cuda
    if rel is None or libs is None or cuda is None or not view.ccs or view.platform is None:
        return None
    chosen = installed_cuda_lib(view, rel, libs, cuda)
    build = rel.builds.get(view.platform)
    if chosen is None or build is None:
        return None
    sass = build.sass(chosen)
    if not sass:
        return None
    band = build.sass_band(chosen)
    return chosen, sass, band is not None and band.confirmed


def _serving_gate(ctx: Context) -> Iterator[Finding]:
    """A serving engine refused the GPU for bitsandbytes quantization by its own gate (vLLM's
    get_min_capability, plans/signatures.toml): the text gives both numbers."""
    implied = ctx.view.implied
    if implied.serving_min_cc is None or implied.serving_cc is None:
        return
    need, have = (_cc_text(x) for x in (implied.serving_min_cc, implied.serving_cc))
    listed = sorted({str(cc) for cc in ctx.view.ccs})
    elsewhere = bool(listed) and have not in listed
    yield ctx.finding(
        "gpu-too-old-for-bnb",
        f"vLLM refuses bitsandbytes quantization below compute capability {need} (its own "
        f"check, read from the error message); the GPU it saw is {have}"
        + (
            f", but the facts list {', '.join(listed)}: the text comes from another GPU or "
            "machine, or CUDA_VISIBLE_DEVICES showed vLLM another device"
            if elsewhere
            else ""
        ),
        serving_gate=True,
        minimum=need,
        compute_capability=have,
        other_device=elsewhere or None,
        source="error message",
    )


def _cc_text(number: str) -> str:
    """vLLM's capability integer as a compute capability: "52" -> "5.2", "100" -> "10.0"."""
    n = int(number)
    return f"{n // 10}.{n % 10}"


def _below_library_targets(ctx: Context) -> Iterator[Finding]:
    view = ctx.view
    loaded = _loaded_sass(ctx) if _library_check_applies(ctx) else None
    if loaded is None:
        return
    chosen, sass, confirmed = loaded
    for g in view.gpus or ():
        cc = parse_version(g.compute_capability)
        # Above the highest target the PTX copy covers it (CMake adds PTX for the highest arch
        # since 0.45, compat-facts C2); below, nothing does.
        if cc is not None and not sass_ccs_cover(sass, cc) and cc < max(sass):
            x = ctx.finding(
                "gpu-too-old-for-bnb",
                f"GPU {g.index} {g.name or ''} ({cc}) is below bitsandbytes "
                f"{view.bnb}'s cuda{chosen} build (lowest sm_"
                f"{min(sass).major}{min(sass).minor})"
                + ("" if confirmed else " (UNCONFIRMED: from build scripts)"),
                gpu=g.index,
                compute_capability=str(cc),
                library=f"cuda{chosen}",
                targets=[str(s) for s in sass],
                confirmed=confirmed,
            )
            yield ctx.unconfirmed_or(x, confirmed)


@rule("bnb-known-bad-release")
def bnb_known_bad_release(ctx: Context) -> Iterator[Finding]:
    view, rel, libs = ctx.view, ctx.bnb_rel, ctx.bnb_libs
    if view.bnb is None:
        yield from _known_bad_range(ctx)
        return
    if rel is None or not rel.known_bad or _libstdcxx_fits(view, rel):
        return
    # an error text whose range holds the release shows the fault happened here
    text_shows = ctx.bnb_text_spec is not None and rel.version in ctx.bnb_text_spec
    gpus = _gpu_gate(view, rel)
    if gpus == "not here" and not text_shows:
        return
    if rel.known_bad_kind == "missing-lib":
        lib_ok = (
            libs is not None
            and view.torch_cuda is not None
            and installed_cuda_lib(view, rel, libs, view.torch_cuda) is not None
        )
        # 0.39.0 lacks cuda110/114, 0.45.4 the CPU library (C6): report it where that shows
        # or cannot be ruled out.
        if libs is not None and libs.cpu and lib_ok:
            return
    f = ctx.finding(
        "bnb-known-bad-release",
        f"bitsandbytes {view.bnb}: {rel.known_bad}",
        bitsandbytes=str(view.bnb),
        kind=rel.known_bad_kind,
    )
    # An 8-bit-only fault, or a crash whose triggering setups are UNCONFIRMED (0.49.0): a 4-bit
    # setup may never meet it, so a warning; the release is still never planned (bnb_fits). A
    # fault of GPUs below a compute capability is proven where the GPUs show it or the text does.
    proven = gpus in ("everywhere", "here") or text_shows
    yield ctx.unconfirmed_or(f, rel.known_bad_kind not in BNB_KNOWN_BAD_WARN and proven)


def _known_bad_range(ctx: Context) -> Iterator[Finding]:
    """bitsandbytes' version unknown, a range an error text proves (NameError 'cuda_setup':
    0.36.0-0.37.0, S110): every release in it is known bad in one way, so the text proves it."""
    spec, inside = ctx.bnb_text_spec, ctx.bnb_in_text
    if not inside or any(r.known_bad is None for r in inside):
        return
    newest = inside[-1]
    yield ctx.finding(
        "bnb-known-bad-release",
        f"bitsandbytes {spec} (read from the error message): {newest.known_bad}",
        bitsandbytes=str(spec),
        kind=newest.known_bad_kind,
        source="error message",
    )


def _gpu_gate(view: View, rel: BnbRelease) -> str:
    """Where a known-bad release fails: "everywhere" (no GPU condition), else for a release bad
    only on GPUs below a compute capability (0.36.0.post2 and 0.37.0: NameError below 7.5,
    S110) "here", "not here" or "unknown". Their loader reads the compute capability of the
    last GPU in CUDA's order (ccs[-1], S76), which by default is not the facts' order: GPUs on
    both sides of the floor leave it unknown, as do GPUs not reported."""
    if rel.known_bad_below_cc is None:
        return "everywhere"
    below = {cc < rel.known_bad_below_cc for cc in view.ccs}
    if below == {True}:
        return "here"
    return "not here" if below == {False} else "unknown"


def _libstdcxx_fits(view: View, rel: BnbRelease) -> bool:
    """A release that is bad only for its libstdc++ floor (0.41.3.post1: GLIBCXX_3.4.26, S37)
    works where the libstdc++ this host loads is known to reach that floor."""
    build = rel.builds.get(view.platform or "")
    need = build.glibcxx_min if build is not None else None
    return (
        rel.known_bad_kind == "libstdcxx"
        and need is not None
        and view.glibcxx is not None
        and view.glibcxx >= need
    )


@ruled_out("bnb-known-bad-release")
def _not_known_bad(view: View, kb: Knowledge) -> bool:
    rel = bnb_release(view, kb)
    return view.bnb is not None and (
        rel is None
        or not rel.known_bad
        or _libstdcxx_fits(view, rel)
        or _gpu_gate(view, rel) == "not here"
    )
