"""What pip refusing a bitsandbytes wheel proves (repair/wheeltags.py; S69-S71), from the tag
parsing up to the plan: a glibc or macOS bound only where pip knows the tag's form and the wheel
is for this Python's CPU, and the releases whose wheels still install below that bound."""

from __future__ import annotations

from dataclasses import replace

import pytest
from packaging.version import Version

from repair import pipeline
from repair.facts import Facts, Host, Libstdcxx, TorchBuild
from repair.knowledge import load_knowledge
from repair.view import make_view
from repair.wheeltags import needs_new_pip, refused_bound, tag_need
from tests.core_helpers import INDEX

KB = load_knowledge()


def _refusal(version: str, tag: str) -> str:
    wheel = f"bitsandbytes-{version}-py3-none-{tag}.whl"
    return f"ERROR: {wheel} is not a supported wheel on this platform."


def _tagged(platform: str) -> tuple[str, str]:
    """A release and the platform tag of its wheel for ``platform``, from the knowledge base."""
    for r in reversed(KB.bnb.releases):
        b = r.builds.get(platform)
        if b is not None and b.dist != "any" and b.native:
            return str(r.version), b.tag
    raise AssertionError(f"no tagged wheel for {platform}")


@pytest.mark.parametrize(
    "tag, kind, cpu, version",
    [
        ("manylinux_2_24_x86_64", "glibc", "x86_64", "2.24"),
        ("manylinux2014_aarch64", "glibc", "arm64", "2.17"),
        ("manylinux1_x86_64", "glibc", "x86_64", "2.5"),
        ("macosx_14_0_arm64", "macos", "arm64", "14.0"),
        ("macosx_10_9_x86_64", "macos", "x86_64", "10.9"),
    ],
)
def test_a_tag_needs_its_glibc_or_macos_on_its_cpu(tag, kind, cpu, version):
    need = tag_need(tag)
    assert need is not None and (need.kind, need.cpu, need.version) == (kind, cpu, Version(version))


@pytest.mark.parametrize("tag", ["win_amd64", "any", "macosx_11_0_universal2", "linux_x86_64"])
def test_tags_without_a_version_or_a_single_cpu_need_nothing(tag):
    assert tag_need(tag) is None


def test_a_compressed_tag_set_is_bounded_by_its_least_demanding_tag():
    bound = refused_bound("manylinux_2_24_x86_64.manylinux2014_x86_64", "x86_64")
    assert bound is not None and bound.version == Version("2.17")


@pytest.mark.parametrize("machine", ["aarch64", None, "i686"])
def test_another_or_an_unknown_cpu_proves_nothing(machine):
    assert refused_bound("manylinux_2_24_x86_64", machine) is None


def test_only_pep_600_and_macos_11_tags_need_pip_20_3():
    assert needs_new_pip("manylinux_2_24_x86_64") and needs_new_pip("macosx_14_0_arm64")
    assert not needs_new_pip("manylinux2014_x86_64") and not needs_new_pip("macosx_10_9_x86_64")
    assert not needs_new_pip("manylinux_2_24_x86_64.manylinux2014_x86_64")


def _linux(pip: str | None, **host) -> Facts:
    packages = {"bitsandbytes": None, "torch": "2.1.2+cu121"}
    if pip:
        packages["pip"] = pip
    return Facts(
        host=Host("Linux", "x86_64", **host),
        packages=packages,
        torch=TorchBuild("2.1.2+cu121", "12.1"),
    )


def _analyse(facts: Facts, text: str):
    return pipeline.analyse(facts, torch_index=INDEX, error_text=text)


def test_a_current_pip_refusing_the_tagged_wheel_bounds_glibc_below_every_tagged_wheel():
    version, tag = _tagged("linux-x86_64")
    a = _analyse(_linux("23.0"), _refusal(version, tag))
    need = tag_need(tag)
    assert need is not None and a.view.glibc_below == need.version and a.view.glibc is None
    found = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert found and found[0].severity.value == "error"
    assert not any(s.package == "bitsandbytes" for s in a.plan.steps)
    assert any(m.required and str(need.version) in m.text for m in a.plan.manual)


