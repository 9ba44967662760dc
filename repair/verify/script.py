"""The real 4-bit load. Run by the TARGET interpreter, never imported there by qfix itself.

``python script.py --device auto|cuda|cpu --model auto|tiny|none``

It imports torch and bitsandbytes (and transformers for ``--model tiny``, or for ``--model auto``
when transformers and accelerate are installed), quantizes a linear layer
to NF4 and FP4 on every device it checks, runs it, compares the result with exact references, and
optionally loads a tiny causal LM from a config with ``BitsAndBytesConfig(load_in_4bit=True)``.

Contract with ``repair.verify.runner``:

- stdout carries exactly one JSON document (schema ``qfix.verify-script/1``) after a line that is
  exactly ``MARKER``. File descriptor 1 is pointed at stderr while torch, bitsandbytes and
  transformers run, so their banners (bitsandbytes <= 0.41 prints one to stdout) cannot break it.
- stderr carries, besides library noise, one ``STEP_PREFIX <step>`` line before each step and one
  ``CHECK_PREFIX <json>`` line per finished check, so a run that hangs or crashes still tells the
  runner what passed and where it stopped.
- The exit status is 0 whenever the document was written; the verdict is in the document.
- No traceback reaches the user: every step catches its own errors and reports them as one line.

Only the standard library is imported at module level (qfix imports this module for
``classify``); keep it runnable on Python 3.8, the oldest interpreter bitsandbytes 4-bit runs on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from typing import Any

SCHEMA = "qfix.verify-script/1"
MARKER = "@@qfix-verify-result@@"
STEP_PREFIX = "@@qfix-verify-step@@"
CHECK_PREFIX = "@@qfix-verify-check@@"

# The layer every device quantizes: weight [N, K] = [384, 256] (not square, so bitsandbytes never
# has to guess the orientation; K a multiple of the 64-value quantization block), a batch of 8 rows
# (the dequantize + matmul path) and one row (the inference gemv kernel). Small enough to cost a few
# milliseconds, large enough (3072 and 384 outputs) for a stable error estimate.
LAYER_N, LAYER_K, LAYER_M = 384, 256, 8
SEED = 1234

# Relative Frobenius error of the 4-bit layer against the full-precision layer, on Gaussian weights
# and inputs. Measured with bitsandbytes 0.50.2 on the CPU over 200 seeds, this layer, batch and
# single-row paths, both CPU kernels (docs/verify.md, "Tolerances"):
#   NF4 0.079-0.106 (median 0.092), FP4 0.106-0.139 (median 0.122).
# Theory agrees: the best 4-bit quantizer for a Gaussian (Lloyd-Max, 16 levels) has a relative RMS
# error of 0.0975, and absmax blocks of 64 let NF4 come close to it; FP4 spends levels on a wider
# range. The upper bounds leave ~40% headroom for other kernels and releases. The lower bound
# (0.04, under half the optimum) proves the weights really went through 4 bits: a layer left in
# 16/32-bit would show < 0.01.
FULL_BOUNDS = {"nf4": (0.04, 0.15), "fp4": (0.04, 0.20)}

# The 4-bit layer against the same layer computed in float64 from bitsandbytes' own dequantized
# weights: only rounding in the kernel's compute dtype separates them. Two machine epsilons of that
# dtype (relative Frobenius) for fp16/bf16; 1e-5 for fp32 (2 eps would be 2.4e-7, too close to
# accumulation-order noise). Measured on the CPU over 200 seeds: max 2.2e-7 on the fp32 path,
# max 3.6e-3 on the AVX512-BF16 packed path (which computes in bf16). Every bound stays far under
# the 4-bit error above, so a kernel that used the wrong weights (or none) cannot pass.
DEQUANT_TOL = {"float32": 1e-5, "float16": 2 * 2.0**-10, "bfloat16": 2 * 2.0**-7}

# Logits of the tiny model loaded in 4-bit against the same model in full precision, relative
# Frobenius error. Measured with transformers 5.24.0 / bitsandbytes 0.50.2 on the CPU over 20
# model seeds: 0.096-0.158 (median 0.116). The bound leaves room for bf16 compute on a GPU and
# still fails a model whose 4-bit layers compute garbage (errors of order 1).
MODEL_LOGITS_BOUND = 0.25

TINY_VOCAB = 256
TINY_NEW_TOKENS = 4

# Failure-class ids (plans/failures.toml, design.md) tied to messages that torch, bitsandbytes,
# transformers and the CUDA runtime print. First match wins, so the specific come first.
_SIGNATURES = (
    # CUDA runtime: the GPU's compute capability is not compiled into a binary (torch or bnb).
    (
        "gpu-arch-unsupported",
        r"no kernel image is available|not compatible with the current pytorch"
        r"|cudaErrorNoKernelImageForDevice|sm_\d+ is not compatible",
    ),
    # torch's lazy CUDA init (torch/cuda/__init__.py _check_driver / is_available warning).
    (
        "driver-too-old",
        r"driver on your system is too old|driver version is insufficient"
        r"|CUDA driver version is insufficient|cudaErrorInsufficientDriver",
    ),
    (
        "no-nvidia-driver",
        r"Found no NVIDIA driver|no CUDA-capable device is detected"
        r"|NVIDIA driver on your system|cudaErrorNoDevice",
    ),
    # bitsandbytes 0.50: BNB_CUDA_VERSION must be digits and names the exact library.
    ("bnb-cuda-override", r"BNB_CUDA_VERSION|BNB_ROCM_VERSION"),
    # bitsandbytes >= 0.46 ErrorHandlerMockBNBNativeLibrary: a dependency of the library is missing.
    (
        "cuda-libs-not-found",
        r"Missing dependency: lib|libcudart\.so[^ ]*: cannot open"
        r"|libcublas[^ ]*: cannot open|libcuda\.so[^ ]*: cannot open|libnvJitLink[^ ]*: cannot open"
        r"|libcudnn[^ ]*: cannot open|libcusparse[^ ]*: cannot open",
    ),
    # bitsandbytes could not load (or did not ship) the native library for torch's CUDA version:
    # 0.37-0.42 "CUDA Setup failed despite GPU being available", 0.43-0.45 "Could not load
    # bitsandbytes native library" / CPU library fallback ("compiled without GPU support",
    # then 'NoneType' or undefined symbol), 0.46+ "CUDA VERSION MISMATCH" / "Configured CUDA
    # binary not found" (facts/anchors.md, bitsandbytes cextension.py).
    (
        "bnb-no-cuda-lib",
        r"CUDA Setup failed despite GPU being available|CUDA VERSION MISMATCH"
        r"|Configured (CUDA|ROCm) binary not found|Could not load bitsandbytes native library"
        r"|compiled without GPU support|libbitsandbytes_\w+\.(so|dll|dylib)"
        r"|'NoneType' object has no attribute 'c|undefined symbol: c\w+"
        r"|native library (did not|could not) load|CUDA SETUP ERROR",
    ),
    # transformers' 4-bit gates: accelerate missing or too old, bitsandbytes too old for it.
    ("hf-stack-too-old", r"requires accelerate|requires `accelerate`|pip install .?accelerate"),
)


def classify(message: str | None) -> str | None:
    """The failure-class id a message of torch/bitsandbytes/CUDA points to, or None."""
    if not message:
        return None
    for fid, pattern in _SIGNATURES:
        if re.search(pattern, message, re.IGNORECASE):
            return fid
    return None


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: first meaningful line`` of an exception, never a traceback."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and set(ln.strip()) - set("=-*")]
    # bitsandbytes' formatted errors open with a banner line; keep the line that says what failed.
    head = next((ln for ln in lines if len(ln) > 12), lines[0] if lines else "")
    out = f"{type(exc).__name__}: {head}" if head else type(exc).__name__
    return out if len(out) <= limit else out[: limit - 3] + "..."


def rel_error(value: Any, reference: Any) -> float:
    """||value - reference|| / ||reference|| in float64 on the CPU (inf when not finite)."""
    v = value.detach().to("cpu").double()
    r = reference.detach().to("cpu").double()
    den = float(r.norm())
    num = float((v - r).norm())
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
        return math.inf
    return num / den


class _Report:
    """Collects checks; streams each one (and each step) to stderr for the runner."""

    def __init__(self, err: Any) -> None:
        self.err = err
        self.checks: list[dict[str, Any]] = []
        self.bnb_messages = ""  # what bitsandbytes said at import (explains a later GPU failure)
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "python": sys.executable,
            "python_version": ".".join(str(x) for x in sys.version_info[:3]),
            "versions": {},
            "devices": [],
            "host_nvidia": None,
            "device": "none",
            "gpu_exercised": False,
            "gpu_note": None,
            "checks": self.checks,
        }

    def step(self, text: str) -> None:
        self.err.write(f"{STEP_PREFIX} {text}\n")
        self.err.flush()

    def check(
        self,
        name: str,
        ok: bool,
        details: dict[str, Any] | None = None,
        error: str | None = None,
        failure_id: str | None = None,
    ) -> dict[str, Any]:
        c = {
            "name": name,
            "ok": bool(ok),
            "details": details or {},
            "error": error,
            "failure_id": failure_id,
        }
        self.checks.append(c)
        try:
            line = json.dumps(c, default=str, allow_nan=False)
        except ValueError:  # a nan/inf measurement: still one parseable line
            line = json.dumps(_finite(c), default=str)
        self.err.write(f"{CHECK_PREFIX} {line}\n")
        self.err.flush()
        return c


def _finite(obj: Any) -> Any:
    """Replace nan/inf (not JSON) with strings, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class _LogCatcher(logging.Handler):
    """Keeps what bitsandbytes/transformers log (their load errors are logged, not raised)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a bad log call must not break verify
            self.messages.append(record.getMessage())


def _dist_version(name: str) -> str | None:
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        return None
    try:
        return metadata.version(name)
    except Exception:  # noqa: BLE001 - PackageNotFoundError or a broken dist-info
        return None


def _host_nvidia() -> dict[str, Any]:
    """Whether this host has an NVIDIA driver/GPU, read from files (no torch, no process).

    /proc/driver/nvidia exists when the kernel module is loaded (Linux); /dev/nvidiaN are the
    device nodes, also in containers that were given a GPU. Windows: nvcuda.dll in System32.
    """
    out: dict[str, Any] = {"driver": None, "gpus": 0}
    try:
        with open("/proc/driver/nvidia/version") as fh:
            m = re.search(r"Kernel Module\s+(?:for \w+\s+)?([\d.]+)", fh.read())
            out["driver"] = m.group(1) if m else "present"
    except OSError:
        pass
    try:
        out["gpus"] = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        with contextlib.suppress(OSError):
            out["gpus"] = len([n for n in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", n)])
    if sys.platform == "win32":
        sysroot = os.environ.get("SYSTEMROOT", r"C:\Windows")
        if os.path.exists(os.path.join(sysroot, "System32", "nvcuda.dll")):
            out["driver"] = out["driver"] or "present"
            out["gpus"] = out["gpus"] or 1
    out["present"] = bool(out["driver"] or out["gpus"])
    return out


def _native_library(bnb: Any) -> dict[str, Any]:
    """Which native library bitsandbytes loaded, across 0.32-0.50 (cextension.lib shapes)."""
    info: dict[str, Any] = {"file": None, "loaded": None, "error": None}
    try:
        ext = bnb.cextension
    except AttributeError:
        return info
    lib = getattr(ext, "lib", None)
    if lib is None:  # 0.43.1-0.45: the load failed and lib is None
        info["loaded"] = False
        return info
    if type(lib).__name__ == "ErrorHandlerMockBNBNativeLibrary":  # 0.46+: a deferred error
        info["loaded"] = False
        info["error"] = str(getattr(lib, "error_msg", "") or "")[:400] or None
        return info
    handle = getattr(lib, "_lib", lib)  # 0.43+: BNBNativeLibrary wrapping a ctypes.CDLL
    name = getattr(handle, "_name", None)
    info["file"] = os.path.basename(name) if isinstance(name, str) else None
    info["loaded"] = True
    return info


# --------------------------------------------------------------------------- the checks


def _import_torch(rep: _Report) -> Any:
    rep.step("import torch")
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Failed to initialize NumPy" and friends
            import torch
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            rep.check(
                "import-torch",
                False,
                error=f"torch is not installed in {sys.executable}",
                failure_id="torch-missing",
            )
            return None
        msg = one_line(exc)
        rep.check(
            "import-torch",
            False,
            error=f"import torch failed: {msg}",
            failure_id=classify(str(exc)),
        )
        return None
    except BaseException as exc:  # noqa: BLE001 - OSError on a missing libcudart, anything else
        rep.check(
            "import-torch",
            False,
            error=f"import torch failed: {one_line(exc)}",
            failure_id=classify(str(exc)),
        )
        return None
    ver = getattr(torch, "version", None)
    details = {
        "version": getattr(torch, "__version__", None),
        "cuda": getattr(ver, "cuda", None),
        "hip": getattr(ver, "hip", None),
        "import_s": round(time.perf_counter() - t0, 3),
    }
    rep.data["versions"]["torch"] = details["version"]
    rep.check("import-torch", True, details)
    return torch


def _import_bnb(rep: _Report) -> Any:
    rep.step("import bitsandbytes")
    catcher = _LogCatcher()
    logging.getLogger().addHandler(catcher)
    t0 = time.perf_counter()
    version = _dist_version("bitsandbytes")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import bitsandbytes as bnb
    except ModuleNotFoundError as exc:
        if exc.name == "bitsandbytes":
            rep.check(
                "import-bitsandbytes",
                False,
                error=f"bitsandbytes is not installed in {sys.executable}",
                failure_id="bnb-missing",
            )
            return None
        rep.check(
            "import-bitsandbytes",
            False,
            error=f"import bitsandbytes failed: {one_line(exc)}",
            failure_id=classify(str(exc)),
        )
        return None
    except BaseException as exc:  # noqa: BLE001 - RuntimeError "CUDA Setup failed ..." (<= 0.42)
        rep.check(
            "import-bitsandbytes",
            False,
            error=f"import bitsandbytes failed: {one_line(exc)}",
            failure_id=classify(str(exc)) or classify("\n".join(catcher.messages)),
        )
        return None
    finally:
        logging.getLogger().removeHandler(catcher)
    version = version or getattr(bnb, "__version__", None)
    rep.data["versions"]["bitsandbytes"] = version
    notes: list[str] = []
    for text in [str(w.message) for w in caught] + catcher.messages:
        line = text.strip().splitlines()[0][:300] if text.strip() else ""
        if line and line not in notes and "deprecated" not in line:
            notes.append(line)
    native = _native_library(bnb)
    details = {
        "version": version,
        "native_library": native["file"],
        "native_loaded": native["loaded"],
        "import_s": round(time.perf_counter() - t0, 3),
        "messages": notes[:5],
    }
    if native["error"]:
        details["native_error"] = native["error"]
    rep.check("import-bitsandbytes", True, details)
    rep.bnb_messages = "\n".join(notes + ([native["error"]] if native["error"] else []))
    return bnb


def _check_4bit_api(rep: _Report, bnb: Any) -> bool:
    nn = getattr(bnb, "nn", None)
    fn = getattr(bnb, "functional", None)
    missing = [
        name
        for name, obj in (
            ("bnb.nn.Linear4bit", nn and getattr(nn, "Linear4bit", None)),
            ("bnb.nn.Params4bit", nn and getattr(nn, "Params4bit", None)),
            ("bnb.functional.quantize_4bit", fn and getattr(fn, "quantize_4bit", None)),
            ("bnb.functional.dequantize_4bit", fn and getattr(fn, "dequantize_4bit", None)),
        )
        if obj is None
    ]
    if missing:
        ver = rep.data["versions"].get("bitsandbytes") or "this bitsandbytes"
        rep.check(
            "4bit-api",
            False,
            {"missing": missing},
            error=f"bitsandbytes {ver} has no 4-bit API (no {', '.join(missing)}); "
            "4-bit arrived in bitsandbytes 0.39.0",
            failure_id="bnb-no-4bit",
        )
        return False
    rep.check(
        "4bit-api",
        True,
        {"present": ["Linear4bit", "Params4bit", "quantize_4bit", "dequantize_4bit"]},
    )
    return True


def _cuda_unavailable_reason(
    torch: Any, host: dict[str, Any], messages: str
) -> tuple[str, str | None]:
    """Why torch sees no CUDA device, and the failure class that explains it."""
    ver = torch.__version__
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.version.cuda is None and torch.version.hip is None:
        if host["present"]:
            return f"torch {ver} is a CPU-only build", "torch-cpu-build"
        return (
            f"this host has no NVIDIA driver or GPU (and torch {ver} is a CPU-only build)",
            "no-nvidia-driver",
        )
    said = messages.strip().splitlines()[0][:300] if messages.strip() else ""
    fid = classify(messages)
    if fid is None and not host["present"]:
        fid = "no-nvidia-driver"
        said = said or "this host has no NVIDIA driver or GPU"
    if hidden is not None and hidden.strip() in ("", "-1", "none", "NoDevFiles"):
        said = f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU" + (f"; {said}" if said else "")
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
    return (f"torch {ver} ({build}) sees no usable GPU" + (f": {said}" if said else ""), fid)


def _select_devices(rep: _Report, torch: Any, want: str) -> list[str]:
    """The devices to check; records a `device` check. Empty list: nothing can run."""
    rep.step("select device")
    host = _host_nvidia()
    rep.data["host_nvidia"] = host
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            available = bool(torch.cuda.is_available())
            count = int(torch.cuda.device_count()) if available else 0
            cuda_error = None
        except BaseException as exc:  # noqa: BLE001
            available, count, cuda_error = False, 0, one_line(exc)
    messages = "\n".join([str(w.message) for w in caught] + ([cuda_error] if cuda_error else []))
    details: dict[str, Any] = {
        "requested": want,
        "cuda_available": available,
        "cuda_devices": count,
        "host_nvidia": host,
        "torch_arch_list": None,
    }
    if available and count:
        with contextlib.suppress(Exception):  # informative only
            details["torch_arch_list"] = list(torch.cuda.get_arch_list())
        for i in range(count):
            info: dict[str, Any] = {"device": f"cuda:{i}"}
            try:
                info["name"] = torch.cuda.get_device_name(i)
                major, minor = torch.cuda.get_device_capability(i)
                info["capability"] = f"{major}.{minor}"
                info["sm"] = f"sm_{major}{minor}"
                arch = details["torch_arch_list"]
                if arch:
                    info["in_torch_arch_list"] = info["sm"] in arch
            except BaseException as exc:  # noqa: BLE001
                info["error"] = one_line(exc)
            rep.data["devices"].append(info)
    if want == "cpu":
        rep.data["device"] = "cpu"
        rep.data["gpu_note"] = "--device cpu: the GPU path was not requested"
        rep.check("device", True, dict(details, selected=["cpu"]))
        return ["cpu"]
    if available and count:
        devices = [f"cuda:{i}" for i in range(count)]
        rep.data["device"] = "cuda"
        rep.check("device", True, dict(details, selected=devices))
        return devices
    reason, fid = _cuda_unavailable_reason(torch, host, messages)
    if want == "cuda":
        rep.data["gpu_note"] = reason
        rep.check("device", False, details, error=f"--device cuda: {reason}", failure_id=fid)
        return []
    # auto: the CPU backend. Fine on a host without a GPU; a failure where a GPU is present but
    # torch cannot use it.
    rep.data["device"] = "cpu"
    rep.data["gpu_note"] = reason
    if host["present"]:
        rep.check(
            "device",
            False,
            dict(details, selected=["cpu"]),
            error=f"an NVIDIA GPU is present (driver {host['driver'] or 'loaded'}) but {reason}; "
            "the 4-bit checks ran on the CPU backend only",
            failure_id=fid,
        )
    else:
        rep.check("device", True, dict(details, selected=["cpu"], note=reason))
    return ["cpu"]


def _bnb_native_for_cuda(rep: _Report, bnb: Any) -> None:
    """On a GPU, bitsandbytes must have loaded a CUDA/ROCm library, not the CPU one."""
    native = _native_library(bnb)
    ok = bool(native["loaded"]) and not (native["file"] or "").startswith("libbitsandbytes_cpu")
    if ok:
        rep.check("bnb-native-library", True, {"file": native["file"]})
        return
    said = native["error"] or rep.bnb_messages
    detail = said.strip().splitlines()[0][:300] if said.strip() else ""
    what = (
        f"loaded {native['file']}, not a GPU library"
        if native["loaded"]
        else "did not load its native library"
    )
    fid = classify(said)
    rep.check(
        "bnb-native-library",
        False,
        dict(native),
        error=f"bitsandbytes {what}" + (f": {detail}" if detail else ""),
        failure_id=fid
        if fid in ("cuda-libs-not-found", "bnb-cuda-override")
        else "bnb-no-cuda-lib",
    )


def _compute_dtype(torch: Any, device: str) -> Any:
    """fp32 on the CPU; bf16 on a GPU that supports it (compute capability >= 8.0), else fp16."""
    if device == "cpu":
        return torch.float32
    idx = int(device.split(":")[1])
    major, _ = torch.cuda.get_device_capability(idx)
    return torch.bfloat16 if major >= 8 else torch.float16


def _device_label(rep: _Report, device: str) -> str:
    for info in rep.data["devices"]:
        if info.get("device") == device and info.get("name"):
            return f"{device} ({info['name']}, {info.get('sm', '?')})"
    return device


def _layer_check(rep: _Report, torch: Any, bnb: Any, device: str, quant_type: str) -> None:
    name = f"linear-{quant_type}@{device}"
    rep.step(name)
    details: dict[str, Any] = {
        "device": device,
        "quant_type": quant_type,
        "shape": [LAYER_N, LAYER_K],
        "batch": LAYER_M,
    }
    t0 = time.perf_counter()
    try:
        cdtype = _compute_dtype(torch, device)
        details["compute_dtype"] = str(cdtype).replace("torch.", "")
        on_gpu = device != "cpu"
        # Data on the CPU from a seeded generator: the same numbers on every machine.
        g = torch.Generator().manual_seed(SEED + (0 if quant_type == "nf4" else 1))
        w_full = torch.randn(LAYER_N, LAYER_K, generator=g)
        bias = torch.randn(LAYER_N, generator=g) * 0.1
        x = torch.randn(LAYER_M, LAYER_K, generator=g)
        if on_gpu:
            torch.cuda.synchronize(device)
            mem0 = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            layer = _build_layer(torch, bnb, w_full, bias, cdtype, quant_type)
            layer = layer.to(device).eval()  # the quantization happens here
            if on_gpu:
                torch.cuda.synchronize(device)
                details["cuda_allocated_bytes"] = torch.cuda.memory_allocated(device) - mem0
            t_quant = time.perf_counter()
            weight = layer.weight
            state = weight.quant_state
            packed = _weight_sizes(weight, state, w_full.to(cdtype), details)
            # The reference weights, read back before the forward: on AVX512-BF16 CPUs the first
            # forward repacks the weight in place (bitsandbytes >= 0.49, packing_format_for_cpu).
            deq = bnb.functional.dequantize_4bit(weight.data, state).to("cpu").double()
            xc = x.to(cdtype)
            y = layer(xc.to(device))
            y1 = layer(xc[:1].to(device))  # one row: the inference (gemv) kernel
            if on_gpu:
                torch.cuda.synchronize(device)
        t_fwd = time.perf_counter()
        b64 = bias.to(cdtype).double()
        ref_dq = xc.double() @ deq.t() + b64
        ref_full = x.double() @ w_full.double().t() + bias.double()
        packed_cpu = bool(getattr(weight.quant_state, "packing_format_for_cpu", False))
        kernel_dtype = "bfloat16" if (device == "cpu" and packed_cpu) else details["compute_dtype"]
        tol = DEQUANT_TOL[kernel_dtype]
        lo, hi = FULL_BOUNDS[quant_type]
        errs = {
            "err_vs_dequant": rel_error(y, ref_dq),
            "err_vs_dequant_single": rel_error(y1, ref_dq[:1]),
            "err_vs_full": rel_error(y, ref_full),
            "err_vs_full_single": rel_error(y1, ref_full[:1]),
        }
        details.update({k: float(f"{v:.6g}") for k, v in errs.items()})
        details.update(
            kernel_dtype=kernel_dtype,
            tol_vs_dequant=tol,
            bounds_vs_full=[lo, hi],
            output_dtype=str(y.dtype).replace("torch.", ""),
            quantize_ms=round((t_quant - t0) * 1000, 2),
            forward_ms=round((t_fwd - t_quant) * 1000, 2),
        )
        problems = _layer_problems(weight, state, packed, quant_type, errs, tol, (lo, hi))
        details["time_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if problems:
            rep.check(
                name,
                False,
                details,
                error=f"{quant_type.upper()} layer on {_device_label(rep, device)} gives "
                f"wrong results: " + "; ".join(problems),
            )
        else:
            rep.check(name, True, details)
    except BaseException as exc:  # noqa: BLE001 - any kernel/driver error is a finding
        details["time_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        _layer_failed(rep, bnb, name, details, device, quant_type, exc)


def _weight_sizes(weight: Any, state: Any, w_orig: Any, details: dict[str, Any]) -> int:
    """Record the 4-bit weight's storage against the original's; the packed bytes."""
    packed = int(weight.data.numel() * weight.data.element_size())
    state_bytes = _quant_state_bytes(state)
    original = LAYER_N * LAYER_K * w_orig.element_size()
    details.update(
        weight_class=type(weight).__name__,
        weight_storage_dtype=str(weight.data.dtype).replace("torch.", ""),
        weight_bytes_4bit=packed,
        quant_state_bytes=state_bytes,
        weight_bytes_original=original,
        memory_ratio=round((packed + state_bytes) / original, 4),
    )
    return packed


def _build_layer(torch: Any, bnb: Any, w_full: Any, bias: Any, cdtype: Any, quant_type: str) -> Any:
    """The 4-bit linear layer holding ``w_full`` and ``bias`` (still on the CPU)."""
    layer = bnb.nn.Linear4bit(
        LAYER_K, LAYER_N, bias=True, compute_dtype=cdtype, quant_type=quant_type
    )
    # compress_statistics=True is double quantization, as QLoRA uses it.
    layer.weight = bnb.nn.Params4bit(
        w_full.to(cdtype),
        requires_grad=False,
        quant_type=quant_type,
        compress_statistics=True,
    )
    layer.bias = torch.nn.Parameter(bias.to(cdtype), requires_grad=False)
    return layer


def _layer_problems(
    weight: Any,
    state: Any,
    packed: int,
    quant_type: str,
    errs: dict[str, float],
    tol: float,
    bounds: tuple[float, float],
) -> list[str]:
    """What is wrong with a quantized layer's weight and results (empty: nothing)."""
    lo, hi = bounds
    problems = []
    if type(weight).__name__ != "Params4bit" or not getattr(weight, "bnb_quantized", True):
        problems.append(f"the weight is {type(weight).__name__}, not a quantized Params4bit")
    if packed * 2 != LAYER_N * LAYER_K:
        problems.append(
            f"the 4-bit weight takes {packed} bytes, expected "
            f"{LAYER_N * LAYER_K // 2} (4 bits per value)"
        )
    if getattr(state, "quant_type", quant_type) != quant_type:
        problems.append(f"quant_type is {state.quant_type}, asked for {quant_type}")
    for key in ("err_vs_dequant", "err_vs_dequant_single"):
        if not errs[key] <= tol:
            problems.append(f"{key} {errs[key]:.3g} > {tol:.3g}")
    for key in ("err_vs_full", "err_vs_full_single"):
        if not lo <= errs[key] <= hi:
            problems.append(f"{key} {errs[key]:.3g} outside [{lo}, {hi}]")
    return problems


