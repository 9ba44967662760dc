"""The manual steps for CUDA libraries that the loader cannot open (cuda-libs-not-found).

Three states that the rules of repair/rules/environment.py prove, and that no venv change fixes by
itself: the driver's own user-space library (libcuda) is missing or broken ("CUDA Version: N/A"),
a CUDA runtime of one major (libcudart.so.N, cublas64_N.dll) is not on the loader path, and a
package's own hashed copy of a CUDA library (torchvision.libs/libcudart.<hash>.so.12) is gone. In
a conda environment the CUDA runtime is a conda package, so its fix is named on the conda side; a
package's own copy comes back only with that package.

Pure: builds texts from the view and the findings; no process, no network.
"""

from __future__ import annotations

from collections.abc import Mapping

from .containers import start_with_gpu
from .findings import Finding
from .plan import TORCH_FAMILY, Manual, normalize
from .rules.environment import in_conda
from .view import MODERN_BNB_LOADER, View

# NVIDIA's conda channel labels each CUDA release (nvidia/label/cuda-11.3.0 onwards) and files
# cuda-runtime, cuda-cudart and libcublas under them; conda-forge pins a release with the
# cuda-version metapackage and ships cuda-cudart from CUDA 12 (S31).
_FIRST_LABEL = (11, 3)
_FIRST_CONDA_FORGE_CUDART = 12

_LIBCUDA_TEXT = (
    "the NVIDIA driver {driver} answers but reports no CUDA version (nvidia-smi: 'CUDA Version: "
    "N/A'): its user-space library libcuda.so.1 is missing or does not match the kernel module. "
    "Reinstall the driver {driver} completely (the same version for the kernel module and its "
    "user-space libraries), check that `ldconfig -p | grep libcuda.so.1` lists it, then reboot; "
    "{container}, so that the host's libcuda is mounted. No package in the venv fixes this."
)


def runtime_findings(by_id: Mapping[str, list[Finding]]) -> tuple[Finding, ...]:
    """The cuda-libs-not-found findings of the two states this module advises on."""
    return tuple(
        f
        for f in by_id.get("cuda-libs-not-found", ())
        if f.evidence.get("libcuda")
        or f.evidence.get("cuda_major") is not None
        or f.evidence.get("torch_wheels")
    )


def stays_required(view: View, by_id: Mapping[str, list[Finding]]) -> bool:
    """Whether the step holds whatever bitsandbytes is planned: a broken libcuda, or torch's own
    CUDA runtime missing (a bitsandbytes keyed on torch's CUDA only moots a library search)."""
    for f in runtime_findings(by_id):
        if (
            f.evidence.get("libcuda")
            or f.evidence.get("bundled_by")
            or f.evidence.get("torch_wheels")
        ):
            return True
        major = f.evidence.get("cuda_major")
        if view.torch_cuda is not None and view.torch_cuda.major == major:
            return True
    return False


def runtime_manual(view: View, by_id: Mapping[str, list[Finding]]) -> Manual | None:
    """The manual step of the first such finding (None when there is none)."""
    found = runtime_findings(by_id)
    if not found:
        return _conda_search_manual(view) if "cuda-libs-not-found" in by_id else None
    f = found[0]
    if f.evidence.get("bundled_by"):
        return _bundled_manual(view, f)
    if f.evidence.get("torch_wheels"):
        return Manual("cuda-libs-not-found", torch_wheels_text(view), True)
    if f.evidence.get("libcuda"):
        text = _LIBCUDA_TEXT.format(
            driver=f.evidence.get("driver") or view.driver,
            container=start_with_gpu(view.container),
        )
        return Manual("cuda-libs-not-found", text, True)
    major = int(f.evidence["cuda_major"])
    conda = bool(f.evidence.get("conda"))  # the rule's reading of in_conda
    if view.torch_cuda is not None and view.torch_cuda.major == major:
        text = (
            f"torch's own CUDA {view.torch_cuda} libraries are missing: reinstall torch from the "
            "PyTorch index of its CUDA build so that they come with it (not with --no-deps)"
        )
        # in a conda env the runtime torch links against is a conda package (S31)
        return Manual(
            "cuda-libs-not-found",
            (_conda_text(view, major) + "; or " if conda else "") + text,
            True,
        )
    where = "PATH" if view.system == "Windows" else "LD_LIBRARY_PATH"
    whose = (
        f"the library that needs CUDA {major} is not torch's (torch carries CUDA {view.torch_cuda})"
        if view.torch_cuda is not None
        else f"torch's CUDA is not known: where the library that needs CUDA {major} is "
        "bitsandbytes'"
    )
    text = (
        f"{whose}: a bitsandbytes >= "
        f"{MODERN_BNB_LOADER} loads the library of torch's own CUDA (the steps, where planned); "
        + (
            "otherwise " + _conda_text(view, major)
            if conda
            else f"otherwise put the lib directory of a CUDA {major} runtime on {where}"
        )
    )
    return Manual("cuda-libs-not-found", text, conda)


