"""Error texts as constraints on the facts (plans/signatures.toml, repair/signatures.py).

Each capability is tested on facts written here (not the red-team cases): the constraint a text
proves, and that the rules and the planner use it as they would a reported version.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from repair import pipeline
from repair.errors import KnowledgeError
from repair.facts import (
    Bitsandbytes,
    Driver,
    Facts,
    Gpu,
    Host,
    PythonInfo,
    TorchBuild,
    facts_from_dict,
)
from repair.knowledge import Range, load_knowledge
from repair.signatures import _parse, advice_for, implied_by, implied_facts, load_signatures
from repair.view import MODERN_BNB_LOADER, make_view
from tests.core_helpers import INDEX

KB = load_knowledge()


def _analyse(facts: Facts, text: str | None):
    return pipeline.analyse(facts, torch_index=INDEX, error_text=text)


def _step(plan, package):
    return next((s for s in plan.steps if s.package == package and s.to), None)


def test_every_signature_loads_with_sources():
    sigs = load_signatures()
    assert len({s.id for s in sigs}) == len(sigs) >= 10
    assert all(s.sources and s.checked for s in sigs)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"implies": {"colour": "red"}}, "unknown implication"),
        ({"implies": {"bitsandbytes": "not a range"}}, "not a version range"),
        ({"implies": {"system": "Plan9"}}, "system must be one of"),
        ({"implies": {"cuda_error": "804"}}, "must be a int"),
        ({"implies": {"libstdcxx": "{nope}"}}, "group 'nope'"),
        ({"pattern": "("}, "not a valid regex"),
    ],
)
def test_the_loader_refuses_bad_entries(entry, message):
    base = {"id": "x", "pattern": "x", "implies": {"rocm": True}, "sources": ["S23"]}
    base["checked"] = "2026-12-06"
    with pytest.raises(KnowledgeError, match=message):
        _parse({"signature": [{**base, **entry}]}, "plans/signatures.toml")


def test_loader_bounds_agree_with_the_knowledge_base():
    """The version bounds come from bitsandbytes' code at its tags; they must agree with the
    release table: the legacy loader ends where the modern one starts, and the last release
    that named .so files on Windows is the last one without a Windows native build."""
    assert implied_by("CUDA SETUP: Setup Failed!").range("bitsandbytes") == (
        f"<{MODERN_BNB_LOADER}"
    )
    win = implied_by(r"C:\py\bitsandbytes\libbitsandbytes_cuda118.so").range("bitsandbytes")
    first_windows = min(
        r.version
        for r in KB.bnb.releases
        if (b := r.builds.get("windows-x86_64")) is not None and b.native
    )
    assert str(win) == f"<{first_windows}"


def test_a_reported_fact_is_never_overridden():
    facts = Facts(host=Host("Linux", "x86_64"), packages={"transformers": "4.29.2"})
    out, lines = implied_facts(facts, "not a mach-o file")
    assert out.host.system == "Linux"  # the report says Linux: the message does not change it
    out, lines = implied_facts(facts, "unexpected keyword argument 'load_in_4bit'")
    assert out.extra["implied"]["ranges"] == {"transformers": "<4.30.0"}
    assert not lines  # transformers' version is reported: nothing was read from the message


def test_windows_so_path_proves_a_linux_only_wheel_and_plans_a_windows_release():
    facts = Facts(
        host=Host("Windows", "AMD64"),
        driver=Driver(True, "551.61", "12.4", "report"),
        gpus=(Gpu(0, "RTX 3060", "8.6"),),
        python=PythonInfo(version="3.10"),
        packages={"torch": "2.2.1+cu121", "bitsandbytes": None},
        torch=TorchBuild("2.2.1+cu121", "12.1"),
    )
    text = r"OSError: E:\venv\Lib\site-packages\bitsandbytes\libbitsandbytes_cuda121.so"
    a = _analyse(facts, text)
    assert "bnb-platform-unsupported" in a.diagnosis.ids
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= Version("0.43.0")
    assert _step(a.plan, "torch") is None  # torch fits: the fix touches bitsandbytes only


def test_legacy_loader_range_alone_proves_nothing_on_linux():
    """A range that holds releases with a Linux build proves no platform fault there."""
    facts = Facts(host=Host("Linux", "x86_64"), packages={"bitsandbytes": None})
    a = _analyse(facts, "CUDA SETUP: Something unexpected happened. Please compile from source:")
    assert "bnb-platform-unsupported" not in a.diagnosis.ids
    assert a.view.implied.range("bitsandbytes") == f"<{MODERN_BNB_LOADER}"


def test_mach_o_error_on_an_unreported_host_is_macos_and_never_healthy():
    facts = Facts(packages={"bitsandbytes": None})
    a = _analyse(facts, "dlopen(libbitsandbytes_cpu.so, 6): ... not a mach-o file")
    assert a.view.system == "Darwin"
    assert "bnb-platform-unsupported" in a.diagnosis.ids
    assert not a.plan.healthy


def test_transformers_kwarg_error_plans_the_4bit_floor_with_the_version_unknown():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"transformers": None, "bitsandbytes": "0.43.3"},
    )
    a = _analyse(
        facts, "TypeError: from_pretrained() got an unexpected keyword argument 'load_in_4bit'"
    )
    assert "hf-stack-too-old" in a.diagnosis.ids
    step = _step(a.plan, "transformers")
    assert step is not None and step.to.startswith(">=4.30.0")


def test_hip_library_name_makes_a_rocm_host():
    facts = Facts(host=Host("Linux", "x86_64"), packages={"bitsandbytes": None})
    a = _analyse(facts, "Could not find libbitsandbytes_rocm62.so")
    assert a.view.rocm
    assert "rocm-host" in a.diagnosis.ids
    assert not any(s.package == "torch" for s in a.plan.steps)  # no CUDA build on ROCm
    assert any(m.required and m.id == "rocm-host" for m in a.plan.manual)


_TORCH_803 = (
    "UserWarning: CUDA initialization: Unexpected error from cudaGetDeviceCount(). Did you run "
    "some cuda functions before calling NumCudaDevices() that might have already set an error? "
    "Error 803: system has unsupported display driver / cuda driver combination"
)


@pytest.mark.parametrize(
    "text, code, words",
    [
        ("cudaErrorCompatNotSupportedOnDevice", 804, "forward-compatibility"),
        ("RuntimeError: CUDA error: unknown error", 999, "nvidia_uvm"),
        ("RuntimeError: no CUDA-capable device is detected", 100, "CUDA_VISIBLE_DEVICES"),
        (_TORCH_803, 803, "cuda-compat"),
        (
            "Check failed: e == cudaSuccess (803 vs. 0) : system has unsupported display driver "
            "/ cuda driver combination",
            803,
            "kernel module",
        ),
        ("Error 802: system not yet initialized", 802, "nvidia-fabricmanager"),
        (
            "RuntimeError: Unexpected error from cudaGetDeviceCount(). Did you run some cuda "
            "functions before calling NumCudaDevices() that might have already set an error? "
            "Error 500: named symbol not found",
            500,
            "libnvdxgdmal.so.1",
        ),
        ("RuntimeError: CUDA error: initialization error", 3, "spawn"),
        (
            "RuntimeError: cuda runtime error (3) : initialization error at "
            "/pytorch/aten/src/THC/generic/THCStorage.c:60",
            3,
            "spawn",
        ),
    ],
)
def test_cuda_init_errors_get_the_advice_of_their_code(text, code, words):
    facts = Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "550.54.14", "12.4", "report"),
        gpus=(Gpu(0, "RTX 4090", "8.9"),),
        packages={"torch": "2.4.1+cu121"},
        torch=TorchBuild("2.4.1+cu121", "12.1"),
    )
    a = _analyse(facts, text)
    assert a.view.implied.cuda_error == code
    assert "cuda-init-failed" in a.diagnosis.ids
    manual = [m for m in a.plan.manual if m.id == "cuda-init-failed"]
    assert manual and manual[0].required and words in manual[0].text
    assert not any(s.package == "torch" for s in a.plan.steps)  # no package fixes it


def test_insufficient_driver_bounds_the_driver_and_offers_both_fixes():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, source="report"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": None},
        torch=TorchBuild(None, "12.8"),
    )
    a = _analyse(facts, "CUDA driver version is insufficient for CUDA runtime version")
    assert "driver-too-old" in a.diagnosis.ids
    need = KB.drivers.minor_compat_min(12, "Linux")
    drv = [m for m in a.plan.manual if m.id == "driver-too-old" and m.required]
    assert drv and f">= {need}" in drv[0].text  # the driver upgrade, ranked first
    # the venv alternative never picks a CUDA the driver is proven unable to run
    if a.plan.torch_variant is not None:
        assert a.plan.torch_variant.startswith("cu11")


def test_cpu_torch_without_its_version_is_found_and_planned():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "535.104.05", "12.2", "report"),
        gpus=(Gpu(0, "Tesla T4", "7.5"),),
        packages={"torch": None},
        torch=TorchBuild(None, None, None, cuda_available=False),
    )
    a = _analyse(facts, None)
    assert "torch-cpu-build" in a.diagnosis.ids
    assert a.plan.torch_variant is not None and a.plan.torch_variant.startswith("cu")


def test_a_fork_as_the_only_copy_is_read_as_bitsandbytes_and_replaced():
    facts = Facts(
        host=Host("Windows", "AMD64"),
        python=PythonInfo(version="3.10"),
        packages={"bitsandbytes-windows": "0.37.5"},
    )
    view = make_view(facts, KB)
    assert view.bnb == Version("0.37.5")
    a = _analyse(facts, None)
    assert {"bnb-no-4bit", "bnb-duplicate-install"} <= set(a.diagnosis.ids)
    assert any(s.package == "bitsandbytes-windows" and s.to is None for s in a.plan.steps)
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= Version("0.43.0")


def test_a_reported_bitsandbytes_keeps_its_own_rules():
    """A version in the facts wins over a range read from text (0.45.0 has a Windows build)."""
    facts = Facts(
        host=Host("Windows", "AMD64"),
        bitsandbytes=Bitsandbytes("0.45.0", None, 1),
        packages={"bitsandbytes": "0.45.0"},
    )
    a = _analyse(facts, "CUDA SETUP: Setup Failed!")
    assert a.view.bnb == Version("0.45.0")
    assert not any("0.43.1" in u for u in a.plan.unknown)


def test_python_unknown_chooses_a_bitsandbytes_for_every_python_of_torch():
    """Conservative choice: with Python unknown, the planned bitsandbytes admits the oldest
    Python the torch release supports, and the plan says why it was chosen."""
    from repair.planner import lowest_python

    facts = Facts(
        host=Host("Linux", "x86_64", "glibc 2.35"),
        driver=Driver(True, "550.54.14", "12.4", "report"),
        gpus=(Gpu(0, "A100", "8.0"),),
        packages={"torch": "2.4.1+cu121", "bitsandbytes": "0.38.0"},
        torch=TorchBuild("2.4.1+cu121", "12.1"),
    )
    a = _analyse(facts, None)
    step = _step(a.plan, "bitsandbytes")
    lowest = lowest_python(KB, Version("2.4.1"))
    assert step is not None and lowest is not None
    assert KB.bnb.release(step.to).admits_python(lowest)
    assert any(f"bitsandbytes {step.to} was chosen" in u for u in a.plan.unknown)
    newest = max(r.version for r in KB.bnb.releases)
    if not KB.bnb.release(newest).admits_python(lowest):
        assert Version(step.to) < newest  # the newest would not install on every such Python


@pytest.mark.parametrize("conda", [True, False])
def test_old_libstdcxx_is_named_with_the_fix_on_its_side(conda):
    facts = Facts(
        host=Host("Linux", "x86_64", "glibc 2.35"),
        driver=Driver(True, "550.54.14", "12.4", "report"),
        gpus=(Gpu(0, "L4", "8.9"),),
        python=PythonInfo(version="3.11", conda=conda),
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.45.0"},
        torch=TorchBuild("2.5.1+cu124", "12.4"),
    )
    text = (
        "OSError: /opt/env/lib/libstdc++.so.6: version `GLIBCXX_3.4.30' not found "
        "(required by .../bitsandbytes/libbitsandbytes_cuda124.so)"
    )
    a = _analyse(facts, text)
    assert a.view.implied.libstdcxx == "GLIBCXX_3.4.30"
    manual = [m for m in a.plan.manual if "GLIBCXX_3.4.30" in m.text]
    assert manual and manual[0].required
    assert ("conda install" in manual[0].text) is conda
    # a new wheel does not bring a C++ runtime: bitsandbytes is not reinstalled for this
    assert not any(s.package == "bitsandbytes" for s in a.plan.steps)


def test_macos_with_an_old_python_names_the_exact_floor():
    """No macOS build admits Python 3.8: the required step names the first macOS release and
    its Requires-Python (plans/bitsandbytes.toml), not a vague 'no release fits'."""
    facts = Facts(
        host=Host("Darwin", "arm64"),
        python=PythonInfo(version="3.8"),
        packages={"bitsandbytes": "0.42.0"},
    )
    a = _analyse(facts, None)
    first = min(
        r.version
        for r in KB.bnb.releases
        if (b := r.builds.get("macos-arm64")) is not None and b.native and r.has_4bit
    )
    manual = [m for m in a.plan.manual if m.required and m.id == "bnb-platform-unsupported"]
    assert manual and f"from {first}" in manual[0].text and "Python 3.8" in manual[0].text
    assert not a.plan.healthy


# ---------------------------------------------------------------- CUDA libraries of one major


@pytest.mark.parametrize(
    "text, lib, major, system",
    [
        (
            "OSError: libcudart.so.11.0: cannot open shared object file: No such file",
            "cudart",
            11,
            None,
        ),
        ("ImportError: libcublasLt.so.12: cannot open shared object file", "cublasLt", 12, None),
        ("OSError: libcusparse.so.11: cannot open shared object file", "cusparse", 11, None),
        (
            "Could not find module 'C:\\env\\cublas64_12.dll' (or one of its dependencies)",
            "cublas",
            12,
            "Windows",
        ),
        ("dlerror: cudart64_110.dll not found", "cudart", 11, "Windows"),
        ('Error loading "C:\\x\\cudart64_101.dll"', "cudart", 10, "Windows"),
    ],
)
def test_a_missing_cuda_library_names_its_cuda_major(text, lib, major, system):
    implied = implied_by(text)
    assert (implied.cuda_lib, implied.wanted_cuda_major, implied.system) == (lib, major, system)


def test_a_found_cuda_dll_is_not_a_missing_one():
    # the legacy loader prints the runtime it found; only a failing load is a constraint
    assert implied_by("CUDA SETUP: CUDA runtime path found: C:\\cuda\\cudart64_110.dll").empty


def _cuda_facts(torch_cuda: str | None, *, conda: bool = False, bnb: str = "0.39.1") -> Facts:
    torch_v = f"2.1.0+cu{torch_cuda.replace('.', '')}" if torch_cuda else None
    return Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "535.104.05", "12.2", "report"),
        gpus=(Gpu(0, "NVIDIA A10G", "8.6"),),
        python=PythonInfo(version="3.10", conda=conda),
        packages={"torch": torch_v, "bitsandbytes": bnb},
        torch=TorchBuild(torch_v, torch_cuda) if torch_cuda else None,
        bitsandbytes=Bitsandbytes(bnb, None, 1),
    )


def test_a_library_of_another_major_than_torch_is_bitsandbytes_and_is_replaced():
    """torch carries CUDA 12.1; a library that wants CUDA 11's runtime is bitsandbytes' own
    (picked by the legacy libcudart search): the fix is a release keyed on torch's CUDA."""
    a = _analyse(_cuda_facts("12.1"), "OSError: libcublasLt.so.11: cannot open shared object file")
    assert {"bnb-no-cuda-lib", "cuda-libs-not-found"} <= set(a.diagnosis.ids)
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= MODERN_BNB_LOADER
    assert a.plan.torch_target is None  # torch's own CUDA is fine: it stays
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and not libs[0].required  # the planned bitsandbytes makes the search moot


def test_a_modern_bitsandbytes_is_not_blamed_for_another_major():
    a = _analyse(
        _cuda_facts("12.1", bnb="0.45.0"), "libcudart.so.11.0: cannot open shared object file"
    )
    assert "bnb-no-cuda-lib" not in a.diagnosis.ids
    assert "cuda-libs-not-found" in a.diagnosis.ids


def test_torch_own_runtime_missing_in_conda_names_the_conda_side_fix():
    a = _analyse(_cuda_facts("12.1", conda=True), "libcublas.so.12: cannot open shared object file")
    assert "bnb-no-cuda-lib" not in a.diagnosis.ids
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and libs[0].required  # no bitsandbytes upgrade brings torch's runtime back
    assert "conda install -c nvidia/label/cuda-12.1.0 cuda-runtime" in libs[0].text
    assert "cuda-version=12" in libs[0].text
    assert "reinstall torch" in libs[0].text


def test_a_missing_runtime_with_torch_unknown_outside_conda_names_no_conda_step():
    facts = replace(_cuda_facts(None), torch=None, packages={"bitsandbytes": "0.39.1"})
    a = _analyse(facts, "libcudart.so.11.0: cannot open shared object file")
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and "conda" not in libs[0].text and "CUDA 11" in libs[0].text
    assert "bnb-no-cuda-lib" not in a.diagnosis.ids  # torch's CUDA unknown: not provable


def test_conda_prefix_alone_marks_a_conda_environment():
    facts = replace(_cuda_facts("11.8"), env={"CONDA_PREFIX": "/opt/conda/envs/x"})
    a = _analyse(facts, "libcudart.so.11.0: cannot open shared object file")
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and "nvidia/label/cuda-11.8.0" in libs[0].text
    assert "conda-forge" not in libs[0].text  # conda-forge's cuda-cudart starts at CUDA 12


# ---------------------------------------------------------------- hand-copied Windows DLLs


def _windows(bnb: str, libs: tuple[str, ...]) -> Facts:
    return Facts(
        host=Host("Windows", "AMD64"),
        driver=Driver(True, "531.14", "12.1", "report"),
        gpus=(Gpu(0, "NVIDIA GeForce RTX 3080", "8.6"),),
        python=PythonInfo(version="3.10"),
        packages={"torch": "2.0.1+cu118", "bitsandbytes": bnb},
        torch=TorchBuild("2.0.1+cu118", "11.8"),
        bitsandbytes=Bitsandbytes(bnb, libs, 1),
    )


def _first_windows_release() -> Version:
    return min(
        r.version
        for r in KB.bnb.releases
        if any(p.startswith("windows") and b.native for p, b in r.builds.items())
    )


def test_dlls_in_a_release_without_a_windows_wheel_are_a_community_build():
    a = _analyse(_windows("0.41.1", ("libbitsandbytes_cuda118.dll",)), None)
    dup = [f for f in a.diagnosis.findings if f.evidence.get("community_dlls")]
    assert dup and dup[0].id == "bnb-duplicate-install"
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= _first_windows_release()


def test_dlls_of_an_official_windows_wheel_are_not_a_community_build():
    first = str(_first_windows_release())
    a = _analyse(_windows(first, ("libbitsandbytes_cuda118.dll",)), None)
    assert not any(f.evidence.get("community_dlls") for f in a.diagnosis.findings)


# ---------------------------------------------------------------- "CUDA Version: N/A"


