"""All output: text and JSON for every result. Pure: values in, strings out (the CLI prints them).

Plain text with aligned columns: it reads the same in a terminal, a CI log and a support ticket.
JSON (``--json``) is the versioned document of each result (qfix.facts/1, qfix.plan/1,
qfix.matrix/1, qfix.verify/1, qfix.apply/1, qfix.rollback/1), indented by two spaces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from packaging.version import Version

from . import shellquote
from .containers import where_words
from .dryrun import DryRun, download_bytes, downloads_to_list, package_lines, summary_line
from .errors import QfixError
from .explain import Explanation, Match, explain_to_dict
from .facts import Facts, facts_to_dict, listed_installed
from .plan import TORCH_FAMILY, Plan, StepAction
from .settings import next_step_target

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


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2)


def render_error(exc: QfixError) -> str:
    """An expected failure: one line, and a tip when there is one."""
    return f"qfix: error: {exc.message}\n" + (f"Tip: {exc.tip}\n" if exc.tip else "")


def render_error_json(message: str, exit_code: int, tip: str | None = None) -> str:
    """An error under ``--json``: ``{"error": ..., "exit_code": ...}`` (stdout), so that a script
    reads JSON whatever happened and never parses text."""
    return to_json({"error": message, "tip": tip, "exit_code": int(exit_code)})


# What a terminal that cannot encode our marks shows instead (PYTHONIOENCODING=ascii, a C locale,
# an old Windows code page): the text stays readable, never a UnicodeEncodeError.
ASCII_FALLBACK = str.maketrans(
    {
        "✗": "x",
        "✓": "v",
        "·": "-",
        "→": "->",
        "—": "-",
        "–": "-",
        "…": "...",
        "≥": ">=",
        "≤": "<=",
        "×": "x",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
    }
)


def for_terminal(text: str, encoding: str | None) -> str:
    """``text`` as the stream's ``encoding`` can carry it: our marks become ASCII look-alikes and
    anything else it cannot encode becomes '?'."""
    enc = encoding or "utf-8"
    try:
        text.encode(enc)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    text = text.translate(ASCII_FALLBACK)
    try:
        return text.encode(enc, errors="replace").decode(enc)
    except LookupError:
        return text.encode("ascii", errors="replace").decode("ascii")


def render_facts(f: Facts, *, as_json: bool = False) -> str:
    """`qfix detect`: every section, with where the driver facts came from (JSON: qfix.facts/1)."""
    if as_json:
        return to_json(facts_to_dict(f))
    out: list[str] = []
    h = f.host
    out.append("Host")
    out.append(
        table(
            [
                ["system", _v(h.system if h else None), "machine", _v(h.machine if h else None)],
                ["libc", _v(h.libc if h else None), "WSL", _v(h.wsl if h else None)],
                [
                    "os",
                    _v(h.os_release if h else None),
                    "container",
                    _v(h.container if h else None),
                ],
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
        reason = _distinct_reason(d.error, [str(a["error"]) for a in d.attempts if a.get("error")])
        if reason:
            out.append(f"  reason: {reason}")
        tried: list[str] = []
        for a in d.attempts:
            ok = "ok" if a.get("ok") else "failed"
            gave = ", ".join(a.get("facts") or []) or "-"
            err = f" ({a.get('error')})" if a.get("error") else ""
            line = f"    tried {a.get('source')}: {ok}; gave {gave}{err}"
            if line not in tried:
                tried.append(line)
        out.extend(tried)
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
                        # an AMD GPU has no compute capability: its LLVM target says the same
                        _v(g.compute_capability or g.gfx),
                        _v(g.memory_mib),
                        _v(g.mig),
                    ]
                    for g in f.gpus
                ]
            )
        )
    out.extend(_facts_stack(f))
    out.append("\nEnvironment")
    env = f.env or {}
    out.append(
        table([[k, _v(v) if v is not None else "(unset)"] for k, v in env.items()]) or "  unknown"
    )
    out.append(f"  nvcc on PATH: {_v(f.toolkit_nvcc)}")
    return "\n".join(out)


def _facts_stack(f: Facts) -> list[str]:
    """The Python, package, torch build and bitsandbytes sections of `qfix detect`."""
    out: list[str] = []
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
    return out


def _healthy_line(plan: Plan) -> str:
    """The healthy verdict, saying how far it reaches: the facts' open questions, listed below
    under "Could not know", and warnings, bound it."""
    if plan.unknown:
        head = "Healthy as far as these facts go: nothing to repair"
        tail = (
            " (warnings, and what could not be known, below)."
            if plan.findings
            else (" (what could not be known is listed below).")
        )
        return head + tail
    return "Healthy: nothing to repair" + (" (warnings only)." if plan.findings else ".")


def render_plan(
    plan: Plan,
    *,
    hint: bool = True,
    as_json: bool = False,
    heading: str = "Plan (dry run: nothing was changed)",
    elsewhere: bool = False,
    width: int | None = None,
) -> str:
    """`qfix plan`: findings, the dry-run diff, commands, manual steps, unknowns (JSON:
    qfix.plan/1, also the file `--out` writes). ``heading``: the title of the diff (apply shows
    what it is about to do). ``elsewhere``: planned from another machine's facts (--facts), so
    the next step says where to run it. ``width``: a terminal's columns; a diff table wider than
    that is printed as a list, one step per item (a pipe gets the table)."""
    if as_json:
        return to_json(plan.to_dict())
    out: list[str] = []
    if plan.cannot_tell:
        out.append(f"Cannot tell: {plan.cannot_tell}.")
        out.append("")
    if plan.findings:
        out.append("Findings")
        for f in plan.findings:
            said = " (suspected)" if f.evidence.get("suspected") else ""
            out.append(f"  {SEVERITY_MARK.get(f.severity, '?')} {f.id}{said}: {f.summary}")
        out.append("")
    if plan.healthy:
        out.append(_healthy_line(plan))
    if plan.steps:
        out.append(heading)
        out.append(_steps_text(plan, width))
        out.extend(_plan_commands(plan))
        out.extend(_plan_download(plan))
    if plan.manual:
        out.append("\nManual steps (outside the venv)")
        for m in plan.manual:
            tag = "required" if m.required else "optional"
            out.append(f"  [{tag}] {m.text}")
    if plan.notes:
        out.append("\nNotes")
        out.extend(f"  {n}" for n in plan.notes)
    if plan.project_pins:
        out.append("\nProject pins: " + ", ".join(plan.project_pins))
        out.extend(f"  kept: {p}" for p in plan.pins_applied)
    if plan.unknown:
        out.append("\nCould not know (facts missing)")
        out.extend(f"  ? {u}" for u in plan.unknown)
    if plan.steps and hint:
        # The next step names the target, so pasting it never acts on another environment.
        where = "On the machine these facts come from, apply" if elsewhere else "Apply"
        # pasted there: quoted for its shell (a Windows host's cmd.exe/PowerShell, shellquote)
        there = shellquote.target_os_name(plan.platform, plan.python) if elsewhere else None
        target = next_step_target(plan.python, os_name=there)
        out.append(
            f"\n{where} with: qfix apply{target}{_pin_flags(plan)} --yes"
            # its own line: the command above is pasted whole (a triple-click copies one line)
            "\n(or save this plan with --out FILE and apply that file with --plan FILE)"
        )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def _steps_text(plan: Plan, width: int | None) -> str:
    """The dry-run diff: a table of the steps (sign, package, from, to, index, because), or, where
    that table is wider than a terminal of ``width`` columns, one list item per step with its
    index and reasons on a line of their own, so that a narrow terminal does not break rows."""
    rows = [["", "package", "from", "to", "index", "because"]]
    items = []
    for s in plan.steps:
        removal = s.action is StepAction.UNINSTALL
        sign = "-" if removal else ("+" if s.from_ is None else "~")
        from_, to, because = s.from_ or "(none)", s.to or "(removed)", ", ".join(s.because)
        index = "-" if removal else s.index_url or "(default index)"
        rows.append([sign, s.package, from_, to, index, because])
        items.append(f"  {sign} {s.package} {from_} -> {to}")
        where = "" if removal else s.index_url or "the default index"
        items.append(f"      {f'from {where}; ' if where else ''}because {because}")
    text = table(rows)
    if width is None or max(len(line) for line in text.split("\n")) <= width:
        return text
    return "\n".join(items)


def _pin_flags(plan: Plan) -> str:
    """The --requirements/--constraint options a printed next step repeats, so that pasting it
    applies the plan within the same pins."""
    pairs = [opt.split(" ", 1) for opt in plan.project_pins if opt.startswith("--")]
    return "".join(f" {flag} {shellquote.quote(path)}" for flag, path in pairs)


def _plan_commands(plan: Plan) -> list[str]:
    """The plan's installer commands, as a user would type them (none: no lines)."""
    if not plan.commands:
        return []
    # apply writes the constraints file (repair/apply/transaction.py); a command names it
    constrained = any("qfix-constraints.txt" in c for c in plan.commands)
    # said only where a command installs against the constraints file that holds torch
    pinned = constrained and any(c.startswith("torch==") for c in plan.constraints)
    # written for the shell of the machine they are pasted on (PowerShell on Windows)
    there = shellquote.target_os_name(plan.platform, plan.python)
    windows = shellquote.is_windows_shell(there)
    # one parenthesis for what the heading adds: "(run by pip: uv not found; torch stays ...)"
    said = [f"run by {plan.installer[0]}: {plan.installer[1]}"] if plan.installer else []
    said += ["torch stays pinned while the rest installs"] if pinned else []
    out = [
        "\nCommands"
        + (" for PowerShell" if windows else "")
        + (f" ({'; '.join(said)})" if said else "")
    ]
    prompt = "  PS> " if windows else "  $ "
    for c in plan.commands:
        out.append(prompt + shellquote.command_line(c, os_name=there))
    if constrained:
        # written from the versions installed then; a report without them leaves nothing to
        # print, which must not read as "no pins"
        held = "  ".join(plan.constraints) or (
            "torch, torchvision and torchaudio at the versions installed when apply runs "
            "(the facts do not give them)"
        )
        out.append(f"  where qfix-constraints.txt holds: {held}")
    return out


