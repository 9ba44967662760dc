"""A typed view of Facts for the pure core: versions parsed once, unknowns kept as None.

Also the small pieces of reasoning that diagnose and the planner share: can this driver run that
CUDA runtime, does that arch list cover this GPU, which native library would bitsandbytes load.
Pure: no process, no network, no torch import.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from packaging.version import InvalidVersion, Version

from .containers import GENERIC
from .distros import distro_of, load_distros
from .facts import Facts, Gpu, listed_installed
from .knowledge import (
    BnbBuild,
    BnbRelease,
    Knowledge,
    TorchKnownBad,
    lib_cuda,
    parsed_version,
    pick_lib,
    platform_key,
)
from .signatures import Implied, implied_by, implied_from_facts
from .wheeltags import pip_may_not_know, refused_bound, tag_need

# From 0.43.1 bitsandbytes picks its library with cuda_specs from torch.version.cuda and imports
# without CUDA; the loaders before are fragile (compat-facts C1, C4, C6; S23 issue_patterns).
MODERN_BNB_LOADER = Version("0.43.1")

# Distribution names that provide the `bitsandbytes` module besides bitsandbytes itself
# (obsolete forks and per-CUDA package names; failure-cases.md, "Stale or duplicate bnb installs").
BNB_FORK_PATTERN = re.compile(r"^bitsandbytes[-_](cuda\d+|windows.*|rocm.*)$", re.IGNORECASE)

# Jetson (L4T) evidence: the integrated GPUs' compute capabilities named in compat-facts (Orin
# sm_87, C1 / bnb#1930; Thor sm_101, renamed sm_110 in CUDA 13, A3), their names, the L4T release.
JETSON_CCS = (Version("8.7"), Version("10.1"), Version("11.0"))
JETSON_TEXT = re.compile(r"\b(orin|xavier|jetson|thor|tegra|nvgpu|l4t|jetpack)\b", re.IGNORECASE)
# Kepler (compute capability 3.x): bitsandbytes dropped its pip binaries in 0.39.0, the first
# release with 4-bit (compat-facts C1/C3, S24 CHANGELOG); only a source build serves it.
KEPLER_BELOW = Version("5.0")
FIRST_4BIT = Version("0.39.0")  # compat-facts C1 (S24): Linear4bit, NF4/FP4
OBJDUMP_S37_FROM = Version("0.37.0")  # S37 read the wheels from 0.37.0, S75 the older ones
FIRST_CPU_4BIT = Version("0.46.0")  # compat-facts C5 (S23 backends/cpu/ops.py)


@functools.lru_cache(maxsize=1024)  # pure; ~12,000 calls for 39 plans (bench/bench_fleet.py)
def parse_version(text: str | None) -> Version | None:
    """A packaging Version, or None for an absent or unparseable string (never raises).

    Accepts what real environments report: '1.12.1+cu113', '2.5.0a0+872d972e41.nv24.08',
    '0.41.3.post2', '470.256.02', '3.9'.
    """
    if text is None:
        return None
    try:
        return Version(text.strip())
    except InvalidVersion:
        m = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
        if not m:
            return None
        try:
            return Version(m.group(1))
        except InvalidVersion:
            return None


def public(v: Version) -> Version:
    """The version without its local label: 2.1.0+cu121 -> 2.1.0."""
    return parsed_version(v.public)


def series(v: Version) -> Version:
    """major.minor of a version: 2.7.1 -> 2.7."""
    return parsed_version(f"{v.major}.{v.minor}")


@functools.lru_cache(maxsize=256)  # pure, called ~19,000 times for 39 plans (bench_fleet)
def cuda_variant_name(cuda: Version) -> str:
    """The PyTorch index's folder and label for a CUDA version: 12.1 -> "cu121"."""
    return f"cu{cuda.major}{cuda.minor}"


def cuda_from_tag(tag: str) -> Version | None:
    """'118' -> 11.8, '121' -> 12.1, '100' -> 10.0 (torch/bitsandbytes tags: major + 1 digit)."""
    if not tag.isdigit() or len(tag) < 2:
        return None
    return parsed_version(f"{int(tag[:-1])}.{tag[-1]}")


# --------------------------------------------------------------------------- GPU architectures


@functools.lru_cache(maxsize=256)  # pure, called ~15,000 times for 39 plans (bench_fleet)
def parse_arch(arch: str) -> tuple[str, Version, bool] | None:
    """'sm_86' -> ('sm', 8.6, False); 'compute_90' -> ('compute', 9.0, False); 'sm_90a' -> arch-
    specific (not forward compatible). None for anything else."""
    m = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch.strip())
    if not m:
        return None
    return m.group(1), Version(f"{int(m.group(2))}.{m.group(3)}"), bool(m.group(4))


def arch_coverage(arch_list: Iterable[str], cc: Version) -> str | None:
    """How a build with ``arch_list`` runs on a GPU of compute capability ``cc``.

    'sass' when it carries SASS the GPU can run (same major, minor <= the GPU's: sm_80 runs on
    8.6 and 8.9 -- NVIDIA's binary compatibility within a major), 'ptx' when only PTX of a lower or
    equal capability can be JIT-compiled for it, None when neither.
    """
    best: str | None = None
    for a in arch_list:
        parsed = parse_arch(a)
        if parsed is None:
            continue
        kind, v, specific = parsed
        if kind == "sm":
            if (specific and v == cc) or (not specific and v.major == cc.major and v <= cc):
                return "sass"
        elif v <= cc:
            best = "ptx"
    return best


