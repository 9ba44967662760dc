"""The digest of a plan's decisions, so that a fleet can check that a node plans what was agreed.

Pure. The digest covers what the plan *decides* -- the steps (package, from, to, index, reasons),
the manual steps, the base of the torch index, the project's pins that changed it -- and nothing
that is only where or when it was made: the interpreter path (inside the commands and possibly
inside texts) and the fingerprint (which includes the interpreter path) are left out, so that
nodes whose venvs sit at different paths but need the same change get the same digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = "{python}"


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new) if old else value
    if isinstance(value, list | tuple):
        return [_replace(v, old, new) for v in value]
    if isinstance(value, Mapping):
        return {k: _replace(v, old, new) for k, v in value.items()}
    return value


def decisions(plan: Mapping[str, Any], python: str | None = None) -> dict[str, Any]:
    """The decisions of a ``qfix.plan/1`` document, with the interpreter path (``python``, else
    the plan's own ``target.python``) replaced by ``{python}``."""
    if python is None:
        target = plan.get("target")
        python = target.get("python") if isinstance(target, Mapping) else None
    doc: dict[str, Any] = {
        "steps": list(plan.get("steps") or ()),
        "manual": list(plan.get("manual") or ()),
        "torch_index_base": plan.get("torch_index_base"),
    }
    # The project's pins that changed the plan, and those handed to the installers as
    # constraints (only when --requirements/--constraint were given: other digests are unchanged)
    pins = plan.get("project_pins")
    if isinstance(pins, Mapping) and (pins.get("applied") or pins.get("constraints")):
        doc["project_pins"] = {
            "applied": list(pins.get("applied") or ()),
            "constraints": list(pins.get("constraints") or ()),
        }
    return _replace(doc, python, PLACEHOLDER) if python else doc


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def plan_digest(plan: Mapping[str, Any], python: str | None = None) -> str:
    """``sha256:<hex>`` over the canonical JSON of the plan's decisions."""
    blob = canonical_json(decisions(plan, python)).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def is_digest(text: str) -> bool:
    hexpart = text[7:] if text.startswith("sha256:") else ""
    return len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def _show(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """The first place where two JSON values differ, as ``path: expected X, got Y`` (None when
    equal). Lists are compared item by item, mappings key by key in sorted order."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in expected:
                return f"{sub}: not expected, got {_show(actual[key])}"
            if key not in actual:
                return f"{sub}: expected {_show(expected[key])}, missing"
            found = first_difference(expected[key], actual[key], sub)
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            i = min(len(expected), len(actual))
            if len(expected) > len(actual):
                return f"{path}[{i}]: expected {_show(expected[i])}, missing"
            return f"{path}[{i}]: not expected, got {_show(actual[i])}"
        return None
    if expected != actual:
        return f"{path or '.'}: expected {_show(expected)}, got {_show(actual)}"
    return None
