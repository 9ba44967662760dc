"""What a person at a terminal sees while qfix works: progress lines, a live status line, a ticker.

Progress lines (``qfix: ...``) go to stderr, so stdout stays the result alone (a pipe, ``--json``).
When stderr is a terminal, a one-line status under them shows what qfix waits for and for how
long: the package and the size an installer is downloading, the step a 4-bit check is in (a hung
``import torch`` shows its seconds climbing instead of silence). When stderr is not a terminal
there is no status line and no ticker: a log gets whole lines only. ``-v`` prints every line of
the installers instead of the status line; ``-q`` prints nothing but errors and the result.
"""

from __future__ import annotations

import re
import shutil
import textwrap
import threading
import time
import urllib.parse
from typing import TextIO

from .render import for_terminal

# A wait shorter than this needs no ticker (a plan from a file, a fast probe).
TICK_AFTER_S = 1.5
TICK_EVERY_S = 0.5

# What pip and uv print per package (pip 23-25, uv 0.4-0.9; the piped forms, without bars):
#   pip: "Collecting torch==2.5.1", "Downloading https://.../torch-2.5.1-...whl (906.4 MB)",
#        "Installing collected packages: torch"
#   uv:  "Downloading torch (906.4MiB)", " Downloaded torch", "Installed 1 package in 2.1s"
_PIP_DOWNLOAD = re.compile(r"^\s*Downloading\s+(?:\S*/)?(\S+?)\s+\(([^)]+)\)")
_PIP_COLLECT = re.compile(r"^\s*Collecting\s+(\S+)")
_UV_DOWNLOAD = re.compile(r"^\s*Downloading\s+(\S+)\s+\(([^)]+)\)")


# The marker a list line starts with, after its indent ("✗ ", "? ", "[required] ", "- "): its
# continuation lines align under the text that follows it.
_LIST_MARKER = re.compile(r"^(\s*(?:[✗!?·•x\-]|\[[a-z]+\]|\d+\.)\s+)")
# Lines to copy or to read as columns stay whole: commands (POSIX "$ ", PowerShell "PS> "),
# table rows and headers (a run of two or more spaces between words in the first 40 columns, or
# two such runs anywhere: one run far into a line is as likely two spaces inside a quoted
# sentence), the apply line, the digest.
_WHOLE = re.compile(
    r"^\s*(\$ |PS> |[~+\-]  |Apply with:|On the machine|\(or save|Plan digest:)"
    r"|^.{0,40}\S {2,}\S|\S {2,}\S.*\S {2,}\S"
)
# A labelled line ("  cause:   ...", `qfix explain`): the spaces that align its text after the label
# are no table's columns, so it wraps like any other line, its continuation lines under the text
# after the label and its gap (one space after the longest label, "confirm: ").
_LABEL = re.compile(r"^(\s*[a-z]+:) +")
# A `quoted command` is one unbreakable word (its spaces become this mark while wrapping).
_GLUE = "\ue000"


def fit_to_width(text: str, width: int) -> str:
    """Text for a terminal ``width`` columns wide: each longer line wrapped at spaces, its
    continuation indented under the text after its list marker. Commands, table rows, the apply
    line and backquoted commands stay whole, to be copied as they are; words longer than the
    width (a URL, a path) are never broken. A pipe gets the text unwrapped (the caller decides)."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width or _WHOLE.search(_LABEL.sub(r"\1 ", line)):
            out.append(line)
            continue
        m = _LIST_MARKER.match(line) or _LABEL.match(line)
        indent = " " * (m.end() if m else len(line) - len(line.lstrip()))
        glued = re.sub(r"`[^`]*`", lambda q: q.group(0).replace(" ", _GLUE), line)
        wrapped = textwrap.fill(
            glued,
            width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        out.append(wrapped.replace(_GLUE, " "))
    return "\n".join(out)


def installer_status(line: str) -> str | None:
    """A short status for one installer line ("downloading torch-...whl (906.4 MB)"), or None
    when the line says nothing worth showing."""
    for rx, verb in ((_PIP_DOWNLOAD, "downloading"), (_UV_DOWNLOAD, "downloading")):
        m = rx.match(line)
        if m:  # a file name from a URL is quoted ("torch-2.5.1%2Bcu121-...whl")
            return f"{verb} {urllib.parse.unquote(m.group(1))} ({m.group(2)})"
    m = _PIP_COLLECT.match(line)
    if m:
        return f"collecting {m.group(1)}"
    text = line.strip()
    if text.startswith(("Installing collected packages", "Successfully installed", "Installed ")):
        return text[:120]
    if text.startswith(("Prepared ", "Resolved ", "Uninstalled ", "Uninstalling ")):
        return text[:120]
    return None


class Terminal:
    """Progress for one command. ``verbosity``: -1 quiet, 0 normal, 1 verbose. ``live``: draw
    the status line and tick (default: whether ``stream`` is a terminal)."""

    def __init__(self, stream: TextIO, *, verbosity: int = 0, live: bool | None = None) -> None:
        self.stream = stream
        self.verbosity = verbosity
        isatty = getattr(stream, "isatty", None)
        self.live = (bool(isatty and isatty()) if live is None else live) and verbosity >= 0
        self._lock = threading.Lock()
        self._what: str | None = None  # what a silent wait waits for (``wait``)
        self._active = False  # a wait or a step is under way (the ticker may draw)
        self._detail: str | None = None  # the installer's or the check's current state
        self._since = time.monotonic()
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ what the pipeline calls

    def progress(self, line: str) -> None:
        """A step begins or ends: one whole line (kept in the scrollback)."""
        if self.verbosity < 0:
            return
        with self._lock:
            self._clear()
            self._write(f"qfix: {line}\n")
            # the line just printed says what is going on; the ticker only adds the seconds
            self._what, self._detail, self._since = None, None, time.monotonic()
            self._active = True

    def wait(self, what: str) -> None:
        """A wait that prints nothing unless it lasts: the ticker shows ``what`` after
        TICK_AFTER_S (reading a target interpreter that may hang)."""
        with self._lock:
            self._what, self._detail, self._since = what, None, time.monotonic()
            self._active = True

    def output(self, line: str) -> None:
        """One line a child printed (an installer, the 4-bit check's steps)."""
        if self.verbosity > 0:
            with self._lock:
                self._clear()
                self._write(f"  {line}\n")
            return
        step = line.startswith("step: ")
        status = line[len("step: ") :] if step else installer_status(line)
        if status is None:
            return
        with self._lock:
            if step:  # a check's new step: its own clock (a hung import shows its seconds)
                self._since = time.monotonic()
            self._detail = status
            if self.live:
                self._draw()

    # ------------------------------------------------------------------ the ticker

    def __enter__(self) -> Terminal:
        if self.live:
            self._thread = threading.Thread(target=self._tick, daemon=True, name="qfix-ticker")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._clear()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_EVERY_S):
            with self._lock:
                if self._active and time.monotonic() - self._since >= TICK_AFTER_S:
                    self._draw()

    # ------------------------------------------------------------------ drawing (lock held)

    def _draw(self) -> None:
        waited = time.monotonic() - self._since
        what = self._detail or self._what or "still working"
        text = f"  ... {what} ({waited:.0f} s)"
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        if len(text) > width:
            text = text[: width - 3] + "..."
        self._write("\r\x1b[K" + text)
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(for_terminal(text, getattr(self.stream, "encoding", None)))
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr never stops the work
            pass
