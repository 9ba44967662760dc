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
from ..view import arch_coverage, gpu_sms, public, torch_arch_list
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
    text) that no torch build with code for this machine's GPUs satisfies, where that matters
    now: the installed torch breaks the pin already, or cannot run on the GPU (a repair must
    move it). That distribution must move (or its pin change) before any torch can serve both
    the GPU and it. Only where the pin's range is known: every build it allows is in the
    knowledge base with its arch list (a nightly, a release past plans/, an arch list not read
    proves nothing), and the installed torch's version is known."""
    view, kb = ctx.view, ctx.kb
    deps = torch_dependents(view.facts)
    if not deps or not view.ccs or view.platform is None or view.rocm or ctx.jetson:
        return
    if view.torch is None:
        return
    have, _ = torch_arch_list(view, kb)
    installed_serves = have is not None and all(arch_coverage(have, cc) for cc in view.ccs)
    installed = Version(view.torch.public)
    for name, spec in deps.items():
        allowed = [
            var
            for rel in kb.torch.releases
            for var in rel.variants_for(view.platform)
            if var.cuda is not None
            for v in rel.versions
            if _pin_allows(spec, v, var.name)
        ]
        if not allowed or any(var.arch_for(view.platform) is None for var in allowed):
            continue  # the pin's range is not all known
        if any(
            all(arch_coverage(var.arch_for(view.platform) or (), cc) for cc in view.ccs)
            for var in allowed
        ):
            continue
        if installed_serves and spec.contains(installed, prereleases=True):
            continue  # the pin holds and the installed torch runs here: nothing to change
        arches = ", ".join(sorted(gpu_sms(view)))
        yield ctx.finding(
            FID,
            f"{name} requires torch{spec}, and no torch build it allows has code for this "
            f"GPU ({arches}): {name} must move to a release that allows a newer torch, or its "
            "pin change",
            package=name,
            pins=[f"torch{spec} ({name})"],
            dependent=True,
        )


def _pin_allows(spec: SpecifierSet, version: Version, label: str) -> bool:
    """Whether ``spec`` admits ``version`` as pip would match a build of it: by its public
    version, or with its local label ("===2.5.1+cu124" names the build itself)."""
    return spec.contains(version, prereleases=True) or spec.contains(
        Version(f"{version}+{label}"), prereleases=True
    )
