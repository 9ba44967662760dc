"""Libraries beside torch that open CUDA and cuDNN themselves (plans/runtimes.toml).

CTranslate2 (under faster-whisper and WhisperX) opens its CUDA libraries and cuDNN at run time
(S118): its release decides the CUDA the driver must run and the cuDNN major the loader must
find, whatever torch brings. A process that imports torch first finds the cuDNN torch brought
(8 up to torch 2.3, 9 from 2.4; S119), so a cuDNN that "cannot be loaded" is often the other
major. This module tells which library asked for the cuDNN an error names, and which CTranslate2
release fits the driver and the cuDNN there. Pure: reads the view and the knowledge base.
"""

from __future__ import annotations

from .findings import Finding
from .knowledge import Knowledge, LibraryRuntime
from .plan import Manual
from .view import View, driver_fit

CT2 = "ctranslate2"


def torch_cudnn(view: View, kb: Knowledge) -> int | None:
    """The cuDNN major torch's CUDA build brings (None: torch unknown or not a CUDA build)."""
    if view.torch is None or view.torch_cuda is None or view.rocm:
        return None
    row = kb.runtimes.of("torch", view.torch)
    return row.cudnn if row is not None else None


def ct2_installed(view: View) -> bool:
    return view.installed(CT2) is True


def ct2_runtime(view: View, kb: Knowledge) -> LibraryRuntime | None:
    """The row of the installed CTranslate2 release (None: not installed, or its version not
    known or not in the knowledge base)."""
    return kb.runtimes.of(CT2, view.package(CT2))


def cudnn_requester(view: View, kb: Knowledge) -> str | None:
    """Who asked for the cuDNN major the error text names: CTranslate2 where it is installed and
    its release loads that major (or its release is not known); torch where its build brings
    that major and CTranslate2 is not there; None when the facts do not tell."""
    wanted = view.implied.wanted_cudnn_major
    if wanted is None:
        return None
    if ct2_installed(view):
        row = ct2_runtime(view, kb)
        return CT2 if row is None or row.cudnn == wanted else None
    return "torch" if torch_cudnn(view, kb) == wanted else None


def ct2_target(view: View, kb: Knowledge) -> LibraryRuntime | None:
    """The newest CTranslate2 row whose CUDA this driver runs (or may: the driver is not known)
    and whose cuDNN is none at all, or neither the major the loader could not open nor another
    than the one torch brings. None when no row fits (a driver older than CUDA 11.2's)."""
    missing = view.implied.wanted_cudnn_major
    brought = torch_cudnn(view, kb)
    for row in kb.runtimes.newest_first(CT2):
        if row.cuda is not None and driver_fit(view, kb, row.cuda).ok is False:
            continue
        if row.cudnn and (row.cudnn == missing or (brought is not None and row.cudnn != brought)):
            continue
        return row
    return None


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
        rows = [row] if row is not None else kb.runtimes.newest_first(CT2)
        cudas = {r.cuda.major for r in rows if r.cuda is not None and r.cudnn == major}
    else:
        cudas = {view.torch_cuda.major} if view.torch_cuda is not None else set()
    cuda = str(next(iter(cudas))) if len(cudas) == 1 else "<CUDA major>"
    return f"nvidia-cudnn-cu{cuda}=={major}.*"


def _cudnn_path_text(view: View) -> str:
    if view.system == "Windows":
        return "put its bin directory on PATH before the program starts"
    return (
        "put its lib directory on LD_LIBRARY_PATH before the program starts (`python -c "
        "\"import nvidia.cudnn, os; print(os.path.join(nvidia.cudnn.__path__[0], 'lib'))\"`)"
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
    install = (
        f"install cuDNN {major} (`pip install {_cudnn_wheel(view, kb, who, major)}`) and "
        + _cudnn_path_text(view)
    )
    if who == CT2:
        target = ct2_target(view, kb)
        have = view.package(CT2)
        if target is not None:
            return Manual(
                "cuda-libs-not-found",
                f"or keep ctranslate2{f' {have}' if have else ''}: {install}",
                False,
            )
        return Manual("cuda-libs-not-found", f"ctranslate2 needs cuDNN {major}: {install}", True)
    brought = torch_cudnn(view, kb)
    other = f" (torch brings cuDNN {brought})" if brought is not None else ""
    return Manual(
        "cuda-libs-not-found",
        f"a library built for cuDNN {major} cannot open it: {install}; or move that library "
        f"to a release built for the cuDNN you have{other}",
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
    return Manual("driver-too-old", upgrade + ": no ctranslate2 release runs on this driver", True)
