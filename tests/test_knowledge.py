"""The knowledge base (plans/*.toml) loads, says what the facts say, and rejects broken files.

- spot checks table-driven from ../shared/facts/compat-facts.md (A1, A2, A3, B1-B3, C1-C6, D);
- every bitsandbytes release of the wheel survey bnb-wheels.tsv appears with the same libraries,
  and plans/bitsandbytes.toml is exactly what tools/gen_bnb_toml.py makes of that file;
- the torchvision/torchaudio pairings agree with their own torch pins;
- a broken copy of the plans (bad TOML, wrong type, bad version, missing source, ...) raises
  KnowledgeError naming the file and the entry;
- UNCONFIRMED facts keep their mark and a note.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

from repair.catalogue import load_catalogue
from repair.errors import KnowledgeError
from repair.knowledge import (
    PLATFORMS,
    Cited,
    DriverVersion,
    Knowledge,
    cited_keys,
    cited_keys_in_code,
    glibc_of_tag,
    lib_cuda,
    load_knowledge,
    load_sources,
    parsed_version,
    plans_directory,
    platform_key,
    read_toml,
    runs_on,
)

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "plans"
FACTS = ROOT.parent / "shared" / "facts"  # the shared facts beside the checkout
TSV = FACTS / "bnb-wheels.tsv"
# 0.32.0-0.36.0.post2, surveyed the same way by tools/survey_bnb_wheels.py (S75), in the tree
OLD_TSV = ROOT / "tools" / "data" / "bnb-wheels-0.32-0.36.tsv"
# The dates plans/ was read: the survey of 2026-11-29 and the re-read of 2026-12-06
# (tools/check_knowledge.py, docs/knowledge.md).
CHECK_DATES = ("2026-11-29", "2026-12-06", "2026-12-07")
KB = load_knowledge()
V = Version


def test_default_directory_is_the_checkout_plans():
    assert plans_directory().resolve() == PLANS.resolve()
    assert KB.directory == PLANS.resolve()


def test_cached_per_directory(tmp_path: Path):
    assert load_knowledge() is KB
    assert load_knowledge(PLANS) is KB
    copy = tmp_path / "plans"
    shutil.copytree(PLANS, copy)
    other = load_knowledge(copy)
    assert other is not KB and other.directory == copy.resolve()
    assert len(other.bnb.releases) == len(KB.bnb.releases)


# --------------------------------------------------------------------------- platform keys


@pytest.mark.parametrize(
    ("system", "machine", "key"),
    [
        ("Linux", "x86_64", "linux-x86_64"),
        ("Linux", "aarch64", "linux-aarch64"),
        ("Linux", "arm64", "linux-aarch64"),
        ("Windows", "AMD64", "windows-x86_64"),
        ("Windows", "ARM64", "windows-arm64"),
        ("Darwin", "arm64", "macos-arm64"),
        ("Darwin", "x86_64", "macos-x86_64"),
        ("Linux", "ppc64le", None),
        ("FreeBSD", "amd64", None),
        ("Linux", None, None),
        (None, "x86_64", None),
    ],
)
def test_platform_key(system, machine, key):
    assert platform_key(system, machine) == key
    assert key is None or key in PLATFORMS


# --------------------------------------------------------------------------- drivers (A)


@pytest.mark.parametrize(
    ("cuda", "system", "minimum"),
    [
        ("12.2", "Linux", "535.54.03"),
        ("12.2", "Windows", "536.25"),
        ("11.8", "Linux", "520.61.05"),
        ("11.8", "Windows", "520.06"),
        ("12.1", "Linux", "530.30.02"),
        ("12.4", "Linux", "550.54.14"),
        ("12.6", "Linux", "560.28.03"),
        ("12.8", "Linux", "570.26"),
        ("12.8", "Windows", "570.65"),
        ("12.9", "Linux", "575.51.03"),
        ("13.0", "Linux", "580.65.06"),
        ("13.2", "Linux", "595.45.04"),
        ("11.0", "Linux", "450.51.05"),  # the GA row, not 11.0.1 RC
        ("11.5", "Windows", "496.04"),
        ("10.2", "Linux", "440.33"),
        ("13.0", "Windows", None),  # N/A from 13.0 on
        ("13.5", "Linux", None),  # UNCONFIRMED, no number
        ("9.2", "Linux", None),  # not in the table
    ],
)
def test_toolkit_min(cuda, system, minimum):
    got = KB.drivers.toolkit_min(V(cuda), system)
    assert got == (None if minimum is None else V(minimum))
    if minimum is not None:
        assert str(got) == minimum  # printed as NVIDIA writes it, "535.54.03"


@pytest.mark.parametrize(
    ("major", "system", "minimum"),
    [
        (11, "Linux", "450.80.02"),
        (11, "Windows", "452.39"),
        (12, "Linux", "525.60.13"),
        (12, "Windows", "528.33"),
        (13, "Linux", "580"),
        (10, "Linux", None),
    ],
)
def test_minor_compat_min(major, system, minimum):
    got = KB.drivers.minor_compat_min(major, system)
    assert got == (None if minimum is None else V(minimum))


def test_cuda13_windows_minor_compat_is_marked_unconfirmed():
    mc = KB.drivers.minor_compat[13]
    assert mc.confirmed and not mc.is_confirmed("windows") and mc.is_confirmed("linux")
    assert mc.note and "UNCONFIRMED" in mc.note


def test_13_4_minimum_is_unconfirmed():
    row = KB.drivers.toolkit_row(V("13.4"))
    assert row is not None and not row.confirmed and "R616" in (row.note or "")
    assert KB.drivers.toolkit_min(V("13.4"), "Linux") == V("616.00")


@pytest.mark.parametrize(
    ("driver", "system", "newest"),
    [
        ("535.104.05", "Linux", "12.2"),
        ("520.61.05", "Linux", "11.8"),
        ("520.61.04", "Linux", "11.7"),
        ("525.60.13", "Linux", "12.0"),
        ("580.65.06", "Linux", "13.0"),
        ("620.00", "Linux", "13.3"),  # 13.4's 616.00 is unconfirmed: not counted
        ("576.02", "Windows", "12.9"),
        ("440.33", "Linux", "10.2"),
        ("400.00", "Linux", None),
    ],
)
def test_newest_cuda_for_driver(driver, system, newest):
    got = KB.drivers.newest_cuda_for_driver(V(driver), system)
    assert got == (None if newest is None else V(newest))


@pytest.mark.parametrize(
    ("cuda", "driver", "system", "how"),
    [
        ("12.2", "535.104.05", "Linux", "toolkit"),
        ("12.8", "535.104.05", "Linux", "minor"),
        ("12.4", "520.61.05", "Linux", "no"),  # F15: cu124 torch on driver 520
        ("11.8", "520.56.06", "Linux", "minor"),
        ("13.0", "575.51.03", "Linux", "no"),
        ("13.0", "590.00", "Windows", "minor"),
        ("9.2", "400.00", "Linux", "unknown"),
    ],
)
def test_compat(cuda, driver, system, how):
    assert KB.drivers.compat(V(cuda), V(driver), system) == how


def test_every_a1_row_of_the_facts_is_in_drivers_toml():
    """Each number of compat-facts.md table A1 is in plans/drivers.toml for that CUDA X.Y."""
    md = FACTS / "compat-facts.md"
    if not md.is_file():
        pytest.skip(f"{md} not present")
    text = md.read_text()
    table = text[text.index("### A1.") : text.index("### A2.")]
    rows = [line for line in table.splitlines() if re.match(r"^\| \d+\.\d", line)]
    assert len(rows) >= 45
    seen = 0
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        cuda = re.match(r"(\d+\.\d+)", cells[0]).group(1)
        mine = [r for r in KB.drivers.toolkit if r.cuda == V(cuda)]
        assert mine, f"CUDA {cuda} missing"
        for col, system in ((1, "Linux"), (2, "Windows")):
            for number in re.findall(r">=(\d+(?:\.\d+)+)", cells[col]):
                got = {str(r.minimum(system)) for r in mine}
                assert number in got, f"A1 {cells[0]} {system} {number} not in {got}"
                seen += 1
            if cells[col] in ("N/A", "UNCONFIRMED"):
                assert all(r.minimum(system) is None for r in mine if r.label == cells[0])
    assert seen >= 90


def test_arch_removed_and_branches():
    removed = KB.drivers.arch_removed
    assert removed[11] == ("sm_30", "sm_32")
    assert removed[12] == ("sm_35", "sm_37")
    assert {"sm_50", "sm_61", "sm_70"} <= set(removed[13]) and "sm_75" not in removed[13]
    assert KB.drivers.last_branch_for(V("3.7")) == 470
    assert KB.drivers.last_branch_for(V("6.1")) == 580
    assert KB.drivers.last_branch_for(V("7.0")) == 580
    assert KB.drivers.last_branch_for(V("7.5")) is None


def test_ptx_caveat_has_text_and_source():
    caveat = KB.drivers.minor_compat_caveat
    assert "limited feature-set" in caveat and "cudaErrorUnsupportedPtxVersion" in caveat
    assert "S4" in caveat and "S6" in caveat


def test_driver_version_prints_like_nvidia():
    v = DriverVersion("450.80.02")
    assert str(v) == "450.80.02" and v == V("450.80.2") and v < V("450.80.10")
    assert hash(v) == hash(V("450.80.02"))


# --------------------------------------------------------------------------- torch (B)


def test_torch_series_and_versions_from_pypi():
    assert [str(r.series) for r in KB.torch.releases] == [
        "1.10", "1.11", "1.12", "1.13", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7",
        "2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14", "2.15",
    ]  # fmt: skip
    latest = {str(r.series): str(r.latest) for r in KB.torch.releases}
    assert latest["1.12"] == "1.12.1" and latest["2.1"] == "2.1.2" and latest["2.14"] == "2.14.1"
    assert latest["2.15"] == "2.15.0" and latest["1.10"] == "1.10.2" and latest["1.11"] == "1.11.0"
    assert KB.torch.release("2.2").versions == (V("2.2.0"), V("2.2.1"), V("2.2.2"))


@pytest.mark.parametrize(
    ("version", "series"),
    [
        ("2.1.0+cu121", "2.1"),
        ("1.13.1+cu117", "1.13"),
        ("2.5.0a0+872d972e41.nv24.08", "2.5"),
        ("2.10.0", "2.10"),
        ("2.7", "2.7"),
        (V("2.13.0+cpu"), "2.13"),
        ("1.11.0", "1.11"),
        ("1.10.0+cu113", "1.10"),
        ("1.9.1", None),
        ("3.0.0", None),
        ("not a version", None),
    ],
)
def test_release_lookup(version, series):
    r = KB.torch.release(version)
    assert (None if r is None else str(r.series)) == series


@pytest.mark.parametrize(
    ("series", "python_ok", "python_bad"),
    [
        ("1.10", ["3.6", "3.9"], ["3.11"]),
        ("1.11", ["3.7", "3.10"], ["3.6", "3.11"]),
        ("1.12", ["3.7", "3.10"], ["3.11"]),
        ("2.5", ["3.9", "3.13"], ["3.8", "3.14"]),
        ("2.9", ["3.10", "3.14"], ["3.9"]),
        ("2.15", ["3.11", "3.15"], ["3.10"]),
    ],
)
def test_torch_python(series, python_ok, python_bad):
    r = KB.torch.release(series)
    assert all(r.admits_python(V(p)) for p in python_ok)
    assert not any(r.admits_python(V(p)) for p in python_bad)


@pytest.mark.parametrize(
    ("series", "platform", "default"),
    [
        ("1.10", "linux-x86_64", "cu102"),  # torch/version.py of the PyPI wheels
        ("1.11", "linux-x86_64", "cu102"),
        ("1.11", "linux-aarch64", "cpu"),
        ("1.12", "linux-x86_64", "cu102"),
        ("2.0", "linux-x86_64", "cu117"),
        ("2.4", "linux-x86_64", "cu121"),
        ("2.6", "linux-x86_64", "cu124"),
        ("2.7", "linux-x86_64", "cu126"),
        ("2.10", "linux-x86_64", "cu128"),
        ("2.11", "linux-x86_64", "cu130"),
        ("2.15", "linux-x86_64", "cu132"),
        ("2.10", "linux-aarch64", "cpu"),
        ("2.11", "linux-aarch64", "cu130"),
        ("2.15", "windows-x86_64", "cpu"),
        ("2.2", "macos-x86_64", "cpu"),
        ("2.3", "macos-x86_64", None),  # x86_64 macOS wheels end at 2.2
        ("2.3", "macos-arm64", "cpu"),
    ],
)
def test_pypi_default(series, platform, default):
    r = KB.torch.release(series)
    assert r.pypi_default.get(platform) == default
    var = r.pypi_variant(platform)
    assert (None if var is None else var.name) == default


@pytest.mark.parametrize(
    ("series", "linux_cuda"),
    [
        ("1.10", ["cu102", "cu111", "cu113"]),
        ("1.11", ["cu102", "cu113", "cu115"]),
        ("1.12", ["cu102", "cu113", "cu116"]),
        ("2.0", ["cu117", "cu118"]),
        ("2.4", ["cu118", "cu121", "cu124"]),
        ("2.7", ["cu118", "cu126", "cu128"]),
        ("2.8", ["cu126", "cu128", "cu129"]),
        ("2.11", ["cu126", "cu128", "cu130"]),
        ("2.12", ["cu126", "cu130", "cu132"]),
        ("2.14", ["cu126", "cu130", "cu132", "cu134"]),
    ],
)
def test_cuda_variants(series, linux_cuda):
    r = KB.torch.release(series)
    got = [v.name for v in r.variants_for("linux-x86_64") if v.kind == "cuda"]
    assert got == linux_cuda
    for v in r.variants:
        if v.kind == "cuda":
            assert v.name == f"cu{v.cuda.major}{v.cuda.minor}"
            assert v.index_url == f"https://download.pytorch.org/whl/{v.name}"


def test_cu102_was_never_built_for_windows():
    assert "cu102" not in [v.name for v in KB.torch.release("1.12").variants_for("windows-x86_64")]
    for series in ("1.10", "1.11"):  # before 1.12 a Windows cu102 wheel is only UNCONFIRMED
        cu102 = KB.torch.release(series).variant("cu102")
        assert cu102.available_on("windows-x86_64")
        assert not cu102.available_on("windows-x86_64", confirmed_only=True)
        assert cu102.available_on("linux-x86_64", confirmed_only=True)


def test_torch_1_1x_variants_without_a_pip_command_stay_unconfirmed():
    # pytorch.org's previous-versions page (S56) gives pip commands for cu111/cu102 (1.10) and
    # cu113/cu102 (1.11); cu113 (1.10), cu115 and rocm4.3.1 (1.11) rest on the builder scripts
    unconfirmed = {
        s: {v.name for v in KB.torch.release(s).variants if not v.confirmed}
        for s in ("1.10", "1.11")
    }
    assert unconfirmed == {"1.10": {"cu113"}, "1.11": {"cu115", "rocm4.3.1"}}
    assert KB.torch.release("1.11").variant("cu113").sass()[-1] == V("8.6")
    assert KB.torch.release("1.10").variant("cu102").sass() == (
        V("3.7"),
        V("5.0"),
        V("6.0"),
        V("7.0"),
    )


def test_2_7_cu128_drops_pascal():
    r = KB.torch.release("2.7")
    cu128, cu126 = r.variant("cu128"), r.variant("cu126")
    assert "sm_61" not in cu128.arch_list and "sm_60" not in cu128.arch_list
    assert "sm_120" in cu128.arch_list
    assert not cu128.arch_confirmed  # conda measurement only; PTX UNCONFIRMED
    assert cu126.arch_measured and "sm_60" in cu126.arch_list
    assert cu126.sass()[0] == V("5.0") and cu126.ptx() == ()


def test_volta_in_cu128_only_2_8_to_2_10():
    def has_volta(series: str) -> bool:
        return "sm_70" in KB.torch.release(series).variant("cu128").arch_list

    assert [has_volta(s) for s in ("2.7", "2.8", "2.9", "2.10", "2.11")] == [
        False, True, True, True, False,
    ]  # fmt: skip


def test_aarch64_arch_lists():
    cu130 = KB.torch.release("2.11").variant("cu130")
    assert cu130.arch_for("linux-aarch64") == ("sm_80", "sm_90", "sm_100", "sm_110", "sm_120")
    assert "sm_75" in cu130.arch_for("linux-x86_64")
    assert KB.torch.release("2.9").variant("cu128").arch_for("linux-aarch64") is None  # unknown


def test_windows_arch_lists_before_2_9_are_unconfirmed():
    cu121 = KB.torch.release("2.3").variant("cu121")
    assert cu121.arch_confirmed_for("linux-x86_64")
    assert not cu121.arch_confirmed_for("windows-x86_64")
    assert KB.torch.release("2.9").variant("cu128").arch_confirmed_for("windows-x86_64")


def test_cu129_has_ptx():
    cu129 = KB.torch.release("2.8").variant("cu129")
    assert cu129.ptx() == (V("12.0"),) and V("12.0") in cu129.sass()


_GFX = re.compile(r"^gfx[0-9a-f]{3,4}\Z")


def test_rocm_gfx_lists_are_well_formed_and_cited():
    """Every ROCm variant's GPU target list (where known) holds LLVM processor names and cites a
    source key of plans/sources.toml; only ROCm variants have one."""
    sources = load_sources()
    known = 0
    for release in KB.torch.releases:
        for variant in release.variants:
            if variant.gfx is None:
                continue
            known += 1
            assert variant.rocm is not None, (release.series, variant.name)
            assert variant.gfx and all(_GFX.match(g) for g in variant.gfx), variant.gfx
            assert len(set(variant.gfx)) == len(variant.gfx), variant.gfx
            keys = cited_keys(variant.gfx_source or "")
            assert keys and all(sources.get(k) is not None for k in keys), variant.gfx_source
    assert known >= 19


def test_rocm_gfx_as_read_from_the_release_branches():
    """S93: pytorch/builder manywheel/build_docker.sh at each release branch."""
    five = ("gfx900", "gfx906", "gfx908", "gfx90a", "gfx1030")
    assert KB.torch.release("1.11").variant("rocm4.5.2").gfx == five
    assert KB.torch.release("2.0").variant("rocm5.4.2").gfx == five
    assert KB.torch.release("2.1").variant("rocm5.6").gfx == (*five, "gfx1100")
    # release/2.3 adds gfx942 from ROCm 6.0 only
    assert "gfx942" not in (KB.torch.release("2.3").variant("rocm5.7").gfx or ())
    assert KB.torch.release("2.3").variant("rocm6.0").gfx == (*five, "gfx1100", "gfx942")
    assert KB.torch.release("2.4").variant("rocm6.1").gfx_source == "S93 at release/2.4 4ce1afeb"
    # not read: 1.10 (the script sets no list)
    assert KB.torch.release("1.10").variant("rocm4.2").gfx is None


def test_rocm_gfx_as_the_2_5_and_later_wheels_report_it():
    """S101: torch.cuda.get_arch_list() of 2.5.1+rocm6.2 and 2.7.1+rocm6.2.4 / +rocm6.3. The RX
    9070 XT (gfx1201) and RX 7800 XT (gfx1101) have no kernels in 2.5, both have them in 2.7;
    series whose wheels were not read stay unknown (S102 dates are no evidence)."""
    seven = ("gfx900", "gfx906", "gfx908", "gfx90a", "gfx1030", "gfx1100", "gfx942")
    assert KB.torch.release("2.5").variant("rocm6.2").gfx == seven
    for name in ("rocm6.2.4", "rocm6.3"):
        gfx = KB.torch.release("2.7").variant(name).gfx or ()
        assert {"gfx1101", "gfx1102", "gfx1200", "gfx1201"} <= set(gfx) and len(gfx) == 11
        assert "gfx950" not in gfx
    assert KB.torch.release("2.5").variant("rocm6.1").gfx is None
    assert KB.torch.release("2.6").variant("rocm6.2.4").gfx is None
    assert KB.torch.release("2.8").variant("rocm6.4").gfx is None


def test_glibc_floor():
    assert KB.torch.release("2.6").glibc_min == V("2.5")  # manylinux1 tag
    assert KB.torch.release("2.6").glibc_build == V("2.28")
    assert not KB.torch.release("2.6").is_confirmed("glibc_build")
    assert KB.torch.release("2.7").glibc_min == V("2.28")
    assert KB.torch.release("2.5").glibc_for("linux-aarch64") == V("2.17")
    assert KB.torch.release("2.12").macos_min("macos-arm64") == V("14.0")


@pytest.mark.parametrize(
    ("series", "torchvision", "torchaudio"),
    [
        ("1.10", "0.11.3", "0.10.2"),
        ("1.11", "0.12.0", "0.11.0"),
        ("1.12", "0.13.1", "0.12.1"),
        ("2.0", "0.15.2", "2.0.2"),
        ("2.7", "0.22.1", "2.7.1"),
        ("2.11", "0.26.0", "2.11.0"),
        ("2.12", "0.27.1", "2.11.0"),  # S15 release_versions.sh
        ("2.14", "0.29.1", "2.11.1"),
    ],
)
def test_family(series, torchvision, torchaudio):
    r = KB.torch.release(series)
    assert (r.torchvision, r.torchaudio) == (V(torchvision), V(torchaudio))


def test_family_of_older_patch():
    fam = KB.torch.release("2.0").family_for(V("2.0.0+cu118"))
    assert fam is not None and (fam.torchvision, fam.torchaudio) == (V("0.15.1"), V("2.0.1"))


def test_family_agrees_with_domain_pins():
    """Every pairing in torch.toml is admitted by the domain library's own torch pin (PyPI)."""
    checked = 0
    for r in KB.torch.releases:
        for torch_v, fam in r.family.items():
            for package, v in (("torchvision", fam.torchvision), ("torchaudio", fam.torchaudio)):
                if v is None:
                    continue
                admits = KB.torch.domain_admits(package, v, torch_v)
                assert admits is True, f"{package} {v} does not declare torch {torch_v}"
                checked += 1
    assert checked > 60


