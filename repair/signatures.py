"""What an error message proves about the facts (plans/signatures.toml), applied before the rules.

An error text often proves more than a failure class: a loader message only one bitsandbytes era
prints bounds its version, a `.so` file on Windows proves a Linux-only wheel, a keyword argument
that transformers does not accept yet bounds transformers, a CUDA error code names the state of
the driver. Each [[signature]] of plans/signatures.toml turns such a text into CONSTRAINTS ON THE
FACTS (a version range, a platform, a build property) with its sources; ``implied_facts`` adds
them to ``Facts.extra["implied"]`` (never overriding a reported fact), and the view reads them as
``Implied``, so the rules and the planner work from them exactly as from reported versions.

Pure: reads a data file of the knowledge base, no process, no network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import KnowledgeError
from .facts import Facts, Host, TorchBuild, listed_installed
from .knowledge import (
    DIFFUSERS_BEFORE_MPS,
    TRANSFORMERS_REFUSING_WITHOUT_CUDA,
    Range,
    plans_directory,
    read_toml,
)

# The packages whose version an error text may bound (a range, a PEP 440 specifier).
RANGE_KEYS = ("bitsandbytes", "transformers", "accelerate", "peft", "diffusers", "torch")
# Facts an error text may state, with the type of their value.
FACT_KEYS: Mapping[str, type] = {
    "system": str,  # host.system when the report lacks it: Windows, Darwin, Linux
    "bnb_foreign_build": bool,  # the loaded bitsandbytes library is another platform's file
    "rocm": bool,  # a HIP/ROCm library or torch: an AMD host
    "cuda_error": int,  # the CUDA runtime error code the text shows (cudaError_t)
    # a forked child needed CUDA after its parent initialised it (torch's own check, before any
    # CUDA error code: the fork case of error 3)
    "cuda_forked": bool,
    "driver_below_torch_cuda": bool,  # the driver cannot run torch's CUDA runtime
    "libstdcxx": str,  # a libstdc++ symbol version the loader's libstdc++ lacks
    # A CUDA library the loader could not open (libcudart.so.N, cublas64_N.dll): its name carries
    # the CUDA major N the failing library was built for (plans/signatures.toml).
    "cuda_lib": str,  # cudart | cublas | cublasLt | cusparse
    "cuda_lib_major": str,  # "11", "12"
    # A cuDNN library the loader could not open (libcudnn_ops.so.9, cudnn_ops_infer64_8.dll): its
    # name carries the cuDNN major N the library that asked for it was built for.
    "cudnn_major": str,
    # That library is a copy a wheel bundles under a hashed name (auditwheel's
    # `<pkg>.libs/libcudart-<hash>.so.12`, torchvision's `libcudart.<hash>.so.12`, torch's
    # `torch/lib/libcudart-<hash>.so.11.0`): the package whose folder holds it, and whether the
    # loader marked the path "(deleted)" (removed while a process still maps it).
    "cuda_lib_bundled_by": str,
    "cuda_lib_deleted": bool,
    # The CUDA version as bitsandbytes printed it ("116" = 11.6): torch.version.cuda where the
    # message says so; the library tag its loader wanted otherwise (whose source is an era's).
    "torch_cuda_tag": str,
    "loader_cuda_tag": str,
    # The CUDA library bitsandbytes' legacy loader detected and loaded ("CUDA SETUP: Loading
    # binary .../libbitsandbytes_cuda121.so", "Detected CUDA version 121"): a CUDA runtime in
    # that process, which the driver must run too.
    "bnb_loaded_cuda_tag": str,
    # bitsandbytes did not load a CUDA library (its loader failed, or it loaded its CPU library):
    # what its loader messages prove (S38); torch.cuda.is_available() was True in that process.
    "bnb_cuda_not_loaded": bool,
    "torch_cuda_available": bool,
    # torch's own CUDA start ran (c10/cuda's "CUDA initialization: ..." warning, "Unexpected error
    # from cudaGetDeviceCount()"): c10/cuda is built only into torch's CUDA builds (S97).
    "torch_cuda_build": bool,
    # bitsandbytes' own CUDA_CHECK_RETURN (csrc/ops.cuh) printed that a kernel it launched has no
    # code for this GPU: its library, not torch, lacks the GPU's architecture.
    "bnb_kernel_missing": bool,
    # A CUDA library of torch's own (pip nvidia-*) resolved a versioned symbol against another
    # copy of its dependency found first on the loader path (nvJitLink): the copy's library name.
    "cuda_lib_shadowed": str,
    # The major in that copy's file name (".../libcudnn_cnn_train.so.8": 8): a library of
    # another major has another soname, which that copy cannot stand in for.
    "shadowed_lib_major": str,
    # A feature of plans/huggingface.toml the failing job uses (the error shows it: `4bit-move`
    # for a refused .to()/.cuda()), so that feature's floors apply beside the 4-bit load's.
    "hf_feature": str,
    # The platform tag of a py3-none bitsandbytes wheel pip refused here ("manylinux_2_24_x86_64"):
    # what it proves about the host's glibc or macOS is repair/wheeltags.py's.
    "wheel_tag_refused": str,
    # The target's Python cannot import bitsandbytes at all (ModuleNotFoundError, metadata not
    # found): where the facts do not say, it is not installed there.
    "bnb_absent": bool,
    # libcuda.so.1 (the driver's user-space library) is not in the loader cache.
    "libcuda_unregistered": bool,
    # A serving engine's own compute-capability gate for bitsandbytes quantization refused the
    # GPU (vLLM: "Minimum capability: 70. Current capability: 52."): its minimum and the GPU's,
    # as the engine prints them (major*10 + minor).
    "serving_min_cc": str,
    "serving_cc": str,
    # torch.cuda.is_available() was False in the failing process (Unsloth's device check).
    "torch_cuda_unavailable": bool,
    # Code in the failing process asked torch for a CUDA device (a CUDA call, a CUDA-only
    # program's device check): on a machine without an NVIDIA GPU no package change serves it.
    "cuda_requested": bool,
    # The library whose own device check raised "No GPU found. A GPU is needed for quantization."
    # (transformers or diffusers): a frame of the text names it, or the package list
    # (_no_gpu_gate).
    "no_gpu_gate_of": str,
    # That library quantizes on a GPU only (diffusers: CUDA, an Intel XPU, Apple's GPU), and this
    # machine is not a Mac: it needs a GPU, not a package.
    "gpu_only_library": str,
    # A bitsandbytes frame failed on `import triton.ops`: a triton without it (>= 3.2) is there,
    # whatever brought it (torch's requirement, or one installed by hand: triton-windows).
    "triton_ops_missing": bool,
    # An import of triton.runtime.driver failed: the triton there is older than 2.1 (S136).
    "triton_driver_missing": bool,
    # CTranslate2's own cuBLAS stub could not open the CUDA library of this major ("Library
    # libcublas.so.12 is not found or cannot be loaded", S118): its own CUDA, not bitsandbytes'.
    "ct2_cuda_major": str,
    # torch's Windows loader found Microsoft's Visual C++ runtime missing (S98).
    "vc_runtime_missing": bool,
    # torch's own preload of its pip CUDA libraries found this one in no nvidia/<lib>/lib folder
    # of the interpreter's sys.path ("libnvrtc.so.*[0-9] not found in the system path", S132):
    # the NVIDIA wheels its CUDA build depends on are not installed where it runs.
    "torch_wheel_lib_missing": str,
    # xFormers could not load its compiled library and printed the torch it was built for and
    # the failing process's own torch.__version__ (xformers/_cpp_lib.py, S131): "2.1.0+cu121",
    # its CUDA as it prints it ("1201", "None"), and "2.1.0+cpu".
    "companion_torch": str,
    # torch's dispatcher named the companion whose C++ operator is not there ("operator
    # torchvision::nms does not exist", S117; "Could not run 'torchvision::nms' with arguments
    # from the 'CUDA' backend", S130), or the loader named its library: that companion is
    # installed, and is the one that does not pair with this torch.
    "companion_named": str,
    "companion_cuda": str,
    "torch_version_seen": str,
    # The failing program is a frozen executable (PyInstaller's bootloader printed its summary):
    # its Python packages are inside it, where no installer reaches.
    "frozen_app": bool,
    # The GPU architecture a ptxas refused ("Value 'sm_103a' is not defined for option
    # 'gpu-name'"): that ptxas (a CUDA toolkit's, or the one Triton bundles) predates it.
    "ptxas_unknown_arch": str,
    # The DLL of torch\lib whose load failed at `import torch` ("Error loading
    # ...\torch\lib\fbgemm.dll or one of its dependencies", S98): a known-bad torch build is
    # told by it (plans/torch.toml [[known_bad]]).
    "torch_dll": str,
    # The CUDA toolkit (nvcc) that compiles a CUDA extension in the failing process, where the
    # text shows its major refused beside torch's (torch.utils.cpp_extension, DeepSpeed's ops).
    "extension_nvcc": str,
    # ... and torch's CUDA as that text gives it (a minor difference within one major is no
    # fault of the toolkit's major).
    "extension_torch_cuda": str,
    # A library of the failing process asks for bitsandbytes >= this version in its own words
    # ("requires bitsandbytes: `pip install -U bitsandbytes>=0.46.1`"): the floor it names.
    "bnb_required": str,
    # The bitsandbytes versions pip's index offered this interpreter ("from versions: ..."): pip
    # lists only the releases with a file it can install here (S86).
    "bnb_index_versions": str,
}
_SYSTEMS = ("Linux", "Windows", "Darwin")
# The features a signature may prove (plans/huggingface.toml `feature`), in a user's words.
HF_FEATURE_WORDS = {
    "4bit-save": "save_pretrained of a 4-bit model",
    "4bit-move": ".to() or .cuda() on a 4-bit model",
    "quant-storage": "BitsAndBytesConfig(bnb_4bit_quant_storage=...) (FSDP with QLoRA)",
    "8bit-merge": "merging 8-bit adapters",
    "4bit-dora": "DoRA (LoraConfig(use_dora=True)) on a 4-bit or 8-bit model",
    "paged-optim": (
        'the Trainer option optim="paged_adamw_32bit" (or another of bitsandbytes\' paged, '
        "8-bit and Lion optimizers)"
    ),
    "8bit-training": "the Trainer on a model loaded in 8-bit (with adapters)",
    "4bit-mps": "a 4-bit load on Apple's GPU (mps)",
}
HF_FEATURE_NAMES = tuple(HF_FEATURE_WORDS)


@dataclass(frozen=True, slots=True)
class Signature:
    id: str
    pattern: re.Pattern[str]
    implies: Mapping[str, Any]
    advice: str | None  # the manual step the state it proves asks for (CUDA and HIP errors)
    sources: tuple[str, ...]
    checked: str


@dataclass(frozen=True, slots=True)
class Implied:
    """The constraints error texts put on the facts (empty when there is no error text)."""

    ranges: tuple[tuple[str, str], ...] = ()  # (package, specifier)
    system: str | None = None
    bnb_foreign_build: bool = False
    rocm: bool = False
    cuda_error: int | None = None
    cuda_forked: bool = False
    driver_below_torch_cuda: bool = False
    libstdcxx: str | None = None
    cuda_lib: str | None = None
    cuda_lib_major: str | None = None
    cudnn_major: str | None = None
    cuda_lib_bundled_by: str | None = None
    cuda_lib_deleted: bool = False
    torch_cuda_tag: str | None = None
    loader_cuda_tag: str | None = None
    bnb_loaded_cuda_tag: str | None = None
    bnb_cuda_not_loaded: bool = False
    torch_cuda_available: bool = False
    torch_cuda_build: bool = False
    bnb_kernel_missing: bool = False
    cuda_lib_shadowed: str | None = None
    shadowed_lib_major: str | None = None
    hf_feature: str | None = None
    wheel_tag_refused: str | None = None
    bnb_absent: bool = False
    libcuda_unregistered: bool = False
    serving_min_cc: str | None = None
    serving_cc: str | None = None
    torch_cuda_unavailable: bool = False
    cuda_requested: bool = False
    no_gpu_gate_of: str | None = None
    gpu_only_library: str | None = None
    bnb_index_versions: str | None = None
    bnb_required: str | None = None
    extension_nvcc: str | None = None
    extension_torch_cuda: str | None = None
    torch_dll: str | None = None
    ct2_cuda_major: str | None = None
    vc_runtime_missing: bool = False
    torch_wheel_lib_missing: str | None = None
    companion_torch: str | None = None
    companion_named: str | None = None
    companion_cuda: str | None = None
    torch_version_seen: str | None = None
    frozen_app: bool = False
    ptxas_unknown_arch: str | None = None
    triton_ops_missing: bool = False
    triton_driver_missing: bool = False
    signatures: tuple[str, ...] = ()  # the ids of the signatures that matched

    def range(self, package: str) -> SpecifierSet | None:
        """The range an error text proves for ``package`` (all its bounds together), or None."""
        # each bound once: two signatures may prove the same one ("<0.43.1" twice)
        bounds = dict.fromkeys(
            b.strip() for p, s in self.ranges if p == package for b in s.split(",") if b.strip()
        )
        return Range(",".join(bounds)) if bounds else None

    @property
    def empty(self) -> bool:
        return not self.signatures

    @property
    def shown(self) -> frozenset[str]:
        """The yes/no facts the text showed ("triton_ops_missing"), by their FACT_KEYS name."""
        return _shown(self)

    @property
    def wanted_cuda_major(self) -> int | None:
        """The CUDA major of a runtime library the loader could not open, or None."""
        m = self.cuda_lib_major
        return int(m) if m is not None and m.isdigit() else None

    @property
    def bnb_floor(self) -> Version | None:
        """The bitsandbytes floor a library's own check named in the text, or None."""
        try:
            return Version(self.bnb_required) if self.bnb_required else None
        except InvalidVersion:
            return None

    @property
    def wanted_cudnn_major(self) -> int | None:
        """The cuDNN major of a library the loader could not open, or None."""
        m = self.cudnn_major
        return int(m) if m is not None and m.isdigit() else None


