"""Ray: one qfix task per alive Ray node, pinned with NodeAffinitySchedulingStrategy(soft=False).

Ray is an optional extra (``pip install 'qfix[ray]'``), imported only here and only when used;
``ray.nodes()`` is enough (``ray.util.state`` needs ``ray[default]``). Records are written by the
nodes into ``--out``, which must be shared storage; each task also returns its record so the
caller can tell which nodes answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import BadInput
from .base import RunResult, collect


def _run_on_node(argv: Sequence[str], node: str, timeout: float) -> dict[str, Any]:
    from repair import process

    env = dict(os.environ, QFIX_NODE=node)
    done = process.run(list(argv), timeout=timeout, env=env)
    return {
        "node": node,
        "returncode": done.returncode,
        "timed_out": done.timed_out,
        "stderr": done.stderr[-2000:],
    }


def run_ray(
    qfix_args: Sequence[str], *, out: Path, timeout: float, address: str | None = None
) -> RunResult:
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise BadInput("Ray is not installed", tip="pip install 'qfix[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
    alive = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.remote(num_cpus=0)(_run_on_node)
    since = time.time()
    refs = []
    for n in alive:
        # Several Ray nodes may share a host (tests, ray.cluster_utils): name them by id too.
        name = f"{n.get('NodeManagerHostname', 'ray')}-{n['NodeID'][:8]}"
        strategy = NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
        refs.append(remote.options(scheduling_strategy=strategy).remote(qfix_args, name, timeout))
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout + 30)
    problems = [f"{len(pending)} Ray tasks did not finish"] if pending else []
    for r in ray.get(ready):
        if r["timed_out"]:
            problems.append(f"{r['node']}: timed out")
    (out).mkdir(parents=True, exist_ok=True)
    return RunResult(
        "ray",
        tuple(qfix_args),
        None,
        bool(pending),
        len(alive),
        collect(out, qfix_args[3], since),
        tuple(problems),
    )
