#!/usr/bin/env python3
"""Generate plans/bitsandbytes.toml from the wheel surveys bnb-wheels.tsv (0.37.0+) and
tools/data/bnb-wheels-0.32-0.36.tsv (0.32.0-0.36.0.post2).

The TSVs (one row per bitsandbytes release x platform, read from the real PyPI wheels: file list,
METADATA, platform tag; sources S21 and S75, the second written by tools/survey_bnb_wheels.py,
which also reads each wheel's GLIBC_/GLIBCXX_ needs with objdump) give the packaging facts. What
the wheels cannot tell (how each release picks its library, known-bad releases, the SASS targets
of each CUDA library, the glibc 2.34 slip of 0.45.x) is kept below as cited data from
compat-facts.md (C1-C6).

Usage:  python tools/gen_bnb_toml.py [--tsv PATH] [--old-tsv PATH] [--out PATH] [--check]
  --check   exit 1 when the output file differs from what would be generated (for CI).
Reproducible: the same TSV gives byte-identical output (no timestamps).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# the shared facts folder beside the checkout (override with --tsv)
DEFAULT_TSV = ROOT.parent / "shared" / "facts" / "bnb-wheels.tsv"
DEFAULT_OUT = ROOT / "plans" / "bitsandbytes.toml"
# 0.32.0-0.36.0.post2, surveyed by tools/survey_bnb_wheels.py (S75), kept in the repository
DEFAULT_OLD_TSV = ROOT / "tools" / "data" / "bnb-wheels-0.32-0.36.tsv"
OLD_LAST = Version("0.36.0.post2")
CHECKED = "2026-11-29"
CHECKED_OLD = "2026-12-06"  # the 0.32.0-0.36.0.post2 survey (S75)

# TSV platform column -> qfix platform key (repair.knowledge.PLATFORMS).
PLATFORM_KEYS = {
    "linux_x86_64": "linux-x86_64",
    "linux_aarch64": "linux-aarch64",
    "win_amd64": "windows-x86_64",
    "win_arm64": "windows-arm64",
    "macosx_arm64": "macos-arm64",
}
PLATFORM_ORDER = (
    "linux-x86_64",
    "linux-aarch64",
    "windows-x86_64",
    "windows-arm64",
    "macos-arm64",
    "macos-x86_64",
)

S21 = "S21 PyPI wheels (bnb-wheels.tsv)"
S75 = "S75 PyPI wheels 0.32.0-0.36.0.post2 (tools/data/bnb-wheels-0.32-0.36.tsv)"
S76 = "S76 loader code in the wheels (cuda_setup/main.py, cextension.py)"


def loader_of(v: Version) -> str:
    # compat-facts C4 / bnb-wheels.md "How the CUDA library is chosen at import" (S23, S21).
    if v < Version("0.40.1"):
        return "libcudart-search"
    if v <= Version("0.43.0"):
        return "torch-version"
    if v < Version("0.50.0"):
        return "exact"
    return "same-major-fallback"


def override_of(v: Version) -> tuple[str | None, str]:
    """(environment variable, override style) -- bnb-wheels.md, read from each wheel's code."""
    if v < Version("0.40.1"):
        return None, "none"
    if v == Version("0.40.1"):
        return "CUDA_VERSION", "suffix"
    if v < Version("0.44.0"):
        return "BNB_CUDA_VERSION", "suffix"
    if v < Version("0.50.0"):
        return "BNB_CUDA_VERSION", "regex"
    return "BNB_CUDA_VERSION", "digits"


def missing_lib_of(v: Version) -> str:
    # bnb-wheels.md: <=0.43.0 import raises; 0.43.1-0.45.5 warning + CPU library;
    # 0.46.0+ error-raising placeholder (import succeeds, native calls raise).
    # S76: 0.36.x loads libbitsandbytes_cpu.so in place of a missing CUDA library (warning
    # 'compiled without GPU support', import succeeds); 0.32.0-0.35.4 try libbitsandbytes.so,
    # which no wheel ships, and raise 'CUDA SETUP: Setup Failed!'.
    if Version("0.36.0") <= v <= OLD_LAST:
        return "cpu-fallback"
    if v <= Version("0.43.0"):
        return "import-error"
    if v < Version("0.46.0"):
        return "cpu-fallback"
    return "error-mock"


