"""Writes plans/examples/: the real cases of ../shared/cases (as they are) and one small
synthetic facts file per failure class (named in plans/failures.toml `example`), each a variation
of one healthy machine so that exactly the fact under test differs. Re-run after editing:

    python tools/make_examples.py [path/to/shared/cases]
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "plans" / "examples"

BNB_0455_LIBS = ["libbitsandbytes_cpu.so"] + [
    f"libbitsandbytes_cuda{t}.so"
    for t in ("117", "118", "120", "121", "122", "123", "124", "125", "126", "128")
]

HEALTHY = {
    "schema": "qfix.facts/1",
    "packages_source": "probe",
    "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35", "wsl": False},
    "driver": {"found": True, "version": "535.104.05", "cuda": "12.2", "source": "nvml"},
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA A10G",
            "compute_capability": "8.6",
            "memory_mib": 23028,
            "mig": False,
        }
    ],
    "python": {
        "executable": "/home/me/proj/.venv/bin/python",
        "version": "3.11.7",
        "in_venv": True,
        "externally_managed": False,
        "conda": False,
    },
    "packages": {
        "torch": "2.5.1+cu121",
        "bitsandbytes": "0.45.5",
        "transformers": "4.46.3",
        "accelerate": "1.1.1",
        "peft": "0.13.2",
    },
    "torch": {"version": "2.5.1+cu121", "cuda": "12.1", "hip": None},
    "bitsandbytes": {
        "version": "0.45.5",
        "native_libs": BNB_0455_LIBS,
        "copies": 1,
        "distributions": ["bitsandbytes 0.45.5"],
    },
    "env": {
        "BNB_CUDA_VERSION": None,
        "LD_LIBRARY_PATH": None,
        "CUDA_VISIBLE_DEVICES": None,
        "CUDA_HOME": None,
    },
    "toolkit": {"nvcc": None},
}


def variant(summary: str, **changes: object) -> dict:
    doc = copy.deepcopy(HEALTHY)
    for path, value in changes.items():
        keys = path.split("__")
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return {"summary": summary, "facts": doc}


def torch_pkg(version: str, cuda: str | None) -> dict:
    return {"packages__torch": version, "torch": {"version": version, "cuda": cuda, "hip": None}}


EXAMPLES = {
    "healthy.json": variant("A10G, driver 535, torch 2.5.1+cu121, bitsandbytes 0.45.5: healthy."),
    "cpu-host-old-bnb.json": variant(
        "No NVIDIA driver; torch 2.5.1 CPU with bitsandbytes 0.45.5, which has no CPU 4-bit.",
        driver={
            "found": False,
            "version": None,
            "cuda": None,
            "source": None,
            "error": "NVML library not found (libnvidia-ml.so.1)",
        },
        gpus=[],
        **torch_pkg("2.5.1+cpu", None),
    ),
    "no-torch.json": variant(
        "torch is not installed; bitsandbytes 0.45.5 is.",
        packages={"bitsandbytes": "0.45.5", "transformers": "4.46.3"},
        torch=None,
    ),
    "cpu-torch-on-gpu.json": variant(
        "An RTX 4090 host with the CPU-only torch 2.5.1.",
        gpus=[
            {
                "index": 0,
                "name": "NVIDIA GeForce RTX 4090",
                "compute_capability": "8.9",
                "memory_mib": 24564,
            }
        ],
        **torch_pkg("2.5.1+cpu", None),
    ),
    "driver-too-old.json": variant(
        "Driver 470 (CUDA 11.4) with torch 2.5.1+cu121.",
        driver={"found": True, "version": "470.182.03", "cuda": "11.4", "source": "nvml"},
    ),
    "pascal-on-cu128.json": variant(
        "A GTX 1080 Ti (sm_61) with torch 2.7.1+cu128, which dropped Pascal.",
        driver={"found": True, "version": "570.133.07", "cuda": "12.8", "source": "nvml"},
        gpus=[
            {
                "index": 0,
                "name": "NVIDIA GeForce GTX 1080 Ti",
                "compute_capability": "6.1",
                "memory_mib": 11264,
            }
        ],
        **torch_pkg("2.7.1+cu128", "12.8"),
    ),
    "no-bnb.json": variant(
        "bitsandbytes is not installed.",
        packages={"torch": "2.5.1+cu121", "transformers": "4.46.3"},
        bitsandbytes=None,
    ),
    "bnb-no-lib-cu128.json": variant(
        "An RTX 5090 with torch 2.7.1+cu128 and bitsandbytes 0.44.1 (no CUDA 12.8 library).",
        driver={"found": True, "version": "570.133.07", "cuda": "12.8", "source": "nvml"},
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}],
        packages={"torch": "2.7.1+cu128", "bitsandbytes": "0.44.1", "transformers": "4.46.3"},
        torch={"version": "2.7.1+cu128", "cuda": "12.8", "hip": None},
        bitsandbytes={
            "version": "0.44.1",
            "copies": 1,
            "distributions": ["bitsandbytes 0.44.1"],
            "native_libs": ["libbitsandbytes_cpu.so"]
            + [
                f"libbitsandbytes_cuda{t}.so"
                for t in ("117", "118", "120", "121", "122", "123", "124", "125")
            ],
        },
    ),
    "bnb-torch-mismatch.json": variant(
        "bitsandbytes 0.50.2 (torch >= 2.4) beside torch 2.1.2+cu121.",
        packages={"torch": "2.1.2+cu121", "bitsandbytes": "0.50.2", "transformers": "4.46.3"},
        torch={"version": "2.1.2+cu121", "cuda": "12.1", "hip": None},
        bitsandbytes={
            "version": "0.50.2",
            "copies": 1,
            "distributions": ["bitsandbytes 0.50.2"],
            "native_libs": ["libbitsandbytes_cpu.so"]
            + [
                f"libbitsandbytes_cuda{t}.so"
                for t in ("118", "121", "124", "126", "128", "130", "132")
            ],
        },
    ),
    "bnb-override.json": variant(
        "BNB_CUDA_VERSION=119 names a library bitsandbytes 0.45.5 does not ship.",
        env={
            "BNB_CUDA_VERSION": "119",
            "LD_LIBRARY_PATH": None,
            "CUDA_VISIBLE_DEVICES": None,
            "CUDA_HOME": None,
        },
    ),
    "bnb-duplicate.json": variant(
        "bitsandbytes 0.45.5 beside the obsolete fork bitsandbytes-cuda111.",
        bitsandbytes={
            "version": "0.45.5",
            "copies": 2,
            "native_libs": BNB_0455_LIBS,
            "distributions": ["bitsandbytes 0.45.5", "bitsandbytes-cuda111 0.26.0"],
        },
    ),
    "old-glibc.json": variant(
        "CentOS 7 (glibc 2.17): pip fell back to bitsandbytes 0.42.0; no newer wheel installs.",
        host={"system": "Linux", "machine": "x86_64", "libc": "glibc 2.17", "wsl": False},
        packages={"torch": "2.1.2+cu121", "bitsandbytes": "0.42.0", "transformers": "4.46.3"},
        torch={"version": "2.1.2+cu121", "cuda": "12.1", "hip": None},
        bitsandbytes={
            "version": "0.42.0",
            "copies": 1,
            "distributions": ["bitsandbytes 0.42.0"],
            "native_libs": None,
        },
    ),
    "maxwell-new-bnb.json": variant(
        "A Maxwell Tesla M60 (5.2) with torch 2.5.1+cu121 and bitsandbytes 0.48.2 (sm_60+).",
        gpus=[{"index": 0, "name": "Tesla M60", "compute_capability": "5.2"}],
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.48.2", "transformers": "4.46.3"},
        bitsandbytes={
            "version": "0.48.2",
            "copies": 1,
            "distributions": ["bitsandbytes 0.48.2"],
            "native_libs": None,
        },
    ),
    "family-mismatch.json": variant(
        "torchvision 0.15.2 (for torch 2.0) beside torch 2.5.1.",
        packages={
            "torch": "2.5.1+cu121",
            "torchvision": "0.15.2+cu118",
            "bitsandbytes": "0.45.5",
            "transformers": "4.46.3",
        },
    ),
    "hf-too-old.json": variant(
        "transformers 4.29.2 has no 4-bit.",
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.45.5", "transformers": "4.29.2"},
    ),
    "project-pins.json": variant(
        "A healthy A10G whose project requirements pin bitsandbytes below 4-bit (0.37.0).",
        project_pins=[
            {
                "name": "bitsandbytes",
                "specifier": "==0.37.0",
                "source": "requirements.txt:3",
                "constraint": False,
                "marker": None,
                "url": None,
            }
        ],
    ),
    "wsl-old-bnb.json": variant(
        "WSL2 with bitsandbytes 0.38.1 and /usr/lib/wsl/lib not on LD_LIBRARY_PATH.",
        host={"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35", "wsl": True},
        packages={"torch": "2.0.1+cu118", "bitsandbytes": "0.38.1", "transformers": "4.30.2"},
        torch={"version": "2.0.1+cu118", "cuda": "11.8", "hip": None},
        bitsandbytes={
            "version": "0.38.1",
            "copies": 1,
            "distributions": ["bitsandbytes 0.38.1"],
            "native_libs": None,
        },
    ),
    "stale-toolkit.json": variant(
        "A system CUDA 10.2 toolkit with bitsandbytes 0.39.1, which takes its CUDA from libcudart.",
        packages={"torch": "2.0.1+cu118", "bitsandbytes": "0.39.1", "transformers": "4.30.2"},
        torch={"version": "2.0.1+cu118", "cuda": "11.8", "hip": None},
        bitsandbytes={
            "version": "0.39.1",
            "copies": 1,
            "distributions": ["bitsandbytes 0.39.1"],
            "native_libs": None,
        },
        env={
            "BNB_CUDA_VERSION": None,
            "LD_LIBRARY_PATH": "/usr/local/cuda-10.2/lib64",
            "CUDA_VISIBLE_DEVICES": None,
            "CUDA_HOME": "/usr/local/cuda-10.2",
        },
        toolkit={"nvcc": "10.2"},
    ),
    "mixed-gpus.json": variant(
        "An RTX A6000 (8.6) beside a GT 1030 (6.1).",
        gpus=[
            {"index": 0, "name": "NVIDIA RTX A6000", "compute_capability": "8.6"},
            {"index": 1, "name": "NVIDIA GeForce GT 1030", "compute_capability": "6.1"},
        ],
    ),
    "rocm.json": variant(
        "An AMD MI300X with torch 2.5.1+rocm6.2.",
        driver={
            "found": False,
            "version": None,
            "cuda": None,
            "source": None,
            "error": "NVML library not found",
        },
        gpus=[{"index": 0, "name": "AMD Instinct MI300X", "vendor": "amd"}],
        **torch_pkg("2.5.1+rocm6.2", None),
    ),
    "bnb-0454.json": variant(
        "bitsandbytes 0.45.4, whose Linux wheel lacks libbitsandbytes_cpu.so (bnb#1584).",
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.45.4", "transformers": "4.46.3"},
        bitsandbytes={
            "version": "0.45.4",
            "copies": 1,
            "distributions": ["bitsandbytes 0.45.4"],
            "native_libs": [n for n in BNB_0455_LIBS if "cpu" not in n],
        },
    ),
    "cuda-init-failed.json": {
        "summary": "An HGX A100 box whose nvidia-fabricmanager is not running: CUDA error 802.",
        "facts": {
            **copy.deepcopy(HEALTHY),
            "gpus": [
                {"index": i, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
                for i in range(8)
            ],
        },
        "error": "UserWarning: CUDA initialization: Unexpected error from cudaGetDeviceCount(). "
        "Did you run some cuda functions before calling NumCudaDevices() that might have "
        "already set an error? Error 802: system not yet initialized",
    },
    "jetson-orin.json": variant(
        "A Jetson AGX Orin (L4T R36, sm_87) with NVIDIA's Jetson torch and PyPI's aarch64 "
        "bitsandbytes 0.46.1, which is built for SBSA servers.",
        host={
            "system": "Linux",
            "machine": "aarch64",
            "libc": "glibc 2.35",
            "wsl": False,
            "os_release": "Ubuntu 22.04.5 LTS",
            "l4t": "R36 (release), REVISION: 4.3",
        },
        driver={"found": True, "version": None, "cuda": "12.6", "source": "report"},
        gpus=[{"index": 0, "name": "Orin (nvgpu)", "compute_capability": "8.7"}],
        packages={"torch": "2.5.0a0+872d972e41.nv24.08", "bitsandbytes": "0.46.1"},
        torch={"version": "2.5.0a0+872d972e41.nv24.08", "cuda": "12.6", "hip": None},
        bitsandbytes={
            "version": "0.46.1",
            "copies": 1,
            "distributions": ["bitsandbytes 0.46.1"],
            "native_libs": None,
        },
    ),
}
EXAMPLES["rocm.json"]["facts"]["torch"]["hip"] = "6.2.41133"


def main() -> None:
    cases = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "cases"
    OUT.mkdir(parents=True, exist_ok=True)
    for name, doc in EXAMPLES.items():
        (OUT / name).write_text(json.dumps(doc, indent=2) + "\n")
    for case in sorted(cases.glob("*.json")):
        shutil.copyfile(case, OUT / case.name)
    print(f"wrote {len(EXAMPLES)} synthetic examples and the cases of {cases} to {OUT}")


if __name__ == "__main__":
    main()
