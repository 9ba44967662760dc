"""Rules about the process environment: the library search path and a system CUDA toolkit
(compat-facts C4; F02, F03, F06)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from packaging.version import Version

from ..findings import Finding
from ..knowledge import Knowledge
from ..libraries import (
    CT2,
    ct2_installed,
    ct2_named,
    ct2_runtime,
    cudnn_requester,
    toolkit_cudnn_shadows,
    torch_cudnn,
)
from ..view import (
    MODERN_BNB_LOADER,
    View,
    cuda_from_tag,
    extension_cuda_major,
    extension_torch_cuda,
    parse_version,
    series,
)
from .registry import Context, rule, ruled_out

WSL_LIB_DIR = "/usr/lib/wsl/lib"  # F03: WSL mounts the Windows driver's libraries here


@rule("cuda-libs-not-found")
def cuda_libs_not_found(ctx: Context) -> Iterator[Finding]:
    yield from _bundled_library_broken(ctx)
    yield from _torch_wheels_missing(ctx)
    yield from _runtime_of_major_missing(ctx)
    yield from _cudnn_of_major_missing(ctx)
    yield from _ct2_cuda_missing(ctx)
    yield from _driver_library_broken(ctx)
    # F03: the legacy loader (< 0.43.1) searched LD_LIBRARY_PATH for libcuda; on WSL it is only
    # in WSL_LIB_DIR.
    ld = (ctx.view.facts.env or {}).get("LD_LIBRARY_PATH") or ""
    legacy = ctx.bnb_rel is None or ctx.bnb_rel.version < MODERN_BNB_LOADER
    host = ctx.view.facts.host
    if host is not None and host.wsl and WSL_LIB_DIR not in ld.split(":") and legacy:
        yield ctx.finding(
            "cuda-libs-not-found",
            f"WSL: {WSL_LIB_DIR} is not on LD_LIBRARY_PATH",
            LD_LIBRARY_PATH=ld or None,
        )


@ruled_out("stale-toolkit-on-path")
def _not_linux_search(view: View, kb: Knowledge) -> bool:
    # LD_LIBRARY_PATH and libcudart search are Linux; a cuDNN DLL is Windows' own loader's
    return view.system == "Windows" and view.implied.wanted_cudnn_major is None


@ruled_out("cuda-libs-not-found")
def _libraries_found(view: View, kb: Knowledge) -> bool:
    # as _not_linux_search; and a cuDNN library that was found, but was a toolkit's copy that
    # does not fit ("Could not load library ... undefined symbol"): stale-toolkit-on-path's
    return _not_linux_search(view, kb) or (
        toolkit_cudnn_shadows(view)
        and view.implied.wanted_cuda_major is None
        and view.implied.torch_wheel_lib_missing is None
    )


# A ptxas refusing an architecture at or above this one is older than the GPU (S128); below it,
# the refused target is one a newer CUDA dropped (CUDA 13 no longer targets sm_52).
PTXAS_NEW_ARCH = Version("8.0")


def sm_capability(sm: str) -> Version | None:
    """ "sm_103a" -> 10.3, "sm_86" -> 8.6; None for anything else."""
    m = re.fullmatch(r"sm_(\d+)(\d)[af]?", sm)
    return Version(f"{m.group(1)}.{m.group(2)}") if m else None


@rule("stale-toolkit-on-path")
def stale_toolkit_on_path(ctx: Context) -> Iterator[Finding]:
    # F06, compat-facts C4: up to 0.40.0 bitsandbytes keyed its library on the first libcudart
    # found, which a system toolkit on the path can shadow.
    view = ctx.view
    refused = view.implied.ptxas_unknown_arch
    if refused and (cc := sm_capability(refused)) is not None and cc >= PTXAS_NEW_ARCH:
        # S128: a ptxas older than the GPU it compiles for (any system)
        path = (view.facts.env or {}).get("TRITON_PTXAS_PATH")
        yield ctx.finding(
            "stale-toolkit-on-path",
            f"the ptxas that compiled a kernel does not know {refused} (read from the error "
            "message): it comes from a CUDA older than this GPU"
            + (f" (TRITON_PTXAS_PATH={path})" if path else ""),
            ptxas_unknown_arch=refused,
            TRITON_PTXAS_PATH=path,
            source="error message",
        )
        return
    major = extension_cuda_major(view)
    if major is not None:
        # S120: the toolkit that compiles extensions must have torch's CUDA major (any system)
        torch_cuda = extension_torch_cuda(view)
        have = f" ({torch_cuda})" if torch_cuda is not None else ""
        yield ctx.finding(
            "stale-toolkit-on-path",
            f"the CUDA toolkit that compiles extensions here (nvcc {view.implied.extension_nvcc})"
            f" has another CUDA major than torch's{have}: torch's extension builder (and "
            "DeepSpeed's op builder) refuse to compile across majors",
            nvcc=view.implied.extension_nvcc,
            torch_cuda=str(torch_cuda) if torch_cuda is not None else None,
            extension_build=True,
            source="error message",
        )
        return
    if view.system == "Windows":
        return  # the loader path and the libcudart search are Linux's (_not_linux_search)
    shadowing = _shadowed_library(ctx)
    if shadowing is not None:
        yield shadowing
        return
    nvcc = parse_version(view.facts.toolkit_nvcc)
    old_loader = ctx.bnb_rel is None or ctx.bnb_rel.loader == "libcudart-search"
    if nvcc is None or not old_loader:
        return
    if view.torch_cuda is not None:
        if nvcc.major != view.torch_cuda.major and not _serves_ct2(ctx, nvcc):
            yield ctx.finding(
                "stale-toolkit-on-path",
                f"system CUDA toolkit {nvcc} differs from torch's CUDA {view.torch_cuda}",
                nvcc=str(nvcc),
                torch_cuda=str(view.torch_cuda),
            )
        return
    # torch unknown: a toolkit older than every CUDA library any 4-bit bitsandbytes ships can only
    # be a stale one (data-derived floor, not a guessed boundary).
    floor = _oldest_4bit_cuda(ctx.kb, view.platform or "linux-x86_64")
    if floor is not None and series(nvcc) < floor:
        yield ctx.finding(
            "stale-toolkit-on-path",
            f"system CUDA toolkit {nvcc} is older than any CUDA library of a "
            f"4-bit bitsandbytes (oldest: {floor})",
            nvcc=str(nvcc),
        )


def _shadowed_library(ctx: Context) -> Finding | None:
    """pytorch#111469, #152783, PR#141063 (S52): a CUDA library of torch's pip wheels found an
    older copy of its dependency first on LD_LIBRARY_PATH (a system toolkit). Where the facts
    show LD_LIBRARY_PATH unset, the older copy came from elsewhere (ld.so.conf, an older
    nvidia-nvjitlink wheel): a warning, and the step says what to check."""
    view = ctx.view
    shadowed = view.implied.cuda_lib_shadowed
    if shadowed == "libcudnn" and not toolkit_cudnn_shadows(view):
        return None  # a torch built against that toolkit (NGC, a source build) uses its cuDNN
    if not shadowed or view.rocm:
        return None
    unset = view.ld_library_path_unset
    f = ctx.finding(
        "stale-toolkit-on-path",
        f"a CUDA library of torch's own wheels resolved its {shadowed} against an older "
        + (
            "copy found first, not through LD_LIBRARY_PATH (unset here)"
            if unset
            else "copy found first on the loader path (LD_LIBRARY_PATH)"
        ),
        library=shadowed,
        LD_LIBRARY_PATH=(view.facts.env or {}).get("LD_LIBRARY_PATH"),
        source="error message",
    )
    return ctx.unconfirmed_or(f, not unset)


def _serves_ct2(ctx: Context, nvcc: Version) -> bool:
    """The toolkit is of the CUDA major an installed CTranslate2 opens (plans/runtimes.toml): it
    serves that library, whose wheels bring no CUDA of their own (S118), so it is not stale
    unless a legacy bitsandbytes (<= 0.40.0) is there to be misled by it. A CTranslate2 of
    unknown release may be either major: not called stale either."""
    if not ct2_installed(ctx.view):
        return False
    if ctx.bnb_rel is not None and ctx.bnb_rel.loader == "libcudart-search":
        return False  # a legacy bitsandbytes still keys its library on the toolkit's libcudart
    row = ct2_runtime(ctx.view, ctx.kb)
    return row is None or (row.cuda is not None and row.cuda.major == nvcc.major)


def _oldest_4bit_cuda(kb: Knowledge, platform: str) -> Version | None:
    best: Version | None = None
    for r in kb.bnb.releases:
        if not r.has_4bit:
            continue
        build = r.builds.get(platform)
        for tag in build.cuda_libs if build else ():
            v = cuda_from_tag(tag)
            if v is not None and (best is None or v < best):
                best = v
    return best


def in_conda(view: View) -> bool:
    """The target is a conda environment (the report or probe says so, or CONDA_PREFIX is set)."""
    py = view.facts.python
    return bool((py is not None and py.conda) or (view.facts.env or {}).get("CONDA_PREFIX"))


def _torch_wheels_missing(ctx: Context) -> Iterator[Finding]:
    """torch's own preload found one of its pip CUDA libraries on no sys.path entry (S132): the
    NVIDIA wheels its CUDA build depends on are not installed where it runs."""
    view = ctx.view
    lib = view.implied.torch_wheel_lib_missing
    if lib is None or view.rocm:
        return
    whose = (
        f"but torch {view.torch} here is a CPU-only build: the process that failed ran another "
        "torch"
        if view.torch_cpu_build
        else f"the NVIDIA wheels torch{' ' + str(view.torch) if view.torch else ''} depends on "
        "are not installed where it runs"
    )
    yield ctx.finding(
        "cuda-libs-not-found",
        f"torch could not load {lib}, and its own search of this interpreter's sys.path found "
        f"no NVIDIA wheel holding it (read from the error message); {whose}",
        library=lib,
        torch_wheels=True,
        source="error message",
    )


def _runtime_of_major_missing(ctx: Context) -> Iterator[Finding]:
    """A CUDA library of major N could not be opened (plans/signatures.toml: libcudart.so.N,
    cublas64_N.dll): the library that needed it was built for CUDA N and no CUDA N runtime is on
    the loader path. Where torch carries CUDA N, it is torch's own runtime that is missing."""
    view = ctx.view
    major = view.implied.wanted_cuda_major
    if major is None or view.rocm or view.implied.cuda_lib_bundled_by is not None:
        return  # a wheel's own copy is _bundled_library_broken's
    lib = view.implied.cuda_lib or "cudart"
    torch_cuda = view.torch_cuda
    whose = (
        f"torch's own CUDA {torch_cuda} runtime is missing"
        if torch_cuda is not None and torch_cuda.major == major
        else f"no CUDA {major} runtime is on the loader path"
    )
    yield ctx.finding(
        "cuda-libs-not-found",
        f"a library built for CUDA {major} could not open {lib} of CUDA {major}: {whose}",
        cuda_major=major,
        library=lib,
        torch_cuda=str(torch_cuda) if torch_cuda is not None else None,
        conda=in_conda(view) or None,
        source="error message",
    )


