"""The target-interpreter probe against real interpreters: real venvs, real wheels, real children.

Venvs come from tests/venvs.py (built once, cached), plus a cached "bnb-dup" venv (bitsandbytes
and an obsolete fork, no torch). Two more are made per run: a private copy of the torch venv that
gets broken (copy_venv, ~15 s), and a ``--without-pip`` venv (~1 s) holding hand-written
distributions (metadata files and small packages whose import hangs,
crashes or prints on stdout) for the cases no real wheel reproduces on demand.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repair import facts, process
from repair.errors import ExitCode, InterpreterError
from repair.probe import target_script
from repair.probe.interpreter import (
    BOOTSTRAP,
    TargetReport,
    inspect_target,
    probe_target,
    resolve_target,
    script_source,
)
from tests.venvs import Venv, copy_venv, get_venv

# An obsolete fork that installs the same top-level `bitsandbytes` package (PyPI, 2022).
FORK = "bitsandbytes-cuda111==0.26.0.post2"


def one_line_error(exc: pytest.ExceptionInfo[InterpreterError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.strip() == message and message
    assert exc.value.exit_code is ExitCode.BAD_INPUT and int(exc.value.exit_code) == 2
    return message


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def torch_report(venv_torch213: Venv) -> TargetReport:
    return probe_target(str(venv_torch213.python), environ=_without_vars(os.environ))


@pytest.fixture(scope="module")
def broken_torch_venv(venv_torch213: Venv, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A private copy of the torch venv; the tests below damage its torch/version.py."""
    return copy_venv(venv_torch213, tmp_path_factory.mktemp("broken") / "venv")


@pytest.fixture(scope="module")
def venv_bnb_dup() -> Venv:
    """bitsandbytes 0.50.2 and the obsolete fork bitsandbytes-cuda111, both real PyPI wheels.

    Without torch (``--no-deps``): the number of copies does not depend on it, and a torch-free
    venv costs seconds instead of a torch install.
    """
    return get_venv("bnb-dup", ("--no-deps", "bitsandbytes==0.50.2", FORK))


FAKE_TORCH_INIT = """
import os, signal, sys, time
_mode = os.environ.get("QFIX_FAKE_TORCH", "ok")
if _mode == "hang":
    time.sleep(60)
if _mode == "segv":
    os.kill(os.getpid(), signal.SIGSEGV)
if _mode == "raise":
    raise ImportError("libcudart.so.12: cannot open shared object file: No such file or directory")
print("torch says hello on stdout")
from . import version
__version__ = version.__version__

class cuda:
    @staticmethod
    def is_available():
        if _mode == "cuda-hang":
            time.sleep(60)
        return False

class _C:
    @staticmethod
    def _cuda_getArchFlags():
        return "sm_50 sm_80 compute_90"
"""

FAKE_BNB_INIT = """
import os, time
if os.environ.get("QFIX_FAKE_TORCH") == "bnb-hang":
    time.sleep(60)
import torch
print("===================BUG REPORT===================")
os.write(1, b"a native library printing on fd 1\\n")
from . import cextension
"""


