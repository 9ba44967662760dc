"""The project's own pins (``--requirements FILE`` / ``--constraint FILE``) as typed values.

Pure: the files are read by ``repair.projectpins`` (I/O, once per command); this module holds
what was read (``ProjectPins``), evaluates each line's environment marker for the *target*
interpreter (its Python version and platform from the facts, never qfix's own interpreter), and
lets the planner keep every planned version inside the pins (``restrict``, ``violations``).

A pin from a requirements file (``-r``) and one from a constraints file (``-c``) limit the
version alike; a requirements pin also says the project needs the package, so removing it (an
obsolete fork, say) conflicts with it too. A direct reference (``name @ url``) pins the
distribution to that file: qfix may not plan any version of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .facts import Facts
from .plan import TORCH_FAMILY

# PEP 508 marker variables (https://peps.python.org/pep-0508/#environment-markers).
_MARKER_VARS = re.compile(
    r"\b(python_version|python_full_version|sys_platform|platform_system|platform_machine|"
    r"os_name|implementation_name|platform_python_implementation|platform_release|"
    r"platform_version|implementation_version|extra)\b"
)
# What ``platform.system()`` says -> ``sys.platform`` / ``os.name`` (CPython's documented values).
_SYS_PLATFORM = {"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}


@dataclass(frozen=True, slots=True)
class Pin:
    """One line of the project's requirements or constraints that names a package."""

    name: str  # PEP 503 normalised
    specifier: SpecifierSet  # empty: any version (a bare name, or a direct reference)
    source: str  # "requirements.txt:3" (the file as given or as -r/-c named it, and the line)
    constraint: bool  # from a constraints file: limits the version, does not require it
    marker: str | None = None  # as written; evaluated for the target by ``for_target``
    url: str | None = None  # ``name @ url``: the project installs exactly that file

    @property
    def text(self) -> str:
        """``bitsandbytes==0.41.1`` (or ``name @ url``), as it appears in messages."""
        return f"{self.name} @ {self.url}" if self.url else f"{self.name}{self.specifier}"

    def allows(self, version: Version | str) -> bool:
        """Whether ``version`` (a local label such as ``+cu118`` included) satisfies this pin."""
        if self.url is not None:
            return False  # the project installs its own file; no version qfix plans is that
        try:
            v = Version(str(version))
        except InvalidVersion:
            return False
        return self.specifier.contains(v, prereleases=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "specifier": str(self.specifier),
            "source": self.source,
            "constraint": self.constraint,
            "marker": self.marker,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pin | None:
        """A pin from its JSON form (facts ``project_pins``); None when it does not parse."""
        try:
            return cls(
                name=str(d["name"]).lower(),
                specifier=SpecifierSet(str(d.get("specifier") or "")),
                source=str(d.get("source") or "?"),
                constraint=bool(d.get("constraint", False)),
                marker=d.get("marker") if isinstance(d.get("marker"), str) else None,
                url=d.get("url") if isinstance(d.get("url"), str) else None,
            )
        except (KeyError, ValueError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class ProjectPins:
    """Everything read from ``--requirements`` / ``--constraint`` files (nested ones included)."""

    # the options as given ("--requirements requirements.txt", "--constraint c.txt"): what a
    # printed next step repeats
    files: tuple[str, ...]
    pins: tuple[Pin, ...]
    notes: tuple[str, ...] = ()  # lines read that pin no version (an unnamed path or URL, ...)
    read: tuple[str, ...] = ()  # every file read, nested ones included ("-c constraints.txt")

    def __bool__(self) -> bool:
        return bool(self.files or self.pins)

    def on(self, name: str) -> tuple[Pin, ...]:
        key = _normalize(name)
        return tuple(p for p in self.pins if p.name == key)

    def violated_by(self, name: str, version: Version | str) -> tuple[Pin, ...]:
        """The pins on ``name`` that ``version`` does not satisfy."""
        return tuple(p for p in self.on(name) if not p.allows(version))

    def for_target(self, facts: Facts) -> tuple[ProjectPins, tuple[str, ...]]:
        """The pins whose marker holds for the target of ``facts`` (evaluated with its Python
        version and platform), and what could not be evaluated: a marker on a value the facts
        do not give keeps its pin (the safe side: a pin limits, it never installs)."""
        env = target_environment(facts)
        kept: list[Pin] = []
        unknown: list[str] = []
        for p in self.pins:
            if p.marker is None:
                kept.append(p)
                continue
            needs = set(_MARKER_VARS.findall(p.marker)) - {"extra"}
            missing = sorted(needs - set(env))
            if missing:
                kept.append(p)
                unknown.append(
                    f"project pin {p.text} ({p.source}): its marker needs "
                    f"{', '.join(missing)} of the target, which is not known; the pin is kept"
                )
                continue
            try:
                # extra "" : a requirements file line installs no extra (pip's own evaluation)
                holds = Marker(p.marker).evaluate({**env, "extra": ""})
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                # checked when read; a hand-written facts file may differ: keep the pin
                holds = True
            if holds:
                kept.append(p)
        return replace(self, pins=tuple(kept)), tuple(unknown)

    def constraint_lines(self) -> tuple[str, ...]:
        """The pins as lines of an installer constraints file (``-c``): name and specifier only
        (markers were evaluated for the target; a direct reference cannot be a constraint)."""
        out = [f"{p.name}{p.specifier}" for p in self.pins if p.url is None and str(p.specifier)]
        return tuple(dict.fromkeys(out))

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "read": list(self.read),
            "pins": [p.to_dict() for p in self.pins],
        }


def pins_from_facts(facts: Facts) -> tuple[Pin, ...]:
    """The pins a facts document carries (``project_pins``, put there by ``qfix plan
    --requirements``'s pipeline or written by hand in a ticket)."""
    raw = facts.extra.get("project_pins")
    if not isinstance(raw, list):
        return ()
    pins = (Pin.from_dict(d) for d in raw if isinstance(d, Mapping))
    return tuple(p for p in pins if p is not None)


def target_environment(facts: Facts) -> dict[str, str]:
    """The PEP 508 marker variables of the target that the facts give (the rest is unknown)."""
    env: dict[str, str] = {}
    py = facts.python.version if facts.python else None
    if py:
        parts = py.split(".")
        if len(parts) >= 2 and all(x.isdigit() for x in parts[:2]):
            env["python_version"] = ".".join(parts[:2])
            if len(parts) >= 3:
                env["python_full_version"] = py
    host = facts.host
    if host is not None and host.system:
        env["platform_system"] = host.system
        if host.system in _SYS_PLATFORM:
            env["sys_platform"] = _SYS_PLATFORM[host.system]
            env["os_name"] = "nt" if host.system == "Windows" else "posix"
    if host is not None and host.machine:
        env["platform_machine"] = host.machine
    return env


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- specifier algebra


def _points(spec: SpecifierSet) -> list[Version]:
    """The versions a specifier names, and one just above each (for ``>`` and ``!=``)."""
    out: list[Version] = []
    for c in spec:
        try:
            v = Version(c.version.replace(".*", ""))
        except InvalidVersion:
            continue
        out += [v, Version(".".join(str(x) for x in (*v.release, 1)))]
    return out


def may_meet(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both ``a`` and ``b``: tried on the versions either one
    names and just above them, which decides the ranges requirement files use (bounds, ``==``,
    ``!=``, ``~=``). Without any bound at all, they meet."""
    points = _points(a) + _points(b)
    if not points:
        return True
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in points)


def merge(spec: str, pins: Iterable[Pin]) -> str | None:
    """``spec`` narrowed by ``pins`` (``>=4.30.0,<5`` and ``transformers<4.40`` give
    ``<4.40,<5,>=4.30.0``), or None when no version can satisfy both."""
    out = SpecifierSet(spec)
    for p in pins:
        if p.url is not None or not may_meet(out, p.specifier):
            return None
        out &= p.specifier
    return str(out)


def torch_dependents(facts: Facts) -> dict[str, SpecifierSet]:
    """Distributions that pin torch (xformers, vllm, ...): name -> their torch specifier.

    The probe reports each distribution's Requires-Dist lines on torch, one per line; lines that
    only apply under an extra are reported apart (torch_optional_dependents) and are not pins.
    pip's conflict lines in an error text add those the facts do not list
    (repair.signatures.torch_pins_in_text).
    """
    listed = facts.extra.get("torch_dependents") or {}
    read = facts.extra.get("torch_dependents_text") or {}  # pip's conflict lines in a text
    raw = {
        **(read if isinstance(read, Mapping) else {}),
        **(listed if isinstance(listed, Mapping) else {}),
    }
    out: dict[str, SpecifierSet] = {}
    if not raw:
        return out
    # imported here: packaging.requirements (and its markers, tags) costs ~15 ms to import, and
    # only facts that list torch's dependents need it (qfix fleet plan: bench/bench_fleet.py)
    from packaging.requirements import InvalidRequirement, Requirement

    for name, req in raw.items():
        if name in TORCH_FAMILY or not isinstance(req, str):
            continue
        spec = SpecifierSet()
        for line in req.splitlines():
            try:
                r = Requirement(line)
            except InvalidRequirement:
                continue
            if r.name.lower() == "torch" and (r.marker is None or "extra" not in str(r.marker)):
                spec &= r.specifier
        if str(spec):
            out[str(name)] = spec
    return out
