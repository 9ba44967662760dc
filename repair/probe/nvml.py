"""The driver and its GPUs as NVML reports them: the only module in qfix that imports pynvml.

NVML (libnvidia-ml.so.1) ships with the driver, so it answers for the driver that is actually
loaded, without a CUDA toolkit and without starting a process. nvidia-ml-py (``pynvml``) is a thin
ctypes binding: it loads the library on init and looks each function up by name, so a function that
an older driver lacks fails on its own call (``NVMLError_FunctionNotFound``) and the rest still
work. Every failure here is data (``NvmlUnavailable`` or a note in ``NvmlReading.problems``).

pynvml is imported on first use: its import costs ~25 ms that ``qfix plan --facts`` need not pay.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from repair.facts import Gpu

DEFAULT_LIBRARY = "libnvidia-ml.so.1"  # the name pynvml dlopen()s on Linux

# Why NVML could not be used (NvmlUnavailable.kind). Stable strings: diagnose may branch on them.
LIBRARY_NOT_FOUND = "library-not-found"
DRIVER_NOT_LOADED = "driver-not-loaded"
NO_DEVICE = "no-device"
FUNCTION_MISSING = "function-missing"
NO_PERMISSION = "no-permission"
VERSION_MISMATCH = "version-mismatch"
OTHER = "other"

# NVML return codes (nvml.h, nvmlReturn_t). Spelled out so that classifying an error needs no
# particular nvidia-ml-py release.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_NOT_FOUND = 6
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_LIB_RM_VERSION_MISMATCH = 18
_GPU_NOT_FOUND = 28

# The library this process handed to pynvml by path (None: pynvml's own default load, if any).
_loaded_from: str | None = None

# nvml.h: "Don't fail nvmlInit() when no GPUs are found", so that zero GPUs is an answer (gpus=())
# rather than an init error.
_INIT_FLAG_NO_GPUS = 1


@dataclass(frozen=True, slots=True)
class NvmlUnavailable:
    """NVML could not be loaded or initialised: ``kind`` (one of the constants above) and why."""

    kind: str
    reason: str
    library: str


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """What an initialised NVML said. A fact it could not read is None, with a note in problems."""

    library: str
    driver_version: str | None
    cuda: str | None  # the newest CUDA the driver supports, "12.2"
    gpus: tuple[Gpu, ...] | None  # None when even the device count failed
    problems: tuple[str, ...] = ()


def cuda_version_string(value: int) -> str | None:
    """NVML's CUDA version integer as "major.minor": 12020 -> "12.2", 11040 -> "11.4".

    nvml.h encodes it as 1000 * major + 10 * minor (NVML_CUDA_DRIVER_VERSION_MAJOR/MINOR).
    """
    if value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def read(library: str | None = None) -> NvmlReading | NvmlUnavailable:
    """Read the driver and the GPUs through NVML; never raises for a missing or broken driver.

    ``library`` None lets pynvml load ``libnvidia-ml.so.1`` the usual way (the loader path);
    a path loads that file instead (WSL keeps it in /usr/lib/wsl/lib, off the default path).
    """
    name = library or DEFAULT_LIBRARY
    try:
        import pynvml
    except ImportError as exc:
        return NvmlUnavailable(OTHER, f"nvidia-ml-py (pynvml) is not importable: {exc}", name)

    if library is not None and (failed := _load_explicit(pynvml, library)) is not None:
        return failed
    if library is None and getattr(pynvml, "nvmlLib", None) is not None:
        name = _loaded_from or DEFAULT_LIBRARY  # pynvml keeps what an earlier call loaded
    try:
        init = getattr(pynvml, "nvmlInitWithFlags", None)
        if init is not None:
            init(_INIT_FLAG_NO_GPUS)
        else:  # nvidia-ml-py releases before nvmlInitWithFlags
            pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return _unavailable(pynvml, exc, name)
    try:
        return _read_initialised(pynvml, name)
    finally:
        # Nothing depends on a clean shutdown; a failed one must not hide what was read.
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _load_explicit(pynvml: ModuleType, library: str) -> NvmlUnavailable | None:
    """Load NVML from ``library`` for pynvml; None on success."""
    global _loaded_from
    if getattr(pynvml, "nvmlLib", None) is not None:
        # pynvml keeps the first library it loaded for the life of the process: it cannot be
        # swapped, so another one cannot be asked (only matters to a process probing twice).
        if _loaded_from == library:
            return None
        return NvmlUnavailable(
            OTHER,
            f"cannot load {library}: this process already uses NVML from "
            f"{_loaded_from or DEFAULT_LIBRARY}",
            library,
        )
    try:
        lib = ctypes.CDLL(library)
    except OSError as exc:
        return NvmlUnavailable(LIBRARY_NOT_FOUND, f"NVML library not found ({exc})", library)
    # pynvml's _LoadNvmlLibrary() only loads when its module global ``nvmlLib`` is None (true of
    # every nvidia-ml-py release), so handing it the loaded library makes its init use this one.
    setattr(pynvml, "nvmlLib", lib)  # noqa: B010 - a module global that typing cannot see
    _loaded_from = library
    return None


def _unavailable(pynvml: ModuleType, exc: Any, library: str) -> NvmlUnavailable:
    code = getattr(exc, "value", None)
    text = _error_text(exc)
    if code == _LIBRARY_NOT_FOUND:
        # pynvml swallows the loader's message; ask the loader again for it (a failed dlopen is
        # cheap and has no side effect).
        detail = text
        try:
            ctypes.CDLL(library)
        except OSError as os_exc:
            detail = str(os_exc)
        return NvmlUnavailable(LIBRARY_NOT_FOUND, f"NVML library not found ({detail})", library)
    if code == _DRIVER_NOT_LOADED:
        return NvmlUnavailable(
            DRIVER_NOT_LOADED, f"the NVIDIA kernel driver is not loaded (NVML: {text})", library
        )
    if code in (_NOT_FOUND, _GPU_NOT_FOUND):
        return NvmlUnavailable(NO_DEVICE, f"no NVIDIA GPU found (NVML: {text})", library)
    if code == _FUNCTION_NOT_FOUND:
        return NvmlUnavailable(
            FUNCTION_MISSING,
            f"this NVML lacks its init function; the driver is older than nvidia-ml-py "
            f"supports (NVML: {text})",
            library,
        )
    if code == _NO_PERMISSION:
        return NvmlUnavailable(
            NO_PERMISSION,
            f"insufficient permissions to talk to the NVIDIA driver (NVML: {text})",
            library,
        )
    if code == _LIB_RM_VERSION_MISMATCH:
        # The classic state after a driver upgrade without a reboot: the user-space library is
        # the new release, the loaded kernel module the old one.
        return NvmlUnavailable(
            VERSION_MISMATCH,
            f"the NVML library and the loaded kernel module are different driver releases; "
            f"reboot or reload the nvidia module (NVML: {text})",
            library,
        )
    return NvmlUnavailable(OTHER, f"NVML init failed (NVML: {text}, code {code})", library)


def _error_text(exc: Any) -> str:
    try:
        return str(exc)
    except Exception:  # pynvml's __str__ calls back into the library, which may be the problem
        return f"NVML error code {getattr(exc, 'value', '?')}"


def _is(exc: Any, code: int) -> bool:
    return getattr(exc, "value", None) == code


def _text(value: Any) -> str:
    # nvidia-ml-py >= 11.515 decodes strings; older releases return bytes.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _read_initialised(pynvml: ModuleType, library: str) -> NvmlReading:
    problems: list[str] = []

    def note(what: str, exc: Any) -> None:
        if _is(exc, _FUNCTION_NOT_FOUND):
            problems.append(f"{what}: function missing in this driver's NVML (an older driver)")
        else:
            problems.append(f"{what}: {_error_text(exc)}")

    version: str | None = None
    try:
        version = _text(pynvml.nvmlSystemGetDriverVersion()).strip() or None
    except pynvml.NVMLError as exc:
        note("nvmlSystemGetDriverVersion", exc)

    cuda = _read_cuda(pynvml, note)

    gpus: tuple[Gpu, ...] | None = None
    try:
        count = int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as exc:
        note("nvmlDeviceGetCount", exc)
    else:
        gpus = tuple(_read_gpu(pynvml, i, note) for i in range(count))
    return NvmlReading(library, version, cuda, gpus, tuple(problems))


def _read_cuda(pynvml: ModuleType, note: Any) -> str | None:
    # _v2 is the current name; drivers before it (CUDA < 11.1) only have the unversioned call,
    # and drivers before CUDA 10.0 neither. Both return the same 1000*major + 10*minor integer.
    for fn_name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        fn = getattr(pynvml, fn_name, None)
        if fn is None:
            continue  # this nvidia-ml-py has no wrapper for it
        try:
            value = int(fn())
        except pynvml.NVMLError as exc:
            note(fn_name, exc)
            if _is(exc, _FUNCTION_NOT_FOUND):
                continue
            return None
        cuda = cuda_version_string(value)
        if cuda is None:
            note(fn_name, f"returned {value}, not a CUDA version")
        return cuda
    return None


def _read_gpu(pynvml: ModuleType, index: int, note: Any) -> Gpu:
    # Index i is NVML's enumeration order (PCI bus order). CUDA orders devices fastest first
    # unless CUDA_DEVICE_ORDER=PCI_BUS_ID, and NVML ignores CUDA_VISIBLE_DEVICES.
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as exc:
        note(f"GPU {index}: nvmlDeviceGetHandleByIndex", exc)
        return Gpu(index=index)

    name: str | None = None
    try:
        name = _text(pynvml.nvmlDeviceGetName(handle)).strip() or None
    except pynvml.NVMLError as exc:
        note(f"GPU {index}: nvmlDeviceGetName", exc)

    capability: str | None = None
    try:
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        capability = f"{int(major)}.{int(minor)}"
    except pynvml.NVMLError as exc:
        note(f"GPU {index}: nvmlDeviceGetCudaComputeCapability", exc)

    memory: int | None = None
    try:
        memory = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
    except pynvml.NVMLError as exc:
        note(f"GPU {index}: nvmlDeviceGetMemoryInfo", exc)

    mig: bool | None = None
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        mig = int(current) == 1  # NVML_DEVICE_MIG_ENABLE
    except pynvml.NVMLError as exc:
        if _is(exc, _NOT_SUPPORTED):
            mig = False  # a GPU without MIG (anything before A100/A30) is not in MIG mode
        else:
            note(f"GPU {index}: nvmlDeviceGetMigMode", exc)
    return Gpu(index=index, name=name, compute_capability=capability, memory_mib=memory, mig=mig)
