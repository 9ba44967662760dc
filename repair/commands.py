"""Installer commands for pip and uv: pure functions that build ``Command(label, argv)`` values.

Like pipx's backends, an installer here is only a way of spelling argv, and every command names
the target interpreter explicitly (``<python> -m pip`` / ``uv pip --python <python>``), so qfix
never installs into the interpreter it happens to run from.

Order of the commands a plan becomes:

1. uninstalls (obsolete forks such as ``bitsandbytes-cuda111`` first, so that no later resolver
   sees two providers of one module);
2. the torch family, from its variant index (``<base>/cu126``), every version pinned with its
   local label (``torch==2.7.1+cu126``): PEP 440 lets a pin without the label match any build of
   the release, and pip's ``find-links`` or another index could then substitute another variant;
3. everything else, from the user's default index (pip's/uv's own configuration, so mirrors are
   respected), with ``-c <constraints>`` pinning the torch family to the target so that no
   resolver can swap torch while it installs bitsandbytes or transformers.

Index choice for the torch step (the "mixing" question):

* pip has no index priority: with ``--extra-index-url`` it takes the best version from all
  indexes, which is how PyTorch nightly users got the malicious ``torchtriton`` from PyPI in
  December 2022 (https://pytorch.org/blog/compromised-nightly-dependency/). So pip gets
  ``--index-url <base>/<variant>`` alone, which is PyTorch's own instruction; the PyTorch index
  mirrors torch's dependencies (filelock, sympy, networkx, jinja2, fsspec, nvidia-*, triton), so
  nothing is missing. The user's ``extra-index-url``/``find-links`` settings still apply, and the
  exact pins keep them from substituting torch.
* uv gets ``--index <base>/<variant>`` plus ``--index-strategy first-index``: uv tries the
  ``--index`` first and keeps its configured default index (PyPI or the user's mirror) as the
  fallback, and ``first-index`` takes every package from the first index that has it at all, so
  torch and its mirrored dependencies come only from the PyTorch index and the fallback serves
  only what that index lacks (https://docs.astral.sh/uv/configuration/indexes/#searching-across-multiple-indexes).
  ``first-index`` is uv's default; naming it guards against a user's
  ``UV_INDEX_STRATEGY=unsafe-best-match``. (``--index-url X --extra-index-url Y`` would be wrong
  for uv: extra indexes take priority over the default one.)
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from packaging.specifiers import InvalidSpecifier
from packaging.version import InvalidVersion, Version

from .errors import BadInput
from .indexconfig import InstallerChoice
from .knowledge import Range
from .plan import TORCH_FAMILY, Step, StepAction, StepGroup, normalize

__all__ = [
    "Command",
    "build_commands",
    "constraint_lines",
    "normalize",
    "redact",
    "redact_text",
    "requirement",
    "torch_step_index",
    "validate_index_url",
    "validate_name",
    "validate_version",
]


class Command(NamedTuple):
    """One installer run: what it does, for people (progress, journal, errors), its argv, and
    the environment changes it runs with (name -> value; None: unset)."""

    label: str  # "install torch==2.7.1+cu126 from https://.../cu126"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str | None], ...] = ()

    def shown(self) -> tuple[str, ...]:
        """The argv as a POSIX shell runs it, environment included (``env -u X A=b cmd``): what
        the preview prints is exactly what runs."""
        if not self.env:
            return self.argv
        unset = [a for name, value in self.env if value is None for a in ("-u", name)]
        assign = [f"{name}={value}" for name, value in self.env if value is not None]
        return ("env", *unset, *assign, *self.argv)


# pip reads no configuration file at all with PIP_CONFIG_FILE=os.devnull
# (pip/_internal/configuration.py, _load_config_files), and --isolated ignores PIP_* variables
# and the user's files: together the torch step sees no index the user configured. os.devnull
# is the target's: "nul" on Windows, "/dev/null" elsewhere (a plan may be made on another OS).
_DEVNULL = {"nt": "nul", "posix": "/dev/null"}


def _pip_no_config(os_name: str | None) -> tuple[tuple[str, str | None], ...]:
    return (("PIP_CONFIG_FILE", os.devnull if os_name is None else _DEVNULL[os_name]),)


# uv's index variables (https://docs.astral.sh/uv/reference/environment/); --no-config drops
# uv.toml. The default index is passed explicitly instead.
_UV_INDEX_VARS = ("UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX_URL")


# PEP 508 names: letters, digits, ".", "_", "-"; start and end with a letter or digit.
# (https://packaging.python.org/en/latest/specifications/name-normalization/)
# \Z, not $: "$" also matches before a final newline, which must not slip into a command line
# or the constraints file
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
# What a PEP 440 version may contain once written out; anything else (spaces, ';', '@', quotes)
# has no business in a pin, even if packaging's lenient parser would skip over it.
_VERSION_CHARS = re.compile(r"^[0-9A-Za-z.+!_-]+\Z")
# A specifier set such as ">=4.30.0" or ">=0.43.1,<1": operators, versions and commas only.
_SPEC_CHARS = re.compile(r"^[0-9A-Za-z.+!_*<>=~, -]+\Z")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def validate_name(name: Any) -> str:
    """A PEP 508 project name, or BadInput (``torch; rm -rf``, ``--index-url=..``, ``-e .``)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise BadInput(
            f"not a valid package name: {name!r}",
            tip="package names are letters, digits, '.', '_' and '-' (PEP 508)",
        )
    return name


