"""The plan: one typed value from the planner to the renderer, the plan file and the transaction.

``Plan.to_dict`` writes ``qfix.plan/1`` (``qfix plan --json``, ``--out FILE``) and
``Plan.from_dict`` reads it back, so a saved plan is the same value as a freshly computed one.
``from_dict`` trusts its input: a document from outside is checked first by
``repair.planfile.validate_plan`` (``repair.planfile.plan_from_doc`` does both). Pure.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .digest import plan_digest
from .findings import Finding, Severity

PLAN_SCHEMA = "qfix.plan/1"
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
_SPLIT = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalised project name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return _SPLIT.sub("-", name).lower()


class _Word(str, enum.Enum):
    """A str-valued enum that prints as its word on every Python >= 3.10 (no StrEnum in 3.10)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class StepAction(_Word):
    """What an installer does with a step's package (str-valued: the JSON is the plain word)."""

    INSTALL = "install"
    UNINSTALL = "uninstall"


class StepGroup(_Word):
    """Which command a step joins: the torch family's index, the default index, or removals."""

    TORCH = "torch"
    PYPI = "pypi"
    UNINSTALL = "uninstall"
    # pip itself, upgraded in a command of its own before the others, which it then runs: an
    # old pip cannot read the tags of the wheels they install (wheeltags, S71)
    INSTALLER = "installer"


@dataclass(frozen=True, slots=True)
class Step:
    """One installer action of a plan (qfix.plan/1 `steps`)."""

    # The planner may spell these as their words ("install", "torch"); __post_init__ makes
    # them the enums, so every reader sees one type.
    action: StepAction | str
    package: str
    from_: str | None
    to: str | None  # an exact version (torch family carries its +variant label) or a specifier
    index_url: str | None
    because: tuple[str, ...]
    group: StepGroup | str

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", StepAction(self.action))
        object.__setattr__(self, "group", StepGroup(self.group))

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": StepAction(self.action).value,
            "package": self.package,
            "from": self.from_,
            "to": self.to,
            "index_url": self.index_url,
            "because": list(self.because),
            "group": StepGroup(self.group).value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        action = StepAction(d["action"])
        group = d.get("group")
        if group is None:  # optional in a hand-written file: removals, else by the package
            if action is StepAction.UNINSTALL:
                group = StepGroup.UNINSTALL
            else:
                torch = normalize(str(d["package"])) in TORCH_FAMILY
                group = StepGroup.TORCH if torch else StepGroup.PYPI
        return cls(
            action=action,
            package=d["package"],
            from_=d.get("from"),
            to=d.get("to"),
            index_url=d.get("index_url"),
            because=tuple(d.get("because") or ()),
            group=StepGroup(group),
        )


