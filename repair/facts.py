"""The facts of a machine and a Python environment, and their JSON form ``qfix.facts/1``.

Pure data: frozen dataclasses, parsed from and rendered to JSON. Every section may be missing
(None = unknown); the planner lists what it could not know instead of guessing. Parsing is strict
about types (a wrong type names its field) and lenient about what is absent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import jsonload
from .errors import FactsError

SCHEMA = "qfix.facts/1"

# Packages whose versions the target probe always reports (design: "The target environment").
WATCHED_PACKAGES = (
    "torch",
    "torchvision",
    "torchaudio",
    "bitsandbytes",
    "transformers",
    "accelerate",
    "peft",
    "triton",
    "xformers",
    "trl",
    "diffusers",
    "safetensors",
    "ctranslate2",
    # the installer: before 20.3 it cannot read the manylinux_X_Y tags of current wheels (S71),
    # which the plan's first step then upgrades
    "pip",
)
ENV_VARS = (
    "BNB_CUDA_VERSION",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_HOME",
    # set in NVIDIA's CUDA images ("all"); the NVIDIA container runtime reads it (S105)
    "NVIDIA_VISIBLE_DEVICES",
)


@dataclass(frozen=True, slots=True)
class Libstdcxx:
    """The libstdc++ the target process loads (``host.libstdcxx``, measured by the probe)."""

    path: str | None = None  # the file the loader mapped, ".../libstdc++.so.6.0.30"
    glibcxx: str | None = None  # the newest GLIBCXX_ symbol version it defines, "3.4.30"


@dataclass(frozen=True, slots=True)
class Host:
    system: str | None = None  # platform.system(): Linux, Windows, Darwin
    machine: str | None = None  # platform.machine(): x86_64, aarch64, AMD64, arm64
    libc: str | None = None  # "glibc 2.35", "musl", None on Windows/macOS
    wsl: bool | None = None
    os_release: str | None = None  # PRETTY_NAME of /etc/os-release, when known
    l4t: str | None = None  # NVIDIA Jetson: the first line of /etc/nv_tegra_release
    libstdcxx: Libstdcxx | None = None  # measured in the target process (Linux), when known
    # The container qfix runs in: docker | podman | kubernetes | another engine's name from
    # systemd's `container` variable; None: none seen, or not reported (probe/system.py)
    container: str | None = None


@dataclass(frozen=True, slots=True)
class Driver:
    found: bool | None = None
    version: str | None = None  # "535.104.05"
    cuda: str | None = None  # the newest CUDA the driver supports, "12.2"
    source: str | None = None  # nvml | sysfs | procfs | nvidia-smi | report
    error: str | None = None  # why NVML (or every source) failed, when it did
    # Where each fact came from and what each failed source said: ({"source":..,"error":..},...)
    attempts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    name: str | None = None
    compute_capability: str | None = None  # "8.6"
    memory_mib: int | None = None
    mig: bool | None = None
    vendor: str = "nvidia"
    gfx: str | None = None  # an AMD GPU's LLVM target ("gfx1100"), as ROCm's torch reports it

    @property
    def amd(self) -> bool:
        """An AMD GPU: its vendor says so, or its name is one of AMD's (a report without vendor)."""
        return self.vendor == "amd" or gpu_vendor(self.name) == "amd"


# Words only AMD's GPU product names carry ("AMD Radeon RX 6600", "AMD Instinct MI300X", "Radeon
# Pro VII"); NVIDIA's never do. A report's GPU without `vendor` is read by its name.
_AMD_GPU_NAME = re.compile(r"\b(AMD|Radeon|Instinct)\b", re.IGNORECASE)


def gpu_vendor(name: str | None) -> str:
    """The vendor a GPU's name shows: "amd" for AMD's product names, else "nvidia" (the default
    of the facts contract, whose probe reads GPUs through NVML)."""
    return "amd" if name and _AMD_GPU_NAME.search(name) else "nvidia"


@dataclass(frozen=True, slots=True)
class PythonInfo:
    executable: str | None = None
    version: str | None = None  # "3.10.12" (or "3.9" in a report)
    in_venv: bool | None = None
    externally_managed: bool | None = None
    conda: bool | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class TorchBuild:
    version: str | None = None
    cuda: str | None = None  # torch.version.cuda
    hip: str | None = None  # torch.version.hip
    arch_list: tuple[str, ...] | None = None  # torch._C._cuda_getArchFlags(), e.g. ("sm_80",..)
    cuda_available: bool | None = None  # from --deep only
    error: str | None = None  # why the build could not be read (broken install)
    # Whether `cuda`/`hip` were stated at all: a report that names only torch's version says
    # nothing about its build (the probe always states them: null there means a CPU build).
    build_known: bool = True
    # Whether `hip` was stated (null: torch.version.hip is None, not a ROCm build), where a
    # report gives it without `cuda`.
    hip_stated: bool = True