def sass_ccs_cover(ccs: Iterable[Version], cc: Version) -> bool:
    """A list of SASS capabilities (bitsandbytes build targets) covers GPU ``cc``."""
    return any(v.major == cc.major and v <= cc for v in ccs)


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class View:
    """The facts with versions parsed and unknowns as None, plus shared derived questions."""

    facts: Facts
    platform: str | None
    system: str | None
    python: Version | None
    glibc: Version | None
    driver: Version | None
    driver_cuda: Version | None
    driver_found: bool | None
    gpus: tuple[Gpu, ...] | None  # NVIDIA GPUs; None = unknown
    amd: bool
    torch_installed: bool | None  # None = unknown
    torch: Version | None
    torch_cuda: Version | None
    torch_hip: str | None
    torch_cpu_build: bool | None
    bnb_installed: bool | None
    bnb: Version | None
    packages_complete: bool
    platform_assumed: bool = False
    torch_build_assumed: str | None = None
    # What an error message proves (plans/signatures.toml): version ranges, build properties.
    implied: Implied = Implied()
    # The driver answers but reports no CUDA level ("CUDA Version: N/A"; NVML's CUDA-version
    # query failed): see driver_cuda_unavailable.
    driver_cuda_na: bool = False
    # torch's CUDA was read from what bitsandbytes printed (printed_torch_cuda), not reported
    torch_cuda_printed: bool = False
    # glibc not reported but inferred from the OS release (plans/distros.toml): its label
    glibc_from: str | None = None
    # the newest GLIBCXX_ of the libstdc++ the loader finds first, where known: measured in the
    # target process (host.libstdcxx: what it loads, a conda env's own included), else the
    # system's inferred from the OS release (never in a conda env, whose own lib/ comes first)
    glibcxx: Version | None = None
    glibcxx_from: str | None = None  # the OS release it was inferred from
    glibcxx_measured: bool = False
    glibcxx_path: str | None = None  # the file the target process mapped, when measured
    conda: bool = False
    # A bitsandbytes wheel pip refused here (its platform tag, from the error text) and what that
    # proves where pip knows the tag's form (repair/wheeltags.py): glibc or macOS below a version.
    refused_tag: str | None = None
    glibc_below: Version | None = None
    macos_below: Version | None = None
    # GPUs the facts gave by name only, whose compute capability comes from NVIDIA's table
    # (plans/gpus.toml, S106): (name, compute capability) each, said in plan.unknown
    cc_inferred: tuple[tuple[str, str], ...] = ()
    # the listed AMD GPUs' LLVM targets (repair.planner.amd_gfx), read once; None: not read (a
    # view made without the knowledge base)
    amd_targets: tuple[str, ...] | None = None
    # The container engine the host probe named (host.container: docker, podman, kubernetes,
    # lxc, ...), else the one a report's OS description names ("Ubuntu 22.04 (Docker
    # container)", "Google Colab"); None where none is known. Read once, in make_view.
    container: str | None = None

    def torch_without_rocm(self) -> str | None:
        """ "a CUDA 12.1 build" / "a CPU-only build" / "not a ROCm build" where the facts show
        torch is not a ROCm build (its CUDA version, its CPU label, a stated null
        torch.version.hip), or it is the suspect (torch_not_rocm_suspected), else None: on an
        AMD host such a torch cannot use the GPU."""
        if self.torch_hip:
            return None
        if self.torch_cuda is not None:
            return f"a CUDA {self.torch_cuda} build"
        if self.torch_cpu_build:
            return "a CPU-only build"
        t = self.facts.torch
        if self.torch_installed and t is not None and t.hip_stated and t.error is None:
            return "not a ROCm build (torch.version.hip is None)"
        if self.torch_not_rocm_suspected:
            return "most likely not a ROCm build"
        return None

    @property
    def torch_not_rocm_suspected(self) -> bool:
        """On an AMD host, torch installed at a build the facts do not give, and
        torch.cuda.is_available() False (the facts, or an error text that proves it): not a
        ROCm build is the likeliest cause. pip's torch from PyPI is never one (ROCm builds come
        only from PyTorch's rocmX.Y index or AMD's, plans/torch.toml), and an installer's
        `--extra-index-url` lets pip prefer PyPI's build. Not where a container image brings
        its own torch, nor where the text shows a HIP library or fault (a ROCm torch), nor on a
        Mac (no torch there is ROCm: it is the platform) or under WSL (AMD's own wheels serve
        it), nor where the AMD GPUs' LLVM targets are not known (an integrated "AMD Radeon
        Graphics" beside an unlisted NVIDIA GPU reads the same)."""
        t = self.facts.torch
        h = self.facts.host
        return (
            self.rocm
            and bool(self.amd_targets)
            and self.system == "Linux"
            and not (h is not None and h.wsl)
            and self.torch_installed is True
            and not self.torch_hip
            and self.torch_cuda is None
            and self.torch_cpu_build is None
            and not (t is not None and (t.hip_stated or t.arch_list or t.error))
            and self.container is None
            and not self.implied.rocm
            and (
                (t is not None and t.cuda_available is False) or self.implied.torch_cuda_unavailable
            )
        )

    def glibc_short_of(self, need: Version | None) -> bool:
        """Whether this host's glibc is known to be below ``need``: the reported or inferred
        glibc, else the bound a refused wheel proves."""
        if need is None:
            return False
        if self.glibc is not None:
            return self.glibc < need
        return self.glibc_below is not None and need >= self.glibc_below

    @property
    def refusal_by_known_glibc(self) -> bool:
        """pip refused a manylinux wheel whose glibc floor is above this host's reported or
        inferred glibc (glibc 2.17 beside manylinux_2_24): the glibc explains the refusal,
        whatever pip's version."""
        need = tag_need(self.refused_tag.split(".")[0]) if self.refused_tag else None
        return need is not None and need.kind == "glibc" and self.glibc_short_of(need.version)

    @property
    def refusal_explained(self) -> bool:
        """What the host is explains pip's refusal of a bitsandbytes wheel: a glibc or macOS
        bound the refusal proves (pip known to read the tag), or the host's known glibc below the
        tag's floor. Otherwise pip may only be too old for the tag's form (S71)."""
        return (
            self.glibc_below is not None
            or self.macos_below is not None
            or self.refusal_by_known_glibc
        )

    def macos_short_of(self, need: Version | None) -> bool:
        """Whether this Mac is known to run a macOS below ``need`` (a refused wheel's bound)."""
        return need is not None and self.macos_below is not None and need >= self.macos_below

    @property
    def ld_library_path_unset(self) -> bool:
        """Whether the facts show LD_LIBRARY_PATH unset or empty (a probe's env section names
        it; a report without it says nothing)."""
        env = self.facts.env
        return env is not None and "LD_LIBRARY_PATH" in env and not env["LD_LIBRARY_PATH"]

    @property
    def other_libc(self) -> str | None:
        """The C library the facts name where it is not glibc ("musl"), else None."""
        return other_libc(self.facts)

    @property
    def glibc_said(self) -> str:
        """This host's glibc for explanations: "2.17 (inferred from CentOS 7)", or the bound a
        refused wheel proves."""
        if self.glibc is None and self.glibc_below is not None:
            return f"below {self.glibc_below} (pip refused the {self.refused_tag} wheel here)"
        return f"{self.glibc}{self.glibc_note}"

    @property
    def glibc_note(self) -> str:
        """ " (inferred from CentOS 7)" where glibc was not reported but inferred, else ""."""
        return f" (inferred from {self.glibc_from})" if self.glibc_from else ""

    @property
    def glibcxx_said(self) -> str:
        """Where ``glibcxx`` comes from, for explanations: "measured from <the file the target
        process mapped>" or "inferred from CentOS 7"."""
        if self.glibcxx_measured:
            return f"measured from {self.glibcxx_path}" if self.glibcxx_path else "measured"
        return f"inferred from {self.glibcxx_from}"

    @property
    def ccs(self) -> tuple[Version, ...]:
        out = []
        for g in self.gpus or ():
            v = parse_version(g.compute_capability)
            if v is not None:
                out.append(v)
        return tuple(out)

    @property
    def driver_os(self) -> str:
        """The column of NVIDIA's driver tables that applies: Windows, else Linux."""
        return "Windows" if self.system == "Windows" else "Linux"

    def wants_nocublaslt(self, rel: BnbRelease | None) -> bool:
        """Whether release ``rel`` loads a *_nocublaslt library here: its loader does below
        ``nocublaslt_below`` (compute capability 7.5, up to 0.44.1; compat-facts C4)."""
        return (
            rel is not None
            and rel.nocublaslt_below is not None
            and bool(self.ccs)
            and min(self.ccs) < rel.nocublaslt_below
        )

    @property
    def has_nvidia_gpu(self) -> bool | None:
        if self.system == "Darwin":
            return False  # macOS torch wheels are CPU/MPS builds (compat-facts B1)
        if self.gpus:
            return True
        if self.driver_found:
            return True
        if self.gpus == () or self.driver_found is False:
            return False
        return None

    @property
    def rocm(self) -> bool:
        """A ROCm host: torch is a HIP build, or an AMD GPU is the GPU there is. An AMD
        integrated GPU beside an NVIDIA GPU or driver (a Ryzen laptop) with a torch that is not
        a HIP build is an NVIDIA host."""
        if self.torch_hip:
            return True
        return self.amd and not (self.gpus or self.driver_found)

    def package(self, name: str) -> Version | None:
        return parse_version(self.facts.package(name))

    def installed(self, name: str) -> bool | None:
        """Whether ``name`` is installed, as the package list says (see listed_installed)."""
        return listed_installed(self.facts, name)