def _plan_download(plan: Plan) -> list[str]:
    """The estimated download line, naming the packages whose size is unknown (none: no line)."""
    known = {k: v for k, v in plan.download.items() if v}
    unknown = [k for k, v in plan.download.items() if not v]
    size = sum(known.values())
    if not (known or unknown):
        return []
    mb = f"{size / 1e6:.0f} MB" if size >= 1e6 else "< 1 MB"
    line = "\nEstimated download: " + (mb if known else "unknown")
    if unknown:
        line += (
            (" + " if known else " (")
            + ", ".join(unknown)
            + (": size not in the knowledge base" + ("" if known else ")"))
        )
    return [line]


def render_resolved(run: DryRun | None) -> str:
    """`qfix plan --resolve`: what the installer's dry run would download, after the plan."""
    if run is None:
        return "\n\nResolved: nothing to resolve (the plan installs nothing)."
    head = summary_line(run).removeprefix("download: ")
    lines = package_lines(run) if len(run.downloads) > 1 else []  # one: the summary names it
    return "\n".join([f"\n\nResolved by {run.installer}'s dry run: {head}", *lines])


def _distinct_reason(error: str | None, shown: list[str]) -> str | None:
    """The driver's reason less what its "tried" lines show anyway: the probe joins every
    source's error into it ("no NVIDIA driver found: A; B; C"), each of which has its own line."""
    if not error:
        return None
    rest = error
    for part in sorted(set(shown), key=len, reverse=True):  # a longer error first: no partial cuts
        rest = rest.replace(part, "")
    parts = [p.strip() for p in rest.split("; ")]
    rest = "; ".join(p for p in parts if p).strip().rstrip(":;").strip()
    return rest or None