@dataclass(frozen=True, slots=True)
class Bitsandbytes:
    version: str | None = None
    native_libs: tuple[str, ...] | None = None
    copies: int | None = None  # distributions that provide the `bitsandbytes` module
    distributions: tuple[str, ...] = ()  # their names and versions, "bitsandbytes-cuda111 0.26.0"
    loaded: bool | None = None  # from --deep only: the native library loaded
    error: str | None = None
    # built from a source tree or a VCS checkout (PEP 610 direct_url.json: dir_info/vcs_info, or
    # a setuptools egg), not a wheel from an index: a build made for this machine on purpose
    source_build: bool | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything qfix knows about one machine and one Python environment."""

    host: Host | None = None
    driver: Driver | None = None
    gpus: tuple[Gpu, ...] | None = None
    python: PythonInfo | None = None
    packages: Mapping[str, str | None] | None = None
    torch: TorchBuild | None = None
    bitsandbytes: Bitsandbytes | None = None
    env: Mapping[str, str | None] | None = None
    toolkit_nvcc: str | None = None
    # Anything else a probe reported (requirements of other dists on torch, deep probe output).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names_no_package(self) -> bool:
        """The document names neither the packages nor the torch or bitsandbytes build of the
        target (``{"schema": "qfix.facts/1"}``): nothing about the environment to judge."""
        return self.packages is None and self.torch is None and self.bitsandbytes is None

    def package(self, name: str) -> str | None:
        """The installed version of ``name`` (None when absent or unknown)."""
        if self.packages is None:
            return None
        return self.packages.get(name)


def listed_installed(facts: Facts, name: str) -> bool | None:
    """True/False when the package list says; None when unknown. In a report, a package listed
    with a null version is installed (version not reported); in a probe's complete list, null
    means absent."""
    pk = facts.packages
    if pk is not None and pk.get(name):
        return True
    if facts.extra.get("packages_source") == "probe":
        return False
    if pk is not None and name in pk:
        return True
    return None


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Typed access to one JSON object, naming the field path in every error."""

    def __init__(self, data: Mapping[str, Any], path: str, origin: str) -> None:
        self.data = data
        self.path = path
        self.origin = origin

    def fail(self, key: str, expected: str, got: Any) -> FactsError:
        return FactsError(
            f"{self.origin}: field '{self.path}{key}' must be {expected}, got {_short(got)}",
            tip="fix the field or remove it (a missing field means 'unknown')",
        )

    def str_(self, key: str) -> str | None:
        v = self.data.get(key)
        if v is None:
            return None
        if isinstance(v, bool):
            raise self.fail(key, "a string", v)
        if isinstance(v, (int, float)):
            return str(v)  # "cuda": 12.2 in a hand-written file is unambiguous
        if not isinstance(v, str):
            raise self.fail(key, "a string", v)
        return v.strip() or None

    def bool_(self, key: str) -> bool | None:
        v = self.data.get(key)
        if v is None or isinstance(v, bool):
            return v
        raise self.fail(key, "true, false or null", v)

    def int_(self, key: str) -> int | None:
        v = self.data.get(key)
        if v is None:
            return None
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            # an int beyond float's range is no index or size either (math.isfinite overflows)
            or (isinstance(v, int) and abs(v) > 2**53)
            or not math.isfinite(v)
            or int(v) != v
        ):
            raise self.fail(key, "an integer", v)
        return int(v)

    def strs(self, key: str) -> tuple[str, ...] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(key, "a list of strings", v)
        return tuple(v)

    def obj(self, key: str) -> _Reader | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.fail(key, "an object", v)
        return _Reader(v, f"{self.path}{key}.", self.origin)

    def str_map(self, key: str) -> dict[str, str | None] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.fail(key, "an object of strings", v)
        out: dict[str, str | None] = {}
        for k, x in v.items():
            if x is not None and not isinstance(x, str):
                raise self.fail(f"{key}.{k}", "a string or null", x)
            out[str(k)] = x
        return out


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters; a value too big or too deep to print (an
    integer of 5,000 digits, a list nested 10,000 deep) is named by its type instead."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compute_capability(r: _Reader, key: str) -> str | None:
    v = r.data.get(key)
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(v, int) and v > 1000:  # float(10**400) overflows: refuse it as it is
            raise r.fail(key, "a string 'major.minor' such as '8.6'", v)
        if not math.isfinite(v) or v <= 0:
            raise r.fail(key, "a positive 'major.minor' such as '8.6'", v)
        # 8.6 as a number is fine; 86 is ambiguous enough to refuse with a clear message.
        if isinstance(v, float) or v < 20:
            return f"{float(v):.1f}"
        raise r.fail(key, "a string 'major.minor' such as '8.6'", v)
    s = r.str_(key)
    if s is None:
        return None
    s = s.removeprefix("sm_")
    parts = s.split(".")
    if len(parts) == 1 and parts[0].isdigit() and len(parts[0]) in (2, 3):
        return f"{parts[0][:-1]}.{parts[0][-1]}"  # "86" / "sm_86" / "120"
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise r.fail(key, "a string 'major.minor' such as '8.6'", v)
    return f"{int(parts[0])}.{int(parts[1])}"