def validate_version(version: Any) -> Version:
    """A PEP 440 version such as ``2.7.1+cu126``, or BadInput."""
    if not isinstance(version, str) or not _VERSION_CHARS.match(version):
        raise BadInput(f"not a valid version: {version!r}")
    try:
        return Version(version)
    except InvalidVersion:
        raise BadInput(f"not a valid version: {version!r}") from None


def requirement(step: Step) -> str:
    """The requirement an install step becomes: ``name==version`` for an exact target (always
    for the torch family, whose pin must carry the variant label), else ``name<specifier>`` for a
    floor such as ``transformers>=4.30.0``. BadInput for anything else."""
    name = validate_name(step.package)
    to = step.to
    if not isinstance(to, str):
        raise BadInput(f"step for {name}: no target version")
    try:
        return f"{name}=={validate_version(to)}"
    except BadInput:
        if _group(step) is StepGroup.TORCH:
            raise BadInput(
                f"step for {name}: the torch family needs an exact version with its "
                f"variant label (such as 2.7.1+cu126), got {to!r}"
            ) from None
    if not _SPEC_CHARS.match(to):
        raise BadInput(f"step for {name}: not a version or version specifier: {to!r}")
    try:
        spec = Range(to)  # printed lower bound first: transformers>=4.53.0,<5
    except InvalidSpecifier:
        raise BadInput(f"step for {name}: not a version or version specifier: {to!r}") from None
    if not str(spec):
        raise BadInput(f"step for {name}: empty version specifier")
    return f"{name}{spec}"


def validate_index_url(url: Any) -> str:
    """An index URL qfix may hand to an installer: ``https://``, or ``http://`` on loopback only.

    Plain http elsewhere would let anyone on the path swap torch for something else. Returns the
    URL without a trailing slash; raises BadInput with one line otherwise.
    """
    if (
        not isinstance(url, str)
        or not url
        or url != url.strip()
        or any(c.isspace() or ord(c) < 32 for c in url)
    ):
        raise BadInput(f"index URL {url!r} is not a URL")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise BadInput(f"index URL {url!r} is not a valid URL") from None
    if not host:
        raise BadInput(f"index URL {url!r} has no host")
    if parts.scheme == "https":
        pass
    elif parts.scheme == "http" and host in _LOOPBACK:
        pass  # a test or local mirror on this machine: nothing on the network can tamper with it
    else:
        raise BadInput(
            f"index URL {url!r} is not https: qfix only installs from https:// indexes "
            "(or http:// on 127.0.0.1, localhost, [::1])",
            tip="use the https:// address of the index",
        )
    if parts.query or parts.fragment:
        raise BadInput(f"index URL {url!r} must not carry a query or fragment")
    return url.rstrip("/")


