"""The planner's promises, one scenario each (issue: plan and explain, "The planner must")."""

from __future__ import annotations

import copy

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from repair.facts import facts_from_dict
from repair.findings import Severity
from repair.knowledge import lib_rocm, load_knowledge
from repair.view import arch_coverage
from tests.core_helpers import INDEX, analyse, example_doc, explained_ids

KB = load_knowledge()


def facts(**changes):
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    for key, value in changes.items():
        doc[key] = value
    return facts_from_dict(doc, "test")


def torch_step(plan):
    return next((s for s in plan.steps if s.package == "torch"), None)


def chosen_cuda(plan) -> Version | None:
    rel = KB.torch.release(torch_step(plan).to)
    return rel.variant(plan.torch_variant).cuda


def test_gtx_1080_ti_never_gets_a_cu128_or_cu13x_build():
    f = facts(
        gpus=[{"index": 0, "name": "GTX 1080 Ti", "compute_capability": "6.1"}],
        driver={"found": True, "version": "580.65.06", "cuda": "13.0"},
        packages={"torch": "2.8.0+cu128", "bitsandbytes": "0.48.2"},
        torch={"version": "2.8.0+cu128", "cuda": "12.8"},
        bitsandbytes={"version": "0.48.2", "copies": 1},
    )
    diag, plan = analyse(f)
    assert "gpu-arch-unsupported" in diag.ids
    assert chosen_cuda(plan) <= Version("12.6")
    assert arch_coverage(plan.torch_arch_list, Version("6.1")) == "sass"


def test_rtx_5090_needs_cu128_or_newer():
    f = facts(
        gpus=[{"index": 0, "name": "RTX 5090", "compute_capability": "12.0"}],
        driver={"found": True, "version": "575.51.03", "cuda": "12.9"},
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.45.5"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    assert "gpu-arch-unsupported" in diag.ids
    assert chosen_cuda(plan) >= Version("12.8")
    # bitsandbytes stays or moves, but what ends installed has a library for the new CUDA
    final = plan.bnb_target or "0.45.5"
    build = KB.bnb.release(final).builds["linux-x86_64"]
    assert "128" in build.cuda_libs or chosen_cuda(plan) >= Version("13.0")


def test_470_driver_gets_cu118_through_minor_version_compatibility():
    f = facts(driver={"found": True, "version": "470.182.03", "cuda": "11.4"})
    diag, plan = analyse(f)
    assert "driver-too-old" in diag.ids
    assert chosen_cuda(plan) == Version("11.8")
    assert any("525.60.13" in m.text and not m.required for m in plan.manual)


def test_torch_left_alone_when_only_bitsandbytes_is_wrong():
    f = facts(
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.38.1", "torchvision": "0.20.1+cu121"},
        bitsandbytes={"version": "0.38.1", "copies": 1},
    )
    diag, plan = analyse(f)
    assert torch_step(plan) is None
    assert [s.package for s in plan.steps] == ["bitsandbytes"]


def test_torchvision_and_torchaudio_move_with_torch():
    f = facts(
        driver={"found": True, "version": "470.182.03", "cuda": "11.4"},
        packages={
            "torch": "2.5.1+cu121",
            "torchvision": "0.20.1+cu121",
            "torchaudio": "2.5.1+cu121",
            "bitsandbytes": "0.45.5",
        },
    )
    _, plan = analyse(f)
    names = {s.package: s for s in plan.steps}
    variant = plan.torch_variant
    assert names["torchvision"].to.endswith("+" + variant)
    assert names["torchaudio"].to.endswith("+" + variant)
    assert names["torchvision"].index_url == names["torch"].index_url


def test_a_distribution_pinning_torch_is_respected():
    f = facts(
        driver={"found": True, "version": "470.182.03", "cuda": "11.4"},
        packages={"torch": "2.5.1+cu121", "xformers": "0.0.28.post3", "bitsandbytes": "0.45.5"},
        torch_dependents={"xformers": "torch==2.5.1"},
    )
    _, plan = analyse(f)
    assert torch_step(plan).to == "2.5.1+cu118"


def test_an_unsatisfiable_pin_is_reported():
    f = facts(
        driver={"found": True, "version": "470.182.03", "cuda": "11.4"},
        packages={"torch": "2.5.1+cu121", "xformers": "0.0.1", "bitsandbytes": "0.45.5"},
        torch_dependents={"xformers": "torch==2.9.0"},
    )  # 2.9 has no CUDA 11 build
    _, plan = analyse(f)
    assert any("xformers requires torch==2.9.0" in u for u in plan.unknown)


def test_windows_cuda_builds_come_from_the_pytorch_index():
    f = facts(
        host={"system": "Windows", "machine": "AMD64"},
        packages={"torch": "2.5.1+cpu", "bitsandbytes": "0.45.5"},
        torch={"version": "2.5.1+cpu", "cuda": None},
    )
    diag, plan = analyse(f)
    assert "torch-cpu-build" in diag.ids
    step = torch_step(plan)
    assert step.index_url.startswith("https://download.pytorch.org/whl/cu")
    assert "windows-x86_64" in KB.torch.release(step.to).variant(plan.torch_variant).platforms


def test_old_python_limits_the_release():
    f = facts(
        python={"version": "3.8.18", "in_venv": True},
        driver={"found": True, "version": "470.182.03", "cuda": "11.4"},
    )
    _, plan = analyse(f)
    rel = KB.torch.release(torch_step(plan).to)
    assert Version("3.8") in rel.python


def test_aarch64_uses_aarch64_builds():
    f = facts(
        host={"system": "Linux", "machine": "aarch64", "libc": "glibc 2.35"},
        gpus=[{"index": 0, "name": "GH200", "compute_capability": "9.0"}],
        driver={"found": True, "version": "580.65.06", "cuda": "13.0"},
        packages={"torch": "2.9.1+cpu", "bitsandbytes": "0.48.2"},
        torch={"version": "2.9.1+cpu", "cuda": None},
    )
    _, plan = analyse(f)
    step = torch_step(plan)
    var = KB.torch.release(step.to).variant(plan.torch_variant)
    assert "linux-aarch64" in var.platforms and var.cuda is not None


def test_old_glibc_is_a_manual_step_not_an_upgrade():
    _, plan = analyse(
        facts(
            host={"system": "Linux", "machine": "x86_64", "libc": "glibc 2.17"},
            packages={"torch": "2.1.2+cu121", "bitsandbytes": "0.42.0"},
            torch={"version": "2.1.2+cu121", "cuda": "12.1"},
            bitsandbytes={"version": "0.42.0", "copies": 1},
        )
    )
    assert not any(s.package == "bitsandbytes" for s in plan.steps)
    assert any(m.required and "2.24" in m.text for m in plan.manual)


def test_bnb_cuda_version_override_becomes_a_manual_step():
    f = facts(env={"BNB_CUDA_VERSION": "119"})
    diag, plan = analyse(f)
    assert "bnb-cuda-override" in diag.ids
    m = next(m for m in plan.manual if m.id == "bnb-cuda-override")
    assert m.required and "unset BNB_CUDA_VERSION" in m.text and "empty" in m.text


@pytest.mark.parametrize("value", ["", "12.1", "cu121"])
def test_non_digit_override_is_fatal_on_050(value):
    f = facts(
        env={"BNB_CUDA_VERSION": value},
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.50.2"},
        bitsandbytes={"version": "0.50.2", "copies": 1},
    )
    diag, _ = analyse(f)
    assert "bnb-cuda-override" in diag.ids


def test_driver_too_old_for_every_build_is_a_required_driver_upgrade():
    f = facts(driver={"found": True, "version": "390.157", "cuda": "9.1"})
    _, plan = analyse(f)
    assert torch_step(plan) is None
    m = next(m for m in plan.manual if m.required)
    assert m.id == "driver-too-old" and ">=" in m.text


def test_plan_says_what_it_could_not_know():
    f = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "gpus": [{"compute_capability": "8.0"}],
            "packages": {"torch": "2.5.1+cu121"},
            "torch": {"version": "2.5.1+cu121", "cuda": "12.1"},
        },
        "partial",
    )
    _, plan = analyse(f)
    assert any("driver" in u for u in plan.unknown)
    assert any("platform" in u for u in plan.unknown)


def test_a_gpu_error_with_no_host_facts_never_plans_a_cpu_build():
    f = facts_from_dict(
        {
            "facts": {
                "schema": "qfix.facts/1",
                "packages": {"torch": "2.4.1+cu124"},
                "torch": {"version": "2.4.1+cu124", "cuda": "12.4"},
            },
            "error": "CUDA error: no kernel image is available for execution on the device",
        },
        "ticket",
    )
    _, plan = analyse(f)
    assert plan.torch_variant is None or plan.torch_variant.startswith("cu")


def test_torchvision_is_repaired_when_torch_stays():
    _, plan = analyse(example_facts_named("family-mismatch.json"))
    step = next(s for s in plan.steps if s.package == "torchvision")
    assert step.to == "0.20.1+cu121" and step.index_url.endswith("/cu121")
    assert not any(s.package == "torch" for s in plan.steps)


def test_transformers_upgrade_stays_below_releases_that_need_a_newer_bitsandbytes():
    _, plan = analyse(example_facts_named("hf-too-old.json"))  # bitsandbytes 0.45.5 stays
    step = next(s for s in plan.steps if s.package == "transformers")
    assert step.to == ">=4.30.0,<5.0.0"


def test_same_release_variant_keeps_the_installed_version():
    f = facts(
        gpus=[{"index": 0, "name": "RTX 4090", "compute_capability": "8.9"}],
        packages={"torch": "2.5.0+cpu", "xformers": "0.0.28", "bitsandbytes": "0.45.5"},
        torch={"version": "2.5.0+cpu", "cuda": None},
        torch_dependents={"xformers": "torch==2.5.0"},
    )
    _, plan = analyse(f)
    assert torch_step(plan).to.startswith("2.5.0+cu")
    assert not any("conflict" in u for u in plan.unknown)


def test_unknown_platform_is_not_healthy():
    f = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "ppc64le"},
            "packages": {"bitsandbytes": "0.42.0"},
        },
        "ppc",
    )
    diag, plan = analyse(f)
    assert "bnb-platform-unsupported" in diag.ids and not plan.healthy


def example_facts_named(name):
    from tests.core_helpers import example_facts

    return example_facts(name)


def bnb_release(version: str):
    return next(r for r in KB.bnb.releases if r.version == Version(version))


def cuda_torches(cuda: str) -> list[Version]:
    return [
        v
        for rel in KB.torch.releases
        if any(var.cuda == Version(cuda) for var in rel.variants)
        for v in rel.versions
    ]


@pytest.mark.parametrize(("bnb", "cuda"), [("0.37.0", "11.6"), ("0.41.1", "11.7")])
def test_unknown_torch_version_with_known_cuda_never_gets_a_bnb_that_pulls_another_torch(
    bnb: str, cuda: str
) -> None:
    # torch's CUDA is known (its build), its version is not: every torch release built for
    # CUDA 11.6/11.7 is older than 2.0, and bitsandbytes >= 0.45.1 requires torch >= 2.0, so such
    # a bitsandbytes either comes with an explicit torch step or is not planned
    f = facts(
        packages={"torch": None, "bitsandbytes": bnb},
        torch={"version": None, "cuda": cuda, "cuda_available": True},
        bitsandbytes={"version": bnb, "copies": 1},
    )
    _diag, plan = analyse(f)
    step = next((s for s in plan.steps if s.package == "bitsandbytes"), None)
    if step is None:
        return
    release, torch = bnb_release(step.to), torch_step(plan)
    if torch is None:
        assert all(release.admits_torch(v) for v in cuda_torches(cuda)), (step.to, release.torch)
    else:
        assert release.admits_torch(Version(torch.to)), (step.to, torch.to)
        assert f"torch=={torch.to}" in plan.constraints


def _sm(cc: str) -> str:
    return "sm_" + cc.replace(".", "")