def unreadable_versions(facts: Facts) -> list[tuple[str, str]]:
    """(where, text) of each version string in the facts that is not a version at all
    ("latest", "not-a-version"): parse_version reads it as unknown, and the plan says so."""
    found = [
        (f"packages.{name}", text)
        for name, text in (facts.packages or {}).items()
        if isinstance(text, str) and parse_version(text) is None
    ]
    for name, section in (("torch", facts.torch), ("bitsandbytes", facts.bitsandbytes)):
        text = section.version if section is not None else None
        if isinstance(text, str) and parse_version(text) is None:
            found.append((f"{name}.version", text))
    return found


def make_view(facts: Facts, kb: Knowledge | None = None) -> View:
    """Parse the facts once; every odd or missing value becomes None (unknown).

    With the knowledge base, a torch reported by version alone (``2.1.1``, no build) is taken to
    be the build PyPI ships for that release and platform (compat-facts B1), and that assumption
    is recorded (``torch_build_assumed``).
    """
    host = facts.host
    system = host.system if host else None
    glibc = None
    if host and host.libc and host.libc.lower().startswith("glibc"):
        glibc = parse_version(host.libc.split()[-1])
    drv = facts.driver
    gpus = None
    amd = bool(facts.extra.get("rocm"))  # an AMD host the report or an error text shows
    if facts.gpus is not None:
        # An AMD GPU by its vendor or, in a report without one, by its name (facts.gpu_vendor).
        gpus = tuple(g for g in facts.gpus if g.vendor == "nvidia" and not g.amd)
        amd = amd or any(g.amd for g in facts.gpus)
    inferred: tuple[tuple[str, str], ...] = ()
    if gpus and kb is not None:
        gpus, inferred = infer_ccs(gpus, kb)
    platform = platform_key(system, host.machine if host else None)
    assumed = False
    if platform is None and (host is None or host.machine is None):
        # A report that names no CPU: assume the common one of its OS (said in plan.unknown).
        platform = {"Windows": "windows-x86_64", "Darwin": "macos-arm64"}.get(
            system or "", "linux-x86_64"
        )
        assumed = True
    torch = _torch_view(facts, kb, platform)
    implied = implied_from_facts(facts)
    packages_complete = facts.extra.get("packages_source") == "probe"
    bnb_v, bnb_installed = _bnb_view(facts, implied, packages_complete)
    runtimes = _runtimes(facts, kb, glibc)
    printed = None
    if torch.cuda is None and not torch.hip and torch.cpu_build is not True:
        printed = printed_torch_cuda(facts, implied, bnb_v, kb)
    # torch's CUDA printed by bitsandbytes, torch.cuda.is_available() proven by its loader's
    # message, or torch's own CUDA start in the text (plans/signatures.toml): torch is installed
    # and is a CUDA build
    cuda_seen = printed is not None or (
        (implied.torch_cuda_available or implied.torch_cuda_build) and not torch.hip
    )
    refused = _refused_wheel(
        facts,
        implied.wheel_tag_refused or _first_unoffered_tag(implied, kb, platform, facts),
        system,
        runtimes.glibc,
    )
    return View(
        facts=facts,
        platform=platform,
        platform_assumed=assumed,
        torch_build_assumed=torch.build_assumed,
        system=system,
        python=parse_version(facts.python.version) if facts.python else None,
        driver=parse_version(drv.version) if drv else None,
        driver_cuda=parse_version(drv.cuda) if drv else None,
        driver_found=drv.found if drv else None,
        gpus=gpus,
        amd=amd,
        torch_installed=True if cuda_seen else torch.installed,
        torch=torch.version,
        torch_cuda=torch.cuda or printed,
        torch_hip=torch.hip,
        torch_cpu_build=False if cuda_seen and torch.cpu_build is None else torch.cpu_build,
        bnb_installed=bnb_installed,
        bnb=bnb_v,
        packages_complete=packages_complete,
        implied=implied,
        driver_cuda_na=driver_cuda_unavailable(facts),
        **runtimes._asdict(),
        torch_cuda_printed=printed is not None,
        cc_inferred=inferred,
        amd_targets=None if kb is None else amd_targets(facts, kb),
        container=_container(facts),
        **refused,
    )


