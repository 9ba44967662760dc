"""Which environment qfix reads: uv's order, never qfix's own tool venv unless named.

The unit tests lay out real folders (venvs made of a ``bin/python`` link); the last test installs
the qfix wheel as a tool with ``uv tool install`` (its own private venv, as users do) and runs it
in a project folder whose ``.venv`` is not activated.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repair.errors import InterpreterError
from repair.probe.interpreter import discover_target
from repair.settings import is_tool_venv, next_step_target
from tests.venvs import Venv, copy_venv

REPO = Path(__file__).resolve().parent.parent


def fake_venv(path: Path, *, marker: str | None = None) -> Path:
    """A folder shaped like a venv: bin/python linking to this interpreter (+ a tool marker)."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    (path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    if marker:
        (path / marker).write_text("")
    return path / "bin" / "python"


@pytest.fixture()
def layout(tmp_path: Path) -> dict[str, Path]:
    tool = tmp_path / "tools" / "qfix"
    fake_venv(tool, marker="uv-receipt.toml")
    project = tmp_path / "proj"
    fake_venv(project / ".venv")
    (project / "src" / "deep").mkdir(parents=True)
    return {"tool": tool, "project": project, "tmp": tmp_path}


def find(layout: dict[str, Path], environ: dict[str, str], cwd: Path, tool: bool = True):
    own = layout["tool"] if tool else layout["tmp"] / "dev"
    return discover_target(
        None,
        environ,
        cwd=str(cwd),
        own_prefix=str(own),
        own_base_prefix="/usr",
        own_executable=str(own / "bin" / "python"),
    )


def test_is_tool_venv() -> None:
    assert is_tool_venv("/t/qfix", "/usr", frozenset({"uv-receipt.toml", "bin"}))
    assert is_tool_venv("/t/qfix", "/usr", frozenset({"pipx_metadata.json"}))
    assert not is_tool_venv("/p/.venv", "/usr", frozenset({"bin", "pyvenv.cfg"}))
    assert not is_tool_venv("/usr", "/usr", frozenset({"uv-receipt.toml"}))  # not a venv at all


def test_project_venv_found_from_a_subfolder(layout: dict[str, Path]) -> None:
    t = find(layout, {"PATH": ""}, layout["project"] / "src" / "deep")
    assert t.python == str(layout["project"] / ".venv" / "bin" / "python")
    assert t.reason == f".venv found in {layout['project']}"
    t = find(layout, {"PATH": ""}, layout["project"])
    assert t.reason == ".venv found in the current folder"


def broken_venv(path: Path, how: str) -> None:
    """A project .venv that cannot run: its base Python removed (bin/python links to nothing),
    its interpreter deleted, or a bin/python that is not executable."""
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text("home = /opt/gone/bin\n")
    if how == "link":
        (path / "bin" / "python").symlink_to("/opt/gone/bin/python3.11")
    elif how == "mode":
        (path / "bin" / "python").write_text("")


@pytest.mark.parametrize(
    "how, why",
    [
        ("link", "bin/python links to /opt/gone/bin/python3.11, which does not exist"),
        ("none", "no interpreter in it"),
        ("mode", "bin/python is not executable"),
    ],
)
def test_a_broken_project_venv_is_named_and_passed_over(
    layout: dict[str, Path], how: str, why: str
) -> None:
    project = layout["tmp"] / "broken"
    broken_venv(project / ".venv", how)
    # a parent's .venv is another project's: a broken one here is not replaced by it
    t = find(layout, {"PATH": ""}, project, tool=False)
    own = str(layout["tmp"] / "dev" / "bin" / "python")
    assert t.python == own
    assert t.reason == "the interpreter running qfix (no working venv found)"
    assert len(t.warnings) == 1 and t.warnings[0].startswith("./.venv is broken (")
    assert why in t.warnings[0] and t.warnings[0].endswith(f"; using {own} ({t.reason})")
    assert t.to_dict()["warnings"] == list(t.warnings)


def test_a_broken_venv_in_a_parent_is_named_by_its_path(layout: dict[str, Path]) -> None:
    project = layout["tmp"] / "broken"
    broken_venv(project / ".venv", "link")
    (project / "src").mkdir()
    t = find(layout, {"PATH": ""}, project / "src", tool=False)
    assert t.warnings[0].startswith(f"{project / '.venv'} is broken (")


def test_a_working_venv_has_no_warning(layout: dict[str, Path]) -> None:
    t = find(layout, {"PATH": ""}, layout["project"])
    assert t.warnings == () and t.to_dict()["warnings"] == []


def test_a_broken_venv_and_nothing_else_is_one_error_naming_it(layout: dict[str, Path]) -> None:
    project = layout["tmp"] / "broken"
    broken_venv(project / ".venv", "link")
    with pytest.raises(InterpreterError, match=r"\./\.venv is broken \(bin/python links to"):
        find(layout, {"PATH": ""}, project)  # qfix runs from its tool venv, no python on PATH