def _layer_failed(
    rep: _Report,
    bnb: Any,
    name: str,
    details: dict[str, Any],
    device: str,
    quant_type: str,
    exc: BaseException,
) -> None:
    """Report a layer check that raised, with the failure class its error names."""
    msg = one_line(exc)
    fid = classify(str(exc)) or (classify(rep.bnb_messages) if device != "cpu" else None)
    bnb_version = getattr(bnb, "__version__", None) or _dist_version("bitsandbytes") or ""
    if fid is None and device == "cpu" and _older_than(bnb_version, 0, 46):
        fid = "bnb-no-cpu-4bit"  # CPU 4-bit ops first shipped in 0.46.0 (compat-facts C5)
    rep.check(
        name,
        False,
        details,
        error=f"{quant_type.upper()} layer on {_device_label(rep, device)}: {msg}",
        failure_id=fid,
    )


def _older_than(version: str, major: int, minor: int) -> bool:
    """'0.45.5' is older than (0, 46); an unparseable version is not (stdlib only here)."""
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1])) < (major, minor)
    except (IndexError, ValueError):
        return False


def _quant_state_bytes(state: Any) -> int:
    """Bytes of the quantization statistics (absmax, nested absmax, code tables)."""
    total = 0
    for obj in (state, getattr(state, "state2", None)):
        if obj is None:
            continue
        for attr in ("absmax", "code"):
            t = getattr(obj, attr, None)
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
    offset = getattr(state, "offset", None)
    if offset is not None and hasattr(offset, "numel"):
        total += offset.numel() * offset.element_size()
    return total


