"""The machine under the Python environment: NVIDIA driver, GPUs, host OS, system nvcc.

``probe_driver`` asks NVML first (repair.probe.nvml: in-process, no child, a few ms). Only when
NVML cannot answer does it read the fallbacks, in order: /sys/module/nvidia/version,
/proc/driver/nvidia/version and ``nvidia-smi`` (a child with a short time limit), and on WSL the
NVML library in /usr/lib/wsl/lib. Every source it tried is recorded in ``Driver.attempts`` with what
it gave or why it failed, so the output says where each fact came from.

Nothing here raises for a missing or broken driver: an environment problem is data.
"""

from __future__ import annotations

import csv
import os
import platform
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repair import process
from repair.facts import Driver, Gpu, Host
from repair.probe import nvml

# Where the fallbacks look. Keyword arguments of probe_driver default to these, so tests point
# them at temporary files.
SYSFS_NVIDIA_VERSION = "/sys/module/nvidia/version"  # "535.104.05\n", while the module is loaded
PROCFS_NVIDIA_VERSION = "/proc/driver/nvidia/version"  # "NVRM version: NVIDIA UNIX ... 535.104.05"
NVIDIA_SMI = "nvidia-smi"
PROC_VERSION = "/proc/version"  # WSL kernels say "microsoft" here
WSL_LIB_DIR = "/usr/lib/wsl/lib"  # WSL2 maps the Windows driver's libnvidia-ml.so.1 here
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")  # os-release(5), in this order
CUDA_DEFAULT_HOME = "/usr/local/cuda"

# nvidia-smi can take seconds when a GPU is wedged; NVML already failed by then, so a slow answer
# is worth less than a prompt `qfix detect`.
NVIDIA_SMI_TIMEOUT = 2.0
NVCC_TIMEOUT = 3.0

# Fields of `nvidia-smi --query-gpu`. compute_cap exists since driver 510 (nvidia-smi 470.182.03
# answers 'Field "compute_cap" is not a valid field to query.', huggingface/candle#733) and
# mig.mode.current since 450; a field the tool does not know is dropped and the query repeated.
_SMI_FIELDS = ("index", "name", "compute_cap", "memory.total", "driver_version", "mig.mode.current")
_SMI_OPTIONAL = ("compute_cap", "mig.mode.current")

_VERSION_RE = re.compile(r"\d+\.\d+(?:\.\d+)?")
_CUDA_HEADER_RE = re.compile(r"CUDA Version:\s*(\d+\.\d+)")
_NVCC_RE = re.compile(r"release (\d+\.\d+)")
_INVALID_FIELD_RE = re.compile(r'Field "([^"]+)" is not a valid field to query', re.IGNORECASE)


@dataclass(slots=True)
class _Found:
    """What the sources have given so far, and the record of each attempt."""

    version: str | None = None
    version_source: str | None = None
    cuda: str | None = None
    gpus: tuple[Gpu, ...] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def attempt(
        self, source: str, ok: bool, error: str | None, facts: Sequence[str] = (), **extra: Any
    ) -> None:
        self.attempts.append(
            {"source": source, "ok": ok, "error": error, "facts": list(facts), **extra}
        )

    def take_version(self, version: str | None, source: str) -> bool:
        if version is None or self.version is not None:
            return False
        self.version, self.version_source = version, source
        return True


# --------------------------------------------------------------------------- driver and GPUs


