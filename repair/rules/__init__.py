"""The diagnosis rules: one small function per failure class of plans/failures.toml.

Each module holds the rules of one theme; a rule is registered by its catalogue id with
``@rule("id")`` and, where the facts can exclude a class an error message points to, a check with
``@ruled_out("id")``. ``repair.diagnose.diagnose`` runs them in catalogue order.

Adding a failure class: its entry in plans/failures.toml, its rule in the module of its theme, and
its positive and negative case in tests/test_rules.py. A class that only an error message can
show has no rule and is listed in ``SIGNATURE_ONLY``.

    gpu.py           host, driver, GPUs: no-nvidia-driver, mixed-gpus, rocm-host, jetson-l4t, ...
    torch.py         the installed torch: torch-missing, torch-cpu-build, gpu-arch-unsupported, ...
    bitsandbytes.py  the installed bitsandbytes: bnb-missing, bnb-no-4bit, bnb-no-cuda-lib, ...
    platform.py      bnb-platform-unsupported (OS, CPU, glibc)
    environment.py   cuda-libs-not-found, stale-toolkit-on-path
    hf.py            hf-stack-too-old
    project.py       project-pin-conflict (the project's own pins, --requirements)
"""

from __future__ import annotations

# Importing the theme modules registers their rules.
from . import bitsandbytes, environment, gpu, hf, platform, project, torch  # noqa: F401
from .registry import (
    EXCLUSIONS,
    RULES,
    SIGNATURE_ONLY,
    SUSPECTS,
    Context,
    Exclusion,
    make_context,
    rule,
    ruled_out,
    suspect,
)

__all__ = [
    "EXCLUSIONS",
    "RULES",
    "SIGNATURE_ONLY",
    "SUSPECTS",
    "Context",
    "Exclusion",
    "make_context",
    "rule",
    "ruled_out",
    "suspect",
]
