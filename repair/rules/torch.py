"""Rules about the installed torch: present, a CUDA build, built for these GPUs, one family
(compat-facts B1, B3; F13, F18, F19)."""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import Version

from ..facts import Gpu
from ..findings import Finding, Unknown
from ..knowledge import Knowledge, TorchRelease
from ..view import (
    View,
    arch_coverage,
    conda_libs_first,
    cuda_companion,
    cuda_from_tag,
    driver_fit,
    known_bad_torch,
    lowest_torch_arch,
    parse_version,
    series,
    torch_arch_list,
)
from .registry import (
    Context,
    absent_or_unknown,
    gpu_for_torch,
    likeliest,
    rule,
    ruled_out,
    suspect,
)


@rule("torch-missing")
def torch_missing(ctx: Context) -> Iterator[Finding | Unknown]:
    yield from absent_or_unknown(ctx, "torch-missing", ctx.view.torch_installed, "torch")
    t = ctx.view.facts.torch
    if t is not None and t.error:
        yield Unknown("torch-build", "torch build (" + t.error + ")")


@ruled_out("torch-missing")
def _torch_installed(view: View, kb: Knowledge) -> bool:
    return view.torch_installed is True


@rule("torch-dll-load-failed")
def torch_dll_load_failed(ctx: Context) -> Iterator[Finding]:
    """`import torch` failed in the target because a DLL torch needs is missing: on Windows,
    most often Microsoft's Visual C++ runtime, which no package brings (S98)."""
    t = ctx.view.facts.torch
    imported = t is not None and not t.error and t.cuda_available is not None
    bad = None if imported else known_bad_torch(ctx.view, ctx.kb)  # a probe that imported it
    if bad is not None:
        # a fault of the build itself (plans/torch.toml [[known_bad]]): the release that fixed
        # it is the repair, not the Visual C++ runtime
        yield ctx.finding(
            "torch-dll-load-failed",
            f"torch {ctx.view.torch} is a known-bad build on {ctx.view.platform}: {bad.why}; "
            f"fixed in {bad.fixed_in}",
            torch=str(ctx.view.torch),
            dll=bad.dll,
            known_bad=str(bad.version),
            fixed_in=str(bad.fixed_in),
        )
        return
    if t is None or not t.error:
        return
    # the class's own texts (plans/failures.toml): torch's loader messages, S98
    if not any(p.search(t.error) for p in ctx.cat.get("torch-dll-load-failed").signatures):
        return
    yield ctx.finding(
        "torch-dll-load-failed",
        f"torch {t.version or '(version not reported)'} is installed but `import torch` failed: "
        f"{t.error.strip().splitlines()[0][:300]}",
        torch=t.version,
        error=t.error,
    )


@rule("torch-cpu-build")
def torch_cpu_build(ctx: Context) -> Iterator[Finding | Unknown]:
    view = ctx.view
    yield from _pypi_cpu_unknown(ctx)
    if view.torch_cpu_build and ctx.nvidia_here:
        yield ctx.finding(
            "torch-cpu-build",
            f"torch {view.torch or '(version not reported)'} is a CPU-only build on a host "
            "with an NVIDIA GPU",
            torch=str(view.torch),
        )
    elif (
        (unavailable := _cuda_unavailable(view))
        and ctx.nvidia_here
        and gpu_for_torch(view)
        and view.torch_cuda is None
        and view.torch_cpu_build is None
    ):
        # torch.cuda.is_available() was False (the facts, or an error text: plans/signatures.toml)
        # on a host with an NVIDIA GPU or driver, torch's build unknown: a CPU-only torch (pip's
        # default on Windows) is the venv-side cause; a CUDA torch that cannot initialise is the
        # other one, which the plan names as its alternative (repair.planner).
        default = " (pip's default torch on Windows)" if view.system == "Windows" else ""
        yield ctx.finding(
            "torch-cpu-build",
            f"torch.cuda.is_available() was False in the failing process ({unavailable}) on a "
            f"host with an NVIDIA GPU: torch is a CPU-only build{default}, or a CUDA build "
            "that cannot initialise there",
            torch=str(view.torch) if view.torch else None,
            source=unavailable,
            or_cuda_init=True,
        )
    elif view.torch_cpu_build and view.has_nvidia_gpu is None and _cuda_unavailable(view):
        # A CPU-only torch, and the failing code wanted CUDA (an error text), on a machine whose
        # GPUs the facts do not give: the build is the fault wherever there is an NVIDIA GPU.
        yield ctx.finding(
            "torch-cpu-build",
            f"torch {view.torch or '(version not reported)'} is a CPU-only build and the failing "
            "code wanted a CUDA GPU; whether this machine has an NVIDIA GPU is not known",
            torch=str(view.torch),
            gpu_unknown=True,
        )
    elif (
        view.torch_cpu_build
        and view.has_nvidia_gpu is None
        and not view.rocm
        and (built := cuda_companion(view)) is not None
    ):
        # A CPU-only torch beside xFormers compiled against a CUDA torch (its own message,
        # S131): the environment was set up for an NVIDIA GPU, and the torch build is what
        # keeps every kernel on the CPU.
        yield ctx.finding(
            "torch-cpu-build",
            f"torch {view.torch} is a CPU-only build, beside xFormers built for torch {built} "
            "(read from the error message): the environment was set up for an NVIDIA GPU; "
            "whether this machine has one is not known",
            torch=str(view.torch),
            gpu_unknown=True,
            companion=built,
        )


