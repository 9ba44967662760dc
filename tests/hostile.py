"""Hostile targets: small executable scripts that stand in for a broken ``--python`` (issue 14),
and a runner that measures what one qfix command costs against them.

Used by tests/test_hostile.py and bench/bench_hostile.py. Each script ignores its arguments, so
it is the same hostile thing whatever qfix asks of it (probe, install paths, verify script).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK_ENV = "QFIX_HOSTILE_MARK"

# name -> body of a /bin/sh script
HOSTILE: dict[str, str] = {
    # a wrapper that loops printing: `yes` never ends
    "endless-stdout": "exec yes 'qfix hostile target'\n",
    # 100 MB on stderr, then a failed exit
    "stderr-100mb": "head -c 100000000 /dev/zero | tr '\\000' e >&2\nexit 1\n",
    # binary garbage on both streams, then a failed exit
    "binary-output": "head -c 65536 /dev/urandom\nhead -c 65536 /dev/urandom >&2\nexit 1\n",
    # hangs (a stuck driver call)
    "hang": "exec sleep 1000\n",
    # hangs and ignores SIGTERM (the shell waits on its sleep child)
    "hang-ignore-term": "trap '' TERM INT HUP\nsleep 1000\nsleep 1000\n",
    # crashes with a signal
    "crash-signal": "kill -SEGV $$\n",
    # starts a child that lives on (no pipes kept), prints a line and exits
    "fork-and-leave": "sleep 1000 </dev/null >/dev/null 2>&1 &\necho 'not a python'\nexit 0\n",
}

# (command, extra arguments); every one names the hostile script with --python
COMMANDS: dict[str, tuple[str, ...]] = {
    "detect": ("detect",),
    "plan": ("plan",),
    "matrix": ("matrix",),
    "verify": ("verify", "--timeout", "5", "--model", "none"),
    "apply": ("apply", "--yes", "--verify", "none"),
    "rollback": ("rollback",),
}

PROBE_TIMEOUT = "3"  # QFIX_PROBE_TIMEOUT for these runs: a hang costs this, not the default 20

# Measures one qfix run from a fresh process, so RUSAGE_CHILDREN holds only that run's tree
# (qfix and what it waited for; the hostile scripts are /bin/sh, yes, sleep: a few MB).
_MEASURE = r"""
import json, resource, subprocess, sys, time
argv, env, out, err = json.loads(sys.argv[1])
t0 = time.monotonic()
with open(out, "wb") as o, open(err, "wb") as e:
    rc = subprocess.call(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
took = time.monotonic() - t0
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"rc": rc, "seconds": took, "maxrss_kib": maxrss}))
"""


@dataclass(frozen=True, slots=True)
class Run:
    case: str
    command: str
    rc: int
    seconds: float
    peak_mib: float
    stderr: str
    stdout_bytes: int
    leftovers: tuple[int, ...]  # pids still alive that carry this run's marker


def write_targets(folder: Path) -> dict[str, Path]:
    """The hostile scripts as executables under ``folder`` (not a venv layout: rollback must
    ask the target, within QFIX_PROBE_TIMEOUT)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, body in HOSTILE.items():
        p = folder / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(0o755)
        paths[name] = p
    return paths


def qfix_argv() -> list[str]:
    return [sys.executable, "-m", "repair"]


def run_qfix(case: str, command: str, target: Path, work: Path) -> Run:
    """Run ``qfix <command> --python <target>`` in a fresh helper process; measure it."""
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFIX_") and k != "VIRTUAL_ENV"}
    env.update(
        {MARK_ENV: mark, "QFIX_PROBE_TIMEOUT": PROBE_TIMEOUT, "PYTHONPATH": str(REPO)},
    )
    out, err = work / f"{case}-{command}.out", work / f"{case}-{command}.err"
    argv = [*qfix_argv(), *COMMANDS[command], "--python", str(target)]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps([argv, env, str(out), str(err)])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO),
        check=True,
    )
    m = json.loads(done.stdout)
    time.sleep(0.2)  # a SIGKILLed group is gone within ms; leave the kernel a moment to reap
    return Run(
        case=case,
        command=command,
        rc=m["rc"],
        seconds=m["seconds"],
        peak_mib=m["maxrss_kib"] / 1024,
        stderr=err.read_text(encoding="utf-8", errors="replace"),
        stdout_bytes=out.stat().st_size,
        leftovers=tuple(marked_pids(mark)),
    )


def marked_pids(mark: str) -> list[int]:
    """Processes alive (not zombies) whose environment holds ``QFIX_HOSTILE_MARK=mark``."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def kill_all(pids: tuple[int, ...]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


def children_outlive_a_killed_parent(code: str, children: int) -> list[int]:
    """Run ``code`` (a Python program that prints "go" and then starts ``children`` processes
    through repair.process) in a marked helper, SIGKILL the helper once they all run, and
    return the pids still alive 10 s later (PR_SET_PDEATHSIG: none)."""
    mark = uuid.uuid4().hex
    helper = subprocess.Popen(
        [sys.executable, "-c", code, str(REPO)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, MARK_ENV: mark},
    )
    try:
        assert helper.stdout is not None and helper.stdout.readline() == "go\n"
        deadline = time.monotonic() + 30
        while len(marked_pids(mark)) < 1 + children:  # the helper and its children
            assert time.monotonic() < deadline
            time.sleep(0.02)
        helper.kill()
        helper.wait(timeout=30)
        deadline = time.monotonic() + 10
        while marked_pids(mark) and time.monotonic() < deadline:
            time.sleep(0.02)
        return marked_pids(mark)
    finally:
        kill_all(tuple(marked_pids(mark)))