# (releases, platforms, torch, proven_by, why, sources, checked), for CUDA builds of torch
# (torch_build = "cuda": a
# CPU build requires no triton, S84): bitsandbytes/triton/int8_matmul_*_dequantize.py
# import triton.ops.matmul_perf_model whenever triton imports (0.40.0-0.45.0; 0.45.1 vendors
# it, PR #1413, commit 032beb95: git grep at every tag, S83), `import bitsandbytes` reaches them
# through nn/__init__.py, and triton 3.2.0 has no triton/ops (its wheel's file list), which torch
# 2.6.0 requires on Linux x86_64 (Requires-Dist `triton==3.2.0`; 2.5.1: `triton==3.1.0`, S84).
# 0.45.1 to 0.49.x import `from triton.runtime import driver` in that copy, which triton before
# 2.1 lacks (the triton 2.0.0 wheel's runtime/__init__.py), and torch 2.0.x requires triton
# 2.0.0 on Linux x86_64 (2.1.0: triton 2.1.0); 0.50.0 dropped the import (S136).
CONFLICTS = [
    (
        ">=0.40.0,<0.45.1",
        ["linux-x86_64"],
        ">=2.6.0",
        "triton_ops_missing",
        "imports triton.ops.matmul_perf_model, which triton 3.2 removed; torch >= 2.6.0 installs "
        'triton >= 3.2 on Linux x86_64: `import bitsandbytes` fails with "No module named '
        "'triton.ops'\" (0.45.1 carries its own copy)",
        "S83 (git grep at every tag; PR #1413); S84 (torch 2.6.0 Requires-Dist triton==3.2.0, "
        "triton 3.2.0 wheel without triton/ops)",
        "2026-12-06",
    ),
    (
        ">=0.45.1,<0.50.0",
        ["linux-x86_64"],
        ">=2.0.0,<2.1.0",
        "triton_driver_missing",
        "imports `from triton.runtime import driver` (its own copy of matmul_perf_model), which "
        "triton before 2.1 lacks; torch 2.0.x installs triton 2.0.0 on Linux x86_64: `import "
        "bitsandbytes` fails with \"cannot import name 'driver' from 'triton.runtime'\" (0.45.0 "
        "and older import triton.ops, which triton 2.0.0 has)",
        "S136 (git grep at every tag; the triton 2.0.0 and 2.1.0 wheels; torch 2.0.1 and 2.1.0 "
        "Requires-Dist)",
        "2026-12-08",
    ),
]

# The GPU targets each PyPI ROCm library is built for (BNB_ROCM_ARCH in
# .github/scripts/build-rocm.sh, read with `git show <tag>:...` at 0.49.0-0.50.1, S89): per
# release range, per ROCm version of the library (the ROCm it was built with, its tag), the
# targets added. (releases, rocm, targets, confirmed, note)
CHECKED_ROCM = "2026-12-07"
_ROCM_049 = ">=0.49.0,<0.50.0"
_ROCM_050 = ">=0.50.0,<=0.50.1"
_ROCM_0502 = "==0.50.2"
_NOTE_0502 = (
    "UNCONFIRMED: 0.50.2 has no tag in the source read; taken as 0.50.1's lists (a patch "
    "release), used only to withhold a step"
)
ROCM_TARGETS = [
    (_ROCM_049, ">=0", "gfx90a gfx942 gfx1100 gfx1101", True, None),
    (_ROCM_049, ">=6.4", "gfx1150 gfx1151 gfx1200 gfx1201", True, None),
    (_ROCM_049, ">=7.0", "gfx950", True, None),
] + [
    (releases, rocm, targets, releases == _ROCM_050, None if releases == _ROCM_050 else _NOTE_0502)
    for releases in (_ROCM_050, _ROCM_0502)
    for rocm, targets in (
        (">=0", "gfx90a gfx942 gfx1100 gfx1101 gfx1102 gfx1103"),
        (">=6.4", "gfx1150 gfx1151 gfx1152 gfx1153 gfx1200 gfx1201"),
        (">=7.0", "gfx950"),
        (">=7.14", "gfx908 gfx1030 gfx1031 gfx1032 gfx1033 gfx1034 gfx1035 gfx1036 gfx1250"),
    )
]
# AMD GPUs by product name -> LLVM target (ROCm's GPU architecture specifications table, and
# LLVM's AMDGPUUsage for the names it lacks, S91): what `rocminfo` calls the GPU.
GPU_TARGETS = [
    ("Instinct MI300X", "gfx942"),
    ("Instinct MI300A", "gfx942"),
    ("Instinct MI250X", "gfx90a"),
    ("Instinct MI250", "gfx90a"),
    ("Instinct MI210", "gfx90a"),
    ("Instinct MI100", "gfx908"),
    ("Instinct MI60", "gfx906"),
    ("Instinct MI50", "gfx906"),
    ("Radeon PRO W7900", "gfx1100"),
    ("Radeon PRO W7800", "gfx1100"),
    ("Radeon PRO W7700", "gfx1101"),
    ("Radeon PRO W6800", "gfx1030"),
    ("Radeon PRO W6600", "gfx1032"),
    ("Radeon PRO V620", "gfx1030"),
    ("Radeon Pro VII", "gfx906"),
    ("Radeon RX 7900 XTX", "gfx1100"),
    ("Radeon RX 7900 XT", "gfx1100"),
    ("Radeon RX 7900 GRE", "gfx1100"),
    ("Radeon RX 7800 XT", "gfx1101"),
    ("Radeon RX 7700 XT", "gfx1101"),
    ("Radeon RX 7700", "gfx1101"),
    ("Radeon RX 7600 XT", "gfx1102"),
    ("Radeon RX 7600", "gfx1102"),
    ("Radeon RX 6950 XT", "gfx1030"),
    ("Radeon RX 6900 XT", "gfx1030"),
    ("Radeon RX 6800 XT", "gfx1030"),
    ("Radeon RX 6800", "gfx1030"),
    ("Radeon RX 6750 XT", "gfx1031"),
    ("Radeon RX 6700 XT", "gfx1031"),
    ("Radeon RX 6700", "gfx1031"),
    ("Radeon RX 6650 XT", "gfx1032"),
    ("Radeon RX 6600 XT", "gfx1032"),
    ("Radeon RX 6600", "gfx1032"),
    ("Radeon VII", "gfx906"),
    # RDNA 4: LLVM's AMDGPUUsage.rst product names (llvm/llvm-project PR 155577, S91)
    ("Radeon RX 9070 XT", "gfx1201"),
    ("Radeon RX 9070 GRE", "gfx1201"),
    ("Radeon RX 9070", "gfx1201"),
    ("Radeon RX 9060 XT", "gfx1200"),
    ("Radeon RX 9060", "gfx1200"),
]

