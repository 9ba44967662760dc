"""Bounded JSON parsing for every document qfix reads from outside.

Facts files, saved plans, fleet records and the target interpreter's answer are input that qfix
did not write. ``json.loads`` recurses once per nesting level, so a document nested 100,000
levels deep ends in a ``RecursionError`` traceback, and a file of gigabytes is read whole. Here
the size is checked first, then the nesting depth by one scan of the brackets outside strings
(no recursion), and only then is the text parsed. Every fault is one line: the caller's error
class (a BadInput: exit 2) naming the document. Pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import BadInput

# Limits. A real facts file is a few KiB (one with every installed distribution listed: ~100
# KiB), a plan a few KiB, the probe's answer one line of the same size as the facts. 16 MiB and
# 64 levels are far above any document qfix writes (its deepest is 5 levels) and far below what
# exhausts the interpreter: CPython's recursion limit is 1000.
MAX_BYTES = 16 << 20
MAX_DEPTH = 64


# A JSON string (escapes included; an unterminated one runs to the end), and a run of anything
# but brackets. Unrolled so that matching is linear (no nested quantifier can backtrack).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of ``[``/``{`` outside JSON strings; stops counting past ``limit``
    (returns ``limit + 1``). Iterative: any depth is measured without recursion. The strings and
    everything but brackets are dropped by two regular expressions first (in C: ~3x faster than
    a loop over every character; a 640 KB facts file takes ~70 ms on a loaded machine)."""
    depth = deepest = 0
    for ch in _NOT_BRACKETS.sub("", _STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; write a number or null")


def loads(
    text: str | bytes,
    origin: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    error: type[BadInput] = BadInput,
) -> Any:
    """Parse one JSON document of at most ``max_bytes`` (UTF-8) nested at most ``max_depth``
    deep; ``NaN``/``Infinity`` are refused (not JSON). Raises ``error(f"{origin}: ...")``."""
    if isinstance(text, bytes):
        size = len(text)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{origin}: not UTF-8 text") from None
    else:
        # a str of n characters is at least n bytes in UTF-8: no need to encode a huge one
        size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise error(f"{origin}: too large ({size} bytes; the limit is {max_bytes} bytes)")
    depth = nesting_depth(text, max_depth)
    if depth > max_depth:
        raise error(f"{origin}: nested more than {max_depth} levels deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise error(
            f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # _reject_constant
        raise error(f"{origin}: {exc}") from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept so it never becomes a traceback
        raise error(f"{origin}: nested too deep to read") from None
