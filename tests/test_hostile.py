"""Every command against hostile targets (issue 14): endless stdout, 100 MB of stderr, binary
output, a hang, a hang that ignores SIGTERM, a crash by signal, a child that forks and leaves.

Each run is real: ``qfix <command> --python <script>`` in a child, measured from a fresh helper
process (tests/hostile.py). Each must stay small in memory, end in bounded time with its
documented exit code and one printable error line, and leave no process of its tree alive.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from repair import process
from repair.errors import ExitCode
from tests.hostile import (
    COMMANDS,
    HOSTILE,
    MARK_ENV,
    PROBE_TIMEOUT,
    children_outlive_a_killed_parent,
    kill_all,
    marked_pids,
    run_qfix,
    write_targets,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PEAK_MIB = 150  # issue 14: qfix used 22-24 GB on `yes` before
BAD = int(ExitCode.BAD_INPUT)
PROBLEMS = int(ExitCode.PROBLEMS)

# The documented exit code (docs/hostile-targets.md): a target that cannot answer is bad input
# (2) for every command; verify reports a check that ran and failed (hang: it started and did not
# finish) as problems found (1); rollback of a target with no apply to finish asks the target
# where its environment is, so it fails like the others.
EXPECTED: dict[tuple[str, str], int] = {
    (case, command): BAD for case in HOSTILE for command in COMMANDS
}
EXPECTED[("hang", "verify")] = PROBLEMS
EXPECTED[("hang-ignore-term", "verify")] = PROBLEMS

# seconds: the probe limit (3 s here) or verify's --timeout (5 s), plus qfix's own start (a
# target that never ends would otherwise hold the command for good)
TIME_LIMIT = float(PROBE_TIMEOUT) + 30  # bounded, with slack for a loaded CI machine


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_targets(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_target(case: str, command: str, targets: dict[str, Path], tmp_path: Path) -> None:
    run = run_qfix(case, command, targets[case], tmp_path)
    try:
        assert not run.leftovers, f"processes of the run outlived qfix: {run.leftovers}"
    finally:
        kill_all(run.leftovers)
    assert run.peak_mib < PEAK_MIB, f"peak RSS {run.peak_mib:.0f} MiB"
    assert run.seconds < TIME_LIMIT, f"took {run.seconds:.1f} s"
    assert run.rc == EXPECTED[(case, command)], run.stderr[-2000:]
    lines = run.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("qfix: error:")]
    if command == "verify":  # a verdict: a few report lines, the failed check named
        assert len(lines) <= 12 and "FAILED" in run.stderr, run.stderr[-2000:]
    else:
        assert len(errors) == 1, run.stderr[-2000:]
    # what qfix prints stays small and printable, whatever the target wrote
    assert len(run.stderr) < 8192, run.stderr[:500]
    assert run.stdout_bytes < 65536
    for line in lines:
        assert line.isprintable(), repr(line)
        assert "\ufffd" not in line, repr(line)


# --------------------------------------------------------------------------- process.run itself


def test_run_stops_a_child_over_its_limit() -> None:
    done = process.run(["yes"], timeout=30, limit=process.MiB)
    assert done.exceeded == "stdout" and not done.ok and not done.timed_out
    assert len(done.stdout) < process.MiB + 100
    assert done.why() == "it wrote more than 1 MiB on stdout and was stopped"


def test_unlimited_output_goes_to_the_log_and_memory_keeps_head_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "installer.log"
    script = "head -c 10000000 /dev/zero | tr '\\000' a; echo; echo LAST-LINE >&2; exit 3"
    done = process.run(["sh", "-c", script], timeout=60, limit=None, log=str(log))
    assert done.returncode == 3 and done.exceeded is None
    assert log.stat().st_size == 10_000_001 + len("LAST-LINE\n")
    assert len(done.stdout) < 3 * process.KEEP and "bytes not kept" in done.stdout
    assert process.last_line(done.stderr) == "LAST-LINE"


def test_what_a_child_leaves_in_its_group_is_stopped(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    env = {**os.environ, MARK_ENV: mark}
    script = "sleep 600 </dev/null >/dev/null 2>&1 & echo started"
    done = process.run(["sh", "-c", script], timeout=30, env=env)
    assert done.ok and done.stdout == "started\n"
    time.sleep(0.2)
    left = marked_pids(mark)
    kill_all(tuple(left))
    assert not left


def test_a_child_dies_with_qfix() -> None:
    """SIGKILL the process that called process.run: PR_SET_PDEATHSIG takes its child along."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from repair import process; "
        "print('go', flush=True); process.run(['sleep', '600'], timeout=900)"
    )
    assert not children_outlive_a_killed_parent(code, 1), "the child outlived its SIGKILLed parent"
