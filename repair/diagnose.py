"""Facts x knowledge -> Findings. Pure: no process, no network, no torch import.

Each rule looks at the facts it needs and stays quiet when they are unknown; it then reports what
it could not know through ``unknowns``. A finding names a class of plans/failures.toml by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from .catalogue import Catalogue
from .knowledge import BnbRelease, Knowledge
from .view import (
    BNB_FORK_PATTERN,
    MODERN_BNB_LOADER,
    View,
    arch_coverage,
    cuda_from_tag,
    driver_fit,
    lib_tags,
    parse_arch,
    parse_version,
    pick_cuda_lib,
    public,
    sass_ccs_cover,
    series,
)

# Jetson (L4T) evidence: the integrated GPUs' compute capabilities named in compat-facts (Orin
# sm_87, C1 / bnb#1930; Thor sm_101, renamed sm_110 in CUDA 13, A3), their names, the L4T release.
JETSON_CCS = (Version("8.7"), Version("10.1"), Version("11.0"))
JETSON_TEXT = re.compile(r"\b(orin|xavier|jetson|thor|tegra|nvgpu|l4t|jetpack)\b", re.IGNORECASE)
# Kepler (compute capability 3.x): bitsandbytes dropped its pip binaries in 0.39.0, the first
# release with 4-bit (compat-facts C1/C3, S24 CHANGELOG); only a source build serves it.
KEPLER_BELOW = Version("5.0")
FIRST_4BIT = Version("0.39.0")  # compat-facts C1 (S24): Linear4bit, NF4/FP4
FIRST_CPU_4BIT = Version("0.46.0")  # compat-facts C5 (S23 backends/cpu/ops.py)
WSL_LIB_DIR = "/usr/lib/wsl/lib"  # F03: WSL mounts the Windows driver's libraries here


@dataclass(frozen=True, slots=True)
class Finding:
    """A failure class of plans/failures.toml that the facts (or an error message) point to."""

    id: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """All findings, what could not be known, and error-message classes the facts rule out."""

    findings: tuple[Finding, ...]
    unknown: tuple[str, ...]
    ruled_out: tuple[str, ...] = ()  # classes an error message pointed to that the facts exclude

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.findings)


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
    var = rel.variant(f"cu{view.torch_cuda.major}{view.torch_cuda.minor}")
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


def bnb_available_libs(view: View, kb: Knowledge) -> tuple[set[str], set[str], bool] | None:
    """(full CUDA libs, nocublaslt libs, has cpu lib) of the installed bitsandbytes: the files the
    probe saw, else what the release ships for this platform."""
    b = view.facts.bitsandbytes
    if b is not None and b.native_libs:
        full, nc = lib_tags(b.native_libs)
        cpu = any(n.startswith("libbitsandbytes_cpu") for n in b.native_libs)
        return full, nc, cpu
    rel = bnb_release(view, kb)
    if rel is None or view.platform is None:
        return None
    build = rel.builds.get(view.platform)
    if build is None:
        return None
    return set(build.cuda_libs), set(build.nocublaslt), build.cpu_lib


def installed_cuda_lib(
    view: View, rel: BnbRelease | None, libs: tuple[set[str], set[str], bool], cuda: Version
) -> str | None:
    """The CUDA library tag the installed bitsandbytes loads for runtime ``cuda`` from the
    libraries it has: its loader's pick, and the _nocublaslt variant where it wants one (C4)."""
    full, nc, _cpu = libs
    chosen = pick_cuda_lib(full, cuda, rel.loader if rel else "exact")
    if chosen is not None and view.wants_nocublaslt(rel) and nc and chosen not in nc:
        return None
    return chosen


def _finding(cat: Catalogue, fid: str, summary: str, **evidence: Any) -> Finding:
    return Finding(
        fid, cat.get(fid).severity, summary, {k: v for k, v in evidence.items() if v is not None}
    )