_BOOL_KEYS = tuple(k for k, kind in FACT_KEYS.items() if kind is bool)


@lru_cache(maxsize=256)  # the planner asks for every release it judges (bnb_fits' conflicts)
def _shown(implied: Implied) -> frozenset[str]:
    return frozenset(k for k in _BOOL_KEYS if getattr(implied, k))


def _parse(data: dict[str, Any], origin: str) -> tuple[Signature, ...]:
    raw = data.get("signature")
    if not isinstance(raw, list) or not raw:
        raise KnowledgeError(f"{origin}: expected a list of [[signature]] tables")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        where = f"{origin}: signature '{entry.get('id', f'#{i}')}'"
        for key in ("id", "pattern", "implies", "sources", "checked"):
            if key not in entry:
                raise KnowledgeError(f"{where}: missing field '{key}'")
        if entry["id"] in seen:
            raise KnowledgeError(f"{where}: duplicate id")
        seen.add(entry["id"])
        try:
            pattern = re.compile(entry["pattern"], re.IGNORECASE | re.MULTILINE)
        except re.error as exc:
            raise KnowledgeError(f"{where}: pattern is not a valid regex ({exc})") from None
        implies = entry["implies"]
        if not isinstance(implies, dict) or not implies:
            raise KnowledgeError(f"{where}: 'implies' must be a non-empty table")
        for key, value in implies.items():
            _check_implication(where, key, value, pattern)
        sources = entry["sources"]
        if not isinstance(sources, list) or not sources:
            raise KnowledgeError(f"{where}: 'sources' must be a non-empty list")
        out.append(
            Signature(
                entry["id"],
                pattern,
                dict(implies),
                entry.get("advice"),
                tuple(sources),
                entry["checked"],
            )
        )
    return tuple(out)