@pytest.mark.parametrize(
    ("torch_facts", "series"),
    [
        ({"version": "1.10.0"}, "1.10"),  # a bare version: the build PyPI ships is assumed
        ({"version": "1.10.2+cu102", "cuda": "10.2"}, "1.10"),
        ({"version": "1.11.0", "cuda": "10.2"}, "1.11"),
    ],
)
def test_rtx_30xx_on_the_pypi_cu102_build_of_torch_1_1x_moves_to_a_build_with_its_arch(
    torch_facts, series
):
    # The 2021-2022 "sm_86 is not compatible with the current PyTorch installation": the PyPI
    # Linux wheel of 1.10/1.11 is cu102, whose arch list (plans/torch.toml) stops below sm_86.
    cc = "8.6"
    rel = KB.torch.release(series)
    pypi = rel.pypi_variant("linux-x86_64")
    assert pypi is not None and _sm(cc) not in pypi.arch_list
    f = facts(
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 3090", "compute_capability": cc}],
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
        python={"version": "3.8.10", "in_venv": True, "externally_managed": False},
        packages={"torch": torch_facts["version"], "bitsandbytes": "0.41.1"},
        torch=torch_facts,
        bitsandbytes={"version": "0.41.1", "copies": 1},
    )
    diag, plan = analyse(f)
    assert "gpu-arch-unsupported" in diag.ids
    step = torch_step(plan)
    assert step is not None
    target = KB.torch.release(step.to).variant(plan.torch_variant)
    assert _sm(cc) in target.arch_list and target.arch_confirmed_for("linux-x86_64")
    assert arch_coverage(plan.torch_arch_list, Version(cc)) == "sass"


def test_torch_1_11_cu113_covers_an_rtx_30xx():
    f = facts(
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}],
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
        python={"version": "3.8.10", "in_venv": True, "externally_managed": False},
        packages={"torch": "1.11.0+cu113", "bitsandbytes": "0.41.1"},
        torch={"version": "1.11.0+cu113", "cuda": "11.3"},
        bitsandbytes={"version": "0.41.1", "copies": 1},
    )
    diag, _ = analyse(f)
    assert "gpu-arch-unsupported" not in diag.ids


@pytest.mark.parametrize(("cc", "flag"), [("7.0", True), ("8.6", False)])
def test_a_source_build_below_cublaslts_bound_is_told_its_flag(cc: str, flag: bool) -> None:
    """S88: bitsandbytes up to 0.44.1 loads a `_nocublaslt` library on a GPU below 7.5, which a
    CMake build makes only with -DNO_CUBLASLT=ON; 0.45.0 needs no flag. A platform with no
    wheel (ppc64le) gets that with its build-from-source step, on such a GPU only."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "ppc64le"},
        "driver": {"found": True, "version": "535.104.05", "cuda": "12.2"},
        "gpus": [{"index": 0, "name": "Tesla V100", "compute_capability": cc}],
        "python": {"version": "3.10"},
        "packages": {"torch": "2.2.0", "bitsandbytes": "0.43.2.dev0"},
        "bitsandbytes": {"version": "0.43.2.dev0", "source_build": True, "native_libs": []},
    }
    _, plan = analyse(facts_from_dict(doc))
    [build] = [m.text for m in plan.manual if "build bitsandbytes from source" in m.text]
    assert ("-DNO_CUBLASLT=ON" in build) is flag
    if flag:
        assert "0.45.0 and later need no such flag" in build and "compute capability 7.0" in build


def _rocm_doc(bnb: dict | None, torch_version: str = "2.5.1+rocm6.2", hip: str = "6.2.41133"):
    doc = copy.deepcopy(example_doc("rocm.json")["facts"])
    doc["torch"] = {"version": torch_version, "cuda": None, "hip": hip}
    doc["packages"]["torch"] = torch_version
    doc["bitsandbytes"] = bnb
    doc["packages"]["bitsandbytes"] = bnb["version"] if bnb else None
    doc["packages_source"] = "probe"
    return doc


def test_a_rocm_host_gets_the_bitsandbytes_that_ships_its_rocm_library_torch_pinned():
    """Issue 12 item 4: torch's ROCm build stays (pinned by the constraints file); bitsandbytes
    moves to the newest release whose wheel has a library for torch's ROCm version."""
    from repair.pipeline import with_commands

    f = facts_from_dict(_rocm_doc({"version": "0.45.5", "native_libs": ["libbitsandbytes_cpu.so"]}))
    _, plan = analyse(f)
    [step] = plan.steps
    assert step.package == "bitsandbytes" and step.because == ("rocm-host",)
    rel = KB.bnb.release(step.to)
    assert rel is not None and rel.lib_for_rocm(Version("6.2"), "linux-x86_64") == "rocm62"
    newer = [r for r in KB.bnb.releases if r.version > rel.version]  # the newest exact one
    assert not any(r.lib_for_rocm(Version("6.2"), "linux-x86_64") == "rocm62" for r in newer)
    assert not any(m.required for m in plan.manual)  # the source build is the fallback only
    plan = with_commands(plan, installed=f.packages)
    assert plan.constraints == ("torch==2.5.1+rocm6.2",)


@pytest.mark.parametrize(
    ("gpu_name", "covered"),
    [("AMD Instinct MI300X", True), ("AMD Radeon Graphics", False)],  # gfx942; name tells none
)
def test_the_rocm_fallback_says_whether_the_library_covers_the_gpu(gpu_name, covered):
    """Known to cover the GPU's target (S89), the library is not blamed for a later failure:
    the source build is the last resort, not the likely fix."""
    doc = _rocm_doc({"version": "0.45.5", "native_libs": ["libbitsandbytes_cpu.so"]})
    doc["gpus"][0]["name"] = gpu_name
    _, plan = analyse(facts_from_dict(doc))
    assert [s.package for s in plan.steps] == ["bitsandbytes"]
    [m] = [m for m in plan.manual if m.id == "rocm-host"]
    assert not m.required
    assert ("is built for this GPU's target gfx942" in m.text) is covered
    assert ("may not be built for this GPU's target" in m.text) is not covered
    assert "-DBNB_ROCM_ARCH=" in m.text


@pytest.mark.parametrize(
    "bnb",
    [
        {"version": "0.50.2", "native_libs": ["libbitsandbytes_rocm64.so"]},  # it serves
        {"version": "0.45.5", "native_libs": [], "source_build": True},  # built for this GPU
    ],
)
def test_a_rocm_host_keeps_a_bitsandbytes_that_serves_or_was_built_here(bnb):
    _, plan = analyse(facts_from_dict(_rocm_doc(bnb)))
    assert not plan.steps
    required = [m for m in plan.manual if m.required]
    assert bool(required) is bool(bnb.get("source_build"))  # the build is the user's to redo


def test_a_rocm_host_with_a_hip_fault_gets_no_bitsandbytes_step():
    """No code object for the GPU's target: torch's build is at fault, no bitsandbytes fixes it."""
    text = "RuntimeError: HIP error: invalid device function"
    from repair import pipeline

    f = facts_from_dict(_rocm_doc({"version": "0.45.5", "native_libs": []}))
    plan = pipeline.analyse(f, error_text=text).plan
    assert not plan.steps and any(m.required and m.id == "rocm-host" for m in plan.manual)


def test_a_rocm_step_with_torch_unknown_holds_for_every_torch_of_that_rocm():
    """torch's version unknown, its ROCm 6.0: only some torch releases had such builds (2.3,
    2.4), so a bitsandbytes whose torch bound excludes one of them could pull another torch."""
    doc = _rocm_doc({"version": "0.45.5", "native_libs": []}, "2.3.1+rocm6.0", "6.0.32830")
    doc["torch"]["version"] = None
    doc["packages"]["torch"] = None
    _, plan = analyse(facts_from_dict(doc))
    from repair.planner import torches_for_rocm
    from repair.view import make_view

    view = make_view(facts_from_dict(doc), KB)
    torches = torches_for_rocm(KB, view, Version("6.0"))
    assert torches and Version("2.3.1") in torches and Version("2.5.1") not in torches
    for step in plan.steps:
        rel = KB.bnb.release(step.to)
        assert rel is not None and all(rel.admits_torch(t) for t in torches)


@pytest.mark.parametrize(
    "bnb",
    [
        {"version": "0.51.0", "native_libs": ["libbitsandbytes_rocm62.so"]},  # newer than the KB
        {"version": "0.43.3.dev0", "native_libs": ["libbitsandbytes_hip_nohipblaslt.so"]},  # fork
        {"version": "0.45.5", "native_libs": ["libbitsandbytes_hip_nohipblaslt.so"]},  # fork lib
    ],
)
def test_a_rocm_host_never_swaps_a_bitsandbytes_it_does_not_know(bnb):
    _, plan = analyse(facts_from_dict(_rocm_doc(bnb)))
    assert not any(s.package == "bitsandbytes" for s in plan.steps)


def test_a_rocm_step_prefers_the_exact_library_and_says_which_it_loads():
    _, plan = analyse(facts_from_dict(_rocm_doc({"version": "0.45.5", "native_libs": []})))
    [step] = plan.steps
    rel = KB.bnb.release(step.to)
    assert rel.lib_for_rocm(Version("6.2"), "linux-x86_64") == "rocm62"
    assert any("libbitsandbytes_rocm62" in n for n in plan.notes)


def test_a_known_bad_rocm_release_moves_and_a_fitting_one_stays_without_a_dangling_note():
    good = [
        r
        for r in KB.bnb.releases
        if r.lib_for_rocm(Version("6.2"), "linux-x86_64") and not r.known_bad
    ][-1]
    _, plan = analyse(facts_from_dict(_rocm_doc({"version": str(good.version), "native_libs": []})))
    assert not plan.steps and not plan.manual
    assert not any("see the manual steps" in n for n in plan.notes)
    bad = [r for r in KB.bnb.releases if r.lib_for_rocm(Version("6.2"), "linux-x86_64")]
    bad = [r for r in bad if r.known_bad]
    if bad:
        doc = _rocm_doc({"version": str(bad[0].version), "native_libs": []})
        _, plan = analyse(facts_from_dict(doc))
        assert [s.package for s in plan.steps] == ["bitsandbytes"]


def test_the_rocm_fallback_text_names_the_python_it_needs():
    doc = _rocm_doc({"version": "0.45.5", "native_libs": []})
    doc["python"]["version"] = "3.8.18"
    _, plan = analyse(facts_from_dict(doc))
    assert not plan.steps
    [m] = [m for m in plan.manual if m.id == "rocm-host"]
    assert "needs Python" in m.text and "3.8.18" in m.text


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("AMD Radeon RX 6700 XT", False),  # gfx1031: RDNA2 only in libraries of ROCm >= 7.14
        ("AMD Radeon RX 7900 XTX", True),  # gfx1100: in every ROCm library
        ("AMD Radeon (gfx1201, Navi 48)", True),  # a target in the name: 0.50's rocm64 has it
    ],
)
def test_a_rocm_step_only_for_a_library_built_for_the_gpus_target(name, step):
    """S89: each PyPI ROCm library is built for a list of GPU targets that grows with the ROCm
    version it was built with; S91 names each GPU's target. A GPU outside the list gets no
    step, and the required step says to build for its target."""
    doc = _rocm_doc({"version": "0.45.5", "native_libs": []})
    doc["gpus"][0]["name"] = name
    _, plan = analyse(facts_from_dict(doc))
    assert any(s.package == "bitsandbytes" for s in plan.steps) is step
    if step:
        target = KB.bnb.release(plan.steps[0].to)
        lib = target.lib_for_rocm(Version("6.2"), "linux-x86_64")
        gfx = KB.bnb.gfx_of(name)
        assert gfx in KB.bnb.lib_targets(target.version, "linux-x86_64", lib_rocm(lib))
        assert any(f"-DBNB_ROCM_ARCH={gfx}" in m.text and not m.required for m in plan.manual)
    else:
        [m] = [m for m in plan.manual if m.id == "rocm-host"]
        assert m.required and "-DBNB_ROCM_ARCH=gfx1031" in m.text


def test_amd_gpu_names_map_to_their_targets():
    assert KB.bnb.gfx_of("AMD Radeon RX 7900 XT") == "gfx1100"
    assert KB.bnb.gfx_of("AMD Radeon RX 7600 XT") == "gfx1102"  # not the RX 7600 entry's name
    assert KB.bnb.gfx_of("Radeon RX 6700S") is None  # a laptop part the table does not name
    assert KB.bnb.gfx_of("AMD Instinct MI300X") == "gfx942"
    assert KB.bnb.gfx_of(None) is None


