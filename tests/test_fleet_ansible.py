"""The shipped Ansible playbook (repair/fleet/ansible/qfix.yml) against several local hosts
(ansible_connection=local), each with its own ansible_python_interpreter = target venv.

a1, a2: the healthy cached venv; a3: a private broken venv (bitsandbytes 0.38.1 beside torch
2.13.0). --check changes nothing and records only detect and plan; a real run repairs a3 and
verifies every host; the records are the same as `qfix detect --record` writes (what the Slurm
engine runs on each node), modulo timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet_support import link_venv
from tests.index_server import IndexServer
from tests.venvs import REPO, get_venv

pytestmark = [
    pytest.mark.venv,
    pytest.mark.skipif(
        shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None,
        reason="ansible-core is not installed (pip install -e '.[test]')",
    ),
]
PLAYBOOK = REPO / "repair" / "fleet" / "ansible" / "qfix.yml"


def freeze(python: Path) -> list[str]:
    return sorted(
        p.name for p in (python.parent.parent / "lib").glob("python3*/site-packages/*dist-info")
    )


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ansible")
    healthy = get_venv("torch213-bnb").python
    broken = link_venv(get_venv("torch213-bnb038"), root / "broken").python
    inventory = root / "inventory.ini"
    inventory.write_text(
        "[qfix]\n"
        + "".join(
            f"{h} ansible_connection=local ansible_python_interpreter={py}\n"
            for h, py in (("a1", healthy), ("a2", healthy), ("a3", broken))
        )
    )
    with IndexServer(root / "index") as index:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "QFIX_NODE", "CUDA_VISIBLE_DEVICES")
        }
        env.update(
            ANSIBLE_LOCAL_TEMP=str(root / "ansible-tmp"),
            ANSIBLE_REMOTE_TEMP=str(root / "ansible-remote"),
            ANSIBLE_NOCOLOR="1",
            QFIX_TORCH_INDEX=index.torch_base,
            UV_CACHE_DIR=str(REPO / ".cache" / "fleet-uv"),
            PYTHONPATH=str(REPO),
        )
        yield root, inventory, env, broken


def playbook(hosts, records: Path, *args: str) -> subprocess.CompletedProcess[str]:
    root, inventory, env, _ = hosts
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i", str(inventory), str(PLAYBOOK),
            "-e", f"qfix_python={sys.executable}",
            "-e", f"qfix_records={records}",
            "-e", f"qfix_remote_dir={root}/remote-{records.name}/{{{{ inventory_hostname }}}}",
            *args,
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def test_check_mode_changes_nothing_and_plans(hosts) -> None:
    root, _, env, broken = hosts
    before = freeze(broken)
    done = playbook(hosts, root / "check", "--check", "--diff")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert freeze(broken) == before
    names = sorted(p.name for p in (root / "check").iterdir())
    assert names == sorted(f"a{i}.{k}.json" for i in (1, 2, 3) for k in ("detect", "plan"))
    plan = json.loads((root / "check" / "a3.plan.json").read_text())
    assert plan["exit_code"] == 1 and "bnb-no-4bit" in {
        f["id"] for f in plan["document"]["findings"]
    }
    assert "bitsandbytes" in done.stdout  # --diff printed the plan
    # the same document `qfix detect --record` writes on the node (what srun runs), bar timing
    direct = subprocess.run(
        [sys.executable, "-m", "repair", "detect", "--python", str(broken), "--json",
         "--record", f"{root}/direct/"],
        env={**env, "QFIX_NODE": "a3"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr
    mine = json.loads((root / "check" / "a3.detect.json").read_text())
    theirs = json.loads((root / "direct" / "a3.detect.json").read_text())
    for rec in (mine, theirs):
        rec.pop("timing")
    assert mine == theirs


def test_real_run_repairs_the_broken_host_and_verifies_all(hosts) -> None:
    root, _, _, broken = hosts
    done = playbook(hosts, root / "run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    rec = root / "run"
    apply = json.loads((rec / "a3.apply.json").read_text())
    assert apply["exit_code"] == 0 and apply["document"]["outcome"]["after"]["bitsandbytes"] == (
        "0.50.2"
    )
    assert not (rec / "a1.apply.json").exists()  # healthy hosts are not touched
    for h in ("a1", "a2", "a3"):
        assert json.loads((rec / f"{h}.verify.json").read_text())["exit_code"] in (0, 10)
    report = subprocess.run(
        [sys.executable, "-m", "repair", "fleet", "report", str(rec), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    states = json.loads(report.stdout)["states"]
    assert states["healthy"]["nodes"] == "a[1-2]" and states["repaired"]["nodes"] == "a3"