def probe_driver(
    *,
    sysfs_version: str | os.PathLike[str] = SYSFS_NVIDIA_VERSION,
    procfs_version: str | os.PathLike[str] = PROCFS_NVIDIA_VERSION,
    nvidia_smi: str = NVIDIA_SMI,
    nvml_libraries: Sequence[str | None] | None = None,
    wsl: bool | None = None,
    proc_version: str | os.PathLike[str] = PROC_VERSION,
    wsl_lib_dir: str | os.PathLike[str] = WSL_LIB_DIR,
    smi_timeout: float = NVIDIA_SMI_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> tuple[Driver, tuple[Gpu, ...] | None]:
    """The NVIDIA driver and the GPUs it sees; never raises for a missing or broken driver.

    ``gpus`` is None when unknown and ``()`` when the driver reported no GPU. ``Driver.found`` is
    False (with ``Driver.error``) when no source found a driver; ``Driver.error`` also carries
    NVML's reason when a fallback found the driver instead. ``nvml_libraries`` lists the NVML
    libraries to try (None: pynvml's default load, a path: that file); by default the loader's
    ``libnvidia-ml.so.1``, then on WSL ``wsl_lib_dir``'s. ``wsl`` None means detect.
    """
    env = os.environ if environ is None else environ
    if wsl is None:
        wsl = is_wsl(proc_version, env)
    libraries: list[str | None] = [None] if nvml_libraries is None else list(nvml_libraries)
    if nvml_libraries is None and wsl:
        # WSL2 lists /usr/lib/wsl/lib in ld.so.conf.d, but a stale loader cache misses it.
        libraries.append(str(Path(wsl_lib_dir) / nvml.DEFAULT_LIBRARY))

    found = _Found()
    nvml_ok, nvml_error = _read_nvml(found, libraries)

    # NVML failed, or answered without a version: the kernel module says which one is loaded.
    if found.version is None and not _read_sysfs(found, Path(sysfs_version)):
        _read_procfs(found, Path(procfs_version))
    if not nvml_ok:
        # No process while NVML answered: nvidia-smi is NVML's own client and would only be slower.
        _read_nvidia_smi(found, nvidia_smi, wsl, Path(wsl_lib_dir), smi_timeout, env)

    # An initialised NVML proves a loaded driver even if it could not name its version.
    if found.version is None and not nvml_ok:
        errors = [a["error"] for a in found.attempts if a["error"]]
        driver = Driver(
            found=False,
            cuda=found.cuda,
            error="no NVIDIA driver found: " + "; ".join(errors),
            attempts=tuple(found.attempts),
        )
    else:
        driver = Driver(
            found=True,
            version=found.version,
            cuda=found.cuda,
            source=found.version_source,
            error=nvml_error,
            attempts=tuple(found.attempts),
        )
    return driver, found.gpus


def _read_nvml(found: _Found, libraries: Sequence[str | None]) -> tuple[bool, str | None]:
    """Try each NVML library in turn: whether one answered, and NVML's reason when none did."""
    nvml_error = None
    nvml_ok = False
    for library in libraries:
        result = nvml.read(library)
        if isinstance(result, nvml.NvmlUnavailable):
            found.attempt("nvml", False, result.reason, kind=result.kind, library=result.library)
            nvml_error = nvml_error or result.reason
            if result.kind != nvml.LIBRARY_NOT_FOUND:
                break  # the library loaded and answered; another copy of it would say the same
            continue
        nvml_ok = True
        nvml_error = None  # an earlier library was missing, but this one answered
        facts = []
        if found.take_version(result.driver_version, "nvml"):
            facts.append("driver.version")
        if result.cuda is not None:
            found.cuda = result.cuda
            facts.append("driver.cuda")
        if result.gpus is not None:
            found.gpus = result.gpus
            facts.extend(_gpu_facts(result.gpus))
        found.attempt(
            "nvml", True, "; ".join(result.problems) or None, facts, library=result.library
        )
        break
    return nvml_ok, nvml_error


def _gpu_facts(gpus: Sequence[Gpu]) -> list[str]:
    facts = ["gpus"]
    for name in ("compute_capability", "memory_mib", "mig"):
        if gpus and all(getattr(g, name) is not None for g in gpus):
            facts.append(f"gpus.{name}")
    return facts


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it could not be read)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace"), None
    except FileNotFoundError:
        return None, f"{path}: not found"
    except PermissionError:
        return None, f"{path}: permission denied"
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"


def _read_sysfs(found: _Found, path: Path) -> bool:
    text, error = _read_text(path)
    version = None
    if text is not None:
        version = parse_sysfs_version(text)
        if version is None:
            error = f"{path}: not a driver version: {text.strip()[:80]!r}"
    elif error and error.endswith("not found"):
        error += " (the nvidia kernel module is not loaded)"
    ok = found.take_version(version, "sysfs")
    found.attempt("sysfs", ok, error, ["driver.version"] if ok else [], path=str(path))
    return ok


