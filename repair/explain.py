"""Match an error message or a whole traceback against the catalogue. Pure.

Signatures come from plans/failures.toml. When facts are given too, the diagnosis of those facts
confirms (or adds) classes, and the matches say which facts prove them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .catalogue import Catalogue
from .findings import Diagnosis, Severity
from .knowledge import Reference, Sources, load_sources

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

    def reference_lines(self) -> tuple[str, ...]:
        """'KEY: text' for each key the sources cite (plans/sources.toml)."""
        return tuple(f"{r.key}: {r.text}" for r in self.references)

    def to_dict(self) -> dict[str, Any]:
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
            "references": [{"key": r.key, "kind": r.kind, "text": r.text} for r in self.references],
        }


def explain(
    text: str,
    cat: Catalogue,
    diagnosis: Diagnosis | None = None,
    sources: Sources | None = None,
) -> tuple[Match, ...]:
    """Classes whose signatures match ``text``, strongest first; with a diagnosis, classes the
    facts prove are added (and those matches marked confirmed). Each match carries the text of
    every key its sources cite (``sources``, default: the shipped plans/sources.toml)."""
    table = sources if sources is not None else load_sources()
    # Each class scores by its most specific matching signature (the longest pattern): a precise
    # line outranks boilerplate that many logs share.
    found: dict[str, tuple[int, list[str]]] = {}
    for cls in cat.classes:
        if any(p.search(text) for p in cls.unless):
            continue
        hits: list[str] = []
        score = 0
        for pattern in cls.signatures:
            for m in pattern.finditer(text):
                score = max(score, len(pattern.pattern))
                start = text.rfind("\n", 0, m.start()) + 1
                end = text.find("\n", m.end())
                line = text[start : end if end != -1 else len(text)].strip()
                if line and line not in hits:
                    hits.append(line[:300])
        if hits:
            found[cls.id] = (score, hits)
    fact_ids = set(diagnosis.ids) if diagnosis else set()
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
                ),
            )
        )
    return tuple(m for _, m in sorted(matches, key=lambda x: x[0]))


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


def explain_to_dict(matches: tuple[Match, ...]) -> dict[str, Any]:
    """The qfix.explain/1 document."""
    return {"schema": SCHEMA, "matches": [m.to_dict() for m in matches]}
