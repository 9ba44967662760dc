"""Node records (``qfix.node/1``): what one qfix command found or did on one node.

Written by ``qfix detect|plan|apply|verify --record PATH``: to a file, or into a directory as
``<node>.<kind>.json`` (one file per node and command). The write is atomic (a temp file in the
same directory, then rename), so hundreds of nodes writing into one folder on shared storage never
leave a half-written record for ``qfix fleet plan`` or ``report`` to trip on.

    {"schema": "qfix.node/1", "node": "gpu07", "kind": "detect", "exit_code": 0,
     "document": {... qfix.facts/1 | qfix.plan/1 | qfix.apply/1 | qfix.verify/1 ...},
     "timing": {"started": "2026-12-06T01:02:03Z", "seconds": 1.42},
     "qfix": "0.1.0", "note": null}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput

SCHEMA = "qfix.node/1"
KINDS = ("detect", "plan", "apply", "verify")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def node_name(environ: Mapping[str, str] | None = None) -> str:
    """This node's name: ``$QFIX_NODE``, else Slurm's ``$SLURMD_NODENAME`` (several slurmd may
    share one host, so the hostname alone would merge them), else the short hostname."""
    env = os.environ if environ is None else environ
    for var in ("QFIX_NODE", "SLURMD_NODENAME"):
        if env.get(var):
            return env[var]
    import socket  # here: only writers need it, and fleet plan/report read records

    return socket.gethostname().split(".")[0] or "localhost"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node: str
    kind: str
    exit_code: int
    document: Mapping[str, Any]
    started: str | None
    seconds: float | None
    note: str | None
    source: str  # the file (and line) it was read from

    def to_dict(self) -> dict[str, Any]:
        return make_record(
            self.node, self.kind, self.document, self.exit_code, self.started, self.seconds
        ) | {"note": self.note}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record file that could not be read: the node (from the file name) did not answer."""

    node: str
    source: str
    reason: str


def make_record(
    node: str,
    kind: str,
    document: Mapping[str, Any],
    exit_code: int,
    started: str | None,
    seconds: float | None,
    note: str | None = None,
) -> dict[str, Any]:
    from .. import __version__

    return {
        "schema": SCHEMA,
        "node": node,
        "kind": kind,
        "exit_code": int(exit_code),
        "document": dict(document),
        "timing": {"started": started, "seconds": seconds},
        "qfix": __version__,
        "note": note,
    }


