"""The target interpreter: which Python qfix reads, and what it says about its environment.

The target is chosen in uv's order (``discover_target``): ``--python PATH`` (an interpreter or
a venv directory), ``VIRTUAL_ENV``, ``CONDA_PREFIX``, a ``.venv`` in the current folder or its
parents, the interpreter running qfix unless it is qfix's own pipx/uv tool venv, the first
python3 on PATH. It is read by running that interpreter on ``target_script.py`` (stdlib only, never
imports torch), sent on stdin to a tiny bootstrap given with ``-c``:

* no ``-I``/``-E``/``-s``: the report must show what the user's own ``python train.py`` sees,
  and on a system interpreter that includes the user site-packages (``pip install --user torch``)
  and ``PYTHONPATH``; the script drops only the working directory that ``-c`` puts first on
  ``sys.path``;
* no ``-S``: that would hide site-packages, i.e. everything we came for;
* the bootstrap is valid Python 2 and 3 and checks the version before compiling the script, so
  an interpreter that is too old gets a clear message instead of a SyntaxError.

A target that cannot start, crashes, hangs or prints no report is an ``InterpreterError`` (exit
2, one line). In ``--deep`` mode the same child then imports torch and bitsandbytes one step at a
time; a step that hangs or crashes is recorded in ``torch.error``/``bitsandbytes.error`` and the
plain report, printed first, still stands.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from repair import jsonload, process
from repair.errors import FactsError, InterpreterError
from repair.facts import Bitsandbytes, Host, PythonInfo, TorchBuild, facts_from_dict
from repair.settings import Target, is_tool_venv

MARK_REPORT = "QFIX-TARGET "
MARK_DEEP = "QFIX-DEEP "
MARK_TOO_OLD = "QFIX-TARGET-TOO-OLD "
MIN_TARGET_PYTHON = (3, 7)

# Valid Python 2 and 3: an old interpreter says its version instead of failing on f-strings.
BOOTSTRAP = (
    "import sys\n"
    f"if sys.version_info < {MIN_TARGET_PYTHON!r}:\n"
    f"    sys.stdout.write('{MARK_TOO_OLD}%d.%d.%d\\n' % tuple(sys.version_info[:3]))\n"
    "else:\n"
    "    exec(compile(sys.stdin.read(), '<qfix-target-script>', 'exec'))\n"
)

# Where a venv keeps its interpreter: POSIX venvs, Windows venvs, Windows conda envs.
_VENV_PYTHONS = (("bin", "python"), ("bin", "python3"), ("Scripts", "python.exe"), ("python.exe",))

# What the deep child was doing when a step never reported back.
_DEEP_STEPS = (
    ("torch", "import torch"),
    ("cuda", "torch.cuda.is_available()"),
    ("bitsandbytes", "import bitsandbytes"),
)


@dataclass(frozen=True, slots=True)
class TargetReport:
    """What the target interpreter said about itself and its environment (facts sections)."""

    host: Host
    python: PythonInfo
    packages: dict[str, str | None]
    torch: TorchBuild | None
    bitsandbytes: Bitsandbytes | None
    env: dict[str, str | None]
    # torch_dependents, torch_optional_dependents, duplicate_distributions,
    # invalid_distributions, pip_version, interpreter, torch_path, bitsandbytes_path,
    # probe_errors, and "deep" (the raw steps) in deep mode.
    extra: dict[str, Any] = field(default_factory=dict)


@functools.cache
def script_source() -> str:
    """The source of target_script.py, as shipped in the package."""
    return resources.files("repair.probe").joinpath("target_script.py").read_text("utf-8")


# --------------------------------------------------------------------------- choosing the target


def resolve_target(python: str | None, environ: Mapping[str, str]) -> str:
    """The interpreter to probe (see ``discover_target``), without the reason."""
    return discover_target(python, environ).python


def discover_target(
    python: str | None,
    environ: Mapping[str, str],
    *,
    cwd: str | None = None,
    own_prefix: str | None = None,
    own_base_prefix: str | None = None,
    own_executable: str | None = None,
) -> Target:
    """The interpreter to read and why, in uv's order (https://docs.astral.sh/uv/pip/environments/):

    1. ``--python`` (file, venv directory or command name);
    2. ``$VIRTUAL_ENV`` (an activated venv);
    3. ``$CONDA_PREFIX`` (an activated conda environment);
    4. a ``.venv`` in the current folder or one of its parents (a project's unactivated venv);
    5. the interpreter running qfix, unless that is qfix's own private tool venv (pipx,
       ``uv tool``): a qfix installed into an environment by ``pip install qfix`` sits beside the
       stack it repairs, and ``python3.11 -m repair`` names its interpreter;
    6. the first ``python3``/``python`` on PATH (a tool install with no project around).

    qfix's own tool venv is never chosen unless ``--python`` names it. The path is made absolute
    but symlinks are kept: a venv's ``bin/python`` is a link to the base interpreter, and
    following it would leave the venv. Raises InterpreterError (one line) for a path that names
    nothing, a directory without a Python, or a file that is not executable.
    """
    if python is not None:
        return Target(_locate(python, "--python", environ), "named by --python")
    prefix = sys.prefix if own_prefix is None else own_prefix
    base = sys.base_prefix if own_base_prefix is None else own_base_prefix
    own_is_tool = _is_tool(prefix, base)

    def own(path: str) -> bool:
        return own_is_tool and _inside(path, prefix)

    venv = environ.get("VIRTUAL_ENV")
    if venv and not own(venv):
        if not os.path.isdir(venv):
            raise InterpreterError(
                f"VIRTUAL_ENV={venv}: no such directory",
                tip="run `deactivate`, or name the interpreter with --python",
            )
        return Target(_locate(venv, "VIRTUAL_ENV", environ), "VIRTUAL_ENV is set (an active venv)")
    conda = environ.get("CONDA_PREFIX")
    if conda and os.path.isdir(conda) and not own(conda):
        return Target(
            _locate(conda, "CONDA_PREFIX", environ), "CONDA_PREFIX is set (an active conda env)"
        )
    here = os.path.abspath(cwd or os.getcwd())
    broken = None
    for folder in (here, *_parents(here)):
        candidate = os.path.join(folder, ".venv")
        if not os.path.isdir(candidate) or own(candidate):
            continue
        why = venv_broken(candidate)
        where = "the current folder" if folder == here else folder
        if why is None:
            return Target(_locate(candidate, ".venv", environ), f".venv found in {where}")
        # The project's venv cannot run: say so, and go on without the .venvs of other folders.
        shown = os.path.join(".", ".venv") if folder == here else candidate
        broken = f"{shown} is broken ({why})"
        break
    found = _fallback(environ, own_is_tool, own, own_executable, broken)
    if broken is None:
        return found
    return replace(found, warnings=(f"{broken}; using {found.python} ({found.reason})",))


def _fallback(
    environ: Mapping[str, str],
    own_is_tool: bool,
    own: Callable[[str], bool],
    own_executable: str | None,
    broken: str | None,
) -> Target:
    """Steps 5 and 6 of ``discover_target``: the interpreter running qfix, else PATH's."""
    executable = sys.executable if own_executable is None else own_executable
    none = "no venv found" if broken is None else "no working venv found"
    if not own_is_tool:
        if not executable:
            raise InterpreterError(
                "cannot tell which Python runs qfix (sys.executable is empty)",
                tip="name the target interpreter with --python",
            )
        return Target(executable, f"the interpreter running qfix ({none})")
    for name in ("python3", "python"):
        found = shutil.which(name, path=environ.get("PATH"))
        if found and not own(found):
            return Target(
                os.path.abspath(found),
                f"first {name} on PATH ({none}; qfix's own tool venv is skipped)",
            )
    if broken is not None:
        raise InterpreterError(
            f"{broken}, and no other Python to read (qfix's own tool venv is never repaired "
            "unless named)",
            tip="recreate the virtual environment, or name the interpreter with --python",
        )
    raise InterpreterError(
        "no target environment: no --python, VIRTUAL_ENV, CONDA_PREFIX or .venv here, and no "
        "python3 on PATH (qfix's own tool venv is never repaired unless named)",
        tip="run qfix in your project folder, or name the interpreter with --python",
    )


