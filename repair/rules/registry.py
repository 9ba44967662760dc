"""The rule registry: one rule per failure class of plans/failures.toml, registered by its id.

A rule is a small function ``(ctx) -> iterable of Finding | Unknown``: it reads the view (through
the shared :class:`Context`), yields a finding for each instance of its class the facts prove, and
yields an :class:`Unknown` for a fact it needed and did not get. A rule stays quiet when its facts
are unknown. ``@ruled_out(id)`` registers the check that tells whether the facts exclude a class
an error message points to (``qfix explain`` of a ticket, ``qfix plan --facts`` with an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..catalogue import Catalogue
from ..findings import Finding, Severity, Unknown
from ..knowledge import BnbRelease, Knowledge
from ..view import (
    BnbLibs,
    View,
    bnb_available_libs,
    bnb_release,
    bnb_runtime_cuda,
    is_jetson,
)

T = TypeVar("T")

# Failure classes that only an error message can show (``qfix explain``): no probe of files tells
# them, so they have no rule, only signatures (and possibly a ruled_out check).
SIGNATURE_ONLY: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    """What every rule reads: the view, the knowledge base, the catalogue, and the derived facts
    several rules share (computed once)."""

    view: View
    kb: Knowledge
    cat: Catalogue
    jetson: bool  # an NVIDIA Jetson board (L4T)
    nvidia_here: bool  # an NVIDIA GPU that takes the CUDA remedies (not ROCm, not Jetson)
    bnb_rel: BnbRelease | None  # the knowledge base's entry for the installed bitsandbytes
    bnb_libs: BnbLibs | None  # the native libraries it has
    bnb_cuda: Version | None  # the CUDA version it keys its library on
    bnb_cuda_source: str  # where that came from
    # the range of bitsandbytes versions an error text proves (None: none) and the releases of
    # the knowledge base inside it, ascending (() without a range)
    bnb_text_spec: SpecifierSet | None
    bnb_in_text: tuple[BnbRelease, ...]
    # what a rule and the suspect of its class both need, worked out once per view (once())
    memo: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, compute: Callable[[Context], T]) -> T:
        """``compute(self)``, worked out on the first call for ``key`` and kept for the view."""
        if key not in self.memo:
            self.memo[key] = compute(self)
        return cast(T, self.memo[key])

    def finding(self, fid: str, summary: str, **evidence: Any) -> Finding:
        """A finding of class ``fid`` with the catalogue's severity; None evidence is left out."""
        return Finding(
            fid,
            self.cat.get(fid).severity,
            summary,
            {k: v for k, v in evidence.items() if v is not None},
        )

    def unconfirmed_or(self, finding: Finding, confirmed: bool) -> Finding:
        """An UNCONFIRMED fact is never the only ground for an error (design.md): a warning then."""
        if confirmed:
            return finding
        return Finding(finding.id, Severity.WARNING, finding.summary, finding.evidence)


def absent_or_unknown(
    ctx: Context, fid: str, installed: bool | None, name: str
) -> Iterator[Finding | Unknown]:
    """Class ``fid`` when package ``name`` is not installed; an Unknown when that is not known."""
    if installed is False:
        yield ctx.finding(fid, f"{name} is not installed in the target")
    elif installed is None:
        yield Unknown(name, f"{name}: whether it is installed, and which version")


def make_context(view: View, kb: Knowledge, cat: Catalogue) -> Context:
    jetson = is_jetson(view)
    cuda, source = bnb_runtime_cuda(view, kb)
    spec = view.implied.range("bitsandbytes")
    return Context(
        view=view,
        kb=kb,
        cat=cat,
        jetson=jetson,
        nvidia_here=view.has_nvidia_gpu is True and not view.rocm and not jetson,
        bnb_rel=bnb_release(view, kb),
        bnb_libs=bnb_available_libs(view, kb),
        bnb_cuda=cuda,
        bnb_cuda_source=source,
        bnb_text_spec=spec,
        bnb_in_text=() if spec is None else tuple(r for r in kb.bnb.releases if r.version in spec),
    )


