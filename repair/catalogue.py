"""The catalogue of failure classes (plans/failures.toml), loaded and validated.

Pure: reads a data file of the knowledge base, no process, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import KnowledgeError
from .findings import Severity
from .knowledge import plans_directory, read_toml

SEVERITIES = tuple(s.value for s in Severity)
_FIELDS = (
    "id",
    "severity",
    "title",
    "explanation",
    "evidence",
    "confirm",
    "remedy",
    "signatures",
    "sources",
    "checked",
)


@dataclass(frozen=True, slots=True)
class FailureClass:
    id: str
    severity: Severity
    title: str
    explanation: str
    evidence: tuple[str, ...]
    confirm: str
    remedy: str
    signatures: tuple[re.Pattern[str], ...]
    sources: tuple[str, ...]
    checked: str
    example: str | None
    unless: tuple[re.Pattern[str], ...] = ()  # text that rules the class out despite a signature


@dataclass(frozen=True, slots=True)
class Catalogue:
    classes: tuple[FailureClass, ...]

    def get(self, failure_id: str) -> FailureClass:
        """The class of ``failure_id``; KeyError for an id not in the catalogue."""
        for c in self.classes:
            if c.id == failure_id:
                return c
        raise KeyError(failure_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.classes)


def _parse(data: dict[str, object], origin: str) -> Catalogue:
    raw = data.get("failure")
    if not isinstance(raw, list) or not raw:
        raise KnowledgeError(f"{origin}: expected a list of [[failure]] tables")
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise KnowledgeError(f"{origin}: entry {i} is not a table")
        name = entry.get("id", f"#{i}")
        where = f"{origin}: failure '{name}'"
        for key in _FIELDS:
            if key not in entry:
                raise KnowledgeError(f"{where}: missing field '{key}'")
        for key in ("id", "severity", "title", "explanation", "confirm", "remedy", "checked"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise KnowledgeError(f"{where}: field '{key}' must be a non-empty string")
        for key in ("evidence", "signatures", "sources"):
            value = entry[key]
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise KnowledgeError(f"{where}: field '{key}' must be a list of strings")
        if entry["severity"] not in SEVERITIES:
            raise KnowledgeError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry["id"]):
            raise KnowledgeError(f"{where}: id must be lower-case words joined by '-'")
        if entry["id"] in seen:
            raise KnowledgeError(f"{where}: duplicate id")
        seen.add(entry["id"])
        unless = entry.get("unless", [])
        if not isinstance(unless, list) or not all(isinstance(x, str) for x in unless):
            raise KnowledgeError(f"{where}: field 'unless' must be a list of strings")
        patterns, negatives = _compile(entry["signatures"], where), _compile(unless, where)
        example = entry.get("example")
        if example is not None and not isinstance(example, str):
            raise KnowledgeError(f"{where}: field 'example' must be a file name")
        out.append(
            FailureClass(
                id=entry["id"],
                severity=Severity(entry["severity"]),
                title=entry["title"],
                explanation=entry["explanation"],
                evidence=tuple(entry["evidence"]),
                confirm=entry["confirm"],
                remedy=entry["remedy"],
                signatures=tuple(patterns),
                sources=tuple(entry["sources"]),
                checked=entry["checked"],
                example=example,
                unless=negatives,
            )
        )
    return Catalogue(tuple(out))


def _compile(sigs: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for sig in sigs:
        try:
            out.append(re.compile(sig, re.IGNORECASE | re.MULTILINE))
        except re.error as exc:
            raise KnowledgeError(
                f"{where}: signature {sig!r} is not a valid regex ({exc})"
            ) from None
    return tuple(out)


@lru_cache(maxsize=8)
def _load(path: Path) -> Catalogue:
    return _parse(read_toml(path), f"plans/{path.name}")


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """The failure catalogue of ``directory`` (default: the shipped plans/)."""
    return _load((directory or plans_directory()) / "failures.toml")