def venv_broken(path: str) -> str | None:
    """Why the virtual environment at ``path`` cannot run its interpreter, or None when its
    interpreter is there (a file, executable). A venv whose base Python was removed (pyenv
    uninstall, a distro upgrade) keeps ``bin/python`` as a link to nothing."""
    for parts in _VENV_PYTHONS:
        candidate = os.path.join(path, *parts)
        if not os.path.lexists(candidate):
            continue
        name = "/".join(parts)
        if not os.path.exists(candidate):
            target = os.readlink(candidate) if os.path.islink(candidate) else "?"
            return f"{name} links to {target}, which does not exist"
        if not os.path.isfile(candidate):
            return f"{name} is not a file"
        if not os.access(candidate, os.X_OK):
            return f"{name} is not executable"
        return None
    return "no interpreter in it: no bin/python or Scripts/python.exe"


def _is_tool(prefix: str, base: str) -> bool:
    try:
        names = frozenset(os.listdir(prefix))
    except OSError:
        names = frozenset()
    return is_tool_venv(prefix, base, names)


def _inside(path: str, prefix: str) -> bool:
    # Not the link's target: a venv's bin/python links out to the base interpreter.
    pairs = (
        (os.path.abspath(path), os.path.abspath(prefix)),
        (os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.realpath(prefix)),
    )
    for a, b in pairs:
        try:
            if os.path.commonpath([a, b]) == b:
                return True
        except ValueError:  # different drives on Windows
            continue
    return False