def _check_implication(where: str, key: str, value: Any, pattern: re.Pattern[str]) -> None:
    if key in RANGE_KEYS:
        try:
            SpecifierSet(value)
        except (InvalidSpecifier, TypeError):
            raise KnowledgeError(f"{where}: {key} = {value!r} is not a version range") from None
        return
    kind = FACT_KEYS.get(key)
    if kind is None:
        raise KnowledgeError(f"{where}: unknown implication '{key}'")
    if kind is str and isinstance(value, str):
        for group in re.findall(r"\{(\w+)\}", value):
            if group not in pattern.groupindex:
                raise KnowledgeError(f"{where}: {key} names group '{group}' the pattern lacks")
        if key == "system" and value not in _SYSTEMS:
            raise KnowledgeError(f"{where}: system must be one of {', '.join(_SYSTEMS)}")
        if key == "hf_feature" and value not in HF_FEATURE_NAMES:
            raise KnowledgeError(
                f"{where}: hf_feature must be one of {', '.join(HF_FEATURE_NAMES)}"
            )
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KnowledgeError(f"{where}: {key} must be a {kind.__name__}")


@lru_cache(maxsize=8)
def _load(path: Path) -> tuple[Signature, ...]:
    return _parse(read_toml(path), f"plans/{path.name}")