def render_explain(
    result: Explanation | tuple[Match, ...], *, as_json: bool = False, facts_given: bool = False
) -> str:
    """`qfix explain`: per class the matched lines, what `qfix plan --error` says of it (its
    manual steps lead: they fit this text, the class's general remedy may not), cause, how to
    confirm, fix; then what the text proves about the facts. ``facts_given``: judged with
    --facts (what a text proves without them may still name a class on the machine)."""
    if not isinstance(result, Explanation):
        result = Explanation(tuple(result))
    if as_json:
        return to_json(explain_to_dict(result))
    out: list[str] = []
    for m in result.matches:
        out.extend(_explain_match(m))
        out.append("")
    if not out and result.read_from_error and not facts_given:
        # "CUDA unavailable" is a CPU torch on a GPU machine and a fault of CUDA's on another:
        # which, only that machine's facts say
        out = [
            "The text alone names no failure class: what it proves is below, and what that "
            "means depends on the machine. Run `qfix plan --error` with it in the target "
            "environment, or give that machine's facts with --facts.",
            "",
        ]
    elif not out:
        out = ["No known failure class matches this text.", ""]
    if result.ruled_out:
        out.append(
            f"Also matched, but ruled out by the facts and what the message itself proves: "
            f"{', '.join(result.ruled_out)}"
        )
        out.append("")
    if result.read_from_error:
        out.append("Read from the error message")
        out.extend(f"  {_unrepeated(line)}" for line in result.read_from_error)
    return "\n".join(out).rstrip()


