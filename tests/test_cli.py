"""The CLI as users run it (a child process): exit codes, one-line errors, --json everywhere."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from repair.facts import SCHEMA, facts_from_dict
from tests.core_helpers import EXAMPLES

QFIX = [sys.executable, "-m", "repair"]


def run(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 120):
    e = dict(os.environ)
    e.pop("VIRTUAL_ENV", None)
    e.update(env or {})
    return subprocess.run(
        [*QFIX, *args], capture_output=True, text=True, input=stdin, env=e, timeout=timeout
    )


def assert_one_line_error(p, code=2):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    # the one line naming the target (printed before the target is read) is not an error line
    lines = [x for x in p.stderr.splitlines() if x.strip() and not x.startswith("qfix: target: ")]
    assert lines and lines[0].startswith("qfix: error: "), p.stderr
    assert len([x for x in lines if not x.startswith("Tip:")]) == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_help_lists_every_command():
    p = run("--help")
    assert p.returncode == 0
    for cmd in ("detect", "plan", "explain", "matrix", "verify", "apply", "rollback"):
        assert cmd in p.stdout


def test_detect_json_on_this_machine():
    p = run("detect", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == SCHEMA
    facts_from_dict(doc, "detect")  # valid qfix.facts/1
    # This machine has no NVIDIA driver: the reason must be there.
    assert doc["driver"]["found"] is False and doc["driver"]["error"]


@pytest.mark.parametrize("bad", ["/nonexistent/python", "__file__", "__crash__", "__hang__"])
def test_detect_bad_python_exits_2(tmp_path, bad):
    if bad == "__file__":
        target = tmp_path / "notes.txt"
        target.write_text("not a python\n")
    elif bad == "__crash__":
        target = tmp_path / "python"
        target.write_text("#!/bin/sh\necho 'Fatal Python error: boom' >&2\nexit 1\n")
        target.chmod(target.stat().st_mode | stat.S_IEXEC)
    elif bad == "__hang__":
        target = tmp_path / "python"
        target.write_text("#!/bin/sh\nsleep 60\n")
        target.chmod(target.stat().st_mode | stat.S_IEXEC)
    else:
        target = Path(bad)
    p = run("detect", "--python", str(target), env={"QFIX_PROBE_TIMEOUT": "3"}, timeout=60)
    assert_one_line_error(p)


def test_plan_seed_text_and_exit_1():
    p = run("plan", "--facts", str(EXAMPLES / "seed.json"))
    assert p.returncode == 1, p.stderr
    assert "bnb-no-4bit" in p.stdout and "torch" in p.stdout


def test_plan_shipped_example_shorthand():
    p = run("plan", "--facts", "example:healthy", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["healthy"] is True


def test_plan_out_file(tmp_path):
    out = tmp_path / "plan.json"
    p = run("plan", "--facts", str(EXAMPLES / "F15.json"), "--out", str(out), "--json")
    assert p.returncode == 1
    saved = json.loads(out.read_text())
    assert saved == json.loads(p.stdout) and saved["schema"] == "qfix.plan/1"


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"schema": "other"}', "unknown schema"),
        ('{"schema": "qfix.facts/1", "gpus": 3}', "'gpus' must be a list"),
    ],
)
def test_plan_bad_facts_exit_2(tmp_path, content, needle):
    f = tmp_path / "facts.json"
    if content is not None:
        f.write_text(content)
    p = run("plan", "--facts", str(f))
    assert_one_line_error(p)
    assert needle in p.stderr


def test_plan_bad_torch_index_exit_2():
    p = run("plan", "--facts", "example:seed", "--torch-index", "http://example.com/whl")
    assert_one_line_error(p)


@pytest.mark.parametrize(("value", "stdin"), [("", None), (" \n\t", None), ("-", "\n  \n")])
def test_plan_empty_error_exit_2(value, stdin):
    p = run("plan", "--facts", "example:seed", "--error", value, stdin=stdin)
    assert_one_line_error(p)
    assert p.stderr.startswith("qfix: error: --error is empty")


def test_explain_text_and_json():
    p = run("explain", "CUDA error: no kernel image is available for execution on the device")
    assert p.returncode == 0 and "gpu-arch-unsupported" in p.stdout
    p = run("explain", "-", "--json", stdin="RuntimeError: something unrelated\n")
    assert p.returncode == 1 and json.loads(p.stdout) == {
        "schema": "qfix.explain/1",
        "matches": [],
        "read_from_error": [],
        "implied": {},
        "ruled_out": [],
    }


def test_explain_with_facts_confirms():
    p = run(
        "explain",
        "--json",
        "--facts",
        str(EXAMPLES / "F18.json"),
        "PyTorch no longer supports this GPU because it is too old",
    )
    doc = json.loads(p.stdout)
    top = doc["matches"][0]
    assert top["id"] == "gpu-arch-unsupported" and top["confirmed_by_facts"] is True


def test_matrix_json():
    p = run("matrix", "--facts", str(EXAMPLES / "F18.json"), "--json")
    assert p.returncode == 0, p.stderr
    cells = json.loads(p.stdout)["cells"]
    ok = {(c["torch"], c["variant"]) for c in cells if c["ok"]}
    assert ("2.7", "cu126") in ok and ("2.7", "cu128") not in ok


def test_matrix_on_an_amd_host_names_its_gpu_and_builds_of_unknown_targets():
    """An AMD GPU is listed with its target, and a ROCm build whose GPU targets plans/ does not
    hold is "ok?" (fits, unproven), not "ok" as the builds read from their wheels (S101)."""
    facts = str(EXAMPLES / "rocm-cuda-torch.json")
    p = run("matrix", "--facts", facts, env={"COLUMNS": "300"})
    assert p.returncode == 0, p.stderr
    head, legend, unsure = p.stdout.splitlines()[:3]
    assert "GPUs: AMD Radeon RX 7900 XTX (gfx1100)" in head and "ok? = " in unsure
    rows = {ln.split()[0]: ln.split()[1:] for ln in p.stdout.splitlines() if ln[:1].isdigit()}
    assert rows["2.7"] == ["x", "ok", "ok"] and rows["2.8"] == ["x", "ok?", "ok?"]
    doc = json.loads(run("matrix", "--facts", facts, "--json").stdout)
    cov = {(c["torch"], c["variant"]): c["coverage"] for c in doc["cells"]}
    assert cov[("2.7", "rocm6.3")] == "gfx" and cov[("2.8", "rocm6.4")] == "unknown"
    assert cov[("2.0", "rocm5.4.2")] is None  # cannot work: no gfx1100 in its list


def test_matrix_does_not_say_works_where_the_driver_is_unknown():
    """F06 gives no driver version or CUDA level: a CUDA build that fits everything else is
    "ok?" (fits what is known), not "ok"; the legend says so."""
    p = run("matrix", "--facts", str(EXAMPLES / "F06.json"), env={"COLUMNS": "300"})
    assert p.returncode == 0, p.stderr
    head = p.stdout.splitlines()[0]
    assert head.startswith("NVIDIA driver: ? (CUDA ?)")
    assert "ok? = fits what is known: the driver" in p.stdout
    cells = [ln.split()[1:] for ln in p.stdout.splitlines() if ln[:1].isdigit()]
    assert "ok?" in {c for row in cells for c in row} and "ok" not in {
        c for row in cells for c in row
    }
    # --json carries the same marks
    doc = json.loads(run("matrix", "--facts", str(EXAMPLES / "F06.json"), "--json").stdout)
    marks = {c["mark"] for c in doc["cells"]}
    assert "ok?" in marks and "ok" not in marks
    assert all((c["mark"] == "x") == (not c["ok"]) for c in doc["cells"])


def test_unknown_option_exit_2():
    p = run("plan", "--bogus")
    assert p.returncode == 2 and "Traceback" not in p.stderr


# --------------------------------------------------------------------------- settings, once


def test_settings_resolve_every_input_once() -> None:
    from dataclasses import replace

    from repair.errors import BadInput
    from repair.pipeline import ApplyPrep, apply_index_base, make_settings
    from repair.planfile import plan_from_doc

    env = {"QFIX_TORCH_INDEX": "https://env.example/whl", "QFIX_PROBE_TIMEOUT": "7"}
    s = make_settings(python=sys.executable, needs_index=True, environ=env)
    assert (s.python, s.torch_index_base, s.probe_timeout) == (
        os.path.abspath(sys.executable),
        "https://env.example/whl",
        7.0,
    )
    flagged = make_settings(
        python=sys.executable, torch_index="https://cli.example/whl/", needs_index=True, environ=env
    )
    assert flagged.torch_index_base == "https://cli.example/whl"
    # --facts FILE reads no interpreter: neither the target nor its time limit is looked at
    bad = {"VIRTUAL_ENV": "/nonexistent", "QFIX_PROBE_TIMEOUT": "x"}
    assert make_settings(facts_file="f.json", environ=bad).python is None
    with pytest.raises(BadInput, match="QFIX_PROBE_TIMEOUT"):
        make_settings(python=sys.executable, environ=bad)
    with pytest.raises(BadInput, match="--installer"):
        make_settings(facts_file="f.json", installer="conda", environ={})
    # the index base is always this run's: a saved plan naming another one is refused before
    # (repair.planfile.check_same, tests/test_planfile.py), it never brings its own
    saved = plan_from_doc(
        {
            "schema": "qfix.plan/1",
            "healthy": False,
            "fingerprint": "sha256:" + "0" * 64,
            "steps": [],
            "torch_index_base": "https://saved.example/whl",
        }
    )
    prep = ApplyPrep(sys.executable, saved, saved=True)
    assert apply_index_base(s, prep) == "https://env.example/whl"
    assert apply_index_base(flagged, prep) == "https://cli.example/whl"
    fresh = ApplyPrep(sys.executable, replace(saved, torch_index_base=s.torch_index_base), False)
    assert apply_index_base(s, fresh) == "https://env.example/whl"


def test_explain_help_says_dash_reads_stdin():
    """The argument's help shows (typer < 0.20 with click >= 8.5 dropped it, cli.py) and says
    that '-' reads the text from stdin; fleet's argument help shows too."""
    p = run("explain", "--help", env={"COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    [row] = [x for x in p.stdout.splitlines() if "[TEXT]" in x and "text" in x]
    assert "'-' (or no TEXT) reads it from stdin" in row
    p = run("fleet", "report", "--help", env={"COLUMNS": "200"})
    assert "Record files (qfix.node/1" in p.stdout
