"""The rules package: one rule per failure class, and every rule behaves on its own.

- every id of plans/failures.toml has exactly one rule, or is listed as signature-only;
  every rule and every ruled_out check names a class of the catalogue;
- each rule, run alone on its class's example (plans/examples/<example>, the facts only, no error
  message), yields its class and nothing else; on the healthy machine it yields nothing;
- diagnose is the loop over the rules: its findings are the rules' findings, in catalogue order.
"""

from __future__ import annotations

import pytest

from repair.catalogue import load_catalogue
from repair.diagnose import contradicted, diagnose
from repair.facts import facts_from_dict
from repair.findings import Finding, Severity, Unknown
from repair.knowledge import load_knowledge
from repair.rules import (
    EXCLUSIONS,
    RULES,
    SIGNATURE_ONLY,
    make_context,
    rule,
    ruled_out,
    suspect,
)
from repair.view import make_view
from tests.core_helpers import example_facts

CAT = load_catalogue()
KB = load_knowledge()
RULED = [c for c in CAT.classes if c.id not in SIGNATURE_ONLY]


def _context(example: str):
    facts = example_facts(example)
    return make_context(make_view(facts, KB), KB, CAT)


def test_every_class_has_one_rule_and_every_rule_a_class():
    assert set(RULES) | set(SIGNATURE_ONLY) == set(CAT.ids)
    assert not set(RULES) & set(SIGNATURE_ONLY), "a signature-only class has a rule"
    assert set(EXCLUSIONS) <= set(CAT.ids)


def test_signature_only_classes_are_explained_by_their_signatures():
    for fid in SIGNATURE_ONLY:
        assert CAT.get(fid).signatures, fid


def test_a_second_rule_for_a_class_is_refused():
    with pytest.raises(ValueError, match="two rules"):
        rule("bnb-no-4bit")(lambda ctx: ())
    with pytest.raises(ValueError, match="two ruled_out"):
        ruled_out("bnb-no-4bit")(lambda view, kb: False)
    with pytest.raises(ValueError, match="two suspects"):
        suspect("gpu-arch-unsupported", replaces="x", instead="y")(lambda ctx: ())


@pytest.mark.parametrize("cls", RULED, ids=lambda c: c.id)
def test_rule_fires_on_its_example(cls):
    items = list(RULES[cls.id](_context(cls.example)))
    found = [x for x in items if isinstance(x, Finding)]
    assert found, f"{cls.id}'s rule is quiet on {cls.example}"
    assert {f.id for f in found} == {cls.id}, "a rule yields only its own class"
    assert all(isinstance(f.severity, Severity) for f in found)


@pytest.mark.parametrize("cls", RULED, ids=lambda c: c.id)
def test_rule_is_quiet_on_the_healthy_machine(cls):
    assert list(RULES[cls.id](_context("healthy.json"))) == []


def test_diagnose_is_the_loop_over_the_rules():
    for cls in RULED:
        ctx = _context(cls.example)
        diag = diagnose(ctx.view, KB, CAT)
        by_rules: list[Finding] = []
        unknown: list[Unknown] = []
        for fid in CAT.ids:
            for x in RULES.get(fid, lambda ctx: ())(ctx):
                (unknown if isinstance(x, Unknown) else by_rules).append(x)
        unique = {(f.id, f.summary): f for f in reversed(by_rules)}
        assert diag.findings == tuple(f for f in by_rules if unique[(f.id, f.summary)] is f)
        assert diag.unknown == tuple(dict.fromkeys(unknown))
        order = [CAT.ids.index(f.id) for f in diag.findings]
        assert order == sorted(order)


def test_unknowns_are_typed_and_keyed():
    # an empty report: nothing is known, and each rule says which fact it missed
    empty = facts_from_dict({"schema": "qfix.facts/1"}, "empty")
    diag = diagnose(make_view(empty, KB), KB, CAT)
    assert all(isinstance(u, Unknown) for u in diag.unknown)
    assert [u.key for u in diag.unknown] == ["driver", "gpus", "torch", "bitsandbytes"]
    # the JSON keeps the texts
    assert [t.split(":")[0] for t in diag.unknown_texts] == [
        "driver",
        "GPUs",
        "torch",
        "bitsandbytes",
    ]


def test_a_full_probe_rules_out_what_no_rule_found_but_not_a_runtime_state():
    healthy = make_view(example_facts("healthy.json"), KB)
    assert healthy.packages_complete
    assert contradicted(healthy, KB, "bnb-no-4bit")
    # cuda-init-failed is a state of the running machine: a probe of files cannot exclude it
    assert not contradicted(healthy, KB, "cuda-init-failed")


# --------------------------------------------------------------------------- known-bad releases
# Computed from plans/bitsandbytes.toml: every known-bad release, by what makes it bad.


