"""What an installer's dry run says it would download: pure parsing and wording.

Apply resolves every install command before the first change (``repair.apply.installers``).
pip writes what it would install as a JSON installation report (``--report FILE``, pip >= 22.2,
https://pip.pypa.io/en/stable/reference/installation-report/): per package its name, version and
``download_info.url``, but no size. The size comes from the index file itself
(``repair.apply.sizes``, the one module that opens a URL for it). uv's ``pip install --dry-run``
prints only the names and versions (``Would install N packages`` and `` + torch==2.7.1+cu126``
lines; uv 0.4-0.13), and how many of them are not in its cache (``Would download N packages``),
so with uv the sizes stay unknown and the summary says so.

Pure: no process, no socket; the functions here read text and return frozen values.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .plan import normalize

__all__ = [
    "Download",
    "DryRun",
    "download_bytes",
    "downloads_to_list",
    "dry_run_to_dict",
    "human_size",
    "merge_sizes",
    "package_lines",
    "parse_pip_report",
    "parse_uv_dry_run",
    "space_estimate",
    "summary_line",
]


@dataclass(frozen=True, slots=True)
class Download:
    """One file an install would fetch. ``url``: None when the installer did not say (uv);
    ``size_bytes``: None when unknown (never a guess)."""

    package: str
    version: str
    url: str | None = None
    size_bytes: int | None = None

    @property
    def url_host(self) -> str | None:
        """The index host (``download.pytorch.org``), ``local files`` for file://, never the
        user:password part of a URL."""
        if not self.url:
            return None
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "file":
            return "local files"
        return parts.hostname


@dataclass(frozen=True, slots=True)
class DryRun:
    """What the dry runs of one apply would download. ``installer``: pip or uv; ``cached``:
    how many of ``downloads`` the installer would take from its cache (None: it did not say);
    ``note``: why sizes are missing, when a whole installer cannot give them."""

    installer: str
    downloads: tuple[Download, ...] = ()
    cached: int | None = None
    note: str | None = None


def parse_pip_report(text: str) -> tuple[Download, ...]:
    """The packages of a pip installation report (``pip install --dry-run --report``), in the
    report's order. Raises ValueError when ``text`` is not such a report (the caller treats
    that as "sizes unknown", never as a failed resolution)."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("install"), list):
        raise ValueError("not a pip installation report (no 'install' list)")
    out = []
    for item in doc["install"]:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(meta, dict):
            raise ValueError("a report entry without metadata")
        name, version = meta.get("name"), meta.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise ValueError("a report entry without a name or a version")
        info = item.get("download_info")
        url = info.get("url") if isinstance(info, dict) else None
        out.append(Download(name, version, url if isinstance(url, str) else None))
    return tuple(out)


_UV_WOULD = re.compile(r"^Would (install|download) (\d+) packages?\b")
_UV_ADD = re.compile(r"^\s*\+\s+([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*$")


def parse_uv_dry_run(text: str) -> tuple[tuple[Download, ...], int | None]:
    """The packages ``uv pip install --dry-run`` would install (`` + name==version`` lines) and
    how many it would take from its cache (``Would install`` minus ``Would download``; None when
    it did not print both)."""
    counts: dict[str, int] = {}
    out = []
    for line in text.splitlines():
        m = _UV_WOULD.match(line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
            continue
        m = _UV_ADD.match(line)
        if m:
            out.append(Download(m.group(1), m.group(2)))
    cached = None
    if "install" in counts and "download" in counts:
        cached = max(0, counts["install"] - counts["download"])
    return tuple(out), cached


def merge_sizes(
    downloads: Sequence[Download], sizes: Mapping[str, int | None]
) -> tuple[Download, ...]:
    """``downloads`` with the size found for each URL (absent or None: unknown)."""
    return tuple(
        replace(d, size_bytes=sizes.get(d.url)) if d.url is not None else d for d in downloads
    )


def download_bytes(downloads: Iterable[Download]) -> int | None:
    """The sum of the known sizes; None when no size is known."""
    known = [d.size_bytes for d in downloads if d.size_bytes is not None]
    return sum(known) if known else None


def human_size(n: int) -> str:
    """``2.5 GB``, ``906 MB``, ``12 kB`` (decimal units, as pip and PyPI print them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} bytes"


def space_estimate(
    downloads: Sequence[Download], estimate: Mapping[str, int | None]
) -> dict[str, int | None]:
    """What the space check counts: the real size of each file the dry runs found, else the
    knowledge base's estimate for that package; a planned package the dry runs did not list
    keeps its estimate (a dry run that could not list everything must not shrink the check)."""
    out = {normalize(k): v for k, v in estimate.items()}
    for d in downloads:
        key = normalize(d.package)
        if d.size_bytes is not None:
            out[key] = d.size_bytes
        else:
            out.setdefault(key, None)
    return out


def summary_line(run: DryRun, *, largest: int = 3) -> str:
    """One line for the terminal: the total, the hosts, the largest files, what is unknown.

    ``download: 2.6 GB for 5 packages from download.pytorch.org (torch 2.7.1+cu126 2.5 GB,
    ...; 1 size unknown)``."""
    downloads = run.downloads
    if not downloads:
        return "download: nothing new to download"
    total = download_bytes(downloads)
    hosts = sorted({d.url_host for d in downloads if d.url_host})
    n = len(downloads)
    head = f"download: {human_size(total) if total is not None else 'size unknown'} for {n} "
    head += "package" if n == 1 else "packages"
    if hosts:
        head += " from " + ", ".join(hosts)
    sized = sorted(
        (d for d in downloads if d.size_bytes is not None), key=lambda d: -(d.size_bytes or 0)
    )
    parts = [f"{d.package} {d.version} {human_size(d.size_bytes or 0)}" for d in sized[:largest]]
    if len(sized) > largest:
        parts[-1] += f" and {len(sized) - largest} more"
    extra = []
    unknown = sum(1 for d in downloads if d.size_bytes is None)
    if run.note:
        extra.append(run.note)
    elif unknown:
        extra.append(f"{unknown} size{'s' if unknown != 1 else ''} unknown")
    if run.cached:
        extra.append(f"{run.cached} already in {run.installer}'s cache")
    detail = ", ".join(parts)
    if extra:
        detail = "; ".join([detail, *extra]) if detail else "; ".join(extra)
    return f"{head} ({detail})" if detail else head


def package_lines(run: DryRun) -> list[str]:
    """One line a package (shown with -v): name, version, size, host."""
    out = []
    for d in run.downloads:
        size = human_size(d.size_bytes) if d.size_bytes is not None else "size unknown"
        out.append(
            f"  {d.package} {d.version}: {size}" + (f" from {d.url_host}" if d.url_host else "")
        )
    return out


def downloads_to_list(downloads: Iterable[Download]) -> list[dict[str, Any]]:
    """The ``downloads`` array of ``qfix.apply/1``."""
    return [
        {
            "package": d.package,
            "version": d.version,
            "url_host": d.url_host,
            "size_bytes": d.size_bytes,
        }
        for d in downloads
    ]


def dry_run_to_dict(run: DryRun | None) -> dict[str, Any] | None:
    """``qfix plan --resolve --json``'s ``resolved`` object (None: nothing was resolved)."""
    if run is None:
        return None
    return {
        "installer": run.installer,
        "downloads": downloads_to_list(run.downloads),
        "download_bytes": download_bytes(run.downloads),
        "cached": run.cached,
        "note": run.note,
    }