def load_signatures(directory: Path | None = None) -> tuple[Signature, ...]:
    """The signatures of ``directory`` (default: the shipped plans/)."""
    return _load((directory or plans_directory()) / "signatures.toml")


def implied_by(text: str, signatures: tuple[Signature, ...] | None = None) -> Implied:
    """The constraints every matching signature puts on the facts; a later match never
    overrides an earlier one's fact (ranges add up)."""
    sigs = load_signatures() if signatures is None else signatures
    ranges: list[tuple[str, str]] = []
    facts: dict[str, Any] = {}
    ids = []
    for sig in sigs:
        m = sig.pattern.search(text)
        if m is None:
            continue
        ids.append(sig.id)
        for key, value in sig.implies.items():
            if key in RANGE_KEYS:
                ranges.append((key, value))
            elif key not in facts:
                groups = {k: v or "" for k, v in m.groupdict().items()}  # an unused alternative
                said = value.format(**groups) if isinstance(value, str) else value
                if said != "":  # an optional group the text left out states nothing
                    facts[key] = said
    return Implied(ranges=tuple(dict.fromkeys(ranges)), signatures=tuple(ids), **facts)


def advice_for(
    implied: Implied, signatures: tuple[Signature, ...] | None = None, implying: str | None = None
) -> str | None:
    """The manual advice of the first matched signature that has one (with ``implying``: of the
    first that implies that key, so a CUDA finding never takes a HIP error's advice)."""
    sigs = load_signatures() if signatures is None else signatures
    for sig in sigs:
        wanted = implying is None or implying in sig.implies
        if sig.id in implied.signatures and sig.advice and wanted:
            return sig.advice
    return None