def diagnose(
    view: View, kb: Knowledge, cat: Catalogue, reported: tuple[str, ...] = ()
) -> Diagnosis:
    """Every failure class the facts prove, in catalogue order, plus the facts that were missing.

    ``reported``: classes an error message points to (``qfix explain`` of a ticket's error). Where
    the facts are partial and do not contradict one, it is added as a finding marked as reported.
    """
    out: list[Finding] = []
    unknown: list[str] = []
    f = view.facts

    # --- host: driver and GPUs ------------------------------------------------------------
    if view.platform is None:
        h = f.host
        out.append(
            _finding(
                cat,
                "bnb-platform-unsupported",
                f"no bitsandbytes or torch build in the knowledge base is for "
                f"{h.system if h else '?'}/{h.machine if h else '?'}",
                system=h.system if h else None,
                machine=h.machine if h else None,
            )
        )
    jetson = is_jetson(view)
    if jetson:
        h = f.host
        out.append(
            _finding(
                cat,
                "jetson-l4t",
                "NVIDIA Jetson (L4T): bitsandbytes' aarch64 wheels are built for SBSA "
                "servers and torch must be NVIDIA's Jetson build",
                l4t=h.l4t if h else None,
                os_release=h.os_release if h else None,
                gpus=[g.name for g in view.gpus or ()],
            )
        )
    if view.rocm:
        out.append(
            _finding(
                cat,
                "rocm-host",
                "AMD GPU / ROCm torch: CUDA remedies do not apply",
                torch_hip=view.torch_hip,
                gpus=[g.name for g in (f.gpus or ()) if g.vendor == "amd"],
            )
        )
    elif view.has_nvidia_gpu is False:
        err = f.driver.error if f.driver else None
        out.append(
            _finding(
                cat,
                "no-nvidia-driver",
                "no NVIDIA driver or GPU found: CUDA 4-bit cannot work here",
                driver_error=err,
            )
        )
        if view.bnb is not None and view.bnb < FIRST_CPU_4BIT:
            out.append(
                _finding(
                    cat,
                    "bnb-no-cpu-4bit",
                    f"bitsandbytes {view.bnb} has no CPU 4-bit (first in {FIRST_CPU_4BIT})",
                    bitsandbytes=str(view.bnb),
                )
            )
    elif view.has_nvidia_gpu is None:
        unknown.append("driver")

    ccs = view.ccs
    if view.gpus is None and not view.rocm and view.has_nvidia_gpu is not False:
        unknown.append("gpus")
    if len({c.major for c in ccs}) > 1:
        # F49 (bnb#448): the legacy loaders (< 0.43.1) took the wrong GPU's capability; a current
        # bitsandbytes serves each GPU, so there it is only a warning about device_map='auto'.
        legacy = view.bnb is None or view.bnb < MODERN_BNB_LOADER
        names = [f"{g.name} ({g.compute_capability})" for g in view.gpus or ()]
        out.append(
            Finding(
                "mixed-gpus",
                "error" if legacy and view.bnb_installed else "warning",
                "GPUs of different architectures are visible: "
                + ", ".join(names)
                + (
                    "; the legacy bitsandbytes loader may take the wrong one's capability"
                    if legacy and view.bnb_installed
                    else ""
                ),
                {
                    "gpus": names,
                    "weakest": str(min(ccs)),
                    "legacy_loader": legacy,
                    "CUDA_VISIBLE_DEVICES": (f.env or {}).get("CUDA_VISIBLE_DEVICES"),
                },
            )
        )

    kepler = [
        g
        for g in view.gpus or ()
        if (cc := parse_version(g.compute_capability)) is not None and cc < KEPLER_BELOW
    ]
    if kepler and not jetson:
        out.append(
            _finding(
                cat,
                "gpu-too-old-for-bnb",
                "GPU "
                + ", ".join(f"{g.index} {g.name or ''} ({g.compute_capability})" for g in kepler)
                + ": below 5.0 (Kepler or older), no pip release of bitsandbytes "
                "with 4-bit has code for it (Kepler binaries were dropped in 0.39.0)",
                gpus=[g.index for g in kepler],
                kepler=True,
            )
        )
    floor = lowest_torch_arch(kb, view.platform)
    for g in view.gpus or ():
        cc = parse_version(g.compute_capability)
        if cc is not None and floor is not None and cc < floor and not jetson:
            out.append(
                _finding(
                    cat,
                    "gpu-arch-unsupported",
                    f"GPU {g.index} {g.name or ''} ({cc}) is below every torch "
                    f"build in the knowledge base (the lowest is sm_{floor.major}"
                    f"{floor.minor}): no torch release can use it",
                    gpu=g.index,
                    compute_capability=str(cc),
                    lowest=str(floor),
                    no_build=True,
                )
            )

    # --- torch -----------------------------------------------------------------------------
    if view.torch_installed is False:
        out.append(_finding(cat, "torch-missing", "torch is not installed in the target"))
    elif view.torch_installed is None:
        unknown.append("torch")
    if f.torch is not None and f.torch.error:
        unknown.append("torch build (" + f.torch.error + ")")

    nvidia_here = view.has_nvidia_gpu is True and not view.rocm and not jetson
    if view.torch_cpu_build and nvidia_here:
        out.append(
            _finding(
                cat,
                "torch-cpu-build",
                f"torch {view.torch} is a CPU-only build on a host with an NVIDIA GPU",
                torch=str(view.torch),
            )
        )

    if view.torch_cuda is not None and nvidia_here:
        fit = driver_fit(view, kb, view.torch_cuda)
        if fit.ok is False:
            need = fit.compat_min or fit.full_min
            installed_driver = (
                f.driver.version if f.driver and f.driver.version else f"CUDA {view.driver_cuda}"
            )
            out.append(
                _finding(
                    cat,
                    "driver-too-old",
                    f"torch's CUDA {view.torch_cuda} needs driver >= {need}; installed: "
                    f"{installed_driver}",
                    torch_cuda=str(view.torch_cuda),
                    driver=f.driver.version if f.driver else None,
                    driver_cuda=f.driver.cuda if f.driver else None,
                    minimum_driver=str(need) if need else None,
                )
            )
        elif fit.ok is None:
            unknown.append("driver version (needed to check torch's CUDA build)")

    arch_list, arch_src = torch_arch_list(view, kb)
    if ccs and view.torch_cuda is not None and not view.rocm and not jetson:
        if arch_list is None:
            unknown.append("torch arch list")
        else:
            fit = driver_fit(view, kb, view.torch_cuda)
            for g in view.gpus or ():
                cc = parse_version(g.compute_capability)
                if cc is None:
                    continue
                cov = arch_coverage(arch_list, cc)
                ptx_blocked = cov == "ptx" and fit.mode == "minor-compat"
                if cov is None or ptx_blocked:
                    why = (
                        (
                            "only PTX covers it and the driver runs this CUDA through "
                            "minor-version "
                            "compatibility, which cannot JIT newer PTX"
                        )
                        if ptx_blocked
                        else "no SASS or PTX for it"
                    )
                    out.append(
                        _finding(
                            cat,
                            "gpu-arch-unsupported",
                            f"GPU {g.index} {g.name or ''} (sm_{cc.major}{cc.minor}) "
                            f"is not in torch's "
                            f"build: {why}",
                            gpu=g.index,
                            name=g.name,
                            compute_capability=g.compute_capability,
                            arch_list=list(arch_list),
                            arch_list_source=arch_src,
                        )
                    )

    # --- bitsandbytes ----------------------------------------------------------------------
    b = f.bitsandbytes
    rel = bnb_release(view, kb)
    if view.bnb_installed is False:
        out.append(_finding(cat, "bnb-missing", "bitsandbytes is not installed in the target"))
    elif view.bnb_installed is None:
        unknown.append("bitsandbytes")
    if view.bnb is not None and view.bnb < FIRST_4BIT:
        out.append(
            _finding(
                cat,
                "bnb-no-4bit",
                f"bitsandbytes {view.bnb} predates 4-bit (first in {FIRST_4BIT})",
                bitsandbytes=str(view.bnb),
            )
        )
    if view.bnb is not None and rel is None:
        unknown.append(f"bitsandbytes {view.bnb} (not in the knowledge base)")
    dists = tuple(b.distributions) if b else ()
    forks = [d for d in dists if BNB_FORK_PATTERN.match(d.split()[0])]
    if (b is not None and b.copies is not None and b.copies > 1) or forks:
        out.append(
            _finding(
                cat,
                "bnb-duplicate-install",
                f"{max(b.copies or 0, len(dists)) if b else len(forks)} "
                "distributions provide bitsandbytes: " + ", ".join(dists or forks),
                distributions=list(dists),
            )
        )

    libs = bnb_available_libs(view, kb)
    lib_ok = (
        libs is not None
        and view.torch_cuda is not None
        and rel is not None
        and installed_cuda_lib(view, rel, libs, view.torch_cuda) is not None
    )
    if rel is not None and rel.known_bad and (libs is None or not libs[2] or not lib_ok):
        # Both known-bad releases lack a library (0.39.0: cuda110/114; 0.45.4: the CPU one):
        # report it where that shows or cannot be ruled out.
        out.append(
            _finding(
                cat,
                "bnb-known-bad-release",
                f"bitsandbytes {view.bnb}: {rel.known_bad}",
                bitsandbytes=str(view.bnb),
            )
        )

    _platform_rules(view, kb, cat, rel, out)

    if (
        view.bnb is not None
        and view.torch is not None
        and rel is not None
        and not rel.admits_torch(public(view.torch))
    ):
        out.append(
            _finding(
                cat,
                "bnb-torch-mismatch",
                f"bitsandbytes {view.bnb} requires torch {rel.torch}; installed {view.torch}",
                bitsandbytes=str(view.bnb),
                torch=str(view.torch),
                requirement=str(rel.torch),
            )
        )

    override = (f.env or {}).get("BNB_CUDA_VERSION")
    lib_cuda, lib_cuda_src = bnb_runtime_cuda(view, kb)
    if override is not None:
        _override_rule(view, kb, cat, rel, override, libs, lib_cuda, out)
    elif (
        (
            nvidia_here
            or (
                view.has_nvidia_gpu is None
                and view.torch_cuda is not None
                and not view.rocm
                and not jetson
            )
        )
        and view.bnb is not None
        and view.bnb >= FIRST_4BIT
        and libs is not None
    ):
        if lib_cuda is not None:
            chosen = installed_cuda_lib(view, rel, libs, lib_cuda)
            if chosen is None:
                out.append(
                    _finding(
                        cat,
                        "bnb-no-cuda-lib",
                        f"bitsandbytes {view.bnb} has no library for CUDA {lib_cuda} "
                        f"(from {lib_cuda_src})",
                        bitsandbytes=str(view.bnb),
                        cuda=str(lib_cuda),
                        cuda_source=lib_cuda_src,
                        shipped=sorted(libs[0], key=lambda t: cuda_from_tag(t) or Version("0")),
                    )
                )
            elif ccs and rel is not None and view.platform is not None:
                build = rel.builds.get(view.platform)
                sass = build.sass(chosen) if build else None
                if sass:
                    for g in view.gpus or ():
                        cc = parse_version(g.compute_capability)
                        # Above the highest target the PTX copy covers it (CMake adds PTX for the
                        # highest arch since 0.45, compat-facts C2); below, nothing does.
                        if cc is not None and not sass_ccs_cover(sass, cc) and cc < max(sass):
                            band = build.sass_band(chosen) if build else None
                            confirmed = band is not None and band.confirmed
                            x = _finding(
                                cat,
                                "gpu-too-old-for-bnb",
                                f"GPU {g.index} {g.name or ''} ({cc}) is below bitsandbytes "
                                f"{view.bnb}'s cuda{chosen} build (lowest sm_"
                                f"{min(sass).major}{min(sass).minor})"
                                + ("" if confirmed else " (UNCONFIRMED: from build scripts)"),
                                gpu=g.index,
                                compute_capability=str(cc),
                                library=f"cuda{chosen}",
                                targets=[str(s) for s in sass],
                                confirmed=confirmed,
                            )
                            # An UNCONFIRMED fact is never the only ground for an error.
                            out.append(
                                x if confirmed else Finding(x.id, "warning", x.summary, x.evidence)
                            )
        else:
            unknown.append("the CUDA version bitsandbytes loads for (torch.version.cuda)")

    _family_rule(view, kb, cat, out)
    _hf_rules(view, kb, cat, out)
    _loader_path_rules(view, kb, cat, rel, lib_cuda, out)

    proven = {x.id for x in out}
    ruled_out = []
    for fid in reported:
        if fid in proven:
            continue
        if _contradicted(view, kb, fid):
            ruled_out.append(fid)
        else:
            out.append(
                _finding(
                    cat,
                    fid,
                    f"{cat.get(fid).title} (reported by the error message; "
                    "the facts neither prove nor rule it out)",
                    source="error message",
                )
            )
            proven.add(fid)

    order = {c: i for i, c in enumerate(cat.ids)}
    seen: set[tuple[str, str]] = set()
    unique = []
    for x in sorted(out, key=lambda x: order[x.id]):
        if (x.id, x.summary) not in seen:
            seen.add((x.id, x.summary))
            unique.append(x)
    return Diagnosis(tuple(unique), tuple(dict.fromkeys(unknown)), tuple(ruled_out))


