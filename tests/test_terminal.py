"""What a person at the terminal sees (issue 11): live progress in a real pseudo-terminal, the
apply prompt, the ASCII fallback, true messages, and JSON errors under --json for every command.

The pty tests run the real CLI in a child on a real pseudo-terminal (python's ``pty``) and record
when each byte arrived, so "progress appears before the step ends" is a measured fact, not a
reading of the code.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repair import process
from repair.render import for_terminal
from repair.terminal import Terminal, installer_status
from tests.venvs import SPECS, Venv, get_venv

REPO = Path(__file__).resolve().parent.parent
QFIX = [sys.executable, "-m", "repair"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "QFIX_TORCH_INDEX")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [*QFIX, *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=str(REPO),
    )


def in_pty(
    argv: list[str], *, answer: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[list[tuple[float, bytes]], int]:
    """Run ``argv`` on a pseudo-terminal (stdin, stdout and stderr all on it): every chunk it
    wrote with the second it arrived, and its exit code. ``answer`` is typed once a '[y/N]'
    prompt shows."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a person's terminal
        os.chdir(REPO)
        os.execve(argv[0], argv, env or _env())
    chunks: list[tuple[float, bytes]] = []
    t0 = time.monotonic()
    seen = b""
    deadline = t0 + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append((time.monotonic() - t0, data))
        seen += data
        if answer is not None and b"[y/N]" in seen:
            os.write(fd, answer)
            answer = None
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return chunks, os.waitstatus_to_exitcode(status)


def first_time(chunks: list[tuple[float, bytes]], needle: bytes) -> float | None:
    text = b""
    for t, data in chunks:
        text += data
        if needle in text:
            return t
    return None


def screen(chunks: list[tuple[float, bytes]]) -> str:
    return b"".join(d for _, d in chunks).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the status line


def test_installer_lines_become_a_short_status() -> None:
    pip = "Downloading https://files.example/p/torch-2.5.1-cp311-linux_x86_64.whl (906.4 MB)"
    assert installer_status(pip) == "downloading torch-2.5.1-cp311-linux_x86_64.whl (906.4 MB)"
    quoted = "Downloading http://127.0.0.1:8/whl/cpu/torch-2.14.1%2Bcpu-cp311-none-any.whl (2 kB)"
    assert installer_status(quoted) == "downloading torch-2.14.1+cpu-cp311-none-any.whl (2 kB)"
    assert installer_status("Collecting bitsandbytes==0.50.2") == "collecting bitsandbytes==0.50.2"
    assert installer_status("Downloading torch (906.4MiB)") == "downloading torch (906.4MiB)"
    assert installer_status("  Attempting uninstall: six") is None
    assert installer_status("Installed 1 package in 12ms") == "Installed 1 package in 12ms"


def test_status_line_only_on_a_terminal_and_whole_lines_in_a_log() -> None:
    log = io.StringIO()
    with Terminal(log, live=False) as term:
        term.progress("[1/1] install bitsandbytes")
        term.output("Collecting bitsandbytes==0.50.2")
    assert log.getvalue() == "qfix: [1/1] install bitsandbytes\n"  # no \r, no escape codes
    tty = io.StringIO()
    with Terminal(tty, live=True) as term:
        term.progress("[1/1] install bitsandbytes")
        term.output("Collecting bitsandbytes==0.50.2")
        term.progress("applied 1 step(s)")
    text = tty.getvalue()
    assert "\r\x1b[K  ... collecting bitsandbytes==0.50.2 (0 s)" in text
    # the status line is erased before the next whole line, and at the end
    assert text.endswith("qfix: applied 1 step(s)\n") or text.endswith("\r\x1b[K")


def test_verbose_prints_every_line_and_quiet_prints_nothing() -> None:
    loud, quiet = io.StringIO(), io.StringIO()
    with Terminal(loud, verbosity=1, live=True) as term:
        term.output("  Attempting uninstall: six")
    with Terminal(quiet, verbosity=-1, live=True) as term:
        term.progress("reading")
        term.output("Collecting six")
    assert loud.getvalue() == "    Attempting uninstall: six\n"
    assert quiet.getvalue() == ""


