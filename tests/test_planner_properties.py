"""Property tests of the planner's invariants over generated facts (hypothesis).

Whatever the machine: never a torch build the driver cannot run, never one missing a GPU's arch,
and the chosen bitsandbytes always has a library for the chosen CUDA and admits the chosen torch.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from repair import pipeline
from repair.facts import Bitsandbytes, Driver, Facts, Gpu, Host, PythonInfo, TorchBuild
from repair.knowledge import load_knowledge
from repair.view import arch_coverage, driver_fit, make_view, pick_cuda_lib, public
from tests.core_helpers import INDEX, analyse

KB = load_knowledge()
DRIVERS = [
    "450.80.02",
    "470.182.03",
    "515.43.04",
    "520.61.05",
    "525.60.13",
    "535.104.05",
    "550.54.14",
    "560.35.03",
    "570.133.07",
    "575.51.03",
    "580.65.06",
    "590.44.01",
]
CCS = ["5.0", "5.2", "6.0", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]
HOSTS = [("Linux", "x86_64"), ("Windows", "AMD64"), ("Linux", "aarch64")]
TORCH_BUILDS = [None] + [
    f"{r.latest}+{v.name}"
    for r in KB.torch.releases
    for v in r.variants
    if v.cuda is not None or v.name == "cpu"
]
BNBS = [None] + [str(r.version) for r in KB.bnb.releases]


@st.composite
def facts(draw) -> Facts:
    system, machine = draw(st.sampled_from(HOSTS))
    drv = draw(st.sampled_from(DRIVERS))
    gpus = draw(st.lists(st.sampled_from(CCS), min_size=1, max_size=2))
    py = draw(st.sampled_from(["3.8.18", "3.9.19", "3.10.14", "3.11.7", "3.12.4", "3.13.1"]))
    torch = draw(st.sampled_from(TORCH_BUILDS))
    bnb = draw(st.sampled_from(BNBS))
    tv = Version(torch) if torch else None
    cuda = None
    if tv is not None and tv.local and tv.local.startswith("cu"):
        tag = tv.local[2:]
        cuda = f"{tag[:-1]}.{tag[-1]}"
    return Facts(
        host=Host(system, machine, "glibc 2.35" if system == "Linux" else None, False),
        driver=Driver(True, drv, None, "nvml"),
        gpus=tuple(Gpu(i, f"gpu{i}", cc) for i, cc in enumerate(gpus)),
        python=PythonInfo("/v/bin/python", py, True, False, False),
        packages={k: v for k, v in (("torch", torch), ("bitsandbytes", bnb)) if v},
        torch=TorchBuild(torch, cuda, None) if torch else None,
        bitsandbytes=Bitsandbytes(bnb, None, 1) if bnb else None,
        env={},
        extra={"packages_source": "probe"},
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts())
def test_plan_invariants(f: Facts) -> None:
    diag, plan = analyse(f)  # never raises
    _check_invariants(f, diag, plan, make_view(f, KB))


def _check_invariants(f: Facts, diag, plan, view) -> None:
    ids = set(diag.ids)
    for s in plan.steps:  # every step names the findings that require it (qfix.plan/1)
        assert s.because and set(s.because) <= ids, (s, ids)
    if plan.torch_variant is not None and view.has_nvidia_gpu is not False:
        assert plan.torch_variant != "cpu"  # a CPU build never repairs a GPU problem
    torch_step = next((s for s in plan.steps if s.package == "torch"), None)
    final_torch = Version(torch_step.to) if torch_step else view.torch
    final_cuda = view.torch_cuda
    if torch_step is not None:
        rel = KB.torch.release(final_torch)
        var = rel.variant(plan.torch_variant)
        assert var is not None and view.platform in var.platforms
        final_cuda = var.cuda
        if var.cuda is not None:
            fit = driver_fit(view, KB, var.cuda)
            assert fit.ok is not False, (plan.torch_target, f.driver)
            arch = var.arch_for(view.platform)
            if arch is None:  # only when nothing proven exists, and the plan says so
                assert any("arch list" in u for u in plan.unknown), plan.unknown
            for cc in view.ccs if arch is not None else ():
                cov = arch_coverage(arch, cc)
                assert cov is not None, (plan.torch_target, cc)
                assert not (cov == "ptx" and fit.mode == "minor-compat")
        assert (
            view.python is None or Version(f"{view.python.major}.{view.python.minor}") in rel.python
        )
    bnb_step = next((s for s in plan.steps if s.package == "bitsandbytes"), None)
    if bnb_step is not None:
        r = KB.bnb.release(bnb_step.to)
        assert r is not None and r.has_4bit and not r.known_bad
        if final_torch is not None:
            assert r.admits_torch(public(final_torch)), (bnb_step.to, final_torch)
        build = r.builds[view.platform]
        if final_cuda is not None:
            assert pick_cuda_lib(build.cuda_libs, final_cuda, r.loader) is not None, (
                bnb_step.to,
                final_cuda,
            )


# Error texts whose signatures (plans/signatures.toml) constrain the facts: the partial reports
# below carry one of them, or none.
ERROR_TEXTS = [
    None,
    "RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version",
    "CUDA SETUP: Setup Failed!",
    "RuntimeError: CUDA failed with error forward compatibility was attempted on non supported HW",
    "TypeError: __init__() got an unexpected keyword argument 'load_in_4bit'",
    "RuntimeError: CUDA unknown error - this may be due to an incorrectly set up environment",
    "OSError: D:\\env\\lib\\site-packages\\bitsandbytes\\libbitsandbytes_cuda118.so",
    "OSError: libcublasLt.so.11: cannot open shared object file: No such file or directory",
    "FileNotFoundError: Could not find module 'C:\\env\\cudart64_12.dll'",
    "CUDA SETUP: PyTorch settings found: CUDA_VERSION=130, Highest Compute Capability: 8.6.",
    "Could not find the bitsandbytes CUDA binary at PosixPath('/b/libbitsandbytes_cuda128.so')",
    "CUDA SETUP: Required library version not found: libbitsandbytes_cuda116.so.",
]
CUDAS = [None, "11.8", "12.1", "12.4", "12.8", "13.0"]
# GPUs a report gives by name only: names of NVIDIA's table (plans/gpus.toml), confirmed rows
# (the view takes their compute capability) and unconfirmed ones (it does not)
NAMED = (
    sorted({r.name for r in KB.gpus.rows if r.confirmed})[::7]
    + [r.name for r in KB.gpus.rows if not r.confirmed][::5]
)


@st.composite
def partial_facts(draw) -> Facts:
    """A report, not a probe: versions may be missing (a range, not a reason to stay silent)."""
    system, machine = draw(st.sampled_from(HOSTS))
    drv = draw(st.sampled_from([None, *DRIVERS]))
    drv_cuda = draw(st.sampled_from([None, "11.4", "12.2", "12.8", "13.0"])) if not drv else None
    gpus = draw(
        st.lists(
            st.one_of(
                st.tuples(st.none(), st.sampled_from(CCS)),
                st.tuples(st.sampled_from(NAMED), st.none()),
            ),
            min_size=0,
            max_size=2,
        )
    )
    py = draw(st.sampled_from([None, "3.9", "3.10", "3.12"]))
    torch_cuda = draw(st.sampled_from(CUDAS))
    torch_listed = draw(st.booleans())
    text = draw(st.sampled_from(ERROR_TEXTS))
    packages: dict[str, str | None] = {"bitsandbytes": None}
    if torch_listed:
        packages["torch"] = None
    extra = {"reported_error": text} if text else {}
    return Facts(
        host=Host(system, machine, None, None),
        driver=Driver(True, drv, drv_cuda, "report"),
        gpus=tuple(Gpu(i, name, cc) for i, (name, cc) in enumerate(gpus)) or None,
        python=PythonInfo(None, py) if py else None,
        packages=packages,
        # a CPU-only torch (cuda null) or a CUDA one, its version not given
        torch=TorchBuild(None, torch_cuda, None) if torch_listed else None,
        env={},
        extra=extra,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partial_facts())
def test_plan_invariants_with_unknown_versions(f: Facts) -> None:
    """With versions unknown and error texts that bound them, no plan chooses a torch build the
    driver (as far as the facts and the message tell) cannot run or that lacks a GPU's arch."""
    a = pipeline.analyse(f, torch_index=INDEX)  # never raises
    _check_invariants(f, a.diagnosis, a.plan, a.view)
    # a GPU given by name only has the compute capability NVIDIA's table lists (confirmed rows),
    # and the plan says it was inferred
    for g, seen in zip(f.gpus or (), a.view.gpus or (), strict=True):
        if g.compute_capability is None:
            row = KB.gpus.lookup(g.name)
            want = str(row.cc) if row is not None and row.confirmed else None
            assert seen.compute_capability == want, (g.name, seen)
            if want is not None:
                assert any(g.name in u and "S106" in u for u in a.plan.unknown), a.plan.unknown
    if a.view.implied.driver_below_torch_cuda and a.view.torch_cuda is not None:
        assert a.plan.torch_variant is None or not a.plan.torch_variant.startswith(
            f"cu{a.view.torch_cuda.major}{a.view.torch_cuda.minor}"
        )