def _na_facts(driver: Driver) -> Facts:
    return Facts(
        host=Host("Linux", "x86_64"),
        driver=driver,
        gpus=(Gpu(0, "NVIDIA GeForce RTX 2060", "7.5"),),
        python=PythonInfo(version="3.11"),
        packages={"torch": "2.3.1+cu121", "bitsandbytes": "0.45.0"},
        torch=TorchBuild("2.3.1+cu121", "12.1"),
        bitsandbytes=Bitsandbytes("0.45.0", None, 1),
    )


@pytest.mark.parametrize(
    "driver",
    [
        Driver(True, "550.54.14", "N/A", "report"),
        Driver(
            True,
            "550.54.14",
            None,
            "nvml",
            attempts=(
                {"source": "nvml", "error": "nvmlSystemGetCudaDriverVersion_v2: Library Not Found"},
            ),
        ),
    ],
)
def test_a_driver_without_a_cuda_level_is_a_broken_libcuda_with_a_required_step(driver):
    a = _analyse(_na_facts(driver), None)
    found = [f for f in a.diagnosis.findings if f.evidence.get("libcuda")]
    assert found and found[0].id == "cuda-libs-not-found"
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and libs[0].required and "550.54.14" in libs[0].text
    assert not a.plan.healthy


@pytest.mark.parametrize(
    "driver",
    [
        Driver(True, "550.54.14", None, "report"),  # a report that does not say: unknown
        Driver(
            True,
            "410.48",
            None,
            "nvml",
            attempts=(
                {
                    "source": "nvml",
                    "error": "nvmlSystemGetCudaDriverVersion: function missing in this "
                    "driver's NVML (an older driver)",
                },
            ),
        ),
    ],
)
def test_an_unreported_cuda_level_or_an_old_nvml_is_not_a_broken_driver(driver):
    a = _analyse(_na_facts(driver), None)
    assert not any(f.evidence.get("libcuda") for f in a.diagnosis.findings)


# ---------------------------------------------------------------- the CUDA version bnb printed


def _printed_facts(bnb: str | None, env: dict | None = None) -> Facts:
    return Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "535.104.05", "12.2", "report"),
        gpus=(Gpu(0, "NVIDIA A10G", "8.6"),),
        python=PythonInfo(version="3.10"),
        packages={"torch": None, "bitsandbytes": bnb},
        bitsandbytes=Bitsandbytes(bnb, None, 1) if bnb else None,
        env=env,
    )


def test_pytorch_settings_line_states_torchs_cuda():
    text = "CUDA SETUP: PyTorch settings found: CUDA_VERSION=117, Highest Compute Capability: 8.6."
    a = _analyse(_printed_facts("0.41.1"), text)
    assert a.view.torch_cuda == Version("11.7") and a.view.torch_cpu_build is False
    assert any("torch.version.cuda 11.7 (read from" in u for u in a.plan.unknown)


def test_the_library_a_torch_keyed_loader_wanted_is_torchs_cuda():
    # 0.41.1 keys its library on torch.version.cuda (>= 0.40.1) and ships no cuda116 (0.40
    # dropped 11.2/11.3/11.6): the message proves the fault without torch's version.
    text = "CUDA SETUP: Required library version not found: libbitsandbytes_cuda116.so."
    a = _analyse(_printed_facts("0.41.1"), text)
    assert a.view.torch_cuda == Version("11.6")
    assert "bnb-no-cuda-lib" in a.diagnosis.ids


def test_the_library_a_libcudart_search_wanted_says_nothing_about_torch():
    # up to 0.40.0 the tag is the first libcudart found, not torch's (C4)
    text = "CUDA SETUP: Required library version not found: libbitsandbytes_cuda116.so."
    assert _analyse(_printed_facts("0.39.1"), text).view.torch_cuda is None


def test_an_override_makes_the_wanted_library_say_nothing_about_torch():
    text = (
        "Could not find the bitsandbytes CUDA binary at PosixPath('/b/libbitsandbytes_cuda130.so')"
    )
    a = _analyse(_printed_facts(None, {"BNB_CUDA_VERSION": "130"}), text)
    assert a.view.torch_cuda is None


def test_a_modern_binary_message_bounds_the_driver_by_torchs_printed_cuda():
    """0.43.1+ looked for cuda130 (torch's CUDA 13.0); driver 535 cannot run it, so the plan
    never keeps a CUDA 13 torch."""
    text = (
        "Could not find the bitsandbytes CUDA binary at PosixPath('/b/libbitsandbytes_cuda130.so')"
    )
    a = _analyse(_printed_facts(None), text)
    assert a.view.torch_cuda == Version("13.0")
    assert "driver-too-old" in a.diagnosis.ids
    assert a.plan.torch_variant is not None and not a.plan.torch_variant.startswith("cu13")


def test_the_example_in_bitsandbytes_hint_is_not_a_printed_version():
    hint = (
        "try again with `make CUDA_VERSION=DETECTED_CUDA_VERSION` for example, "
        "`make CUDA_VERSION=113`"
    )
    assert implied_by(hint).empty


def test_a_conda_env_whose_runtime_search_fails_gets_the_conda_side_step():
    facts = _cuda_facts("11.8", conda=True, bnb="0.39.1")
    a = _analyse(facts, "CUDA SETUP: Problem: No libcudart.so found")
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and "conda install -c nvidia/label/cuda-11.8.0 cuda-runtime" in libs[0].text
    assert not libs[0].required  # the planned bitsandbytes (>= 0.43.1) needs no search
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= MODERN_BNB_LOADER


def test_outside_conda_the_runtime_search_step_names_no_conda():
    a = _analyse(_cuda_facts("11.8", bnb="0.39.1"), "CUDA SETUP: Problem: No libcudart.so found")
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and "conda" not in libs[0].text


# ------------------------------------------------------- bitsandbytes loaded no CUDA library


def _t4(torch: TorchBuild | None, bnb: str | None = None, **kw) -> Facts:
    return Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "535.104.05", "12.2", "report"),
        gpus=(Gpu(0, "Tesla T4", "7.5"),),
        python=PythonInfo(version="3.10"),
        packages={"torch": torch.version if torch else None, "bitsandbytes": bnb},
        torch=torch,
        **kw,
    )


def _from_loader(a) -> list:
    """The findings the loader-message rule made (not the catalogue's 'reported by' fallback)."""
    return [f for f in a.diagnosis.findings if "loaded no CUDA library" in f.summary]


def test_loader_message_bounds_agree_with_the_knowledge_base():
    """Each bound is the first release whose code lacks the message (S38): it is a release."""
    known = {r.version for r in KB.bnb.releases}
    for text, bound in (
        ("The installed version of bitsandbytes was compiled without GPU support.", "0.47.0"),
        ("libbitsandbytes_cpu.so: undefined symbol: cget_col_row_stats", "0.45.0"),
        ("CUDA Setup failed despite GPU being available.", str(MODERN_BNB_LOADER)),
    ):
        implied = implied_by(text)
        assert implied.bnb_cuda_not_loaded, text
        assert implied.range("bitsandbytes") == f"<{bound}"
        assert Version(bound) in known and max(v for v in known if v < Version(bound)) in known


@pytest.mark.parametrize(
    "text, available",
    [
        ("CUDA SETUP: Something unexpected happened. Please compile from source:", True),
        ("RuntimeError:\n        CUDA Setup failed despite GPU being available.", True),
        ("CUDA SETUP: Setup Failed!", False),  # 0.36.0 also raises it for a CPU torch (S38)
        ("CUDA SETUP: Loading binary .../libbitsandbytes_cuda118.so...", False),
    ],
)
def test_only_the_messages_behind_torch_cuda_is_available_prove_a_cuda_torch(text, available):
    assert implied_by(text).torch_cuda_available is available


def test_setup_failed_with_torch_unknown_plans_a_bitsandbytes_with_torch_pinned():
    text = "CUDA SETUP: Something unexpected happened. Please compile from source:\nSetup Failed!"
    a = _analyse(_t4(None), text)
    found = _from_loader(a)
    assert found and found[0].id == "bnb-no-cuda-lib"
    assert _step(a.plan, "bitsandbytes") is not None
    assert a.plan.torch_target is None  # torch is not moved on a guess...
    assert any("cannot pin it" in u for u in a.plan.unknown)  # ...and apply pins what it finds


def test_the_legacy_loaders_failure_names_both_of_its_causes():
    """Before 0.43.1 the loader chose its library by the CUDA runtime it found on its own search
    path (C4): a text of that era cannot tell 'no runtime found' from 'no library for it', so the
    finding names both; from 0.43.1 it follows torch's CUDA."""
    text = "RuntimeError:\n        CUDA Setup failed despite GPU being available."
    [legacy] = _from_loader(_analyse(_t4(None), text))
    assert "found no CUDA runtime on its search path" in legacy.summary
    modern = "The installed version of bitsandbytes was compiled without GPU support."
    [found] = _from_loader(_analyse(_t4(TorchBuild("2.4.0+cu124", "12.4")), modern))
    assert "no library for torch's CUDA" in found.summary


def test_setup_failed_with_a_cuda_torch_plans_a_release_with_its_library():
    torch = TorchBuild("2.1.0+cu121", "12.1")
    a = _analyse(_t4(torch), "CUDA SETUP: Setup Failed!")
    assert "bnb-no-cuda-lib" in a.diagnosis.ids
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and a.plan.torch_target is None
    rel = KB.bnb.release(Version(step.to))
    assert rel is not None and any(t.startswith("12") for t in rel.builds["linux-x86_64"].cuda_libs)


def test_compiled_without_gpu_with_torch_unknown_names_no_class_but_says_why():
    """A CPU-only torch makes every loader take its CPU library on purpose."""
    a = _analyse(
        _t4(None), "The installed version of bitsandbytes was compiled without GPU support."
    )
    assert not _from_loader(a)
    assert any("CPU-only torch" in u for u in a.plan.unknown)


def test_a_reported_cpu_torch_is_the_fault_whatever_the_loader_says():
    """A reported fact wins over what a message implies (torch.cuda.is_available() here)."""
    torch = TorchBuild("2.1.0+cpu", None, None, cuda_available=False)
    text = "compiled without GPU support\nCUDA Setup failed despite GPU being available"
    a = _analyse(_t4(torch), text)
    assert "torch-cpu-build" in a.diagnosis.ids
    assert not _from_loader(a)


@pytest.mark.parametrize(
    "facts",
    [
        # the facts show the installed release has the library for torch's CUDA
        _t4(TorchBuild("2.1.0+cu118", "11.8"), "0.41.1", bitsandbytes=Bitsandbytes("0.41.1")),
        # no GPU here: the CPU library is the right one
        replace(_t4(TorchBuild("2.1.0+cu118", "11.8")), gpus=(), driver=Driver(False)),
        # BNB_CUDA_VERSION picks the library (its own rule)
        _t4(TorchBuild("2.1.0+cu118", "11.8"), env={"BNB_CUDA_VERSION": "122"}),
    ],
)
def test_a_loader_message_is_not_blamed_on_the_library_where_the_facts_explain_it(facts):
    a = _analyse(facts, "CUDA SETUP: Setup Failed!\nlibbitsandbytes_cpu.so: undefined symbol")
    assert not _from_loader(a)


def test_a_cuda_that_cannot_start_explains_the_fallback():
    text = "Error 804: forward compatibility was attempted on non supported HW\n"
    a = _analyse(_t4(TorchBuild("2.1.0+cu121", "12.1")), text + "CUDA SETUP: Setup Failed!")
    assert a.view.implied.bnb_cuda_not_loaded
    assert not _from_loader(a)


# ---------------------------------------------------------------- CUDA init errors 3, 802, 803


@pytest.mark.parametrize(
    "text",
    [
        "CUDA error: an illegal memory access was encountered",  # not an init error
        "Error 8030: something else",
        "RuntimeError: Cannot re-initialize CUDA in forked subprocess.",  # torch's own check
    ],
)
def test_other_cuda_texts_are_not_init_codes(text):
    assert implied_by(text).cuda_error is None


# ---------------------------------------------------------------- a library of another platform


def test_a_64_bit_library_in_a_32_bit_python_is_another_platforms_build():
    text = (
        "OSError: /home/pi/venv/lib/python3.11/site-packages/bitsandbytes/"
        "libbitsandbytes_cpu.so: wrong ELF class: ELFCLASS64"
    )
    facts = Facts(host=Host(None, "armv7l"), packages={"bitsandbytes": None})
    a = _analyse(facts, text)
    assert a.view.implied.bnb_foreign_build and a.view.system == "Linux"
    assert "bnb-platform-unsupported" in a.diagnosis.ids
    assert not a.plan.healthy


def test_another_librarys_elf_class_says_nothing_about_bitsandbytes():
    # a 32-bit plug-in of another program: not bitsandbytes' file
    implied = implied_by("/usr/lib/gio/modules/libgiogconf.so: wrong ELF class: ELFCLASS64")
    assert not implied.bnb_foreign_build


def test_an_invalid_elf_header_proves_only_the_linux_loader():
    implied = implied_by(
        "OSError: /venv/site-packages/bitsandbytes/libbitsandbytes_cuda121.so: invalid ELF header"
    )
    assert implied.system == "Linux" and not implied.bnb_foreign_build


def test_winerror_193_on_bitsandbytes_library_is_another_platforms_build():
    text = (
        "OSError: [WinError 193] %1 is not a valid Win32 application: 'C:\\\\env\\\\Lib\\\\"
        "site-packages\\\\bitsandbytes\\\\libbitsandbytes_cuda118.dll'"
    )
    implied = implied_by(text)
    assert implied.system == "Windows" and implied.bnb_foreign_build
    a = _analyse(Facts(packages={"bitsandbytes": None}), text)
    assert "bnb-platform-unsupported" in a.diagnosis.ids and not a.plan.healthy


def test_winerror_193_on_another_dll_is_only_windows():
    text = (
        "OSError: [WinError 193] %1 is not a valid Win32 application. Error loading "
        '"C:\\\\env\\\\lib\\\\site-packages\\\\torch\\\\lib\\\\c10.dll" or one of its dependencies.'
    )
    implied = implied_by(text)
    assert implied.system == "Windows" and not implied.bnb_foreign_build


# ---------------------------------------------------------------- nvJitLink shadowed by a toolkit

_NVJITLINK = (
    "ImportError: /usr/local/lib/python3.10/dist-packages/torch/lib/../../nvidia/cusparse/lib/"
    "libcusparse.so.12: undefined symbol: __nvJitLinkAddData_12_1, version libnvJitLink.so.12"
)


def test_nvjitlink_symbol_is_a_toolkit_shadowing_torchs_wheels_with_a_required_step():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        driver=Driver(True, "535.104.05", "12.2", "report"),
        gpus=(Gpu(0, "NVIDIA A10G", "8.6"),),
        packages={"torch": "2.1.0+cu121", "bitsandbytes": "0.45.0"},
        torch=TorchBuild("2.1.0+cu121", "12.1"),
        bitsandbytes=Bitsandbytes("0.45.0", None, 1),
        env={"LD_LIBRARY_PATH": "/usr/local/cuda-12.1/lib64:"},
    )
    a = _analyse(facts, _NVJITLINK)
    assert a.view.implied.cuda_lib_shadowed == "libnvJitLink"
    found = [f for f in a.diagnosis.findings if f.id == "stale-toolkit-on-path"]
    assert found and found[0].evidence["library"] == "libnvJitLink"
    manual = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
    assert manual and manual[0].required and "LD_LIBRARY_PATH" in manual[0].text
    assert a.plan.torch_target is None  # torch's wheels are fine: the path is at fault


def test_nvjitlink_shadowing_with_ld_library_path_unset_points_elsewhere():
    """The facts show LD_LIBRARY_PATH unset: the older copy came another way (ld.so.conf, an
    older nvidia-nvjitlink wheel), so a warning whose step says where to look."""
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"torch": "2.1.0+cu121"},
        torch=TorchBuild("2.1.0+cu121", "12.1"),
        env={"LD_LIBRARY_PATH": None},
    )
    a = _analyse(facts, _NVJITLINK)
    found = [f for f in a.diagnosis.findings if f.id == "stale-toolkit-on-path"]
    assert found and found[0].severity.value == "warning"
    manual = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
    assert manual and "ldconfig -p" in manual[0].text and "nvidia-nvjitlink" in manual[0].text


def test_an_undefined_symbol_of_another_library_is_not_a_shadowed_nvjitlink():
    assert (
        implied_by("libbitsandbytes_cpu.so: undefined symbol: cget_col_row_stats").cuda_lib_shadowed
        is None
    )
    assert implied_by("undefined symbol: cublasLtHSHMatmulAlgoInit").cuda_lib_shadowed is None


# ---------------------------------------------------------------- ROCm torch, CUDA-only bnb


@pytest.mark.parametrize(
    "text, spec",
    [
        (
            "ERROR:bitsandbytes.cextension:Could not load bitsandbytes native library: "
            "'NoneType' object has no attribute 'split'",
            ">=0.43.1,<0.46.0",
        ),
        (
            '  File "/venv/site-packages/bitsandbytes/cuda_specs.py", line 24, in '
            "get_cuda_version_tuple\n"
            '    major, minor = map(int, torch.version.cuda.split("."))\n'
            "AttributeError: 'NoneType' object has no attribute 'split'",
            "<0.46.0",
        ),
        (
            "RuntimeError: Configured ROCm binary not found at "
            "/venv/site-packages/bitsandbytes/libbitsandbytes_rocm62.so",
            ">=0.47.0",
        ),
    ],
)
def test_what_a_cuda_only_bitsandbytes_prints_with_a_rocm_torch_proves_rocm(text, spec):
    implied = implied_by(text)
    assert implied.rocm
    assert implied.range("bitsandbytes") is not None
    assert all(s in str(implied.range("bitsandbytes")) for s in spec.split(","))
    a = _analyse(Facts(host=Host("Linux", "x86_64"), packages={"bitsandbytes": None}), text)
    assert "rocm-host" in a.diagnosis.ids
    assert not any(s.package == "torch" for s in a.plan.steps)  # no CUDA build on ROCm


def test_a_split_error_elsewhere_is_not_a_rocm_torch():
    text = (
        "  File \"app.py\", line 3\n    name.split('.')\n"
        "AttributeError: 'NoneType' object has no attribute 'split'"
    )
    assert not implied_by(text).rocm
    assert not implied_by(
        "Could not load bitsandbytes native library: libcudart.so.12: "
        "cannot open shared object file"
    ).rocm


# ------------------------------------------------------------ a ROCm build without the GPU's target

_NO_CODE_OBJECT = '"hipErrorNoBinaryForGpu: Unable to find code object for all current devices!"'
_INVALID_DEVICE_FUNCTION = (
    "RuntimeError: HIP error: invalid device function\n"
    "HIP kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\n"
    "For debugging consider passing AMD_SERIALIZE_KERNEL=3\n"
    "Compile with `TORCH_USE_HIP_DSA` to enable device-side assertions."
)
# An AMD GPU named as a report names it (no vendor), and no NVIDIA driver section.
_RX6600 = {
    "schema": "qfix.facts/1",
    "host": {"system": "Linux", "machine": "x86_64"},
    "gpus": [{"index": 0, "name": "AMD Radeon RX 6600"}],
    "packages": {"bitsandbytes": "0.43.3"},
}


