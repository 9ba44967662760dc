"""What ``qfix verify`` costs on the CPU, against a bare ``import torch, bitsandbytes``.

    .venv/bin/python bench/bench_verify.py [--runs 5] [--python PATH]

Runs, in the same venv (default: the test venv torch 2.13.0 CPU + bitsandbytes 0.50.2 +
transformers 5.24.0 + accelerate, built by tests/venvs.py), interleaved so that load on the
machine hits all of them alike:

- ``bare``: ``python -c "import torch, bitsandbytes"`` (what any use of bnb pays; the target's
  reference);
- ``bare-no-teardown``: the same ending in ``os._exit(0)``. Interpreter teardown with torch and
  bitsandbytes loaded takes most of a second; the verify script skips it the same way (its result
  is already written, and CUDA teardown can hang), so this is the stricter floor to compare with;
- ``verify-none``: ``run_verify(device="cpu", model="none")``, end to end (child start, imports,
  NF4 + FP4 layers, JSON, parsing);
- ``verify-tiny``: ``run_verify(device="cpu", model="tiny")`` (adds transformers and the model).

Target (issue 4): verify-none costs at most 1.5x bare. Prints a markdown table and writes
bench/results/verify.json. Every child goes through repair.process.run, as qfix runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair.process import run  # noqa: E402
from repair.verify import run_verify  # noqa: E402

TARGET_RATIO = 1.5


def _bare(python: str, code: str = "import torch, bitsandbytes") -> float:
    t0 = time.perf_counter()
    done = run([python, "-c", code], timeout=300)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"bare import failed in {python}: {done.stderr.strip()[-300:]}")
    return elapsed


def _verify(python: str, model: str) -> float:
    t0 = time.perf_counter()
    v = run_verify(python, device="cpu", model=model, timeout=300)
    elapsed = time.perf_counter() - t0
    if not v.ok:
        raise SystemExit(f"verify (model {model}) failed in {python}: {v.summary}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", help="target interpreter (default: the test venv with accelerate)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "verify.json"))
    args = ap.parse_args()

    python = args.python
    if python is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from tests.venvs import SPECS, get_venv

        python = str(
            get_venv("torch213-bnb-hf", (*SPECS["torch213-bnb"], "accelerate==1.15.0")).python
        )

    cases = {
        "bare": lambda: _bare(python),
        "bare-no-teardown": lambda: _bare(python, "import torch, bitsandbytes, os; os._exit(0)"),
        "verify-none": lambda: _verify(python, "none"),
        "verify-tiny": lambda: _verify(python, "tiny"),
    }
    for fn in cases.values():  # warm the page cache and the bytecode caches once
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():
            times[name].append(fn())

    med = {name: statistics.median(ts) for name, ts in times.items()}
    ratio_none = med["verify-none"] / med["bare"]
    ratio_tiny = med["verify-tiny"] / med["bare"]
    ratio_strict = med["verify-none"] / med["bare-no-teardown"]
    result = {
        "schema": "qfix.bench.verify/1",
        # relative to the root: results carry no path of this machine
        "python": os.path.relpath(python, ROOT),
        "host": {
            "machine": platform.machine(),
            "system": platform.system(),
            "python": platform.python_version(),
        },
        "runs": args.runs,
        "seconds": {name: [round(t, 4) for t in ts] for name, ts in times.items()},
        "median_s": {name: round(m, 4) for name, m in med.items()},
        "ratio_verify_none_to_bare": round(ratio_none, 3),
        "ratio_verify_tiny_to_bare": round(ratio_tiny, 3),
        "ratio_verify_none_to_bare_no_teardown": round(ratio_strict, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio_none <= TARGET_RATIO,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"| case | median (s) | runs (s) | x bare |  ({args.runs} runs each, {python})")
    print("|---|---:|---|---:|")
    for name, ts in times.items():
        runs = ", ".join(f"{t:.2f}" for t in ts)
        print(f"| {name} | {med[name]:.2f} | {runs} | {med[name] / med['bare']:.2f} |")
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(
        f"\nverify (model none) / bare import = {ratio_none:.2f} ({verdict} the "
        f"{TARGET_RATIO}x target); / bare without teardown = {ratio_strict:.2f}; "
        f"model tiny = {ratio_tiny:.2f}x bare. Written to {out}"
    )
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
