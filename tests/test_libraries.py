"""Libraries beside torch that open CUDA and cuDNN themselves (plans/runtimes.toml, S118, S119):
CTranslate2 under faster-whisper and WhisperX.

- the knowledge base reads the rows and refuses a broken one;
- a cuDNN named with its major in an error text (Linux and Windows names) is a constraint;
- the library that asked for it decides the repair: CTranslate2 moves to a release that fits the
  driver and the cuDNN there (torch stays), torch's own missing cuDNN is a torch reinstall, and
  an unknown asker is a required manual step;
- a driver below the CUDA CTranslate2 opens moves CTranslate2, not torch.
"""

from __future__ import annotations

import shutil

import pytest
from packaging.version import Version

from repair.facts import facts_from_dict
from repair.knowledge import KnowledgeError, load_knowledge
from repair.signatures import implied_by
from tests.core_helpers import analyse

KB = load_knowledge()
LINUX_CUDNN9 = (
    "Unable to load any of {libcudnn_ops.so.9.1.0, libcudnn_ops.so.9.1, libcudnn_ops.so.9, "
    "libcudnn_ops.so}\nInvalid handle. Cannot load symbol cudnnCreateTensorDescriptor"
)


def case(error: str = "", **facts) -> object:
    doc = {"schema": "qfix.facts/1", "host": {"system": "Linux", "machine": "x86_64"}, **facts}
    return facts_from_dict({"facts": doc, "error": error}, "test")


def step(plan, package):
    return next((s for s in plan.steps if s.package == package), None)


def test_runtimes_rows_read_and_cited():
    ct2 = KB.runtimes.newest_first("ctranslate2")
    assert [r.target for r in ct2] == [
        "==4.8.5",
        "==4.8.1",
        "==4.6.2",
        "==4.6.0",
        "==4.5.0",
        "==4.4.0",
        "==3.24.0",
    ]
    # the Linux aarch64 and macOS wheels are built without CUDA: no row describes them
    assert KB.runtimes.newest_first("ctranslate2", "linux-aarch64") == ()
    assert KB.runtimes.of("ctranslate2", Version("4.6.3"), "macos-arm64") is None
    assert all(r.source.startswith("S118") and r.confirmed for r in ct2)
    assert KB.runtimes.of("ctranslate2", Version("4.5.0")).cudnn == 9
    assert KB.runtimes.of("ctranslate2", Version("4.7.1")).cudnn == 0
    assert KB.runtimes.of("ctranslate2", Version("4.0.0")).cuda == Version("12.2")
    assert KB.runtimes.of("torch", Version("2.3.1+cu121")).cudnn == 8
    assert KB.runtimes.of("torch", Version("2.4.0")).cudnn == 9
    assert KB.runtimes.of("torch", Version("1.11.0")) is None  # not in S119's table
    assert KB.runtimes.of("ctranslate2", Version("2.24.0")) is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('versions = "<4"\ncudnn = 8', "needs a lower bound"),
        ('versions = ">=4"\ncudnn = -1', "cudnn must be"),
        ('versions = ">=4"\ncudnn = 8\nlast = "4.4.0"', "unknown key"),
        ('versions = ">=4,<4.5"\ncuda = "12.2"\ncudnn = 8', "needs newest"),
        ('versions = ">=4,<4.5"\ncuda = "12.2"\ncudnn = 8\nnewest = "4.6.0"', "needs newest"),
    ],
)
def test_a_broken_runtime_row_is_refused(tmp_path, row, message):
    plans = tmp_path / "plans"
    shutil.copytree(KB.directory, plans, ignore=shutil.ignore_patterns("examples", "__*"))
    (plans / "runtimes.toml").write_text(
        f'format = 1\n[[library]]\npackage = "x"\n{row}\n'
        'source = "S118"\nchecked = "2026-12-07"\nconfirmed = true\n'
    )
    with pytest.raises(KnowledgeError, match=message):
        load_knowledge(plans)