def implied_to_dict(implied: Implied) -> dict[str, Any]:
    """The JSON form kept in ``Facts.extra["implied"]``."""
    out: dict[str, Any] = {"signatures": list(implied.signatures)}
    if implied.ranges:
        out["ranges"] = {p: str(implied.range(p)) for p, _ in implied.ranges}
    for key in FACT_KEYS:
        value = getattr(implied, key)
        if value not in (None, False):
            out[key] = value
    return out


def implied_property_lines(implied: Implied) -> tuple[str, ...]:
    """One line per property (not a range, not the host's system, not torch's version seen:
    ``implied_facts`` lists those where the facts lack them) that ``implied`` states, as
    `qfix explain` shows what a text proves ("libcuda_unregistered: yes (read from the error
    message)")."""
    out = []
    for key, value in implied_to_dict(implied).items():
        if key in ("signatures", "ranges", "system", "torch_version_seen"):
            continue  # (torch's version seen: implied_facts' torch line, where the facts lack it)
        shown = "yes" if value is True else str(value)
        words = _PROPERTY_WORDS.get(key)
        said = f"{words.format(value=value)}; " if words else ""
        out.append(f"{key}: {shown} ({said}read from the error message)")
    return tuple(out)


# What each property means, in the words `qfix explain` prints after its key (the key stays, as
# --json and --facts name it): a reader should not need this module to read "cuda_forked: yes".
_PROPERTY_WORDS: Mapping[str, str] = {
    "bnb_foreign_build": "the bitsandbytes library that loaded is another platform's file",
    "rocm": "an AMD host: a HIP/ROCm library or torch",
    "cuda_error": "CUDA runtime error {value}",
    "cuda_forked": "a forked process needed CUDA after its parent had initialised it",
    "driver_below_torch_cuda": "the driver cannot run torch's CUDA runtime",
    "libstdcxx": "the loader's libstdc++ lacks symbol version {value}",
    "cuda_lib": "the loader could not open CUDA's {value} library",
    "cuda_lib_major": "that library was built for CUDA {value}",
    "cudnn_major": "the loader could not open a cuDNN {value} library",
    "cuda_lib_bundled_by": "the copy the {value} wheel bundles",
    "cuda_lib_deleted": "that file was removed while a process still mapped it",
    "torch_cuda_tag": "the CUDA version bitsandbytes printed for torch",
    "loader_cuda_tag": "the CUDA library tag bitsandbytes' loader looked for",
    "bnb_loaded_cuda_tag": "the CUDA library tag bitsandbytes' loader detected and loaded",
    "bnb_cuda_not_loaded": "bitsandbytes did not load a CUDA library",
    "torch_cuda_available": "torch.cuda.is_available() was True in that process",
    "torch_cuda_build": "torch's own CUDA start ran there: torch is a CUDA build",
    "bnb_kernel_missing": "a bitsandbytes kernel had no code for the GPU it ran on",
    "cuda_lib_shadowed": "another copy of {value} came first on the loader path",
    "shadowed_lib_major": "that copy's file name carries major {value}",
    "hf_feature": "a Hugging Face feature with its own floors",
    "wheel_tag_refused": "pip refused a bitsandbytes wheel for this platform tag",
    # bnb-not-importable and hf-remote-code-missing-bnb (S95: also an import that failed)
    "bnb_absent": "bitsandbytes could not be imported there: not installed, or its own import "
    "failed",
    "libcuda_unregistered": "the driver's libcuda.so.1 is not in the loader cache",
    "serving_min_cc": "the serving engine's minimum compute capability for bitsandbytes",
    "serving_cc": "the GPU's compute capability as the engine printed it",
    "torch_cuda_unavailable": "torch.cuda.is_available() was False in that process",
    "cuda_requested": "the failing code asked torch for a CUDA device",
    "no_gpu_gate_of": "the library whose device check refused the quantization",
    "gpu_only_library": "a library that quantizes on a GPU only refused this machine",
    # triton-ops-missing proves no importer (S92): bitsandbytes 0.40.0-0.45.0 or older DeepSpeed
    "triton_ops_missing": "an import of triton.ops failed: the triton there has none (triton "
    "3.2 and later lack it)",
    "triton_driver_missing": "an import of triton.runtime's driver failed: the triton there is "
    "older than 2.1 (torch 2.0's triton 2.0.0 has none)",
    "bnb_index_versions": "the bitsandbytes releases pip's index offered this Python",
    "bnb_required": "a library of the failing process asks for bitsandbytes >= {value}",
    "torch_dll": "`import torch` failed to load torch\\lib\\{value}",
    "ct2_cuda_major": "CTranslate2 could not open its CUDA {value} cuBLAS",
    "vc_runtime_missing": "torch found Microsoft's Visual C++ runtime missing",
    "torch_wheel_lib_missing": "torch's preload found its {value} wheel on no sys.path entry",
    "companion_torch": "xFormers was built for torch {value}",
    "companion_named": "{value} is installed, and its compiled part does not load beside this "
    "torch",
    "companion_cuda": "the CUDA xFormers was built with, as xFormers writes it",
    "torch_version_seen": "the failing process's torch.__version__ was {value}",
    "frozen_app": "the program is a frozen (PyInstaller) executable: its packages are inside it",
    "ptxas_unknown_arch": "the ptxas that compiled a kernel does not know {value}",
    "extension_nvcc": "the CUDA toolkit that compiles extensions there is nvcc {value}",
    "extension_torch_cuda": "torch's CUDA as that extension builder read it: {value}",
}


