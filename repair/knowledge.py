"""The knowledge base: plans/*.toml loaded and validated into typed, frozen tables.

Pure: no process, no network, no torch import. Every entry carries where its fact comes from
(``source``, the S-keys of ../shared/facts/compat-facts.md) and when it was checked; facts that
were not verified keep ``confirmed = False`` (or name the doubtful part in ``unconfirmed``) with a
note, so that the planner never makes an unconfirmed fact the only ground for a destructive step.

Versions and specifiers are parsed with ``packaging`` at load time; a malformed file raises
:class:`~repair.errors.KnowledgeError` naming the file and the entry, e.g.
``plans/torch.toml: release '2.7' variant 'cu128': arch_list must be a list of 'sm_XY' strings``.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import KnowledgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (dependency: tomli; python_version < '3.11')
    import tomli as tomllib

PLATFORMS = (
    "linux-x86_64",
    "linux-aarch64",
    "windows-x86_64",
    "windows-arm64",
    "macos-arm64",
    "macos-x86_64",
)
FORMAT = 1  # the `format` key every plans/*.toml file carries

BNB_LOADERS = ("libcudart-search", "torch-version", "exact", "same-major-fallback")
BNB_OVERRIDES = ("none", "suffix", "regex", "digits")
BNB_MISSING_LIB = ("import-error", "cpu-fallback", "error-mock")
# What makes a known-bad release bad, so the rule reports it only where it can bite:
# a library missing from the wheel, a libstdc++ floor above its neighbours', or wrong results.
BNB_KNOWN_BAD_KINDS = (
    "missing-lib",
    "libstdcxx",
    "wrong-output",
    "crash",
    "8bit-only",
    "old-gpu-crash",  # fails only on a GPU below `known_bad_below_cc`
)
# Kinds whose fault a 4-bit setup may never meet: reported as a warning, still never planned.
BNB_KNOWN_BAD_WARN = ("crash", "8bit-only")

# The plans/huggingface.toml feature of a 4-bit load with no CUDA: bitsandbytes' CPU backend,
# which transformers accepts from its own floor on (S100).
CPU_4BIT = "4bit-cpu"
# The releases whose bitsandbytes quantizers raise "No GPU found. A GPU is needed for
# quantization." without CUDA: transformers up to 4.44.2, the last 4.44 on PyPI (S100, S114);
# diffusers' 4-bit one on Apple's GPU up to 0.38.0 (S114).
TRANSFORMERS_REFUSING_WITHOUT_CUDA = SpecifierSet("<4.45.0")
DIFFUSERS_BEFORE_MPS = SpecifierSet("<0.39.0")
_ARCH_RE = re.compile(r"^(sm|compute)_(\d{2,3})\Z")
_GFX_RE = re.compile(r"^gfx[0-9a-f]{3,4}\Z")  # an AMD GPU target (LLVM processor name), S91
_LIB_RE = re.compile(r"^\d{2,4}\Z")  # CUDA "118", "132"; ROCm "62", "714"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_MANYLINUX_LEGACY = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}
_MACHINES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8": "arm64",
}
_SYSTEMS = {"linux": "linux", "windows": "windows", "darwin": "macos", "macos": "macos"}
_EMPTY: Mapping[str, Version] = MappingProxyType({})


class DriverVersion(Version):
    """An NVIDIA driver version: compares like ``packaging.version.Version`` but prints as NVIDIA
    writes it ("535.54.03"; a plain Version would print "535.54.3")."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._text = text.strip()

    def __str__(self) -> str:
        return self._text


class Range(SpecifierSet):
    """A version range: compares like ``packaging.specifiers.SpecifierSet`` but prints as a
    person reads a range, lower bound first (">=0.40.0,<0.45.1"; a plain SpecifierSet sorts its
    clauses as strings: "<0.45.1,>=0.40.0")."""

    __slots__ = ()
    # lower bounds, then exact and excluded versions, then upper bounds
    _SIDE = {">=": 0, ">": 0, "~=": 0, "==": 1, "===": 1, "!=": 2, "<=": 3, "<": 3}

    def __str__(self) -> str:
        clauses = sorted(self, key=lambda c: (self._SIDE.get(c.operator, 1), str(c)))
        return ",".join(str(c) for c in clauses)


@functools.lru_cache(maxsize=1024)
def parsed_version(text: str) -> Version:
    """``Version(text)``, parsed once per distinct text (raises InvalidVersion as Version does).

    Planning asks for the same few dozen versions (library tags, compute capabilities, base
    versions) over and over: ~85,000 parses for the 39 plans of bench/bench_fleet.py. The object
    is shared by every caller, so it must never be mutated (nothing in qfix mutates a Version).
    Keyed by the exact text, so "1.0" and "1.0.0" stay distinct objects that print as written.
    """
    return Version(text)


def platform_key(system: str | None, machine: str | None) -> str | None:
    """The platform key of ``platform.system()`` / ``platform.machine()`` values, else None.

    ("Linux", "x86_64") -> "linux-x86_64"; ("Windows", "AMD64") -> "windows-x86_64";
    ("Darwin", "arm64") -> "macos-arm64"; aarch64/arm64 on Linux -> "linux-aarch64".
    """
    if not system or not machine:
        return None
    osname = _SYSTEMS.get(system.strip().lower())
    arch = _MACHINES.get(machine.strip().lower())
    if osname is None or arch is None:
        return None
    if arch == "arm64":
        return "linux-aarch64" if osname == "linux" else f"{osname}-arm64"
    return f"{osname}-{arch}"


def arch_version(arch: str) -> Version:
    """Arch name to compute capability: sm_86 -> 8.6, compute_120 -> 12.0, sm_121 -> 12.1."""
    m = _ARCH_RE.match(arch)
    if m is None:
        raise ValueError(f"not an arch name like 'sm_86': {arch!r}")
    digits = m.group(2)
    return parsed_version(f"{digits[:-1]}.{digits[-1]}")


def lib_cuda(tag: str) -> Version:
    """A bitsandbytes CUDA library tag as a CUDA version: "118" -> 11.8, "132" -> 13.2."""
    tag = tag.removeprefix("cuda")
    # CUDA majors have two digits from 10 on; the last digit is the minor.
    return parsed_version(f"{tag[:-1]}.{tag[-1]}")


def lib_rocm(tag: str) -> Version:
    """A bitsandbytes ROCm library tag as a ROCm version: "62" -> 6.2, "714" -> 7.14."""
    tag = tag.removeprefix("rocm")
    return parsed_version(f"{tag[0]}.{tag[1:]}")


def glibc_of_tag(tag: str) -> Version | None:
    """The glibc floor a manylinux wheel tag promises (PEP 513/571/599/600), else None."""
    m = re.match(r"^manylinux_(\d+)_(\d+)_", tag)
    if m:
        return Version(f"{m.group(1)}.{m.group(2)}")
    for legacy, glibc in _MANYLINUX_LEGACY.items():
        if tag.startswith(legacy + "_"):
            return Version(glibc)
    return None


def macos_of_tag(tag: str) -> Version | None:
    """The minimum macOS of a macosx wheel tag ("macosx_14_0_arm64" -> 14.0), else None."""
    m = re.match(r"^macosx_(\d+)_(\d+)_", tag)
    return Version(f"{m.group(1)}.{m.group(2)}") if m else None


def runs_on(cc: Version, sass: Iterable[Version], ptx: Iterable[Version] = ()) -> bool:
    """Whether code compiled for ``sass`` (cubins) / ``ptx`` can run on compute capability ``cc``.

    NVIDIA binary compatibility (CUDA C++ Programming Guide "Binary Compatibility"; the
    per-architecture compatibility guides): a cubin for X.y runs on X.z with z >= y, never on
    another major; PTX for X.y is JIT-compiled for any device of compute capability >= X.y
    (subject to the driver caveat in Drivers.minor_compat_caveat).
    """
    cc = Version(f"{cc.major}.{cc.minor}")
    if any(s.major == cc.major and s.minor <= cc.minor for s in sass):
        return True
    return any(p <= cc for p in ptx)


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True, kw_only=True)
class Cited:
    """Where a fact comes from. Mixed into every entry of the knowledge base.

    ``confirmed`` is False when the entry as a whole is unconfirmed; ``unconfirmed`` names the
    parts of an otherwise confirmed entry that are not ("platforms.linux-aarch64", "torchaudio",
    "windows", ...). ``note`` says why whenever either is set.
    """

    source: str
    checked: str
    confirmed: bool
    note: str | None = None
    unconfirmed: tuple[str, ...] = ()

    @property
    def fully_confirmed(self) -> bool:
        """No part of the entry is unconfirmed."""
        return self.confirmed and not self.unconfirmed

    def is_confirmed(self, part: str | None = None) -> bool:
        """True when the entry (and ``part`` of it, when given) is confirmed."""
        if not self.confirmed:
            return False
        return part is None or part not in self.unconfirmed


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolkitRow(Cited):
    """One line of NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" table (A1)."""

    cuda: Version  # X.Y
    label: str  # as in the table: "12.2 Update 1", "11.0.2 GA"
    ga: bool  # the row whose minimum stands for CUDA X.Y
    linux: Version | None  # None: "N/A" or "UNCONFIRMED" (see linux_raw)
    windows: Version | None
    linux_raw: str
    windows_raw: str

    def minimum(self, system: str) -> Version | None:
        key = _system(system)
        return self.linux if key == "linux" else self.windows if key == "windows" else None