def record_path(path: str | os.PathLike[str], node: str, kind: str) -> Path:
    """Where a record goes: ``path`` itself, or ``path/<node>.<kind>.json`` for a directory (an
    existing one, or a path written with a trailing slash)."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        return p / f"{_SAFE.sub('_', node)}.{kind}.json"
    return p


def write_record(
    path: str | os.PathLike[str],
    kind: str,
    document: Mapping[str, Any],
    exit_code: int,
    started: float,
    *,
    note: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Write this node's ``qfix.node/1`` record atomically; ``started`` is the ``time.time()`` of
    the command's start. BadInput (exit 2) names the path when it cannot be written."""
    if kind not in KINDS:
        raise BadInput(f"unknown record kind {kind!r}")
    node = node_name(environ)
    now = time.time()
    rec = make_record(
        node,
        kind,
        document,
        exit_code,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        round(max(0.0, now - started), 3),
        note,
    )
    dest = record_path(path, node, kind)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(rec, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the collector may be another user
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadInput(f"could not write the node record to {dest}: {exc.strerror}") from None
    return dest


# --------------------------------------------------------------------------- reading


def parse_record(data: Any, source: str) -> NodeRecord:
    """A NodeRecord from a decoded JSON value; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    get = data.get  # one lookup per field: a fleet plan parses 10,000 of these
    if get("schema") != SCHEMA:
        raise ValueError(f"schema is {get('schema')!r}, expected {SCHEMA!r}")
    node, kind, code, doc = get("node"), get("kind"), get("exit_code"), get("document")
    if not isinstance(node, str) or not node:
        raise ValueError("node: expected a non-empty string")
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError("exit_code: expected an integer")
    if not isinstance(doc, dict):
        raise ValueError("document: expected an object")
    timing = get("timing")
    if isinstance(timing, dict):
        started, seconds = timing.get("started"), timing.get("seconds")
    else:
        started = seconds = None
    note = get("note")
    return NodeRecord(
        node,
        kind,
        code,
        doc,
        started if isinstance(started, str) else None,
        float(seconds) if isinstance(seconds, int | float) else None,
        note if isinstance(note, str) else None,
        source,
    )


def _node_from_filename(path: Path) -> str:
    name = path.name
    for suffix in (".json", ".jsonl", ".out"):
        name = name.removesuffix(suffix)
    for kind in KINDS:
        name = name.removesuffix("." + kind)
    return name


def _read_bytes(path: str) -> bytes:
    """The whole file, by ``os.open``/``os.read``: no file object (FileIO, BufferedReader) is
    built per file, ~10 us of 10,000 records (bench/bench_fleet.py). Reads to the end, so a file
    larger than one read is whole too."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _READ_SIZE)
        if not data:
            return data
        chunks = [data]
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return data if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


_READ_SIZE = 1 << 16  # a record is ~1-5 KiB (one with every installed package ~100 KiB)


def _read_file(path: str) -> Iterator[NodeRecord | Unreadable]:
    # Bytes, not text: json.loads decodes UTF-8 itself, and a fleet of 10,000 small files pays
    # for a text wrapper per file (bench/bench_fleet.py). The node name from the file name is
    # only worked out for a record that cannot be read.
    try:
        data = _read_bytes(path)
    except OSError:
        # The error as open() words it (with the file name), as before the fast read.
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            yield Unreadable(_node_from_filename(Path(path)), path, f"cannot read it: {exc}")
            return
    if path.endswith(".jsonl") or (data.startswith(b"{") and b"\n{" in data.rstrip()):
        # JSON Lines: many records in one file (a collector's concatenation)
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                yield _decode(line, f"{path}:{n}", path)
        return
    yield _decode(data, path, path)


_DECODE = json.JSONDecoder().decode  # what json.loads uses for text


def _loads(data: bytes) -> Any:
    """``json.loads(data)``, with the common case (UTF-8 without a BOM) decoded directly. Any
    other input, and every fault, goes through json.loads itself, so a record it reads and the
    error it gives are the same as before (a BOM, UTF-16/32, a NUL: the fast path fails on all)."""
    try:
        return _DECODE(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return json.loads(data)


def _decode(data: bytes, source: str, path: str) -> NodeRecord | Unreadable:
    try:
        return parse_record(_loads(data), source)
    except json.JSONDecodeError as exc:
        reason = f"not JSON ({exc.msg} at line {exc.lineno})"
    except UnicodeDecodeError as exc:
        reason = f"cannot read it: {exc}"
    except ValueError as exc:
        reason = f"not a {SCHEMA} record: {exc}"
    return Unreadable(_node_from_filename(Path(path)), source, reason)


def iter_records(paths: Iterable[str | os.PathLike[str]]) -> Iterator[NodeRecord | Unreadable]:
    """Every record under ``paths`` (files, or directories: their ``*.json``/``*.jsonl``, not
    recursive; hidden temp files of writers still at work are skipped), one at a time so that a
    fleet of thousands is never held in memory at once. BadInput for a path that does not exist
    (raised before the first record)."""
    found = [Path(p) for p in paths]
    for p in found:
        if not p.exists():
            raise BadInput(f"records path {p}: no such file or directory")
    return _iter(found)


def _iter(paths: list[Path]) -> Iterator[NodeRecord | Unreadable]:
    for p in paths:
        if p.is_dir():
            yield from read_files(_dir_files(p))
        else:
            yield from _read_file(str(p))


def _dir_files(p: Path) -> list[str]:
    with os.scandir(p) as it:
        names = sorted(
            e.name
            for e in it
            if e.name.endswith((".json", ".jsonl")) and not e.name.startswith(".")
        )
    base = os.path.join(p, "")  # base + name == os.path.join(p, name), joined once
    return [base + name for name in names]


def record_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files ``iter_records(paths)`` reads, in its order (BadInput as it raises)."""
    found = [Path(p) for p in paths]
    for p in found:
        if not p.exists():
            raise BadInput(f"records path {p}: no such file or directory")
    return [f for p in found for f in (_dir_files(p) if p.is_dir() else [str(p)])]


def read_files(files: Iterable[str]) -> Iterator[NodeRecord | Unreadable]:
    """The records of ``files`` (from ``record_files``), in order."""
    for path in files:
        yield from _read_file(path)


def read_records(paths: Iterable[str | os.PathLike[str]]) -> tuple[NodeRecord | Unreadable, ...]:
    """All records under ``paths`` at once (see iter_records)."""
    return tuple(iter_records(paths))
