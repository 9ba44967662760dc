"""The rule of bnb-platform-unsupported: no bitsandbytes build for this OS, CPU or C library
(compat-facts C1 wheel platform notes, S21, S27; F27, F30, F41)."""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import Version

from ..findings import Finding, Unknown
from ..knowledge import BnbBuild, BnbRelease, Knowledge
from ..view import (
    TORCH_KEYED_LOADER,
    View,
    bnb_release,
    libstdcxx_misfit,
    tagged_glibc_floor,
    wheel_misfits,
)
from .registry import Context, older_bitsandbytes_suspected, rule, ruled_out, suspect

# The file type of a native library on each OS (bitsandbytes ships .so, .dll and .dylib files).
_LIB_SUFFIX = {"linux": ".so", "windows": ".dll", "macos": ".dylib"}


@rule("bnb-platform-unsupported")
def bnb_platform_unsupported(ctx: Context) -> Iterator[Finding | Unknown]:
    """The first reason found, in order: no known platform, another OS's libraries, no native
    build, glibc below the build's, below every tagged wheel, a library's own glibc need."""
    view = ctx.view
    if view.platform is None:
        h = view.facts.host
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"no bitsandbytes or torch build in the knowledge base is for "
            f"{h.system if h else '?'}/{h.machine if h else '?'}",
            system=h.system if h else None,
            machine=h.machine if h else None,
        )
        return
    foreign = _foreign_libraries(ctx)
    if foreign is not None:
        yield foreign
        return
    if view.implied.libstdcxx:
        # the message shows the loader's libstdc++ lacks a symbol version a library needs (F41)
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"the libstdc++ that the loader finds first lacks {view.implied.libstdcxx} "
            "(read from the error message)",
            libstdcxx=view.implied.libstdcxx,
            conda=view.conda or None,
            source="error message",
        )
        return
    refused = _refused_wheel(ctx)
    if refused is not None:
        yield refused
        if view.facts.package("pip") is None and not view.refusal_explained:
            yield Unknown(
                "pip-version",
                "pip's version: one older than 20.3 refuses every manylinux_X_Y and macOS 11+ "
                "wheel, so without it the refusal proves nothing about this host's OS",
            )
        return
    rel = ctx.bnb_rel
    if view.bnb is None:
        implied = list(_implied_findings(ctx))
        yield from implied or _bnb_version_for_platform(ctx)
        return
    if rel is None:
        return
    build = rel.builds.get(view.platform)
    if build is None or not build.native:
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {view.bnb} has no native build for {view.platform}",
            bitsandbytes=str(view.bnb),
            platform=view.platform,
        )
        return
    yield from _glibc_findings(ctx, build)


def _implied_findings(ctx: Context) -> Iterator[Finding]:
    """bitsandbytes' version is unknown, but an error message proves a build property or a range
    (plans/signatures.toml): a library of another OS, or a range without a native build here."""
    view, implied = ctx.view, ctx.view.implied
    if implied.bnb_foreign_build:
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"the bitsandbytes library that was loaded is another platform's file, none for "
            f"{view.platform} (read from the error message: a wheel without a {view.platform} "
            "build)",
            platform=view.platform,
            source="error message",
        )
        return
    spec, inside = ctx.bnb_text_spec, ctx.bnb_in_text
    native = [
        r for r in inside if (b := r.builds.get(view.platform or "")) is not None and b.native
    ]
    if inside and not native:
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {spec} (read from the error message) has no native build for "
            f"{view.platform}",
            bitsandbytes=str(spec),
            platform=view.platform,
            source="error message",
        )
    elif (shipping := _would_have_loaded(view, native)) and len(native) < len(inside):
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {spec} (read from the error message) loaded no CUDA library although "
            f"torch saw the GPU; the releases of that range with a build for {view.platform} "
            f"({', '.join(str(r.version) for r in native)}) ship libbitsandbytes_{shipping} "
            f"for torch's CUDA {view.torch_cuda} and load it: the installed one is older, "
            f"without a build for {view.platform}",
            bitsandbytes=str(spec),
            platform=view.platform,
            source="error message",
        )


def _would_have_loaded(view: View, native: list[BnbRelease]) -> str | None:
    """The library ("cuda121") every release of ``native`` loads for torch's CUDA, where the
    text shows their loader's failure with the GPU in sight: the legacy loader's "CUDA Setup
    failed despite GPU being available" (S38), which from 0.40.1 follows torch's CUDA
    (compat-facts C4, TORCH_KEYED_LOADER), so such a release would have loaded that library.
    None otherwise."""
    implied, cuda, platform = view.implied, view.torch_cuda, view.platform
    if not native or cuda is None or platform is None:
        return None
    if not (implied.bnb_cuda_not_loaded and implied.torch_cuda_available):
        return None
    if any(r.version < TORCH_KEYED_LOADER for r in native):
        return None
    libs = [r.lib_for_cuda(cuda, platform) for r in native]
    return None if None in libs else libs[0]