@dataclass(frozen=True, slots=True, kw_only=True)
class MinorCompat(Cited):
    """NVIDIA minor-version compatibility floor of one CUDA major (A2)."""

    major: int
    linux: Version
    windows: Version | None
    upper: str | None  # informational: NVIDIA's upper range ("<525")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchChange(Cited):
    """GPU architectures removed / deprecated by a CUDA release (A3)."""

    cuda: Version
    removed: tuple[str, ...]
    deprecated: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverBranch(Cited):
    """The last driver branch that supports a GPU family."""

    last: int
    family: str
    archs: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeNote(Cited):
    id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Drivers:
    """NVIDIA driver vs CUDA (plans/drivers.toml)."""

    toolkit: tuple[ToolkitRow, ...]
    minor_compat: Mapping[int, MinorCompat]
    arch_changes: tuple[ArchChange, ...]
    branches: tuple[DriverBranch, ...]
    caveat: Cited  # source of minor_compat_caveat
    minor_compat_caveat: str  # the PTX caveat text with its source
    notes: tuple[KnowledgeNote, ...]
    # toolkit_row's answers by (major, minor), filled on first use: ~560 scans of the table for
    # 39 plans (bench/bench_fleet.py). Held by this table, so per knowledge base.
    _row_memo: dict[tuple[int, int], ToolkitRow | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def arch_removed(self) -> Mapping[int, tuple[str, ...]]:
        """CUDA major -> the sm archs the releases of that major removed (A3)."""
        removed: dict[int, tuple[str, ...]] = {}
        for ch in self.arch_changes:
            if ch.removed:
                removed[ch.cuda.major] = removed.get(ch.cuda.major, ()) + ch.removed
        return removed

    def arch_gone(self, cuda: Version, cc: Version) -> ArchChange | None:
        """The A3 change by which CUDA ``cuda`` has no code for a GPU of compute capability
        ``cc``, else None."""
        arch = f"sm_{cc.major}{cc.minor}"
        return next(
            (ch for ch in self.arch_changes if arch in ch.removed and ch.cuda <= cuda), None
        )

    def toolkit_row(self, cuda: Version) -> ToolkitRow | None:
        """The GA row of CUDA X.Y (None when the table has no such release)."""
        want = (cuda.major, cuda.minor)
        try:
            return self._row_memo[want]
        except KeyError:
            pass
        found = next(
            (r for r in self.toolkit if r.ga and (r.cuda.major, r.cuda.minor) == want), None
        )
        self._row_memo[want] = found
        return found

    def toolkit_min(self, cuda: Version, system: str) -> Version | None:
        """Minimum driver of the CUDA X.Y GA release on "Linux"/"Windows".

        None when NVIDIA lists N/A, the value is unconfirmed and unknown, or X.Y is not in the
        table. An unconfirmed number (13.4) is returned; check ``toolkit_row(cuda).confirmed``.
        """
        row = self.toolkit_row(cuda)
        return row.minimum(system) if row is not None else None

    def minor_compat_min(self, cuda_major: int, system: str) -> Version | None:
        """NVIDIA minor-version compatibility floor for ``cuda_major`` (None before CUDA 11)."""
        mc = self.minor_compat.get(cuda_major)
        if mc is None:
            return None
        key = _system(system)
        return mc.linux if key == "linux" else mc.windows if key == "windows" else None

    def newest_cuda_for_driver(
        self, driver: Version, system: str, *, confirmed_only: bool = True
    ) -> Version | None:
        """The newest CUDA X.Y whose toolkit minimum (GA row) is <= ``driver``.

        Minor-version compatibility is not counted here (see :meth:`compat`).
        """
        best: Version | None = None
        for row in self.toolkit:
            if not row.ga or (confirmed_only and not row.confirmed):
                continue
            need = row.minimum(system)
            if need is not None and need <= driver and (best is None or row.cuda > best):
                best = row.cuda
        return best

    def compat(self, cuda: Version, driver: Version, system: str) -> str:
        """How ``driver`` runs a CUDA ``cuda`` build: "toolkit" (driver >= the toolkit's own
        minimum), "minor" (only through minor-version compatibility: limited feature set, PTX
        caveat), "no", or "unknown" (no number to compare with)."""
        full = self.toolkit_min(cuda, system)
        if full is not None and driver >= full:
            return "toolkit"
        minor = self.minor_compat_min(cuda.major, system)
        if minor is not None and driver >= minor:
            return "minor"
        if full is None and minor is None:
            return "unknown"
        return "no"

    def last_branch_for(self, cc: Version) -> int | None:
        """The last driver branch that supports a GPU of compute capability ``cc`` (470 for
        Kepler, 580 for Maxwell/Pascal/Volta); None when no end of support is known."""
        arch = f"sm_{cc.major}{cc.minor}"
        for b in self.branches:
            if arch in b.archs:
                return b.last
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchVariant(Cited):
    """One build of a torch release: "cu118", "cpu", "rocm6.2", "xpu"."""

    name: str
    cuda: Version | None  # Version("11.8") for cu118; None for cpu/rocm/xpu
    rocm: str | None
    platforms: frozenset[str]  # where it can be installed from
    arch_list: tuple[str, ...] | None  # Linux x86_64 (and Windows) list; None = unknown
    arch_confirmed: bool
    arch_measured: bool  # read from the wheel itself (S20)
    arch_source: str | None
    arch_aarch64: tuple[str, ...] | None  # the Linux aarch64 build's list; None = unknown
    gfx: tuple[str, ...] | None = None  # ROCm builds: the GPU targets compiled for; None = unknown
    gfx_source: str | None = None

    @property
    def kind(self) -> str:
        if self.cuda is not None:
            return "cuda"
        if self.rocm is not None:
            return "rocm"
        return self.name  # "cpu", "xpu"

    @property
    def index_url(self) -> str:
        """The PyTorch index of this variant (S14: DOWNLOAD_URL_BASE/whl/<name>). Whether the
        variant is there is unconfirmed when ``is_confirmed("index")`` is False (2.15): install
        the release's PyPI default build from PyPI instead."""
        return f"https://download.pytorch.org/whl/{self.name}"

    def available_on(self, platform: str, *, confirmed_only: bool = False) -> bool:
        if platform not in self.platforms:
            return False
        return not confirmed_only or self.is_confirmed(f"platforms.{platform}")

    def arch_for(self, platform: str) -> tuple[str, ...] | None:
        """The arch list of this variant's build for ``platform``; None when unknown."""
        if platform not in self.platforms:
            return None
        if platform == "linux-aarch64":
            return self.arch_aarch64
        if platform in ("linux-x86_64", "windows-x86_64"):
            return self.arch_list
        return self.arch_list if self.kind == "cpu" else None

    def arch_confirmed_for(self, platform: str) -> bool:
        if self.arch_for(platform) is None:
            return False
        return self.arch_confirmed and self.is_confirmed(f"arch.{platform}")

    def sass(self) -> tuple[Version, ...]:
        """Compute capabilities with SASS in ``arch_list`` (empty when unknown)."""
        return _archs(self.arch_list, "sm")

    def ptx(self) -> tuple[Version, ...]:
        """Compute capabilities with PTX in ``arch_list`` (empty when unknown)."""
        return _archs(self.arch_list, "compute")

    def sass_for(self, platform: str) -> tuple[Version, ...] | None:
        archs = self.arch_for(platform)
        return None if archs is None else _archs(archs, "sm")

    def ptx_for(self, platform: str) -> tuple[Version, ...] | None:
        archs = self.arch_for(platform)
        return None if archs is None else _archs(archs, "compute")


@dataclass(frozen=True, slots=True)
class Family:
    """The torchvision / torchaudio release that matches one torch version (None: none known)."""

    torchvision: Version | None
    torchaudio: Version | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchRelease(Cited):
    """One torch minor series (plans/torch.toml [[release]])."""

    series: Version  # Version("2.7")
    latest: Version  # Version("2.7.1")
    versions: tuple[Version, ...]
    python: SpecifierSet
    pypi_default: Mapping[str, str]  # platform key -> variant name
    variants: tuple[TorchVariant, ...]
    wheel_tags: Mapping[str, str]  # platform key -> platform tag of the PyPI wheel of `latest`
    family: Mapping[Version, Family]
    torchvision: Version | None  # matching releases for `latest`
    torchaudio: Version | None
    glibc_min: Version | None  # of the PyPI Linux x86_64 wheel (its manylinux tag)
    glibc_build: Version | None  # the build image's glibc when above the tag (2.6: UNCONFIRMED)

    def variant(self, name: str) -> TorchVariant | None:
        for v in self.variants:
            if v.name == name:
                return v
        return None

    def variants_for(
        self, platform: str, *, confirmed_only: bool = False
    ) -> tuple[TorchVariant, ...]:
        return tuple(
            v for v in self.variants if v.available_on(platform, confirmed_only=confirmed_only)
        )

    def pypi_variant(self, platform: str) -> TorchVariant | None:
        """The build that ``pip install torch`` gets from PyPI on ``platform``."""
        name = self.pypi_default.get(platform)
        return self.variant(name) if name is not None else None

    def admits_python(self, v: Version) -> bool:
        return self.python.contains(parsed_version(v.base_version), prereleases=True)

    def glibc_for(self, platform: str) -> Version | None:
        tag = self.wheel_tags.get(platform)
        return glibc_of_tag(tag) if tag else None

    def macos_min(self, platform: str) -> Version | None:
        tag = self.wheel_tags.get(platform)
        return macos_of_tag(tag) if tag else None

    def family_for(self, version: Version) -> Family | None:
        return self.family.get(Version(version.base_version))


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchKnownBad(Cited):
    """A torch release whose wheels on ``platforms`` fail to import for a fault of the build:
    loading ``dll`` of torch\\lib fails; ``fixed_in`` is the release that fixed it."""

    version: Version
    platforms: tuple[str, ...]
    dll: str
    fixed_in: Version
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainRelease(Cited):
    """A torchvision / torchaudio release and the torch it declares (Requires-Dist)."""

    package: str
    version: Version
    torch: SpecifierSet  # empty: no torch requirement


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchTable:
    releases: tuple[TorchRelease, ...]  # ascending
    domain: tuple[DomainRelease, ...]
    known_bad: tuple[TorchKnownBad, ...] = ()  # plans/torch.toml [[known_bad]]
    # platform -> the torch versions whose CPU wheels on the PyTorch index carry no "+cpu" label
    # (plans/torch.toml [cpu_unlabelled])
    cpu_unlabelled: Mapping[str, SpecifierSet] = field(default_factory=dict)

    def local_label(self, variant: str, platform: str | None, version: Version) -> str | None:
        """The local version label of torch ``version``'s ``variant`` wheel on ``platform``
        ("cu121", "cpu"), None where its wheels have none (macOS; Linux aarch64 before 2.6)."""
        unlabelled = self.cpu_unlabelled.get(platform or "")
        if variant == "cpu" and unlabelled is not None and version in unlabelled:
            return None
        return variant

    def is_known_bad(self, version: Version, platform: str | None) -> bool:
        """Whether torch ``version`` is a known-bad build on ``platform`` (whatever its DLL)."""
        v = Version(version.public)
        return any(k.version == v and platform in k.platforms for k in self.known_bad)

    def known_bad_for(
        self, version: Version | None, platform: str | None, dll: str | None
    ) -> TorchKnownBad | None:
        """The known-bad entry of torch ``version`` on ``platform`` whose failing DLL is ``dll``
        (a case-insensitive file name), or None."""
        if version is None or platform is None or dll is None:
            return None
        v = Version(version.public)
        return next(
            (
                k
                for k in self.known_bad
                if k.version == v and platform in k.platforms and k.dll.lower() == dll.lower()
            ),
            None,
        )

    def release(self, version: Version | str) -> TorchRelease | None:
        """The release of torch ``version``'s major.minor series.

        Local tags ("2.1.0+cu121") and odd builds ("2.5.0a0+872d972e41.nv24.08") map to their
        series; None when the series is not in the table or ``version`` does not parse.
        """
        v = _loose_version(version)
        if v is None or len(v.release) < 2:
            return None
        want = (v.release[0], v.release[1])
        for r in self.releases:
            if (r.series.major, r.series.minor) == want:
                return r
        return None

    def domain_release(self, package: str, version: Version | str) -> DomainRelease | None:
        v = _loose_version(version)
        if v is None:
            return None
        base = Version(v.public)
        for d in self.domain:
            if d.package == package and d.version == base:
                return d
        return None

    def domain_admits(self, package: str, version: Version | str, torch: Version) -> bool | None:
        """Whether torchvision/torchaudio ``version`` declares support for ``torch`` (None: the
        release is not in the table)."""
        d = self.domain_release(package, version)
        if d is None:
            return None
        return d.torch.contains(Version(torch.base_version), prereleases=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SassBand(Cited):
    """Compiled SASS / PTX targets of the bitsandbytes CUDA libraries of a band (C2)."""

    releases: SpecifierSet
    platforms: frozenset[str]
    cuda: SpecifierSet  # CUDA version of the library
    sass: tuple[str, ...]
    ptx: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbConflict(Cited):
    """bitsandbytes releases that cannot import beside a torch range on some platforms although
    their declared requirements admit it (plans/bitsandbytes.toml [[conflict]])."""

    releases: SpecifierSet
    platforms: frozenset[str]
    torch: SpecifierSet
    torch_build: str | None  # "cuda": only a CUDA build of torch (its triton); None: any build
    # an implied fact (plans/signatures.toml) that shows the clash itself (a triton without
    # triton.ops beside it): then it holds for the release range whatever brought the triton
    proven_by: str | None
    why: str

    def applies(
        self,
        release: Version,
        platform: str | None,
        torch: Version | None,
        cuda_build: bool,
        proven: frozenset[str] = frozenset(),
    ) -> bool:
        """Whether it bites for ``release`` with ``torch`` (a CUDA build or not) on
        ``platform`` (None: unknown, no); ``proven``: the implied facts an error text showed."""
        if self.proven_by is not None and self.proven_by in proven:
            return self.releases.contains(release, prereleases=True)
        if platform not in self.platforms or torch is None:
            return False
        if self.torch_build == "cuda" and not cuda_build:
            return False
        return self.releases.contains(release, prereleases=True) and self.torch.contains(
            Version(torch.base_version), prereleases=True
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbLoader(Cited):
    name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbOverride(Cited):
    """How a release treats BNB_CUDA_VERSION (or CUDA_VERSION in 0.40.1)."""

    name: str
    text: str
    empty_disables: bool  # an empty value means "no override"
    digits_only: bool  # any non-digit value (including empty) makes loading fail


@dataclass(frozen=True, slots=True)
class OverrideEffect:
    """What an override variable does to one bitsandbytes release on one platform."""

    applies: bool  # the variable changes which library is loaded
    lib: str | None  # the library it then looks for ("cuda125")
    shipped: bool  # that library is in the build
    error: str | None  # why loading fails outright (invalid value), else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbBuild:
    """The distribution of one bitsandbytes release for one platform."""

    platform: str
    file: str
    size_bytes: int
    dist: str  # "any" (py3-none-any) | "platform"
    tag: str  # platform tag: "manylinux_2_24_x86_64", "win_amd64", "any"
    cuda_libs: tuple[str, ...]  # ("118", "121", ...)
    nocublaslt: tuple[str, ...]
    cpu_lib: bool
    rocm_libs: tuple[str, ...]
    xpu_libs: tuple[str, ...]
    native: bool  # the wheel's native libraries are usable on this platform
    glibc_min: Version | None
    macos_min: Version | None
    lib_glibc_min: Mapping[str, Version]  # library tag -> glibc floor above glibc_min
    note: str | None
    release: Version = field(repr=False)
    # every C2 band of the table, filtered on use so that loading stays fast
    bands: tuple[SassBand, ...] = field(repr=False, compare=False)
    # the newest GLIBCXX_ symbol version its libraries need from libstdc++ (S37: objdump -T of
    # the untagged Linux wheels); None where not read
    glibcxx_min: Version | None = None
    # _band's answers by library tag, filled on first use: planning asks ~2,800 times for 39
    # plans (bench/bench_fleet.py), each a scan with two SpecifierSet checks per band. Held by the
    # build, so it lives and dies with its knowledge base.
    _band_memo: dict[str, SassBand | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _band(self, cuda_lib: str) -> SassBand | None:
        tag = cuda_lib.removeprefix("cuda").removesuffix("_nocublaslt")
        try:
            return self._band_memo[tag]
        except KeyError:
            pass
        found: SassBand | None = None
        if tag in self.cuda_libs:
            cuda = lib_cuda(tag)
            for band in self.bands:
                if (
                    self.platform in band.platforms
                    and band.releases.contains(self.release, prereleases=True)
                    and band.cuda.contains(cuda, prereleases=True)
                ):
                    found = band
                    break
        self._band_memo[tag] = found
        return found

    def sass(self, cuda_lib: str) -> tuple[Version, ...] | None:
        """Compute capabilities with SASS in library ``cuda_lib`` ("118" or "cuda118"), from
        C2; None when unknown. C2 bands are UNCONFIRMED (build scripts, not the fatbins)."""
        band = self._band(cuda_lib)
        return None if band is None else _archs(band.sass, "sm")

    def ptx(self, cuda_lib: str) -> tuple[Version, ...] | None:
        band = self._band(cuda_lib)
        return None if band is None else _archs(band.ptx, "compute")

    def sass_band(self, cuda_lib: str) -> SassBand | None:
        """The C2 entry behind :meth:`sass` (its source, confirmation and note)."""
        return self._band(cuda_lib)

    def glibc_for(self, cuda_lib: str | None = None) -> Version | None:
        """The glibc this build needs, with library ``cuda_lib`` when given (F27)."""
        need = self.lib_glibc_min.get(cuda_lib.removeprefix("cuda")) if cuda_lib else None
        if need is None:
            return self.glibc_min
        return need if self.glibc_min is None else max(need, self.glibc_min)


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbRelease(Cited):
    """One bitsandbytes release (plans/bitsandbytes.toml [[release]])."""

    version: Version
    python: SpecifierSet | None  # Requires-Python; None: none declared
    torch: SpecifierSet | None  # torch requirement; None: none declared ("" = torch, unbounded)
    builds: Mapping[str, BnbBuild]  # platform key -> build; absent: no distribution there
    has_4bit: bool
    cpu_4bit: bool
    loader: str  # BNB_LOADERS
    override: str  # BNB_OVERRIDES
    override_env: str | None  # "BNB_CUDA_VERSION" (0.40.1: "CUDA_VERSION"); None: no override
    missing_lib: str  # BNB_MISSING_LIB: what a missing CUDA library does
    nocublaslt_below: Version | None  # picks *_nocublaslt below this compute capability
    sdist: bool
    known_bad: str | None  # why it must not be chosen
    known_bad_kind: str | None = None  # BNB_KNOWN_BAD_KINDS; set exactly when known_bad is
    # bad only on a GPU below this compute capability (None: wherever it runs)
    known_bad_below_cc: Version | None = None

    @property
    def lib_glibc_min(self) -> Mapping[str, Version]:
        """Library tag -> glibc floor of the Linux x86_64 build (F27: 0.45.x cuda126/128)."""
        build = self.builds.get("linux-x86_64")
        return build.lib_glibc_min if build is not None else _EMPTY

    def admits_torch(self, v: Version) -> bool:
        """As pip checks it: the local tag stripped, a pre-release kept (NGC's torch
        2.2.0a0+81ea7a4 is below ">=2.2", and pip refuses the pair)."""
        if self.torch is None:
            return True
        return self.torch.contains(parsed_version(v.public), prereleases=True)

    def admits_python(self, v: Version) -> bool:
        if self.python is None:
            return True
        return self.python.contains(parsed_version(v.base_version), prereleases=True)

    def lib_for_cuda(
        self, cuda: Version, platform: str, *, cc: Version | None = None
    ) -> str | None:
        """The CUDA library this release loads for a torch built with ``cuda`` on ``platform``
        ("cuda118", or "cuda118_nocublaslt" when ``cc`` is below ``nocublaslt_below``),
        following its loader: an exact match, and from 0.50 the same-major fallback (C4).
        None when it has no usable library (missing_lib says what happens then)."""
        build = self.builds.get(platform)
        if build is None or not build.native:
            return None
        tag = f"{cuda.major}{cuda.minor}"
        if self.nocublaslt_below is not None and cc is not None and cc < self.nocublaslt_below:
            return f"cuda{tag}_nocublaslt" if tag in build.nocublaslt else None
        picked = pick_lib(build.cuda_libs, cuda, lib_cuda, self.loader)
        return None if picked is None else f"cuda{picked}"

    def lib_for_rocm(self, rocm: Version, platform: str) -> str | None:
        """The ROCm library ("rocm62") for torch.version.hip ``rocm``, by the same rules."""
        build = self.builds.get(platform)
        if build is None or not build.native:
            return None
        picked = pick_lib(build.rocm_libs, rocm, lib_rocm, self.loader)
        return None if picked is None else f"rocm{picked}"

    def override_effect(self, value: str, platform: str) -> OverrideEffect:
        """What setting ``override_env`` to ``value`` does (C4, F32). Unknown platform builds
        count as not shipping the library."""
        if self.override_env is None or self.override == "none":
            return OverrideEffect(False, None, False, None)
        value = value.strip()
        digits_only = self.override == "digits"
        if value == "" and not digits_only:
            return OverrideEffect(False, None, False, None)
        if digits_only and not value.isdigit():
            return OverrideEffect(
                True,
                None,
                False,
                f"{self.override_env} must be digits in bitsandbytes {self.version}; "
                f"{value!r} makes loading raise RuntimeError (UNCONFIRMED: read from the code)",
            )
        build = self.builds.get(platform)
        shipped = build is not None and build.native and value in build.cuda_libs
        return OverrideEffect(True, f"cuda{value}", shipped, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class RocmTargets(Cited):
    """GPU targets (gfxNNNN) that the ROCm libraries of a release range are built for, for the
    libraries built with a ROCm version in ``rocm`` (plans/bitsandbytes.toml [[rocm_targets]])."""

    releases: SpecifierSet
    platforms: frozenset[str]
    rocm: SpecifierSet
    targets: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuTarget(Cited):
    """An AMD GPU product name and its LLVM target (plans/bitsandbytes.toml [[gpu_target]])."""

    name: str
    gfx: str


@functools.lru_cache(maxsize=256)
def _product_name(name: str) -> re.Pattern[str]:
    """A product name as whole words of a casefolded GPU name ("radeon rx 7600" is not in
    "radeon rx 7600s")."""
    return re.compile(rf"(?<!\w){re.escape(name.casefold())}(?!\w)")


# A target named in the GPU's own name or a report ("AMD Radeon (gfx1201, Navi 48)").
# ROCm's gcnArchName adds feature flags after a colon ("gfx90a:sramecc+:xnack-").
_GFX_IN_NAME = re.compile(r"\b(gfx[0-9][0-9a-f]{2,3})(?![0-9a-z])", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class BnbTable:
    releases: tuple[BnbRelease, ...]  # ascending
    loaders: Mapping[str, BnbLoader]
    overrides: Mapping[str, BnbOverride]
    sass_bands: tuple[SassBand, ...]
    conflicts: tuple[BnbConflict, ...] = ()
    rocm_targets: tuple[RocmTargets, ...] = ()
    gpu_targets: tuple[GpuTarget, ...] = ()
    # native_on's answers by (platform, cpu_4bit): the rules ask for every view (fleet groups)
    _native_memo: dict[tuple[str, bool], tuple[BnbRelease, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def native_on(self, platform: str | None, *, cpu_4bit: bool = False) -> tuple[BnbRelease, ...]:
        """The releases with 4-bit (``cpu_4bit``: 4-bit on the CPU) and a native build for
        ``platform``, oldest first."""
        key = (platform or "", cpu_4bit)
        found = self._native_memo.get(key)
        if found is None:
            found = tuple(
                r
                for r in self.releases
                if (r.cpu_4bit if cpu_4bit else r.has_4bit)
                and (b := r.builds.get(key[0])) is not None
                and b.native
            )
            self._native_memo[key] = found
        return found

    def lib_targets(
        self, release: Version, platform: str, lib_rocm: Version
    ) -> frozenset[str] | None:
        """The GPU targets the ROCm library of ``release`` built with ROCm ``lib_rocm`` has code
        for; None when the knowledge base does not say for that release and platform."""
        scoped = [
            t
            for t in self.rocm_targets
            if t.releases.contains(release, prereleases=True) and platform in t.platforms
        ]
        if not scoped:
            return None
        return frozenset(
            g for t in scoped if t.rocm.contains(lib_rocm, prereleases=True) for g in t.targets
        )

    def gfx_of(self, name: str | None) -> str | None:
        """The LLVM target of an AMD GPU from its name: one the name carries ("gfx1201"), else
        the longest product name of [[gpu_target]] it contains as whole words."""
        if not name:
            return None
        m = _GFX_IN_NAME.search(name)
        if m:
            return m.group(1).lower()
        text = " ".join(name.casefold().replace("(tm)", " ").replace("\u2122", " ").split())
        named = [t for t in self.gpu_targets if _product_name(t.name).search(text)]
        return max(named, key=lambda t: len(t.name)).gfx if named else None

    def conflict(
        self,
        release: Version,
        platform: str | None,
        torch: Version | None,
        *,
        cuda_build: bool,
        proven: frozenset[str] = frozenset(),
    ) -> BnbConflict | None:
        """The [[conflict]] that stops ``release`` importing beside ``torch`` here, or None."""
        return next(
            (c for c in self.conflicts if c.applies(release, platform, torch, cuda_build, proven)),
            None,
        )

    def release(self, version: Version | str) -> BnbRelease | None:
        """The release with exactly this version (local tags ignored), else None."""
        v = _loose_version(version)
        if v is None:
            return None
        base = Version(v.public)
        for r in self.releases:
            if r.version == base:
                return r
        return None

    def first(self, *, has_4bit: bool = True) -> BnbRelease | None:
        """The oldest release with 4-bit (0.39.0)."""
        return next((r for r in self.releases if r.has_4bit == has_4bit), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaGpu(Cited):
    """An NVIDIA GPU product name and its compute capability, as NVIDIA's tables list them
    (plans/gpus.toml [[nvidia_gpu]], S106)."""

    name: str
    cc: Version


# Words of an NVIDIA GPU's name that do not tell the product: NVML prints "Tesla T4" and "NVIDIA
# GeForce RTX 4090" where NVIDIA's table says "NVIDIA T4" and "GeForce RTX 4090".
_NVIDIA_BRAND = re.compile(r"(?<!\w)(?:nvidia|tesla)(?!\w)")
# A mark of another model right after a product name: "GeForce RTX 4070 SUPER" and "GeForce RTX
# 4090 D" are not the 4070 and the 4090 (a table row names such a model itself, if it lists it).
_OTHER_MODEL_AFTER = re.compile(r"\s*(?:ti|super|d)(?!\w)")


@functools.lru_cache(maxsize=1024)
def gpu_words(name: str) -> str:
    """An NVIDIA GPU name casefolded, without trade marks, "NVIDIA" and "Tesla", and with one
    space between words: the form the table lookup compares."""
    text = name.casefold()
    for mark in ("(tm)", "(r)", "\u2122", "\u00ae"):
        text = text.replace(mark, " ")
    return " ".join(_NVIDIA_BRAND.sub(" ", text).split())


@dataclass(frozen=True, slots=True)
class NvidiaGpus:
    """NVIDIA's GPU names and compute capabilities (plans/gpus.toml)."""

    rows: tuple[NvidiaGpu, ...] = ()
    # each row's name as a whole-words pattern of its normalised form, longest first (a stable
    # sort: among names of one length, table order), worked out once with the table
    _patterns: tuple[tuple[re.Pattern[str], NvidiaGpu], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        keyed = sorted(((gpu_words(r.name), r) for r in self.rows), key=lambda k: -len(k[0]))
        object.__setattr__(self, "_patterns", tuple((_product_name(k), r) for k, r in keyed))

    def lookup(self, name: str | None) -> NvidiaGpu | None:
        """The row of the GPU called ``name`` (as NVML or torch print it: "NVIDIA A100-SXM4-80GB",
        "NVIDIA GeForce RTX 3060 Laptop GPU"): the longest table name it contains as whole words,
        not followed by a mark of another model (Ti, SUPER, D); None when no row names it."""
        if not name:
            return None
        text = gpu_words(name)
        for pattern, row in self._patterns:
            if any(not _OTHER_MODEL_AFTER.match(text, m.end()) for m in pattern.finditer(text)):
                return row
        return None

    def cc_of(self, name: str | None, *, confirmed_only: bool = False) -> Version | None:
        """The compute capability NVIDIA's table lists for the GPU called ``name`` (see
        :meth:`lookup`); with ``confirmed_only``, None for a row marked unconfirmed."""
        row = self.lookup(name)
        if row is None or (confirmed_only and not row.confirmed):
            return None
        return row.cc


@dataclass(frozen=True, slots=True, kw_only=True)
class HfRule(Cited):
    """``package >= minimum`` whenever every ``when`` package is at a version in its specifier."""

    package: str  # a distribution name, or "python" for the interpreter
    minimum: Version
    when: Mapping[str, SpecifierSet]
    reason: str
    feature: str  # "4bit-load", "4bit-save", "kbit-training", "requires", ...

    def applies(self, versions: Mapping[str, Version | None]) -> bool:
        """True when every package in ``when`` is present in ``versions`` inside its range."""
        for pkg, spec in self.when.items():
            v = versions.get(pkg)
            if v is None or not spec.contains(Version(v.base_version), prereleases=True):
                return False
        return True

    def satisfied_by(self, v: Version) -> bool:
        return Version(v.base_version) >= self.minimum


@dataclass(frozen=True, slots=True, kw_only=True)
class LibraryRuntime(Cited):
    """What the wheels of ``package`` releases in ``versions`` load at run time
    (plans/runtimes.toml): the CUDA they are built with and the cuDNN major (0: none)."""

    package: str
    versions: SpecifierSet
    platforms: tuple[str, ...]  # () = every platform of the package
    cuda: Version | None  # None: the library's CUDA is not one per release (torch's variants)
    cudnn: int
    newest: Version | None  # the newest release of a library row (torch's rows have none)
    python: SpecifierSet | None  # Requires-Python of `newest`

    def on(self, platform: str | None) -> bool:
        """The row describes ``platform``'s wheels (None: any platform)."""
        return platform is None or not self.platforms or platform in self.platforms

    @property
    def target(self) -> str:
        """What a plan installs for this row: its newest release (a release past the knowledge
        base is not assumed to fit)."""
        return f"=={self.newest}"


@dataclass(frozen=True, slots=True)
class Runtimes:
    rows: tuple[LibraryRuntime, ...]

    def of(
        self, package: str, version: Version | None, platform: str | None = None
    ) -> LibraryRuntime | None:
        """The row of ``package`` that holds ``version`` (its public part) on ``platform``
        (None: any), or None."""
        if version is None:
            return None
        v = Version(version.public)
        return next(
            (
                r
                for r in self.rows
                if r.package == package and r.on(platform) and r.versions.contains(v, True)
            ),
            None,
        )

    def newest_first(self, package: str, platform: str | None = None) -> tuple[LibraryRuntime, ...]:
        rows = [r for r in self.rows if r.package == package and r.on(platform)]
        return tuple(sorted(rows, key=lambda r: _row_floor(r), reverse=True))


def _row_floor(row: LibraryRuntime) -> Version:
    return min(
        (Version(c.version) for c in row.versions if c.operator in (">=", ">", "==")),
        default=Version("0"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Knowledge:
    drivers: Drivers
    torch: TorchTable
    bnb: BnbTable
    hf: tuple[HfRule, ...]
    runtimes: Runtimes
    directory: Path

    @property
    def gpus(self) -> NvidiaGpus:
        """NVIDIA's GPU names (plans/gpus.toml), read on first use: only facts that give a GPU by
        its name alone need them, and a fleet plan of probed nodes never does (the table is a
        third of the knowledge base's load time; bench/bench_fleet.py)."""
        return _load_gpus_once(self.directory / "gpus.toml")


# --------------------------------------------------------------------------- loading


def plans_directory() -> Path:
    """The knowledge base shipped with qfix: the package data ``repair.plans`` when installed,
    else ``<repo>/plans`` of a checkout."""
    try:
        from importlib.resources import files

        candidate = Path(str(files("repair.plans")))
        if (candidate / "torch.toml").is_file():
            return candidate
    except (ImportError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parent.parent / "plans"


def read_toml(path: Path) -> dict[str, Any]:
    """Read one TOML file; a missing or malformed file raises KnowledgeError naming it."""
    label = _label(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise KnowledgeError(
            f"{label}: file not found ({path})", tip="reinstall qfix or restore the file"
        ) from None
    except OSError as e:
        raise KnowledgeError(f"{label}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise KnowledgeError(f"{label}: not valid TOML ({e})") from None


def load_knowledge(directory: Path | None = None) -> Knowledge:
    """Load and validate drivers/torch/bitsandbytes/huggingface.toml from ``directory``
    (default: :func:`plans_directory`). Cached per directory."""
    return _load(Path(directory or plans_directory()).resolve())


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> Knowledge:
    return Knowledge(
        drivers=_load_drivers(directory / "drivers.toml"),
        torch=_load_torch(directory / "torch.toml"),
        bnb=_load_bnb(directory / "bitsandbytes.toml"),
        hf=_load_hf(directory / "huggingface.toml"),
        runtimes=_load_runtimes(directory / "runtimes.toml"),
        directory=directory,
    )


# --------------------------------------------------------------------------- citation keys

# A citation key: a source of compat-facts (S1..S29, S18b), a section key with a number (A1..C6)
# or a failure case (F02..F49). Bare section letters (A..D) count only right after
# "compat-facts", because torch.toml also uses single letters as its own arch_source legend.
_CITED_KEY = re.compile(r"(?<![\w#/.-])(S\d{1,3}b?|[A-D]\d|F\d{2})(?!\w)")
_COMPAT_RUN = re.compile(r"compat-facts((?:(?:[ ,/]+|\s+and\s+)[A-D]\d?(?![\w.]))+)")
_SECTION = re.compile(r"[A-D]\d?")
# a linter's code list after "noqa:": its S-codes are rule names, not citations
_NOQA = re.compile(r"#\s*noqa:\s*[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*")
# An issue or pull request: owner/name#N, or short#N with a short name of [repositories].
_ISSUE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)?[a-z][\w.-]*)#(\d+)")
REFERENCE_KINDS = ("source", "section", "case")


@dataclass(frozen=True, slots=True)
class Reference:
    """What a citation key stands for (plans/sources.toml)."""

    key: str
    kind: str  # source | section | case | issue
    text: str


@dataclass(frozen=True, slots=True)
class Sources:
    """The table of citation keys and the short names of issue references."""

    references: tuple[Reference, ...]
    repositories: Mapping[str, str]

    def get(self, key: str) -> Reference | None:
        """The reference of ``key``: a listed key, or an issue reference (bnb#1610,
        owner/name#N) as its GitHub address; None when it does not resolve."""
        for r in self.references:
            if r.key == key:
                return r
        m = _ISSUE.fullmatch(key)
        if m is None:
            return None
        repo = m.group(1) if "/" in m.group(1) else self.repositories.get(m.group(1))
        if repo is None:
            return None
        url = f"https://github.com/{repo}/issues/{m.group(2)}"
        # a short name (bnb#1610) is spelled out; a full one would only be said twice
        return Reference(
            key, "issue", url if key == f"{repo}#{m.group(2)}" else f"{repo}#{m.group(2)}: {url}"
        )

    def resolve(self, text: str) -> tuple[Reference, ...]:
        """The references of every key ``text`` cites, in order, each once; KnowledgeError for a
        key that does not resolve."""
        out: dict[str, Reference] = {}
        for key in cited_keys(text):
            ref = self.get(key)
            if ref is None:
                raise KnowledgeError(f"citation {key!r} is not in plans/sources.toml")
            out.setdefault(key, ref)
        return tuple(out.values())


def cited_keys_in_code(text: str) -> tuple[str, ...]:
    """:func:`cited_keys` of a source file, its linters' code lists (``# noqa: S603``) left out."""
    return cited_keys(_NOQA.sub(lambda m: " " * len(m.group()), text))


def cited_keys(text: str) -> tuple[str, ...]:
    """The citation keys in ``text``, in the order they appear (see _CITED_KEY, _ISSUE)."""
    found: list[tuple[int, str]] = [(m.start(), m.group(1)) for m in _CITED_KEY.finditer(text)]
    for run in _COMPAT_RUN.finditer(text):
        found += [(run.start(1) + m.start(), m.group()) for m in _SECTION.finditer(run.group(1))]
    found += [(m.start(), m.group()) for m in _ISSUE.finditer(text)]
    return tuple(dict.fromkeys(k for _, k in sorted(found)))


def load_sources(directory: Path | None = None) -> Sources:
    """The citation keys of ``directory``/sources.toml (default: the shipped plans/). Cached."""
    return _load_sources(Path(directory or plans_directory()).resolve() / "sources.toml")


@functools.lru_cache(maxsize=8)
def _load_sources(path: Path) -> Sources:
    top = _top(path)
    top.text("checked")
    repos = top.table("repositories")
    for short, repo in repos.items():
        if not isinstance(repo, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            top.fail(f"repositories.{short} must be an owner/name string")
    refs: list[Reference] = []
    for i, raw in enumerate(top.tables("reference")):
        e = top.child(f"reference #{i + 1}", raw)
        ref = Reference(e.text("key"), _choice(e, "kind", REFERENCE_KINDS), e.text("text"))
        e.done()
        if not _CITED_KEY.fullmatch(ref.key) and not _SECTION.fullmatch(ref.key):
            e.fail(f"key {ref.key!r} is not a citation key (S1, A1, C, F02, ...)")
        if any(r.key == ref.key for r in refs):
            e.fail(f"duplicate key {ref.key!r}")
        refs.append(ref)
    top.done()
    return Sources(tuple(refs), MappingProxyType(dict(repos)))


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


_MISSING: Any = object()


class _Entry:
    """One TOML table being read: typed getters whose errors name the file and the entry.

    Keys that no getter asked for are an error (:meth:`done`): a typo must not pass silently.
    """

    __slots__ = ("file", "where", "data", "used")

    def __init__(self, file: str, where: str, data: object) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise KnowledgeError(f"{file}: {where}: must be a table")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def fail(self, message: str) -> NoReturn:
        prefix = f"{self.file}: {self.where}: " if self.where else f"{self.file}: "
        raise KnowledgeError(prefix + message)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            self.fail(f"{key} is missing")
        return default

    def text(self, key: str) -> str:
        return self._text(key, self.get(key))

    def opt_text(self, key: str) -> str | None:
        v = self.get(key, None)
        return None if v is None else self._text(key, v)

    def _text(self, key: str, v: object) -> str:
        if not isinstance(v, str) or not v.strip():
            self.fail(f"{key} must be a non-empty string")
        return v

    def flag(self, key: str, default: bool | None = None) -> bool:
        v = self.get(key, _MISSING if default is None else default)
        if not isinstance(v, bool):
            self.fail(f"{key} must be true or false")
        return v

    def integer(self, key: str) -> int:
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"{key} must be an integer")
        return v

    def version(self, key: str) -> Version:
        return self.to_version(key, self.text(key))

    def opt_version(self, key: str) -> Version | None:
        raw = self.opt_text(key)
        return None if raw is None else self.to_version(key, raw)

    def to_version(self, key: str, raw: str) -> Version:
        try:
            return Version(raw)
        except InvalidVersion:
            self.fail(f"{key} is not a version: {raw!r}")

    def spec(self, key: str) -> SpecifierSet:
        return self._spec(key, self.get(key))

    def opt_spec(self, key: str) -> SpecifierSet | None:
        raw = self.get(key, None)
        return None if raw is None else self._spec(key, raw)

    def _spec(self, key: str, raw: object) -> SpecifierSet:
        if not isinstance(raw, str):
            self.fail(f"{key} must be a version specifier string such as '>=2.0,<3'")
        return self.to_spec(key, raw)

    def to_spec(self, key: str, raw: str) -> SpecifierSet:
        try:
            return Range(raw)
        except InvalidSpecifier:
            self.fail(f"{key} is not a version specifier: {raw!r}")

    def strs(self, key: str, *, optional: bool = False, what: str = "strings") -> tuple[str, ...]:
        v = self.get(key, [] if optional else _MISSING)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.fail(f"{key} must be a list of {what}")
        return tuple(v)

    def archs(self, key: str) -> tuple[str, ...] | None:
        return self._names(key, _ARCH_RE, "a list of 'sm_XY' strings", nonempty=False)

    def gfx(self, key: str) -> tuple[str, ...] | None:
        return self._names(
            key, _GFX_RE, "a non-empty list of 'gfxNNN' strings (gfx + hex digits)", nonempty=True
        )

    def _names(
        self, key: str, form: re.Pattern[str], what: str, *, nonempty: bool
    ) -> tuple[str, ...] | None:
        """An optional list of names of one ``form`` (None: absent); else a failure naming
        ``what`` the key must be."""
        v = self.get(key, None)
        if v is None:
            return None
        if (
            not isinstance(v, list)
            or (nonempty and not v)
            or not all(isinstance(x, str) and form.match(x) for x in v)
        ):
            self.fail(f"{key} must be {what}")
        return tuple(v)

    def words(self, key: str) -> tuple[str, ...]:
        """A space-separated string ("118 121 124") as a tuple; absent: ()."""
        v = self.get(key, "")
        if not isinstance(v, str):
            self.fail(f"{key} must be a space-separated string such as '118 121'")
        return tuple(v.split())

    def libs(self, key: str) -> tuple[str, ...]:
        v = self.words(key)
        for tag in v:
            if not _LIB_RE.match(tag):
                self.fail(f"{key} must list library tags such as '118', not {tag!r}")
        return v

    def platforms(self, key: str, *, optional: bool = False) -> tuple[str, ...]:
        v = self.strs(key, optional=optional, what="platform keys")
        for p in v:
            if p not in PLATFORMS:
                self.fail(f"{key}: unknown platform {p!r} (known: {', '.join(PLATFORMS)})")
        return v

    def table(self, key: str, *, optional: bool = False) -> dict[str, Any]:
        v = self.get(key, {} if optional else _MISSING)
        if not isinstance(v, dict):
            self.fail(f"{key} must be a table")
        return v

    def tables(self, key: str) -> list[dict[str, Any]]:
        v = self.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            self.fail(f"{key} must be an array of tables ([[{key}]])")
        return v

    def child(self, where: str, data: object) -> _Entry:
        full = f"{self.where} {where}" if self.where else where
        return _Entry(self.file, full, data)

    def cited(self) -> dict[str, Any]:
        """The Cited fields; an unconfirmed entry (or part) must say why in `note`."""
        source = self.text("source")
        checked = self.text("checked")
        if not _DATE_RE.match(checked):
            self.fail(f"checked must be a date YYYY-MM-DD, not {checked!r}")
        confirmed = self.flag("confirmed")
        note = self.opt_text("note")
        unconfirmed = self.strs("unconfirmed", optional=True)
        if (not confirmed or unconfirmed) and note is None:
            self.fail("an unconfirmed entry needs a note saying why")
        return {
            "source": source,
            "checked": checked,
            "confirmed": confirmed,
            "note": note,
            "unconfirmed": unconfirmed,
        }

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            self.fail(f"unknown key(s): {', '.join(extra)}")


def _top(path: Path) -> _Entry:
    top = _Entry(_label(path), "", read_toml(path))
    fmt = top.integer("format")
    if fmt != FORMAT:
        top.fail(f"format {fmt} is not supported (this qfix reads format {FORMAT})")
    return top


def _driver_value(e: _Entry, key: str, confirmed: bool) -> tuple[Version | None, str]:
    raw = e.text(key)
    if raw == "N/A":
        return None, raw
    if raw == "UNCONFIRMED":
        if confirmed:
            e.fail(f"{key} is UNCONFIRMED but the entry says confirmed = true")
        return None, raw
    try:
        return DriverVersion(raw), raw
    except InvalidVersion:
        e.fail(f"{key} is not a driver version: {raw!r}")


def _driver_version(e: _Entry, key: str) -> DriverVersion:
    raw = e.text(key)
    try:
        return DriverVersion(raw)
    except InvalidVersion:
        e.fail(f"{key} is not a driver version: {raw!r}")


def _opt_driver_version(e: _Entry, key: str) -> DriverVersion | None:
    return None if e.get(key, None) is None else _driver_version(e, key)


def _load_drivers(path: Path) -> Drivers:
    top = _top(path)
    rows = _toolkit_rows(top)
    minor = _minor_compat(top)
    caveat_e = top.child("minor_compat_caveat", top.table("minor_compat_caveat"))
    caveat_text = caveat_e.text("text")
    caveat = Cited(**caveat_e.cited())
    caveat_e.done()
    changes = _arch_changes(top)
    branches = [
        DriverBranch(
            last=e.integer("last"),
            family=e.text("family"),
            archs=_arch_list(e, "archs"),
            **e.cited(),
        )
        for e in _entries(top, "branch")
    ]
    notes = [
        KnowledgeNote(id=e.text("id"), text=e.text("text"), **e.cited())
        for e in _entries(top, "note", name="id")
    ]
    top.done()
    return Drivers(
        toolkit=rows,
        minor_compat=MappingProxyType(minor),
        arch_changes=changes,
        branches=tuple(branches),
        caveat=caveat,
        minor_compat_caveat=f"{caveat_text} (source: {caveat.source})",
        notes=tuple(notes),
    )


def _entries(top: _Entry, key: str, name: str | None = None) -> Iterator[_Entry]:
    """Each table of the array ``[[key]]``, named in errors by its index (and its ``name`` field);
    once the caller has read it, a key it did not ask for is an error (``_Entry.done``)."""
    for i, t in enumerate(top.tables(key)):
        label = f"{key}[{i}]" if name is None else f"{key}[{i}] '{t.get(name, '?')}'"
        e = top.child(label, t)
        yield e
        e.done()


def _toolkit_rows(top: _Entry) -> tuple[ToolkitRow, ...]:
    """[[toolkit]]: the minimum driver of each CUDA release (compat-facts A1); one GA row each."""
    rows: list[ToolkitRow] = []
    for i, t in enumerate(top.tables("toolkit")):
        e = top.child(f"toolkit[{i}] '{t.get('label', '?')}'", t)
        cited = e.cited()
        linux, linux_raw = _driver_value(e, "linux", cited["confirmed"])
        windows, windows_raw = _driver_value(e, "windows", cited["confirmed"])
        cuda = e.version("cuda")
        if len(cuda.release) != 2:
            e.fail(f"cuda must be X.Y, not {cuda}")
        rows.append(
            ToolkitRow(
                cuda=cuda,
                label=e.text("label"),
                ga=e.flag("ga"),
                linux=linux,
                windows=windows,
                linux_raw=linux_raw,
                windows_raw=windows_raw,
                **cited,
            )
        )
        e.done()
    ga: dict[Version, int] = {}
    for row in rows:
        ga[row.cuda] = ga.get(row.cuda, 0) + int(row.ga)
    for cuda, n in ga.items():
        if n != 1:
            top.fail(f"toolkit: CUDA {cuda} needs exactly one row with ga = true (has {n})")
    return tuple(rows)


def _minor_compat(top: _Entry) -> dict[int, MinorCompat]:
    """[[minor_compat]]: the minor-version compatibility floor per CUDA major (A2)."""
    minor: dict[int, MinorCompat] = {}
    for i, t in enumerate(top.tables("minor_compat")):
        e = top.child(f"minor_compat[{i}]", t)
        mc = MinorCompat(
            major=e.integer("major"),
            linux=_driver_version(e, "linux"),
            windows=_opt_driver_version(e, "windows"),
            upper=e.opt_text("upper"),
            **e.cited(),
        )
        if mc.major in minor:
            e.fail(f"major {mc.major} appears twice")
        minor[mc.major] = mc
        e.done()
    return minor


def _arch_changes(top: _Entry) -> tuple[ArchChange, ...]:
    """[[arch_change]]: the GPU architectures each CUDA release removes or deprecates (A3)."""
    return tuple(
        ArchChange(
            cuda=e.version("cuda"),
            removed=_arch_list(e, "removed"),
            deprecated=_arch_list(e, "deprecated"),
            **e.cited(),
        )
        for e in _entries(top, "arch_change", name="cuda")
    )


def _arch_list(e: _Entry, key: str) -> tuple[str, ...]:
    v = e.archs(key)
    if v is None:
        e.fail(f"{key} is missing")
    return v


def _load_torch(path: Path) -> TorchTable:
    top = _top(path)
    releases: list[TorchRelease] = []
    for i, t in enumerate(top.tables("release")):
        e = top.child(f"release '{t.get('series', i)}'", t)
        releases.append(_torch_release(e))
        e.done()
    for a, b in zip(releases, releases[1:], strict=False):
        if b.series <= a.series:
            top.fail(f"release '{b.series}' is out of order or repeated (after '{a.series}')")
    domain: list[DomainRelease] = []
    de = top.child("domain", top.table("domain"))
    cited = de.cited()
    for package in ("torchvision", "torchaudio"):
        pe = de.child(package, de.table(package))
        for ver, raw in pe.data.items():
            pe.used.add(ver)
            if not isinstance(raw, str):
                pe.fail(f"{ver} must map to a torch specifier string ('' = no torch requirement)")
            domain.append(
                DomainRelease(
                    package=package,
                    version=pe.to_version(ver, ver),
                    torch=pe.to_spec(ver, raw),
                    **cited,
                )
            )
        pe.done()
    de.done()
    ue = top.child("cpu_unlabelled", top.table("cpu_unlabelled"))
    ue.cited()
    unlabelled: dict[str, SpecifierSet] = {}
    for platform in [k for k in ue.data if k not in ue.used]:
        if platform not in PLATFORMS:
            ue.fail(f"unknown platform {platform!r}")
        unlabelled[platform] = ue.to_spec(platform, ue.text(platform))
    ue.done()
    known_bad = tuple(_torch_known_bad(top, i, t) for i, t in enumerate(top.tables("known_bad")))
    top.done()
    return TorchTable(
        releases=tuple(releases),
        domain=tuple(domain),
        cpu_unlabelled=MappingProxyType(unlabelled),
        known_bad=known_bad,
    )


def _torch_known_bad(top: _Entry, i: int, t: dict[str, Any]) -> TorchKnownBad:
    e = top.child(f"known_bad[{i}] '{t.get('version', '?')}'", t)
    platforms = e.platforms("platforms")
    version, fixed_in = e.version("version"), e.version("fixed_in")
    if fixed_in <= version:
        e.fail(f"fixed_in {fixed_in} must be a later release than {version}")
    entry = TorchKnownBad(
        version=version,
        platforms=platforms,
        dll=e.text("dll"),
        fixed_in=fixed_in,
        why=e.text("why"),
        **e.cited(),
    )
    e.done()
    return entry


def _torch_release(e: _Entry) -> TorchRelease:
    series = e.version("series")
    if len(series.release) != 2:
        e.fail(f"series must be X.Y, not {series}")
    versions = tuple(e.to_version("versions", s) for s in e.strs("versions"))
    if not versions or list(versions) != sorted(set(versions)):
        e.fail("versions must be a non-empty ascending list without repeats")
    for v in versions:
        if v.release[:2] != series.release:
            e.fail(f"version {v} is not in series {series}")
    latest = e.version("latest")
    if latest != versions[-1]:
        e.fail(f"latest {latest} is not the newest of versions ({versions[-1]})")

    variants: list[TorchVariant] = []
    for j, vt in enumerate(e.tables("variant")):
        ve = e.child(f"variant '{vt.get('name', j)}'", vt)
        variants.append(_torch_variant(ve))
        ve.done()
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        e.fail("a variant name appears twice")

    pypi_default: dict[str, str] = {}
    for platform, name in e.table("pypi_default").items():
        if platform not in PLATFORMS:
            e.fail(f"pypi_default: unknown platform {platform!r}")
        var = next((v for v in variants if v.name == name), None)
        if var is None or platform not in var.platforms:
            e.fail(f"pypi_default: {platform} = {name!r} is not a variant listed for {platform}")
        pypi_default[platform] = name

    tags: dict[str, str] = {}
    for platform, tag in e.table("wheel_tags").items():
        if platform not in PLATFORMS or not isinstance(tag, str):
            e.fail(f"wheel_tags: {platform!r} must be a platform key with a tag string")
        tags[platform] = tag

    family: dict[Version, Family] = {}
    for ver, ft in e.table("family", optional=True).items():
        fe = e.child(f"family '{ver}'", ft)
        v = fe.to_version("family", ver)
        if v not in versions:
            fe.fail(f"{v} is not one of the versions of this release")
        family[v] = Family(fe.opt_version("torchvision"), fe.opt_version("torchaudio"))
        fe.done()
    latest_family = family.get(latest, Family(None, None))
    x86_tag = tags.get("linux-x86_64")
    return TorchRelease(
        series=series,
        latest=latest,
        versions=versions,
        python=e.spec("python"),
        pypi_default=MappingProxyType(pypi_default),
        variants=tuple(variants),
        wheel_tags=MappingProxyType(tags),
        family=MappingProxyType(family),
        torchvision=latest_family.torchvision,
        torchaudio=latest_family.torchaudio,
        glibc_min=glibc_of_tag(x86_tag) if x86_tag else None,
        glibc_build=e.opt_version("glibc_build"),
        **e.cited(),
    )


def _torch_variant(e: _Entry) -> TorchVariant:
    name = e.text("name")
    cuda = e.opt_version("cuda")
    rocm = e.opt_text("rocm")
    if cuda is not None:
        if len(cuda.release) != 2 or name != f"cu{cuda.major}{cuda.minor}":
            e.fail(f"cuda {cuda} does not match the name {name!r} (cu118 <-> cuda = '11.8')")
    elif rocm is not None:
        if name != f"rocm{rocm}":
            e.fail(f"rocm {rocm!r} does not match the name {name!r} (rocm6.2 <-> rocm = '6.2')")
    elif name not in ("cpu", "xpu"):
        e.fail(f"name {name!r} needs cuda = 'X.Y' (cuXY) or rocm = 'X.Y' (rocmX.Y)")
    platforms = frozenset(e.platforms("platforms"))
    if not platforms:
        e.fail("platforms must not be empty")
    arch_list = e.archs("arch_list")
    arch_confirmed = e.flag("arch_confirmed", False)
    arch_measured = e.flag("arch_measured", False)
    if arch_list is None and (arch_confirmed or arch_measured):
        e.fail("arch_confirmed / arch_measured without an arch_list")
    gfx = e.gfx("gfx")
    gfx_source = e.opt_text("gfx_source")
    if gfx is not None and (rocm is None or gfx_source is None):
        e.fail("gfx is for a ROCm variant (rocm = 'X.Y') and needs a gfx_source")
    cited = e.cited()
    for part in cited["unconfirmed"]:
        kind, _, platform = part.partition(".")
        if part != "index" and (kind not in ("platforms", "arch") or platform not in platforms):
            e.fail(f"unconfirmed: {part!r} must be 'index', 'platforms.<key>' or 'arch.<key>'")
    return TorchVariant(
        name=name,
        cuda=cuda,
        rocm=rocm,
        platforms=platforms,
        arch_list=arch_list,
        arch_confirmed=arch_confirmed,
        arch_measured=arch_measured,
        arch_source=e.opt_text("arch_source"),
        arch_aarch64=e.archs("arch_aarch64"),
        gfx=gfx,
        gfx_source=gfx_source,
        **cited,
    )


@functools.lru_cache(maxsize=8)
def _load_gpus_once(path: Path) -> NvidiaGpus:
    return _load_gpus(path)


def _load_gpus(path: Path) -> NvidiaGpus:
    top = _top(path)
    rows: list[NvidiaGpu] = []
    seen: set[str] = set()
    for i, t in enumerate(top.tables("nvidia_gpu")):
        e = top.child(f"nvidia_gpu[{i}] '{t.get('name', '?')}'", t)
        name = e.text("name")
        key = gpu_words(name)
        if key in seen:
            e.fail("name is repeated")
        seen.add(key)
        rows.append(NvidiaGpu(name=name, cc=e.version("cc"), **e.cited()))
        e.done()
    top.done()
    return NvidiaGpus(tuple(rows))


def _load_bnb(path: Path) -> BnbTable:
    top = _top(path)
    loaders: dict[str, BnbLoader] = {}
    for name, t in top.table("loader").items():
        e = top.child(f"loader '{name}'", t)
        if name not in BNB_LOADERS:
            e.fail(f"unknown loader (known: {', '.join(BNB_LOADERS)})")
        loaders[name] = BnbLoader(name=name, text=e.text("text"), **e.cited())
        e.done()
    overrides: dict[str, BnbOverride] = {}
    for name, t in top.table("override").items():
        e = top.child(f"override '{name}'", t)
        if name not in BNB_OVERRIDES:
            e.fail(f"unknown override style (known: {', '.join(BNB_OVERRIDES)})")
        overrides[name] = BnbOverride(
            name=name,
            text=e.text("text"),
            empty_disables=e.flag("empty_disables"),
            digits_only=e.flag("digits_only"),
            **e.cited(),
        )
        e.done()
    band_tuple = tuple(
        SassBand(cuda=e.spec("cuda"), sass=_arch_list(e, "sass"), ptx=_arch_list(e, "ptx"), **sc)
        for e, sc in _scoped(top, "sass")
    )
    conflicts = [
        BnbConflict(
            torch=e.spec("torch"),
            torch_build=_choice(e, "torch_build", ("cuda",)) if "torch_build" in e.data else None,
            proven_by=e.text("proven_by") if "proven_by" in e.data else None,
            why=e.text("why"),
            **sc,
        )
        for e, sc in _scoped(top, "conflict")
    ]
    rocm_targets = tuple(
        RocmTargets(rocm=e.spec("rocm"), targets=frozenset(e.strs("targets")), **sc)
        for e, sc in _scoped(top, "rocm_targets")
    )
    gpu_targets: list[GpuTarget] = []
    for i, t in enumerate(top.tables("gpu_target")):
        e = top.child(f"gpu_target[{i}] '{t.get('name', '?')}'", t)
        gpu_targets.append(GpuTarget(name=e.text("name"), gfx=e.text("gfx"), **e.cited()))
        e.done()
    releases: list[BnbRelease] = []
    for i, t in enumerate(top.tables("release")):
        e = top.child(f"release '{t.get('version', i)}'", t)
        rel = _bnb_release(e, band_tuple)
        if rel.loader not in loaders or rel.override not in overrides:
            e.fail(f"loader {rel.loader!r} / override {rel.override!r} is not described above")
        releases.append(rel)
        e.done()
    for a, b in zip(releases, releases[1:], strict=False):
        if b.version <= a.version:
            top.fail(f"release '{b.version}' is out of order or repeated (after '{a.version}')")
    top.done()
    return BnbTable(
        releases=tuple(releases),
        loaders=MappingProxyType(loaders),
        overrides=MappingProxyType(overrides),
        sass_bands=band_tuple,
        conflicts=tuple(conflicts),
        rocm_targets=rocm_targets,
        gpu_targets=tuple(gpu_targets),
    )


def _scoped(top: _Entry, key: str) -> Iterator[tuple[_Entry, dict[str, Any]]]:
    """Each [[key]] table of plans/bitsandbytes.toml that applies to a range of releases on some
    platforms ([[sass]], [[conflict]]), with those fields and its citation read; the caller reads
    the rest, then the entry is checked for unknown keys."""
    for i, t in enumerate(top.tables(key)):
        e = top.child(f"{key}[{i}] '{t.get('releases', '?')}'", t)
        yield (
            e,
            {
                "releases": e.spec("releases"),
                "platforms": frozenset(e.platforms("platforms")),
                **e.cited(),
            },
        )
        e.done()


def _choice(e: _Entry, key: str, allowed: tuple[str, ...]) -> str:
    v = e.text(key)
    if v not in allowed:
        e.fail(f"{key} must be one of {', '.join(allowed)}, not {v!r}")
    return v


def _bnb_release(e: _Entry, bands: tuple[SassBand, ...]) -> BnbRelease:
    version = e.version("version")
    builds: dict[str, BnbBuild] = {}
    for platform, bt in e.table("builds", optional=True).items():
        be = e.child(f"build '{platform}'", bt)
        if platform not in PLATFORMS:
            be.fail(f"unknown platform (known: {', '.join(PLATFORMS)})")
        builds[platform] = _bnb_build(be, platform, version, bands)
        be.done()
    if not builds:
        e.fail("builds is missing or empty")
    also = e.platforms("also_installs_on", optional=True)
    if also:
        # 0.32.0-0.42.0: one py3-none-any file that pip installs everywhere; its .so files are
        # for Linux x86_64 only (bnb-wheels.md), so the copies elsewhere are not native.
        base = builds.get("linux-x86_64")
        if base is None or base.dist != "any":
            e.fail("also_installs_on needs a py3-none-any build for linux-x86_64")
        for platform in also:
            if platform in builds:
                e.fail(f"also_installs_on: {platform} also has its own build")
            builds[platform] = BnbBuild(
                platform=platform,
                file=base.file,
                size_bytes=base.size_bytes,
                dist=base.dist,
                tag=base.tag,
                cuda_libs=base.cuda_libs,
                nocublaslt=base.nocublaslt,
                cpu_lib=base.cpu_lib,
                rocm_libs=base.rocm_libs,
                xpu_libs=base.xpu_libs,
                native=False,
                glibc_min=None,
                macos_min=None,
                lib_glibc_min=_EMPTY,
                note="py3-none-any wheel: its native libraries are Linux x86_64 .so files",
                release=base.release,
                bands=base.bands,
            )
    known_bad = e.opt_text("known_bad")
    kind = e.opt_text("known_bad_kind")
    if (known_bad is None) != (kind is None):
        e.fail("known_bad and known_bad_kind go together")
    if kind is not None and kind not in BNB_KNOWN_BAD_KINDS:
        e.fail(f"known_bad_kind must be one of {', '.join(BNB_KNOWN_BAD_KINDS)}, not {kind!r}")
    below_cc = e.opt_version("known_bad_below_cc")
    if (below_cc is not None) != (kind == "old-gpu-crash"):
        e.fail('known_bad_below_cc goes with known_bad_kind = "old-gpu-crash", and only with it')
    return BnbRelease(
        version=version,
        python=e.opt_spec("python"),
        torch=e.opt_spec("torch"),
        builds=MappingProxyType({p: builds[p] for p in PLATFORMS if p in builds}),
        has_4bit=e.flag("has_4bit"),
        cpu_4bit=e.flag("cpu_4bit"),
        loader=_choice(e, "loader", BNB_LOADERS),
        override=_choice(e, "override", BNB_OVERRIDES),
        override_env=e.opt_text("override_env"),
        missing_lib=_choice(e, "missing_lib", BNB_MISSING_LIB),
        nocublaslt_below=e.opt_version("nocublaslt_below"),
        sdist=e.flag("sdist"),
        known_bad=known_bad,
        known_bad_kind=kind,
        known_bad_below_cc=below_cc,
        **e.cited(),
    )


def _bnb_build(e: _Entry, platform: str, release: Version, bands: tuple[SassBand, ...]) -> BnbBuild:
    size = e.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        e.fail("size must be a positive integer (bytes)")
    tag = e.text("tag")
    cuda_libs = e.libs("cuda")
    lib_glibc: dict[str, Version] = {}
    for lib, raw in e.table("lib_glibc", optional=True).items():
        if lib not in cuda_libs or not isinstance(raw, str):
            e.fail(f"lib_glibc: {lib!r} must be one of this build's cuda libraries, with a version")
        lib_glibc[lib] = e.to_version(f"lib_glibc.{lib}", raw)
    return BnbBuild(
        platform=platform,
        file=f"bitsandbytes-{release}-py3-none-{tag}.whl",
        size_bytes=size,
        dist="any" if tag == "any" else "platform",
        tag=tag,
        cuda_libs=cuda_libs,
        nocublaslt=e.libs("nocublaslt"),
        cpu_lib=e.flag("cpu"),
        rocm_libs=e.libs("rocm"),
        xpu_libs=e.words("xpu"),
        native=e.flag("native"),
        glibc_min=glibc_of_tag(tag),
        macos_min=macos_of_tag(tag),
        lib_glibc_min=MappingProxyType(lib_glibc),
        note=e.opt_text("note"),
        release=release,
        bands=bands,
        glibcxx_min=e.opt_version("glibcxx"),
    )


def _load_hf(path: Path) -> tuple[HfRule, ...]:
    top = _top(path)
    rules: list[HfRule] = []
    for i, t in enumerate(top.tables("rule")):
        e = top.child(f"rule[{i}] '{t.get('package', '?')} >= {t.get('minimum', '?')}'", t)
        when: dict[str, SpecifierSet] = {}
        for pkg, raw in e.table("when").items():
            if not isinstance(raw, str):
                e.fail(f"when.{pkg} must be a version specifier string")
            when[pkg] = e.to_spec(f"when.{pkg}", raw)
        rules.append(
            HfRule(
                package=e.text("package"),
                minimum=e.version("minimum"),
                when=MappingProxyType(when),
                reason=e.text("reason"),
                feature=e.text("feature"),
                **e.cited(),
            )
        )
        e.done()
    top.done()
    return tuple(rules)


def _load_runtimes(path: Path) -> Runtimes:
    top = _top(path)
    rows: list[LibraryRuntime] = []
    for i, t in enumerate(top.tables("library")):
        e = top.child(f"library[{i}] '{t.get('package', '?')} {t.get('versions', '?')}'", t)
        cuda = e.opt_version("cuda")
        cudnn = e.integer("cudnn")
        if cudnn < 0:
            e.fail("cudnn must be a cuDNN major, or 0 for none")
        versions = e.spec("versions")
        if not any(c.operator in (">=", "==") for c in versions):
            e.fail("versions needs a lower bound (>=)")
        newest = e.opt_version("newest")
        if cuda is not None and (newest is None or newest not in versions):
            e.fail("a library row (with cuda) needs newest, a release inside versions")
        platforms = e.platforms("platforms", optional=True)
        rows.append(
            LibraryRuntime(
                package=e.text("package"),
                versions=versions,
                platforms=platforms,
                cuda=cuda,
                cudnn=cudnn,
                newest=newest,
                python=e.opt_spec("python"),
                **e.cited(),
            )
        )
        e.done()
    top.done()
    return Runtimes(tuple(rows))


# --------------------------------------------------------------------------- helpers


def _system(system: str) -> str | None:
    return _SYSTEMS.get(system.strip().lower().split("-")[0]) if system else None


def _archs(archs: Iterable[str] | None, prefix: str) -> tuple[Version, ...]:
    if archs is None:
        return ()
    return tuple(arch_version(a) for a in archs if a.startswith(prefix + "_"))


def _loose_version(version: Version | str) -> Version | None:
    if isinstance(version, Version):
        return version
    try:
        return Version(version.strip())
    except (InvalidVersion, AttributeError):
        m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(version))
        if m is None:
            return None
        return Version(".".join(g for g in m.groups() if g is not None))


def pick_lib(tags: Iterable[str], want: Version, parse: Any, loader: str) -> str | None:
    """Exact tag for ``want``; with the same-major fallback (0.50+): the highest shipped of the
    same major below, else the lowest above; never another major (compat-facts C4)."""
    want = parsed_version(f"{want.major}.{want.minor}")
    versions = {t: parse(t) for t in tags}
    for tag, v in versions.items():
        if v == want:
            return tag
    if loader != "same-major-fallback":
        return None
    same = sorted((v, t) for t, v in versions.items() if v.major == want.major)
    lower = [t for v, t in same if v < want]
    if lower:
        return lower[-1]
    higher = [t for v, t in same if v > want]
    return higher[0] if higher else None