@pytest.mark.parametrize(
    ("text", "major", "system"),
    [
        (LINUX_CUDNN9, "9", None),
        ("Could not load library libcudnn_cnn_infer.so.8. Error: No such file", "8", None),
        ("libcudnn_ops_infer.so.8: cannot open shared object file: No such file", "8", None),
        (
            "Could not locate cudnn_ops_infer64_8.dll. Please make sure it is in your library "
            "path!",
            "8",
            "Windows",
        ),
        ("cudnn ops64_9.dll is not found", "9", "Windows"),
        ("Could not load library cudnn_cnn_infer64_8.dll. Error code 126", "8", "Windows"),
    ],
)
def test_a_cudnn_named_with_its_major_is_read(text, major, system):
    implied = implied_by(text)
    assert implied.cudnn_major == major
    assert implied.system == system


def test_a_cudnn_dll_that_loaded_is_not_a_failure():
    assert implied_by("found cudnn64_9.dll in torch/lib").cudnn_major is None


def test_ctranslate2_for_cudnn9_beside_a_cudnn8_torch_moves_ctranslate2_not_torch():
    f = case(
        LINUX_CUDNN9,
        packages={"torch": "2.3.1+cu121", "ctranslate2": "4.5.0"},
        torch={"version": "2.3.1+cu121", "cuda": "12.1"},
        driver={"found": True, "version": "550.54.15", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("cudnn_major") == 9]
    assert found and found[0].evidence["requested_by"] == "ctranslate2"
    assert found[0].evidence["torch_cudnn"] == 8
    ct2 = step(plan, "ctranslate2")
    assert ct2 is not None and ct2.to == "==4.8.5" and ct2.from_ == "4.5.0"
    assert step(plan, "torch") is None and step(plan, "bitsandbytes") is None
    assert not any(m.required for m in plan.manual)
    assert any("nvidia-cudnn-cu12==9.*" in m.text for m in plan.manual)


def test_a_driver_below_cuda_12_pins_the_last_cuda_11_ctranslate2():
    f = case(
        "CUDA failed with error CUDA driver version is insufficient for CUDA runtime version",
        packages={"ctranslate2": "4.0.0"},
        driver={"found": True, "version": "510.85.02", "cuda": "11.6"},
    )
    diag, plan = analyse(f)
    too_old = [x for x in diag.findings if x.id == "driver-too-old"]
    assert too_old and all(x.evidence.get("library") == "ctranslate2" for x in too_old)
    assert step(plan, "ctranslate2").to == "==3.24.0"
    assert step(plan, "torch") is None
    assert [m.required for m in plan.manual if m.id == "driver-too-old"] == [False]


def test_the_ctranslate2_driver_check_needs_no_error_text():
    f = case(packages={"ctranslate2": "4.6.3"}, driver={"found": True, "version": "470.82.01"})
    diag, plan = analyse(f)
    assert "driver-too-old" in diag.ids
    assert step(plan, "ctranslate2").to == "==3.24.0"


def test_no_ctranslate2_fits_a_driver_below_cuda_11_2():
    f = case(packages={"ctranslate2": "4.0.0"}, driver={"found": True, "version": "418.87.00"})
    diag, plan = analyse(f)
    assert "driver-too-old" in diag.ids
    assert step(plan, "ctranslate2") is None
    assert any(m.required and m.id == "driver-too-old" for m in plan.manual)


def test_old_driver_and_cudnn9_torch_leave_no_ctranslate2_that_fits():
    # CUDA 12 rows need a newer driver; the CUDA 11 row loads cuDNN 8, torch brings 9
    f = case(
        "libcudnn_ops_infer.so.8: cannot open shared object file",
        packages={"torch": "2.5.1+cu118", "ctranslate2": "4.4.0"},
        torch={"version": "2.5.1+cu118", "cuda": "11.8"},
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
    )
    _, plan = analyse(f)
    assert step(plan, "ctranslate2") is None
    assert any(m.required and "cuDNN 8" in m.text for m in plan.manual)


def test_torchs_own_missing_cudnn_is_a_torch_reinstall():
    f = case(
        "libcudnn.so.9: cannot open shared object file: No such file or directory",
        packages={"torch": "2.5.1+cu124"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("cudnn_major") == 9]
    assert found[0].evidence["requested_by"] == "torch"
    assert any(m.required and "reinstall torch" in m.text for m in plan.manual)
    assert step(plan, "bitsandbytes") is None  # a cuDNN is never bitsandbytes' to search


def test_an_unknown_asker_gets_the_cudnn_install_as_a_required_step():
    f = case("libcudnn_cnn.so.9: cannot open shared object file", packages={})
    _, plan = analyse(f)
    assert any(m.required and "install cuDNN 9" in m.text for m in plan.manual)
    assert step(plan, "ctranslate2") is None


def test_a_toolkit_of_ctranslate2s_cuda_is_not_called_stale():
    base = {
        "torch": {"version": "2.0.0+cu118", "cuda": "11.8"},
        "toolkit": {"nvcc": "12.2"},
    }
    with_ct2 = case(packages={"torch": "2.0.0+cu118", "ctranslate2": "4.4.0"}, **base)
    without = case(packages={"torch": "2.0.0+cu118"}, **base)
    assert "stale-toolkit-on-path" not in analyse(with_ct2)[0].ids
    assert "stale-toolkit-on-path" in analyse(without)[0].ids


def test_the_cudnn_wheel_named_is_for_the_cuda_of_the_ctranslate2_release():
    f = case(
        "libcudnn_ops_infer.so.8: cannot open shared object file",
        packages={"torch": "2.5.1+cu124", "ctranslate2": "4.4.0"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    _, plan = analyse(f)
    assert step(plan, "ctranslate2").to == "==4.8.5"
    assert any("nvidia-cudnn-cu12==8.*" in m.text and not m.required for m in plan.manual)


def test_insufficient_driver_with_a_driver_that_runs_every_runtime_is_not_the_driver():
    error = "CUDA failed with error CUDA driver version is insufficient for CUDA runtime version"
    driver = {"found": True, "version": "565.77", "cuda": "12.7"}
    torch = {"version": "2.5.1+cu124", "cuda": "12.4"}
    pkgs = {"torch": "2.5.1+cu124", "ctranslate2": "4.5.0"}
    diag, plan = analyse(case(error, packages=pkgs, torch=torch, driver=driver))
    assert [x.id for x in diag.findings if x.evidence.get("driver_not_reached")] == [
        "cuda-init-failed"
    ]
    assert "driver-too-old" not in diag.ids and not plan.steps
    # torch installed at a CUDA the facts do not give: a runtime may be there unseen, and
    # CTranslate2's fitting alone proves nothing (neither "not reached" nor "ruled out")
    diag, _ = analyse(case(error, packages={"torch": None, "ctranslate2": "3.24.0"}, driver=driver))
    assert not any(x.evidence.get("driver_not_reached") for x in diag.findings)
    assert "driver-too-old" in diag.ids


# ---------------------------------------------------------------- a second reader's findings


def test_a_missing_cudnn_stays_required_beside_a_modern_bitsandbytes():
    """The step that the planned bitsandbytes (>= 0.43.1) makes moot is the legacy loader's
    library search, never a missing cuDNN: with bitsandbytes 0.45.0 installed the cuDNN steps
    stay required and the plan is not "healthy"."""
    bnb = {"bitsandbytes": {"version": "0.45.0"}}
    own = case(
        "libcudnn.so.9: cannot open shared object file: No such file or directory",
        packages={"torch": "2.5.1+cu124", "bitsandbytes": "0.45.0"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
        **bnb,
    )
    none_fits = case(
        "libcudnn_ops_infer.so.8: cannot open shared object file",
        packages={"torch": "2.5.1+cu118", "ctranslate2": "4.4.0", "bitsandbytes": "0.45.0"},
        torch={"version": "2.5.1+cu118", "cuda": "11.8"},
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
        **bnb,
    )
    for facts in (own, none_fits):
        _, plan = analyse(facts)
        assert not plan.healthy
        assert any(m.required and m.id == "cuda-libs-not-found" for m in plan.manual)


def test_a_cudnn_of_another_major_than_torchs_goes_to_a_folder_of_its_own():
    """torch's Linux pip wheels pin their own nvidia-cudnn wheel (S119): installing the other
    major over it would break torch, so the advice installs it with --target; the major torch
    brings is put on the loader path from torch's own copy."""
    other = case(
        "Could not load library libcudnn_ops_infer.so.8. Error: libcudnn_ops_infer.so.8: cannot "
        "open shared object file",
        packages={"torch": "2.5.1+cu124", "ctranslate2": "4.4.0"},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    text = next(m.text for m in analyse(other)[1].manual if m.id == "cuda-libs-not-found")
    assert "pip install --target ~/cudnn8 nvidia-cudnn-cu12==8.*" in text
    assert "~/cudnn8/nvidia/cudnn/lib" in text
    same = case(
        LINUX_CUDNN9,
        packages={"torch": "2.5.1+cu124", "ctranslate2": None},
        torch={"version": "2.5.1+cu124", "cuda": "12.4"},
    )
    text = next(m.text for m in analyse(same)[1].manual if m.id == "cuda-libs-not-found")
    assert "torch's own libcudnn.so.9" in text and "pip install" not in text


def test_ctranslate2_on_linux_aarch64_has_no_cuda_to_judge():
    f = facts_from_dict(
        {
            "facts": {
                "schema": "qfix.facts/1",
                "host": {"system": "Linux", "machine": "aarch64"},
                "packages": {"torch": "2.0.1", "ctranslate2": "4.6.3"},
                "torch": {"version": "2.0.1", "cuda": "11.7"},
                "driver": {"found": True, "version": "515.65.01", "cuda": "11.7"},
            }
        },
        "test",
    )
    diag, plan = analyse(f)
    assert not any(x.evidence.get("library") for x in diag.findings)
    assert step(plan, "ctranslate2") is None


def test_the_ctranslate2_release_planned_installs_on_this_python():
    # Python 3.8: 4.6.0 and later need 3.9 (setup.py); 4.5.0 loads cuDNN 9 as torch 2.4 does
    f = case(
        "Could not load library libcudnn_ops_infer.so.8. Error: No such file",
        python={"version": "3.8.10"},
        packages={"torch": "2.4.1+cu121", "ctranslate2": "4.4.0"},
        torch={"version": "2.4.1+cu121", "cuda": "12.1"},
    )
    assert step(analyse(f)[1], "ctranslate2").to == "==4.5.0"


def test_a_cudnn_major_ctranslate2_does_not_load_is_torchs_own():
    # ctranslate2 4.5.0 loads cuDNN 9; the text's cuDNN 8 is the one torch 2.1 brings
    f = case(
        "libcudnn_cnn_infer.so.8: cannot open shared object file",
        packages={"torch": "2.1.2+cu121", "ctranslate2": "4.5.0"},
        torch={"version": "2.1.2+cu121", "cuda": "12.1"},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("cudnn_major") == 8]
    assert found[0].evidence["requested_by"] == "torch"
    assert any(m.required and "reinstall torch" in m.text for m in plan.manual)


def test_torch_with_working_cuda_is_not_blamed_for_another_librarys_cudnn():
    # TensorFlow's dso_loader in the same environment: torch imported with CUDA working
    f = case(
        "Could not load dynamic library 'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open "
        "shared object file: No such file or directory",
        packages={"torch": "2.1.2+cu121", "tensorflow": "2.11.0"},
        torch={"version": "2.1.2+cu121", "cuda": "12.1", "cuda_available": True},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("cudnn_major") == 8]
    assert found and found[0].evidence.get("requested_by") is None
    assert any(m.required and "cuDNN 8" in m.text for m in plan.manual)


def test_the_driver_step_says_what_else_rules_out_ctranslate2_releases():
    f = case(
        packages={"torch": "2.4.1+cu118", "ctranslate2": "4.4.0"},
        torch={"version": "2.4.1+cu118", "cuda": "11.8"},
        driver={"found": True, "version": "470.82.01", "cuda": "11.4"},
    )
    text = next(m.text for m in analyse(f)[1].manual if m.id == "driver-too-old")
    assert "fits this driver, Python and the cuDNN here" in text


def test_ctranslate2s_own_cublas_message_is_ctranslate2s_not_bitsandbytes():
    """CTranslate2's cuBLAS stub (S118) names the CUDA it was built for: a finding of its own,
    never read by bitsandbytes' library rules, with the cuBLAS install or a CTranslate2 of
    torch's CUDA as the step."""
    implied = implied_by("RuntimeError: Library libcublas.so.12 is not found or cannot be loaded")
    assert (implied.ct2_cuda_major, implied.cuda_lib) == ("12", None)
    implied = implied_by("RuntimeError: Library cublas64_11.dll is not found or cannot be loaded")
    assert (implied.ct2_cuda_major, implied.system) == ("11", "Windows")
    f = case(
        "RuntimeError: Library libcublas.so.12 is not found or cannot be loaded",
        packages={"torch": "2.0.1+cu118", "ctranslate2": "4.8.5", "bitsandbytes": None},
        torch={"version": "2.0.1+cu118", "cuda": "11.8", "cuda_available": True},
        driver={"found": True, "version": "535.104.05", "cuda": "12.2"},
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.evidence.get("ct2_cuda_major") == 12]
    assert found and found[0].id == "cuda-libs-not-found"
    assert "bnb-no-cuda-lib" not in diag.ids and step(plan, "bitsandbytes") is None
    # the plan moves CTranslate2 to torch's CUDA 11; keeping 4.8.5 with CUDA 12's cuBLAS is
    # the optional other way
    assert step(plan, "ctranslate2").to == "==3.24.0"
    [m] = [m for m in plan.manual if m.id == "cuda-libs-not-found"]
    assert not m.required and "nvidia-cublas-cu12" in m.text and "keep ctranslate2" in m.text


@pytest.mark.parametrize(
    ("text", "lacking", "nvcc", "to"),
    [
        # faster-whisper's README: CTranslate2 3.24.0 for CUDA 11 (S125)
        (
            "Error: Library cublas64_12.dll is not found or cannot be loaded",
            "12",
            "11.8",
            "==3.24.0",
        ),
        (
            "RuntimeError: Library libcublas.so.11 is not found or cannot be loaded",
            "11",
            "12.4",
            "==4.8.5",
        ),
    ],
)
def test_ctranslate2_missing_its_own_cublas_moves_only_to_a_cuda_the_facts_show(
    text, lacking, nvcc, to
):
    """CTranslate2 could not open the cuBLAS of the CUDA it was built for, so a release of that
    CUDA would fail alike. With a toolkit of another major in the facts, the plan moves it to
    the newest release of that major and installing the missing cuBLAS is the optional way.
    With nothing shown of another CUDA, no release is known to find its cuBLAS: installing the
    missing one is required, the other release named with its condition. The message is
    CTranslate2's alone: no second, generic missing-runtime finding."""
    system = ("Windows", "AMD64") if ".dll" in text else ("Linux", "x86_64")
    base = dict(
        host={"system": system[0], "machine": system[1]},
        packages={"ctranslate2": None, "faster-whisper": None},
    )
    diag, plan = analyse(case(text, toolkit={"nvcc": nvcc}, **base))
    found = [x for x in diag.findings if x.id == "cuda-libs-not-found"]
    assert len(found) == 1 and found[0].evidence.get("ct2_cuda_major") == int(lacking)
    assert step(plan, "ctranslate2").to == to
    [m] = [m for m in plan.manual if m.id == "cuda-libs-not-found"]
    assert not m.required and f"nvidia-cublas-cu{lacking}" in m.text
    _, bare = analyse(case(text, **base))
    assert step(bare, "ctranslate2") is None
    [m] = [m for m in bare.manual if m.id == "cuda-libs-not-found"]
    assert m.required and f"nvidia-cublas-cu{lacking}" in m.text
    assert f"ctranslate2 {to.lstrip('=')}" in m.text and "where CUDA" in m.text


def test_ctranslate2_is_not_planned_for_a_python_its_wheels_do_not_cover():
    """3.24.0 has CPython wheels up to 3.12 and no sdist (PyPI, read 2026-12-07): on Python 3.13
    no CUDA 11 release installs, so a CUDA 11 toolkit gives no CTranslate2 step."""
    text = "Error: Library cublas64_12.dll is not found or cannot be loaded"
    f = case(
        text,
        host={"system": "Windows", "machine": "AMD64"},
        python={"version": "3.13.1"},
        packages={"ctranslate2": "4.4.0"},
        toolkit={"nvcc": "11.8"},
    )
    assert step(analyse(f)[1], "ctranslate2") is None


FROZEN = "[1004] Failed to execute script '__main__' due to unhandled exception!"


def test_a_frozen_program_gets_no_installer_step_and_the_library_advice_for_itself():
    """S126: PyInstaller's bootloader summary shows a frozen executable, whose packages ship
    inside it: no pip step (it could not reach them); CTranslate2's missing cuBLAS is put
    where the program loads it (required), and what the plan would have changed is said as the
    other way, for the program's own build."""
    text = "RuntimeError: Library cublas64_11.dll is not found or cannot be loaded\n" + FROZEN
    win = {"system": "Windows", "machine": "AMD64"}
    f = case(text, host=win, packages={}, toolkit={"nvcc": "12.4"})
    diag, plan = analyse(f)
    assert "cuda-libs-not-found" in diag.ids and not plan.steps
    required = [m for m in plan.manual if m.required]
    assert len(required) == 1 and "beside the executable" in required[0].text
    [other] = [m for m in plan.manual if not m.required]
    assert "frozen (PyInstaller)" in other.text and "ctranslate2 to 4.8.5" in other.text
    # the same text without the bootloader's line: a pip step for the environment
    _, in_env = analyse(case(text.split("\n")[0], host=win, toolkit={"nvcc": "12.4"}))
    assert step(in_env, "ctranslate2") is not None


def test_a_frozen_programs_steps_become_one_required_step_when_nothing_else_is_required():
    """bitsandbytes too old for 4-bit, inside a frozen program: the plan's bitsandbytes change
    is the required step, for a build of the program that has it."""
    text = "AttributeError: module 'bitsandbytes.nn' has no attribute 'Linear4bit'\n" + FROZEN
    f = case(text, packages={"bitsandbytes": "0.38.1"}, bitsandbytes={"version": "0.38.1"})
    _, plan = analyse(f)
    assert not plan.steps
    [m] = [m for m in plan.manual if "frozen (PyInstaller)" in m.text]
    assert m.required and "bitsandbytes to" in m.text


def test_nvidias_cublas_wheel_is_no_sign_that_its_cuda_is_where_ctranslate2_looks():
    """The nvidia-cublas-cu11 wheel's folder is on no search path: it does not make a CUDA 11
    CTranslate2 a repair; installing the missing cuBLAS stays required."""
    f = case(
        "Error: Library cublas64_12.dll is not found or cannot be loaded",
        host={"system": "Windows", "machine": "AMD64"},
        packages={"ctranslate2": "4.5.0", "nvidia-cublas-cu11": "11.11.3.6"},
    )
    _, plan = analyse(f)
    assert step(plan, "ctranslate2") is None
    [m] = [m for m in plan.manual if m.id == "cuda-libs-not-found"]
    assert m.required and "ctranslate2 3.24.0" in m.text
