"""`qfix explain` and `qfix plan --error` read an error text alike (one analyse, no second table).

The texts are the messages the tools print (plans/signatures.toml cites each: pip S69,
transformers S25, triton S72, Unsloth S73).
"""

from __future__ import annotations

import json

import pytest

from repair.facts import Facts, Host
from repair.pipeline import analyse, explain_text
from repair.render import render_explain, render_facts
from tests.test_cli import run

PIP_REFUSED = (
    "ERROR: bitsandbytes-0.45.0-py3-none-manylinux_2_24_x86_64.whl is not a supported wheel "
    "on this platform."
)
TO_432 = (
    "ValueError: `.to` is not supported for `4-bit` or `8-bit` bitsandbytes models. Please use "
    "the model as it is, since the model has already been set to the correct devices and casted "
    "to the correct `dtype`."
)
TO_430 = (
    "ValueError: `.to` is not supported for `4-bit` or `8-bit` models. Please use the model as "
    "it is"
)
TO_445 = (
    "ValueError: Calling `to()` is not supported for `4-bit` quantized models with the installed "
    "version of bitsandbytes. The current device is `cuda:0`. If you intended to move the model, "
    "please install bitsandbytes >= 0.43.2."
)
TRITON_LIBCUDA = (
    '  File "/usr/local/lib/python3.10/dist-packages/triton/common/build.py", line 21, in '
    "libcuda_dirs\n    assert any(os.path.exists(os.path.join(path, 'libcuda.so')) for path in "
    "dirs), msg\nAssertionError: libcuda.so cannot found!\nPossible files are located at "
    "['/usr/lib64-nvidia/libcuda.so.1'].Please create a symlink of libcuda.so to any of the file."
)
UNSLOTH = "RuntimeError: Unsloth: CUDA is not linked properly."
TEXTS = (PIP_REFUSED, TO_432, TO_430, TO_445, TRITON_LIBCUDA, UNSLOTH)


@pytest.mark.parametrize("text", TEXTS)
def test_explain_names_every_class_the_plan_names(text):
    plan = analyse(Facts(), error_text=text).plan
    result = explain_text(text, None)
    named = {m.id for m in result.matches if m.planned is not None}
    assert named and named == {f.id for f in plan.findings}
    # what the text proves: the plan's own "read from the error message" lines, first
    read = [u for u in plan.unknown if "read from the error message" in u]
    assert list(result.read_from_error[: len(read)]) == read
    for m in result.matches:
        if m.planned is not None:
            assert m.lines, m.id  # the line of the text that proves it
            assert m.planned.advice == tuple(x.text for x in plan.manual if x.id == m.id)


def test_pip_refusal_names_the_platform_class_and_its_tag():
    result = explain_text(PIP_REFUSED, None)
    top = result.matches[0]
    assert top.id == "bnb-platform-unsupported" and top.lines == (PIP_REFUSED,)
    assert any("pip before 20.3" in a for a in top.planned.advice)
    assert (
        "wheel_tag_refused: manylinux_2_24_x86_64 (pip refused a bitsandbytes wheel for this"
        " platform tag; read from the error message)"
    ) in result.read_from_error
    assert result.implied["wheel_tag_refused"] == "manylinux_2_24_x86_64"


def test_a_match_that_spans_lines_keeps_its_indent():
    """A match across lines (transformers' wrapper and its cause) prints each line under
    "matched:", not from the first column."""
    text = (
        "RuntimeError: Failed to import transformers.integrations.bitsandbytes because of the "
        "following error (look up to see its traceback):\n"
        "cannot import name 'driver' from 'triton.runtime'"
    )
    lines = render_explain(explain_text(text, None)).splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("  matched: RuntimeError"))
    assert lines[i + 1] == "           cannot import name 'driver' from 'triton.runtime'"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (TO_432, "transformers >=4.32.0,<4.45.0 (read from the error message"),
        (TO_430, "transformers >=4.30.0,<4.32.0 (read from the error message"),
        (TO_445, "bitsandbytes <0.43.2 (read from the error message"),
    ],
)
def test_refused_move_names_the_class_and_the_range(text, line):
    result = explain_text(text, None)
    assert result.matches and result.matches[0].planned is not None
    assert any(x.startswith(line) for x in result.read_from_error), result.read_from_error
    assert any(x.startswith("hf_feature: 4bit-move (") for x in result.read_from_error)
    shown = render_explain(result)
    # under that heading, without saying "read from the error message" again
    under = shown[shown.index("Read from the error message\n") :]
    assert line.removesuffix(" (read from the error message") + " (" in under