def _pypi_cpu_releases(ctx: Context) -> list[TorchRelease]:
    """_pypi_cpu_of_unknown_torch, once per view (the rule and its suspect both ask)."""
    return ctx.once("torch-pypi-cpu", _pypi_cpu_of_unknown_torch)


def _pypi_cpu_of_unknown_torch(ctx: Context) -> list[TorchRelease]:
    """The torch releases whose PyPI wheel on this platform is CPU-only (plans/torch.toml
    pypi_default: Windows at every release, Linux aarch64 before its CUDA wheels), oldest
    first, where torch is installed at a build the facts do not give on a host with an NVIDIA
    GPU, and pip from PyPI is how it most likely came ([] elsewhere: a container image brings
    its own; a reported import error, a True cuda_available or an arch list settles the build).
    A conda env is no exception: PyTorch publishes no conda packages after 2.5 (pytorch/pytorch
    #138506), so its torch is pip's as often as conda-forge's, which the finding says."""
    view = ctx.view
    t = view.facts.torch
    if (
        view.torch_installed is not True
        or view.torch is not None
        or view.torch_cuda is not None
        or view.torch_cpu_build is not None
        or view.torch_hip
        or not ((ctx.nvidia_here and gpu_for_torch(view)) or _gpu_wanted_where_unknown(view))
        or view.platform is None
        or view.container is not None
        or (t is not None and (t.error or t.cuda_available is True or t.arch_list))
    ):
        return []
    return [  # plans/torch.toml's releases are in series order (the loader refuses others)
        rel
        for rel in ctx.kb.torch.releases
        if (default := rel.pypi_variant(view.platform)) is not None and default.cuda is None
    ]


def _gpu_wanted_where_unknown(view: View) -> bool:
    """On Windows, whether the facts say nothing of an NVIDIA GPU or driver, but show the GPU
    was meant to be used: torch.cuda.is_available() was False where the report or the text says
    so, beside a CUDA toolkit that was installed (nvcc), or code that asked torch for CUDA.
    Windows only: elsewhere a CUDA toolkit without a reported GPU is as likely a Jetson's
    (JetPack installs one), whose torch is NVIDIA's own build, not PyPI's."""
    if view.system != "Windows" or view.has_nvidia_gpu is not None or view.rocm or view.amd:
        return False
    t = view.facts.torch
    unavailable = (t is not None and t.cuda_available is False) or (
        view.implied.torch_cuda_unavailable
    )
    return unavailable and (bool(view.facts.toolkit_nvcc) or view.implied.cuda_requested)


def _pypi_cpu_words(ctx: Context, cpu: list[TorchRelease]) -> str:
    """ "at every release" / "for torch 1.10-2.10" (the releases of plans/torch.toml)."""
    if len(cpu) == len(ctx.kb.torch.releases):
        return "at every release"
    return f"for torch {cpu[0].series}-{cpu[-1].series}"