def implied_from_facts(facts: Facts) -> Implied:
    """The constraints recorded in ``facts.extra["implied"]`` (by ``implied_facts``)."""
    raw = facts.extra.get("implied")
    if not isinstance(raw, Mapping):
        return Implied()
    ranges = []
    for pkg, spec in (raw.get("ranges") or {}).items():
        try:
            SpecifierSet(str(spec))
        except InvalidSpecifier:
            continue
        if pkg in RANGE_KEYS:
            ranges.append((pkg, str(spec)))
    kw: dict[str, Any] = {}
    for key, kind in FACT_KEYS.items():
        value = raw.get(key)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            kw[key] = value
    return Implied(
        ranges=tuple(ranges), signatures=tuple(str(s) for s in raw.get("signatures", ())), **kw
    )


# pip's report of an installed distribution whose requirement on torch the environment breaks
# (pip/_internal/commands/install.py, _warn_about_conflicts: "{name} {version} requires
# {requirement}, but {you} have {dep_name} {dep_version} which is incompatible.", "you'll" with
# the legacy resolver; `pip check`: "{name} {version} has requirement {requirement}, but you have
# {dep_name} {dep_version}."). The requirement is that distribution's pin on torch.
_PIP_TORCH_CONFLICT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*) \S+ (?:requires|has requirement) "
    r"(?P<req>torch\b[^\n]*?), but you(?:'ll)? have torch \S+",
    re.MULTILINE,
)