def test_the_deep_probe_names_amd_gpus_and_their_targets():
    """On an AMD host NVML lists no GPU; ROCm's torch does (name, gcnArchName), and the target
    it reports decides the ROCm step as a name would (gfx1031: no library before ROCm 7.14)."""
    from types import SimpleNamespace

    from repair.pipeline import hip_devices
    from repair.probe import target_script

    props = [
        SimpleNamespace(name="AMD Radeon RX 6700 XT", gcnArchName="gfx1031"),
        SimpleNamespace(name="AMD Instinct MI250X", gcnArchName="gfx90a:sramecc+:xnack-"),
    ]
    fake = SimpleNamespace(
        cuda=SimpleNamespace(device_count=lambda: 2, get_device_properties=lambda i: props[i])
    )
    devices = target_script._hip_devices(fake)
    assert [d["gfx"] for d in devices] == ["gfx1031", "gfx90a"]
    gpus = hip_devices({"deep": {"steps": {"cuda": {"available": True, "devices": devices}}}})
    assert gpus is not None and [g.gfx for g in gpus] == ["gfx1031", "gfx90a"]
    assert all(g.amd for g in gpus) and hip_devices({}) is None
    doc = _rocm_doc({"version": "0.45.5", "native_libs": []})
    doc["gpus"] = [{"index": 0, "name": "AMD Radeon Graphics", "vendor": "amd", "gfx": "gfx1031"}]
    _, plan = analyse(facts_from_dict(doc))
    assert not plan.steps  # the target, not the unhelpful name, decided
    assert KB.bnb.gfx_of("gfx90a:sramecc+:xnack-") == "gfx90a"


NO_KERNEL = "RuntimeError: CUDA error: no kernel image is available for execution on the device"


@pytest.mark.parametrize(
    ("gpus", "torch_moves"),
    [
        (None, False),  # nothing says which kernel lacks which GPU
        ([{"index": 0, "name": "RTX 5070", "compute_capability": "12.0"}], True),
    ],
)
def test_a_kernel_image_error_moves_torch_only_for_a_gpu_the_facts_show(gpus, torch_moves):
    """Issue 12 item 5: "no kernel image" alone, with neither the GPU nor torch's build known,
    may be torch's, bitsandbytes' or a model's own kernel: no torch build is chosen for it, and
    the required step says how to tell them apart. With the GPU known, torch moves to a build
    that has it."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "570.86.10", "cuda": "12.8"},
        "packages": {"torch": None},
    }
    if gpus is not None:
        doc["gpus"] = gpus
    from repair.pipeline import analyse as analyse_text

    plan = analyse_text(facts_from_dict(doc), error_text=NO_KERNEL).plan
    assert "gpu-arch-unsupported" in {f.id for f in plan.findings}
    assert any(s.package == "torch" for s in plan.steps) is torch_moves
    required = [m for m in plan.manual if m.id == "gpu-arch-unsupported" and m.required]
    assert bool(required) is not torch_moves
    if required:
        assert "compute_cap" in required[0].text and "get_arch_list" in required[0].text


REFUSED_2_24 = (
    "ERROR: bitsandbytes-0.45.0-py3-none-manylinux_2_24_x86_64.whl is not a supported wheel on "
    "this platform."
)


def _torch_21_host(driver: tuple[str, str], gpu: tuple[str, str], bnb: str, pip: str | None):
    """Facts of a Linux host with torch 2.1.2+cu121, one NVIDIA GPU and pip at ``pip``."""
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "python": {"version": "3.10.12"},
        "driver": {"found": True, "version": driver[0], "cuda": driver[1]},
        "gpus": [{"index": 0, "name": gpu[0], "compute_capability": gpu[1]}],
        "torch": {"version": "2.1.2+cu121", "cuda": "12.1"},
        "packages": {"torch": "2.1.2+cu121", "bitsandbytes": bnb, "pip": pip},
    }


@pytest.mark.parametrize(("pip", "pip_step"), [("20.0.2", True), ("23.0", False), (None, False)])
def test_a_pip_known_too_old_for_the_wheel_tag_is_upgraded_first(pip, pip_step):
    """S71: pip before 20.3 cannot read manylinux_X_Y tags, so a plan that installs such a
    bitsandbytes wheel upgrades a pip known to be older first, in a command of its own; with
    pip's version unknown the upgrade stays the required manual step; pip 23 needs none (and
    there the refusal proves the host's glibc, so no bitsandbytes step either)."""
    from repair.pipeline import analyse as analyse_text
    from repair.pipeline import with_commands

    doc = _torch_21_host(("535.104.05", "12.2"), ("NVIDIA A10G", "8.6"), "0.41.1", pip)
    plan = analyse_text(facts_from_dict(doc), error_text=REFUSED_2_24).plan
    first = plan.steps[0] if plan.steps else None
    assert (first is not None and first.package == "pip") is pip_step
    [m] = [m for m in plan.manual if m.id == "bnb-platform-unsupported"]
    if pip_step:
        assert first.to == ">=20.3" and first.group == "installer" and not m.required
        assert "the plan upgrades pip first" in m.text
        commands = with_commands(plan, installed=None).commands
        assert commands[0][-1] == "pip>=20.3" and "-c" not in commands[0]
        assert commands[1][-1].startswith("bitsandbytes==")
    elif pip is None:
        assert m.required and "Upgrade pip" in m.text


@pytest.mark.parametrize(
    ("os_release", "libc", "pip"),
    [
        ("CentOS Linux 7 (Core)", None, None),
        (None, "glibc 2.17", None),
        (None, "glibc 2.17", "19.3.1"),
    ],
)
def test_a_refusal_the_hosts_known_glibc_explains_is_that_glibcs_finding(os_release, libc, pip):
    """glibc 2.17 (reported, or inferred from CentOS 7) is below the refused wheel's
    manylinux_2_24: that explains the refusal whatever pip's version, so the finding is firm and
    no step asks to upgrade pip first (pip's version stays unknown)."""
    from repair.pipeline import analyse as analyse_text

    doc = _torch_21_host(("535.104.05", "12.2"), ("NVIDIA A10G", "8.6"), None, pip)
    doc["packages"].pop("bitsandbytes")
    doc["host"].update({"os_release": os_release} if os_release else {"libc": libc})
    plan = analyse_text(facts_from_dict(doc), error_text=REFUSED_2_24).plan
    [f] = [f for f in plan.findings if f.id == "bnb-platform-unsupported"]
    assert f.severity == Severity.ERROR and "glibc is 2.17" in f.summary
    [m] = [m for m in plan.manual if m.id == "bnb-platform-unsupported"]
    assert m.required and "glibc 2.17" in m.text and "pip" not in m.text
    assert not any("pip's version" in u for u in plan.unknown)
    assert not plan.steps  # an old pip gets no upgrade: no pip installs that wheel here


def test_a_torch_move_with_an_old_pip_upgrades_pip_first():
    """torch 2.7 and later ship manylinux_2_28 wheels (S20), which pip 20.0.2 cannot read: the
    pip step comes first and names the finding the moves are for."""
    doc = _torch_21_host(
        ("580.65.06", "13.0"), ("NVIDIA GeForce RTX 5090", "12.0"), "0.45.5", "20.0.2"
    )
    _, plan = analyse(facts_from_dict(doc))
    assert [s.package for s in plan.steps][:2] == ["pip", "torch"]
    assert plan.steps[0].because == ("gpu-arch-unsupported",)
    doc["packages"]["pip"] = "24.0"
    _, plan = analyse(facts_from_dict(doc))
    assert "pip" not in [s.package for s in plan.steps]


def test_the_pip_step_says_why_pip_goes_first():
    """The pip step's `because` names the finding it serves (bnb-missing); its why is one note:
    the installed pip's version is below 20.3, which cannot read the wheel's manylinux_X_Y tag
    (S71). The JSON keeps its keys; the note is one more line of `notes`."""
    doc = _torch_21_host(("535.104.05", "12.2"), ("NVIDIA A10G", "8.6"), None, "20.0.2")
    doc["packages"].pop("bitsandbytes")
    doc["packages_source"] = "probe"  # a probe's list: bitsandbytes is absent
    _, plan = analyse(facts_from_dict(doc))
    pip, bnb = plan.steps[:2]
    assert pip.package == "pip" and pip.because == ("bnb-missing",)
    [note] = [n for n in plan.notes if n.startswith("pip ")]
    assert note.startswith("pip 20.0.2 is older than 20.3 and cannot read the manylinux_2_")
    assert f"bitsandbytes {bnb.to} wheel" in note and "pip is upgraded first" in note
    assert set(plan.to_dict()["steps"][0]) == {
        "action", "package", "from", "to", "index_url", "because", "group"
    }  # fmt: skip
    doc["packages"]["pip"] = "24.0"
    _, plan = analyse(facts_from_dict(doc))
    assert not any(n.startswith("pip ") for n in plan.notes)


def _cpu_4bit_floor() -> Version:
    return next(r.minimum for r in KB.hf if r.feature == "4bit-cpu")


def _no_gpu(transformers: str, gpu: bool = False):
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    doc["packages"]["transformers"] = transformers
    doc["packages"]["bitsandbytes"] = "0.50.2"
    doc["bitsandbytes"] = {"version": "0.50.2"}
    if not gpu:
        doc["driver"] = {"found": False}
        doc["gpus"] = []
        doc["packages"]["torch"] = doc["torch"]["version"] = "2.5.1+cpu"
        doc["torch"]["cuda"] = None
    return facts_from_dict(doc, "test")


def _cpu_findings(diag):
    return [
        f
        for f in diag.findings
        if f.id == "hf-stack-too-old" and f.evidence.get("minimum") == str(_cpu_4bit_floor())
    ]


def test_no_gpu_raises_transformers_to_the_cpu_4bit_floor():
    # transformers 4.45 to 4.52 refuse a 4-bit load on the CPU without IPEX (S100)
    floor = _cpu_4bit_floor()
    assert floor == Version("4.53.0")
    diag, plan = analyse(_no_gpu("4.52.4"))
    assert _cpu_findings(diag) and "no-nvidia-driver" in diag.ids
    # the way on a host without a GPU, not its fault: a warning, as bnb-no-cpu-4bit is
    assert all(f.severity.value == "warning" for f in _cpu_findings(diag))
    step = next(s for s in plan.steps if s.package == "transformers")
    assert SpecifierSet(step.to).contains(floor) and not SpecifierSet(step.to).contains("4.52.4")
    advice = next(m for m in plan.manual if m.id == "no-nvidia-driver")
    assert f"transformers >= {floor}" in advice.text


def test_the_cpu_4bit_floor_holds_at_it_and_not_on_a_gpu_host():
    diag, plan = analyse(_no_gpu("4.53.0"))
    assert not _cpu_findings(diag)
    assert not any(s.package == "transformers" for s in plan.steps)
    diag, plan = analyse(_no_gpu("4.52.4", gpu=True))
    assert not _cpu_findings(diag)
    assert not any(s.package == "transformers" for s in plan.steps)