@pytest.mark.parametrize("text", [TRITON_LIBCUDA, UNSLOTH])
def test_libcuda_unregistered_leads_with_ldconfig_not_wsl(text):
    result = explain_text(text, None)
    top = result.matches[0]
    assert top.id == "cuda-libs-not-found"
    fix = [x for x in render_explain(result).splitlines() if x.startswith("  fix:")]
    assert fix[0].startswith("  fix:     libcuda.so.1") and "ldconfig" in fix[0]
    assert "--gpus all" in fix[0]
    assert "wsl" not in render_explain(result).lower()
    # --json keeps every field of qfix.explain/1 (the class's general remedy among them)
    doc = json.loads(render_explain(result, as_json=True))["matches"][0]
    assert {"id", "matched_lines", "confirmed_by_facts", "remedy", "sources", "references"} <= set(
        doc
    )
    assert doc["named_by_plan"] is True and doc["advice"] == list(top.planned.advice)
    assert {r["key"] for r in doc["advice_references"]} == {"S72", "S73"}


def test_given_facts_confirm_and_keep_the_plan_advice():
    facts = Facts(host=Host(system="Linux", wsl=False))
    result = explain_text(TRITON_LIBCUDA, facts)
    top = result.matches[0]
    assert top.id == "cuda-libs-not-found" and top.confirmed_by_facts is False
    assert top.planned is not None and top.planned.advice[0].startswith("libcuda.so.1")


def test_cli_exit_codes_and_compatible_json():
    p = run("explain", "--json", PIP_REFUSED)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "qfix.explain/1" and doc["matches"][0]["id"] == (
        "bnb-platform-unsupported"
    )
    assert doc["implied"]["signatures"] == ["pip-refused-bnb-wheel"]
    p = run("explain", "RuntimeError: something unrelated")
    assert p.returncode == 1 and "No known failure class" in p.stdout
    p = run("explain", "   ")
    assert p.returncode == 2 and p.stderr.startswith("qfix: error: ")


def test_detect_shows_each_driver_reason_once():
    from repair.facts import Driver

    attempts = (
        {"source": "nvml", "ok": False, "facts": [], "error": "NVML library not found (x)"},
        {"source": "sysfs", "ok": False, "facts": [], "error": "/sys/module/nvidia/version: gone"},
        {
            "source": "procfs",
            "ok": False,
            "facts": [],
            "error": "/proc/driver/nvidia/version: gone",
        },
    )
    error = "no NVIDIA driver found: " + "; ".join(str(a["error"]) for a in attempts)
    shown = render_facts(Facts(driver=Driver(found=False, error=error, attempts=attempts)))
    for a in attempts:
        assert shown.count(str(a["error"])) == 1, shown
    assert "  reason: no NVIDIA driver found\n" in shown
    # a reason no tried line shows stays whole
    other = render_facts(Facts(driver=Driver(found=False, error="NVML: permission denied")))
    assert "  reason: NVML: permission denied" in other


def _capability_warning(name: str, cc: str, code_ccs: list[str]) -> str:
    """torch's _warn_unsupported_code text (S81), as the reports paste it."""
    return "\n".join(
        [
            f"UserWarning: Found GPU0 {name} which is of compute capability (CC) {cc}.",
            "The following list shows the CCs this version of PyTorch was built for and the "
            "hardware CCs it supports:",
            *(f"- {c} which supports hardware CC >={c}" for c in code_ccs),
            "Please follow the instructions at https://pytorch.org/get-started/locally/ to "
            "install a PyTorch release that supports one of these CUDA versions: 12.6",
        ]
    )


def test_torchs_capability_warning_names_the_arch_class_and_plans_a_build_with_the_gpu():
    text = _capability_warning("NVIDIA GeForce GTX 1070 Ti", "6.1", ["7.5", "8.0", "9.0"])
    assert [m.id for m in explain_text(text, None).matches] == ["gpu-arch-unsupported"]
    from repair.facts import Gpu

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "NVIDIA GeForce GTX 1070 Ti", "6.1"),),
        packages={"torch": None, "bitsandbytes": "0.49.0"},
    )
    a = analyse(facts, error_text=text)
    assert "gpu-arch-unsupported" in a.diagnosis.ids
    from repair.view import arch_coverage, parse_version

    assert arch_coverage(a.plan.torch_arch_list or (), parse_version("6.1")) is not None