# Under the heading "Read from the error message" each line's own "(read from the error
# message...)" says it again: dropped there (the JSON and the plan's lists keep it).
_READ = "read from the error message"


def _unrepeated(line: str) -> str:
    """A line under the heading "Read from the error message", without saying it again."""
    line = line.removesuffix(f" ({_READ})")
    return line.replace(f"({_READ}; ", "(").replace(f"; {_READ})", ")")


def _explain_match(m: Match) -> list[str]:
    mark = ""
    if m.confirmed_by_facts is True:
        mark = "  (confirmed by the facts)"
    elif m.confirmed_by_facts is False:
        mark = "  (not confirmed by the facts)"
    out = [f"{m.id}: {m.title}{mark}"]
    # a match that spans lines (a traceback's frame and its error) keeps its indent on each
    out.extend(
        f"  {'matched:' if i == 0 else '        '} {part}"
        for line in m.lines[:3]
        for i, part in enumerate(line.splitlines() or [""])
    )
    planned = m.planned
    out.extend(f"  plan:    {summary}" for summary in _merged(planned.findings if planned else ()))
    if planned and planned.advice:
        # The step the plan gives for this very text: the class's general cause and remedy
        # cover its other forms (WSL's library path for a loader-cache miss) and stay in --json.
        out.extend(f"  fix:     {text}" for text in planned.advice)
    else:
        out.append(f"  cause:   {(planned.cause if planned else None) or m.explanation}")
        out.append(f"  confirm: {m.confirm}")
        fix = _plan_fix(planned.steps) if planned and planned.steps else m.remedy
        out.append(f"  fix:     {fix}")
    if planned and planned.advice and planned.references:
        out.append(f"  sources: {'; '.join(r.key for r in planned.references)}")
        out.extend(f"    {r.key}: {r.text}" for r in planned.references)
    elif planned and planned.cause and planned.cause_references:
        # the narrower cause's own sources lead; the class's general ones follow
        refs = {r.key: r for r in (*planned.cause_references, *m.references)}
        out.append(f"  sources: {'; '.join(refs)}")
        out.extend(f"    {r.key}: {r.text}" for r in refs.values())
    elif m.sources:
        out.append(f"  sources: {'; '.join(m.sources)}")
        out.extend(f"    {line}" for line in m.reference_lines())
    return out


