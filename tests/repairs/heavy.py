"""The real torch 2.14.1 CUDA 13.0 wheels under the PyTorch index layout (`nox -s repairs-heavy`).

PyPI's torch 2.14.1 for Linux x86_64 is the CUDA 13.0 build (its ``torch/version.py`` says
``__version__ = '2.14.1+cu130'``, ``cuda = '13.0'``), but its metadata says ``2.14.1``, while
https://download.pytorch.org/whl/cu130 serves that build as ``torch-2.14.1+cu130``. qfix pins
torch with its local label (``torch==2.14.1+cu130`` from ``<base>/cu130``: docs/apply.md), and
PEP 440 lets such a pin match only a distribution that carries the label. So ``relabel()`` makes
the wheel the PyTorch index would serve: it renames the ``.dist-info`` folder and rewrites
``METADATA``'s ``Version`` and ``RECORD``; every other file (the 1.1 GB of the build) is copied
byte for byte.

Like the PyTorch index, the ``cu130/`` folder of ``HeavyIndex`` also serves torch's dependencies
(nvidia-*, cuda-toolkit, triton, ...): ``mirror_dependencies()`` asks pip which files a
``torch==2.14.1`` install takes (a dry run through the machine's pip configuration), links the
local ones (/opt/pypi*, /opt/wheels here) and downloads the few that only PyPI has (cuda-bindings
and a handful of small ones, cached under .cache/repairs/heavy/mirror).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.index_server import IndexServer, normalize

REAL_TORCH_2141 = Path("/opt/pypi-more/files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")
VARIANT = "cu130"


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def relabel(src: Path, dest_dir: Path, local: str = VARIANT) -> Path:
    """``torch-2.14.1-<tags>.whl`` -> ``torch-2.14.1+<local>-<tags>.whl`` (dist-info rewritten,
    the rest copied unchanged, stored uncompressed: no time spent deflating 1.1 GB)."""
    name, version, tags = src.name.split("-", 2)
    new_version = f"{version}+{local}"
    out = dest_dir / f"{name}-{new_version}-{tags}"
    if out.is_file():
        return out
    dest_dir.mkdir(parents=True, exist_ok=True)
    old_info, new_info = f"{name}-{version}.dist-info/", f"{name}-{new_version}.dist-info/"
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zout:
        metadata = zin.read(old_info + "METADATA").decode()
        metadata, n = re.subn(
            r"^Version: .*$", f"Version: {new_version}", metadata, count=1, flags=re.MULTILINE
        )
        if n != 1:
            raise RuntimeError(f"{src.name}: no Version line in METADATA")
        meta_bytes = metadata.encode()
        record_lines = []
        for line in zin.read(old_info + "RECORD").decode().splitlines():
            path, _, rest = line.partition(",")
            if path.startswith(old_info):
                path = new_info + path[len(old_info) :]
                if path == new_info + "METADATA":
                    rest = f"{_record_hash(meta_bytes)},{len(meta_bytes)}"
            record_lines.append(f"{path},{rest}")
        record = ("\n".join(record_lines) + "\n").encode()
        for info in zin.infolist():
            target = info.filename
            if target.startswith(old_info):
                target = new_info + target[len(old_info) :]
            zi = zipfile.ZipInfo(target, info.date_time)
            zi.external_attr = info.external_attr
            if target == new_info + "METADATA":
                zout.writestr(zi, meta_bytes)
            elif target == new_info + "RECORD":
                zout.writestr(zi, record)
            elif info.is_dir():
                zout.writestr(zi, b"")
            else:
                with zin.open(info) as fin, zout.open(zi, "w", force_zip64=True) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
    tmp.rename(out)
    return out


def mirror_dependencies(
    python: Path, requirement: str, mirror: Path, env: Mapping[str, str]
) -> list[Path]:
    """The wheel files a fresh install of ``requirement`` takes (except torch itself), as local
    paths: pip's dry-run report through the machine's configuration; files it would take from
    a remote index are downloaded once into ``mirror``. ``python`` must have pip."""
    mirror.mkdir(parents=True, exist_ok=True)
    listing = mirror / ("deps-" + re.sub(r"[^A-Za-z0-9.]+", "-", requirement) + ".json")
    if listing.is_file():
        paths = [Path(p) for p in json.loads(listing.read_text())]
        if all(p.is_file() for p in paths):
            return paths
    report = mirror / "report.json"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            requirement,
        ],
        env,
        timeout=1200,
    )
    paths = []
    for item in json.loads(report.read_text())["install"]:
        if normalize(item["metadata"]["name"]) == "torch":
            continue
        url = item["download_info"]["url"]
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            paths.append(Path(urllib.request.url2pathname(parsed.path)))
            continue
        filename = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
        local = mirror / filename
        if not local.is_file():
            _run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "-d",
                    str(mirror),
                    url,
                ],
                env,
                timeout=1200,
            )
        paths.append(local)
    listing.write_text(json.dumps([str(p) for p in paths], indent=1))
    return paths


def _run(argv: list[str], env: Mapping[str, str], *, timeout: float) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=dict(env), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:6])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )


def _project(filename: str) -> str:
    return normalize(filename.split("-", 1)[0])


class HeavyIndex(IndexServer):
    """tests/index_server.IndexServer plus, in ``cu130/``, the relabeled real torch wheel and its
    dependencies (the PyTorch index mirrors them too)."""

    def __init__(self, root: Path, *, torch_wheel: Path, dependencies: Iterable[Path]) -> None:
        self.extra_cu130 = [torch_wheel, *dependencies]
        super().__init__(root)

    def _build(self) -> None:
        super()._build()
        projects: dict[str, list] = {}
        # the generated cu130 builds already listed (torch 2.13.0+cu130 & co.)
        for path in sorted((self.root / "files").glob(f"*+{VARIANT}-*.whl")):
            projects.setdefault(_project(path.name), []).append(self._link(path))
        for path in self.extra_cu130:
            projects.setdefault(_project(path.name), []).append(self._link(path))
        self._write_index(self.root / "whl" / VARIANT, projects)
