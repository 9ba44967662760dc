"""The driver/GPU/host probes (repair.probe.system, repair.probe.nvml).

NVML scenarios load the fake libnvidia-ml.so.1 (tests/fakes/fake_nvml.c) through the real
nvidia-ml-py in a child process; the fallbacks read temporary files standing in for /sys and /proc
and run a fake ``nvidia-smi`` on a temporary PATH. Each child sees only what the test gives it
(tests/fakes/nvml.probe_in_child), so the host's own driver, if any, never answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repair.facts import facts_from_dict
from repair.probe import system
from repair.probe.nvml import cuda_version_string
from tests.fakes import nvml as fake
from tests.fakes.nvml import FakeGpu, FakeNvml

# --------------------------------------------------------------------------- helpers


def build_variant(*missing: str) -> Path:
    try:
        return fake.build(*missing)
    except fake.CompilerMissing as exc:
        pytest.skip(str(exc))


def hermetic(tmp: Path, **over: Any) -> dict[str, Any]:
    """probe_driver kwargs that point every fallback at (absent) files under ``tmp``."""
    kwargs: dict[str, Any] = {
        "sysfs_version": str(tmp / "sys" / "module" / "nvidia" / "version"),
        "procfs_version": str(tmp / "proc" / "driver" / "nvidia" / "version"),
        "proc_version": str(tmp / "proc" / "version"),
        "wsl_lib_dir": str(tmp / "wsl" / "lib"),
        "wsl": False,
    }
    kwargs.update(over)
    return kwargs


def no_nvml(tmp: Path) -> list[str]:
    """An NVML library path that does not exist: a real dlopen failure, on any host."""
    return [str(tmp / "no-driver" / "libnvidia-ml.so.1")]


def run_fake(tmp: Path, machine: FakeNvml, lib: Path, **kwargs: Any) -> dict[str, Any]:
    config = machine.write(tmp / "nvml.conf")
    path = kwargs.pop("path", ())
    return fake.probe_in_child(hermetic(tmp, **kwargs), lib_dir=lib, config=config, path=path)


def gpus_of(out: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (g["index"], g["name"], g["compute_capability"], g["memory_mib"], g["mig"])
        for g in out["gpus"]
    ]


def attempt(out: dict[str, Any], source: str) -> dict[str, Any]:
    found = [a for a in out["driver"]["attempts"] if a["source"] == source]
    assert len(found) == 1, out["driver"]["attempts"]
    result: dict[str, Any] = found[0]
    return result


def sources(out: dict[str, Any]) -> list[str]:
    return [a["source"] for a in out["driver"]["attempts"]]


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def system_nvml_loads() -> bool:
    """Whether this host has a real NVML on the loader path (a GPU machine)."""
    code = "import ctypes; ctypes.CDLL('libnvidia-ml.so.1')"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    return (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0
    )


# --------------------------------------------------------------------------- NVML scenarios

A10G = FakeGpu("NVIDIA A10G", 8, 6, 23028)
T4 = FakeGpu("Tesla T4", 7, 5, 15360)
H100 = FakeGpu("NVIDIA H100 80GB HBM3", 9, 0, 81559, mig=False)
RTX4090 = FakeGpu("NVIDIA GeForce RTX 4090", 8, 9, 24564)
GTX1080TI = FakeGpu("NVIDIA GeForce GTX 1080 Ti", 6, 1, 11264)
A100_MIG = FakeGpu("NVIDIA A100-SXM4-80GB", 8, 0, 81920, mig=True)


@pytest.mark.parametrize(
    ("machine", "version", "cuda", "gpus"),
    [
        pytest.param(
            FakeNvml("470.182.03", 11040, [A10G]),
            "470.182.03",
            "11.4",
            [(0, "NVIDIA A10G", "8.6", 23028, False)],
            id="470-cuda11.4-A10G",
        ),
        pytest.param(
            FakeNvml("535.104.05", 12020, [T4]),
            "535.104.05",
            "12.2",
            [(0, "Tesla T4", "7.5", 15360, False)],
            id="535-cuda12.2-T4",
        ),
        pytest.param(
            FakeNvml("580.65.06", 13000, [H100, H100]),
            "580.65.06",
            "13.0",
            [
                (0, "NVIDIA H100 80GB HBM3", "9.0", 81559, False),
                (1, "NVIDIA H100 80GB HBM3", "9.0", 81559, False),
            ],
            id="580-cuda13.0-2xH100",
        ),
        pytest.param(
            FakeNvml("550.54.15", 12040, [RTX4090, GTX1080TI]),
            "550.54.15",
            "12.4",
            [
                (0, "NVIDIA GeForce RTX 4090", "8.9", 24564, False),
                (1, "NVIDIA GeForce GTX 1080 Ti", "6.1", 11264, False),
            ],
            id="mixed-4090-1080Ti",
        ),
        pytest.param(
            FakeNvml("535.129.03", 12020, [A100_MIG]),
            "535.129.03",
            "12.2",
            [(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, True)],
            id="A100-MIG",
        ),
        pytest.param(
            FakeNvml("535.104.05", 12020, []),
            "535.104.05",
            "12.2",
            [],
            id="driver-without-gpus",
        ),
    ],
)
def test_nvml_scenarios(
    tmp_path: Path,
    lib_dir: Path,
    machine: FakeNvml,
    version: str,
    cuda: str,
    gpus: list[tuple[Any, ...]],
) -> None:
    out = run_fake(tmp_path, machine, lib_dir)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["cuda"]) == (True, version, cuda)
    assert driver["source"] == "nvml"
    assert driver["error"] is None
    assert gpus_of(out) == gpus
    # NVML answered, so no fallback was even tried.
    assert sources(out) == ["nvml"]
    nvml = attempt(out, "nvml")
    assert nvml["ok"] is True and nvml["error"] is None
    assert {"driver.version", "driver.cuda", "gpus"} <= set(nvml["facts"])
    assert nvml["library"] == "libnvidia-ml.so.1"
    # What the child printed is valid qfix.facts/1 and reads back the same.
    facts = facts_from_dict({k: v for k, v in out.items() if k not in ("probe_seconds", "stderr")})
    assert facts.driver is not None and facts.driver.version == version
    assert facts.gpus is not None and len(facts.gpus) == len(gpus)


def test_nvml_missing_cuda_v2_uses_older_function(tmp_path: Path) -> None:
    # NVML before nvmlSystemGetCudaDriverVersion_v2: pynvml's symbol lookup fails for real.
    lib = build_variant(fake.NO_CUDA_V2)
    out = run_fake(tmp_path, FakeNvml("450.51.06", 11000, [T4]), lib)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["cuda"]) == (True, "450.51.06", "11.0")
    assert driver["source"] == "nvml"
    assert gpus_of(out) == [(0, "Tesla T4", "7.5", 15360, False)]
    nvml = attempt(out, "nvml")
    assert nvml["ok"] is True
    assert "nvmlSystemGetCudaDriverVersion_v2" in nvml["error"]
    assert "function missing" in nvml["error"]
    assert "driver.cuda" in nvml["facts"]


def test_nvml_missing_both_cuda_functions(tmp_path: Path) -> None:
    lib = build_variant(fake.NO_CUDA_V2, fake.NO_CUDA_V1)
    out = run_fake(tmp_path, FakeNvml("396.44", 9020, [GTX1080TI]), lib)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["cuda"]) == (True, "396.44", None)
    assert gpus_of(out) == [(0, "NVIDIA GeForce GTX 1080 Ti", "6.1", 11264, False)]
    nvml = attempt(out, "nvml")
    assert "nvmlSystemGetCudaDriverVersion_v2" in nvml["error"]
    assert "nvmlSystemGetCudaDriverVersion:" in nvml["error"]
    assert "driver.cuda" not in nvml["facts"]
    assert sources(out) == ["nvml"]  # no nvidia-smi run for a missing CUDA version


def test_nvml_missing_compute_capability_and_mig(tmp_path: Path) -> None:
    lib = build_variant(fake.NO_COMPUTE_CAPABILITY, fake.NO_MIG)
    out = run_fake(tmp_path, FakeNvml("418.67", 10010, [T4]), lib)
    assert out["driver"]["cuda"] == "10.1"
    assert gpus_of(out) == [(0, "Tesla T4", None, 15360, None)]
    nvml = attempt(out, "nvml")
    assert "GPU 0: nvmlDeviceGetCudaComputeCapability: function missing" in nvml["error"]
    assert "GPU 0: nvmlDeviceGetMigMode: function missing" in nvml["error"]
    assert "gpus.compute_capability" not in nvml["facts"]
    assert "gpus.memory_mib" in nvml["facts"]


def test_nvml_one_gpu_unreadable(tmp_path: Path, lib_dir: Path) -> None:
    machine = FakeNvml(
        "535.104.05", 12020, [T4, T4], fails={"nvmlDeviceGetName": "NVML_ERROR_GPU_IS_LOST"}
    )
    out = run_fake(tmp_path, machine, lib_dir)
    assert out["driver"]["found"] is True
    assert gpus_of(out) == [(0, None, "7.5", 15360, False), (1, None, "7.5", 15360, False)]
    assert "GPU 1: nvmlDeviceGetName: GPU is lost" in attempt(out, "nvml")["error"]


def test_nvml_device_count_fails(tmp_path: Path, lib_dir: Path) -> None:
    machine = FakeNvml(
        "535.104.05", 12020, [T4], fails={"nvmlDeviceGetCount_v2": "NVML_ERROR_NO_PERMISSION"}
    )
    out = run_fake(tmp_path, machine, lib_dir)
    assert out["driver"]["version"] == "535.104.05"
    assert out["gpus"] is None  # unknown, not "no GPU"
    assert "nvmlDeviceGetCount: Insufficient Permissions" in attempt(out, "nvml")["error"]


@pytest.mark.parametrize(
    ("init_error", "kind", "words"),
    [
        ("NVML_ERROR_DRIVER_NOT_LOADED", "driver-not-loaded", "driver is not loaded"),
        ("NVML_ERROR_NO_PERMISSION", "no-permission", "insufficient permissions"),
        ("NVML_ERROR_NOT_FOUND", "no-device", "no NVIDIA GPU found"),
        ("NVML_ERROR_LIB_RM_VERSION_MISMATCH", "version-mismatch", "reboot"),
        ("NVML_ERROR_UNKNOWN", "other", "Unknown Error"),
    ],
)
def test_nvml_init_failure_is_classified(
    tmp_path: Path, lib_dir: Path, init_error: str, kind: str, words: str
) -> None:
    out = run_fake(tmp_path, FakeNvml("535.104.05", 12020, [T4], init_error=init_error), lib_dir)
    driver = out["driver"]
    assert driver["found"] is False
    assert driver["version"] is None and driver["cuda"] is None and driver["source"] is None
    assert out["gpus"] is None
    assert words in driver["error"]
    nvml = attempt(out, "nvml")
    assert (nvml["ok"], nvml["kind"], nvml["facts"]) == (False, kind, [])
    assert words in nvml["error"]
    # Every fallback was tried and says why it gave nothing.
    assert sources(out) == ["nvml", "sysfs", "procfs", "nvidia-smi"]
    assert "not found" in attempt(out, "sysfs")["error"]
    assert "not found on PATH" in attempt(out, "nvidia-smi")["error"]


def test_nvml_without_init_function(tmp_path: Path) -> None:
    # A driver whose NVML predates nvmlInitWithFlags, which nvidia-ml-py's init calls.
    lib = build_variant(fake.NO_INIT_WITH_FLAGS)
    out = run_fake(tmp_path, FakeNvml("384.81", 9000, [GTX1080TI]), lib)
    nvml = attempt(out, "nvml")
    assert nvml["kind"] == "function-missing"
    assert "older" in nvml["error"]
    assert out["driver"]["found"] is False


def test_nvml_library_not_found(tmp_path: Path) -> None:
    out = fake.probe_in_child(hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path)))
    driver = out["driver"]
    assert driver["found"] is False
    assert out["gpus"] is None
    nvml = attempt(out, "nvml")
    assert nvml["kind"] == "library-not-found"
    # The loader's own message survives (pynvml would have swallowed it).
    assert "cannot open shared object file" in nvml["error"]
    assert driver["error"].startswith("no NVIDIA driver found: NVML library not found")
    assert sources(out) == ["nvml", "sysfs", "procfs", "nvidia-smi"]


def test_real_default_load_on_this_host(tmp_path: Path) -> None:
    """No fake anywhere: what this host's own loader finds (nothing on the dev machine)."""
    out = fake.probe_in_child(hermetic(tmp_path))
    nvml = out["driver"]["attempts"][0]
    assert nvml["source"] == "nvml"
    if system_nvml_loads():
        assert nvml.get("kind") != "library-not-found"
    else:
        assert nvml["kind"] == "library-not-found"
        assert "libnvidia-ml.so.1" in nvml["error"]
        assert out["driver"]["found"] is False
        assert sources(out) == ["nvml", "sysfs", "procfs", "nvidia-smi"]
        assert all(a["ok"] is False and a["error"] for a in out["driver"]["attempts"])