def amd_targets(facts: Facts, kb: Knowledge) -> tuple[str, ...]:
    """The LLVM targets of the AMD GPUs the facts list: as ROCm's torch reported them (the deep
    probe), else where their names tell (S91)."""
    return tuple(
        dict.fromkeys(
            g
            for gpu in facts.gpus or ()
            if gpu.amd and (g := kb.bnb.gfx_of(gpu.gfx) or kb.bnb.gfx_of(gpu.name))
        )
    )


def infer_ccs(
    gpus: tuple[Gpu, ...], kb: Knowledge
) -> tuple[tuple[Gpu, ...], tuple[tuple[str, str], ...]]:
    """NVIDIA GPUs with a name and no compute capability get the one NVIDIA's table lists for
    that name (plans/gpus.toml, S106; confirmed rows only); a reported value always wins. Returns
    the GPUs and the (name, compute capability) pairs that were inferred."""
    out: list[Gpu] = []
    said: list[tuple[str, str]] = []
    for g in gpus:
        if not g.compute_capability and g.name:
            cc = kb.gpus.cc_of(g.name, confirmed_only=True)
            if cc is not None:
                g = dataclasses.replace(g, compute_capability=str(cc))
                said.append((g.name or "", str(cc)))
        out.append(g)
    return tuple(out), tuple(said)


def _bnb_view(
    facts: Facts, implied: Implied, packages_complete: bool
) -> tuple[Version | None, bool | None]:
    """bitsandbytes' version and whether it is installed (None: unknown)."""
    b = facts.bitsandbytes
    bnb_v = parse_version((b.version if b else None) or facts.package("bitsandbytes"))
    if bnb_v is None and not listed_installed(facts, "bitsandbytes"):
        # An obsolete fork as the only copy (bitsandbytes-windows 0.37.5): it provides the
        # `bitsandbytes` module and follows upstream's numbering (failure-cases.md, stale forks).
        bnb_v = _fork_version(facts)
    native = b is not None and bool(b.native_libs)
    installed = True if bnb_v is not None or native else listed_installed(facts, "bitsandbytes")
    # the target's Python could not import it (the error text): that wins over a report that
    # lists bitsandbytes without a version, never over a probe's list or a version
    if implied.bnb_absent and bnb_v is None and not native and not packages_complete:
        installed = False
    return bnb_v, installed


def _first_unoffered_tag(
    implied: Implied, kb: Knowledge | None, platform: str | None, facts: Facts
) -> str | None:
    """pip's index offered bitsandbytes only up to some version here (its "from versions:"
    list, plans/signatures.toml): the platform tag of the first newer release of the knowledge
    base, which pip then refused here as it would the wheel itself. None where that release's
    Requires-Python may be the reason, or its file is untagged (S86)."""
    offered = [parse_version(v) for v in (implied.bnb_index_versions or "").split(",")]
    known = [v for v in offered if v is not None]
    if not known or kb is None or platform is None:
        return None
    newest = max(known)
    python = parse_version(facts.python.version) if facts.python else None
    for r in kb.bnb.releases:
        if r.version <= newest:
            continue
        if r.python is not None and (python is None or not r.admits_python(python)):
            return None  # pip lists no release whose Requires-Python fails: not the tag, maybe
        build = r.builds.get(platform)
        return build.tag if build is not None and build.tag != "any" else None
    return None


def _refused_wheel(
    facts: Facts, tag: str | None, system: str | None, glibc: Version | None
) -> dict[str, Any]:
    """What a bitsandbytes wheel pip refused proves (repair/wheeltags.py): a bound on glibc or
    macOS, only where pip is known to know the tag's form (>= 20.3 for manylinux_X_Y and macOS
    11+, S71) and the tag is for this host's CPU; the reported glibc wins."""
    if not tag:
        return {}
    out: dict[str, Any] = {"refused_tag": tag}
    if pip_may_not_know(tag, parse_version(facts.package("pip"))):
        return out
    interp = facts.extra.get("interpreter")
    if isinstance(interp, dict) and interp.get("bits") == 32:
        return out  # a 32-bit Python on a 64-bit kernel reports the kernel's CPU
    if other_libc(facts) is not None:
        return out  # musl (Alpine): pip refuses every manylinux tag, whatever the version
    bound = refused_bound(tag, facts.host.machine if facts.host else None)
    if bound is None:
        return out
    if bound.kind == "glibc" and system in (None, "Linux") and glibc is None:
        out["glibc_below"] = bound.version
    elif bound.kind == "macos" and system in (None, "Darwin"):
        out["macos_below"] = bound.version
    return out


