"""Reading a saved ``qfix.plan/1`` file for ``qfix apply --plan FILE``, and refusing any plan
that qfix itself would not make for the environment as it is now.

A plan file is input from outside (it may have been edited, or written by somebody else), and
``apply`` turns its steps into installer argv. So it passes four gates, each before anything is
changed:

1. ``load_plan_doc``: bounded JSON (repair.jsonload: size and depth), then every field that could
   reach an argument is checked: package names against PEP 508, versions against PEP 440, index
   URLs against the https rule of ``commands.validate_index_url`` (PlanFileError, exit 2).
2. ``check_fingerprint``: made for this state of the environment (ApplyRefused, exit 6).
3. ``check_scope``: every step is about a package qfix repairs (the torch family, bitsandbytes
   and its forks, the Hugging Face stack the knowledge base names), whatever the file says (6).
4. ``check_same``: the steps, targets, index URLs, manual steps, commands and constraints are
   exactly those of the plan qfix computes now; the first difference is named (6). A subset is
   refused too: a step left out can leave the stack half-moved (torch without its torchvision).

Apply then runs qfix's own plan, equal to the file in all of those: nothing the file says reaches
an installer unchecked. Pure apart from reading the file it is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import jsonload
from .commands import requirement, validate_index_url, validate_name
from .digest import first_difference, is_digest
from .errors import ApplyRefused, BadInput, PlanFileError
from .findings import Severity
from .knowledge import Knowledge
from .plan import PLAN_SCHEMA, TORCH_FAMILY, Plan, Step, StepAction, StepGroup, normalize
from .view import BNB_FORK_PATTERN

SCHEMA = PLAN_SCHEMA
ACTIONS = tuple(a.value for a in StepAction)
GROUPS = tuple(g.value for g in StepGroup)
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}\Z")
MAX_BYTES = 4 << 20  # a plan is a few KiB; refuse to read something absurd
MAX_DEPTH = 16  # qfix writes 4 levels (plan > steps > step > because)


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
        if not isinstance(target.get("platform"), (str, type(None))):
            raise _fail(origin, "target.platform", "must be a string or null")
    torch_target = data.get("torch_target")
    if torch_target is not None:
        if not isinstance(torch_target, dict):
            raise _fail(origin, "torch_target", "must be an object")
        for key in ("version", "variant"):
            if not isinstance(torch_target.get(key), (str, type(None))):
                raise _fail(origin, f"torch_target.{key}", "must be a string or null")
        arch = torch_target.get("arch_list")
        if arch is not None and not (
            isinstance(arch, list) and all(isinstance(a, str) for a in arch)
        ):
            raise _fail(origin, "torch_target.arch_list", "must be a list of strings or null")
    if not isinstance(data.get("bitsandbytes_target"), (str, type(None))):
        raise _fail(origin, "bitsandbytes_target", "must be a version or null")
    if not isinstance(data.get("download_bytes"), (dict, type(None))):
        raise _fail(origin, "download_bytes", "must be an object")
    base = data.get("torch_index_base")
    if base is not None:
        try:
            validate_index_url(base)
        except BadInput as exc:
            raise _fail(origin, "torch_index_base", exc.message) from None
    digest = data.get("digest")
    if digest is not None and not (isinstance(digest, str) and is_digest(digest)):
        raise _fail(origin, "digest", f"must be 'sha256:<64 hex digits>', got {digest!r}")
    for key in ("findings", "manual", "commands", "constraints", "unknown", "notes"):
        if key in data and not isinstance(data[key], list):
            raise _fail(origin, key, "must be a list")
    for i, finding in enumerate(data.get("findings") or []):
        if not isinstance(finding, dict):
            raise _fail(origin, f"findings[{i}]", "must be a mapping")
        if finding.get("severity", "info") not in {s.value for s in Severity}:
            raise _fail(origin, f"findings[{i}].severity", "must be error, warning or info")
        if not isinstance(finding.get("evidence"), (dict, type(None))):
            raise _fail(origin, f"findings[{i}].evidence", "must be an object")
    for i, manual in enumerate(data.get("manual") or []):
        if not isinstance(manual, dict):
            raise _fail(origin, f"manual[{i}]", "must be an object")
    for i, cmd in enumerate(data.get("commands") or []):
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise _fail(origin, f"commands[{i}]", "must be a list of strings")
    for i, line in enumerate(data.get("constraints") or []):
        if not isinstance(line, str):
            raise _fail(origin, f"constraints[{i}]", "must be a string")
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


def load_plan_doc(path: str | Path) -> dict[str, Any]:
    """Read and validate a saved plan's document; PlanFileError (exit 2), one line, on any fault
    (missing, unreadable, over MAX_BYTES, nested over MAX_DEPTH, not JSON, a bad field)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise PlanFileError(
                f"{p}: too large for a qfix plan ({size} bytes; the limit is {MAX_BYTES})"
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PlanFileError(f"{p}: no such plan file") from None
    except OSError as exc:
        raise PlanFileError(f"{p}: cannot read the plan file ({exc.strerror})") from None
    data = jsonload.loads(
        raw, str(p), max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, error=PlanFileError
    )
    return validate_plan(data, str(p))


def load_plan(path: str | Path) -> Plan:
    """Read and validate a saved plan (see ``load_plan_doc``) into the typed Plan."""
    return Plan.from_dict(load_plan_doc(path))


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


# --------------------------------------------------------------------------- scope

_SCOPE_TEXT = (
    "the torch family, bitsandbytes and its forks, the Hugging Face stack, CTranslate2, and pip's "
    "own upgrade"
)


def repair_scope(kb: Knowledge) -> frozenset[str]:
    """The packages qfix's repairs are about (PEP 503 names): the torch family, bitsandbytes,
    every package the Hugging Face rules of the knowledge base name (plans/huggingface.toml:
    transformers, accelerate, peft, ...) and the libraries of plans/runtimes.toml (CTranslate2).
    Forks of bitsandbytes are matched by ``in_scope``."""
    names = {*TORCH_FAMILY, "bitsandbytes"}
    # the libraries beside torch whose CUDA and cuDNN plans/runtimes.toml knows (CTranslate2)
    names.update(r.package for r in kb.runtimes.rows)
    for rule in kb.hf:
        names.add(rule.package)
        names.update(rule.when)
    names.discard("python")  # a rule's floor on the interpreter, not a package
    return frozenset(normalize(n) for n in names)


def in_scope(name: str, kb: Knowledge, providers: Iterable[str] = ()) -> bool:
    """True for a package a repair may touch: ``repair_scope``, an obsolete fork of bitsandbytes
    (repair.view.BNB_FORK_PATTERN), or a distribution the probe found providing the
    ``bitsandbytes`` module (``providers``: the duplicates a repair removes)."""
    n = normalize(name)
    return (
        n in repair_scope(kb)
        or BNB_FORK_PATTERN.match(n) is not None
        or n in {normalize(p) for p in providers}
    )


def _installer_upgrade(step: Step) -> bool:
    """pip installed by its own first command (group "installer"): the upgrade an old pip needs
    to read the wheels' tags."""
    return (
        normalize(step.package) == "pip"
        and step.action is StepAction.INSTALL
        and step.group is StepGroup.INSTALLER
    )


def check_scope(plan: Plan, kb: Knowledge, providers: Iterable[str] = ()) -> None:
    """Refuse (ApplyRefused, exit 6) a plan with a step about any other package: a saved plan
    that uninstalls pip or installs an unrelated package is never run, whatever else it says."""
    shown = tuple(providers)
    for i, step in enumerate(plan.steps):
        if _installer_upgrade(step):
            continue  # pip's own upgrade before the rest (planner._installer_step), never removal
        if not in_scope(step.package, kb, shown):
            raise ApplyRefused(
                f"saved plan: steps[{i}] would {step.action} {step.package}, a package qfix "
                f"does not repair (it only touches {_SCOPE_TEXT}); nothing was changed",
                tip="re-create the plan with `qfix plan --out FILE` and review it",
            )


# --------------------------------------------------------------------------- same as qfix's own

# What must be exactly what qfix computes now. The findings, notes, unknowns and download sizes
# are words for people: apply shows qfix's own. ``commands`` and ``constraints`` are compared
# when the file has them (apply never runs the file's, it rebuilds them from the steps, but a
# file that shows a reviewer other commands than those that would run is refused).
COMPARED = (
    "target",
    "torch_index_base",
    "steps",
    "torch_target",
    "bitsandbytes_target",
    "manual",
    "commands",
    "constraints",
)


def check_same(doc: dict[str, Any], own: Plan, origin: str = "saved plan") -> None:
    """Refuse (ApplyRefused, exit 6) a saved plan (``doc``, validated) that is not exactly the
    plan qfix makes now (``own``), naming the first difference; also one whose ``digest`` does
    not match its own decisions (edited after qfix wrote it)."""
    saved = Plan.from_dict(doc).to_dict()  # normalised: optional fields as qfix writes them
    mine = own.to_dict()
    tip = (
        "run `qfix plan --out FILE` again, review it and apply that file "
        "(a plan made with --torch-index, --requirements or --constraint needs the same "
        "options here)"
    )
    written = doc.get("digest")
    if written is not None and written != saved["digest"]:
        raise ApplyRefused(
            f"{origin}: its digest {written[:19]}... does not match its own steps "
            f"({saved['digest'][:19]}...): the file was edited after qfix wrote it",
            tip=tip,
        )
    for key in COMPARED:
        if key in ("commands", "constraints") and key not in doc:
            continue
        diff = first_difference(mine[key], saved[key], key)
        if diff is not None:
            raise ApplyRefused(
                f"{origin} is not what qfix plans for this environment now (digest "
                f"{saved['digest'][:19]}..., qfix's own {mine['digest'][:19]}...): {diff}",
                tip=tip,
            )
