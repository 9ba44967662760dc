"""Facts x knowledge -> Findings. Pure: no process, no network, no torch import.

``diagnose`` runs the rules of ``repair/rules/`` (one per failure class of plans/failures.toml) in
catalogue order. Each rule looks at the facts it needs and stays quiet when they are unknown; it
then reports what it could not know as an ``Unknown``.
"""

from __future__ import annotations

from .catalogue import Catalogue
from .findings import Diagnosis, Finding, Severity, Unknown, only_reported
from .knowledge import Knowledge
from .rules import EXCLUSIONS, RULES, SUSPECTS, Context, make_context
from .view import View

__all__ = [
    "Diagnosis",
    "Finding",
    "Severity",
    "Unknown",
    "diagnose",
    "contradicted",
    "only_reported",
]


# The summary's tail of a class only an error message points to (the facts neither prove it nor
# rule it out): such a finding adds nothing to the class's title.
REPORTED = "(reported by the error message; the facts neither prove nor rule it out)"


def diagnose(
    view: View, kb: Knowledge, cat: Catalogue, reported: tuple[str, ...] = ()
) -> Diagnosis:
    """Every failure class the facts prove, in catalogue order, plus the facts that were missing.

    ``reported``: classes an error message points to (``qfix explain`` of a ticket's error). Where
    the facts are partial and do not contradict one, it is added as a finding marked as reported.
    """
    ctx = make_context(view, kb, cat)
    found: list[Finding] = []
    unknown: list[Unknown] = []
    for fid in cat.ids:
        run = RULES.get(fid)
        for item in run(ctx) if run is not None else ():
            if isinstance(item, Unknown):
                unknown.append(item)
            else:
                found.append(item)
    proven = {x.id for x in found}
    ruled_out = []
    for fid in reported:
        if fid in proven:
            continue
        if contradicted(view, kb, fid):
            ruled_out.append(fid)
            continue
        found.append(
            ctx.finding(
                fid,
                f"{cat.get(fid).title} {REPORTED}",
                source="error message",
                reported=True,
            )
        )
        proven.add(fid)
    found, unknown = _with_suspect(ctx, cat, found, unknown)
    return Diagnosis(_unique(found, cat), tuple(dict.fromkeys(unknown)), tuple(ruled_out))


def _with_suspect(
    ctx: Context, cat: Catalogue, found: list[Finding], unknown: list[Unknown]
) -> tuple[list[Finding], list[Unknown]]:
    """Where the facts and the error text show no fault at all (an info note aside), the first
    suspect that fires, in catalogue order with the fallback ones last: the likeliest cause of
    the one open question (issue 12 item 1). One at most: a second guess beside the first would
    contradict its "likeliest"."""
    if any(f.severity != Severity.INFO for f in found):
        return found, unknown
    if ctx.view.facts.names_no_package:
        return found, unknown  # nothing about the environment at all: "cannot tell"
    # catalogue order, a suspicion from an era or a default (fallback) after those that read a
    # fact of this machine's GPU or of the text
    order = sorted(
        (fid for fid in cat.ids if fid in SUSPECTS), key=lambda fid: SUSPECTS[fid].fallback
    )
    for fid in order:
        suspect = SUSPECTS[fid]
        suspected = [
            Finding(f.id, Severity.WARNING, f.summary, {**f.evidence, "suspected": True})
            for f in suspect.run(ctx)
        ]
        if suspected:
            kept = [u for u in unknown if u.key not in suspect.replaces]
            return [*found, *suspected], [*kept, Unknown(suspect.replaces[0], suspect.instead)]
    return found, unknown


def _unique(found: list[Finding], cat: Catalogue) -> tuple[Finding, ...]:
    """The findings in catalogue order, each (class, summary) once."""
    order = {c: i for i, c in enumerate(cat.ids)}
    seen: set[tuple[str, str]] = set()
    out = []
    for x in sorted(found, key=lambda x: order[x.id]):
        if (x.id, x.summary) not in seen:
            seen.add((x.id, x.summary))
            out.append(x)
    return tuple(out)


def contradicted(view: View, kb: Knowledge, fid: str) -> bool:
    """Do the facts rule out class ``fid`` that an error message points to?

    Facts of a full probe are complete: what the rules did not find there is not the case. In a
    partial report, only the facts a class depends on (its ``@ruled_out`` check) can rule it out.
    """
    exclusion = EXCLUSIONS.get(fid)
    if exclusion is not None and not exclusion.by_complete_probe:
        return exclusion.check(view, kb)
    if view.packages_complete:
        return True
    return exclusion is not None and exclusion.check(view, kb)
