"""Real virtual environments for the tests, built once and reused.

Each venv is named by what it holds; it is rebuilt when its spec changes. Builds are serialised by a
file lock so that parallel test runs (or developers) never build the same venv twice at once.
Wheels come from the machine's pip configuration: the local torch 2.13.0 CPU wheel, PyPI for the
rest. Set QFIX_TEST_VENVS to move the cache (default: <repo>/.cache/venvs).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("QFIX_TEST_VENVS", REPO / ".cache" / "venvs"))

# The specs the suite uses (tests may add private ones through get_venv(name, requirements)).
# Keep them few: each costs a real install (about 30 s with torch).
SPECS: dict[str, tuple[str, ...]] = {
    # real torch 2.13.0 CPU wheel (local disk) + the newest bitsandbytes (CPU 4-bit) + transformers
    "torch213-bnb": ("torch==2.13.0", "bitsandbytes==0.50.2", "transformers==5.24.0"),
    # a bitsandbytes without 4-bit beside the same torch (bnb-no-4bit)
    "torch213-bnb038": ("torch==2.13.0", "bitsandbytes==0.38.1"),
    # no torch at all, only a small package
    "bare": (),
}


@dataclass(frozen=True)
class Venv:
    name: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.path / "lib").glob("python3*/site-packages"))

    def pip(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "pip", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


def _spec_hash(requirements: tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps([sys.version, *requirements]).encode()).hexdigest()[:16]


def get_venv(name: str, requirements: tuple[str, ...] | None = None) -> Venv:
    """The venv ``name`` with ``requirements`` (default: SPECS[name]) installed; built if needed."""
    reqs = SPECS[name] if requirements is None else requirements
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / name
    marker = path / ".qfix-spec"
    want = _spec_hash(reqs)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == want:
            return Venv(name, path)
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(path)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        venv = Venv(name, path)
        if reqs:
            venv.pip("install", "--quiet", *reqs)
        marker.write_text(want)
        return venv


def copy_venv(source: Venv, dest: Path) -> Venv:
    """A private, mutable copy of a cached venv (for tests that break or change it).

    Done with ``python -m venv`` + copying site-packages (cheaper than reinstalling torch).
    """
    subprocess.run(
        [sys.executable, "-m", "venv", str(dest)], check=True, capture_output=True, timeout=300
    )
    new = Venv(dest.name, dest)
    subprocess.run(
        ["cp", "-a", f"{source.site_packages}/.", str(new.site_packages)], check=True, timeout=300
    )
    return new