def test_no_nvidia_smi_when_nvml_answers(tmp_path: Path, lib_dir: Path) -> None:
    marker = tmp_path / "smi-ran"
    smi = write(tmp_path / "bin" / "nvidia-smi", f"#!/bin/sh\necho ran > {marker}\n", 0o755)
    out = run_fake(tmp_path, FakeNvml("535.104.05", 12020, [T4]), lib_dir, path=[smi.parent])
    assert out["driver"]["source"] == "nvml"
    assert not marker.exists()


def test_probe_reads_eight_gpus(tmp_path: Path, lib_dir: Path) -> None:
    out = run_fake(tmp_path, FakeNvml("580.65.06", 13000, [H100] * 8), lib_dir)
    assert len(out["gpus"]) == 8  # (speed is measured by bench/bench_cli.py, not asserted)


# --------------------------------------------------------------------------- WSL


def test_wsl_nvml_from_wsl_lib_dir(tmp_path: Path, lib_dir: Path) -> None:
    if system_nvml_loads():
        pytest.skip("this host's own NVML loads first, so the WSL fallback is never needed")
    wsl_lib = tmp_path / "wsl" / "lib"
    wsl_lib.mkdir(parents=True)
    (wsl_lib / "libnvidia-ml.so.1").symlink_to(lib_dir / "libnvidia-ml.so.1")
    write(tmp_path / "proc" / "version", "Linux version 5.15.153.1-microsoft-standard-WSL2\n")
    config = FakeNvml("560.94", 12060, [RTX4090]).write(tmp_path / "nvml.conf")
    kwargs = hermetic(tmp_path, wsl=None)  # detected from the fake /proc/version
    out = fake.probe_in_child(kwargs, config=config)  # nothing on LD_LIBRARY_PATH
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["cuda"]) == (True, "560.94", "12.6")
    assert driver["source"] == "nvml"
    assert driver["error"] is None  # NVML did answer, from the second place
    assert gpus_of(out) == [(0, "NVIDIA GeForce RTX 4090", "8.9", 24564, False)]
    first, second = out["driver"]["attempts"]
    assert (first["ok"], first["kind"]) == (False, "library-not-found")
    assert (second["ok"], second["library"]) == (True, str(wsl_lib / "libnvidia-ml.so.1"))


