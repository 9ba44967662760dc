"""Slurm: one qfix task per node with ``srun -N<n> --ntasks-per-node=1``.

Facts measured with Slurm 22.05 (docs/fleet.md): merged srun stdout interleaves JSON lines longer
than about 1 KiB, so every task writes its own files (``--output=DIR/tasks/%t.out``); ``%N``
names the real host when several slurmd share a machine, so records are named by
``$SLURMD_NODENAME`` instead; srun's exit code is the highest task's, so each node's status is
read from its own record, never from srun.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from ... import process
from ...errors import BadInput
from .base import RunResult, collect


def srun_argv(
    qfix_args: Sequence[str], *, out: Path, nodes: int, timeout: float, srun_args: Sequence[str]
) -> list[str]:
    tasks = out.absolute() / "tasks"
    return [
        "srun",
        f"-N{nodes}",
        "--ntasks-per-node=1",
        f"--output={tasks}/%t.out",
        f"--error={tasks}/%t.err",
        # Slurm's own limit (whole minutes), so a hung node is killed by Slurm, not just left
        f"--time={max(1, math.ceil(timeout / 60))}",
        *srun_args,
        *qfix_args,
    ]


def run_srun(
    qfix_args: Sequence[str],
    *,
    out: Path,
    nodes: int,
    timeout: float,
    srun_args: Sequence[str] = (),
) -> RunResult:
    """Launch, wait at most ``timeout`` seconds (+ a margin for srun's own teardown), collect."""
    argv = srun_argv(qfix_args, out=out, nodes=nodes, timeout=timeout, srun_args=srun_args)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    since = time.time()
    try:
        # limit=None: srun lives as long as the whole fleet run; keep head+tail, never kill it
        done = process.run(argv, timeout=timeout + 30, limit=None)
    except process.ProcessFailure as exc:
        raise BadInput(
            f"could not start srun: {exc.reason}",
            tip="run qfix fleet run on a Slurm login node (srun on PATH)",
        ) from None
    kind = qfix_args[3]
    records = collect(out, kind, since)
    problems = []
    if done.timed_out:
        problems.append(f"srun was stopped after {timeout + 30:.0f} s")
    elif done.returncode != 0 and not records:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        problems.append(f"srun exited {done.returncode}: {tail}")
    for i in range(nodes):
        err = out / "tasks" / f"{i}.err"
        text = err.read_text(errors="replace") if err.is_file() else ""
        errors = [line for line in text.splitlines() if line.startswith("qfix: error")]
        if errors:
            problems.append(f"task {i}: {errors[-1]}")
    return RunResult(
        "slurm", tuple(argv), done.returncode, done.timed_out, nodes, records, tuple(problems)
    )
