"""``qfix fleet plan`` on all CPUs: read, key and plan thousands of records in worker processes.

Not pure (it starts processes, through repair.process.map_in_workers); the work itself is the
pure grouping of repair.fleet.grouping, cut in chunks:

1. the record files, in reading order, are cut into one contiguous chunk per CPU; each worker
   reads its chunk and returns a ``Scan`` (per record: node, start time, and the index of its
   canonical key or why it is unknown; one canonical key per bucket), never the records
   themselves; meanwhile this process loads the knowledge base and the catalogue;
2. the scans are merged in chunk order, which gives the nodes, groups and keys of one
   sequential pass (``group_scans``);
3. the groups' facts are planned, dealt round-robin to the workers (a plan's cost varies).

A worker that fails (``WorkerFailure``) makes that step run here, sequentially: the answer is
the same, only slower. Small fleets (under ``MIN_FILES`` files), one CPU and platforms without
fork take the sequential path from the start: forking would cost more than it saves.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import process
from ..errors import QfixError
from .grouping import Group, PlanFn, Scan, group_scans, plan_each, scan_records
from .records import read_files, record_files

MIN_FILES = 2000  # below this, fork + pickling cost more than the work saved (bench_fleet)
FILES_PER_WORKER = 1000  # at least this many files per worker: each fork costs a few ms
MIN_GROUPS = 4  # groups per plan worker at least (fewer are planned here: a fork costs ~1 plan)
TIMEOUT = 600.0  # seconds for each parallel step before it is done here instead


def scan_files(files: Sequence[str]) -> Scan:
    """A worker's step 1: read ``files`` and scan their records."""
    return scan_records(read_files(files))


def warm_planner() -> None:
    """Import the planner and load what every plan needs (knowledge base, catalogue) once, here,
    while the scan workers read, so that the plan workers fork with them in memory."""
    from .. import pipeline  # noqa: F401 - imported here, not on the first plan
    from ..catalogue import load_catalogue
    from ..knowledge import load_knowledge

    # A knowledge base that does not load fails each plan instead, as on the sequential path
    # (its groups become "cannot plan: ..."), not the whole command here.
    with contextlib.suppress(QfixError):
        load_knowledge()
        load_catalogue()


def workers_for(files: int, cpus: int | None = None) -> int:
    """How many workers a fleet of ``files`` record files gets (1: sequential): one per CPU this
    process may run on (its affinity: a Slurm job's or a container's cpuset, not the host's)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not cpus or cpus < 2 or files < MIN_FILES or not process.can_fork_workers():
        return 1
    return min(cpus, files // FILES_PER_WORKER)


def plan_paths(
    paths: Iterable[str | os.PathLike[str]], plan_fn: PlanFn, *, workers: int | None = None
) -> tuple[Group, ...]:
    """``group_records(iter_records(paths), plan_fn)``, on ``workers`` processes (default:
    ``workers_for``). BadInput for a path that does not exist. ``plan_fn`` must be pure (as
    ``default_plan_fn``'s is): it may run in a worker, whose side effects are lost."""
    files = record_files(paths)
    n = workers_for(len(files)) if workers is None else workers
    if n < 2:
        return group_scans((scan_files(files),), plan_fn)
    step = -(-len(files) // n)
    chunks = [files[i : i + step] for i in range(0, len(files), step)]
    try:
        scans = process.map_in_workers(scan_files, chunks, timeout=TIMEOUT, during=warm_planner)
    except process.WorkerFailure:
        scans = [scan_files(files)]
    return group_scans(scans, plan_fn, lambda docs: _plan_all(plan_fn, docs, n))


def _plan_all(plan_fn: PlanFn, docs: Sequence[Mapping[str, Any]], n: int) -> list[Any]:
    """``plan_each(plan_fn, docs)``, the documents dealt round-robin to ``n`` workers."""
    n = min(n, len(docs) // MIN_GROUPS)
    if n < 2:
        return plan_each(plan_fn, docs)
    hands = [docs[i::n] for i in range(n)]
    try:
        parts = process.map_in_workers(
            lambda hand: plan_each(plan_fn, hand), hands, timeout=TIMEOUT
        )
    except process.WorkerFailure:
        return plan_each(plan_fn, docs)
    out: list[Any] = [None] * len(docs)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out