def test_is_wsl(tmp_path: Path) -> None:
    wsl2 = write(tmp_path / "v2", "Linux version 5.15.153.1-microsoft-standard-WSL2 (gcc ...)\n")
    wsl1 = write(tmp_path / "v1", "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)\n")
    native = write(tmp_path / "v0", "Linux version 6.1.0-18-amd64 (debian-kernel@lists...)\n")
    assert system.is_wsl(wsl2, {}) is True
    assert system.is_wsl(wsl1, {}) is True
    assert system.is_wsl(native, {}) is False
    assert system.is_wsl(native, {"WSL_DISTRO_NAME": "Ubuntu"}) is True
    assert system.is_wsl(tmp_path / "absent", {}) is False


# --------------------------------------------------------------------------- fallbacks

PROCFS_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)
PROCFS_OPEN_550 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n"
    "GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)\n"
)
PROCFS_AARCH64 = "NVRM version: NVIDIA UNIX aarch64 Kernel Module  470.182.03  Fri Feb 24 2023\n"


def fake_smi(
    tmp: Path,
    *,
    gpus: list[dict[str, str]] | None = None,
    driver: str = "535.104.05",
    cuda: str | None = "12.2",
    fields: tuple[str, ...] = system._SMI_FIELDS,
    fail: tuple[int, str] | None = None,
    sleep: float = 0,
) -> Path:
    """A stand-in ``nvidia-smi`` that answers like the real one (format from driver 535)."""
    spec = {
        "gpus": gpus or [],
        "driver": driver,
        "cuda": cuda,
        "fields": list(fields),
        "fail": fail,
        "sleep": sleep,
        "log": str(tmp / "smi-calls"),
    }
    script = f"""#!{sys.executable}
import json, sys, time
spec = json.loads({json.dumps(json.dumps(spec))})
with open(spec["log"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
time.sleep(spec["sleep"])
if spec["fail"]:
    print(spec["fail"][1])
    sys.exit(spec["fail"][0])
args = sys.argv[1:]
if not args:
    if not spec["gpus"]:
        print("No devices were found")
        sys.exit(6)
    cuda = f"CUDA Version: {{spec['cuda']}}" if spec["cuda"] else ""
    print("+" + "-" * 89 + "+")
    print(f"| NVIDIA-SMI {{spec['driver']}}   Driver Version: {{spec['driver']}}   {{cuda}} |")
    print("|" + "-" * 89 + "|")
    sys.exit(0)
query = [a for a in args if a.startswith("--query-gpu=")][0].split("=", 1)[1].split(",")
for field in query:
    if field not in spec["fields"]:
        print(f'Field "{{field}}" is not a valid field to query.')
        print()
        sys.exit(2)
if not spec["gpus"]:
    print("No devices were found")
    sys.exit(6)
for i, gpu in enumerate(spec["gpus"]):
    row = dict(gpu, index=str(i), driver_version=spec["driver"])
    print(", ".join(row[f] for f in query))
"""
    return write(tmp / "bin" / "nvidia-smi", script, 0o755)


