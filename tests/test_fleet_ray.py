"""`qfix fleet run --via ray`: one qfix task per Ray node (opt-in: `pytest -m ray`; needs
`pip install 'qfix[ray]'`). A 3-node local cluster (ray.cluster_utils.Cluster: 9-12 s, 1.3-2.6 GB
measured), each node runs `qfix detect --record` pinned to it; every node answers once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'qfix[ray]')")
pytestmark = pytest.mark.ray


def test_one_detect_per_ray_node(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    from repair.fleet.engines.base import node_command
    from repair.fleet.engines.ray import run_ray

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        argv = node_command(sys.executable, "detect", tmp_path, python=sys.executable)
        result = run_ray(argv, out=tmp_path, timeout=300)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert result.expected == 3 and len(result.records) == 3, result.summary()
    assert len({r.node for r in result.records}) == 3
    assert all(r.exit_code == 0 for r in result.records)
    files = sorted(tmp_path.glob("*.detect.json"))
    assert len(files) == 3
    assert json.loads(files[0].read_text())["document"]["schema"] == "qfix.facts/1"
