"""Shared helpers of the apply/rollback tests (no tests in here).

* ``index()``: the local PyTorch-style index (tests/index_server.py), started once per process.
* ``small_template()``: a real venv with pip, generated ``torch 2.7.1+cpu``, ``torchvision
  0.22.1+cpu``, ``bitsandbytes 0.43.3`` and ``qfix-demo 1.0`` installed from that index, built
  once per session; ``clone()`` copies it for one test (``cp -a`` of a ~20 MB tree: 0.2 s).
* ``hermetic_env()``: pip's and uv's *default* index pointed at the local ``/simple`` (the way a
  user's mirror setting would be), retries off so an injected 500 fails at once, a private uv
  cache. Apply must respect those settings, which is part of what the tests check.
* ``freeze()``, ``tree()`` and ``manifest()``: the views of "exactly as before": ``pip freeze
  --all``, every path of the venv with its inode, size and mtime, and every file under
  site-packages and bin with its size, sha256 and mode (the bytes, not only the inodes).
* ``run_child()``: ``apply_plan`` in a child process, to be killed or signalled.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.index_server import IndexServer

__test__ = False

REPO = Path(__file__).resolve().parent.parent
FINGERPRINT = "sha256:" + "ab" * 32

_SESSION_DIR: Path | None = None
_INDEX: IndexServer | None = None
_TEMPLATE: Path | None = None


def session_dir() -> Path:
    global _SESSION_DIR
    if _SESSION_DIR is None:
        _SESSION_DIR = Path(tempfile.mkdtemp(prefix="qfix-apply-tests-"))
        atexit.register(shutil.rmtree, _SESSION_DIR, True)
    return _SESSION_DIR


def index() -> IndexServer:
    """The session's local index, running (faults stay as the last test set them: see
    ``clean_index``)."""
    global _INDEX
    if _INDEX is None:
        _INDEX = IndexServer(session_dir() / "index").start()
        atexit.register(_INDEX.stop)
    if not _INDEX.running:
        _INDEX.start()
    return _INDEX


def hermetic_env(tmp: Path, **extra: str) -> dict[str, str]:
    """os.environ with both installers' default index on the local /simple, retries off."""
    idx = index()
    env = dict(os.environ)
    for var in (
        "VIRTUAL_ENV",
        "QFIX_TORCH_INDEX",
        "QFIX_TEST_KILL_AT",
        "PIP_INDEX_URL",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_INDEX",
    ):
        env.pop(var, None)
    env.update(
        PIP_INDEX_URL=idx.simple_url,  # the user's pip mirror setting
        UV_DEFAULT_INDEX=idx.simple_url,  # the user's uv mirror setting
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        PIP_NO_CACHE_DIR="1",
        PIP_RETRIES="0",
        UV_HTTP_RETRIES="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def _pip(python: Path, *args: str) -> str:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def small_template() -> Path:
    """A venv with generated torch 2.7.1+cpu & co. from the local index (built once)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        idx = index()
        path = session_dir() / "template"
        subprocess.run(
            [sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300
        )
        py = path / "bin" / "python"
        _pip(
            py,
            "install",
            "--quiet",
            "--no-cache-dir",
            "--index-url",
            f"{idx.torch_base}/cpu",
            "torch==2.7.1+cpu",
            "torchvision==0.22.1+cpu",
        )
        _pip(
            py,
            "install",
            "--quiet",
            "--no-cache-dir",
            "--index-url",
            idx.simple_url,
            "qfix-demo==1.0",
            "bitsandbytes==0.43.3",
        )
        _TEMPLATE = path
    return _TEMPLATE


def clone(dest: Path) -> Path:
    """A private copy of the small template; returns its interpreter."""
    subprocess.run(["cp", "-a", str(small_template()), str(dest)], check=True, timeout=120)
    return dest / "bin" / "python"


def freeze(python: Path | str) -> str:
    return _pip(Path(python), "freeze", "--all")


def tree(prefix: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under ``prefix`` but .qfix: files with inode/size/mtime, links with target."""
    out: dict[str, tuple[Any, ...]] = {}
    for root, dirs, files in os.walk(prefix):
        if Path(root) == prefix and ".qfix" in dirs:
            dirs.remove(".qfix")
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, prefix)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def manifest(prefix: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (size, sha256, mode) of every file under site-packages and bin; links: target."""
    out: dict[str, tuple[Any, ...]] = {}
    roots = [*prefix.glob("lib/python*/site-packages"), prefix / "bin"]
    for top in roots:
        for root, _dirs, files in os.walk(top):
            for name in files:
                p = os.path.join(root, name)
                rel = os.path.relpath(p, prefix)
                st = os.lstat(p)
                if os.path.islink(p):
                    out[rel] = ("link", os.readlink(p))
                    continue
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                out[rel] = (st.st_size, h.hexdigest(), oct(st.st_mode))
    return out


def tree_diff(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in keys if a.get(k) != b.get(k)][:20]


def step(
    action: str,
    package: str,
    frm: str | None,
    to: str | None,
    index_url: str | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "action": action,
        "package": package,
        "from": frm,
        "to": to,
        "index_url": index_url,
        "because": ["test"],
    }
    if group is not None:
        s["group"] = group
    return s


def plan(*steps: dict[str, Any], python: str | None = None) -> dict[str, Any]:
    return {
        "schema": "qfix.plan/1",
        "healthy": False,
        "target": {"python": python, "platform": "linux-x86_64"},
        "findings": [],
        "steps": list(steps),
        "manual": [],
        "commands": [],
        "unknown": [],
        "fingerprint": FINGERPRINT,
        "torch_index_base": None,
    }


def cuda_plan(variant: str = "cu126", *, extra: bool = True) -> dict[str, Any]:
    """The small template's repair: drop qfix-demo, torch+torchvision -> ``variant``, and
    bitsandbytes 0.43.3 -> 0.48.2 from the default index. Three installer commands."""
    base = index().torch_base
    steps = [
        step("uninstall", "qfix-demo", "1.0", None, group="uninstall"),
        step("install", "torch", "2.7.1+cpu", f"2.7.1+{variant}", f"{base}/{variant}", "torch"),
        step(
            "install",
            "torchvision",
            "0.22.1+cpu",
            f"0.22.1+{variant}",
            f"{base}/{variant}",
            "torch",
        ),
    ]
    if extra:
        steps.append(step("install", "bitsandbytes", "0.43.3", "0.48.2", None, "pypi"))
    return plan(*steps)


CHILD = textwrap.dedent("""
    import json, sys
    from repair.apply.transaction import apply_plan
    plan = json.load(open(sys.argv[1]))
    verdict = sys.argv[4]
    if verdict.startswith("child:"):
        # a real verify child (through process.run, so apply records it) that leaves a
        # grandchild in its group: what PR_SET_PDEATHSIG cannot reach, qfix rollback must stop
        from repair import process
        code = "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)"
        verify = lambda: process.run([sys.executable, "-c", code], timeout=900).ok
    else:
        verify = None if verdict == "none" else (lambda: verdict == "pass")
    out = apply_plan(plan, python=sys.argv[2], installer=sys.argv[3], verify=verify,
                     progress=lambda line: print(line, flush=True))
    print("OUTCOME " + json.dumps(out.to_dict()), flush=True)
    sys.exit(int(out.exit_code))
""")


def run_child(
    tmp: Path,
    the_plan: dict[str, Any],
    python: Path,
    *,
    installer: str = "pip",
    verify: str = "none",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``apply_plan`` in a child process (stdout+stderr to a pipe)."""
    plan_file = tmp / f"plan-{time.monotonic_ns()}.json"
    plan_file.write_text(json.dumps(the_plan))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(plan_file), str(python), installer, verify],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env if env is not None else hermetic_env(tmp),
        cwd=str(REPO),
        # Ctrl-C as from a terminal even when the tests run in the background (a shell starts
        # background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until ``path`` exists (e.g. installer.pid: the installer runs)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child ended before {path} appeared: {proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True)
def clean_index() -> Iterator[None]:
    """No fault left over from another test, before or after this one (import it to use it)."""
    index().reset()
    yield
    index().reset()


@pytest.fixture()
def henv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment made hermetic (installers started in-process inherit it)."""
    env = hermetic_env(tmp_path)
    for var in ("VIRTUAL_ENV", "QFIX_TORCH_INDEX", "QFIX_TEST_KILL_AT", "UV_INDEX_URL", "UV_INDEX"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env