def test_ticker_shows_what_a_silent_wait_waits_for() -> None:
    tty = io.StringIO()
    with Terminal(tty, live=True) as term:
        term.wait("reading /venv/bin/python")
        time.sleep(2.3)
    assert re.search(r"\.\.\. reading /venv/bin/python \(2 s\)", tty.getvalue()), tty.getvalue()
    log = io.StringIO()
    with Terminal(log, live=False) as term:
        term.wait("reading /venv/bin/python")
        time.sleep(2.1)
    assert log.getvalue() == ""


def test_a_slow_installer_step_is_shown_while_it_runs(tmp_path: Path) -> None:
    """A fake installer at the process boundary: it reports a download, then works for 3 s.
    The status line must be on the terminal long before it ends."""
    fake = tmp_path / "installer.py"
    fake.write_text(
        "import sys, time\n"
        "print('Collecting demo==1.0', flush=True)\n"
        "print('Downloading http://127.0.0.1/demo-1.0-py3-none-any.whl (812.5 MB)', flush=True)\n"
        "time.sleep(3)\n"
        "print('Successfully installed demo-1.0', flush=True)\n"
    )
    driver = (
        "import sys, time\n"
        "from repair import process\n"
        "from repair.terminal import Terminal\n"
        "with Terminal(sys.stderr) as term:\n"
        "    term.progress('[1/1] install demo')\n"
        f"    process.run([sys.executable, {str(fake)!r}], timeout=30, limit=None,\n"
        "                on_line=term.output)\n"
        "    term.progress('done')\n"
    )
    chunks, rc = in_pty([sys.executable, "-c", driver])
    assert rc == 0, screen(chunks)
    shown = first_time(chunks, b"downloading demo-1.0-py3-none-any.whl (812.5 MB)")
    done = first_time(chunks, b"qfix: done")
    assert shown is not None and done is not None, screen(chunks)
    assert done - shown >= 2.5, (shown, done)


