"""Benchmark: `qfix detect --json` and `qfix plan --json` against the tool users run today,
`python -m torch.utils.collect_env`, in the same venv (real torch 2.13.0 CPU + bitsandbytes).

    python bench/bench_cli.py [--runs 7]

Each command runs once to warm the file cache and write bytecode (as an installed qfix has), then
`--runs` times, interleaved. Medians and ratios go to stdout (markdown) and
bench/results/cli.json. Targets (issues 2 and 3): detect <= 0.5 s and >= 4x faster than
collect_env; plan (detect + diagnose + plan) <= 0.3 s and >= 7x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.venvs import get_venv  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        check=False,
        timeout=300,
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    venv = get_venv("torch213-bnb")
    py = str(venv.python)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what an installed qfix does
    env.pop("VIRTUAL_ENV", None)
    qfix = [sys.executable, "-m", "repair"]
    cases = {
        "qfix detect --json": [*qfix, "detect", "--json", "--python", py],
        "qfix plan --json": [*qfix, "plan", "--json", "--python", py],
        "python -m torch.utils.collect_env": [py, "-m", "torch.utils.collect_env"],
    }
    for argv in cases.values():
        timed(argv, env)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            times[name].append(timed(argv, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["python -m torch.utils.collect_env"]
    rows = []
    print("| command | median (s) | min | max | collect_env / this |\n|---|---:|---:|---:|---:|")
    for name, v in times.items():
        ratio = base / med[name]
        rows.append(
            {
                "command": name,
                "median_s": round(med[name], 4),
                "runs": v,
                "speedup_vs_collect_env": round(ratio, 2),
            }
        )
        print(f"| `{name}` | {med[name]:.3f} | {min(v):.3f} | {max(v):.3f} | {ratio:.1f}x |")
    out = ROOT / "bench" / "results" / "cli.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "venv": "torch 2.13.0+cpu, bitsandbytes 0.50.2, transformers 5.24.0",
                "cpu_count": os.cpu_count(),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    ok = (
        med["qfix detect --json"] <= 0.5
        and base / med["qfix detect --json"] >= 4
        and med["qfix plan --json"] <= 0.3
        and base / med["qfix plan --json"] >= 7
    )
    print(f"\ntargets met: {ok}")


if __name__ == "__main__":
    main()
