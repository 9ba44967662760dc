"""Read the project's requirements and constraints files (``--requirements`` / ``--constraint``).

I/O at the edge: called once per command by the pipeline; what it returns is the pure
``repair.pins.ProjectPins``. The format is pip's (https://pip.pypa.io/en/stable/reference/
requirements-file-format/): ``#`` comments, ``\\`` line continuations, ``-r``/``--requirement``
and ``-c``/``--constraint`` (nested, relative to the file that names them), the global options
(``--index-url``, ``--extra-index-url``, ``--find-links``, ``--pre``, ...), per-line
``--hash``, PEP 508 requirements with extras and markers, ``name @ url`` direct references,
and unnamed paths, archives or ``-e`` editables (which pin no version: noted, not used).

Why not pip-api, which the issue named for this (pip_api 0.0.35, _parse_requirements.py):
it evaluates each marker against the interpreter running qfix and silently drops the lines whose
marker is false there (``req.marker.evaluate()`` with no environment) -- so a pin meant for the
target's Python 3.9 vanishes when qfix runs on 3.11; and it has no ``-c`` option: a line
``-c constraints.txt`` becomes a requirement *named* ``constraints.txt``. Both are what this
module exists for, so it parses the file with ``packaging`` (already a dependency) itself.

Every problem is BadInput (exit 2) with one line naming the file and the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from .errors import BadInput
from .pins import Pin, ProjectPins

MAX_BYTES = 4 * 1024 * 1024  # a requirements file is small; never read a huge one whole
MAX_FILES = 64  # nesting bound (a cycle is read once anyway)

# Options that take a value (pip's requirement file options); their value is skipped.
_WITH_VALUE = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-binary",
    "--only-binary",
    "--use-feature",
    "--config-settings",
    "--global-option",
    "--hash",
}
_FLAGS = {"--pre", "--prefer-binary", "--require-hashes", "--no-index"}
_COMMENT = re.compile(r"(^|\s)#.*$")
_ARCHIVE = re.compile(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)


def read_project_pins(
    requirements: Sequence[str] = (), constraints: Sequence[str] = ()
) -> ProjectPins:
    """The pins of the given files, in order (requirements first, then constraints)."""
    reader = _Reader()
    for path in requirements:
        reader.read(str(path), constraint=False, named_by=None)
    for path in constraints:
        reader.read(str(path), constraint=True, named_by=None)
    given = [f"--requirements {p}" for p in requirements] + [
        f"--constraint {p}" for p in constraints
    ]
    return ProjectPins(tuple(given), tuple(reader.pins), tuple(reader.notes), tuple(reader.files))


class _Reader:
    def __init__(self) -> None:
        self.files: list[str] = []
        self.pins: list[Pin] = []
        self.notes: list[str] = []
        self._seen: set[tuple[str, bool]] = set()

    def read(self, path: str, *, constraint: bool, named_by: str | None) -> None:
        key = (os.path.normpath(os.path.abspath(path)), constraint)
        if key in self._seen:
            return  # a cycle or a file named twice: read once, like pip
        if len(self._seen) >= MAX_FILES:
            raise BadInput(f"{named_by or path}: more than {MAX_FILES} nested requirement files")
        self._seen.add(key)
        kind = "constraints" if constraint else "requirements"
        where = f" (named by {named_by})" if named_by else ""
        p = Path(path)
        try:
            if p.is_file() and p.stat().st_size > MAX_BYTES:
                raise BadInput(f"{kind} file {path}{where}: too large (over {MAX_BYTES} bytes)")
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput(f"{kind} file {path}{where}: no such file") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError, OSError) as exc:
            raise BadInput(
                f"{kind} file {path}{where}: cannot read it ({exc.__class__.__name__})"
            ) from None
        self.files.append(f"-c {path}" if constraint else path)
        for lineno, line in _logical_lines(text):
            self._line(path, lineno, line, constraint)

    def _line(self, path: str, lineno: int, line: str, constraint: bool) -> None:
        at = f"{path}:{lineno}"
        words = line.split()
        if not words:
            return
        head = words[0]
        for opt, nested in (
            ("-r", False),
            ("--requirement", False),
            ("-c", True),
            ("--constraint", True),
        ):
            value = _option_value(words, opt)
            if value is not None:
                if not value:
                    raise BadInput(f"{at}: {opt} needs a file name")
                if "://" in value:
                    raise BadInput(f"{at}: {opt} {value}: qfix reads local files only")
                target = os.path.join(os.path.dirname(path), value)
                # a constraints file's -r lines are constraints too (pip reads them alike)
                self.read(target, constraint=nested or constraint, named_by=at)
                return
        if head in ("-e", "--editable") or head.startswith("--editable="):
            self.notes.append(f"{at}: an editable install pins no version (not used)")
            return
        if head.startswith("-"):
            name = head.split("=", 1)[0]
            if name in _FLAGS or name in _WITH_VALUE:
                return  # an index or install option: not a pin
            raise BadInput(f"{at}: unknown option {name}")
        # the requirement, then its per-line options (--hash=...): pip splits the line at the
        # first word that starts with "-" (pip/_internal/req/req_file.py, break_args_options)
        req_words: list[str] = []
        for w in line.split(" "):
            if w.startswith("-"):
                break
            req_words.append(w)
        text = " ".join(req_words).strip()
        if _looks_unnamed(text):
            self.notes.append(f"{at}: {text} names no project and version (not used)")
            return
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            hint = " (did you mean ==?)" if re.search(r"[^=!<>~]=[^=]", text) else ""
            why = str(exc).splitlines()[0] if str(exc) else "invalid"
            raise BadInput(f"{at}: not a valid requirement {text!r}{hint}: {why}") from None
        self.pins.append(
            Pin(
                name=re.sub(r"[-_.]+", "-", req.name).lower(),
                specifier=SpecifierSet(str(req.specifier)),
                source=at,
                constraint=constraint,
                marker=str(req.marker) if req.marker is not None else None,
                url=req.url,
            )
        )


def _option_value(words: list[str], opt: str) -> str | None:
    """The value of ``opt`` when the line is that option (``-r x``, ``-rx``, ``--requirement=x``),
    else None; "" when it has no value."""
    head = words[0]
    if head == opt:
        return words[1] if len(words) > 1 else ""
    if opt.startswith("--") and head.startswith(opt + "="):
        return head[len(opt) + 1 :]
    if not opt.startswith("--") and head.startswith(opt) and len(head) > len(opt):
        return head[len(opt) :]
    return None


def _looks_unnamed(text: str) -> bool:
    """A path, an archive or a URL without ``name @``: pip installs it, but it names no version."""
    if "@" in text.split(";", 1)[0] and not text.startswith(("./", "/", "..")):
        return False  # name @ url
    head = text.split(";", 1)[0].strip()
    return (
        "://" in head
        or head.startswith((".", "/", "~"))
        or os.sep in head
        or bool(_ARCHIVE.search(head))
    )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each logical line: continuations joined, comments removed
    (pip: a ``#`` at the start or after whitespace starts a comment)."""
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = number
        if raw.endswith("\\"):
            buf += raw[:-1]
            continue
        line = _COMMENT.sub("", buf + raw).strip()
        buf = ""
        if line:
            out.append((start, line))
    if buf.strip():
        line = _COMMENT.sub("", buf).strip()
        if line:
            out.append((start, line))
    return out