def test_process_run_streams_lines_as_they_come(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    done = process.run(
        [
            sys.executable,
            "-c",
            "import time; print('one', flush=True); time.sleep(1.5); print('two')",
        ],
        timeout=30,
        on_line=lambda line: seen.append((time.monotonic() - t0, line)),
    )
    assert done.ok and [s for _, s in seen] == ["one", "two"]
    assert seen[1][0] - seen[0][0] >= 1.2  # "one" arrived before the child slept


# --------------------------------------------------------------------------- a person's session


@pytest.mark.venv
def test_verify_prints_each_check_as_it_finishes_on_a_terminal(venv_torch213: Venv) -> None:
    chunks, rc = in_pty([*QFIX, "verify", "--python", str(venv_torch213.python)])
    text = screen(chunks)
    assert rc == 10, text
    first_check = first_time(chunks, b"qfix: ok     import-torch")
    summary = first_time(chunks, b"4-bit load verified")
    assert first_check is not None and summary is not None, text
    assert summary - first_check >= 1.0, (first_check, summary)  # not all at once at the end
    assert "... import torch (" in text or "... import bitsandbytes (" in text  # the ticker
    # transformers is there but accelerate is not: skipped with one line, never a failure
    assert "skip   tiny-model  accelerate is not installed (optional)" in text


def test_apply_prompt_says_will_be_applied_and_no_changes_nothing(venv_bare: Venv) -> None:
    chunks, rc = in_pty([*QFIX, "apply", "--python", str(venv_bare.python)], answer=b"n\n")
    text = screen(chunks)
    assert rc == 1, text
    assert "Plan (will be applied)" in text and "dry run" not in text
    assert f"Apply this plan to {venv_bare.python}? [y/N]" in text
    assert "nothing was changed" in text


def test_ascii_terminal_gets_ascii_marks() -> None:
    p = run("plan", "--facts", "example:seed", env=_env(PYTHONIOENCODING="ascii"))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert "  x " in p.stdout and "\u2717" not in p.stdout
    assert for_terminal("\u2717 a \u2192 b \u2014 c", "ascii") == "x a -> b - c"
    assert for_terminal("caf\u00e9 \u2713", "latin-1") == "caf\u00e9 v"


# --------------------------------------------------------------------------- true messages


def test_rollback_with_nothing_to_undo_says_so(venv_bare: Venv) -> None:
    p = run("rollback", "--python", str(venv_bare.python))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Nothing to roll back: no unfinished qfix apply in this environment."
    assert "Done" not in p.stdout
    quiet = run("rollback", "-q", "--python", str(venv_bare.python))
    assert quiet.returncode == 0 and quiet.stderr == "" and "Nothing to roll back" in quiet.stdout


def test_facts_too_thin_are_cannot_tell(tmp_path: Path) -> None:
    facts = tmp_path / "empty.json"
    facts.write_text('{"schema": "qfix.facts/1"}')
    p = run("plan", "--facts", str(facts))
    assert p.returncode == 7, (p.stdout, p.stderr)
    assert p.stdout.startswith("Cannot tell:") and "Healthy" not in p.stdout
    doc = json.loads(run("plan", "--json", "--facts", str(facts)).stdout)
    assert doc["healthy"] is False and "qfix detect --json" in doc["cannot_tell"]


@pytest.mark.parametrize(
    ("packages", "missing"),
    [
        ({}, "torch or bitsandbytes"),  # a report that lists nothing
        ({"torch": None, "bitsandbytes": None}, "torch or bitsandbytes"),
        ({"torch": "2.5.1+cu121", "bitsandbytes": None}, "bitsandbytes"),
        ({"torch": "not-a-version", "bitsandbytes": "0.45.0"}, "torch"),
    ],
)
def test_facts_without_the_versions_every_check_needs_are_cannot_tell(
    tmp_path: Path, packages: dict, missing: str
) -> None:
    """No finding is not "healthy" when torch's or bitsandbytes' version (or build) is missing:
    no check of that package ran. Exit 7, what to collect, and an unreadable version named."""
    facts = tmp_path / "report.json"
    facts.write_text(json.dumps({"schema": "qfix.facts/1", "packages": packages}))
    p = run("plan", "--facts", str(facts))
    assert p.returncode == 7, (p.stdout, p.stderr)
    assert p.stdout.startswith(f"Cannot tell: the facts give no version of {missing},")
    assert "Healthy" not in p.stdout
    if "not-a-version" in json.dumps(packages):
        assert "packages.torch: 'not-a-version' is not a version (PEP 440)" in p.stdout
    doc = json.loads(run("plan", "--json", "--facts", str(facts)).stdout)
    assert doc["healthy"] is False and "qfix detect --json" in doc["cannot_tell"]


def _report(tmp_path: Path, **doc: object) -> str:
    """A hand-written qfix.facts/1 report in a file; its path."""
    facts = tmp_path / "report.json"
    facts.write_text(json.dumps({"schema": "qfix.facts/1", **doc}))
    return str(facts)


def test_facts_with_both_versions_and_nothing_wrong_are_healthy(tmp_path: Path) -> None:
    facts = _report(
        tmp_path,
        host={"system": "Linux", "machine": "x86_64"},
        packages={"torch": "2.5.1+cpu", "bitsandbytes": "0.46.0"},
    )
    p = run("plan", "--facts", facts)
    assert p.returncode == 0 and p.stdout.startswith("Healthy"), (p.stdout, p.stderr)


def test_a_program_that_is_no_python_gets_one_short_line() -> None:
    p = run("plan", "--python", "/bin/ls")
    assert p.returncode == 2
    # the target line (which environment and why) comes first, then the one error line
    lines = [line for line in p.stderr.splitlines() if not line.startswith("qfix: target:")]
    assert lines[0].startswith("qfix: error: the target /bin/ls is not a Python interpreter")
    assert len(lines[0]) < 160 and "import sys" not in p.stderr and "version_info" not in p.stderr


def test_version_flags_and_completion() -> None:
    from repair import __version__

    for flag in ("--version", "-V"):
        p = run(flag)
        assert p.returncode == 0 and p.stdout.strip() == f"qfix {__version__}"
    helptext = run("--help").stdout
    assert "--install-completion" in helptext and "--show-completion" in helptext
    for word in ("--quiet", "--verbose", "report"):
        assert word in helptext


def test_report_is_paste_ready_markdown() -> None:
    p = run("report", "--facts", "example:seed")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("### Environment (`qfix report`)")
    assert "| package | version |" in p.stdout and "### Diagnosis (`qfix plan`)" in p.stdout
    assert re.search(r"^- `[a-z0-9-]+` \((error|warning|info)\): ", p.stdout, re.M)
    doc = json.loads(run("report", "--json", "--facts", "example:seed").stdout)
    assert doc["schema"] == "qfix.report/1" and doc["markdown"] == p.stdout.rstrip("\n")


def test_report_lists_trl_diffusers_safetensors(venv_bare: Venv) -> None:
    p = run("report", "--python", str(venv_bare.python))
    assert p.returncode == 0, p.stderr
    for name in ("trl", "diffusers", "safetensors", "transformers"):
        assert f"| {name} | " in p.stdout


# --------------------------------------------------------------------------- JSON errors


MISSING = "/nonexistent/qfix-test/python"


@pytest.mark.parametrize(
    "args",
    [
        ("detect", "--python", MISSING),
        ("plan", "--python", MISSING),
        ("plan", "--facts", "/nonexistent/facts.json"),
        ("explain", ""),
        ("matrix", "--facts", "/nonexistent/facts.json"),
        ("verify", "--python", MISSING),
        ("apply", "--yes", "--python", MISSING),
        ("rollback", "--python", MISSING),
        ("report", "--python", MISSING),
        ("plan", "--no-such-option"),
        ("verify", "--model", "large", "--python", sys.executable),
    ],
)
def test_errors_under_json_are_json_on_stdout(args: tuple[str, ...]) -> None:
    p = run(*args[:1], "--json", *args[1:])
    assert p.returncode == 2, (p.stdout, p.stderr)
    doc = json.loads(p.stdout)
    assert set(doc) == {"error", "tip", "exit_code"} and doc["exit_code"] == 2
    assert doc["error"] and "\n" not in doc["error"]
    assert p.stderr == "", p.stderr


# ------------------------------------------------------------------ plan agrees with verify


AGREEMENT_VENVS = {**SPECS, "torch213-bnb-hf": (*SPECS["torch213-bnb"], "accelerate==1.15.0")}


@pytest.mark.venv
@pytest.mark.parametrize("name", sorted(AGREEMENT_VENVS))
def test_plan_and_verify_agree(name: str) -> None:
    """Where plan says healthy, verify passes; where verify fails with a class, plan reports
    that class (or says what it could not know). On every venv the suite builds."""
    from repair import pipeline
    from repair.verify.runner import run_verify

    venv = get_venv(name, AGREEMENT_VENVS[name])
    settings = pipeline.make_settings(python=str(venv.python), environ=_env())
    plan = pipeline.analyse(pipeline.detect(settings)).plan
    verdict = run_verify(str(venv.python), device="auto", model="auto", timeout=300)
    ids = {f.id for f in plan.findings}
    if plan.healthy:
        assert verdict.ok, (name, verdict.summary)
    for fid in verdict.failure_ids:
        assert fid in ids or plan.unknown, (name, fid, sorted(ids), verdict.summary)
    if not verdict.ok:
        assert not plan.healthy, (name, verdict.summary)


def test_long_lines_fit_a_terminal_and_commands_and_table_rows_stay_whole() -> None:
    """A person at an 80-column terminal gets each long line wrapped at spaces, continued under
    the text after its list marker; commands and plan table rows stay whole to be copied; a word
    longer than the width (a URL) is never broken."""
    from repair.terminal import fit_to_width

    finding = "  ✗ gpu-arch-unsupported: " + "word " * 30
    manual = "  [required] " + "step " * 30
    command = "  $ python -m pip install " + "x " * 60
    powershell = "  PS> $env:PIP_CONFIG_FILE = 'nul'; & python -m pip install " + "w " * 60
    row = "  ~  torch  2.5.1+cu121  2.7.1+cu126  " + "y" * 80
    url = "  ? see https://example.org/" + "z" * 100
    out = fit_to_width("\n".join([finding, manual, command, powershell, row, url]), 80)
    lines = out.split("\n")
    assert powershell in lines  # a Windows target's command is pasted whole too
    assert all(len(x) <= 80 for x in lines if not x.lstrip().startswith(("$", "PS>", "~", "https")))
    assert lines[1].startswith(" " * len("  ✗ ")) and not lines[1].startswith(" " * 5)
    assert command in lines and row in lines
    assert any(x.strip() == "https://example.org/" + "z" * 100 for x in lines)  # never broken
    manual_lines = [x for x in lines if "step" in x]
    assert manual_lines[1].startswith(" " * len("  [required] "))
    assert " ".join(x.strip() for x in lines[:2]).startswith("✗ gpu-arch-unsupported: word")


def test_piped_output_is_not_wrapped(tmp_path: Path) -> None:
    facts = _report(
        tmp_path,
        host={"system": "Windows", "machine": "AMD64"},
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}],
        packages={"torch": None, "bitsandbytes": None},
    )
    p = run("plan", "--facts", facts)
    assert max(len(x) for x in p.stdout.splitlines()) > 200  # a pipe gets whole lines


