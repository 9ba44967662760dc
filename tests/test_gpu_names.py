"""NVIDIA GPU names -> compute capability (plans/gpus.toml, S106): the lookup, and a report that
gives a GPU by name only being planned like one that gives its compute capability."""

from __future__ import annotations

import pytest
from packaging.version import Version

from repair.facts import facts_from_dict
from repair.knowledge import load_knowledge
from tests.core_helpers import analyse

KB = load_knowledge()


@pytest.mark.parametrize(
    ("name", "row", "cc"),
    [
        # names as NVML and torch print them
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", "8.9"),
        ("Tesla T4", "NVIDIA T4", "7.5"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100", "8.0"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100", "9.0"),
        ("NVIDIA GeForce RTX 3060 Laptop GPU", "GeForce RTX 3060", "8.6"),
        ("Quadro RTX 5000", "Quadro RTX 5000", "7.5"),
        ("NVIDIA GeForce RTX 5090", "GeForce RTX 5090", "12.0"),
        ("Tesla V100-SXM2-16GB", "NVIDIA V100", "7.0"),
        ("Tesla P100-PCIE-16GB", "Tesla P100", "6.0"),
        ("NVIDIA RTX 6000 Ada Generation", "NVIDIA RTX 6000 Ada", "8.9"),
        ("NVIDIA GH200 480GB", "NVIDIA GH200", "9.0"),
        ("NVIDIA GB10", "NVIDIA GB10", "12.1"),
        ("NVIDIA L40S", "NVIDIA L40S", "8.9"),
        ("Tesla K80", "Tesla K80", "3.7"),
        # the longest whole-word name wins
        ("NVIDIA A10", "NVIDIA A10", "8.6"),
        ("NVIDIA GeForce RTX 4070", "GeForce RTX 4070", "8.9"),
        ("NVIDIA GeForce RTX 4070 Ti", "GeForce RTX 4070 Ti", "8.9"),
        ("NVIDIA GeForce RTX 5060 Ti", "GeForce RTX 5060 Ti", "12.0"),
        ("NVIDIA TITAN X (Pascal)", "NVIDIA TITAN X", "6.1"),
        ("NVIDIA GeForce GTX TITAN X", "GeForce GTX TITAN X", "5.2"),
        ("NVIDIA TITAN Xp", "NVIDIA TITAN Xp", "6.1"),
        ("NVIDIA GeForce RTX 3080 Ti Laptop GPU", "GeForce RTX 3080 Ti", "8.6"),
        ("NVIDIA RTX A2000 12GB", "NVIDIA RTX A2000", "8.6"),
    ],
)
def test_lookup_matches_printed_names(name: str, row: str, cc: str) -> None:
    found = KB.gpus.lookup(name)
    assert found is not None and found.name == row and found.cc == Version(cc)
    assert KB.gpus.cc_of(name) == Version(cc)


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA A10G",  # not A10, and not in the table
        "NVIDIA GeForce RTX 4070 SUPER",  # the table lists no 4070 SUPER: not the 4070
        "NVIDIA GeForce RTX 4090 D",
        "NVIDIA GeForce GTX 1050 Ti",  # the legacy table lists the GTX 1050 only
        "NVIDIA H20",
        "AMD Radeon RX 7900 XTX",
        "",
        None,
    ],
)
def test_lookup_does_not_invent(name: str | None) -> None:
    assert KB.gpus.lookup(name) is None and KB.gpus.cc_of(name) is None


def test_a10_is_not_a100_and_the_reverse() -> None:
    assert KB.gpus.cc_of("NVIDIA A10") == Version("8.6")
    assert KB.gpus.cc_of("NVIDIA A100 80GB PCIe") == Version("8.0")
    assert KB.gpus.lookup("NVIDIA A100 80GB PCIe").name == "NVIDIA A100"


def test_unconfirmed_rows_are_not_confirmed_answers() -> None:
    """A row past where the stored copy of NVIDIA's page broke off is marked so, unless another
    primary source confirmed it (S127: the T4 reporting itself, "Your Tesla T4 GPU has compute
    capability 7.5")."""
    assert KB.gpus.cc_of("NVIDIA GeForce RTX 3060 Ti") == Version("8.6")
    assert KB.gpus.cc_of("NVIDIA GeForce RTX 3060 Ti", confirmed_only=True) is None
    assert KB.gpus.cc_of("Tesla T4", confirmed_only=True) == Version("7.5")
    assert KB.gpus.cc_of("NVIDIA GeForce RTX 4090", confirmed_only=True) == Version("8.9")


