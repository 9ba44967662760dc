"""The user's index configuration, honoured by whichever installer runs (issue 10, item 2).

Unit tests read configuration files laid out in a temp folder; the real tests install from the
local PEP 503 index (tests/index_server.py) into a clone of the small template venv, with a
second local index standing in for an extra index the user configured.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repair import pipeline
from repair.apply.installers import dry_run_argv
from repair.apply.transaction import StateDir, apply_plan
from repair.commands import build_commands
from repair.errors import ApplyRefused, BadInput
from repair.indexconfig import (
    IndexConfig,
    PipConfig,
    UvConfig,
    choose,
    pip_config,
    pip_config_files,
    uv_config,
)
from repair.plan import Plan, Step
from tests.index_server import IndexServer
from tests.test_apply_support import clone, freeze, hermetic_env, index, plan, step

PY = "/p/.venv/bin/python"


# --------------------------------------------------------------------------- reading


def test_pip_files_in_pips_order(tmp_path: Path) -> None:
    files = pip_config_files({}, home="/h", prefix="/p/.venv")
    assert [k for k, _ in files] == ["global", "global", "user", "user", "site"]
    assert files[-1] == ("site", "/p/.venv/pip.conf")
    assert ("user", "/h/.config/pip/pip.conf") in files
    assert pip_config_files({"PIP_CONFIG_FILE": os.devnull}, home="/h", prefix=None) == ()
    conf = tmp_path / "my.conf"
    conf.write_text("")
    env_files = pip_config_files({"PIP_CONFIG_FILE": str(conf)}, home="/h", prefix=None)
    assert env_files[-1] == ("env", str(conf))
    assert not any(k == "user" for k, _ in env_files)  # an existing PIP_CONFIG_FILE replaces them
    win = pip_config_files({"APPDATA": "C:\\A"}, home="C:\\U", prefix="C:\\p", windows=True)
    assert win[-1][1].endswith("pip.ini")


def test_pip_precedence_install_over_global_env_over_files() -> None:
    files = [
        ("/etc/pip.conf", "[global]\nindex-url = https://global.example/simple\n"),
        (
            "/h/.config/pip/pip.conf",
            "[global]\nextra-index-url = https://a.example/simple\n  https://b.example/simple\n"
            "cert = /c.pem\n[install]\nindex-url = https://user.example/simple\n",
        ),
    ]
    cfg = pip_config(files, {})
    assert cfg.index_url == "https://user.example/simple"
    assert cfg.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert cfg.cert == "/c.pem" and cfg.configured
    cfg = pip_config(files, {"PIP_INDEX_URL": "https://env.example/simple", "PIP_PROXY": "p:1"})
    assert cfg.index_url == "https://env.example/simple" and cfg.proxy == "p:1"
    assert "$PIP_INDEX_URL" in cfg.sources
    with pytest.raises(BadInput, match="cannot be read"):
        pip_config([("/x.conf", "not an ini file")], {})


def test_uv_config_files_and_env() -> None:
    toml = (
        '[[index]]\nurl = "https://mirror.example/simple"\ndefault = true\n'
        '[pip]\nextra-index-url = ["https://extra.example/simple"]\n'
    )
    cfg = uv_config([("/h/.config/uv/uv.toml", toml)], {})
    assert cfg.default_index == "https://mirror.example/simple"
    assert cfg.extra_indexes == ("https://extra.example/simple",)
    cfg = uv_config([], {"UV_DEFAULT_INDEX": "https://d.example/simple", "UV_INDEX": "https://i"})
    assert cfg.default_index == "https://d.example/simple" and cfg.extra_indexes == ("https://i",)
    assert not uv_config([], {}).configured


# --------------------------------------------------------------------------- the choice


MIRROR = "https://mirror.example/simple"


@pytest.mark.parametrize(
    ("choice", "pip", "uv", "found", "want"),
    [
        ("auto", PipConfig(), UvConfig(), True, "uv"),
        ("auto", PipConfig(), UvConfig(), False, "pip"),
        ("auto", PipConfig(index_url=MIRROR), UvConfig(), True, "pip"),  # uv would bypass it
        ("auto", PipConfig(index_url=MIRROR), UvConfig(default_index=MIRROR), True, "uv"),
        ("auto", PipConfig(index_url=MIRROR), UvConfig(default_index="https://o/s"), True, "pip"),
        ("auto", PipConfig(), UvConfig(default_index=MIRROR), True, "uv"),
        ("pip", PipConfig(), UvConfig(default_index=MIRROR), True, "pip"),
        ("uv", PipConfig(index_url=MIRROR), UvConfig(), True, "uv"),  # carried across
    ],
)
def test_choice(choice: str, pip: PipConfig, uv: UvConfig, found: bool, want: str) -> None:
    picked = choose(choice, IndexConfig(pip, uv), found)
    assert picked.name == want, picked
    assert picked.reason


def test_uv_cannot_carry_pips_extra_indexes() -> None:
    cfg = IndexConfig(PipConfig(extra_index_urls=(MIRROR,)), UvConfig())
    with pytest.raises(BadInput, match="extra-index-url"):
        choose("uv", cfg, True)
    with pytest.raises(BadInput, match="not found"):
        choose("uv", IndexConfig(), False)


STEPS = (
    Step(
        "install", "torch", "2.7.1+cpu", "2.7.1+cu126", "https://t.example/whl/cu126", (), "torch"
    ),
    Step("install", "bitsandbytes", "0.43.3", "0.48.2", None, (), "pypi"),
)


def test_pip_torch_step_isolated_but_keeps_cert_and_proxy() -> None:
    setup = choose("pip", IndexConfig(PipConfig(extra_index_urls=(MIRROR,), cert="/c.pem")), True)
    torch, rest = build_commands(
        STEPS, python=PY, installer="pip", torch_index_base=None, constraint_file="c", setup=setup
    )
    assert "--isolated" in torch.argv and ("PIP_CONFIG_FILE", os.devnull) in torch.env
    assert torch.argv[torch.argv.index("--cert") + 1] == "/c.pem"
    assert torch.shown()[:2] == ("env", f"PIP_CONFIG_FILE={os.devnull}")
    assert "--isolated" not in rest.argv and not rest.env  # the rest: the user's configuration


def test_uv_carries_pips_index_url_to_the_rest_only() -> None:
    setup = choose("uv", IndexConfig(PipConfig(index_url=MIRROR)), True)
    torch, rest = build_commands(
        STEPS, python=PY, installer="uv", torch_index_base=None, constraint_file="c", setup=setup
    )
    assert rest.argv[rest.argv.index("--default-index") + 1] == MIRROR
    assert "--no-config" in torch.argv and ("UV_INDEX", None) in torch.env
    assert dry_run_argv(rest, "uv")[:4] == ["uv", "pip", "install", "--dry-run"]
    assert "--no-deps" in dry_run_argv(rest, "uv")


# --------------------------------------------------------------------------- real installs


def user_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The hermetic environment with only pip configured (no uv index settings), and none of
    this machine's own pip files (PIP_CONFIG_FILE=/dev/null)."""
    env = hermetic_env(tmp)
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        env.pop(var, None)
    for var in [k for k in env if k.startswith("PIP_") and k != "PIP_INDEX_URL"]:
        env.pop(var)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_RETRIES="0")
    env.update(extra)
    return env


