"""Shared fixtures: real venvs (tests/venvs.py) and the path of the qfix console script."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.venvs import Venv, get_venv

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def venv_torch213() -> Venv:
    """Real torch 2.13.0 CPU + bitsandbytes 0.50.2 + transformers 5.24.0."""
    return get_venv("torch213-bnb")


@pytest.fixture(scope="session")
def venv_bnb038() -> Venv:
    """Real torch 2.13.0 CPU + bitsandbytes 0.38.1 (no 4-bit)."""
    return get_venv("torch213-bnb038")


@pytest.fixture(scope="session")
def venv_bare() -> Venv:
    return get_venv("bare")


@pytest.fixture(scope="session")
def qfix_argv() -> list[str]:
    """argv prefix that runs the qfix CLI of this checkout in a child process."""
    return [sys.executable, "-m", "repair"]


@pytest.fixture(scope="session")
def lib_dir() -> Path:
    """The fake libnvidia-ml.so.1 (tests/fakes), compiled once with gcc."""
    from tests.fakes import nvml as fake

    try:
        return fake.build()
    except fake.CompilerMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """os.environ without the variables that change what qfix detects."""
    for var in ("VIRTUAL_ENV", "BNB_CUDA_VERSION", "CUDA_VISIBLE_DEVICES", "QFIX_TORCH_INDEX"):
        monkeypatch.delenv(var, raising=False)
    return dict(os.environ)