def test_domain_pins():
    assert KB.torch.domain_admits("torchvision", "0.29.1", V("2.15.0")) is True
    assert KB.torch.domain_admits("torchvision", "0.29.0", V("2.14.1")) is False
    assert KB.torch.domain_admits("torchaudio", "2.0.2", V("2.0.0")) is False
    assert KB.torch.domain_admits("torchvision", "0.99.0", V("2.0.0")) is None


def test_unconfirmed_torch_facts_keep_their_mark():
    r215 = KB.torch.release("2.15")
    assert {"variants", "torchvision", "torchaudio"} <= set(r215.unconfirmed)
    assert not r215.variant("cu130").confirmed
    cu132 = r215.variant("cu132")
    assert r215.pypi_default["linux-x86_64"] == "cu132" and not cu132.is_confirmed("index")
    assert not cu132.fully_confirmed and KB.torch.release("2.14").variant("cu130").fully_confirmed
    assert cu132.available_on("linux-x86_64", confirmed_only=True)
    assert cu132.available_on("windows-x86_64")
    assert not cu132.available_on("windows-x86_64", confirmed_only=True)
    assert not KB.torch.release("2.14").variant("cu134").confirmed
    assert not KB.torch.release("2.13").is_confirmed("torchaudio")
    xpu = KB.torch.release("2.7").variant("xpu")
    assert xpu is not None and not xpu.confirmed