def _plan_fix(steps: Sequence[str]) -> str:
    """The fix line of a class the plan has steps for: those steps (torch pinned while the rest
    installs, unless torch itself moves)."""
    moves_torch = any(st.split()[0] in TORCH_FAMILY for st in steps)
    return f"the plan: {'; '.join(steps)}" + ("" if moves_torch else " (torch pinned)")


def _merged(summaries: Sequence[str]) -> list[str]:
    """Findings' summaries with one subject said once: "transformers <4.30.0 is below 4.30.0: A"
    and "...: B" become "...: A; B" (two floors of one package at one version)."""
    out: dict[str, list[str]] = {}
    for line in summaries:
        head, sep, tail = line.partition(": ")
        out.setdefault(head if sep else line, []).append(tail if sep else "")
    return [f"{head}: {'; '.join(tails)}" if any(tails) else head for head, tails in out.items()]


def render_matrix(
    view: Any, cells: Sequence[Any], *, as_json: bool = False, width: int | None = None
) -> str:
    """`qfix matrix` as a grid of torch release x variant with the reasons for each 'x'. A grid
    wider than ``width`` (a terminal's columns; None: a pipe, whole) is cut into grids of fewer
    variants, each with the torch column, so that no row wraps into the next."""
    gpus_known = bool(view.ccs or view.amd_targets)
    if as_json:
        return to_json(
            {
                "schema": "qfix.matrix/1",
                "platform": view.platform,
                "cells": [
                    {
                        "torch": c.release,
                        "variant": c.variant,
                        "ok": c.ok,
                        # the grid's mark, so that a script need not derive "ok?" itself
                        "mark": _matrix_mark(c, gpus_known),
                        "driver_mode": c.mode,
                        "reasons": list(c.reasons),
                        "coverage": c.coverage,
                    }
                    for c in cells
                ],
            }
        )
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
    grid = {(c.release, c.variant): _matrix_mark(c, gpus_known) for c in cells}
    marks = set(grid.values())
    lines = [*_matrix_head(view, marks)]
    for part in _matrix_parts(variants, releases, width):
        rows = [["torch"] + part]
        rows += [
            [r] + [grid.get((r, v), " ") for v in part]
            for r in releases
            # a release with no build in this part of a cut grid is left out of it
            if len(part) == len(variants) or any((r, v) in grid for v in part)
        ]
        lines += ["", table(rows, indent="")]
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


def _matrix_parts(variants: list[str], releases: list[str], width: int | None) -> list[list[str]]:
    """The variants cut into runs whose grid (table(): two spaces between columns, the torch
    column first) fits ``width``; one run where it fits or where no width is given."""
    first = max(len("torch"), *(len(r) for r in releases)) if releases else len("torch")
    # a column is as wide as its header or its widest mark ("ok?"), plus the two-space gap
    cols = [2 + max(len(v), 3) for v in variants]
    if width is None or first + sum(cols) <= width:
        return [variants]
    parts: list[list[str]] = [[]]
    used = first
    for v, w in zip(variants, cols, strict=True):
        if parts[-1] and used + w > width:
            parts.append([])
            used = first
        parts[-1].append(v)
        used += w
    return parts