def other_libc(facts: Facts) -> str | None:
    """The C library ``host.libc`` names where it is not glibc ("musl"), else None."""
    libc = (facts.host.libc or "") if facts.host else ""
    return libc if libc and not libc.lower().startswith("glibc") else None


# From 0.40.1 bitsandbytes keys its library on torch.version.cuda (compat-facts C4, S24).
TORCH_KEYED_LOADER = Version("0.40.1")


def printed_torch_cuda(
    facts: Facts, implied: Implied, bnb: Version | None, kb: Knowledge | None
) -> Version | None:
    """torch's CUDA as a bitsandbytes message printed it (plans/signatures.toml), where the
    facts do not state it: "PyTorch settings found: CUDA_VERSION=121" is torch.version.cuda; the
    library tag the loader wanted is torch's CUDA only for a loader keyed on it (>= 0.40.1,
    the reported version or every release of the range the message proves) and without a
    BNB_CUDA_VERSION override (compat-facts C4)."""
    if implied.torch_cuda_tag:
        return cuda_from_tag(implied.torch_cuda_tag)
    tag = implied.loader_cuda_tag
    if not tag or (facts.env or {}).get("BNB_CUDA_VERSION") is not None:
        return None
    if bnb is not None:
        keyed = bnb >= TORCH_KEYED_LOADER
    else:
        spec = implied.range("bitsandbytes")
        inside = [r.version for r in (kb.bnb.releases if kb else ()) if spec and r.version in spec]
        keyed = bool(inside) and min(inside) >= TORCH_KEYED_LOADER
    return cuda_from_tag(tag) if keyed else None


# NVML's CUDA-version query names in a probe's attempts (repair/probe/nvml.py records each failure
# as "<function>: <error>"); "function missing" only means a driver older than the call (CUDA < 10).
_NVML_CUDA_QUERY = re.compile(
    r"nvmlSystemGetCudaDriverVersion(_v2)?: (?!function missing)", re.IGNORECASE
)


def driver_cuda_unavailable(facts: Facts) -> bool:
    """The driver answers (a version) but its CUDA level cannot be read: a report's
    ``driver.cuda = "N/A"`` (nvidia-smi's "CUDA Version: N/A"), or a probe whose NVML query of the
    CUDA driver version failed. nvmlSystemGetCudaDriverVersion_v2 reads it from libcuda
    (cuDriverGetVersion) and returns NVML_ERROR_LIBRARY_NOT_FOUND when libcuda is missing (S32),
    so the user-space driver library is missing or broken while the kernel module answers."""
    drv = facts.driver
    if drv is None or not drv.version or drv.found is False:
        return False
    if (drv.cuda or "").strip().upper() in ("N/A", "NA"):
        return True
    texts = [drv.error or ""] + [
        str(v) for a in drv.attempts for v in a.values() if isinstance(v, str)
    ]
    return drv.cuda is None and any(_NVML_CUDA_QUERY.search(t) for t in texts)


def bnb_forks(facts: Facts) -> tuple[tuple[str, str | None], ...]:
    """The obsolete forks in the package list: (distribution name, version or None)."""
    return tuple(
        (name, version)
        for name, version in (facts.packages or {}).items()
        if BNB_FORK_PATTERN.match(name)
    )


def _fork_version(facts: Facts) -> Version | None:
    versions = [v for _, s in bnb_forks(facts) if (v := parse_version(s)) is not None]
    return max(versions, default=None)


@dataclass(frozen=True, slots=True)
class _TorchView:
    installed: bool | None
    version: Version | None
    cuda: Version | None
    hip: str | None
    cpu_build: bool | None
    build_assumed: str | None


def _torch_view(facts: Facts, kb: Knowledge | None, platform: str | None) -> _TorchView:
    """The installed torch: version, CUDA (from the build, its +cuXY label, or the PyPI build of
    its release), and whether it is a CPU build."""
    t = facts.torch
    torch_v = parse_version((t.version if t else None) or facts.package("torch"))
    torch_cuda = parse_version(t.cuda) if t else None
    torch_hip = t.hip if t else None
    if torch_cuda is None and torch_v is not None and torch_v.local:
        m = re.fullmatch(r"cu(\d+)", torch_v.local)
        if m:
            torch_cuda = cuda_from_tag(m.group(1))
    build_known = t is not None and t.build_known and t.error is None
    build_assumed = None
    if (
        torch_v is not None
        and not torch_v.local
        and torch_cuda is None
        and not torch_hip
        and not build_known
        and kb is not None
    ):
        rel = kb.torch.release(torch_v)
        var = rel.pypi_variant(platform) if rel is not None and platform else None
        if var is not None:
            torch_cuda = var.cuda
            build_assumed = (
                f"torch {torch_v} taken as {var.name}, the build PyPI ships for {platform}"
            )
            build_known = True
    cpu_build: bool | None = None
    if torch_v is not None:
        if torch_cuda is None and not torch_hip:
            # A '+cpu' label is explicit; otherwise only a stated build (the probe reads
            # torch/version.py, where cuda=None means a CPU build) says so.
            cpu_build = (torch_v.local or "") == "cpu" or (
                build_known and (build_assumed is not None or t is not None)
            )
            if not cpu_build and (torch_v.local or "") != "cpu" and not build_known:
                cpu_build = None
        else:
            cpu_build = False
    elif t is not None and t.build_known and t.error is None and not torch_cuda and not torch_hip:
        # A report that states the build (torch.version.cuda null; cuda_available false where
        # given) but not the version: a CPU-only torch all the same (a range, not silence).
        cpu_build = t.cuda_available is not True
    # Installed when its build or files show it (a broken one too), else as the list says.
    installed = (
        True
        if torch_v is not None
        or (t is not None and (t.cuda or t.hip or t.arch_list or t.error or cpu_build))
        else listed_installed(facts, "torch")
    )
    return _TorchView(installed, torch_v, torch_cuda, torch_hip, cpu_build, build_assumed)


