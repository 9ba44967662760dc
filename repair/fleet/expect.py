"""``qfix apply --yes --expect-plan DIGEST|FILE``: apply on a node only what the fleet agreed.

The node re-plans for itself and refuses (exit 6) when its own plan's digest differs from the
expected one, naming the first difference when the expected plan is known (FILE: a saved
``qfix.plan/1``, or the ``qfix.fleet-plan/1`` of ``qfix fleet plan --json``, whose group holding
this node is taken).

An environment on shared storage (one venv used by many nodes) is changed once: re-plan, apply
and verify run under a fleet lock in the environment's ``.qfix`` folder, taken with a bounded
wait. The first node applies and leaves a marker (digest, node, time); a node that gets the lock
afterwards finds nothing left to do and records "applied by node X" instead of refusing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..digest import decisions, first_difference, is_digest, plan_digest
from ..errors import ApplyRefused, BadInput, ExitCode, Locked
from ..plan import Plan
from ..platform_ops import lock, write_head
from ..settings import Settings
from .nodeset import expand
from .records import node_name, write_record

MARKER = "fleet-applied.json"
LOCK = "fleet.lock"


def expected_plan(value: str, node: str) -> tuple[str, dict[str, Any] | None]:
    """(digest, expected decisions or None) from ``--expect-plan``'s value."""
    if is_digest(value):
        return value, None
    p = Path(value)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(
            f"--expect-plan {value}: neither a digest (sha256:<64 hex>) nor an existing file"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(
            f"--expect-plan {value}: cannot read it ({exc.__class__.__name__})"
        ) from None
    if isinstance(doc, dict) and doc.get("schema") == "qfix.fleet-plan/1":
        for g in doc.get("groups") or ():
            if isinstance(g, dict) and node in expand(str(g.get("nodes") or "")) and g.get("plan"):
                return str(g["digest"]), decisions(g["plan"])
        raise BadInput(f"--expect-plan {value}: no planned group holds this node ({node})")
    if isinstance(doc, dict) and doc.get("schema") == "qfix.plan/1":
        return plan_digest(doc), decisions(doc)
    raise BadInput(f"--expect-plan {value}: not a qfix.plan/1 or qfix.fleet-plan/1 document")


@contextmanager
def fleet_lock(folder: Path, wait: float, node: str) -> Iterator[None]:
    """An exclusive lock on ``folder/fleet.lock``, waited for at most ``wait`` seconds; Locked
    (exit 5) names the node that holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            if lock(fd, exclusive=True, blocking=False):
                break
            if time.monotonic() >= deadline:
                holder = path.read_text(errors="replace").strip() or "another node"
                raise Locked(
                    f"{folder.parent} is being changed by {holder}; waited {wait:.0f} s",
                    tip="raise --lock-wait, or run qfix apply there again later",
                )
            time.sleep(0.2)
        write_head(fd, f"{node} (pid {os.getpid()})\n")
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True, slots=True)
class ExpectedApply:
    """What ``apply --expect-plan`` did (the CLI renders it with render.render_expected_apply)."""

    plan: Plan
    outcome: Any | None  # repair.apply.transaction.Outcome; None: nothing was applied
    verdict: Any | None
    note: str | None
    exit_code: int


def apply_expected(
    settings: Settings,
    expect: str,
    *,
    allow_conda: bool,
    lock_wait: float,
    record: str | None,
    started: float,
    progress: Callable[[str], None],
) -> ExpectedApply:
    """The whole ``qfix apply --yes --expect-plan`` flow (the record is written here, the output
    is the CLI's). ApplyRefused (exit 6) when this node plans differently."""
    from ..apply.transaction import find_state
    from ..pipeline import prepare_apply, run_apply
    from ..render import apply_to_dict

    node = node_name()
    digest, want = expected_plan(expect, node)
    target = settings.python
    if target is None:
        raise BadInput("--expect-plan needs a target interpreter")
    state = find_state(target, settings.probe_timeout).path

    def done(
        plan: Plan, outcome: Any | None, verdict: Any | None, code: int, note: str | None = None
    ) -> ExpectedApply:
        if record:
            write_record(
                record, "apply", apply_to_dict(plan, outcome, verdict), code, started, note=note
            )
        return ExpectedApply(plan, outcome, verdict, note, code)

    with fleet_lock(state, lock_wait, node):
        prep = prepare_apply(settings, venv_new=None, plan_file=None)
        plan = prep.plan.to_dict()
        own = plan_digest(plan, prep.python)
        if own != digest:
            marker = _read_marker(state)
            if not plan["steps"] and marker.get("digest") == digest:
                note = f"applied by node {marker.get('node')} at {marker.get('time')}"
                return done(prep.plan, None, None, ExitCode.OK, note)
            where = first_difference(want, decisions(plan, prep.python)) if want else None
            msg = f"this node's plan ({own}) differs from the expected {digest}" + (
                f": {where}" if where else ""
            )
            if record:
                doc = apply_to_dict(prep.plan, None, None) | {"error": msg}
                write_record(record, "apply", doc, ExitCode.REFUSED, started)
            raise ApplyRefused(msg, tip="run `qfix plan` on this node, or re-run `qfix fleet plan`")
        if not plan["steps"]:
            return done(
                prep.plan, None, None, ExitCode.OK if plan["healthy"] else ExitCode.PROBLEMS
            )
        result = run_apply(settings, prep, allow_conda=allow_conda, progress=progress)
        code = int(result.outcome.exit_code)
        if code == 0:
            _write_marker(
                state,
                {
                    "digest": digest,
                    "node": node,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
        return done(result.plan, result.outcome, result.verdict, code)


def _read_marker(state: Path) -> dict[str, Any]:
    try:
        data = json.loads((state / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(state: Path, data: dict[str, Any]) -> None:
    tmp = state / f".{MARKER}.{os.getpid()}"
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, state / MARKER)
