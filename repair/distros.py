"""Linux distribution releases and their C and C++ runtimes (plans/distros.toml).

A report often names its OS (``host.os_release``: the PRETTY_NAME of /etc/os-release, or
"ID VERSION_ID") but not its glibc, and never its libstdc++. Native wheels need both: a manylinux
tag promises a glibc floor, and bitsandbytes' untagged wheels (0.37.0-0.42.0) need libstdc++'s
GLIBCXX_3.4.21 (S37). ``distro_of`` finds the release the text names, so the view can infer the
runtimes from it and say so ("inferred from CentOS 7").

Pure: reads a data file of the knowledge base, no process, no network. A malformed file raises
:class:`~repair.errors.KnowledgeError` naming the file and the entry (exit code 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.version import Version

from .knowledge import Cited, _Entry, _top, plans_directory

# The leading release numbers after a distribution's name: "7" of "CentOS Linux 7 (Core)",
# "18.04.6" of "Ubuntu 18.04.6 LTS".
_NUMBERS = re.compile(r"^[^\d]*?(\d+(?:\.\d+)*)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Distro(Cited):
    """One distribution release: its glibc and its system libstdc++ (newest GLIBCXX_)."""

    id: str  # os-release ID: "centos", "ubuntu"
    version: str  # os-release VERSION_ID, matched as a prefix of the release numbers: "7", "18.04"
    names: tuple[str, ...]  # NAME forms matched at the start of the text: "CentOS Linux"
    glibc: Version
    gcc: Version  # the GCC release the system libstdc++ comes from
    glibcxx: Version  # the newest GLIBCXX_ symbol version of that libstdc++ (3.4.19)

    @property
    def label(self) -> str:
        """How the explanation names it: "CentOS 7", "Ubuntu 18.04"."""
        return f"{self.names[-1]} {self.version}"

    def known(self, part: str) -> Version | None:
        """``glibc`` or ``glibcxx`` when that part is confirmed, else None (never a ground)."""
        return getattr(self, part) if self.is_confirmed(part) else None


def distro_of(os_release: str | None, distros: tuple[Distro, ...]) -> Distro | None:
    """The release ``os_release`` names ("CentOS Linux 7 (Core)", "Ubuntu 18.04.6 LTS",
    "centos 7"), else None. A name matches at the start of the text, case-insensitively, followed
    by a non-letter; the release's leading numbers must start with the entry's ``version``."""
    text = (os_release or "").strip().lower()
    if not text:
        return None
    for d in distros:
        for name in (*d.names, d.id):
            n = name.lower()
            if not text.startswith(n) or text[len(n) : len(n) + 1].isalpha():
                continue
            m = _NUMBERS.match(text[len(n) :])
            if m is not None and _prefix(d.version, m.group(1)):
                return d
    return None


def _prefix(want: str, have: str) -> bool:
    w, h = want.split("."), have.split(".")
    return len(h) >= len(w) and all(int(a) == int(b) for a, b in zip(w, h, strict=False))


def _distro(e: _Entry) -> Distro:
    version = e.text("version")
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        e.fail(f"version must be release numbers such as '7' or '18.04', not {version!r}")
    names = e.strs("names")
    if not names:
        e.fail("names must list at least one name")
    unknown = set(e.strs("unconfirmed", optional=True)) - {"glibc", "glibcxx"}
    if unknown:
        e.fail(f"unconfirmed may name only glibc and glibcxx, not {', '.join(sorted(unknown))}")
    d = Distro(
        id=e.text("id"),
        version=version,
        names=names,
        glibc=e.version("glibc"),
        gcc=e.version("gcc"),
        glibcxx=e.version("glibcxx"),
        **e.cited(),
    )
    e.done()
    return d


@lru_cache(maxsize=8)
def _load(path: Path) -> tuple[Distro, ...]:
    top = _top(path)
    out: list[Distro] = []
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(top.tables("distro")):
        e = top.child(f"distro[{i}] '{t.get('id', '?')} {t.get('version', '?')}'", t)
        d = _distro(e)
        if (d.id, d.version) in seen:
            e.fail(f"{d.id} {d.version} is listed twice")
        seen.add((d.id, d.version))
        out.append(d)
    top.done()
    return tuple(out)


def load_distros(directory: Path | None = None) -> tuple[Distro, ...]:
    """The distribution releases of ``directory`` (default: the shipped plans/)."""
    return _load(Path(directory or plans_directory()).resolve() / "distros.toml")
