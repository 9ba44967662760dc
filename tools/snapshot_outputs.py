"""Write qfix's outputs for every shipped example into a folder, to prove a refactor changed none.

    python tools/snapshot_outputs.py OUT_DIR      # then: diff -r OLD_DIR OUT_DIR

For each ``plans/examples/*.json`` it records ``qfix plan --facts ... --json``, the text plan and
``qfix matrix --facts ... --json`` with their exit codes. Run it on the commit before a change and
on the commit after; an empty ``diff -r`` is the check that the outputs are byte-identical.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "plan.json": ["plan", "--json"],
    "plan.txt": ["plan"],
    "matrix.json": ["matrix", "--json"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the outputs into")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"COLUMNS": "100", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    for example in sorted((ROOT / "plans" / "examples").glob("*.json")):
        for suffix, argv in COMMANDS.items():
            rel = example.relative_to(ROOT)
            done = subprocess.run(
                [sys.executable, "-m", "repair", *argv, "--facts", str(rel)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                env={**env, "PATH": "/usr/bin:/bin"},
            )
            text = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.stderr else "")
            text += f"\n[exit {done.returncode}]\n"
            (args.out / f"{example.stem}.{suffix}").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