# --------------------------------------------------------------------------- the tiny model


class _Tiny:
    """A tiny Llama made from a config, saved once, with its full-precision reference logits."""

    def __init__(self, torch: Any, path: str) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        self.path = path
        # Sizes: the smallest Llama that still has grouped-query attention, an MLP and two
        # layers (14 linear layers to quantize). Runs in milliseconds on a CPU.
        config = LlamaConfig(
            vocab_size=TINY_VOCAB,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config).eval()
        g = torch.Generator().manual_seed(SEED)
        self.ids = torch.randint(3, TINY_VOCAB, (1, 8), generator=g)
        with torch.no_grad():
            self.ref_logits = model(self.ids).logits.double()
        self.full_bytes_fp32 = sum(p.numel() * 4 for p in model.parameters())
        self.linear_count = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))
        model.save_pretrained(path)
        del model


def _tiny_model_check(rep: _Report, torch: Any, bnb: Any, tiny: _Tiny, device: str) -> None:
    name = f"tiny-model@{device}"
    rep.step(name)
    import transformers
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    t0 = time.perf_counter()
    details: dict[str, Any] = {
        "device": device,
        "architecture": "LlamaForCausalLM (tiny, from a config)",
    }
    try:
        cdtype = _compute_dtype(torch, device)
        details["compute_dtype"] = str(cdtype).replace("torch.", "")
        model = _load_tiny((AutoModelForCausalLM, BitsAndBytesConfig), tiny, cdtype, device)
        t_load = time.perf_counter()
        linears, four_bit, not_converted = _count_4bit(torch, bnb, model)
        footprint = int(model.get_memory_footprint())
        full = tiny.full_bytes_fp32 // 4 * torch.empty((), dtype=cdtype).element_size()
        details.update(
            linear_layers=linears,
            linear4bit_layers=four_bit,
            not_4bit=not_converted[:8],
            memory_bytes_4bit=footprint,
            memory_bytes_full=full,
            memory_ratio=round(footprint / full, 4),
            load_ms=round((t_load - t0) * 1000, 2),
        )
        with torch.no_grad():
            logits = model(tiny.ids.to(model.device)).logits
            gen = model.generate(
                tiny.ids.to(model.device),
                max_new_tokens=TINY_NEW_TOKENS,
                min_new_tokens=TINY_NEW_TOKENS,
                do_sample=False,
                pad_token_id=0,
            )
        if device != "cpu":
            torch.cuda.synchronize(device)
        err = rel_error(logits, tiny.ref_logits)
        new_tokens = gen.shape[-1] - tiny.ids.shape[-1]
        details.update(
            logits_err_vs_full=float(f"{err:.6g}"),
            logits_bound=MODEL_LOGITS_BOUND,
            generated_tokens=int(new_tokens),
            generated=[int(t) for t in gen[0, tiny.ids.shape[-1] :].tolist()],
            forward_generate_ms=round((time.perf_counter() - t_load) * 1000, 2),
        )
        problems = _tiny_problems(tiny, four_bit, not_converted, err, new_tokens)
        details["time_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if problems:
            rep.check(
                name,
                False,
                details,
                error=f"tiny 4-bit model on {_device_label(rep, device)}: " + "; ".join(problems),
            )
        else:
            rep.check(name, True, details)
    except BaseException as exc:  # noqa: BLE001
        details["time_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        _tiny_failed(rep, transformers.__version__, name, details, device, exc)


def _load_tiny(classes: tuple[Any, Any], tiny: _Tiny, cdtype: Any, device: str) -> Any:
    """The tiny model loaded in NF4 (double quantization) on ``device``, in eval mode.
    ``classes``: transformers' AutoModelForCausalLM and BitsAndBytesConfig, imported by the
    caller before the check starts (an import error is not a check failure)."""
    import transformers

    AutoModelForCausalLM, BitsAndBytesConfig = classes  # noqa: N806 - transformers' names

    qconf = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=cdtype,
        bnb_4bit_use_double_quant=True,
    )
    target = "cpu" if device == "cpu" else int(device.split(":")[1])
    kwargs = {"quantization_config": qconf, "device_map": {"": target}}
    # transformers 4.56 renamed torch_dtype to dtype (5.x warns on the old name).
    kwargs[_dtype_kwarg(transformers.__version__)] = cdtype
    return AutoModelForCausalLM.from_pretrained(tiny.path, **kwargs).eval()


def _count_4bit(torch: Any, bnb: Any, model: Any) -> tuple[int, int, list[str]]:
    """The model's linear layers, how many hold a 4-bit weight, the names of the others."""
    linears, four_bit, not_converted = 0, 0, []
    for mname, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linears += 1
            w: Any = getattr(module, "weight", None)
            if (
                isinstance(module, bnb.nn.Linear4bit)
                and type(w).__name__ == "Params4bit"
                and w.dtype == torch.uint8
            ):
                four_bit += 1
            else:
                not_converted.append(mname)
    return linears, four_bit, not_converted


def _tiny_problems(
    tiny: _Tiny, four_bit: int, not_converted: list[str], err: float, new_tokens: int
) -> list[str]:
    """What is wrong with the tiny model's conversion and results (empty: nothing)."""
    problems = []
    # transformers keeps lm_head in full precision (modules_to_not_convert); every other
    # linear layer must be 4-bit.
    expected = tiny.linear_count - 1
    if four_bit < expected:
        problems.append(
            f"{four_bit} of {expected} linear layers became 4-bit "
            f"(not: {', '.join(not_converted[:4])})"
        )
    if not err <= MODEL_LOGITS_BOUND:
        problems.append(
            f"logits differ from the full-precision model by {err:.3g} (bound {MODEL_LOGITS_BOUND})"
        )
    if new_tokens != TINY_NEW_TOKENS:
        problems.append(f"generated {new_tokens} tokens, asked for {TINY_NEW_TOKENS}")
    return problems


def _tiny_failed(
    rep: _Report,
    transformers_version: str,
    name: str,
    details: dict[str, Any],
    device: str,
    exc: BaseException,
) -> None:
    """Report a tiny-model check that raised, naming a missing accelerate when that is why."""
    fid = classify(str(exc))
    said = one_line(exc)
    if fid == "hf-stack-too-old" and _dist_version("accelerate") is None:
        said = (
            f"transformers {transformers_version} needs accelerate to load a 4-bit "
            f"model and accelerate is not installed ({said})"
        )
    rep.check(
        name,
        False,
        details,
        error=f"tiny 4-bit model on {_device_label(rep, device)}: {said}",
        failure_id=fid,
    )


def _dtype_kwarg(version: str) -> str:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    if m and (int(m.group(1)), int(m.group(2))) >= (4, 56):
        return "dtype"
    return "torch_dtype"


def _import_transformers(rep: _Report) -> Any:
    rep.step("import transformers")
    for var, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_TELEMETRY", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(var, value)  # a model from a config: never the network
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import transformers
            from transformers import BitsAndBytesConfig  # noqa: F401 - 4.30+
    except ModuleNotFoundError as exc:
        # A missing optional package is no failure class (the planner, rightly, reports none
        # for it): only the explicit --model tiny fails here, without a class.
        what = exc.name or "a module"
        rep.check(
            "import-transformers",
            False,
            error=f"--model tiny needs transformers: {what} is not installed "
            f"(use --model auto or none to skip the model)",
        )
        return None
    except BaseException as exc:  # noqa: BLE001
        rep.check(
            "import-transformers",
            False,
            error=f"import transformers failed: {one_line(exc)}",
            failure_id="hf-stack-too-old" if "BitsAndBytesConfig" in str(exc) else None,
        )
        return None
    versions = {"transformers": transformers.__version__, "accelerate": _dist_version("accelerate")}
    rep.data["versions"].update(versions)
    rep.check(
        "import-transformers", True, dict(versions, import_s=round(time.perf_counter() - t0, 3))
    )
    return transformers


# --------------------------------------------------------------------------- main


def _parse(argv: list[str]) -> dict[str, str]:
    opts = {"device": "auto", "model": "none"}
    it = iter(argv)
    for arg in it:
        key = arg.lstrip("-")
        if key in opts:
            opts[key] = next(it, "")
        elif "=" in key and key.split("=", 1)[0] in opts:
            k, v = key.split("=", 1)
            opts[k] = v
    if opts["device"] not in ("auto", "cuda", "cpu") or opts["model"] not in MODELS:
        raise SystemExit(f"usage: script.py --device auto|cuda|cpu --model auto|tiny|none ({argv})")
    return opts


MODELS = ("auto", "tiny", "none")
# What the tiny model needs besides torch and bitsandbytes: transformers, and accelerate, which
# every transformers since 4.30 requires for load_in_4bit (quantizer_bnb_4bit
# validate_environment: "requires accelerate").
MODEL_PACKAGES = ("transformers", "accelerate")


def _model_skip_reason() -> str | None:
    """Why ``--model auto`` skips the tiny model (an optional package is not installed)."""
    import importlib.util

    missing = [m for m in MODEL_PACKAGES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not installed"


def run(rep: _Report, device: str, model: str) -> None:
    """Every check in order; stops early only when nothing after could run."""
    torch = _import_torch(rep)
    if torch is None:
        return
    bnb = _import_bnb(rep)
    if bnb is None or not _check_4bit_api(rep, bnb):
        return
    devices = _select_devices(rep, torch, device)
    if not devices:
        return
    if devices[0] != "cpu":
        _bnb_native_for_cuda(rep, bnb)
        # The references are float64 on the CPU; keep TF32 out of anything computed on the GPU.
        with contextlib.suppress(Exception):
            torch.backends.cuda.matmul.allow_tf32 = False
    for dev in devices:
        for quant_type in ("nf4", "fp4"):
            _layer_check(rep, torch, bnb, dev, quant_type)
        if dev != "cpu":
            rep.data["gpu_exercised"] = True
    if model == "auto":
        skipped = _model_skip_reason()
        rep.data["model_skipped"] = skipped
        if skipped is not None:
            return
        model = "tiny"
    if model == "tiny":
        transformers = _import_transformers(rep)
        if transformers is None:
            return
        import tempfile

        rep.step("build tiny model")
        with tempfile.TemporaryDirectory(prefix="qfix-verify-") as tmp:
            try:
                tiny = _Tiny(torch, tmp)
            except BaseException as exc:  # noqa: BLE001
                rep.check(
                    "tiny-model-build",
                    False,
                    error=f"could not build the tiny model from a config: {one_line(exc)}",
                    failure_id=classify(str(exc)),
                )
                return
            for dev in devices:
                _tiny_model_check(rep, torch, bnb, tiny, dev)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    # Keep the real stdout for the result; everything else that writes to fd 1 (C or Python,
    # bitsandbytes' banner) lands on stderr.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    rep = _Report(sys.stderr)
    try:
        opts = _parse(sys.argv[1:] if argv is None else argv)
        rep.data["requested_device"] = opts["device"]
        rep.data["model"] = opts["model"]
        run(rep, opts["device"], opts["model"])
    except BaseException as exc:  # noqa: BLE001 - a bug here must still end in one document
        rep.check("verify-script", False, error=f"the verify script failed: {one_line(exc)}")
    rep.data["elapsed_s"] = round(time.perf_counter() - t0, 3)
    try:
        doc = json.dumps(rep.data, default=str, allow_nan=False)
    except ValueError:
        doc = json.dumps(_finite(rep.data), default=str)
    os.write(result_fd, f"\n{MARKER}\n{doc}\n".encode())
    return 0


if __name__ == "__main__":
    code = main()
    # Skip interpreter teardown: CUDA/bitsandbytes atexit hooks can hang or crash after the
    # result is written, and nothing of ours needs flushing (the result went out with os.write).
    sys.stderr.flush()
    os._exit(code)