# --------------------------------------------------------------------------- bitsandbytes (C)


@pytest.mark.parametrize(
    ("bnb", "cuda", "platform", "lib"),
    [
        ("0.50.2", "12.9", "linux-x86_64", "cuda128"),  # same-major fallback (below)
        ("0.50.2", "12.8", "linux-x86_64", "cuda128"),
        ("0.50.2", "12.2", "linux-x86_64", "cuda121"),
        ("0.50.2", "13.1", "linux-x86_64", "cuda130"),
        ("0.50.2", "13.4", "linux-x86_64", "cuda132"),
        ("0.50.2", "11.7", "linux-x86_64", "cuda118"),  # lowest of the same major above
        ("0.50.2", "10.2", "linux-x86_64", None),  # never another major
        ("0.50.2", "13.0", "windows-arm64", "cuda134"),
        ("0.49.2", "12.9", "linux-x86_64", "cuda129"),
        ("0.49.2", "13.2", "linux-x86_64", None),  # exact only
        ("0.45.5", "13.0", "linux-x86_64", None),
        ("0.45.5", "12.8", "windows-x86_64", "cuda128"),
        ("0.43.1", "12.4", "linux-x86_64", "cuda124"),
        ("0.43.1", "12.4", "windows-x86_64", None),  # win_amd64 0.43.1 stops at 12.3
        ("0.34.0", "11.8", "linux-x86_64", None),  # S75: 110-117 up to 0.34.0
        ("0.35.0", "11.8", "linux-x86_64", "cuda118"),
        ("0.36.0", "11.8", "linux-x86_64", None),  # no full library at all
        ("0.36.0.post2", "12.0", "linux-x86_64", "cuda120"),
        ("0.35.0", "11.8", "windows-x86_64", None),  # .so files only
        ("0.39.0", "11.0", "linux-x86_64", None),  # missing cuda110
        ("0.39.1", "11.0", "linux-x86_64", "cuda110"),
        ("0.40.0", "12.2", "linux-x86_64", "cuda122"),  # F09
        ("0.39.1", "12.2", "linux-x86_64", None),
        ("0.42.0", "11.8", "windows-x86_64", None),  # .so files only
        ("0.42.0", "11.8", "macos-x86_64", None),
        ("0.46.0", "12.8", "linux-aarch64", "cuda128"),
        ("0.49.2", "12.8", "macos-arm64", None),
    ],
)
def test_lib_for_cuda(bnb, cuda, platform, lib):
    assert KB.bnb.release(bnb).lib_for_cuda(V(cuda), platform) == lib


