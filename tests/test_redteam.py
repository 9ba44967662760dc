"""Regression tests from a review against real public reports outside the fixtures
(tests/data/redteam/: facts written from each thread; the source is in each test's name/comment).
They pin down defects found there; they are not the shared fixtures and do not tune to them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from repair.facts import facts_from_dict
from repair.knowledge import load_knowledge
from repair.view import arch_coverage
from tests.core_helpers import analyse, explained_ids

DATA = Path(__file__).parent / "data" / "redteam"
KB = load_knowledge()


def case(name: str):
    doc = json.loads((DATA / name).read_text())
    return analyse(facts_from_dict(doc, name))


def step(plan, package):
    return next((s for s in plan.steps if s.package == package), None)


def test_jetson_orin_gets_no_pypi_wheels_bnb1930():
    diag, plan = case("jetson1930.json")
    assert "jetson-l4t" in diag.ids
    assert step(plan, "bitsandbytes") is None and step(plan, "torch") is None
    m = next(m for m in plan.manual if m.id == "jetson-l4t")
    assert m.required and "source" in m.text and "87" in m.text


def test_jetson_is_never_told_to_upgrade_the_driver_bnb1645():
    diag, plan = case("jetson1645.json")
    assert "jetson-l4t" in diag.ids
    assert not any("NVIDIA driver" in m.text for m in plan.manual), [m.text for m in plan.manual]


def test_torch_by_version_alone_is_the_pypi_build_gptsovits1048():
    diag, plan = case("m40.json")  # Tesla M40, driver 515, torch 2.1.1 (PyPI: cu121)
    assert "driver-too-old" in diag.ids and "torch-cpu-build" not in diag.ids
    rel = KB.torch.release(step(plan, "torch").to)
    assert rel.variant(plan.torch_variant).cuda <= Version("11.8")
    assert arch_coverage(plan.torch_arch_list, Version("5.2")) == "sass"
    assert any("taken as cu121" in u for u in plan.unknown)


def test_legacy_loader_error_on_mixed_gpus_bnb602():
    diag, plan = case("bnb602.json")
    assert "bnb-platform-unsupported" not in diag.ids
    assert "mixed-gpus" in diag.ids
    m = next(m for m in plan.manual if m.id == "mixed-gpus")
    assert "CUDA_VISIBLE_DEVICES=0 " not in m.text  # the user may train on GPU 1


def test_listed_package_without_version_is_installed_sds9():
    diag, plan = case("sds9.json")
    assert "bnb-missing" not in diag.ids and "no-nvidia-driver" in diag.ids
    assert not any(s.package == "bitsandbytes" and s.from_ is None for s in plan.steps)


def test_a_cuda_110_driver_is_not_assumed_to_run_cuda_118_yuan65():
    diag, plan = case("yuan65.json")
    assert any("450.80.02" in u for u in plan.unknown), plan.unknown


def test_python_37_needs_a_python_upgrade_peft821():
    diag, plan = case("peft821.json")
    assert step(plan, "torch") is None  # the same build would be reinstalled for nothing
    assert step(plan, "peft") is None  # peft >= 0.4 cannot install on Python 3.7
    assert any(m.required and "Python to >= 3.8" in m.text for m in plan.manual)


@pytest.mark.parametrize(
    "name, want, not_want",
    [
        ("bnb815.txt", "bnb-no-4bit", "bnb-missing"),
        ("tf5.txt", "hf-stack-too-old", None),
        ("pkgnotfound.txt", "bnb-missing", None),
        ("bnb742.txt", None, "mixed-gpus"),
        ("bnb374.txt", None, "mixed-gpus"),
    ],
)
def test_explain_signatures(name, want, not_want):
    ids = explained_ids((DATA / name).read_text())
    if want:
        assert want in ids, ids
    if not_want:
        assert not_want not in ids, ids


# --------------------------------------------------------------------------- second round
DATA2 = Path(__file__).parent / "data" / "redteam2"


def case2(name: str):
    doc = json.loads((DATA2 / name).read_text())
    return analyse(facts_from_dict(doc, name))


def test_kepler_gets_a_source_build_not_a_bnb_bump_bnb514():
    diag, plan = case2("c04_bnb514.json")
    assert "gpu-too-old-for-bnb" in diag.ids and step(plan, "bitsandbytes") is None
    assert any(m.required and "source" in m.text for m in plan.manual)


def test_cuda_error_802_is_not_a_package_problem_bnb731():
    diag, plan = case2("c05_bnb731.json")
    assert "cuda-init-failed" in diag.ids and "bnb-no-cuda-lib" not in diag.ids
    assert not plan.steps
    assert any(m.id == "cuda-init-failed" and m.required for m in plan.manual)


def test_aarch64_gpu_without_a_known_build_is_a_manual_step_pytorch147953():
    diag, plan = case2("c09_t4g_aarch64.json")
    assert step(plan, "torch") is None
    assert any(m.required for m in plan.manual)


def test_unknown_driver_prefers_the_smallest_driver_demand_unsloth2431():
    diag, plan = case2("c12_unsloth2431.json")
    rel = KB.torch.release(step(plan, "torch").to)
    assert rel.variant(plan.torch_variant).cuda.major == 12  # cu128, not a cu13x build
    assert any("vllm" in u and "xformers" in u for u in plan.unknown)


def test_found_version_in_the_error_is_the_drivers_cuda_omost120():
    diag, plan = case2("c13b_nodriver.json")
    rel = KB.torch.release(step(plan, "torch").to)
    assert (
        rel.variant(plan.torch_variant).cuda <= Version("11.6")
        or rel.variant(plan.torch_variant).cuda.major == 11
    )
    assert any("CUDA 11.6" in u for u in plan.unknown)


def test_an_unexplained_error_is_not_healthy():
    doc = json.loads(
        (Path(__file__).parent.parent / "plans" / "examples" / "healthy.json").read_text()
    )
    doc["error"] = "SomeError: a message no class knows"
    diag, plan = analyse(facts_from_dict(doc, "t"))
    assert not plan.healthy and any("not explained" in n for n in plan.notes)


@pytest.mark.parametrize(
    "text, want",
    [
        (
            "Please install bitsandbytes>=0.44.0 via `pip install bitsandbytes>=0.44.0`",
            "bnb-missing",
        ),
        ("RuntimeError: CUDA is required but not available for bitsandbytes.", "no-nvidia-driver"),
        ("Error 802: system not yet initialized", "cuda-init-failed"),
        (
            "libcusparse.so.11: cannot open shared object file: No such file or directory",
            "cuda-libs-not-found",
        ),
    ],
)
def test_explain_round_two(text, want):
    assert want in explained_ids(text)


def test_a_cuda_110_driver_limits_bitsandbytes_to_a_library_it_can_run_bnb443():
    diag, plan = case2("c20_bnb443.json")  # driver 450.51.05: CUDA 11.0 only
    bnb = step(plan, "bitsandbytes")
    assert bnb is not None
    build = KB.bnb.release(bnb.to).builds["linux-x86_64"]
    assert "110" in build.cuda_libs
    assert any("450.80.02" in m.text and not m.required for m in plan.manual)
