"""Download sizes before apply (issue 10, item 2): what the dry runs would fetch, and how big.

The parsers run on a real pip installation report (tests/data/pip-report.json, written by pip
23.2 against the local index) and on uv's dry-run text; the real tests resolve against the local
PEP 503 index (tests/index_server.py) and a file:// find-links folder, and compare each size with
the wheel file on disk.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repair import pipeline
from repair.apply import installers, sizes
from repair.commands import build_commands
from repair.dryrun import (
    Download,
    DryRun,
    download_bytes,
    human_size,
    merge_sizes,
    parse_pip_report,
    parse_uv_dry_run,
    space_estimate,
    summary_line,
)
from repair.plan import Plan
from repair.render import apply_to_dict
from tests.index_server import build_wheel
from tests.test_apply_support import (  # noqa: F401 (fixtures)
    clean_index,
    clone,
    freeze,
    hermetic_env,
    index,
    plan,
    step,
)
from tests.test_indexes import use_env

DATA = Path(__file__).parent / "data"

# What uv 0.13.9 printed for `uv pip install --dry-run` of torchvision==0.22.1+cpu and
# bitsandbytes==0.48.2 from the local index, one of them already in its cache.
UV_OUTPUT = """\
Resolved 3 packages in 20ms
Would download 2 packages
Would install 3 packages
 + bitsandbytes==0.48.2
 + torch==2.7.1+cpu
 + torchvision==0.22.1+cpu
