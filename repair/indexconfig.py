"""The user's package index configuration, as pip and as uv read it, and which installer honours it.

Pure: the caller reads the files (``repair.apply.installers.read_index_config``) and hands their
text in with the environment. Why this matters: uv does not read pip's configuration
(https://docs.astral.sh/uv/pip/compatibility/#configuration-files-and-environment-variables), so
a ``PIP_INDEX_URL`` or a ``pip.conf`` mirror is bypassed when qfix runs ``uv pip install``; the
installer is therefore chosen from both configurations before the preview is shown.

pip's precedence (pip/_internal/configuration.py, https://pip.pypa.io/en/stable/topics/configuration/):
files global < user < site < ``$PIP_CONFIG_FILE``, then ``PIP_*`` environment variables; inside a
file ``[install]`` overrides ``[global]``; ``PIP_CONFIG_FILE=os.devnull`` loads no file at all, and
a ``$PIP_CONFIG_FILE`` that exists replaces the user files.

uv's (https://docs.astral.sh/uv/configuration/files/, .../environment/): ``uv.toml`` files
(system ``/etc/uv/uv.toml``, user ``~/.config/uv/uv.toml``, or the project's), top level or
``[pip]``; ``UV_DEFAULT_INDEX``/``UV_INDEX_URL``, ``UV_INDEX``/``UV_EXTRA_INDEX_URL``,
``UV_FIND_LINKS`` override them; ``UV_NO_CONFIG`` drops the files.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BadInput

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass(frozen=True, slots=True)
class PipConfig:
    """What pip would use: indexes, find-links, and the transport settings (kept for the torch
    step, which must not see the user's indexes but must reach the network the user's way)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cert: str | None = None
    client_cert: str | None = None
    proxy: str | None = None
    sources: tuple[str, ...] = ()  # where the index settings came from, for the reason line

    @property
    def configured(self) -> bool:
        return bool(self.index_url or self.extra_index_urls or self.find_links or self.no_index)


@dataclass(frozen=True, slots=True)
class UvConfig:
    default_index: str | None = None
    extra_indexes: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.default_index or self.extra_indexes or self.find_links)


@dataclass(frozen=True, slots=True)
class IndexConfig:
    pip: PipConfig = PipConfig()
    uv: UvConfig = UvConfig()


@dataclass(frozen=True, slots=True)
class InstallerChoice:
    """The installer that will run (``pip``/``uv``), why, and the default index carried to uv
    from pip's configuration (None: uv's own)."""

    name: str
    reason: str
    uv_default_index: str | None = None
    config: IndexConfig = IndexConfig()


# --------------------------------------------------------------------------- pip