@pytest.mark.parametrize("text", [_NO_CODE_OBJECT, _INVALID_DEVICE_FUNCTION])
def test_a_missing_gfx_code_object_is_a_rocm_host_with_the_override_advice(text):
    implied = implied_by(text)
    assert implied.rocm and "hip-no-binary-for-gpu" in implied.signatures
    a = _analyse(facts_from_dict(_RX6600), text)
    assert "rocm-host" in a.diagnosis.ids
    assert "no-nvidia-driver" not in a.diagnosis.ids
    (manual,) = [m for m in a.plan.manual if m.id == "rocm-host"]
    assert manual.required
    assert "HSA_OVERRIDE_GFX_VERSION" in manual.text and "10.3.0" in manual.text
    assert "11.0.0" in manual.text and "UNCONFIRMED" in manual.text
    assert "system-requirements" in manual.text  # AMD's supported-GPU list
    assert "bitsandbytes" in manual.text  # the ROCm step for 4-bit stays
    assert not any("NVIDIA driver" in m.text for m in a.plan.manual)
    assert not any(s.package == "torch" for s in a.plan.steps)  # no CUDA build on ROCm


@pytest.mark.parametrize("facts", [_RX6600, {"schema": "qfix.facts/1", "gpus": []}])
def test_a_hip_error_or_an_amd_gpu_never_asks_for_an_nvidia_driver(facts):
    a = _analyse(facts_from_dict(facts), _INVALID_DEVICE_FUNCTION)
    assert a.view.rocm
    assert "no-nvidia-driver" not in a.diagnosis.ids
    assert not any(m.id == "no-nvidia-driver" for m in a.plan.manual)


def test_without_the_hip_error_an_empty_gpu_list_still_asks_for_an_nvidia_driver():
    a = _analyse(facts_from_dict({"schema": "qfix.facts/1", "gpus": []}), None)
    assert not a.view.rocm
    assert "no-nvidia-driver" in a.diagnosis.ids


@pytest.mark.parametrize(
    "text",
    [
        "RuntimeError: CUDA error: invalid device function",  # NVIDIA: a CUDA arch, not HIP
        "RuntimeError: CUDA error: no kernel image is available for execution on the device",
        "HIP out of memory. Tried to allocate 2.00 GiB",
    ],
)
def test_other_device_errors_are_not_a_missing_gfx_target(text):
    implied = implied_by(text)
    assert "hip-no-binary-for-gpu" not in implied.signatures
    assert not implied.rocm


def test_a_rocm_host_without_a_hip_error_gets_only_the_bitsandbytes_step():
    a = _analyse(facts_from_dict(_RX6600), None)
    (manual,) = [m for m in a.plan.manual if m.id == "rocm-host"]
    assert "HSA_OVERRIDE_GFX_VERSION" not in manual.text and "bitsandbytes" in manual.text


def test_a_cuda_error_never_takes_the_hip_advice():
    implied = implied_by(_NO_CODE_OBJECT + "\nRuntimeError: CUDA error: unknown error")
    assert "nvidia_uvm" in advice_for(implied, implying="cuda_error")
    assert "HSA_OVERRIDE_GFX_VERSION" in advice_for(implied, implying="rocm")
    assert advice_for(implied_by("CUDA error: unknown error"), implying="rocm") is None


@pytest.mark.parametrize(
    "text, missing",
    [
        ("ModuleNotFoundError: No module named 'bitsandbytes'", True),
        ("ImportError: No module named bitsandbytes", True),
        # A submodule the caller expects proves bitsandbytes itself is installed.
        ("ModuleNotFoundError: No module named 'bitsandbytes.cuda_setup.paths'", False),
        ("ModuleNotFoundError: No module named 'bitsandbytes_windows'", False),
    ],
)
def test_a_missing_submodule_is_not_a_missing_bitsandbytes(text, missing):
    from tests.core_helpers import explained_ids

    assert ("bnb-missing" in explained_ids(text)) is missing


def test_no_linux_loader_path_advice_on_windows():
    """A toolkit unlike torch's CUDA is a Linux loader-path fault (the legacy libcudart search,
    LD_LIBRARY_PATH); on Windows no finding tells the user to edit LD_LIBRARY_PATH."""
    facts = Facts(
        host=Host("Windows", "AMD64"),
        packages={"torch": "2.1.2+cu118"},
        torch=TorchBuild("2.1.2+cu118", "11.8"),
        toolkit_nvcc="12.3",
    )
    linux = replace(facts, host=Host("Linux", "x86_64"))
    assert "stale-toolkit-on-path" in _analyse(linux, None).diagnosis.ids
    a = _analyse(facts, None)
    assert "stale-toolkit-on-path" not in a.diagnosis.ids
    assert not any("LD_LIBRARY_PATH" in m.text for m in a.plan.manual)


# ---------------------------------------------------------------- the oldest loader texts (S59)

_LIB64 = (
    "CUDA_SETUP: WARNING! libcudart.so not found in any environmental path. "
    "Searching /usr/local/cuda/lib64..."
)
_BACKUP = (
    "CUDA_SETUP: WARNING! libcudart.so not found in any environmental path. "
    "Searching in backup paths..."
)


@pytest.mark.parametrize(
    "text, spec",
    [
        (_LIB64, "<0.38.0"),
        (_BACKUP, ">0.37.0,<0.43.1"),
        (
            "Welcome to bitsandbytes. For bug reports, please submit your error trace to: "
            "https://github.com/TimDettmers/bitsandbytes/issues",
            "<0.38.0",
        ),
        (
            "Welcome to bitsandbytes. For bug reports, please run\n\npython -m bitsandbytes",
            "<0.43.1",
        ),
        ("CUDA SETUP: CUDA runtime path found: /usr/local/cuda/lib64/libcudart.so", "<0.41.0"),
        ("CUDA SETUP: Highest compute capability among GPUs detected: 8.6", "<0.41.0"),
        ("CUDA SETUP: Detected CUDA version 117", "<0.41.0"),
        (
            "CUDA SETUP: WARNING! libcuda.so not found! Do you have a CUDA driver installed? If "
            "you are on a cluster, make sure you are on a CUDA machine!",
            "<0.41.0",
        ),
        (
            "CUDA SETUP: Is seems that your cuda installation is not in your path. See "
            "https://github.com/TimDettmers/bitsandbytes/issues/85 for more information.",
            ">0.35.0,<0.41.0",
        ),
        (
            "CUDA SETUP: Problem: The main issue seems to be that the main CUDA runtime library "
            "was not detected.",
            ">0.35.0,<0.43.1",
        ),
        (
            "CUDA SETUP: Solution 1a): Find the cuda runtime library via: find / -name "
            "libcudart.so 2>/dev/null",
            ">0.35.0,<0.43.1",
        ),
        (
            "CUDA SETUP: TODO: compile library for specific version: libbitsandbytes_cuda116.so",
            "<0.36.0",
        ),
        (
            "CUDA SETUP: CUDA version lower than 11 are currenlty not supported for LLM.int8(). "
            "You will be only to use 8-bit optimizers and quantization routines!!",
            "<0.36.0",
        ),
        (
            "Exception: CUDA SETUP: ERROR! libcuda.so not found! Do you have a CUDA driver "
            "installed?",
            "<0.33.0",
        ),
    ],
)
def test_the_oldest_loader_texts_bound_bitsandbytes(text, spec):
    implied = implied_by(text)
    assert implied.range("bitsandbytes") is not None
    for v in ("0.32.0", "0.35.0", "0.36.0", "0.37.0", "0.38.0", "0.40.0", "0.41.0", "0.43.0"):
        # the range the text proves is exactly the set of tags whose code has it (S59)
        assert (Version(v) in implied.range("bitsandbytes")) is (Version(v) in SpecifierSet(spec))


def test_the_oldest_loader_bounds_are_releases_of_the_knowledge_base():
    known = {r.version for r in KB.bnb.releases}
    for sig in load_signatures():
        spec = sig.implies.get("bitsandbytes")
        if not spec or not sig.id.startswith(("bnb-legacy-cudart", "bnb-0", "bnb-pre-0")):
            continue
        for bound in SpecifierSet(spec):
            if Version(bound.version) >= Version("0.37.0"):  # the table starts at 0.37.0
                assert Version(bound.version) in known, (sig.id, bound)


@pytest.mark.parametrize(
    "text",
    [
        # 0.43.1 and later: "CUDA SETUP:" with a space, in diagnostics/ (S38)
        "WARNING! CUDA runtime files not found in any environmental path.",
        "CUDA SETUP: WARNING! CUDA runtime files not found",
        # a runtime DLL named by a Windows build of others is no upstream text
        "CUDA SETUP: CUDA runtime path found: C:\\cuda\\bin\\cudart64_110.dll",
        # the later spelling, kept up to 0.45.5
        "CUDA SETUP: CUDA version lower than 11 are currently not supported for LLM.int8().",
    ],
)
def test_later_loader_texts_are_not_the_oldest_ones(text):
    assert not any(
        s.startswith(("bnb-legacy-cudart", "bnb-0", "bnb-pre-0"))
        for s in implied_by(text).signatures
    )


def _windows_unknown_bnb() -> Facts:
    return Facts(
        host=Host("Windows", "AMD64"),
        driver=Driver(True, "551.61", "12.4", "report"),
        gpus=(Gpu(0, "RTX 3060", "8.6"),),
        python=PythonInfo(version="3.10"),
        packages={"torch": "2.2.1+cu121", "bitsandbytes": None},
        torch=TorchBuild("2.2.1+cu121", "12.1"),
    )


def test_a_pre_043_loader_text_on_windows_is_a_linux_only_wheel_and_plans_a_windows_one():
    a = _analyse(_windows_unknown_bnb(), _LIB64)
    assert "bnb-platform-unsupported" in a.diagnosis.ids
    step = _step(a.plan, "bitsandbytes")
    first_windows = min(
        r.version
        for r in KB.bnb.releases
        if (b := r.builds.get("windows-x86_64")) is not None and b.native
    )
    assert step is not None
    assert all(v >= first_windows for v in _versions_in(step.to))


def _versions_in(to: str) -> list[Version]:
    """Releases of the knowledge base that a step's target (a version or a range) admits."""
    if to[0].isdigit():
        return [Version(to)]
    return [r.version for r in KB.bnb.releases if r.version in SpecifierSet(to)]


def test_a_loader_text_that_043_also_prints_proves_no_platform_fault_on_windows():
    """0.43.0 has a Windows wheel and prints the 'backup paths' warning there too: the text
    proves no platform fault. With nothing else wrong, an older release of that range is only
    the likeliest cause, and the finding says so (``suspected``)."""
    a = _analyse(_windows_unknown_bnb(), _BACKUP)
    found = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert all(f.evidence.get("suspected") is True for f in found)
    assert all("likeliest cause" in f.summary for f in found)
    assert a.view.implied.range("bitsandbytes") == ">0.37.0,<0.43.1"


# ---------------------------------------------------------------- names a release lacks (S60-S62)


@pytest.mark.parametrize(
    "text, package, spec",
    [
        (
            "ImportError: cannot import name 'prepare_model_for_kbit_training' from 'peft' "
            "(/venv/lib/python3.10/site-packages/peft/__init__.py)",
            "peft",
            "<0.4.0",
        ),
        (
            "ImportError: cannot import name 'BitsAndBytesConfig' from 'transformers' "
            "(/venv/lib/python3.10/site-packages/transformers/__init__.py)",
            "transformers",
            "<4.27.0",
        ),
        (
            "AttributeError: module 'bitsandbytes.nn' has no attribute 'Linear4bit'",
            "bitsandbytes",
            "<0.39.0",
        ),
        (
            "AttributeError: module 'bitsandbytes.nn' has no attribute 'Params4bit'",
            "bitsandbytes",
            "<0.39.0",
        ),
        (
            "AttributeError: module 'bitsandbytes.functional' has no attribute 'quantize_4bit'",
            "bitsandbytes",
            "<0.39.0",
        ),
        (
            "AttributeError: 'Params4bit' object has no attribute 'quant_storage'",
            "bitsandbytes",
            "<0.43.0",
        ),
        (
            "TypeError: Params4bit.__new__() got an unexpected keyword argument 'quant_storage'",
            "bitsandbytes",
            "<0.43.0",
        ),
        (
            "AttributeError: module 'bitsandbytes.functional' has no attribute 'QuantState'",
            "bitsandbytes",
            "<0.42.0",
        ),
        (
            "AttributeError: type object 'Params4bit' has no attribute 'from_prequantized'",
            "bitsandbytes",
            "<0.42.0",
        ),
    ],
)
def test_a_name_the_release_lacks_bounds_its_version(text, package, spec):
    assert implied_by(text).range(package) == spec


@pytest.mark.parametrize(
    "text",
    [
        # exported v0.2.0-v0.9.0 only: its ImportError fits releases on both sides (S61)
        "ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft'",
        "ImportError: cannot import name 'LoraConfig' from 'peft'",
        "AttributeError: module 'bitsandbytes.nn' has no attribute 'Linear8bitLt'",
        "AttributeError: 'Params4bit' object has no attribute 'quant_state'",
        "ImportError: cannot import name 'BitsAndBytesConfig' from 'diffusers'",
        "AttributeError: 'Linear4bit' object has no attribute 'weight_format'",
    ],
)
def test_names_every_release_has_or_others_names_bound_nothing(text):
    assert not implied_by(text).ranges


def test_a_peft_without_kbit_training_plans_its_floor_with_the_version_unknown():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        python=PythonInfo(version="3.10"),
        packages={"peft": None, "transformers": "4.36.2", "accelerate": "0.25.0"},
    )
    a = _analyse(
        facts,
        "ImportError: cannot import name 'prepare_model_for_kbit_training' from 'peft' "
        "(/venv/lib/python3.10/site-packages/peft/__init__.py)",
    )
    assert "hf-stack-too-old" in a.diagnosis.ids
    step = _step(a.plan, "peft")
    assert step is not None and step.to.startswith(">=0.4.0")
    assert any("peft <0.4.0" in line for line in a.plan.unknown)


def test_a_transformers_without_bitsandbytesconfig_plans_the_4bit_floor():
    facts = Facts(host=Host("Linux", "x86_64"), packages={"transformers": None})
    a = _analyse(facts, "ImportError: cannot import name 'BitsAndBytesConfig' from 'transformers'")
    step = _step(a.plan, "transformers")
    assert step is not None and step.to.startswith(">=4.30.0")


def test_a_bitsandbytes_without_linear4bit_predates_4bit_and_is_upgraded():
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"bitsandbytes": None, "torch": "2.0.1+cu117"},
        torch=TorchBuild("2.0.1+cu117", "11.7"),
    )
    a = _analyse(facts, "AttributeError: module 'bitsandbytes.nn' has no attribute 'Linear4bit'")
    assert "bnb-no-4bit" in a.diagnosis.ids
    step = _step(a.plan, "bitsandbytes")
    assert step is not None


# transformers' refusals of `.to` on a bitsandbytes model (S67): the three texts follow each other
_TO_430 = (
    "ValueError: `.to` is not supported for `4-bit` or `8-bit` models. Please use the model as "
    "it is, since the model has already been set to the correct devices and casted to the "
    "correct `dtype`."
)
_TO_432 = "ValueError: `.to` is not supported for `4-bit` or `8-bit` bitsandbytes models. Please"
_TO_445 = (
    "ValueError: Calling `to()` is not supported for `4-bit` quantized models with the installed "
    "version of bitsandbytes. The current device is `cuda:0`. If you intended to move the model, "
    "please install bitsandbytes >= 0.43.2."
)


def _hf_floor(package: str) -> Version:
    return next(r.minimum for r in KB.hf if r.package == package and not r.when)


def test_to_refusals_bound_transformers_from_its_4bit_floor_without_gaps():
    ranges = [implied_by(t).range("transformers") for t in (_TO_430, _TO_432, _TO_445)]
    assert all(r is not None for r in ranges)
    first, second, third = ranges
    floor = _hf_floor("transformers")  # 4-bit appears in 4.30.0: the first text starts there
    assert first is not None and floor in first and Version("4.29.2") not in first
    # each text ends where the next starts; none overlaps another
    for v in ("4.29.2", "4.30.0", "4.31.0", "4.32.0", "4.44.2", "4.45.0", "4.50.0"):
        inside = [r for r in ranges if r is not None and Version(v) in r]
        assert len(inside) == (0 if v == "4.29.2" else 1), v
    assert implied_by(_TO_430).range("bitsandbytes") is None  # 4-bit or 8-bit: any release
    assert implied_by(_TO_432).range("bitsandbytes") is None
    # the only text that blames the bitsandbytes release, and its bound in the release table
    bnb = implied_by(_TO_445).range("bitsandbytes")
    assert bnb is not None and str(bnb) == "<0.43.2"
    assert KB.bnb.release("0.43.2") is not None  # the release the text asks for exists
    # the cuda() twin of the 4.45 text proves the same
    cuda = _TO_445.replace("Calling `to()`", "Calling `cuda()`")
    assert implied_by(cuda).range("bitsandbytes") == bnb


@pytest.mark.parametrize("quote", ["", "'", '"'])
def test_to_refusals_copied_from_a_rendered_page_keep_their_meaning(quote: str) -> None:
    """Markdown renders `.to` as code: the text copied from an issue page has no backticks, or
    quotes instead. It proves the same transformers range."""
    for text in (_TO_430, _TO_432, _TO_445):
        copied = text.replace("`", quote)
        assert implied_by(copied).range("transformers") == implied_by(text).range("transformers")


def test_to_refusal_ranges_are_read_where_unreported_and_never_override_a_report():
    facts = Facts(host=Host("Linux", "x86_64"), packages={"transformers": None})
    out, lines = implied_facts(facts, _TO_445)
    assert out.extra["implied"]["ranges"] == {"transformers": ">=4.45.0", "bitsandbytes": "<0.43.2"}
    assert lines  # read from the message: the plan says so
    reported = Facts(host=Host("Linux", "x86_64"), packages={"transformers": "4.31.0"})
    out, lines = implied_facts(reported, _TO_432)
    assert out.packages["transformers"] == "4.31.0" and not lines


@pytest.mark.parametrize("text", [_TO_430, _TO_432])
def test_a_refused_to_before_4_45_plans_the_transformers_that_moves_4bit_models(text):
    """The refusal shows the job moves a 4-bit model (feature `4bit-move`): its floor is the
    transformers release that first allows it (S67), planned though the version is unknown."""
    move = next(r for r in KB.hf if r.feature == "4bit-move" and r.package == "transformers")
    facts = Facts(host=Host("Linux", "x86_64"), packages={"transformers": None})
    a = _analyse(facts, text)
    assert a.view.implied.hf_feature == "4bit-move"
    found = [f for f in a.diagnosis.findings if f.id == "hf-stack-too-old"]
    assert [f.evidence["minimum"] for f in found] == [str(move.minimum)]
    step = _step(a.plan, "transformers")
    assert step is not None and step.to == f">={move.minimum}"
    assert _step(a.plan, "torch") is None


def test_the_move_floor_needs_the_refusal_not_just_an_old_transformers():
    """A transformers below 4.45 loads and trains in 4-bit: without a refused .to() the
    4bit-move floor is no finding."""
    move = next(r for r in KB.hf if r.feature == "4bit-move" and r.package == "transformers")
    floor_4bit = _hf_floor("transformers")
    have = "4.40.0"
    assert floor_4bit <= Version(have) < move.minimum
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"transformers": have, "accelerate": "0.30.0", "peft": "0.10.0"},
    )
    assert "hf-stack-too-old" not in _analyse(facts, None).diagnosis.ids
    assert "hf-stack-too-old" in _analyse(facts, _TO_432).diagnosis.ids


