"""Maintainers' sessions. `nox -l` lists them; `nox` runs the defaults (tests, lint, typecheck).

Sessions reuse one pip cache and the test venv cache (.cache/venvs), so a second run is quick.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"  # the Python of the local torch wheels (2.13.0 CPU, 2.14.1 cu130)
CACHE_ENV = {"QFIX_TEST_VENVS": str(ROOT / ".cache" / "venvs")}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (the same command CI runs)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs, env=CACHE_ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check (and format --check) over the package, tests and tools."""
    session.install("ruff")
    session.run("ruff", "check", "repair", "tests", "bench", "tools", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy; strict on the pure core (see [tool.mypy] in pyproject.toml)."""
    session.install("-e", ".", "mypy")
    session.run("mypy", "repair")


@nox.session(python=PYTHON, default=False)
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it into a fresh venv and plan from a shipped example: proves that
    plans/ (the knowledge base and the examples) ships inside the wheel."""
    tmp = Path(session.create_tmp())
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", str(tmp / "dist"), str(ROOT))
    wheel_file = next((tmp / "dist").glob("qfix-*.whl"))
    session.install(str(wheel_file))
    session.chdir(str(tmp))  # away from the checkout: only the installed wheel is importable
    session.run("python", "-c", "import repair, pathlib; "
                "assert 'site-packages' in repair.__file__, repair.__file__")
    session.run("qfix", "plan", "--facts", "example:seed", success_codes=[1])
    session.run("qfix", "explain", "no kernel image is available for execution on the device")


@nox.session(python=PYTHON, default=False)
def gpu(session: nox.Session) -> None:
    """On a machine with an NVIDIA GPU: the GPU path of qfix verify, in one command."""
    session.run("bash", "scripts/gpu_check.sh", external=True, env=dict(os.environ))
