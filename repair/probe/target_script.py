"""The probe that the *target* interpreter runs: reads its environment and prints one JSON line.

qfix never imports this module to use it: ``repair/probe/interpreter.py`` sends its source to
``<target python> -c <bootstrap>`` on stdin. It must therefore run on any Python 3.7+ with the
standard library only (no walrus, no ``str.removeprefix``, no ``functools.cache``), and it must
not import torch or bitsandbytes: a broken CUDA setup can hang or crash on import (design, "The
target environment"). Only ``--deep`` imports them, after the plain report has been printed, so a
hang or crash there still leaves the plain report behind for the parent.

Output on stdout, one line each:

* ``QFIX-TARGET {json}``: a ``qfix.facts/1`` subset (host, python, packages, torch,
  bitsandbytes, env) plus extra top-level fields (``torch_dependents`` ...).
* with ``--deep``: ``QFIX-DEEP {json}`` per step (``torch``, ``cuda``, ``bitsandbytes``,
  ``done``); a step that never appears did not finish.
* with ``--where`` (what ``qfix apply`` asks): the report holds only the python section (venv,
  conda, externally managed) and ``paths``, where installers write (sysconfig); nothing else.

Package metadata is read from the ``*.dist-info``/``*.egg-info`` folders on ``sys.path`` directly
rather than through ``importlib.metadata``: one code path for 3.7 (which has no
``importlib.metadata``) and newer, headers only (``importlib.metadata`` parses every METADATA in
full through ``email``, which costs ~60 ms on a torch + transformers venv), and it also sees
pip's ``~name`` leftovers and duplicate dist-info folders, both facts worth reporting.

Annotations are never evaluated (PEP 563, available since 3.7), so they may use the builtin
generics and ``X | None`` for mypy without costing a ``typing`` import in the target.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import re
import sys
import types

MARK_REPORT = "QFIX-TARGET "
MARK_DEEP = "QFIX-DEEP "
PROBE = "qfix-target/1"

# Kept equal to repair.facts.WATCHED_PACKAGES and ENV_VARS (tests/test_probe_interpreter.py checks).
WATCHED = (
    "torch",
    "torchvision",
    "torchaudio",
    "bitsandbytes",
    "transformers",
    "accelerate",
    "peft",
    "triton",
    "xformers",
    "trl",
    "diffusers",
    "safetensors",
    "ctranslate2",
    "pip",
)
ENV_VARS = (
    "BNB_CUDA_VERSION",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_HOME",
    "NVIDIA_VISIBLE_DEVICES",
)

NATIVE_EXTS = (".so", ".dll", ".dylib")
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_EXTRA_RE = re.compile(r"\bextra\s*==")
_SPLIT_RE = re.compile(r"[-_.]+")
# What ast.literal_eval raises on odd input (deeply nested or huge literals included).
_LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def _norm(name: str) -> str:
    """PEP 503 normalised project name."""
    return _SPLIT_RE.sub("-", name).lower()


def _text(path: str, limit: int | None = None) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read() if limit is None else fh.read(limit)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


# ----------------------------------------------------------------------------- distributions


def _site_dirs() -> list[str]:
    """The directories on sys.path, in order, each once (a venv's lib64 is often lib)."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue  # zip files (python3X.zip) hold no distributions we care about
        key = os.path.normcase(os.path.realpath(entry))
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _headers(path: str) -> tuple[str | None, str | None, list[str]]:
    """Name, Version and Requires-Dist of a METADATA/PKG-INFO file (RFC 822 headers only)."""
    name: str | None = None
    version: str | None = None
    requires: list[str] = []
    last: str | None = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.rstrip("\r\n"):
                # The body (long description) follows the first empty line. A line of spaces is
                # a folded continuation (RFC 822 3.1.1), e.g. inside a multi-line License header
                # (bitsandbytes 0.45.5), not the end of the headers.
                break
            if line[0] in " \t":
                if last is not None and requires and last == "requires-dist":
                    requires[-1] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            last = key.strip().lower()
            value = value.strip()
            if last == "name":
                name = value
            elif last == "version":
                version = value
            elif last == "requires-dist":
                requires.append(value)
    return name, version, requires


def _egg_requires(info_dir: str) -> list[str]:
    """requires.txt of an egg-info folder, as Requires-Dist strings (sections become markers)."""
    path = os.path.join(info_dir, "requires.txt")
    if not os.path.isfile(path):
        return []
    out: list[str] = []
    marker: str | None = None
    for raw in _text(path).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, env = line[1:-1].partition(":")
            parts = []
            if extra.strip():
                parts.append(f'extra == "{extra.strip()}"')
            if env.strip():
                parts.append(f"({env.strip()})")
            marker = " and ".join(parts) or None
            continue
        out.append(line if marker is None else f"{line}; {marker}")
    return out


class _Dist:
    """One installed distribution (a dist-info or egg-info on sys.path)."""

    __slots__ = ("name", "norm", "version", "info", "requires")

    def __init__(self, name: str, version: str | None, info: str | None, requires: list[str]):
        self.name = name
        self.norm = _norm(name)
        self.version = version
        self.info = info  # the metadata folder; None for a single-file egg-info
        self.requires = requires


def _distributions() -> tuple[list[_Dist], list[str]]:
    """Every installed distribution on sys.path, in import order; plus pip's ``~`` leftovers."""
    dists: list[_Dist] = []
    leftovers: list[str] = []
    for site in _site_dirs():
        try:
            names = sorted(os.listdir(site))
        except OSError:
            continue
        for entry in names:
            path = os.path.join(site, entry)
            if entry.startswith("~"):
                # pip renames a folder to ~name while it uninstalls; one left behind means an
                # interrupted uninstall ("WARNING: Ignoring invalid distribution ~orch").
                leftovers.append(path)
                continue
            info: str | None
            if entry.endswith(".dist-info"):
                info, meta = path, os.path.join(path, "METADATA")
            elif entry.endswith(".egg-info"):
                if os.path.isdir(path):
                    info, meta = path, os.path.join(path, "PKG-INFO")
                else:
                    info, meta = None, path  # a single-file egg-info (distutils)
            elif entry.endswith(".egg") and os.path.isdir(path):
                info = os.path.join(path, "EGG-INFO")
                meta = os.path.join(info, "PKG-INFO")
            else:
                continue
            try:
                name, version, requires = _headers(meta)
            except OSError:
                name, version, requires = None, None, []
            if info is not None and entry.endswith((".egg-info", ".egg")) and not requires:
                requires = _egg_requires(info)
            dists.append(_Dist(name or entry.split("-", 1)[0], version, info, requires))
    return dists, leftovers


def _requirement_name(req: str) -> str | None:
    match = _NAME_RE.match(req)
    return _norm(match.group(1)) if match else None


def _provides_bitsandbytes(dist: _Dist) -> bool:
    """Does this distribution install the top-level ``bitsandbytes`` package?

    top_level.txt when the build tool wrote one (setuptools does); else, only for distributions
    whose name starts with bitsandbytes (the forks: bitsandbytes-cuda111, bitsandbytes-windows,
    ...), RECORD. Reading every RECORD would cost more than the rest of the probe.
    """
    info = dist.info
    if info is None:
        return dist.norm.startswith("bitsandbytes")
    try:
        top = _text(os.path.join(info, "top_level.txt"), 65536)
        return "bitsandbytes" in top.split()
    except OSError:
        pass
    if not dist.norm.startswith("bitsandbytes"):
        return False
    try:
        with open(os.path.join(info, "RECORD"), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("bitsandbytes/", "bitsandbytes\\")):
                    return True
        return False
    except OSError:
        return True  # named like a fork and nothing says otherwise


# ----------------------------------------------------------------------------- sections


def _python_section() -> tuple[dict[str, object], dict[str, object]]:
    import platform
    import sysconfig

    base = getattr(sys, "base_prefix", sys.prefix)
    # virtualenv < 20 sets sys.real_prefix instead of base_prefix.
    in_venv = sys.prefix != base or hasattr(sys, "real_prefix")
    stdlib = sysconfig.get_path("stdlib") or ""
    # PEP 668: the marker lies in the stdlib directory; a venv is never externally managed.
    managed = (not in_venv) and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED"))
    info: dict[str, object] = {
        "executable": sys.executable or None,
        "version": platform.python_version(),
        "in_venv": in_venv,
        "externally_managed": managed,
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
        "prefix": sys.prefix,
    }
    detail: dict[str, object] = {
        "implementation": sys.implementation.name,
        "bits": 64 if sys.maxsize > 2**32 else 32,
        "base_prefix": base,
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    }
    return info, detail


def where() -> dict[str, object]:
    """Only what apply needs (``--where``): the python section and where installers write."""
    import sysconfig

    info, _ = _python_section()
    paths = sysconfig.get_paths()
    keys = ("purelib", "platlib", "scripts", "data", "include")
    return {"schema": "qfix.facts/1", "python": info, "paths": {k: paths.get(k) for k in keys}}


def _libc(system: str | None) -> str | None:
    if system != "Linux":
        return None
    value: str | None
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.35"
    except (AttributeError, ValueError, OSError):
        value = None
    if value:
        return value
    import glob

    if glob.glob("/lib/ld-musl-*.so.1"):
        return "musl"
    return None


_GLIBCXX_RE = re.compile(rb"GLIBCXX_3\.4(?:\.([0-9]{1,3}))?\x00")


def _newest_glibcxx(data: bytes) -> str | None:
    """The newest ``GLIBCXX_3.4.N`` version name in a libstdc++ file (its .dynstr holds each
    version it defines or needs, NUL-terminated): "3.4.30", or None when there is none."""
    found = [int(m.group(1) or 0) for m in _GLIBCXX_RE.finditer(data)]
    if not found:
        return None
    top = max(found)
    return "3.4" if top == 0 else f"3.4.{top}"


def _libstdcxx() -> dict[str, object] | None:
    """The libstdc++ this process loads, and the newest GLIBCXX_ it defines (Linux only).

    ``ctypes`` asks the dynamic loader for ``libstdc++.so.6`` as a C++ extension would (the
    interpreter's RPATH first, so a conda env's own lib/, then LD_LIBRARY_PATH and the system's
    cache); /proc/self/maps names the file it mapped. Never fatal: None when anything fails.
    """
    try:
        import ctypes

        ctypes.CDLL("libstdc++.so.6")
        path = None
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith("libstdc++"):
                    path = parts[5].strip()
                    break
        if path is None:
            return None
        with open(path, "rb") as lib:
            data = lib.read(64 << 20)
        return {"path": path, "glibcxx": _newest_glibcxx(data)}
    except Exception:
        return None


def _host_section(measure_libstdcxx: bool = True) -> dict[str, object]:
    import platform

    system = platform.system() or None
    host: dict[str, object] = {
        "system": system,
        "machine": platform.machine() or None,
        "libc": _libc(system),
        "wsl": None,
        "os_release": None,
    }
    if system == "Linux":
        host["wsl"] = "microsoft" in platform.release().lower()
        try:
            for line in _text("/etc/os-release", 65536).splitlines():
                if line.startswith("PRETTY_NAME="):
                    host["os_release"] = line.split("=", 1)[1].strip().strip("\"'") or None
        except OSError:
            pass
        # Loading libstdc++ here would decide which one the deep probe's imports get (the first
        # loaded wins): with --deep it is measured after them instead (the "libstdcxx" step).
        host["libstdcxx"] = _libstdcxx() if measure_libstdcxx else None
    return host


def _package_dir(name: str) -> str | None:
    """The folder ``import name`` would use: the first sys.path entry holding name/__init__.py."""
    for site in _site_dirs():
        candidate = os.path.join(site, name)
        if os.path.isfile(os.path.join(candidate, "__init__.py")):
            return candidate
    return None


def _literal_assignments(source: str, names: tuple[str, ...]) -> dict[str, object]:
    """Module-level ``name = <literal>`` (or annotated) assignments, without running the code."""
    found: dict[str, object] = {}
    tree: ast.Module | None
    try:
        tree = ast.parse(source)
    except _LITERAL_ERRORS:
        tree = None
    if tree is not None:
        for node in tree.body:
            targets: list[ast.expr]
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    with contextlib.suppress(*_LITERAL_ERRORS):
                        found[target.id] = ast.literal_eval(value)
        return found
    # A file that does not parse (truncated, merge debris): read the plain lines that still do.
    for line in source.splitlines():
        match = re.match(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=\s*(.+?)\s*$", line)
        if match and match.group(1) in names and match.group(1) not in found:
            with contextlib.suppress(*_LITERAL_ERRORS):
                found[match.group(1)] = ast.literal_eval(match.group(2))
    return found


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _torch_section(dist_version: str | None) -> tuple[dict[str, object] | None, str | None]:
    folder = _package_dir("torch")
    if folder is None and dist_version is None:
        return None, None
    section: dict[str, object] = {
        "version": dist_version,
        "cuda": None,
        "hip": None,
        "arch_list": None,
        "cuda_available": None,
        "error": None,
    }
    if folder is None:
        section["error"] = (
            f"the torch {dist_version} distribution is installed but no torch package folder is on "
            "sys.path (broken install)"
        )
        return section, None
    path = os.path.join(folder, "version.py")
    try:
        source = _text(path, 1 << 20)
    except OSError as exc:
        if not os.path.exists(path):
            section["error"] = f"{path} is missing (broken or partial torch install)"
        else:
            section["error"] = f"cannot read {path}: {exc.strerror or exc}"
        return section, folder
    values = _literal_assignments(source, ("__version__", "cuda", "hip"))
    version = _str_or_none(values.get("__version__"))
    if version is None:
        section["error"] = f"{path} does not define __version__ (broken torch install)"
    else:
        section["version"] = version
    section["cuda"] = _str_or_none(values.get("cuda"))
    section["hip"] = _str_or_none(values.get("hip"))
    return section, folder


def _bnb_section(
    dists: list[_Dist], packages: dict[str, str | None]
) -> tuple[dict[str, object] | None, str | None, str | None]:
    providers = [d for d in dists if _provides_bitsandbytes(d)]
    folder = _package_dir("bitsandbytes")
    if not providers and folder is None:
        return None, None, None
    version = packages.get("bitsandbytes")
    if version is None and providers:
        version = providers[0].version
    module_version: str | None = None
    libs: list[str] | None = None
    if folder is not None:
        try:
            libs = sorted(
                f
                for f in os.listdir(folder)
                if f.startswith("libbitsandbytes") and f.endswith(NATIVE_EXTS)
            )
        except OSError:
            libs = None
        try:
            init = _text(os.path.join(folder, "__init__.py"), 1 << 20)
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", init, re.M)
            module_version = match.group(1) if match else None
        except OSError:
            pass
        if version is None:
            version = module_version
    section: dict[str, object] = {
        "version": version,
        "native_libs": libs,
        "copies": len(providers),
        "distributions": sorted(f"{d.name} {d.version}" for d in providers),
        "loaded": None,
        "error": None,
        "source_build": _source_build(providers[0]) if providers else None,
    }
    return section, folder, module_version


def _hip_devices(torch: types.ModuleType) -> list[dict[str, object]]:
    """The GPUs a ROCm build of torch sees: name and LLVM target (``gcnArchName``,
    "gfx90a:sramecc+:xnack-"), which NVML cannot report on an AMD host."""
    out: list[dict[str, object]] = []
    for i in range(min(int(torch.cuda.device_count()), 16)):
        props = torch.cuda.get_device_properties(i)
        arch = getattr(props, "gcnArchName", None)
        out.append(
            {
                "name": str(getattr(props, "name", "") or "") or None,
                "gfx": str(arch).split(":")[0] if arch else None,
            }
        )
    return out


def _source_build(dist: _Dist) -> bool | None:
    """Whether ``dist`` was built from a source tree or a VCS checkout: PEP 610's
    direct_url.json names ``dir_info`` or ``vcs_info`` (``pip install .``, ``pip install
    git+...``), or an archive that is not a wheel (an sdist) or a wheel with a bare ``linux_*``
    platform tag, which PyPI refuses (PEP 513/600: only manylinux/musllinux tags are uploaded),
    so it was built on a machine like this one; a setuptools egg (``setup.py install``/
    ``develop``: an .egg-info, or an .egg folder's EGG-INFO) has no wheel at all.
    None: not known (no metadata folder)."""
    if dist.info is None:
        return None
    info = dist.info.rstrip("/\\")
    if info.endswith((".egg-info", ".egg", "EGG-INFO")):
        return True
    try:
        raw = _text(os.path.join(dist.info, "direct_url.json"), 1 << 16)
    except OSError:
        return False  # installed from an index or a wheel file: pip writes no direct_url.json
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if "vcs_info" in data or "dir_info" in data:
        return True
    url = str(data.get("url", "")).split("?", 1)[0].split("#", 1)[0]
    if not url.endswith(".whl"):
        return True  # an sdist, built here
    return re.search(r"-linux_[^-]+\.whl$", url) is not None


def report(measure_libstdcxx: bool = True) -> dict[str, object]:
    """The plain (non-deep) report as a dict: never raises; a failed section says why."""
    errors: dict[str, str] = {}
    out: dict[str, object] = {"schema": "qfix.facts/1", "probe": PROBE}

    try:
        out["python"], out["interpreter"] = _python_section()
    except Exception as exc:  # a section that fails is a fact, not a crash of the probe
        errors["python"] = _error_text(exc)
    try:
        out["host"] = _host_section(measure_libstdcxx)
    except Exception as exc:
        errors["host"] = _error_text(exc)

    try:
        dists, leftovers = _distributions()
    except Exception as exc:
        errors["packages"] = _error_text(exc)
        dists, leftovers = [], []
    first: dict[str, _Dist] = {}
    versions_by_name: dict[str, list[str | None]] = {}
    for d in dists:
        first.setdefault(d.norm, d)
        versions_by_name.setdefault(d.norm, []).append(d.version)

    packages = {name: (first[name].version if name in first else None) for name in WATCHED}
    dependents: dict[str, str] = {}
    optional: dict[str, str] = {}
    for norm, d in first.items():
        if norm == "torch":
            continue
        for req in d.requires:
            if _requirement_name(req) != "torch":
                continue
            _, _, marker = req.partition(";")
            # Requirements behind an extra ("torch>=2.6; extra == 'torch'") bind only when that
            # extra was asked for, which no installer records; the planner sees them apart.
            target = optional if _EXTRA_RE.search(marker) else dependents
            # Several torch requirements of one dist (split by markers) are joined by newlines.
            if norm not in target:
                target[norm] = req
            elif req not in target[norm].split("\n"):
                target[norm] += "\n" + req
    for norm in dependents:
        packages.setdefault(norm, first[norm].version)
    if "packages" not in errors:
        out["packages"] = packages
    out["torch_dependents"] = dependents
    out["torch_optional_dependents"] = optional
    # Every installed distribution, so that a saved plan is refused once anything changed
    # (repair/fingerprint.py).
    out["distributions"] = {norm: d.version for norm, d in sorted(first.items())}
    out["duplicate_distributions"] = {
        name: vs for name, vs in versions_by_name.items() if len(vs) > 1
    }
    out["invalid_distributions"] = leftovers
    pip = first.get("pip")
    out["pip_version"] = pip.version if pip else None

    try:
        out["torch"], torch_dir = _torch_section(packages.get("torch"))
        out["torch_path"] = torch_dir
    except Exception as exc:
        errors["torch"] = _error_text(exc)
    try:
        bnb, bnb_dir, module_version = _bnb_section(dists, packages)
        out["bitsandbytes"] = bnb
        out["bitsandbytes_path"] = bnb_dir
        out["bitsandbytes_module_version"] = module_version
    except Exception as exc:
        errors["bitsandbytes"] = _error_text(exc)

    out["env"] = {name: os.environ.get(name) for name in ENV_VARS}
    out["probe_errors"] = errors
    return out


# ----------------------------------------------------------------------------- deep mode


def _trim(text: str, lines: int = 6, chars: int = 800) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()][-lines:]
    joined = "\n".join(kept)
    return joined[-chars:] if len(joined) > chars else joined


def _exception_text() -> str:
    import traceback

    exc = sys.exc_info()[1]
    if exc is None:
        return "unknown error"
    last = traceback.format_exception_only(type(exc), exc)
    return _trim("".join(last))


def _deep(proto: io.TextIOWrapper) -> None:
    """Import torch and bitsandbytes, one step at a time, each step reported as soon as done."""

    def emit(obj: dict[str, object]) -> None:
        proto.write(MARK_DEEP + json.dumps(obj, ensure_ascii=True, sort_keys=True, default=str))
        proto.write("\n")
        proto.flush()

    emit({"step": "start"})
    try:
        import torch
    except BaseException:
        emit({"step": "torch", "ok": False, "error": _exception_text()})
        torch = None
    else:
        version = getattr(torch, "version", None)
        emit(
            {
                "step": "torch",
                "ok": True,
                "version": getattr(torch, "__version__", None),
                "cuda": getattr(version, "cuda", None),
                "hip": getattr(version, "hip", None),
                "file": getattr(torch, "__file__", None),
            }
        )
        step: dict[str, object] = {
            "step": "cuda",
            "available": None,
            "arch_list": None,
            "error": None,
        }
        try:
            step["available"] = bool(torch.cuda.is_available())
            if step["available"] and getattr(version, "hip", None):
                step["devices"] = _hip_devices(torch)
        except BaseException:
            step["error"] = _exception_text()
        try:
            flags = getattr(torch._C, "_cuda_getArchFlags", None)
            if flags is None:
                # A CPU-only build has no CUDA arch list at all; a GPU build without the call
                # is unknown.
                cuda_build = getattr(version, "cuda", None) or getattr(version, "hip", None)
                step["arch_list"] = None if cuda_build else []
            else:
                value = flags()
                step["arch_list"] = str(value).split() if value else []
        except BaseException:
            step["error"] = step["error"] or _exception_text()
        emit(step)

    # bitsandbytes prints banners and warnings at import (0.38 prints to stdout, 0.4x logs);
    # keep them out of the protocol and keep the tail as evidence.
    captured = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = captured
    step = {"step": "bitsandbytes", "ok": False, "loaded": None, "error": None}
    try:
        try:
            import bitsandbytes
        except BaseException:
            step["error"] = _exception_text()
        else:
            step["ok"] = True
            step["version"] = getattr(bitsandbytes, "__version__", None)
            step["file"] = getattr(bitsandbytes, "__file__", None)
            _bnb_library(step)
    finally:
        sys.stdout, sys.stderr = saved
    output = _trim(captured.getvalue(), lines=8, chars=1200)
    step["output"] = output or None
    if step["loaded"] is False and not step["error"]:
        step["error"] = _trim(output) or "the native library did not load"
    emit(step)
    # after the imports: the libstdc++ they really loaded (never fatal: None on failure)
    emit({"step": "libstdcxx", "found": _libstdcxx()})
    emit({"step": "done"})


def _bnb_library(step: dict[str, object]) -> None:
    """Did bitsandbytes load its native library? Adapts to the release.

    0.43+: ``cextension.lib`` is an ``ErrorHandlerMockBNBNativeLibrary`` when loading failed,
    holding ``error_msg``. 0.38-0.42: ``cextension.lib`` is None when the CUDA setup found no
    library (it prints why), and ``COMPILED_WITH_CUDA`` says whether it is a CUDA build.
    """
    try:
        cext = sys.modules.get("bitsandbytes.cextension")
        if cext is None:
            cext = importlib.import_module("bitsandbytes.cextension")
    except BaseException:
        step["loaded"] = False
        step["error"] = _exception_text()
        return
    lib = getattr(cext, "lib", None)
    if type(lib).__name__ == "ErrorHandlerMockBNBNativeLibrary":
        step["loaded"] = False
        step["error"] = _trim(str(getattr(lib, "error_msg", "") or "")) or None
    else:
        step["loaded"] = lib is not None
    for name in ("COMPILED_WITH_CUDA", "BNB_BACKEND"):
        if hasattr(cext, name):
            value = getattr(cext, name)
            step[name.lower()] = value if isinstance(value, (bool, str)) else str(value)
    if lib is not None and hasattr(lib, "compiled_with_cuda"):
        with contextlib.suppress(BaseException):
            step["compiled_with_cuda"] = bool(type(lib).compiled_with_cuda)


# ----------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    if sys.path and sys.path[0] in ("", "."):
        # `python -c` puts the working directory first; a stray torch/ or *.dist-info there
        # is not part of the target environment.
        del sys.path[0]
    deep = "--deep" in argv
    doc = where() if "--where" in argv else report(measure_libstdcxx=not deep)
    line = MARK_REPORT + json.dumps(doc, ensure_ascii=True, sort_keys=True, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if not deep or "--where" in argv:
        return 0
    # From here on only our protocol may reach the real stdout: native code that printf()s (or
    # Python code that prints) goes to stderr instead.
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    try:
        _deep(proto)
    finally:
        proto.flush()
        sys.stderr.flush()
    # Skip interpreter teardown: torch's exit handlers can hang on a broken CUDA setup, and
    # everything we had to say is out.
    os._exit(0)
    return 0  # unreachable, for readers


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
