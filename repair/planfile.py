"""Reading a saved ``qfix.plan/1`` file for ``qfix apply --plan FILE``, and refusing stale ones.

A plan file is input from outside (it may have been edited, or written by somebody else), and
``apply`` turns its steps into installer argv. So every field that reaches an argument is checked
here first: package names against PEP 508, versions against PEP 440, index URLs against the https
rule of ``commands.validate_index_url``; then the document becomes the one typed ``Plan``. The
plan's ``commands`` are for people to read; apply never runs them, it rebuilds the commands from
the validated steps. Pure apart from reading the file it is given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .commands import requirement, validate_index_url, validate_name
from .errors import ApplyRefused, BadInput, PlanFileError
from .findings import Severity
from .plan import PLAN_SCHEMA, Plan, Step, normalize

SCHEMA = PLAN_SCHEMA
ACTIONS = ("install", "uninstall")
GROUPS = ("torch", "pypi", "uninstall")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_MAX_BYTES = 4 << 20  # a plan is a few KiB; refuse to parse something absurd


def _fail(origin: str, where: str, what: str) -> PlanFileError:
    return PlanFileError(
        f"{origin}: {where}: {what}", tip="re-create the file with `qfix plan --json > FILE`"
    )


def validate_plan(data: Any, origin: str = "plan") -> dict[str, Any]:
    """Check a parsed ``qfix.plan/1`` document; return it unchanged or raise PlanFileError."""
    if not isinstance(data, dict):
        raise PlanFileError(f"{origin}: a qfix.plan/1 document must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise _fail(origin, "schema", f"expected {SCHEMA!r}, got {data.get('schema')!r}")
    if not isinstance(data.get("healthy"), bool):
        raise _fail(origin, "healthy", "must be true or false")
    fp = data.get("fingerprint")
    if not isinstance(fp, str) or not _FINGERPRINT.match(fp):
        raise _fail(origin, "fingerprint", f"must be 'sha256:<64 hex digits>', got {fp!r}")
    target = data.get("target")
    if target is not None:
        if not isinstance(target, dict):
            raise _fail(origin, "target", "must be an object")
        if not isinstance(target.get("python"), (str, type(None))):
            raise _fail(origin, "target.python", "must be a path")
    base = data.get("torch_index_base")
    if base is not None:
        try:
            validate_index_url(base)
        except BadInput as exc:
            raise _fail(origin, "torch_index_base", exc.message) from None
    for key in ("findings", "manual", "commands", "unknown"):
        if key in data and not isinstance(data[key], list):
            raise _fail(origin, key, "must be a list")
    for i, finding in enumerate(data.get("findings") or []):
        if not isinstance(finding, dict):
            raise _fail(origin, f"findings[{i}]", "must be a mapping")
        if finding.get("severity", "info") not in {s.value for s in Severity}:
            raise _fail(origin, f"findings[{i}].severity", "must be error, warning or info")
    for i, cmd in enumerate(data.get("commands") or []):
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise _fail(origin, f"commands[{i}]", "must be a list of strings")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise _fail(origin, "steps", "must be a list")
    seen: set[tuple[str, object]] = set()
    for i, step in enumerate(steps):
        _check_step(origin, i, step, seen)
    return data


def _check_step(origin: str, i: int, step: Any, seen: set[tuple[str, object]]) -> None:
    """One entry of ``steps``: every field that can reach an installer argument."""
    where = f"steps[{i}]"
    if not isinstance(step, dict):
        raise _fail(origin, where, "must be an object")
    try:
        name = validate_name(step.get("package"))
    except BadInput as exc:
        raise _fail(origin, f"{where}.package", exc.message) from None
    # One install and one uninstall of a name may both appear: the planner's repair of a
    # duplicate install removes every copy, then installs one clean copy (uninstalls run
    # first, repair/apply/installers.build_commands). Twice the same action is refused.
    slot = (normalize(name), step.get("action"))
    if slot in seen:
        raise _fail(origin, f"{where}.package", f"{name} appears in more than one step")
    seen.add(slot)
    action = step.get("action")
    if action not in ACTIONS:
        raise _fail(origin, f"{where}.action", f"must be 'install' or 'uninstall', got {action!r}")
    frm = step.get("from")
    # "from" is shown to people only, never an argument: a version as the probe read it
    if frm is not None and (not isinstance(frm, str) or len(frm) > 100 or not frm.isprintable()):
        raise _fail(origin, f"{where}.from", f"must be a version or null, got {frm!r}")
    if action == "install" and step.get("to") is None:
        raise _fail(origin, f"{where}.to", f"an install of {name} needs a target version")
    if action == "uninstall" and step.get("to") is not None:
        raise _fail(origin, f"{where}.to", f"an uninstall of {name} must have to: null")
    url = step.get("index_url")
    if url is not None:
        try:
            validate_index_url(url)
        except BadInput as exc:
            raise _fail(origin, f"{where}.index_url", exc.message) from None
    group = step.get("group")
    if group is not None and group not in GROUPS:
        raise _fail(origin, f"{where}.group", f"must be one of {', '.join(GROUPS)}, got {group!r}")
    if action == "install":
        try:
            # an exact version, or a specifier outside the torch family
            requirement(Step.from_dict(step))
        except BadInput as exc:
            raise _fail(origin, f"{where}.to", exc.message) from None
    because = step.get("because", [])
    if not isinstance(because, list) or not all(isinstance(b, str) for b in because):
        raise _fail(origin, f"{where}.because", "must be a list of finding ids")


def plan_from_doc(data: Any, origin: str = "plan") -> Plan:
    """The typed plan of a parsed ``qfix.plan/1`` document, validated first (PlanFileError)."""
    try:
        return Plan.from_dict(validate_plan(data, origin))
    except (TypeError, AttributeError, ValueError, RecursionError) as exc:
        # A field of a type the checks above do not cover (a number where findings, manual
        # steps or the arch list belong): still one line, exit 2 (issue 16's fuzzing).
        raise PlanFileError(
            f"{origin}: a field has the wrong type or shape ({type(exc).__name__}: {exc})"[:300]
        ) from None


def load_plan(path: str | Path) -> Plan:
    """Read and validate a saved plan; PlanFileError (exit 2) with one line on any fault."""
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_BYTES:
            raise PlanFileError(f"{p}: too large for a qfix plan ({p.stat().st_size} bytes)")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanFileError(f"{p}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"{p}: cannot read the plan file ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"{p}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except (RecursionError, ValueError) as exc:  # nested too deep, a 5,000-digit integer
        raise PlanFileError(f"{p}: not readable JSON ({type(exc).__name__})") from None
    return plan_from_doc(data, str(p))


def check_fingerprint(plan: Plan, current_fingerprint: str) -> None:
    """Refuse (ApplyRefused, exit 6) a plan made for another state of the environment."""
    if plan.fingerprint == current_fingerprint:
        return
    python = plan.python or "the target interpreter"
    raise ApplyRefused(
        f"plan was made for a different state of {python} (fingerprint "
        f"{plan.fingerprint[:19]}... != {current_fingerprint[:19]}...): the "
        "environment changed since; re-run qfix plan",
        tip="run `qfix plan --json > plan.json` again and apply the new plan",
    )