def test_a_plan_from_another_machines_facts_says_where_to_apply_quoted_for_its_shell(
    tmp_path: Path,
) -> None:
    """--facts describe another machine: the next step says to run it there, with the path
    quoted for that machine's shell (double quotes for cmd.exe/PowerShell, shellquote)."""
    facts = _report(
        tmp_path,
        host={"system": "Windows", "machine": "AMD64"},
        python={
            "executable": "C:\\Users\\Me Name\\.venv\\Scripts\\python.exe",
            "version": "3.11.7",
        },
        driver={"found": True, "version": "560.94", "cuda": "12.6"},
        gpus=[{"index": 0, "name": "GTX 1060", "compute_capability": "6.1"}],
        packages={"torch": "2.8.0+cu128", "bitsandbytes": "0.47.0"},
        torch={"version": "2.8.0+cu128", "cuda": "12.8"},
    )
    p = run("plan", "--facts", facts)
    line = next(x for x in p.stdout.splitlines() if "apply with:" in x)
    assert line.startswith("On the machine these facts come from, apply with:")
    assert '--python "C:\\Users\\Me Name\\.venv\\Scripts\\python.exe" --yes' in line


def test_a_plan_table_wider_than_the_terminal_is_a_list() -> None:
    """At 80 columns the diff table of a torch move (its index URL is a column) would break
    across lines: it becomes one item per step; a wide terminal and a pipe keep the table."""
    from pathlib import Path

    from repair.facts import facts_from_json
    from repair.pipeline import analyse, with_commands
    from repair.render import render_plan

    doc = Path(__file__).parent / "data" / "windows-venv-facts.json"
    facts = facts_from_json(doc.read_text())
    plan = with_commands(analyse(facts).plan, installed=facts.packages)
    narrow = render_plan(plan, width=80)
    diff = narrow.split("Plan (dry run: nothing was changed)\n")[1].split("\n\n")[0]
    assert all(len(line) <= 80 for line in diff.split("\n"))
    assert "  ~ torch 2.5.1+cpu -> 2.5.1+cu124" in diff
    assert "from https://download.pytorch.org/whl/cu124; because torch-cpu-build" in diff
    assert "from the default index; because bnb-missing" in diff
    for wide in (render_plan(plan, width=200), render_plan(plan)):
        assert "     package       from       to" in wide