@pytest.fixture()
def extra_index(tmp_path: Path):
    """A second index the user configured as an extra index (it must never see torch asked)."""
    with IndexServer(tmp_path / "extra", real_torch=None) as srv:
        yield srv


def use_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ``env``'s pip/uv settings (and no VIRTUAL_ENV) for the rest of the test."""
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")) or k == "VIRTUAL_ENV":
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.mark.venv
@pytest.mark.parametrize("installer", ["auto", "uv"])
def test_pip_only_configuration_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_index: IndexServer, installer: str
) -> None:
    """PIP_INDEX_URL points at the local index and PIP_EXTRA_INDEX_URL at another one; uv is on
    PATH. auto runs pip (uv would bypass pip's settings); --installer uv carries index-url.
    The torch step never asks the user's extra index for torch (dependency confusion)."""
    index().reset()
    extra = {} if installer == "uv" else {"PIP_EXTRA_INDEX_URL": extra_index.simple_url}
    python = clone(tmp_path / "venv")  # (the template is built with this process's env)
    extra_index.reset()
    env = user_env(tmp_path, **extra)
    use_env(env, monkeypatch)
    settings = pipeline.make_settings(
        python=str(python), installer=installer, needs_index=True, environ=env
    )
    setup = settings.setup
    assert setup is not None
    assert setup.name == ("pip" if installer == "auto" else "uv"), setup
    assert "PIP_INDEX_URL" in setup.reason
    base = index().torch_base
    torch_plan = plan(
        step("install", "torch", "2.7.1+cpu", "2.7.1+cu126", f"{base}/cu126", "torch"),
        step("install", "torchvision", "0.22.1+cpu", "0.22.1+cu126", f"{base}/cu126", "torch"),
    )
    out = apply_plan(torch_plan, python=str(python), installer=setup.name, setup=setup)
    assert out.ok, out.error
    assert "torch==2.7.1+cu126" in freeze(python)
    assert extra_index.requests == [], (extra_index.requests, out.commands)
    rest = plan(step("install", "bitsandbytes", "0.43.3", "0.48.2", None, "pypi"))
    out = apply_plan(rest, python=str(python), installer=setup.name, setup=setup)
    assert out.ok, out.error
    assert "bitsandbytes==0.48.2" in freeze(python)
    assert any("/simple/bitsandbytes" in r for r in index().requests)  # the user's index
    if extra:  # the rest: the user's own configuration, extra index included
        assert any("/simple/bitsandbytes" in r for r in extra_index.requests)