"""


# --------------------------------------------------------------------------- pure parsing


def test_pip_report_names_versions_and_urls() -> None:
    got = parse_pip_report((DATA / "pip-report.json").read_text())
    assert [(d.package, d.version) for d in got] == [
        ("torchvision", "0.22.1+cpu"),
        ("bitsandbytes", "0.48.2"),
        ("torch", "2.7.1+cpu"),
    ]
    assert all(d.url and d.url.endswith(".whl") for d in got)
    assert {d.url_host for d in got} == {"127.0.0.1"}
    assert all(d.size_bytes is None for d in got)  # a report carries no size


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"version": "1"}',
        '{"install": [{"metadata": {"name": "x"}}]}',
        '{"install": [1]}',
    ],
)
def test_pip_report_that_is_not_one_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_pip_report(text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _JSON,
        st.fixed_dictionaries({"install": st.lists(_JSON, max_size=3)}),
        st.fixed_dictionaries(
            {
                "install": st.lists(
                    st.fixed_dictionaries({"metadata": _JSON, "download_info": _JSON})
                )
            }
        ),
    )
)
def test_pip_report_parser_fails_only_with_valueerror(doc: object) -> None:
    """Whatever a report holds, the parser returns downloads or raises ValueError (which apply
    reads as "sizes unknown"), never another exception."""
    try:
        got = parse_pip_report(json.dumps(doc))
    except ValueError:
        return
    assert all(isinstance(d.package, str) and isinstance(d.version, str) for d in got)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_uv_parser_never_raises(text: str) -> None:
    got, cached = parse_uv_dry_run(text)
    assert cached is None or cached >= 0
    assert all(d.url is None and d.size_bytes is None for d in got)


def test_uv_dry_run_lists_packages_and_what_is_cached() -> None:
    got, cached = parse_uv_dry_run(UV_OUTPUT)
    assert [(d.package, d.version, d.url) for d in got] == [
        ("bitsandbytes", "0.48.2", None),
        ("torch", "2.7.1+cpu", None),
        ("torchvision", "0.22.1+cpu", None),
    ]
    assert cached == 1
    assert parse_uv_dry_run("Audited 3 packages in 1ms\n") == ((), None)


def test_url_host_never_shows_credentials() -> None:
    d = Download("torch", "2.7.1", "https://user:tok@mirror.example:8443/files/torch.whl")
    assert d.url_host == "mirror.example"
    assert Download("x", "1", "file:///srv/wheels/x-1-py3-none-any.whl").url_host == "local files"
    assert Download("x", "1").url_host is None


def test_summary_and_totals() -> None:
    found = (
        Download("torch", "2.7.1+cu126", "https://download.pytorch.org/whl/a.whl"),
        Download("nvidia-cublas-cu12", "12.6.4.1", "https://download.pytorch.org/whl/b.whl"),
        Download("sympy", "1.13.1", "https://download.pytorch.org/whl/c.whl"),
    )
    sized = merge_sizes(found, {found[0].url: 2_500_000_000, found[1].url: 393_000_000})
    assert [d.size_bytes for d in sized] == [2_500_000_000, 393_000_000, None]
    assert download_bytes(sized) == 2_893_000_000
    assert download_bytes(found) is None
    line = summary_line(DryRun("pip", sized))
    assert line.startswith("download: 2.9 GB for 3 packages from download.pytorch.org")
    assert "torch 2.7.1+cu126 2.5 GB" in line and "1 size unknown" in line
    uv = summary_line(DryRun("uv", found, cached=1, note="sizes: not available with uv's dry run"))
    assert "size unknown for 3 packages" in uv and "not available with uv" in uv
    assert "1 already in uv's cache" in uv
    assert summary_line(DryRun("pip")) == "download: nothing new to download"
    assert human_size(906_400_000) == "906 MB" and human_size(1_500) == "1.5 kB"


def test_space_check_counts_real_sizes_before_estimates() -> None:
    sized = (Download("Torch", "2.7.1", "u", 900), Download("filelock", "3.1", "v", None))
    est = space_estimate(sized, {"torch": 2_000, "bitsandbytes": 70})
    assert est == {"torch": 900, "bitsandbytes": 70, "filelock": None}


# --------------------------------------------------------------------------- the lookups


def test_file_url_size_is_the_files(tmp_path: Path) -> None:
    f = tmp_path / "a b+c.whl"
    f.write_bytes(b"x" * 1234)
    assert sizes.size_of(f.as_uri()) == 1234
    assert sizes.size_of((tmp_path / "missing.whl").as_uri()) is None
    assert sizes.size_of("ftp://example.invalid/x.whl") is None


def test_unreachable_index_is_unknown_not_an_error() -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/files/x.whl"
    assert sizes.sizes([url, url]) == {url: None}


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """``/old`` redirects to ``/new`` (a CDN in front of an index); every method is recorded."""

    seen: list[tuple[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def _answer(self) -> None:
        self.seen.append((self.command, self.path))
        if self.path == "/old":
            self.send_response(302)
            self.send_header("Location", "/new")
            self.send_header("Content-Length", "0")
        else:
            self.send_response(200)
            self.send_header("Content-Length", "123456789")
        self.end_headers()

    do_HEAD = _answer
    do_GET = _answer


def test_a_redirect_is_followed_with_head_never_get() -> None:
    """urllib's own handler would follow a redirected HEAD with a GET: a whole wheel."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _Redirecting.seen.clear()
        assert sizes.size_of(f"http://127.0.0.1:{srv.server_address[1]}/old") == 123456789
        assert _Redirecting.seen == [("HEAD", "/old"), ("HEAD", "/new")]
    finally:
        srv.shutdown()
        srv.server_close()