def _read_procfs(found: _Found, path: Path) -> bool:
    text, error = _read_text(path)
    version = None
    if text is not None:
        version = parse_procfs_version(text)
        if version is None:
            error = f"{path}: no 'NVRM version' line with a version"
    ok = found.take_version(version, "procfs")
    found.attempt("procfs", ok, error, ["driver.version"] if ok else [], path=str(path))
    return ok


def parse_sysfs_version(text: str) -> str | None:
    """The content of /sys/module/nvidia/version ("535.104.05\\n") -> "535.104.05"."""
    text = text.strip()
    return text if _VERSION_RE.fullmatch(text) else None


def parse_procfs_version(text: str) -> str | None:
    """The driver version from /proc/driver/nvidia/version.

    Its first line reads "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  <date>", or
    for the open modules "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05
    Release Build ...": the first token that is a version number.
    """
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            for token in line.split():
                if _VERSION_RE.fullmatch(token):
                    return token
    return None


def _find_nvidia_smi(name: str, wsl: bool, wsl_lib_dir: Path, env: Mapping[str, str]) -> str | None:
    if os.sep in name:
        return name if os.path.isfile(name) else None
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None and wsl:
        candidate = wsl_lib_dir / name  # WSL2 ships nvidia-smi beside its NVML, often off PATH
        if candidate.is_file():
            found = str(candidate)
    return found


def _read_nvidia_smi(
    found: _Found,
    name: str,
    wsl: bool,
    wsl_lib_dir: Path,
    timeout: float,
    env: Mapping[str, str],
) -> None:
    exe = _find_nvidia_smi(name, wsl, wsl_lib_dir, env)
    if exe is None:
        found.attempt("nvidia-smi", False, f"{name}: not found on PATH")
        return
    deadline = time.monotonic() + timeout
    fields = list(_SMI_FIELDS)
    notes: list[str] = []
    gpus: tuple[Gpu, ...] | None = None
    version = None
    while True:
        argv = [exe, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]
        done, error = _run_smi(argv, deadline)
        if done is None:
            found.attempt("nvidia-smi", False, error, path=exe)
            return
        output = done.stdout + done.stderr
        invalid = _INVALID_FIELD_RE.search(output)
        if invalid and invalid.group(1) in _SMI_OPTIONAL and invalid.group(1) in fields:
            fields.remove(invalid.group(1))
            notes.append(f"this nvidia-smi has no '{invalid.group(1)}' field")
            continue
        if not done.ok:
            if "No devices were found" in output:
                gpus = ()
                notes.append("nvidia-smi: No devices were found")
                break
            found.attempt("nvidia-smi", False, _first_line(output, done.returncode), path=exe)
            return
        gpus, version, bad = parse_smi_csv(done.stdout, fields)
        if bad:
            notes.append(f"unreadable line: {bad!r}")
        break

    facts = []
    if found.take_version(version, "nvidia-smi"):
        facts.append("driver.version")
    if gpus is not None and found.gpus is None:
        found.gpus = gpus
        facts.extend(_gpu_facts(gpus))
    if found.cuda is None and gpus != ():
        # The CUDA version is in the table header only (no --query-gpu field has it).
        done, error = _run_smi([exe], deadline)
        cuda = None
        if done is not None:
            match = _CUDA_HEADER_RE.search(done.stdout)
            cuda = match.group(1) if match else None
            if cuda is None:
                error = "no 'CUDA Version' in the nvidia-smi header"
        if cuda is not None:
            found.cuda = cuda
            facts.append("driver.cuda")
        elif error:
            notes.append(error)
    found.attempt("nvidia-smi", True, "; ".join(notes) or None, facts, path=exe)


def _run_smi(argv: list[str], deadline: float) -> tuple[process.Completed | None, str | None]:
    left = deadline - time.monotonic()
    if left <= 0.05:
        return None, f"{argv[0]}: no time left within {NVIDIA_SMI_TIMEOUT:g} s"
    try:
        done = process.run(argv, timeout=left)
    except process.ProcessFailure as exc:
        return None, str(exc)
    if done.timed_out:
        return None, f"{argv[0]} did not answer within {left:.1f} s"
    return done, None