@suspect(
    "torch-cpu-build",
    replaces="torch-build-pypi",
    instead="torch's build (not reported): the suspected finding says where pip's default torch "
    "is CPU-only",
    fallback=True,
)
def _default_cpu_torch(ctx: Context) -> Iterator[Finding]:
    """With nothing else wrong, a torch of unknown version and build on a host with an NVIDIA
    GPU, where `pip install torch` from PyPI gets a CPU-only build: that default is the
    likeliest cause, and the plan moves torch to a CUDA build for the driver."""
    cpu = _pypi_cpu_releases(ctx)
    if not cpu:
        return
    conda = (
        " (in this conda env, unless torch came from conda-forge, whose builds follow the driver)"
        if conda_libs_first(ctx.view.facts)
        else ""
    )
    yield ctx.finding(
        "torch-cpu-build",
        f"torch's build is not in the facts, and on {ctx.view.platform} `pip install torch` from "
        f"PyPI gets a CPU-only build {_pypi_cpu_words(ctx, cpu)}{conda}; "
        + likeliest(
            "a CPU-only torch",
            '`python -c "import torch; print(torch.version.cuda)"` prints None',
        ),
        platform=ctx.view.platform,
        pypi_cpu=[str(r.series) for r in cpu],
    )


def _pypi_cpu_unknown(ctx: Context) -> Iterator[Unknown]:
    """Where pip's PyPI torch is CPU-only here and torch's build is not reported, say so."""
    cpu = _pypi_cpu_releases(ctx)
    if cpu:
        yield Unknown(
            "torch-build-pypi",
            f"torch's build: on {ctx.view.platform} `pip install torch` from PyPI gets a CPU-only "
            f"build {_pypi_cpu_words(ctx, cpu)}",
        )


def _cuda_unavailable(view: View) -> str | None:
    """Where torch.cuda.is_available() was False: the facts (a deep probe or a report) or an
    error text that proves it (plans/signatures.toml); None where neither says so."""
    t = view.facts.torch
    if t is not None and t.cuda_available is False:
        return "the facts"
    return "read from the error message" if view.implied.torch_cuda_unavailable else None


@ruled_out("torch-cpu-build")
def _torch_gpu_build(view: View, kb: Knowledge) -> bool:
    return view.torch_cuda is not None or bool(view.torch_hip) or view.has_nvidia_gpu is False


@rule("gpu-arch-unsupported")
def gpu_arch_unsupported(ctx: Context) -> Iterator[Finding | Unknown]:
    """A GPU below every torch build of the knowledge base, or missing from the installed one's."""
    view = ctx.view
    facts_arch = view.facts.torch is not None and bool(view.facts.torch.arch_list)
    if ctx.jetson and not facts_arch:
        return  # a Jetson's torch comes from JetPack: only its own reported arch list says
    if not ctx.jetson:
        yield from _below_every_build(ctx)
        yield from _builds_for_unknown_torch(ctx)
    if not view.ccs or (view.torch_cuda is None and not facts_arch) or view.rocm:
        return
    arch_list, source = torch_arch_list(view, ctx.kb)
    if arch_list is None and view.torch is None and view.torch_cuda is not None and not view.conda:
        # (not in a conda env: conda-forge's builds have arch lists of their own)
        # torch's version unknown, its CUDA known: a range of builds (issue 12 item 1). Where
        # every build of that CUDA the knowledge base lists for this platform lacks the GPU,
        # whichever release it is lacks it too.
        arch_list, source = _every_build_of_the_cuda(ctx, view.torch_cuda)
    if arch_list is None:
        yield Unknown("torch-arch-list", "torch arch list")
        return
    for g in view.gpus or ():
        why = _not_covered(ctx, arch_list, g)
        if why is not None:
            build = (
                f"any torch build of CUDA {view.torch_cuda} (torch's release is not reported)"
                if source.startswith("knowledge (every")
                else "torch's build"
            )
            yield ctx.finding(
                "gpu-arch-unsupported",
                f"GPU {g.index}{' ' + g.name if g.name else ''} "
                f"(sm_{why[0].major}{why[0].minor}) is not in {build}: {why[1]}",
                gpu=g.index,
                name=g.name,
                compute_capability=g.compute_capability,
                arch_list=list(arch_list),
                arch_list_source=source,
            )


