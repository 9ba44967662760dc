"""What a wheel's platform tag asks of a host, and what pip refusing such a wheel proves.

A `py3-none-<platform>` wheel (every bitsandbytes wheel) installs wherever its platform tag is
among the interpreter's supported tags; pip refuses it with "<file> is not a supported wheel on
this platform." otherwise (S69: pip's resolver). By PEP 600 and `packaging.tags` (S70) a
`manylinux_X_Y_<arch>` tag is supported where glibc >= X.Y on that CPU (the legacy aliases
manylinux1/2010/2014 are 2.5/2.12/2.17), and `macosx_X_Y_<arch>` where macOS >= X.Y on that CPU.
So a refused tag of this host's own CPU bounds its glibc (or macOS) from above; a tag of another
CPU proves nothing about versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from .knowledge import glibc_of_tag, macos_of_tag

# One name per CPU across the tag and platform.machine() spellings.
_CPU = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True, slots=True)
class TagNeed:
    """What one platform tag needs: ``kind`` "glibc" or "macos" at least ``version`` on ``cpu``."""

    kind: str
    cpu: str
    version: Version


def cpu_name(machine: str | None) -> str | None:
    """The CPU of a tag's or platform.machine()'s spelling (x86_64/AMD64, aarch64/arm64)."""
    return _CPU.get((machine or "").lower())


def tag_need(tag: str) -> TagNeed | None:
    """The need of one platform tag, or None for tags that set no version (win_amd64, any) or
    no single CPU (universal2)."""
    # the CPU is the tag's tail; x86_64 holds an underscore itself
    cpu = "x86_64" if tag.endswith("_x86_64") else cpu_name(tag.rsplit("_", 1)[-1])
    if cpu is None:
        return None
    glibc, macos = glibc_of_tag(tag), macos_of_tag(tag)
    if glibc is not None:
        return TagNeed("glibc", cpu, glibc)
    if macos is not None:
        return TagNeed("macos", cpu, macos)
    return None


def refused_bound(tags: str, machine: str | None) -> TagNeed | None:
    """What pip refusing a wheel with platform ``tags`` (a compressed set, "a.b") proves on a
    host whose CPU is ``machine``: its glibc or macOS is below the least demanding tag's version.
    None where that cannot be told: the CPU is unknown or another one's, or a tag sets no version.
    """
    cpu = cpu_name(machine)
    needs = [tag_need(t) for t in tags.split(".")]
    if cpu is None or not needs or any(n is None or n.cpu != cpu for n in needs):
        return None
    kinds = {n.kind for n in needs if n is not None}
    if len(kinds) != 1:
        return None
    return min((n for n in needs if n is not None), key=lambda n: n.version)


# pip 20.3 (S71) first knew PEP 600's manylinux_X_Y tags and macOS 11+ ("Big Sur") tags: an older
# pip refuses such a wheel whatever the host's glibc or macOS.
PIP_KNOWS_NEW_TAGS = Version("20.3")


def pip_may_not_know(tags: str, pip: Version | None) -> bool:
    """Whether the pip that refused ``tags`` may have done so for not knowing their form: it is
    older than 20.3, or its version is unknown, and every tag needs 20.3."""
    return needs_new_pip(tags) and (pip is None or pip < PIP_KNOWS_NEW_TAGS)


def needs_new_pip(tags: str) -> bool:
    """Whether a pip older than 20.3 refuses every tag of ``tags`` for not knowing its form
    (False as soon as one tag is of a form older pips know). The legacy manylinux aliases count
    as known: the manylinux2014 one needs pip 19.3, older than any pip that installs a wheel of
    bitsandbytes' (all manylinux_2_24 or macOS 14 tags)."""
    for tag in tags.split("."):
        need = tag_need(tag)
        legacy = tag.startswith(("manylinux1_", "manylinux2010_", "manylinux2014_"))
        if need is None or legacy or (need.kind == "macos" and need.version < Version("11")):
            return False
    return True