def _amd_cuda_torch_doc(gpu: str, bnb: str | None = None) -> dict:
    """A Linux venv with an installer's CUDA torch 2.4.1 (and torchvision) on an AMD GPU."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35"},
        "driver": {"found": False},
        "gpus": [{"index": 0, "name": gpu, "vendor": "amd"}],
        "python": {"version": "3.11.7", "in_venv": True},
        "packages": {"torch": "2.4.1+cu121", "torchvision": "0.19.1+cu121"},
        "torch": {"version": "2.4.1+cu121", "cuda": "12.1"},
    }
    if bnb is not None:
        doc["packages"]["bitsandbytes"] = bnb
        doc["bitsandbytes"] = {"version": bnb, "native_libs": []}
    return doc


def _rocm_builds_for(series: str, gfx: str) -> list:
    rel = KB.torch.release(Version(series + ".0"))
    assert rel is not None
    return sorted(
        (v for v in rel.variants_for("linux-x86_64") if v.rocm and v.gfx and gfx in v.gfx),
        key=lambda v: Version(v.rocm),
    )


def test_a_cuda_torch_on_an_amd_gpu_moves_to_a_rocm_build_compiled_for_its_target():
    """Issue 12 item 4: a CUDA torch on an RX 7900 XTX (gfx1100). torch 2.4's ROCm builds are
    compiled for gfx1100 (S93), so the plan moves torch and torchvision to one of them, the
    installed version kept, and the lowest ROCm (the host's amdgpu driver is not in the facts):
    the optional step says so and names the release's other builds for that target."""
    fits = _rocm_builds_for("2.4", "gfx1100")
    assert len(fits) >= 2  # S93: rocm6.0 and rocm6.1 both list gfx1100
    _, plan = analyse(facts_from_dict(_amd_cuda_torch_doc("AMD Radeon RX 7900 XTX")))
    torch, vision = plan.steps
    assert (torch.package, torch.to, torch.because) == (
        "torch",
        f"2.4.1+{fits[0].name}",
        ("rocm-host",),
    )
    assert torch.index_url == f"{INDEX}/{fits[0].name}"
    assert (vision.package, vision.to) == ("torchvision", f"0.19.1+{fits[0].name}")
    assert vision.index_url == torch.index_url
    [m] = [m for m in plan.manual if m.id == "rocm-host"]
    assert not m.required and "amdgpu" in m.text and f"torch==2.4.1+{fits[-1].name}" in m.text
    assert any("gfx1100" in n and "S93" in n for n in plan.notes)


def test_a_cuda_torch_on_an_amd_gpu_pairs_with_a_bitsandbytes_for_the_new_rocm():
    """With bitsandbytes installed (0.45.5: no ROCm library), it moves with torch to a release
    that ships a library for the chosen build's ROCm, built for the GPU's target (S89), and
    admits that torch; a build whose ROCm has an exact library comes first."""
    _, plan = analyse(facts_from_dict(_amd_cuda_torch_doc("AMD Radeon RX 7900 XTX", "0.45.5")))
    steps = {s.package: s for s in plan.steps}
    torch = Version(steps["torch"].to)
    rocm = Version(torch.local.removeprefix("rocm"))
    rocm = Version(f"{rocm.major}.{rocm.minor}")
    bnb = KB.bnb.release(Version(steps["bitsandbytes"].to))
    assert bnb is not None and steps["bitsandbytes"].because == ("rocm-host",)
    lib = bnb.lib_for_rocm(rocm, "linux-x86_64")
    assert lib is not None
    targets = KB.bnb.lib_targets(bnb.version, "linux-x86_64", lib_rocm(lib))
    assert targets is None or "gfx1100" in targets
    assert Version(torch.public) in bnb.torch
    exact = [
        v
        for v in _rocm_builds_for("2.4", "gfx1100")
        if any(
            (lb := r.lib_for_rocm(Version(v.rocm), "linux-x86_64"))
            and lib_rocm(lb) == Version(v.rocm)
            for r in KB.bnb.releases
        )
    ]
    if exact:
        assert torch.local == exact[0].name
    assert plan.constraints[0] == f"torch=={torch}"


def _amd_torch_from(version: str, cuda: str) -> dict:
    doc = _amd_cuda_torch_doc("AMD Radeon RX 7900 XTX")
    label = "cu" + cuda.replace(".", "")
    doc["packages"].update(torch=f"{version}+{label}")
    doc["packages"].pop("torchvision")
    doc["torch"].update(version=f"{version}+{label}", cuda=cuda)
    return doc


@pytest.mark.parametrize(
    ("version", "cuda", "why"),
    [
        # S102: 2.8's ROCm lists were not read (plans/torch.toml keeps no gfx for them)
        ("2.8.0", "12.8", "torch 2.8 has ROCm builds, whose GPU targets are not known"),
        # a release plans/ does not hold (a future one)
        ("2.99.0", "13.0", "torch 2.99 is not in plans/"),
    ],
)
def test_a_rocm_move_below_the_installed_torch_says_why(version, cuda, why):
    """A CUDA torch on an RX 7900 XTX (gfx1100) whose release has no ROCm build known to hold
    the target: the plan takes an older release's build, and its note says that torch goes
    down and why, instead of a bare "moves to"."""
    rel = KB.torch.release(version)
    if rel is not None:  # the knowledge this case rests on
        builds = [v for v in rel.variants_for("linux-x86_64") if v.rocm]
        assert builds and all(v.gfx is None for v in builds)
    _, plan = analyse(facts_from_dict(_amd_torch_from(version, cuda)))
    torch = next(s for s in plan.steps if s.package == "torch")
    assert Version(Version(torch.to).public) < Version(version)
    [note] = [n for n in plan.notes if n.startswith("AMD GPU")]
    assert f"moves to {torch.to} (down from {version}: {why})" in note


def test_no_rocm_build_is_planned_for_a_target_no_known_build_has():
    """A GPU target that no torch ROCm build of the knowledge base lists: no torch step (a build
    whose list lacks the target cannot use the GPU); the manual step says which releases'
    builds lack it and leaves them out of its command."""
    listed = {g for r in KB.torch.releases for v in r.variants if v.gfx for g in v.gfx}
    unlisted = [t for t in KB.bnb.gpu_targets if t.gfx not in listed]
    assert unlisted, "every known AMD target is in some torch build: pick another test GPU"
    _, plan = analyse(facts_from_dict(_amd_cuda_torch_doc(unlisted[0].name)))
    assert not any(s.package == "torch" for s in plan.steps)
    [m] = [m for m in plan.manual if m.id == "rocm-host"]
    assert m.required and f"not compiled for this GPU's target {unlisted[0].gfx}" in m.text


def test_an_amd_gpu_no_bitsandbytes_library_covers_gets_a_required_step_beside_the_torch_move():
    """gfx1030 (RX 6800 XT): torch's ROCm builds have it, but no PyPI bitsandbytes ROCm library
    below ROCm 7.14 does (S89). torch still moves (the GPU becomes usable), and bitsandbytes' side
    is a required step that names the source build for the target."""
    _, plan = analyse(facts_from_dict(_amd_cuda_torch_doc("AMD Radeon RX 6800 XT", "0.45.5")))
    assert any(s.package == "torch" for s in plan.steps)
    assert not any(s.package == "bitsandbytes" for s in plan.steps)
    [m] = [m for m in plan.manual if m.id == "rocm-host"]
    assert m.required and "-DBNB_ROCM_ARCH=gfx1030" in m.text
    assert m.text.count("do not install CUDA builds of torch here") == 1


def test_an_installed_bitsandbytes_stays_only_where_its_torch_bounds_admit_the_new_torch():
    """bitsandbytes 0.50.2 requires torch >= 2.4: with torch 2.3.1 on an RX 7900 XTX, the plan's
    ROCm torch and the bitsandbytes it ends with must agree (no bnb-torch-mismatch left)."""
    doc = _amd_cuda_torch_doc("AMD Radeon RX 7900 XTX", "0.50.2")
    doc["packages"].update({"torch": "2.3.1+cu121", "torchvision": "0.18.1+cu121"})
    doc["torch"] = {"version": "2.3.1+cu121", "cuda": "12.1"}
    _, plan = analyse(facts_from_dict(doc))
    steps = {s.package: s for s in plan.steps}
    torch = Version(steps["torch"].to)
    final = Version(steps["bitsandbytes"].to) if "bitsandbytes" in steps else Version("0.50.2")
    rel = KB.bnb.release(final)
    assert rel is not None and rel.admits_torch(Version(torch.public))


def test_lacking_builds_are_named_in_runs():
    from repair.planner import _runs

    flags = [("1.11", True), ("1.12", True), ("2.5", False), ("2.6", False), ("2.7", True)]
    assert _runs(flags) == ["1.11-1.12", "2.7"]
    assert _runs([("2.0", False)]) == []


@pytest.mark.parametrize(
    ("platform_doc", "torch_from", "labelled"),
    [
        ({"system": "Darwin", "machine": "arm64"}, "2.1.2", False),  # S109: macOS, no +cpu
        ({"system": "Windows", "machine": "AMD64"}, "2.1.2", True),
    ],
)
def test_a_cpu_torch_step_names_the_wheel_as_the_index_labels_it(
    platform_doc, torch_from, labelled
):
    """bitsandbytes' current releases need a newer torch than 2.1.2 on a machine without CUDA:
    the CPU torch it moves to is pinned as that platform's wheels are named on the PyTorch
    index (S109), or `pip install torch==X+cpu` finds nothing: macOS wheels carry no label,
    Linux aarch64 ones only from 2.6, Windows ones always."""
    doc = {
        "schema": "qfix.facts/1",
        "host": platform_doc,
        "driver": {"found": False},
        "gpus": [],
        "python": {"version": "3.11.7", "in_venv": True},
        "packages": {"torch": torch_from, "torchvision": "0.16.2", "bitsandbytes": "0.41.1"},
        "torch": {"version": torch_from, "cuda": None},
    }
    _, plan = analyse(facts_from_dict(doc))
    steps = {s.package: s for s in plan.steps}
    torch, vision = steps["torch"], steps["torchvision"]
    to = Version(torch.to)
    assert (to.local == "cpu") is labelled and (Version(vision.to).local == "cpu") is labelled
    assert to.local in (None, "cpu") and torch.index_url == f"{INDEX}/cpu"


@pytest.mark.parametrize(("series", "labelled"), [("2.5", False), ("2.6", True)])
def test_a_linux_aarch64_cpu_build_is_pinned_as_its_release_names_it(series, labelled):
    """On Linux aarch64 the CPU build of 2.5 is pinned without "+cpu" (unlabelled wheels exist
    there; a pin without a label matches either form), of 2.6 with it (S109)."""
    from repair.planner import evaluate_variant
    from repair.view import make_view

    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "aarch64", "libc": "glibc 2.35"},
        "driver": {"found": False},
        "gpus": [],
        "python": {"version": "3.11.7", "in_venv": True},
        "packages": {},
    }
    view = make_view(facts_from_dict(doc), KB)
    rel = KB.torch.release(series)
    [cpu] = [v for v in rel.variants_for("linux-aarch64") if v.name == "cpu"]
    choice, reasons = evaluate_variant(view, KB, rel, cpu)
    assert choice is not None, reasons
    assert choice.version == (f"{rel.latest}+cpu" if labelled else str(rel.latest))


def test_cpu_labels_by_platform_and_release():
    """plans/torch.toml [cpu_unlabelled] (S109), read through the knowledge base."""
    label = KB.torch.local_label
    assert label("cpu", "macos-arm64", Version("2.5.1")) is None
    assert label("cpu", "macos-x86_64", Version("2.2.2")) is None
    assert label("cpu", "linux-aarch64", Version("2.5.1")) is None
    assert label("cpu", "linux-aarch64", Version("2.6.0")) == "cpu"
    assert label("cpu", "linux-x86_64", Version("2.5.1")) == "cpu"
    assert label("cpu", "windows-x86_64", Version("2.13.0")) == "cpu"
    assert label("cu121", "linux-x86_64", Version("2.5.1")) == "cu121"


def _mac_doc(machine: str, torch: str, **packages: str | None) -> dict:
    """A Mac's facts (no NVIDIA driver, no GPU listed), torch a CPU build of ``torch``."""
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Darwin", "machine": machine},
        "driver": {"found": False},
        "gpus": [],
        "python": {"version": "3.11.7", "in_venv": True},
        "packages": {"torch": torch, **packages},
        "torch": {"version": torch, "cuda": None},
    }


@pytest.mark.parametrize(("transformers", "moves"), [("4.40.0", True), ("4.50.0", False)])
def test_a_mac_with_a_transformers_that_refuses_without_cuda_moves_it(transformers, moves):
    """transformers up to 4.44.2 raise "No GPU found. A GPU is needed for quantization."
    whenever CUDA is unavailable, a Mac included (S100): there the CPU 4-bit floor applies; 4.45
    to 4.52 pass on a Mac (torch lists mps beside cpu), so they stay."""
    doc = _mac_doc("arm64", "2.5.1", bitsandbytes="0.49.1", transformers=transformers)
    _, plan = analyse(facts_from_dict(doc))
    steps = {s.package: s for s in plan.steps}
    assert ("transformers" in steps) is moves
    if moves:
        [floor] = [r for r in KB.hf if r.feature == "4bit-cpu" and r.package == "transformers"]
        assert SpecifierSet(steps["transformers"].to).contains(floor.minimum)


def test_an_intel_mac_is_not_told_that_macos_wheels_run_4bit():
    """bitsandbytes' macOS wheels are for Apple silicon only (plans/bitsandbytes.toml): on an
    Intel Mac the optional no-driver step promises no CPU 4-bit, and the required step of the
    platform finding says, once, that no release fits."""
    assert not any(
        (b := r.builds.get("macos-x86_64")) is not None and b.native for r in KB.bnb.releases
    )
    doc = _mac_doc("x86_64", "2.2.2", bitsandbytes="0.42.0")
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    assert m.text == "a Mac has no CUDA (no NVIDIA driver to install)" and not m.required
    # what is left is said once, in the required step of the platform finding
    [req] = [m for m in plan.manual if m.required]
    assert "fits macos-x86_64" in req.text
    # nor a CPU 4-bit floor for transformers that no bitsandbytes could serve here
    doc["packages"]["transformers"] = "4.40.0"
    diag, plan = analyse(facts_from_dict(doc))
    assert "hf-stack-too-old" not in diag.ids
    assert not any("transformers" in m.text for m in plan.manual)