@pytest.fixture(scope="module")
def fake_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A real venv whose site-packages holds hand-written distributions."""
    path = tmp_path_factory.mktemp("fake") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    venv = Venv("fake", path)
    site = venv.site_packages

    def dist(folder: str, metadata: str, files: dict[str, str] | None = None) -> None:
        (site / folder).mkdir()
        (site / folder / ("PKG-INFO" if folder.endswith(".egg-info") else "METADATA")).write_text(
            textwrap.dedent(metadata).lstrip() + "\nA long description: Requires-Dist: torch\n"
        )
        for name, text in (files or {}).items():
            (site / folder / name).write_text(text)

    dist(
        "torch-2.5.1+cu121.dist-info", "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1+cu121\n"
    )
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH_INIT)
    (site / "torch" / "version.py").write_text(
        "from typing import Optional\n__version__ = '2.5.1+cu121'\ncuda: Optional[str] = '12.1'\n"
        "hip: Optional[str] = None\n"
    )
    dist(
        "xformers-0.0.28.post3.dist-info",
        """
        Metadata-Version: 2.1
        Name: xformers
        Version: 0.0.28.post3
        Requires-Dist: numpy
        Requires-Dist: torch==2.5.1
        """,
    )
    dist(
        "Multi_Pin-1.0.dist-info",
        """
        Metadata-Version: 2.1
        Name: Multi_Pin
        Version: 1.0
        Requires-Dist: torch>=2.1; python_version >= "3.9"
        Requires-Dist: torch<2; python_version < "3.9"
        Requires-Dist: torchvision; extra == "vision"
        """,
    )
    dist(
        "legacy-0.1.egg-info",
        "Metadata-Version: 1.1\nName: legacy\nVersion: 0.1\n",
        {"requires.txt": "numpy\ntorch>=1.13\n\n[gpu]\ntorch>=2.0\n"},
    )
    dist("dup-1.0.dist-info", "Metadata-Version: 2.1\nName: dup\nVersion: 1.0\n")
    dist("dup-2.0.dist-info", "Metadata-Version: 2.1\nName: dup\nVersion: 2.0\n")
    # bitsandbytes 0.38-style: cextension.lib is None when no native library loaded.
    dist(
        "bitsandbytes-0.38.1.dist-info",
        "Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.38.1\n",
        {"top_level.txt": "bitsandbytes\n"},
    )
    (site / "bitsandbytes").mkdir()
    (site / "bitsandbytes" / "__init__.py").write_text(FAKE_BNB_INIT)
    (site / "bitsandbytes" / "cextension.py").write_text("lib = None\nCOMPILED_WITH_CUDA = False\n")
    (site / "bitsandbytes" / "libbitsandbytes_cuda118.so").write_bytes(b"")
    (site / "~orch").mkdir()  # what an interrupted `pip uninstall torch` leaves behind
    return venv


def _without_vars(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    for var in facts.ENV_VARS:
        env.pop(var, None)
    return env


# --------------------------------------------------------------------------- the torch venv


@pytest.mark.venv
def test_torch_venv_plain_probe(torch_report: TargetReport, venv_torch213: Venv) -> None:
    r = torch_report
    assert r.python.executable == str(venv_torch213.python)
    assert r.python.in_venv is True and r.python.externally_managed is False
    assert r.python.prefix == str(venv_torch213.path)
    assert r.python.version == ".".join(map(str, sys.version_info[:3]))  # built from this Python
    assert r.host.system == "Linux" and r.host.machine
    assert r.host.libc is not None and r.host.libc.startswith("glibc 2.")

    assert r.torch is not None
    assert (r.torch.version, r.torch.cuda, r.torch.hip, r.torch.error) == (
        "2.13.0+cpu",
        None,
        None,
        None,
    )
    assert r.torch.arch_list is None and r.torch.cuda_available is None  # deep only

    b = r.bitsandbytes
    assert b is not None and b.version == "0.50.2" and b.copies == 1
    assert b.distributions == ("bitsandbytes 0.50.2",)
    assert b.native_libs is not None and "libbitsandbytes_cpu.so" in b.native_libs
    assert {"libbitsandbytes_cuda118.so", "libbitsandbytes_cuda128.so"} <= set(b.native_libs)
    assert b.loaded is None and b.error is None
    assert b.source_build is False  # a wheel from an index (or a wheel file): no source build

    assert r.packages["transformers"] == "5.24.0"
    assert r.packages["torch"] == "2.13.0+cpu" and r.packages["bitsandbytes"] == "0.50.2"
    assert r.packages["peft"] is None and r.packages["xformers"] is None
    assert set(facts.WATCHED_PACKAGES) <= set(r.packages)
    # the installer's own version: a pip before 20.3 gets the plan's upgrade step
    assert r.packages["pip"] == venv_pip_version(r.python.executable)
    # bitsandbytes 0.50.2 requires torch<3,>=2.4; transformers wants torch only in extras.
    assert r.extra["torch_dependents"] == {"bitsandbytes": "torch<3,>=2.4"}
    assert "transformers" in r.extra["torch_optional_dependents"]
    assert r.env == {var: None for var in facts.ENV_VARS}


@pytest.mark.venv
def test_where_mode_answers_apply_from_the_same_python_section(
    torch_report: TargetReport, venv_torch213: Venv
) -> None:
    """apply's question (venv? where do installers write?) is answered by the same script and
    parser as `qfix detect`: the python sections agree, and the paths lie in the venv."""
    where = inspect_target(str(venv_torch213.python))
    assert where.info == torch_report.python
    assert where.prefix == str(venv_torch213.path)
    assert where.purelib.startswith(where.prefix) and where.purelib.endswith("site-packages")
    assert (venv_torch213.path / "bin") == Path(where.scripts)


def test_metadata_scan_agrees_with_importlib_metadata(
    torch_report: TargetReport, venv_torch213: Venv
) -> None:
    """The header-only scan must see what importlib.metadata sees, version by version."""
    code = textwrap.dedent("""
        import importlib.metadata as m, json, re
        out, deps = {}, {}
        for d in m.distributions():
            name = re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
            out.setdefault(name, d.version)
            reqs = [r for r in (d.requires or [])
                    if re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group()).lower()
                    == "torch" and "extra ==" not in r]
            if reqs and name != "torch":
                deps.setdefault(name, reqs[0])
        print(json.dumps([out, deps]))
    """)
    done = process.run([str(venv_torch213.python), "-c", code], timeout=60)
    assert done.ok, done.stderr
    versions, deps = json.loads(done.stdout)
    for name, version in torch_report.packages.items():
        assert versions.get(name) == version, name
    assert torch_report.extra["torch_dependents"] == deps
    assert torch_report.extra["pip_version"] == versions["pip"]


def _run_script_with(venv: Venv, code: str) -> process.Completed:
    """``code`` run by the venv's interpreter with the probe script's source on stdin."""
    done = process.run([str(venv.python), "-c", code], timeout=60, input_text=script_source())
    assert done.ok, done.stderr
    return done


@pytest.mark.venv
def test_plain_probe_imports_neither_torch_nor_bitsandbytes(venv_torch213: Venv) -> None:
    code = (
        "import sys\n"
        "ns = {'__name__': 'qfix_probe'}\n"
        "exec(compile(sys.stdin.read(), 'target_script', 'exec'), ns)\n"
        "r = ns['report']()\n"
        "assert r['torch']['version'] == '2.13.0+cpu', r\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'bitsandbytes',"
        " 'numpy', 'importlib_metadata')))\n"
    )
    done = _run_script_with(venv_torch213, code)
    assert done.stdout.strip() == "[]"


@pytest.mark.venv
def test_deep_probe_on_torch_venv(venv_torch213: Venv) -> None:
    r = probe_target(str(venv_torch213.python), deep=True, timeout=120)
    assert r.torch is not None and r.bitsandbytes is not None
    assert r.torch.version == "2.13.0+cpu" and r.torch.cuda is None
    assert r.torch.cuda_available is False
    assert r.torch.arch_list == ()  # a CPU build is compiled for no GPU architecture
    assert r.torch.error is None
    assert r.bitsandbytes.loaded is True and r.bitsandbytes.error is None
    deep = r.extra["deep"]
    assert deep["finished"] is True
    assert deep["steps"]["bitsandbytes"]["bnb_backend"] == "CPU"


@pytest.mark.venv
def test_deep_probe_on_bitsandbytes_038(venv_bnb038: Venv) -> None:
    """0.38 prints its CUDA-setup banner on stdout at import; the protocol must survive it."""
    r = probe_target(str(venv_bnb038.python), deep=True, timeout=120)
    b = r.bitsandbytes
    assert b is not None and b.version == "0.38.1" and b.copies == 1
    assert b.loaded is True and b.error is None  # libbitsandbytes_cpu.so loaded
    step = r.extra["deep"]["steps"]["bitsandbytes"]
    assert step["compiled_with_cuda"] is False
    assert "libbitsandbytes_cpu.so" in step["output"]  # the banner, kept as evidence
    assert r.torch is not None and r.torch.cuda_available is False


@pytest.mark.venv
def test_env_vars_reach_the_target(venv_torch213: Venv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**_without_vars(os.environ), "BNB_CUDA_VERSION": "118", "CUDA_VISIBLE_DEVICES": "1"}
    r = probe_target(str(venv_torch213.python), environ=env)
    assert r.env["BNB_CUDA_VERSION"] == "118" and r.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert r.env["CUDA_HOME"] is None
    # By default the child sees qfix's own environment.
    monkeypatch.setenv("BNB_CUDA_VERSION", "121")
    assert probe_target(str(venv_torch213.python)).env["BNB_CUDA_VERSION"] == "121"


def test_system_python_is_externally_managed() -> None:
    """Debian's /usr/bin/python3 carries the PEP 668 marker; qfix must see it (apply refuses)."""
    marker = Path("/usr/lib/python3.11/EXTERNALLY-MANAGED")
    if not (Path("/usr/bin/python3.11").exists() and marker.exists()):
        pytest.skip("no Debian system Python 3.11 with an EXTERNALLY-MANAGED marker here")
    r = probe_target("/usr/bin/python3.11")
    assert r.python.in_venv is False and r.python.externally_managed is True
    assert r.python.prefix == "/usr" and r.python.conda is False


