"""Node sets folded the way ClusterShell and Slurm write them: ``gpu[01-12,15],login1``.

Pure. Names are split into a prefix, the last run of digits and a suffix; names that share prefix
and suffix fold into one bracket. Zero padding is kept: ``gpu01``..``gpu03`` fold to
``gpu[01-03]`` and ``n9``, ``n10`` to ``n[9-10]``, but ``n01`` and ``n1`` are different names and
never share a range. ``expand`` is the inverse (``expand(fold(names)) == sorted(set(names))``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


def _key(name: str) -> tuple[str, str, int, str]:
    m = _LAST_NUMBER.match(name)
    if not m:
        return (name, "", -1, "")
    return (m.group(1), m.group(3), int(m.group(2)), m.group(2))


def _width(digits: str) -> int:
    # "007" is padded to 3; "7" or "10" are not padded (width 0 = free).
    return len(digits) if len(digits) > 1 and digits.startswith("0") else 0


def _fits(prev: int, prev_digits: str, cur: int, cur_digits: str) -> bool:
    if cur != prev + 1:
        return False
    wp, wc = _width(prev_digits), _width(cur_digits)
    if wp == wc:
        return True
    # padded 09 -> 10 keeps the width (two digits); unpadded 9 -> 10 is free
    return wp == len(cur_digits) and wc == 0 and len(prev_digits) == len(cur_digits)


def fold(names: Iterable[str]) -> str:
    """The folded node set of ``names`` (duplicates dropped), sorted by prefix then number."""
    # Each name is split once and sorted within its (prefix, suffix) by (number, digits): a
    # fleet plan folds 10,000 names twice (groups, classes), and sorting small int-first tuples
    # per pattern is ~3x faster than one sort of (prefix, suffix, number, digits) tuples.
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    plain: list[str] = []
    match = _LAST_NUMBER.match
    for name in set(names):
        m = match(name)
        if m is None:
            plain.append(name)
        else:
            prefix, digits, suffix = m.groups()
            groups.setdefault((prefix, suffix), []).append((int(digits), digits))
    parts: list[tuple[str, str]] = [(p, p) for p in sorted(plain)]
    for (prefix, suffix), numbers in groups.items():
        numbers.sort()
        ranges: list[tuple[str, int, str]] = []  # (first digits, last number, last digits)
        last, last_digits = -2, ""
        for number, digits in numbers:
            # The next number written with as many digits always extends the range (both padded,
            # "09" -> "10", or neither): _fits is only asked where the length changes.
            if number == last + 1 and (
                len(digits) == len(last_digits) or _fits(last, last_digits, number, digits)
            ):
                ranges[-1] = (ranges[-1][0], number, digits)
            else:
                ranges.append((digits, number, digits))
            last, last_digits = number, digits
        if len(ranges) == 1 and ranges[0][0] == ranges[0][2]:
            text = f"{prefix}{ranges[0][0]}{suffix}"
        else:
            inner = ",".join(a if a == b else f"{a}-{b}" for a, _, b in ranges)
            text = f"{prefix}[{inner}]{suffix}"
        parts.append((prefix, text))
    return ",".join(text for _, text in sorted(parts, key=lambda x: (x[0], x[1])))


_BRACKET = re.compile(r"^(.*?)\[([^\]]*)\](.*)$")


def expand(nodeset: str) -> list[str]:
    """The names of a folded node set (one bracket per name pattern, as ``fold`` writes)."""
    out: list[str] = []
    for part in _split_top(nodeset):
        m = _BRACKET.match(part)
        if not m:
            out.append(part)
            continue
        prefix, inner, suffix = m.groups()
        for item in inner.split(","):
            lo, _, hi = item.partition("-")
            hi = hi or lo
            if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
                raise ValueError(f"bad range {item!r} in node set {nodeset!r}")
            pad = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
            out.extend(f"{prefix}{n:0{pad}d}{suffix}" for n in range(int(lo), int(hi) + 1))
    return sorted(set(out), key=_key)


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p for p in parts if p]