def pip_config_files(
    environ: Mapping[str, str], *, home: str, prefix: str | None, windows: bool = False
) -> tuple[tuple[str, str], ...]:
    """(kind, path) of the files pip reads, lowest precedence first (pip's own order)."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return ()
    name = "pip.ini" if windows else "pip.conf"
    out: list[tuple[str, str]] = []
    if windows:
        program_data = environ.get("PROGRAMDATA", "C:\\ProgramData")
        out.append(("global", os.path.join(program_data, "pip", name)))
        appdata = environ.get("APPDATA", os.path.join(home, "AppData", "Roaming"))
        user = [os.path.join(home, "pip", name), os.path.join(appdata, "pip", name)]
    else:
        xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        out.extend(("global", os.path.join(d, "pip", name)) for d in xdg_dirs.split(os.pathsep))
        out.append(("global", os.path.join("/etc", name)))
        config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        user = [os.path.join(home, ".pip", name), os.path.join(config_home, "pip", name)]
    if not (env_file and os.path.exists(env_file)):
        out.extend(("user", p) for p in user)
    if prefix:
        out.append(("site", os.path.join(prefix, name)))
    if env_file:
        out.append(("env", env_file))
    return tuple(out)


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def pip_config(files: Sequence[tuple[str, str]], environ: Mapping[str, str]) -> PipConfig:
    """pip's effective index and transport settings from ``files`` ((path, text), lowest
    precedence first, as ``pip_config_files`` orders them) and the ``PIP_*`` variables."""
    values: dict[str, str] = {}
    where: dict[str, str] = {}
    for path, text in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=path)
        except configparser.Error as exc:
            raise BadInput(f"pip configuration {path} cannot be read: {exc}") from None
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    key = key.replace("_", "-")
                    values[key] = value
                    where[key] = path
    for key, value in environ.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            name = key[4:].lower().replace("_", "-")
            values[name] = value
            where[name] = f"${key}"
    index_keys = ("index-url", "extra-index-url", "find-links", "no-index")
    return PipConfig(
        index_url=values.get("index-url") or None,
        extra_index_urls=_split(values.get("extra-index-url", "")),
        find_links=_split(values.get("find-links", "")),
        no_index=_truthy(values.get("no-index", "")),
        cert=values.get("cert") or None,
        client_cert=values.get("client-cert") or None,
        proxy=values.get("proxy") or None,
        sources=tuple(dict.fromkeys(where[k] for k in index_keys if k in where)),
    )


# --------------------------------------------------------------------------- uv


def uv_config_files(
    environ: Mapping[str, str], *, home: str, cwd: str, windows: bool = False
) -> tuple[str, ...]:
    """The uv.toml files uv reads for ``uv pip``, lowest precedence first (project last)."""
    if environ.get("UV_NO_CONFIG"):
        return ()
    if environ.get("UV_CONFIG_FILE"):
        return (environ["UV_CONFIG_FILE"],)
    out: list[str] = []
    if not windows:
        xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        out.extend(os.path.join(d, "uv", "uv.toml") for d in xdg_dirs.split(os.pathsep))
        out.append("/etc/uv/uv.toml")
        config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    else:
        config_home = environ.get("APPDATA", os.path.join(home, "AppData", "Roaming"))
    out.append(os.path.join(config_home, "uv", "uv.toml"))
    folder = os.path.abspath(cwd)
    while True:  # the nearest project uv.toml wins; uv stops at the first one it finds
        candidate = os.path.join(folder, "uv.toml")
        if os.path.exists(candidate):
            out.append(candidate)
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return tuple(out)


def uv_config(files: Sequence[tuple[str, str]], environ: Mapping[str, str]) -> UvConfig:
    """uv's effective index settings from uv.toml ``files`` ((path, text)) and ``UV_*``."""
    default: str | None = None
    extras: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    sources: list[str] = []
    for path, text in files:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"uv configuration {path} cannot be read: {exc}") from None
        pip_table: dict[str, Any] = doc["pip"] if isinstance(doc.get("pip"), dict) else {}
        for table in (doc, pip_table):
            found = False
            if isinstance(table.get("index-url"), str):
                default, found = table["index-url"], True
            if isinstance(table.get("extra-index-url"), list):
                extras, found = tuple(map(str, table["extra-index-url"])), True
            if isinstance(table.get("find-links"), list):
                links, found = tuple(map(str, table["find-links"])), True
            for entry in table.get("index") or ():
                if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                    found = True
                    if entry.get("default"):
                        default = entry["url"]
                    else:
                        extras = (*extras, entry["url"])
            if found:
                sources.append(path)
    for key in ("UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        if environ.get(key):
            default = environ[key]
            sources.append(f"${key}")
    for key in ("UV_EXTRA_INDEX_URL", "UV_INDEX"):
        if environ.get(key):
            extras = (*extras, *environ[key].split())
            sources.append(f"${key}")
    if environ.get("UV_FIND_LINKS"):
        links = (*links, *environ["UV_FIND_LINKS"].replace(",", " ").split())
        sources.append("$UV_FIND_LINKS")
    return UvConfig(default, extras, links, tuple(dict.fromkeys(sources)))


# --------------------------------------------------------------------------- the choice


def choose(choice: str, config: IndexConfig, uv_found: bool) -> InstallerChoice:
    """See ``_choose``; the result carries ``config`` (the torch step keeps its transport)."""
    picked = _choose(choice, config, uv_found)
    default = picked.uv_default_index or config.uv.default_index
    return InstallerChoice(picked.name, picked.reason, default, config)


def _choose(choice: str, config: IndexConfig, uv_found: bool) -> InstallerChoice:
    """pip or uv, so that the user's index settings are honoured by whichever runs.

    ``auto``: uv (several times faster, bench/bench_apply.py) unless pip's configuration names
    indexes that uv's does not (uv would bypass them): then pip. ``uv`` asked for with such a
    pip configuration carries pip's index-url across as uv's default index; pip's
    extra-index-url/find-links cannot be carried faithfully (uv searches extra indexes *before*
    the default one, pip merges them), so that is BadInput naming why.
    """
    pip, uv = config.pip, config.uv
    pip_only = pip.configured and not uv.configured
    differ = pip.configured and uv.configured and pip.index_url != uv.default_index
    where = ", ".join(pip.sources)
    if choice == "pip":
        return InstallerChoice("pip", "--installer pip")
    if choice == "auto":
        if not uv_found:
            return InstallerChoice("pip", "uv not found")
        if pip_only:
            return InstallerChoice(
                "pip", f"pip's index configuration ({where}) is not read by uv; pip honours it"
            )
        if differ:
            return InstallerChoice(
                "pip",
                f"pip's index configuration ({where}) and uv's "
                f"({', '.join(uv.sources)}) differ; pip honours what pip users configured",
            )
        return InstallerChoice(
            "uv", "uv found" + (" (uv's own index configuration)" if uv.configured else "")
        )
    if choice != "uv":
        raise BadInput(f"unknown installer {choice!r} (choose auto, uv or pip)")
    if not uv_found:
        raise BadInput(
            "--installer uv: uv was not found on PATH",
            tip="install uv (https://docs.astral.sh/uv/) or use --installer pip",
        )
    if pip_only:
        if pip.extra_index_urls or pip.find_links or pip.no_index:
            raise BadInput(
                "--installer uv cannot honour pip's extra-index-url/find-links/no-index "
                f"({where}): "
                "uv searches extra indexes before the default one and does not read pip's "
                "configuration",
                tip="use --installer pip (or auto), or configure uv's indexes in uv.toml",
            )
        return InstallerChoice(
            "uv",
            f"--installer uv, with pip's index-url ({where}) as uv's default index",
            uv_default_index=pip.index_url,
        )
    return InstallerChoice("uv", "--installer uv")