# --------------------------------------------------------------------------- broken installs


@pytest.mark.venv
def test_missing_torch_version_py_is_a_fact(broken_torch_venv: Venv) -> None:
    version_py = broken_torch_venv.site_packages / "torch" / "version.py"
    python = str(broken_torch_venv.python)

    version_py.write_text("__version__ = '2.13.0+cu128'\ncuda: 'Optional[str]' = '12.8'\nhip = (\n")
    r = probe_target(python)  # does not parse: the plain lines are still read
    assert r.torch is not None and r.torch.error is None
    assert (r.torch.version, r.torch.cuda) == ("2.13.0+cu128", "12.8")

    version_py.write_text("import os\ncuda = os.environ.get('X')\n")
    r = probe_target(python)
    assert r.torch is not None and r.torch.error is not None
    assert "does not define __version__" in r.torch.error
    assert r.torch.version == "2.13.0+cpu"  # the distribution's version still stands

    version_py.unlink()
    r = probe_target(python)
    assert r.torch is not None and r.torch.error is not None
    assert "version.py is missing" in r.torch.error and str(version_py) in r.torch.error
    assert r.torch.version == "2.13.0+cpu" and r.torch.cuda is None
    assert r.packages["torch"] == "2.13.0+cpu"
    assert r.bitsandbytes is not None and r.bitsandbytes.version == "0.50.2"

    r = probe_target(python, deep=True, timeout=120)  # torch cannot import without version.py
    assert r.torch is not None and r.torch.error is not None
    assert "version.py is missing" in r.torch.error and "import torch failed" in r.torch.error
    assert r.bitsandbytes is not None and r.bitsandbytes.loaded is False
    assert r.bitsandbytes.error and "import bitsandbytes failed" in r.bitsandbytes.error