def _first_native_for_unknown_bnb(ctx: Context) -> tuple[str, Version] | None:
    """bitsandbytes' version is unknown (a range: the whole knowledge base, or what an error
    text proves) and only later releases of it have a native build here (Windows from 0.43.0,
    macOS from 0.49.0, plans/bitsandbytes.toml): (how to name the range, the first such
    release). None where bitsandbytes is not known to be installed, or every or no release of
    the range builds here (the rule's own cases)."""
    view = ctx.view
    if view.bnb is not None or view.bnb_installed is not True or view.platform is None:
        return None
    reported = view.facts.bitsandbytes
    if reported is not None and reported.native_libs:
        return None  # its libraries are known: the rule judges them, not the version's range
    spec = ctx.bnb_text_spec
    inside = ctx.kb.bnb.releases if spec is None else ctx.bnb_in_text  # ascending
    native = [r for r in inside if (b := r.builds.get(view.platform)) is not None and b.native]
    if not native or native[0] is inside[0]:
        return None
    said = f"bitsandbytes {spec} (read from the error message)" if spec else "bitsandbytes"
    return said, native[0].version


def _bnb_version_for_platform(ctx: Context) -> Iterator[Unknown]:
    found = _first_native_for_unknown_bnb(ctx)
    if found is not None:
        yield Unknown(
            "bnb-version-for-platform",
            f"bitsandbytes' version: {found[0]} has native builds for {ctx.view.platform} only "
            f"from {found[1]}; an older release fails to load its library here",
        )


@suspect(
    "bnb-platform-unsupported",
    replaces="bnb-version-for-platform",
    instead="bitsandbytes' version (installed, not reported): the suspected finding says "
    "which releases have no build here",
    fallback=True,
)
def _bnb_older_than_platform(ctx: Context) -> Iterator[Finding]:
    """With nothing else wrong, such a bitsandbytes is the likeliest cause: a release of its
    range without a build here; the plan moves bitsandbytes to one that has it."""
    found = _first_native_for_unknown_bnb(ctx)
    if found is None:
        return
    said, first = found
    yield ctx.finding(
        "bnb-platform-unsupported",
        older_bitsandbytes_suspected(
            f"{said} has native builds for {ctx.view.platform} only from {first}"
        ),
        platform=ctx.view.platform,
        first_release=str(first),
    )


def _refusal_said(view: View) -> str:
    """How the error text showed the refusal: the wheel itself, or pip's list of the versions
    it offered here (plans/signatures.toml pip-bnb-versions-offered)."""
    offered = view.implied.bnb_index_versions
    if offered and not view.implied.wheel_tag_refused:
        newest = offered.split(",")[-1].strip()
        return (
            f"pip offered bitsandbytes here only up to {newest} (read from the error message), "
            f"so it refuses the {view.refused_tag} wheels of the later releases"
        )
    return f"pip refused bitsandbytes' {view.refused_tag} wheel here (read from the error message)"


def _refused_wheel(ctx: Context) -> Finding | None:
    """pip refused a bitsandbytes wheel here, which bounds this host's glibc or macOS (the view's
    glibc_below / macos_below, repair/wheeltags.py: S69-S71), and no 4-bit release has a build
    for this platform that installs and loads below that bound."""
    view, kb = ctx.view, ctx.kb
    if view.refused_tag is None:
        return None
    if not view.refusal_explained:
        # pip may be older than 20.3 and not know the tag's form, or the wheel is for another
        # CPU than this Python's: a warning; the plan's manual step says how to tell them apart
        causes = {
            "Darwin": "an x86_64 Python (Rosetta) or a macOS older than the wheel's",
            # win_amd64 is no PEP 600 tag: any pip reads it; a 32-bit or ARM Python does not
            "Windows": "a 32-bit or an ARM64 Python",
        }.get(
            view.system or "",
            "a 32-bit Python, another CPU, musl instead of glibc, or an older OS than the wheel's",
        )
        f = ctx.finding(
            "bnb-platform-unsupported",
            f"{_refusal_said(view)}: "
            + (causes if view.system == "Windows" else f"a pip older than 20.3, {causes}"),
            refused_tag=view.refused_tag,
            source="error message",
        )
        return ctx.unconfirmed_or(f, False)
    fitting = []
    for r in kb.bnb.releases:
        b = r.builds.get(view.platform or "")
        if not r.has_4bit or r.known_bad or b is None or not b.native:
            continue
        if not wheel_misfits(view, b) and libstdcxx_misfit(view, kb, b) is None:
            fitting.append(r.version)
    bound = (
        f"glibc is {view.glibc_said}"
        if view.glibc_below is not None or view.refusal_by_known_glibc
        else f"macOS is below {view.macos_below} (pip refused the {view.refused_tag} wheel here)"
    )
    if fitting:
        # an older release's wheel installs and loads here (an untagged one against the
        # libstdc++ the target loads): the plan installs it; a warning, not a dead end
        f = ctx.finding(
            "bnb-platform-unsupported",
            f"this host's {bound}: of the bitsandbytes releases with 4-bit, only those up to "
            f"{max(fitting)} have a {view.platform} wheel that installs and loads there",
            refused_tag=view.refused_tag,
            newest_fitting=str(max(fitting)),
            source="error message",
        )
        return ctx.unconfirmed_or(f, False)
    return ctx.finding(
        "bnb-platform-unsupported",
        f"this host's {bound}: no bitsandbytes release with 4-bit has a {view.platform} "
        "wheel that installs and loads there",
        refused_tag=view.refused_tag,
        glibc_below=str(view.glibc_below) if view.glibc_below is not None else None,
        macos_below=str(view.macos_below) if view.macos_below is not None else None,
        source="error message",
    )


