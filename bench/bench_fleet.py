"""Benchmark of `qfix fleet plan` on 10,000 node records.

Run:  .venv/bin/python bench/bench_fleet.py [--nodes 10000] [--runs 5] [--out FILE]

The records are synthetic: every shipped example (plans/examples/*.json, as `qfix detect --json`
prints it) spread over the nodes round-robin, each node with its own noise (venv path,
CUDA_VISIBLE_DEVICES, driver probe attempts: tests/fleet_support.with_noise), written as one
qfix.node/1 file per node into a temp folder. Each run is the real command in a child process,
`python -m repair fleet plan DIR --json`, timed from start to exit (interpreter start and
imports included), and its peak memory is the child's ru_maxrss; its CPU time (user + system,
the child's own getrusage) is reported too, the steadier figure on a shared machine, with the
load average before and after the runs. Also reported: the same work in-process (CPU time),
split into reading + grouping and planning (one plan per group).
Targets: < 1 s and < 200 MiB peak. ``--baseline TREE`` (a checkout of an older qfix, e.g. from
``git archive``) also times that tree's command on the same records, runs interleaved with the
current tree's, so both see the same machine load. Both trees' ``repair`` package is byte-compiled
first, as ``pip install`` does (with PYTHONDONTWRITEBYTECODE set, a source checkout would
otherwise recompile every qfix module on every run, ~0.5 s here); ``--no-compile`` measures the
cold source tree instead.

Side by side (``--clubak PATH``, default: ``clubak`` on PATH, skipped when absent): what a team
without qfix runs to find which nodes share a setup, ClusterShell's ``clubak -b`` (gather
identical outputs) over one ``node: digest`` line per node, the digest of the node's facts
already de-noised -- the best case for it: the lines are computed before the timing, and clubak
only folds them (no plan, no classes). Timed the same way (wall, CPU and peak of the child).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from repair.fleet.grouping import canonical, canonical_key, default_plan_fn, group_records  # noqa: E402
from repair.fleet.records import iter_records  # noqa: E402
from tests.fleet_support import detect_record, example_facts, with_noise  # noqa: E402


def write_fleet(folder: Path, nodes: int) -> int:
    examples = example_facts()
    rng = random.Random(10_000)
    for n in range(nodes):
        _, facts = examples[n % len(examples)]
        name = f"gpu{n:05d}"
        rec = detect_record(name, with_noise(facts, rng, n))
        (folder / f"{name}.detect.json").write_text(json.dumps(rec))
    return len({canonical(f)[0] for _, f in examples})


def child_run(folder: Path, tree: Path = REPO) -> tuple[float, float, int, float]:
    """One `python -m repair fleet plan DIR --json` from ``tree``: (seconds, peak MiB, groups,
    CPU seconds). The peak and the CPU time are the child's own getrusage, read by a wrapper
    (RUSAGE_CHILDREN here would keep the largest peak of all runs); they include the child's
    own workers (its RUSAGE_CHILDREN: the CPU time summed, the largest peak of one process)."""
    wrapper = (
        "import resource, runpy, sys; sys.argv = ['repair'] + sys.argv[1:]\n"
        # the tree's own plans/: an editable install of the current tree maps repair.plans
        # to its plans/ for every tree (setuptools' _EditableFinder), the baseline's included
        "sys.meta_path = [f for f in sys.meta_path if 'EditableFinder' not in repr(f)]\n"
        "try:\n    runpy.run_module('repair', run_name='__main__')\n"
        "finally:\n    u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    sys.stderr.write('peak_kib=%d cpu_s=%.3f\\n' % (max(u.ru_maxrss, c.ru_maxrss),\n"
        "        u.ru_utime + u.ru_stime + c.ru_utime + c.ru_stime))"
    )
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, "fleet", "plan", str(folder), "--json"],
        capture_output=True, text=True, timeout=600, cwd=tree,
    )  # fmt: skip
    took = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"fleet plan failed: {done.stderr}")
    tail = done.stderr.rsplit("peak_kib=", 1)[1].split()
    peak, cpu = int(tail[0]), float(tail[1].removeprefix("cpu_s="))
    groups = len(json.loads(done.stdout)["groups"])
    return took, peak / 1024, groups, cpu


def clubak_lines(folder: Path) -> str:
    """One ``node: digest`` line per record file, the digest of its de-noised facts: what
    ``clubak -b`` is given (nodes with equal facts print equal lines)."""
    lines = []
    for path in sorted(folder.iterdir()):
        rec = json.loads(path.read_text())
        digest = hashlib.sha256(canonical_key(rec["document"]).encode()).hexdigest()[:16]
        lines.append(f"{rec['node']}: {digest}\n")
    return "".join(lines)


def clubak_run(clubak: str, lines: str) -> tuple[float, float, int, float]:
    """One ``clubak -b`` over ``lines``: (seconds, peak MiB, groups, CPU seconds), the child's
    own rusage (os.wait4)."""
    with tempfile.TemporaryFile("w+") as feed:
        feed.write(lines)
        feed.seek(0)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [clubak, "-b"], stdin=feed, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"clubak -b failed with exit code {proc.returncode}")
    groups = out.decode().count("---------------\n") // 2
    return took, usage.ru_maxrss / 1024, groups, usage.ru_utime + usage.ru_stime


def _version(clubak: str) -> str:
    done = subprocess.run([clubak, "--version"], capture_output=True, text=True, timeout=60)
    return (
        f"clubak {(done.stdout or done.stderr).split()[-1]}" if done.returncode == 0 else "clubak"
    )


def _summary(runs: list[tuple[float, float, int, float]]) -> dict[str, object]:
    times = [r[0] for r in runs]
    cpus = [r[3] for r in runs]
    return {
        "wall_s": {
            "median": round(statistics.median(times), 3),
            "min": round(min(times), 3),
            "max": round(max(times), 3),
        },
        "cpu_s": {"median": round(statistics.median(cpus), 3), "min": round(min(cpus), 3)},
        "peak_rss_mib": round(max(r[1] for r in runs), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None, help="an older qfix tree to compare")
    ap.add_argument(
        "--clubak", default=shutil.which("clubak"), help="ClusterShell's clubak, side by side"
    )
    ap.add_argument("--no-compile", action="store_true", help="do not byte-compile the trees")
    args = ap.parse_args()
    if not args.no_compile:
        for tree in (REPO, args.baseline):
            if tree is not None:
                compileall.compile_dir(tree / "repair", quiet=1)
    with tempfile.TemporaryDirectory(prefix="qfix-fleet-bench-") as tmp:
        folder = Path(tmp)
        expected_groups = write_fleet(folder, args.nodes)
        lines = clubak_lines(folder) if args.clubak else ""
        runs, base, club = [], [], []
        load_before = os.getloadavg()
        for _ in range(args.runs):
            runs.append(child_run(folder))
            if args.baseline:
                base.append(child_run(folder, args.baseline))
            if args.clubak:
                club.append(clubak_run(args.clubak, lines))
        load_after = os.getloadavg()
        # in-process split (second pass: the knowledge base is loaded once, as in the CLI), in
        # CPU time of this process, which the load of a shared machine disturbs least
        plan_fn = default_plan_fn()
        group_records(iter_records([folder]), plan_fn)
        t0 = time.process_time()
        groups = group_records(iter_records([folder]), lambda doc: {"steps": []})
        t_group = time.process_time() - t0
        t0 = time.process_time()
        for g in groups:
            plan_fn(g.facts)
        t_plan = time.process_time() - t0
    result = {
        "nodes": args.nodes,
        "groups": runs[0][2],
        "expected_groups": expected_groups,
        "runs": args.runs,
        **_summary(runs),
        "baseline": (
            {"tree": args.baseline.name, "groups": base[0][2], **_summary(base)} if base else None
        ),
        "clubak_b": (
            {"tool": _version(args.clubak), "groups": club[0][2], **_summary(club)}
            if club
            else None
        ),
        "byte_compiled": not args.no_compile,
        # 1-minute load average before and after the timed runs: above the CPU count, wall
        # times include waiting for a CPU (compare cpu_s then)
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "cpus": os.cpu_count(),
        "in_process_cpu_s": {"read_and_group": round(t_group, 3), "plan_groups": round(t_plan, 3)},
        "machine": f"{platform.machine()} {platform.python_version()}",
        "targets": {"wall_s": 1.0, "peak_rss_mib": 200},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