@pytest.mark.venv
def venv_pip_version(python: str | None) -> str:
    """pip's version in ``python``'s environment, as pip itself says it."""
    assert python is not None
    out = subprocess.run(
        [python, "-m", "pip", "--version"], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()[1]


def test_two_copies_of_bitsandbytes(venv_bnb_dup: Venv) -> None:
    r = probe_target(str(venv_bnb_dup.python))
    b = r.bitsandbytes
    assert b is not None
    assert b.copies == 2
    assert b.distributions == ("bitsandbytes 0.50.2", "bitsandbytes-cuda111 0.26.0.post2")
    assert b.version == "0.50.2"
    assert r.packages["torch"] is None and r.torch is None
    assert r.extra["torch_dependents"] == {"bitsandbytes": "torch<3,>=2.4"}


def test_hand_written_distributions(fake_venv: Venv) -> None:
    r = probe_target(str(fake_venv.python), environ=_without_vars(os.environ))
    assert r.torch is not None
    assert (r.torch.version, r.torch.cuda, r.torch.error) == ("2.5.1+cu121", "12.1", None)
    assert r.packages["xformers"] == "0.0.28.post3"
    deps = r.extra["torch_dependents"]
    assert deps["xformers"] == "torch==2.5.1"
    assert deps["multi-pin"].splitlines() == [
        'torch>=2.1; python_version >= "3.9"',
        'torch<2; python_version < "3.9"',
    ]
    assert deps["legacy"] == "torch>=1.13"
    assert r.extra["torch_optional_dependents"]["legacy"] == 'torch>=2.0; extra == "gpu"'
    assert r.packages["multi-pin"] == "1.0" and r.packages["legacy"] == "0.1"
    assert "dup" not in r.packages  # no torch requirement: not reported ...
    assert r.extra["duplicate_distributions"] == {"dup": ["1.0", "2.0"]}  # ... but its twin is
    assert [Path(p).name for p in r.extra["invalid_distributions"]] == ["~orch"]
    assert r.extra["pip_version"] is None
    b = r.bitsandbytes
    assert b is not None and b.native_libs == ("libbitsandbytes_cuda118.so",) and b.copies == 1


# --------------------------------------------------------------------------- deep mode failures


def test_deep_probe_survives_stdout_noise(fake_venv: Venv) -> None:
    r = probe_target(str(fake_venv.python), deep=True, environ=_without_vars(os.environ))
    assert r.torch is not None and r.torch.cuda_available is False
    assert r.torch.arch_list == ("sm_50", "sm_80", "compute_90")
    b = r.bitsandbytes
    assert b is not None and b.loaded is False  # 0.38 style: cextension.lib is None
    assert b.error is not None and "BUG REPORT" in b.error
    assert r.extra["deep"]["finished"] is True


@pytest.mark.parametrize(
    ("mode", "torch_error", "bnb_error"),
    [
        ("hang", "import torch did not finish within 3 s", "not checked: import torch did not"),
        ("cuda-hang", "torch.cuda.is_available() did not finish within 3 s", "not checked"),
        ("bnb-hang", None, "import bitsandbytes did not finish within 3 s"),
        ("segv", "import torch crashed (SIGSEGV)", "not checked: import torch crashed"),
        (
            "raise",
            "import torch failed: ImportError: libcudart.so.12",
            "import bitsandbytes failed",
        ),
    ],
)
def test_deep_probe_records_hangs_and_crashes(
    fake_venv: Venv, mode: str, torch_error: str | None, bnb_error: str
) -> None:
    env = {**_without_vars(os.environ), "QFIX_FAKE_TORCH": mode}
    start = time.monotonic()
    r = probe_target(str(fake_venv.python), deep=True, timeout=3, environ=env)
    assert time.monotonic() - start < 15
    # The plain report stands whatever the imports did.
    assert r.torch is not None and r.torch.version == "2.5.1+cu121" and r.torch.cuda == "12.1"
    assert r.packages["xformers"] == "0.0.28.post3"
    if torch_error is None:
        assert r.torch.error is None and r.torch.cuda_available is False
    else:
        assert r.torch.error is not None and r.torch.error.startswith(torch_error), r.torch.error
    assert r.bitsandbytes is not None and r.bitsandbytes.error is not None
    assert r.bitsandbytes.error.startswith(bnb_error), r.bitsandbytes.error
    assert r.extra["deep"]["finished"] is False or mode == "raise"


# --------------------------------------------------------------------------- bad input


def test_resolve_target_choices(venv_bare: Venv, tmp_path: Path) -> None:
    py = str(venv_bare.python)
    assert resolve_target(py, {}) == py
    assert resolve_target(str(venv_bare.path), {}) == py  # a venv directory
    assert resolve_target(None, {"VIRTUAL_ENV": str(venv_bare.path)}) == py
    assert resolve_target(None, {}) == sys.executable
    # A bare command name is looked up on PATH, as a shell would.
    link = tmp_path / "bin"
    link.mkdir()
    (link / "python-for-qfix").symlink_to(venv_bare.python)
    assert resolve_target("python-for-qfix", {"PATH": str(link)}) == str(link / "python-for-qfix")
    # Symlinks are kept: following a venv's bin/python would leave the venv.
    assert Path(resolve_target(str(venv_bare.path), {})).is_symlink()


def test_resolve_target_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(InterpreterError) as exc:
        resolve_target(str(tmp_path / "nothing" / "python"), {})
    assert "no such file or directory" in one_line_error(exc)

    with pytest.raises(InterpreterError) as exc:
        resolve_target("no-such-python-anywhere", {"PATH": str(tmp_path)})
    assert "no such file, directory or command" in one_line_error(exc)

    with pytest.raises(InterpreterError) as exc:
        resolve_target(str(tmp_path), {})
    assert "a directory without a Python interpreter" in one_line_error(exc)

    plain = tmp_path / "notes.txt"
    plain.write_text("print('hi')\n")
    with pytest.raises(InterpreterError) as exc:
        resolve_target(str(plain), {})
    assert "is not executable" in one_line_error(exc)

    with pytest.raises(InterpreterError) as exc:
        resolve_target(None, {"VIRTUAL_ENV": str(tmp_path / "gone")})
    assert "VIRTUAL_ENV=" in one_line_error(exc)

    venv = tmp_path / "oldvenv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "removed-python3.9")
    with pytest.raises(InterpreterError) as exc:
        resolve_target(str(venv), {})
    assert "broken link" in one_line_error(exc)


def test_probe_rejects_what_is_not_a_python(tmp_path: Path) -> None:
    garbage = executable(tmp_path / "garbage", "#!/bin/sh\necho 'Hello from a shell'\n")
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(garbage), timeout=10)
    message = one_line_error(exc)
    assert "not a Python interpreter" in message and "Hello from a shell" in message

    silent = executable(tmp_path / "silent", "#!/bin/sh\ncat >/dev/null\n")
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(silent), timeout=10)
    assert "it printed nothing" in one_line_error(exc)

    plain = tmp_path / "plain"
    plain.write_text("just text\n")
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(plain), timeout=10)
    assert "not executable" in one_line_error(exc)

    binary = tmp_path / "binary"
    binary.write_bytes(b"\x00\x01\x02 not an ELF file")
    binary.chmod(0o755)
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(binary), timeout=10)
    assert "Exec format error" in one_line_error(exc)

    with pytest.raises(InterpreterError) as exc:
        probe_target(str(tmp_path / "absent"), timeout=10)
    assert "no such file" in one_line_error(exc)


