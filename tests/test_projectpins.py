"""The project's own pins: `--requirements FILE` / `--constraint FILE` (repair.projectpins,
repair.pins, repair.pinplan).

- the reader follows pip's format: -r/-c nesting relative to the naming file, options, hashes,
  markers, direct references; a bad or missing file is one line and exit 2;
- markers are evaluated for the *target* (its Python from the facts), not qfix's interpreter;
- a pin steers the planner to another release that still repairs; where none exists the plan
  withholds its steps and a project-pin-conflict finding names both sides (JSON and text);
- the digest covers the pins that changed the plan; the installers get them as constraints;
- a real apply: a conflicting pin stops it before any change; an allowing one reaches the
  installer's constraints file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from repair.errors import BadInput
from repair.facts import facts_from_dict
from repair.pins import ProjectPins, may_meet, merge
from repair.pipeline import analyse, read_facts
from repair.projectpins import read_project_pins
from tests.test_cli import assert_one_line_error, run
from tests.venvs import Venv, copy_venv


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_reads_nested_requirements_and_constraints(tmp_path: Path) -> None:
    _write(tmp_path, "sub/base.txt", "BitsAndBytes >=0.41 \\\n  ,<0.46  # the tested range\n")
    _write(tmp_path, "sub/pins.txt", "transformers<5\n-r more.txt\n")
    _write(tmp_path, "sub/more.txt", "accelerate==1.1.1 --hash=sha256:00\n")
    top = _write(
        tmp_path,
        "requirements.txt",
        "# project\n--extra-index-url https://mirror.example/simple\n--pre\n"
        "-r sub/base.txt\n-c sub/pins.txt\n-e ./src\n./dist/x-1.0-py3-none-any.whl\n"
        "peft @ https://files.example/peft-0.13.2-py3-none-any.whl\n"
        "torch[opt-einsum]==2.7.1 ; platform_system == 'Linux'\n",
    )
    pins = read_project_pins([str(top)])
    by = {p.name: p for p in pins.pins}
    assert set(by) == {"bitsandbytes", "transformers", "accelerate", "peft", "torch"}
    assert by["bitsandbytes"].specifier == SpecifierSet(">=0.41,<0.46")
    assert (
        by["bitsandbytes"].source == f"{tmp_path / 'sub/base.txt'}:1"
        and not by["bitsandbytes"].constraint
    )
    # a constraints file's nested -r lines are constraints too, like pip reads them
    assert by["transformers"].constraint and by["accelerate"].constraint
    assert by["accelerate"].source.endswith("more.txt:1")
    assert by["peft"].url is not None and not by["peft"].allows("0.13.2")
    assert by["torch"].marker == 'platform_system == "Linux"'
    assert pins.files == (f"--requirements {top}",)
    assert len(pins.read) == 4 and any("editable" in n for n in pins.notes)
    # the installers get names and specifiers only (no URL, markers already evaluated)
    assert "peft" not in " ".join(pins.constraint_lines())
    assert "bitsandbytes<0.46,>=0.41" in pins.constraint_lines()


def test_a_cycle_is_read_once(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", "-r b.txt\ntorch==2.7.1\n")
    _write(tmp_path, "b.txt", "-r a.txt\nbitsandbytes==0.45.5\n")
    pins = read_project_pins([str(tmp_path / "a.txt")])
    assert sorted(p.name for p in pins.pins) == ["bitsandbytes", "torch"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("torch=2.1\n", "a.txt:1: not a valid requirement 'torch=2.1' (did you mean ==?)"),
        ("ok==1\n-r missing.txt\n", "missing.txt (named by"),
        ("--frobnicate\n", "a.txt:1: unknown option --frobnicate"),
        ("-r https://example.com/r.txt\n", "local files only"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    _write(tmp_path, "a.txt", text)
    with pytest.raises(BadInput) as err:
        read_project_pins([str(tmp_path / "a.txt")])
    assert needle in err.value.message and "\n" not in err.value.message


def test_markers_are_evaluated_for_the_target_not_for_qfix(tmp_path: Path) -> None:
    req = _write(
        tmp_path,
        "r.txt",
        'bitsandbytes==0.41.1 ; python_version < "3.10"\n'
        'bitsandbytes>=0.45 ; python_version >= "3.10"\n'
        "torch<2 ; sys_platform == 'win32'\n",
    )
    pins = read_project_pins([str(req)])
    linux39 = facts_from_dict(
        {"schema": "qfix.facts/1", "python": {"version": "3.9.18"}, "host": {"system": "Linux"}},
        "t",
    )
    kept, unknown = pins.for_target(linux39)
    assert [p.text for p in kept.pins] == ["bitsandbytes==0.41.1"] and unknown == ()
    linux312 = facts_from_dict(
        {"schema": "qfix.facts/1", "python": {"version": "3.12.1"}, "host": {"system": "Linux"}},
        "t",
    )
    assert [p.text for p in pins.for_target(linux312)[0].pins] == ["bitsandbytes>=0.45"]
    # Python unknown: a pin whose marker needs it is kept, and the plan says why
    bare = facts_from_dict({"schema": "qfix.facts/1", "host": {"system": "Linux"}}, "t")
    kept, unknown = pins.for_target(bare)
    assert len(kept.pins) == 2 and "python_version" in unknown[0]


def test_specifier_meeting() -> None:
    assert may_meet(SpecifierSet(">=4.30.0,<5"), SpecifierSet("<4.40"))
    assert not may_meet(SpecifierSet(">=4.30.0,<5"), SpecifierSet("<4.29"))
    assert may_meet(SpecifierSet(">=4.30"), SpecifierSet(">4.35,<4.40"))
    assert SpecifierSet(merge(">=4.30.0,<5", ()) or "") == SpecifierSet(">=4.30.0,<5")


def _seed_with(tmp_path: Path, text: str) -> tuple[ProjectPins, object]:
    pins = read_project_pins([str(_write(tmp_path, "requirements.txt", text))])
    return pins, analyse(read_facts("example:seed"), pins=pins).plan


def test_a_pin_steers_the_choice_to_another_release(tmp_path: Path) -> None:
    free = analyse(read_facts("example:seed")).plan
    assert free.bnb_target == "0.48.2"
    pins, plan = _seed_with(tmp_path, "bitsandbytes<0.46\n")
    assert plan.bnb_target == "0.45.5" and plan.torch_target == free.torch_target
    assert all(p.allows(s.to) for s in plan.steps for p in pins.on(s.package))
    assert any(
        "first choice 0.48.2" in n and n.endswith("within the pins: 0.45.5") for n in plan.notes
    )
    assert "project-pin-conflict" not in {f.id for f in plan.findings}
    # the pins that changed the plan are in its digest; the installers get them as constraints
    assert plan.pins_applied == (f"bitsandbytes<0.46 ({tmp_path / 'requirements.txt'}:1)",)
    assert plan.digest() != replace_pins(plan).digest()
    assert "bitsandbytes<0.46" in plan.pin_constraints


def replace_pins(plan):  # the same plan had the pins not changed it
    from dataclasses import replace

    return replace(plan, pins_applied=(), pin_constraints=())


def test_a_torch_pin_steers_the_torch_build(tmp_path: Path) -> None:
    _, plan = _seed_with(tmp_path, "torch<2.7\n")
    assert plan.torch_target is not None and plan.torch_target.startswith("2.6.")
    assert all(s.to is None or not s.to.startswith("2.7") for s in plan.steps)


def test_a_torch_pin_keeps_torch_with_a_legacy_bitsandbytes(tmp_path: Path) -> None:
    # torch moved only to reach bitsandbytes' current loader (a preference): within torch's pin
    # a legacy bitsandbytes that serves torch 1.12.1+cu113 is the repair
    _, plan = _seed_with(tmp_path, "torch==1.12.1\n")
    assert [(s.package, s.to) for s in plan.steps] == [("bitsandbytes", "0.40.1.post1")]
    assert "project-pin-conflict" not in {f.id for f in plan.findings}
    # a torch finding of its own (driver-too-old) is not a preference: its pin must allow a move
    facts = read_facts("example:driver-too-old")
    current = facts.torch.version if facts.torch else None
    pins = read_project_pins([str(_write(tmp_path, "t.txt", f"torch=={current}\n"))])
    plan = analyse(facts, pins=pins).plan
    assert plan.steps == () and "project-pin-conflict" in {f.id for f in plan.findings}


def test_a_conflict_names_both_sides_and_withholds_the_steps(tmp_path: Path) -> None:
    req = _write(tmp_path, "requirements.txt", "numpy\n\nbitsandbytes==0.41.1\n")
    p = run("plan", "--facts", "example:seed", "--requirements", str(req), "--json")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    conflict = [f for f in doc["findings"] if f["id"] == "project-pin-conflict"]
    assert conflict and conflict[0]["severity"] == "error"
    summary = conflict[0]["summary"]
    assert "the repair needs bitsandbytes==0.48.2 (bnb-no-4bit" in summary
    assert f"{req}:3 pins bitsandbytes==0.41.1" in summary
    assert doc["steps"] == [] and doc["healthy"] is False
    assert any(m["required"] and m["id"] == "project-pin-conflict" for m in doc["manual"])
    assert doc["project_pins"]["files"] == [f"--requirements {req}"]
    text = run("plan", "--facts", "example:seed", "--requirements", str(req))
    assert text.returncode == 1
    assert f"but {req}:3 pins bitsandbytes==0.41.1" in text.stdout
    assert f"Project pins: --requirements {req}" in text.stdout
    assert "Apply with" not in text.stdout  # nothing to apply


def test_the_next_step_repeats_the_pins(tmp_path: Path) -> None:
    req = _write(tmp_path, "requirements.txt", "bitsandbytes<0.46\n")
    cons = _write(tmp_path, "c.txt", "transformers<5\n")
    p = run("plan", "--facts", "example:seed", "-r", str(req), "--constraint", str(cons))
    assert p.returncode == 1, p.stderr
    assert f"--requirements {req} --constraint {cons} --yes" in p.stdout


def test_bad_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.txt", "torch=2.1\n")
    assert_one_line_error(run("plan", "--facts", "example:seed", "--requirements", str(bad)))
    assert_one_line_error(run("plan", "--facts", "example:seed", "-c", str(tmp_path / "no.txt")))
    nested = _write(tmp_path, "n.txt", "-r gone.txt\n")
    p = run("plan", "--facts", "example:seed", "--requirements", str(nested), "--json")
    assert p.returncode == 2 and "gone.txt" in json.loads(p.stdout)["error"]
    p = run("apply", "--yes", "--requirements", str(bad))
    assert_one_line_error(p)
    assert f"{bad}:1" in p.stderr


# --------------------------------------------------------------------------- real apply


@pytest.fixture()
def broken(tmp_path: Path, venv_bnb038: Venv) -> Venv:
    """A private copy of the torch 2.13 CPU + bitsandbytes 0.38.1 venv."""
    return copy_venv(venv_bnb038, tmp_path / "venv")


def _freeze(v: Venv) -> str:
    return subprocess.run(
        [str(v.python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.venv
def test_apply_stops_on_a_conflicting_pin_before_any_change(broken: Venv, tmp_path: Path) -> None:
    req = _write(tmp_path, "requirements.txt", "bitsandbytes==0.38.1\n")
    before = _freeze(broken)
    p = run("apply", "--yes", "--json", "--python", str(broken.python), "-r", str(req))
    assert p.returncode == 1, (p.stdout, p.stderr)
    doc = json.loads(p.stdout)
    assert "project-pin-conflict" in {f["id"] for f in doc["plan"]["findings"]}
    assert doc["plan"]["steps"] == [] and doc["outcome"] is None
    assert _freeze(broken) == before
    assert not (broken.path / ".qfix" / "journal.json").exists()


@pytest.mark.venv
def test_apply_hands_the_pins_to_the_installer(broken: Venv, tmp_path: Path) -> None:
    # The planner allows this (it does not plan numpy), so only the installer can enforce the
    # numpy pin: bitsandbytes needs numpy, no numpy 0.0.1 exists, and the change is undone.
    cons = _write(tmp_path, "constraints.txt", "bitsandbytes>=0.46\nnumpy==0.0.1\n")
    before = _freeze(broken)
    p = run(
        "apply", "--yes", "--json", "--python", str(broken.python), "-c", str(cons), timeout=600
    )
    assert p.returncode in (3, 6), (p.stdout, p.stderr)  # refused by the dry run, or rolled back
    doc = json.loads(p.stdout)
    assert doc.get("outcome") is None or doc["outcome"]["rolled_back"] is True
    log = broken.path / ".qfix" / "installer.log"
    assert "numpy" in (doc.get("error", "") + (log.read_text() if log.exists() else "")), doc
    assert _freeze(broken) == before
    plan = json.loads(run("plan", "--json", "--python", str(broken.python), "-c", str(cons)).stdout)
    assert {"bitsandbytes>=0.46", "numpy==0.0.1"} <= set(plan["constraints"])
    assert plan["bitsandbytes_target"] == "0.50.2"


def test_a_removal_conflicts_only_with_a_requirement_that_stays_unmet(tmp_path: Path) -> None:
    facts = read_facts("example:bnb-duplicate")
    # every copy of bitsandbytes goes and one comes back: a pin on it is met
    kept = read_project_pins([str(_write(tmp_path, "a.txt", "bitsandbytes>=0.45\n"))])
    plan = analyse(facts, pins=kept).plan
    assert plan.steps and "project-pin-conflict" not in {f.id for f in plan.findings}
    # the project requires the obsolete fork the repair removes: both sides named, no steps
    fork = read_project_pins([str(_write(tmp_path, "b.txt", "bitsandbytes-cuda111==0.26.0\n"))])
    plan = analyse(facts, pins=fork).plan
    summary = next(f.summary for f in plan.findings if f.id == "project-pin-conflict")
    assert summary.startswith("the repair removes bitsandbytes-cuda111 (bnb-duplicate-install)")
    assert f"{tmp_path / 'b.txt'}:1 pins bitsandbytes-cuda111==0.26.0" in summary
    assert plan.steps == ()
    # as a constraint it only limits the version: removing the fork is fine
    cons = read_project_pins((), [str(tmp_path / "b.txt")])
    assert "project-pin-conflict" not in {f.id for f in analyse(facts, pins=cons).plan.findings}


@pytest.mark.venv
def test_preflight_checks_within_the_pins(venv_torch213: Venv, tmp_path: Path) -> None:
    from repair import preflight

    req = _write(tmp_path, "requirements.txt", "bitsandbytes<0.39\n")
    assert preflight.check(str(venv_torch213.python)).ok  # healthy without the pins
    with pytest.raises(preflight.Not4BitReady) as err:
        preflight.require_4bit(str(venv_torch213.python), requirements=[str(req)])
    result = err.value.result
    assert "project-pin-conflict" in {f.id for f in result.findings}
    assert f"{req}:1 pins bitsandbytes<0.39" in str(err.value)


@pytest.mark.venv
def test_preflight_fix_command_repeats_the_pins(venv_bnb038: Venv, tmp_path: Path) -> None:
    from repair import preflight

    req = _write(tmp_path, "requirements.txt", "bitsandbytes>=0.46\n")
    result = preflight.check(str(venv_bnb038.python), requirements=[str(req)])
    assert not result.ok and result.plan.steps
    assert result.fix_command.endswith(f" --requirements {req} --yes")


@pytest.mark.venv
def test_a_saved_plan_needs_the_same_pins(broken: Venv, tmp_path: Path) -> None:
    req = _write(tmp_path, "requirements.txt", "bitsandbytes>=0.46\n")
    saved = tmp_path / "plan.json"
    p = run("plan", "--python", str(broken.python), "-r", str(req), "--out", str(saved))
    assert p.returncode == 1, p.stderr
    assert json.loads(saved.read_text())["project_pins"]["constraints"] == ["bitsandbytes>=0.46"]
    before = _freeze(broken)
    p = run("apply", "--yes", "--python", str(broken.python), "--plan", str(saved))
    assert p.returncode == 6 and "--requirements" in p.stderr, p.stderr
    assert _freeze(broken) == before


@pytest.mark.parametrize(
    "text",
    [
        # pip, when the constraint qfix hands over meets a pin (ResolutionImpossible)
        "ERROR: Cannot install bitsandbytes==0.48.2 because these package versions have "
        "conflicting dependencies.\n\nThe conflict is caused by:\n"
        "    The user requested bitsandbytes==0.48.2\n"
        "    The user requested (constraint) bitsandbytes==0.41.1\n",
        # uv
        "  × No solution found when resolving dependencies:\n  ╰─▶ Because you require "
        "bitsandbytes==0.48.2 and bitsandbytes==0.41.1, we can conclude that your "
        "requirements are unsatisfiable.\n",
    ],
)
def test_explain_knows_the_installers_pin_conflicts(text: str) -> None:
    from tests.core_helpers import explained_ids

    assert "project-pin-conflict" in explained_ids(text)
    assert "project-pin-conflict" not in explained_ids(
        "Because you require numpy==2.0 and scipy==1.0, we can conclude that ..."
    )