def _every_build_of_the_cuda(ctx: Context, cuda: Version) -> tuple[tuple[str, ...] | None, str]:
    """The union of the arch lists of every torch build of CUDA ``cuda`` for this platform
    (a GPU none of them covers is covered by no release of that CUDA), and where it came from;
    None where any such build's list is unknown or there is none."""
    platform = ctx.view.platform
    if platform is None:
        return None, "unknown"
    lists = [
        var.arch_for(platform)
        for rel in ctx.kb.torch.releases
        for var in rel.variants_for(platform)
        if var.cuda is not None and (var.cuda.major, var.cuda.minor) == (cuda.major, cuda.minor)
    ]
    if not lists or any(a is None for a in lists):
        return None, "unknown"
    union = tuple(sorted({arch for a in lists for arch in a or ()}))
    return union, f"knowledge (every torch build of CUDA {cuda} for {platform})"


def _gpus_unknown_torch_may_lack(
    ctx: Context,
) -> Iterator[tuple[Gpu, Version, str, dict[str, str]]]:
    """torch's version is unknown: a range, not silence (issue 12 item 1). Each GPU that part of
    the range cannot run, as (GPU, compute capability, why, evidence):

    - a new GPU whose SASS first appears in a later series (sm_120: from 2.7.0 cu128);
    - an old GPU that the build ``pip install torch`` gets today lacks (Pascal and Maxwell are
      not in the PyPI default build of the newest release, cu132 on Linux), on a platform whose
      default is a CUDA build.

    Nothing here proves the installed torch is one of them."""
    view, kb = ctx.view, ctx.kb
    if ctx.jetson or view.rocm or view.torch_installed is False:
        return
    if view.torch is not None or view.torch_cuda is not None or view.torch_cpu_build:
        return
    if view.facts.torch is not None and view.facts.torch.arch_list:
        return  # the build's own arch list is known: gpu_arch_unsupported checks it
    releases = kb.torch.releases  # in series order (the loader refuses others)
    platform = view.platform or ""
    newest = releases[-1]
    default = newest.pypi_variant(platform)
    # the first series with a CUDA build whose arch list plans/ lacks here (the Linux aarch64
    # lists before 2.11): from it on, a build may carry a GPU that no known list shows
    unlisted = next(
        (
            rr.series
            for rr in releases
            if any(
                v.cuda is not None and v.arch_for(platform) is None
                for v in rr.variants_for(platform)
            )
        ),
        None,
    )
    for g in view.gpus or ():
        cc = parse_version(g.compute_capability)
        if cc is None:
            continue
        first = next(
            (
                (r, var)
                for r in releases
                for var in r.variants_for(platform)
                if arch_coverage(var.arch_for(platform) or (), cc) == "sass"
            ),
            None,
        )
        if first is None:
            continue  # no build at all: a finding of _below_every_build
        r, var = first
        if r is not releases[0]:
            # an earlier CUDA build whose arch list plans/ lacks may carry it too: "only from
            # r" would be unproven, so no suspicion
            if unlisted is not None and unlisted < r.series:
                continue
            mark = "" if var.arch_confirmed_for(platform) else "; its arch list UNCONFIRMED"
            yield (
                g,
                cc,
                f"runs only on torch >= {r.versions[0]} builds that carry it (from "
                f"{var.name}{mark})",
                {"first_release": str(r.versions[0])},
            )
            continue
        archs = default.arch_for(platform) if default is not None else None
        if default is None or not default.cuda or not default.arch_confirmed_for(platform):
            continue
        if driver_fit(view, kb, default.cuda).ok is False:
            continue  # this driver cannot run today's default build: the torch here is older
        if arch_coverage(archs or (), cc) is None:
            yield (
                g,
                cc,
                f"is not in the build that `pip install torch` gets today (torch "
                f"{newest.latest} {default.name} from PyPI has {', '.join(archs or ())}); "
                "an older release or another variant carries it",
                {"newest_default": f"{newest.latest}+{default.name}"},
            )


def _builds_for_unknown_torch(ctx: Context) -> Iterator[Unknown]:
    """Where part of torch's range cannot run a GPU, say which part."""
    for g, cc, why, _ in _gpus_unknown_torch_may_lack(ctx):
        yield Unknown(
            "torch-version-for-gpu",
            f"torch's version: GPU {g.index} {g.name or ''} (sm_{cc.major}{cc.minor}) {why}; "
            "a build without it fails with 'no kernel image is available'",
        )