def test_probe_reports_a_crashing_python(tmp_path: Path) -> None:
    crash = executable(
        tmp_path / "python",
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
        "echo 'Fatal Python error: init_fs_encoding: failed to get the Python codec' >&2\nexit 1\n",
    )
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(crash), timeout=10)
    message = one_line_error(exc)
    assert "exited with status 1" in message and "failed to get the Python codec" in message


def test_probe_reports_a_hanging_python(tmp_path: Path) -> None:
    hang = executable(tmp_path / "python", "#!/bin/sh\nexec sleep 60\n")
    start = time.monotonic()
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(hang), timeout=1)
    assert time.monotonic() - start < 10
    assert "did not answer within 1 s" in one_line_error(exc)


def test_probe_reports_a_python_too_old(tmp_path: Path) -> None:
    # Stands in for Python 3.6 at the process boundary: it answers the way BOOTSTRAP makes an
    # old interpreter answer (BOOTSTRAP itself is checked for Python 2 syntax below).
    old = executable(
        tmp_path / "python3.6", "#!/bin/sh\ncat >/dev/null\necho 'QFIX-TARGET-TOO-OLD 3.6.8'\n"
    )
    with pytest.raises(InterpreterError) as exc:
        probe_target(str(old), timeout=10)
    assert "is Python 3.6.8; qfix needs 3.7 or newer" in one_line_error(exc)