def _contradicted(view: View, kb: Knowledge, fid: str) -> bool:
    """Do the facts rule out a class an error message points to?

    Facts of a full probe are complete: what the rules did not find there is not the case. In a
    partial report, only the facts a class depends on can rule it out.
    """
    if fid == "cuda-init-failed":
        # a state of the running machine, which no probe of files can rule out
        return view.has_nvidia_gpu is False
    if view.packages_complete:
        return True
    if fid == "torch-cpu-build":
        return view.torch_cuda is not None or bool(view.torch_hip) or view.has_nvidia_gpu is False
    if fid == "torch-missing":
        return view.torch_installed is True
    if fid in ("bnb-missing",):
        return view.bnb_installed is True
    if fid == "bnb-no-4bit":
        return view.bnb is not None and view.bnb >= FIRST_4BIT
    if fid == "no-nvidia-driver":
        return view.has_nvidia_gpu is True
    if fid == "driver-too-old":
        if view.has_nvidia_gpu is False:
            return True  # no NVIDIA driver at all: no-nvidia-driver says it
        return view.torch_cuda is not None and driver_fit(view, kb, view.torch_cuda).ok is True
    if fid == "hf-stack-too-old":
        # the floors were checked against known versions and did not fire
        return view.package("transformers") is not None and view.package("accelerate") is not None
    if fid == "bnb-known-bad-release":
        rel = kb.bnb.release(view.bnb) if view.bnb is not None else None
        return view.bnb is not None and (rel is None or not rel.known_bad)
    if fid == "bnb-no-cuda-lib":  # the same rule as the diagnosis, with the same CUDA source
        rel = kb.bnb.release(view.bnb) if view.bnb is not None else None
        libs = bnb_available_libs(view, kb)
        cuda, _ = bnb_runtime_cuda(view, kb)
        return (
            rel is not None
            and cuda is not None
            and libs is not None
            and installed_cuda_lib(view, rel, libs, cuda) is not None
        )
    if fid == "bnb-platform-unsupported":
        rel = kb.bnb.release(view.bnb) if view.bnb is not None else None
        build = rel.builds.get(view.platform or "") if rel is not None else None
        return (
            build is not None
            and build.native
            and not view.platform_assumed
            and (view.glibc is None or build.glibc_min is None or view.glibc >= build.glibc_min)
        )
    if fid in ("cuda-libs-not-found", "stale-toolkit-on-path"):
        return view.system == "Windows"  # LD_LIBRARY_PATH and libcudart search are Linux
    if fid == "gpu-arch-unsupported":
        arch, _ = torch_arch_list(view, kb)
        return (
            arch is not None
            and bool(view.ccs)
            and all(arch_coverage(arch, cc) is not None for cc in view.ccs)
        )
    if fid == "jetson-l4t":
        return not is_jetson(view) and view.platform is not None and not view.platform_assumed
    if fid == "rocm-host":
        return not view.rocm and view.torch_cuda is not None
    if fid == "mixed-gpus":
        return view.gpus is not None and len({c.major for c in view.ccs}) <= 1
    return False