def _parents(path: str) -> list[str]:
    out: list[str] = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def _locate(value: str, label: str, environ: Mapping[str, str]) -> str:
    shown = f"{label} {value}" if label == "--python" else f"{label}={value}"
    tip = "name a Python interpreter or a virtual environment directory, e.g. --python .venv"
    if not value.strip():
        raise InterpreterError(f"{label}: the path is empty", tip=tip)
    path = os.path.expanduser(value)
    if not _has_separator(path) and not os.path.lexists(path):
        # A bare command name (`--python python3.11`), found the way a shell would.
        found = shutil.which(path, path=environ.get("PATH"))
        if found is None:
            raise InterpreterError(f"{shown}: no such file, directory or command", tip=tip)
        path = found
    if not os.path.lexists(path):
        raise InterpreterError(f"{shown}: no such file or directory", tip=tip)
    if os.path.isdir(path):
        for parts in _VENV_PYTHONS:
            candidate = os.path.join(path, *parts)
            if os.path.lexists(candidate):
                return _check_file(candidate, shown, tip)
        raise InterpreterError(
            f"{shown}: a directory without a Python interpreter "
            "(looked for bin/python and Scripts/python.exe)",
            tip=tip,
        )
    return _check_file(path, shown, tip)


def _check_file(path: str, shown: str, tip: str) -> str:
    if not os.path.exists(path):
        # A venv whose base interpreter was removed (pyenv uninstall, a distro upgrade).
        target = os.readlink(path) if os.path.islink(path) else "?"
        raise InterpreterError(
            f"{shown}: {path} is a broken link (its target {target} does not exist)",
            tip="recreate the virtual environment with an interpreter that exists",
        )
    if not os.path.isfile(path):
        raise InterpreterError(f"{shown}: {path} is not a file", tip=tip)
    if not os.access(path, os.X_OK):
        raise InterpreterError(f"{shown}: {path} is not executable", tip=tip)
    return os.path.abspath(path)


def _has_separator(path: str) -> bool:
    return os.sep in path or (os.altsep is not None and os.altsep in path)


# --------------------------------------------------------------------------- probing


def probe_target(
    python: str,
    *,
    deep: bool = False,
    timeout: float = 20.0,
    environ: Mapping[str, str] | None = None,
) -> TargetReport:
    """Run the target script in ``python`` and return what it reported.

    ``environ`` is the environment the target sees (default: qfix's own). ``timeout`` limits the
    whole child; in deep mode a step that does not finish in it is recorded, not raised. Raises
    InterpreterError (exit 2, one line) when ``python`` cannot start, is not a Python, crashes,
    hangs or prints no valid report.
    """
    started = time.monotonic()
    argv = [python, "-c", BOOTSTRAP, *(["--deep"] if deep else [])]
    done, report_line, deep_lines = _run_script(python, argv, timeout, _child_env(environ, deep))
    report = _parse_report(python, report_line)
    if deep:
        report = _merge_deep(report, deep_lines, done, timeout, time.monotonic() - started)
    return report


def _run_script(
    python: str, argv: list[str], timeout: float, env: dict[str, str]
) -> tuple[process.Completed, str, list[str]]:
    """Run the target script (sent on stdin); its report line and deep lines, or
    InterpreterError naming why there is no report."""
    try:
        done = process.run(argv, timeout=timeout, env=env, input_text=script_source())
    except process.ProcessFailure as exc:
        raise InterpreterError(
            f"cannot run the target interpreter {python}: {exc.reason}",
            tip="name a Python interpreter with --python",
        ) from None
    report_line, deep_lines = _split_output(done.stdout)
    if report_line is None:
        raise _no_report(python, done, timeout)
    return done, report_line, deep_lines


