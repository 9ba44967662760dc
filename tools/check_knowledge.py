"""Checks the knowledge base (plans/*.toml) against what PyPI serves today, so that it cannot go
stale silently.

    python tools/check_knowledge.py [--pypi-url URL] [--simple-url URL] [--from-dir DIR]
                                    [--max-age DAYS] [--today YYYY-MM-DD]

For torch, bitsandbytes, torchvision, torchaudio, transformers, accelerate, peft, diffusers and
ctranslate2 it reads the release list and the wheel files (PyPI's JSON API,
https://pypi.org/pypi/NAME/json; when that cannot be reached, the PEP 691 simple API of pip's
index, PIP_INDEX_URL or https://pypi.org/simple) and reports:

- a torch or bitsandbytes release on PyPI that plans/ does not list (torch from the oldest series
  in plans/torch.toml, bitsandbytes from the oldest release in plans/bitsandbytes.toml);
- a platform or wheel file on PyPI that plans/ does not list, and one plans/ lists that PyPI
  does not serve (torch: the wheels of each series' `latest`; bitsandbytes: every build's file);
- a torchvision or torchaudio release on PyPI, from the oldest one plans/torch.toml's [domain]
  lists, that [domain] does not list (its torch requirement was not read), and one a torch
  release's `family` pairs that PyPI does not serve or has yanked entirely;
- a CPython version with a torch wheel that the series' `python` specifier leaves out;
- a yanked file that plans/ still recommends (a torch version, a bitsandbytes build of a release
  without `known_bad`);
- a transformers/accelerate/peft/diffusers release first uploaded after the newest `checked`
  date of the plans/huggingface.toml rules that read that package (its floors were not read for
  it);
- a ctranslate2 release no row of plans/runtimes.toml covers (from its oldest row on): its CUDA
  and cuDNN were not read, and a plan never chooses it;
- every entry whose `checked` date is older than --max-age days (default 120: PyTorch ships a
  minor release about every 8-12 weeks, so 120 days always spans at least one new release).

Exit status: 0 no drift, or "skipped: no network" when neither API answers; 1 drift found;
2 bad usage or an unreadable knowledge base. --from-dir reads recorded NAME.json files (the JSON
API's format) instead of the network, for tests and offline review.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: import repair/ from this checkout
    sys.path.insert(0, str(ROOT))

from repair.knowledge import Knowledge, KnowledgeError, load_knowledge  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# torch's companions, read against plans/torch.toml's [domain] and `family` tables
DOMAIN_PACKAGES = ("torchvision", "torchaudio")
HF_PACKAGES = ("transformers", "accelerate", "peft", "diffusers")
# the libraries beside torch of plans/runtimes.toml (torch's own rows are check_torch's)
RUNTIME_PACKAGES = ("ctranslate2",)
PACKAGES = ("torch", "bitsandbytes", *DOMAIN_PACKAGES, *HF_PACKAGES, *RUNTIME_PACKAGES)
PYPI_JSON = "https://pypi.org/pypi"
PYPI_SIMPLE = "https://pypi.org/simple"
MAX_AGE_DAYS = 120
TIMEOUT_S = 20
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class NoNetwork(Exception):
    """Neither the JSON API nor the simple API could be reached."""


@dataclass(frozen=True, slots=True)
class DistFile:
    filename: str
    yanked: bool
    uploaded: str | None  # ISO date-time of the upload, when the index says


# NAME -> version string -> files (the JSON API's "releases", reduced to what the checks read)
Releases = Mapping[str, Mapping[str, tuple[DistFile, ...]]]


# --------------------------------------------------------------------------- reading PyPI


def _get(url: str, accept: str = "application/json") -> object:
    req = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "qfix-knowledge"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - https/http only
        return json.loads(resp.read().decode("utf-8"))


def releases_from_json_api(doc: Mapping) -> dict[str, tuple[DistFile, ...]]:
    """The JSON API document (https://pypi.org/pypi/NAME/json) reduced to its files."""
    out: dict[str, tuple[DistFile, ...]] = {}
    for version, files in (doc.get("releases") or {}).items():
        out[version] = tuple(
            DistFile(f["filename"], bool(f.get("yanked")), f.get("upload_time_iso_8601"))
            if f.get("upload_time_iso_8601")
            else DistFile(f["filename"], bool(f.get("yanked")), f.get("upload_time"))
            for f in files
        )
    return out


def _version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def releases_from_simple_api(doc: Mapping) -> dict[str, tuple[DistFile, ...]]:
    """A PEP 691 project page reduced to its files, grouped by the version in each file name."""
    grouped: dict[str, list[DistFile]] = {}
    for f in doc.get("files") or []:
        version = _version_of(f["filename"])
        if version is not None:
            grouped.setdefault(version, []).append(
                DistFile(f["filename"], bool(f.get("yanked")), f.get("upload-time"))
            )
    return {v: tuple(files) for v, files in grouped.items()}


def fetch_releases(json_url: str, simple_url: str) -> tuple[dict[str, dict], str]:
    """Every package's releases and which API answered; NoNetwork when neither did."""
    out: dict[str, dict] = {}
    try:
        for name in PACKAGES:
            out[name] = releases_from_json_api(_get(f"{json_url.rstrip('/')}/{name}/json"))  # type: ignore[arg-type]
        return out, json_url
    except (OSError, ValueError, urllib.error.URLError):
        pass
    try:
        for name in PACKAGES:
            doc = _get(f"{simple_url.rstrip('/')}/{name}/", accept=SIMPLE_JSON)
            out[name] = releases_from_simple_api(doc)  # type: ignore[arg-type]
        return out, simple_url
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise NoNetwork(str(exc)) from exc


def releases_from_dir(directory: Path) -> dict[str, dict]:
    """Recorded JSON API documents, DIR/NAME.json; a missing package is an empty list."""
    out: dict[str, dict] = {}
    for name in PACKAGES:
        path = directory / f"{name}.json"
        out[name] = releases_from_json_api(json.loads(path.read_text())) if path.exists() else {}
    return out


# --------------------------------------------------------------------------- the checks (pure)


def platform_of_tag(tag: str) -> str | None:
    """A wheel's platform tag as a repair.knowledge.PLATFORMS key; None for 'any' or unknown."""
    arch = "x86_64" if tag.endswith(("x86_64", "amd64")) else None
    arch = "aarch64" if tag.endswith(("aarch64", "arm64")) else arch
    if tag.startswith(("manylinux", "musllinux", "linux")) and arch:
        return f"linux-{arch}"
    if tag.startswith("win_") and arch:
        return f"windows-{'x86_64' if arch == 'x86_64' else 'arm64'}"
    if tag.startswith("macosx_") and arch:
        return f"macos-{'x86_64' if arch == 'x86_64' else 'arm64'}"
    return None


def _wheel_tags(filename: str) -> list[tuple[str, str]]:
    """(interpreter, platform tag) pairs of a wheel file name; [] for anything else."""
    if not filename.endswith(".whl"):
        return []
    try:
        return [(t.interpreter, t.platform) for t in parse_wheel_filename(filename)[3]]
    except InvalidWheelFilename:
        return []


def _cpython(interpreter: str) -> Version | None:
    if interpreter.startswith("cp3") and interpreter[3:].rstrip("t").isdigit():
        return Version(f"3.{interpreter[3:].rstrip('t')}")
    return None


def _stable(versions: Iterable[str]) -> list[Version]:
    out = []
    for v in versions:
        try:
            parsed = Version(v)
        except InvalidVersion:
            continue
        if not parsed.is_prerelease and not parsed.is_devrelease:
            out.append(parsed)
    return sorted(out)


def _live(files: Iterable[DistFile]) -> list[DistFile]:
    return [f for f in files if not f.yanked]


def check_torch(kb: Knowledge, releases: Mapping[str, tuple[DistFile, ...]]) -> list[str]:
    drift: list[str] = []
    listed = {v for r in kb.torch.releases for v in r.versions}
    oldest = min(r.series for r in kb.torch.releases)
    for v in _stable(v for v, files in releases.items() if _live(files)):
        if Version(f"{v.major}.{v.minor}") < oldest or v in listed:
            continue
        rel = kb.torch.release(v)
        where = f"series {rel.series}" if rel else "a series plans/torch.toml does not have"
        drift.append(f"torch {v}: on PyPI, not in plans/torch.toml ({where})")
    for rel in kb.torch.releases:
        for v in rel.versions:
            files = releases.get(str(v), ())
            if files and not _live(files):
                drift.append(f"torch {v}: every file is yanked on PyPI, plans still list it")
        files = _live(releases.get(str(rel.latest), ()))
        if not files:
            continue
        on_pypi: dict[str, set[str]] = {}
        pythons: set[Version] = set()
        for f in files:
            for interp, tag in _wheel_tags(f.filename):
                if (key := platform_of_tag(tag)) is not None:
                    on_pypi.setdefault(key, set()).add(tag)
                if (py := _cpython(interp)) is not None:
                    pythons.add(py)
        for key in sorted(on_pypi.keys() - rel.wheel_tags.keys()):
            drift.append(
                f"torch {rel.latest}: PyPI has {key} wheels ({', '.join(sorted(on_pypi[key]))}), "
                "plans/torch.toml lists no wheel tag for that platform"
            )
        for key, tag in sorted(rel.wheel_tags.items()):
            if key not in on_pypi:
                drift.append(f"torch {rel.latest}: plans list a {key} wheel ({tag}), PyPI has none")
            elif tag not in on_pypi[key]:
                drift.append(
                    f"torch {rel.latest}: plans give the {key} wheel tag {tag}, PyPI has "
                    f"{', '.join(sorted(on_pypi[key]))}"
                )
        for py in sorted(p for p in pythons if not rel.admits_python(p)):
            drift.append(
                f"torch {rel.latest}: PyPI has CPython {py} wheels, plans/torch.toml's python "
                f"'{rel.python}' leaves {py} out"
            )
    return drift


def check_bnb(kb: Knowledge, releases: Mapping[str, tuple[DistFile, ...]]) -> list[str]:
    drift: list[str] = []
    listed = {r.version for r in kb.bnb.releases}
    oldest = min(listed)
    for v in _stable(v for v, files in releases.items() if _live(files)):
        if v >= oldest and v not in listed:
            drift.append(f"bitsandbytes {v}: on PyPI, not in plans/bitsandbytes.toml")
    for rel in kb.bnb.releases:
        files = releases.get(str(rel.version))
        if files is None:
            drift.append(f"bitsandbytes {rel.version}: in plans, not on PyPI")
            continue
        by_name = {f.filename: f for f in files}
        planned = {b.file for b in rel.builds.values()}
        for key, build in sorted(rel.builds.items()):
            f = by_name.get(build.file)
            if f is None:
                drift.append(f"bitsandbytes {rel.version}: {key} file {build.file} not on PyPI")
            elif f.yanked and build.native and rel.known_bad is None:
                drift.append(
                    f"bitsandbytes {rel.version}: {build.file} is yanked on PyPI but plans "
                    "recommend it (no known_bad)"
                )
        for f in _live(files):
            if f.filename.endswith(".whl") and f.filename not in planned:
                keys = {platform_of_tag(t) for _, t in _wheel_tags(f.filename)} - {None}
                drift.append(
                    f"bitsandbytes {rel.version}: PyPI wheel {f.filename} "
                    f"({', '.join(sorted(k for k in keys if k)) or 'any'}) not in plans"
                )
    return drift


def check_domain(kb: Knowledge, releases: Releases) -> list[str]:
    """torchvision/torchaudio releases [domain] does not list, and `family` pairs PyPI lacks."""
    drift: list[str] = []
    for name in DOMAIN_PACKAGES:
        on_index = {Version(v): files for v, files in _parsed(releases.get(name, {}))}
        if not on_index:  # not read (a recorded directory without it): nothing to compare
            continue
        listed = {d.version for d in kb.torch.domain if d.package == name}
        for v in _stable(str(v) for v in on_index):
            if listed and v >= min(listed) and v not in listed and _live(on_index[v]):
                drift.append(
                    f"{name} {v}: on PyPI, not in plans/torch.toml [domain.{name}] (its torch "
                    "requirement was not read)"
                )
        paired = {
            getattr(fam, name)
            for rel in kb.torch.releases
            for fam in rel.family.values()
            if getattr(fam, name) is not None
        }
        for v in sorted(paired):
            if v not in on_index:
                drift.append(
                    f"{name} {v}: plans/torch.toml pairs it with torch, PyPI has no such release"
                )
            elif on_index[v] and not _live(on_index[v]):
                drift.append(
                    f"{name} {v}: every file is yanked on PyPI, plans/torch.toml still pairs it"
                )
    return drift


def _parsed(versions: Mapping[str, tuple[DistFile, ...]]) -> list[tuple[str, tuple[DistFile, ...]]]:
    """The releases whose version string parses (PyPI holds a few legacy ones that do not)."""
    out = []
    for v, files in versions.items():
        try:
            Version(v)
        except InvalidVersion:
            continue
        out.append((v, files))
    return out


def hf_last_checked(kb: Knowledge) -> dict[str, dt.date]:
    """Per Hugging Face package, the newest `checked` date of the rules that read it (the rule's
    package, or a package its `when` names): releases after it have not been read."""
    out: dict[str, dt.date] = {}
    for rule in kb.hf:
        for name in {rule.package, *rule.when}:
            if name in HF_PACKAGES:
                date = dt.date.fromisoformat(rule.checked)
                out[name] = max(out.get(name, date), date)
    return out


def check_hf(
    last_checked: Mapping[str, dt.date], releases: Mapping[str, Mapping[str, tuple[DistFile, ...]]]
) -> list[str]:
    """Releases first uploaded after plans/huggingface.toml last read that package."""
    drift: list[str] = []
    for name, checked in sorted(last_checked.items()):
        for v in _stable(releases.get(name, {})):
            files = releases[name][str(v)]
            dates = [f.uploaded[:10] for f in files if f.uploaded]
            if dates and dt.date.fromisoformat(min(dates)) > checked:
                drift.append(
                    f"{name} {v}: released {min(dates)}, after plans/huggingface.toml last read "
                    f"{name} ({checked}); its floors were not read for it"
                )
    return drift


def check_runtimes(
    kb: Knowledge, releases: Mapping[str, Mapping[str, tuple[DistFile, ...]]]
) -> list[str]:
    """Releases of a plans/runtimes.toml library, from its oldest row on, that no row covers."""
    drift: list[str] = []
    for name in RUNTIME_PACKAGES:
        rows = kb.runtimes.newest_first(name)
        if not rows:
            continue
        oldest = min(Version(c.version) for c in rows[-1].versions if c.operator == ">=")
        for v in _stable(releases.get(name, {})):
            if v >= oldest and kb.runtimes.of(name, v) is None:
                drift.append(
                    f"{name} {v}: no row of plans/runtimes.toml covers it; its CUDA and cuDNN "
                    "were not read"
                )
    return drift


def checked_dates(directory: Path) -> dict[str, list[tuple[str, dt.date]]]:
    """plans/*.toml file name -> (entry, checked date) for every entry that carries one."""
    out: dict[str, list[tuple[str, dt.date]]] = {}

    def walk(node: object, where: str, sink: list[tuple[str, dt.date]]) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("checked"), str):
                sink.append((where, dt.date.fromisoformat(node["checked"])))
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key, sink)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]", sink)

    for path in sorted(directory.glob("*.toml")):
        sink: list[tuple[str, dt.date]] = []
        walk(tomllib.loads(path.read_text()), "", sink)
        out[path.name] = sink
    return out


