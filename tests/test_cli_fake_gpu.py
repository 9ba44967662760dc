"""The whole CLI on a simulated GPU host: `qfix detect --json` reads the fake libnvidia-ml.so.1
through nvidia-ml-py's real code path, and `qfix plan` plans from what it detected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from repair.facts import facts_from_dict
from tests.fakes import nvml as fake
from tests.venvs import Venv

REPO = Path(__file__).resolve().parent.parent


def qfix(args: list[str], lib_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "LD_LIBRARY_PATH", "FAKE_NVML_CONFIG", "CUDA_HOME")
    }
    env.update(
        LD_LIBRARY_PATH=str(lib_dir), FAKE_NVML_CONFIG=str(config), PATH="/usr/bin:/bin"
    )  # no real nvidia-smi or nvcc can answer
    return subprocess.run(
        [sys.executable, "-m", "repair", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_detect_json_reads_driver_cuda_and_every_gpu(
    lib_dir: Path, tmp_path: Path, venv_torch213: Venv
) -> None:
    config = fake.FakeNvml(
        driver="580.65.06",
        cuda=13000,
        gpus=[
            fake.FakeGpu("NVIDIA H100 80GB HBM3", 9, 0, 81559, False),
            fake.FakeGpu("NVIDIA H100 80GB HBM3", 9, 0, 81559, False),
        ],
    ).write(tmp_path / "nvml.cfg")
    p = qfix(["detect", "--json", "--python", str(venv_torch213.python)], lib_dir, config)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    facts_from_dict(doc, "detect")  # valid qfix.facts/1
    assert doc["driver"]["found"] is True and doc["driver"]["source"] == "nvml"
    assert (doc["driver"]["version"], doc["driver"]["cuda"]) == ("580.65.06", "13.0")
    assert [(g["name"], g["compute_capability"], g["memory_mib"]) for g in doc["gpus"]] == [
        ("NVIDIA H100 80GB HBM3", "9.0", 81559)
    ] * 2


def test_plan_on_a_simulated_gpu_host_moves_the_cpu_torch(
    lib_dir: Path, tmp_path: Path, venv_torch213: Venv
) -> None:
    config = fake.FakeNvml(
        driver="535.104.05", cuda=12020, gpus=[fake.FakeGpu("Tesla T4", 7, 5, 15360, None)]
    ).write(tmp_path / "nvml.cfg")
    p = qfix(["plan", "--json", "--python", str(venv_torch213.python)], lib_dir, config)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert "torch-cpu-build" in [f["id"] for f in doc["findings"]]
    torch = next(s for s in doc["steps"] if s["package"] == "torch")
    # driver 535 (CUDA 12.2) runs 12.x through minor-version compatibility, not 13.x
    assert torch["to"].startswith("2.13.0+cu12"), torch
