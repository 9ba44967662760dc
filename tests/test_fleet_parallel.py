"""Fleet plan on all CPUs (repair.fleet.parallel): the parallel path answers exactly what the
sequential one does, good records and bad, and a failing worker only makes it slower.

Real forked workers (repair.process.map_in_workers) throughout; a worker is made to fail by
replacing the function it runs with one that dies or raises in the child only.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repair import process
from repair.fleet import parallel
from repair.fleet.grouping import (
    default_plan_fn,
    fleet_plan_to_dict,
    group_records,
    render_fleet_plan,
)
from repair.fleet.records import iter_records, make_record
from repair.render import to_json
from tests.fleet_support import detect_record, example_facts, with_noise
from tests.hostile import children_outlive_a_killed_parent
from tests.venvs import REPO

pytestmark = pytest.mark.skipif(not process.can_fork_workers(), reason="needs fork (POSIX)")

EXAMPLES = example_facts()
PLAN = default_plan_fn()


def _fleet(folder: Path, nodes: int) -> Path:
    """``nodes`` records of every shipped example with noise, and every kind of bad record."""
    folder.mkdir()
    rng = random.Random(nodes)
    for n in range(nodes):
        _, facts = EXAMPLES[n % len(EXAMPLES)]
        rec = detect_record(f"gpu{n:05d}", with_noise(facts, rng, n), code=1 if n % 97 == 5 else 0)
        (folder / f"gpu{n:05d}.detect.json").write_text(json.dumps(rec))
    # a node recorded twice: a later detect in a file read last (another chunk) wins, an earlier
    # one read last loses; a plan record is not a detect
    _, facts = EXAMPLES[3]
    later = make_record("gpu00001", "detect", facts, 0, "2026-12-07T00:00:00Z", 0.5)
    earlier = make_record("gpu00002", "detect", facts, 0, "2026-12-01T00:00:00Z", 0.5)
    (folder / "zz-again.detect.json").write_text(json.dumps(later))
    (folder / "zz-earlier.detect.json").write_text(json.dumps(earlier))
    (folder / "zz-plan.plan.json").write_text(json.dumps({**later, "kind": "plan"}))
    # JSON Lines: many records in one file
    lines = [json.dumps(detect_record(f"jl{i}", EXAMPLES[i][1])) for i in range(3)]
    (folder / "collected.jsonl").write_text("\n".join(lines) + "\n")
    # unreadable: broken JSON, bad UTF-8, a BOM (readable), a NUL, a directory, not a record
    (folder / "bad1.detect.json").write_text("{broken")
    (folder / "bad2.detect.json").write_bytes(b'{"node": "\xff"}')
    bom = json.dumps(detect_record("bom1", EXAMPLES[0][1])).encode()
    (folder / "bom1.detect.json").write_bytes(b"\xef\xbb\xbf" + bom)
    (folder / "bad3.detect.json").write_bytes(b'{"schema": "qfix.node/1"\x00}')
    (folder / "bad4.detect.json").mkdir()
    (folder / "bad5.detect.json").write_text('{"schema": "other"}')
    (folder / "gpu00003.detect.json").write_text("{")  # a node whose only record is broken
    return folder


def _outputs(groups) -> tuple[str, str]:
    return to_json(fleet_plan_to_dict(groups)), render_fleet_plan(groups)


def _sequential(folder: Path) -> tuple[str, str]:
    return _outputs(group_records(iter_records([folder]), PLAN))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, str]]:
    folder = _fleet(tmp_path_factory.mktemp("parallel") / "records", 300)
    return folder, _sequential(folder)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_parallel_path_equals_the_sequential_one(fleet, workers: int) -> None:
    folder, want = fleet
    got = _outputs(parallel.plan_paths([folder], PLAN, workers=workers))
    assert got == want
    doc = json.loads(got[0])
    assert doc["nodes"] == 300 + 3 + 1 + 5  # the JSON Lines nodes, bom1, bad1-5
    unknown = [g["reason"] for g in doc["groups"] if g["class"] == "unknown"]
    assert any(r.startswith("qfix detect exited 1") for r in unknown)
    assert any("not JSON" in r for r in unknown)


def test_a_failing_scan_worker_falls_back_to_the_sequential_path(fleet, monkeypatch) -> None:
    folder, want = fleet
    parent, real = os.getpid(), parallel.scan_files

    here: list[int] = []

    def dies_in_a_worker(files):
        if os.getpid() != parent:
            if "gpu00150" in " ".join(files):
                os._exit(3)
        else:
            here.append(len(files))
        return real(files)

    monkeypatch.setattr(parallel, "scan_files", dies_in_a_worker)
    assert _outputs(parallel.plan_paths([folder], PLAN, workers=3)) == want
    assert here == [len(parallel.record_files([folder]))]  # every file, read here instead


def test_a_failing_plan_worker_falls_back_to_the_sequential_path(fleet, monkeypatch) -> None:
    folder, want = fleet
    parent, real = os.getpid(), parallel.plan_each

    here: list[int] = []

    def raises_in_a_worker(plan_fn, docs):
        if os.getpid() != parent:
            raise RuntimeError("a worker's bug")
        here.append(len(docs))
        return real(plan_fn, docs)

    monkeypatch.setattr(parallel, "plan_each", raises_in_a_worker)
    got = _outputs(parallel.plan_paths([folder], PLAN, workers=2))
    assert got == want
    assert here == [sum(1 for g in json.loads(got[0])["groups"] if g["plan"])]  # all, here


def test_small_fleets_one_cpu_stay_sequential() -> None:
    assert parallel.workers_for(parallel.MIN_FILES - 1, cpus=8) == 1
    assert parallel.workers_for(parallel.MIN_FILES, cpus=1) == 1
    assert parallel.workers_for(parallel.MIN_FILES, cpus=4) == 2  # 1,000 files per worker
    assert parallel.workers_for(10_000, cpus=4) == 4
    assert parallel.workers_for(10_000, cpus=64) == 10


def test_cli_fleet_plan_on_a_large_fleet_is_byte_identical(tmp_path: Path) -> None:
    folder = _fleet(tmp_path / "records", parallel.MIN_FILES)
    want_json, want_text = _sequential(folder)
    for args, want in ((["--json"], want_json), ([], want_text)):
        done = subprocess.run(
            [sys.executable, "-m", "repair", "fleet", "plan", str(folder), *args],
            capture_output=True, text=True, timeout=300, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert done.stdout == want + "\n"


# --------------------------------------------------------------------------- the door


def _square(x: int) -> int:
    return x * x


def test_map_in_workers_returns_results_in_order_and_runs_during() -> None:
    ran = []
    assert process.map_in_workers(_square, range(5), timeout=60, during=lambda: ran.append(1)) == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert ran == [1]
    big = process.map_in_workers(lambda n: b"x" * n, [1 << 20, 3], timeout=60)
    assert [len(b) for b in big] == [1 << 20, 3]  # more than a pipe holds


def _fails(x: int) -> int:
    if x == 2:
        raise ValueError("bad chunk")
    return x


def test_a_worker_that_raises_or_dies_is_a_worker_failure() -> None:
    with pytest.raises(process.WorkerFailure, match="wait status"):
        process.map_in_workers(_fails, [1, 2, 3], timeout=60)
    with pytest.raises(process.WorkerFailure, match="wait status"):
        process.map_in_workers(lambda x: os._exit(0 if x else 4), [1, 0], timeout=60)
    with pytest.raises(process.WorkerFailure, match="unreadable worker result"):
        process.map_in_workers(lambda x: os._exit(0), [1], timeout=60)  # exit 0, no result
    with pytest.raises(process.WorkerFailure, match="more than"):
        process.map_in_workers(lambda n: b"x" * n, [200_000], timeout=60, limit=100_000)


def test_a_hung_worker_is_killed_at_the_deadline_and_reaped(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    def hangs(x: int) -> int:
        with pids.open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(600)
        return x

    with pytest.raises(process.WorkerFailure, match="in time"):
        process.map_in_workers(hangs, [1, 2], timeout=2.0)
    found = [int(p) for p in pids.read_text().split()] if pids.exists() else []
    assert found  # at least one worker was hanging when the deadline came
    for pid in found:  # reaped, not a zombie: the pid is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")
def test_workers_die_with_qfix() -> None:
    """SIGKILL the process that called map_in_workers: its hung workers go with it."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from repair import process\n"
        "def hang(x):\n    time.sleep(600)\n"
        "print('go', flush=True); process.map_in_workers(hang, [1, 2], timeout=900)"
    )
    assert not children_outlive_a_killed_parent(code, 2), "a worker outlived its SIGKILLed parent"


def test_a_knowledge_base_that_fails_to_warm_up_fails_no_more_than_sequentially(
    fleet, monkeypatch
) -> None:
    """The warm-up's error is left to the plans, which meet it as the sequential path does."""
    from repair import knowledge
    from repair.errors import KnowledgeError

    folder, want = fleet

    def broken() -> None:
        raise KnowledgeError("torch.toml: not valid TOML")

    monkeypatch.setattr(knowledge, "load_knowledge", broken)
    assert _outputs(parallel.plan_paths([folder], PLAN, workers=2)) == want
