"""The summary of a fleet run (``qfix fleet report``): text, ``qfix.fleet-report/1`` JSON, HTML.

Pure: reads decoded records, returns strings. Each node gets one state from its latest records:

* ``healthy``: verified (GPU, or CPU-only where no GPU exists), or planned healthy, and nothing
  was changed;
* ``repaired``: applied (here, or by another node sharing its environment) and verified;
* ``repairable``: a plan with steps that was not applied;
* ``failed``: an apply that failed and was rolled back (or could not be), a refused apply, or a
  failed verification;
* ``manual``: the plan needs what a venv cannot change (the driver, the GPU architecture, the
  platform);
* ``no-answer``: a node with a detect record but no later one, or only unreadable records.

Groups are the ones ``qfix fleet plan`` makes from the detect records (repair.fleet.grouping).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .grouping import Group, PlanFn, classify, group_records, latest
from .nodeset import fold
from .records import NodeRecord, Unreadable

REPORT_SCHEMA = "qfix.fleet-report/1"
STATES = ("healthy", "repaired", "repairable", "failed", "manual", "no-answer")
COLOURS = {  # background, text: readable on screen and when printed
    "healthy": ("#d8f3dc", "#1b4332"),
    "repaired": ("#cfe8ff", "#0b3d6e"),
    "repairable": ("#fff3bf", "#5c4400"),
    "failed": ("#ffd6d6", "#7a0000"),
    "manual": ("#ffe5cc", "#6b3200"),
    "no-answer": ("#e9ecef", "#343a40"),
}
VERIFY_OK = (0, 10)  # 10: passed on the CPU backend only (no GPU path on this node)


@dataclass(frozen=True, slots=True)
class NodeState:
    node: str
    state: str
    detail: str
    group: str | None
    kinds: tuple[str, ...]  # the commands that left a record


def _apply_state(rec: NodeRecord, verify: NodeRecord | None) -> tuple[str, str]:
    code = rec.exit_code
    doc = rec.document
    outcome = doc.get("outcome") if isinstance(doc.get("outcome"), Mapping) else None
    if code == 0:
        raw_plan = doc.get("plan")
        plan: Mapping[str, Any] = raw_plan if isinstance(raw_plan, Mapping) else {}
        changed = bool(outcome) or bool(rec.note)
        if verify is not None and verify.exit_code not in VERIFY_OK:
            return "failed", f"applied, then verification failed (exit {verify.exit_code})"
        if not changed and not plan.get("steps"):
            return "healthy", "nothing to apply"
        how = rec.note or "applied"
        checked = "verified" if verify is not None else "verified by apply"
        return "repaired", f"{how}; {checked}"
    reason = {
        3: "apply failed and was rolled back",
        4: "apply failed and the rollback failed (journal kept)",
        5: "the environment was locked by another apply",
        6: "apply refused",
    }.get(code, f"apply exited {code}")
    error = (outcome or {}).get("error") or doc.get("error")
    return "failed", reason + (f": {error}" if error else "")


def node_states(
    records: Sequence[NodeRecord | Unreadable], groups: Sequence[Group]
) -> tuple[NodeState, ...]:
    """One state per node seen in ``records``."""
    group_of = {n: g for g in groups for n in g.nodes}
    last = {k: latest(records, k) for k in ("detect", "plan", "apply", "verify")}
    nodes = sorted({r.node for r in records})
    out = []
    for node in nodes:
        got = {k: v.get(node) for k, v in last.items()}
        readable = {k: r for k, r in got.items() if isinstance(r, NodeRecord)}
        kinds = tuple(k for k in ("detect", "plan", "apply", "verify") if k in readable)
        g = group_of.get(node)
        gid = g.id if g else None
        planned = classify(g.plan) if g is not None and g.plan is not None else None
        own_plan = got.get("plan")
        if isinstance(own_plan, NodeRecord):
            planned = classify(own_plan.document)
        state, detail = _state(readable, got, planned)
        out.append(NodeState(node, state, detail, gid, kinds))
    return tuple(out)


def _state(
    readable: Mapping[str, NodeRecord],
    got: Mapping[str, Any],
    planned: tuple[str, str | None] | None,
) -> tuple[str, str]:
    v, a, p = readable.get("verify"), readable.get("apply"), readable.get("plan")
    if a is not None:
        return _apply_state(
            a, v if v is not None and (v.started or "") >= (a.started or "") else None
        )
    manual_kind = planned[1] if planned is not None and planned[0] == "manual" else None
    if v is not None:
        if v.exit_code == 0:
            return "healthy", "verified on the GPU"
        if manual_kind:
            return "manual", f"needs a {manual_kind} change (verify exit {v.exit_code})"
        if v.exit_code == 10:
            return "healthy", "verified on the CPU backend (no GPU path here)"
        return "failed", f"verification failed (exit {v.exit_code})"
    if p is not None and planned is not None:
        cls, kind = planned
        return {
            "healthy": ("healthy", "planned: nothing to change"),
            "repairable": ("repairable", "planned, not applied"),
            "manual": ("manual", f"needs a {kind} change"),
        }.get(cls, ("no-answer", "the plan could not decide"))
    if readable.get("detect") is not None:
        return "no-answer", "detected, then no plan, apply or verify record"
    bad = next((r for r in got.values() if isinstance(r, Unreadable)), None)
    return "no-answer", f"unreadable record {bad.source}: {bad.reason}" if bad else "no record"


def build_report(
    records: Sequence[NodeRecord | Unreadable], plan_fn: PlanFn | None = None
) -> tuple[tuple[Group, ...], tuple[NodeState, ...]]:
    groups = group_records(records, plan_fn)
    return groups, node_states(records, groups)


def report_to_dict(groups: Sequence[Group], states: Sequence[NodeState]) -> dict[str, Any]:
    by_state = {s: [n.node for n in states if n.state == s] for s in STATES}
    return {
        "schema": REPORT_SCHEMA,
        "nodes": len(states),
        "states": {s: {"count": len(n), "nodes": fold(n)} for s, n in by_state.items()},
        "groups": [
            {
                "id": g.id,
                "nodes": g.nodeset,
                "class": g.cls,
                "digest": g.digest,
                "findings": [f.get("id") for f in (g.plan or {}).get("findings") or ()],
            }
            for g in groups
        ],
        "node_states": [
            {
                "node": n.node,
                "state": n.state,
                "detail": n.detail,
                "group": n.group,
                "records": list(n.kinds),
            }
            for n in states
        ],
    }


def render_report(groups: Sequence[Group], states: Sequence[NodeState]) -> str:
    lines = [f"{len(states)} nodes"]
    for s in STATES:
        nodes = [n for n in states if n.state == s]
        if nodes:
            lines.append(f"  {s:<11} {len(nodes):>5}  {fold(n.node for n in nodes)}")
    odd = [n for n in states if n.state in ("failed", "no-answer", "manual", "repairable")]
    if odd:
        lines.append("")
        # Identical details fold into one line, like clush -b.
        folded: dict[tuple[str, str], list[str]] = {}
        for n in odd:
            folded.setdefault((n.state, n.detail), []).append(n.node)
        for (state, detail), names in folded.items():
            lines.append(f"{fold(names)}: {state}: {detail}")
    return "\n".join(lines)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#212529}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .3em}
.sum{display:flex;gap:.6em;flex-wrap:wrap;margin:.6em 0}
.sum div{padding:.4em .8em;border-radius:6px;font-weight:600}
table{border-collapse:collapse;min-width:40em}
th,td{border:1px solid #ced4da;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f1f3f5}code{font-size:.9em}.meta{color:#6c757d}
"""