def facts_from_dict(data: Any, origin: str = "facts") -> Facts:
    """Build Facts from a parsed ``qfix.facts/1`` document; raises FactsError naming the field.

    A support ticket (``{"facts": {...}, "error": "..."}``, as in plans/examples/) is accepted
    too; its error message is kept as ``extra["reported_error"]``.
    """
    reported_error = None
    if isinstance(data, dict) and "facts" in data and isinstance(data["facts"], dict):
        # A ticket: its error message travels with the facts (qfix plan explains it too).
        if isinstance(data.get("error"), str) and data["error"].strip():
            reported_error = data["error"]
        data = data["facts"]
    if not isinstance(data, dict):
        raise FactsError(f"{origin}: a qfix.facts/1 document must be a JSON object")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise FactsError(
            f"{origin}: unknown schema {schema!r} (expected {SCHEMA!r})",
            tip="produce the file with `qfix detect --json`",
        )
    r = _Reader(data, "", origin)
    toolkit = r.obj("toolkit")
    return Facts(
        host=_host(r.obj("host")),
        driver=_driver(r.obj("driver")),
        gpus=_gpus(r, data.get("gpus"), origin),
        python=_python(r.obj("python")),
        packages=r.str_map("packages"),
        torch=_torch(r.obj("torch")),
        bitsandbytes=_bnb(r.obj("bitsandbytes")),
        env=r.str_map("env"),
        toolkit_nvcc=toolkit.str_("nvcc") if toolkit else None,
        extra={k: v for k, v in data.items() if k not in _KNOWN_SECTIONS}
        | ({"reported_error": reported_error} if reported_error else {}),
    )


_KNOWN_SECTIONS = frozenset(
    ("schema", "host", "driver", "gpus", "python", "packages", "torch", "bitsandbytes", "env")
    + ("toolkit",)
)


def _host(h: _Reader | None) -> Host | None:
    if h is None:
        return None
    return Host(
        h.str_("system"),
        h.str_("machine"),
        h.str_("libc"),
        h.bool_("wsl"),
        h.str_("os_release"),
        h.str_("l4t"),
        libstdcxx=_libstdcxx(h.obj("libstdcxx")),
        container=h.str_("container"),
    )


# "3.4", "3.4.30": what a GLIBCXX_ symbol version carries after its prefix.
_GLIBCXX_RE = re.compile(r"^3\.4(?:\.\d{1,3})?$")


def _libstdcxx(r: _Reader | None) -> Libstdcxx | None:
    if r is None:
        return None
    glibcxx = r.str_("glibcxx")
    if glibcxx is not None:
        glibcxx = glibcxx.removeprefix("GLIBCXX_")
        if not _GLIBCXX_RE.match(glibcxx):
            raise r.fail("glibcxx", "a GLIBCXX version such as '3.4.30'", r.data.get("glibcxx"))
    return Libstdcxx(r.str_("path"), glibcxx)


def _driver(d: _Reader | None) -> Driver | None:
    if d is None:
        return None
    attempts_raw = d.data.get("attempts") or []
    if not isinstance(attempts_raw, list) or not all(isinstance(a, dict) for a in attempts_raw):
        raise d.fail("attempts", "a list of objects", attempts_raw)
    return Driver(
        d.bool_("found"),
        d.str_("version"),
        d.str_("cuda"),
        d.str_("source"),
        d.str_("error"),
        tuple(attempts_raw),
    )


def _gpus(r: _Reader, raw_gpus: Any, origin: str) -> tuple[Gpu, ...] | None:
    if raw_gpus is None:
        return None
    if not isinstance(raw_gpus, list):
        raise r.fail("gpus", "a list", raw_gpus)
    items = []
    for i, g in enumerate(raw_gpus):
        if not isinstance(g, dict):
            raise r.fail(f"gpus[{i}]", "an object", g)
        gr = _Reader(g, f"gpus[{i}].", origin)
        index = gr.int_("index")
        items.append(
            Gpu(
                index=i if index is None else index,
                name=gr.str_("name"),
                compute_capability=_compute_capability(gr, "compute_capability"),
                memory_mib=gr.int_("memory_mib"),
                mig=gr.bool_("mig"),
                vendor=gr.str_("vendor") or gpu_vendor(gr.str_("name")),
                gfx=gr.str_("gfx"),
            )
        )
    return tuple(items)