def test_hf_feature_must_name_a_feature():
    entry = {
        "id": "x",
        "pattern": "x",
        "implies": {"hf_feature": "4bit-fly"},
        "sources": ["S1"],
        "checked": "2026-12-06",
    }
    with pytest.raises(KnowledgeError, match="hf_feature must be one of"):
        _parse({"signature": [entry]}, "plans/signatures.toml")


@pytest.mark.parametrize(
    "text",
    [
        # another library's torch.version.cuda.split with a CPU-only torch: not a ROCm host
        '  File "/venv/site-packages/deepspeed/ops/op_builder/builder.py", line 98, in '
        "installed_cuda_version\n"
        '    torch_cuda_major = int(torch.version.cuda.split(".")[0])\n'
        "AttributeError: 'NoneType' object has no attribute 'split'",
        # peft's own Linear4bit exists only where bitsandbytes 4-bit imports: no bnb range
        "ImportError: cannot import name 'Linear4bit' from 'peft.tuners.lora' (/venv/lora.py)",
        # any library's quant_storage keyword
        "TypeError: LoraConfig.__init__() got an unexpected keyword argument 'quant_storage'",
        "TypeError: __init__() got an unexpected keyword argument 'quant_storage'",
    ],
)
def test_texts_of_other_libraries_prove_nothing_about_bitsandbytes(text):
    implied = implied_by(text)
    assert not implied.rocm
    assert implied.range("bitsandbytes") is None


@pytest.mark.parametrize(
    "text, spec",
    [
        (
            "ImportError: cannot import name 'Linear4bit' from 'bitsandbytes.nn' (/v/nn.py)",
            "<0.39.0",
        ),
        (
            "TypeError: Params4bit.__new__() got an unexpected keyword argument 'quant_storage'",
            "<0.43.0",
        ),
        (
            "TypeError: Linear4bit.__init__() got an unexpected keyword argument 'quant_storage'",
            "<0.43.0",
        ),
    ],
)
def test_bitsandbytes_own_names_still_bound_its_version(text, spec):
    assert str(implied_by(text).range("bitsandbytes")) == spec


def test_a_move_floor_that_needs_a_newer_bitsandbytes_is_a_choice_not_an_empty_range():
    """transformers >= 4.45 demands a newer bitsandbytes than an installed 0.42.0 (its
    huggingface.toml floors): no step with an empty range, a required manual step instead."""
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={
            "transformers": "4.40.0",
            "accelerate": "0.30.0",
            "peft": "0.10.0",
            "bitsandbytes": "0.42.0",
            "torch": "2.1.2+cu121",
        },
        torch=TorchBuild("2.1.2+cu121", "12.1"),
    )
    a = _analyse(facts, _TO_432)
    for step in a.plan.steps:
        if step.to and step.to.startswith(">="):
            spec = SpecifierSet(step.to)
            low = Version(step.to[2:].split(",")[0])
            assert low in spec, step  # never ">=4.45.0,<4.45.0"
    manual = [m for m in a.plan.manual if m.id == "hf-stack-too-old"]
    assert manual and manual[0].required and "bitsandbytes" in manual[0].text


@pytest.mark.parametrize(
    "text",
    [
        "ModuleNotFoundError: No module named 'bitsandbytes'",
        "importlib.metadata.PackageNotFoundError: No package metadata was found for The "
        "'bitsandbytes>=0.37.0' distribution was not found and is required by this application.",
    ],
)
def test_a_bitsandbytes_the_target_cannot_import_is_installed_by_the_plan(text):
    """A report listing bitsandbytes without a version (the writer did not know it) gives way
    to an error that shows the target cannot import it; a reported version never does."""
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"bitsandbytes": None, "torch": "2.4.1+cu121"},
        torch=TorchBuild("2.4.1+cu121", "12.1"),
    )
    a = _analyse(facts, text)
    assert a.view.implied.bnb_absent and a.view.bnb_installed is False
    assert "bnb-missing" in a.diagnosis.ids
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and step.from_ is None
    reported = replace(
        facts,
        packages={"bitsandbytes": "0.45.0", "torch": "2.4.1+cu121"},
        bitsandbytes=Bitsandbytes("0.45.0", None, 1),
    )
    assert _analyse(reported, text).view.bnb_installed is True


@pytest.mark.parametrize(
    "text",
    [
        "AssertionError: libcuda.so cannot found!\nPlease make sure GPU is set up and then run "
        '"/sbin/ldconfig" (requires sudo) to refresh the linker cache.',
        "ImportError: Unsloth: CUDA is not linked properly.\nWe tried running `ldconfig "
        "/usr/lib64-nvidia` ourselves, but it didn't work.",
    ],
)
def test_libcuda_missing_from_the_loader_cache_gets_the_ldconfig_step(text):
    facts = Facts(
        host=Host("Linux", "x86_64"),
        packages={"torch": "2.1.0+cu121"},
        torch=TorchBuild("2.1.0+cu121", "12.1"),
    )
    a = _analyse(facts, text)
    assert a.view.implied.libcuda_unregistered
    manual = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert manual and manual[0].required and "ldconfig" in manual[0].text
    assert _step(a.plan, "torch") is None  # torch is not at fault


# ---------------------------------------------------------------- a wheel's own hashed CUDA copy

# The text of unslothai/unsloth#1656 (the user's home directory shortened).
_BUNDLED_DELETED = (
    "RuntimeError: /home/u/miniconda3/envs/unsloth/lib/python3.11/site-packages/torchvision.libs/"
    "libcudart.7ec1eba6.so.12 (deleted): cannot open shared object file: No such file or directory"
)


@pytest.mark.parametrize(
    "text, owner, lib, major, deleted",
    [
        (_BUNDLED_DELETED, "torchvision", "cudart", 12, True),
        # auditwheel's own scheme: <base>-<8 hex>.<rest> in <name>.libs (S79)
        (
            "OSError: /venv/lib/python3.10/site-packages/foo_ext.libs/libcublasLt-0a1b2c3d.so.11: "
            "cannot open shared object file: No such file or directory",
            "foo_ext",
            "cublasLt",
            11,
            False,
        ),
        # PyTorch's wheel build: torch/lib/<base>-<8 hex>.<rest> (S80)
        (
            "OSError: /usr/local/lib/python3.8/dist-packages/torch/lib/libcudart-a7b20f6e.so.11.0:"
            " cannot open shared object file: No such file or directory",
            "torch",
            "cudart",
            11,
            False,
        ),
    ],
)
def test_a_hashed_copy_names_the_package_that_bundles_it(text, owner, lib, major, deleted):
    implied = implied_by(text)
    assert (implied.cuda_lib_bundled_by, implied.cuda_lib, implied.wanted_cuda_major) == (
        owner,
        lib,
        major,
    )
    assert implied.cuda_lib_deleted is deleted


@pytest.mark.parametrize(
    "text",
    [
        "OSError: libcudart.so.12: cannot open shared object file: No such file or directory",
        # a hashed name outside site-packages is no package's (a system lib directory)
        "OSError: /usr/lib/libcudart-a7b20f6e.so.11.0: cannot open shared object file",
        # a plain soname inside a package's lib folder carries no hash
        "OSError: /x/site-packages/torch/lib/libcudart.so.12: cannot open shared object file",
        # the copy was found: nothing failed
        "/x/site-packages/torchvision.libs/libcudart.7ec1eba6.so.12 => loaded",
    ],
)
def test_a_name_without_a_wheels_hash_is_not_a_bundled_copy(text):
    implied = implied_by(text)
    assert implied.cuda_lib_bundled_by is None and not implied.cuda_lib_deleted


def test_a_system_runtime_without_a_hash_keeps_the_loader_path_step():
    a = _analyse(_cuda_facts("12.1"), "libcudart.so.12: cannot open shared object file")
    found = [f for f in a.diagnosis.findings if f.id == "cuda-libs-not-found"]
    assert found and "bundled_by" not in found[0].evidence
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and "reinstall torch from the PyTorch index" in libs[0].text
    assert "--force-reinstall" not in libs[0].text


def test_a_deleted_bundled_copy_plans_a_reinstall_of_the_family_and_a_restart():
    """torchvision's own libcudart is gone under a running process: reinstall torch and
    torchvision together at their installed versions (none guessed), restart the process; no
    toolkit, conda runtime or bitsandbytes change."""
    facts = replace(
        _cuda_facts("12.1", conda=True),
        packages={"torch": "2.5.1+cu121", "torchvision": None, "bitsandbytes": "0.39.1"},
        torch=TorchBuild("2.5.1+cu121", "12.1"),
    )
    a = _analyse(facts, _BUNDLED_DELETED)
    found = [f for f in a.diagnosis.findings if f.id == "cuda-libs-not-found"]
    assert len(found) == 1 and found[0].evidence["bundled_by"] == "torchvision"
    assert "bnb-no-cuda-lib" not in a.diagnosis.ids
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and libs[0].required
    text = libs[0].text
    assert "--force-reinstall --no-deps torch==2.5.1+cu121 torchvision==<installed version>" in text
    assert "torchaudio" not in text  # not installed: not reinstalled
    assert "restart" in text
    assert "conda install" not in text and "ldconfig change" in text
    assert _step(a.plan, "bitsandbytes") is None  # the legacy loader is not at fault here
    assert not a.plan.healthy


def test_a_bundled_copy_of_another_package_reinstalls_that_package_alone():
    facts = replace(_cuda_facts("12.1"), packages={"torch": "2.1.0+cu121", "foo-ext": "1.2.0"})
    text = "OSError: /v/site-packages/foo_ext.libs/libcublas-0a1b2c3d.so.11: cannot open shared"
    a = _analyse(facts, text + " object file")
    libs = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert libs and libs[0].required
    assert "--no-deps foo_ext==1.2.0" in libs[0].text  # the folder names foo-ext (S79)
    assert "torch==" not in libs[0].text and "restart" not in libs[0].text


# ---------------------------------------------------------------- serving engines (S82)

VLLM_GATE = (
    "ValueError: The quantization method bitsandbytes is not supported for the current GPU. "
    "Minimum capability: 70. Current capability: 52."
)


def test_vllms_capability_gate_for_bitsandbytes_is_a_manual_step_not_a_package_move():
    """vLLM's own gate (S82): the finding gives both compute capabilities from the text, and
    the plan moves no package (no bitsandbytes or torch build changes vLLM's check)."""
    from repair.facts import Facts, Gpu, Host
    from repair.pipeline import analyse

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, None, "5.2"),),
        packages={"torch": "2.5.1", "bitsandbytes": "0.45.0", "vllm": "0.7.3"},
    )
    a = analyse(facts, error_text=VLLM_GATE)
    [f] = [f for f in a.diagnosis.findings if f.evidence.get("serving_gate")]
    assert f.id == "gpu-too-old-for-bnb"
    assert (f.evidence["minimum"], f.evidence["compute_capability"]) == ("7.0", "5.2")
    assert not [s for s in a.plan.steps if s.package in ("bitsandbytes", "torch")]
    [m] = [m for m in a.plan.manual if "vLLM" in m.text]
    assert m.required and ">= 7.0" in m.text


def test_vllms_gate_for_another_method_says_nothing_about_bitsandbytes():
    text = VLLM_GATE.replace("bitsandbytes", "awq").replace("70", "75")
    assert "vllm-quant-capability-gate" not in implied_by(text).signatures


def test_the_rocm_split_traceback_is_read_from_a_windows_path_too():
    """The `torch.version.cuda.split` traceback of a CUDA-only bitsandbytes with a ROCm torch
    names its frame with backslashes on Windows (a merge had dropped that form)."""
    text = (
        'File "C:\\env\\Lib\\site-packages\\bitsandbytes\\cuda_specs.py", line 12, in '
        'get_cuda_version_tuple\n    major, minor = map(int, torch.version.cuda.split("."))\n'
        "AttributeError: 'NoneType' object has no attribute 'split'"
    )
    posix = text.replace("\\", "/")
    assert implied_by(text).rocm and implied_by(posix).rocm


TRITON_OPS = (
    'File "/opt/conda/lib/python3.11/site-packages/bitsandbytes/triton/'
    'int8_matmul_mixed_dequantize.py", line 12, in <module>\n'
    "    from triton.ops.matmul_perf_model import early_config_prune, estimate_matmul_time\n"
    "ModuleNotFoundError: No module named 'triton.ops'"
)


def test_triton_ops_missing_in_a_bitsandbytes_frame_bounds_bitsandbytes():
    """S83: only 0.40.0-0.45.0 import triton.ops; with torch 2.6 on Linux the range is the
    conflict, so the finding is proven, not only reported, and the plan leaves the range."""
    from packaging.version import Version

    from repair.facts import Facts, Gpu, Host
    from repair.pipeline import analyse

    assert str(implied_by(TRITON_OPS).range("bitsandbytes")) == ">=0.40.0,<0.45.1"
    bare = implied_by("ModuleNotFoundError: No module named 'triton.ops'")
    assert bare.range("bitsandbytes") is None and bare.triton_ops_missing  # no importer named
    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": "2.6.0", "bitsandbytes": None},
    )
    a = analyse(facts, error_text=TRITON_OPS)
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-torch-mismatch"]
    assert "triton.ops" in f.summary and f.evidence["source"] == "error message"
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.45.1")


@pytest.mark.parametrize(
    "text",
    [
        "NotImplementedError: Unsloth currently only works on NVIDIA GPUs and Intel GPUs.",
        "NotImplementedError: Unsloth: No NVIDIA GPU found? Unsloth currently only supports GPUs!",
        # later unsloth_zoo/device_type.py (S85)
        "NotImplementedError: Unsloth cannot find any torch accelerator? You need a GPU.",
        "NotImplementedError: Unsloth currently only works on NVIDIA, AMD and Intel GPUs.",
    ],
)
def test_unsloths_device_check_means_torch_saw_no_cuda(text: str) -> None:
    """S85: torch.cuda.is_available() was False. With an NVIDIA GPU and torch's build unknown:
    torch-cpu-build (a CUDA torch step) and, as its alternative, the CUDA-cannot-initialise
    step; with torch known to be a CUDA build, no CPU-build finding."""
    from repair.facts import Driver, Facts, Gpu, Host, TorchBuild
    from repair.pipeline import analyse

    assert implied_by(text).torch_cuda_unavailable
    gpu = dict(driver=Driver(True, None, None, "report"), gpus=(Gpu(0, "RTX 2060", "7.5"),))
    a = analyse(
        Facts(host=Host("Windows", "AMD64"), packages={"torch": None}, **gpu), error_text=text
    )
    [f] = [f for f in a.diagnosis.findings if f.id == "torch-cpu-build"]
    assert f.evidence["or_cuda_init"] is True
    assert [s for s in a.plan.steps if s.package == "torch"]
    assert any("CUDA cannot initialise" in m.text and not m.required for m in a.plan.manual)
    cuda = analyse(
        Facts(
            host=Host("Linux", "x86_64"),
            packages={"torch": "2.5.1+cu121"},
            torch=TorchBuild("2.5.1+cu121", "12.1", None),
            **gpu,
        ),
        error_text=text,
    )
    assert not any(f.evidence.get("or_cuda_init") for f in cuda.diagnosis.findings)


PIP_OFFERED = (
    "ERROR: Could not find a version that satisfies the requirement bitsandbytes>=0.43.3; extra "
    '== "colab-new" (from unsloth[colab-new]) (from versions: 0.31.8, 0.32.0, 0.41.3.post2, '
    "0.42.0)\nERROR: No matching distribution found for bitsandbytes>=0.43.3"
)


def test_pips_list_of_offered_versions_is_a_refusal_of_the_next_tagged_wheel() -> None:
    """S86: pip lists only what it can install here. Ending at 0.42.0, the last untagged wheel,
    it refused 0.43.0's platform tag: the refused-wheel reading (S69-S71) applies, and with
    pip's version unknown it proves no OS bound (the upgrade-pip step)."""
    from repair.facts import Facts, Host
    from repair.pipeline import analyse

    assert implied_by(PIP_OFFERED).bnb_index_versions.endswith("0.42.0")
    facts = Facts(host=Host("Linux", "x86_64"), packages={"torch": "2.5.1", "bitsandbytes": None})
    a = analyse(facts, error_text=PIP_OFFERED)
    first_tagged = (
        next(r for r in KB.bnb.releases if r.version > Version("0.42.0")).builds["linux-x86_64"].tag
    )
    assert a.view.refused_tag == first_tagged != "any"
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert "only up to 0.42.0" in f.summary
    # a list that ends where Requires-Python stops it says nothing about the platform tag
    old_python = Facts(
        host=Host("Linux", "x86_64"),
        python=PythonInfo(None, "3.8.10"),
        packages={"bitsandbytes": None},
    )
    text = PIP_OFFERED.replace("0.42.0)", "0.42.0, 0.43.0, 0.48.2)")
    assert analyse(old_python, error_text=text).view.refused_tag is None


def test_triton_ops_is_bitsandbytes_only_after_a_bitsandbytes_frame():
    """DeepSpeed imported triton.ops too: a traceback through its files, with the user's
    `BitsAndBytesConfig` above it, says nothing about bitsandbytes."""
    deepspeed = (
        "model = AutoModelForCausalLM.from_pretrained(m, quantization_config="
        "BitsAndBytesConfig(load_in_4bit=True))\n"
        '  File "/x/site-packages/deepspeed/ops/transformer/inference/triton/matmul_ext.py", '
        "line 10, in <module>\n    from triton.ops.matmul_perf_model import early_config_prune\n"
        "ModuleNotFoundError: No module named 'triton.ops'"
    )
    assert "bnb-triton-ops" not in implied_by(deepspeed).signatures
    assert "triton-ops-missing" not in implied_by(deepspeed).signatures  # DeepSpeed imported it


BARE_TRITON_OPS = "ModuleNotFoundError: No module named 'triton.ops'"


def _bare_triton(bnb: str | None):
    from repair.facts import Facts, Gpu, Host
    from repair.pipeline import analyse

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": "2.5.1", "bitsandbytes": bnb},
    )
    return analyse(facts, error_text=BARE_TRITON_OPS)