@dataclass(frozen=True, slots=True)
class Manual:
    """Something a venv cannot fix; ``required`` when the repair depends on it."""

    id: str
    text: str
    required: bool  # False: an alternative or a recommendation; the venv repair suffices

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "required": self.required}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manual:
        return cls(str(d.get("id", "")), str(d.get("text", "")), bool(d.get("required", False)))


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of the planner: findings, steps, manual steps, unknowns (qfix.plan/1)."""

    healthy: bool
    findings: tuple[Finding, ...]
    steps: tuple[Step, ...]
    manual: tuple[Manual, ...]
    unknown: tuple[str, ...]
    fingerprint: str
    python: str | None
    platform: str | None
    torch_index_base: str | None  # None only in a saved plan that names none
    torch_target: str | None  # e.g. "2.7.1+cu118" when torch moves
    torch_variant: str | None
    torch_arch_list: tuple[str, ...] | None
    bnb_target: str | None
    notes: tuple[str, ...] = ()
    download: Mapping[str, int | None] = field(default_factory=dict)
    commands: tuple[tuple[str, ...], ...] = ()
    constraints: tuple[str, ...] = ()  # the pins the commands' constraint file holds
    # Why the facts are too thin to judge (then never healthy; `qfix plan` exits 7)
    cannot_tell: str | None = None
    installer: tuple[str, str] | None = None  # (pip|uv, why) once resolved for this target
    # The project's pins (--requirements / --constraint, repair.pinplan): the files read, the
    # pins that changed the plan ("bitsandbytes<0.46 (requirements.txt:3)"), and the lines they
    # add to the installers' constraints file.
    project_pins: tuple[str, ...] = ()
    pins_applied: tuple[str, ...] = ()
    pin_constraints: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        doc = self._document()
        if self.cannot_tell is not None:  # only then: plans that can tell keep their old shape
            doc["cannot_tell"] = self.cannot_tell
        # What a reviewer approves and `apply --plan` / `--expect-plan` check (repair.digest):
        # the decisions (steps, manual steps, torch index base), not where or when they were made.
        doc["digest"] = plan_digest(doc)
        return doc

    def digest(self) -> str:
        """``sha256:<hex>`` of the plan's decisions (repair.digest.plan_digest)."""
        return plan_digest(self._document())

    def _document(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "healthy": self.healthy,
            "target": {"python": self.python, "platform": self.platform},
            "findings": [f.to_dict() for f in self.findings],
            "steps": [s.to_dict() for s in self.steps],
            "manual": [m.to_dict() for m in self.manual],
            "commands": [list(c) for c in self.commands],
            "constraints": list(self.constraints),
            "unknown": list(self.unknown),
            "fingerprint": self.fingerprint,
            "torch_index_base": self.torch_index_base,
            "torch_target": {
                "version": self.torch_target,
                "variant": self.torch_variant,
                "arch_list": None if self.torch_arch_list is None else list(self.torch_arch_list),
            },
            "bitsandbytes_target": self.bnb_target,
            "download_bytes": dict(self.download),
            "notes": list(self.notes),
            **(
                {}
                if self.installer is None
                else {"installer": {"name": self.installer[0], "reason": self.installer[1]}}
            ),
            **(
                {}
                if not self.project_pins
                else {
                    "project_pins": {
                        "files": list(self.project_pins),
                        "applied": list(self.pins_applied),
                        "constraints": list(self.pin_constraints),
                    }
                }
            ),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        """The plan a ``qfix.plan/1`` document describes (validated before: see planfile)."""
        target = d.get("target") or {}
        torch = d.get("torch_target") or {}
        arch = torch.get("arch_list")
        return cls(
            healthy=bool(d["healthy"]),
            findings=tuple(
                Finding(
                    str(f.get("id", "")),
                    Severity(f.get("severity", "info")),
                    str(f.get("summary", "")),
                    dict(f.get("evidence") or {}),
                )
                for f in d.get("findings") or ()
            ),
            steps=tuple(Step.from_dict(s) for s in d.get("steps") or ()),
            manual=tuple(Manual.from_dict(m) for m in d.get("manual") or ()),
            unknown=tuple(d.get("unknown") or ()),
            fingerprint=str(d["fingerprint"]),
            python=target.get("python"),
            platform=target.get("platform"),
            torch_index_base=d.get("torch_index_base"),
            torch_target=torch.get("version"),
            torch_variant=torch.get("variant"),
            torch_arch_list=None if arch is None else tuple(arch),
            bnb_target=d.get("bitsandbytes_target"),
            notes=tuple(d.get("notes") or ()),
            download=dict(d.get("download_bytes") or {}),
            commands=tuple(tuple(c) for c in d.get("commands") or ()),
            constraints=tuple(d.get("constraints") or ()),
            cannot_tell=d.get("cannot_tell") if isinstance(d.get("cannot_tell"), str) else None,
            installer=_installer(d.get("installer")),
            **_project_pins(d.get("project_pins")),
        )


def _project_pins(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        return {}
    return {
        "project_pins": tuple(str(x) for x in value.get("files") or ()),
        "pins_applied": tuple(str(x) for x in value.get("applied") or ()),
        "pin_constraints": tuple(str(x) for x in value.get("constraints") or ()),
    }


def _installer(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return (value["name"], str(value.get("reason", "")))
    return None
