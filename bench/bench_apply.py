"""Benchmark of `qfix apply`: uv against pip for one plan, and rollback of a torch-sized change.

Run:  .venv/bin/python bench/bench_apply.py [--runs 3] [--out bench/results/apply.json]

1. **uv vs pip**: one plan, applied with ``apply_plan`` into a fresh venv per run (made by
   ``create_venv``, not timed): the torch family from the local PyTorch-style index
   (tests/index_server.py; generated ``torch/torchvision/torchaudio 2.13.0+cu130``-style wheels)
   plus the real ``bitsandbytes==0.50.2`` from PyPI with its dependencies (numpy, packaging),
   each installer with its own default index settings. Warm: each installer's cache was filled
   by one untimed run first (the common case on a machine that installs things); cold: pip with
   ``PIP_NO_CACHE_DIR=1``, uv with an empty ``UV_CACHE_DIR`` every run (everything downloaded).
   Target: uv >= 3x faster.
2. **Rollback of a torch-sized change**: a copy of the test venv with the real torch 2.13.0 CPU
   wheel (+ bitsandbytes 0.50.2 + transformers; ~31,000 files, 1.3 GB) is changed to another
   torch variant by a real apply that is SIGKILLed just before verification (so the change is
   complete and the journal unfinished); then, with the index server stopped, ``rollback()``
   runs in a child inside a fresh network namespace (``unshare -rn``: no network, not even
   loopback) with ``PIP_NO_INDEX=1``. Its wall time is measured, and ``pip freeze`` is compared
   with the state before. Also measured: the automatic rollback after a failed verification.
   Target: <= 10 s, no network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from repair.apply.installers import find_uv  # noqa: E402
from repair.apply.transaction import apply_plan  # noqa: E402
from repair.apply.venv import create_venv  # noqa: E402
from tests.index_server import IndexServer  # noqa: E402
from tests.venvs import copy_venv, get_venv  # noqa: E402


def quiet(line: str) -> None:
    pass


def freeze(python: str | Path) -> str:
    return subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def install_plan(idx: IndexServer) -> dict:
    base = idx.torch_base
    steps = [
        {
            "action": "install",
            "package": p,
            "from": None,
            "to": v,
            "index_url": f"{base}/cu130",
            "because": ["torch-missing"],
            "group": "torch",
        }
        for p, v in (
            ("torch", "2.13.0+cu130"),
            ("torchvision", "0.28.0+cu130"),
            ("torchaudio", "2.13.0+cu130"),
        )
    ]
    steps.append(
        {
            "action": "install",
            "package": "bitsandbytes",
            "from": None,
            "to": "0.50.2",
            "index_url": None,
            "because": ["bnb-missing"],
            "group": "pypi",
        }
    )
    return {
        "schema": "qfix.plan/1",
        "healthy": False,
        "target": {"python": None},
        "findings": [],
        "steps": steps,
        "manual": [],
        "commands": [],
        "unknown": [],
        "fingerprint": "sha256:" + "0" * 64,
        "torch_index_base": base,
    }


def one_apply(work: Path, idx: IndexServer, installer: str, env: dict[str, str]) -> dict:
    path = work / f"venv-{installer}-{time.monotonic_ns()}"
    python = create_venv(path, sys.executable)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        out = apply_plan(install_plan(idx), python=python, installer=installer, progress=quiet)
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert out.ok, out.error
    assert "bitsandbytes==0.50.2" in freeze(python)
    steps = sum(v for k, v in out.timings.items() if k.startswith("step:"))
    shutil.rmtree(path)
    return {"total_s": round(out.timings["total"], 3), "installers_s": round(steps, 3)}


def bench_installers(work: Path, idx: IndexServer, runs: int) -> dict:
    results: dict = {}
    base_env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    uv_warm_cache = str(work / "uv-cache-warm")
    for mode in ("warm", "cold"):
        for installer in ("pip", "uv"):
            times = []
            if mode == "warm":
                env = {**base_env, "UV_CACHE_DIR": uv_warm_cache}
                one_apply(work, idx, installer, env)  # fill the cache, untimed
            for i in range(runs):
                if mode == "cold":
                    env = {
                        **base_env,
                        "PIP_NO_CACHE_DIR": "1",
                        "UV_CACHE_DIR": str(work / f"uv-cold-{i}"),
                    }
                times.append(one_apply(work, idx, installer, env))
                print(f"  {mode} {installer} run {i + 1}: {times[-1]}", flush=True)
            results.setdefault(mode, {})[installer] = {
                "runs": times,
                "median_total_s": statistics.median(t["total_s"] for t in times),
                "median_installers_s": statistics.median(t["installers_s"] for t in times),
            }
        r = results[mode]
        r["speedup_total"] = round(r["pip"]["median_total_s"] / r["uv"]["median_total_s"], 2)
        r["speedup_installers"] = round(
            r["pip"]["median_installers_s"] / r["uv"]["median_installers_s"], 2
        )
    return results


ROLLBACK_CHILD = """
import json, sys, time
from repair.apply.transaction import rollback
t0 = time.monotonic()
out = rollback(sys.argv[1], progress=lambda s: None)
print(json.dumps({"wall_s": time.monotonic() - t0, "ok": out.ok, "rolled_back": out.rolled_back,
                  "error": out.error}))