def _cudnn_of_major_missing(ctx: Context) -> Iterator[Finding]:
    """A cuDNN library of major N could not be opened (plans/signatures.toml: libcudnn_ops.so.9,
    cudnn_ops_infer64_8.dll): the library that asked was built for cuDNN N, and none of that
    major is where the loader looks. Which library asked, and the cuDNN torch brings, decide the
    repair (repair/libraries.py, plans/runtimes.toml)."""
    view = ctx.view
    major = view.implied.wanted_cudnn_major
    if major is None or view.rocm or toolkit_cudnn_shadows(view):
        return  # found, but a toolkit's copy that does not fit: stale-toolkit-on-path's
    who = cudnn_requester(view, ctx.kb)
    brought = torch_cudnn(view, ctx.kb)
    if who == CT2:
        whose = f"{ct2_named(view)} loads cuDNN {major}"
    elif who == "torch":
        whose = f"torch {view.torch} brings cuDNN {major} itself, and its own copy is missing"
    else:
        whose = "the facts do not show which library asked for it"
    if brought is not None and brought != major:
        whose += f"; torch {view.torch} brings cuDNN {brought}, not {major}"
    yield ctx.finding(
        "cuda-libs-not-found",
        f"a cuDNN {major} library could not be opened: {whose}",
        cudnn_major=major,
        requested_by=who,
        torch_cudnn=brought,
        conda=in_conda(view) or None,
        source="error message",
    )


