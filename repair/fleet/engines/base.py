"""What every engine shares: the qfix command a node runs, and the result of a run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..nodeset import fold
from ..records import NodeRecord, read_records

COMMANDS = ("detect", "plan", "verify", "apply")


def node_command(
    qfix_python: str,
    command: str,
    out: Path,
    *,
    python: str | None = None,
    expect_plan: str | None = None,
) -> list[str]:
    """The argv every node runs: the explicit interpreter that runs qfix (srun with
    --export=NONE finds no `sh`, so nothing is left to PATH), the target, --record, --json."""
    from ...errors import BadInput

    if command not in COMMANDS:
        raise BadInput(f"--command must be one of {', '.join(COMMANDS)}, not {command!r}")
    if command == "apply" and not expect_plan:
        raise BadInput("--command apply needs --expect-plan DIGEST|FILE (from qfix fleet plan)")
    argv = [qfix_python, "-m", "repair", command, "--record", str(out.absolute()), "--json"]
    if python:
        argv += ["--python", python]
    if command == "apply":
        argv += ["--yes", "--expect-plan", str(expect_plan)]
    if command == "verify":
        argv += ["--model", "none"]
    return argv


@dataclass(frozen=True, slots=True)
class RunResult:
    engine: str
    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    expected: int | None  # tasks launched (None: unknown)
    records: tuple[NodeRecord, ...]  # this run's records, one per node that answered
    problems: tuple[str, ...] = field(default=())

    @property
    def all_answered(self) -> bool:
        return not self.timed_out and (self.expected is None or len(self.records) >= self.expected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "qfix.fleet-run/1",
            "engine": self.engine,
            "argv": list(self.argv),
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "expected": self.expected,
            "answered": fold(r.node for r in self.records),
            "node_exit_codes": {r.node: r.exit_code for r in self.records},
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        codes: dict[int, list[str]] = {}
        for r in self.records:
            codes.setdefault(r.exit_code, []).append(r.node)
        lines = [
            f"{self.engine}: {len(self.records)} of "
            f"{self.expected if self.expected is not None else '?'} nodes answered"
            + (" (timed out)" if self.timed_out else "")
        ]
        lines += [f"  exit {c}: {fold(n)}" for c, n in sorted(codes.items())]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def collect(out: Path, kind: str, since: float) -> tuple[NodeRecord, ...]:
    """The ``kind`` records under ``out`` written by commands started at ``since`` or later."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(since)))
    if not out.is_dir():
        return ()
    recs = [
        r
        for r in read_records([out])
        if isinstance(r, NodeRecord) and r.kind == kind and (r.started or "") >= stamp
    ]
    return tuple(sorted(recs, key=lambda r: r.node))
