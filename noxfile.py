"""Maintainers' sessions. `nox -l` lists them; `nox` runs the defaults (tests, lint, typecheck).

Sessions reuse one pip cache and the test venv cache (.cache/venvs), so a second run is quick.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))  # the scenario table (stdlib only) parametrizes `repairs`
from tests.repairs.scenarios import HEAVY_IDS, LIGHT_IDS  # noqa: E402

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"  # the Python of the local torch wheels (2.13.0 CPU, 2.14.1 cu130)
CACHE_ENV = {"QFIX_TEST_VENVS": str(ROOT / ".cache" / "venvs")}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (the same command CI runs)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-n", "auto", "--dist", "loadfile", *session.posargs, env=CACHE_ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the package, tests, benchmarks and tools."""
    session.install("ruff")
    paths = ("repair", "tests", "bench", "tools", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy; strict on the pure core (see [tool.mypy] in pyproject.toml)."""
    session.install("-e", ".", "mypy")
    session.run("mypy", "repair")


@nox.session(python=PYTHON, default=False)
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it in a fresh venv, plan from a shipped example (plans/ ships).

    Proves that plans/ (the knowledge base and the examples) ships inside the wheel."""
    tmp = Path(session.create_tmp())
    shutil.rmtree(tmp / "dist", ignore_errors=True)  # a reused tmp must not offer an old wheel
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", str(tmp / "dist"), str(ROOT))
    wheel_file = next((tmp / "dist").glob("qfix-*.whl"))
    # --force-reinstall: a reused session venv already holds a qfix of the same version
    session.install("--force-reinstall", str(wheel_file))
    session.chdir(str(tmp))  # away from the checkout: only the installed wheel is importable
    session.run(
        "python",
        "-c",
        "import repair, pathlib; assert 'site-packages' in repair.__file__, repair.__file__",
    )
    session.run("qfix", "plan", "--facts", "example:seed", success_codes=[1])
    session.run("qfix", "explain", "no kernel image is available for execution on the device")


@nox.session(python=PYTHON, default=False)
def knowledge(session: nox.Session) -> None:
    """plans/ against PyPI today (tools/check_knowledge.py): new releases, platforms, yanked files,
    entries past their check date. Exit 1 on drift; 'skipped: no network' (exit 0) offline."""
    session.install("-e", ".")
    session.run("python", "tools/check_knowledge.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def gpu(session: nox.Session) -> None:
    """On a machine with an NVIDIA GPU: the GPU path of qfix verify, in one command."""
    session.run("bash", "scripts/gpu_check.sh", external=True, env=dict(os.environ))


# --------------------------------------------------------------------------- repairs (issue 6)
# Every repair qfix promises, end to end through the installed `qfix` command: a broken venv is
# built (real torch 2.13.0 CPU, generated torch CUDA builds from a local PyTorch-style index, real
# bitsandbytes), on this host or a GPU host simulated by the fake NVML; then detect, verify, plan,
# apply, verify and plan again. See docs/repairs.md; the table is tests/repairs/scenarios.py.
REPAIRS_CACHE = ROOT / ".cache" / "repairs"
REPAIRS_ENV = {
    # one wheel cache for every scenario (and for the sessions' own installs)
    "PIP_CACHE_DIR": str(REPAIRS_CACHE / "pip"),
    "UV_CACHE_DIR": str(REPAIRS_CACHE / "uv"),
}


def _repairs_session(session: nox.Session, scenario: str) -> None:
    session.env.update(REPAIRS_ENV)
    # qfix as users get it (a built, non-editable install) plus uv, which builds the broken venvs
    # and which qfix apply picks when a scenario says installer "auto" or "uv"
    # (--reinstall-package: a reused session venv must not keep a stale qfix of the same version)
    session.install("--reinstall-package", "qfix", str(ROOT), "uv")
    session.run("python", str(ROOT / "tests" / "repairs" / "run.py"), scenario, *session.posargs)


@nox.session(python=PYTHON, venv_backend="uv")
@nox.parametrize("scenario", [nox.param(i, id=i) for i in LIGHT_IDS])
def repairs(session: nox.Session, scenario: str) -> None:
    """Repair one broken scenario for real: build the venv, qfix plan/apply/verify, end healthy."""
    _repairs_session(session, scenario)


@nox.session(name="repairs-heavy", python=PYTHON, venv_backend="uv", default=False)
@nox.parametrize("scenario", [nox.param(i, id=i) for i in HEAVY_IDS])
def repairs_heavy(session: nox.Session, scenario: str) -> None:
    """CPU torch 2.13 -> the real torch 2.14.1 CUDA 13.0 wheels on a simulated H100 (~5 GB)."""
    _repairs_session(session, scenario)