def smi_calls(tmp: Path) -> list[str]:
    log = tmp / "smi-calls"
    return log.read_text().splitlines() if log.exists() else []


def gpu_row(name: str, cc: str, mem: str, mig: str = "[N/A]") -> dict[str, str]:
    return {"name": name, "compute_cap": cc, "memory.total": mem, "mig.mode.current": mig}


def test_fallback_sysfs(tmp_path: Path) -> None:
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["sysfs_version"]), "535.104.05\n")
    write(Path(kwargs["procfs_version"]), PROCFS_OPEN_550)  # not read: sysfs already answered
    out = fake.probe_in_child(kwargs)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["source"]) == (True, "535.104.05", "sysfs")
    assert driver["cuda"] is None and out["gpus"] is None
    assert driver["error"].startswith("NVML library not found")
    assert sources(out) == ["nvml", "sysfs", "nvidia-smi"]
    assert attempt(out, "sysfs")["facts"] == ["driver.version"]


@pytest.mark.parametrize(
    ("text", "version"),
    [(PROCFS_535, "535.104.05"), (PROCFS_OPEN_550, "550.54.15"), (PROCFS_AARCH64, "470.182.03")],
)
def test_fallback_procfs(tmp_path: Path, text: str, version: str) -> None:
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["procfs_version"]), text)
    out = fake.probe_in_child(kwargs)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["source"]) == (True, version, "procfs")
    assert sources(out) == ["nvml", "sysfs", "procfs", "nvidia-smi"]
    assert attempt(out, "sysfs")["ok"] is False
    assert attempt(out, "procfs") == {
        "source": "procfs",
        "ok": True,
        "error": None,
        "facts": ["driver.version"],
        "path": kwargs["procfs_version"],
    }