# The file type of a native library on each OS (bitsandbytes ships .so, .dll and .dylib files).
_LIB_SUFFIX = {"linux": ".so", "windows": ".dll", "macos": ".dylib"}


def _platform_rules(
    view: View, kb: Knowledge, cat: Catalogue, rel: BnbRelease | None, out: list[Finding]
) -> None:
    b = view.facts.bitsandbytes
    want = _LIB_SUFFIX.get((view.platform or "").split("-")[0])
    libs = [n for n in (b.native_libs or ()) if n.startswith("libbitsandbytes")] if b else []
    if want and libs and not any(n.endswith(want) for n in libs):
        # Only another OS's libraries (a py3-none-any wheel <= 0.42 carries Linux .so files
        # everywhere, compat-facts C1; "not a mach-o file" on macOS, bnb#485).
        out.append(
            _finding(
                cat,
                "bnb-platform-unsupported",
                f"the installed bitsandbytes has only .{libs[0].rsplit('.', 1)[-1]} "
                f"libraries, none for {view.platform}",
                native_libs=libs,
            )
        )
        return
    if view.bnb is None or rel is None:
        return
    if view.platform is None:
        return
    build = rel.builds.get(view.platform)
    if build is None or not build.native:
        out.append(
            _finding(
                cat,
                "bnb-platform-unsupported",
                f"bitsandbytes {view.bnb} has no native build for {view.platform}",
                bitsandbytes=str(view.bnb),
                platform=view.platform,
            )
        )
        return
    if view.glibc is not None and build.glibc_min is not None and view.glibc < build.glibc_min:
        out.append(
            _finding(
                cat,
                "bnb-platform-unsupported",
                f"bitsandbytes {view.bnb} needs glibc >= {build.glibc_min}; this host "
                f"has {view.glibc}",
                glibc=str(view.glibc),
                required=str(build.glibc_min),
            )
        )
        return
    if build.dist == "any" and view.glibc is not None:
        floor = tagged_glibc_floor(kb, view.platform)
        if floor is not None and view.glibc < floor:
            # compat-facts C1 wheel notes (S27, bnb#1685): below the manylinux floor of every
            # tagged wheel pip silently falls back to the last untagged release, which does not
            # work there.
            out.append(
                _finding(
                    cat,
                    "bnb-platform-unsupported",
                    f"glibc {view.glibc} is below every bitsandbytes wheel (>= "
                    f"{floor}); pip fell back to the untagged {view.bnb}, which does "
                    "not work here",
                    glibc=str(view.glibc),
                    required=str(floor),
                )
            )
            return
    # F27 (bnb#1610, confirmed by a maintainer): the 0.45.x CUDA 12.6/12.8 libraries required
    # GLIBC_2.34 by accident; fixed in 0.46.0. The knowledge base carries it per library.
    cuda = view.torch_cuda
    if view.glibc is not None and cuda is not None:
        tag = f"{cuda.major}{cuda.minor}"
        need = build.lib_glibc_min.get(tag)
        if need is not None and view.glibc < need:
            confirmed = rel.is_confirmed(f"builds.{view.platform}.lib_glibc")
            f = _finding(
                cat,
                "bnb-platform-unsupported",
                f"bitsandbytes {view.bnb}'s cuda{tag} library needs glibc >= {need}; "
                f"this host has {view.glibc}"
                + ("" if confirmed else " (UNCONFIRMED for this release)"),
                glibc=str(view.glibc),
                required=str(need),
                library=f"cuda{tag}",
                confirmed=confirmed,
            )
            # An UNCONFIRMED fact is never the only ground for an error (design.md).
            out.append(f if confirmed else Finding(f.id, "warning", f.summary, f.evidence))


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


