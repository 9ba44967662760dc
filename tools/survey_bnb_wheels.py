#!/usr/bin/env python3
"""Survey bitsandbytes releases on PyPI into wheel-survey rows (the columns of bnb-wheels.tsv).

For each release: `pip download --no-deps` of the host default (Linux x86_64) file, then once per
other platform with `--only-binary=:all: --python-version 3.11 --platform ...` (which file pip
picks there); the wheel is read as a zip (library file list, METADATA, WHEEL tag) and
`objdump -T` gives the newest GLIBC_/GLIBCXX_ symbol versions its libraries need. The sdist row
comes from PyPI's JSON API (file name and size; not downloaded). The loader columns (which file
picks the library, how) are summarised per release band from the wheel's own code.

    python tools/survey_bnb_wheels.py 0.32.0 0.35.0 ... --dir /tmp/bnb --out FILE.tsv

tools/gen_bnb_toml.py reads its output (tools/data/bnb-wheels-0.32-0.36.tsv, source S75) next
to the 0.37.0+ survey. Needs the network, pip and objdump; not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from packaging.version import Version

# the columns of bnb-wheels.tsv, then the objdump readings
COLUMNS = (
    *("release", "platform", "pip_args", "dist_file", "dist_kind", "native_for_platform"),
    *("size_bytes", "cuda_versions", "cuda_nocublaslt_versions", "other_native_libs"),
    *("native_libs", "requires_python", "requires_dist", "torch_requirement", "has_4bit"),
    *("fourbit_grep_counts", "cpu_4bit", "lib_selector_file", "bnb_cuda_version_env"),
    *("lib_selection_summary", "glibc_max", "glibcxx_max"),
)
# TSV platform -> pip's --platform arguments (as the 0.37.0+ survey, bnb-wheels.md)
PLATFORMS = {
    "win_amd64": ["win_amd64"],
    "win_arm64": ["win_arm64"],
    "linux_aarch64": ["manylinux2014_aarch64", "manylinux_2_24_aarch64"],
    "macosx_arm64": ["macosx_14_0_arm64"],
}
_LEGACY = (
    "evaluate_cuda_setup(): CUDA version = cudaRuntimeGetVersion() of the first libcudart.so "
    "found via $CONDA_PREFIX/lib, $LD_LIBRARY_PATH, other env-var paths, then "
    "/usr/local/cuda/lib64; compute capability of the last GPU cuDeviceGetCount lists (ccs[-1]) "
    "via libcuda.so; "
)
SUMMARY = {
    # 0.32.x-0.35.x: bitsandbytes/cuda_setup/main.py + cextension.py of the wheels
    "0.32": _LEGACY
    + "loads libbitsandbytes_cuda{XY}.so when that CC is one of 7.5, 8.0, 8.6, else "
    "..._nocublaslt.so (so 8.9 and 9.0 too); libbitsandbytes_cpu.so when no libcudart.so is "
    "found; no env override; named lib missing -> it tries libbitsandbytes.so (not shipped) and "
    "import raises Exception 'CUDA SETUP: Setup Failed!'",
    # 0.36.x: cuda_setup/main.py is_cublasLt_compatible(), CUDASetup.run_cuda_setup()
    "0.36": _LEGACY
    + "loads libbitsandbytes_cuda{XY}.so when CC >= 7.5, else ..._nocublaslt.so; no env "
    "override; torch.cuda unavailable or no libcudart.so -> libbitsandbytes_cpu.so; named lib "
    "missing -> 'Required library version not found' and it loads libbitsandbytes_cpu.so, "
    "import succeeds with the warning 'compiled without GPU support' (COMPILED_WITH_CUDA False)",
}


def pip_download(pip: list[str], version: str, dest: Path, extra: list[str]) -> str | None:
    """The file name pip picks for bitsandbytes==version with ``extra`` arguments, or None."""
    argv = [*pip, "download", "--no-deps", f"bitsandbytes=={version}", "-d", str(dest), *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    found = re.findall(r"(bitsandbytes-[^\s/]+\.(?:whl|tar\.gz))", out.stdout + out.stderr)
    return found[-1] if out.returncode == 0 and found else None


def symbol_floor(data: bytes, prefix: str) -> str:
    """The newest ``prefix``N.M symbol version in ``objdump -T`` output."""
    found = set(re.findall(prefix + r"([\d.]+)", data.decode("utf-8", "replace")))
    if not found:
        return "-"
    return max(found, key=lambda s: tuple(int(x) for x in s.split(".")))


def read_wheel(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        libs = sorted(n.rsplit("/", 1)[-1] for n in names if "/libbitsandbytes" in n)
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        dumps = b""
        with tempfile.TemporaryDirectory() as tmp:
            for n in names:
                if n.endswith(".so"):
                    so = z.extract(n, tmp)
                    dumps += subprocess.run(
                        ["objdump", "-T", so], capture_output=True, timeout=120
                    ).stdout
        code = b"".join(z.read(n) for n in names if n.endswith(".py")).decode("utf-8", "replace")
    full = [m.group(1) for x in libs if (m := re.fullmatch(r"libbitsandbytes_cuda(\d+)\.so", x))]
    nocub = [m.group(1) for x in libs if (m := re.match(r"libbitsandbytes_cuda(\d+)_nocub", x))]
    other = [x for x in libs if not x.startswith("libbitsandbytes_cuda")]
    header = [line for line in meta.splitlines() if ":" in line]
    py = [h.split(":", 1)[1].strip() for h in header if h.startswith("Requires-Python:")]
    dist = [h.split(":", 1)[1].strip() for h in header if h.startswith("Requires-Dist:")]
    torch = [d for d in dist if re.match(r"torch\b", d)]
    counts = {k: len(re.findall(k, code)) for k in ("Linear4bit", "quantize_4bit", "nf4")}
    has4 = any(counts.values())
    return {
        "cuda_versions": " ".join(sorted(full, key=int)) or "-",
        "cuda_nocublaslt_versions": " ".join(sorted(nocub, key=int)) or "-",
        "other_native_libs": " ".join(other) or "-",
        "native_libs": ",".join(libs),
        "requires_python": py[0] if py else "(none)",
        "requires_dist": "; ".join(dist) if dist else "(none)",
        "torch_requirement": torch[0] if torch else "(no torch requirement)",
        "has_4bit": "yes" if has4 else "no",
        "fourbit_grep_counts": " ".join(f"{k}:{v}" for k, v in counts.items()),
        "cpu_4bit": "n/a (no 4-bit code)" if not has4 else "not read",
        "glibc_max": symbol_floor(dumps, "GLIBC_"),
        "glibcxx_max": symbol_floor(dumps, "GLIBCXX_"),
    }


def survey(version: str, dest: Path, pip: list[str], pypi: dict) -> list[dict[str, str]]:
    v = Version(version)
    host = pip_download(pip, version, dest, [])
    if host is None or not host.endswith(".whl"):
        raise SystemExit(f"{version}: pip found no wheel for this host")
    wheel = read_wheel(dest / host)
    band = "0.36" if v >= Version("0.36.0") else "0.32"
    common = {
        "release": version,
        "lib_selector_file": "bitsandbytes/cuda_setup/main.py",
        "bnb_cuda_version_env": "no",
        "lib_selection_summary": SUMMARY[band],
        **wheel,
    }
    any_wheel = host.endswith("-py3-none-any.whl")
    size = str((dest / host).stat().st_size)
    rows = [
        {
            **common,
            "platform": "linux_x86_64",
            "pip_args": "(none: host default linux x86_64)",
            "dist_file": host,
            "dist_kind": "any_wheel" if any_wheel else "platform_wheel",
            "native_for_platform": "yes",
            "size_bytes": size,
        }
    ]
    for key, plats in PLATFORMS.items():
        extra = ["--only-binary=:all:", "--python-version", "3.11"]
        for p in plats:
            extra += ["--platform", p]
        got = pip_download(pip, version, dest, extra)
        row = {**common, "platform": key, "pip_args": " ".join(extra)}
        if got is None:
            row.update(dist_file="-", dist_kind="none", native_for_platform="no", size_bytes="0")
        elif got != host or not any_wheel:
            raise SystemExit(f"{version} {key}: pip picks {got}; only any-wheels are surveyed")
        else:
            row.update(
                dist_file=got,
                dist_kind="any_wheel",
                native_for_platform="no (.so only; py3-none-any wheel)",
                size_bytes=size,
            )
        rows.append(row)
    sdists = [f for f in pypi["releases"][version] if f["packagetype"] == "sdist"]
    sdist = {**common, "platform": "sdist", "pip_args": "(PyPI JSON API; not downloaded)"}
    sdist.update({k: "(not read)" for k in wheel})
    if sdists:
        sdist.update(
            dist_file=sdists[0]["filename"],
            dist_kind="sdist",
            native_for_platform="not read",
            size_bytes=str(sdists[0]["size"]),
        )
    else:
        sdist.update(dist_file="-", dist_kind="none", native_for_platform="no", size_bytes="0")
    rows.append(sdist)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("versions", nargs="+")
    ap.add_argument("--dir", type=Path, required=True, help="download folder (kept)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pip", default=f"{sys.executable} -m pip")
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    url = "https://pypi.org/pypi/bitsandbytes/json"
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - fixed https URL
        pypi = json.load(resp)
    rows: list[dict[str, str]] = []
    for version in sorted(args.versions, key=Version):
        rows += survey(version, args.dir, args.pip.split(), pypi)
        print(f"{version}: {rows[-6]['dist_file']}", file=sys.stderr)
    with args.out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
