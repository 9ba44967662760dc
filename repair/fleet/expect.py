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

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..digest import decisions, first_difference, is_digest, plan_digest
from ..errors import ApplyRefused, BadInput, ExitCode, Locked
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
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(errors="replace").strip() or "another node"
                    raise Locked(
                        f"{folder.parent} is being changed by {holder}; waited {wait:.0f} s",
                        tip="raise --lock-wait, or run qfix apply there again later",
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{node} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def apply_expected(
    python: str | None,
    expect: str,
    *,
    installer: str,
    torch_index: str | None,
    allow_conda: bool,
    verify_model: str,
    lock_wait: float,
    as_json: bool,
    record: str | None,
    started: float,
    progress: Callable[[str], None],
) -> int:
    """The whole ``qfix apply --yes --expect-plan`` flow; returns the exit code."""
    from ..apply.transaction import find_state
    from ..pipeline import prepare_apply, run_apply
    from ..probe import interpreter
    from ..verify.runner import verdict_to_dict

    node = node_name()
    digest, want = expected_plan(expect, node)
    target = interpreter.resolve_target(python, os.environ)
    state = find_state(target).path

    def done(doc: dict[str, Any], code: int, note: str | None = None) -> int:
        if record:
            write_record(record, "apply", doc, code, started, note=note)
        if as_json:
            sys.stdout.write(json.dumps({**doc, "note": note}, indent=2) + "\n")
        elif note:
            print(note)
        return code

    with fleet_lock(state, lock_wait, node):
        target, plan, _obj = prepare_apply(
            target, venv_new=None, plan_file=None, torch_index=torch_index
        )
        own = plan_digest(plan, target)
        if own != digest:
            marker = _read_marker(state)
            if not plan["steps"] and marker.get("digest") == digest:
                note = f"applied by node {marker.get('node')} at {marker.get('time')}"
                return done(
                    {"schema": "qfix.apply/1", "plan": plan, "outcome": None}, ExitCode.OK, note
                )
            where = first_difference(want, decisions(plan, target)) if want else None
            msg = f"this node's plan ({own}) differs from the expected {digest}" + (
                f": {where}" if where else ""
            )
            done(
                {"schema": "qfix.apply/1", "plan": plan, "outcome": None, "error": msg},
                ExitCode.REFUSED,
            )
            raise ApplyRefused(msg, tip="run `qfix plan` on this node, or re-run `qfix fleet plan`")
        if not plan["steps"]:
            return done(
                {"schema": "qfix.apply/1", "plan": plan, "outcome": None},
                ExitCode.OK if plan["healthy"] else ExitCode.PROBLEMS,
            )
        result = run_apply(
            target,
            plan,
            installer=installer,
            torch_index=torch_index,
            allow_conda=allow_conda,
            verify_model=verify_model,
            progress=progress,
        )
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
        doc = {
            "schema": "qfix.apply/1",
            "plan": plan,
            "outcome": result.outcome.to_dict(),
            "verify": verdict_to_dict(result.verdict) if result.verdict else None,
        }
        if not as_json:
            from ..render import render_outcome

            print(render_outcome(result.outcome, result.verdict))
        return done(doc, code)


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