def _python(p: _Reader | None) -> PythonInfo | None:
    if p is None:
        return None
    return PythonInfo(
        p.str_("executable"),
        p.str_("version"),
        p.bool_("in_venv"),
        p.bool_("externally_managed"),
        p.bool_("conda"),
        p.str_("prefix"),
    )


def _torch(t: _Reader | None) -> TorchBuild | None:
    if t is None:
        return None
    return TorchBuild(
        t.str_("version"),
        t.str_("cuda"),
        t.str_("hip"),
        t.strs("arch_list"),
        t.bool_("cuda_available"),
        t.str_("error"),
        # the build is stated by torch.version.cuda (null: a CPU build, where hip is not a ROCm
        # version); a report that gives only "hip": null says "not ROCm", not "not CUDA"
        build_known="cuda" in t.data or bool(t.data.get("hip")),
        hip_stated="hip" in t.data,
    )


def _bnb(b: _Reader | None) -> Bitsandbytes | None:
    if b is None:
        return None
    return Bitsandbytes(
        b.str_("version"),
        b.strs("native_libs"),
        b.int_("copies"),
        b.strs("distributions") or (),
        b.bool_("loaded"),
        b.str_("error"),
        b.bool_("source_build"),
    )


def facts_from_json(text: str, origin: str = "facts") -> Facts:
    """Parse JSON text (bounded: repair.jsonload); malformed, too large or too deeply nested
    JSON is a FactsError with line and column."""
    data = jsonload.loads(text, origin, error=FactsError)
    try:
        return facts_from_dict(data, origin)
    except RecursionError:
        raise FactsError(f"{origin}: a field is nested too deeply to read") from None


# --------------------------------------------------------------------------- rendering


def _torch_dict(t: TorchBuild) -> dict[str, Any]:
    return {
        "version": t.version,
        **({"cuda": t.cuda} if t.build_known else {}),
        **({"hip": t.hip} if t.build_known or t.hip_stated else {}),
        "arch_list": None if t.arch_list is None else list(t.arch_list),
        "cuda_available": t.cuda_available,
        "error": t.error,
    }


def _bnb_dict(b: Bitsandbytes) -> dict[str, Any]:
    return {
        "version": b.version,
        "native_libs": None if b.native_libs is None else list(b.native_libs),
        "copies": b.copies,
        "distributions": list(b.distributions),
        "loaded": b.loaded,
        "error": b.error,
        "source_build": b.source_build,
    }


def facts_to_dict(f: Facts) -> dict[str, Any]:
    """The ``qfix.facts/1`` JSON object (unknown sections are null)."""
    out: dict[str, Any] = {"schema": SCHEMA}
    out["host"] = (
        None
        if f.host is None
        else {
            "system": f.host.system,
            "machine": f.host.machine,
            "libc": f.host.libc,
            "wsl": f.host.wsl,
            "os_release": f.host.os_release,
            "l4t": f.host.l4t,
            "libstdcxx": None
            if f.host.libstdcxx is None
            else {"path": f.host.libstdcxx.path, "glibcxx": f.host.libstdcxx.glibcxx},
            "container": f.host.container,
        }
    )
    out["driver"] = (
        None
        if f.driver is None
        else {
            "found": f.driver.found,
            "version": f.driver.version,
            "cuda": f.driver.cuda,
            "source": f.driver.source,
            "error": f.driver.error,
            "attempts": [dict(a) for a in f.driver.attempts],
        }
    )
    out["gpus"] = (
        None
        if f.gpus is None
        else [
            {
                "index": g.index,
                "name": g.name,
                "compute_capability": g.compute_capability,
                "memory_mib": g.memory_mib,
                "mig": g.mig,
                "vendor": g.vendor,
                **({"gfx": g.gfx} if g.gfx else {}),
            }
            for g in f.gpus
        ]
    )
    out["python"] = (
        None
        if f.python is None
        else {
            "executable": f.python.executable,
            "version": f.python.version,
            "in_venv": f.python.in_venv,
            "externally_managed": f.python.externally_managed,
            "conda": f.python.conda,
            "prefix": f.python.prefix,
        }
    )
    out["packages"] = None if f.packages is None else dict(f.packages)
    out["torch"] = None if f.torch is None else _torch_dict(f.torch)
    out["bitsandbytes"] = None if f.bitsandbytes is None else _bnb_dict(f.bitsandbytes)
    out["env"] = None if f.env is None else dict(f.env)
    out["toolkit"] = {"nvcc": f.toolkit_nvcc}
    for k, v in f.extra.items():
        out.setdefault(k, v)
    return out
