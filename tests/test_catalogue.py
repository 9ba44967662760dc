"""The catalogue is valid and every class behaves: generated from plans/failures.toml.

- each class fires on its positive example (plans/examples/<example>) and stays quiet on the
  healthy machine;
- each class's signatures match at least one line of its own explanation's error family
  (the real error lines of ../shared/facts/failure-cases.md, via the cases' `error` field);
- the design's minimum set of ids is present, unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from repair.catalogue import load_catalogue
from repair.errors import KnowledgeError
from tests.core_helpers import EXAMPLES, analyse, example_facts

DESIGN_IDS = [
    "no-nvidia-driver",
    "torch-missing",
    "torch-cpu-build",
    "driver-too-old",
    "gpu-arch-unsupported",
    "bnb-missing",
    "bnb-no-4bit",
    "bnb-no-cuda-lib",
    "bnb-torch-mismatch",
    "bnb-cuda-override",
    "bnb-duplicate-install",
    "bnb-platform-unsupported",
    "gpu-too-old-for-bnb",
    "torch-family-mismatch",
    "hf-stack-too-old",
    "cuda-libs-not-found",
    "stale-toolkit-on-path",
    "mixed-gpus",
    "rocm-host",
]
CAT = load_catalogue()


def test_design_ids_present():
    assert set(DESIGN_IDS) <= set(CAT.ids)


@pytest.mark.parametrize("cls", CAT.classes, ids=lambda c: c.id)
def test_fires_on_its_example(cls):
    assert cls.example, f"{cls.id} has no example"
    assert (EXAMPLES / cls.example).is_file(), cls.example
    diag, plan = analyse(example_facts(cls.example))
    assert cls.id in diag.ids, f"{cls.id} did not fire on {cls.example}: {diag.ids}"
    assert not plan.healthy or cls.severity != "error"


@pytest.mark.parametrize("cls", CAT.classes, ids=lambda c: c.id)
def test_has_signatures_and_sources(cls):
    assert cls.signatures and cls.sources and cls.checked


def test_healthy_machine_is_quiet():
    diag, plan = analyse(example_facts("healthy.json"))
    assert diag.findings == ()
    assert plan.healthy and plan.steps == () and plan.unknown == ()


def _broken_copy(tmp_path: Path, text: str) -> Path:
    src = Path(__file__).resolve().parent.parent / "plans"
    dst = tmp_path / "plans"
    shutil.copytree(src, dst)
    (dst / "failures.toml").write_text(text)
    return dst


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[[failure]\nid = 'x'", "not valid TOML"),
        ("[[failure]]\nid = 'x'\n", "missing field"),
        (
            "[[failure]]\nid='Bad Id'\nseverity='error'\ntitle='t'\nexplanation='e'\nevidence=[]\n"
            "confirm='c'\nremedy='r'\nsignatures=['(']\nsources=['s']\nchecked='d'\n",
            "failure 'Bad Id'",
        ),
    ],
)
def test_malformed_catalogue_names_file_and_entry(tmp_path, text, needle):
    from repair.catalogue import load_catalogue as load

    with pytest.raises(KnowledgeError) as err:
        load(_broken_copy(tmp_path, text))
    assert "failures.toml" in err.value.message and needle in err.value.message


def test_explain_shows_the_text_of_every_key_it_cites():
    from repair.explain import explain, explain_to_dict
    from repair.knowledge import load_sources
    from repair.render import render_explain

    matches = explain("OSError: libcuda.so: cannot open shared object file", CAT)
    assert matches and matches[0].id == "cuda-libs-not-found"
    m = matches[0]
    keys = [r.key for r in m.references]
    assert {"F02", "F03", "C4", "S23", "bnb#62"} <= set(keys)
    s23 = load_sources().get("S23")
    assert s23 is not None and f"    S23: {s23.text}" in render_explain(matches).splitlines()
    doc = explain_to_dict(matches)["matches"][0]
    assert {"key": "S23", "kind": "source", "text": s23.text} in doc["references"]
    assert doc["sources"] == list(m.sources)  # the citations themselves are unchanged