# --------------------------------------------------------------------------- driver x CUDA


@dataclass(frozen=True, slots=True)
class DriverFit:
    """Whether the driver runs a CUDA runtime: ok None = unknown."""

    ok: bool | None
    mode: str | None  # "full" (driver >= the toolkit's own driver) or "minor-compat"
    full_min: Version | None  # the toolkit driver of that CUDA release (A1)
    compat_min: Version | None  # the minor-version compatibility floor of its major (A2)


def known_bad_torch(view: View, kb: Knowledge) -> TorchKnownBad | None:
    """The known-bad build (plans/torch.toml [[known_bad]]) the installed torch is, where the
    DLL whose load failed at `import torch` (the probe's error or the text) is its fault."""
    t = view.facts.torch
    dll = view.implied.torch_dll
    if dll is None and t is not None and t.error:
        # the probe's import error, read by the same signature as a pasted text (torch-dll-named)
        dll = implied_by(t.error).torch_dll
    return kb.torch.known_bad_for(view.torch, view.platform, dll)


def extension_torch_cuda(view: View) -> Version | None:
    """torch's CUDA for an extension build: the facts', else the one its builder printed."""
    return view.torch_cuda or parse_version(view.implied.extension_torch_cuda or None)


def extension_cuda_major(view: View) -> int | None:
    """The CUDA major the toolkit that compiles extensions in the failing process has, where an
    error text shows it refused beside torch's (torch.utils.cpp_extension, DeepSpeed's op
    builder: the majors must match, S120) and torch's CUDA (the facts', else the text's) is of
    another major. A torch that serves this job must carry it. None otherwise."""
    nvcc = parse_version(view.implied.extension_nvcc)
    if nvcc is None or view.rocm:
        return None
    torch_cuda = extension_torch_cuda(view)
    if torch_cuda is None or torch_cuda.major == nvcc.major:
        return None  # no major shown to differ (an older DeepSpeed refuses minors too)
    return nvcc.major


def driver_fit(view: View, kb: Knowledge, cuda: Version) -> DriverFit:
    """Can the installed driver run a CUDA ``cuda`` runtime (compat-facts A1, A2)?"""
    system = view.driver_os
    full_min = kb.drivers.toolkit_min(cuda, system)
    compat_min = kb.drivers.minor_compat_min(cuda.major, system)
    if view.driver is not None:
        if full_min is not None and view.driver >= full_min:
            return DriverFit(True, "full", full_min, compat_min)
        if view.driver_cuda is not None and series(cuda) <= series(view.driver_cuda):
            return DriverFit(True, "full", full_min, compat_min)
        if compat_min is not None and view.driver >= compat_min:
            return DriverFit(True, "minor-compat", full_min, compat_min)
        if full_min is None and compat_min is None:
            return DriverFit(None, None, None, None)
        return DriverFit(False, None, full_min, compat_min)
    below = view.implied.driver_below_torch_cuda and view.torch_cuda is not None
    if view.driver_cuda is None and below and view.torch_cuda is not None:
        # cudaErrorInsufficientDriver (35): the driver cannot run torch's CUDA runtime, so nor
        # any newer one; an older one may or may not run (plans/signatures.toml).
        if series(cuda) >= series(view.torch_cuda):
            return DriverFit(False, None, full_min, compat_min)
        return DriverFit(None, None, full_min, compat_min)
    if view.driver_cuda is not None:
        if series(cuda) <= series(view.driver_cuda):
            return DriverFit(True, "full", full_min, compat_min)
        if cuda.major == view.driver_cuda.major and cuda.major >= 11:
            # A driver that reports CUDA X.y is at least the toolkit driver of X.y; that is above
            # the minor-version compatibility floor of major X except for 11.0, whose drivers
            # (450.36-450.51) predate the 11.x floor 450.80.02 (A1 vs A2): then it is unknown.
            own = kb.drivers.toolkit_min(series(view.driver_cuda), system)
            if own is not None and compat_min is not None and own >= compat_min:
                return DriverFit(True, "minor-compat", full_min, compat_min)
            return DriverFit(None, None, full_min, compat_min)
        return DriverFit(False, None, full_min, compat_min)
    return DriverFit(None, None, full_min, compat_min)


# --------------------------------------------------------------------------- bitsandbytes


def lib_tags(native_libs: Iterable[str]) -> tuple[set[str], set[str]]:
    """({'118', ...}, {'118', ...} of _nocublaslt) from libbitsandbytes_cuda118[_nocublaslt].so."""
    full: set[str] = set()
    nc: set[str] = set()
    for name in native_libs:
        m = re.match(r"libbitsandbytes_cuda(\d+)(_nocublaslt)?\.", name)
        if m:
            (nc if m.group(2) else full).add(m.group(1))
    return full, nc


def pick_cuda_lib(available: Iterable[str], cuda: Version, loader: str) -> str | None:
    """The CUDA library tag ('118') a bitsandbytes release with ``loader`` would load for runtime
    ``cuda`` from the tags ``available`` (the files a probe saw, or a build's list): exact match,
    and from 0.50 the same-major fallback (compat-facts C4; knowledge.pick_lib)."""
    return pick_lib((t for t in available if cuda_from_tag(t) is not None), cuda, lib_cuda, loader)