def _child_env(environ: Mapping[str, str] | None, deep: bool) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    # The macOS framework launcher leaks this to children, which then start as the parent's
    # venv interpreter instead of the one named (python/cpython#66680, bpo-22490).
    env.pop("__PYVENV_LAUNCHER__", None)
    if deep:
        # Reading the target must not change it: no __pycache__ written by our imports.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _split_output(stdout: str) -> tuple[str | None, list[str]]:
    """The report line and the deep-step lines; anything else (a chatty .pth file) is ignored."""
    report = None
    steps = []
    for line in stdout.splitlines():
        if line.startswith(MARK_REPORT):
            report = line[len(MARK_REPORT) :]
        elif line.startswith(MARK_DEEP):
            steps.append(line[len(MARK_DEEP) :])
    return report, steps


def _no_report(python: str, done: process.Completed, timeout: float) -> InterpreterError:
    tip = "name a working Python interpreter with --python"
    if done.exceeded:
        return InterpreterError(
            f"the target interpreter {python} did not answer: {done.why()}", tip=tip
        )
    if done.timed_out:
        return InterpreterError(
            f"the target interpreter {python} did not answer within {timeout:g} s", tip=tip
        )
    for line in done.stdout.splitlines():
        if line.startswith(MARK_TOO_OLD):
            version = line[len(MARK_TOO_OLD) :].strip()
            return InterpreterError(
                f"the target interpreter {python} is Python {version}; qfix needs "
                f"{'.'.join(map(str, MIN_TARGET_PYTHON))} or newer there",
                tip="create a virtual environment with a newer Python and name it with --python",
            )
    if done.returncode != 0 and "sys.version_info" in done.stderr:
        # A program that is no Python (`--python /bin/ls`) echoes its argument, the probe script,
        # in its complaint: name the program's words before it, never the script.
        said = _clip(done.stderr.split("import sys")[0].strip(" '\"\n"), 60)
        return InterpreterError(
            f"the target {python} is not a Python interpreter: it "
            f"{_exit_text(done.returncode)} on the probe script" + (f" ({said})" if said else ""),
            tip=tip,
        )
    if done.returncode != 0:
        return InterpreterError(
            f"the target interpreter {python} {_exit_text(done.returncode)}: "
            f"{_last_line(done.stderr) or 'nothing on stderr'}",
            tip=tip,
        )
    first = next((s.strip() for s in done.stdout.splitlines() if s.strip()), "")
    said = f"it printed {_clip(first, 60)!r}" if first else "it printed nothing"
    return InterpreterError(
        f"the target {python} is not a Python interpreter qfix can read: {said}", tip=tip
    )


def _parse_report(python: str, line: str) -> TargetReport:
    origin = f"the report of {python}"
    # bounded (repair.jsonload): a hostile target must not crash qfix with a deep or huge answer
    data = jsonload.loads(line, origin, error=InterpreterError)
    if not isinstance(data, dict):
        raise InterpreterError(f"{origin} is not a JSON object")
    try:
        facts = facts_from_dict(data, origin)
    except FactsError as exc:
        raise InterpreterError(_one_line(exc.message)) from None
    extra = {k: v for k, v in facts.extra.items() if k != "probe"}
    return TargetReport(
        host=facts.host or Host(),
        python=facts.python or PythonInfo(),
        packages=dict(facts.packages or {}),
        torch=facts.torch,
        bitsandbytes=facts.bitsandbytes,
        env=dict(facts.env or {}),
        extra=extra,
    )


# --------------------------------------------------------------------------- install paths


@dataclass(frozen=True, slots=True)
class TargetPaths:
    """Where an interpreter's installers write, as the interpreter itself reports it."""

    info: PythonInfo
    prefix: str
    purelib: str
    platlib: str
    scripts: str
    data: str


def inspect_target(python: str, *, timeout: float = 60) -> TargetPaths:
    """The kind (venv, conda, externally managed: the same python section as every probe) and
    the install paths of ``python``, from the target script's ``--where`` mode.

    Run isolated (``-I``): where installers write must not depend on PYTHONPATH or the user's
    site-packages. InterpreterError (exit 2, one line) when it cannot answer.
    """
    argv = [python, "-I", "-c", BOOTSTRAP, "--where"]
    _, line, _ = _run_script(python, argv, timeout, _child_env(None, False))
    report = _parse_report(python, line)
    try:
        paths = jsonload.loads(line, f"the report of {python}", error=InterpreterError)["paths"]
        return TargetPaths(
            replace(report.python, executable=python),
            str(report.python.prefix),
            str(paths["purelib"]),
            str(paths["platlib"]),
            str(paths["scripts"]),
            str(paths["data"]),
        )
    except (KeyError, TypeError):
        raise InterpreterError(
            f"the target interpreter {python} gave an unreadable answer: {line[:200]!r}"
        ) from None