def test_nocublaslt_below_7_5():
    r = KB.bnb.release("0.41.1")
    assert r.lib_for_cuda(V("11.8"), "linux-x86_64", cc=V("7.0")) == "cuda118_nocublaslt"
    assert r.lib_for_cuda(V("11.8"), "linux-x86_64", cc=V("8.0")) == "cuda118"
    assert KB.bnb.release("0.40.1").lib_for_cuda(V("11.8"), "linux-x86_64", cc=V("6.1")) is None
    assert KB.bnb.release("0.45.0").nocublaslt_below is None


def test_releases_0_32_to_0_36_from_their_wheels():
    """S75: one py3-none-any wheel each, no Requires-Python or torch requirement, libstdc++
    GLIBCXX_3.4.21; 0.36.0 ships only _nocublaslt libraries (known bad, S77)."""
    old = [r for r in KB.bnb.releases if r.version < V("0.37.0")]
    assert [str(r.version) for r in old] == [
        "0.32.0", "0.32.2", "0.32.3", "0.33.0", "0.34.0",
        "0.35.0", "0.35.2", "0.35.3", "0.35.4", "0.36.0", "0.36.0.post2",
    ]  # fmt: skip
    for r in old:
        b = r.builds["linux-x86_64"]
        assert (r.python, r.torch, r.override_env, r.sdist) == (None, None, None, True)
        assert b.tag == "any" and b.native and b.cpu_lib and b.glibcxx_min == V("3.4.21")
        assert not r.builds["windows-x86_64"].native and not r.builds["macos-x86_64"].native
        assert r.checked == "2026-12-06" and "S75" in r.source
    r360 = KB.bnb.release("0.36.0")
    assert r360.builds["linux-x86_64"].cuda_libs == () and r360.known_bad_kind == "missing-lib"
    assert r360.lib_for_cuda(V("11.8"), "linux-x86_64", cc=V("7.0")) == "cuda118_nocublaslt"
    assert r360.lib_for_cuda(V("11.8"), "linux-x86_64", cc=V("7.5")) is None


def test_rocm_libs():
    assert KB.bnb.release("0.49.2").lib_for_rocm(V("6.3"), "linux-x86_64") == "rocm63"
    assert KB.bnb.release("0.50.2").lib_for_rocm(V("6.3"), "linux-x86_64") == "rocm64"
    assert KB.bnb.release("0.50.2").lib_for_rocm(V("7.15"), "linux-x86_64") == "rocm715"
    assert KB.bnb.release("0.48.2").lib_for_rocm(V("6.2"), "linux-x86_64") is None


@pytest.mark.parametrize(
    ("bnb", "loader", "env", "missing"),
    [
        # S76: 0.32.x-0.35.x raise 'Setup Failed!'; 0.36.x load the CPU library instead
        ("0.32.0", "libcudart-search", None, "import-error"),
        ("0.35.4", "libcudart-search", None, "import-error"),
        ("0.36.0.post2", "libcudart-search", None, "cpu-fallback"),
        ("0.37.0", "libcudart-search", None, "import-error"),
        ("0.40.0.post4", "libcudart-search", None, "import-error"),
        ("0.40.1", "torch-version", "CUDA_VERSION", "import-error"),
        ("0.40.1.post1", "torch-version", "BNB_CUDA_VERSION", "import-error"),
        ("0.43.0", "torch-version", "BNB_CUDA_VERSION", "import-error"),
        ("0.43.1", "exact", "BNB_CUDA_VERSION", "cpu-fallback"),
        ("0.45.5", "exact", "BNB_CUDA_VERSION", "cpu-fallback"),
        ("0.46.0", "exact", "BNB_CUDA_VERSION", "error-mock"),
        ("0.49.2", "exact", "BNB_CUDA_VERSION", "error-mock"),
        ("0.50.0", "same-major-fallback", "BNB_CUDA_VERSION", "error-mock"),
    ],
)
def test_loader(bnb, loader, env, missing):
    r = KB.bnb.release(bnb)
    assert (r.loader, r.override_env, r.missing_lib) == (loader, env, missing)
    assert r.loader in KB.bnb.loaders and r.override in KB.bnb.overrides


def test_override_semantics():
    r50, r49, r37 = (KB.bnb.release(v) for v in ("0.50.2", "0.49.2", "0.37.0"))
    empty = r50.override_effect("", "linux-x86_64")
    assert empty.applies and empty.error and "UNCONFIRMED" in empty.error
    assert not KB.bnb.overrides["digits"].confirmed
    assert not r49.override_effect("", "linux-x86_64").applies  # empty disables it
    e125 = r49.override_effect("125", "linux-x86_64")
    assert (e125.lib, e125.shipped) == ("cuda125", True)
    e129 = r50.override_effect("129", "linux-x86_64")
    assert (e129.lib, e129.shipped) == ("cuda129", False)  # exact file only, no fallback
    assert not r37.override_effect("118", "linux-x86_64").applies