# --------------------------------------------------------------------------- the script itself


def test_script_keeps_to_python_37_and_the_stdlib() -> None:
    source = script_source()
    tree = ast.parse(source, feature_version=(3, 7))  # no walrus, no 3.8+ syntax
    imported: set[str] = set()
    attributes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Attribute):
            attributes.add(node.attr)
    tops = {name.split(".")[0] for name in imported}
    assert tops <= set(sys.stdlib_module_names) | {"torch", "bitsandbytes"}
    assert "importlib.metadata" not in imported
    # Library calls newer than 3.7 (ast.parse cannot see these).
    assert not attributes & {"removeprefix", "removesuffix", "cache", "packages_distributions"}
    # The bootstrap must compile on the oldest interpreters, to say they are too old.
    compile(BOOTSTRAP, "<bootstrap>", "exec")
    # Sent through a pipe in the parent's encoding and read in the target's: ASCII survives both.
    assert source.isascii() and BOOTSTRAP.isascii()
    assert "f'" not in BOOTSTRAP and 'f"' not in BOOTSTRAP


def test_script_lists_match_the_facts_model() -> None:
    assert target_script.WATCHED == facts.WATCHED_PACKAGES
    assert target_script.ENV_VARS == facts.ENV_VARS
    assert script_source() == Path(target_script.__file__).read_text()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_version_py_parser_never_raises(text: str) -> None:
    found = target_script._literal_assignments(text, ("__version__", "cuda", "hip"))
    assert set(found) <= {"__version__", "cuda", "hip"}


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_metadata_header_parser_never_raises(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("meta") / "METADATA"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    name, version, requires = target_script._headers(str(path))
    assert all(isinstance(r, str) for r in requires)


def test_relative_paths_are_paths(
    venv_bare: Venv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".venv").symlink_to(venv_bare.path)
    target = executable(tmp_path / "py", "#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    # `--python .venv` names the directory here, not a command on PATH.
    assert resolve_target(".venv", {"PATH": ""}) == str(tmp_path / ".venv" / "bin" / "python")
    assert resolve_target("./py", {"PATH": ""}) == str(target)
    assert resolve_target("py", {"PATH": ""}) == str(target)


def test_metadata_headers_continue_past_a_line_of_spaces(tmp_path) -> None:
    """bitsandbytes 0.45.5's METADATA folds its License header over lines that hold only spaces;
    the Requires-Dist after them (torch<3,>=2.0) must still be read."""
    from repair.probe.target_script import _headers

    meta = tmp_path / "METADATA"
    meta.write_text(
        "Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.45.5\n"
        "License: MIT License\n        \n        Copyright (c) Facebook\n"
        "Requires-Dist: torch<3,>=2.0\nRequires-Dist: numpy>=1.17\n\n"
        "Requires-Dist: not-a-header (the body)\n"
    )
    name, version, requires = _headers(str(meta))
    assert (name, version) == ("bitsandbytes", "0.45.5")
    assert requires == ["torch<3,>=2.0", "numpy>=1.17"]


# --------------------------------------------------------------------------- libstdc++


def _glibcxx_in(path: str) -> str | None:
    """What `strings FILE | grep GLIBCXX_3.4` shows as the newest version, read here apart."""
    names = [w for w in Path(path).read_bytes().split(b"\0") if w.startswith(b"GLIBCXX_3.4")]
    levels = []
    for name in names:
        parts = name[len(b"GLIBCXX_") :].split(b".")
        if all(p.isdigit() for p in parts):
            levels.append(tuple(int(p) for p in parts))
    return ".".join(map(str, max(levels))) if levels else None


def test_probe_measures_the_libstdcxx_the_target_loads(tmp_path: Path) -> None:
    """The real probe reads the libstdc++ the target process maps and its newest GLIBCXX_; one
    put first on LD_LIBRARY_PATH (as a conda env's lib/ is by RPATH) is the one reported."""
    if not sys.platform.startswith("linux"):
        pytest.skip("libstdc++ is measured on Linux only")
    r = probe_target(sys.executable)
    lib = r.host.libstdcxx
    assert lib is not None and lib.path is not None, r.host
    assert Path(lib.path).name.startswith("libstdc++.so.6") and Path(lib.path).is_file()
    assert lib.glibcxx is not None and lib.glibcxx == _glibcxx_in(lib.path)
    assert lib.glibcxx.startswith("3.4.")

    own = tmp_path / "lib"
    own.mkdir()
    (own / "libstdc++.so.6").write_bytes(Path(lib.path).read_bytes())
    env = _without_vars(os.environ) | {"LD_LIBRARY_PATH": str(own)}
    moved = probe_target(sys.executable, environ=env).host.libstdcxx
    assert moved is not None and moved.path == str(own / "libstdc++.so.6")
    assert moved.glibcxx == lib.glibcxx


@pytest.mark.venv
def test_deep_probe_measures_libstdcxx_after_its_imports(venv_torch213: Venv) -> None:
    """With --deep, the report does not load libstdc++ before ``import torch`` (the first one
    loaded is the one every later import gets); the deep step reports the one the imports
    really loaded, and the facts carry it as the plain probe's."""
    if not sys.platform.startswith("linux"):
        pytest.skip("libstdc++ is measured on Linux only")
    code = (
        "import json, sys; src = sys.stdin.read()\n"
        "def mapped(): return any('libstdc++' in line for line in open('/proc/self/maps'))\n"
        "before = mapped(); ns = {'__name__': 'qfix_probe'}\n"
        "exec(compile(src, 'probe', 'exec'), ns)\n"
        "host = ns['report'](measure_libstdcxx=False)['host']\n"
        "print(json.dumps([host['libstdcxx'], before == mapped()]))\n"
    )
    done = _run_script_with(venv_torch213, code)
    assert done.stdout.strip() == "[null, true]"  # nothing measured, nothing loaded
    r = probe_target(str(venv_torch213.python), deep=True, timeout=120)
    plain = probe_target(str(venv_torch213.python)).host.libstdcxx
    assert r.extra["deep"]["steps"]["libstdcxx"]["found"]["path"] == plain.path
    assert r.host.libstdcxx == plain


def test_newest_glibcxx_compares_numbers_not_text() -> None:
    data = b"\0GLIBCXX_3.4\0GLIBCXX_3.4.9\0GLIBCXX_3.4.30\0GLIBCXX_3.4.21\0GLIBCXX_3.4.31x\0"
    assert target_script._newest_glibcxx(data) == "3.4.30"
    assert target_script._newest_glibcxx(b"\0GLIBCXX_3.4\0CXXABI_1.3.9\0") == "3.4"
    assert target_script._newest_glibcxx(b"GLIBC_2.17\0") is None


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        ({"url": "file:///src/bitsandbytes", "dir_info": {}}, True),  # pip install .
        ({"url": "file:///src/bnb", "dir_info": {"editable": True}}, True),  # pip install -e .
        ({"url": "https://github.com/x/bitsandbytes", "vcs_info": {"vcs": "git"}}, True),
        ({"url": "file:///d/bitsandbytes-0.45.5.tar.gz", "archive_info": {}}, True),  # sdist
        ({"url": "file:///d/bitsandbytes-0.50.2-py3-none-any.whl", "archive_info": {}}, False),
        ({"url": "https://x/bitsandbytes-0.50.2-py3-none-any.whl?raw=true"}, False),
        # a bare linux_* tag: PyPI refuses it, so the wheel was built on a machine like this one
        ({"url": "file:///d/dist/bitsandbytes-0.43.3-cp310-cp310-linux_x86_64.whl"}, True),
        (None, False),  # from an index: pip writes no direct_url.json (PEP 610)
        ("not json", None),
    ],
)
def test_source_build_is_read_from_pep_610(
    tmp_path: Path, direct_url: object, expected: bool | None
) -> None:
    info = tmp_path / "bitsandbytes-0.45.5.dist-info"
    info.mkdir()
    if direct_url is not None:
        raw = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (info / "direct_url.json").write_text(raw)
    dist = target_script._Dist("bitsandbytes", "0.45.5", str(info), [])
    assert target_script._source_build(dist) is expected
    for folder in ("b.egg-info", "bitsandbytes-0.43.3.dev0-py3.10-linux-x86_64.egg/EGG-INFO"):
        egg = target_script._Dist("bitsandbytes", "0.43.3.dev0", str(tmp_path / folder), [])
        assert target_script._source_build(egg) is True  # setup.py install: no wheel at all
