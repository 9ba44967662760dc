"""Fleet: node records, node sets, the plan digest, fleet plan/report and --expect-plan."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repair.digest import decisions, first_difference, plan_digest
from repair.fleet.grouping import default_plan_fn, group_records
from repair.fleet.nodeset import expand, fold
from repair.fleet.records import node_name, parse_record, read_records, write_record
from repair.fleet.report import build_report, render_html, report_to_dict
from tests.fleet_support import detect_record, example_facts, with_noise
from tests.venvs import REPO, get_venv

EXAMPLES = dict(example_facts())


def qfix(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "repair", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


# --------------------------------------------------------------------------- node sets


@pytest.mark.parametrize(
    ("names", "folded"),
    [
        ([f"gpu{i:02d}" for i in [*range(1, 13), 15]], "gpu[01-12,15]"),
        (["n9", "n10", "n11"], "n[9-11]"),
        (["gpu09", "gpu10"], "gpu[09-10]"),
        (["n01", "n1"], "n[01,1]"),
        (["login", "a1", "a2"], "a[1-2],login"),
        (["rack1-n3", "rack1-n4", "rack2-n3"], "rack1-n[3-4],rack2-n3"),
        (["x7"], "x7"),
    ],
)
def test_fold_like_clustershell(names: list[str], folded: str) -> None:
    assert fold(names) == folded
    assert sorted(expand(folded)) == sorted(set(names))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gpu", "n", "a-b"]), st.integers(0, 120), st.sampled_from([0, 2, 3])
        ),
        max_size=40,
    )
)
def test_fold_expand_round_trip(parts: list[tuple[str, int, int]]) -> None:
    names = {f"{p}{n:0{w}d}" for p, n, w in parts}
    assert set(expand(fold(names))) == names


# --------------------------------------------------------------------------- records


def test_record_into_a_directory_is_atomic_and_named_by_slurm_node(tmp_path: Path) -> None:
    env = {"SLURMD_NODENAME": "gpu07"}
    out = write_record(tmp_path, "detect", {"schema": "qfix.facts/1"}, 0, 0.0, environ=env)
    assert out == tmp_path / "gpu07.detect.json"
    assert [p.name for p in tmp_path.iterdir()] == ["gpu07.detect.json"]  # no temp file left
    rec = json.loads(out.read_text())
    assert rec["schema"] == "qfix.node/1" and rec["node"] == "gpu07" and rec["exit_code"] == 0
    assert rec["timing"]["started"] == "1970-01-01T00:00:00Z"
    assert node_name({"QFIX_NODE": "x", "SLURMD_NODENAME": "y"}) == "x"


def test_unreadable_records_are_kept_as_such(tmp_path: Path) -> None:
    (tmp_path / "n1.detect.json").write_text('{"schema": "qfix.node/1", "node": "n1"')
    (tmp_path / "n2.detect.json").write_text('{"schema": "other"}')
    (tmp_path / ".n3.detect.json.123.tmp").write_text("{")  # a writer still at work
    got = read_records([tmp_path])
    assert [(type(r).__name__, r.node) for r in got] == [("Unreadable", "n1"), ("Unreadable", "n2")]
    assert "not JSON" in got[0].reason and "schema" in got[1].reason


def test_records_read_like_json_loads_and_open(tmp_path: Path) -> None:
    # The fast reader (os.read, UTF-8 decoded directly) must read and refuse exactly what
    # open() + json.loads did: a BOM, UTF-16, a NUL and a directory named like a record.
    rec = json.dumps(detect_record("n1", {"schema": "qfix.facts/1"}))
    (tmp_path / "n1.detect.json").write_bytes(b"\xef\xbb\xbf" + rec.encode())
    (tmp_path / "n2.detect.json").write_bytes(rec.replace('"n1"', '"n2"').encode("utf-16"))
    (tmp_path / "n3.detect.json").write_bytes(b'{"schema": "qfix.node/1"\x00}')
    (tmp_path / "n4.detect.json").write_bytes(b'{"node": "\xff"}')
    (tmp_path / "n5.detect.json").mkdir()
    got = {r.node: r for r in read_records([tmp_path])}
    assert [type(got[n]).__name__ for n in ("n1", "n2")] == ["NodeRecord", "NodeRecord"]
    for node, data in (("n3", b'{"schema": "qfix.node/1"\x00}'), ("n4", b'{"node": "\xff"}')):
        try:
            json.loads(data)
        except ValueError as exc:
            want = exc
        reason = got[node].reason  # type: ignore[union-attr]
        assert isinstance(want, json.JSONDecodeError) == reason.startswith("not JSON"), reason
        assert (want.msg if isinstance(want, json.JSONDecodeError) else str(want)) in reason
    try:
        open(tmp_path / "n5.detect.json", "rb")  # noqa: SIM115
    except OSError as exc:
        assert got["n5"].reason == f"cannot read it: {exc}"  # type: ignore[union-attr]


def test_a_record_larger_than_one_read_is_read_whole(tmp_path: Path) -> None:
    facts = {"schema": "qfix.facts/1", "reported_error": "x" * 300_000}
    (tmp_path / "big.detect.json").write_text(json.dumps(detect_record("big", facts)))
    (rec,) = read_records([tmp_path])
    assert rec.document["reported_error"] == "x" * 300_000  # type: ignore[union-attr]


def test_cli_record_on_plan_writes_the_plan_document(tmp_path: Path) -> None:
    done = qfix("plan", "--facts", "example:healthy", "--record", f"{tmp_path}/",
                env={"QFIX_NODE": "gpu01"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    rec = json.loads((tmp_path / "gpu01.plan.json").read_text())
    assert rec["kind"] == "plan" and rec["document"]["schema"] == "qfix.plan/1"
    assert rec["document"]["healthy"] is True and rec["timing"]["seconds"] >= 0


# --------------------------------------------------------------------------- digest


def test_digest_ignores_interpreter_and_fingerprint_but_not_decisions() -> None:
    plan = {
        "target": {"python": "/a/bin/python"},
        "steps": [{"action": "install", "package": "bitsandbytes", "from": "0.38.1",
                   "to": "0.50.2", "index_url": None, "because": ["bnb-no-4bit"]}],
        "manual": [], "torch_index_base": "https://download.pytorch.org/whl",
        "commands": [["/a/bin/python", "-m", "pip"]], "fingerprint": "sha256:1",
    }  # fmt: skip
    other = json.loads(json.dumps(plan))
    other.update(target={"python": "/b/bin/python"}, fingerprint="sha256:2",
                 commands=[["/b/bin/python", "-m", "pip"]])  # fmt: skip
    assert plan_digest(plan) == plan_digest(other)
    other["steps"][0]["to"] = "0.49.0"
    assert plan_digest(plan) != plan_digest(other)
    assert first_difference(decisions(plan), decisions(other)) == (
        'steps[0].to: expected "0.50.2", got "0.49.0"'
    )


# --------------------------------------------------------------------------- fleet plan / report


def _records(tmp_path: Path) -> Path:
    d = tmp_path / "records"
    d.mkdir()
    # gpu08: a ROCm host whose bitsandbytes was built from source: its repair is manual
    names = {"healthy": 3, "driver-too-old": 2, "bnb-0454": 2, "F46": 1}
    n = 0
    for example, count in names.items():
        for _ in range(count):
            n += 1
            facts = with_noise(EXAMPLES[example], random.Random(n), n)
            (d / f"gpu{n:02d}.detect.json").write_text(
                json.dumps(detect_record(f"gpu{n:02d}", facts))
            )
    (d / "gpu09.detect.json").write_text("{broken")
    return d


def test_fleet_plan_cli_groups_and_classes(tmp_path: Path) -> None:
    d = _records(tmp_path)
    done = qfix("fleet", "plan", str(d), "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == "qfix.fleet-plan/1" and doc["nodes"] == 9
    assert doc["classes"] == {
        "healthy": "gpu[01-03]",
        "repairable": "gpu[04-07]",
        "manual": "gpu08",
        "unknown": "gpu09",
    }
    text = qfix("fleet", "plan", str(d)).stdout
    assert "gpu[01-03]  (3 nodes): healthy" in text
    assert "gpu08  (1 node): manual (platform)" in text
    assert re.search(r"qfix apply --yes --expect-plan sha256:[0-9a-f]{64}", text)


def test_report_states_and_html_without_external_references(tmp_path: Path) -> None:
    d = _records(tmp_path)
    # gpu01: verified; gpu04: applied + verified; gpu05: apply rolled back; gpu06: verify only
    for node, kind, code, doc in [
        ("gpu01", "verify", 0, {"ok": True}),
        ("gpu04", "apply", 0, {"plan": {"steps": [{}]}, "outcome": {"ok": True}}),
        ("gpu04", "verify", 10, {"ok": True}),
        ("gpu05", "apply", 3, {"plan": {"steps": [{}]}, "outcome": {"error": "pip failed"}}),
        ("gpu08", "verify", 1, {"ok": False}),
    ]:
        write_record(d, kind, doc, code, 1e9, environ={"QFIX_NODE": node})
    groups, states = build_report(read_records([d]), default_plan_fn())
    by = {s.node: (s.state, s.detail) for s in states}
    assert by["gpu01"][0] == "healthy"
    assert by["gpu04"][0] == "repaired"
    assert by["gpu05"] == ("failed", "apply failed and was rolled back: pip failed")
    assert by["gpu08"][0] == "manual"
    assert by["gpu02"] == ("no-answer", "detected, then no plan, apply or verify record")
    assert by["gpu09"][0] == "no-answer" and "unreadable" in by["gpu09"][1]
    doc = report_to_dict(groups, states)
    assert doc["states"]["repaired"] == {"count": 1, "nodes": "gpu04"}
    page = render_html(groups, states)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # self-contained: no URL, no link, no script, no external resource of any kind
    assert not re.search(r"(?i)(https?:|//[a-z]|src=|href=|<link|<script|@import|url\()", page)
    assert page.count("<table>") == len({s.group for s in states})


def test_fleet_report_cli_exit_code_and_html(tmp_path: Path) -> None:
    d = _records(tmp_path)
    html = tmp_path / "r.html"
    done = qfix("fleet", "report", str(d), "--html", str(html))
    assert done.returncode == 1 and "no-answer" in done.stdout
    assert html.read_text().count("<tr style=") == 9
    bad = qfix("fleet", "plan", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.startswith("qfix: error: records path")


def test_grouping_puts_the_same_example_with_noise_in_one_group() -> None:
    recs = [
        parse_record(
            detect_record(f"n{i}", with_noise(EXAMPLES["bnb-0454"], random.Random(i), i)),
            "x",
        )
        for i in range(5)
    ]
    (g,) = group_records(recs, default_plan_fn())
    assert g.nodeset == "n[0-4]" and g.plan["target"]["python"] == "{python}"


# --------------------------------------------------------------------------- --expect-plan


@pytest.mark.venv
def test_apply_expect_plan_refuses_a_different_plan_naming_the_difference(tmp_path: Path) -> None:
    bare = get_venv("bare")
    before = sorted(p.name for p in bare.site_packages.iterdir())
    own = json.loads(qfix("plan", "--python", str(bare.path), "--json").stdout)
    expected = json.loads(json.dumps(own))
    expected["steps"][0]["to"] = "0.0.1"
    saved = tmp_path / "expected.json"
    saved.write_text(json.dumps(expected))
    done = qfix("apply", "--python", str(bare.path), "--yes", "--expect-plan", str(saved),
                "--record", f"{tmp_path}/", env={"QFIX_NODE": "n5"})  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert (
        "differs from the expected" in done.stderr
        and 'steps[0].to: expected "0.0.1"' in done.stderr
    )
    rec = json.loads((tmp_path / "n5.apply.json").read_text())
    assert rec["exit_code"] == 6 and "steps[0].to" in rec["document"]["error"]
    assert sorted(p.name for p in bare.site_packages.iterdir()) == before  # nothing changed
    wrong = qfix("apply", "--python", str(bare.path), "--expect-plan", "sha256:" + "0" * 64)
    assert wrong.returncode == 2 and "needs --yes" in wrong.stderr


# --------------------------------------------------------------------------- engines (argv)


def test_srun_argv_per_task_files_explicit_interpreter_and_time_limit(tmp_path: Path) -> None:
    from repair.fleet.engines.base import node_command
    from repair.fleet.engines.slurm import srun_argv

    cmd = node_command("/opt/qfix/bin/python", "apply", tmp_path, python="/envs/t/bin/python",
                       expect_plan="sha256:" + "a" * 64)  # fmt: skip
    argv = srun_argv(cmd, out=tmp_path, nodes=3, timeout=90, srun_args=["-p", "gpu"])
    assert argv[:6] == [
        "srun", "-N3", "--ntasks-per-node=1", f"--output={tmp_path}/tasks/%t.out",
        f"--error={tmp_path}/tasks/%t.err", "--time=2",
    ]  # fmt: skip
    assert argv[6:8] == ["-p", "gpu"]
    assert argv[8:] == [
        "/opt/qfix/bin/python", "-m", "repair", "apply", "--record", str(tmp_path), "--json",
        "--python", "/envs/t/bin/python", "--yes", "--expect-plan", "sha256:" + "a" * 64,
    ]  # fmt: skip


def test_fleet_run_apply_needs_an_expected_plan_and_srun(tmp_path: Path) -> None:
    done = qfix("fleet", "run", "--command", "apply", "--out", str(tmp_path))
    assert done.returncode == 2 and "--expect-plan" in done.stderr
    no_srun = qfix("fleet", "run", "--out", str(tmp_path), env={"PATH": str(tmp_path)})
    assert no_srun.returncode == 2 and "could not start srun" in no_srun.stderr