def test_a_mac_whose_error_text_proves_a_refusing_transformers_gets_the_floor():
    """transformers' "`.to` is not supported for 4-bit or 8-bit bitsandbytes models" proves
    4.32.0 <= transformers < 4.45.0 (plans/signatures.toml): every release there refuses a
    4-bit load without CUDA, a Mac included (S100), so the CPU 4-bit floor applies."""
    from repair import pipeline

    doc = _mac_doc("arm64", "2.5.1", bitsandbytes="0.49.1", transformers=None)
    text = ".to is not supported for 4-bit or 8-bit bitsandbytes models"
    a = pipeline.analyse(facts_from_dict(doc), error_text=text, torch_index=INDEX)
    [floor] = [r for r in KB.hf if r.feature == "4bit-cpu" and r.package == "transformers"]
    [step] = [s for s in a.plan.steps if s.package == "transformers"]
    assert SpecifierSet(step.to).contains(floor.minimum)


def test_a_cuda_build_whose_arch_list_is_unknown_still_lacks_what_its_cuda_removed():
    """A3 (S1): CUDA 13.0 removed offline compilation for Maxwell, Pascal and Volta, so a cu13x
    build has no code for a GTX 1060 (6.1) even where plans/ holds no arch list for it."""
    from repair.planner import evaluate_variant
    from repair.view import make_view

    unknown = [
        (r, v)
        for r in KB.torch.releases
        for v in r.variants_for("linux-x86_64")
        if v.cuda is not None and v.cuda.major >= 13 and v.arch_for("linux-x86_64") is None
    ]
    assert unknown, "every CUDA 13 build has a known arch list: pick another test"
    rel, var = unknown[0]
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35"},
        "driver": {"found": True, "version": "580.65.06", "cuda": "13.0"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce GTX 1060", "compute_capability": "6.1"}],
        "python": {"version": "3.12.7", "in_venv": True},
        "packages": {},
    }
    choice, reasons = evaluate_variant(make_view(facts_from_dict(doc), KB), KB, rel, var)
    assert choice is None
    assert any("no code for sm_61: CUDA 13.0 removed it" in r for r in reasons)


def test_a_mac_loader_message_is_not_a_missing_cuda_library():
    """bitsandbytes' "compiled without GPU support" on a Mac (no NVIDIA driver or GPU): there is
    no CUDA version to lack a library for, so bnb-no-cuda-lib is ruled out, not reported."""
    from repair import pipeline

    doc = _mac_doc("arm64", "2.1.2", bitsandbytes=None)
    text = "The installed version of bitsandbytes was compiled without GPU support."
    a = pipeline.analyse(facts_from_dict(doc), error_text=text, torch_index=INDEX)
    assert "bnb-no-cuda-lib" not in a.diagnosis.ids
    assert "bnb-no-cuda-lib" in a.diagnosis.ruled_out


@pytest.mark.parametrize(
    ("machine", "said"), [("arm64", "on macos-arm64 from 0.49.0"), ("x86_64", None)]
)
def test_no_cpu_4bit_names_the_first_release_that_builds_here(machine, said):
    """bitsandbytes runs 4-bit on the CPU from 0.46.0, but its macOS wheels start at 0.49.0
    (plans/bitsandbytes.toml): the finding says so on Apple silicon, and on an Intel Mac, where
    no release builds, it leaves the point to bnb-platform-unsupported."""
    native = [
        r.version
        for r in KB.bnb.releases
        if r.cpu_4bit and (b := r.builds.get("macos-arm64")) is not None and b.native
    ]
    assert min(native) == Version("0.49.0")
    diag, _ = analyse(facts_from_dict(_mac_doc(machine, "2.1.2", bitsandbytes="0.42.0")))
    found = [f for f in diag.findings if f.id == "bnb-no-cpu-4bit"]
    assert "bnb-platform-unsupported" in diag.ids
    if said is None:
        assert not found
    else:
        [f] = found
        assert said in f.summary


def _with_error(error: str, **changes):
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    doc.update(changes)
    return facts_from_dict({"facts": doc, "error": error}, "test")


INSUFFICIENT = "RuntimeError: CUDA driver version is insufficient for CUDA runtime version"


def test_insufficient_driver_with_a_driver_that_runs_torchs_cuda_is_a_driver_not_reached():
    """Error 35 is also what a CUDA runtime gets with no driver at all (S97, S113): where the
    reported driver runs torch's CUDA, the failing process did not reach it (a container
    started without the GPU). No torch move, no driver upgrade: a required step."""
    torch = {"version": "2.5.1+cu124", "cuda": "12.4"}
    pkgs = {"torch": "2.5.1+cu124", "bitsandbytes": "0.45.0"}
    for driver in ("550.54.15", "535.104.05"):  # 12.4 itself, and 12.2 (minor-version compat)
        f = _with_error(
            INSUFFICIENT, driver={"found": True, "version": driver}, torch=torch, packages=pkgs
        )
        diag, plan = analyse(f)
        found = [x for x in diag.findings if x.evidence.get("driver_not_reached")]
        assert found and found[0].id == "cuda-init-failed", driver
        assert "driver-too-old" not in diag.ids and torch_step(plan) is None
        assert any(m.required and "--gpus all" in m.text for m in plan.manual)
    # a driver below CUDA 12's floor really is too old: no such finding
    f = _with_error(
        INSUFFICIENT, driver={"found": True, "version": "470.82.01"}, torch=torch, packages=pkgs
    )
    diag, _ = analyse(f)
    assert "driver-too-old" in diag.ids
    assert not any(x.evidence.get("driver_not_reached") for x in diag.findings)


def test_a_driver_not_reached_in_a_docker_container_says_how_to_start_it():
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    doc["host"] = {**doc["host"], "container": "docker"}
    doc.update(
        driver={"found": True, "version": "550.54.15"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.45.0"},
    )
    _, plan = analyse(facts_from_dict({"facts": doc, "error": INSUFFICIENT}, "test"))
    text = next(m.text for m in plan.manual if m.id == "cuda-init-failed")
    assert "docker container" in text and "NVIDIA Container Toolkit" in text


def test_torchs_own_cuda_start_in_the_text_proves_a_cuda_build():
    """c10/cuda's "CUDA initialization: ... Error 802" is printed only by a CUDA torch (S97):
    with torch.cuda.is_available() False and the build unreported, the fault is CUDA's start
    (fabric manager), never a CPU-only torch to replace."""
    error = (
        "UserWarning: CUDA initialization: Unexpected error from cudaGetDeviceCount(). Did you "
        "run some cuda functions before calling NumCudaDevices() that might have already set an "
        "error? Error 802: system not yet initialized (Triggered internally at "
        "/pytorch/c10/cuda/CUDAFunctions.cpp:109.)"
    )
    changes = {
        "driver": {"found": True, "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0"}],
        "packages": {"torch": None},
        "torch": {"cuda_available": False},
    }
    diag, plan = analyse(_with_error(error, **changes))
    assert "torch-cpu-build" not in diag.ids and "cuda-init-failed" in diag.ids
    assert torch_step(plan) is None
    assert any(m.required and "fabricmanager" in m.text for m in plan.manual)
    # without the text the build is open, and the CPU-only build stays the venv-side suspect
    diag, _ = analyse(_with_error("", **changes))
    assert "torch-cpu-build" in diag.ids


@pytest.mark.parametrize(
    ("text", "floor"),
    [
        (
            "ImportError: Using `bitsandbytes` 4-bit quantization requires bitsandbytes: "
            "`pip install -U bitsandbytes>=0.46.1`",
            "0.46.1",
        ),
        ("4 bit quantization requires bitsandbytes>=0.39.0 - please upgrade", "0.39.0"),
        ("To fix: pip install bitsandbytes>=0.37.0", "0.37.0"),
        # pip's index offering none is not a floor the installed release misses
        (
            "ERROR: Could not find a version that satisfies the requirement bitsandbytes>=0.43.3",
            None,
        ),
    ],
)
def test_a_floor_a_library_names_for_bitsandbytes_is_read(text, floor):
    from repair.signatures import implied_by

    assert implied_by(text).bnb_required == floor


