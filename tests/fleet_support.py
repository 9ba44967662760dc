"""Helpers of the fleet tests: cheap private venvs, per-node interpreters, synthetic records."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from repair.facts import facts_from_dict, facts_to_dict
from repair.fleet.records import make_record
from tests.venvs import REPO, Venv

EXAMPLES = REPO / "plans" / "examples"


def link_venv(source: Venv, dest: Path, private: tuple[str, ...] = ("bitsandbytes",)) -> Venv:
    """A venv whose site-packages are hard links to ``source``'s, except the distributions named
    in ``private`` (real copies: the repair changes them). Seconds instead of the minutes a copy
    of torch takes; safe because installers replace files (new inodes) and never write into an
    installed file, and torch is pinned by the plan's constraints."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(dest)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    new = Venv(dest.name, dest)
    for entry in source.site_packages.iterdir():
        name = entry.name.lower()
        copy = any(name == p or name.startswith(p + "-") for p in private)
        subprocess.run(
            ["cp", "-a" if copy else "-al", str(entry), str(new.site_packages)],
            check=True, timeout=300,
        )  # fmt: skip
    return new


def node_interpreter(folder: Path, venvs: dict[str, Path]) -> Path:
    """An executable that runs the venv of the node it runs on ($SLURMD_NODENAME, else
    $QFIX_NODE): one target path for the whole cluster, a different venv per node, as on a
    cluster whose nodes mount different environments at one path."""
    links = folder / "node-venvs"
    links.mkdir(parents=True, exist_ok=True)
    for node, venv in venvs.items():
        (links / node).symlink_to(venv.resolve(), target_is_directory=True)
    script = folder / "node-python"
    script.write_text(
        f'#!/bin/sh\nexec "{links}/${{SLURMD_NODENAME:-$QFIX_NODE}}/bin/python" "$@"\n'
    )
    script.chmod(0o755)
    return script


def example_facts() -> list[tuple[str, dict[str, Any]]]:
    """(name, qfix.facts/1 dict) of every shipped example, as `qfix detect --json` prints it
    (a ticket's reported error is kept under "reported_error", as the planner reads it)."""
    out = []
    for p in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        out.append((p.stem, facts_to_dict(facts_from_dict(doc, p.name))))
    return out


def with_noise(facts: dict[str, Any], rng: random.Random, i: int) -> dict[str, Any]:
    """The same facts as another node would report them: another venv path, another
    CUDA_VISIBLE_DEVICES, other probe attempts."""
    f = json.loads(json.dumps(facts))
    py = f.get("python")
    if isinstance(py, dict):
        old = py.get("prefix") or (os.path.dirname(os.path.dirname(py.get("executable") or "")))
        new = f"/scratch/user{i}/envs/e{rng.randrange(1000)}"
        if py.get("executable"):
            py["executable"] = new + "/bin/python"
        py["prefix"] = new
        for key in ("bitsandbytes_path", "torch_path"):
            if old and isinstance(f.get(key), str):
                f[key] = f[key].replace(old, new)
    env = f.get("env")
    if isinstance(env, dict):
        env["CUDA_VISIBLE_DEVICES"] = rng.choice([None, "0", "0,1", "1,3", "GPU-5a3f"])
    drv = f.get("driver")
    if isinstance(drv, dict):
        drv["attempts"] = [
            {"source": "nvml", "ok": rng.random() < 0.9, "seconds": round(rng.random(), 3)}
            for _ in range(rng.randrange(3))
        ]
    return f


def detect_record(node: str, facts: dict[str, Any], code: int = 0) -> dict[str, Any]:
    return make_record(node, "detect", facts, code, "2026-12-06T00:00:00Z", 0.5)