def torch_pins_in_text(text: str) -> dict[str, str]:
    """The requirements on torch that pip's conflict lines in ``text`` quote, by distribution
    ("lerobot" -> "torch<2.7,>=2.2.1"); torch's own family is left out (its pairing is
    torch-family-mismatch's)."""
    out: dict[str, str] = {}
    for m in _PIP_TORCH_CONFLICT.finditer(text):
        name = m.group("name").lower()
        if name not in ("torch", "torchvision", "torchaudio"):
            out.setdefault(name, m.group("req").strip())
    return out


def implied_facts(facts: Facts, text: str) -> tuple[Facts, list[str]]:
    """``facts`` with what ``text`` proves recorded (``extra["implied"]``; host.system and the
    ROCm mark where the report lacks them; torch's dependents that pip's conflict lines name,
    where the facts do not list them), and one line per constraint for the plan's ``unknown``
    list (what was read from the error message, not reported)."""
    implied = implied_by(text)
    pins = torch_pins_in_text(text)
    if implied.empty and not pins:
        return facts, []
    implied = _no_gpu_gate(facts, implied)
    extra = dict(facts.extra)
    if pins:
        # kept apart from the facts' own list (a probe reads every distribution's
        # Requires-Dist), which wins where both name one (repair.pins.torch_dependents)
        extra["torch_dependents_text"] = pins
    pin_lines = [
        f"{name} requires {req} (read from pip's message in the error text)"
        for name, req in pins.items()
    ]
    if implied.empty:
        return replace(facts, extra=extra), pin_lines
    extra["implied"] = implied_to_dict(implied)
    if implied.rocm:
        extra["rocm"] = True
    host = facts.host
    if implied.system is not None and (host is None or host.system is None):
        host = replace(host, system=implied.system) if host else Host(system=implied.system)
    lines = [
        f"{pkg} {spec} (read from the error message; the facts give no version)"
        for pkg, spec in (implied_to_dict(implied).get("ranges") or {}).items()
        if _reported_version(facts, pkg) is None
    ]
    if host is not facts.host:
        lines.append(f"host: {implied.system} (read from the error message)")
    torch = _torch_seen(facts, implied)
    if torch is not facts.torch:
        lines.append(
            f"torch {implied.torch_version_seen} (read from the error message: the failing "
            "process's torch.__version__)"
        )
    return replace(facts, host=host, torch=torch, extra=extra), lines + pin_lines