def _ct2_cuda_missing(ctx: Context) -> Iterator[Finding]:
    """CTranslate2's own message: it could not open the cuBLAS of the CUDA major it was built for
    (plans/signatures.toml ct2-cuda-lib-missing, S118). Its wheels bring no CUDA of their own."""
    major = ctx.view.implied.ct2_cuda_major
    if major is None or not major.isdigit():
        return
    yield ctx.finding(
        "cuda-libs-not-found",
        f"ctranslate2 could not open cuBLAS of CUDA {major}, the CUDA it was built for: no CUDA "
        f"{major} cuBLAS is where the loader looks",
        ct2_cuda_major=int(major),
        requested_by=CT2,
        source="error message",
    )


def _bundled_library_broken(ctx: Context) -> Iterator[Finding]:
    """A CUDA library that a wheel bundles under a hashed name (plans/signatures.toml, S79, S80)
    could not be opened: the wheel finds it through its own RPATH, not the loader path, so it is
    that package's installed files that are broken or were removed (a "(deleted)" path: under a
    process that still maps them). No toolkit, LD_LIBRARY_PATH or ldconfig change brings it back;
    reinstalling the package does (runtime_advice)."""
    view = ctx.view
    owner = view.implied.cuda_lib_bundled_by
    major = view.implied.wanted_cuda_major
    if owner is None or major is None or view.rocm:
        return
    lib = view.implied.cuda_lib or "cudart"
    deleted = view.implied.cuda_lib_deleted
    state = "was removed while a process still maps it" if deleted else "cannot be opened"
    yield ctx.finding(
        "cuda-libs-not-found",
        f"{owner}'s own copy of {lib} (CUDA {major}), which its wheel bundles, {state}: "
        f"{owner}'s installed files are broken",
        cuda_major=major,
        library=lib,
        bundled_by=owner,
        deleted=deleted or None,
        conda=in_conda(view) or None,
        source="error message",
    )


def _driver_library_broken(ctx: Context) -> Iterator[Finding]:
    """The kernel driver answers (a version) but no CUDA level can be read: libcuda, the
    driver's user-space library, is missing or does not match (S32). Every CUDA library then
    fails, and bitsandbytes falls back to its CPU library."""
    view = ctx.view
    if not view.driver_cuda_na or view.rocm:
        return
    version = (view.facts.driver.version if view.facts.driver else None) or str(view.driver)
    yield ctx.finding(
        "cuda-libs-not-found",
        f"driver {version} answers but reports no CUDA version (CUDA Version: N/A): its "
        "user-space library libcuda is missing or does not match the kernel module",
        driver=version,
        driver_cuda="N/A",
        libcuda=True,
    )
