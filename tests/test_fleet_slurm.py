"""qfix on a REAL Slurm cluster (tests/slurm_cluster.py: munged, slurmctld, 4 slurmd here).

n1, n2 use a healthy venv (torch 2.13.0 + bitsandbytes 0.50.2); n3, n4 share one broken venv
(bitsandbytes 0.38.1 beside torch 2.13.0: no 4-bit), as nodes share an environment on shared
storage. One target path for all nodes (a per-node interpreter picks the venv by
$SLURMD_NODENAME). The run: fleet run (detect) -> fleet plan (2 groups) -> apply on the broken
group through srun, both nodes at once (one applies, the other waits on the lock and records
"applied by") -> verify on every node -> fleet report: every node healthy or repaired.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet_support import link_venv, node_interpreter
from tests.index_server import IndexServer
from tests.slurm_cluster import SlurmCluster, unavailable
from tests.venvs import REPO, get_venv

pytestmark = [
    pytest.mark.venv,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]


def qfix(cluster: SlurmCluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cluster.client([sys.executable, "-m", "repair", *args], timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("slurm")
    healthy = get_venv("torch213-bnb").path
    broken = link_venv(get_venv("torch213-bnb038"), root / "shared-venv").path
    target = node_interpreter(root, {"n1": healthy, "n2": healthy, "n3": broken, "n4": broken})
    with IndexServer(root / "index") as index, SlurmCluster(["n1", "n2", "n3", "n4"]) as c:
        # srun passes the caller's environment to every task (--export=ALL, Slurm's default)
        c.env.update(
            QFIX_TORCH_INDEX=index.torch_base,
            UV_CACHE_DIR=str(REPO / ".cache" / "fleet-uv"),
            PYTHONPATH=str(REPO),
        )
        for var in ("VIRTUAL_ENV", "QFIX_NODE", "CUDA_VISIBLE_DEVICES", "BNB_CUDA_VERSION"):
            c.env.pop(var, None)
        c.target = target  # type: ignore[attr-defined]
        c.records = root / "records"  # type: ignore[attr-defined]
        yield c


ANSIBLE = Path(sys.executable).parent / "ansible-playbook"


def compare_with_ansible(cluster: SlurmCluster, rec: Path) -> None:
    """The shipped playbook (--check) on the same nodes as local hosts: the same records as
    Slurm's, bar timing (the node-python wrapper picks the venv by $QFIX_NODE there)."""
    if not ANSIBLE.exists():
        return  # ansible-core is in the test extras; test_fleet_ansible.py says when it skips
    inventory = rec.parent / "nodes.ini"
    inventory.write_text(
        "".join(
            f"{n} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"qfix_target={cluster.target}\n"  # type: ignore[attr-defined]
            for n in cluster.nodes
        )
    )
    done = cluster.client(
        [str(ANSIBLE), "-i", str(inventory), str(REPO / "repair/fleet/ansible/qfix.yml"),
         "--check", "-e", f"qfix_python={sys.executable}",
         "-e", f"qfix_records={rec.parent}/ansible",
         "-e", f"qfix_remote_dir={rec.parent}/ansible-remote/{{{{ inventory_hostname }}}}"],
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    for n in cluster.nodes:
        slurm = json.loads((rec / f"{n}.detect.json").read_text())
        ansible = json.loads((rec.parent / "ansible" / f"{n}.detect.json").read_text())
        slurm.pop("timing"), ansible.pop("timing")
        assert ansible == slurm, n


def test_detect_plan_apply_verify_report_on_a_real_cluster(cluster: SlurmCluster) -> None:
    rec, target = cluster.records, cluster.target  # type: ignore[attr-defined]
    run = ["fleet", "run", "--via", "slurm", "--out", str(rec), "--python", str(target)]

    detect = qfix(cluster, *run, "-N", "4", "--timeout", "120", "--json")
    assert detect.returncode == 0, detect.stderr + detect.stdout
    ran = json.loads(detect.stdout)
    assert ran["answered"] == "n[1-4]" and ran["argv"][:3] == ["srun", "-N4", "--ntasks-per-node=1"]
    assert sorted(p.name for p in rec.glob("*.detect.json")) == [
        f"n{i}.detect.json" for i in range(1, 5)
    ]

    compare_with_ansible(cluster, rec)

    planned = qfix(cluster, "fleet", "plan", str(rec), "--json")
    assert planned.returncode == 1, planned.stderr
    fleet_plan = json.loads(planned.stdout)
    groups = {g["nodes"]: g for g in fleet_plan["groups"]}
    assert set(groups) == {"n[1-2]", "n[3-4]"}, groups.keys()
    assert groups["n[1-2]"]["class"] == "healthy"
    broken = groups["n[3-4]"]
    assert broken["class"] == "repairable" and "bnb-no-4bit" in broken["findings"]
    assert [(s["package"], s["to"]) for s in broken["plan"]["steps"]] == [
        ("bitsandbytes", "0.50.2")
    ]
    assert all("{python}" in c[0] for c in broken["plan"]["commands"])
    plan_file = rec.parent / "fleet-plan.json"
    plan_file.write_text(planned.stdout)

    # a digest that is not this group's is refused on the node, naming the first difference
    healthy_digest = groups["n[1-2]"]["digest"]
    refused = qfix(cluster, *run, "--command", "apply", "--expect-plan", healthy_digest,
                   "-N", "1", "--json", "--", "-w", "n3")  # fmt: skip
    assert json.loads(refused.stdout)["node_exit_codes"] == {"n3": 6}, refused.stdout
    # the node ran with --json: its error is JSON on stdout (`{"error": ..., "exit_code": 6}`)
    said = (rec / "tasks" / "0.out").read_text() + (rec / "tasks" / "0.err").read_text()
    assert "differs from the expected" in said

    applied = qfix(cluster, *run, "--command", "apply", "--expect-plan", str(plan_file),
                   "-N", "2", "--timeout", "400", "--json", "--", "-w", "n[3-4]",
                   timeout=500)  # fmt: skip
    result = json.loads(applied.stdout)
    assert result["node_exit_codes"] == {"n3": 0, "n4": 0}, applied.stdout + applied.stderr
    notes = {n: json.loads((rec / f"{n}.apply.json").read_text())["note"] for n in ("n3", "n4")}
    # the shared venv was changed once: one node applied it, the other recorded who did
    assert sorted(v is None for v in notes.values()) == [False, True], notes
    applier = next(n for n, v in notes.items() if v is None)
    assert any(v and v.startswith(f"applied by node {applier}") for v in notes.values())

    verified = qfix(cluster, *run, "--command", "verify", "-N", "4", "--timeout", "300",
                    "--json", timeout=400)  # fmt: skip
    codes = json.loads(verified.stdout)["node_exit_codes"]
    assert codes == {f"n{i}": 10 for i in range(1, 5)}, verified.stdout  # CPU-only pass here

    report = qfix(cluster, "fleet", "report", str(rec), "--json", "--html",
                  str(rec.parent / "report.html"))  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    states = json.loads(report.stdout)["states"]
    assert states["healthy"]["nodes"] == "n[1-2]"
    assert states["repaired"]["nodes"] == "n[3-4]"
    assert os.path.getsize(rec.parent / "report.html") > 500