# release -> (why, kind (repair.knowledge.BNB_KNOWN_BAD_KINDS), sources)
_BIAS = (
    "4-bit inference one token at a time (matmul_4bit's gemv_4bit path: generation) drops "
    "the layer's bias, so models with biased 4-bit layers give wrong outputs (fixed by commit "
    "90b0ac57, 'Fixed missing bias in bnb.matmul_4bit for inference', in 0.40.0.post4); "
    "use 0.40.0.post4",
    "wrong-output",
    "S46 git history and the wheels' autograd/_functions.py",
)
_S66 = "S66 git history 0.48.0-0.50.1, PRs #1776/#1786/#1837, issue #1775, PyPI JSON"
# S110: cuda_setup/main.py of 0.36.0, 0.36.0.post2 and 0.37.0 logs "Compute capability < 7.5
# detected!" through `cuda_setup`, a name is_cublasLt_compatible() never defines, so on a GPU
# below 7.5 the import raises NameError; 0.37.1 calls CUDASetup.get_instance() (commit 59bf8fcf,
# "fix CUDASetup call"). 0.35.4 has no such call.
_OLD_GPU_NAMEERROR = (
    "on a GPU of compute capability below 7.5 its import raises \"NameError: name 'cuda_setup' "
    'is not defined" (cuda_setup/main.py logs through a name it never defines; fixed in 0.37.1, '
    "commit 59bf8fcf 'fix CUDASetup call')"
)
# 0.36.0.post2 and 0.37.0: the NameError alone (S110)
_OLD_GPU_BAD = (
    f"{_OLD_GPU_NAMEERROR}; use 0.37.1",
    "old-gpu-crash",
    "S110 cuda_setup/main.py of the wheels 0.35.4-0.37.2 and commit 59bf8fcf",
    "7.5",
)
KNOWN_BAD = {
    # S75: 0.36.0's wheel has the eleven _nocublaslt libraries and libbitsandbytes_cpu.so only;
    # S77: 0.36.0.post2 (with cuda110-118 and cuda120) was uploaded 70 minutes later.
    "0.36.0": (
        "the wheel has no libbitsandbytes_cudaXY.so, only the _nocublaslt libraries: on a GPU "
        "of compute capability >= 7.5 it loads libbitsandbytes_cpu.so instead ('Required "
        "library version not found'; 'compiled without GPU support'), fixed by 0.36.0.post2, "
        f"uploaded 70 minutes later; and {_OLD_GPU_NAMEERROR}; use 0.37.1",
        "missing-lib",
        "S77 PyPI upload times; S110 cuda_setup/main.py of the wheels",
    ),
    "0.36.0.post2": _OLD_GPU_BAD,
    "0.37.0": _OLD_GPU_BAD,
    "0.39.0": (
        "the wheel lacks libbitsandbytes_cuda110 and cuda114 (restored in 0.39.1); use 0.39.1",
        "missing-lib",
        "S21 wheel file list; compat-facts C6",
    ),
    "0.40.0": _BIAS,
    "0.40.0.post1": _BIAS,
    "0.40.0.post2": _BIAS,
    "0.40.0.post3": _BIAS,
    "0.41.3.post1": (
        "its libraries need libstdc++ GLIBCXX_3.4.26 (GCC >= 9.1) where 0.41.3 and "
        "0.41.3.post2 need 3.4.21 (S37), and it carries stray files (bitsandbytes/distributed/, "
        "nn/helpers.py, tests/) that 0.41.3.post2, the same Python code uploaded 12 hours later, "
        "drops (S47; why it was republished: UNCONFIRMED, no release note says); use 0.41.3.post2",
        "libstdcxx",
        "S45 PyPI upload times; S47 the wheels' RECORD files and git history",
    ),
    "0.45.4": (
        "the Linux x86_64 wheel has no libbitsandbytes_cpu.so, so a CPU-only import fails "
        "(issue #1584, fixed by PR #1585 in 0.45.5); use 0.45.5",
        "missing-lib",
        "S21 wheel file list; S27 bitsandbytes issue #1584; compat-facts C6",
    ),
    # Int8Params.to() of 0.48.0 (PR #1769) keeps CB/SCB only when a device is given; the
    # maintainers' PR #1776 says it "resulted in broken generation for pre-quantized 8bit
    # checkpoints in HF transformers" (issue #1775). Only Int8Params changed: 4-bit is not
    # touched by the diff. PR #1786 (0.48.2) fixes a second 0.48.0 regression, int8 with
    # accelerate CPU/disk offload ("an uncommon edge use case"), so 0.48.2 is the release to use.
    "0.48.0": (
        "pre-quantized 8-bit (LLM.int8) checkpoints give broken generation in transformers: "
        "Int8Params.to() without a device drops CB/SCB (PR #1769; issue #1775, fixed by PR #1776 "
        "in 0.48.1), and 8-bit with accelerate CPU/disk offload regressed too (fixed by PR #1786 "
        "in 0.48.2); 4-bit layers are not touched by either change; use 0.48.2",
        "8bit-only",
        _S66,
    ),
    # Linear4bit._save_to_state_dict of 0.49.0 (PR #1804, CPU fused kernel) reads
    # self.weight.quant_state unguarded; 0.48.2 used getattr(self.weight, "quant_state", None).
    "0.49.0": (
        "Linear4bit.state_dict() raises AttributeError when the layer's weight has no quant_state "
        "(a plain Parameter, not Params4bit): saving a QLoRA checkpoint failed so (PR #1837, "
        "fixed in 0.49.1; which training setups hand it such a weight: UNCONFIRMED, the report "
        "is a multi-GPU axolotl run); use 0.49.1",
        "crash",
        _S66,
    ),
}