def _matrix_head(view: Any, marks: set[str]) -> list[str]:
    """The matrix's first lines: the driver (an AMD host has none to show), the GPUs and the
    platform; then the legend of the marks the grid uses."""
    drv = view.facts.driver
    driver = (
        "AMD host"
        if view.rocm
        else f"NVIDIA driver: {drv.version if drv and drv.version else '?'} (CUDA "
        f"{drv.cuda if drv and drv.cuda else '?'})"
    )
    legend = "ok = works; "
    if "ok*" in marks:
        legend += "ok* = through NVIDIA minor-version compatibility (no newer PTX JIT); "
    legend += "x = would not work; blank = no such build"
    if "ok?" in marks:
        legend += (
            "\nok? = fits what is known: the driver, or which GPUs the build has code for, is not"
        )
    return [f"{driver}; GPUs: {_matrix_gpus(view)}; platform: {view.platform}", legend]


def _matrix_mark(cell: Any, gpus_known: bool) -> str:
    """A matrix cell's mark: ok, ok* (minor-version compatibility), ok? (fits what is known: the
    driver is unknown for a CUDA build, or its arch or gfx list is not in plans/ while the GPUs
    are known) or x."""
    if not cell.ok:
        return "x"
    if cell.mode == "minor-compat":
        return "ok*"
    driver_unknown = cell.mode is None and cell.variant.startswith("cu")
    return "ok?" if driver_unknown or (gpus_known and cell.coverage == "unknown") else "ok"


def _matrix_gpus(view: Any) -> str:
    """The GPUs the facts list, with what decides their builds: an NVIDIA GPU's compute
    capability, the AMD GPUs' LLVM targets (gfx, where the facts or the names tell)."""
    shown = [
        f"{g.name} ({g.compute_capability or 'compute capability ?'})" for g in view.gpus or ()
    ]
    amd = [g.name or "AMD GPU" for g in view.facts.gpus or () if g.amd]
    if amd:
        shown.append(", ".join(amd) + f" ({' '.join(view.amd_targets or ()) or 'gfx ?'})")
    return ", ".join(shown) or "none known"


def render_saved_plan(plan: Plan) -> str:
    """A saved qfix.plan/1 file, as the steps it will run."""
    rows = [["", "package", "from", "to", "index"]]
    for st in plan.steps:
        sign = "-" if st.action is StepAction.UNINSTALL else ("+" if st.from_ is None else "~")
        rows.append(
            [
                sign,
                st.package,
                st.from_ or "(none)",
                st.to or "(removed)",
                st.index_url or "(default index)",
            ]
        )
    return "Saved plan\n" + table(rows)


def render_apply_plan(plan: Plan, *, saved: bool, width: int | None = None) -> str:
    """What `qfix apply` is about to change (or that there is nothing to change), as text
    (``width``: a terminal's columns, as for render_plan)."""
    if not plan.steps:
        shown = "The plan has no steps." if saved else render_plan(plan, width=width)
        return shown + "\n\nNothing to apply."
    if saved:
        return render_saved_plan(plan).replace("Saved plan", "Saved plan (will be applied)", 1)
    return render_plan(plan, hint=False, heading="Plan (will be applied)", width=width)


def render_apply(
    plan: Plan, outcome: Any | None, verdict: Any | None, *, as_json: bool = False
) -> str:
    """The result of `qfix apply` (JSON: qfix.apply/1; ``outcome`` None: nothing was applied)."""
    if as_json:
        return to_json(apply_to_dict(plan, outcome, verdict))
    if outcome is None:
        return "Nothing to apply."
    return render_outcome(outcome, verdict) + _next_step(plan, outcome, verdict)


def _next_step(plan: Plan, outcome: Any, verdict: Any | None) -> str:
    """After a successful apply: what a person does next (the manual steps still open, or the
    proof of the result)."""
    if not outcome.ok:
        return ""
    lines = ["", "Next"]
    required = [m for m in plan.manual if m.required]
    lines.extend(f"  [required] {m.text}" for m in required)
    if verdict is None or not verdict.gpu_exercised:
        python = outcome.python or plan.python or "python"
        lines.append(
            f"  $ qfix verify --python {shellquote.quote(python)}"
            + ("   (after the manual steps above)" if required else "")
        )
    elif not required:
        lines.append("  nothing: the repair is verified on the GPU")
    return "\n" + "\n".join(lines)