def test_fallback_procfs_unreadable_content(tmp_path: Path) -> None:
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["sysfs_version"]), "garbage\n")
    write(Path(kwargs["procfs_version"]), "something else entirely\n")
    out = fake.probe_in_child(kwargs)
    assert out["driver"]["found"] is False
    assert "not a driver version" in attempt(out, "sysfs")["error"]
    assert "no 'NVRM version' line" in attempt(out, "procfs")["error"]


def test_fallback_nvidia_smi_gives_everything(tmp_path: Path) -> None:
    smi = fake_smi(
        tmp_path,
        driver="535.104.05",
        cuda="12.2",
        gpus=[
            gpu_row("Tesla T4", "7.5", "15360", "[N/A]"),
            gpu_row("NVIDIA A100-SXM4-40GB", "8.0", "40960", "Enabled"),
        ],
    )
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    out = fake.probe_in_child(kwargs, path=[smi.parent])
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["cuda"]) == (True, "535.104.05", "12.2")
    assert driver["source"] == "nvidia-smi"
    assert gpus_of(out) == [
        (0, "Tesla T4", "7.5", 15360, None),
        (1, "NVIDIA A100-SXM4-40GB", "8.0", 40960, True),
    ]
    smi_attempt = attempt(out, "nvidia-smi")
    assert smi_attempt["ok"] is True and smi_attempt["error"] is None
    assert smi_attempt["path"] == str(smi)
    assert {"driver.version", "driver.cuda", "gpus", "gpus.compute_capability"} <= set(
        smi_attempt["facts"]
    )
    assert len(smi_calls(tmp_path)) == 2  # the query, then the header for the CUDA version


def test_fallback_procfs_plus_old_nvidia_smi_without_compute_cap(tmp_path: Path) -> None:
    # nvidia-smi 470 has neither compute_cap (huggingface/candle#733) nor, here, MIG mode.
    smi = fake_smi(
        tmp_path,
        driver="470.182.03",
        cuda="11.4",
        gpus=[gpu_row("NVIDIA A10G", "8.6", "23028")],
        fields=("index", "name", "memory.total", "driver_version"),
    )
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["procfs_version"]), PROCFS_AARCH64)
    out = fake.probe_in_child(kwargs, path=[smi.parent])
    driver = out["driver"]
    assert (driver["version"], driver["source"], driver["cuda"]) == ("470.182.03", "procfs", "11.4")
    assert gpus_of(out) == [(0, "NVIDIA A10G", None, 23028, None)]
    smi_attempt = attempt(out, "nvidia-smi")
    assert smi_attempt["ok"] is True
    assert "no 'compute_cap' field" in smi_attempt["error"]
    assert "no 'mig.mode.current' field" in smi_attempt["error"]
    assert "driver.version" not in smi_attempt["facts"]  # procfs gave it first
    assert set(smi_attempt["facts"]) == {"gpus", "gpus.memory_mib", "driver.cuda"}
    calls = smi_calls(tmp_path)
    assert len(calls) == 4  # full query, without compute_cap, without MIG too, header
    assert "compute_cap" not in calls[2] and "mig.mode.current" not in calls[2]


