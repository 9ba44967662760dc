"""Group nodes by the facts that decide the plan, and plan once per group.

Pure: no process, no socket. The grouping key is the canonical JSON of a node's facts with the
node-local noise removed; everything else stays in the key. So:

* noise never splits a group. The noise is exactly: where the interpreter lives (its path and its
  venv prefix, wherever they appear: ``python.executable``, ``python.prefix``, the paths of torch
  and bitsandbytes inside it), ``CUDA_VISIBLE_DEVICES`` (a per-job mask; NVML, which qfix reads,
  lists every GPU regardless), and how the probe got its answers (``driver.attempts``, the deep
  probe's ``seconds``);
* any other fact that differs -- a package version, a GPU, the driver, the Python version, an
  environment variable that changes which library loads -- always splits, whether or not it would
  change the plan. Splitting too much costs one more plan; merging too much would apply a wrong
  plan, so the key errs on the side of splitting.

The group's plan is made once, from the group's facts with the interpreter replaced by
``{python}``; on a node, ``qfix apply --expect-plan DIGEST`` re-plans and compares digests
(repair.digest). tests/test_fleet_grouping.py checks by property that every node of a group plans
the same decisions as the group.
"""

from __future__ import annotations

import json
import marshal
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from ..digest import PLACEHOLDER, plan_digest
from ..errors import QfixError
from .nodeset import fold
from .records import NodeRecord, Unreadable

PREFIX_PLACEHOLDER = "{prefix}"
FLEET_PLAN_SCHEMA = "qfix.fleet-plan/1"

# The manual steps a venv cannot fix, by the kind of work they need (fleet plan's "manual" class).
DRIVER_MANUAL = frozenset(
    {"driver-too-old", "no-nvidia-driver", "cuda-init-failed", "cuda-libs-not-found"}
)
ARCH_MANUAL = frozenset({"gpu-arch-unsupported", "gpu-too-old-for-bnb", "mixed-gpus"})
CLASSES = ("healthy", "repairable", "manual", "unknown")


def _json_inner(text: str) -> str:
    """How ``text`` appears inside a JSON string (escapes included): what ``json.dumps(text)``
    returns for a str, without its per-call set-up."""
    return encode_basestring_ascii(text)[1:-1]