def _first_line(output: str, returncode: int) -> str:
    for line in output.splitlines():
        if line.strip():
            return f"nvidia-smi failed (exit {returncode}): {line.strip()}"
    return f"nvidia-smi failed (exit {returncode}) without a message"


def parse_smi_csv(
    text: str, fields: Sequence[str]
) -> tuple[tuple[Gpu, ...], str | None, str | None]:
    """GPUs from ``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` output.

    Returns (gpus, driver version, the first line it could not read or None). Values such as
    "[N/A]" or "[Not Supported]" become None.
    """
    gpus: list[Gpu] = []
    version = None
    bad = None
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(fields):
            bad = bad or ", ".join(row)
            continue
        cells = {f: _smi_value(v) for f, v in zip(fields, row, strict=True)}
        index = _int_or_none(cells.get("index"))
        if index is None:
            bad = bad or ", ".join(row)
            continue
        mig_text = cells.get("mig.mode.current")
        gpus.append(
            Gpu(
                index=index,
                name=cells.get("name"),
                compute_capability=_capability(cells.get("compute_cap")),
                memory_mib=_int_or_none(cells.get("memory.total")),
                mig=None if mig_text is None else mig_text.lower() == "enabled",
            )
        )
        version = version or cells.get("driver_version")
    return tuple(gpus), version, bad