def check_age(
    dates: Mapping[str, list[tuple[str, dt.date]]], today: dt.date, max_age: int
) -> list[str]:
    drift: list[str] = []
    for name, entries in dates.items():
        old = [(w, d) for w, d in entries if (today - d).days > max_age]
        if old:
            where, oldest = min(old, key=lambda e: e[1])
            drift.append(
                f"plans/{name}: {len(old)} of {len(entries)} entries checked more than {max_age} "
                f"days ago (oldest {oldest}: {where})"
            )
    return drift


def check(
    kb: Knowledge,
    releases: Mapping[str, Mapping[str, tuple[DistFile, ...]]],
    today: dt.date,
    max_age: int,
) -> list[str]:
    """Every drift between the knowledge base and the releases read from the index."""
    drift = check_torch(kb, releases.get("torch", {}))
    drift += check_bnb(kb, releases.get("bitsandbytes", {}))
    drift += check_domain(kb, releases)
    drift += check_hf(hf_last_checked(kb), releases)
    drift += check_runtimes(kb, releases)
    drift += check_age(checked_dates(kb.directory), today, max_age)
    return drift


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_knowledge", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--pypi-url", default=PYPI_JSON, help="JSON API base (default %(default)s)")
    parser.add_argument(
        "--simple-url",
        default=os.environ.get("PIP_INDEX_URL", PYPI_SIMPLE),
        help="PEP 691 simple API, the fallback (default: PIP_INDEX_URL or %(default)s)",
    )
    parser.add_argument(
        "--from-dir", type=Path, help="recorded NAME.json files instead of the network"
    )
    parser.add_argument(
        "--max-age", type=int, default=MAX_AGE_DAYS, help="days (default %(default)s)"
    )
    parser.add_argument("--today", help="the date to age entries against (default: today)")
    args = parser.parse_args(argv)
    try:
        today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    except ValueError:
        print(f"check_knowledge: error: --today {args.today!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        kb = load_knowledge()
    except KnowledgeError as exc:
        print(f"check_knowledge: error: {exc}", file=sys.stderr)
        return 2
    if args.from_dir is not None:
        if not args.from_dir.is_dir():
            print(f"check_knowledge: error: no such directory: {args.from_dir}", file=sys.stderr)
            return 2
        releases, origin = releases_from_dir(args.from_dir), str(args.from_dir)
    else:
        try:
            releases, origin = fetch_releases(args.pypi_url, args.simple_url)
        except NoNetwork as exc:
            print(f"skipped: no network ({exc})")
            return 0
    drift = check(kb, releases, today, args.max_age)
    counts = ", ".join(f"{n} {len(releases.get(n, {}))}" for n in PACKAGES)
    print(f"read: {origin} ({counts} releases)")
    for line in drift:
        print(f"drift: {line}")
    print(f"{len(drift)} drift item(s)" if drift else "no drift: plans/ matches the index")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
