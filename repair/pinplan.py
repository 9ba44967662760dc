"""Plan within the project's pins: never a version the project pins against. Pure.

The planner runs as always; when a step of its plan leaves a pin of the project
(``repair.pins``), it runs again on the knowledge base narrowed to what the pins allow (torch
releases and variants, bitsandbytes releases, the torchvision/torchaudio that go with a torch),
so the search itself finds another candidate that satisfies both the repair and the pins (an
older bitsandbytes that still fixes the problem, a torch build the pin allows). A floor such as
``transformers>=4.30.0,<5`` is narrowed by the pin (``<4.40``) where the two meet. Where no
candidate fits, every step is withheld -- the repair is one set of versions that must go
together -- and each conflict becomes a ``project-pin-conflict`` finding and a required manual
step that names both sides: what the repair needs and why, and the file and line of the pin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .findings import Diagnosis, Finding, Severity
from .knowledge import Knowledge
from .pins import Pin, ProjectPins, merge
from .plan import Manual, Plan, Step, StepAction, normalize
from .planner import TORCH_FINDINGS, make_plan
from .view import View

CONFLICT = "project-pin-conflict"
FAMILY = ("torchvision", "torchaudio")


@dataclass(frozen=True, slots=True)
class Conflict:
    """A step the repair needs and the pins that forbid it."""

    step: Step
    pins: tuple[Pin, ...]

    @property
    def needs(self) -> str:
        s = self.step
        if s.action is StepAction.UNINSTALL:
            return f"removes {s.package}"
        try:
            return f"needs {s.package}=={Version(str(s.to))}"
        except InvalidVersion:
            return f"needs {s.package}{s.to}"

    def text(self) -> str:
        why = ", ".join(self.step.because) or "the plan"
        pins = " and ".join(f"{p.source} pins {p.text}" for p in self.pins)
        return f"the repair {self.needs} ({why}) but {pins}"


def restrict(kb: Knowledge, view: View, pins: ProjectPins) -> Knowledge:
    """The knowledge base with only what the pins allow: torch versions (with their variant
    label: ``torch==2.1.0+cu121`` allows one variant) whose matching torchvision/torchaudio the
    pins allow too (for those installed), and bitsandbytes releases."""
    torch_pins = pins.on("torch")
    family = {n: pins.on(n) for n in FAMILY if view.package(n) is not None and pins.on(n)}
    installed = view.torch
    releases = []
    for rel in kb.torch.releases:

        def family_ok(v: Version) -> bool:
            fam = rel.family_for(v)  # noqa: B023 - used within this iteration only
            for name, ps in family.items():
                fv = getattr(fam, name) if fam is not None else None
                if fv is not None and any(not p.allows(fv) for p in ps):
                    return False
            return True

        def allowed(v: Version, variant: str) -> bool:
            return all(p.allows(f"{v}+{variant}") for p in torch_pins)

        versions = tuple(
            v
            for v in rel.versions
            if family_ok(v) and any(allowed(v, var.name) for var in rel.variants)
        )
        if not versions:
            if installed is not None and kb.torch.release(installed) is rel:
                # the installed torch's release stays known (so the planner still reasons about
                # what is installed), with no build it could move to
                releases.append(replace(rel, variants=()))
            continue
        variants = tuple(var for var in rel.variants if any(allowed(v, var.name) for v in versions))
        releases.append(replace(rel, versions=versions, latest=max(versions), variants=variants))
    bnb = tuple(r for r in kb.bnb.releases if not pins.violated_by("bitsandbytes", r.version))
    return replace(
        kb,
        torch=replace(kb.torch, releases=tuple(releases)),
        bnb=replace(kb.bnb, releases=bnb),
    )


def check_steps(
    steps: tuple[Step, ...], pins: ProjectPins
) -> tuple[tuple[Step, ...], list[Conflict], list[Pin]]:
    """The steps with their floors narrowed by the pins, the conflicts, and the pins used."""
    out: list[Step] = []
    conflicts: list[Conflict] = []
    used: list[Pin] = []
    reinstalled = {normalize(s.package) for s in steps if s.action is StepAction.INSTALL}
    for s in steps:
        ps = pins.on(s.package)
        if not ps:
            out.append(s)
            continue
        if s.action is StepAction.UNINSTALL:
            # a constraint never requires the package; a removal the plan reinstalls (every copy
            # of a duplicate bitsandbytes goes, then one comes back) leaves it installed
            needed = tuple(p for p in ps if not p.constraint)
            if needed and normalize(s.package) not in reinstalled:
                conflicts.append(Conflict(s, needed))
            out.append(s)
            continue
        try:
            Version(str(s.to))
        except InvalidVersion:  # a floor such as >=4.30.0,<5: narrow it by the pins
            merged = merge(str(s.to), ps)
            if merged is None:
                conflicts.append(Conflict(s, ps))
                out.append(s)
            else:
                if SpecifierSet(merged) != SpecifierSet(str(s.to)):
                    used.extend(ps)
                out.append(replace(s, to=merged))
            continue
        bad = tuple(p for p in ps if not p.allows(str(s.to)))
        if bad:
            conflicts.append(Conflict(s, bad))
        out.append(s)
    return tuple(out), conflicts, used


def _still_repairs(first: Plan, second: Plan) -> bool:
    """Whether the plan made within the pins still repairs what the first one did: it moves
    torch where a finding of torch's own made the first move it (a move made only to reach a
    bitsandbytes with the current loader is a preference: a legacy release that serves the
    pinned torch repairs too), installs bitsandbytes where the first did, and needs no manual
    step the first did not offer (as required, or as the way beside a torch move made for it)."""
    torch_move = next((s for s in first.steps if s.package == "torch"), None)
    must_move = torch_move is not None and bool(set(torch_move.because) & TORCH_FINDINGS)
    if must_move and second.torch_target is None:
        return False
    required = {m.id for m in first.manual if m.required}
    # the way the first plan offered beside a torch move made for a finding that is not
    # torch's own (a toolkit's cuDNN it ends): within the pins, that way is the repair, and a
    # bitsandbytes step that only followed that move is not needed
    offered = {
        m.id
        for m in first.manual
        if not m.required and torch_move is not None and m.id in torch_move.because
    }
    bnb_move = next((s for s in first.steps if s.package == "bitsandbytes"), None)
    followed = bnb_move is not None and bool(offered) and set(bnb_move.because) <= offered
    if first.bnb_target is not None and second.bnb_target is None and not followed:
        return False
    if any(m.required and m.id not in required | offered for m in second.manual):
        return False
    return not any(
        "no bitsandbytes release fits" in n for n in set(second.notes) - set(first.notes)
    )


def plan_within_pins(
    view: View,
    diag: Diagnosis,
    kb: Knowledge,
    pins: ProjectPins,
    *,
    torch_index_base: str,
    unknown: tuple[str, ...] = (),
) -> Plan:
    """``make_plan`` that never plans a version ``pins`` forbid (see the module doc).

    ``pins`` are those that hold for the target (markers evaluated: ProjectPins.for_target);
    ``unknown``: what that evaluation could not know, listed under "Could not know"."""
    first = make_plan(view, diag, kb, torch_index_base=torch_index_base)
    steps, conflicts, used = check_steps(first.steps, pins)
    plan = replace(first, steps=steps)
    if conflicts:
        second = make_plan(view, diag, restrict(kb, view, pins), torch_index_base=torch_index_base)
        steps2, conflicts2, used2 = check_steps(second.steps, pins)
        if not conflicts2 and _still_repairs(first, second):
            steered = [p for c in conflicts for p in c.pins]
            notes = tuple(
                f"{c.step.package}: the repair's first choice {c.step.to} is outside "
                + " and ".join(f"{p.text} ({p.source})" for p in c.pins)
                + f"; the plan within the pins: {_target_of(steps2, c.step.package)}"
                for c in conflicts
            )
            plan = replace(second, steps=steps2, notes=(*second.notes, *notes))
            conflicts, used = [], [*steered, *used2]
    if conflicts:
        plan = _withheld(plan, conflicts)
        used = [*used, *(p for c in conflicts for p in c.pins)]
    plan = _rule_findings_manual(plan)
    return replace(
        plan,
        notes=(*plan.notes, *pins.notes),
        unknown=(*plan.unknown, *unknown),
        project_pins=pins.files or pins.read,
        pins_applied=tuple(dict.fromkeys(f"{p.text} ({p.source})" for p in used)),
        pin_constraints=pins.constraint_lines(),
    )


def _rule_findings_manual(plan: Plan) -> Plan:
    """A project-pin-conflict the rule proved from the facts (repair.rules.project: the pins
    exclude every release that can do 4-bit) is a required manual step too."""
    texts = {m.text for m in plan.manual}
    extra = tuple(
        Manual(CONFLICT, text, True)
        for f in plan.findings
        if f.id == CONFLICT
        and not f.evidence.get("dependent")  # a distribution's pin: the planner's own step
        and (text := f"{f.summary}: change that pin, then re-run qfix plan") not in texts
        and not any(m.text.startswith(f.summary) for m in plan.manual)
    )
    return replace(plan, manual=(*plan.manual, *extra), healthy=False) if extra else plan


def _target_of(steps: tuple[Step, ...], package: str) -> str:
    for s in steps:
        if s.package == package:
            return str(s.to) if s.action is StepAction.INSTALL else "its removal"
    return "to leave it as installed"


def _withheld(plan: Plan, conflicts: list[Conflict]) -> Plan:
    """No step (the repair's versions go together), one finding and one required manual step
    per conflict, naming both sides."""
    findings = tuple(
        Finding(
            CONFLICT,
            Severity.ERROR,
            c.text(),
            {
                "package": c.step.package,
                "needs": c.step.to,
                "because": list(c.step.because),
                "pins": [f"{p.text} ({p.source})" for p in c.pins],
            },
        )
        for c in conflicts
    )
    manual = tuple(
        Manual(
            CONFLICT,
            f"{c.text()}: change that pin, then re-run qfix plan (the repair's steps are "
            "withheld: its versions only work together)",
            True,
        )
        for c in conflicts
    )
    return replace(
        plan,
        healthy=False,
        findings=(*plan.findings, *findings),
        steps=(),
        manual=(*plan.manual, *manual),
        torch_target=None,
        torch_variant=None,
        torch_arch_list=None,
        bnb_target=None,
        download={},
    )