def tagged_glibc_floor(kb: Knowledge, platform: str) -> Version | None:
    """The lowest glibc any platform-tagged bitsandbytes wheel for ``platform`` accepts."""
    floors = [
        b.glibc_min
        for r in kb.bnb.releases
        if (b := r.builds.get(platform)) is not None and b.dist != "any" and b.glibc_min is not None
    ]
    return min(floors) if floors else None


def _override_rule(
    view: View,
    kb: Knowledge,
    cat: Catalogue,
    rel: BnbRelease | None,
    value: str,
    libs: tuple[set[str], set[str], bool] | None,
    lib_cuda: Version | None,
    out: list[Finding],
) -> None:
    """BNB_CUDA_VERSION (compat-facts C4; F32)."""
    v = value.strip()
    if view.torch_cpu_build and rel is not None and rel.version >= MODERN_BNB_LOADER:
        # From 0.43.1 a torch without CUDA loads the CPU library whatever the variable says
        # (cuda_specs is None when torch.cuda is unavailable, compat-facts C4).
        return
    problems = []
    if rel is not None and rel.loader == "same-major-fallback" and not v.isdigit():
        problems.append("0.50+ requires digits only; an empty or other value raises RuntimeError")
    elif v and not v.isdigit():
        problems.append("not a CUDA version such as 118")
    if v.isdigit() and libs is not None:
        full, nc, _ = libs
        wants_nc = view.wants_nocublaslt(rel)
        if view.bnb is not None and view.bnb < Version("0.44.0") and wants_nc:
            problems.append(
                "before 0.44.0 the override builds a wrong _nocublaslt file name on "
                "GPUs below 7.5 (bnb PR#1318)"
            )
        elif v not in (nc if wants_nc else full):
            problems.append(f"no libbitsandbytes_cuda{v} in this bitsandbytes")
    if view.rocm and v:
        problems.append("has no meaning for a ROCm torch (raises from 0.47)")
    if v.isdigit() and lib_cuda is not None and cuda_from_tag(v) is not None and not problems:
        forced = cuda_from_tag(v)
        if forced is not None and forced.major != lib_cuda.major:
            problems.append(
                f"forces CUDA {forced} while torch uses CUDA {lib_cuda}: the matching "
                "libcudart must then be on LD_LIBRARY_PATH"
            )
    if problems:
        out.append(
            _finding(
                cat,
                "bnb-cuda-override",
                f"BNB_CUDA_VERSION={value!r}: " + "; ".join(problems),
                BNB_CUDA_VERSION=value,
            )
        )


