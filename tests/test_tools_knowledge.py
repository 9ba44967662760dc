"""tools/check_knowledge.py (the knowledge base against PyPI) and tools/score_cases.py (a round
of real-report cases through the test_cases check).

tests/data/knowledge/ is a recorded PyPI snapshot (the JSON API of 2026-12-06, reduced to each
file's name, yanked flag and upload time; torch to the 2.14 and 2.15 series, transformers to
5.20+, accelerate to 1.14+, peft to 0.21+; diffusers, recorded 2026-12-07, to 0.41+;
ctranslate2, recorded 2026-12-07, to 4.6+ and its cp311 wheels and sdist; torchvision and
torchaudio, recorded 2026-12-08, every release with one file and the release's yanked flag):
the drift logic runs on it and on edited copies."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from repair.knowledge import load_knowledge
from tools import check_knowledge as ck
from tools import score_cases

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "knowledge"
TODAY = dt.date(2026, 12, 6)


def _snapshot() -> dict[str, dict]:
    return {n: json.loads((SNAPSHOT / f"{n}.json").read_text()) for n in ck.PACKAGES}


def _drift(docs: dict[str, dict], today: dt.date = TODAY) -> list[str]:
    releases = {n: ck.releases_from_json_api(doc) for n, doc in docs.items()}
    return ck.check(load_knowledge(), releases, today, ck.MAX_AGE_DAYS)


def _file(name: str, uploaded: str = "2026-12-20T10:00:00Z", yanked: bool = False) -> dict:
    return {"filename": name, "yanked": yanked, "upload_time_iso_8601": uploaded}


def test_the_recorded_snapshot_matches_plans() -> None:
    assert _drift(_snapshot()) == []


def test_a_ctranslate2_release_no_runtimes_row_covers_is_drift() -> None:
    docs = _snapshot()
    docs["ctranslate2"]["releases"]["4.9.0"] = [_file("ctranslate2-4.9.0.tar.gz")]
    docs["ctranslate2"]["releases"]["4.9.1rc1"] = [_file("ctranslate2-4.9.1rc1.tar.gz")]
    assert _drift(docs) == [
        "ctranslate2 4.9.0: no row of plans/runtimes.toml covers it; its CUDA and cuDNN were "
        "not read"
    ]
    # releases below the oldest row (2.x, whose builds were not read) are not drift
    docs = _snapshot()
    docs["ctranslate2"]["releases"]["2.24.0"] = [_file("ctranslate2-2.24.0.tar.gz")]
    assert _drift(docs) == []


def test_a_torchvision_or_torchaudio_release_domain_does_not_list_is_drift() -> None:
    docs = _snapshot()
    docs["torchvision"]["releases"]["0.30.0"] = [_file("torchvision-0.30.0-cp312-cp312-x.whl")]
    docs["torchvision"]["releases"]["0.30.1rc1"] = [_file("torchvision-0.30.1rc1-cp312-x.whl")]
    docs["torchaudio"]["releases"]["2.12.0"] = [_file("torchaudio-2.12.0-cp312-x.whl")]
    assert _drift(docs) == [
        "torchvision 0.30.0: on PyPI, not in plans/torch.toml [domain.torchvision] (its torch "
        "requirement was not read)",
        "torchaudio 2.12.0: on PyPI, not in plans/torch.toml [domain.torchaudio] (its torch "
        "requirement was not read)",
    ]
    # releases older than the table (0.2.x, PyPI's legacy ones) and yanked ones (0.15.0, whose
    # files PyPI holds yanked today) are not drift
    docs = _snapshot()
    assert docs["torchvision"]["releases"]["0.15.0"][0]["yanked"] is True
    docs["torchvision"]["releases"]["0.2.3"] = [_file("torchvision-0.2.3.tar.gz")]
    assert _drift(docs) == []


def test_a_paired_companion_pypi_lacks_or_yanked_is_drift() -> None:
    docs = _snapshot()
    del docs["torchaudio"]["releases"]["2.11.1"]  # plans pair it with torch 2.15.0
    for f in docs["torchvision"]["releases"]["0.29.1"]:
        f["yanked"] = True
    assert _drift(docs) == [
        "torchvision 0.29.1: every file is yanked on PyPI, plans/torch.toml still pairs it",
        "torchaudio 2.11.1: plans/torch.toml pairs it with torch, PyPI has no such release",
    ]
    # a package the snapshot does not hold was not read: no drift from its absence
    docs = _snapshot()
    docs["torchaudio"]["releases"] = {}
    assert _drift(docs) == []


def test_a_new_torch_release_and_platform_changes_are_drift() -> None:
    docs = _snapshot()
    torch = docs["torch"]["releases"]
    torch["2.16.0"] = [_file("torch-2.16.0-cp312-cp312-manylinux_2_28_x86_64.whl")]
    # the 2.15.0 Windows wheels disappear, a cp310 Linux wheel appears (2.15 declares Python >=3.11)
    torch["2.15.0"] = [f for f in torch["2.15.0"] if "win_amd64" not in f["filename"]]
    torch["2.15.0"].append(_file("torch-2.15.0-cp310-cp310-manylinux_2_28_x86_64.whl"))
    drift = _drift(docs)
    assert any(d.startswith("torch 2.16.0: on PyPI, not in plans/torch.toml") for d in drift)
    assert any("torch 2.15.0: plans list a windows-x86_64 wheel" in d for d in drift), drift
    assert any("CPython 3.10 wheels" in d for d in drift), drift


def test_a_new_bitsandbytes_release_wheel_and_a_yanked_file_are_drift() -> None:
    docs = _snapshot()
    bnb = docs["bitsandbytes"]["releases"]
    bnb["0.51.0"] = [_file("bitsandbytes-0.51.0-py3-none-manylinux_2_24_x86_64.whl")]
    bnb["0.50.2"] = copy.deepcopy(bnb["0.50.2"])
    for f in bnb["0.50.2"]:
        f["yanked"] = "manylinux_2_24_x86_64" in f["filename"]
    bnb["0.50.2"].append(_file("bitsandbytes-0.50.2-py3-none-musllinux_1_2_x86_64.whl"))
    drift = _drift(docs)
    assert "bitsandbytes 0.51.0: on PyPI, not in plans/bitsandbytes.toml" in drift
    assert any(
        "0.50.2: bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl is yanked" in d
        for d in drift
    ), drift
    assert any("musllinux_1_2_x86_64.whl (linux-x86_64) not in plans" in d for d in drift), drift


def test_a_yanked_known_bad_release_is_not_drift() -> None:
    docs = _snapshot()
    for f in docs["bitsandbytes"]["releases"]["0.45.4"]:
        f["yanked"] = True  # plans already mark 0.45.4 known_bad: nothing recommends it
    assert not [d for d in _drift(docs) if "0.45.4" in d]


def test_a_release_after_the_last_read_and_old_entries_are_drift() -> None:
    docs = _snapshot()
    docs["transformers"]["releases"]["5.26.0"] = [_file("transformers-5.26.0-py3-none-any.whl")]
    drift = _drift(docs, today=dt.date(2027, 6, 1))
    assert any(d.startswith("transformers 5.26.0: released 2026-12-20") for d in drift), drift
    assert any(d.startswith("plans/torch.toml: ") and "more than 120 days" in d for d in drift)
    assert not any("more than 120 days" in d for d in _drift(_snapshot()))


def test_the_simple_api_gives_the_same_files() -> None:
    doc = {
        "files": [
            {"filename": "bitsandbytes-0.50.2-py3-none-win_amd64.whl", "yanked": False},
            {"filename": "bitsandbytes-0.50.1-py3-none-win_amd64.whl", "yanked": "broken"},
            {"filename": "not-a-distribution.txt"},
        ]
    }
    rel = ck.releases_from_simple_api(doc)
    assert set(rel) == {"0.50.2", "0.50.1"}
    assert rel["0.50.1"][0].yanked is True


@pytest.mark.parametrize(
    ("tag", "key"),
    [
        ("manylinux_2_28_x86_64", "linux-x86_64"),
        ("manylinux2014_aarch64", "linux-aarch64"),
        ("win_amd64", "windows-x86_64"),
        ("win_arm64", "windows-arm64"),
        ("macosx_14_0_arm64", "macos-arm64"),
        ("macosx_10_9_x86_64", "macos-x86_64"),
        ("any", None),
    ],
)
def test_platform_of_tag(tag: str, key: str | None) -> None:
    assert ck.platform_of_tag(tag) == key


def test_cli_skips_without_network(capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens on port 9 (discard) of the loopback: both APIs are unreachable
    dead = "http://127.0.0.1:9"
    assert ck.main(["--pypi-url", f"{dead}/pypi", "--simple-url", f"{dead}/simple"]) == 0
    assert capsys.readouterr().out.startswith("skipped: no network")


def test_cli_exit_status_follows_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ck.main(["--from-dir", str(SNAPSHOT), "--today", "2026-12-06"]) == 0
    assert "no drift" in capsys.readouterr().out
    docs = _snapshot()
    docs["torch"]["releases"]["2.16.0"] = [_file("torch-2.16.0-cp312-cp312-win_amd64.whl")]
    for name, doc in docs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    assert ck.main(["--from-dir", str(tmp_path), "--today", "2026-12-06"]) == 1
    assert "drift: torch 2.16.0" in capsys.readouterr().out
    assert ck.main(["--from-dir", str(tmp_path / "missing")]) == 2
    assert ck.main(["--today", "06/12/2026", "--from-dir", str(SNAPSHOT)]) == 2


def test_score_cases_reports_each_case_and_the_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.loads((DATA / "cases" / "H01.json").read_text())
    bad = copy.deepcopy(good)
    bad["expect"]["ids_any"] = ["rocm-host"]
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text("{")
    assert score_cases.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "PASS  good.json" in out
    assert any(line.startswith("FAIL  bad.json: ids_any:") for line in out), out
    assert any(line.startswith("ERROR broken.json:") for line in out), out
    assert out[-1] == "score: 1/3 passed"
    assert score_cases.main([str(tmp_path / "good.json")]) == 0
    assert score_cases.main([str(tmp_path / "nothing-here")]) == 2