DORA_REFUSED = "ValueError: Linear4bit does not support DoRA yet, please set it to False"


def test_explain_wraps_its_labelled_lines_like_matched_on_a_terminal_only() -> None:
    """`qfix explain` at an 80-column terminal: the cause, confirm and fix lines (aligned after
    their label) wrap as the matched line does, continued under the text after the label, so a
    continuation does not read as a line of its own; a pipe gets every line whole."""
    chunks, code = in_pty([*QFIX, "explain", DORA_REFUSED], env=_env(COLUMNS="80"))
    assert code == 0
    lines = screen(chunks).replace("\r\n", "\n").split("\n")
    assert all(len(x) <= 79 for x in lines if "://" not in x), [x for x in lines if len(x) > 79]
    cause = next(i for i, x in enumerate(lines) if x.startswith("  cause:   "))
    value = len("  cause:   ")
    nxt = lines[cause + 1]
    assert nxt.startswith(" " * value) and not nxt.startswith(" " * (value + 1)), nxt
    piped = run("explain", DORA_REFUSED, env=_env(COLUMNS="80"))
    assert any(x.startswith("  cause:   ") and len(x) > 80 for x in piped.stdout.splitlines())


def test_a_quoted_double_space_and_a_confirm_label_wrap_as_prose() -> None:
    """A source line that quotes a sentence with two spaces in it is prose, not a table row: it
    wraps (a key-value row, with its gap near the start, stays whole). The `confirm:` label has
    one space after it: a backquoted command too long to follow it continues under the text
    after the label, not at column 2."""
    from repair.terminal import fit_to_width

    source = (
        "    S112: " + "word " * 20 + "'loaded in 8-bit precision.  if you want' " + "more " * 10
    )
    row = "  executable  /a/very/long/path/" + "p" * 90
    confirm = '  confirm: `python -c "import torch; ' + "x" * 70 + '"`.'
    lines = fit_to_width("\n".join([source, row, confirm]), 80).split("\n")
    assert row in lines
    src = [x for x in lines if "word" in x or "more" in x]
    assert len(src) > 1 and all(len(x) <= 80 for x in src)
    at = lines.index("  confirm:")
    assert lines[at + 1].startswith(" " * len("  confirm: ") + "`python")