@pytest.mark.venv
@pytest.mark.parametrize(
    ("package", "frm", "to", "group"),
    [("bitsandbytes", "0.43.3", "9.9.9", "pypi"), ("torch", "2.7.1+cpu", "2.7.1+cu999", "torch")],
)
def test_missing_pin_is_refused_before_any_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, frm: str, to: str, group: str
) -> None:
    env = user_env(tmp_path)
    use_env(env, monkeypatch)
    python = clone(tmp_path / "venv")
    before = freeze(python)
    url = f"{index().torch_base}/{to.partition('+')[2]}" if group == "torch" else None
    the_plan = Plan.from_dict(plan(step("install", package, frm, to, url, group)))
    settings = pipeline.make_settings(python=str(python), needs_index=True, environ=env)
    prep = pipeline.ApplyPrep(str(python), the_plan, saved=True)
    with pytest.raises(ApplyRefused, match="does not offer it"):
        pipeline.run_apply(settings, prep, allow_conda=False, progress=lambda _l: None)
    assert freeze(python) == before
    assert not StateDir(tmp_path / "venv" / ".qfix").journal.exists()


@pytest.mark.parametrize(("os_name", "devnull"), [("nt", "nul"), ("posix", "/dev/null")])
def test_torch_step_reads_no_config_file_on_the_target(os_name: str, devnull: str) -> None:
    """A plan made here for a Windows host names that host's null device ("nul"): pip compares
    PIP_CONFIG_FILE with its own os.devnull to load no file at all."""
    torch, _ = build_commands(
        STEPS, python=PY, installer="pip", torch_index_base=None, constraint_file="c",
        os_name=os_name,
    )  # fmt: skip
    assert torch.env == (("PIP_CONFIG_FILE", devnull),)