def _family_rule(view: View, kb: Knowledge, cat: Catalogue, out: list[Finding]) -> None:
    if view.torch is None:
        return
    rel = kb.torch.release(view.torch)
    if rel is None:
        return
    for name, want in (("torchvision", rel.torchvision), ("torchaudio", rel.torchaudio)):
        have = view.package(name)
        if have is None or want is None:
            continue
        bad = series(have) != series(want)
        tl, hl = view.torch.local or "", have.local or ""
        if tl and hl and tl != hl:
            bad = True
        if bad:
            out.append(
                _finding(
                    cat,
                    "torch-family-mismatch",
                    f"{name} {have} does not match torch {view.torch} "
                    f"(expects {name} {series(want)}.x)",
                    package=name,
                    installed=str(have),
                    expected=str(want),
                )
            )


# The features a QLoRA job needs (plans/huggingface.toml `feature`); 4-bit saving, moving and
# quant_storage are needs of some jobs only, and 8-bit merges are not 4-bit at all.
HF_FEATURES = ("4bit-load", "kbit-training")


def _hf_rules(view: View, kb: Knowledge, cat: Catalogue, out: list[Finding]) -> None:
    for rule in kb.hf:
        if rule.feature not in HF_FEATURES:
            continue
        have = view.package(rule.package)
        if have is None:
            continue
        applies = True
        for other, spec in rule.when.items():
            ov = view.package(other)
            if ov is None or public(ov) not in spec:
                applies = False
                break
        if not applies or public(have) >= rule.minimum:
            continue
        out.append(
            _finding(
                cat,
                "hf-stack-too-old",
                f"{rule.package} {have} is below {rule.minimum}: {rule.reason}",
                package=rule.package,
                installed=str(have),
                minimum=str(rule.minimum),
                when={k: str(s) for k, s in rule.when.items()},
            )
        )