def _bundled_manual(view: View, f: Finding) -> Manual:
    """Reinstall the package whose wheel bundles the broken copy (with torch, torchvision and
    torchaudio together at their installed versions: they are built against one another), pinned
    where the version is known and a placeholder where it is not (none is guessed). --no-deps
    keeps every other package as it is; the force makes pip rewrite files it believes present."""
    owner = str(f.evidence["bundled_by"])
    names = [owner]
    if owner in TORCH_FAMILY:
        # torchvision and torchaudio require torch (compat-facts B1): torch is there too
        installed = view.facts.packages or {}
        names = [p for p in TORCH_FAMILY if p in (owner, "torch") or p in installed]
    pins, unknown = [], []
    for name in names:
        version = _installed_version(view, name)
        pins.append(f"{name}=={version or '<installed version>'}")
        if version is None:
            unknown.append(name)
    text = (
        f"{owner}'s wheel bundles its own {f.evidence.get('library', 'cudart')} of CUDA "
        f"{f.evidence.get('cuda_major')}, found through its RPATH, not the loader path: no CUDA "
        "toolkit, LD_LIBRARY_PATH or ldconfig change brings it back. Reinstall "
        + (f"{', '.join(names)} together" if len(names) > 1 else "it")
        + " at the installed versions, from the index "
        + ("they" if len(names) > 1 else "it")
        + f" came from: `python -m pip install --force-reinstall --no-deps {' '.join(pins)}`"
    )
    if unknown:
        text += f" (qfix does not know the installed versions: `pip show {' '.join(unknown)}`)"
    if f.evidence.get("conda"):
        text += f"; pip, in a conda env too: the hashed copy is {owner}'s pip wheel's"
    if f.evidence.get("deleted"):
        text += (
            "; the path was marked '(deleted)': a running process (a notebook kernel, a "
            "training or vLLM worker) still maps the removed file, so restart it afterwards"
        )
    return Manual("cuda-libs-not-found", text, True)


def _installed_version(view: View, name: str) -> str | None:
    """A package's reported version; the folder's name (foo_ext.libs) is the distribution's
    with underscores (S79), so it is looked up normalized."""
    if name == "torch" and view.torch is not None:
        return str(view.torch)
    versions = {normalize(k): v for k, v in (view.facts.packages or {}).items()}
    return versions.get(normalize(name))


def _conda_search_manual(view: View) -> Manual | None:
    """A conda environment where the loader found no CUDA runtime (an error message with no
    CUDA major): the runtime of torch's CUDA belongs in the env itself, next to the
    library-path fix. Not on WSL or Windows, whose fixes are the driver's library folder."""
    host = view.facts.host
    if not in_conda(view) or view.system == "Windows" or (host is not None and host.wsl):
        return None
    major = view.torch_cuda.major if view.torch_cuda is not None else None
    conda = (
        _conda_text(view, major)
        if major is not None
        else "conda: install the CUDA runtime of torch's CUDA into the env from NVIDIA's "
        "channel, whose labels pin a release: `conda install -c nvidia/label/cuda-<X.Y.Z> "
        "cuda-runtime`"
    )
    return Manual(
        "cuda-libs-not-found",
        conda + "; or put the directory holding libcudart.so on LD_LIBRARY_PATH; a "
        f"bitsandbytes >= {MODERN_BNB_LOADER} needs no search",
        False,
    )


def _conda_text(view: View, major: int) -> str:
    """The conda-side fix: the CUDA ``major`` runtime installed into the environment itself."""
    cuda = view.torch_cuda
    if cuda is not None and cuda.major == major and (cuda.major, cuda.minor) >= _FIRST_LABEL:
        label = f"cuda-{cuda.major}.{cuda.minor}.0"
    else:
        label = f"cuda-{major}.<minor>.<patch>"
    text = (
        f"conda: the environment has no CUDA {major} runtime; install it into the env from "
        f"NVIDIA's channel, whose labels pin a release: `conda install -c nvidia/label/{label} "
        "cuda-runtime`"
    )
    if major < _FIRST_CONDA_FORGE_CUDART:
        # S31 confirms the `cuda` metapackage under the 11.x labels; `cuda-runtime` there is not
        text += " (UNCONFIRMED for 11.x labels: else the `cuda` metapackage of the same label)"
    else:
        text += (
            f" (or from conda-forge: `conda install -c conda-forge cuda-version={major} "
            "cuda-cudart libcublas`)"
        )
    return text


def torch_wheels_text(view: View) -> str:
    """torch's NVIDIA wheels are not where it runs (S132): pip brings them with torch; a
    resolver or lock file that left them out, or a site-packages split between purelib and
    platlib that puts them on another path, is the thing to mend."""
    if view.torch_cpu_build:
        return (
            f"the message is a CUDA build's preload, but torch {view.torch} here is a CPU-only "
            "build: the failing process ran another torch (another interpreter or "
            "environment); run `qfix plan` with that interpreter (`--python`)"
        )
    label = view.torch.local if view.torch is not None else None
    where = (
        f" from the PyTorch index folder of its build ({label}; --index-url <index>/{label})"
        if label and label.startswith("cu")
        else ""
    )
    pin = f"torch=={view.torch}" if view.torch is not None else "torch==<installed version>"
    return (
        "torch's CUDA libraries come as NVIDIA wheels (nvidia-*-cuN) that torch requires, and "
        "torch found them on no sys.path entry of this interpreter: install torch again with "
        f"its dependencies (`<python> -m pip install {pin}`{where}; pip adds the missing "
        "ones; not with --no-deps), then check that `pip show -f` lists them in a "
        "site-packages this interpreter imports from. A resolver or lock file that installed "
        "torch without them (Poetry, pdm, a hand-made requirements file) must list them too"
    )
