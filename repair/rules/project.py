"""project-pin-conflict: the project's own pins (``--requirements`` / ``--constraint``) leave no
release that can do 4-bit here.

The pins reach the facts as ``project_pins`` (the pipeline adds those whose marker holds for the
target; a ticket may carry them). This rule proves what the pins exclude before any plan: no
bitsandbytes with 4-bit and a native build for this platform and Python, no transformers at or
above its 4-bit floor (plans/huggingface.toml), no torch release for this platform and Python.
The planner (repair.pinplan) reports the same class, naming its chosen step, when the repair it
would make leaves a pin and no other candidate fits.
"""

from __future__ import annotations

from collections.abc import Iterator

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..findings import Finding, Unknown
from ..pins import Pin, may_meet, pins_from_facts, torch_dependents
from ..view import arch_coverage, public
from .registry import Context, rule

FID = "project-pin-conflict"


def _pinned(pins: tuple[Pin, ...], name: str) -> tuple[Pin, ...]:
    return tuple(p for p in pins if p.name == name)


def _both_sides(needs: str, pins: tuple[Pin, ...]) -> str:
    return f"the repair needs {needs} but " + " and ".join(
        f"{p.source} pins {p.text}" for p in pins
    )


@rule(FID)
def project_pin_conflict(ctx: Context) -> Iterator[Finding | Unknown]:
    yield from _dependent_pins_exclude_the_gpu(ctx)
    pins = pins_from_facts(ctx.view.facts)
    if not pins:
        return
    view, kb = ctx.view, ctx.kb
    py = public(view.python) if view.python is not None else None
    bnb = _pinned(pins, "bitsandbytes")
    if bnb and view.platform is not None:
        usable = [
            r
            for r in kb.bnb.releases
            if r.has_4bit
            and not r.known_bad
            and (b := r.builds.get(view.platform)) is not None
            and b.native
            and (py is None or r.python is None or r.admits_python(py))
        ]
        if usable and not any(all(p.allows(r.version) for p in bnb) for r in usable):
            yield ctx.finding(
                FID,
                _both_sides(
                    f"a bitsandbytes with 4-bit for {view.platform} (>= {usable[0].version}, "
                    f"newest {usable[-1].version})",
                    bnb,
                ),
                package="bitsandbytes",
                pins=[f"{p.text} ({p.source})" for p in bnb],
            )
    for hf in kb.hf:
        if hf.feature != "4bit-load" or hf.when or hf.package in ("python", "bitsandbytes"):
            continue
        ps = _pinned(pins, hf.package)
        floor = SpecifierSet(f">={hf.minimum}")
        if ps and not all(p.url is None and may_meet(floor, p.specifier) for p in ps):
            yield ctx.finding(
                FID,
                _both_sides(f"{hf.package}>={hf.minimum} ({hf.reason})", ps),
                package=hf.package,
                pins=[f"{p.text} ({p.source})" for p in ps],
            )
    torch = _pinned(pins, "torch")
    if torch and view.platform is not None:
        usable_torch = [
            rel
            for rel in kb.torch.releases
            if rel.variants_for(view.platform) and (py is None or rel.admits_python(py))
        ]
        allowed = [
            rel
            for rel in usable_torch
            if any(
                all(p.allows(f"{v}+{var.name}") for p in torch)
                for v in rel.versions
                for var in rel.variants_for(view.platform)
            )
        ]
        if usable_torch and not allowed:
            yield ctx.finding(
                FID,
                _both_sides(
                    f"a torch release for {view.platform}"
                    + (f" and Python {py}" if py else "")
                    + f" ({usable_torch[0].series} to {usable_torch[-1].series})",
                    torch,
                ),
                package="torch",
                pins=[f"{p.text} ({p.source})" for p in torch],
            )


def _dependent_pins_exclude_the_gpu(ctx: Context) -> Iterator[Finding]:
    """A distribution's requirement on torch (its Requires-Dist, or pip's conflict line in the
    text) that no torch build with code for this machine's GPUs satisfies: that distribution
    must move (or its pin change) before any torch can serve the GPU -- a pin of the project's
    stack, the same fault as a requirements file's. Only where every GPU's compute capability
    and every candidate's arch list are known (a build of unknown arch list proves nothing)."""
    view, kb = ctx.view, ctx.kb
    deps = torch_dependents(view.facts)
    if not deps or not view.ccs or view.platform is None or view.rocm or ctx.jetson:
        return
    serving: list[Version] = []
    for rel in kb.torch.releases:
        for var in rel.variants_for(view.platform):
            arch = var.arch_for(view.platform)
            if var.cuda is None or arch is None:
                continue
            if all(arch_coverage(arch, cc) for cc in view.ccs):
                serving += [Version(f"{v}+{var.name}") for v in rel.versions]
    if not serving:
        return
    first = min(serving)
    for name, spec in deps.items():
        if any(spec.contains(v, prereleases=True) for v in serving):
            continue
        arches = ", ".join(sorted({f"sm_{cc.major}{cc.minor}" for cc in view.ccs}))
        yield ctx.finding(
            FID,
            f"{name} requires torch{spec}, and no torch build it allows has code for this "
            f"GPU ({arches}; the first is torch {first.public}+{first.local}): {name} must move "
            "to a release that allows it, or its pin change",
            package=name,
            pins=[f"torch{spec} ({name})"],
            dependent=True,
        )
