"""Libraries beside torch that open CUDA and cuDNN themselves (plans/runtimes.toml).

CTranslate2 (under faster-whisper and WhisperX) opens its CUDA libraries and cuDNN at run time
(S118): its release decides the CUDA the driver must run and the cuDNN major the loader must
find, whatever torch brings. A process that imports torch first finds the cuDNN torch brought
(8 up to torch 2.3, 9 from 2.4; S119), so a cuDNN that "cannot be loaded" is often the other
major. This module tells which library asked for the cuDNN an error names, and which CTranslate2
release fits the driver and the cuDNN there. Pure: reads the view and the knowledge base.
"""

from __future__ import annotations

from packaging.version import Version

from .findings import Finding
from .knowledge import Knowledge, LibraryRuntime
from .plan import Manual
from .view import View, driver_fit, parse_version, public

CT2 = "ctranslate2"


def torch_cudnn(view: View, kb: Knowledge) -> int | None:
    """The cuDNN major torch's CUDA build brings (None: torch unknown or not a CUDA build)."""
    if view.torch is None or view.torch_cuda is None or view.rocm:
        return None
    return torch_cudnn_of(kb, view.torch)


def toolkit_cudnn_shadows(view: View) -> bool:
    """A toolkit's cuDNN sub-library was loaded in place of the one of torch's wheels (the
    signature cudnn-toolkit-copy-loaded), where torch is such a wheel."""
    return view.implied.cuda_lib_shadowed == "libcudnn" and torch_from_wheels(view)


def torch_from_wheels(view: View) -> bool:
    """torch came as a wheel with its own CUDA libraries (a PyTorch index's +cuXY label, or no
    label: PyPI's build), or its version is not known; not a build of another label (NGC's
    "2.1.0a0+32f93b1", a source build's "+git..."), which links the system's own libraries."""
    label = (view.torch.local or "") if view.torch is not None else ""
    return not label or label.startswith("cu")


def cudnn_shadow_major(view: View, kb: Knowledge) -> int | None:
    """The cuDNN major of a toolkit's copy that stood in for torch's own, where it is the major
    torch's build opens (S119 gives it per release: 8 up to torch 2.3, 9 from 2.4). A library is
    opened by its soname, which carries its major, so a torch release of another cuDNN major
    opens files (libcudnn*.so.9) that copy (libcudnn*.so.8) cannot stand in for: that move ends
    the shadowing inside the environment. None otherwise."""
    major = view.implied.shadowed_lib_major
    if not toolkit_cudnn_shadows(view) or not (major and major.isdecimal() and major.isascii()):
        return None
    return int(major) if torch_cudnn(view, kb) == int(major) else None


def torch_cudnn_of(kb: Knowledge, version: Version) -> int | None:
    """The cuDNN major a CUDA build of that torch release brings (None: not known)."""
    row = kb.runtimes.of("torch", version)
    return row.cudnn if row is not None else None


def ct2_installed(view: View) -> bool:
    return view.installed(CT2) is True


def ct2_named(view: View) -> str:
    """ "ctranslate2 4.5.0", or "ctranslate2" where its version is not known."""
    have = view.package(CT2)
    return f"{CT2} {have}" if have is not None else CT2


def ct2_runtime(view: View, kb: Knowledge) -> LibraryRuntime | None:
    """The row of the installed CTranslate2 release on this platform (None: not installed, its
    version not known or not in the knowledge base, or a platform whose wheels have no CUDA)."""
    return kb.runtimes.of(CT2, view.package(CT2), view.platform)


def ct2_has_cuda_here(view: View, kb: Knowledge) -> bool:
    """CTranslate2's wheels for this platform open CUDA at all (Linux x86_64 and Windows; its
    Linux aarch64 and macOS wheels are built without CUDA, S118)."""
    return bool(kb.runtimes.newest_first(CT2, view.platform))


def cudnn_requester(view: View, kb: Knowledge) -> str | None:
    """Who asked for the cuDNN major the error text names: CTranslate2 where it is installed and
    its release loads that major (or its release is not known); torch where its build brings
    that major and CTranslate2 is not there; None when the facts do not tell."""
    wanted = view.implied.wanted_cudnn_major
    if wanted is None:
        return None
    if ct2_installed(view) and ct2_has_cuda_here(view, kb):
        row = ct2_runtime(view, kb)
        unknown = row is None and view.package(CT2) is None
        if unknown or (row is not None and row.cudnn == wanted):
            return CT2
    t = view.facts.torch
    if torch_cudnn(view, kb) == wanted and not (t is not None and t.cuda_available is True):
        return "torch"  # torch imported with CUDA working had its cuDNN: not torch's then
    return None