# Per-library glibc floors above the wheel's manylinux tag. F27 (bnb#1610, maintainer comment):
# "the CUDA 12.6 and 12.8 builds have a higher requirement than expected (manylinux 2.34)";
# reported on 0.45.3 and 0.45.5; fixed in 0.46.0 (anchors.md (c) says 0.45.3-0.45.5).
LIB_GLIBC: dict[str, tuple[dict[str, str], bool, str]] = {}
for _v in ("0.45.3", "0.45.4", "0.45.5"):
    LIB_GLIBC[_v] = (
        {"126": "2.34", "128": "2.34"},
        True,
        "cuda126/cuda128 libraries need GLIBC_2.34 (failure case F27: bnb#1610, "
        "AnswerDotAI/fsdp_qlora#76, Akegarasu/lora-scripts#694); fixed in 0.46.0",
    )
for _v in ("0.45.0", "0.45.1", "0.45.2"):
    LIB_GLIBC[_v] = (
        {"126": "2.34"},
        False,
        "UNCONFIRMED: the maintainer said the 0.45.x 'CUDA 12.6 and 12.8 builds' need glibc "
        "2.34 (F27, bnb#1610) but the reports and anchors.md name 0.45.3-0.45.5 only; whether "
        "the cuda126 library of 0.45.0-0.45.2 has the same requirement was not checked",
    )

# The libstdc++ floor of the untagged (py3-none-any) Linux x86_64 wheels: S37 read every one of
# them (0.37.0-0.42.0) with `objdump -T`: each library needs GLIBCXX_3.4.21 (GCC >= 5.1, S33) and
# at most GLIBC_2.4, so they fail on CentOS 7's libstdc++ (GLIBCXX_3.4.19), not on its glibc 2.17.
# Except 0.41.3.post1, whose 19 libraries all need GLIBCXX_3.4.26 (GCC >= 9.1; a newer compiler
# for that republished file; 0.41.3.post2 is back at 3.4.21).
# The tagged wheels (>= 0.43.0) were not read: their glibc floor (manylinux_2_24) decides first.
GLIBCXX_FLOOR = "3.4.21"
GLIBCXX_OTHER = {"0.41.3.post1": "3.4.26"}
GLIBCXX_SOURCE = "S37 objdump -T of the wheel's libraries (GLIBCXX)"
GLIBCXX_READ = Version("0.42.0")  # the newest untagged release; all older ones were read
# 0.32.0-0.36.0.post2: the survey's own objdump reading (glibcxx_max column, S75)
GLIBCXX_SOURCE_OLD = "S75 objdump -T of the wheel's libraries (GLIBCXX)"

# What the wheels' loader code does beyond the loader text (S76, read in each wheel).
OLD_LOADER_NOTE = {
    "0.32": "its loader takes the compute capability of the last GPU listed (ccs[-1]), not the "
    "highest, and loads libbitsandbytes_cudaXY.so only for 7.5, 8.0 or 8.6: any other, 8.9 "
    "and 9.0 included, gets the _nocublaslt library (S76)",
    "0.36": "its loader takes the compute capability of the last GPU listed (ccs[-1]), not the "
    "highest (S76)",
}


X86_WIN = ["linux-x86_64", "windows-x86_64"]
ARM = ["linux-aarch64"]
C2 = "S23 .github/scripts/build-cuda.sh at each tag (compat-facts C2)"
C2_NOTE = (
    "from the build script, not from the fatbins; real SASS content not inspected (UNCONFIRMED)"
)
SM = {
    "50-86": "50 52 60 61 70 75 80 86",
    "50-89": "50 52 60 61 70 75 80 86 89",
    "50-90": "50 52 60 61 70 75 80 86 89 90",
}