def test_a_bare_triton_ops_error_proves_a_triton_without_it():
    """Without a frame the text names no importer (S92: Python names the first missing part, so
    triton itself imported): a bitsandbytes of unknown version is the suspect, a known release
    in 0.40.0-0.45.0 cannot import beside that triton whatever torch is (S83), a later one is
    not at fault."""
    unknown = _bare_triton(None)
    [f] = [f for f in unknown.diagnosis.findings if f.id == "bnb-torch-mismatch"]
    assert f.evidence["suspected"] is True and f.evidence["conflict"] == ">=0.40.0,<0.45.1"
    [step] = [s for s in unknown.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.45.1") and not unknown.plan.healthy
    assert not [s for s in unknown.plan.steps if s.package == "torch"]
    known = _bare_triton("0.44.1")  # torch 2.5.1 brings triton 3.1: the text shows another one
    [f] = [f for f in known.diagnosis.findings if f.id == "bnb-torch-mismatch"]
    assert "suspected" not in f.evidence
    assert "bnb-torch-mismatch" not in _bare_triton("0.45.1").diagnosis.ids


def test_transformers_wrapper_of_the_bitsandbytes_import_counts_as_its_frame():
    """S87: transformers.integrations.bitsandbytes imports bitsandbytes, torch and accelerate
    only, so its lazy-import wrapper around `No module named 'triton.ops'` is bitsandbytes'
    import failing; another integration's wrapper is not."""
    wrapped = (
        "RuntimeError: Failed to import transformers.integrations.bitsandbytes because of the "
        "following error (look up to see its traceback):\nNo module named 'triton.ops'"
    )
    assert "bnb-triton-ops" in implied_by(wrapped).signatures
    other = wrapped.replace("integrations.bitsandbytes", "integrations.deepspeed")
    assert "bnb-triton-ops" not in implied_by(other).signatures
    # the wrapper's own cause must be the triton.ops error: here bitsandbytes is missing, and a
    # DeepSpeed frame below fails on triton.ops
    missing = wrapped.replace("triton.ops'", "bitsandbytes'") + (
        '\n  File "/x/site-packages/deepspeed/ops/transformer/inference/triton/matmul_ext.py"'
        "\nModuleNotFoundError: No module named 'triton.ops'"
    )
    assert "bnb-triton-ops" not in implied_by(missing).signatures


def test_a_bitsandbytes_frame_failing_on_triton_ops_proves_the_clash_on_any_platform():
    """The text shows a triton without triton.ops beside bitsandbytes 0.45.0 (triton-windows
    installed by hand): the clash holds whatever brought that triton, and the plan moves
    bitsandbytes out of the range."""
    from repair.facts import Facts, Gpu, Host, TorchBuild
    from repair.pipeline import analyse

    text = TRITON_OPS.replace("/opt/conda/lib/python3.11/site-packages/", "C:\\env\\Lib\\").replace(
        "bitsandbytes/triton/", "bitsandbytes\\triton\\"
    )
    facts = Facts(
        host=Host("Windows", "AMD64"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": "2.6.0+cu124", "bitsandbytes": "0.45.0"},
        torch=TorchBuild("2.6.0+cu124", "12.4", None),
    )
    a = analyse(facts, error_text=text)
    assert "bnb-torch-mismatch" in a.diagnosis.ids
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.45.1")


TRITON_DRIVER = (
    "RuntimeError: Failed to import transformers.integrations.bitsandbytes because of the "
    "following error (look up to see its traceback):\n"
    "cannot import name 'driver' from 'triton.runtime'"
)


@pytest.mark.parametrize(
    ("torch", "bnb", "text", "moves"),
    [
        # torch 2.0.1 brings triton 2.0.0, without triton.runtime.driver (S136)
        ("2.0.1", None, TRITON_DRIVER, True),
        ("2.0.1", "0.45.5", "", True),  # the pair alone: the conflict holds without a text
        ("2.0.1", "0.45.0", "", False),  # 0.45.0 imports triton.ops, which triton 2.0.0 has
        ("2.1.0", "0.45.5", "", False),  # torch 2.1 brings triton 2.1.0, which has the driver
    ],
)
def test_bitsandbytes_importing_triton_runtime_driver_beside_torch_2_0(torch, bnb, text, moves):
    """bitsandbytes 0.45.1-0.49.x import triton.runtime.driver, which triton before 2.1 lacks
    (S136): beside torch 2.0.x (triton 2.0.0) the plan takes a release that imports, torch
    stays; the text alone bounds an unreported bitsandbytes to that range."""
    from repair.facts import Facts, Gpu, Host, TorchBuild
    from repair.pipeline import analyse

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": torch, "bitsandbytes": bnb},
        torch=TorchBuild(torch, "11.7" if torch == "2.0.1" else "12.1", None),  # PyPI's builds
    )
    a = analyse(facts, error_text=text or None)
    assert ("bnb-torch-mismatch" in a.diagnosis.ids) is moves
    steps = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert bool(steps) is moves
    if moves:
        assert Version(steps[0].to) not in Range(">=0.45.1,<0.50.0")
        assert not [s for s in a.plan.steps if s.package == "torch"]
    if text:
        assert implied_by(text).range("bitsandbytes") == Range(">=0.45.1,<0.50.0")
        assert implied_by("ImportError: " + text.rsplit("\n", 1)[1]).triton_driver_missing


def test_where_no_bitsandbytes_fits_every_torch_of_a_cuda_the_one_for_the_most_is_chosen():
    """torch's version unknown, its CUDA 11.8: 0.45.1-0.49.x do not import beside torch 2.0's
    triton (S136), 0.45.0 not beside 2.6's (S83), 0.46 and later declare torch >= 2.2. The
    choice is the release that imports beside the most of them, and the plan names the torch
    releases it leaves out."""
    from repair.facts import Facts, Gpu, Host, TorchBuild
    from repair.pipeline import analyse

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "RTX 3090", "8.6"),),
        packages={"torch": None, "bitsandbytes": "0.37.2"},
        torch=TorchBuild(None, "11.8", None),
    )
    a = analyse(facts)
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert step.to == "0.45.5"
    [line] = [u for u in a.plan.unknown if u.startswith("torch's version: bitsandbytes 0.45.5")]
    assert "does not import beside torch 2.0.0, 2.0.1, which" in line
    assert not any(
        u.startswith("torch version: bitsandbytes' torch bounds") for u in a.plan.unknown
    )


@pytest.mark.parametrize(
    ("system", "gpu", "hip", "available", "amd_advice"),
    [
        ("Linux", "AMD Radeon RX 7900 XTX", None, None, True),  # a CUDA call, no NVIDIA driver
        # is_available() False too: the plan moves torch to a ROCm build for gfx1100 (S101),
        # and that step is the repair
        ("Linux", "AMD Radeon RX 7900 XTX", None, False, False),
        ("Linux", "AMD Radeon RX 7900 XTX", "6.2.41133", None, False),  # a ROCm torch
        ("Linux", "NVIDIA GeForce RTX 3090", None, None, False),  # an NVIDIA host: the driver
        # PyTorch's ROCm wheels are Linux's: no such step on Windows (rocm-host says why)
        ("Windows", "AMD Radeon RX 7900 XTX", None, None, False),
    ],
)
def test_a_cuda_call_without_an_nvidia_driver_on_an_amd_host_asks_for_a_rocm_torch(
    system, gpu, hip, available, amd_advice
):
    """S113: "Found no NVIDIA driver on your system" is a CUDA call that found no NVIDIA driver.
    On an AMD host torch's CUDA API reaches the GPU only as a ROCm build, so the step is torch's
    ROCm build, not an NVIDIA driver."""
    from repair.facts import Facts, Gpu, Host, TorchBuild
    from repair.pipeline import analyse

    facts = Facts(
        host=Host(system, "x86_64" if system == "Linux" else "AMD64"),
        gpus=(Gpu(0, gpu, None),),
        packages={"torch": None},
        torch=TorchBuild(None, None, hip, cuda_available=available)
        if hip or available is not None
        else None,
    )
    text = "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an"
    a = analyse(facts, error_text=text)
    texts = [m.text for m in a.plan.manual if m.id == "no-nvidia-driver" and m.required]
    assert any("ROCm build" in t and "rocmX.Y" in t for t in texts) is amd_advice
    if available is False:
        [step] = [s for s in a.plan.steps if s.package == "torch"]
        assert "+rocm" in (step.to or "")


@pytest.mark.parametrize(
    "text",
    [
        "NameError: name 'str2optimizer32bit' is not defined",
        "NameError: name 'str2optimizer8bit_blockwise' is not defined",
        "str2optimizer32bit is undefined",  # as reports retype it
    ],
)
def test_a_legacy_optimizer_table_left_undefined_is_the_cpu_librarys_fallback(text):
    """Legacy bitsandbytes defines its str2optimizer tables only where its CUDA library loaded
    (functional.py at 0.37.0, S23): any of them undefined means the CPU library was loaded."""
    from repair.catalogue import load_catalogue
    from repair.explain import explain

    assert "cuda-libs-not-found" in {m.id for m in explain(text, load_catalogue())}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ggml_cuda_init: failed to initialize CUDA: system not yet initialized", 802),
        ("CUDA initialization fails with 802 system error", 802),  # as reports name it
        ("ggml_cuda_init: failed to initialize CUDA: unknown error", 999),
        ("CUDA used 802 MiB of memory", None),  # a number, not the error
        ("RuntimeError: CUDA failed: 802 MiB free", None),
        ("CUDA error 2 at ggml-cuda.cu:802: out of memory", None),  # a line number
    ],
)
def test_cudas_own_error_strings_after_another_programs_words(text, code):
    """Any CUDA program prints cudaGetErrorString's text after its own words (llama.cpp's
    ggml_cuda_init, S30): 802's "system not yet initialized" and 999's "unknown error" name the
    class and the code's advice (nvidia-fabricmanager, nvidia_uvm)."""
    from repair.catalogue import load_catalogue
    from repair.explain import explain

    assert implied_by(text).cuda_error == code
    assert ("cuda-init-failed" in {m.id for m in explain(text, load_catalogue())}) is bool(code)


def test_vllms_gate_on_a_gpu_the_facts_do_not_list_is_not_a_required_new_gpu():
    from repair.facts import Facts, Gpu, Host
    from repair.pipeline import analyse

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "A10G", "8.6"),),
        packages={"torch": "2.5.1", "bitsandbytes": "0.45.0"},
    )
    a = analyse(facts, error_text=VLLM_GATE)
    [f] = [f for f in a.diagnosis.findings if f.evidence.get("serving_gate")]
    assert f.evidence["other_device"] is True and "the facts list 8.6" in f.summary
    assert not any(m.required and "vLLM" in m.text for m in a.plan.manual)


def test_a_refused_win_amd64_wheel_names_only_the_windows_causes():
    from repair.facts import Facts, Host
    from repair.pipeline import analyse

    facts = Facts(host=Host("Windows", "AMD64"), packages={"bitsandbytes": None})
    a = analyse(facts, error_text=PIP_OFFERED)
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert "musl" not in f.summary and "pip older" not in f.summary
    assert "32-bit or an ARM64 Python" in f.summary


@pytest.mark.parametrize(
    "text",
    [
        "RuntimeError: Cannot re-initialize CUDA in forked subprocess. To use CUDA with "
        "multiprocessing, you must use the 'spawn' start method",
        "RuntimeError: CUDA has been initialized before the `notebook_launcher` could create a "
        "forked subprocess. This likely stems from an outside import causing issues once the "
        "`notebook_launcher()` is called.",
    ],
)
def test_a_forked_worker_after_cuda_is_cuda_init_failed_with_its_own_advice(text: str) -> None:
    """S90: torch's bad-fork check and accelerate's notebook_launcher rewording of it: the fault
    is the launch, not a package, so the plan's step is the fork advice and no package moves."""
    from repair.facts import Facts, Gpu, Host
    from repair.pipeline import analyse

    assert implied_by(text).cuda_forked and implied_by(text).cuda_error is None
    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "A10G", "8.6"),),
        packages={"torch": "2.5.1", "bitsandbytes": "0.45.0"},
    )
    a = analyse(facts, error_text=text)
    assert "cuda-init-failed" in a.diagnosis.ids and not a.plan.steps
    [step] = [m for m in a.plan.manual if m.id == "cuda-init-failed"]
    assert "forked" in step.text and "spawn" in step.text


REMOTE_CODE = (
    "ImportError: This modeling file requires the following packages that were not found in "
    "your environment: bitsandbytes. Run `pip install bitsandbytes`"
)


def test_transformers_remote_code_check_naming_bitsandbytes_is_an_import_that_failed():
    """S95: check_imports names the packages whose import raised ImportError, which includes a
    bitsandbytes that is installed but whose own import failed (0.39.0-0.41.3.post2 import
    scipy undeclared): bnb-missing says both, and the plan installs a current release."""
    from repair.facts import Facts, Host
    from repair.pipeline import analyse

    assert implied_by(REMOTE_CODE).bnb_absent
    assert not implied_by(REMOTE_CODE.replace("bitsandbytes", "einops")).bnb_absent
    a = analyse(
        Facts(host=Host("Linux", "x86_64"), packages={"torch": "2.5.1"}), error_text=REMOTE_CODE
    )
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-missing"]
    assert "or its own import failed" in f.summary and "0.39.0-0.41.3.post2 import" in f.summary
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.42.0")
    # a probe's list that shows it installed wins over the text
    shown = Facts(
        host=Host("Linux", "x86_64"),
        packages={"torch": "2.5.1", "bitsandbytes": "0.41.0"},
        extra={"packages_source": "probe"},
    )
    assert "bnb-missing" not in analyse(shown, error_text=REMOTE_CODE).diagnosis.ids


@pytest.mark.parametrize(
    ("text", "peft"),
    [
        (
            "ValueError: Linear4bit does not support DoRA yet, please set it to False",
            ">=0.9.0,<0.10.0",
        ),
        (
            "TypeError: LoraConfig.__init__() got an unexpected keyword argument 'use_dora'",
            "<0.9.0",
        ),
    ],
)
def test_dora_refusals_bound_peft_below_its_4bit_dora_floor(text: str, peft: str) -> None:
    """S96: peft 0.9.0 brought DoRA and refused it in its bitsandbytes layers; 0.10.0 takes it
    there. The text bounds peft and shows the job's feature, so its floor applies."""
    from repair.facts import Facts, Host
    from repair.pipeline import analyse

    implied = implied_by(text)
    assert str(implied.range("peft")) == peft and implied.hf_feature == "4bit-dora"
    a = analyse(Facts(host=Host("Linux", "x86_64"), packages={"torch": "2.5.1"}), error_text=text)
    [f] = [f for f in a.diagnosis.findings if f.id == "hf-stack-too-old"]
    assert f.evidence["minimum"] == "0.10.0"
    [step] = [s for s in a.plan.steps if s.package == "peft"]
    assert "0.10.0" in step.to
    # a known peft that has it: the floor holds, nothing to do for peft
    fine = Facts(host=Host("Linux", "x86_64"), packages={"torch": "2.5.1", "peft": "0.10.0"})
    assert not [s for s in analyse(fine, error_text=text).plan.steps if s.package == "peft"]


@pytest.mark.parametrize(
    ("text", "peft"),
    [
        ("TypeError: __init__() got an unexpected keyword argument 'use_dora'", "<0.9.0"),
        ("TypeError: QuantLinear.__init__() got an unexpected keyword argument 'use_dora'", None),
        ("TypeError: Linear.__init__() got an unexpected keyword argument 'use_dora'", None),
    ],
)
def test_only_loraconfig_refusing_use_dora_bounds_peft(text: str, peft: str | None) -> None:
    # Python before 3.10 names no class; another class's __init__ is not peft's LoraConfig
    implied = implied_by(text)
    assert (str(implied.range("peft")) if implied.range("peft") else None) == peft


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("RuntimeError: No CUDA GPUs are available", "cuda_error", 100),
        (
            "RuntimeError: CUDA driver initialization failed, you might not have a CUDA gpu.",
            "cuda_error",
            3,
        ),
        (
            "ImportError: libcuda.so.1: cannot open shared object file: No such file or directory",
            "libcuda_unregistered",
            True,
        ),
    ],
)
def test_torchs_own_words_for_cuda_errors_and_the_loaders_refusal_of_libcuda(text, key, value):
    """S97: torch's device count words error 100 "No CUDA GPUs are available" and error 3 "CUDA
    driver initialization failed"; the dynamic loader's refusal of libcuda.so.1 is the driver
    library missing from the loader's view, as triton's message says (S72). Each names its
    class, with the step of its fault."""
    assert getattr(implied_by(text), key) == value
    ids = {m.id for m in pipeline.explain_text(text, None).matches}
    assert ids == {"cuda-libs-not-found" if key == "libcuda_unregistered" else "cuda-init-failed"}


def _report(system: str, torch: dict, *, gpus: list | None = None, driver: bool | None = True):
    doc: dict = {
        "schema": "qfix.facts/1",
        "host": {"system": system, "machine": "AMD64" if system == "Windows" else "x86_64"},
        "packages": {"torch": torch.get("version")},
        "torch": torch,
    }
    if driver is not None:
        doc["driver"] = {"found": driver, "source": "report"}
    if gpus is not None:
        doc["gpus"] = gpus
    return facts_from_dict(doc)


@pytest.mark.parametrize("system", ["Windows", "Linux"])
def test_cuda_unavailable_in_the_facts_with_the_build_unreported_is_a_cpu_torch_or_init(system):
    """Issue 12 item 1: `cuda_available: false` in a report (no build, no version) on a host
    with an NVIDIA driver is read as the error text saying so is: a CPU-only torch (pip's default
    on Windows) or a CUDA one that cannot initialise; the plan moves torch to a CUDA build."""
    a = _analyse(_report(system, {"cuda_available": False}), None)
    [f] = [f for f in a.diagnosis.findings if f.id == "torch-cpu-build"]
    assert f.evidence["source"] == "the facts" and f.evidence["or_cuda_init"] is True
    assert ("pip's default torch on Windows" in f.summary) is (system == "Windows")
    assert a.plan.torch_variant is not None and a.plan.torch_variant.startswith("cu")
    # no driver found: no torch build would see a GPU, so the CPU build is no fault
    quiet = _analyse(_report(system, {"cuda_available": False}, driver=False), None)
    assert "torch-cpu-build" not in quiet.diagnosis.ids


def test_a_cpu_torch_asked_for_cuda_on_a_machine_of_unknown_gpus_is_named():
    """transformers' "No GPU found. A GPU is needed for quantization." follows `if not
    torch.cuda.is_available()` (S25): with torch 2.3.0 on Windows (the CPU-only PyPI build), the
    build is the fault wherever there is a GPU; the finding says the GPU is not known."""
    text = "RuntimeError: No GPU found. A GPU is needed for quantization."
    facts = _report("Windows", {"version": "2.3.0"}, driver=None)
    a = _analyse(facts, text)
    assert a.view.implied.torch_cuda_unavailable
    [f] = [f for f in a.diagnosis.findings if f.id == "torch-cpu-build"]
    assert f.evidence["gpu_unknown"] is True and "not known" in f.summary
    assert "torch-cpu-build" not in _analyse(facts, None).diagnosis.ids


@pytest.mark.parametrize("name", ["paged_adamw_32bit", "paged_lion_8bit", "adamw_8bit"])
def test_an_optimizer_name_transformers_lacks_proves_a_transformers_below_4_30(name):
    """S108: the bitsandbytes optimizer names of TrainingArguments(optim=...) first appear in
    transformers 4.30.0; OptimizerNames refuses them before with "is not a valid"."""
    text = f"ValueError: {name} is not a valid OptimizerNames, please select one of ['adamw_hf']"
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "packages": {"transformers": None},
        }
    )
    a = _analyse(facts, text)
    assert a.view.implied.range("transformers") == SpecifierSet("<4.30.0")
    assert "hf-stack-too-old" in a.diagnosis.ids
    step = _step(a.plan, "transformers")
    assert step is not None and Version("4.30.0") in SpecifierSet(step.to)
    # a name transformers has always had proves nothing
    assert (
        implied_by("ValueError: adamw_torch is not a valid OptimizerNames").range("transformers")
        is None
    )


def test_a_kernel_symbol_missing_from_a_module_is_not_cuda_failing_to_start():
    """CUDA_ERROR_NOT_FOUND (500) names cuda-init-failed only as CUDA starts (S107); a kernel
    missing from a loaded module (cuModuleGetFunction) is another fault."""
    start = implied_by(
        'CUDA initialization will return error 500 "named symbol not found" (CUDA_ERROR_NOT_FOUND).'
    )
    assert start.cuda_error == 500
    kernel = implied_by("triton kernel cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND")
    assert kernel.cuda_error is None
    facts = _report(
        "Linux",
        {"version": "2.5.1+cu121", "cuda": "12.1"},
        gpus=[{"index": 0, "name": "RTX 4090", "compute_capability": "8.9"}],
    )
    assert (
        "cuda-init-failed"
        not in _analyse(
            facts, "RuntimeError: triton cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND"
        ).diagnosis.ids
    )


