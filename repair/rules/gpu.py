"""Rules about the host, its driver and its GPUs (compat-facts A, C3, C5; F46, F49)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from packaging.version import Version

from ..containers import where_words
from ..findings import Finding, Severity, Unknown
from ..knowledge import Knowledge
from ..libraries import CT2, ct2_runtime
from ..view import (
    FIRST_CPU_4BIT,
    MODERN_BNB_LOADER,
    DriverFit,
    View,
    board_in_index_builds,
    cuda_from_tag,
    driver_fit,
    gpu_sms,
    is_jetson,
    series,
)
from .registry import Context, gpu_for_torch, rule, ruled_out


@rule("no-nvidia-driver")
def no_nvidia_driver(ctx: Context) -> Iterator[Finding | Unknown]:
    view = ctx.view
    if not view.rocm and view.has_nvidia_gpu is False:
        err = view.facts.driver.error if view.facts.driver else None
        container = view.container
        where = {"container": container} if container else {}
        asked = view.implied.cuda_requested
        gpu_only = view.implied.gpu_only_library
        # what the text shows the job needs is a GPU, not a package (S113, S114)
        why = ""
        if gpu_only:
            why = f"; {gpu_only}'s quantizer runs on a GPU only (read from the error message)"
        elif asked:
            why = "; the failing code asked torch for CUDA (read from the error message)"
        found = ctx.finding(
            "no-nvidia-driver",
            "no NVIDIA driver or GPU found"
            + (f" in {where_words(container)}" if container else "")
            + f": CUDA 4-bit cannot work here{why}",
            driver_error=err,
            cuda_requested=asked or None,
            gpu_only_library=gpu_only,
            **where,
        )
        if asked or gpu_only:
            found = replace(found, severity=Severity.ERROR)
        elif view.system == "Darwin":
            # A Mac has no CUDA at all (NVIDIA's CUDA 10.2 notes): a fact about the platform,
            # nothing to repair, so a note; 4-bit there is the CPU backend's (bnb-no-cpu-4bit).
            found = replace(found, severity=Severity.INFO)
        yield found
    elif (
        not view.rocm
        and view.gpus
        and view.driver_found is False
        and "mismatch" not in ((view.facts.driver.error if view.facts.driver else None) or "")
    ):
        # A report that names the NVIDIA GPU and says no driver is loaded (a fresh VM or
        # install: `nvidia-smi` not found). A probe never gives this pair (NVML lists GPUs only
        # through the driver); the GPU is there, so the driver is the fault, not the machine.
        # (NVML's "Driver/library version mismatch" says a driver is installed: not this case)
        names = [g.name or f"GPU {g.index}" for g in view.gpus]
        yield Finding(
            "no-nvidia-driver",
            Severity.ERROR,
            f"the NVIDIA GPU is there ({', '.join(names)}) but no NVIDIA driver is loaded: "
            "nothing can use it until one is installed",
            {"gpus": names, "gpu_without_driver": True},
        )
    elif not view.rocm and view.has_nvidia_gpu is None:
        yield Unknown("driver", "driver: whether an NVIDIA driver is loaded, and its version")
    if view.gpus is None and not view.rocm and view.has_nvidia_gpu is not False:
        yield Unknown("gpus", "GPUs: which, and their compute capability")


@ruled_out("no-nvidia-driver")
def _driver_present(view: View, kb: Knowledge) -> bool:
    return view.has_nvidia_gpu is True and view.driver_found is not False


@rule("bnb-no-cpu-4bit")
def bnb_no_cpu_4bit(ctx: Context) -> Iterator[Finding]:
    # compat-facts C5: without a GPU only the CPU backend (from 0.46.0) can load 4-bit.
    view = ctx.view
    no_gpu = not view.rocm and view.has_nvidia_gpu is False
    if not no_gpu or view.bnb is None or view.bnb >= FIRST_CPU_4BIT:
        return
    # the first release that runs 4-bit on the CPU with a native build here (macOS wheels start
    # later, 0.49.0); none at all (an Intel Mac): bnb-platform-unsupported says what is left
    here = ctx.kb.bnb.native_on(view.platform, cpu_4bit=True)
    if view.platform is not None and not here:
        return
    first = here[0].version if here else None
    later = f"; on {view.platform} from {first}" if first and first > FIRST_CPU_4BIT else ""
    yield ctx.finding(
        "bnb-no-cpu-4bit",
        f"bitsandbytes {view.bnb} has no CPU 4-bit (first in {FIRST_CPU_4BIT}{later})",
        bitsandbytes=str(view.bnb),
    )


@rule("mixed-gpus")
def mixed_gpus(ctx: Context) -> Iterator[Finding]:
    view = ctx.view
    ccs = view.ccs
    if len({c.major for c in ccs}) <= 1:
        return
    # F49 (bnb#448): the legacy loaders (< 0.43.1) took the wrong GPU's capability; a current
    # bitsandbytes serves each GPU, so there it is only a warning about device_map='auto'.
    legacy = view.bnb is None or view.bnb < MODERN_BNB_LOADER
    wrong_one = legacy and bool(view.bnb_installed)
    names = [f"{g.name} ({g.compute_capability})" for g in view.gpus or ()]
    yield Finding(
        "mixed-gpus",
        Severity.ERROR if wrong_one else Severity.WARNING,
        "GPUs of different architectures are visible: "
        + ", ".join(names)
        + (
            "; the legacy bitsandbytes loader may take the wrong one's capability"
            if wrong_one
            else ""
        ),
        {
            "gpus": names,
            "weakest": str(min(ccs)),
            "legacy_loader": legacy,
            "CUDA_VISIBLE_DEVICES": (view.facts.env or {}).get("CUDA_VISIBLE_DEVICES"),
        },
    )


@ruled_out("mixed-gpus")
def _one_architecture(view: View, kb: Knowledge) -> bool:
    return view.gpus is not None and len({c.major for c in view.ccs}) <= 1


@rule("rocm-host")
def rocm_host(ctx: Context) -> Iterator[Finding]:
    view = ctx.view
    if not view.rocm:
        return
    gpus = [g.name for g in (view.facts.gpus or ()) if g.amd]
    wrong = view.torch_without_rocm()
    if wrong is not None and view.torch_not_rocm_suspected:
        # torch's build unreported and not available: the likeliest cause, said as such
        t = view.facts.torch
        seen = "the facts" if t is not None and t.cuda_available is False else "the error text"
        yield Finding(
            "rocm-host",
            Severity.WARNING,  # suspected, as every suspected finding
            f"torch {view.torch or '(version not reported)'} could not use the AMD GPU "
            f"(torch.cuda.is_available() was False: {seen}) and its build is not in the facts; "
            "a torch that is not a ROCm build is the likeliest cause (pip's torch from PyPI "
            "never is one: ROCm builds come only from PyTorch's rocmX.Y index; check: "
            '`python -c "import torch; print(torch.version.hip)"` prints None)',
            {"torch_build": wrong, "gpus": gpus, "suspected": True},
        )
        return
    if wrong is not None:
        # An installer's CUDA (or CPU) torch on an AMD host: it cannot use the GPU at all, so
        # this is an error, not the class's note that CUDA remedies do not apply.
        yield Finding(
            "rocm-host",
            Severity.ERROR,
            f"torch {view.torch or '(version not reported)'} is {wrong} on an AMD host: it "
            "cannot use the AMD GPU; only a ROCm build of torch can",
            {"torch_build": wrong, "gpus": gpus},
        )
        return
    yield ctx.finding(
        "rocm-host",
        "AMD GPU / ROCm torch: CUDA remedies do not apply",
        torch_hip=view.torch_hip,
        gpus=gpus,
    )


@ruled_out("rocm-host")
def _cuda_torch(view: View, kb: Knowledge) -> bool:
    return not view.rocm and view.torch_cuda is not None


@rule("jetson-l4t")
def jetson_l4t(ctx: Context) -> Iterator[Finding]:
    if ctx.jetson:
        h = ctx.view.facts.host
        # Thor's sm_110 is in PyTorch's own aarch64 CUDA 13 builds (plans/torch.toml, measured);
        # Orin's sm_87 and older boards are in none: NVIDIA's Jetson build is their only torch
        torch_words = (
            "torch must be a build for this board: PyTorch's own aarch64 CUDA build carries "
            + ", ".join(sorted(gpu_sms(ctx.view)))
            if board_in_index_builds(ctx.view, ctx.kb)
            else "torch must be NVIDIA's Jetson build"
        )
        yield ctx.finding(
            "jetson-l4t",
            "NVIDIA Jetson (L4T): bitsandbytes' aarch64 wheels are built for SBSA "
            f"servers and {torch_words}",
            l4t=h.l4t if h else None,
            os_release=h.os_release if h else None,
            gpus=[g.name for g in ctx.view.gpus or ()],
        )


@ruled_out("jetson-l4t")
def _not_jetson(view: View, kb: Knowledge) -> bool:
    return not is_jetson(view) and view.platform is not None and not view.platform_assumed


@rule("driver-too-old")
def driver_too_old(ctx: Context) -> Iterator[Finding | Unknown]:
    yield from _library_cuda_too_new(ctx)
    view = ctx.view
    if view.torch_cuda is None or not ctx.nvidia_here:
        return
    fit = driver_fit(view, ctx.kb, view.torch_cuda)
    if ptx_jit_refused(view, fit):
        # the driver runs torch's CUDA only through minor-version compatibility, and the text
        # shows its JIT refusing PTX of a newer toolkit (cudaErrorUnsupportedPtxVersion): that
        # needs the toolkit's own driver (compat-facts A2, S4, S6)
        drv = view.facts.driver
        yield ctx.finding(
            "driver-too-old",
            f"torch's CUDA {view.torch_cuda} runs on this driver only through minor-version "
            "compatibility, whose JIT cannot compile PTX made by a newer toolkit (the error: "
            f"unsupported PTX version); CUDA {series(view.torch_cuda)}'s own driver "
            f"(>= {fit.full_min}) can",
            torch_cuda=str(view.torch_cuda),
            driver=drv.version if drv else None,
            driver_cuda=drv.cuda if drv else None,
            minimum_driver=str(fit.full_min),
            ptx_jit=True,
        )
    elif fit.ok is None:
        if view.driver_found is not False:
            # with no driver loaded, no-nvidia-driver says so; its version is not missing
            yield Unknown("driver-version", "driver version (needed to check torch's CUDA build)")
    elif fit.ok is False:
        need = fit.compat_min or fit.full_min
        drv = view.facts.driver
        installed = (
            drv.version
            if drv and drv.version
            else f"CUDA {view.driver_cuda}"
            if view.driver_cuda is not None
            else "an older one (the error message says so; its version is not known)"
        )
        yield ctx.finding(
            "driver-too-old",
            f"torch's CUDA {view.torch_cuda} needs driver >= {need}; installed: {installed}",
            torch_cuda=str(view.torch_cuda),
            driver=drv.version if drv else None,
            driver_cuda=drv.cuda if drv else None,
            minimum_driver=str(need) if need else None,
        )


def _library_cuda_too_new(ctx: Context) -> Iterator[Finding]:
    """CTranslate2 opens the CUDA its wheels are built with at run time (plans/runtimes.toml,
    S118): a driver below that CUDA fails it whatever torch is ("CUDA driver version is
    insufficient for CUDA runtime version"). The evidence names the library, so the planner
    moves it and not torch."""
    view = ctx.view
    row = ct2_runtime(view, ctx.kb)
    if row is None or row.cuda is None or not ctx.nvidia_here:
        return
    fit = driver_fit(view, ctx.kb, row.cuda)
    if fit.ok is not False:
        return
    need = fit.compat_min or fit.full_min
    drv = view.facts.driver
    installed = (
        drv.version if drv and drv.version else f"one that runs up to CUDA {view.driver_cuda}"
    )
    yield ctx.finding(
        "driver-too-old",
        f"ctranslate2 {view.package(CT2)} is built for CUDA {row.cuda} and opens it at run "
        f"time: it needs driver >= {need}; installed: {installed}",
        library=CT2,
        library_cuda=str(row.cuda),
        driver=drv.version if drv else None,
        driver_cuda=drv.cuda if drv else None,
        minimum_driver=str(need) if need else None,
    )


@ruled_out("driver-too-old")
def _driver_new_enough(view: View, kb: Knowledge) -> bool:
    if view.has_nvidia_gpu is False:
        return True  # no NVIDIA driver at all: no-nvidia-driver says it
    # every CUDA runtime the facts show in play runs on this driver (and, where the text shows
    # PTX JIT refused, not only through minor-version compatibility)
    runtimes = runtimes_in_play(view, kb)
    return runtimes is not None and all(
        (fit := driver_fit(view, kb, c)).ok is True and not ptx_jit_refused(view, fit)
        for c in runtimes
    )


def ptx_jit_refused(view: View, fit: DriverFit) -> bool:
    """The text shows cudaErrorUnsupportedPtxVersion (222) where the driver runs the runtime
    only through minor-version compatibility, which cannot JIT PTX of a newer toolkit
    (compat-facts A2): that runtime needs its toolkit's own driver."""
    return (
        view.implied.cuda_error == 222
        and fit.ok is True
        and fit.mode == "minor-compat"
        and fit.full_min is not None
    )


def runtimes_in_play(view: View, kb: Knowledge) -> list[Version] | None:
    """The CUDA runtimes the facts show in the failing process: torch's, CTranslate2's, and the
    ones bitsandbytes' loader printed (the library it wanted or loaded). None where
    one may be there unseen: torch installed (or not known absent) with its CUDA unknown, or
    none at all known."""
    if view.torch_cuda is None and view.torch_installed is not False and not view.torch_cpu_build:
        return None  # a torch whose CUDA the facts do not give (a CPU-only one has none)
    row = ct2_runtime(view, kb)
    tags = (view.implied.loader_cuda_tag, view.implied.bnb_loaded_cuda_tag)
    loaded = [c for t in tags if t and (c := cuda_from_tag(t)) is not None]
    found = [c for c in (view.torch_cuda, row.cuda if row else None) if c is not None]
    return [*found, *loaded] or None


@rule("cuda-init-failed")
def cuda_unavailable_to_a_cuda_torch(ctx: Context) -> Iterator[Finding]:
    """torch is a CUDA build, an NVIDIA GPU is listed and the driver runs torch's CUDA (or is not
    known), yet torch.cuda.is_available() was False: the deep probe saw it (torch.cuda_available)
    or an error text proves it (Unsloth's device check, plans/signatures.toml). No package is at
    fault: CUDA cannot initialise in that process (a container started without the GPU, a
    CUDA_VISIBLE_DEVICES that hides it, fabric manager, a driver updated without a reboot). The
    other texts of this class (802, 803, 3, 999, ...) name it through their signatures."""
    yield from _driver_not_reached(ctx)
    view = ctx.view
    t = view.facts.torch
    probed = t.cuda_available if t is not None else None
    # the deep probe's answer is this environment's; a text may come from another process
    seen = probed is False or (probed is None and view.implied.torch_cuda_unavailable)
    drv = view.facts.driver
    if not (seen and view.torch_cuda is not None and ctx.nvidia_here and gpu_for_torch(view)):
        return
    if (drv is not None and drv.found is False) or (
        driver_fit(view, ctx.kb, view.torch_cuda).ok is False
    ):
        return  # no driver loaded, or one too old for torch's CUDA: their own classes say it
    where = "the deep probe" if probed is False else "read from the error message"
    hidden = (view.facts.env or {}).get("CUDA_VISIBLE_DEVICES")
    hides = hidden is not None and hidden.strip() in ("", "-1")
    # In MIG mode CUDA enumerates a GPU's MIG devices (one per GPU instance), not the GPU: with
    # no instance created it sees none there (S94). Every listed GPU in it explains the loss.
    gpus = view.gpus or ()
    mig = [g.index for g in gpus if g.mig is True]
    all_mig = bool(gpus) and len(mig) == len(gpus)
    if hides:
        why = f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from the process"
    elif all_mig:
        why = (
            f"{'GPU' if len(mig) == 1 else 'GPUs'} {', '.join(map(str, mig))} "
            f"{'is' if len(mig) == 1 else 'are'} in MIG mode, where CUDA sees only MIG "
            "instances, and none may have been created"
        )
    else:
        why = "CUDA cannot initialise in that process"
    yield ctx.finding(
        "cuda-init-failed",
        f"torch {view.torch or '(version not reported)'} is a CUDA {view.torch_cuda} build on "
        f"a host with an NVIDIA GPU, yet torch.cuda.is_available() was False ({where}): {why}",
        torch=str(view.torch) if view.torch else None,
        torch_cuda=str(view.torch_cuda),
        source="deep probe" if probed is False else "error message",
        cuda_unavailable=True,
        cuda_visible_devices=hidden if hides else None,
        mig_gpus=mig if all_mig and not hides else None,
    )


def _driver_not_reached(ctx: Context) -> Iterator[Finding]:
    """cudaErrorInsufficientDriver (35) where the reported driver runs every CUDA runtime the
    facts show in play (runtimes_in_play: torch's, CTranslate2's, bitsandbytes' loader's): the
    process that failed did not reach that driver. A CUDA runtime gets 35 also where it finds
    no driver at all -- torch reads 35 with no driver version as "Found no NVIDIA driver" (S97,
    S113) -- so a container started without the GPU (the version came from the host's
    nvidia-smi), or a libcuda the loader cannot find, says "insufficient" of a driver that is
    new enough."""
    view = ctx.view
    drv = view.facts.driver
    if view.implied.cuda_error != 35 or view.driver is None or not ctx.nvidia_here:
        return
    runtimes = runtimes_in_play(view, ctx.kb)
    if runtimes is None or any(driver_fit(view, ctx.kb, c).ok is not True for c in runtimes):
        return
    runs = "CUDA " + ", ".join(str(c) for c in sorted(set(runtimes)))
    yield ctx.finding(
        "cuda-init-failed",
        f"the error says the driver is older than the CUDA runtime, yet driver "
        f"{drv.version if drv and drv.version else view.driver} runs {runs}: the process that "
        "failed did not reach this driver",
        cuda_error=35,
        driver=drv.version if drv else None,
        driver_not_reached=True,
        source="error message",
    )


@ruled_out("cuda-init-failed", by_complete_probe=False)
def _no_gpu_to_init(view: View, kb: Knowledge) -> bool:
    # A state of the running machine, which no probe of files can rule out -- unless no GPU.
    return view.has_nvidia_gpu is False