def test_pips_proxy_setting_carries_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's ``proxy`` (pip.conf, PIP_PROXY) is how the user reaches the index: the HEAD goes
    through it (a forward proxy sees the absolute URL)."""
    for var in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        _Redirecting.seen.clear()
        url = "http://index.example.invalid/files/x.whl"
        network = sizes.Network(proxy=f"http://127.0.0.1:{proxy.server_address[1]}")
        assert sizes.sizes([url], network=network) == {url: 123456789}
        assert _Redirecting.seen == [("HEAD", url)]
        # an unusable certificate file: every size unknown, nothing raised
        bad = sizes.Network(cert=str(Path(__file__).parent / "no-such-ca.pem"))
        assert sizes.sizes([url], network=bad) == {url: None}
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_garbled_answer_is_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)

        def garble() -> None:
            conn, _ = s.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

        t = threading.Thread(target=garble, daemon=True)
        t.start()
        assert sizes.size_of(f"http://127.0.0.1:{s.getsockname()[1]}/x.whl") is None
        t.join(5)


def test_head_sizes_match_the_files_on_the_index(clean_index: None) -> None:
    idx = index()
    names = ["torch-2.7.1%2Bcpu-py3-none-any.whl", "bitsandbytes-0.48.2-py3-none-any.whl"]
    urls = [f"{idx.url}/files/{n}#sha256=00" for n in names]
    got = sizes.sizes(urls)
    want = [os.path.getsize(idx.root / "files" / n.replace("%2B", "+")) for n in names]
    assert [got[u] for u in urls] == want
    assert all(r.startswith("/files/") for r in idx.requests)
    idx.set_fault(head=False)
    assert set(sizes.sizes(urls).values()) == {None}


# --------------------------------------------------------------------------- real dry runs


def _commands(python: Path, installer: str, *steps: dict) -> list:
    the_plan = Plan.from_dict(plan(*steps))
    return build_commands(
        the_plan.steps,
        python=str(python),
        installer=installer,
        torch_index_base=index().torch_base,
        constraint_file=installers.CONSTRAINTS_MARK,
        uv=installers.find_uv() or "uv",
    )


def _on_disk(url: str | None) -> int:
    assert url is not None
    name = url.rsplit("/", 1)[1].replace("%2B", "+")
    return os.path.getsize(index().root / "files" / name)


@pytest.mark.venv
def test_pip_dry_run_sizes_equal_the_wheel_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_index: None
) -> None:
    """A real pip dry run (report) against the local index: every package the install would
    fetch, each with the size of its wheel file as the index serves it."""
    use_env(hermetic_env(tmp_path, PIP_CONFIG_FILE=os.devnull), monkeypatch)
    python = clone(tmp_path / "venv")
    base = index().torch_base
    cmds = _commands(
        python,
        "pip",
        step("install", "torch", "2.7.1+cpu", "2.7.1+cu126", f"{base}/cu126", "torch"),
        step("install", "torchvision", "0.22.1+cpu", "0.22.1+cu126", f"{base}/cu126", "torch"),
        step("install", "bitsandbytes", "0.43.3", "0.48.2", None, "pypi"),
    )
    lines: list[str] = []
    dry = installers.check_resolvable(
        cmds, "pip", pins=["torch==2.7.1+cu126"], progress=lines.append
    )
    got = {(d.package, d.version): d for d in dry.downloads}
    assert set(got) == {
        ("torch", "2.7.1+cu126"),
        ("torchvision", "0.22.1+cu126"),
        ("bitsandbytes", "0.48.2"),
    }
    for d in dry.downloads:
        assert d.size_bytes == _on_disk(d.url) > 0, d
        assert d.url_host == "127.0.0.1"
    assert dry.note is None
    assert download_bytes(dry.downloads) == sum(_on_disk(d.url) for d in dry.downloads)
    assert any(line.startswith("reading the size of 3 file(s)") for line in lines)


@pytest.mark.venv
def test_find_links_folder_sizes_come_from_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip configured with only a find-links folder (PIP_NO_INDEX, PIP_FIND_LINKS): the report
    names file:// URLs, and their sizes are the files' own."""
    links = tmp_path / "wheels"
    wheel = build_wheel(links, "bitsandbytes", "0.48.3", files={"bitsandbytes/__init__.py": "#"})
    python = clone(tmp_path / "venv")
    env = hermetic_env(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1")
    env["PIP_FIND_LINKS"] = str(links)
    env.pop("PIP_INDEX_URL")
    use_env(env, monkeypatch)
    cmds = _commands(
        python, "pip", step("install", "bitsandbytes", "0.43.3", "0.48.3", None, "pypi")
    )
    dry = installers.check_resolvable(cmds, "pip", pins=[])
    assert [(d.package, d.version, d.url_host) for d in dry.downloads] == [
        ("bitsandbytes", "0.48.3", "local files")
    ]
    assert dry.downloads[0].size_bytes == wheel.stat().st_size


@pytest.mark.venv
def test_uv_dry_run_lists_packages_without_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_index: None
) -> None:
    if installers.find_uv() is None:
        pytest.skip("uv is not installed")
    use_env(hermetic_env(tmp_path), monkeypatch)
    python = clone(tmp_path / "venv")
    cmds = _commands(
        python, "uv", step("install", "bitsandbytes", "0.43.3", "0.48.2", None, "pypi")
    )
    dry = installers.check_resolvable(cmds, "uv", pins=[])
    assert [(d.package, d.version, d.size_bytes) for d in dry.downloads] == [
        ("bitsandbytes", "0.48.2", None)
    ]
    assert dry.note == "sizes: not available with uv's dry run"
    assert dry.cached is not None  # uv said how many it would download