def ct2_target(view: View, kb: Knowledge) -> LibraryRuntime | None:
    """The newest CTranslate2 row whose CUDA this driver runs (or may: the driver is not known)
    and the environment has (beside a CUDA torch: torch's or a system toolkit's major), whose
    cuDNN is none at all, or neither a major the loader could not open and torch does not bring
    nor another than the one torch brings, and that installs on this Python. None when no row
    fits."""
    missing = view.implied.wanted_cudnn_major
    brought = torch_cudnn(view, kb)
    python = public(view.python) if view.python is not None else None
    # beside a CUDA torch, the CUDA majors whose libraries are there: torch's own, and a system
    # toolkit's; a CTranslate2 of another major would find no cuBLAS (its wheels bring none)
    here = _cuda_majors_here(view)
    # CTranslate2's own message that it could not open the cuBLAS of a CUDA major: a release
    # built for that major would open the same missing library. A release of another major is
    # what faster-whisper's README advises (3.24.0 for CUDA 11, S125), its own pin on
    # ctranslate2 4.x notwithstanding -- where the facts show that other CUDA's libraries (a
    # CUDA torch, a toolkit, NVIDIA's cuBLAS wheel); with none shown, no release is known to
    # find its cuBLAS, and installing the missing one is the step (ct2_cuda_manual).
    lacking = view.implied.ct2_cuda_major
    if lacking is not None and here is None:
        here = _cublas_majors_listed(view) - {int(lacking)} if lacking.isdigit() else None
    for row in kb.runtimes.newest_first(CT2, view.platform):
        if row.cuda is not None and driver_fit(view, kb, row.cuda).ok is False:
            continue
        if row.cuda is not None and here is not None and row.cuda.major not in here:
            continue
        if row.cuda is not None and lacking is not None and str(row.cuda.major) == lacking:
            continue
        # the missing major, unless torch brings it (there, only not on the loader path)
        gone = row.cudnn == missing and brought != missing
        if row.cudnn and (gone or (brought is not None and row.cudnn != brought)):
            continue
        if python is not None and row.python is not None and python not in row.python:
            continue  # pip would refuse the release on this interpreter
        return row
    return None


def _cublas_majors_listed(view: View) -> set[int]:
    """The CUDA majors whose cuBLAS the facts show without a CUDA torch: a toolkit's nvcc (its
    installer puts its libraries where the loader looks). NVIDIA's nvidia-cublas-cuN wheel is
    no such sign: its folder is on no search path until someone puts it there."""
    nvcc = parse_version(view.facts.toolkit_nvcc)
    return {nvcc.major} if nvcc is not None else set()


def _cuda_majors_here(view: View) -> set[int] | None:
    """The CUDA majors whose runtime libraries the facts show in this environment, where torch
    is a CUDA build (None: not known, no constraint). CTranslate2's own message that it could
    not open one rules that major out."""
    if view.torch_cuda is None:
        return None
    here = {view.torch_cuda.major}
    nvcc = parse_version(view.facts.toolkit_nvcc)
    if nvcc is not None:
        here.add(nvcc.major)
    missing = view.implied.ct2_cuda_major
    if missing and missing.isdigit():
        here.discard(int(missing))
    return here


def ct2_needs_step(view: View, kb: Knowledge, target: LibraryRuntime) -> bool:
    """Whether the installed CTranslate2 is outside the target row (unknown: it is)."""
    have = view.package(CT2)
    return have is None or not target.versions.contains(have.public, True)


def _cudnn_wheel(view: View, kb: Knowledge, who: str | None, major: int) -> str:
    """NVIDIA's pip wheel of cuDNN ``major`` for the CUDA of the library that asks: CTranslate2's
    release (or that of its releases that load this cuDNN), else torch's CUDA; a placeholder
    where neither is known."""
    if who == CT2:
        row = ct2_runtime(view, kb)
        rows = [row] if row is not None else kb.runtimes.newest_first(CT2, view.platform)
        cudas = {r.cuda.major for r in rows if r.cuda is not None and r.cudnn == major}
    else:
        cudas = {view.torch_cuda.major} if view.torch_cuda is not None else set()
    cuda = str(next(iter(cudas))) if len(cudas) == 1 else "<CUDA major>"
    return f"nvidia-cudnn-cu{cuda}=={major}.*"


def _cudnn_install_text(view: View, kb: Knowledge, who: str | None, major: int) -> str:
    """How to make cuDNN ``major`` loadable. On Linux, torch's PyPI CUDA wheels pin an
    nvidia-cudnn wheel (pip's messages quoted in S119: torch 2.2.0, 2.6.0): torch's own copy is
    used where it is this major, and another major goes to a folder of its own, since installing
    it over torch's would replace the one torch needs.
    Windows torch bundles its cuDNN DLLs in torch\\lib, so pip's wheel there is apart already."""
    wheel = _cudnn_wheel(view, kb, who, major)
    if view.system == "Windows":
        return f"install cuDNN {major} (`pip install {wheel}`) and put its bin directory on PATH"
    brought = torch_cudnn(view, kb)
    lib_dir = "\"import nvidia.cudnn, os; print(os.path.join(nvidia.cudnn.__path__[0], 'lib'))\""
    if brought == major:
        return (
            f"put the directory holding torch's own libcudnn.so.{major} on LD_LIBRARY_PATH "
            f"before the program starts (site-packages/nvidia/cudnn/lib where torch's wheels "
            f"installed nvidia-cudnn: `python -c {lib_dir}`; torch/lib for builds that carry it "
            "there)"
        )
    if view.torch_installed is not False:
        return (
            f"install cuDNN {major} into a folder of its own, not over torch's cuDNN "
            f"(`pip install --target ~/cudnn{major} {wheel}`), and put "
            f"~/cudnn{major}/nvidia/cudnn/lib on LD_LIBRARY_PATH before the program starts"
        )
    return (
        f"install cuDNN {major} (`pip install {wheel}`) and put its lib directory on "
        f"LD_LIBRARY_PATH before the program starts (`python -c {lib_dir}`)"
    )


