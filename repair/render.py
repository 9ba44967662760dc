"""Human output. Pure: strings in, strings out (the CLI prints them).

Plain text with aligned columns: it reads the same in a terminal, a CI log and a support ticket.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from packaging.version import Version

from .explain import Match
from .facts import Facts
from .planner import Plan

SEVERITY_MARK = {"error": "✗", "warning": "!", "info": "·"}


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Rows of cells as left-aligned columns (the first row is usually the header)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def _v(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (list, tuple)):
        return " ".join(str(i) for i in x) if x else "-"
    return str(x)


def render_facts(f: Facts) -> str:
    """`qfix detect` as text: every section, with where the driver facts came from."""
    out: list[str] = []
    h = f.host
    out.append("Host")
    out.append(
        table(
            [
                ["system", _v(h.system if h else None), "machine", _v(h.machine if h else None)],
                ["libc", _v(h.libc if h else None), "WSL", _v(h.wsl if h else None)],
                ["os", _v(h.os_release if h else None), "", ""],
            ]
        )
    )
    d = f.driver
    out.append("\nNVIDIA driver")
    if d is None:
        out.append("  unknown")
    else:
        out.append(
            table(
                [
                    ["found", _v(d.found), "source", _v(d.source)],
                    ["version", _v(d.version), "CUDA (driver)", _v(d.cuda)],
                ]
            )
        )
        if d.error:
            out.append(f"  reason: {d.error}")
        for a in d.attempts:
            ok = "ok" if a.get("ok") else "failed"
            gave = ", ".join(a.get("facts") or []) or "-"
            err = f" ({a.get('error')})" if a.get("error") else ""
            out.append(f"    tried {a.get('source')}: {ok}; gave {gave}{err}")
    out.append("\nGPUs")
    if f.gpus is None:
        out.append(
            "  none found (no NVIDIA driver)" if d is not None and d.found is False else "  unknown"
        )
    elif not f.gpus:
        out.append("  none")
    else:
        out.append(
            table(
                [["#", "name", "compute", "memory MiB", "MIG"]]
                + [
                    [
                        str(g.index),
                        _v(g.name),
                        _v(g.compute_capability),
                        _v(g.memory_mib),
                        _v(g.mig),
                    ]
                    for g in f.gpus
                ]
            )
        )
    p = f.python
    out.append("\nPython")
    if p is None:
        out.append("  unknown")
    else:
        out.append(
            table(
                [
                    ["executable", _v(p.executable)],
                    ["version", _v(p.version)],
                    [
                        "venv",
                        _v(p.in_venv)
                        + ("  (conda)" if p.conda else "")
                        + ("  (externally managed)" if p.externally_managed else ""),
                    ],
                ]
            )
        )
    out.append("\nPackages")
    if f.packages is None:
        out.append("  unknown")
    else:
        rows = [[k, _v(v) if v is not None else "not installed"] for k, v in f.packages.items()]
        out.append(table(rows) if rows else "  none")
    t = f.torch
    out.append("\ntorch build (read from torch/version.py)")
    if t is None:
        out.append("  not installed")
    else:
        out.append(
            table(
                [
                    ["version", _v(t.version), "cuda", _v(t.cuda), "hip", _v(t.hip)],
                ]
            )
        )
        if t.arch_list is not None:
            out.append(f"  arch list: {_v(t.arch_list)}")
        if t.cuda_available is not None:
            out.append(f"  torch.cuda.is_available(): {_v(t.cuda_available)}")
        if t.error:
            out.append(f"  error: {t.error}")
    b = f.bitsandbytes
    out.append("\nbitsandbytes")
    if b is None:
        out.append("  not installed")
    else:
        out.append(table([["version", _v(b.version), "copies", _v(b.copies)]]))
        if b.native_libs is not None:
            out.append(f"  native libraries: {_v(sorted(b.native_libs))}")
        if b.distributions:
            out.append(f"  distributions: {', '.join(b.distributions)}")
        if b.loaded is not None:
            out.append(f"  native library loaded: {_v(b.loaded)}")
        if b.error:
            out.append(f"  error: {b.error}")
    out.append("\nEnvironment")
    env = f.env or {}
    out.append(
        table([[k, _v(v) if v is not None else "(unset)"] for k, v in env.items()]) or "  unknown"
    )
    out.append(f"  nvcc on PATH: {_v(f.toolkit_nvcc)}")
    return "\n".join(out)


def render_plan(plan: Plan, *, hint: bool = True) -> str:
    """`qfix plan` as text: findings, the dry-run diff, commands, manual steps, unknowns."""
    out: list[str] = []
    if plan.findings:
        out.append("Findings")
        for f in plan.findings:
            out.append(f"  {SEVERITY_MARK.get(f.severity, '?')} {f.id}: {f.summary}")
        out.append("")
    if plan.healthy:
        out.append("Healthy: nothing to repair" + (" (warnings only)." if plan.findings else "."))
    if plan.steps:
        out.append("Plan (dry run: nothing was changed)")
        rows = [["", "package", "from", "to", "index", "because"]]
        for s in plan.steps:
            sign = "-" if s.action == "uninstall" else ("+" if s.from_ is None else "~")
            index = "-" if s.action == "uninstall" else s.index_url or "(default index)"
            rows.append(
                [
                    sign,
                    s.package,
                    s.from_ or "(none)",
                    s.to or "(removed)",
                    index,
                    ", ".join(s.because),
                ]
            )
        out.append(table(rows))
        if plan.commands:
            pinned = any(c.startswith("torch==") for c in plan.constraints)
            out.append(
                "\nCommands" + (" (torch stays pinned while the rest installs)" if pinned else "")
            )
            for c in plan.commands:
                out.append("  $ " + " ".join(_quote(a) for a in c))
            if plan.constraints and any("qfix-constraints.txt" in c for c in plan.commands):
                out.append(f"  where qfix-constraints.txt holds: {'  '.join(plan.constraints)}")
        known = {k: v for k, v in plan.download.items() if v}
        unknown = [k for k, v in plan.download.items() if not v]
        size = sum(known.values())
        if known or unknown:
            mb = f"{size / 1e6:.0f} MB" if size >= 1e6 else "< 1 MB"
            line = "\nEstimated download: " + (mb if known else "unknown")
            if unknown:
                line += (
                    (" + " if known else " (")
                    + ", ".join(unknown)
                    + (": size not in the knowledge base" + ("" if known else ")"))
                )
            out.append(line)
    if plan.manual:
        out.append("\nManual steps (outside the venv)")
        for m in plan.manual:
            tag = "required" if m.required else "optional"
            out.append(f"  [{tag}] {m.text}")
    if plan.notes:
        out.append("\nNotes")
        out.extend(f"  {n}" for n in plan.notes)
    if plan.unknown:
        out.append("\nCould not know (facts missing)")
        out.extend(f"  ? {u}" for u in plan.unknown)
    if plan.steps and hint:
        out.append("\nApply with: qfix apply --yes   (or save this plan with --out FILE)")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def _quote(arg: str) -> str:
    return shlex.quote(arg)


def render_explain(matches: Iterable[Match]) -> str:
    """`qfix explain` as text: per class the matched lines, cause, how to confirm, fix."""
    out: list[str] = []
    for m in matches:
        mark = ""
        if m.confirmed_by_facts is True:
            mark = "  (confirmed by the facts)"
        elif m.confirmed_by_facts is False:
            mark = "  (not confirmed by the facts)"
        out.append(f"{m.id}: {m.title}{mark}")
        for line in m.lines[:3]:
            out.append(f"  matched: {line}")
        out.append(f"  cause:   {m.explanation}")
        out.append(f"  confirm: {m.confirm}")
        out.append(f"  fix:     {m.remedy}")
        if m.sources:
            out.append(f"  sources: {'; '.join(m.sources)}")
            out.extend(f"    {line}" for line in m.reference_lines())
        out.append("")
    if not out:
        return "No known failure class matches this text."
    return "\n".join(out).rstrip()


def render_matrix(view: Any, cells: Sequence[Any]) -> str:
    """`qfix matrix` as a grid of torch release x variant with the reasons for each 'x'."""
    if not cells:
        return "No torch builds are known for this platform."
    variants: list[str] = []
    for c in cells:
        if c.variant not in variants:
            variants.append(c.variant)

    def order(v: str) -> tuple[int, Version]:
        m = re.search(r"\d+(?:\.\d+)*", v)  # cu126 -> 126, rocm6.2.4 -> 6.2.4 (numeric order)
        return (
            0 if v == "cpu" else 1 if v.startswith("cu") else 2,
            Version(m.group(0)) if m else Version("0"),
        )

    variants.sort(key=order)
    releases: list[str] = []
    for c in cells:
        if c.release not in releases:
            releases.append(c.release)
    grid = {(c.release, c.variant): c for c in cells}
    head = ["torch"] + variants
    rows = [head]
    for r in releases:
        row = [r]
        for v in variants:
            c = grid.get((r, v))
            row.append(
                " "
                if c is None
                else ("ok" if c.ok and c.mode != "minor-compat" else "ok*" if c.ok else "x")
            )
        rows.append(row)
    gpus = ", ".join(f"{g.name} ({g.compute_capability})" for g in view.gpus or ()) or "none known"
    drv = view.facts.driver
    lines = [
        f"Driver: {drv.version if drv and drv.version else '?'} (CUDA "
        f"{drv.cuda if drv and drv.cuda else '?'}); GPUs: {gpus}; platform: {view.platform}",
        "ok = works; ok* = through NVIDIA minor-version compatibility (no newer PTX JIT); "
        "x = would not work; blank = no such build",
        "",
        table(rows, indent=""),
    ]
    reasons: dict[str, list[str]] = {}
    for c in cells:
        if not c.ok:
            for why in c.reasons:
                reasons.setdefault(why, []).append(f"{c.release}/{c.variant}")
    if reasons:
        lines.append("\nWhy not")
        for why, where in sorted(reasons.items(), key=lambda x: -len(x[1])):
            shown = ", ".join(where[:6]) + (f" (+{len(where) - 6})" if len(where) > 6 else "")
            lines.append(f"  {why}: {shown}")
    return "\n".join(lines)


def render_saved_plan(doc: dict[str, Any]) -> str:
    """A saved qfix.plan/1 document, as the steps it will run."""
    rows = [["", "package", "from", "to", "index"]]
    for st in doc.get("steps", []):
        sign = "-" if st["action"] == "uninstall" else ("+" if st.get("from") is None else "~")
        rows.append(
            [
                sign,
                st["package"],
                st.get("from") or "(none)",
                st.get("to") or "(removed)",
                st.get("index_url") or "(default index)",
            ]
        )
    return "Saved plan\n" + table(rows)


def render_outcome(outcome: Any, verdict: Any | None) -> str:
    """The result of `qfix apply` / `qfix rollback`."""
    lines = []
    if outcome.ok:
        lines.append(
            "Done: the environment was changed" + (" and verified." if outcome.verified else ".")
        )
    elif outcome.rolled_back:
        lines.append(f"Rolled back to the exact previous state: {outcome.error}")
    else:
        lines.append(f"Failed: {outcome.error}")
    changed = sorted(set(outcome.before) | set(outcome.after))
    rows = [
        [n, outcome.before.get(n, "(none)"), outcome.after.get(n, "(none)")]
        for n in changed
        if outcome.before.get(n) != outcome.after.get(n)
    ]
    if rows:
        lines.append(table([["package", "before", "after"], *rows]))
    if verdict is not None:
        lines.append(f"verify: {verdict.summary}")
    if outcome.timings:
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome.timings.items()))
    return "\n".join(lines)