def test_fallback_nvidia_smi_header_without_cuda(tmp_path: Path) -> None:
    smi = fake_smi(
        tmp_path, driver="396.54", cuda=None, gpus=[gpu_row("Tesla P100", "6.0", "16280")]
    )
    out = fake.probe_in_child(
        hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path)), path=[smi.parent]
    )
    assert out["driver"]["version"] == "396.54"
    assert out["driver"]["cuda"] is None
    assert "no 'CUDA Version'" in attempt(out, "nvidia-smi")["error"]


def test_fallback_nvidia_smi_cannot_talk_to_driver(tmp_path: Path) -> None:
    message = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."
    )
    smi = fake_smi(tmp_path, fail=(9, message))
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["sysfs_version"]), "550.54.15\n")
    out = fake.probe_in_child(kwargs, path=[smi.parent])
    assert (out["driver"]["found"], out["driver"]["source"]) == (True, "sysfs")
    assert out["gpus"] is None
    smi_attempt = attempt(out, "nvidia-smi")
    assert smi_attempt["ok"] is False
    assert smi_attempt["error"] == f"nvidia-smi failed (exit 9): {message}"
    assert len(smi_calls(tmp_path)) == 1


def test_fallback_nvidia_smi_no_devices(tmp_path: Path) -> None:
    smi = fake_smi(tmp_path, gpus=[])
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path))
    write(Path(kwargs["sysfs_version"]), "535.104.05\n")
    out = fake.probe_in_child(kwargs, path=[smi.parent])
    assert out["gpus"] == []
    assert attempt(out, "nvidia-smi")["facts"] == ["gpus"]
    assert len(smi_calls(tmp_path)) == 1  # no header call on a machine without GPUs


def test_fallback_nvidia_smi_hangs(tmp_path: Path) -> None:
    smi = fake_smi(tmp_path, sleep=30, gpus=[gpu_row("Tesla T4", "7.5", "15360")])
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path), smi_timeout=0.5)
    start = time.monotonic()
    out = fake.probe_in_child(kwargs, path=[smi.parent])
    assert time.monotonic() - start < 10
    assert out["probe_seconds"] < 10  # the 30 s hang was cut (0.5 s limit); slack for load
    smi_attempt = attempt(out, "nvidia-smi")
    assert smi_attempt["ok"] is False
    assert "did not answer" in smi_attempt["error"]
    assert out["driver"]["found"] is False


def test_fallback_nvidia_smi_not_executable(tmp_path: Path) -> None:
    smi = write(tmp_path / "smi" / "nvidia-smi", "not a program\n", 0o644)
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path), nvidia_smi=str(smi))
    out = fake.probe_in_child(kwargs)
    smi_attempt = attempt(out, "nvidia-smi")
    assert smi_attempt["ok"] is False
    assert "could not run" in smi_attempt["error"]


def test_fallback_wsl_nvidia_smi_off_path(tmp_path: Path) -> None:
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path), wsl=True)
    wsl_dir = Path(kwargs["wsl_lib_dir"])
    smi = fake_smi(
        tmp_path,
        driver="560.94",
        cuda="12.6",
        gpus=[gpu_row("NVIDIA GeForce RTX 4090", "8.9", "24564")],
    )
    wsl_dir.mkdir(parents=True)
    smi.rename(wsl_dir / "nvidia-smi")
    out = fake.probe_in_child(kwargs)  # empty PATH
    assert (out["driver"]["version"], out["driver"]["source"]) == ("560.94", "nvidia-smi")
    assert attempt(out, "nvidia-smi")["path"] == str(wsl_dir / "nvidia-smi")
    assert gpus_of(out) == [(0, "NVIDIA GeForce RTX 4090", "8.9", 24564, None)]


def test_nvml_failure_kept_beside_procfs(tmp_path: Path, lib_dir: Path) -> None:
    # Driver not loaded per NVML, yet the procfs file names a version (a container that has
    # /proc/driver/nvidia but not the device nodes): found, and NVML's reason kept.
    config = FakeNvml(init_error="NVML_ERROR_DRIVER_NOT_LOADED").write(tmp_path / "nvml.conf")
    kwargs = hermetic(tmp_path)
    write(Path(kwargs["procfs_version"]), PROCFS_535)
    out = fake.probe_in_child(kwargs, lib_dir=lib_dir, config=config)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["source"]) == (True, "535.104.05", "procfs")
    assert "driver is not loaded" in driver["error"]
    assert attempt(out, "nvml")["kind"] == "driver-not-loaded"


# --------------------------------------------------------------------------- parsers


def test_parse_procfs_version_lines() -> None:
    assert system.parse_procfs_version(PROCFS_535) == "535.104.05"
    assert system.parse_procfs_version(PROCFS_OPEN_550) == "550.54.15"
    assert system.parse_procfs_version(PROCFS_AARCH64) == "470.182.03"
    assert system.parse_procfs_version("GCC version: gcc version 12.3.0\n") is None
    assert system.parse_procfs_version("") is None