def _foreign_libraries(ctx: Context) -> Finding | None:
    view = ctx.view
    b = view.facts.bitsandbytes
    want = _LIB_SUFFIX.get((view.platform or "").split("-")[0])
    libs = [n for n in (b.native_libs or ()) if n.startswith("libbitsandbytes")] if b else []
    if want and libs and not any(n.endswith(want) for n in libs):
        # Only another OS's libraries (a py3-none-any wheel <= 0.42 carries Linux .so files
        # everywhere, compat-facts C1; "not a mach-o file" on macOS, bnb#485).
        return ctx.finding(
            "bnb-platform-unsupported",
            f"the installed bitsandbytes has only .{libs[0].rsplit('.', 1)[-1]} "
            f"libraries, none for {view.platform}",
            native_libs=libs,
        )
    return None


def _glibc_findings(ctx: Context, build: BnbBuild) -> Iterator[Finding]:
    view = ctx.view
    need = build.glibcxx_min
    if need is not None and view.glibcxx is not None and view.glibcxx < need:
        # S37: the untagged wheels' libraries need GLIBCXX_3.4.21 (3.4.26 for 0.41.3.post1),
        # and the libstdc++ here is older (measured by the probe, or the system one of this OS
        # release, plans/distros.toml).
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {view.bnb} needs libstdc++ GLIBCXX_{need}; this host's libstdc++ "
            f"has GLIBCXX_{view.glibcxx} ({view.glibcxx_said})",
            libstdcxx_have=str(view.glibcxx),
            libstdcxx_required=str(need),
            inferred_from=view.glibcxx_from,
            measured_from=view.glibcxx_path,
        )
        return
    if view.glibc is None:
        return
    if build.glibc_min is not None and view.glibc < build.glibc_min:
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {view.bnb} needs glibc >= {build.glibc_min}; this host has "
            f"{view.glibc}{view.glibc_note}",
            glibc=str(view.glibc),
            required=str(build.glibc_min),
            inferred_from=view.glibc_from,
        )
        return
    floor = tagged_glibc_floor(ctx.kb, view.platform or "")
    unknown_cxx = view.glibcxx is None
    if build.dist == "any" and floor is not None and view.glibc < floor and unknown_cxx:
        # compat-facts C1 wheel notes (S27, bnb#1685): below the manylinux floor of every tagged
        # wheel pip silently falls back to the last untagged release, which does not work there
        # (S37: for its libstdc++ need; used where the libstdc++ found first is unknown).
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"glibc {view.glibc} is below every bitsandbytes wheel (>= "
            f"{floor}); pip fell back to the untagged {view.bnb}, which does "
            "not work here",
            glibc=str(view.glibc),
            required=str(floor),
        )
        return
    yield from _library_glibc(ctx, build)


def _library_glibc(ctx: Context, build: BnbBuild) -> Iterator[Finding]:
    # F27 (bnb#1610, confirmed by a maintainer): the 0.45.x CUDA 12.6/12.8 libraries required
    # GLIBC_2.34 by accident; fixed in 0.46.0. The knowledge base carries it per library.
    view, rel, cuda = ctx.view, ctx.bnb_rel, ctx.view.torch_cuda
    if view.glibc is None or cuda is None or rel is None:
        return
    tag = f"{cuda.major}{cuda.minor}"
    need = build.lib_glibc_min.get(tag)
    if need is not None and view.glibc < need:
        confirmed = rel.is_confirmed(f"builds.{view.platform}.lib_glibc")
        f = ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {view.bnb}'s cuda{tag} library needs glibc >= {need}; "
            f"this host has {view.glibc}{view.glibc_note}"
            + ("" if confirmed else " (UNCONFIRMED for this release)"),
            glibc=str(view.glibc),
            required=str(need),
            library=f"cuda{tag}",
            confirmed=confirmed,
            inferred_from=view.glibc_from,
        )
        yield ctx.unconfirmed_or(f, confirmed)


@ruled_out("bnb-platform-unsupported")
def _bnb_build_fits(view: View, kb: Knowledge) -> bool:
    if view.implied.bnb_foreign_build or view.implied.libstdcxx:
        return False  # the message itself shows a library that does not load here
    rel = bnb_release(view, kb)
    build = rel.builds.get(view.platform or "") if rel is not None else None
    return (
        build is not None
        and build.native
        and not view.platform_assumed
        and (view.glibc is None or build.glibc_min is None or view.glibc >= build.glibc_min)
    )