def test_torchs_capability_warning_on_a_jetson_igpu_is_not_read_as_a_missing_arch():
    """On Orin (8.7) torch prints the same warning for sm_80 code that the board runs (S81:
    DEVICE_REQUIREMENT singles out the integrated GPUs)."""
    text = _capability_warning("Orin", "8.7", ["8.0", "9.0"])
    assert "gpu-arch-unsupported" not in [m.id for m in explain_text(text, None).matches]


def test_the_first_line_of_torchs_capability_warning_alone_is_enough():
    line = (
        "UserWarning: Found GPU0 NVIDIA GeForce GTX 1060 which is of compute capability (CC) 6.1."
    )
    assert [m.id for m in explain_text(line, None).matches] == ["gpu-arch-unsupported"]
    orin = "UserWarning: Found GPU0 Orin which is of compute capability (CC) 8.7."
    assert "gpu-arch-unsupported" not in [m.id for m in explain_text(orin, None).matches]


def test_a_text_that_proves_a_fact_but_no_class_says_the_machine_decides():
    """Unsloth's device check proves CUDA unavailable: a CPU torch on a GPU machine, a fault of
    CUDA's elsewhere. Without facts no class follows, and explain says so, not "no match"."""
    text = "NotImplementedError: Unsloth currently only works on NVIDIA GPUs and Intel GPUs."
    p = run("explain", text)
    assert p.returncode == 1
    assert "No known failure class" not in p.stdout
    assert "depends on the machine" in p.stdout and "torch_cuda_unavailable" in p.stdout


def test_every_property_a_text_proves_is_said_in_words():
    # explain prints the key (as --json and --facts name it) and what it means
    from repair.signatures import _PROPERTY_WORDS, FACT_KEYS

    assert set(_PROPERTY_WORDS) == set(FACT_KEYS) - {"system"}
    result = explain_text("Unsloth currently only works on NVIDIA GPUs and Intel GPUs.", None)
    line = next(x for x in result.read_from_error if x.startswith("torch_cuda_unavailable"))
    assert "torch.cuda.is_available() was False" in line


def test_property_words_claim_no_more_than_the_text_proves():
    # a bare triton.ops error names no importer (triton-ops-missing: DeepSpeed imported it too),
    # and transformers' remote-code check also names a bitsandbytes whose own import failed (S95)
    bare = explain_text("ModuleNotFoundError: No module named 'triton.ops'", None)
    [line] = [x for x in bare.read_from_error if x.startswith("triton_ops_missing")]
    assert "bitsandbytes" not in line and "triton 3.2 and later" in line
    remote = explain_text(
        "ImportError: This modeling file requires the following packages that were not found in "
        "your environment: bitsandbytes. Run `pip install bitsandbytes`",
        None,
    )
    [line] = [x for x in remote.read_from_error if x.startswith("bnb_absent")]
    assert "not installed, or its own import failed" in line


DORA_REFUSED = "ValueError: Linear4bit does not support DoRA yet, please set it to False"
DORA_UNKNOWN = "TypeError: LoraConfig.__init__() got an unexpected keyword argument 'use_dora'"


@pytest.mark.parametrize("text", [DORA_REFUSED, DORA_UNKNOWN])
def test_a_proven_feature_floor_is_the_cause_not_the_classes_general_floors(text):
    """peft's DoRA refusal proves the 4bit-dora floor (plans/huggingface.toml: peft >= 0.10.0,
    S96): the cause line names it, not hf-stack-too-old's general 4-bit floors (peft >= 0.4.0)."""
    from repair.knowledge import load_knowledge

    [floor] = [r for r in load_knowledge().hf if r.feature == "4bit-dora"]
    shown = render_explain(explain_text(text, None))
    [cause] = [x for x in shown.splitlines() if x.startswith("  cause:")]
    assert f"needs peft >= {floor.minimum}" in cause and "DoRA" in cause
    assert "0.4.0" not in cause and "prepare_model_for_kbit_training" not in cause