def test_a_cuda_torch_that_sees_no_gpu_with_the_gpus_unreported_is_cuda_init_failed():
    """A driver found, the GPUs not listed, torch a CUDA build and cuda_available false: CUDA
    cannot start in that process (the GPUs unreported do not make it healthy)."""
    facts = _report("Linux", {"version": "2.5.1+cu121", "cuda": "12.1", "cuda_available": False})
    a = _analyse(facts, None)
    assert "cuda-init-failed" in a.diagnosis.ids and not a.plan.healthy


def test_the_cuda_setup_nameerror_proves_a_known_bad_range_and_moves_past_it():
    """S110: "NameError: name 'cuda_setup' is not defined" is printed only by bitsandbytes
    0.36.0-0.37.0 (on a GPU below 7.5): every release of the range is known bad, so the text
    alone names bnb-known-bad-release and the plan moves to a good release above it."""
    text = (
        "  File \".../cuda_setup/main.py\", line 153\nNameError: name 'cuda_setup' is not defined"
    )
    implied = implied_by(text)
    assert implied.range("bitsandbytes") == SpecifierSet(">=0.36.0,<0.37.1")
    a = pipeline.analyse(Facts(), error_text=text)
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-known-bad-release"]
    assert f.severity == "error" and "use 0.37.1" in f.summary
    assert (
        f.evidence["kind"] == "old-gpu-crash" and f.evidence["bitsandbytes"] == ">=0.36.0,<0.37.1"
    )
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.37.1") and not KB.bnb.release(step.to).known_bad


BNB_OPS_CU = (
    '  File "C:\\sd\\venv\\lib\\site-packages\\bitsandbytes\\functional.py", line 1436\n'
    "Error no kernel image is available for execution on the device at line 167 in file "
    "D:\\ai\\tool\\bitsandbytes\\csrc\\ops.cu"
)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (BNB_OPS_CU, {"gpu-too-old-for-bnb"}),
        (
            "Error invalid device function at line 49 in file /src/csrc/ops.cu",
            {"gpu-too-old-for-bnb"},
        ),
        # torch's own words: its build lacks the GPU (nothing says bitsandbytes' library)
        (
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            {"gpu-arch-unsupported"},
        ),
    ],
)
def test_whose_kernel_is_missing_is_read_from_who_printed_it(text, ids):
    """bitsandbytes' CUDA_CHECK_RETURN prints "Error <cudaGetErrorString> at line N in file
    <.cu>" (S111): there the missing kernel is its library's, not torch's, so the plan moves
    bitsandbytes and names no torch arch fault; torch's RuntimeError form stays torch's."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Windows", "machine": "AMD64"},
            "driver": {"found": True},
            "gpus": [{"index": 0, "name": "NVIDIA GeForce GTX 1060", "compute_capability": "6.1"}],
            "python": {"in_venv": True},
            "packages": {"bitsandbytes": None},
        }
    )
    a = _analyse(facts, text)
    found = set(a.diagnosis.ids) & {"gpu-too-old-for-bnb", "gpu-arch-unsupported"}
    assert found == ids
    if ids == {"gpu-too-old-for-bnb"}:
        assert [s.package for s in a.plan.steps] == ["bitsandbytes"]


@pytest.mark.parametrize("gap", [" ", "  "])
def test_the_trainers_8bit_refusal_proves_transformers_4_26_and_plans_its_floor(gap):
    """transformers 4.26.0 and 4.26.1 refuse every 8-bit model in Trainer.__init__ ("Training
    an 8-bit model is not supported yet"; absent in 4.25.1, replaced in 4.27.0: S112): the text
    proves that range, and the plan moves transformers to at least 4.27.0 (the 8bit-training
    floor), the 4-bit floors included."""
    text = (
        "ValueError: The model you want to train is loaded in 8-bit precision. "
        f"Training{gap}an 8-bit model is not supported yet."
    )
    implied = implied_by(text)
    assert implied.range("transformers") == SpecifierSet(">=4.26.0,<4.27.0")
    assert implied.hf_feature == "8bit-training"
    [floor] = [r for r in KB.hf if r.feature == "8bit-training"]
    assert floor.package == "transformers" and floor.minimum == Version("4.27.0")
    a = _analyse(
        facts_from_dict({"schema": "qfix.facts/1", "packages": {"transformers": None}}), text
    )
    found = [f for f in a.diagnosis.findings if f.id == "hf-stack-too-old"]
    assert any(f.evidence.get("minimum") == "4.27.0" for f in found)
    [step] = [s for s in a.plan.steps if s.package == "transformers"]
    assert SpecifierSet(step.to).contains("4.30.0") and not SpecifierSet(step.to).contains("4.26.1")


OPS_CU_LINE = (
    "Error no kernel image is available for execution on the device at line 49 in file "
    "/src/csrc/ops.cu"
)


def test_explain_lists_what_the_text_rules_out_apart_from_its_matches():
    """bitsandbytes' own ops.cu line matches torch's arch class by its words, but proves the
    kernel was bitsandbytes' (S111): explain shows it as ruled out, as the plan's note does,
    not as a match with torch's fix."""
    from repair.pipeline import explain_text
    from repair.render import render_explain

    result = explain_text(OPS_CU_LINE, None)
    assert [m.id for m in result.matches] == ["gpu-too-old-for-bnb"]
    assert result.ruled_out == ("gpu-arch-unsupported",)
    assert "ruled out by the facts and what the message itself proves: gpu-arch-unsupported" in (
        render_explain(result)
    )


def test_a_kernel_missing_from_a_wheel_that_has_it_asks_to_reinstall_that_wheel():
    """bitsandbytes 0.50.2's cuda121 library is listed with SASS for sm_60 (plans/
    bitsandbytes.toml), which a GTX 1060 (6.1) runs: its ops.cu reporting no kernel means
    another build ran, or the list is wrong, so the plan asks for the wheel again or a source
    build (a required step) instead of an error with nothing to do."""
    lib = KB.bnb.release("0.50.2").builds["linux-x86_64"].sass("121")
    assert lib and any(v.major == 6 and v <= Version("6.1") for v in lib)
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35"},
            "driver": {"found": True, "version": "550.54.15", "cuda": "12.4"},
            "gpus": [{"index": 0, "name": "NVIDIA GeForce GTX 1060", "compute_capability": "6.1"}],
            "python": {"version": "3.11.7", "in_venv": True},
            "packages": {"torch": "2.5.1+cu121", "bitsandbytes": "0.50.2"},
            "torch": {"version": "2.5.1+cu121", "cuda": "12.1"},
        }
    )
    a = _analyse(facts, OPS_CU_LINE)
    [f] = [f for f in a.diagnosis.findings if f.id == "gpu-too-old-for-bnb"]
    assert f.evidence["pypi_library_covers"] == "cuda121"
    [m] = [m for m in a.plan.manual if m.id == "gpu-too-old-for-bnb"]
    assert m.required and "--force-reinstall --no-deps bitsandbytes==0.50.2" in m.text
    # a list read from build scripts only keeps its mark, and the source build is named too
    band = KB.bnb.release("0.50.2").builds["linux-x86_64"].sass_band("121")
    assert ("UNCONFIRMED" in m.text) is (not band.confirmed)
    if not band.confirmed:
        assert "-DCOMPUTE_CAPABILITY=61" in m.text


# ------------------------------------------------------------------ the code asked for CUDA (S113)

CUDA_ASKED_TEXTS = [
    "AssertionError: Torch not compiled with CUDA enabled",
    "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA "
    "GPU and installed a driver from http://www.nvidia.com/Download/index.aspx",
]


def _no_gpu_host(system: str, **packages: str | None) -> Facts:
    machine = "arm64" if system == "Darwin" else "x86_64"
    return facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": system, "machine": machine},
            "driver": {"found": False, "source": "report"},
            "gpus": [],
            "packages": dict(packages),
        }
    )


@pytest.mark.parametrize("text", CUDA_ASKED_TEXTS)
@pytest.mark.parametrize("system", ["Darwin", "Linux"])
def test_code_that_asked_for_cuda_on_a_machine_without_a_gpu_needs_one(text, system):
    """torch raises these only when code asks it for CUDA (S113). On a machine with no NVIDIA
    GPU no package change serves that call: the no-driver finding is an error and its step is
    required (a Mac and a Linux box alike); without the text the same facts keep the optional
    step."""
    assert implied_by(text).cuda_requested
    facts = _no_gpu_host(system, torch="2.1.2", bitsandbytes=None)
    a = _analyse(facts, text)
    [f] = [f for f in a.diagnosis.findings if f.id == "no-nvidia-driver"]
    assert f.severity.value == "error" and f.evidence["cuda_requested"] is True
    [m] = [m for m in a.plan.manual if m.id == "no-nvidia-driver"]
    assert m.required and "asked torch for a CUDA device" in m.text
    quiet = _analyse(facts, None)
    [m] = [m for m in quiet.plan.manual if m.id == "no-nvidia-driver"]
    assert not m.required


def test_a_gpu_host_asking_cuda_of_a_cpu_torch_still_gets_a_cuda_torch():
    """With an NVIDIA GPU there, the same assertion is a CPU-only torch: torch-cpu-build plans a
    CUDA build, and nothing asks for another machine."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Windows", "machine": "AMD64"},
            "driver": {"found": True, "version": "551.61", "cuda": "12.4", "source": "report"},
            "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 4070", "compute_capability": "8.9"}],
            "packages": {"torch": "2.3.0"},
        }
    )
    a = _analyse(facts, CUDA_ASKED_TEXTS[0])
    assert "torch-cpu-build" in a.diagnosis.ids and "no-nvidia-driver" not in a.diagnosis.ids
    assert _step(a.plan, "torch") is not None
    assert not any(m.required for m in a.plan.manual)


def test_a_library_device_check_or_a_checkpoint_is_not_a_request_for_cuda():
    """transformers' "No GPU found" is its own check, which newer releases lift, and torch.load's
    "deserialize object on a CUDA device" is where a checkpoint was saved (map_location='cpu'
    loads it anywhere): neither is code asking for CUDA, so neither makes the GPU required."""
    for text in (
        "No GPU found. A GPU is needed for quantization.",
        "RuntimeError: Attempting to deserialize object on a CUDA device but "
        "torch.cuda.is_available() is False. If you are running on a CPU-only machine, please use "
        "torch.load with map_location=torch.device('cpu') to map your storages to the CPU.",
    ):
        facts = _no_gpu_host("Linux", transformers="4.44.2", torch="2.4.1+cpu")
        a = _analyse(facts, text)
        assert not a.view.implied.cuda_requested and not a.view.implied.gpu_only_library
        assert not any(m.required for m in a.plan.manual if m.id == "no-nvidia-driver")


# ------------------------------------------------------ whose "No GPU found" it is (S100, S114)

NO_GPU = "RuntimeError: No GPU found. A GPU is needed for quantization."


def _frame(path: str) -> str:
    return (
        f'  File "{path}", line 64, in validate_environment\n'
        '    raise RuntimeError("No GPU found. A GPU is needed for quantization.")\n' + NO_GPU
    )


def test_a_transformers_quantizer_frame_proves_a_release_below_4_45():
    """Only transformers up to 4.44.2 raise it in quantizer_bnb_4bit.py/quantizer_bnb_8bit.py
    (S114: not in 4.45.2, 4.52.4 or 4.57.1); a Windows path reads the same."""
    for path in (
        "/venv/lib/python3.10/site-packages/transformers/quantizers/quantizer_bnb_4bit.py",
        "C:\\env\\Lib\\site-packages\\transformers\\quantizers\\quantizer_bnb_8bit.py",
    ):
        assert implied_by(_frame(path)).no_gpu_gate_of == "transformers"
        facts, _ = implied_facts(Facts(), _frame(path))
        implied = make_view(facts, KB).implied
        assert implied.range("transformers") == SpecifierSet("<4.45.0")
    # an EETQ or HQQ quantizer raises the same words at every release: no range
    eetq = "/venv/lib/python3.10/site-packages/transformers/quantizers/quantizer_eetq.py"
    assert implied_by(_frame(eetq)).range("transformers") is None


DIFFUSERS_FRAME = _frame(
    "/Users/me/venv/lib/python3.11/site-packages/diffusers/quantizers/bitsandbytes/bnb_quantizer.py"
)


def test_diffusers_refusing_apples_gpu_plans_the_release_that_accepts_it():
    """diffusers' 4-bit quantizer takes torch.mps from 0.39.0 (S114): on a Mac its refusal
    proves an older diffusers, and the plan raises it to the 4bit-mps floor, torch untouched."""
    facts = _no_gpu_host("Darwin", diffusers=None, transformers=None, python=None)
    a = _analyse(facts, DIFFUSERS_FRAME)
    assert a.view.implied.range("diffusers") == SpecifierSet("<0.39.0")
    found = [f for f in a.diagnosis.findings if f.id == "hf-stack-too-old"]
    assert [f.evidence["package"] for f in found] == ["diffusers"]
    step = _step(a.plan, "diffusers")
    assert step is not None and SpecifierSet(step.to) == SpecifierSet(">=0.39.0")
    assert _step(a.plan, "torch") is None and _step(a.plan, "transformers") is None


def test_diffusers_on_a_python_below_its_requirement_asks_for_python_first():
    """diffusers from 0.37.1 declares Requires-Python >= 3.10 (S114): with Python 3.9 the step
    could not install, so a new Python is the required manual step."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Darwin", "machine": "arm64"},
            "driver": {"found": False, "source": "report"},
            "gpus": [],
            "python": {"version": "3.9.18"},
            "packages": {"diffusers": "0.35.2"},
        }
    )
    a = _analyse(facts, DIFFUSERS_FRAME)
    assert _step(a.plan, "diffusers") is None
    assert any(m.required and ">= 3.10" in m.text for m in a.plan.manual)


def test_diffusers_refusing_a_machine_without_any_gpu_needs_one():
    """No diffusers release quantizes on the CPU (S114): on Linux without an NVIDIA GPU the job
    needs a GPU, the required step of no-nvidia-driver, worded as diffusers' need (not as code
    asking for CUDA) and without the CPU 4-bit alternative, which diffusers cannot take; no
    diffusers range is claimed. With the system unknown, nothing is inferred."""
    a = _analyse(_no_gpu_host("Linux", diffusers=None), DIFFUSERS_FRAME)
    implied = a.view.implied
    assert implied.gpu_only_library == "diffusers" and not implied.cuda_requested
    assert implied.range("diffusers") is None
    [m] = [m for m in a.plan.manual if m.id == "no-nvidia-driver"]
    assert m.required and "diffusers's bitsandbytes quantizer" in m.text
    assert "asked torch" not in m.text and "on the CPU with transformers" not in m.text
    assert _step(a.plan, "diffusers") is None
    unknown_os = facts_from_dict({"schema": "qfix.facts/1", "packages": {"diffusers": None}})
    assert _analyse(unknown_os, DIFFUSERS_FRAME).view.implied.gpu_only_library is None


@pytest.mark.parametrize(
    ("packages", "of"),
    [
        ({"diffusers": None}, "diffusers"),
        ({"transformers": None}, "transformers"),
        ({"transformers": None, "diffusers": None}, None),
        ({}, None),
        # a known version that cannot raise it rules its package out
        ({"transformers": "4.57.1"}, None),
        ({"transformers": "4.57.1", "diffusers": None}, "diffusers"),
        ({"transformers": "4.40.2", "diffusers": "0.42.1"}, "transformers"),
    ],
)
def test_without_a_frame_the_package_list_says_whose_check_it_was(packages, of):
    """The bare sentence is transformers' (<= 4.44.2) or diffusers' (4-bit on a Mac: <= 0.38.0);
    only a package list that shows one of the two installed at a version that raises it, and
    not the other, names it."""
    facts, _ = implied_facts(_no_gpu_host("Darwin", **packages), NO_GPU)
    implied = make_view(facts, KB).implied
    assert implied.no_gpu_gate_of == of
    if of is None:
        assert implied.range("transformers") is None and implied.range("diffusers") is None


def test_a_newer_diffusers_refusing_a_mac_claims_no_range():
    """diffusers 0.40.0 takes Apple's GPU for 4-bit: its refusal was an 8-bit load or a torch
    without MPS, so no range below 0.39.0 is claimed against the version the facts give."""
    facts, _ = implied_facts(_no_gpu_host("Darwin", diffusers="0.40.0"), DIFFUSERS_FRAME)
    implied = make_view(facts, KB).implied
    assert implied.no_gpu_gate_of == "diffusers" and implied.range("diffusers") is None


def test_a_later_frame_between_a_transformers_frame_and_the_refusal_proves_nothing():
    """transformers 4.57.1's from_pretrained (modeling_utils.py) calls the HQQ quantizer, which
    raises the same sentence at every release: with that frame between, no range is read."""
    text = (
        '  File "/v/site-packages/transformers/modeling_utils.py", line 4900, in from_pretrained\n'
        "    hf_quantizer.validate_environment(\n"
        '  File "/v/site-packages/transformers/quantizers/quantizer_hqq.py", line 80, in '
        "validate_environment\n"
        '    raise RuntimeError("No GPU found. A GPU is needed for quantization.")\n' + NO_GPU
    )
    implied = implied_by(text)
    assert implied.no_gpu_gate_of is None and implied.range("transformers") is None


# ------------------------------------------ torch's version unknown, its CUDA known (issue 12 #5)


def test_an_unknown_torch_of_a_known_cuda_bounds_python_and_the_conflicts():
    """torch's CUDA is 12.4 (the loader printed it) but not its version: it is one of the torch
    releases built for cu124 (2.4.0-2.6.0), so the Python floor is theirs (3.8, not 3.7), and
    bitsandbytes 0.45.0 -- whose triton.ops import fails beside torch 2.6.0 -- is passed over
    for a release that imports beside each of them."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "driver": {"found": True, "source": "report"},
            "gpus": [{"index": 0, "compute_capability": "7.5"}],
            "packages": {"bitsandbytes": None},
            "torch": {"cuda": "12.4"},
        }
    )
    text = (
        "CUDA SETUP: Required library version not found: libbitsandbytes_cuda124.so. Maybe you "
        "need to compile it from source?\nCUDA SETUP: Defaulting to libbitsandbytes_cpu.so..."
    )
    a = _analyse(facts, text)
    step = _step(a.plan, "bitsandbytes")
    assert step is not None
    chosen = KB.bnb.release(step.to)
    torches = [Version(v) for v in ("2.4.0", "2.4.1", "2.5.0", "2.5.1", "2.6.0")]
    assert all(chosen.admits_torch(t) for t in torches)
    assert all(
        KB.bnb.conflict(chosen.version, "linux-x86_64", t, cuda_build=True) is None for t in torches
    )
    assert chosen.admits_python(Version("3.8"))
    assert any("a torch built for CUDA 12.4 supports (>= 3.8)" in u for u in a.plan.unknown)


@pytest.mark.parametrize(("bnb", "said"), [("0.42.0", True), (None, True), ("0.49.1", False)])
def test_the_mac_note_names_the_macos_wheels_only_where_they_may_be_missing(bnb, said):
    """ "bitsandbytes >= 0.49.0 has macOS wheels" is news to a Mac with an older or unknown
    release, not to one that runs 0.49.1."""
    facts = _no_gpu_host("Darwin", torch="2.5.1", bitsandbytes=bnb)
    [m] = [m for m in _analyse(facts, None).plan.manual if m.id == "no-nvidia-driver"]
    assert ("has macOS wheels" in m.text) is said


# ------------------------------------------------ suspects for a torch or bitsandbytes unreported


def _gpu_doc(
    system: str, machine: str, gpu: str, cc: str, driver: tuple[str, str] = ("560.94", "12.6")
) -> dict:
    """A report of one NVIDIA GPU and its driver, torch installed at a version not given."""
    return {
        "schema": "qfix.facts/1",
        "host": {"system": system, "machine": machine},
        "driver": {"found": True, "version": driver[0], "cuda": driver[1], "source": "report"},
        "gpus": [{"index": 0, "name": gpu, "compute_capability": cc}],
        "packages": {"torch": None},
    }


def _gpu_host(system: str, machine: str, gpu: str, cc: str, **packages: str | None) -> Facts:
    doc = _gpu_doc(system, machine, gpu, cc)
    doc["packages"] = dict(packages)
    return facts_from_dict(doc)


def test_an_unreported_torch_on_windows_is_suspected_cpu_only_and_moved():
    """On Windows `pip install torch` gets a CPU-only build at every release (plans/torch.toml
    pypi_default): with an NVIDIA GPU, torch installed at an unreported build and nothing else
    wrong, that default is the likeliest cause, and the plan moves torch to a CUDA build with
    the GPU's code. On Linux x86_64 (a CUDA default) it is not suspected."""
    facts = _gpu_host("Windows", "AMD64", "NVIDIA GeForce GTX 1070", "6.1", torch=None)
    a = _analyse(facts, None)
    [f] = [f for f in a.diagnosis.findings if f.id == "torch-cpu-build"]
    assert f.evidence["suspected"] is True and "CPU-only build at every release" in f.summary
    step = _step(a.plan, "torch")
    assert step is not None and "+cu" in step.to
    linux = _gpu_host("Linux", "x86_64", "NVIDIA GeForce GTX 1070", "6.1", torch=None)
    assert "torch-cpu-build" not in _analyse(linux, None).diagnosis.ids