def test_the_cli_warns_on_stderr_and_in_json(tmp_path: Path) -> None:
    broken_venv(tmp_path / ".venv", "link")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "repair", "detect", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("qfix: warning:")]
    assert warning and warning[0].startswith("qfix: warning: ./.venv is broken (bin/python links")
    target = json.loads(done.stdout)["target"]
    assert target["warnings"] == [warning[0].removeprefix("qfix: warning: ")]
    assert target["python"] == sys.executable or "no working venv" in target["reason"]


def test_uv_order(layout: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "active"
    fake_venv(other)
    conda = tmp_path / "conda"
    fake_venv(conda)
    cwd = layout["project"]
    t = find(layout, {"VIRTUAL_ENV": str(other), "CONDA_PREFIX": str(conda)}, cwd)
    assert t.python == str(other / "bin" / "python") and "VIRTUAL_ENV" in t.reason
    t = find(layout, {"CONDA_PREFIX": str(conda)}, cwd)
    assert t.python == str(conda / "bin" / "python") and "CONDA_PREFIX" in t.reason
    named = discover_target(str(other), {"VIRTUAL_ENV": str(conda)}, cwd=str(cwd))
    assert named.python == str(other / "bin" / "python") and named.reason == "named by --python"


def test_own_tool_venv_is_skipped_unless_named(layout: dict[str, Path], tmp_path: Path) -> None:
    tool = layout["tool"]
    path_dir = tmp_path / "pathbin"
    path_dir.mkdir()
    (path_dir / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{tool / 'bin'}{os.pathsep}{path_dir}", "VIRTUAL_ENV": str(tool)}
    t = find(layout, env, tmp_path)  # no .venv above tmp_path
    assert t.python == str(path_dir / "python3"), t
    assert "PATH" in t.reason and "tool venv is skipped" in t.reason
    with pytest.raises(InterpreterError, match="tool venv is never repaired"):
        find(layout, {"PATH": str(tool / "bin")}, tmp_path)
    named = discover_target(str(tool), {}, cwd=str(tmp_path))
    assert named.python == str(tool / "bin" / "python")


def test_not_a_tool_install_falls_back_to_its_own_interpreter(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    t = find(layout, {"PATH": ""}, tmp_path, tool=False)
    assert t.python == str(tmp_path / "dev" / "bin" / "python")
    assert "running qfix" in t.reason


def test_next_step_target_quotes() -> None:
    assert next_step_target(None) == ""
    assert next_step_target("/a b/python") == " --python '/a b/python'"


@pytest.mark.venv
def test_tool_install_repairs_the_project_venv(
    venv_bnb038: Venv, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`uv tool install` of the qfix wheel, run in a project folder with an unactivated .venv
    (torch 2.13 CPU + bitsandbytes 0.38.1, no 4-bit): it finds that .venv, and the printed
    `Apply with:` line, pasted as it is, repairs it and leaves qfix's own venv alone."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        timeout=600,
    )
    wheel = next(dist.glob("qfix-*.whl"))
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON")
    }
    env.update(UV_TOOL_DIR=str(tmp_path / "tools"), UV_TOOL_BIN_DIR=str(tmp_path / "bin"))
    subprocess.run(
        [uv, "tool", "install", "--python", sys.executable, str(wheel)],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    qfix = tmp_path / "bin" / "qfix"
    tool_prefix = tmp_path / "tools" / "qfix"
    assert (tool_prefix / "uv-receipt.toml").is_file()
    project = tmp_path / "project"
    copy_venv(venv_bnb038, project / ".venv")
    (project / "train").mkdir()
    want = str(project / ".venv" / "bin" / "python")

    done = subprocess.run(
        [str(qfix), "detect", "--json"],
        cwd=project / "train",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["target"] == {"python": want, "reason": f".venv found in {project}", "warnings": []}
    assert doc["python"]["executable"] == want

    done = subprocess.run(
        [str(qfix), "plan"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert f"qfix: target: {want} (.venv found in the current folder)" in done.stderr
    assert str(tool_prefix) not in done.stdout + done.stderr
    assert f"Apply with: qfix apply --python {want} --yes" in done.stdout, done.stdout

    line = next(x for x in done.stdout.splitlines() if x.startswith("Apply with: "))
    argv = shlex.split(line.removeprefix("Apply with: "))
    assert argv[0] == "qfix"
    tool_before = sorted(p.name for p in tool_prefix.glob("lib/python*/site-packages/*"))
    done = subprocess.run(
        [str(qfix), *argv[1:], "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)["outcome"]
    assert outcome["ok"] and outcome["python"] == want
    assert outcome["before"]["bitsandbytes"] == "0.38.1"
    assert outcome["after"]["bitsandbytes"] != "0.38.1"
    assert sorted(p.name for p in tool_prefix.glob("lib/python*/site-packages/*")) == tool_before