def test_the_named_bitsandbytes_floor_is_planned_with_torch_kept():
    error = (
        "ImportError: Using `bitsandbytes` 4-bit quantization requires bitsandbytes: "
        "`pip install -U bitsandbytes>=0.46.1`"
    )
    f = _with_error(
        error,
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.46.0", "transformers": None},
        bitsandbytes={"version": "0.46.0"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("minimum") == "0.46.1"]
    assert found and found[0].id == "hf-stack-too-old"
    assert Version(plan.bnb_target) >= Version("0.46.1") and torch_step(plan) is None
    # the installed release already meets it: the check failed for another reason
    f = _with_error(
        error,
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.48.2"},
        bitsandbytes={"version": "0.48.2"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    diag, _ = analyse(f)
    assert not any(x.evidence.get("minimum") == "0.46.1" for x in diag.findings)


@pytest.mark.parametrize(
    "error",
    [
        "RuntimeError: The detected CUDA version (11.7) mismatches the version that was used to "
        "compilePyTorch (12.1). Please make sure to use the same CUDA versions.",
        "deepspeed.ops.op_builder.builder.CUDAMismatchException: >- DeepSpeed Op Builder: "
        "Installed CUDA version 11.7 does not match the version torch was compiled with 12.1, "
        "unable to compile cuda/cpp extensions without a matching cuda version.",
    ],
)
def test_an_extension_toolkit_of_another_major_moves_torch_to_that_major(error):
    """torch's extension builder and DeepSpeed's ops compile with CUDA_HOME's nvcc, whose major
    must be torch's (S120): torch moves to a build of the toolkit's major, or a toolkit of
    torch's major is the manual alternative."""
    f = _with_error(
        error,
        packages={"torch": "2.5.1+cu121", "bitsandbytes": "0.45.0"},
        torch={"version": "2.5.1+cu121", "cuda": "12.1"},
        driver={"found": True, "version": "550.54.15", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    assert [
        x.evidence.get("extension_build") for x in diag.findings if x.id == "stale-toolkit-on-path"
    ] == [True]
    assert torch_step(plan) is not None and chosen_cuda(plan).major == 11
    assert torch_step(plan).because == ("stale-toolkit-on-path",)
    assert any(not m.required and "CUDA_HOME" in m.text for m in plan.manual)


def test_a_minor_toolkit_difference_deepspeed_accepts_is_no_fault():
    f = _with_error(
        "Installed CUDA version 12.6 does not match the version torch was compiled with 12.4 but "
        "since the APIs are compatible, accepting this combination",
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.45.0"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    assert "stale-toolkit-on-path" not in diag.ids and torch_step(plan) is None


def test_a_report_stating_only_hip_null_leaves_the_cuda_build_open():
    """'hip: null' says "not ROCm", not "not CUDA": a torch 2.8.0 without a label on Linux is
    PyPI's CUDA build, never read as CPU-only for want of torch.version.cuda."""
    from repair.view import make_view

    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    doc.update(packages={"torch": "2.8.0"}, torch={"version": "2.8.0", "hip": None})
    view = make_view(facts_from_dict(doc, "test"), KB)
    assert view.torch_cpu_build is False and view.torch_cuda is not None
    doc.update(torch={"version": "2.8.0", "hip": None, "cuda": None})
    assert make_view(facts_from_dict(doc, "test"), KB).torch_cpu_build is True


def test_a_pre_release_torch_is_below_the_release_it_precedes_as_pip_reads_it():
    """NGC's torch 2.2.0a0+81ea7a4 is below bitsandbytes 0.46's ">=2.2", and pip refuses the pair:
    no bitsandbytes whose torch bounds exclude it is planned beside it."""
    rel = KB.bnb.release("0.47.0")
    assert rel.admits_torch(Version("2.2.0")) and not rel.admits_torch(Version("2.2.0a0"))
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    doc.update(
        host={"system": "Linux", "machine": "aarch64"},
        gpus=[{"index": 0, "name": "NVIDIA GB10", "compute_capability": "12.1"}],
        packages={"torch": "2.2.0a0+81ea7a4", "bitsandbytes": "0.42.0"},
        torch={"version": "2.2.0a0+81ea7a4", "cuda": "12.3"},
        bitsandbytes={"version": "0.42.0"},
    )
    _, plan = analyse(facts_from_dict(doc, "test"))
    # driver 535 runs no torch build with GB10's code (cu130 on aarch64): nothing to pair with
    assert plan.bnb_target is None and torch_step(plan) is None
    text = next(m.text for m in plan.manual if m.required)
    assert "pre-release" in text and "need torch >=2.2" in text
    # with a driver for CUDA 13 torch moves, and the bitsandbytes planned accepts it
    doc["driver"] = {"found": True, "version": "580.95.05", "cuda": "13.0"}
    _, plan = analyse(facts_from_dict(doc, "test"))
    assert torch_step(plan) is not None
    assert KB.bnb.release(plan.bnb_target).admits_torch(Version(torch_step(plan).to))


FBGEMM = (
    r"OSError: [WinError 126] The specified module could not be found. Error loading "
    r'"C:\env\Lib\site-packages\torch\lib\{dll}" or one of its dependencies.'
)


def _windows_torch(version: str, error: str = "", probe_error: str | None = None):
    torch = {"version": version, "cuda": "12.1"}
    if probe_error:
        torch["error"] = probe_error
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Windows", "machine": "AMD64"},
        "driver": {"found": True, "version": "551.61", "cuda": "12.4"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}],
        "packages": {"torch": version, "bitsandbytes": "0.45.5"},
        "bitsandbytes": {"version": "0.45.5"},
        "torch": torch,
    }
    return facts_from_dict({"facts": doc, "error": error}, "test")


def test_torch_240s_windows_fbgemm_fault_moves_torch_to_the_fixed_release():
    """torch 2.4.0's Windows fbgemm.dll lacks libomp140 (S121, fixed in 2.4.1): the same build of
    2.4.1 is the step, and the Visual C++ runtime (which does not bring it) is not asked."""
    for facts in (
        _windows_torch("2.4.0+cu121", error=FBGEMM.format(dll="fbgemm.dll")),
        _windows_torch("2.4.0+cu121", probe_error=FBGEMM.format(dll="fbgemm.dll")),
    ):
        diag, plan = analyse(facts)
        found = [x for x in diag.findings if x.id == "torch-dll-load-failed"]
        assert found and found[0].evidence["fixed_in"] == "2.4.1"
        assert torch_step(plan).to == "2.4.1+cu121"
        assert torch_step(plan).because == ("torch-dll-load-failed",)
        assert not any(m.required for m in plan.manual)


@pytest.mark.parametrize(
    ("version", "dll"), [("2.4.0+cu121", "c10.dll"), ("2.4.1+cu121", "fbgemm.dll")]
)
def test_other_dll_faults_keep_the_visual_cpp_step(version, dll):
    _, plan = analyse(_windows_torch(version, probe_error=FBGEMM.format(dll=dll)))
    assert torch_step(plan) is None
    assert any(m.required and "Visual C++" in m.text for m in plan.manual)


@pytest.mark.parametrize(
    ("version", "text", "moves"),
    [
        ("2.4.0+cu121", "error loading fbgemm.dll", True),  # retyped: still 2.4.0's fault (S121)
        ("2.4.1+cu121", 'Error loading "c10.dll" or one of its dependencies', False),
        (None, "error loading fbgemm.dll", False),  # torch's release unknown: the VC++ runtime
    ],
)
def test_a_torch_dll_named_as_reports_retype_it(version, text, moves):
    """Reports retype torch's loader message without the path or the WinError ("error loading
    fbgemm.dll"): a DLL of torch\\lib is named all the same (S98), so the class and, for a
    known-bad build, the release that fixed it follow."""
    facts = _windows_torch(version or "2.4.0+cu121", error=text)
    if version is None:
        doc = {"schema": "qfix.facts/1", "host": {"system": "Windows"}, "packages": {"torch": None}}
        facts = facts_from_dict({"facts": doc, "error": text}, "test")
    diag, plan = analyse(facts)
    assert "torch-dll-load-failed" in diag.ids
    assert (torch_step(plan) is not None) is moves
    assert any(m.required and "Visual C++" in m.text for m in plan.manual) is not moves
    assert "torch-dll-load-failed" not in explained_ids("Error loading mylib.dll")
    # a full path with another WinError (182: a DLL of another build found first) is not this
    assert "torch-dll-load-failed" not in explained_ids(
        "OSError: [WinError 182] The operating system cannot run %1. Error loading "
        '"D:\\env\\Lib\\site-packages\\torch\\lib\\fbgemm.dll" or one of its dependencies.'
    )


def test_a_known_bad_entry_must_be_fixed_by_a_later_release(tmp_path):
    import shutil

    from repair.knowledge import KnowledgeError

    plans = tmp_path / "plans"
    shutil.copytree(KB.directory, plans, ignore=shutil.ignore_patterns("examples", "__*"))
    text = (plans / "torch.toml").read_text().replace('fixed_in = "2.4.1"', 'fixed_in = "2.4.0"')
    (plans / "torch.toml").write_text(text)
    with pytest.raises(KnowledgeError, match="must be a later release"):
        load_knowledge(plans)


def test_error_35_with_bitsandbytes_own_cuda_above_the_driver_is_not_a_driver_not_reached():
    """bitsandbytes' legacy loader printed the CUDA library it loaded (121), which a CUDA 11.4
    driver cannot run: that runtime is in play too, so "not reached" is not said."""
    error = (
        "CUDA SETUP: Detected CUDA version 121\nCUDA SETUP: Loading binary /env/lib/python3.10/"
        "site-packages/bitsandbytes/libbitsandbytes_cuda121.so...\nCUDA driver version is "
        "insufficient for CUDA runtime version"
    )
    f = _with_error(
        error,
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
        packages={"torch": "1.12.1+cu113", "bitsandbytes": "0.38.1"},
        torch={"version": "1.12.1+cu113", "cuda": "11.3"},
        bitsandbytes={"version": "0.38.1"},
    )
    diag, _ = analyse(f)
    assert not any(x.evidence.get("driver_not_reached") for x in diag.findings)


def test_an_older_deepspeeds_minor_difference_is_no_major_mismatch():
    error = (
        "Exception: Installed CUDA version 11.3 does not match the version torch was compiled "
        "with 11.1, unable to compile cuda/cpp extensions without a matching cuda version."
    )
    doc = {"schema": "qfix.facts/1", "host": {"system": "Linux", "machine": "x86_64"}}
    diag, plan = analyse(
        facts_from_dict({"facts": {**doc, "packages": {"torch": None}}, "error": error}, "t")
    )
    assert "stale-toolkit-on-path" not in diag.ids and torch_step(plan) is None
    # the text's own torch CUDA tells a major difference where the facts do not give it
    error = error.replace("with 11.1", "with 12.1")
    diag, plan = analyse(
        facts_from_dict({"facts": {**doc, "packages": {"torch": None}}, "error": error}, "t")
    )
    assert "stale-toolkit-on-path" in diag.ids and chosen_cuda(plan).major == 11
    # ... and the alternative names it: a toolkit of torch's 12.x
    assert any("compile with a CUDA 12.x toolkit" in m.text for m in plan.manual)


def test_a_users_own_pip_command_is_no_floor_a_library_names():
    from repair.signatures import implied_by

    text = (
        "$ pip install -U bitsandbytes>=0.46.1\nERROR: Could not find a version that satisfies "
        "the requirement bitsandbytes>=0.46.1 (from versions: 0.45.5)"
    )
    assert implied_by(text).bnb_required is None


def test_a_known_bad_torch_beside_a_bitsandbytes_that_must_change_moves_both():
    from repair.facts import facts_to_dict

    d = facts_to_dict(_windows_torch("2.4.0+cu121"))
    d["packages"]["bitsandbytes"] = "0.41.1"
    d["bitsandbytes"] = {"version": "0.41.1"}
    diag, plan = analyse(
        facts_from_dict({"facts": d, "error": FBGEMM.format(dll="fbgemm.dll")}, "t")
    )
    assert torch_step(plan).to == "2.4.1+cu121"
    bnb = next(s for s in plan.steps if s.package == "bitsandbytes")
    assert KB.bnb.release(bnb.to).admits_torch(Version("2.4.1"))


def test_no_plan_moves_torch_back_to_a_known_bad_build():
    """A driver that cannot run the installed cu121: the candidates of the 2.4 series are lifted
    to 2.4.1 (never 2.4.0 again), and the Visual C++ step, which does not bring the missing DLL,
    is not asked."""
    from repair.facts import facts_to_dict

    d = facts_to_dict(_windows_torch("2.4.0+cu121"))
    d["driver"] = {"found": True, "version": "522.06", "cuda": "11.8"}
    d["packages"].update(torchvision="0.19.0", torchaudio="2.4.0")
    _, plan = analyse(facts_from_dict({"facts": d, "error": FBGEMM.format(dll="fbgemm.dll")}, "t"))
    assert torch_step(plan) is not None and not torch_step(plan).to.startswith("2.4.0")
    assert not any("Visual C++" in m.text for m in plan.manual)


def test_an_unlabelled_known_bad_torch_keeps_its_cuda_build():
    from repair.facts import facts_to_dict

    d = facts_to_dict(_windows_torch("2.4.0"))
    d["torch"]["cuda"] = "12.1"
    _, plan = analyse(facts_from_dict({"facts": d, "error": FBGEMM.format(dll="fbgemm.dll")}, "t"))
    assert torch_step(plan).to == "2.4.1+cu121"


def test_a_torch_that_imported_is_no_known_bad_import_failure():
    from repair.facts import facts_to_dict

    d = facts_to_dict(_windows_torch("2.4.0+cu121"))
    d["torch"]["cuda_available"] = True
    diag, plan = analyse(
        facts_from_dict({"facts": d, "error": FBGEMM.format(dll="fbgemm.dll")}, "t")
    )
    assert not any(x.evidence.get("known_bad") for x in diag.findings)


def test_the_visual_cpp_step_stays_where_torch_said_the_runtime_is_missing():
    error = (
        "Microsoft Visual C++ Redistributable is not installed, this may lead to the DLL load "
        "failure.\n" + FBGEMM.format(dll="fbgemm.dll")
    )
    _, plan = analyse(_windows_torch("2.4.0+cu121", error=error))
    assert torch_step(plan).to == "2.4.1+cu121"
    assert any(m.required and "Visual C++" in m.text for m in plan.manual)


def test_error_35_beside_a_cpu_torch_and_ctranslate2_is_a_driver_not_reached():
    f = _with_error(
        "RuntimeError: CUDA failed with error CUDA driver version is insufficient for CUDA "
        "runtime version",
        driver={"found": True, "version": "550.54.15", "cuda": "12.4"},
        packages={"torch": "2.5.1+cpu", "ctranslate2": "4.4.0"},
        torch={"version": "2.5.1+cpu", "cuda": None, "cuda_available": False},
    )
    diag, _ = analyse(f)
    assert any(x.evidence.get("driver_not_reached") for x in diag.findings)


def _amd_unknown_torch_doc(**torch: object) -> dict:
    """An AMD RX 6800 XT (gfx1030) venv whose torch and torchvision are listed without versions
    and without a build: what a report of "Torch is not able to use GPU" gives."""
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "gpus": [{"index": 0, "name": "AMD Radeon RX 6800 XT"}],
        "python": {"version": "3.10.6", "in_venv": True},
        "packages": {"torch": None, "torchvision": None},
        "torch": dict(torch),
    }


WEBUI_CUDA_TEST = (
    "RuntimeError: Torch is not able to use GPU; add --skip-torch-cuda-test to "
    "COMMANDLINE_ARGS variable to disable this check"
)


@pytest.mark.parametrize("by_text", [False, True])
def test_an_unreported_torch_that_cannot_use_an_amd_gpu_is_suspected_not_rocm_and_moves(by_text):
    """torch's build unreported and torch.cuda.is_available() False on an AMD host (the facts,
    or the web UI launcher's own check, S122): a torch that is not a ROCm build (PyPI's never
    is) is the suspected cause; the plan moves torch, and torchvision with it (its version
    unknown: it was built for the torch that leaves), to a ROCm build compiled for gfx1030."""
    doc: dict = _amd_unknown_torch_doc(**({} if by_text else {"cuda_available": False}))
    if by_text:
        doc = {"facts": doc, "error": WEBUI_CUDA_TEST}  # a ticket: its facts and its error
    diag, plan = analyse(facts_from_dict(doc))
    [f] = [f for f in diag.findings if f.id == "rocm-host"]
    assert f.evidence.get("suspected") is True and "likeliest" in f.summary
    steps = {s.package: s for s in plan.steps}
    torch, vision = steps["torch"], steps["torchvision"]
    assert torch.from_ == "unknown" and "+rocm" in torch.to and torch.because == ("rocm-host",)
    rel = KB.torch.release(Version(torch.to))
    assert rel is not None
    [var] = [v for v in rel.variants_for("linux-x86_64") if v.name == Version(torch.to).local]
    assert var.gfx and "gfx1030" in var.gfx
    assert vision.from_ == "unknown" and vision.index_url == torch.index_url
    assert Version(vision.to).local == Version(torch.to).local


@pytest.mark.parametrize(
    "torch",
    [
        {"cuda_available": True},  # it works: nothing to suspect
        {"cuda_available": False, "hip": "6.2.41133"},  # a ROCm build that does not see the GPU
        {},  # nothing said of its state
    ],
)
def test_no_not_rocm_suspicion_where_torch_works_is_rocm_or_its_state_is_unknown(torch):
    diag, plan = analyse(facts_from_dict(_amd_unknown_torch_doc(**torch)))
    assert not any(f.evidence.get("suspected") for f in diag.findings)
    assert not any(s.package == "torch" for s in plan.steps)


def test_a_stated_null_hip_is_not_a_rocm_build_and_moves_to_one():
    """A report that gives torch.version.hip as null (and nothing else of the build) proves a
    torch that is not ROCm: an error, not a suspicion, and the same move."""
    doc = _amd_unknown_torch_doc(hip=None)
    diag, plan = analyse(facts_from_dict(doc))
    [f] = [f for f in diag.findings if f.id == "rocm-host"]
    assert f.severity.value == "error" and not f.evidence.get("suspected")
    assert "torch.version.hip is None" in f.summary
    assert any(s.package == "torch" and "+rocm" in s.to for s in plan.steps)


def test_a_torch_move_takes_an_unversioned_torchaudio_along_on_an_nvidia_host():
    """The lockstep rule for a torchvision/torchaudio listed without a version holds for CUDA
    moves too: a CPU torch on an RTX 4090 moves to a CUDA build, torchaudio to its pair."""
    doc = copy.deepcopy(example_doc("cpu-torch-on-gpu.json")["facts"])
    del doc["packages_source"]  # a report's list, not a probe's
    doc["packages"]["torchaudio"] = None
    _, plan = analyse(facts_from_dict(doc))
    steps = {s.package: s for s in plan.steps}
    torch, audio = steps["torch"], steps["torchaudio"]
    rel = KB.torch.release(Version(torch.to))
    fam = rel.family_for(Version(Version(torch.to).public))
    assert audio.from_ == "unknown" and Version(audio.to).public == str(fam.torchaudio)
    assert Version(audio.to).local == Version(torch.to).local


def _gpu_without_driver_doc(**extra) -> dict:
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "os_release": "Ubuntu 22.04"},
        "driver": {"found": False, "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA A10"}],
        "packages": {"torch": "2.1.2+cu121"},
        "torch": {"version": "2.1.2+cu121", "cuda": "12.1"},
    }
    doc.update(extra)
    return doc