def test_rows_confirmed_past_the_break_cite_their_evidence() -> None:
    """Every row S127 confirmed names the thread or the NVIDIA document that did; the others
    past the break stay UNCONFIRMED with their note."""
    for r in KB.gpus.rows:
        if "S127" in r.source:
            assert r.confirmed and r.note and "confirmed by S127" in r.note, r.name
        elif not r.confirmed:
            assert r.note and "UNCONFIRMED" in r.note, r.name


def test_the_brief_coverage_is_in_the_table() -> None:
    names = {r.name for r in KB.gpus.rows}
    for n in (
        ["GeForce RTX 5090", "GeForce RTX 4090", "GeForce RTX 3090", "GeForce RTX 2080 Ti"]
        + ["GeForce GTX 1080 Ti", "NVIDIA TITAN V", "Tesla K80", "Tesla P100", "Tesla P40"]
        + ["Tesla P4", "NVIDIA V100", "NVIDIA T4", "NVIDIA A100", "NVIDIA A30", "NVIDIA A40"]
        + ["NVIDIA A10", "NVIDIA A16", "NVIDIA A2", "NVIDIA L4", "NVIDIA L40", "NVIDIA L40S"]
        + ["NVIDIA H100", "NVIDIA H200", "NVIDIA GH200", "NVIDIA B200", "NVIDIA GB200"]
        + ["NVIDIA B300", "NVIDIA RTX A6000", "NVIDIA RTX 6000 Ada", "Quadro RTX 8000"]
        + ["Quadro P6000", "Jetson AGX Orin", "Jetson Nano"]
    ):
        assert n in names, n
    assert all(r.source in ("S106", "S106, S127") for r in KB.gpus.rows)


def _facts(gpu: dict, torch: str = "2.5.1+cu124") -> dict:
    return {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35"},
        "driver": {"found": True, "version": "570.124.06", "cuda": "12.8"},
        "gpus": [{"index": 0, **gpu}],
        "python": {"version": "3.11.9", "in_venv": True},
        "packages": {"torch": torch, "bitsandbytes": "0.45.0"},
        "torch": {"version": torch, "cuda": "12.4"},
    }


def test_a_name_only_gpu_gets_the_arch_check() -> None:
    """RTX 5090 (12.0, S106) with torch 2.5.1+cu124: no sm_120 there, torch moves to a build
    with it, and the plan says the compute capability was inferred."""
    diag, plan = analyse(facts_from_dict(_facts({"name": "NVIDIA GeForce RTX 5090"}), "t"))
    assert "gpu-arch-unsupported" in diag.ids
    step = next(s for s in plan.steps if s.package == "torch")
    assert "gpu-arch-unsupported" in step.because
    assert plan.torch_arch_list is not None and "sm_120" in plan.torch_arch_list
    assert any(
        "NVIDIA GeForce RTX 5090: 12.0" in u and "S106" in u and "not measured" in u
        for u in plan.unknown
    )


def test_without_the_name_the_check_stays_silent() -> None:
    diag, _ = analyse(facts_from_dict(_facts({"name": None}), "t"))
    assert "gpu-arch-unsupported" not in diag.ids


def test_a_reported_compute_capability_wins() -> None:
    """The name says 12.0; the reported 8.9 is what the plan uses (and nothing is inferred)."""
    doc = _facts({"name": "NVIDIA GeForce RTX 5090", "compute_capability": "8.9"})
    diag, plan = analyse(facts_from_dict(doc, "t"))
    assert "gpu-arch-unsupported" not in diag.ids
    assert not any("S106" in u for u in plan.unknown)


def test_an_unconfirmed_row_is_not_inferred() -> None:
    """The RTX 3060 Ti's row is UNCONFIRMED: the view leaves its compute capability unknown;
    the T4's, confirmed by S127, is inferred and said."""
    diag, plan = analyse(facts_from_dict(_facts({"name": "NVIDIA GeForce RTX 3060 Ti"}), "t"))
    assert not any("S106" in u for u in plan.unknown)
    diag, plan = analyse(facts_from_dict(_facts({"name": "Tesla T4"}), "t"))
    assert any("Tesla T4: 7.5" in u and "S106" in u for u in plan.unknown), plan.unknown


def test_never_for_amd() -> None:
    """An AMD GPU by vendor gets no NVIDIA compute capability, whatever its name says."""
    doc = _facts({"name": "NVIDIA GeForce RTX 5090", "vendor": "amd"})
    diag, plan = analyse(facts_from_dict(doc, "t"))
    assert "gpu-arch-unsupported" not in diag.ids
    assert not any("S106" in u for u in plan.unknown)