def apply_to_dict(plan: Plan, outcome: Any | None, verdict: Any | None) -> dict[str, Any]:
    """The ``qfix.apply/1`` JSON object (also the document of ``apply --record``)."""
    doc: dict[str, Any] = {"schema": "qfix.apply/1", "plan": plan.to_dict()}
    doc["outcome"] = None if outcome is None else outcome.to_dict()
    # what the dry runs before the change found to download (sizes read from the index files;
    # null: unknown); download_bytes sums the known sizes (null: none known or no dry run)
    downloads = tuple(getattr(outcome, "downloads", ()) or ())
    doc["downloads"] = downloads_to_list(downloads)
    doc["download_bytes"] = download_bytes(downloads)
    doc["download_note"] = getattr(outcome, "download_note", None)
    if outcome is not None:
        doc["verify"] = None if verdict is None else verdict_to_dict(verdict)
    return doc


def render_expected_apply(
    plan: Plan, outcome: Any | None, verdict: Any | None, note: str | None, *, as_json: bool = False
) -> str:
    """``qfix apply --expect-plan``: qfix.apply/1 plus ``note`` (e.g. "applied by node X" when
    another node of a shared venv applied the same plan first)."""
    if as_json:
        return to_json({**apply_to_dict(plan, outcome, verdict), "note": note})
    text = render_apply(plan, outcome, verdict)
    return f"{text}\n{note}" if note else text


def render_rollback(outcome: Any, *, as_json: bool = False) -> str:
    """The result of `qfix rollback` (JSON: qfix.rollback/1)."""
    if as_json:
        return to_json({"schema": "qfix.rollback/1", **outcome.to_dict()})
    if outcome.ok and not outcome.rolled_back:
        return "Nothing to roll back: no unfinished qfix apply in this environment."
    if outcome.ok:
        rest = render_outcome(outcome, None).split("\n")[1:]
        return "\n".join(
            [
                "Rolled back: the environment is in its exact state before the interrupted apply.",
                *rest,
            ]
        )
    return render_outcome(outcome, None)


def render_verdict(v: Any, *, as_json: bool = False) -> str:
    """The result of `qfix verify` (JSON: qfix.verify/1)."""
    return to_json(verdict_to_dict(v)) if as_json else str(v.summary)


def verdict_to_dict(v: Any) -> dict[str, Any]:
    """The ``qfix.verify/1`` JSON object of a repair.verify.runner.Verdict."""
    return {
        "schema": "qfix.verify/1",
        "ok": v.ok,
        "exit_code": int(v.exit_code),
        "gpu_exercised": v.gpu_exercised,
        "device": v.device,
        "requested_device": v.requested_device,
        "model": v.model,
        "model_skipped": v.model_skipped,
        "python": v.python,
        "summary": v.summary,
        "failure_ids": list(v.failure_ids),
        "gpu_note": v.gpu_note,
        "versions": dict(v.versions),
        "gpus": [dict(g) for g in v.gpus],
        "elapsed_s": v.elapsed_s,
        "checks": [
            {
                "name": c.name,
                "ok": c.ok,
                "error": c.error,
                "failure_id": c.failure_id,
                "details": dict(c.details),
            }
            for c in v.checks
        ],
    }


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


def _absent_or_unreported(f: Facts, name: str) -> str:
    """What a report's summary says of a package without its own section: the listed version
    (build not reported), "not installed" where the facts say so, else "not reported"."""
    listed = f.package(name)
    if listed:
        return f"{listed} (build not reported)"
    return "not installed" if listed_installed(f, name) is False else "not reported"