def test_a_gpu_fact_outweighs_a_platform_default_among_suspects():
    """A Blackwell GPU with torch unreported on Windows: both a torch without sm_120 and pip's CPU
    default fit; the suspicion that reads this machine's GPU leads (one suspect at most)."""
    facts = _gpu_host("Windows", "AMD64", "NVIDIA GeForce RTX 5090", "12.0", torch=None)
    ids = _analyse(facts, None).diagnosis.ids
    assert "gpu-arch-unsupported" in ids and "torch-cpu-build" not in ids


def test_no_gpu_arch_suspicion_where_earlier_arch_lists_are_unknown():
    """Linux aarch64 arch lists before 2.11 are not in plans/: "GB200 runs only on >= 2.11" would
    be unproven, so that suspicion stays silent and pip's aarch64 CPU default is suspected; with a
    driver for CUDA 13 the plan moves torch to a CUDA build."""
    doc = _gpu_doc("Linux", "aarch64", "NVIDIA GB200", "10.0", ("580.65.06", "13.0"))
    a = _analyse(facts_from_dict(doc), None)
    ids = a.diagnosis.ids
    assert "gpu-arch-unsupported" not in ids and "torch-cpu-build" in ids
    step = _step(a.plan, "torch")
    assert step is not None and "+cu" in step.to


@pytest.mark.parametrize(
    ("torch", "where"),
    [
        ({"cuda_available": True}, {}),  # the facts settle the build
        ({"arch_list": ["sm_86"]}, {}),
        ({"error": "ImportError: DLL load failed while importing _C"}, {}),
        ({}, {"container": "docker"}),  # an image brings its own torch
    ],
)
def test_no_cpu_default_suspicion_where_the_facts_or_the_setup_settle_it(torch, where):
    """pip's PyPI default says nothing where the build is reported (cuda_available, an arch
    list), where torch does not even import, or where torch came with a container image."""
    doc = _gpu_doc("Windows", "AMD64", "NVIDIA GeForce GTX 1070", "6.1")
    doc["torch"] = torch
    if "container" in where:
        doc["host"]["container"] = where["container"]
    f = [f for f in _analyse(facts_from_dict(doc), None).diagnosis.findings]
    assert not any(x.id == "torch-cpu-build" and x.evidence.get("suspected") for x in f)


def test_an_unreported_bitsandbytes_beside_a_cuda_it_may_lack_is_suspected_and_moved():
    """torch carries CUDA 12.8 and bitsandbytes' version is not given: its cu128 library ships
    only from 0.45.3 (plans/bitsandbytes.toml), so an older release is suspected and the plan
    moves bitsandbytes past it, torch kept."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "packages": {"torch": None, "bitsandbytes": None},
            "torch": {"cuda": "12.8"},
        }
    )
    a = _analyse(facts, None)
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-no-cuda-lib"]
    assert f.evidence["suspected"] is True and f.evidence["first"] == "0.45.3"
    step = _step(a.plan, "bitsandbytes")
    assert step is not None and Version(step.to) >= Version("0.45.3")
    assert _step(a.plan, "torch") is None


def test_no_library_suspicion_over_a_gap_or_where_the_files_are_known():
    """CUDA 11.7 libraries ship in 0.40.1-0.45.5, not in 0.46-0.49, and again from 0.50: no
    single "only from" holds, so no suspicion. Where the probe saw the library files, they
    settle it."""
    gap = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "packages": {"torch": "2.0.1+cu117", "bitsandbytes": None},
            "torch": {"version": "2.0.1+cu117", "cuda": "11.7"},
        }
    )
    assert "bnb-no-cuda-lib" not in _analyse(gap, None).diagnosis.ids
    seen = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "packages": {"torch": None, "bitsandbytes": None},
            "torch": {"cuda": "12.8"},
            "bitsandbytes": {"native_libs": ["libbitsandbytes_cuda128.so"]},
        }
    )
    assert "bnb-no-cuda-lib" not in _analyse(seen, None).diagnosis.ids


def test_releases_without_a_build_here_are_the_platform_suspects_not_the_librarys():
    """On Windows the releases before 0.43.0 have no build at all: with torch cu118 and
    bitsandbytes unreported, that is bnb-platform-unsupported's suspicion, not a missing
    library for CUDA 11.8."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Windows", "machine": "AMD64"},
            "packages": {"torch": "2.1.2+cu118", "bitsandbytes": None},
            "torch": {"version": "2.1.2+cu118", "cuda": "11.8"},
        }
    )
    ids = _analyse(facts, None).diagnosis.ids
    assert "bnb-platform-unsupported" in ids and "bnb-no-cuda-lib" not in ids


def test_torchvisions_own_ops_check_names_the_family_and_how_to_plan_it():
    """torchvision raises "Couldn't load custom C++ ops ... versions are incompatible" (S117):
    torch-family-mismatch; with torch's version unreported the plan says how to get the step."""
    text = (
        "RuntimeError: Couldn’t load custom C++ ops. This can happen if your PyTorch and "
        "torchvision versions are incompatible, or if you had errors while compiling torchvision"
    )
    facts = facts_from_dict(
        {"schema": "qfix.facts/1", "packages": {"torch": None, "torchvision": "0.13.1"}}
    )
    a = _analyse(facts, text)
    assert "torch-family-mismatch" in a.diagnosis.ids
    assert any("paired with the installed torch" in u for u in a.plan.unknown)
    # a paste wrapped inside the sentence still reads
    wrapped = text.replace("PyTorch and ", "PyTorch and\n")
    assert "torch-family-mismatch" in _analyse(facts, wrapped).diagnosis.ids
    # a family the facts show paired: the text is something else (a failed source build)
    paired = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "packages": {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121"},
            "torch": {"version": "2.5.1+cu121", "cuda": "12.1"},
        }
    )
    assert "torch-family-mismatch" not in _analyse(paired, text).diagnosis.ids


def test_a_local_torch_build_gets_no_family_step_from_an_index_of_its_label():
    """Jetson's torch "2.1.0a0+41361538.nv23.06" has no PyPI-index folder of that label: its
    torchvision comes from where torch came from, said instead of a step."""
    facts = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "aarch64"},
            "packages": {"torch": "2.1.0a0+41361538.nv23.06", "torchvision": "0.14.1"},
            "torch": {"version": "2.1.0a0+41361538.nv23.06"},
        }
    )
    a = _analyse(facts, None)
    assert "torch-family-mismatch" in a.diagnosis.ids
    assert _step(a.plan, "torchvision") is None
    assert any("is a local build" in u for u in a.plan.unknown)


def test_the_web_ui_launchers_gpu_check_proves_cuda_unavailable_on_an_nvidia_host():
    """S122: the Stable Diffusion web UI's launcher asserts torch.cuda.is_available() with
    "Torch is not able to use GPU; add --skip-torch-cuda-test ...": on Linux with an NVIDIA
    driver and torch's build unreported, that is torch-cpu-build (or a CUDA torch that cannot
    initialise) with the move to a CUDA build; without the text nothing says so."""
    text = (
        "RuntimeError: Torch is not able to use GPU; add --skip-torch-cuda-test to "
        "COMMANDLINE_ARGS variable to disable this check"
    )
    facts = _report("Linux", {"version": None})
    a = _analyse(facts, text)
    assert a.view.implied.torch_cuda_unavailable and not a.view.implied.cuda_requested
    assert "torch-cpu-build" in a.diagnosis.ids
    assert any(s.package == "torch" and "+cu" in s.to for s in a.plan.steps)
    assert "torch-cpu-build" not in _analyse(facts, None).diagnosis.ids


@pytest.mark.parametrize(
    ("text", "proves"),
    [
        ("WARNING:ChatTTS.utils.gpu_utils:No GPU found, use CPU instead", True),
        ("[WARN] ChatTTS | gpu | no GPU found, use CPU instead", True),  # later releases
        ("WARNING: no gpu found, use cpu instead.", False),  # a TensorFlow script's words
    ],
)
def test_chattts_device_fallback_proves_cuda_unavailable_and_tensorflows_does_not(text, proves):
    """S123: ChatTTS logs "No GPU found, use CPU instead" after torch.cuda.is_available() was
    False; a CPU-only torch reported beside it is the fault wherever there is a GPU. The same
    words in lower case come from TensorFlow scripts, which say nothing of torch."""
    assert implied_by(text).torch_cuda_unavailable is proves
    facts = _report("Windows", {"cuda": None}, driver=None)  # whether it has a GPU: unknown
    ids = _analyse(facts, text).diagnosis.ids
    assert ("torch-cpu-build" in ids) is proves


@pytest.mark.parametrize(
    "text",
    [
        # the loader's two wordings of one fault (S124)
        "OSError: /opt/conda/lib/python3.7/site-packages/torch/lib/../../nvidia/cublas/lib/"
        "libcublas.so.11: symbol cublasLtGetStatusString version libcublasLt.so.11 not defined "
        "in file libcublasLt.so.11 with link time reference",
        "OSError: /venv/lib/python3.8/site-packages/torch/lib/../../nvidia/cublas/lib/"
        "libcublas.so.11: undefined symbol: cublasLtHSHMatmulAlgoInit, version libcublasLt.so.11",
    ],
)
def test_torchs_pip_cublas_bound_to_an_older_cublaslt_is_a_shadowing_toolkit(text):
    """S124: the cuBLAS of torch's nvidia-cublas wheel resolved libcublasLt against an older copy
    found first (LD_LIBRARY_PATH comes before the wheel's RUNPATH): stale-toolkit-on-path, the
    step takes the toolkit off the path; with LD_LIBRARY_PATH unset, the step says what to look
    for by that library's name, not nvJitLink's."""
    assert implied_by(text).cuda_lib_shadowed == "libcublasLt"
    facts = _report("Linux", {"version": "1.13.0"}, driver=None)
    a = _analyse(facts, text)
    assert "stale-toolkit-on-path" in a.diagnosis.ids
    [m] = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
    assert m.required and "libcublasLt" in m.text and "LD_LIBRARY_PATH" in m.text
    unset = facts_from_dict(
        {
            "schema": "qfix.facts/1",
            "host": {"system": "Linux", "machine": "x86_64"},
            "packages": {"torch": "1.13.0"},
            "torch": {"version": "1.13.0"},
            "env": {"LD_LIBRARY_PATH": None},
        }
    )
    [m] = [m for m in _analyse(unset, text).plan.manual if m.id == "stale-toolkit-on-path"]
    assert "grep cublasLt" in m.text and "nvjitlink" not in m.text.lower()


def test_a_wrapped_torch_dll_line_is_still_read_and_names_the_known_bad_release() -> None:
    """kohya_ss' console wraps the loader's line after "Error loading": it is still
    torch-dll-load-failed with the DLL read. torch's version unreported and the DLL the one
    torch 2.4.0's Windows wheels fail on (S121): the step names that release and its fix
    beside the Visual C++ runtime."""
    text = (
        "ERROR    Could not load torch: [WinError 126] The specified module could not be "
        "found. Error loading\n"
        '                         "P:\\AI\\kohya_ss\\venv\\lib\\site-packages\\torch\\lib\\'
        'fbgemm.dll" or one of its dependencies.'
    )
    assert implied_by(text).torch_dll == "fbgemm.dll"
    facts = _report("Windows", {"version": None}, driver=None)
    a = _analyse(facts, text)
    assert "torch-dll-load-failed" in a.diagnosis.ids
    [m] = [m for m in a.plan.manual if m.id == "torch-dll-load-failed"]
    assert m.required and "2.4.1" in m.text and "Visual C++" in m.text
    other = text.replace("fbgemm.dll", "c10.dll")
    [m] = [m for m in _analyse(facts, other).plan.manual if m.id == "torch-dll-load-failed"]
    assert "2.4.1" not in m.text and "Visual C++" in m.text


def test_a_family_librarys_undefined_symbol_names_the_family_mismatch() -> None:
    """The loader names torchaudio's library first, then the symbol of another torch's c10: the
    family does not match torch (the class's signature); bitsandbytes' own undefined symbols
    are not read so."""
    from repair.catalogue import load_catalogue
    from repair.explain import explain

    text = (
        "OSError: /usr/local/lib/python3.10/dist-packages/torchaudio/lib/libtorchaudio.so: "
        "undefined symbol: _ZNK3c105Error4whatEv"
    )
    assert "torch-family-mismatch" in {m.id for m in explain(text, load_catalogue())}
    bnb = "libbitsandbytes_cpu.so: undefined symbol: cadam32bit_grad_fp32"
    assert "torch-family-mismatch" not in {m.id for m in explain(bnb, load_catalogue())}


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("ptxas fatal   : Value 'sm_103a' is not defined for option 'gpu-name'", True, True),
        ("ptxas fatal : Value 'sm_120a' is not defined for option 'gpu-name'", False, True),
        # CUDA 13's ptxas no longer targets Maxwell: not a toolkit older than the GPU
        ("ptxas fatal: Value 'sm_52' is not defined for option 'gpu-name'", False, False),
    ],
)
def test_a_ptxas_that_does_not_know_the_gpu_is_a_stale_toolkit(text, env, named):
    """S128: the ptxas that compiled a kernel (TRITON_PTXAS_PATH's, a toolkit's, Triton's own)
    predates the GPU: stale-toolkit-on-path with a required step naming the variable where the
    facts give it; an old target a newer ptxas dropped is not read so."""
    doc: dict = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "packages": {"torch": "2.9.1+cu128"},
        "torch": {"version": "2.9.1+cu128", "cuda": "12.8"},
    }
    if env:
        doc["env"] = {"TRITON_PTXAS_PATH": "/usr/local/cuda/bin/ptxas"}
    a = _analyse(facts_from_dict(doc), text)
    found = [f for f in a.diagnosis.findings if f.id == "stale-toolkit-on-path"]
    assert bool(found) is named
    if named:
        [m] = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
        assert m.required and "--help | grep sm_1" in m.text
        assert ("TRITON_PTXAS_PATH names /usr/local/cuda/bin/ptxas" in m.text) is env


def test_a_bound_two_signatures_prove_is_said_once() -> None:
    """The legacy loader's texts each prove bitsandbytes < 0.43.1: the range reads it once."""
    text = (
        "CUDA SETUP: PyTorch settings found: CUDA_VERSION=121, Highest Compute Capability: 8.6.\n"
        "RuntimeError: CUDA Setup failed despite GPU being available."
    )
    spec = implied_by(text).range("bitsandbytes")
    assert spec is not None and str(spec).count("<0.43.1") == 1


_WINDOWS_LEGACY_FAILURE = (
    "CUDA_SETUP: WARNING! libcudart.so not found in any environmental path. Searching in backup "
    "paths...\nCUDA SETUP: PyTorch settings found: CUDA_VERSION={tag}, Highest Compute "
    "Capability: 8.6.\nRuntimeError: CUDA Setup failed despite GPU being available."
)


@pytest.mark.parametrize(
    ("system", "cuda", "unsupported"),
    [
        ("Windows", "12.1", True),  # 0.43.0, the range's only Windows build, ships cuda121
        ("Windows", "12.4", False),  # 0.43.0 ships no cuda124: it may be the one that failed
        ("Linux", "12.1", False),  # every release of the range builds for Linux
    ],
)
def test_a_legacy_loader_failure_on_windows_proves_a_release_without_a_windows_build(
    system, cuda, unsupported
):
    """The legacy loader (< 0.43.1) failed to load any CUDA library while torch saw the GPU. On
    Windows only 0.43.0 of that range has a build, and it ships the library for torch's CUDA
    12.1 (plans/bitsandbytes.toml) and keys on torch's CUDA: the failing release is older, with
    no Windows build at all."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": system, "machine": "AMD64" if system == "Windows" else "x86_64"},
        "packages": {"torch": None, "bitsandbytes": None},
        "torch": {"cuda": cuda},
    }
    text = _WINDOWS_LEGACY_FAILURE.format(tag=cuda.replace(".", ""))
    a = _analyse(facts_from_dict(doc), text)
    assert ("bnb-platform-unsupported" in a.diagnosis.ids) is unsupported
    assert any(s.package == "bitsandbytes" for s in a.plan.steps)


@pytest.mark.parametrize(
    "text",
    [
        "NotImplementedError: Could not run 'torchvision::nms' with arguments from the 'CUDA' "
        "backend. This could be because the operator doesn't exist for this backend",
        # as reports retype it, without the quotes
        "NotImplementedError: Could not run 'torchvision::roi_align' with arguments from CUDA "
        "backend",
    ],
)
def test_torchvision_without_cuda_kernels_names_the_family_mismatch(text) -> None:
    """torch's dispatcher finds no CUDA kernel of torchvision's op (a CPU-only torchvision
    beside a CUDA torch, S130): the family does not match."""
    from repair.catalogue import load_catalogue
    from repair.explain import explain

    assert "torch-family-mismatch" in {m.id for m in explain(text, load_catalogue())}


@pytest.mark.parametrize(
    ("system", "torch", "listed", "text", "name", "to"),
    [
        # torch 2.6.0 from PyPI, torchvision of another release (its ops do not load, S117)
        (
            "Linux",
            "2.6.0",
            True,
            "RuntimeError: operator torchvision::nms does not exist",
            "torchvision",
            "0.21.0",
        ),
        # not listed in the facts at all: the error proves it is installed
        (
            "Linux",
            "2.6.0",
            False,
            "RuntimeError: operator torchvision::nms does not exist",
            "torchvision",
            "0.21.0",
        ),
        # Windows' CPU-only torchvision beside a CUDA torch (S130): torch's CUDA build of it
        (
            "Windows",
            "2.5.1+cu121",
            False,
            "NotImplementedError: Could not run 'torchvision::nms' with arguments from the 'CUDA' "
            "backend",
            "torchvision",
            "0.20.1+cu121",
        ),
        (
            "Linux",
            "2.5.1+cu121",
            True,
            "OSError: /venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: "
            "undefined symbol: _ZNK3c105Error4whatEv",
            "torchaudio",
            "2.5.1+cu121",
        ),
    ],
)
def test_the_companion_an_error_names_moves_to_torchs_family(system, torch, listed, text, name, to):
    """The error names the companion whose compiled part does not load beside torch (S117,
    S130); torch's release is known, so the repair is that companion at the release and build
    paired with torch (compat-facts B1), its installed version unknown. The other companion,
    which nothing shows mismatched, stays."""
    other = "torchaudio" if name == "torchvision" else "torchvision"
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": system, "machine": "AMD64" if system == "Windows" else "x86_64"},
        "packages": {"torch": torch, other: None, **({name: None} if listed else {})},
        "torch": {"version": torch},
    }
    assert implied_by(text).companion_named == name
    a = _analyse(facts_from_dict(doc), text)
    assert "torch-family-mismatch" in a.diagnosis.ids
    [step] = [s for s in a.plan.steps if s.package == name]
    assert step.to == to and step.because == ("torch-family-mismatch",)
    assert not [s for s in a.plan.steps if s.package in ("torch", other)]
    label = Version(torch).local
    assert (step.index_url or "").endswith(f"/{label}") if label else step.index_url is None


@pytest.mark.parametrize(("cuda", "to"), [("11.8", "0.16.0+cu118"), ("12.1", "0.16.0")])
def test_an_unlabelled_torch_of_another_cuda_than_pypis_takes_its_variants_companion(cuda, to):
    """Review: torch 2.1.0 without a label but built for CUDA 11.8 (conda, a mirror) is not
    PyPI's cu121 build, so PyPI's torchvision 0.16.0 (cu121) would refuse to load beside it
    (another CUDA major, S133): the companion comes from the cu118 folder. With PyPI's own CUDA
    it is PyPI's."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "python": {"version": "3.10.12", "conda": True},
        "packages": {"torch": "2.1.0"},
        "torch": {"version": "2.1.0", "cuda": cuda},
    }
    a = _analyse(facts_from_dict(doc), "RuntimeError: operator torchvision::nms does not exist")
    [step] = [s for s in a.plan.steps if s.package == "torchvision"]
    assert step.to == to
    assert (step.index_url or "").endswith("/cu118") if "+" in to else step.index_url is None


