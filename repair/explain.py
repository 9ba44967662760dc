"""Match an error message or a whole traceback against the catalogue. Pure.

Signatures come from plans/failures.toml. When facts are given too, the diagnosis of those facts
confirms (or adds) classes, and the matches say which facts prove them. What `qfix plan --error`
makes of the same text (the constraints plans/signatures.toml reads from it, run through the
rules by ``pipeline.analyse``) comes in as ``Planned`` per class: those classes match too, with
the plan's finding and manual steps, so that `explain` and `plan --error` never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalogue import Catalogue
from .findings import Diagnosis, Severity
from .knowledge import Reference, Sources, load_sources
from .signatures import Signature, load_signatures

SCHEMA = "qfix.explain/1"


@dataclass(frozen=True, slots=True)
class Match:
    id: str
    title: str
    severity: Severity
    lines: tuple[str, ...]  # the lines of the text that matched a signature
    confirmed_by_facts: bool | None  # None: no facts given
    explanation: str
    confirm: str
    remedy: str
    sources: tuple[str, ...]
    evidence: dict[str, Any]
    references: tuple[Reference, ...] = ()  # what the keys its sources cite stand for
    # What `qfix plan --error` with this text says of the class (None: the plan names it not):
    # its findings' summaries and its manual steps for it, which lead where there are any.
    planned: Planned | None = None

    def reference_lines(self) -> tuple[str, ...]:
        """'KEY: text' for each key the sources cite (plans/sources.toml)."""
        return tuple(f"{r.key}: {r.text}" for r in self.references)

    def to_dict(self) -> dict[str, Any]:
        p = self.planned or Planned()  # not named by the plan: its parts empty
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "matched_lines": list(self.lines),
            "confirmed_by_facts": self.confirmed_by_facts,
            "explanation": self.explanation,
            "confirm": self.confirm,
            "remedy": self.remedy,
            "sources": list(self.sources),
            "evidence": self.evidence,
            "references": _refs(self.references),
            "named_by_plan": self.planned is not None,
            "plan_findings": list(p.findings),
            "advice": list(p.advice),
            "plan_steps": list(p.steps),
            "cause": p.cause,
            "cause_references": _refs(p.cause_references),
            "advice_references": _refs(p.references if p.advice else ()),
        }


def _refs(refs: Iterable[Reference]) -> list[dict[str, str]]:
    """References as JSON: key, kind and text."""
    return [{"key": r.key, "kind": r.kind, "text": r.text} for r in refs]


@dataclass(frozen=True, slots=True)
class Planned:
    """What the plan for an error text (``pipeline.analyse``) says of one class."""

    findings: tuple[str, ...] = ()  # the summaries of its findings, the error's own words
    advice: tuple[str, ...] = ()  # its manual steps (outside the venv), in the plan's order
    # What the advice rests on: the sources of the plans/signatures.toml entries the text matched
    references: tuple[Reference, ...] = ()
    # The cause the text proves where it is narrower than the class's general one (a feature
    # floor of plans/huggingface.toml: peft >= 0.10.0 for 4-bit DoRA); None: the class's
    cause: str | None = None
    # what that cause rests on: the sources of those floors (plans/huggingface.toml `source`)
    cause_references: tuple[Reference, ...] = ()
    # the plan's steps for this class, "package from -> to" (its `because` names the class)
    steps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    """`qfix explain`: the matching classes and what the text proves about the facts."""

    matches: tuple[Match, ...]
    # What the text proves, as `qfix plan --error` lists it under "read from the error message"
    read_from_error: tuple[str, ...] = ()
    implied: Mapping[str, Any] = field(default_factory=dict)  # signatures.implied_to_dict
    # Classes a catalogue signature matches that the facts, with what the text proves, rule
    # out (the plan's "also points to ...; ... rule that out"): not listed as matches
    ruled_out: tuple[str, ...] = ()


def explain(
    text: str,
    cat: Catalogue,
    diagnosis: Diagnosis | None = None,
    sources: Sources | None = None,
    planned: Mapping[str, Planned] | None = None,
    signatures: tuple[Signature, ...] | None = None,
    ruled_out: Iterable[str] = (),
) -> tuple[Match, ...]:
    """Classes whose signatures match ``text``, strongest first; with a diagnosis, classes the
    facts prove are added (and those matches marked confirmed). ``planned``: the classes the plan
    for this text names (``pipeline.analyse``), added where no catalogue signature matched, their
    evidence the lines ``signatures`` (default: plans/signatures.toml) matched. Each match
    carries the text of every key its sources cite (``sources``, default: plans/sources.toml)."""
    table = sources if sources is not None else load_sources()
    found = _catalogue_hits(text, cat)
    for fid in ruled_out:
        found.pop(fid, None)
    planned = planned or {}
    fact_ids = set(diagnosis.ids) if diagnosis else set()
    from_constraints = [i for i in planned if i not in found and i not in fact_ids]
    if from_constraints:
        # Classes the rules draw from what plans/signatures.toml reads in the text: the lines
        # those signatures matched are the evidence.
        hit = _signature_hits(text, load_signatures() if signatures is None else signatures)
        for fid in from_constraints:
            found[fid] = hit
    evidence: dict[str, dict[str, Any]] = {}
    if diagnosis:
        for f in diagnosis.findings:
            evidence.setdefault(f.id, {"summary": f.summary, **f.evidence})
    matches: list[tuple[tuple[int, int, int], Match]] = []
    for fid in list(found) + [i for i in fact_ids if i not in found]:
        cls = cat.get(fid)
        score, hits = found.get(fid, (0, []))
        confirmed = (fid in fact_ids) if diagnosis else None
        rank = (0 if confirmed else 1, -score, cat.ids.index(fid))
        matches.append(
            (
                rank,
                Match(
                    id=fid,
                    title=cls.title,
                    severity=cls.severity,
                    lines=tuple(hits),
                    confirmed_by_facts=confirmed,
                    explanation=cls.explanation,
                    confirm=cls.confirm,
                    remedy=cls.remedy,
                    sources=cls.sources,
                    evidence=evidence.get(fid, {}),
                    references=table.resolve("; ".join(cls.sources)),
                    planned=planned.get(fid),
                ),
            )
        )
    return tuple(m for _, m in sorted(matches, key=lambda x: x[0]))


def _line_at(text: str, start: int, end: int) -> str:
    """The line of ``text`` that holds ``text[start:end]``, stripped (at most 300 characters)."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    return text[first : last if last != -1 else len(text)].strip()[:300]