def test_parse_sysfs_version() -> None:
    assert system.parse_sysfs_version("535.104.05\n") == "535.104.05"
    assert system.parse_sysfs_version("560.94") == "560.94"
    assert system.parse_sysfs_version("\n") is None
    assert system.parse_sysfs_version("535.104.05 extra") is None


def test_parse_smi_csv() -> None:
    fields = system._SMI_FIELDS
    text = (
        "0, Tesla T4, 7.5, 15360, 535.104.05, [N/A]\n"
        "1, NVIDIA A100-SXM4-80GB, 8.0, 81920, 535.104.05, Enabled\n"
        "2, NVIDIA H100 PCIe, [Not Supported], [N/A], 535.104.05, Disabled\n"
        "\n"
        "garbage line\n"
    )
    gpus, version, bad = system.parse_smi_csv(text, fields)
    assert version == "535.104.05"
    assert bad == "garbage line"
    assert [(g.index, g.name, g.compute_capability, g.memory_mib, g.mig) for g in gpus] == [
        (0, "Tesla T4", "7.5", 15360, None),
        (1, "NVIDIA A100-SXM4-80GB", "8.0", 81920, True),
        (2, "NVIDIA H100 PCIe", None, None, False),
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12020, "12.2"),
        (11040, "11.4"),
        (13000, "13.0"),
        (12080, "12.8"),
        (10010, "10.1"),
        (0, None),
    ],
)
def test_cuda_version_string(value: int, text: str | None) -> None:
    assert cuda_version_string(value) == text


@given(st.integers(min_value=1, max_value=99), st.integers(min_value=0, max_value=9))
def test_cuda_version_string_round_trip(major: int, minor: int) -> None:
    assert cuda_version_string(1000 * major + 10 * minor) == f"{major}.{minor}"


@given(st.text())
def test_parsers_never_raise(text: str) -> None:
    system.parse_procfs_version(text)
    system.parse_sysfs_version(text)
    gpus, _, _ = system.parse_smi_csv(text, system._SMI_FIELDS)
    assert all(isinstance(g.index, int) for g in gpus)


# --------------------------------------------------------------------------- host and nvcc


def test_probe_host_here(tmp_path: Path) -> None:
    os_release = write(
        tmp_path / "os-release",
        'NAME="Ubuntu"\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.3 LTS"\nID=ubuntu\n',
    )
    host = system.probe_host(os_release=[tmp_path / "absent", os_release])
    assert host.system == "Linux"
    assert host.machine == os.uname().machine
    assert host.os_release == "Ubuntu 22.04.3 LTS"
    assert host.wsl is system.is_wsl()
    # Checked against ldd, which asks the C library itself: "ldd (Debian GLIBC 2.36-9) 2.36".
    ldd = subprocess.run(["ldd", "--version"], capture_output=True, text=True)
    first = (ldd.stdout or ldd.stderr).splitlines()[0] if ldd.returncode == 0 else ""
    if "GLIBC" in first.upper() or "GNU libc" in first:
        assert host.libc == f"glibc {first.split()[-1]}"
    elif "musl" in (ldd.stdout + ldd.stderr).lower():
        assert host.libc == "musl"


def test_read_os_release_quoting(tmp_path: Path) -> None:
    plain = write(tmp_path / "a", "PRETTY_NAME=Alpine\n")
    single = write(tmp_path / "b", "PRETTY_NAME='Arch Linux'\n")
    escaped = write(tmp_path / "c", 'PRETTY_NAME="Say \\"hi\\" \\$HOME"\n')
    none = write(tmp_path / "d", "NAME=Nothing\n")
    assert system.read_os_release([plain]) == "Alpine"
    assert system.read_os_release([single]) == "Arch Linux"
    assert system.read_os_release([escaped]) == 'Say "hi" $HOME'
    assert system.read_os_release([none]) is None
    assert system.read_os_release([tmp_path / "absent"]) is None
    # The first file that exists wins, even without PRETTY_NAME (os-release(5)).
    assert system.read_os_release([none, plain]) is None


def fake_nvcc(folder: Path, release: str) -> Path:
    return write(
        folder / "bin" / "nvcc",
        "#!/bin/sh\n"
        "echo 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
        f"echo 'Cuda compilation tools, release {release}, V{release}.109'\n",
        0o755,
    )