# --------------------------------------------------------------------------- installed bitsandbytes


class BnbLibs(NamedTuple):
    """The native libraries of a bitsandbytes install: CUDA tags ('118'), _nocublaslt tags, and
    whether a CPU library is there."""

    full: set[str]
    nocublaslt: set[str]
    cpu: bool


def gpu_sms(view: View) -> frozenset[str]:
    """The NVIDIA GPUs' own architectures as arch-list entries ("sm_110")."""
    return frozenset(f"sm_{cc.major}{cc.minor}" for cc in view.ccs)


def board_in_index_builds(view: View, kb: Knowledge) -> bool:
    """Whether the GPUs' own architectures are named in a PyTorch linux-aarch64 build's arch
    list (Thor's sm_110, measured in the cu130 wheels): there PyTorch's build serves a Jetson
    too. Orin's sm_87 is named in none (its sm_80 SASS says nothing of a JetPack board)."""
    sms = gpu_sms(view)
    return bool(sms) and any(
        sms <= set(var.arch_for("linux-aarch64") or ())
        for rel in kb.torch.releases
        for var in rel.variants
    )


def is_jetson(view: View) -> bool:
    """An NVIDIA Jetson board (L4T), where neither PyPI's bitsandbytes nor the PyTorch index
    builds fit and the driver comes with JetPack."""
    if view.platform != "linux-aarch64":
        return False
    h = view.facts.host
    if h is not None and (h.l4t or JETSON_TEXT.search(h.os_release or "")):
        return True
    if any(JETSON_TEXT.search(g.name or "") for g in view.gpus or ()):
        return True
    return any(cc in JETSON_CCS for cc in view.ccs)


def torch_arch_list(view: View, kb: Knowledge) -> tuple[tuple[str, ...] | None, str]:
    """The installed torch's compiled arch list and where it came from (facts, knowledge)."""
    t = view.facts.torch
    if t is not None and t.arch_list:
        return t.arch_list, "facts"
    if view.torch is None or view.torch_cuda is None:
        return None, "unknown"
    rel = kb.torch.release(view.torch)
    if rel is None:
        return None, "unknown"
    var = rel.variant(cuda_variant_name(view.torch_cuda))
    arch = var.arch_for(view.platform) if var is not None and view.platform else None
    if var is None or arch is None:
        return None, "unknown"
    return arch, f"knowledge (torch {series(view.torch)} {var.name})"


def bnb_release(view: View, kb: Knowledge) -> BnbRelease | None:
    """The knowledge base's entry for the installed bitsandbytes (None when unknown)."""
    return None if view.bnb is None else kb.bnb.release(view.bnb)


def bnb_loader(view: View, kb: Knowledge) -> str | None:
    """How the installed bitsandbytes picks its native library (compat-facts C4)."""
    rel = bnb_release(view, kb)
    return rel.loader if rel else None


def bnb_runtime_cuda(view: View, kb: Knowledge) -> tuple[Version | None, str]:
    """The CUDA version the installed bitsandbytes keys its library on, and from where.

    compat-facts C4: up to 0.40.0 the first libcudart found (the system toolkit, not torch's);
    from 0.40.1 torch.version.cuda.
    """
    if bnb_loader(view, kb) == "libcudart-search" and view.facts.toolkit_nvcc:
        nvcc = parse_version(view.facts.toolkit_nvcc)
        if nvcc is not None:
            return series(nvcc), "system toolkit (nvcc)"
    if view.torch_cuda is not None:
        return view.torch_cuda, "torch.version.cuda"
    if view.facts.toolkit_nvcc and bnb_loader(view, kb) in (None, "libcudart-search"):
        nvcc = parse_version(view.facts.toolkit_nvcc)
        if nvcc is not None:
            return series(nvcc), "system toolkit (nvcc)"
    return None, "unknown"


def bnb_available_libs(view: View, kb: Knowledge) -> BnbLibs | None:
    """(full CUDA libs, nocublaslt libs, has cpu lib) of the installed bitsandbytes: the files the
    probe saw, else what the release ships for this platform."""
    b = view.facts.bitsandbytes
    if b is not None and b.native_libs:
        full, nc = lib_tags(b.native_libs)
        cpu = any(n.startswith("libbitsandbytes_cpu") for n in b.native_libs)
        return BnbLibs(full, nc, cpu)
    rel = bnb_release(view, kb)
    if rel is None or view.platform is None:
        return None
    build = rel.builds.get(view.platform)
    if build is None:
        return None
    return BnbLibs(set(build.cuda_libs), set(build.nocublaslt), build.cpu_lib)


def installed_cuda_lib(
    view: View, rel: BnbRelease | None, libs: BnbLibs, cuda: Version
) -> str | None:
    """The CUDA library tag the installed bitsandbytes loads for runtime ``cuda`` from the
    libraries it has: its loader's pick, and the _nocublaslt variant where it wants one (C4)."""
    full, nc, _cpu = libs
    chosen = pick_cuda_lib(full, cuda, rel.loader if rel else "exact")
    if chosen is not None and view.wants_nocublaslt(rel) and nc and chosen not in nc:
        return None
    return chosen


# --------------------------------------------------------------------------- knowledge floors


def lowest_torch_arch(kb: Knowledge, platform: str | None) -> Version | None:
    """The lowest compute capability any torch build of the knowledge base has code for."""
    ccs = [
        v
        for r in kb.torch.releases
        for var in r.variants_for(platform or "")
        if (arch := var.arch_for(platform or ""))
        for a in arch
        if (p := parse_arch(a)) is not None
        for v in (p[1],)
    ]
    return min(ccs) if ccs else None