def _group(step: Step) -> StepGroup:
    """The command a step joins: every uninstall is a removal, whatever its group says."""
    if step.action is StepAction.UNINSTALL:
        return StepGroup.UNINSTALL
    if step.group is not StepGroup.UNINSTALL:
        return StepGroup(step.group)
    return StepGroup.TORCH if normalize(step.package) in TORCH_FAMILY else StepGroup.PYPI


def torch_step_index(step: Step, torch_index_base: str | None) -> str | None:
    """The index a torch-family step installs from.

    With a base (``--torch-index``, $QFIX_TORCH_INDEX) the variant is the local label of the
    target version (``2.7.1+cu126`` -> ``<base>/cu126``); without one, or for a version without a
    label, the step's own ``index_url`` (None = the user's default index).
    """
    version = validate_version(step.to)
    url = step.index_url
    # Version.local is normalised to [a-z0-9.] (PEP 440), so it is a safe path segment; a CPU
    # wheel pinned without its label (macOS, plans/torch.toml [cpu_unlabelled]) keeps the
    # variant folder its planned index names
    variant = version.local or (_variant_folder(url) if url is not None else None)
    if torch_index_base is not None and variant:
        return f"{validate_index_url(torch_index_base)}/{variant}"
    return None if url is None else validate_index_url(url)


def _variant_folder(url: str) -> str | None:
    """The last path segment of a PyTorch-style index URL (``.../whl/cpu`` -> ``cpu``) where it
    has the form of a variant name, else None."""
    last = url.rstrip("/").rsplit("/", 1)[-1]
    return last if re.fullmatch(r"(?:cpu|cu\d+|rocm[\d.]+|xpu)", last) else None


def constraint_lines(steps: Sequence[Step], installed: Mapping[str, str | None]) -> list[str]:
    """The constraints file for the non-torch installs: the torch family pinned to the target.

    A family member the plan installs is pinned to its new version; one it leaves alone to the
    version installed now (``installed``: name -> version, names in any spelling).
    """
    inst = {normalize(k): v for k, v in installed.items() if v}
    pins: dict[str, str] = {}
    removed: set[str] = set()
    for step in steps:
        name = normalize(validate_name(step.package))
        if name not in TORCH_FAMILY:
            continue
        if step.action is StepAction.UNINSTALL:
            removed.add(name)
        else:
            pins[name] = str(validate_version(step.to))
    for name in TORCH_FAMILY:
        if name not in pins and name not in removed and inst.get(name):
            pins[name] = str(validate_version(inst[name]))
    return [f"{name}=={pins[name]}" for name in TORCH_FAMILY if name in pins]


def build_commands(
    steps: Sequence[Step],
    *,
    python: str,
    installer: str,
    torch_index_base: str | None,
    constraint_file: str,
    uv: str = "uv",
    setup: InstallerChoice | None = None,
    break_system_packages: bool = False,
    os_name: str | None = None,
) -> list[Command]:
    """The installer commands for ``steps``, in the order to run, each with its label.

    Pure: builds argv only; the label says what a command does, so nobody re-parses argv.
    ``installer`` is ``"pip"`` or ``"uv"`` (``uv`` names its executable);
    ``torch_index_base`` overrides the base of the torch steps' index (None: use each step's
    ``index_url``); ``constraint_file`` is the path the caller writes ``constraint_lines`` to.
    Every name, version and URL is validated (BadInput) before it becomes an argument.
    ``os_name``: the ``os.name`` of the target when the commands are for another machine (a
    plan made from a Windows host's facts); None: this one.
    """
    install, uninstall = _base_argv(
        installer, python=python, uv=uv, break_system_packages=break_system_packages
    )
    own, removals, torch_by_index, rest_by_index = _sort_steps(steps, torch_index_base)

    commands: list[Command] = []
    # pip's own upgrade runs first and alone, so the commands after it run the new pip; uv reads
    # every wheel tag itself and leaves the target's pip alone
    if own and installer == "pip":
        commands.append(Command(_label(own, None), (*install, *own)))
    if removals:
        commands.append(Command(f"uninstall {' '.join(removals)}", (*uninstall, *removals)))
    default = None if setup is None else setup.uv_default_index
    for url, reqs in torch_by_index.items():
        index: list[str] = []
        env: tuple[tuple[str, str | None], ...] = ()
        if url is not None and installer == "pip":
            index = ["--isolated", *_pip_transport(setup), "--index-url", url]
            env = _pip_no_config(os_name)
        elif url is not None:
            index = ["--no-config", *_uv_index(url)]
            if default is not None:
                index += ["--default-index", validate_index_url(default)]
            env = tuple((name, None) for name in _UV_INDEX_VARS)
        commands.append(Command(_label(reqs, url), (*install, *index, *reqs), env))
    for url, reqs in rest_by_index.items():
        index = []
        if url is not None:
            index = ["--index-url", url] if installer == "pip" else _uv_index(url)
        elif (
            installer == "uv"
            and setup is not None
            and setup.uv_default_index is not None
            and setup.uv_default_index != setup.config.uv.default_index  # carried from pip
        ):
            index = ["--default-index", validate_index_url(setup.uv_default_index)]
        commands.append(
            Command(_label(reqs, url), (*install, "-c", constraint_file, *index, *reqs))
        )
    return commands