def _catalogue_hits(text: str, cat: Catalogue) -> dict[str, tuple[int, list[str]]]:
    """Per class whose failures.toml signatures match: (score, matched lines). A class scores by
    its most specific matching signature (the longest pattern): a precise line outranks
    boilerplate that many logs share."""
    found: dict[str, tuple[int, list[str]]] = {}
    for cls in cat.classes:
        if any(p.search(text) for p in cls.unless):
            continue
        hits: list[str] = []
        score = 0
        for pattern in cls.signatures:
            for m in pattern.finditer(text):
                score = max(score, len(pattern.pattern))
                line = _line_at(text, m.start(), m.end())
                if line and line not in hits:
                    hits.append(line)
        if hits:
            found[cls.id] = (score, hits)
    return found


def _signature_hits(text: str, signatures: tuple[Signature, ...]) -> tuple[int, list[str]]:
    """The lines plans/signatures.toml's patterns match in ``text``, scored like a class."""
    hits: list[str] = []
    score = 0
    for sig in signatures:
        m = sig.pattern.search(text)
        if m is None:
            continue
        score = max(score, len(sig.pattern.pattern))
        line = _line_at(text, m.start(), m.end())
        if line and line not in hits:
            hits.append(line)
    return score, hits


# torch's "The NVIDIA driver on your system is too old (found version 11060)": the CUDA version
# the driver supports, as cudaDriverGetVersion reports it (major*1000 + minor*10).
_FOUND_VERSION = re.compile(r"driver on your system is too old \(found version (\d{4,5})\)")


def driver_cuda_from_error(text: str) -> str | None:
    """The driver's CUDA version stated by torch's "driver too old" message ("11.6"), or None."""
    m = _FOUND_VERSION.search(text)
    if not m:
        return None
    n = int(m.group(1))
    return f"{n // 1000}.{(n % 1000) // 10}"


def explain_to_dict(result: Explanation | tuple[Match, ...]) -> dict[str, Any]:
    """The qfix.explain/1 document (``read_from_error`` and ``implied`` added in 0.x: what the
    text proves, as `qfix plan --error` reads it; empty when it proves nothing)."""
    if not isinstance(result, Explanation):
        result = Explanation(tuple(result))
    return {
        "schema": SCHEMA,
        "matches": [m.to_dict() for m in result.matches],
        "read_from_error": list(result.read_from_error),
        "implied": dict(result.implied),
        "ruled_out": list(result.ruled_out),
    }