@suspect(
    "gpu-arch-unsupported",
    replaces="torch-version-for-gpu",
    instead="torch's version and build (not reported): the suspected finding says which "
    "builds lack the GPU",
)
def _torch_without_gpu(ctx: Context) -> Iterator[Finding]:
    """With nothing else wrong, a torch of unknown version on such a GPU: a build without it is
    the likeliest cause, and the plan moves torch to a build that has it."""
    for g, cc, why, evidence in _gpus_unknown_torch_may_lack(ctx):
        yield ctx.finding(
            "gpu-arch-unsupported",
            f"GPU {g.index} {g.name or ''} (sm_{cc.major}{cc.minor}) {why}; torch's version is "
            "not in the facts and "
            + likeliest(
                "a torch without it",
                '`python -c "import torch; print(torch.__version__, torch.cuda.get_arch_list())"`',
            ),
            gpu=g.index,
            name=g.name,
            compute_capability=str(cc),
            **evidence,
        )


def _below_every_build(ctx: Context) -> Iterator[Finding]:
    floor = lowest_torch_arch(ctx.kb, ctx.view.platform)
    for g in ctx.view.gpus or ():
        cc = parse_version(g.compute_capability)
        if cc is not None and floor is not None and cc < floor:
            yield ctx.finding(
                "gpu-arch-unsupported",
                f"GPU {g.index} {g.name or ''} ({cc}) is below every torch "
                f"build in the knowledge base (the lowest is sm_{floor.major}"
                f"{floor.minor}): no torch release can use it",
                gpu=g.index,
                compute_capability=str(cc),
                lowest=str(floor),
                no_build=True,
            )


def _not_covered(ctx: Context, arch_list: tuple[str, ...], g: Gpu) -> tuple[Version, str] | None:
    """(compute capability, why) when torch's ``arch_list`` cannot run on GPU ``g``, else None."""
    cc = parse_version(g.compute_capability)
    if cc is None:
        return None
    cov = arch_coverage(arch_list, cc)
    # compat-facts A2 / S6: a driver that runs this CUDA only through minor-version compatibility
    # cannot JIT-compile PTX of a newer CUDA (with torch's CUDA unknown this is not judged).
    torch_cuda = ctx.view.torch_cuda
    if (
        cov == "ptx"
        and torch_cuda is not None
        and driver_fit(ctx.view, ctx.kb, torch_cuda).mode == "minor-compat"
    ):
        return cc, (
            "only PTX covers it and the driver runs this CUDA through minor-version "
            "compatibility, which cannot JIT newer PTX"
        )
    if cov is None:
        return cc, "no SASS or PTX for it"
    return None


@ruled_out("gpu-arch-unsupported")
def _every_gpu_covered(view: View, kb: Knowledge) -> bool:
    """Every GPU is in torch's arch list, or the text shows bitsandbytes' own CUDA check
    reporting the missing kernel (bnb-kernel-missing, S111): the same words, another library."""
    if view.implied.bnb_kernel_missing:
        return True
    arch, _ = torch_arch_list(view, kb)
    return (
        arch is not None
        and bool(view.ccs)
        and all(arch_coverage(arch, cc) is not None for cc in view.ccs)
    )


@ruled_out("torch-family-mismatch")
def _family_paired(view: View, kb: Knowledge) -> bool:
    """torch's release and at least one of its companions are known and every known one pairs
    with it: a text's "versions are incompatible" (S117) is then something else (a failed
    source build)."""
    if view.torch is None or (rel := kb.torch.release(view.torch)) is None:
        return False
    known = [
        (name, have, want)
        for name, want in (("torchvision", rel.torchvision), ("torchaudio", rel.torchaudio))
        if (have := view.package(name)) is not None and want is not None
    ]
    return bool(known) and all(
        _pairs(view, rel, view.torch, name, have, want) is None for name, have, want in known
    )