@pytest.mark.parametrize(
    ("bnb", "python", "torch"),
    [
        ("0.42.0", None, None),
        ("0.43.0", None, ""),
        ("0.45.1", ">=3.8", "~=2.0"),
        ("0.45.2", ">=3.8", ">=2.0,<3"),
        ("0.46.0", ">=3.9", ">=2.2,<3"),
        ("0.48.0", ">=3.9", ">=2.3,<3"),
        ("0.49.0", ">=3.10", ">=2.3,<3"),
        ("0.50.2", ">=3.10", ">=2.4,<3"),
    ],
)
def test_bnb_metadata(bnb, python, torch):
    r = KB.bnb.release(bnb)
    assert (None if r.python is None else str(r.python)) == python
    assert (None if r.torch is None else str(r.torch)) == torch


def test_admits_torch_strips_local_and_prerelease():
    r = KB.bnb.release("0.50.2")
    assert r.admits_torch(V("2.4.0+cu121")) and r.admits_torch(V("2.5.0a0+872d972e41.nv24.08"))
    assert not r.admits_torch(V("2.3.1+cu121")) and not r.admits_torch(V("3.0.0"))
    assert KB.bnb.release("0.42.0").admits_torch(V("1.0"))  # no requirement declared
    assert not r.admits_python(V("3.9.18")) and r.admits_python(V("3.12.1"))


def test_4bit_history():
    assert KB.bnb.releases[0].version == V("0.32.0")  # the oldest surveyed (S75)
    assert not any(r.has_4bit for r in KB.bnb.releases if r.version < V("0.39.0"))
    assert not KB.bnb.release("0.37.0").has_4bit
    assert not KB.bnb.release("0.38.1").has_4bit
    first = KB.bnb.first()
    assert first is not None and first.version == V("0.39.0")
    cpu4 = [r.version for r in KB.bnb.releases if r.cpu_4bit]
    assert cpu4[0] == V("0.46.0") and cpu4[-1] == V("0.50.2")


def test_known_bad_releases():
    bad = {str(r.version): r.known_bad for r in KB.bnb.releases if r.known_bad}
    assert set(bad) == {
        "0.36.0",
        "0.36.0.post2",
        "0.37.0",
        "0.39.0",
        "0.40.0",
        "0.40.0.post1",
        "0.40.0.post2",
        "0.40.0.post3",
        "0.41.3.post1",
        "0.45.4",
        "0.48.0",
        "0.49.0",
    }
    assert "#1584" in bad["0.45.4"]
    # S66: the 0.48.0 regression is 8-bit only and 0.48.2 fixes both of its parts; the 0.49.0
    # state_dict crash is fixed in 0.49.1; which setups reach it is not recorded
    assert bad["0.48.0"].endswith("use 0.48.2") and "8-bit" in bad["0.48.0"]
    assert KB.bnb.release("0.49.0").known_bad_kind == "crash"
    assert "UNCONFIRMED" in bad["0.49.0"] and bad["0.49.0"].endswith("use 0.49.1")
    assert "UNCONFIRMED" in bad["0.41.3.post1"]  # no record says why it was republished
    # S110: the NameError of 0.36.0-0.37.0 on GPUs below 7.5, fixed in 0.37.1
    for v in ("0.36.0.post2", "0.37.0"):
        r = KB.bnb.release(v)
        assert r.known_bad_kind == "old-gpu-crash" and r.known_bad_below_cc == V("7.5")
        assert "NameError: name 'cuda_setup'" in bad[v] and bad[v].endswith("use 0.37.1")
    assert "NameError" in bad["0.36.0"] and KB.bnb.release("0.36.0").known_bad_below_cc is None
    r = KB.bnb.release("0.45.4")
    assert not r.builds["linux-x86_64"].cpu_lib and r.builds["windows-x86_64"].cpu_lib


def test_each_known_bad_release_names_a_good_newer_one_and_its_kind():
    for r in KB.bnb.releases:
        assert (r.known_bad is None) == (r.known_bad_kind is None), r.version
        if not r.known_bad:
            continue
        use = re.search(r"use (\S+)$", r.known_bad)
        assert use, r.known_bad
        good = KB.bnb.release(use.group(1))
        assert good is not None and not good.known_bad and good.version > r.version
        if r.known_bad_kind == "libstdcxx":
            # its floor is above the one of the release it sends to and of the one before it
            i = KB.bnb.releases.index(r)
            need = r.builds["linux-x86_64"].glibcxx_min
            for other in (good, KB.bnb.releases[i - 1]):
                floor = other.builds["linux-x86_64"].glibcxx_min
                assert need is not None and floor is not None and floor < need
                assert f"GLIBCXX_{need}" in r.known_bad and str(floor) in r.known_bad
        if r.known_bad_kind == "missing-lib":
            assert "lacks" in r.known_bad or "has no" in r.known_bad


def test_known_bad_needs_its_kind(tmp_path):
    plans = tmp_path / "plans"
    shutil.copytree(ROOT / "plans", plans)
    path = plans / "bitsandbytes.toml"
    text = path.read_text()
    path.write_text(text.replace('known_bad_kind = "missing-lib"\n', "", 1))
    with pytest.raises(KnowledgeError, match=r"known_bad and known_bad_kind go together"):
        load_knowledge(plans)
    path.write_text(text.replace('known_bad_kind = "missing-lib"', 'known_bad_kind = "slow"', 1))
    with pytest.raises(KnowledgeError, match=r"known_bad_kind must be one of"):
        load_knowledge(plans)


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "bitsandbytes.toml",
            'known_bad_below_cc = "7.5"\n',
            "",
            r'known_bad_below_cc goes with known_bad_kind = "old-gpu-crash"',
        ),
        (
            "bitsandbytes.toml",
            'known_bad_below_cc = "7.5"',
            'known_bad_below_cc = "seven"',
            r"known_bad_below_cc",
        ),
        ("torch.toml", 'macos-x86_64 = ">=0"', 'macos-sparc = ">=0"', r"unknown platform"),
        ("torch.toml", 'linux-aarch64 = "<2.6"', 'linux-aarch64 = "below 2.6"', r"specifier"),
    ],
)
def test_the_gpu_gate_and_the_cpu_labels_are_checked_on_load(tmp_path, file, old, new, message):
    """A malformed known_bad_below_cc or [cpu_unlabelled] entry is one KnowledgeError naming
    the file and the key, never a half-read knowledge base."""
    plans = tmp_path / "plans"
    shutil.copytree(ROOT / "plans", plans)
    path = plans / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(KnowledgeError, match=message) as err:
        load_knowledge(plans)
    assert file in str(err.value) and "\n" not in str(err.value)


def test_f27_glibc_2_34():
    for v in ("0.45.3", "0.45.4", "0.45.5"):
        r = KB.bnb.release(v)
        assert r.lib_glibc_min == {"126": V("2.34"), "128": V("2.34")}
        assert r.is_confirmed("builds.linux-x86_64.lib_glibc")
    r450 = KB.bnb.release("0.45.0")
    assert r450.lib_glibc_min == {"126": V("2.34")}
    assert not r450.is_confirmed("builds.linux-x86_64.lib_glibc") and "UNCONFIRMED" in r450.note
    r46 = KB.bnb.release("0.46.0")
    assert r46.lib_glibc_min == {}
    build = KB.bnb.release("0.45.5").builds["linux-x86_64"]
    assert build.glibc_for("cuda126") == V("2.34") and build.glibc_for("124") == V("2.24")