def test_a_named_nvidia_gpu_with_no_driver_loaded_is_no_nvidia_driver_with_a_required_step():
    """A report that names the GPU and says no driver is loaded (a fresh VM: `nvidia-smi` not
    found): the driver is the fault, an error with a required step naming the GPU and the
    driver torch's CUDA needs (plans/drivers.toml), not "cannot tell"."""
    diag, plan = analyse(facts_from_dict(_gpu_without_driver_doc()))
    [f] = [f for f in diag.findings if f.id == "no-nvidia-driver"]
    assert f.severity.value == "error" and "NVIDIA A10" in f.summary
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    need = KB.drivers.toolkit_min(Version("12.1"), "Linux")
    assert m.required and "NVIDIA A10" in m.text and f">= {need}" in m.text
    assert not plan.steps
    # the missing driver is the finding: its version is not listed again as a missing fact
    assert not any(u.startswith("driver version") for u in plan.unknown)


def test_an_amd_gpu_with_no_nvidia_driver_is_not_told_to_install_one():
    """A ROCm torch beside a named AMD GPU reports no NVIDIA driver, rightly: the named-GPU
    rule reads NVIDIA GPUs only (View.gpus), so no "install NVIDIA's driver" finding or step."""
    doc = _gpu_without_driver_doc(
        gpus=[{"index": 0, "name": "AMD Radeon RX 7900 XTX"}],
        packages={"torch": "2.4.0+rocm6.1"},
        torch={"version": "2.4.0+rocm6.1", "hip": "6.1"},
    )
    diag, plan = analyse(facts_from_dict(doc))
    assert "rocm-host" in diag.ids
    assert not any(f.evidence.get("gpu_without_driver") for f in diag.findings)
    assert not any("install NVIDIA's driver" in m.text for m in plan.manual)


def test_a_named_gpu_without_a_driver_in_wsl_gets_the_windows_driver_advice():
    doc = _gpu_without_driver_doc()
    doc["host"] = {**doc["host"], "wsl": True}
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    assert "Windows" in m.text


@pytest.mark.parametrize(
    ("extra", "suspected"),
    [
        ({"toolkit": {"nvcc": "12.2"}}, True),  # a CUDA toolkit: the GPU was meant to be used
        ({}, False),  # nothing says the machine has or wants an NVIDIA GPU
    ],
)
def test_an_unreported_windows_torch_without_cuda_beside_a_toolkit_is_suspected_cpu(
    extra, suspected
):
    """Windows, torch of unreported version and build, torch.cuda.is_available() False, and the
    facts silent on the GPU: beside an installed CUDA toolkit, pip's default CPU-only torch is
    the suspected cause and the plan moves torch to a CUDA build; without one, qfix does not
    guess that the machine has an NVIDIA GPU."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Windows"},
        "python": {"version": "3.10"},
        "packages": {"torch": None},
        "torch": {"cuda_available": False},
        **extra,
    }
    diag, plan = analyse(facts_from_dict(doc))
    found = [f for f in diag.findings if f.id == "torch-cpu-build"]
    assert bool(found) is suspected
    if suspected:
        assert found[0].evidence.get("suspected") is True
        assert any(s.package == "torch" and "+cu" in s.to for s in plan.steps)


PIP_CONFLICT = (
    "ERROR: pip's dependency resolver does not currently take into account all the packages "
    "that are installed. This behaviour is the source of the following dependency conflicts.\n"
    "lerobot 0.1.0 requires torch<2.7,>=2.2.1, but you have torch 2.8.0.dev20250515+cu128 "
    "which is incompatible.\n"
    "torchvision 0.21.0 requires torch==2.6.0, but you have torch 2.8.0 which is incompatible."
)


def _rtx5070ti_doc(**extra) -> dict:
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.39"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 5070 Ti", "compute_capability": "12.0"}],
        "python": {"version": "3.10.16"},
        "packages": {"lerobot": "0.1.0", "torch": "2.8.0.dev20250515+cu128"},
        "torch": {"version": "2.8.0.dev20250515+cu128", "cuda": "12.8", "cuda_available": True},
    }
    doc.update(extra)
    return doc


def test_pips_conflict_line_gives_a_dependents_torch_pin_that_excludes_the_gpu():
    """pip's resolver names a distribution's requirement on torch (pip's install.py
    _warn_about_conflicts); no torch below 2.7 has code for sm_120, so lerobot's pin is a
    project-pin-conflict with a required step to move it. torch's own family is not read as a
    dependent (torch-family-mismatch's)."""
    from repair.signatures import torch_pins_in_text

    assert torch_pins_in_text(PIP_CONFLICT) == {"lerobot": "torch<2.7,>=2.2.1"}
    diag, plan = analyse(facts_from_dict({"facts": _rtx5070ti_doc(), "error": PIP_CONFLICT}))
    [f] = [f for f in diag.findings if f.id == "project-pin-conflict"]
    assert f.evidence["package"] == "lerobot" and "sm_120" in f.summary
    [m] = [m for m in plan.manual if m.id == "project-pin-conflict"]
    assert m.required and "move lerobot" in m.text
    assert any("read from pip's message" in u for u in plan.unknown)


def test_a_dependent_pin_that_allows_a_build_for_the_gpu_is_no_conflict():
    text = PIP_CONFLICT.replace("torch<2.7,>=2.2.1", "torch<2.9,>=2.2.1")
    diag, _ = analyse(facts_from_dict({"facts": _rtx5070ti_doc(), "error": text}))
    assert "project-pin-conflict" not in diag.ids


def test_a_probed_dependent_list_wins_over_the_text():
    """The facts' own torch_dependents (a probe reads every Requires-Dist) win where both name
    a distribution: the text's older line is not a pin any more."""
    doc = _rtx5070ti_doc(torch_dependents={"lerobot": "torch>=2.2.1"})
    diag, _ = analyse(facts_from_dict({"facts": doc, "error": PIP_CONFLICT}))
    assert "project-pin-conflict" not in diag.ids


def _thor_doc(arch: list[str] | None) -> dict:
    torch: dict = {"version": "2.9.1+cu128", "cuda": "12.8"}
    if arch is not None:
        torch["arch_list"] = arch
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "aarch64", "os_release": "L4T R38.4 (JetPack 7)"},
        "driver": {"found": True, "cuda": "13.0", "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA Jetson Thor", "compute_capability": "11.0"}],
        "packages": {"torch": "2.9.1+cu128"},
        "torch": torch,
    }


def test_jetson_thor_moves_to_pytorchs_aarch64_build_that_carries_sm_110():
    """Thor's sm_110 is in PyTorch's own linux-aarch64 CUDA 13 builds (measured, plans/torch.toml):
    a torch whose reported arch list lacks it is gpu-arch-unsupported on this Jetson too, and
    torch moves to such a build; bitsandbytes stays a source build (the manual step)."""
    diag, plan = analyse(facts_from_dict(_thor_doc(["sm_80", "sm_90", "sm_100", "sm_120"])))
    assert {"gpu-arch-unsupported", "jetson-l4t"} <= set(diag.ids)
    [torch] = [s for s in plan.steps if s.package == "torch"]
    rel = KB.torch.release(Version(torch.to))
    var = rel.variant(Version(torch.to).local)
    assert "sm_110" in (var.arch_for("linux-aarch64") or ())
    [m] = [m for m in plan.manual if m.id == "jetson-l4t"]
    assert "take torch from the plan" in m.text and "-DCOMPUTE_CAPABILITY=110" in m.text
    # the note cites where the arch list comes from in words, not plans/torch.toml's raw legend
    [note] = [n for n in plan.notes if n.startswith("Jetson with sm_110")]
    assert "(plans/torch.toml, measured in the wheel)" in note and "M (" not in note


def test_jetson_orin_keeps_nvidias_build_and_thor_with_sm_110_is_left_alone():
    """Orin's sm_87 is in no index build: NVIDIA's Jetson build stays the only way. A Thor torch
    that has sm_110 needs no move."""
    orin = _thor_doc(["sm_80", "sm_90"])
    orin["gpus"] = [{"index": 0, "name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"}]
    _, plan = analyse(facts_from_dict(orin))
    assert not any(s.package == "torch" for s in plan.steps)
    assert any("keep NVIDIA's Jetson build" in m.text for m in plan.manual)
    fine = _thor_doc(["sm_80", "sm_90", "sm_100", "sm_110", "sm_120"])
    diag, plan = analyse(facts_from_dict(fine))
    assert "gpu-arch-unsupported" not in diag.ids
    assert not any(s.package == "torch" for s in plan.steps)


@pytest.mark.parametrize(("cuda", "lacks"), [("12.6", True), ("12.8", False)])
def test_a_torch_of_unknown_release_but_known_cuda_is_judged_by_every_build_of_that_cuda(
    cuda, lacks
):
    """Issue 12 item 1, a range: torch's version unreported, its CUDA 12.6 known. No cu126 build
    of any release has sm_120, so the RTX 50's arch is missing whichever it is, and torch moves
    to a build that has it; every cu128 build has it, so nothing is claimed there."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "590.48.01", "cuda": "13.1", "source": "report"},
        "gpus": [{"index": 0, "compute_capability": "12.0"}],
        "packages": {"torch": None},
        "torch": {"version": None, "cuda": cuda},
    }
    diag, plan = analyse(facts_from_dict(doc))
    found = [f for f in diag.findings if f.id == "gpu-arch-unsupported"]
    assert bool(found) is lacks
    if lacks:
        assert f"CUDA {cuda}" in found[0].summary and "not reported" in found[0].summary
        [torch] = [s for s in plan.steps if s.package == "torch"]
        rel = KB.torch.release(Version(torch.to))
        arch = rel.variant(Version(torch.to).local).arch_for("linux-x86_64")
        assert arch_coverage(arch, Version("12.0")) == "sass"


@pytest.mark.parametrize(
    "text",
    [
        "RuntimeError: No HIP GPUs are available",
        "RuntimeError: HIP error: no ROCm-capable device is detected",
    ],
)
def test_a_rocm_torchs_own_no_device_error_is_no_not_rocm_suspicion(text):
    """S129: only a HIP build of torch prints these: torch is ROCm, so nothing suspects it is
    not and no torch step is planned; the step is the GPU's device access."""
    doc = {"facts": _amd_unknown_torch_doc(cuda_available=False), "error": text}
    diag, plan = analyse(facts_from_dict(doc))
    assert not any(f.evidence.get("suspected") for f in diag.findings)
    assert not any(s.package == "torch" for s in plan.steps)
    assert any(m.required and "/dev/kfd" in m.text for m in plan.manual)