def _pairs(
    view: View, rel: TorchRelease, torch: Version, name: str, have: Version, want: Version
) -> str | None:
    """Why a companion ``have`` does not pair with ``torch`` (None: it does). compat-facts B1
    (Requires-Dist): the same series, and the same CUDA label when both carry one. A companion
    without a label is the build PyPI ships for this platform (plans/torch.toml pypi_default),
    where torch is a PyTorch-index build (its label) or PyPI's own (_torch_build). Their builds
    then pair as the companions' own load checks demand (S133): torchvision refuses another
    CUDA major, and a CPU-only torchvision registers no CUDA kernel ("Could not run
    'torchvision::nms' with arguments from the 'CUDA' backend", S130: Windows' PyPI torchvision
    is CPU-only); torchaudio refuses another CUDA major.minor, and its CPU build runs beside a
    CUDA torch."""
    tl, hl = torch.local or "", have.local or ""
    if series(have) != series(want):
        return f"expects {name} {series(want)}.x"
    if tl and hl:
        return f"built for {hl}, torch for {tl}" if tl != hl else None
    mine, theirs = _torch_build(view, rel), _label_build(view, rel, have)
    if mine is None or theirs is None or mine[0] != "cuda" and mine[0] == theirs[0]:
        return None
    if name == "torchaudio" and theirs[0] == "cpu":
        return None  # torchaudio's check compares CUDA only where it has one (S133)
    # torchvision compares CUDA majors, torchaudio major.minor (S133)
    compared = 1 if name == "torchvision" else 2
    if (
        mine[0] == theirs[0] == "cuda"
        and (theirs[1] or ())[:compared] == (mine[1] or ())[:compared]
    ):
        return None
    words = {"cpu": "CPU-only", "rocm": "ROCm", "cuda": "CUDA"}
    side = "" if hl else f", PyPI's build for {view.platform}"
    cudas = (
        f" (CUDA {'.'.join(map(str, theirs[1] or ()))} against {'.'.join(map(str, mine[1] or ()))})"
        if mine[0] == theirs[0] == "cuda"
        else ""
    )
    return f"a {words[theirs[0]]} build{side}, beside a {words[mine[0]]} torch{cudas}"


_Build = tuple[str, tuple[int, int] | None]


def _torch_build(view: View, rel: TorchRelease) -> _Build | None:
    """torch's own build where the facts or its label say it: a PyTorch-index label, or an
    unlabelled torch whose reported build is the one PyPI ships here (an unlabelled CUDA torch
    of another CUDA is conda's, a distribution's or a source build: then nothing is known of
    where its companions came from either). None where unknown."""
    torch = view.torch
    if torch is None:
        return None
    pypi = _label_build(view, rel, torch)  # its label's, or PyPI's where it has none
    if torch.local or pypi is None:
        return pypi
    if view.torch_hip:
        return None
    if view.torch_cuda is not None:
        reported: _Build = ("cuda", (view.torch_cuda.major, view.torch_cuda.minor))
    elif view.torch_cpu_build:
        reported = ("cpu", None)
    else:
        return pypi
    return pypi if reported == pypi else None


def _label_build(view: View, rel: TorchRelease, v: Version) -> _Build | None:
    """("cpu", None), ("cuda", (major, minor)) or ("rocm", None) for a torch-family version:
    from its local label, or, without one, PyPI's build of its release here. None where
    unknown: a label of no PyTorch index (a Jetson or source build), an assumed platform, or a
    conda env (whose packages carry no label whatever their build)."""
    label = v.local
    if not label:
        if view.platform is None or view.platform_assumed or conda_libs_first(view.facts):
            return None
        var = rel.pypi_variant(view.platform)
        if var is None:
            return None
        label = var.name
    if label == "cpu":
        return ("cpu", None)
    if label.startswith("rocm"):
        return ("rocm", None)
    cuda = cuda_from_tag(label[2:]) if label.startswith("cu") else None
    return ("cuda", (cuda.major, cuda.minor)) if cuda is not None else None


@rule("torch-family-mismatch")
def torch_family_mismatch(ctx: Context) -> Iterator[Finding]:
    view = ctx.view
    if view.torch is None:
        return
    rel = ctx.kb.torch.release(view.torch)
    if rel is None:
        return
    for name, want in (("torchvision", rel.torchvision), ("torchaudio", rel.torchaudio)):
        have = view.package(name)
        if have is None or want is None:
            continue
        if (why := _pairs(view, rel, view.torch, name, have, want)) is not None:
            yield ctx.finding(
                "torch-family-mismatch",
                f"{name} {have} does not match torch {view.torch} ({why})",
                package=name,
                installed=str(have),
                expected=str(want),
            )