def _bnb_host(bnb: str, glibcxx: str | None = None, torch: str = "2.1.2") -> dict:
    from tests.core_helpers import example_doc

    doc = example_doc("healthy.json")["facts"]
    doc["packages"] = {**doc["packages"], "torch": f"{torch}+cu121", "bitsandbytes": bnb}
    doc["torch"] = {**doc["torch"], "version": f"{torch}+cu121", "cuda": "12.1"}
    doc["bitsandbytes"] = {"version": bnb, "copies": 1}
    doc["host"] = {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.27"}
    doc["host"]["os_release"] = "Ubuntu 18.04.6 LTS"
    if glibcxx is not None:
        doc["host"]["libstdcxx"] = {"path": "/usr/lib/libstdc++.so.6", "glibcxx": glibcxx}
    return doc


def _known_bad(kind: str) -> list:
    found = [r for r in KB.bnb.releases if r.known_bad_kind == kind]
    assert found, kind
    return found


def _torch_for(bad) -> str:
    """The oldest torch (a cu121 build for Linux x86_64) that ``bad`` declares it works with:
    2.1.2 where it admits that (0.48.0 and later ask for torch >= 2.3)."""
    if bad.torch is None or bad.torch.contains("2.1.2"):
        return "2.1.2"
    return next(
        str(t.latest)
        for t in KB.torch.releases
        if bad.torch.contains(t.latest)
        and any(v.name == "cu121" for v in t.variants_for("linux-x86_64"))
    )


def _version_id(r) -> str:
    return str(r.version)


def _just_below(v) -> str:
    major, minor, micro = v.release
    return f"{major}.{minor}.{micro - 1}"


def _bnb_step(plan):
    return next((s for s in plan.steps if s.package == "bitsandbytes"), None)


def _assert_fixed_by_a_good_release(plan, bad, glibcxx: str | None = None) -> None:
    from packaging.version import Version

    step = _bnb_step(plan)
    assert step is not None and step.from_ == str(bad.version), plan.steps
    good = KB.bnb.release(step.to)
    assert good is not None and not good.known_bad and good.version > bad.version
    need = good.builds["linux-x86_64"].glibcxx_min
    assert glibcxx is None or need is None or need <= Version(glibcxx)


@pytest.mark.parametrize("bad", _known_bad("libstdcxx"), ids=_version_id)
def test_a_libstdcxx_known_bad_build_below_its_floor_is_named_and_replaced(bad):
    from tests.core_helpers import analyse

    need = bad.builds["linux-x86_64"].glibcxx_min
    have = _just_below(need)  # 0.41.3.post1: 3.4.25 (Ubuntu 18.04's GCC 8), S37 floor 3.4.26
    diag, plan = analyse(facts_from_dict(_bnb_host(str(bad.version), have), "test"))
    f = next(x for x in diag.findings if x.id == "bnb-known-bad-release")
    assert f.summary.startswith(f"bitsandbytes {bad.version}: ") and f"GLIBCXX_{need}" in f.summary
    assert f.evidence["kind"] == "libstdcxx"
    assert "bnb-platform-unsupported" in diag.ids
    _assert_fixed_by_a_good_release(plan, bad, have)
    assert "bnb-known-bad-release" in _bnb_step(plan).because


@pytest.mark.parametrize("bad", _known_bad("libstdcxx"), ids=_version_id)
def test_a_libstdcxx_known_bad_build_is_quiet_where_the_libstdcxx_reaches_its_floor(bad):
    from tests.core_helpers import analyse

    need = str(bad.builds["linux-x86_64"].glibcxx_min)
    doc = _bnb_host(str(bad.version), need)
    diag, plan = analyse(facts_from_dict(doc, "test"))
    assert "bnb-known-bad-release" not in diag.ids and "bnb-platform-unsupported" not in diag.ids
    view = make_view(facts_from_dict(doc, "test"), KB)
    assert contradicted(view, KB, "bnb-known-bad-release")
    # unknown libstdc++ (Ubuntu 18.04's is UNCONFIRMED in plans/distros.toml): not ruled out
    diag, _ = analyse(facts_from_dict(_bnb_host(str(bad.version)), "test"))
    assert "bnb-known-bad-release" in diag.ids


@pytest.mark.parametrize(
    "bad",
    _known_bad("wrong-output") + _known_bad("crash") + _known_bad("8bit-only"),
    ids=_version_id,
)
def test_a_wrong_output_or_crash_known_bad_build_is_always_named_and_replaced(bad):
    from tests.core_helpers import analyse

    torch = _torch_for(bad)
    diag, plan = analyse(facts_from_dict(_bnb_host(str(bad.version), "3.4.30", torch), "test"))
    f = next(x for x in diag.findings if x.id == "bnb-known-bad-release")
    assert f.summary == f"bitsandbytes {bad.version}: {bad.known_bad}"
    assert f.evidence["kind"] == bad.known_bad_kind
    # a fault a 4-bit setup may never meet (8-bit only, a crash of UNCONFIRMED scope) warns
    warn = bad.known_bad_kind in ("8bit-only", "crash")
    assert f.severity.value == ("warning" if warn else "error")
    _assert_fixed_by_a_good_release(plan, bad, "3.4.30")


def test_the_planner_never_chooses_a_known_bad_build():
    from packaging.version import Version

    from repair.planner import bnb_fits

    view = make_view(facts_from_dict(_bnb_host("0.41.3.post1", "3.4.30"), "test"), KB)
    for r in KB.bnb.releases:
        why = bnb_fits(view, KB, r, Version("2.1.2"), Version("12.1"), False)
        assert bool(r.known_bad) == any(w.startswith("known bad: ") for w in why), r.version


@pytest.mark.parametrize(
    "name, vendor",
    [
        ("AMD Radeon RX 6600", "amd"),
        ("AMD Instinct MI300X", "amd"),
        ("Radeon RX 7900 XTX", "amd"),
        ("NVIDIA GeForce RTX 4090", "nvidia"),
        ("Tesla T4", "nvidia"),
        ("NVIDIA A100-SXM4-80GB", "nvidia"),
        (None, "nvidia"),
    ],
)
def test_a_gpu_without_vendor_is_read_by_its_name(name, vendor):
    f = facts_from_dict({"schema": "qfix.facts/1", "gpus": [{"index": 0, "name": name}]})
    (gpu,) = f.gpus
    assert gpu.vendor == vendor and gpu.amd == (vendor == "amd")
    view = make_view(f, KB)
    assert view.rocm == (vendor == "amd")
    # the NVIDIA GPUs only (a name in NVIDIA's table brings its compute capability, S106)
    kept = tuple((g.index, g.name, g.vendor) for g in view.gpus)
    assert kept == (() if vendor == "amd" else ((gpu.index, gpu.name, gpu.vendor),))
    ids = {
        x.id
        for x in RULES["no-nvidia-driver"](make_context(view, KB, CAT))
        if isinstance(x, Finding)
    }
    assert ids == set()  # an AMD GPU: not asked for; an NVIDIA one: present


def test_a_stated_vendor_wins_over_the_name():
    f = facts_from_dict(
        {"schema": "qfix.facts/1", "gpus": [{"index": 0, "name": "GPU 0", "vendor": "amd"}]}
    )
    assert f.gpus[0].amd and make_view(f, KB).rocm


@pytest.mark.parametrize(
    "have, spec, within",
    [
        (">=4.45.0,<4.50.0", ">=4.45.0,<5.0.0", True),
        (">4.45.0", ">=4.45.0", True),
        (">=4.45.0", ">4.45.0", False),
        (">0.37.0,<0.43.1", ">=0.38.0", False),  # 0.37.1 lies between
        ("<=0.43.0", "<0.43.0", False),
        ("<0.43.0", "<=0.43.0", True),
        (">=4.45.0", ">=4.45.0,<5.0.0", False),  # no upper bound proven
        ("==4.46.0", ">=4.45.0", False),  # not a range bound
        (">=1.0", "", True),
    ],
)
def test_an_error_texts_range_lies_within_a_when_range_only_when_every_version_does(
    have, spec, within
):
    from packaging.specifiers import SpecifierSet

    from repair.rules.hf import _range_within

    assert _range_within(SpecifierSet(have), SpecifierSet(spec)) is within
    assert _range_within(None, SpecifierSet(spec)) is False


def _unknown_torch_on(cc: str, **packages: str | None):
    from repair import pipeline
    from repair.facts import Facts, Gpu, Host

    facts = Facts(
        host=Host("Linux", "x86_64"),
        gpus=(Gpu(0, "GPU", cc),),
        packages={"torch": None, **packages},
    )
    return pipeline.analyse(facts)


def _first_release_with_sass(cc: str) -> str:
    from repair.view import arch_coverage, parse_version

    return min(
        (r.series, str(r.versions[0]))
        for r in KB.torch.releases
        for v in r.variants_for("linux-x86_64")
        if arch_coverage(v.arch_for("linux-x86_64") or (), parse_version(cc)) == "sass"
    )[1]


def test_an_unknown_torch_with_another_fault_says_from_which_release_a_new_gpu_runs():
    """torch's version unknown is a range (issue 12 item 1): where another class explains the
    failure (here bitsandbytes 0.38.0 has no 4-bit), a GPU whose SASS first appears in a later
    series is an open question: the plan says from which release on, computed from
    plans/torch.toml, and moves no torch for it; nothing for a GPU that every series carries."""
    a = _unknown_torch_on("12.0", bitsandbytes="0.38.0")
    assert "bnb-no-4bit" in a.diagnosis.ids and "gpu-arch-unsupported" not in a.diagnosis.ids
    said = [u for u in a.plan.unknown if u.startswith("torch's version: GPU")]
    assert len(said) == 1 and f"torch >= {_first_release_with_sass('12.0')} " in said[0]
    old = _unknown_torch_on("8.6", bitsandbytes="0.38.0")
    assert not [u for u in old.plan.unknown if u.startswith("torch's version: GPU")]


def test_an_unknown_torch_on_a_gpu_the_default_build_of_today_lacks_is_the_suspect():
    """Pascal (sm_61): every series of the knowledge base has a build for it, but the build
    ``pip install torch`` gets today on Linux (the newest release's PyPI default,
    plans/torch.toml) does not. With torch's version unknown and nothing else wrong, that is the
    likeliest cause, and the plan moves torch to a build whose arch list has sm_61."""
    from repair.view import arch_coverage, parse_version

    newest = max(KB.torch.releases, key=lambda r: r.series)
    default = newest.pypi_variant("linux-x86_64")
    assert default is not None and default.cuda is not None
    assert arch_coverage(default.arch_for("linux-x86_64") or (), parse_version("6.1")) is None
    a = _unknown_torch_on("6.1")
    [f] = [f for f in a.diagnosis.findings if f.id == "gpu-arch-unsupported"]
    assert f.evidence["suspected"] is True
    assert f.evidence["newest_default"] == f"{newest.latest}+{default.name}"
    assert a.plan.torch_arch_list is not None
    assert arch_coverage(a.plan.torch_arch_list, parse_version("6.1")) is not None
    # a GPU that build has: nothing to suspect
    assert "gpu-arch-unsupported" not in _unknown_torch_on("8.6").diagnosis.ids


def test_an_unknown_torch_on_a_gpu_only_newer_builds_carry_is_the_suspect_when_nothing_else_is():
    """With no other fault, such a GPU and a torch of unknown version is not "healthy": most
    releases of the range lack the GPU, so it is the likeliest cause, said as such (evidence
    ``suspected``), and the plan moves torch to a build whose arch list has it. A GPU that every
    series carries gets no suspicion, and a known torch never does."""
    a = _unknown_torch_on("12.0")
    [f] = [f for f in a.diagnosis.findings if f.id == "gpu-arch-unsupported"]
    assert f.evidence["suspected"] is True
    assert f.evidence["first_release"] == _first_release_with_sass("12.0")
    assert "likeliest cause" in f.summary
    assert not [u for u in a.plan.unknown if u.startswith("torch's version: GPU")]
    assert a.plan.torch_arch_list is not None and "sm_120" in a.plan.torch_arch_list
    assert not a.plan.healthy
    assert "gpu-arch-unsupported" not in _unknown_torch_on("8.6").diagnosis.ids
    known = _unknown_torch_on("12.0", bitsandbytes="0.45.0")
    assert "gpu-arch-unsupported" in known.diagnosis.ids
    from repair import pipeline
    from repair.facts import Facts, Gpu, Host

    fine = pipeline.analyse(
        Facts(
            host=Host("Linux", "x86_64"),
            gpus=(Gpu(0, "GPU", "12.0"),),
            packages={"torch": "2.7.0+cu128", "bitsandbytes": "0.46.0"},
        )
    )
    assert "gpu-arch-unsupported" not in fine.diagnosis.ids


def _bnb_unknown_on(system: str, machine: str, **packages: str | None):
    from repair import pipeline
    from repair.facts import Facts, Host

    facts = Facts(host=Host(system, machine), packages={"bitsandbytes": None, **packages})
    return pipeline.analyse(facts)


def _first_native(platform: str) -> str:
    return str(
        min(
            r.version
            for r in KB.bnb.releases
            if (b := r.builds.get(platform)) is not None and b.native
        )
    )


@pytest.mark.parametrize(
    ("system", "machine", "platform"),
    [("Windows", "AMD64", "windows-x86_64"), ("Darwin", "arm64", "macos-arm64")],
)
def test_an_unknown_bitsandbytes_on_a_platform_only_later_releases_build_for_is_the_suspect(
    system: str, machine: str, platform: str
) -> None:
    """bitsandbytes listed without a version, on a platform whose native builds start later than
    the knowledge base's first release, and nothing else wrong: bnb-platform-unsupported marked
    suspected, from which release on (plans/bitsandbytes.toml), and a bitsandbytes step to a
    release with a native build there."""
    a = _bnb_unknown_on(system, machine)
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert f.evidence["suspected"] is True
    assert f.evidence["first_release"] == _first_native(platform)
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    target = next(r for r in KB.bnb.releases if str(r.version) == step.to)
    assert target.builds[platform].native


def test_no_bitsandbytes_suspect_where_every_release_builds_or_something_else_is_wrong() -> None:
    assert "bnb-platform-unsupported" not in _bnb_unknown_on("Linux", "x86_64").diagnosis.ids
    known = _bnb_unknown_on("Windows", "AMD64", bitsandbytes="0.45.0", torch="2.5.1+cu121")
    assert "bnb-platform-unsupported" not in known.diagnosis.ids
    # another class explains the failure: bitsandbytes 0.38.0 would be known; here torch is a
    # CPU build on a host with an NVIDIA GPU
    from repair import pipeline
    from repair.facts import Facts, Gpu, Host, TorchBuild

    other = pipeline.analyse(
        Facts(
            host=Host("Windows", "AMD64"),
            gpus=(Gpu(0, "RTX 3090", "8.6"),),
            packages={"bitsandbytes": None, "torch": "2.5.1+cpu"},
            torch=TorchBuild("2.5.1+cpu", None, None),
        )
    )
    assert "torch-cpu-build" in other.diagnosis.ids
    assert not any(f.evidence.get("suspected") for f in other.diagnosis.findings)
    # not listed at all: no sign that bitsandbytes is installed (cannot tell, not a suspect)
    from repair.facts import Facts as F

    unlisted = pipeline.analyse(F(host=Host("Windows", "AMD64"), packages={}))
    assert unlisted.plan.cannot_tell and not unlisted.diagnosis.findings


# --------------------------------------------------------------------------- before 4-bit
# bitsandbytes 0.32.0-0.38.1 have no 4-bit; 0.32.0-0.36.0.post2 are read from their wheels (S75).


def _pre_4bit_host(bnb: str) -> dict:
    """A T4 (compute capability 7.5) on Linux x86_64 with torch 2.0.1+cu118 and ``bnb``."""
    doc = _bnb_host(bnb, "3.4.30", "2.0.1")
    doc["packages"]["torch"] = doc["torch"]["version"] = "2.0.1+cu118"
    doc["torch"]["cuda"] = "11.8"
    doc["gpus"] = [{"index": 0, "name": "Tesla T4", "compute_capability": "7.5"}]
    return doc


def test_bnb_0_35_0_with_a_cu118_torch_lacks_4bit_not_its_cuda118_library():
    from packaging.version import Version

    from tests.core_helpers import analyse

    # the 0.35.0 wheel carries libbitsandbytes_cuda118.so (S75): no missing library to report
    assert KB.bnb.release("0.35.0").lib_for_cuda(Version("11.8"), "linux-x86_64") == "cuda118"
    diag, plan = analyse(facts_from_dict(_pre_4bit_host("0.35.0"), "test"))
    assert "bnb-no-4bit" in diag.ids
    assert "bnb-no-cuda-lib" not in diag.ids and "bnb-known-bad-release" not in diag.ids
    step = _bnb_step(plan)
    assert step is not None and step.from_ == "0.35.0"
    target = KB.bnb.release(step.to)
    assert target is not None and target.has_4bit and not target.known_bad
    assert target.version >= Version("0.39.0")


def test_bnb_0_36_0_without_full_libraries_is_named_known_bad():
    from tests.core_helpers import analyse

    diag, plan = analyse(facts_from_dict(_pre_4bit_host("0.36.0"), "test"))
    f = next(x for x in diag.findings if x.id == "bnb-known-bad-release")
    assert f.evidence["kind"] == "missing-lib" and "fixed by 0.36.0.post2" in f.summary
    assert "bnb-no-4bit" in diag.ids
    assert KB.bnb.release(_bnb_step(plan).to).has_4bit
    # 0.36.0.post2 has the library: no known-bad finding, only the missing 4-bit
    diag, _ = analyse(facts_from_dict(_pre_4bit_host("0.36.0.post2"), "test"))
    assert "bnb-known-bad-release" not in diag.ids and "bnb-no-4bit" in diag.ids


def test_the_planner_never_chooses_a_release_before_4bit():
    from packaging.version import Version

    from repair.planner import bnb_fits

    view = make_view(facts_from_dict(_pre_4bit_host("0.35.0"), "test"), KB)
    old = [r for r in KB.bnb.releases if r.version < Version("0.39.0")]
    assert old[0].version == Version("0.32.0") and len(old) > 11
    for r in old:
        assert "no 4-bit" in bnb_fits(view, KB, r, Version("2.0.1"), Version("11.8"), False)


def test_bnb_0_35_0_below_its_libstdcxx_floor_is_named():
    from tests.core_helpers import analyse

    doc = _pre_4bit_host("0.35.0")
    doc["host"]["libstdcxx"]["glibcxx"] = "3.4.19"  # CentOS 7's GCC 4.8.5; S75 floor 3.4.21
    diag, _ = analyse(facts_from_dict(doc, "test"))
    f = next(x for x in diag.findings if x.id == "bnb-platform-unsupported")
    assert "GLIBCXX_3.4.21" in f.summary and "bnb-no-4bit" in diag.ids


@pytest.mark.parametrize(
    ("torch", "cuda", "wrong"),
    [("2.4.1+cu121", "12.1", "a CUDA 12.1 build"), ("2.4.1+cpu", None, "a CPU-only build")],
)
def test_a_cuda_or_cpu_torch_on_an_amd_host_is_an_error_with_its_rocm_builds(
    torch: str, cuda: str | None, wrong: str
) -> None:
    """An installer's CUDA (or CPU) torch on an AMD host cannot use the GPU: rocm-host as an
    error (not the class's note). With the GPU's target unknown (a name that does not tell it),
    no build is known to fit: the manual step names the ROCm builds of that release
    (plans/torch.toml)."""
    from repair import pipeline
    from repair.facts import Facts, Gpu, Host, TorchBuild

    a = pipeline.analyse(
        Facts(
            host=Host("Linux", "x86_64"),
            gpus=(Gpu(0, "AMD Radeon Graphics", None, vendor="amd"),),
            packages={"torch": torch, "bitsandbytes": "0.49.0"},
            torch=TorchBuild(torch, cuda, None),
        )
    )
    [f] = [f for f in a.diagnosis.findings if f.id == "rocm-host"]
    assert f.severity == Severity.ERROR and f.evidence["torch_build"] == wrong
    rocm = [v.name for v in KB.torch.release("2.4.1").variants_for("linux-x86_64") if v.rocm]
    [step] = [m for m in a.plan.manual if m.id == "rocm-host"]
    assert step.required and all(name in step.text for name in rocm)
    assert f"--index-url https://download.pytorch.org/whl/{rocm[-1]}" in step.text
    # the local label is pinned: `torch==2.4.1` alone is satisfied by the installed CUDA build
    assert f"torch==2.4.1+{rocm[-1]}" in step.text
    assert not a.plan.healthy and a.plan.torch_target is None


def test_a_rocm_torch_on_an_amd_host_keeps_the_note() -> None:
    from repair import pipeline
    from repair.facts import Facts, Gpu, Host, TorchBuild

    a = pipeline.analyse(
        Facts(
            host=Host("Linux", "x86_64"),
            gpus=(Gpu(0, "AMD Radeon RX 7900 XTX", None, vendor="amd"),),
            packages={"torch": "2.4.1+rocm6.1", "bitsandbytes": "0.49.0"},
            torch=TorchBuild("2.4.1+rocm6.1", None, "6.1"),
        )
    )
    [f] = [f for f in a.diagnosis.findings if f.id == "rocm-host"]
    assert f.severity == Severity.WARNING
    assert not any("replace torch" in m.text for m in a.plan.manual)


def _plan_of(doc: dict):
    from repair import pipeline

    return pipeline.analyse(facts_from_dict({"schema": "qfix.facts/1", **doc}, "test"))


def test_a_suspect_is_a_warning_one_at_most_and_its_question_stays_listed() -> None:
    """Windows, an RTX 5090, torch and bitsandbytes both without versions: two suspects could
    fire; only the first in catalogue order does (a second "likeliest cause" would contradict
    it), as a warning, and what is not known stays under "Could not know"."""
    a = _plan_of(
        {
            "host": {"system": "Windows", "machine": "AMD64"},
            "gpus": [{"index": 0, "name": "RTX 5090", "compute_capability": "12.0"}],
            "packages": {"torch": None, "bitsandbytes": None},
        }
    )
    suspected = [f for f in a.diagnosis.findings if f.evidence.get("suspected")]
    assert [f.id for f in suspected] == ["gpu-arch-unsupported"]
    assert suspected[0].severity == Severity.WARNING
    assert any(u.startswith("torch's version and build (not reported)") for u in a.plan.unknown)


@pytest.mark.parametrize(
    "doc",
    [
        # bitsandbytes' Windows DLLs are known: a native build is there, whatever its version
        {
            "host": {"system": "Windows", "machine": "AMD64"},
            "packages": {"torch": "2.5.1+cu121", "bitsandbytes": None},
            "torch": {"version": "2.5.1+cu121", "cuda": "12.1"},
            "bitsandbytes": {"native_libs": ["libbitsandbytes_cuda121.dll"]},
        },
        # torch's arch list is known and has the GPU, whatever its version
        {
            "host": {"system": "Linux", "machine": "x86_64"},
            "gpus": [{"index": 0, "name": "Tesla P100", "compute_capability": "6.0"}],
            "packages": {"torch": None, "bitsandbytes": "0.45.0"},
            "torch": {"arch_list": ["sm_50", "sm_60", "sm_70", "sm_80"]},
        },
        # a proven fault (a warning class) explains the failure
        {
            "host": {"system": "Linux", "machine": "x86_64"},
            "gpus": [
                {"index": 0, "name": "RTX 5090", "compute_capability": "12.0"},
                {"index": 1, "name": "GTX 1080", "compute_capability": "6.1"},
            ],
            "packages": {"torch": None, "bitsandbytes": "0.45.0"},
        },
        # nothing about the environment at all: cannot tell
        {"gpus": [{"index": 0, "name": "RTX 5090", "compute_capability": "12.0"}]},
    ],
    ids=["bnb-dlls-known", "torch-arch-known", "proven-warning", "too-thin"],
)
def test_no_suspect_where_the_facts_settle_it_or_say_nothing(doc: dict) -> None:
    a = _plan_of(doc)
    assert not [f for f in a.diagnosis.findings if f.evidence.get("suspected")]


def test_an_amd_igpu_beside_an_nvidia_gpu_is_an_nvidia_host() -> None:
    """A Ryzen laptop: "AMD Radeon Graphics" beside an RTX 4090 with a CUDA torch is planned as
    an NVIDIA host, not left alone as ROCm."""
    a = _plan_of(
        {
            "host": {"system": "Linux", "machine": "x86_64"},
            "driver": {"found": True, "version": "550.54.14", "cuda": "12.4"},
            "gpus": [
                {"index": 0, "name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"},
                {"index": 1, "name": "AMD Radeon Graphics", "vendor": "amd"},
            ],
            "packages": {"torch": "2.3.1+cu121", "bitsandbytes": "0.45.0"},
            "torch": {"version": "2.3.1+cu121", "cuda": "12.1"},
        }
    )
    assert "rocm-host" not in a.diagnosis.ids and a.plan.healthy


def _triton_host(bnb: str, torch: str, system: str = "Linux", machine: str = "x86_64"):
    return _plan_of(
        {
            "host": {"system": system, "machine": machine},
            "driver": {"found": True, "version": "550.54.14", "cuda": "12.4"},
            "gpus": [{"index": 0, "name": "RTX 3090", "compute_capability": "8.6"}],
            "python": {"version": "3.11.7"},
            "packages": {"torch": torch, "bitsandbytes": bnb},
            "torch": {"version": torch, "cuda": None if "cpu" in torch else "12.4"},
        }
    )


def test_bitsandbytes_that_imports_triton_ops_beside_torch_2_6_is_a_mismatch() -> None:
    """0.40.0-0.45.0 import triton.ops (S83), which the triton that torch >= 2.6 installs on Linux
    x86_64 no longer has (S84): a mismatch the declared bounds do not show; the plan moves
    bitsandbytes to a release outside the conflict and never pairs one inside it."""
    from packaging.version import Version

    a = _triton_host("0.43.3", "2.6.0+cu124")
    [f] = [f for f in a.diagnosis.findings if f.id == "bnb-torch-mismatch"]
    assert "triton.ops" in f.summary and f.evidence["conflict"] == ">=0.40.0,<0.45.1"
    [step] = [s for s in a.plan.steps if s.package == "bitsandbytes"]
    assert Version(step.to) >= Version("0.45.1")
    for fine in (_triton_host("0.45.1", "2.6.0+cu124"), _triton_host("0.43.3", "2.5.1+cu121")):
        assert "bnb-torch-mismatch" not in fine.diagnosis.ids
    windows = _triton_host("0.43.3", "2.6.0+cu124", "Windows", "AMD64")
    assert not any("triton.ops" in f.summary for f in windows.diagnosis.findings)
    # a CPU build requires no triton (S84): it imports (docs/repairs.md, bnb-0.43 on 2.13+cpu)
    cpu = _triton_host("0.43.3", "2.6.0+cpu")
    assert not any("triton.ops" in f.summary for f in cpu.diagnosis.findings)


UNSLOTH = "NotImplementedError: Unsloth currently only works on NVIDIA GPUs and Intel GPUs."
CU121 = ("2.5.1+cu121", "12.1", None)


def _a10g(**changes):
    """An A10G host whose driver (550) runs torch 2.5.1+cu121, as ``Facts`` keyword arguments."""
    from repair.facts import Driver, Gpu, Host

    return {
        "host": Host("Linux", "x86_64"),
        "driver": Driver(True, "550.54.15", "12.4", "nvml"),
        "gpus": (Gpu(0, "NVIDIA A10G", "8.6"),),
        "packages": {"torch": "2.5.1+cu121", "bitsandbytes": "0.45.5"},
        **changes,
    }


def test_a_cuda_torch_that_sees_no_gpu_is_cuda_init_failed():
    """The deep probe's torch.cuda.is_available() False, or Unsloth's device check, beside a CUDA
    torch, a listed NVIDIA GPU and a driver that runs torch's CUDA: no package is at fault."""
    from repair.facts import Driver, Facts, TorchBuild
    from repair.pipeline import analyse

    blind = TorchBuild(*CU121, cuda_available=False)
    a = analyse(Facts(**_a10g(torch=blind)))
    assert a.diagnosis.ids == ("cuda-init-failed",) and not a.plan.steps
    [step] = [m for m in a.plan.manual if m.id == "cuda-init-failed"]
    assert step.required and "--gpus all" in step.text and "CUDA_VISIBLE_DEVICES" in step.text
    text = analyse(Facts(**_a10g(torch=TorchBuild(*CU121))), error_text=UNSLOTH)
    assert "cuda-init-failed" in text.diagnosis.ids and "torch-cpu-build" not in text.diagnosis.ids
    # a driver too old for torch's CUDA explains it: that class, not this one
    old = Facts(**_a10g(driver=Driver(True, "470.82.01", "11.4", "nvml"), torch=blind))
    assert "cuda-init-failed" not in analyse(old).diagnosis.ids


def test_cuda_init_failed_from_facts_yields_to_what_the_facts_name():
    """The deep probe's answer beats a text from another process; no driver loaded is its own
    class; a CUDA_VISIBLE_DEVICES that hides every GPU is named, with its own step."""
    from repair.facts import Driver, Facts, TorchBuild
    from repair.pipeline import analyse

    sees = Facts(**_a10g(torch=TorchBuild(*CU121, cuda_available=True)))
    assert "cuda-init-failed" not in analyse(sees, error_text=UNSLOTH).diagnosis.ids
    blind = TorchBuild(*CU121, cuda_available=False)
    no_driver = Facts(**_a10g(driver=Driver(False, None, None, None), torch=blind))
    assert "cuda-init-failed" not in analyse(no_driver).diagnosis.ids
    a = analyse(Facts(**_a10g(torch=blind, env={"CUDA_VISIBLE_DEVICES": ""})))
    [f] = [f for f in a.diagnosis.findings if f.id == "cuda-init-failed"]
    assert "CUDA_VISIBLE_DEVICES=''" in f.summary
    [m] = [m for m in a.plan.manual if m.id == "cuda-init-failed"]
    assert m.required and "unset CUDA_VISIBLE_DEVICES" in m.text


def test_cuda_init_failed_names_mig_mode_with_its_own_step():
    """S94: in MIG mode CUDA sees MIG instances, not the GPU: where every listed GPU is in it,
    the finding says so and the step creates instances or leaves MIG mode; one GPU outside MIG
    mode leaves the general step."""
    from repair.facts import Facts, Gpu, TorchBuild
    from repair.pipeline import analyse

    blind = TorchBuild(*CU121, cuda_available=False)
    mig = Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", mig=True)
    a = analyse(Facts(**_a10g(torch=blind, gpus=(mig,))))
    [f] = [f for f in a.diagnosis.findings if f.id == "cuda-init-failed"]
    assert "MIG mode" in f.summary and f.evidence["mig_gpus"] == [0]
    [m] = [m for m in a.plan.manual if m.id == "cuda-init-failed"]
    assert m.required and "nvidia-smi mig -cgi" in m.text and "-i 0 -mig 0" in m.text
    plain = Gpu(1, "NVIDIA A100-SXM4-80GB", "8.0", mig=False)
    mixed = analyse(Facts(**_a10g(torch=blind, gpus=(mig, plain))))
    [m] = [m for m in mixed.plan.manual if m.id == "cuda-init-failed"]
    assert "MIG" not in m.text and "--gpus all" in m.text
    both = analyse(Facts(**_a10g(torch=blind, gpus=(mig, Gpu(1, "NVIDIA A100", "8.0", mig=True)))))
    [f] = [f for f in both.diagnosis.findings if f.id == "cuda-init-failed"]
    assert "GPUs 0, 1 are in MIG mode" in f.summary and "may have been created" in f.summary
    [m] = [m for m in both.plan.manual if m.id == "cuda-init-failed"]
    assert m.text.startswith("GPUs 0,1 are in MIG mode") and "-i 0,1 -mig 0" in m.text


def test_torch_dlls_that_cannot_load_on_windows_ask_for_the_vc_runtime_not_a_reinstall():
    """S98: torch's Windows loader raises WinError 126 for a torch\\lib DLL whose dependency is
    missing, most often Microsoft's Visual C++ runtime: a required manual step, no torch step.
    A torch broken in another way (a partial install) is still reinstalled."""
    import json

    from repair.facts import facts_from_dict
    from repair.knowledge import plans_directory
    from repair.pipeline import analyse

    doc = json.loads((plans_directory() / "examples" / "torch-dll-windows.json").read_text())
    a = analyse(facts_from_dict(doc["facts"]))
    assert "torch-dll-load-failed" in a.diagnosis.ids
    assert not [s for s in a.plan.steps if s.package == "torch"]
    [m] = [m for m in a.plan.manual if m.id == "torch-dll-load-failed"]
    assert m.required and "vc_redist.x64.exe" in m.text
    # said plainly: the runtime is Windows' own; torch 2.4.0's own fbgemm fault (fixed in
    # 2.4.1, S121) is a known-bad build, planned as a torch step (test_planner_rules)
    assert "part of Windows that reinstalling torch does not install" in m.text
    assert "UNCONFIRMED" not in m.text
    from repair.catalogue import load_catalogue

    cls = load_catalogue().get("torch-dll-load-failed")
    assert "2.4.1 fixed it (S121" in cls.remedy and "UNCONFIRMED" not in cls.remedy
    assert "does not bring it" not in cls.explanation
    doc["facts"]["torch"]["error"] = "torch/version.py is missing (broken or partial torch install)"
    b = analyse(facts_from_dict(doc["facts"]))
    assert "torch-dll-load-failed" not in b.diagnosis.ids
    assert [s for s in b.plan.steps if s.package == "torch"]


_GTX_1080_TI = {"name": "NVIDIA GeForce GTX 1080 Ti", "compute_capability": "6.1"}
_T4 = {"name": "Tesla T4", "compute_capability": "7.5"}


@pytest.mark.parametrize(
    ("gpus", "text", "found"),
    [
        ([_GTX_1080_TI], None, "error"),
        ([_T4], None, None),
        (None, None, "warning"),  # GPUs not reported: the fault cannot be ruled in or out
        # GPUs on both sides of 7.5: the loader reads the last in CUDA's order, not the facts'
        ([_GTX_1080_TI, _T4], None, "warning"),
        # the text shows the NameError happened, whatever GPUs the facts list
        ([_T4], "NameError: name 'cuda_setup' is not defined", "error"),
    ],
)
def test_the_old_gpu_nameerror_of_0_37_0_is_named_where_the_gpu_is_below_7_5(gpus, text, found):
    """S110: bitsandbytes 0.36.0.post2 and 0.37.0 raise NameError 'cuda_setup' at import on a
    GPU below compute capability 7.5; fixed in 0.37.1, and never planned."""
    from repair import pipeline
    from tests.core_helpers import INDEX

    doc = _pre_4bit_host("0.37.0")
    if gpus is None:
        doc.pop("gpus")
    else:
        doc["gpus"] = [{"index": i, **g} for i, g in enumerate(gpus)]
    a = pipeline.analyse(facts_from_dict(doc, "test"), torch_index=INDEX, error_text=text)
    bad = [f for f in a.diagnosis.findings if f.id == "bnb-known-bad-release"]
    assert [f.severity for f in bad] == ([found] if found else [])
    for f in bad:
        assert f.evidence["kind"] == "old-gpu-crash" and f.evidence["bitsandbytes"] == "0.37.0"
        assert "NameError: name 'cuda_setup'" in f.summary
    assert all(
        not KB.bnb.release(s.to).known_bad for s in a.plan.steps if s.package == "bitsandbytes"
    )