def render_report(f: Facts, plan: Plan, *, version: str, as_json: bool = False) -> str:
    """`qfix report`: a paste-ready Markdown block for a bug report (the facts that
    `python -m torch.utils.collect_env` and `python -m bitsandbytes` are asked for, plus qfix's
    diagnosis). JSON: ``qfix.report/1`` with the same Markdown, the facts and the plan."""
    md = _report_markdown(f, plan, version)
    if as_json:
        return to_json(
            {
                "schema": "qfix.report/1",
                "qfix": version,
                "markdown": md,
                "facts": facts_to_dict(f),
                "plan": plan.to_dict(),
            }
        )
    return md


def _report_markdown(f: Facts, plan: Plan, version: str) -> str:
    h, d, p, t, b = f.host, f.driver, f.python, f.torch, f.bitsandbytes
    host = ", ".join(
        x
        for x in (
            h and h.system,
            h and h.machine,
            h and h.libc,
            h and h.os_release,
            "WSL" if h and h.wsl else None,
            f"in {where_words(h.container, 'a')}" if h and h.container else None,
        )
        if x
    )
    if d is None:
        driver = "unknown"
    elif d.found:
        driver = f"{_v(d.version)} (CUDA {_v(d.cuda)}, read by {_v(d.source)})"
    else:
        driver = "not found" + (f" ({d.error})" if d.error else "")
    gpus = (
        "unknown"
        if f.gpus is None
        else ", ".join(f"{g.name} (sm {_v(g.compute_capability)})" for g in f.gpus) or "none"
    )
    torch = _absent_or_unreported(f, "torch")
    if t is not None:
        torch = f"{_v(t.version)} (CUDA {_v(t.cuda)}, HIP {_v(t.hip)})"
        if t.arch_list is not None:
            torch += f", arch list {_v(t.arch_list)}"
    bnb = _absent_or_unreported(f, "bitsandbytes")
    if b is not None:
        bnb = f"{_v(b.version)}, copies {_v(b.copies)}"
        if b.native_libs is not None:
            libs = sorted(b.native_libs)
            shown = " ".join(libs[:4]) + (f" (+{len(libs) - 4} more)" if len(libs) > 4 else "")
            bnb += f", native libraries: {shown or 'none'}"
    rows = [
        ("qfix", version),
        ("OS", host or "unknown"),
        ("Python", f"{_v(p.version)} ({_v(p.executable)}), venv {_v(p.in_venv)}" if p else "?"),
        ("NVIDIA driver", driver),
        ("GPUs", gpus),
        ("torch build", torch),
        ("bitsandbytes", bnb),
        ("nvcc on PATH", _v(f.toolkit_nvcc)),
    ]
    rows.extend((f"`{k}`", "(unset)" if v is None else f"`{v}`") for k, v in (f.env or {}).items())
    out = ["### Environment (`qfix report`)", "", "| | |", "|---|---|"]
    out.extend(f"| {k} | {_md_cell(v)} |" for k, v in rows)
    out += ["", "| package | version |", "|---|---|"]
    if f.packages is None:
        out.append("| (unknown) | |")
    else:
        probe = f.extra.get("packages_source") == "probe"
        unset = "not installed" if probe else "version not reported"
        out.extend(f"| {k} | {v or unset} |" for k, v in f.packages.items())
    out += ["", "### Diagnosis (`qfix plan`)", ""]
    if plan.cannot_tell:
        out.append(f"Cannot tell: {plan.cannot_tell}.")
    elif plan.healthy:
        out.append(_healthy_line(plan))  # how far the verdict reaches, as `qfix plan` says it
    out.extend(
        f"- `{x.id}` ({getattr(x.severity, 'value', x.severity)}): {x.summary}"
        for x in plan.findings
    )
    if plan.steps:
        out.append("")
        out.append(
            "Planned: "
            + ", ".join(
                f"{s.package} {s.from_ or '(none)'} -> {s.to or '(removed)'}" for s in plan.steps
            )
        )
    out.extend(f"- could not know: {u}" for u in plan.unknown)
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