# --------------------------------------------------------------------------- deep mode


def _merge_deep(
    report: TargetReport,
    lines: list[str],
    done: process.Completed,
    timeout: float,
    seconds: float,
) -> TargetReport:
    steps: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            obj = jsonload.loads(line, "a deep step", error=InterpreterError)
        except InterpreterError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("step"), str):
            steps[obj["step"]] = obj

    # The first step that never reported is the one that hung or crashed the child.
    cause = None
    pending = None
    if "done" not in steps:
        pending = next((name for name, _ in _DEEP_STEPS if name not in steps), None)
        action = dict(_DEEP_STEPS).get(pending or "", "the deep probe")
        if done.exceeded:
            cause = f"{action} was stopped: {done.why()}"
        elif done.timed_out:
            cause = f"{action} did not finish within {timeout:g} s"
        else:
            last = _last_line(done.stderr)
            cause = f"{action} {_exit_text(done.returncode)}" + (f": {last}" if last else "")

    torch = report.torch
    t = steps.get("torch")
    if t is not None and t.get("ok"):
        c = steps.get("cuda") or {}
        torch = replace(
            torch or TorchBuild(),
            version=_str(t.get("version")) or (torch.version if torch else None),
            cuda=_str(t.get("cuda")),
            hip=_str(t.get("hip")),
            arch_list=_strs(c.get("arch_list")),
            cuda_available=c.get("available") if isinstance(c.get("available"), bool) else None,
        )
        if c.get("error"):
            torch = replace(torch, error=_join(torch.error, f"torch.cuda: {_str(c['error'])}"))
        if pending == "cuda":
            torch = replace(torch, error=_join(torch.error, cause))
    elif torch is not None:
        if t is not None:
            failed = f"import torch failed: {_str(t.get('error'))}"
            torch = replace(torch, error=_join(torch.error, failed))
        elif pending == "torch":
            torch = replace(torch, error=_join(torch.error, cause))

    bnb = report.bitsandbytes
    b = steps.get("bitsandbytes")
    if b is not None:
        if b.get("ok") or bnb is not None:
            bnb = replace(
                bnb or Bitsandbytes(version=_str(b.get("version"))),
                loaded=b.get("loaded") if isinstance(b.get("loaded"), bool) else False,
                error=_str(b.get("error"))
                if b.get("ok")
                else f"import bitsandbytes failed: {_str(b.get('error'))}",
            )
    elif bnb is not None and cause is not None:
        bnb = replace(bnb, error=cause if pending == "bitsandbytes" else f"not checked: {cause}")

    extra = dict(report.extra)
    extra["deep"] = {"steps": steps, "finished": "done" in steps, "seconds": round(seconds, 3)}
    host = _deep_libstdcxx(report.host, steps.get("libstdcxx"))
    return replace(report, host=host, torch=torch, bitsandbytes=bnb, extra=extra)


def _deep_libstdcxx(host: Host, step: dict[str, Any] | None) -> Host:
    """``host`` with the libstdc++ the deep probe measured after its imports (read as the
    report's own ``host.libstdcxx`` is; a malformed answer is left out)."""
    found = (step or {}).get("found")
    if host.libstdcxx is not None or not isinstance(found, dict):
        return host
    try:
        facts = facts_from_dict(
            {"schema": "qfix.facts/1", "host": {"libstdcxx": found}}, "the deep probe's libstdc++"
        )
    except FactsError:
        return host
    return replace(host, libstdcxx=facts.host.libstdcxx if facts.host else None)


# --------------------------------------------------------------------------- helpers


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"crashed ({name})"
    return f"exited with status {returncode}"


def _last_line(text: str) -> str:
    return process.last_line(text, 200)  # printable: a target may write binary garbage


def _clip(text: str, limit: int) -> str:
    return process.one_line(text, limit)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _strs(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return tuple(value)
    return None


def _join(*parts: str | None) -> str | None:
    kept = [p for p in parts if p]
    return "; ".join(kept) if kept else None