def test_platforms_and_glibc():
    def plats(v: str) -> set[str]:
        return set(KB.bnb.release(v).builds)

    assert plats("0.42.0") == set(PLATFORMS)  # the any-wheel installs everywhere
    assert {p for p, b in KB.bnb.release("0.42.0").builds.items() if b.native} == {"linux-x86_64"}
    assert plats("0.43.0") == {"linux-x86_64", "windows-x86_64"}
    assert plats("0.46.0") == {"linux-x86_64", "linux-aarch64", "windows-x86_64"}
    assert "macos-arm64" in plats("0.49.0") and "windows-arm64" not in plats("0.49.2")
    assert "windows-arm64" in plats("0.50.0") and "macos-x86_64" not in plats("0.50.2")
    x86 = KB.bnb.release("0.43.0").builds["linux-x86_64"]
    assert x86.glibc_min == V("2.24") and x86.tag == "manylinux_2_24_x86_64"
    assert KB.bnb.release("0.42.0").builds["linux-x86_64"].glibc_min is None
    assert KB.bnb.release("0.49.0").builds["macos-arm64"].macos_min == V("14.0")
    assert KB.bnb.release("0.50.2").builds["linux-x86_64"].size_bytes > 10_000_000


@pytest.mark.parametrize(
    ("bnb", "platform", "lib", "has", "lacks"),
    [
        ("0.44.1", "linux-x86_64", "117", "sm_86", "sm_89"),
        ("0.44.1", "linux-x86_64", "118", "sm_89", "sm_90"),
        ("0.45.5", "linux-x86_64", "128", "sm_70", "sm_61"),
        ("0.46.0", "linux-x86_64", "128", "sm_75", "sm_70"),
        ("0.47.0", "windows-x86_64", "126", "sm_50", "sm_52"),
        ("0.48.0", "linux-x86_64", "126", "sm_60", "sm_50"),
        ("0.49.2", "linux-x86_64", "130", "sm_75", "sm_70"),
        ("0.49.2", "linux-aarch64", "130", "sm_121", "sm_86"),
        ("0.50.2", "windows-arm64", "134", "sm_121", "sm_120"),
    ],
)
def test_bnb_sass(bnb, platform, lib, has, lacks):
    build = KB.bnb.release(bnb).builds[platform]
    sass = build.sass(lib)
    assert sass is not None and build.sass(f"cuda{lib}") == sass
    assert V(f"{has[3:-1]}.{has[-1]}") in sass and V(f"{lacks[3:-1]}.{lacks[-1]}") not in sass
    band = build.sass_band(lib)
    assert band is not None and not band.confirmed and "UNCONFIRMED" in (band.note or "")


def test_bnb_sass_unknown():
    assert KB.bnb.release("0.42.0").builds["linux-x86_64"].sass("118") is None  # before C2
    assert KB.bnb.release("0.50.2").builds["linux-x86_64"].sass("129") is None  # not shipped


def test_sass_lookups_are_remembered_per_knowledge_base(tmp_path):
    # _band's answers are memoised on each build: a knowledge base with other bands must get its
    # own answers, whatever the shipped one answered first (and the memo is no part of equality).
    copy = tmp_path / "plans"
    shutil.copytree(PLANS, copy)
    toml = copy / "bitsandbytes.toml"
    text = toml.read_text()
    band = 'releases = ">=0.43.0,<0.45.0"\nplatforms = ["linux-x86_64", "windows-x86_64"]\n'
    band += 'cuda = "==11.7"\n'
    at = text.index(band) + len(band)  # the first 11.7 band: its sass line follows
    end = text.index("\n", at)
    assert text[at:end].endswith(', "sm_86"]')
    toml.write_text(text[:at] + text[at:end].replace(', "sm_86"]', "]") + text[end:])
    ours = KB.bnb.release("0.44.1").builds["linux-x86_64"]
    assert V("8.6") in ours.sass("117")  # asked first: the shipped band is remembered
    other = load_knowledge(copy).bnb.release("0.44.1").builds["linux-x86_64"]
    assert V("8.6") not in other.sass("117") and V("8.0") in other.sass("cuda117")
    assert V("8.6") in ours.sass("cuda117_nocublaslt")
    assert other == ours  # same build; the bands and the memo are not compared


def test_toolkit_rows_are_remembered_per_knowledge_base(tmp_path):
    # toolkit_row's answers are memoised on each driver table, never shared between bases.
    copy = tmp_path / "plans"
    shutil.copytree(PLANS, copy)
    toml = copy / "drivers.toml"
    text = toml.read_text()
    row = 'cuda = "12.1"\nlabel = "12.1 GA / Update 1"\nga = true\nlinux = "530.30.02"'
    assert text.count(row) == 1
    toml.write_text(text.replace(row, row.replace("530.30.02", "531.00.00")))
    assert str(KB.drivers.toolkit_min(V("12.1"), "Linux")) == "530.30.02"  # asked first
    other = load_knowledge(copy).drivers
    assert str(other.toolkit_min(V("12.1.1"), "Linux")) == "531.00.00"
    assert str(KB.drivers.toolkit_min(V("12.1"), "Linux")) == "530.30.02"
    assert KB.drivers.toolkit_row(V("99.9")) is None is KB.drivers.toolkit_row(V("99.9"))


def test_parsed_version_is_shared_per_text_and_keeps_the_spelling():
    assert parsed_version("12.1") is parsed_version("12.1") == V("12.1")
    assert str(parsed_version("1.0")) == "1.0" and str(parsed_version("1.0.0")) == "1.0.0"
    with pytest.raises(InvalidVersion):
        parsed_version("not a version")


def test_ptx_from_0_45():
    build = KB.bnb.release("0.45.5").builds["linux-x86_64"]
    assert build.ptx("128") == (V("12.0"),)
    assert KB.bnb.release("0.44.1").builds["linux-x86_64"].ptx("121") == ()


def test_runs_on():
    sass = (V("7.0"), V("8.0"), V("8.6"))
    assert runs_on(V("8.9"), sass)  # same major, higher minor
    assert not runs_on(V("9.0"), sass)
    assert not runs_on(V("6.1"), sass)
    assert runs_on(V("12.0"), sass, (V("9.0"),))  # PTX JIT upward


# --------------------------------------------------------------------------- the wheel survey


def _tsv_rows() -> list[dict[str, str]]:
    if not TSV.is_file():
        pytest.skip(f"{TSV} not present")
    rows: list[dict[str, str]] = []
    for path in (OLD_TSV, TSV):
        with path.open(newline="") as fh:
            rows += csv.DictReader(fh, delimiter="\t")
    return rows


_TSV_PLATFORMS = {
    "linux_x86_64": "linux-x86_64",
    "linux_aarch64": "linux-aarch64",
    "win_amd64": "windows-x86_64",
    "win_arm64": "windows-arm64",
    "macosx_arm64": "macos-arm64",
}


def test_every_surveyed_release_is_known_with_the_same_libs():
    rows = _tsv_rows()
    releases = {r["release"] for r in rows}
    assert len(releases) == 50 + 11  # 0.37.0-0.50.2 (S21) and 0.32.0-0.36.0.post2 (S75)
    assert {str(r.version) for r in KB.bnb.releases} == releases
    compared = 0
    for row in rows:
        platform = _TSV_PLATFORMS.get(row["platform"])
        if platform is None:
            continue
        build = KB.bnb.release(row["release"]).builds.get(platform)
        if row["dist_kind"] == "none":
            assert build is None, f"{row['release']} {platform}: no distribution on PyPI"
            continue
        where = f"{row['release']} {platform}"
        assert build is not None, where
        libs = row["cuda_versions"].split() if row["cuda_versions"] != "-" else []
        nc = row["cuda_nocublaslt_versions"]
        assert build.cuda_libs == tuple(libs), where
        assert build.nocublaslt == (tuple(nc.split()) if nc != "-" else ()), where
        other = row["other_native_libs"]
        assert build.cpu_lib == ("libbitsandbytes_cpu." in other), where
        rocm = sorted(re.findall(r"libbitsandbytes_rocm(\d+)\.", other))
        assert sorted(build.rocm_libs) == rocm, where
        assert build.native == (row["native_for_platform"] == "yes"), where
        assert build.file == row["dist_file"] and build.size_bytes == int(row["size_bytes"])
        assert KB.bnb.release(row["release"]).has_4bit == (row["has_4bit"] == "yes"), where
        compared += 1
    # 5 platforms x 61 releases = 305 rows, 51 of them without a distribution (sdist rows aside)
    assert compared == 199 + 55


