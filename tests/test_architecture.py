"""The house rules, enforced: a pure core, one door per side effect."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPAIR = Path(__file__).resolve().parent.parent / "repair"
PURE = [
    "facts",
    "view",
    "signatures",
    "knowledge",
    "catalogue",
    "diagnose",
    "findings",
    "rules",
    "rules.registry",
    "rules.gpu",
    "rules.torch",
    "rules.bitsandbytes",
    "rules.platform",
    "rules.environment",
    "rules.hf",
    "rules.project",
    "pins",
    "pinplan",
    "planner",
    "explain",
    "render",
    "fingerprint",
    "errors",
    "plan",
    "planfile",
    "commands",
    "settings",
    "digest",
    "jsonload",
    "fleet.nodeset",
    "fleet.grouping",
    "fleet.report",
    "indexconfig",
    "dryrun",
]
# Modules the pure core must not load. (subprocess itself is imported by packaging.tags, unused;
# the AST check below keeps the core's own code from importing it.)
EFFECTS = {
    "pynvml",
    "torch",
    "bitsandbytes",
    "urllib.request",
    "http.client",
    "repair.process",
    "repair.probe",
    "repair.verify",
    "repair.apply.transaction",
}


def test_pure_core_imports_no_effects():
    code = (
        f"import sys, json\nfor m in {PURE!r}: __import__('repair.' + m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    mods = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
    )
    leaked = {m for m in mods for e in EFFECTS if m == e or m.startswith(e + ".")}
    assert not leaked, leaked


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_one_door_per_effect():
    files = [p for p in REPAIR.rglob("*.py")]
    users = {p.relative_to(REPAIR).as_posix(): _imports(p) for p in files}
    # only repair/probe/nvml.py imports pynvml
    assert [f for f, mods in users.items() if "pynvml" in mods] == ["probe/nvml.py"]
    # subprocess: the process door, plus the scripts that run inside the *target* interpreter
    allowed = {"process.py", "probe/target_script.py", "verify/script.py"}
    offenders = [f for f, mods in users.items() if "subprocess" in mods and f not in allowed]
    assert not offenders, offenders
    # the network: only apply/sizes.py opens a URL (the size of each file a dry run would
    # download); the installers do their own downloading in their own processes
    net = {"urllib.request", "http.client", "requests", "httpx", "urllib3"}
    assert [f for f, mods in users.items() if mods & net] == ["apply/sizes.py"]


def test_pure_core_code_imports_no_process_or_network_module():
    for m in PURE:
        path = REPAIR / m.replace(".", "/")
        mods = _imports(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
        assert not mods & {"subprocess", "socket", "urllib.request", "http.client"}, (m, mods)


def test_no_shell_true_anywhere():
    for p in REPAIR.rglob("*.py"):
        assert "shell=True" not in p.read_text(), p


# Every module reads as named steps (issue 9): no function under repair/ is longer than this.
MAX_FUNCTION_LINES = 80


def test_functions_are_short():
    paths = sorted(REPAIR.rglob("*.py"))
    assert REPAIR / "verify" / "script.py" in paths  # subpackages are walked too
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPAIR)}:{node.name} ({lines} lines)")
    assert not long, long


def test_platform_modules_behind_one_door():
    """fcntl and msvcrt exist on one OS each: only repair/platform_ops.py imports them (inside
    its platform branches), so every other module imports on Linux, macOS and Windows."""
    users = {
        p.relative_to(REPAIR).as_posix(): _imports(p)
        for p in REPAIR.rglob("*.py")
        if _imports(p) & {"fcntl", "msvcrt", "termios", "pty", "resource"}
    }
    assert set(users) == {"platform_ops.py"}, users
