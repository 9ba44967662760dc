"""Benchmark: ``preflight.check()`` from a training script, in the real torch 2.13.0 CPU +
bitsandbytes venv (tests/venvs.py ``torch213-bnb``).

    python bench/bench_preflight.py [--runs 7]

cold: a fresh interpreter doing ``from repair import preflight; preflight.check()`` (imports,
knowledge base, the target script child, NVML); warm: a second ``check()`` in the same process
(a script that asks twice); ``qfix plan --json`` of the same venv, interleaved, as the
reference under the same machine load. Medians to stdout and bench/results/preflight.json.
Target (issue 10): well under a second; torch is never imported (checked).
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

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from repair import preflight
r = preflight.check()
t1 = time.perf_counter()
preflight.check()
t2 = time.perf_counter()
print(json.dumps({"cold": t1 - t0, "warm": t2 - t1, "ok": r.ok,
                  "torch_imported": "torch" in sys.modules}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    venv = get_venv("torch213-bnb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("VIRTUAL_ENV", None)
    rows = []
    plans = []
    plan_argv = [sys.executable, "-m", "repair", "plan", "--json", "--python", str(venv.python)]
    for _ in range(args.runs + 1):  # the first run warms the file cache and writes bytecode
        done = subprocess.run(
            [str(venv.python), "-c", CHILD], capture_output=True, text=True, env=env, timeout=300
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        # the same question through the CLI, interleaved: the reference under the same load
        t = time.perf_counter()
        subprocess.run(plan_argv, capture_output=True, env=env, timeout=300, check=False)
        plans.append(time.perf_counter() - t)
    rows, plans = rows[1:], plans[1:]
    assert not any(r["torch_imported"] for r in rows), "preflight imported torch"
    result = {
        "runs": args.runs,
        "cold_median_s": round(statistics.median(r["cold"] for r in rows), 3),
        "warm_median_s": round(statistics.median(r["warm"] for r in rows), 3),
        "qfix_plan_median_s": round(statistics.median(plans), 3),
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    print(
        f"| preflight.check() | cold {result['cold_median_s']:.3f} s | "
        f"warm {result['warm_median_s']:.3f} s | "
        f"qfix plan --json {result['qfix_plan_median_s']:.3f} s"
        f" | load {result['load_average']:.1f} on "
        f"{result['cpus']} CPUs |"
    )
    out = ROOT / "bench" / "results" / "preflight.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