def gpu_for_torch(view: View) -> bool:
    """An NVIDIA GPU that a CUDA torch would see: one the facts list, or a driver found with
    the GPUs unreported (an empty list means none: no torch build would see one)."""
    return bool(view.gpus) or (view.gpus is None and view.has_nvidia_gpu is True)


Rule = Callable[[Context], Iterable[Finding | Unknown]]
RuledOut = Callable[[View, Knowledge], bool]

RULES: dict[str, Rule] = {}


SuspectRule = Callable[[Context], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Suspect:
    run: SuspectRule
    replaces: tuple[str, ...]  # the Unknown keys whose range the finding states itself
    instead: str  # what stays under "Could not know" in its place (the version itself)
    # a suspicion that rests on the releases an unreported version may be (the releases before a
    # platform's first build or before a CUDA's first library, what pip gets by default), weighed
    # after those that read this machine's GPU or what the error text proves; among themselves,
    # in catalogue order (torch before bitsandbytes)
    fallback: bool = False


SUSPECTS: dict[str, Suspect] = {}


@dataclass(frozen=True, slots=True)
class Exclusion:
    check: RuledOut
    by_complete_probe: bool  # a full probe's facts rule the class out when no rule found it


EXCLUSIONS: dict[str, Exclusion] = {}


def rule(fid: str) -> Callable[[Rule], Rule]:
    """Register the rule of failure class ``fid`` (one rule per class)."""

    def register(fn: Rule) -> Rule:
        if fid in RULES:
            raise ValueError(f"two rules for failure class {fid!r}")
        RULES[fid] = fn
        return fn

    return register


def likeliest(cause: str, check: str) -> str:
    """The words every suspected finding ends with: nothing proves it, the facts leave it open,
    and the command that tells."""
    return (
        f"no fault the facts prove explains a failure, so {cause} is the likeliest cause "
        f"(check: {check})"
    )


def older_bitsandbytes_suspected(lacks: str) -> str:
    """A suspected finding of an unreported bitsandbytes whose older releases lack something
    here (``lacks``: "bitsandbytes has ... only from X")."""
    return f"{lacks}; its version is not in the facts and " + likeliest(
        "an older release without one", "`pip show bitsandbytes`"
    )


def suspect(
    fid: str, *, replaces: str | tuple[str, ...], instead: str, fallback: bool = False
) -> Callable[[SuspectRule], SuspectRule]:
    """Register the likeliest cause of class ``fid`` where a version the class depends on is
    unknown: it runs only when the facts and the error text show no fault (repair.diagnose),
    so a report whose one open question decides it is not called healthy (issue 12 item 1: an
    unknown version is a range). Its findings are warnings marked ``suspected``: nothing proves
    them. The range they state replaces the Unknown ``replaces``; ``instead`` stays listed."""

    def register(fn: SuspectRule) -> SuspectRule:
        if fid in SUSPECTS:
            raise ValueError(f"two suspects for failure class {fid!r}")
        keys = (replaces,) if isinstance(replaces, str) else replaces
        SUSPECTS[fid] = Suspect(fn, keys, instead, fallback)
        return fn

    return register


def ruled_out(fid: str, *, by_complete_probe: bool = True) -> Callable[[RuledOut], RuledOut]:
    """Register when the facts exclude class ``fid`` that an error message points to.

    ``by_complete_probe``: the facts of a full probe are complete, so a class no rule found there
    is not the case; False for a state of the running machine that no probe of files sees.
    """

    def register(fn: RuledOut) -> RuledOut:
        if fid in EXCLUSIONS:
            raise ValueError(f"two ruled_out checks for failure class {fid!r}")
        EXCLUSIONS[fid] = Exclusion(fn, by_complete_probe)
        return fn

    return register
