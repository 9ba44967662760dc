"""--system: a real interpreter that is not a venv (sys.prefix == sys.base_prefix), changed by
consent with the same lock, journal, snapshot and rollback; refused without it.

The interpreter is a copy of the CPython tree this suite runs on (its stdlib and pip, no other
site-packages) run from its own prefix: never this machine's own system Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from repair.apply.transaction import apply_plan, rollback
from repair.apply.venv import require_writable
from repair.errors import ApplyRefused
from repair.probe.interpreter import inspect_target
from tests.test_apply_support import REPO, freeze, hermetic_env, index, plan, step, tree, tree_diff

pytestmark = pytest.mark.venv


def copy_cpython(dest: Path) -> Path:
    """The running CPython's tree (stdlib + pip) copied to ``dest``; its interpreter."""
    base = Path(sys.base_prefix)
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (dest / "bin").mkdir(parents=True)
    exe = base / "bin" / ver
    subprocess.run(["cp", "-a", str(exe), str(dest / "bin")], check=True, timeout=120)
    (dest / "bin" / "python3").symlink_to(ver)
    lib = dest / "lib" / ver
    lib.mkdir(parents=True)
    skip = ("site-packages", "test", "__pycache__", "idlelib", "tkinter")
    for entry in (base / "lib" / ver).iterdir():
        if entry.name not in skip:
            subprocess.run(["cp", "-a", str(entry), str(lib)], check=True, timeout=300)
    site = lib / "site-packages"
    site.mkdir()
    for entry in (base / "lib" / ver / "site-packages").glob("pip*"):
        subprocess.run(["cp", "-a", str(entry), str(site)], check=True, timeout=300)
    python = dest / "bin" / "python3"
    out = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix == sys.base_prefix, sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out == ["True", str(dest)], out  # a system interpreter of its own, not a venv
    return python


@pytest.fixture(scope="module")
def system_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cpython(tmp_path_factory.mktemp("cpython") / "py")


def torch_plan() -> dict:
    base = index().torch_base
    return plan(
        step("install", "torch", None, "2.7.1+cpu", f"{base}/cpu", "torch"),
        step("install", "torchvision", None, "0.22.1+cpu", f"{base}/cpu", "torch"),
    )


CHILD = textwrap.dedent("""
    import json, sys
    from repair.apply.transaction import apply_plan
    out = apply_plan(json.load(open(sys.argv[1])), python=sys.argv[2], installer="pip",
                     allow_system=True, progress=lambda line: print(line, flush=True))
    sys.exit(int(out.exit_code))
""")


def test_refused_without_consent_naming_both_ways(system_python: Path) -> None:
    info = inspect_target(str(system_python)).info
    assert info.in_venv is False
    with pytest.raises(ApplyRefused) as err:
        apply_plan(torch_plan(), python=str(system_python), installer="pip")
    text = f"{err.value.message} {err.value.tip}"
    assert "--system" in text and "--venv NEW" in text
    assert not (system_python.parent.parent / ".qfix").exists()


def test_system_apply_killed_then_rolled_back_then_applied(
    system_python: Path, tmp_path: Path
) -> None:
    index().reset()
    prefix = system_python.parent.parent
    env = hermetic_env(tmp_path, QFIX_TEST_KILL_AT="step:0:after")
    before_freeze, before_tree = freeze(system_python), tree(prefix)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(torch_plan()))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(plan_file), str(system_python)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert "not a virtual environment" in child.stdout  # the warning came first
    assert "torch==2.7.1+cpu" in freeze(system_python)  # killed after the install

    result = rollback(str(system_python), progress=lambda _l: None)
    assert result.ok and result.rolled_back, result.error
    assert freeze(system_python) == before_freeze
    after_tree = tree(prefix)
    changed = [p for p in tree_diff(before_tree, after_tree) if "/.qfix/" not in f"/{p}"]
    assert changed == [], changed[:10]

    lines: list[str] = []
    out = apply_plan(
        torch_plan(),
        python=str(system_python),
        installer="pip",
        allow_system=True,
        progress=lines.append,
    )
    assert out.ok, out.error
    assert "torch==2.7.1+cpu" in freeze(system_python)
    assert any("warning: changing" in line for line in lines)
    assert (
        not (Path(sys.base_prefix) / "lib")
        .joinpath("python3.11", "site-packages", "torch-2.7.1+cpu.dist-info")
        .exists()
    )


@contextlib.contextmanager
def not_writable(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable for this user: a plain user loses the write bit; root, who may
    write anywhere, gets the folder bind-mounted read-only over itself (a Docker image with a
    read-only root file system), unmounted after; skip where mounting is not allowed."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode(errors='replace').strip()}")
    try:
        ro = ["mount", "-o", "remount,bind,ro", str(folder)]
        done = subprocess.run(ro, capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.decode(errors='replace').strip()}")
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_unwritable_system_interpreter_is_refused(system_python: Path) -> None:
    target = inspect_target(str(system_python))
    site = Path(target.purelib)
    with not_writable(site):
        with pytest.raises(ApplyRefused, match="cannot write"):
            require_writable(target)
        with pytest.raises(ApplyRefused, match="cannot write"):
            apply_plan(torch_plan(), python=str(system_python), installer="pip", allow_system=True)
    assert os.access(site, os.W_OK)