def cuda_companion(view: View) -> str | None:
    """The CUDA torch build ("2.1.0+cu121") that xFormers in the failing process was compiled
    against, as its own message says (S131); None where the text shows none, or a build
    without CUDA."""
    built, cuda = view.implied.companion_torch, view.implied.companion_cuda
    version = parse_version(built)
    if version is None or not (cuda or "").isdigit() or not (version.local or "").startswith("cu"):
        return None
    return str(version)


# What a report's OS description says of where it ran (repair.containers' names): a probe
# names the engine itself (host.container); a report writes it in words.
_CONTAINER_WORDS = (
    ("colab", re.compile(r"\bcolab\b", re.I)),
    ("kaggle", re.compile(r"\bkaggle\b", re.I)),
    ("podman", re.compile(r"\bpodman\b", re.I)),
    ("kubernetes", re.compile(r"\b(?:kubernetes|k8s)\b", re.I)),
    ("docker", re.compile(r"\bdocker\b", re.I)),
    (GENERIC, re.compile(r"\bcontainer\b", re.I)),  # no engine named
)


def _container(facts: Facts) -> str | None:
    """The container the probe named (host.container), else the one the report's OS
    description names."""
    host = facts.host
    return None if host is None else host.container or container_in_words(host.os_release)


def container_in_words(os_release: str | None) -> str | None:
    """The container or hosted notebook a report's OS description names, or None."""
    if not os_release:
        return None
    return next((name for name, words in _CONTAINER_WORDS if words.search(os_release)), None)


def conda_libs_first(facts: Facts) -> bool:
    """Whether the target's interpreter comes from a conda install, so that its own lib/ (and
    libstdc++) is found before the system's: said by the facts, or its prefix or executable
    (.../envs/<name>, .../miniconda3/...) shows it. Unlike ``rules.environment.in_conda``,
    which asks whether a conda env is *active* (CONDA_PREFIX: where its fixes are run), this
    asks which runtime libraries the process loads."""
    py = facts.python
    if py is not None and py.conda:
        return True
    text = " ".join(x or "" for x in ((py.prefix, py.executable) if py else ()))
    return "/envs/" in text or "conda" in text.lower()


class Runtimes(NamedTuple):
    """The C and C++ runtimes the view knows (its fields of the same names)."""

    glibc: Version | None
    glibc_from: str | None = None
    glibcxx: Version | None = None
    glibcxx_from: str | None = None
    glibcxx_measured: bool = False
    glibcxx_path: str | None = None
    conda: bool = False


def _runtimes(facts: Facts, kb: Knowledge | None, glibc: Version | None) -> Runtimes:
    """glibc (the reported one, else inferred) and the libstdc++: measured by the probe in the
    target process (``host.libstdcxx``; in a conda env too, since it is what that process
    loads), else the system's inferred from the OS release named by the facts
    (plans/distros.toml); only confirmed parts of a distro entry are used."""
    out = Runtimes(glibc, conda=conda_libs_first(facts))
    host = facts.host
    if host is None or (host.system or "Linux") != "Linux":
        return out
    measured = host.libstdcxx
    glibcxx = parse_version(measured.glibcxx) if measured is not None else None
    if measured is not None and glibcxx is not None:
        out = out._replace(glibcxx=glibcxx, glibcxx_measured=True, glibcxx_path=measured.path)
    if not host.os_release:
        return out
    d = distro_of(host.os_release, load_distros(kb.directory if kb is not None else None))
    if d is None:
        return out
    if glibc is None and d.known("glibc") is not None:
        out = out._replace(glibc=d.known("glibc"), glibc_from=d.label)
    if not out.conda and glibcxx is None and d.known("glibcxx") is not None:
        out = out._replace(glibcxx=d.known("glibcxx"), glibcxx_from=d.label)
    return out


def tagged_glibc_floor(kb: Knowledge, platform: str) -> Version | None:
    """The lowest glibc any platform-tagged bitsandbytes wheel for ``platform`` accepts."""
    floors = [
        b.glibc_min
        for r in kb.bnb.releases
        if (b := r.builds.get(platform)) is not None and b.dist != "any" and b.glibc_min is not None
    ]
    return min(floors) if floors else None


def wheel_misfits(view: View, build: BnbBuild) -> list[str]:
    """Why ``build``'s wheel cannot install here by its platform tag: glibc or macOS below it
    (reported, inferred, or bounded by a refused wheel)."""
    why = []
    if view.glibc_short_of(build.glibc_min):
        why.append(f"needs glibc >= {build.glibc_min}")
    if view.macos_short_of(build.macos_min):
        why.append(f"needs macOS >= {build.macos_min}")
    return why


def libstdcxx_misfit(view: View, kb: Knowledge, build: BnbBuild) -> str | None:
    """Why ``build``'s libraries cannot load against the libstdc++ here, else None.

    The untagged wheels (0.32.0-0.42.0) need GLIBCXX_3.4.21 (objdump -T of each wheel: S37 from
    0.37.0, S75 before), not a glibc: against a known libstdc++ (measured in the target process,
    else inferred from the OS release, plans/distros.toml) that floor decides. Where it is
    unknown (not measured and no OS release; a conda env unmeasured, whose own libstdc++ comes
    first), a glibc below every tagged wheel still rules them out as before (S27, F30: pip fell
    back to 0.42.0 on such a host, in a conda env too, and it failed).
    """
    need = build.glibcxx_min
    if need is not None and view.glibcxx is not None:
        if view.glibcxx >= need:
            return None
        return (
            f"needs libstdc++ GLIBCXX_{need}; this host's is GLIBCXX_{view.glibcxx} "
            f"({view.glibcxx_said}, {'S37' if build.release >= OBJDUMP_S37_FROM else 'S75'})"
        )
    if build.dist == "any" and (view.glibc is not None or view.glibc_below is not None):
        floor = tagged_glibc_floor(kb, view.platform or "")
        if view.glibc_short_of(floor):
            return f"untagged wheel: does not work below glibc {floor} (S27)"
    return None