@pytest.mark.parametrize(
    "change",
    [
        {"host": {"system": "Linux", "machine": "x86_64", "container": "docker"}},  # its image's
        {"host": {"system": "Linux", "machine": "x86_64", "wsl": True}},  # AMD's own wheels
        {"host": {"system": "Darwin", "machine": "x86_64"}},  # no torch is ROCm on a Mac
        {"gpus": [{"index": 0, "name": "AMD Radeon Graphics"}]},  # an iGPU: targets unknown
        {"torch": {"cuda_available": False, "arch_list": ["gfx1030"]}},  # a build that read
        {"torch": {"cuda_available": False, "error": "ImportError: libamdhip64.so.6"}},
    ],
)
def test_no_not_rocm_suspicion_where_the_facts_explain_the_torch_otherwise(change):
    doc = {**_amd_unknown_torch_doc(cuda_available=False), **change}
    diag, plan = analyse(facts_from_dict(doc))
    assert not any(f.evidence.get("suspected") for f in diag.findings), change
    assert not any(s.package == "torch" and "+rocm" in (s.to or "") for s in plan.steps)


def test_a_linux_aarch64_toolkit_without_a_gpu_is_no_cpu_torch_suspicion():
    """A CUDA toolkit and a False cuda_available with the GPU unreported suggest pip's CPU torch
    on Windows only: on Linux aarch64 it is as likely a Jetson (JetPack brings the toolkit)."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "aarch64"},
        "packages": {"torch": None},
        "torch": {"cuda_available": False},
        "toolkit": {"nvcc": "11.4"},
    }
    diag, plan = analyse(facts_from_dict(doc))
    assert "torch-cpu-build" not in diag.ids
    assert not any(s.package == "torch" for s in plan.steps)


def test_a_named_gpu_beside_a_driver_library_mismatch_is_no_missing_driver():
    """NVML's "Driver/library version mismatch" says a driver is installed (a reboot or a module
    reload fixes it): not "install NVIDIA's driver"."""
    doc = _gpu_without_driver_doc()
    doc["driver"] = {
        "found": False,
        "error": "Failed to initialize NVML: Driver/library version mismatch",
        "source": "report",
    }
    _, plan = analyse(facts_from_dict(doc))
    assert not any("install NVIDIA's driver" in m.text for m in plan.manual)


def test_a_named_gpu_without_a_driver_in_a_container_gets_the_container_advice():
    doc = _gpu_without_driver_doc()
    doc["host"] = {**doc["host"], "container": "docker"}
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    assert "install NVIDIA's driver for" not in m.text and "container" in m.text.lower()


def test_a_named_gpus_driver_floor_is_said_only_where_torch_stays():
    """The floor for torch's CUDA is said where torch stays; where the plan moves torch (an RTX
    5090 with a cu121 torch), the build it installs decides, not the one it replaces."""
    doc = _gpu_without_driver_doc()
    doc["gpus"] = [{"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}]
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    assert "the plan installs" in m.text and ">=" not in m.text


@pytest.mark.parametrize(
    ("torch", "pin"),
    [
        ("2.8.0.dev20250515+cu128", "torch==2.8.0.dev20250515"),  # a nightly pinned as it is
        ("2.16.0+cu130", "torch==2.16.0"),  # a release past plans/: its builds are not known
        ("2.9.0+cu128", "torch==2.9.0"),  # the installed torch has sm_120 and meets the pin
        ("2.5.1+cu124", "torch===2.5.1"),  # "===" still names the 2.5.1 builds, none for sm_120
    ],
)
def test_a_dependent_pin_is_a_conflict_only_where_its_range_is_known_and_it_matters(torch, pin):
    """The dependent-pin rule stays silent on a healthy machine: a pin the installed torch
    meets while it runs on the GPU, or a pin whose builds the knowledge base does not list. A
    "===" pin is matched against the builds it names."""
    doc = _rtx5070ti_doc(
        packages={"vllm": "0.0.0", "torch": torch},
        torch={"version": torch, "cuda": "12.8"},
        torch_dependents={"vllm": pin},
    )
    diag, _ = analyse(facts_from_dict(doc))
    conflict = "project-pin-conflict" in diag.ids
    assert conflict is (pin == "torch===2.5.1"), diag.ids


def test_an_orin_whose_torch_lacks_its_arch_keeps_nvidias_build():
    """Orin's sm_87 is named in no PyTorch aarch64 build (sm_80 SASS there says nothing of a
    JetPack board): no torch move, NVIDIA's Jetson build is the way."""
    orin = _thor_doc(["sm_53", "sm_62", "sm_72"])
    orin["gpus"] = [{"index": 0, "name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"}]
    diag, plan = analyse(facts_from_dict(orin))
    assert "gpu-arch-unsupported" in diag.ids
    assert not any(s.package == "torch" for s in plan.steps)
    assert any("keep NVIDIA's Jetson build" in m.text for m in plan.manual)


def test_an_unknown_torch_of_a_known_cuda_in_a_conda_env_is_not_judged_by_pypis_builds():
    """conda-forge's builds have arch lists of their own: in a conda env a torch of unknown
    release is not judged by the PyTorch index's builds of its CUDA."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce GTX 1080", "compute_capability": "6.1"}],
        "python": {"version": "3.11", "conda": True},
        "packages": {"torch": None},
        "torch": {"version": None, "cuda": "12.8"},
    }
    diag, _ = analyse(facts_from_dict(doc))
    assert not any(
        f.id == "gpu-arch-unsupported" and "any torch build" in f.summary for f in diag.findings
    )
    doc["python"]["conda"] = False
    diag, _ = analyse(facts_from_dict(doc))
    assert any("any torch build of CUDA 12.8" in f.summary for f in diag.findings)


def _family_doc(system: str, torch: str, vision: str, **extra) -> dict:
    machine = {"Windows": "AMD64", "Linux": "x86_64"}[system]
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": system, "machine": machine},
        "python": {"version": "3.10.11", "in_venv": True, "conda": False},
        "packages": {"torch": torch, "torchvision": vision},
        "torch": {"version": torch, "cuda": "12.1" if "cu121" in torch else "11.8"},
        "driver": {"found": True, "version": "555.85", "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6"}],
    }
    doc.update(extra)
    return doc


@pytest.mark.parametrize(
    ("system", "torch", "vision", "extra", "mismatch"),
    [
        # Windows' PyPI torchvision is CPU-only: beside a CUDA torch its CUDA ops are missing
        ("Windows", "2.4.0+cu121", "0.19.0", {}, True),
        # Linux x86_64's PyPI torchvision 0.19.0 is the cu121 build: it pairs with +cu121...
        ("Linux", "2.4.0+cu121", "0.19.0", {}, False),
        # ... and not with a CUDA 11 torch (torchvision compares CUDA majors, S117)
        ("Linux", "2.4.0+cu118", "0.19.0", {}, True),
        # a conda env's packages carry no label whatever their build: nothing is known
        ("Windows", "2.4.0+cu121", "0.19.0", {"python": {"version": "3.10", "conda": True}}, False),
        # both labelled: the labels decide, as before
        ("Windows", "2.4.0+cu121", "0.19.0+cu121", {}, False),
        # an unlabelled torch whose reported CUDA is not PyPI's build (conda, a distribution):
        # where its companions came from is not known either
        ("Linux", "2.4.0", "0.19.0+cu118", {"build": {"version": "2.4.0", "cuda": "11.8"}}, False),
        (
            "Windows",
            "2.4.0",
            "0.19.0+cu121",
            {"build": {"version": "2.4.0", "cuda": "12.1"}},
            False,
        ),
    ],
)
def test_an_unlabelled_companion_is_the_build_pypi_ships_for_the_platform(
    system, torch, vision, extra, mismatch
):
    """A torchvision without a local label came from PyPI (plans/torch.toml pypi_default):
    CPU-only on Windows, so `pip install torchvision` beside a CUDA torch is a mismatch (S130),
    repaired by the same release of torch's own variant from torch's index; on Linux its CUDA
    major decides. Not where the platform or a conda env leaves the build unknown."""
    extra = dict(extra)
    build = extra.pop("build", None)
    doc = _family_doc(system, torch, vision, **extra)
    if build is not None:
        doc["torch"] = build
    diag, plan = analyse(facts_from_dict(doc))
    assert ("torch-family-mismatch" in diag.ids) is mismatch
    if not mismatch:
        assert not plan.steps
    steps = [s for s in plan.steps if s.package == "torchvision"]
    if mismatch:
        label = Version(torch).local
        [step] = steps
        assert step.to == f"{vision}+{label}" and step.index_url.endswith(f"/{label}")
        assert not any(s.package == "torch" for s in plan.steps)
    else:
        assert not steps


@pytest.mark.parametrize(
    ("system", "torch", "audio", "mismatch"),
    [
        # a CPU-only torchaudio beside a CUDA torch: its check compares CUDA only where it has
        # one (S133), and it runs
        ("Windows", "2.4.0+cu121", "2.4.0", False),
        # Linux's PyPI torchaudio 2.4.0 is CUDA 12.1: beside a +cu124 torch its check refuses
        # another major.minor (S133), where torchvision's would not
        ("Linux", "2.4.0+cu124", "2.4.0", True),
        ("Linux", "2.4.0+cu121", "2.4.0", False),
    ],
)
def test_torchaudio_pairs_as_its_own_cuda_check_demands(system, torch, audio, mismatch):
    doc = _family_doc(system, torch, "0.19.0" if system == "Linux" else "0.19.0+cu121")
    doc["packages"] = {"torch": torch, "torchaudio": audio}
    doc["torch"]["cuda"] = "12.4" if "cu124" in torch else "12.1"
    diag, _ = analyse(facts_from_dict(doc))
    assert ("torch-family-mismatch" in diag.ids) is mismatch


def test_beside_a_torch_that_stays_only_the_mismatched_companion_moves() -> None:
    """Windows: a CPU-only torchvision beside a CUDA torch moves to torch's variant; the CPU-only
    torchaudio beside it pairs (S133) and stays: no step without a finding behind it."""
    doc = _family_doc("Windows", "2.4.0+cu121", "0.19.0")
    doc["packages"]["torchaudio"] = "2.4.0"
    diag, plan = analyse(facts_from_dict(doc))
    assert "torch-family-mismatch" in diag.ids
    assert [s.package for s in plan.steps] == ["torchvision"]
    assert all(s.because for s in plan.steps)


@pytest.mark.parametrize(
    ("torch", "available", "replace"),
    [
        ("2.1.0+cu121", False, True),  # a PyTorch index build, seeing no GPU on an Orin
        ("2.1.0a0+41361538.nv23.06", False, False),  # NVIDIA's Jetson build: kept
        # no label and a CUDA version: NVIDIA's own Jetson wheels look like this too (JetPack
        # 4's 1.10.0, the jetson-ai-lab builds), so it is kept
        ("2.1.0", False, False),
        ("2.1.0+cu121", None, False),  # nothing says it fails
    ],
)
def test_a_jetson_torch_that_is_not_nvidias_build_and_sees_no_gpu_is_replaced(
    torch, available, replace
):
    """On an Orin (sm_87, in no index build) the manual step keeps NVIDIA's Jetson build of
    torch; a torch known not to be one (a PyTorch index's +cuXY label, or a CPU build) that saw
    no GPU is no build for the board, and the step says to replace it by NVIDIA's build."""
    doc = _thor_doc(None)
    doc["gpus"] = [{"index": 0, "name": "Jetson Orin Nano", "compute_capability": "8.7"}]
    doc["packages"] = {"torch": torch}
    doc["torch"] = {"version": torch, "cuda": "12.1"}
    if available is not None:
        doc["torch"]["cuda_available"] = available
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "jetson-l4t"]
    assert ("replace torch" in m.text) is replace
    assert ("keep NVIDIA's Jetson build" in m.text) is not replace