def _torch_seen(facts: Facts, implied: Implied) -> TorchBuild | None:
    """facts.torch with the version the text shows the failing process had (xFormers prints
    torch.__version__, S131), where the facts give none; as it was otherwise."""
    seen = implied.torch_version_seen
    if not seen or _reported_version(facts, "torch") is not None:
        return facts.torch
    try:
        Version(seen)
    except InvalidVersion:
        return facts.torch
    if facts.torch is None:
        # only the version is shown: its build says its label (+cu121, +cpu) where it has one
        return TorchBuild(version=seen, build_known=False, hip_stated=False)
    return replace(facts.torch, version=seen)


# "No GPU found. A GPU is needed for quantization." (signature hf-no-gpu-found) is the device
# check of transformers' bitsandbytes quantizers up to 4.44.2 (S100; 4.45.2 to 4.57.1 raise it
# only for EETQ, HQQ and VPTQ, S114) and of diffusers' at every release without CUDA or an Intel
# XPU, Apple's GPU accepted for 4-bit from 0.39.0 and never a CPU (S114): the bounds are
# knowledge.py's (TRANSFORMERS_REFUSING_WITHOUT_CUDA, DIFFUSERS_BEFORE_MPS).


def _no_gpu_gate(facts: Facts, implied: Implied) -> Implied:
    """What the "No GPU found" refusal proves, once it is known whose it is: a frame of the text
    names the library (no_gpu_gate_of); else the package list, where it shows one of
    transformers and diffusers installed at a version that raises it and not the other.
    transformers: a release below 4.45.0. diffusers: on a Mac a release below 0.39.0 (a 4-bit
    load; with 0.39.0 or later installed it was an 8-bit load or a torch without MPS, and no
    range is claimed); on another known system no release runs without a GPU
    (gpu_only_library)."""
    if "hf-no-gpu-found" not in implied.signatures:
        return implied
    system = (facts.host.system if facts.host else None) or implied.system
    gates = {
        "transformers": TRANSFORMERS_REFUSING_WITHOUT_CUDA,
        "diffusers": DIFFUSERS_BEFORE_MPS if system == "Darwin" else None,
    }

    def may_raise(name: str) -> bool:
        """No known version of ``name`` rules out that it raised the refusal."""
        text = _reported_version(facts, name)
        version = _loose(text) if text else None
        spec = gates[name]
        return version is None or spec is None or version in spec

    of = implied.no_gpu_gate_of
    if of is None:
        shown = [n for n in gates if listed_installed(facts, n) is True and may_raise(n)]
        of = shown[0] if len(shown) == 1 else None
    if of not in gates:
        return implied
    if of == "diffusers" and system is not None and system != "Darwin":
        return replace(implied, no_gpu_gate_of=of, gpu_only_library=of)
    spec = gates[of]
    if spec is None or not may_raise(of):
        return replace(implied, no_gpu_gate_of=of)
    ranges = tuple(dict.fromkeys((*implied.ranges, (of, str(spec)))))
    feature = implied.hf_feature or ("4bit-mps" if of == "diffusers" else None)
    return replace(implied, no_gpu_gate_of=of, ranges=ranges, hf_feature=feature)


def _loose(text: str) -> Version | None:
    """A reported version ("4.57.1", "0.39.0.dev0") without its local label, or None."""
    try:
        return Version(Version(text).public)
    except InvalidVersion:
        return None


def _reported_version(facts: Facts, package: str) -> str | None:
    if package == "bitsandbytes" and facts.bitsandbytes and facts.bitsandbytes.version:
        return facts.bitsandbytes.version
    if package == "torch" and facts.torch and facts.torch.version:
        return facts.torch.version
    return facts.package(package)
