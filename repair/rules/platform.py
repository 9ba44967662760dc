"""The rule of bnb-platform-unsupported: no bitsandbytes build for this OS, CPU or C library
(compat-facts C1 wheel platform notes, S21, S27; F27, F30, F41)."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding
from ..knowledge import BnbBuild, Knowledge
from ..view import View, tagged_glibc_floor
from .registry import Context, rule, ruled_out

# The file type of a native library on each OS (bitsandbytes ships .so, .dll and .dylib files).
_LIB_SUFFIX = {"linux": ".so", "windows": ".dll", "macos": ".dylib"}


@rule("bnb-platform-unsupported")
def bnb_platform_unsupported(ctx: Context) -> Iterator[Finding]:
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
    rel = ctx.bnb_rel
    if view.bnb is None or rel is None:
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
    if view.glibc is None:
        return
    if build.glibc_min is not None and view.glibc < build.glibc_min:
        yield ctx.finding(
            "bnb-platform-unsupported",
            f"bitsandbytes {view.bnb} needs glibc >= {build.glibc_min}; this host has {view.glibc}",
            glibc=str(view.glibc),
            required=str(build.glibc_min),
        )
        return
    floor = tagged_glibc_floor(ctx.kb, view.platform or "")
    if build.dist == "any" and floor is not None and view.glibc < floor:
        # compat-facts C1 wheel notes (S27, bnb#1685): below the manylinux floor of every tagged
        # wheel pip silently falls back to the last untagged release, which does not work there.
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
            f"this host has {view.glibc}"
            + ("" if confirmed else " (UNCONFIRMED for this release)"),
            glibc=str(view.glibc),
            required=str(need),
            library=f"cuda{tag}",
            confirmed=confirmed,
        )
        yield ctx.unconfirmed_or(f, confirmed)


@ruled_out("bnb-platform-unsupported")
def _bnb_build_fits(view: View, kb: Knowledge) -> bool:
    rel = kb.bnb.release(view.bnb) if view.bnb is not None else None
    build = rel.builds.get(view.platform or "") if rel is not None else None
    return (
        build is not None
        and build.native
        and not view.platform_assumed
        and (view.glibc is None or build.glibc_min is None or view.glibc >= build.glibc_min)
    )
