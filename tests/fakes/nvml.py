"""The fake NVML (fake_nvml.c): build it with gcc, write its config, run a probe against it.

The fake is a real shared library named libnvidia-ml.so.1. A child process that has its folder on
LD_LIBRARY_PATH loads it through nvidia-ml-py exactly as it would load the driver's NVML, so the
real pynvml code path runs. Builds are cached by the hash of the source, the flags and the
compiler, under <repo>/.cache/fake_nvml (QFIX_FAKE_NVML_CACHE moves it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("fake_nvml.c")
CACHE = Path(os.environ.get("QFIX_FAKE_NVML_CACHE", REPO / ".cache" / "fake_nvml"))
LIBRARY_NAME = "libnvidia-ml.so.1"

# Functions an older driver's NVML lacks; each drops one symbol from the build (fake_nvml.c).
NO_CUDA_V2 = "NO_CUDA_V2"  # nvmlSystemGetCudaDriverVersion_v2
NO_CUDA_V1 = "NO_CUDA_V1"  # nvmlSystemGetCudaDriverVersion
NO_COMPUTE_CAPABILITY = "NO_COMPUTE_CAPABILITY"  # nvmlDeviceGetCudaComputeCapability
NO_MIG = "NO_MIG"  # nvmlDeviceGetMigMode
NO_INIT_WITH_FLAGS = "NO_INIT_WITH_FLAGS"  # nvmlInitWithFlags


class CompilerMissing(RuntimeError):
    """No C compiler here: the tests that need the fake are skipped, saying so."""


def build(*missing: str) -> Path:
    """The folder holding libnvidia-ml.so.1 built without the ``missing`` functions."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise CompilerMissing("no gcc/cc on PATH to build tests/fakes/fake_nvml.c")
    flags = [
        "-shared",
        "-fPIC",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-Wl,-soname,{LIBRARY_NAME}",
        *(f"-D{m}" for m in sorted(missing)),
    ]
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update("\0".join([os.path.realpath(gcc), *flags]).encode())
    out_dir = CACHE / key.hexdigest()[:16]
    lib = out_dir / LIBRARY_NAME
    if lib.is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    # Compile beside the target and rename: parallel test runs never see half a library.
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        done = subprocess.run(
            [gcc, *flags, "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the fake NVML failed:\n{done.stderr}")
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_dir


@dataclass(frozen=True)
class FakeGpu:
    name: str
    major: int
    minor: int
    memory_mib: int
    mig: bool | None = None  # None: the GPU has no MIG (NVML_ERROR_NOT_SUPPORTED)

    def line(self) -> str:
        mig = "na" if self.mig is None else str(int(self.mig))
        return f"gpu={self.name}|{self.major}|{self.minor}|{self.memory_mib}|{mig}"


@dataclass(frozen=True)
class FakeNvml:
    """One machine as the fake NVML describes it (see fake_nvml.c for the format)."""

    driver: str | None = None
    cuda: int | None = None  # NVML's integer: 12020 for CUDA 12.2
    gpus: Sequence[FakeGpu] = ()
    init_error: str | None = None  # "NVML_ERROR_DRIVER_NOT_LOADED"
    fails: Mapping[str, str] = field(default_factory=dict)  # function -> NVML_ERROR_*

    def text(self) -> str:
        lines = ["# written by tests/fakes/nvml.py"]
        if self.driver is not None:
            lines.append(f"driver={self.driver}")
        if self.cuda is not None:
            lines.append(f"cuda={self.cuda}")
        if self.init_error is not None:
            lines.append(f"init_error={self.init_error}")
        lines += [f"fail={fn}:{code}" for fn, code in self.fails.items()]
        lines += [g.line() for g in self.gpus]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        path.write_text(self.text(), encoding="utf-8")
        return path


# The child: run probe_driver with keyword arguments from argv[1], print qfix.facts/1 JSON of the
# driver and GPUs, plus how long the probe took.
_CHILD = """
import json, sys, time
from repair.facts import Facts, facts_to_dict
from repair.probe.system import probe_driver
kwargs = json.loads(sys.argv[1])
start = time.perf_counter()
driver, gpus = probe_driver(**kwargs)
elapsed = time.perf_counter() - start
out = facts_to_dict(Facts(driver=driver, gpus=gpus))
out["probe_seconds"] = elapsed
print(json.dumps(out))
"""

# Variables that would let the parent's machine leak into the child's answer.
_SCRUB = ("LD_LIBRARY_PATH", "LD_PRELOAD", "FAKE_NVML_CONFIG", "WSL_DISTRO_NAME", "CUDA_HOME")


def probe_in_child(
    kwargs: Mapping[str, Any],
    *,
    lib_dir: Path | None = None,
    config: Path | None = None,
    path: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Run ``probe_driver(**kwargs)`` in a fresh interpreter; returns its JSON.

    ``lib_dir`` goes on LD_LIBRARY_PATH (the fake NVML), ``config`` into FAKE_NVML_CONFIG, and
    PATH is exactly ``path`` (so no real nvidia-smi of the host can answer).
    """
    child_env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    child_env["PATH"] = os.pathsep.join(str(p) for p in path)
    child_env["PYTHONPATH"] = str(REPO)
    if lib_dir is not None:
        child_env["LD_LIBRARY_PATH"] = str(lib_dir)
    if config is not None:
        child_env["FAKE_NVML_CONFIG"] = str(config)
    child_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(dict(kwargs))],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=child_env,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"probe child failed (exit {done.returncode}):\n{done.stderr}\n{done.stdout}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    result["stderr"] = done.stderr
    return result