AMD_NAMES = [None, "AMD Radeon Graphics"] + [t.name for t in KB.bnb.gpu_targets]
AMD_GFX = [None] + sorted({t.gfx for t in KB.bnb.gpu_targets})
AMD_TORCH = [None] + [
    f"{r.latest}+{v.name}" for r in KB.torch.releases for v in r.variants if v.kind != "xpu"
]


@st.composite
def amd_facts(draw) -> Facts:
    """An AMD host: the GPU by name, by the target ROCm's torch reports, or unknown; any torch
    build (an installer's CUDA or CPU one, or a ROCm one) and bitsandbytes release."""
    gpus = draw(
        st.lists(st.tuples(st.sampled_from(AMD_NAMES), st.sampled_from(AMD_GFX)), max_size=2)
    )
    torch = draw(st.sampled_from(AMD_TORCH))
    bnb = draw(st.sampled_from(BNBS))
    py = draw(st.sampled_from([None, "3.10.14", "3.11.7", "3.12.4", "3.13.1"]))
    tv = Version(torch) if torch else None
    local = (tv.local or "") if tv else ""
    cuda = f"{local[2:-1]}.{local[-1]}" if local.startswith("cu") else None
    hip = f"{local[4:]}.0" if local.startswith("rocm") else None
    return Facts(
        host=Host("Linux", "x86_64", "glibc 2.35", False),
        driver=Driver(False, None, None, None),
        gpus=tuple(
            Gpu(i, name or "AMD Radeon", None, vendor="amd", gfx=gfx)
            for i, (name, gfx) in enumerate(gpus)
        )
        or (Gpu(0, "AMD Radeon Graphics", None, vendor="amd"),),
        python=PythonInfo("/v/bin/python", py, True, False, False) if py else None,
        packages={k: v for k, v in (("torch", torch), ("bitsandbytes", bnb)) if v},
        torch=TorchBuild(torch, cuda, hip) if torch else None,
        bitsandbytes=Bitsandbytes(bnb, None, 1) if bnb else None,
        env={},
        extra={"packages_source": "probe"},
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amd_facts())
def test_amd_plan_invariants(f: Facts) -> None:
    """On an AMD host no plan installs a CUDA or CPU torch, nor a ROCm build not known to be
    compiled for every listed GPU's target; a bitsandbytes step ships a library for the final
    torch's ROCm, built for those targets where the knowledge base lists them."""
    from repair.knowledge import lib_rocm
    from repair.planner import amd_gfx

    a = pipeline.analyse(f, torch_index=INDEX)  # never raises
    view, plan = a.view, a.plan
    gfx = set(amd_gfx(view, KB))
    torch_step = next((s for s in plan.steps if s.package == "torch"), None)
    rocm = None
    if torch_step is not None:
        var = KB.torch.release(Version(torch_step.to)).variant(plan.torch_variant)
        assert var is not None and var.rocm is not None and var.gfx is not None
        assert gfx and gfx <= set(var.gfx), (torch_step.to, gfx)
        rocm = Version(var.rocm)
    elif view.torch_hip:
        rocm = Version(view.torch_hip)
    bnb_step = next((s for s in plan.steps if s.package == "bitsandbytes"), None)
    if bnb_step is not None and rocm is not None:
        r = KB.bnb.release(bnb_step.to)
        lib = r.lib_for_rocm(Version(f"{rocm.major}.{rocm.minor}"), "linux-x86_64")
        assert lib is not None and not r.known_bad, (bnb_step.to, rocm)
        final = Version(torch_step.to) if torch_step is not None else view.torch
        if final is not None:
            assert r.admits_torch(public(final)), (bnb_step.to, final)
        targets = KB.bnb.lib_targets(r.version, "linux-x86_64", lib_rocm(lib))
        assert targets is None or gfx <= set(targets)