def test_with_a_libstdcxx_that_fits_the_untagged_wheels_the_newest_of_them_is_planned():
    version, tag = _tagged("linux-x86_64")
    untagged = [
        r
        for r in KB.bnb.releases
        if r.has_4bit
        and not r.known_bad
        and (b := r.builds.get("linux-x86_64")) is not None
        and b.dist == "any"
        and b.glibcxx_min is not None
        and b.glibcxx_min <= Version("3.4.29")
    ]
    facts = _linux("23.0", libstdcxx=Libstdcxx("/opt/conda/lib/libstdc++.so.6", "3.4.29"))
    a = _analyse(facts, _refusal(version, tag))
    step = next(s for s in a.plan.steps if s.package == "bitsandbytes")
    assert Version(step.to) == max(r.version for r in untagged)
    found = [f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported"]
    assert found and found[0].severity.value == "warning"


@pytest.mark.parametrize("pip", [None, "9.0.3"])
def test_a_pip_that_may_not_know_the_tag_proves_no_bound_and_is_upgraded_first(pip):
    version, tag = _tagged("linux-x86_64")
    a = _analyse(_linux(pip), _refusal(version, tag))
    assert a.view.glibc_below is None
    manual = [m for m in a.plan.manual if m.id == "bnb-platform-unsupported"]
    if pip is None:  # the upgrade is the user's, before anything else
        assert manual and manual[0].required and "pip install -U pip" in manual[0].text
    else:  # a pip known to be old: the plan's first step upgrades it, in a command of its own
        assert manual and not manual[0].required and "the plan upgrades pip first" in manual[0].text
        assert a.plan.steps[0].package == "pip" and a.plan.steps[0].group == "installer"
    assert all(
        f.severity.value == "warning"
        for f in a.diagnosis.findings
        if f.id == "bnb-platform-unsupported"
    )


def test_a_reported_glibc_wins_over_the_bound():
    version, tag = _tagged("linux-x86_64")
    view = make_view(_linux("23.0", libc="glibc 2.31"), KB)
    assert view.glibc == Version("2.31")
    a = _analyse(_linux("23.0", libc="glibc 2.31"), _refusal(version, tag))
    assert a.view.glibc_below is None


def test_a_refused_macos_wheel_on_a_mac_below_every_macos_wheel_is_unsupported():
    version, tag = _tagged("macos-arm64")
    need = tag_need(tag)
    assert need is not None
    facts = Facts(host=Host("Darwin", "arm64"), packages={"bitsandbytes": None, "pip": "24.0"})
    a = _analyse(facts, _refusal(version, tag))
    assert a.view.macos_below == need.version
    assert "bnb-platform-unsupported" in a.diagnosis.ids
    assert any(m.required and f"macOS >= {need.version}" in m.text for m in a.plan.manual)
    # no NVIDIA driver to install on a Mac: the advice says so instead
    nd = [m for m in a.plan.manual if m.id == "no-nvidia-driver"]
    assert nd and "install an NVIDIA driver" not in nd[0].text


def test_an_x86_64_python_on_a_mac_refusing_an_arm64_wheel_proves_no_macos_bound():
    version, tag = _tagged("macos-arm64")
    facts = Facts(host=Host("Darwin", "x86_64"), packages={"bitsandbytes": None, "pip": "24.0"})
    a = _analyse(facts, _refusal(version, tag))
    assert a.view.macos_below is None
    manual = [m for m in a.plan.manual if m.id == "bnb-platform-unsupported"]
    assert manual and "Rosetta" in manual[0].text


def test_musl_proves_no_glibc_bound_and_names_the_c_library():
    version, tag = _tagged("linux-x86_64")
    a = _analyse(_linux("23.0", libc="musl"), _refusal(version, tag))
    assert a.view.glibc_below is None
    manual = [m for m in a.plan.manual if m.id == "bnb-platform-unsupported"]
    assert manual and manual[0].required and "musl" in manual[0].text


def test_a_32_bit_python_proves_no_glibc_bound():
    version, tag = _tagged("linux-x86_64")
    facts = _linux("23.0")
    facts = replace(facts, extra={**facts.extra, "interpreter": {"bits": 32}})
    assert _analyse(facts, _refusal(version, tag)).view.glibc_below is None
    facts64 = replace(facts, extra={**facts.extra, "interpreter": {"bits": 64}})
    assert _analyse(facts64, _refusal(version, tag)).view.glibc_below is not None


def test_an_unproven_refusal_names_the_causes_of_its_platform_and_asks_for_pip():
    version, tag = _tagged("macos-arm64")
    mac = Facts(host=Host("Darwin", "arm64"), packages={"bitsandbytes": None})
    a = _analyse(mac, _refusal(version, tag))
    warning = next(f for f in a.diagnosis.findings if f.id == "bnb-platform-unsupported")
    assert "Rosetta" in warning.summary and "musl" not in warning.summary
    assert any(u.startswith("pip's version") for u in a.plan.unknown)
    version, tag = _tagged("linux-x86_64")
    linux = _analyse(_linux(None), _refusal(version, tag))
    warning = next(f for f in linux.diagnosis.findings if f.id == "bnb-platform-unsupported")
    assert "musl" in warning.summary and "Rosetta" not in warning.summary
    known = _analyse(_linux("23.0"), _refusal(version, tag))
    assert not any(u.startswith("pip's version") for u in known.plan.unknown)