# (releases, platforms, cuda (of the library), sass, ptx, source, note)
# First matching band wins, so exceptions come before the general rows.
SASS_BANDS: list[tuple[str, list[str], str, str, str, str, str]] = [
    (">=0.43.0,<0.45.0", X86_WIN, "==11.7", SM["50-86"], "", C2, "C2: '11.7: up to 86'"),
    (">=0.43.0,<0.45.0", X86_WIN, "==11.8", SM["50-89"], "", C2, "C2: '11.8: without 90'"),
    (">=0.43.0,<0.45.0", X86_WIN, ">=12.0,<12.7", SM["50-90"], "", C2, ""),
    (
        ">=0.45.0,<0.46.0",
        X86_WIN,
        "==11.7",
        SM["50-86"],
        "86",
        C2 + "; bitsandbytes build-cuda.sh versions found in S23 strip ';89;90' for CUDA 11.7",
        "C2 lists 50..90 for every <=12.6 library of 0.45.x, but CUDA 11.7 cannot target "
        "sm_89/sm_90 and every build-cuda.sh version read strips them for 11.7",
    ),
    (">=0.45.0,<0.46.0", X86_WIN, ">=11.8,<12.7", SM["50-90"], "90", C2, ""),
    (">=0.45.3,<0.46.0", X86_WIN, ">=12.8,<13", "70 75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.46.0,<0.47.0", X86_WIN, "<12.7", SM["50-90"], "90", C2, ""),
    (">=0.46.0,<0.47.0", X86_WIN, ">=12.8,<13", "75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.46.0,<0.47.0", ARM, "<12.7", "75 80 90", "90", C2, ""),
    (
        ">=0.46.0,<0.47.0",
        ARM,
        ">=12.8,<13",
        "75 80 90 100",
        "100",
        C2,
        "C2 gives '12.8: 75;80;90;100' for aarch64; 0.46.1's cuda129 taken from the same column",
    ),
    (">=0.47.0,<0.48.0", X86_WIN, "<12.7", "50 60 70 75 80 86 89 90", "90", C2, ""),
    (">=0.47.0,<0.48.0", X86_WIN, ">=12.8,<13", "70 75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.47.0,<0.48.0", ARM, "<12.7", "75 80 90", "90", C2, ""),
    (">=0.47.0,<0.48.0", ARM, ">=12.8,<13", "75 80 90 100 120", "120", C2, ""),
    (">=0.48.0,<0.49.0", X86_WIN, "<12.7", "60 70 75 80 86 89 90", "90", C2, "Maxwell dropped"),
    (">=0.48.0,<0.49.0", X86_WIN, ">=12.8,<13", "70 75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.48.0,<0.49.0", X86_WIN, ">=13", "75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.48.0,<0.49.0", ARM, ">=13", "75 80 90 100 110 120", "120", C2, ""),
    (
        ">=0.48.0,<0.49.0",
        ARM,
        "<12.7",
        "75 80 90",
        "90",
        "S23 build-cuda.sh at commit 09f58ce (0.48 era: has the CUDA 13 rule, no sm_121)",
        "C2 gives no aarch64 <=12.6 row for 0.48; the commit's tag is not known",
    ),
    (
        ">=0.48.0,<0.49.0",
        ARM,
        ">=12.8,<13",
        "75 80 90 100 120",
        "120",
        "S23 build-cuda.sh at commit 09f58ce (0.48 era: has the CUDA 13 rule, no sm_121)",
        "C2 gives no aarch64 12.8/12.9 row for 0.48; the commit's tag is not known",
    ),
    (">=0.49.0", X86_WIN, "<12.7", "60 70 75 80 86 89 90", "90", C2, ""),
    (">=0.49.0", X86_WIN, ">=12.8,<13", "70 75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.49.0", X86_WIN, ">=13", "75 80 86 89 90 100 120", "120", C2, ""),
    (">=0.49.0", ARM, ">=13", "75 80 90 100 110 120 121", "121", C2, ""),
    (">=0.50.1", ["windows-arm64"], ">=13", "121", "121", C2, "Windows ARM64: 121 only"),
]

LOADERS = {
    "libcudart-search": (
        "CUDA version = cudaRuntimeGetVersion() of the first libcudart.so found in "
        "$CONDA_PREFIX, $LD_LIBRARY_PATH, other env paths, then /usr/local/cuda (not torch's); "
        "loads libbitsandbytes_cuda{XY}[_nocublaslt] (nocublaslt when the highest compute "
        "capability < 7.5); exact file only; no override; a GPU with the library missing makes "
        "import raise RuntimeError 'CUDA Setup failed despite GPU being available'",
        "S23 cuda_setup/main.py (compat-facts C4); bnb-wheels.md",
    ),
    "torch-version": (
        "CUDA version = torch.version.cuda ('12.1' -> cuda121), compute capability from torch; "
        "loads libbitsandbytes_cuda{XY}[_nocublaslt]; exact file only; the override replaces "
        "the version suffix (and the user must put the matching libcudart on the loader path); "
        "a GPU with the library missing makes import raise RuntimeError",
        "S23 cuda_setup/main.py (compat-facts C4; 0.40.1 per CHANGELOG S24, 0.40.2 wheel)",
    ),
    "exact": (
        "libbitsandbytes_cuda{major}{minor} from torch.version.cuda (rocm{XY} from "
        "torch.version.hip from 0.46), only when torch.cuda.is_available(), else the CPU "
        "library; an exact match is needed, no fallback; nocublaslt below CC 7.5 until 0.44.1; "
        "a missing library: warning + CPU library (0.43.1-0.45.5) or an error-raising "
        "placeholder, import succeeds and native calls raise (0.46.0+)",
        "S23 bitsandbytes/cextension.py + cuda_specs.py (compat-facts C4); bnb-wheels.md",
    ),
    "same-major-fallback": (
        "exact libbitsandbytes_{cuda|rocm}{XY} when shipped; else the highest shipped library "
        "of the same major <= the runtime, else the lowest of the same major > the runtime "
        "(warning 'No prebuilt binary for CUDA 12.9, loading CUDA 12.8 instead'); never a "
        "different major; BNB_CUDA_VERSION/BNB_ROCM_VERSION bypass the selection",
        "S23 bitsandbytes/cextension.py at 0.50.0/0.50.1 (compat-facts C4, PR #1980); "
        "0.50.2 read from the PyPI wheel (S21)",
    ),
}

