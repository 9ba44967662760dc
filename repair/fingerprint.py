"""The fingerprint of an environment, so that a saved plan made for it is refused once it changed.

Pure: computed from Facts only. It covers what a plan depends on: the interpreter, every
installed distribution and its version, the torch build and the bitsandbytes install. Host-only
facts (the driver, the GPUs) are left out on purpose: a driver upgrade does not make a venv plan
unsafe to apply, and the re-run of `qfix plan` would say so anyway.
"""

from __future__ import annotations

import hashlib
import json

from .facts import Facts


def fingerprint(facts: Facts) -> str:
    """``sha256:<hex>`` over the environment-side facts; equal facts give equal fingerprints."""
    py = facts.python
    t = facts.torch
    b = facts.bitsandbytes
    doc = {
        "python": None if py is None else [py.executable, py.version],
        "packages": None
        if facts.packages is None
        else sorted((k.lower(), v) for k, v in facts.packages.items()),
        "torch": None if t is None else [t.version, t.cuda, t.hip, t.error],
        "bitsandbytes": None
        if b is None
        else [b.version, sorted(b.native_libs or ()), b.copies, sorted(b.distributions)],
        # every installed distribution, when the probe listed them (qfix detect does)
        "distributions": sorted(
            (str(k), str(v)) for k, v in (facts.extra.get("distributions") or {}).items()
        ),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()