def _base_argv(
    installer: str, *, python: str, uv: str, break_system_packages: bool
) -> tuple[list[str], list[str]]:
    """The install and uninstall argv prefixes of ``installer`` for ``python``."""
    if installer not in ("pip", "uv"):
        raise BadInput(f"unknown installer {installer!r} (pip or uv)")
    if installer == "pip":
        install = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        uninstall = [
            python,
            "-m",
            "pip",
            "uninstall",
            "--yes",
            "--no-input",
            "--disable-pip-version-check",
        ]
    else:
        install = [uv, "pip", "install", "--python", python]
        uninstall = [uv, "pip", "uninstall", "--python", python]

    if break_system_packages:  # an externally managed interpreter, by the user's consent
        install.append("--break-system-packages")
        uninstall.append("--break-system-packages")
    return install, uninstall


def _sort_steps(
    steps: Sequence[Step], torch_index_base: str | None
) -> tuple[list[str], list[str], dict[str | None, list[str]], dict[str | None, list[str]]]:
    """The installer's own requirements (pip's upgrade), the names to remove, then the torch and
    the other requirements by (validated) index URL, in the steps' order."""
    own: list[str] = []
    removals: list[str] = []
    torch_by_index: dict[str | None, list[str]] = {}
    rest_by_index: dict[str | None, list[str]] = {}
    for step in steps:
        name = validate_name(step.package)
        group = _group(step)
        if group is StepGroup.UNINSTALL:
            removals.append(name)
            continue
        req = requirement(step)
        if group is StepGroup.INSTALLER:
            own.append(req)  # build_commands runs it first, on its own
        elif group is StepGroup.TORCH:
            torch_by_index.setdefault(torch_step_index(step, torch_index_base), []).append(req)
        else:
            url = step.index_url
            rest_by_index.setdefault(None if url is None else validate_index_url(url), []).append(
                req
            )
    return own, removals, torch_by_index, rest_by_index


def _pip_transport(setup: InstallerChoice | None) -> list[str]:
    """The user's certificate and proxy for an isolated pip (the network, not the indexes)."""
    if setup is None:
        return []
    pip = setup.config.pip
    out: list[str] = []
    for flag, value in (
        ("--cert", pip.cert),
        ("--client-cert", pip.client_cert),
        ("--proxy", pip.proxy),
    ):
        if value:
            out += [flag, value]
    return out


def _uv_index(url: str) -> list[str]:
    return ["--index", url, "--index-strategy", "first-index"]


def _label(reqs: Sequence[str], url: str | None) -> str:
    """'install torch==2.7.1+cu126 from <index>' for progress lines, the journal and errors."""
    text = f"install {' '.join(reqs)}"
    return f"{text} from {redact(url)}" if url else text


def redact(url: str) -> str:
    """A URL without its password or token (mirror URLs may carry them) for progress lines."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


# scheme://user:password@ or scheme://token@ in any text (RFC 3986 userinfo: no "/", "@" or space)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s\"']+@")


def redact_text(text: str) -> str:
    """Every URL in ``text`` without its credentials (``https://***@host/...``): what qfix
    prints, writes to --json and keeps in its journal (issue 16)."""
    return _USERINFO.sub(r"\1***@", text)