OVERRIDES = {
    "none": dict(
        empty_disables=True,
        digits_only=False,
        text="no environment override: the variable is ignored",
        source="S21 wheel code (bnb-wheels.md)",
        confirmed=True,
        note="",
    ),
    "suffix": dict(
        empty_disables=True,
        digits_only=False,
        text="the value replaces the version digits of the library name (binary_name[:-6] + "
        "value, or stem.rstrip(digits) + value in 0.43.x); wrong for _nocublaslt names "
        "(failure case F32, fixed by PR #1318 in 0.44.0); an empty value disables it",
        source="S21 wheel code (bnb-wheels.md); compat-facts C4; F32",
        confirmed=True,
        note="",
    ),
    "regex": dict(
        empty_disables=True,
        digits_only=False,
        text="any non-empty value replaces cuda\\d+ in the library name (re.sub); exact file, "
        "no fallback; under ROCm it raises from 0.47",
        source="S23 cextension.py (compat-facts C4); S21 wheel code",
        confirmed=True,
        note="",
    ),
    "digits": dict(
        empty_disables=False,
        digits_only=True,
        text="the value must be digits and names the exact file (cuda{value}); no fallback; "
        "any other value, including an empty string, raises RuntimeError, so the old advice "
        "'export BNB_CUDA_VERSION=' breaks loading",
        source="S23 cextension.py at 0.50.x (compat-facts C4)",
        confirmed=False,
        note="UNCONFIRMED that an empty or non-digit value raises: read from the code, not "
        "tested and not documented (compat-facts 'Uncertain' 9)",
    ),
}