def cudnn_manual(view: View, kb: Knowledge, finding: Finding) -> Manual:
    """The manual step of a cuDNN that could not be opened: an alternative to the CTranslate2
    step where one is planned; otherwise what must happen outside the venv (or to torch)."""
    major = int(finding.evidence["cudnn_major"])
    who = finding.evidence.get("requested_by")
    if who == "torch":
        return Manual(
            "cuda-libs-not-found",
            f"torch {view.torch}'s own cuDNN {major} is missing: reinstall torch from the "
            "PyTorch index of its CUDA build so that its cuDNN comes with it (not with "
            "--no-deps)",
            True,
        )
    install = _cudnn_install_text(view, kb, who, major)
    if who == CT2:
        if ct2_target(view, kb) is not None:
            return Manual("cuda-libs-not-found", f"or keep {ct2_named(view)}: {install}", False)
        return Manual("cuda-libs-not-found", f"ctranslate2 needs cuDNN {major}: {install}", True)
    brought = torch_cudnn(view, kb)
    other = f" (torch brings cuDNN {brought})" if brought is not None else ""
    return Manual(
        "cuda-libs-not-found",
        f"a library built for cuDNN {major} cannot open it: {install}; or move that library "
        f"to a release built for the cuDNN you have{other}",
        True,
    )


def ct2_cuda_manual(view: View, kb: Knowledge, finding: Finding) -> Manual:
    """CTranslate2 could not open the cuBLAS of its CUDA major: install it where the loader finds
    it (NVIDIA's pip wheel), or a CTranslate2 release of the CUDA the environment has."""
    major = finding.evidence["ct2_cuda_major"]
    wheel = f"nvidia-cublas-cu{major}"
    if view.implied.frozen_app:
        # a frozen program (S126) finds DLLs and shared libraries beside itself or on the path
        where = (
            f"put CUDA {major}'s cuBLAS libraries where the program loads them: beside the "
            f"executable or on {'PATH' if view.system == 'Windows' else 'LD_LIBRARY_PATH'} "
            f"(NVIDIA's CUDA {major} toolkit, or its {wheel} wheel's "
            f"{'bin' if view.system == 'Windows' else 'lib'} folder)"
        )
    elif view.system == "Windows":
        where = f"install {wheel} (`pip install {wheel}`) and put its bin directory on PATH"
    else:
        where = (
            f"install {wheel} into a folder of its own (`pip install --target ~/cublas{major} "
            f"{wheel}`) and put ~/cublas{major}/nvidia/cublas/lib on LD_LIBRARY_PATH before the "
            "program starts"
        )
    target = ct2_target(view, kb)
    if target is not None and ct2_needs_step(view, kb, target) and not view.implied.frozen_app:
        # the plan moves CTranslate2 to a release of another CUDA: keeping it is the other way
        return Manual(
            "cuda-libs-not-found",
            f"or keep {ct2_named(view)}, built for CUDA {major}: {where}",
            False,
        )
    python = public(view.python) if view.python is not None else None
    other = next(
        (
            r
            for r in kb.runtimes.newest_first(CT2, view.platform)
            if r.cuda is not None
            and str(r.cuda.major) != str(major)
            and driver_fit(view, kb, r.cuda).ok is not False
            and (python is None or r.python is None or python in r.python)
        ),
        None,
    )
    alternative = (
        f"; or, where CUDA {other.cuda.major}'s libraries are installed, ctranslate2 "
        f"{other.target.lstrip('=')}, built for CUDA {other.cuda.major} (S125)"
        if other is not None and other.cuda is not None and not view.implied.frozen_app
        else ""
    )
    return Manual(
        "cuda-libs-not-found",
        f"{ct2_named(view)} needs CUDA {major}'s cuBLAS: {where}{alternative}",
        True,
    )


def library_driver_manual(view: View, kb: Knowledge, finding: Finding) -> Manual:
    """A driver below the CUDA CTranslate2 opens: the driver upgrade, an alternative to the
    CTranslate2 step where a release for an older CUDA fits this driver."""
    need = finding.evidence.get("minimum_driver")
    upgrade = (
        f"upgrade the NVIDIA driver to >= {need} (CUDA {finding.evidence.get('library_cuda')}, "
        f"which ctranslate2 {view.package(CT2)} opens)"
    )
    if ct2_target(view, kb) is not None:
        keep = f"or keep ctranslate2 {view.package(CT2)}: {upgrade}"
        return Manual("driver-too-old", keep, False)
    return Manual(
        "driver-too-old",
        upgrade + ": no ctranslate2 release fits this driver, Python and the cuDNN here",
        True,
    )