def test_a_feature_floor_beside_a_general_one_names_both():
    """With facts below the general floors too, the general cause follows the feature's."""
    facts = Facts(packages={"transformers": "4.20.0", "peft": "0.9.0", "accelerate": "0.20.0"})
    shown = render_explain(explain_text(DORA_REFUSED, facts))
    [cause] = [x for x in shown.splitlines() if x.startswith("  cause:")]
    assert cause.index("needs peft >= 0.10.0") < cause.index("transformers >= 4.30.0")


def test_one_packages_floors_at_one_version_are_one_plan_line_and_the_cause_cites_its_source():
    """bitsandbytes' optimizer names refused by OptimizerNames prove transformers < 4.30.0
    (S108), which is below two floors at 4.30.0 (4-bit loading and the paged optimizers): one
    "plan:" line says the subject once, and "sources:" leads with the cause's S108."""
    text = "ValueError: paged_adamw_8bit is not a valid OptimizerNames, please select one of []"
    shown = render_explain(explain_text(text, None)).splitlines()
    [plan] = [x for x in shown if x.startswith("  plan:")]
    assert plan.count("is below 4.30.0") == 1
    assert "4-bit loading" in plan and "optimizer names" in plan
    [sources] = [x for x in shown if x.startswith("  sources:")]
    assert sources.split()[1].rstrip(";") == "S108"
    [m] = [m for m in explain_text(text, None).matches if m.id == "hf-stack-too-old"]
    doc = m.to_dict()
    assert "S108" in doc["cause"] and [r["key"] for r in doc["cause_references"]] == ["S108"]


def test_a_class_without_a_proven_feature_keeps_its_cause():
    shown = render_explain(explain_text("cannot import name 'BitsAndBytesConfig'", None))
    [cause] = [x for x in shown.splitlines() if x.startswith("  cause:")]
    assert "transformers >= 4.30.0" in cause


@pytest.mark.parametrize("text", [DORA_REFUSED, TO_432, PIP_REFUSED])
def test_lines_under_read_from_the_error_message_do_not_say_it_again(text):
    """Under the heading "Read from the error message" a line does not end with it again; what
    else its parentheses say stays, and the JSON keeps each line as it is."""
    result = explain_text(text, None)
    shown = render_explain(result)
    under = shown[shown.index("Read from the error message\n") :].splitlines()[1:]
    assert under and not any("read from the error message" in x for x in under), under
    assert all(x.endswith(")") for x in under)  # "(the facts give no version)", a property's words
    doc = json.loads(render_explain(result, as_json=True))
    assert all("read from the error message" in x for x in doc["read_from_error"])


def test_a_version_range_prints_its_lower_bound_first():
    """packaging's str(SpecifierSet) sorts clauses as strings ("<0.10.0,>=0.9.0"); qfix prints
    a range lower bound first (knowledge.Range), in explain, a finding and a command."""
    from packaging.specifiers import SpecifierSet

    from repair.knowledge import Range

    assert str(Range("<0.45.1,>=0.40.0")) == ">=0.40.0,<0.45.1"
    assert str(Range("<3,!=2.5.0,>=2.4")) == ">=2.4,!=2.5.0,<3"
    assert Range("<3,>=2.4") == SpecifierSet(">=2.4,<3") and "2.5.1" in Range("<3,>=2.4")
    shown = render_explain(explain_text(DORA_REFUSED, None))
    assert "peft >=0.9.0,<0.10.0 (the facts give no version)" in shown
    assert "<0.10.0,>=0.9.0" not in shown


def test_the_fix_line_names_the_plans_steps_for_the_class():
    """Where `qfix plan --error` has steps for a class, explain's fix line names them (the
    package and its target), not the class's general remedy; --json carries them as
    plan_steps."""
    text = (
        "ValueError: The model you want to train is loaded in 8-bit precision. "
        "Training an 8-bit model is not supported yet."
    )
    result = explain_text(text, None)
    [m] = [m for m in result.matches if m.id == "hf-stack-too-old"]
    assert m.planned is not None and m.planned.steps
    [fix] = [x for x in render_explain(result).splitlines() if x.startswith("  fix:")]
    assert fix.startswith("  fix:     the plan: transformers to >=") and "(torch pinned)" in fix
    assert m.to_dict()["plan_steps"] == list(m.planned.steps)