def test_probe_nvcc_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "CUDA_DEFAULT_HOME", str(tmp_path / "usr-local-cuda"))
    home = fake_nvcc(tmp_path / "cuda-11.3", "11.3").parent.parent
    on_path = fake_nvcc(tmp_path / "cuda-12.1", "12.1").parent
    default = fake_nvcc(tmp_path / "usr-local-cuda", "12.4")
    assert system.probe_nvcc(environ={"CUDA_HOME": str(home), "PATH": str(on_path)}) == "11.3"
    assert system.probe_nvcc(environ={"PATH": str(on_path)}) == "12.1"
    assert system.probe_nvcc(environ={"PATH": ""}) == "12.4"
    default.unlink()
    assert system.probe_nvcc(environ={"PATH": ""}) is None
    # A broken CUDA_HOME does not hide a working nvcc further down.
    broken = write(tmp_path / "broken" / "bin" / "nvcc", "#!/bin/sh\nexit 1\n", 0o755)
    environ = {"CUDA_HOME": str(broken.parent.parent), "PATH": str(on_path)}
    assert system.probe_nvcc(environ=environ) == "12.1"


def test_probe_nvcc_real_toolkit_if_any() -> None:
    """This host's own nvcc, if it has one, against its own --version."""
    exe = "/usr/local/cuda/bin/nvcc"
    if not os.access(exe, os.X_OK):
        assert system.probe_nvcc(environ={"PATH": ""}) is None
        return
    text = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    release = text.split("release ", 1)[1].split(",", 1)[0]
    assert system.probe_nvcc(environ={"PATH": ""}) == release


def test_in_process_probe_never_raises_and_names_sources(tmp_path: Path) -> None:
    # In-process, as the pipeline calls it; only explicit (absent) NVML paths, so that nothing
    # is loaded into the test process.
    kwargs = hermetic(tmp_path, nvml_libraries=no_nvml(tmp_path), environ={"PATH": ""})
    driver, gpus = system.probe_driver(**kwargs)
    assert driver.found is False and gpus is None
    assert [a["source"] for a in driver.attempts] == ["nvml", "sysfs", "procfs", "nvidia-smi"]
    json.dumps([dict(a) for a in driver.attempts])  # JSON-ready


def test_nvml_answers_without_driver_version(tmp_path: Path, lib_dir: Path) -> None:
    # NVML initialised (so a driver is loaded) but could not name its version: the kernel
    # module's files are asked, and the driver counts as found either way.
    machine = FakeNvml(
        "535.104.05",
        12020,
        [T4],
        fails={"nvmlSystemGetDriverVersion": "NVML_ERROR_UNKNOWN"},
    )
    out = run_fake(tmp_path, machine, lib_dir)
    driver = out["driver"]
    assert (driver["found"], driver["version"], driver["source"]) == (True, None, None)
    assert driver["cuda"] == "12.2"
    assert gpus_of(out) == [(0, "Tesla T4", "7.5", 15360, False)]
    assert sources(out) == ["nvml", "sysfs", "procfs"]  # files only: no nvidia-smi
    assert "nvmlSystemGetDriverVersion: Unknown Error" in attempt(out, "nvml")["error"]

    write(Path(hermetic(tmp_path)["sysfs_version"]), "535.104.05\n")
    out = run_fake(tmp_path, machine, lib_dir)
    assert (out["driver"]["version"], out["driver"]["source"]) == ("535.104.05", "sysfs")


def test_second_probe_in_one_process(tmp_path: Path, lib_dir: Path) -> None:
    # pynvml keeps the first library it loaded: a second probe reuses it, and asking for a
    # different file says so instead of answering with the wrong library's facts.
    config = FakeNvml("535.104.05", 12020, [T4]).write(tmp_path / "nvml.conf")
    lib = str(lib_dir / "libnvidia-ml.so.1")
    other = str(tmp_path / "other" / "libnvidia-ml.so.1")
    code = f"""
import json
from repair.probe.system import probe_driver
kw = {hermetic(tmp_path, environ={"PATH": ""})!r}
runs = [probe_driver(nvml_libraries=[{lib!r}], **kw), probe_driver(nvml_libraries=[{lib!r}], **kw),
        probe_driver(nvml_libraries=[None], **kw), probe_driver(nvml_libraries=[{other!r}], **kw)]
print(json.dumps([[d.version, d.attempts[0]] for d, _ in runs]))
"""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(FAKE_NVML_CONFIG=str(config), PYTHONPATH=str(fake.REPO))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=fake.REPO
    )
    assert done.returncode == 0, done.stderr
    first, again, default, other_run = json.loads(done.stdout)
    assert first == again
    assert first[0] == "535.104.05" and first[1]["library"] == lib
    assert default[0] == "535.104.05" and default[1]["library"] == lib
    assert other_run[0] is None
    assert other_run[1]["kind"] == "other"
    assert "already uses NVML from" in other_run[1]["error"]