_XFORMERS = (
    "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
    "    PyTorch 2.1.0+cu121 with CUDA 1201 (you have {have})\n"
    "    Python  3.10.11 (you have 3.10.6)\n"
    "  Please reinstall xformers (see https://github.com/facebookresearch/xformers#installing-xformers)"
)


def test_xformers_message_gives_the_failing_processs_torch_where_the_facts_do_not() -> None:
    """S131: xFormers prints torch.__version__ of the failing process: read as torch's version
    where the facts give none, never over a reported one."""
    doc: dict = {"schema": "qfix.facts/1", "host": {"system": "Linux"}, "packages": {}}
    facts, lines = implied_facts(facts_from_dict(doc), _XFORMERS.format(have="2.1.0+cpu"))
    assert facts.torch is not None and facts.torch.version == "2.1.0+cpu"
    assert any(line.startswith("torch 2.1.0+cpu (read from the error message") for line in lines)
    doc["torch"] = {"version": "2.1.2+cu118", "cuda": "11.8"}
    facts, _ = implied_facts(facts_from_dict(doc), _XFORMERS.format(have="2.1.0+cpu"))
    assert facts.torch is not None and facts.torch.version == "2.1.2+cu118"


@pytest.mark.parametrize(
    ("have", "cuda", "extra", "cpu_build"),
    [
        ("2.1.0+cpu", "1201", {}, True),
        ("2.1.0+cpu", "None", {}, False),  # an xFormers built without CUDA proves no GPU
        ("2.1.0+cu118", "1201", {}, False),  # torch is a CUDA build: no CPU-only torch
        # a ROCm host: the CUDA remedies do not apply
        ("2.1.0+cpu", "1201", {"gpus": [{"index": 0, "name": "AMD Radeon RX 7900 XTX"}]}, False),
    ],
)
@pytest.mark.parametrize("legacy_bnb", [False, True])
def test_a_cpu_torch_beside_a_cuda_built_xformers_moves_to_the_build_xformers_wants(
    have, cuda, extra, cpu_build, legacy_bnb
):
    """A CPU-only torch beside xFormers compiled against torch 2.1.0+cu121 (its own message,
    S131), GPUs unknown: the environment was set up for an NVIDIA GPU, so torch-cpu-build, and
    torch moves to the build xFormers' library loads beside (2.1.0+cu121, not the lower-CUDA
    build the planner takes where nothing says which)."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux"},
        "python": {"version": "3.10.6"},
        "packages": {"xformers": None, "torch": None},
        **extra,
    }
    if legacy_bnb:
        # a kept legacy bitsandbytes does not turn the move away from xFormers' build: a
        # current release beside that torch is the better pair
        doc["packages"]["bitsandbytes"] = "0.43.0"
    text = _XFORMERS.format(have=have).replace("CUDA 1201", f"CUDA {cuda}")
    a = _analyse(facts_from_dict(doc), text)
    assert ("torch-cpu-build" in a.diagnosis.ids) is cpu_build
    if cpu_build:
        assert _step(a.plan, "torch").to == "2.1.0+cu121"
        if legacy_bnb:
            assert Version(_step(a.plan, "bitsandbytes").to) >= MODERN_BNB_LOADER


@pytest.mark.parametrize(
    ("driver", "text", "jit"),
    [
        (
            "450.80.02",
            "RuntimeError: CUDA error: the provided PTX was compiled with an "
            "unsupported toolchain.",
            True,
        ),
        ("450.80.02", None, False),  # minor-version compatibility runs CUDA 11.8 without JIT
        # CUDA 11.8's own toolkit driver JITs its PTX: the error is something else
        ("520.61.05", "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", False),
    ],
)
def test_ptx_jit_refused_under_minor_version_compatibility_needs_the_toolkits_driver(
    driver, text, jit
):
    """compat-facts A2 (S4, S6): a driver that runs torch's CUDA only through minor-version
    compatibility cannot JIT PTX of a newer toolkit (cudaErrorUnsupportedPtxVersion). With that
    error the driver of CUDA 11.8's own toolkit is required, and torch stays: every build of
    that CUDA major would need the same JIT."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": driver, "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}],
        "packages": {"torch": "2.4.1+cu118", "bitsandbytes": "0.45.5"},
        "torch": {"version": "2.4.1+cu118", "cuda": "11.8"},
    }
    a = _analyse(facts_from_dict(doc), text)
    found = [f for f in a.diagnosis.findings if f.evidence.get("ptx_jit")]
    assert bool(found) is jit
    if jit:
        need = KB.drivers.toolkit_min(Version("11.8"), "Linux")
        [m] = [m for m in a.plan.manual if m.id == "driver-too-old"]
        assert m.required and f">= {need}" in m.text
        assert _step(a.plan, "torch") is None


def test_ptx_jit_step_names_the_cuda_a_driver_runs_natively() -> None:
    """Driver 535 runs CUDA 12.2 natively: where torch's own PTX is what is JIT-compiled, a
    torch build of CUDA 12.2 or older avoids the upgrade, and the step says so."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "535.104.05", "cuda": "12.2", "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}],
        "packages": {"torch": "2.5.1+cu124", "bitsandbytes": "0.45.5"},
        "torch": {"version": "2.5.1+cu124", "cuda": "12.4"},
    }
    a = _analyse(
        facts_from_dict(doc), "the provided PTX was compiled with an unsupported toolchain"
    )
    [m] = [m for m in a.plan.manual if m.id == "driver-too-old"]
    assert m.required and "CUDA 12.2 or older" in m.text


def test_torchs_preload_finding_no_cuda_wheel_is_its_wheels_missing() -> None:
    """S132: torch's own preload searched sys.path for its NVIDIA wheel of a library and found
    none: cuda-libs-not-found, a required step to reinstall torch with its dependencies at the
    installed version."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "python": {"version": "3.10.8"},
        "packages": {"torch": "2.0.1"},
        "torch": {"version": "2.0.1"},
    }
    text = (
        "OSError: libcurand.so.10: cannot open shared object file: No such file or directory\n"
        "ValueError: libnvrtc.so.*[0-9].*[0-9] not found in the system path ['/opt/app']"
    )
    a = _analyse(facts_from_dict(doc), text)
    [f] = [f for f in a.diagnosis.findings if f.evidence.get("torch_wheels")]
    assert f.id == "cuda-libs-not-found" and f.evidence["library"] == "libnvrtc"
    [m] = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    # a plain install adds the missing dependencies; --force-reinstall would upgrade them all
    assert m.required and "pip install torch==2.0.1`" in m.text and "--force" not in m.text


_PRELOAD = "ValueError: libnvrtc.so.*[0-9] not found in the system path ['/opt/app']"


def test_torchs_wheels_missing_beside_a_torch_move_is_the_check_after_the_move() -> None:
    """Where the plan moves torch (an RTX 5090 with a cu124 torch), the move installs torch
    with its NVIDIA wheels: a required reinstall of the old torch would undo it, so the step is
    the check afterwards, naming the planned torch."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "570.86.10", "source": "report"},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}],
        "packages": {"torch": "2.5.1+cu124", "bitsandbytes": "0.45.5"},
        "torch": {"version": "2.5.1+cu124", "cuda": "12.4"},
    }
    a = _analyse(facts_from_dict(doc), _PRELOAD)
    move = _step(a.plan, "torch")
    assert move is not None and move.to != "2.5.1+cu124"
    [m] = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert not m.required and move.to in m.text and "2.5.1+cu124" not in m.text


def test_torchs_wheels_missing_beside_a_cpu_torch_names_another_interpreter() -> None:
    """The preload message is a CUDA build's: beside a reported CPU-only torch, the process
    that failed ran another torch, and no reinstall of this one is planned around it."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "packages": {"torch": "2.5.1+cpu"},
        "torch": {"version": "2.5.1+cpu", "cuda": None},
    }
    a = _analyse(facts_from_dict(doc), _PRELOAD)
    [m] = [m for m in a.plan.manual if m.id == "cuda-libs-not-found"]
    assert "another torch" in m.text and "pip install" not in m.text


@pytest.mark.parametrize(
    ("path", "shadowed"),
    [
        ("/usr/local/cuda/lib64", True),  # a toolkit's copy found before torch's wheel's
        ("/usr/local/cuda-12.1/targets/x86_64-linux/lib", True),
        ("/usr/lib/x86_64-linux-gnu", False),  # a distribution's cuDNN: a system-built torch's
    ],
)
@pytest.mark.parametrize("torch", ["2.2.0+cu121", "2.1.0a0+32f93b1"])
def test_a_toolkits_cudnn_loaded_in_place_of_torchs_is_a_stale_toolkit(path, shadowed, torch):
    """cuDNN opens its sub-libraries by name: a toolkit's copy under /usr/local/cuda taken in
    place of the one torch loaded from its wheel, which does not fit (undefined symbol), is
    stale-toolkit-on-path, not a missing cuDNN."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "packages": {"torch": torch},
        "torch": {"version": torch, "cuda": "12.1"},
    }
    # NGC's torch (a label of no index) is built against the toolkit's cuDNN: no shadowing
    shadowed = shadowed and torch.endswith("+cu121")
    text = (
        "Could not load library libcudnn_cnn_train.so.8. Error: "
        f"{path}/libcudnn_cnn_train.so.8: undefined symbol: _ZN5cudnn3cnn34layerNormFwd, "
        "version libcudnn_cnn_infer.so.8"
    )
    a = _analyse(facts_from_dict(doc), text)
    assert ("stale-toolkit-on-path" in a.diagnosis.ids) is shadowed
    if shadowed:
        assert "cuda-libs-not-found" not in a.diagnosis.ids
        # the toolkit's cuDNN 8 is the major torch 2.2 opens (S119): a torch of cuDNN 9 opens
        # libcudnn*.so.9, which that copy cannot stand in for; keeping torch is the alternative
        [step] = [s for s in a.plan.steps if s.package == "torch"]
        assert Version(step.to.split("+")[0]) >= Version("2.4")
        assert "stale-toolkit-on-path" in step.because
        [m] = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
        assert not m.required and "LD_LIBRARY_PATH" in m.text
        assert m.text.startswith(f"or keep torch {torch}") and "cuDNN 9's files" in m.text


def _nvidia_linux_doc(gpu: tuple[str, str], torch: str | None) -> dict:
    """Facts of a Linux host with one NVIDIA GPU (name, compute capability), driver 550.54.14,
    bitsandbytes 0.45.5 and torch at ``torch`` (None: installed, version not given)."""
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "550.54.14", "source": "report"},
        "gpus": [{"index": 0, "name": gpu[0], "compute_capability": gpu[1]}],
        "packages": {"torch": torch, "bitsandbytes": "0.45.5"},
    }


@pytest.mark.parametrize(
    ("torch", "cuda", "soname", "moves"),
    [
        ("2.2.0+cu121", "12.1", "8", True),  # cuDNN 8 beside torch's 8: a torch of cuDNN 9 moves
        ("2.5.1+cu121", "12.1", "9", False),  # cuDNN 9 beside torch's 9: no newer major
        ("2.2.0+cu121", "12.1", "9", False),  # not the major torch 2.2 opens: no soname reason
        ("2.5.1+cu121", "12.1", "8", False),  # an older major than torch's: not what it opens
        ("2.2.0", None, "8", True),  # PyPI's 2.2.0 on Linux x86_64: CUDA 12.1, cuDNN 8
        (None, None, "8", False),  # torch's version unknown: its cuDNN is not known
    ],
)
def test_a_torch_of_another_cudnn_major_ends_a_toolkits_shadowing(torch, cuda, soname, moves):
    """A library is opened by its soname, which carries its major: only where the toolkit's
    cuDNN is the major torch's build opens (S119) does a torch of another cuDNN major end the
    shadowing inside the environment. Elsewhere the loader-path step stays required."""
    doc = _nvidia_linux_doc(("NVIDIA A100-SXM4-40GB", "8.0"), torch)
    if torch:
        doc["torch"] = {"version": torch, "cuda": cuda} if cuda else {"version": torch}
    text = (
        f"Could not load library libcudnn_cnn_infer.so.{soname}. Error: /usr/local/cuda/lib64/"
        f"libcudnn_cnn_infer.so.{soname}: undefined symbol: _ZN5cudnn3cnn5infer, version "
        f"libcudnn_ops_infer.so.{soname}"
    )
    a = _analyse(facts_from_dict(doc), text)
    assert "stale-toolkit-on-path" in a.diagnosis.ids
    torch_steps = [s for s in a.plan.steps if s.package == "torch"]
    [m] = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
    assert bool(torch_steps) is moves
    assert m.required is not moves
    if moves:
        # torch's CUDA kept (the toolkit stays on the loader path), the step's release named
        to = torch_steps[0].to
        assert to.endswith("+cu121") and f"torch {to.split('+')[0]} opens cuDNN 9" in m.text


_CUDNN_TEXT = (
    "Could not load library libcudnn_cnn_train.so.8. Error: /usr/local/cuda/lib64/"
    "libcudnn_cnn_train.so.8: undefined symbol: _ZN5cudnn3cnn34layerNormFwd, version "
    "libcudnn_cnn_infer.so.8"
)


@pytest.mark.parametrize("where", ["kepler", "pinned", "windows"])
def test_the_loader_path_step_stays_required_where_no_torch_step_ends_the_shadowing(
    where, tmp_path
):
    """Review: the toolkit step is the alternative only beside the plan's own torch step of a
    newer cuDNN major. A Kepler GPU (torch left alone), a project pin on torch (the move is
    withheld: the loader-path step is the repair within the pin, no pin conflict), and facts
    whose platform rules the finding out keep it as it was."""
    from repair.projectpins import read_project_pins

    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Windows" if where == "windows" else "Linux", "machine": "x86_64"},
        "driver": {"found": True, "version": "535.86.10", "source": "report"},
        "gpus": [
            {"index": 0, "name": "Tesla K80" if where == "kepler" else "Tesla V100-SXM2-16GB"}
        ],
        "packages": {"torch": "2.2.0+cu121"},
        "torch": {"version": "2.2.0+cu121", "cuda": "12.1", "cuda_available": True},
    }
    if where == "kepler":
        doc["gpus"][0]["compute_capability"] = "3.7"
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.2.0\n")
    pins = read_project_pins([str(req)]) if where == "pinned" else None
    a = pipeline.analyse(facts_from_dict(doc), torch_index=INDEX, error_text=_CUDNN_TEXT, pins=pins)
    plan = a.plan
    assert not [s for s in plan.steps if s.package == "torch"]
    manual = [m for m in plan.manual if m.id == "stale-toolkit-on-path"]
    if where == "windows":
        assert not manual and "stale-toolkit-on-path" not in a.diagnosis.ids
        return
    assert [m.required for m in manual] == [True]
    assert not manual[0].text.startswith("or keep torch")
    assert not any(m.id == "project-pin-conflict" for m in plan.manual)


@pytest.mark.parametrize(
    ("text", "unavailable"),
    [
        ("torch.cuda.is_available() returns False", True),
        (">>> import torch\n>>> torch.cuda.is_available()\nFalse", True),
        ("`torch.cuda.is_available()` returns `False` on the new machine", True),
        ("torch.cuda.is_available() is True, but bitsandbytes fails", False),
        ("torch.cuda.is_available() should be True here", False),
        # code in a traceback compares it; that says nothing of its result
        ('  File "app.py", line 3, in <module>\n    if torch.cuda.is_available() == False:', False),
    ],
)
def test_a_report_saying_cuda_is_not_available_is_read_as_that_fact(text, unavailable):
    """S134: torch.cuda.is_available()'s result as a report gives it (a printout or the
    reporter's words) is the fact a probe reads: on a host with an NVIDIA GPU and torch's build
    unknown, a False makes the CPU-only torch the suspected cause."""
    assert implied_by(text).torch_cuda_unavailable is unavailable
    doc = _nvidia_linux_doc(("NVIDIA GeForce RTX 3090", "8.6"), None)
    a = _analyse(facts_from_dict(doc), text)
    assert ("torch-cpu-build" in a.diagnosis.ids) is unavailable


def test_a_torch_library_bound_to_an_older_cuda_copy_is_a_stale_toolkit() -> None:
    """S135: torch's own libc10_cuda.so needs a libcudart symbol the copy found first lacks (a
    system CUDA 12.4 beside torch 2.9.0+cu128): stale-toolkit-on-path, with the loader-path
    step."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64"},
        "packages": {"torch": "2.9.0+cu128"},
        "torch": {"version": "2.9.0+cu128", "cuda": "12.8"},
    }
    text = (
        "ImportError: /app/.venv/lib/python3.12/site-packages/torch/lib/libc10_cuda.so: "
        "undefined symbol: cudaGetDriverEntryPointByVersion, version libcudart.so.12"
    )
    a = _analyse(facts_from_dict(doc), text)
    [f] = [f for f in a.diagnosis.findings if f.id == "stale-toolkit-on-path"]
    assert f.evidence["library"] == "libcudart"
    [m] = [m for m in a.plan.manual if m.id == "stale-toolkit-on-path"]
    assert m.required and "libcudart" in m.text