"""

APPLY_CHILD = """
import json, sys
from repair.apply.transaction import apply_plan
out = apply_plan(json.load(open(sys.argv[1])), python=sys.argv[2], installer=sys.argv[3],
                 verify=lambda: True, progress=lambda s: print(s, flush=True))
"""


def bench_rollback(work: Path, idx: IndexServer, runs: int) -> dict:
    source = get_venv("torch213-bnb")
    venv = copy_venv(source, work / "torchvenv")
    python = str(venv.python)
    files = sum(len(f) for _, _, f in os.walk(venv.path))
    before = freeze(python)
    assert "torch==2.13.0+cpu" in before

    def change() -> dict:
        """torch 2.13.0+cpu (real) -> 2.13.0+cu130 (generated), on the index's current port."""
        base = idx.torch_base
        step = {
            "action": "install",
            "package": "torch",
            "from": "2.13.0+cpu",
            "to": "2.13.0+cu130",
            "index_url": f"{base}/cu130",
            "because": ["torch-cpu-build"],
            "group": "torch",
        }
        return {
            "schema": "qfix.plan/1",
            "healthy": False,
            "target": {"python": python},
            "findings": [],
            "manual": [],
            "commands": [],
            "unknown": [],
            "fingerprint": "sha256:" + "0" * 64,
            "torch_index_base": base,
            "steps": [step],
        }

    plan_file = work / "torch-plan.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    unshare = shutil.which("unshare")
    can_unshare = (
        unshare is not None
        and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0
    )
    out: dict = {
        "venv_files": files,
        "venv_bytes": _size(venv.path),
        "offline": [],
        "automatic": [],
        "network_isolation": "unshare -rn" if can_unshare else "none",
    }
    for installer in ("pip", "uv"):
        for _ in range(runs):
            if not idx.running:
                idx.start()
            plan_file.write_text(json.dumps(change()))
            killed = subprocess.run(
                [sys.executable, "-c", APPLY_CHILD, str(plan_file), python, installer],
                env={**env, "QFIX_TEST_KILL_AT": "verify"},
                capture_output=True,
                text=True,
                timeout=900,
                cwd=str(REPO),
            )
            assert killed.returncode == -9, killed.stdout + killed.stderr
            snap = next(line for line in killed.stdout.splitlines() if line.startswith("snapshot:"))
            assert "torch==2.13.0+cu130" in freeze(python)
            idx.stop()  # no index to fall back on
            argv = [sys.executable, "-c", ROLLBACK_CHILD, python]
            if can_unshare:
                argv = [unshare, "-rn", *argv]
            t0 = time.monotonic()
            done = subprocess.run(
                argv,
                env={**env, "PIP_NO_INDEX": "1"},
                capture_output=True,
                text=True,
                timeout=300,
                cwd=str(REPO),
            )
            wall = time.monotonic() - t0
            res = json.loads(done.stdout.strip().splitlines()[-1])
            assert res["ok"] and res["rolled_back"], res
            same = freeze(python) == before
            assert same, "pip freeze differs after rollback"
            out["offline"].append(
                {
                    "installer": installer,
                    "rollback_s": round(res["wall_s"], 3),
                    "process_wall_s": round(wall, 3),
                    "freeze_identical": same,
                    # results name the temporary folder <tmp>: no path of this machine
                    "apply_snapshot_line": snap.replace(str(work), "<tmp>"),
                }
            )
            print(f"  offline rollback after {installer}: {out['offline'][-1]}", flush=True)
    idx.start()
    for installer in ("pip", "uv"):
        res = apply_plan(
            change(), python=python, installer=installer, verify=lambda: False, progress=quiet
        )
        assert res.rolled_back, res.error
        out["automatic"].append(
            {
                "installer": installer,
                "snapshot_s": round(res.timings["snapshot"], 3),
                "rollback_s": round(res.timings["rollback"], 3),
                "freeze_identical": freeze(python) == before,
            }
        )
        print(f"  automatic rollback after {installer}: {out['automatic'][-1]}", flush=True)
    out["max_rollback_s"] = max(r["rollback_s"] for r in out["offline"] + out["automatic"])
    shutil.rmtree(venv.path)
    return out


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "apply.json"))
    args = ap.parse_args()
    uv = find_uv()
    if uv is None:
        print("uv not found: the comparison needs it", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="qfix-bench-apply-"))
    idx = IndexServer(work / "index").start()
    try:
        print("uv vs pip (same plan, fresh venv per run):", flush=True)
        inst = bench_installers(work, idx, args.runs)
        print("rollback of a torch-sized change:", flush=True)
        rb = bench_rollback(work, idx, args.runs)
    finally:
        idx.stop()
        shutil.rmtree(work, ignore_errors=True)
    pip_version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True
    ).stdout.split()[1]
    uv_version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    result = {
        "schema": "qfix.bench.apply/1",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pip": pip_version,
            "uv": uv_version,
        },
        "runs": args.runs,
        "plan": "torch/torchvision/torchaudio 2.13.0+cu130-style generated wheels from a "
        "loopback PyTorch-style index + bitsandbytes==0.50.2 (real, PyPI) and its deps",
        "installers": inst,
        "rollback": rb,
        "targets": {
            "uv_speedup_warm": {
                "target": ">= 3",
                "value": inst["warm"]["speedup_total"],
                "met": inst["warm"]["speedup_total"] >= 3,
            },
            "rollback_s": {
                "target": "<= 10",
                "value": rb["max_rollback_s"],
                "met": rb["max_rollback_s"] <= 10,
            },
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