def _smi_value(value: str) -> str | None:
    value = value.strip()
    if not value or (value.startswith("[") and value.endswith("]")) or value == "N/A":
        return None
    return value


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _capability(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split(".")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return f"{int(parts[0])}.{int(parts[1])}"
    return None


# --------------------------------------------------------------------------- host


def is_wsl(
    proc_version: str | os.PathLike[str] = PROC_VERSION, environ: Mapping[str, str] | None = None
) -> bool:
    """Windows Subsystem for Linux: its kernels name Microsoft in /proc/version.

    WSL2 kernels read "...-microsoft-standard-WSL2", WSL1 "...-Microsoft"; WSL shells also set
    WSL_DISTRO_NAME.
    """
    env = os.environ if environ is None else environ
    if env.get("WSL_DISTRO_NAME"):
        return True
    text, _ = _read_text(Path(proc_version))
    return text is not None and "microsoft" in text.lower()


NV_TEGRA_RELEASE = "/etc/nv_tegra_release"  # NVIDIA Jetson (L4T): "# R36 (release), REVISION: 4.3"


def read_l4t(path: str | os.PathLike[str] = NV_TEGRA_RELEASE) -> str | None:
    """The L4T release line of a Jetson board, or None elsewhere (NVML does not run there)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            line = fh.readline().strip().lstrip("#").strip()
    except OSError:
        return None
    return line or None


# What each engine leaves in its containers (S105), and the hosted notebooks' variables (S115:
# public code tells Colab by COLAB_RELEASE_TAG or COLAB_GPU, Kaggle by KAGGLE_KERNEL_RUN_TYPE).
# Docker creates /.dockerenv (moby's daemon/initlayer), Podman /run/.containerenv
# (podman-run(1)); Kubernetes sets KUBERNETES_SERVICE_HOST in every pod; systemd's container
# interface names the engine in `container` (podman, lxc, systemd-nspawn, ...).
DOCKERENV = "/.dockerenv"
CONTAINERENV = "/run/.containerenv"


def container_kind(
    environ: Mapping[str, str] | None = None,
    dockerenv: str | os.PathLike[str] = DOCKERENV,
    containerenv: str | os.PathLike[str] = CONTAINERENV,
) -> str | None:
    """The container engine this process runs under, or None where none leaves a mark."""
    env = os.environ if environ is None else environ
    # hosted notebooks first: they may run under an engine, but give a GPU their own way (S115)
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU") is not None:
        return "colab"
    if env.get("KAGGLE_KERNEL_RUN_TYPE"):
        return "kaggle"
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"  # first: a pod on a node with Docker's runtime has /.dockerenv too
    if os.path.exists(dockerenv):
        return "docker"
    if os.path.exists(containerenv):
        return "podman"
    named = (env.get("container") or "").strip()
    return named[:40] or None


def probe_host(
    *,
    os_release: Sequence[str | os.PathLike[str]] = OS_RELEASE,
    proc_version: str | os.PathLike[str] = PROC_VERSION,
    environ: Mapping[str, str] | None = None,
    nv_tegra_release: str | os.PathLike[str] = NV_TEGRA_RELEASE,
    dockerenv: str | os.PathLike[str] = DOCKERENV,
    containerenv: str | os.PathLike[str] = CONTAINERENV,
) -> Host:
    """The OS, CPU architecture, C library, WSL, distribution and container of the machine qfix
    runs on."""
    system = platform.system() or None
    machine = platform.machine() or None
    if system != "Linux":
        return Host(system=system, machine=machine, libc=None, wsl=False, os_release=None)
    return Host(
        system=system,
        machine=machine,
        libc=libc_name(),
        wsl=is_wsl(proc_version, environ),
        os_release=read_os_release(os_release),
        l4t=read_l4t(nv_tegra_release),
        container=container_kind(environ, dockerenv, containerenv),
    )


def libc_name() -> str | None:
    """ "glibc 2.35", "musl", or None when unknown."""
    try:
        # "glibc 2.35"; glibc answers, musl has no such name (ValueError/OSError).
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        value = None
    if value:
        return value
    libc, version = platform.libc_ver()
    if libc:
        return f"{libc} {version}".strip()
    # musl: CPython's own build triplet names it ("x86_64-pc-linux-musl"), and musl's dynamic
    # loader is /lib/ld-musl-<arch>.so.1 (the test packaging uses for musllinux tags).
    import sysconfig

    for var in ("HOST_GNU_TYPE", "MULTIARCH", "SOABI"):
        if "musl" in str(sysconfig.get_config_var(var) or ""):
            return "musl"
    if any(Path("/lib").glob("ld-musl-*.so.1")):
        return "musl"
    return None


def read_os_release(paths: Sequence[str | os.PathLike[str]] = OS_RELEASE) -> str | None:
    """PRETTY_NAME from the first os-release(5) file that exists ("Ubuntu 22.04.3 LTS")."""
    for path in paths:
        text, _ = _read_text(Path(path))
        if text is None:
            continue
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key == "PRETTY_NAME":
                return _unquote(value) or None
        return None
    return None


def _unquote(value: str) -> str:
    # os-release values use shell quoting; in double quotes \ escapes $ " \ and `.
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        if value[0] == '"':
            inner = re.sub(r'\\([$"\\`])', r"\1", inner)
        return inner
    return value


# --------------------------------------------------------------------------- system CUDA toolkit


def probe_nvcc(*, environ: Mapping[str, str] | None = None) -> str | None:
    """The release of the system CUDA compiler ("11.3"), or None when there is none.

    Looked up the way torch.utils.cpp_extension._find_cuda_home does (it decides which nvcc a
    source build uses): $CUDA_HOME (or $CUDA_PATH), then nvcc on PATH, then /usr/local/cuda.
    """
    env = os.environ if environ is None else environ
    for exe in _nvcc_candidates(env):
        try:
            done = process.run([exe, "--version"], timeout=NVCC_TIMEOUT)
        except process.ProcessFailure:
            continue
        if done.ok and (match := _NVCC_RE.search(done.stdout)):
            return match.group(1)
    return None


def _nvcc_candidates(env: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = env.get(var)
        if home:
            found.append(os.path.join(home, "bin", "nvcc"))
    on_path = shutil.which("nvcc", path=env.get("PATH", os.defpath))
    if on_path:
        found.append(on_path)
    found.append(os.path.join(CUDA_DEFAULT_HOME, "bin", "nvcc"))
    seen: set[str] = set()
    out = []
    for exe in found:
        if exe not in seen and os.path.isfile(exe) and os.access(exe, os.X_OK):
            seen.add(exe)
            out.append(exe)
    return out