def test_generated_file_is_up_to_date():
    if not TSV.is_file():
        pytest.skip(f"{TSV} not present")
    spec = importlib.util.spec_from_file_location(
        "gen_bnb_toml", ROOT / "tools" / "gen_bnb_toml.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (PLANS / "bitsandbytes.toml").read_text()
    assert gen.generate(TSV) == text, "run: .venv/bin/python tools/gen_bnb_toml.py"
    assert text.startswith("# GENERATED FILE") and "bnb-wheels.tsv" in text.splitlines()[1]


# --------------------------------------------------------------------------- Hugging Face (D)


def _floors(versions: dict[str, str], package: str, feature: str | None = None) -> set[Version]:
    have = {k: V(v) for k, v in versions.items()}
    return {
        r.minimum
        for r in KB.hf
        if r.package == package and r.applies(have) and (feature is None or r.feature == feature)
    }


def test_hf_floors():
    assert max(_floors({}, "transformers", "4bit-load")) == V("4.30.0")
    assert max(_floors({}, "bitsandbytes", "4bit-load")) == V("0.39.0")
    assert max(_floors({"transformers": "5.24.0"}, "bitsandbytes", "4bit-load")) == V("0.46.1")
    assert max(_floors({"transformers": "4.57.1"}, "bitsandbytes", "4bit-load")) == V("0.43.1")
    assert max(_floors({"transformers": "4.50.0"}, "accelerate", "4bit-load")) == V("0.26.0")
    assert max(_floors({"transformers": "5.0.0"}, "accelerate", "4bit-load")) == V("1.1.0")
    assert max(_floors({"transformers": "4.40.0"}, "accelerate", "4bit-load")) == V("0.21.0")
    assert max(_floors({}, "peft", "kbit-training")) == V("0.4.0")
    assert max(_floors({"transformers": "4.37.0"}, "bitsandbytes", "4bit-save")) == V("0.41.3")
    assert _floors({"transformers": "4.36.2"}, "bitsandbytes", "4bit-save") == set()
    assert max(_floors({"bitsandbytes": "0.45.0"}, "peft", "8bit-merge")) == V("0.14.0")
    assert max(_floors({"transformers": "5.24.0"}, "torch", "requires")) == V("2.6")
    assert max(_floors({"transformers": "5.24.0"}, "python", "requires")) == V("3.11")


def test_hf_rules_are_cited():
    assert len(KB.hf) >= 10
    for r in KB.hf:
        assert r.source.startswith("S") and r.reason and r.checked in CHECK_DATES


# --------------------------------------------------------------------------- citations


def _entries(kb: Knowledge) -> list[Cited]:
    out: list[Cited] = [kb.drivers.caveat]
    out += kb.drivers.toolkit + tuple(kb.drivers.minor_compat.values())
    out += kb.drivers.arch_changes + kb.drivers.branches + kb.drivers.notes
    for r in kb.torch.releases:
        out += (r, *r.variants)
    out += kb.torch.domain
    out += kb.bnb.releases + kb.bnb.sass_bands
    out += tuple(kb.bnb.loaders.values()) + tuple(kb.bnb.overrides.values())
    out += kb.hf
    out += kb.gpus.rows
    return out


def test_every_entry_is_cited():
    for e in _entries(KB):
        assert e.source.strip() and re.search(r"\bS\d+", e.source), e
        assert e.checked in CHECK_DATES, e


def test_unconfirmed_marks_survive():
    entries = _entries(KB)
    unconfirmed = [e for e in entries if not e.confirmed]
    partial = [e for e in entries if e.confirmed and e.unconfirmed]
    assert len(unconfirmed) > 20 and len(partial) > 10
    for e in unconfirmed + partial:
        assert e.note, e
    # a few that compat-facts marks UNCONFIRMED
    assert not KB.drivers.toolkit_row(V("13.5")).confirmed
    assert not next(
        n for n in KB.drivers.notes if n.id == "forward-compat-datacenter-only"
    ).confirmed
    assert all(not v.confirmed for v in KB.torch.release("1.12").variants if v.kind == "rocm")
    assert not KB.torch.release("2.6").variant("cu118").arch_confirmed


# --------------------------------------------------------------------------- broken files


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "plans"
    shutil.copytree(PLANS, dst)
    return dst


def _edit(path: Path, anchors: list[str], old_prefix: str, new_line: str | None) -> None:
    """Replace (or delete) the first line starting with ``old_prefix`` after all ``anchors``."""
    lines = path.read_text().splitlines()
    i = 0
    for anchor in anchors:
        i = next(j for j in range(i, len(lines)) if lines[j].strip() == anchor)
    j = next(k for k in range(i, len(lines)) if lines[k].startswith(old_prefix))
    if new_line is None:
        del lines[j]
    else:
        lines[j] = new_line
    path.write_text("\n".join(lines) + "\n")


BROKEN = [
    pytest.param(
        "torch.toml",
        [],
        "format = 1",
        "format = 1\n[[release",
        r"^plans/torch\.toml: not valid TOML \(",
        id="bad-toml",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.7"', 'name = "cu128"'],
        "arch_list =",
        'arch_list = "sm_75 sm_80"',
        r"^plans/torch\.toml: release '2\.7' variant 'cu128': arch_list must be a list of "
        r"'sm_XY' strings$",
        id="wrong-type",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.4"', 'name = "rocm6.1"'],
        "gfx =",
        'gfx = ["gfx90a", "sm_90"]',
        r"^plans/torch\.toml: release '2\.4' variant 'rocm6\.1': gfx must be a non-empty list of "
        r"'gfxNNN' strings",
        id="gfx-bad-name",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.4"', 'name = "rocm6.1"'],
        "gfx_source =",
        None,
        r"^plans/torch\.toml: release '2\.4' variant 'rocm6\.1': gfx is for a ROCm variant "
        r"\(rocm = 'X\.Y'\) and needs a gfx_source$",
        id="gfx-without-source",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.7"', 'name = "cu128"'],
        "arch_list =",
        'arch_list = ["sm_75", "sm75"]',
        r"^plans/torch\.toml: release '2\.7' variant 'cu128': arch_list must be a list of",
        id="bad-arch",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.7"', 'name = "cu118"'],
        "cuda =",
        'cuda = "11.7"',
        r"^plans/torch\.toml: release '2\.7' variant 'cu118': cuda 11\.7 does not match the name",
        id="cuda-vs-name",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "version =",
        'version = "0.45.1"',
        r"^plans/bitsandbytes\.toml: release '0\.45\.1' is out of order or repeated "
        r"\(after '0\.45\.4'\)$",
        id="out-of-order",
    ),
    pytest.param(
        "torch.toml",
        ['series = "2.7"'],
        "pypi_default =",
        'pypi_default = { linux-x86_64 = "cu999" }',
        r"^plans/torch\.toml: release '2\.7': pypi_default: linux-x86_64 = 'cu999' is not a",
        id="default-not-a-variant",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "version =",
        'version = "0.45.x"',
        r"^plans/bitsandbytes\.toml: release '0\.45\.x': version is not a version: '0\.45\.x'$",
        id="bad-version",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "torch =",
        'torch = ">=2.0,<<3"',
        r"^plans/bitsandbytes\.toml: release '0\.45\.5': torch is not a version specifier",
        id="bad-specifier",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "source =",
        None,
        r"^plans/bitsandbytes\.toml: release '0\.45\.5': source is missing$",
        id="missing-source",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"', "[release.builds.linux-x86_64]"],
        "cuda =",
        'cuda = "117 1x8"',
        r"^plans/bitsandbytes\.toml: release '0\.45\.5' build 'linux-x86_64': cuda must list",
        id="bad-lib",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "loader =",
        'loadr = "exact"',
        r"^plans/bitsandbytes\.toml: release '0\.45\.5': loader is missing$",
        id="typo-key-missing",
    ),
    pytest.param(
        "bitsandbytes.toml",
        ['version = "0.45.5"'],
        "sdist =",
        "sdist = false\nsdsit = true",
        r"^plans/bitsandbytes\.toml: release '0\.45\.5': unknown key\(s\): sdsit$",
        id="unknown-key",
    ),
    pytest.param(
        "drivers.toml",
        ['label = "12.2 GA"'],
        "source =",
        None,
        r"^plans/drivers\.toml: toolkit\[\d+\] '12\.2 GA': source is missing$",
        id="driver-missing-source",
    ),
    pytest.param(
        "drivers.toml",
        ['label = "12.2 GA"'],
        "linux =",
        'linux = "535.54.x"',
        r"^plans/drivers\.toml: toolkit\[\d+\] '12\.2 GA': linux is not a driver version",
        id="driver-bad-version",
    ),
    pytest.param(
        "drivers.toml",
        ['label = "13.5"'],
        "note =",
        None,
        r"^plans/drivers\.toml: toolkit\[0\] '13\.5': an unconfirmed entry needs a note",
        id="unconfirmed-without-note",
    ),
    pytest.param(
        "huggingface.toml",
        ['package = "transformers"'],
        "minimum =",
        "minimum = 4.30",
        r"^plans/huggingface\.toml: rule\[0\] 'transformers >= 4\.3': minimum must be a "
        r"non-empty string$",
        id="hf-wrong-type",
    ),
    pytest.param(
        "huggingface.toml",
        ['package = "transformers"'],
        "checked =",
        'checked = "yesterday"',
        r"^plans/huggingface\.toml: rule\[0\] .*checked must be a date YYYY-MM-DD",
        id="bad-date",
    ),
    pytest.param(
        "huggingface.toml",
        [],
        "format = 1",
        "format = 2",
        r"^plans/huggingface\.toml: format 2 is not supported",
        id="format",
    ),
]


@pytest.mark.parametrize(("name", "anchors", "prefix", "new", "message"), BROKEN)
def test_broken_file_names_file_and_entry(tmp_path, name, anchors, prefix, new, message):
    plans = _copy(tmp_path)
    _edit(plans / name, anchors, prefix, new)
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(plans)
    assert re.search(message, err.value.message), err.value.message
    assert "\n" not in err.value.message


def test_missing_file(tmp_path):
    plans = _copy(tmp_path)
    (plans / "drivers.toml").unlink()
    with pytest.raises(KnowledgeError, match=r"^plans/drivers\.toml: file not found"):
        load_knowledge(plans)


def test_read_toml_for_other_files(tmp_path):
    good = tmp_path / "plans" / "failures.toml"
    good.parent.mkdir()
    good.write_text('format = 1\n[[class]]\nid = "x"\n')
    assert read_toml(good) == {"format": 1, "class": [{"id": "x"}]}
    good.write_text("[[class]\n")
    with pytest.raises(KnowledgeError, match=r"^plans/failures\.toml: not valid TOML \("):
        read_toml(good)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("tag", "glibc"),
    [
        ("manylinux1_x86_64", "2.5"),
        ("manylinux2014_aarch64", "2.17"),
        ("manylinux_2_28_x86_64", "2.28"),
        ("manylinux_2_24_aarch64", "2.24"),
        ("win_amd64", None),
        ("any", None),
    ],
)
def test_glibc_of_tag(tag, glibc):
    assert glibc_of_tag(tag) == (None if glibc is None else V(glibc))


