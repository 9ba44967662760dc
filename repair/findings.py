"""What the diagnosis says: findings, their severity, and the facts it could not know. Pure data.

A finding names a failure class of plans/failures.toml by id; the rules that produce findings are
in ``repair/rules/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How bad a finding is. A str, so that JSON and comparisons with "error" are unchanged."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Unknown:
    """A fact the diagnosis or the planner could not know.

    ``key`` names the fact for code (the planner drops or keeps unknowns by key, never by their
    wording); ``text`` is what the user reads (the ``unknown`` list of qfix.plan/1).
    """

    key: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Finding:
    """A failure class of plans/failures.toml that the facts (or an error message) point to."""

    id: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": self.evidence,
        }


def only_reported(finding: Finding) -> bool:
    """Whether ``finding`` is a class only an error message points to (no rule proved it)."""
    return finding.evidence.get("reported") is True


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """All findings, what could not be known, and error-message classes the facts rule out."""

    findings: tuple[Finding, ...]
    unknown: tuple[Unknown, ...]
    ruled_out: tuple[str, ...] = ()  # classes an error message pointed to that the facts exclude

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.findings)

    @property
    def unknown_texts(self) -> tuple[str, ...]:
        return tuple(u.text for u in self.unknown)
