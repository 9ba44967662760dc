"""The pure parts of apply (installer argv, plan-file checks, target classification) and the test
index itself. Fast: no installs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repair import process
from repair.apply import installers
from repair.apply.installers import choose_installer
from repair.apply.transaction import Outcome, _tail, installed_versions
from repair.apply.venv import TargetKind, classify_target, inspect_target, require_changeable
from repair.commands import build_commands as typed_commands
from repair.commands import constraint_lines as typed_constraints
from repair.commands import validate_index_url, validate_name, validate_version
from repair.errors import ApplyRefused, BadInput, ExitCode, Locked, PlanFileError
from repair.facts import PythonInfo
from repair.plan import Step, normalize
from repair.planfile import check_fingerprint, load_plan, plan_from_doc
from repair.settings import torch_index_base
from tests.index_server import VARIANTS, IndexServer, build_wheel

PY = "/abs/.venv/bin/python"
CU118 = "https://download.pytorch.org/whl/cu118"

# The plan of the brief / design.md: torch family to cu118, bitsandbytes up, a fork removed.
BRIEF_STEPS = [
    {
        "action": "install",
        "package": "torch",
        "from": "1.12.1+cu113",
        "to": "2.7.1+cu118",
        "index_url": CU118,
        "because": ["driver-too-old"],
        "group": "torch",
    },
    {
        "action": "install",
        "package": "torchvision",
        "from": "0.13.1+cu113",
        "to": "0.22.1+cu118",
        "index_url": CU118,
        "because": ["torch-family-mismatch"],
        "group": "torch",
    },
    {
        "action": "install",
        "package": "bitsandbytes",
        "from": "0.37.0",
        "to": "0.48.2",
        "index_url": None,
        "because": ["bnb-no-4bit"],
        "group": "pypi",
    },
    {
        "action": "uninstall",
        "package": "bitsandbytes-cuda111",
        "from": "0.26.0",
        "to": None,
        "index_url": None,
        "because": ["bnb-duplicate-install"],
        "group": "uninstall",
    },
]


def brief_plan() -> dict:
    return {
        "schema": "qfix.plan/1",
        "healthy": False,
        "target": {"python": PY, "platform": "linux-x86_64"},
        "findings": [{"id": "driver-too-old", "severity": "error", "summary": "", "evidence": {}}],
        "steps": json.loads(json.dumps(BRIEF_STEPS)),
        "manual": [{"id": "x", "text": "y"}],
        "commands": [[PY, "-m", "pip", "install"]],
        "unknown": [],
        "fingerprint": "sha256:" + "0" * 64,
        "torch_index_base": "https://download.pytorch.org/whl",
    }


# --------------------------------------------------------------------------- installer argv


def steps_of(steps: list[dict]) -> tuple[Step, ...]:
    return tuple(Step.from_dict(s) for s in steps)


def build_commands(steps: list[dict], **kw: Any) -> list[list[str]]:
    """The argv of the typed commands for qfix.plan/1 step dicts, as lists to compare."""
    return [list(c.argv) for c in typed_commands(steps_of(steps), **kw)]


def constraint_lines(steps: list[dict], installed: dict) -> list[str]:
    return typed_constraints(steps_of(steps), installed)


def test_every_command_carries_the_label_people_see() -> None:
    """Progress lines, the journal and errors use the label; nothing re-parses argv."""
    cmds = typed_commands(
        steps_of(BRIEF_STEPS),
        python=PY,
        installer="uv",
        torch_index_base="https://bob:s3cret@mirror.example/whl",
        constraint_file="/c.txt",
        uv="/bin/uv",
    )
    assert [c.label for c in cmds] == [
        "uninstall bitsandbytes-cuda111",
        "install torch==2.7.1+cu118 torchvision==0.22.1+cu118 "
        "from https://***@mirror.example/whl/cu118",
        "install bitsandbytes==0.48.2",
    ]
    assert "https://bob:s3cret@mirror.example/whl/cu118" in cmds[1].argv


def test_pip_commands_for_the_brief_plan() -> None:
    cmds = build_commands(
        BRIEF_STEPS, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
    )
    assert cmds == [
        [
            PY,
            "-m",
            "pip",
            "uninstall",
            "--yes",
            "--no-input",
            "--disable-pip-version-check",
            "bitsandbytes-cuda111",
        ],
        [
            PY,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--isolated",  # the torch step sees no index the user configured (torchtriton)
            "--index-url",
            CU118,
            "torch==2.7.1+cu118",
            "torchvision==0.22.1+cu118",
        ],
        [
            PY,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "-c",
            "/c.txt",
            "bitsandbytes==0.48.2",
        ],
    ]


def test_uv_commands_for_the_brief_plan() -> None:
    cmds = build_commands(
        BRIEF_STEPS,
        python=PY,
        installer="uv",
        torch_index_base=None,
        constraint_file="/c.txt",
        uv="/bin/uv",
    )
    assert cmds == [
        ["/bin/uv", "pip", "uninstall", "--python", PY, "bitsandbytes-cuda111"],
        [
            "/bin/uv",
            "pip",
            "install",
            "--python",
            PY,
            "--no-config",
            "--index",
            CU118,
            "--index-strategy",
            "first-index",
            "torch==2.7.1+cu118",
            "torchvision==0.22.1+cu118",
        ],
        ["/bin/uv", "pip", "install", "--python", PY, "-c", "/c.txt", "bitsandbytes==0.48.2"],
    ]


def test_torch_index_base_overrides_the_step_url_by_variant_label() -> None:
    cmds = build_commands(
        BRIEF_STEPS,
        python=PY,
        installer="pip",
        torch_index_base="https://mirror.example/pytorch/",
        constraint_file="/c.txt",
    )
    assert "https://mirror.example/pytorch/cu118" in cmds[1]
    assert CU118 not in cmds[1]


def test_specifier_targets_outside_the_torch_family() -> None:
    steps = [
        {
            "action": "install",
            "package": "transformers",
            "from": "4.20.0",
            "to": ">=4.30.0",
            "index_url": None,
            "because": [],
            "group": "pypi",
        }
    ]
    cmds = build_commands(
        steps, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
    )
    assert cmds[0][-1] == "transformers>=4.30.0"
    torch_spec = [
        {
            "action": "install",
            "package": "torch",
            "to": ">=2.3",
            "group": "torch",
            "index_url": CU118,
        }
    ]
    with pytest.raises(BadInput, match="exact version"):
        build_commands(
            torch_spec, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
        )


def test_constraints_pin_the_torch_family_to_the_target() -> None:
    installed = {
        "torch": "1.12.1+cu113",
        "torchvision": "0.13.1+cu113",
        "TorchAudio": "0.12.1+cu113",
    }
    assert constraint_lines(BRIEF_STEPS, installed) == [
        "torch==2.7.1+cu118",
        "torchvision==0.22.1+cu118",
        "torchaudio==0.12.1+cu113",
    ]
    removing = [*BRIEF_STEPS, {"action": "uninstall", "package": "torchaudio", "to": None}]
    assert "torchaudio" not in " ".join(constraint_lines(removing, installed))
    # a bitsandbytes-only plan keeps the installed torch exactly
    assert constraint_lines(BRIEF_STEPS[2:], {"torch": "2.13.0+cpu"}) == ["torch==2.13.0+cpu"]


@pytest.mark.parametrize(
    "name",
    [
        "torch; rm -rf /",
        "--index-url=http://evil",
        "-e .",
        "",
        "torch==1.0",
        "a b",
        "torch @ https://x/y.whl",
        "-r req.txt",
        "torch[cuda]",
        "../../etc",
        "torch\n--pre",
    ],
)
def test_injected_names_are_rejected(name: str) -> None:
    with pytest.raises(BadInput):
        validate_name(name)
    steps = [{"action": "install", "package": name, "to": "1.0", "group": "pypi"}]
    with pytest.raises(BadInput):
        build_commands(
            steps, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
        )


@pytest.mark.parametrize("name", ["0\n", "torch\n", "bitsandbytes\r\n"])
def test_a_name_or_version_with_a_trailing_newline_is_refused(name: str) -> None:
    # "$" in a regular expression also matches before a final newline: "torch\n" from a saved
    # plan would otherwise reach a command line or the constraints file as two lines
    with pytest.raises(BadInput):
        validate_name(name)
    with pytest.raises(BadInput):
        validate_version("2.7.1\n")


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_accepted_name_is_a_plain_pep508_name(text: str) -> None:
    try:
        name = validate_name(text)
    except BadInput:
        return
    assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name)
    assert not name.startswith("-")


@given(
    st.lists(
        st.sampled_from(["torch", "bitsandbytes", "transformers", "numpy", "peft"]),
        unique=True,
        min_size=1,
    ),
    st.text(alphabet="0123456789.+-abcu; =<>", min_size=1, max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_argv_never_gets_an_option_from_plan_data(names: list[str], version: str) -> None:
    steps = [
        {
            "action": "install",
            "package": n,
            "to": version,
            "index_url": None,
            "group": "torch" if n == "torch" else "pypi",
        }
        for n in names
    ]
    try:
        cmds = build_commands(
            steps, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
        )
    except BadInput:
        return
    options = {"--no-input", "--disable-pip-version-check", "-c", "-m", "--index-url", "--isolated"}
    for cmd in cmds:
        for arg in cmd:
            assert arg in options or not arg.startswith("-"), arg
            assert " " not in arg and ";" not in arg


@pytest.mark.parametrize(
    "url",
    [
        "https://download.pytorch.org/whl",
        "https://download.pytorch.org/whl/",
        "https://user:token@mirror.example:8443/pytorch",
        "http://127.0.0.1:8080/whl",
        "http://localhost/whl",
        "http://[::1]:9000/whl",
    ],
)
def test_index_urls_accepted(url: str) -> None:
    assert validate_index_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://download.pytorch.org/whl",
        "http://10.0.0.5/whl",
        "http://127.0.0.2.evil.com/",
        "ftp://mirror.example/whl",
        "file:///opt/wheels",
        "https://",
        "//download.pytorch.org/whl",
        " https://x.example",
        "https://x.example/a b",
        "https://x.example/?q=1",
        "--index-url",
        "javascript:alert(1)",
        "https://x.example:99999/",
        None,
        42,
    ],
)
def test_index_urls_rejected(url: object) -> None:
    with pytest.raises(BadInput):
        validate_index_url(url)


def test_torch_index_base_precedence() -> None:
    env = {"QFIX_TORCH_INDEX": "https://env.example/whl"}
    assert torch_index_base("https://cli.example/whl", env) == "https://cli.example/whl"
    assert torch_index_base(None, env) == "https://env.example/whl"
    assert torch_index_base(None, {}) == "https://download.pytorch.org/whl"
    with pytest.raises(BadInput, match="not https"):
        torch_index_base(None, {"QFIX_TORCH_INDEX": "http://mirror.example/whl"})


def test_choose_installer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert choose_installer("pip") == "pip"
    with pytest.raises(BadInput):
        choose_installer("conda")
    if installers.find_uv() is not None:
        assert choose_installer("auto") == "uv" == choose_installer("uv")
    # a machine without uv: nothing on PATH, nothing beside the interpreter
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert installers.find_uv() is None
    assert choose_installer("auto") == "pip"
    with pytest.raises(BadInput, match="uv was not found"):
        choose_installer("uv")


# --------------------------------------------------------------------------- plan files


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "plan.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_a_valid_plan_file_loads(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, brief_plan()))
    assert plan.steps[0].package == "torch" and plan.steps[3].action == "uninstall"
    assert plan.to_dict()["steps"] == brief_plan()["steps"]


def _mutations() -> list[tuple[str, object]]:
    return [
        ("steps[0].package", {"package": "torch; rm -rf /"}),
        ("steps[0].package", {"package": "--index-url=https://evil.example/simple"}),
        ("steps[0].index_url", {"index_url": "http://evil.example/whl/cu118"}),
        ("steps[0].to", {"to": "2.7.1+cu118; rm -rf /"}),
        ("steps[0].to", {"to": None}),
        ("steps[0].action", {"action": "exec"}),
        ("steps[0].group", {"group": "shell"}),
        ("steps[0].because", {"because": "x"}),
        ("steps[3].to", "uninstall-with-to"),
        ("steps[1].package", "duplicate"),
        ("fingerprint", "fingerprint"),
        ("torch_index_base", "torch_index_base"),
        ("schema", "schema"),
        ("commands[0]", "commands"),
    ]


@pytest.mark.parametrize(("where", "change"), _mutations(), ids=[m[0] for m in _mutations()])
def test_bad_plan_files_are_refused_naming_the_field(
    tmp_path: Path, where: str, change: object
) -> None:
    data = brief_plan()
    if isinstance(change, dict):
        data["steps"][0].update(change)
    elif change == "uninstall-with-to":
        data["steps"][3]["to"] = "0.26.0"
    elif change == "duplicate":
        data["steps"][1]["package"] = "Torch"
    elif change == "fingerprint":
        data["fingerprint"] = "md5:abc"
    elif change == "torch_index_base":
        data["torch_index_base"] = "http://download.pytorch.org/whl"
    elif change == "schema":
        data["schema"] = "qfix.plan/0"
    elif change == "commands":
        data["commands"] = [["python", 3]]
    with pytest.raises(PlanFileError) as err:
        load_plan(write(tmp_path, data))
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert where in err.value.message, err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    ("text", "match"),
    [("{not json", "not valid JSON"), ("[]", "must be a JSON object"), ("\xff", None)],
)
def test_unreadable_plan_files(tmp_path: Path, text: str, match: str | None) -> None:
    p = tmp_path / "plan.json"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(PlanFileError, match=match):
        load_plan(p)
    with pytest.raises(PlanFileError, match="no such plan file"):
        load_plan(tmp_path / "missing.json")


def test_stale_fingerprint_is_refused() -> None:
    data = plan_from_doc(brief_plan())
    check_fingerprint(data, data.fingerprint)
    with pytest.raises(ApplyRefused, match=f"different state of {PY}.*re-run qfix plan") as e:
        check_fingerprint(data, "sha256:" + "1" * 64)
    assert e.value.exit_code == ExitCode.REFUSED


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("info", "kind"),
    [
        (PythonInfo(in_venv=True, externally_managed=False, conda=False), TargetKind.VENV),
        (PythonInfo(in_venv=True, externally_managed=True, conda=True), TargetKind.VENV),
        (PythonInfo(in_venv=False, externally_managed=False, conda=True), TargetKind.CONDA),
        (
            PythonInfo(in_venv=False, externally_managed=True, conda=False),
            TargetKind.EXTERNALLY_MANAGED,
        ),
        (PythonInfo(in_venv=False, externally_managed=False, conda=False), TargetKind.SYSTEM),
        (PythonInfo(), TargetKind.UNKNOWN),
    ],
)
def test_classify_target(info: PythonInfo, kind: TargetKind) -> None:
    assert classify_target(info) is kind
    if kind is TargetKind.VENV:
        assert require_changeable(info) is kind
    elif kind is TargetKind.CONDA:
        with pytest.raises(ApplyRefused, match="conda"):
            require_changeable(info)
        assert require_changeable(info, allow_conda=True) is kind
    else:
        with pytest.raises(ApplyRefused) as err:
            require_changeable(info, allow_conda=True)
        assert err.value.exit_code == ExitCode.REFUSED


def test_inspect_target_reads_real_interpreters() -> None:
    mine = inspect_target(sys.executable)
    assert classify_target(mine.info) is TargetKind.VENV
    assert mine.prefix == sys.prefix and Path(mine.purelib).is_dir()
    system = "/usr/bin/python3.11"
    if Path(system).exists() and Path("/usr/lib/python3.11/EXTERNALLY-MANAGED").exists():
        assert classify_target(inspect_target(system).info) is TargetKind.EXTERNALLY_MANAGED


def test_installed_versions_match_pip_list() -> None:
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )
    site = inspect_target(sys.executable)
    mine = installed_versions([site.purelib, site.platlib])
    norm = normalize
    assert {norm(k): v for k, v in mine.items()} == {norm(d["name"]): d["version"] for d in listed}


def test_outcome_json_and_refusals() -> None:
    out = Outcome.refused(Locked("another qfix apply (pid 1) is changing /v"), python=PY)
    data = json.loads(json.dumps(out.to_dict()))
    assert data["exit_code"] == 5 and data["ok"] is False and data["python"] == PY


# --------------------------------------------------------------------------- the test index


def test_generated_wheels_are_valid(tmp_path: Path) -> None:
    whl = build_wheel(
        tmp_path, "torch", "2.7.1+cu126", files={"torch/version.py": "cuda = '12.6'\n"}
    )
    assert whl.name == "torch-2.7.1+cu126-py3-none-any.whl"
    with zipfile.ZipFile(whl) as zf:
        record = zf.read("torch-2.7.1+cu126.dist-info/RECORD").decode().splitlines()
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + want.decode() and int(size) == len(data)


def test_index_layout_faults_and_loopback_only(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "idx", real_torch=None) as idx:
        assert idx.url.startswith("http://127.0.0.1:")
        for variant in VARIANTS:
            for project in ("torch", "torchvision", "torchaudio"):
                page = urllib.request.urlopen(f"{idx.torch_base}/{variant}/{project}/").read()
                assert f"+{variant}-py3-none-any.whl".encode() in page
        assert b"qfix-demo" in urllib.request.urlopen(f"{idx.simple_url}/").read()
        idx.set_fault(2)
        urllib.request.urlopen(f"{idx.torch_base}/cpu/")
        urllib.request.urlopen(f"{idx.torch_base}/cpu/torch/")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{idx.torch_base}/cpu/")
        assert err.value.code == 500
        idx.set_fault(slow=1.0)
        link = (
            re.search(
                rb'href="([^"#]+)', urllib.request.urlopen(f"{idx.torch_base}/cu118/torch/").read()
            )
            .group(1)
            .decode()
        )
        t0 = time.monotonic()
        urllib.request.urlopen(urllib.parse.urljoin(f"{idx.torch_base}/cu118/torch/", link)).read()
        assert time.monotonic() - t0 >= 0.9


def test_real_torch_wheel_is_listed_under_cpu(tmp_path: Path) -> None:
    real = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    if not real.exists():
        pytest.skip("no local torch wheel on this machine")
    with IndexServer(tmp_path / "idx", real_torch=real) as idx:
        page = urllib.request.urlopen(f"{idx.torch_base}/cpu/torch/").read().decode()
        assert "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=" in page
    assert os.path.islink(tmp_path / "idx" / "files" / real.name)


def test_installer_errors_come_first() -> None:
    done = process.Completed(
        ("pip",),
        1,
        "",
        "WARNING: retrying\nERROR: No matching distribution "
        "found for torch==9.9\nWARNING: later noise\n",
    )
    assert _tail(done).startswith("ERROR: No matching distribution found for torch==9.9")


def test_pips_own_upgrade_runs_first_and_alone_with_pip_only() -> None:
    """An "installer" step (pip itself, wheeltags S71) is its own first command, without the
    constraints file; uv reads every wheel tag, so it has no such command."""
    upgrade = {
        "action": "install",
        "package": "pip",
        "from": "20.0.2",
        "to": ">=20.3",
        "index_url": None,
        "because": ["bnb-platform-unsupported"],
        "group": "installer",
    }
    steps = [*BRIEF_STEPS, upgrade]
    pip = build_commands(
        steps, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
    )
    assert pip[0] == [
        PY,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "pip>=20.3",
    ]
    assert pip[1:] == build_commands(
        BRIEF_STEPS, python=PY, installer="pip", torch_index_base=None, constraint_file="/c.txt"
    )
    uv = build_commands(
        steps,
        python=PY,
        installer="uv",
        torch_index_base=None,
        constraint_file="/c.txt",
        uv="/bin/uv",
    )
    assert not any("pip>=20.3" in c for c in uv)


@pytest.mark.parametrize(
    ("to", "index", "expected"),
    [
        (
            "2.7.1+cu126",
            "https://download.pytorch.org/whl/cu126",
            "https://mirror.example/whl/cu126",
        ),
        # a macOS CPU wheel is pinned without its label (plans/torch.toml [cpu_unlabelled]): the
        # mirror still gets the variant folder the planned index names
        ("2.14.1", "https://download.pytorch.org/whl/cpu", "https://mirror.example/whl/cpu"),
        ("2.14.1", None, None),  # PyPI: no folder to move
        ("2.14.1", "https://pypi.example/simple", "https://pypi.example/simple"),  # not a variant
    ],
)
def test_a_torch_step_moves_to_the_mirror_by_its_variant(to, index, expected):
    from repair.commands import torch_step_index

    step = Step("install", "torch", "2.1.2", to, index, ("torch-cpu-build",), "torch")
    assert torch_step_index(step, "https://mirror.example/whl") == expected


def test_an_installer_that_crashes_is_summed_up_by_its_exception_not_its_frames() -> None:
    """pip itself crashed (the disk filled while it started): the one-line failure names the
    exception, never "Traceback" or a frame of it; pip's own "ERROR:" line still wins where
    there is one."""
    crash = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 17, in <module>\n'
        "    sys.exit(main())\n"
        "OSError: [Errno 28] No space left on device\n"
    )
    done = process.Completed(("pip", "install", "x"), 1, "", crash)
    summary = _tail(done)
    assert summary == "OSError: [Errno 28] No space left on device"
    assert "Traceback" not in summary and "File" not in summary
    both = process.Completed(("pip",), 1, "", crash + "ERROR: Could not install packages\n")
    assert _tail(both).startswith("ERROR: Could not install packages")