def q(s: str) -> str:
    """A TOML basic string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def qlist(items: list[str]) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


def split_libs(field: str) -> list[str]:
    return [] if field in ("", "-") else field.split()


def spec_of(requirement: str, name: str) -> str | None:
    """'torch<3,>=2.0' -> '>=2.0,<3'; 'torch' -> ''; '(no ...)' -> None."""
    if requirement.startswith("(") or requirement in ("", "-"):
        return None
    rest = requirement[len(name) :].strip()
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    # lower bounds first, for the reader; the set is the same.
    parts.sort(key=lambda p: (not p.startswith(">"), p))
    return ",".join(parts)


def build_lines(row: dict[str, str], key: str) -> list[str]:
    native = row["native_for_platform"] == "yes"
    other = split_libs(row["other_native_libs"])
    stems = [re.sub(r"^libbitsandbytes_|\.(so|dll|dylib)$", "", f) for f in other]
    rocm = sorted((s[4:] for s in stems if s.startswith("rocm")), key=lambda s: (s[0], int(s[1:])))
    xpu = sorted(s for s in stems if s.startswith("xpu"))
    cpu = "cpu" in stems
    unknown = [s for s in stems if s != "cpu" and not s.startswith(("rocm", "xpu"))]
    if unknown:
        raise SystemExit(f"{row['release']} {row['platform']}: unknown native libs {unknown}")
    tag = re.sub(r"^bitsandbytes-[^-]+-py3-none-|\.whl$", "", row["dist_file"])
    expected = f"bitsandbytes-{row['release']}-py3-none-{tag}.whl"
    if row["dist_file"] != expected:  # the loader derives the file name from version and tag
        raise SystemExit(f"{row['release']} {row['platform']}: unexpected file {row['dist_file']}")
    lines = [
        f"[release.builds.{key}]",
        f"tag = {q(tag)}",
        f"size = {int(row['size_bytes'])}",
        f"native = {str(native).lower()}",
        f"cuda = {q(' '.join(split_libs(row['cuda_versions'])))}",
    ]
    nocublaslt = split_libs(row["cuda_nocublaslt_versions"])
    if nocublaslt:
        lines.append(f"nocublaslt = {q(' '.join(nocublaslt))}")
    lines.append(f"cpu = {str(cpu).lower()}")
    if rocm:
        lines.append(f"rocm = {q(' '.join(rocm))}")
    if xpu:
        lines.append(f"xpu = {q(' '.join(xpu))}")
    return lines


def same_build(a: dict[str, str], b: dict[str, str]) -> bool:
    keys = (
        "dist_file",
        "size_bytes",
        "cuda_versions",
        "cuda_nocublaslt_versions",
        "other_native_libs",
    )
    return all(a[k] == b[k] for k in keys)


def read_rows(tsv: Path, old_tsv: Path | None) -> list[dict[str, str]]:
    """The survey rows: bnb-wheels.tsv (0.37.0+) and, when given, the 0.32-0.36 survey."""
    with tsv.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if old_tsv is not None:
        with old_tsv.open(newline="") as fh:
            old = list(csv.DictReader(fh, delimiter="\t"))
        if any(Version(r["release"]) > OLD_LAST for r in old):
            raise SystemExit(f"{old_tsv}: a release newer than {OLD_LAST}")
        rows = old + rows
    return rows


def generate(tsv: Path, old_tsv: Path | None = DEFAULT_OLD_TSV) -> str:
    rows = read_rows(tsv, old_tsv)
    by_release: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        by_release.setdefault(row["release"], {})[row["platform"]] = row
    releases = sorted(by_release, key=Version)

    out: list[str] = [
        "# GENERATED FILE - do not edit by hand.",
        "# Generated by tools/gen_bnb_toml.py from ../shared/facts/bnb-wheels.tsv (one row per",
        "# bitsandbytes release x platform, read from the real PyPI wheels on 2026-11-29, S21),",
        "# tools/data/bnb-wheels-0.32-0.36.tsv (0.32.0-0.36.0.post2, read 2026-12-06, S75) and",
        "# the cited tables inside the generator (compat-facts.md C1-C6, failure case F27).",
        "# Regenerate: .venv/bin/python tools/gen_bnb_toml.py",
        "#",
        "# Platform keys: repair.knowledge.PLATFORMS. A platform without a build table has no",
        "# distribution of that release. Library names are the CUDA version digits of",
        "# libbitsandbytes_cuda{XY}: '118' = CUDA 11.8, '132' = CUDA 13.2; ROCm likewise",
        "# ('714' = 7.14), written as one space-separated string per kind (cuda, nocublaslt,",
        "# rocm, xpu) to keep the file fast to parse. The wheel file name is",
        "# bitsandbytes-<version>-py3-none-<tag>.whl.",
        "# also_installs_on: platforms where pip installs the same py3-none-any file although its",
        "# Linux x86_64 .so files do not work there (native = false; 0.32.0-0.42.0).",
        "",
        "format = 1",
        "",
    ]

    for name, (text, source) in LOADERS.items():
        out += [
            f"[loader.{name}]",
            f"text = {q(text)}",
            f"source = {q(source)}",
            f"checked = {q(CHECKED)}",
            "confirmed = true",
            "",
        ]
    for name, o in OVERRIDES.items():
        out += [
            f"[override.{name}]",
            f"text = {q(str(o['text']))}",
            f"empty_disables = {str(o['empty_disables']).lower()}",
            f"digits_only = {str(o['digits_only']).lower()}",
            f"source = {q(str(o['source']))}",
            f"checked = {q(CHECKED)}",
            f"confirmed = {str(o['confirmed']).lower()}",
        ]
        if o["note"]:
            out.append(f"note = {q(str(o['note']))}")
        out.append("")

    out.append("# Compiled SASS (and PTX) targets per CUDA library band (compat-facts C2).")
    out.append("# The first band matching (release, platform, library CUDA version) applies.")
    out.append("# Releases before 0.43.0 have no band: their targets are unknown.")
    for releases_spec, platforms, cuda, sass, ptx, source, note in SASS_BANDS:
        full_note = C2_NOTE + ("; " + note if note else "")
        out += [
            "[[sass]]",
            f"releases = {q(releases_spec)}",
            f"platforms = {qlist(platforms)}",
            f"cuda = {q(cuda)}",
            f"sass = {qlist(['sm_' + a for a in sass.split()])}",
            f"ptx = {qlist(['compute_' + a for a in ptx.split()])}",
            f"source = {q(source)}",
            f"checked = {q(CHECKED)}",
            "confirmed = false",
            f"note = {q(full_note)}",
            "",
        ]

    out.append("# The GPU targets each PyPI ROCm library is built for, by the ROCm version it was")
    out.append("# built with (repair.knowledge.RocmTargets); a GPU outside them gets no kernel.")
    for releases_spec, rocm, targets, confirmed, note in ROCM_TARGETS:
        out += _cited_table(
            "rocm_targets",
            [
                ("releases", q(releases_spec)),
                ("platforms", '["linux-x86_64"]'),
                ("rocm", q(rocm)),
                ("targets", qlist(targets.split())),
                (
                    "source",
                    q("S89 (BNB_ROCM_ARCH in .github/scripts/build-rocm.sh at 0.49.0-0.50.1)"),
                ),
            ],
            confirmed,
            note,
        )
    out.append("# AMD GPUs by product name: their LLVM target (repair.knowledge.GpuTarget).")
    for name, gfx in GPU_TARGETS:
        out += _cited_table(
            "gpu_target", [("name", q(name)), ("gfx", q(gfx)), ("source", q("S91"))], True, None
        )

    out.append("# Releases that cannot import beside some torch releases although their declared")
    out.append("# requirements admit them (repair.knowledge.BnbConflict): the planner never pairs")
    out.append("# them, and an installed pair is bnb-torch-mismatch.")
    for releases_spec, platforms, torch_spec, proven_by, why, source, checked in CONFLICTS:
        out += [
            "[[conflict]]",
            f"releases = {q(releases_spec)}",
            f"platforms = {qlist(platforms)}",
            f"torch = {q(torch_spec)}",
            'torch_build = "cuda"',
            f"proven_by = {q(proven_by)}",
            f"why = {q(why)}",
            f"source = {q(source)}",
            f"checked = {q(checked)}",
            "confirmed = true",
            "",
        ]

    for rel in releases:
        plats = by_release[rel]
        v = Version(rel)
        real = {k: r for k, r in plats.items() if k != "sdist" and r["dist_kind"] != "none"}
        x86 = real["linux_x86_64"]
        for r in real.values():  # METADATA is the same in every file of a release
            if (r["requires_python"], r["torch_requirement"], r["has_4bit"]) != (
                x86["requires_python"],
                x86["torch_requirement"],
                x86["has_4bit"],
            ):
                raise SystemExit(f"{rel}: METADATA differs between platforms")
        python = spec_of(x86["requires_python"], "")
        torch = spec_of(x86["torch_requirement"], "torch")
        env, style = override_of(v)
        notes: list[str] = []
        unconfirmed: list[str] = []
        old = v <= OLD_LAST
        sources = [S75, S76] if old else [S21, "S23 loader code at the tag (C4)"]
        lines = [
            "[[release]]",
            f"version = {q(rel)}",
        ]
        if python is not None:
            lines.append(f"python = {q(python)}")
        if torch is not None:
            lines.append(f"torch = {q(torch)}")
        lines += [
            f"has_4bit = {str(x86['has_4bit'] == 'yes').lower()}",
            f"cpu_4bit = {str(x86['cpu_4bit'].startswith('yes')).lower()}",
            f"loader = {q(loader_of(v))}",
            f"override = {q(style)}",
        ]
        if env:
            lines.append(f"override_env = {q(env)}")
        lines.append(f"missing_lib = {q(missing_lib_of(v))}")
        if v <= Version("0.44.1"):
            # _nocublaslt chosen when the highest compute capability is below 7.5 (C4).
            lines.append('nocublaslt_below = "7.5"')
        sdist = plats.get("sdist", {}).get("dist_kind") == "sdist"
        lines.append(f"sdist = {str(sdist).lower()}")
        if rel in KNOWN_BAD:
            why, kind, src, *below = KNOWN_BAD[rel]
            lines.append(f"known_bad = {q(why)}")
            lines.append(f"known_bad_kind = {q(kind)}")
            if below:  # bad only on a GPU below this compute capability
                lines.append(f"known_bad_below_cc = {q(below[0])}")
            sources.append(src)
        if rel in LIB_GLIBC:
            _, ok, why = LIB_GLIBC[rel]
            notes.append(why)
            sources.append("failure case F27 (bnb#1610, maintainer comment)")
            if not ok:
                unconfirmed.append("builds.linux-x86_64.lib_glibc")
        if x86["dist_kind"] == "any_wheel" and v <= GLIBCXX_READ:
            sources.append(GLIBCXX_SOURCE_OLD if old else GLIBCXX_SOURCE)
        if old:
            notes.append(OLD_LOADER_NOTE["0.36" if v >= Version("0.36.0") else "0.32"])
        if rel == "0.42.0":
            notes.append(
                "last py3-none-any wheel: pip on macOS (before 0.49) or glibc < 2.24 silently "
                "falls back to it (S27 issue #1685, failure case F30); on glibc 2.17 it still "
                "fails where libstdc++ lacks GLIBCXX_3.4.21 (S37), not for its glibc"
            )
        if rel == "0.48.1":
            notes.append(
                "8-bit (Int8Params) with accelerate CPU/disk offload still regressed here (a meta "
                "SCB moved to the device, PR #1786 'an uncommon edge use case', fixed in 0.48.2, "
                "S66); not marked known_bad: 4-bit is not affected"
            )
        if rel == "0.50.2":
            notes.append("not in the git snapshot S23; facts from the PyPI wheels only")
        if v == Version("0.43.1"):
            notes.append("win_amd64 0.43.1 stops at cuda123 (cuda124 on Linux only)")
        lines += [
            f"source = {q('; '.join(sources))}",
            f"checked = {q(CHECKED_OLD if old else CHECKED)}",
            "confirmed = true",  # the release and its wheels are read from PyPI
        ]
        if unconfirmed:
            lines.append(f"unconfirmed = {qlist(unconfirmed)}")
        if notes:
            lines.append(f"note = {q('; '.join(notes))}")
        out += lines
        out.append("")
        builds: dict[str, list[str]] = {}
        also: list[str] = []
        for tsv_key, key in PLATFORM_KEYS.items():
            prow = plats.get(tsv_key)
            if prow is None or prow["dist_kind"] == "none":
                continue
            if key != "linux-x86_64" and prow["dist_kind"] == "any_wheel":
                # the same py3-none-any file as on Linux x86_64, with Linux-only .so files
                if not same_build(prow, x86) or prow["native_for_platform"] == "yes":
                    raise SystemExit(f"{rel} {tsv_key}: any-wheel differs from linux_x86_64")
                also.append(key)
                continue
            blines = build_lines(prow, key)
            if key == "linux-x86_64" and prow["dist_kind"] == "any_wheel" and v <= GLIBCXX_READ:
                floor = prow.get("glibcxx_max") or GLIBCXX_OTHER.get(rel, GLIBCXX_FLOOR)
                blines.append(f"glibcxx = {q(floor)}")
            if key == "linux-x86_64" and rel in LIB_GLIBC:
                libs, _, _ = LIB_GLIBC[rel]
                inline = ", ".join(f"{q(k)} = {q(val)}" for k, val in libs.items())
                blines.append(f"lib_glibc = {{ {inline} }}")
            builds[key] = blines
        if x86["dist_kind"] == "any_wheel":
            # Not queried by the survey: a py3-none-any wheel without Requires-Python installs
            # on macOS x86_64 too (bnb-wheels.md: "pip installs the any-wheel on ... macOS").
            also.append("macos-x86_64")
            out.insert(len(out) - 1, f"also_installs_on = {qlist(also)}")
        for key in PLATFORM_ORDER:
            if key in builds:
                out += builds[key]
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _cited_table(
    kind: str, fields: list[tuple[str, str]], confirmed: bool, note: str | None
) -> list[str]:
    """One [[kind]] table of ROCm knowledge: its fields (already TOML values), then its check
    date, whether it is confirmed, and the note that says why not."""
    return [
        f"[[{kind}]]",
        *(f"{key} = {value}" for key, value in fields),
        f"checked = {q(CHECKED_ROCM)}",
        f"confirmed = {str(confirmed).lower()}",
        *([f"note = {q(note)}"] if note else []),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tsv", type=Path, default=DEFAULT_TSV)
    ap.add_argument("--old-tsv", type=Path, default=DEFAULT_OLD_TSV)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    text = generate(args.tsv, args.old_tsv)
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'differs from the generated text'}")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