@pytest.mark.venv
def test_index_without_head_leaves_sizes_unknown_and_apply_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_index: None
) -> None:
    """The index refuses HEAD: the sizes are unknown, said so, and the apply still runs."""
    env = hermetic_env(tmp_path, PIP_CONFIG_FILE=os.devnull)
    use_env(env, monkeypatch)
    python = clone(tmp_path / "venv")
    index().set_fault(head=False)
    the_plan = Plan.from_dict(
        plan(step("install", "bitsandbytes", "0.43.3", "0.48.2", None, "pypi"))
    )
    settings = pipeline.make_settings(
        python=str(python), installer="pip", verify="skip", needs_index=True, environ=env
    )
    lines: list[str] = []
    result = pipeline.run_apply(
        settings,
        pipeline.ApplyPrep(str(python), the_plan, saved=True),
        allow_conda=False,
        progress=lines.append,
        output=lines.append,
    )
    assert result.outcome.ok, result.outcome.error
    assert [(d.package, d.size_bytes) for d in result.outcome.downloads] == [("bitsandbytes", None)]
    assert "download: size unknown for 1 package from 127.0.0.1 (1 size unknown)" in lines
    assert "bitsandbytes 0.48.2: size unknown from 127.0.0.1" in lines
    doc = json.loads(json.dumps(apply_to_dict(result.plan, result.outcome, None)))
    assert doc["downloads"] == [
        {
            "package": "bitsandbytes",
            "version": "0.48.2",
            "url_host": "127.0.0.1",
            "size_bytes": None,
        }
    ]
    assert doc["download_bytes"] is None


# --------------------------------------------------------------------------- qfix plan --resolve


def _qfix(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repair", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.venv
def test_plan_resolve_shows_the_real_size_and_changes_nothing(
    tmp_path: Path, clean_index: None
) -> None:
    """`qfix plan --resolve` on a venv whose plan upgrades bitsandbytes, found in the user's
    find-links folder (pip's configuration, so pip runs): the size is the wheel file's, in the
    text and in the JSON, and the venv is as before."""
    links = tmp_path / "links"
    wheel = build_wheel(links, "bitsandbytes", "0.50.2", files={"bitsandbytes/__init__.py": "#"})
    python = clone(tmp_path / "venv")
    before = freeze(python)
    env = hermetic_env(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=str(links))
    env.pop("UV_DEFAULT_INDEX")  # only pip is configured: pip runs
    base = ["plan", "--resolve", "--python", str(python), "--torch-index", index().torch_base]
    p = _qfix(*base, env=env)
    assert p.returncode == 1, p.stderr
    size = wheel.stat().st_size
    assert (
        f"Resolved by pip's dry run: {size} bytes for 1 package from local files "
        f"(bitsandbytes 0.50.2 {size} bytes)" in p.stdout
    ), p.stdout
    assert "qfix: resolving (dry run): install bitsandbytes==0.50.2" in p.stderr
    p = _qfix(*base, "--json", env=env)
    assert p.returncode == 1, p.stderr
    resolved = json.loads(p.stdout)["resolved"]
    assert resolved["installer"] == "pip" and resolved["download_bytes"] == size
    assert resolved["downloads"] == [
        {"package": "bitsandbytes", "version": "0.50.2", "url_host": "local files",
         "size_bytes": size}
    ]  # fmt: skip
    assert freeze(python) == before
    # a pin the index does not offer: refused, exit 6 (without the folder there is no 0.50.2)
    env["PIP_FIND_LINKS"] = str(tmp_path / "empty")
    p = _qfix(*base, env=env)
    assert p.returncode == 6 and "does not offer it" in p.stderr, p.stderr


def test_plan_resolve_needs_an_environment() -> None:
    p = _qfix("plan", "--resolve", "--facts", "example:seed", env=dict(os.environ))
    assert p.returncode == 2
    assert "qfix: error: --resolve needs an environment to resolve for, not --facts" in p.stderr