def test_matrix_fits_an_80_column_terminal_and_a_pipe_gets_one_grid() -> None:
    """`qfix matrix` with many CUDA variants at an 80-column terminal: the grid is cut into
    grids of fewer variants, each with the torch column, so no row wraps into the next; every
    variant still shows, and each cut grid keeps a release only where it has a build there. A
    pipe gets one grid, whole."""
    facts = str(REPO / "plans" / "examples" / "F02.json")
    chunks, code = in_pty([*QFIX, "matrix", "--facts", facts], env=_env(COLUMNS="80"))
    assert code == 0
    lines = screen(chunks).replace("\r\n", "\n").split("\n")
    assert all(len(x) <= 79 for x in lines), [x for x in lines if len(x) > 79]
    heads = [x.split() for x in lines if x.startswith("torch  ")]
    assert len(heads) >= 2 and all(h[0] == "torch" for h in heads)
    piped = run("matrix", "--facts", facts, env=_env(COLUMNS="80"))
    whole = [x.split() for x in piped.stdout.splitlines() if x.startswith("torch  ")]
    assert len(whole) == 1 and len(whole[0]) > 12, whole
    assert sorted(v for h in heads for v in h[1:]) == sorted(whole[0][1:])
    # 1.10 has builds only among the older variants: the second grid leaves it out
    second = lines.index(next(x for x in lines if x.split() == ["torch", *heads[1][1:]]))
    rows = [x for x in lines[second + 1 :] if x.strip() and x.split()[0][0].isdigit()]
    assert rows and not any(x.split()[0] == "1.10" for x in rows)


def test_the_plan_digest_is_copied_whole_at_an_80_column_terminal() -> None:
    """The digest a reviewer approves (84 columns with its label) goes on a line of its own at
    an 80-column terminal, not wrapped mid-hash by the terminal; a pipe keeps the one line."""
    facts = str(REPO / "plans" / "examples" / "driver-too-old.json")
    chunks, _ = in_pty([*QFIX, "plan", "--facts", facts], env=_env(COLUMNS="80"))
    lines = screen(chunks).replace("\r\n", "\n").split("\n")
    at = lines.index("Plan digest:")
    assert re.fullmatch(r"  sha256:[0-9a-f]{64}", lines[at + 1]), lines[at + 1]
    piped = run("plan", "--facts", facts, env=_env(COLUMNS="80"))
    assert re.search(r"^Plan digest: sha256:[0-9a-f]{64}$", piped.stdout, re.M)


def test_the_commands_heading_says_its_installer_and_the_torch_pin_in_one_parenthesis() -> None:
    """The heading over a plan's commands, when qfix chose the installer for a probed
    environment and holds torch: "Commands (run by pip: uv not found; torch stays pinned ...)",
    not two parentheses one after the other."""
    import dataclasses

    from repair.facts import facts_from_json
    from repair.pipeline import analyse, with_commands
    from repair.render import render_plan

    facts = facts_from_json((REPO / "plans" / "examples" / "bnb-torch-mismatch.json").read_text())
    plan = with_commands(analyse(facts).plan, installed=facts.packages)
    assert any(c.startswith("torch==") for c in plan.constraints)
    chosen = dataclasses.replace(plan, installer=("pip", "uv not found"))
    heading = next(x for x in render_plan(chosen).split("\n") if x.startswith("Commands"))
    assert heading == (
        "Commands (run by pip: uv not found; torch stays pinned while the rest installs)"
    )
    # a plan whose only command installs torch itself holds nothing against the constraints
    # file: the heading does not say torch stays pinned
    facts = facts_from_json((REPO / "plans" / "examples" / "driver-too-old.json").read_text())
    plan = with_commands(analyse(facts).plan, installed=facts.packages)
    chosen = dataclasses.replace(plan, installer=("pip", "uv not found"))
    heading = next(x for x in render_plan(chosen).split("\n") if x.startswith("Commands"))
    assert heading == "Commands (run by pip: uv not found)"