def test_lib_cuda():
    assert lib_cuda("118") == V("11.8") and lib_cuda("cuda132") == V("13.2")
    assert lib_cuda("102") == V("10.2")


@given(
    st.sampled_from([str(r.latest) for r in KB.torch.releases]),
    st.sampled_from(["", "+cu118", "+cpu", "+rocm6.2", "a0+872d972e41.nv24.08", ".post1"]),
)
def test_any_local_build_maps_to_its_series(version, suffix):
    r = KB.torch.release(version + suffix)
    assert r is not None and r.series.release == V(version).release[:2]


# --------------------------------------------------------------------------- citation keys


def _cited_files() -> list[Path]:
    return sorted(PLANS.glob("*.toml")) + sorted((ROOT / "repair").rglob("*.py"))


@pytest.mark.parametrize("path", _cited_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_key_resolves(path: Path):
    """Every citation key in plans/*.toml (failures.toml included) and in the code's comments is
    in plans/sources.toml (or an issue reference whose repository is known)."""
    sources = load_sources()
    text = path.read_text(encoding="utf-8")
    read = cited_keys_in_code if path.suffix == ".py" else cited_keys
    unresolved = [k for k in read(text) if sources.get(k) is None]
    assert not unresolved, unresolved


def test_failure_classes_cite_resolvable_keys():
    sources = load_sources()
    for cls in load_catalogue().classes:
        sources.resolve("; ".join(cls.sources))  # raises for a key that does not resolve


def test_cited_keys_grammar():
    text = "compat-facts C1, C6, D and A1/A2 (S1, S18b) bnb#1610 F27 pytorch/pytorch#9 A100 sm_86"
    assert cited_keys(text) == (
        "C1",
        "C6",
        "D",
        "A1",
        "A2",
        "S1",
        "S18b",
        "bnb#1610",
        "F27",
        "pytorch/pytorch#9",
    )
    # a bare letter is a section key only after "compat-facts" (torch.toml's legend uses B, M, R)
    assert cited_keys("source = 'B; M (PyPI 2.1-2.4)'") == ()


def test_issue_references_resolve_to_addresses():
    s = load_sources()
    assert s.get("bnb#1610").text.endswith(
        "https://github.com/bitsandbytes-foundation/bitsandbytes/issues/1610"
    )
    assert s.get("nosuchrepo#1") is None
    with pytest.raises(KnowledgeError, match="'S99'"):
        s.resolve("S99")


def test_sources_cover_the_facts_sources_list():
    md = FACTS / "compat-facts.md"
    if not md.is_file():
        pytest.skip(f"{md} not present")
    text = md.read_text()
    listed = set(re.findall(r"\*\*(S\d+b?)\*\*:", text[text.index("## Sources") :]))
    sections = set(re.findall(r"^#{2,3} ([A-D]\d?)\. ", text, re.MULTILINE))
    keys = {r.key for r in load_sources().references}
    assert listed | sections <= keys


def test_docs_sources_page_is_generated_from_the_table():
    spec = importlib.util.spec_from_file_location("sources_doc", ROOT / "tools" / "sources_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    assert doc == mod.render(load_sources()), "run python tools/sources_doc.py"
    for r in load_sources().references:
        assert f"- **{r.key}**: {r.text}" in doc


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('key = "S1"\n', 'key = "S2"\n', "duplicate key 'S2'"),
        ('kind = "case"\n', 'kind = "rumour"\n', "kind must be one of"),
        ('key = "F02"\n', 'key = "x1"\n', "is not a citation key"),
        ('bnb = "bitsandbytes-foundation/bitsandbytes"', "bnb = 3", "owner/name"),
    ],
)
def test_broken_sources_table_names_the_problem(tmp_path, old, new, message):
    plans = _copy(tmp_path)
    text = (plans / "sources.toml").read_text()
    assert old in text
    (plans / "sources.toml").write_text(text.replace(old, new, 1))
    with pytest.raises(KnowledgeError, match=message):
        load_sources(plans)