MAC_HOSTS = [("Darwin", "arm64", "macos-arm64"), ("Darwin", "x86_64", "macos-x86_64")]
CPU_TORCH = [None] + [str(r.latest) for r in KB.torch.releases]
CPU_TEXTS = [
    None,
    "The installed version of bitsandbytes was compiled without GPU support.",
    "RuntimeError: No GPU found. A GPU is needed for quantization.",
]


@st.composite
def mac_facts(draw) -> Facts:
    """A Mac (no NVIDIA driver, no GPU): any torch release (its CPU build), bitsandbytes release
    and transformers, with or without a loader's or transformers' error text."""
    system, machine, _ = draw(st.sampled_from(MAC_HOSTS))
    torch = draw(st.sampled_from(CPU_TORCH))
    bnb = draw(st.sampled_from(BNBS))
    tf = draw(st.sampled_from([None, "4.40.0", "4.46.3", "4.53.0"]))
    py = draw(st.sampled_from([None, "3.9.19", "3.11.7", "3.12.4"]))
    packages = {k: v for k, v in (("torch", torch), ("bitsandbytes", bnb), ("transformers", tf))}
    return Facts(
        host=Host(system, machine, None, False),
        driver=Driver(False, None, None, None),
        gpus=(),
        python=PythonInfo("/v/bin/python", py, True, False, False) if py else None,
        packages={k: v for k, v in packages.items() if v},
        torch=TorchBuild(torch, None, None) if torch else None,
        bitsandbytes=Bitsandbytes(bnb, None, 1) if bnb else None,
        env={},
        extra={"packages_source": "probe", "error": draw(st.sampled_from(CPU_TEXTS))},
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mac_facts())
def test_mac_plan_invariants(f: Facts) -> None:
    """On a Mac a torch-family step pins a version the PyTorch CPU index has there: no local
    label (its macOS wheels carry none, S109), a release with a build for that Mac; a
    bitsandbytes step has a native build for it and admits the final torch."""
    a = pipeline.analyse(f, torch_index=INDEX, error_text=f.extra.get("error"))  # never raises
    platform = a.view.platform
    assert platform in ("macos-arm64", "macos-x86_64")
    final = a.view.torch
    for step in a.plan.steps:
        if step.package in ("torch", "torchvision", "torchaudio"):
            assert Version(step.to).local is None, step.to
        if step.package == "torch":
            rel = KB.torch.release(step.to)
            assert rel is not None and rel.variants_for(platform), (step.to, platform)
            final = Version(step.to)
    bnb_step = next((s for s in a.plan.steps if s.package == "bitsandbytes"), None)
    if bnb_step is not None:
        r = KB.bnb.release(bnb_step.to)
        build = r.builds.get(platform) if r is not None else None
        assert build is not None and build.native, (bnb_step.to, platform)
        if final is not None:
            assert r.admits_torch(public(final)), (bnb_step.to, final)
