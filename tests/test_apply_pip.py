"""An old pip in the target: pip before 20.3 refuses the manylinux_X_Y tags (PEP 600) of every
bitsandbytes wheel from 0.43.0 (S71), so a plan that installs one upgrades pip first, in a
command of its own (group "installer"). Real pip 20.0.2 in a real venv, against a local index
that holds the interpreter's own bundled pip wheel and a wheel tagged manylinux_2_24: the
refusal, the upgrade, and a rollback that puts pip 20.0.2 back.
"""

from __future__ import annotations

import ensurepip
import subprocess
import sys
from pathlib import Path

import pytest

from repair.apply.transaction import apply_plan
from tests.index_server import IndexServer, build_wheel
from tests.test_apply_support import freeze, plan, step

pytestmark = pytest.mark.venv

TAG = "py3-none-manylinux_2_24_x86_64"


class _TagIndex(IndexServer):
    """A PEP 503 index of the given wheels only."""

    def __init__(self, root: Path, wheels: dict[str, list[Path]]) -> None:
        self._wheels = wheels
        super().__init__(root, real_torch=None)

    def _build(self) -> None:
        pages = {name: [self._link(w) for w in ws] for name, ws in self._wheels.items()}
        self._write_index(self.root / "simple", pages)


@pytest.fixture(scope="module")
def tag_index(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tag-index")
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    pip_wheel = next(bundled.glob("pip-*.whl"))  # the interpreter's own: offline, real
    probe = build_wheel(
        root / "wheels", "qfixtagprobe", "1.0", tag=TAG, files={"qfixtagprobe.py": "x = 1\n"}
    )
    with _TagIndex(root, {"pip": [pip_wheel], "qfixtagprobe": [probe]}) as idx:
        yield idx


@pytest.fixture()
def old_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag_index) -> Path:
    """A venv whose pip is 20.0.2 (from the machine's pip configuration: PyPI)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pip==20.0.2",
        ],
        check=True,
        timeout=600,
    )
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "VIRTUAL_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # the local index only
    monkeypatch.setenv("PIP_INDEX_URL", tag_index.simple_url)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return python


def _probe_step() -> dict:
    return step("install", "qfixtagprobe", None, "1.0", None, "pypi")


def _pip_step() -> dict:
    return step("install", "pip", "20.0.2", ">=20.3", None, "installer")


def test_old_pip_refuses_the_tag_and_the_apply_rolls_back(old_pip: Path) -> None:
    out = apply_plan(
        plan(_probe_step()), python=str(old_pip), installer="pip", progress=lambda s: None
    )
    assert not out.ok and out.rolled_back
    # through an index an old pip skips the wheel it cannot read: "from versions: none"
    assert "from versions: none" in (out.error or ""), out.error
    assert "pip==20.0.2" in freeze(old_pip) and "qfixtagprobe" not in freeze(old_pip)


def test_the_installer_step_upgrades_pip_first_then_the_wheel_installs(old_pip: Path) -> None:
    out = apply_plan(
        plan(_pip_step(), _probe_step()),
        python=str(old_pip),
        installer="pip",
        progress=lambda s: None,
    )
    assert out.ok, out.error
    assert out.commands[0][-1] == "pip>=20.3" and "-c" not in out.commands[0]
    frozen = freeze(old_pip)
    assert "qfixtagprobe==1.0" in frozen and "pip==20.0.2" not in frozen


def test_a_failed_verification_puts_the_old_pip_back(old_pip: Path) -> None:
    before = freeze(old_pip)
    out = apply_plan(
        plan(_pip_step(), _probe_step()),
        python=str(old_pip),
        installer="pip",
        verify=lambda: False,
        progress=lambda s: None,
    )
    assert not out.ok
    assert freeze(old_pip) == before  # pip 20.0.2 again, the probe gone