def canonical(facts: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The grouping key of a ``qfix.facts/1`` document and the normalised document itself."""
    key = canonical_key(facts)
    return key, json.loads(key)


_ENCODE = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, check_circular=False
).encode  # the C encoder, called without json.dumps's per-call set-up
_ENCODE_SORTED = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, check_circular=False
).encode


def canonical_key(facts: Mapping[str, Any]) -> str:
    """The grouping key: canonical JSON (sorted keys) of the facts with the noise removed, so
    equal facts give equal keys whatever their order."""
    return _denoised(facts, _ENCODE_SORTED)


def cheap_key(facts: Mapping[str, Any]) -> str:
    """A first-pass key: the same text as ``canonical_key`` but in the document's own key order
    (no sort). Equal cheap keys mean equal facts, so equal canonical keys; records of one writer
    share the key order, and ``group_records`` canonicalises one document per cheap key, which
    merges the rare equal facts written in another order."""
    return _denoised(facts, _ENCODE)


def _denoised(facts: Mapping[str, Any], encode: Any) -> str:
    doc = _denoised_doc(facts)
    text: str = encode(doc)
    # The executable first: it usually lies inside the prefix.
    for value, placeholder in _paths(doc):
        text = text.replace(_json_inner(value), placeholder)
    return text


def _denoised_doc(facts: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``facts`` without the probe's noise (the interpreter's paths stay)."""
    doc = dict(facts)
    driver = doc.get("driver")
    if isinstance(driver, Mapping) and driver.get("attempts"):
        doc["driver"] = {**driver, "attempts": []}
    env = doc.get("env")
    if isinstance(env, Mapping) and env.get("CUDA_VISIBLE_DEVICES") is not None:
        doc["env"] = {**env, "CUDA_VISIBLE_DEVICES": None}
    deep = doc.get("deep")
    if isinstance(deep, Mapping) and "seconds" in deep:
        doc["deep"] = {**deep, "seconds": None}
    return doc


def _paths(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, placeholder) for the executable, then the prefix, where each is a path."""
    py = doc.get("python")
    if not isinstance(py, Mapping):
        return []
    return [
        (value, placeholder)
        for value, placeholder in (
            (py.get("executable"), PLACEHOLDER),
            (py.get("prefix"), PREFIX_PLACEHOLDER),
        )
        if isinstance(value, str) and len(value) > 1
    ]


# A path that JSON and marshal both spell verbatim, and only inside strings: "/" first (JSON has
# no "/" outside strings and no escape containing one), then printable ASCII without a quote or
# a backslash (so a match never starts, ends or crosses an escape or the end of a string).
_PLAIN_PATH = re.compile(r"/[\x20\x21\x23-\x5b\x5d-\x7e]+")


def _marshal_key(facts: Mapping[str, Any]) -> bytes | None:
    """A faster first-pass key than ``cheap_key`` (marshal is ~3x faster than the JSON
    encoder), or None where it cannot stand in for it.

    The paths are replaced in the strings themselves: in the python section and the top-level
    strings (torch_path, bitsandbytes_path), where the probe writes them. With plain paths
    (``_PLAIN_PATH``), ``cheap_key``'s replacement in the JSON text replaces exactly those
    occurrences within the strings, so its text is the JSON of this replaced document when no
    other string still holds a path (checked in the marshal bytes, where every string is its
    UTF-8). Marshal (format 2: no references, no interning marks) keeps types and key order, so
    equal bytes mean equal replaced documents, hence equal ``cheap_key``: buckets by this key
    split nodes exactly as ``cheap_key`` does, never merge more (tests/test_fleet_grouping.py).
    """
    doc = _denoised_doc(facts)
    paths = _paths(doc)
    if any(_PLAIN_PATH.fullmatch(value) is None for value, _ in paths):
        return None
    if paths:

        def replaced(text: str) -> str:
            for value, placeholder in paths:
                text = text.replace(value, placeholder)
            return text

        py = doc["python"]
        doc["python"] = {k: replaced(v) if type(v) is str else v for k, v in py.items()}
        for k, v in doc.items():
            if type(v) is str:
                doc[k] = replaced(v)
    try:
        data = marshal.dumps(doc, 2)
    except ValueError:  # not a JSON value (cannot happen for a decoded record)
        return None
    if any(value.encode("utf-8", "surrogatepass") in data for value, _ in paths):
        return None
    return data


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    nodes: tuple[str, ...]
    facts: Mapping[str, Any] | None  # normalised (placeholders); None for the unknown group
    plan: Mapping[str, Any] | None  # qfix.plan/1 made for {python}
    digest: str | None
    cls: str  # healthy | repairable | manual | unknown
    manual_kind: str | None  # driver | gpu-arch | platform (cls == "manual")
    reason: str | None  # why a node set is unknown
    nodeset: str = ""  # fold(nodes), folded once (group_records fills it)

    def __post_init__(self) -> None:
        if not self.nodeset:
            object.__setattr__(self, "nodeset", fold(self.nodes))

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan or {}
        return {
            "id": self.id,
            "nodes": self.nodeset,
            "count": len(self.nodes),
            "class": self.cls,
            "manual_kind": self.manual_kind,
            "digest": self.digest,
            "findings": [f.get("id") for f in plan.get("findings") or ()],
            "reason": self.reason,
            "plan": self.plan,
        }


def classify(plan: Mapping[str, Any]) -> tuple[str, str | None]:
    """healthy | repairable | manual (with its kind) | unknown, from a qfix.plan/1 document."""
    required = [m.get("id") for m in plan.get("manual") or () if m.get("required")]
    if required:
        if any(i in DRIVER_MANUAL for i in required):
            return "manual", "driver"
        if any(i in ARCH_MANUAL for i in required):
            return "manual", "gpu-arch"
        return "manual", "platform"
    if plan.get("healthy"):
        return "healthy", None
    if plan.get("steps"):
        return "repairable", None
    return "unknown", None


def latest(records: Iterable[NodeRecord | Unreadable], kind: str) -> dict[str, Any]:
    """node -> its latest record of ``kind`` (by start time, then reading order); an Unreadable
    counts only for a node that has no readable record of that kind."""
    out: dict[str, Any] = {}
    for r in records:
        if isinstance(r, Unreadable):
            out.setdefault(r.node, r)
            continue
        if r.kind != kind:
            continue
        prev = out.get(r.node)
        if (
            prev is None
            or isinstance(prev, Unreadable)
            or (r.started or "") >= (prev.started or "")
        ):
            out[r.node] = r
    return out


PlanFn = Any  # Callable[[Mapping[str, Any]], Mapping[str, Any]]: normalised facts -> plan doc


def default_plan_fn(torch_index: str | None = None) -> PlanFn:
    """Plan a normalised facts document with the single-machine core (repair.pipeline.analyse).
    The core is imported on the first plan: fleet plan imports it while its workers read."""

    def plan_fn(facts: Mapping[str, Any]) -> Mapping[str, Any]:
        from ..facts import facts_from_dict
        from ..pipeline import analyse

        return analyse(
            facts_from_dict(dict(facts), "group facts"), torch_index=torch_index
        ).plan.to_dict()

    return plan_fn


@dataclass(frozen=True, slots=True)
class Scan:
    """What grouping keeps of a run of records (``scan_records``): small enough to cross a
    process boundary (repair.fleet.parallel scans chunks of the files in worker processes).

    ``entries``, in reading order, one per unreadable or detect record: (node, started,
    outcome); ``started`` is None for an unreadable record; ``outcome`` is the index of the
    node's canonical key in ``keys``, or the reason its node is unknown. ``keys``: the canonical
    grouping keys, one per first-pass key seen."""

    entries: tuple[tuple[str, str | None, int | str], ...]
    keys: tuple[str, ...]


def scan_records(records: Iterable[NodeRecord | Unreadable]) -> Scan:
    """Bucket ``records`` (consumed once) by first-pass key and canonicalise one document per
    bucket. Nodes are bucketed by the cheap key (unsorted JSON of the de-noised facts) or, where
    it stands in for it, the faster marshal key."""
    entries: list[tuple[str, str | None, int | str]] = []
    buckets: dict[str | bytes, int] = {}  # first-pass key -> index in keys
    keys: list[str] = []
    for rec in records:
        if isinstance(rec, Unreadable):
            entries.append((rec.node, None, f"unreadable record: {rec.reason}"))
            continue
        if rec.kind != "detect":
            continue
        started = rec.started or ""
        if rec.exit_code != 0:
            entries.append((rec.node, started, f"qfix detect exited {rec.exit_code}"))
            continue
        doc = rec.document
        fast = _marshal_key(doc)
        first = cheap_key(doc) if fast is None else fast
        bucket = buckets.setdefault(first, len(buckets))
        if bucket == len(keys):
            # facts that differ only in key order (or a marshal bucket and the cheap-key bucket
            # of the same facts) meet here
            keys.append(canonical_key(json.loads(first if fast is None else cheap_key(doc))))
        entries.append((rec.node, started, bucket))
    return Scan(tuple(entries), tuple(keys))


def _latest_per_node(scans: Iterable[Scan]) -> dict[str, tuple[str, bool, str]]:
    """node -> (started, planned?, canonical key | reason) of its latest detect record (by start
    time, then reading order); an unreadable record counts only for a node without another."""
    best: dict[str, tuple[str, bool, str]] = {}
    for scan in scans:
        keys = scan.keys
        for node, started, outcome in scan.entries:
            if started is None:
                best.setdefault(node, ("", False, outcome))  # type: ignore[arg-type]
                continue
            prev = best.get(node)
            if prev is not None and prev[0] > started:
                continue
            if type(outcome) is int:
                best[node] = (started, True, keys[outcome])
            else:
                best[node] = (started, False, outcome)  # type: ignore[assignment]
    return best


PlanOutcome = Any  # Mapping[str, Any] (a qfix.plan/1 document) | str (why it cannot be planned)


def plan_each(plan_fn: PlanFn, docs: Sequence[Mapping[str, Any]]) -> list[PlanOutcome]:
    """``plan_fn`` over ``docs``: each plan, or the reason (a str) where qfix cannot plan it."""
    out: list[PlanOutcome] = []
    for doc in docs:
        try:
            out.append(plan_fn(doc))
        except QfixError as exc:
            out.append(f"cannot plan: {exc.message}")
    return out


def group_records(
    records: Iterable[NodeRecord | Unreadable], plan_fn: PlanFn | None = None
) -> tuple[Group, ...]:
    """Group the nodes by their latest detect record; plan once per group. Nodes whose record is
    unreadable, whose detect failed, or whose facts cannot be planned form ``unknown`` groups.

    ``records`` is consumed once (an iterator is fine): per node only the start time and the
    bucket number are kept, and one document per bucket (first-pass key).
    """
    return group_scans((scan_records(records),), plan_fn)


def group_scans(
    scans: Iterable[Scan],
    plan_fn: PlanFn | None = None,
    plan_all: Any = None,
) -> tuple[Group, ...]:
    """``group_records`` over scans of consecutive runs of the records, in reading order (the
    same groups, nodes and order as one scan of them all). ``plan_all``: plans a list of
    normalised facts documents at once (default: ``plan_each`` with ``plan_fn``); it returns
    what ``plan_each`` does, in order."""
    plan_fn = plan_fn or default_plan_fn()
    by_key: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for node, (_, ok, value) in _latest_per_node(scans).items():
        (by_key if ok else unknown).setdefault(value, []).append(node)
    docs = [json.loads(key) for key in by_key]
    outcomes = plan_all(docs) if plan_all is not None else plan_each(plan_fn, docs)
    planned: list[Group] = []
    for doc, nodes, plan in zip(docs, by_key.values(), outcomes, strict=True):
        if isinstance(plan, str):
            unknown.setdefault(plan, []).extend(nodes)
            continue
        cls, kind = classify(plan)
        digest = plan_digest(plan, PLACEHOLDER)
        planned.append(Group("", tuple(nodes), doc, plan, digest, cls, kind, None))
    order = {c: i for i, c in enumerate(CLASSES)}
    planned.sort(key=lambda g: (order[g.cls], -len(g.nodes), g.nodeset))
    planned += [
        Group("", tuple(n), None, None, None, "unknown", None, reason)
        for reason, n in sorted(unknown.items())
    ]
    return tuple(
        Group(
            f"g{i}", g.nodes, g.facts, g.plan, g.digest, g.cls, g.manual_kind, g.reason, g.nodeset
        )
        for i, g in enumerate(planned, 1)
    )


def fleet_plan_to_dict(groups: Sequence[Group]) -> dict[str, Any]:
    """The ``qfix.fleet-plan/1`` document."""
    by_class: dict[str, list[str]] = {c: [] for c in CLASSES}
    for g in groups:
        by_class[g.cls].extend(g.nodes)
    return {
        "schema": FLEET_PLAN_SCHEMA,
        "nodes": sum(len(g.nodes) for g in groups),
        "classes": {c: fold(n) for c, n in by_class.items()},
        "groups": [g.to_dict() for g in groups],
    }


def render_fleet_plan(groups: Sequence[Group]) -> str:
    """The text of ``qfix fleet plan``: one paragraph per group, node sets folded."""
    total = sum(len(g.nodes) for g in groups)
    counts = {c: sum(len(g.nodes) for g in groups if g.cls == c) for c in CLASSES}
    lines = [
        f"{total} nodes in {len(groups)} groups: "
        + ", ".join(f"{counts[c]} {c}" for c in CLASSES if counts[c])
    ]
    for g in groups:
        label = g.cls + (f" ({g.manual_kind})" if g.manual_kind else "")
        lines.append("")
        count = f"{len(g.nodes)} node" + ("" if len(g.nodes) == 1 else "s")
        lines.append(f"[{g.id}] {g.nodeset}  ({count}): {label}")
        if g.reason:
            lines.append(f"    {g.reason}")
        plan = g.plan or {}
        ids = [f.get("id") for f in plan.get("findings") or ()]
        if ids:
            lines.append("    findings: " + ", ".join(str(i) for i in ids))
        for s in plan.get("steps") or ():
            lines.append(
                f"    {s.get('action')} {s.get('package')}: {s.get('from') or '-'} -> "
                f"{s.get('to') or '-'}"
            )
        for m in plan.get("manual") or ():
            if m.get("required"):
                lines.append(f"    manual: {m.get('text')}")
        if g.digest and plan.get("steps"):
            lines.append(f"    apply: qfix apply --yes --expect-plan {g.digest}")
    return "\n".join(lines)