def _loader_path_rules(
    view: View,
    kb: Knowledge,
    cat: Catalogue,
    rel: BnbRelease | None,
    lib_cuda: Version | None,
    out: list[Finding],
) -> None:
    f = view.facts
    env = f.env or {}
    ld = env.get("LD_LIBRARY_PATH") or ""
    legacy = rel is None or rel.version < MODERN_BNB_LOADER
    host = f.host
    if host is not None and host.wsl and WSL_LIB_DIR not in ld.split(":") and legacy:
        out.append(
            _finding(
                cat,
                "cuda-libs-not-found",
                f"WSL: {WSL_LIB_DIR} is not on LD_LIBRARY_PATH",
                LD_LIBRARY_PATH=ld or None,
            )
        )
    nvcc = parse_version(f.toolkit_nvcc)
    toolkit_paths = [p for p in ld.split(":") if re.search(r"cuda[-_]?(\d+\.\d+)?/lib", p)]
    if nvcc is None and not toolkit_paths:
        return
    old_loader = rel is None or rel.loader == "libcudart-search"
    if nvcc is not None and view.torch_cuda is not None:
        if nvcc.major != view.torch_cuda.major and old_loader:
            out.append(
                _finding(
                    cat,
                    "stale-toolkit-on-path",
                    f"system CUDA toolkit {nvcc} differs from torch's CUDA {view.torch_cuda}",
                    nvcc=str(nvcc),
                    torch_cuda=str(view.torch_cuda),
                )
            )
    elif nvcc is not None and view.torch_cuda is None and old_loader:
        # torch unknown: a toolkit older than every CUDA library any 4-bit bitsandbytes ships can
        # only be a stale one (data-derived floor, not a guessed boundary).
        floor = _oldest_4bit_cuda(kb, view.platform or "linux-x86_64")
        if floor is not None and series(nvcc) < floor:
            out.append(
                _finding(
                    cat,
                    "stale-toolkit-on-path",
                    f"system CUDA toolkit {nvcc} is older than any CUDA library of a "
                    f"4-bit bitsandbytes (oldest: {floor})",
                    nvcc=str(nvcc),
                )
            )


def _oldest_4bit_cuda(kb: Knowledge, platform: str) -> Version | None:
    best: Version | None = None
    for r in kb.bnb.releases:
        if not r.has_4bit:
            continue
        build = r.builds.get(platform)
        for tag in build.cuda_libs if build else ():
            v = cuda_from_tag(tag)
            if v is not None and (best is None or v < best):
                best = v
    return best