def _n(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


def _style(state: str) -> str:
    bg, fg = COLOURS[state]
    return f"background:{bg};color:{fg}"


def render_html(groups: Sequence[Group], states: Sequence[NodeState], title: str = "") -> str:
    """One self-contained page: inline CSS, no script, no external reference of any kind."""
    e = html.escape
    title = title or "qfix fleet report"
    counts = {s: sum(1 for n in states if n.state == s) for s in STATES}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{len(states)} nodes in {len(groups)} groups</p>',
        '<div class="sum">',
        *(f'<div style="{_style(s)}">{e(s)}: {counts[s]}</div>' for s in STATES if counts[s]),
        "</div>",
    ]
    by_group: dict[str | None, list[NodeState]] = {}
    for n in states:
        by_group.setdefault(n.group, []).append(n)
    sections = [(g.id, g) for g in groups if g.id in by_group]
    if None in by_group:
        sections.append((None, None))  # type: ignore[arg-type]
    for gid, g in sections:
        if g is not None:
            findings = (
                ", ".join(str(f.get("id")) for f in (g.plan or {}).get("findings") or ()) or "none"
            )
            head = f"{e(gid)}: <code>{e(g.nodeset)}</code> ({_n(len(g.nodes))}, {e(g.cls)})"
            sub = f"findings: {e(findings)}" + (
                f" &middot; plan <code>{e(g.digest[:19])}</code>" if g.digest else ""
            )
            if g.reason:
                sub += f" &middot; {e(g.reason)}"
        else:
            head, sub = "nodes without facts", "no readable detect record"
        out += [
            f"<h2>{head}</h2>",
            f'<p class="meta">{sub}</p>',
            "<table><thead><tr><th>node</th><th>state</th><th>detail</th><th>records</th>"
            "</tr></thead><tbody>",
        ]
        for n in by_group[gid]:
            out.append(
                f'<tr style="{_style(n.state)}"><td>{e(n.node)}</td><td>{e(n.state)}</td>'
                f"<td>{e(n.detail)}</td><td>{e(' '.join(n.kinds) or '-')}</td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
