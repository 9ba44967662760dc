"""plans/distros.toml: the loader, matching an OS release, and what the planner does with it
(glibc and the system libstdc++ inferred from the OS; the GLIBCXX floor of the untagged
bitsandbytes wheels, S37)."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from repair.distros import distro_of, load_distros
from repair.errors import ExitCode, KnowledgeError
from repair.facts import facts_from_dict
from repair.knowledge import load_knowledge, load_sources
from repair.view import make_view
from tests.core_helpers import analyse, example_doc

KB = load_knowledge()
DISTROS = load_distros()
PLANS = Path(__file__).resolve().parent.parent / "plans"


def facts(**changes):
    doc = copy.deepcopy(example_doc("healthy.json")["facts"])
    for key, value in changes.items():
        doc[key] = value
    return facts_from_dict(doc, "test")


OLD_BNB = {
    "packages": {"torch": "2.1.2+cu121", "bitsandbytes": "0.42.0"},
    "torch": {"version": "2.1.2+cu121", "cuda": "12.1"},
    "bitsandbytes": {"version": "0.42.0", "copies": 1},
}


def test_every_entry_cites_known_sources():
    sources = load_sources()
    for d in DISTROS:
        assert sources.resolve(d.source), d
        assert d.glibcxx >= Version("3.4")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("CentOS Linux 7 (Core)", "CentOS 7"),
        ("CentOS 7", "CentOS 7"),
        ("centos 7", "CentOS 7"),
        ("Red Hat Enterprise Linux Server 7.9 (Maipo)", "RHEL 7"),
        ("Ubuntu 22.04.3 LTS", "Ubuntu 22.04"),
        ("ubuntu 24.04", "Ubuntu 24.04"),
        ("Ubuntu 18.10", None),
        ("Ubuntu", None),
        ("CentOS Stream 9", None),
        ("CentOS Stream 8", None),
        # os-release forms of Debian, the RHEL family, Amazon Linux (PRETTY_NAME, ID VERSION_ID)
        ("Debian GNU/Linux 12 (bookworm)", "Debian 12"),
        ("Debian GNU/Linux 11 (bullseye)", "Debian 11"),
        ("Debian GNU/Linux 13 (trixie)", "Debian 13"),
        ("Debian GNU/Linux 9 (stretch)", "Debian 9"),
        ("Debian GNU/Linux 10 (buster)", "Debian 10"),
        ("debian 12", "Debian 12"),
        ("Debian 12.5", "Debian 12"),
        ("Debian GNU/Linux trixie/sid", None),  # testing/sid: no VERSION_ID
        ("Debian GNU/Linux forky/sid", None),
        ("debian", None),
        ("Debian GNU/Linux 8 (jessie)", None),
        ("Debian GNU/Linux 1 (x)", None),
        ("Rocky Linux 8.9 (Green Obsidian)", "Rocky Linux 8"),
        ("rocky 9.3", "Rocky Linux 9"),
        ("AlmaLinux 9.3 (Shamrock Pearl)", "AlmaLinux 9"),
        ("almalinux 8.10", "AlmaLinux 8"),
        ("Red Hat Enterprise Linux 8.9 (Ootpa)", "RHEL 8"),
        ("Red Hat Enterprise Linux 9.4 (Plow)", "RHEL 9"),
        ("rhel 9.4", "RHEL 9"),
        ("Amazon Linux 2", "Amazon Linux 2"),
        ("amzn 2", "Amazon Linux 2"),
        ("Amazon Linux 2023.6.20241010", "Amazon Linux 2023"),
        ("amzn 2023", "Amazon Linux 2023"),
        ("Amazon Linux AMI 2018.03", None),  # Amazon Linux 1: not listed
        ("Amazon Linux 20", None),
        ("Ubuntu2 22.04", None),
        ("", None),
        (None, None),
    ],
)
def test_os_release_matching(text, label):
    d = distro_of(text, DISTROS)
    assert (d.label if d else None) == label


def test_unconfirmed_parts_are_never_used():
    bionic = distro_of("Ubuntu 18.04.6 LTS", DISTROS)
    assert bionic is not None and not bionic.confirmed
    assert bionic.known("glibc") is None and bionic.known("glibcxx") is None
    rhel = distro_of("Red Hat Enterprise Linux 7", DISTROS)
    assert rhel is not None and rhel.known("glibc") == Version("2.17")
    assert rhel.known("glibcxx") is None


def test_view_infers_glibc_and_libstdcxx_from_the_os():
    view = make_view(facts(host={"system": "Linux", "machine": "x86_64", "os_release": "CentOS 7"}))
    assert view.glibc == Version("2.17") and view.glibc_from == "CentOS 7"
    assert view.glibcxx == Version("3.4.19") and view.glibcxx_from == "CentOS 7"


def test_a_reported_glibc_wins_and_conda_hides_the_system_libstdcxx():
    host = {"system": "Linux", "machine": "x86_64", "os_release": "CentOS 7", "libc": "glibc 2.28"}
    view = make_view(facts(host=host, python={"version": "3.10.12", "conda": True}))
    assert view.glibc == Version("2.28") and view.glibc_from is None
    assert view.glibcxx is None and view.conda


def test_the_untagged_wheels_carry_their_objdump_floor():
    for r in KB.bnb.releases:
        b = r.builds.get("linux-x86_64")
        if b is None or b.dist != "any":
            continue
        want = "3.4.26" if str(r.version) == "0.41.3.post1" else "3.4.21"
        assert b.glibcxx_min == Version(want), r.version
    assert KB.bnb.releases[-1].builds["linux-x86_64"].glibcxx_min is None  # not read


def test_centos7_is_platform_unsupported_with_the_exact_floor():
    f = facts(
        host={"system": "Linux", "machine": "x86_64", "os_release": "CentOS Linux 7"}, **OLD_BNB
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    assert found and "GLIBCXX_3.4.21" in found[0].summary
    assert "inferred from CentOS 7" in found[0].summary
    assert not any(s.package == "bitsandbytes" for s in plan.steps)
    m = next(m for m in plan.manual if m.id == "bnb-platform-unsupported")
    assert m.required and "2.24" in m.text and "GLIBCXX_3.4.21" in m.text
    assert "inferred from CentOS 7" in m.text


def test_a_new_enough_libstdcxx_keeps_the_untagged_wheel_open():
    # Ubuntu 22.04: glibc 2.35 (tagged wheels fit), libstdc++ 3.4.30 >= 3.4.21: no platform verdict
    f = facts(
        host={"system": "Linux", "machine": "x86_64", "os_release": "Ubuntu 22.04"}, **OLD_BNB
    )
    diag, _ = analyse(f)
    assert "bnb-platform-unsupported" not in diag.ids


def test_conda_on_centos7_keeps_the_s27_verdict():
    # a conda env's own libstdc++ comes first, so the system's is not used; with it unknown the
    # glibc below every tagged wheel still rules the untagged ones out (S27, F30)
    f = facts(
        host={"system": "Linux", "machine": "x86_64", "os_release": "CentOS 7"},
        python={"version": "3.10.12", "in_venv": False, "conda": True, "prefix": "/opt/conda"},
        **OLD_BNB,
    )
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    assert found and "GLIBCXX" not in found[0].summary and "2.24" in found[0].summary
    m = next(m for m in plan.manual if m.id == "bnb-platform-unsupported")
    assert "inferred from CentOS 7" in m.text and "GLIBCXX" not in m.text


def _copy(tmp_path: Path) -> Path:
    plans = tmp_path / "plans"
    shutil.copytree(PLANS, plans)
    return plans


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('version = "7"', 'version = "seven"', r"version must be release numbers"),
        ('glibc = "2.17"', 'glibc = "old"', r"glibc"),
        ('names = ["CentOS Linux", "CentOS"]', "names = []", r"names must list"),
        ('id = "centos"', 'id = "centos"\ncolour = "red"', r"unknown key\(s\): colour"),
        ('unconfirmed = ["glibcxx"]', 'unconfirmed = ["gcc"]', r"unconfirmed may name only"),
        ('version = "22.04"', 'version = "20.04"', r"ubuntu 20.04 is listed twice"),
        ("format = 1", "format = 9", r"format 9 is not supported"),
        ("[[distro]]", "[[distro]", r"not valid TOML"),
    ],
)
def test_malformed_file_is_one_line_with_exit_code_2(tmp_path, old, new, message):
    plans = _copy(tmp_path)
    path = plans / "distros.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(KnowledgeError) as err:
        load_distros(plans)
    assert err.value.message.startswith("plans/distros.toml: ")
    assert "\n" not in err.value.message
    assert err.value.exit_code == ExitCode.BAD_INPUT == 2
    assert re.search(message, err.value.message), err.value.message


def test_missing_file_is_an_error(tmp_path):
    plans = _copy(tmp_path)
    (plans / "distros.toml").unlink()
    with pytest.raises(KnowledgeError, match=r"^plans/distros\.toml: file not found"):
        load_distros(plans)


# --------------------------------------------------------------------------- measured libstdc++


def _measured(glibcxx: str, *, conda: bool = False, os_release: str | None = None):
    host = {
        "system": "Linux",
        "machine": "x86_64",
        "libc": "glibc 2.17",
        "os_release": os_release,
        "libstdcxx": {"path": "/opt/env/lib/libstdc++.so.6.0.x", "glibcxx": glibcxx},
    }
    python = {"version": "3.10.12", "in_venv": not conda, "conda": conda, "prefix": "/opt/env"}
    return facts(host=host, python=python, **OLD_BNB)


def _untagged(kb=KB):
    return [
        (r, b)
        for r in kb.bnb.releases
        if r.has_4bit and (b := r.builds.get("linux-x86_64")) is not None and b.dist == "any"
    ]


@pytest.mark.parametrize("conda", [False, True])
def test_a_measured_libstdcxx_below_the_floor_rules_the_untagged_wheels_out(conda):
    from repair.planner import bnb_fits

    f = _measured("3.4.19", conda=conda)
    view = make_view(f, KB)
    assert view.glibcxx == Version("3.4.19") and view.glibcxx_measured
    assert view.glibcxx_from is None and view.glibcxx_said.startswith("measured from /opt/env/")
    builds = _untagged()
    assert builds
    for r, b in builds:
        why = " | ".join(bnb_fits(view, KB, r, Version("2.1.2"), Version("12.1"), False))
        assert f"needs libstdc++ GLIBCXX_{b.glibcxx_min}; this host's is GLIBCXX_3.4.19" in why
        assert "measured from /opt/env/lib/libstdc++.so.6.0.x" in why
    diag, plan = analyse(f)
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    assert found and "GLIBCXX_3.4.21" in found[0].summary and "measured from" in found[0].summary
    assert found[0].evidence["measured_from"] == "/opt/env/lib/libstdc++.so.6.0.x"
    assert "inferred_from" not in found[0].evidence
    assert not any(s.package == "bitsandbytes" for s in plan.steps)
    m = next(m for m in plan.manual if m.id == "bnb-platform-unsupported")
    assert "GLIBCXX_3.4.21" in m.text and "measured from" in m.text


@pytest.mark.parametrize("conda", [False, True])
def test_a_measured_libstdcxx_at_the_floor_keeps_the_untagged_wheels(conda):
    # glibc 2.17 is below every tagged wheel, so only the untagged 0.42.0 can serve; with the
    # libstdc++ measured at its floor (3.4.21, S37) it does, conda env or not (no S27 verdict)
    from repair.planner import bnb_fits

    f = _measured("3.4.21", conda=conda)
    view = make_view(f, KB)
    kept = 0
    for r, b in _untagged():
        why = bnb_fits(view, KB, r, Version("2.1.2"), Version("12.1"), False)
        runtime = [
            w for w in why if ("libstdc++" in w or "glibc" in w) and not w.startswith("known bad")
        ]
        if b.glibcxx_min <= Version("3.4.21"):
            assert not runtime, (r.version, why)
            kept += 1
        else:  # 0.41.3.post1 needs GLIBCXX_3.4.26 (S37)
            assert runtime == [
                f"needs libstdc++ GLIBCXX_{b.glibcxx_min}; this host's is GLIBCXX_3.4.21 "
                "(measured from /opt/env/lib/libstdc++.so.6.0.x, S37)"
            ]
    assert kept
    diag, _ = analyse(f)
    assert "bnb-platform-unsupported" not in diag.ids


def test_the_measured_libstdcxx_wins_over_the_distro_inference():
    # CentOS 7's system libstdc++ has 3.4.19, but the process loads a newer one (a conda env's,
    # or a devtoolset's on LD_LIBRARY_PATH): what it loads decides
    view = make_view(_measured("3.4.30", os_release="CentOS Linux 7"), KB)
    assert view.glibcxx == Version("3.4.30") and view.glibcxx_measured
    assert view.glibcxx_said == "measured from /opt/env/lib/libstdc++.so.6.0.x"
    diag, _ = analyse(_measured("3.4.30", os_release="CentOS Linux 7"))
    assert "bnb-platform-unsupported" not in diag.ids
    # and an older one than the distro's is believed too
    diag, _ = analyse(_measured("3.4.19", os_release="Ubuntu 22.04"))
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    assert found and "GLIBCXX_3.4.19 (measured from" in found[0].summary


# --------------------------------------------------------------------------- more OS releases


@pytest.mark.parametrize(
    ("text", "glibc", "glibcxx"),
    [
        # read from the Debian archive and the libstdc++ .so itself (S39)
        ("Debian GNU/Linux 11 (bullseye)", "2.31", "3.4.28"),
        ("Debian GNU/Linux 12 (bookworm)", "2.36", "3.4.30"),
        ("Debian GNU/Linux 13 (trixie)", "2.41", "3.4.33"),
        ("Red Hat Enterprise Linux 8.9 (Ootpa)", "2.28", "3.4.25"),
        # glibc from Red Hat / AWS, the libstdc++ only from the GCC release: not used
        ("Red Hat Enterprise Linux 9.4 (Plow)", "2.34", None),
        ("Amazon Linux 2", "2.26", None),
        ("Amazon Linux 2023.6.20241010", "2.34", None),
        # secondary reports or rebuilds: nothing used
        ("Debian GNU/Linux 9 (stretch)", None, None),
        ("Debian GNU/Linux 10 (buster)", None, None),
        ("Rocky Linux 8.9 (Green Obsidian)", None, None),
        ("AlmaLinux 9.3 (Shamrock Pearl)", None, None),
    ],
)
def test_what_each_release_lends_the_view(text, glibc, glibcxx):
    d = distro_of(text, DISTROS)
    assert d is not None
    assert d.known("glibc") == (Version(glibc) if glibc else None)
    assert d.known("glibcxx") == (Version(glibcxx) if glibcxx else None)
    view = make_view(facts(host={"system": "Linux", "machine": "x86_64", "os_release": text}))
    assert view.glibc == d.known("glibc")
    assert view.glibc_from == (d.label if glibc else None)


def test_the_glibcxx_of_an_entry_follows_its_gcc_release():
    # the GCC ABI table (S33, S42): the newest GLIBCXX_ of each GCC release series listed here
    table = {6: "3.4.22", 8: "3.4.25", 10: "3.4.28", 11: "3.4.29", 12: "3.4.30", 14: "3.4.33"}
    for d in DISTROS:
        if d.gcc.major in table:
            assert d.glibcxx == Version(table[d.gcc.major]), d.label
    amzn2 = distro_of("Amazon Linux 2", DISTROS)
    assert amzn2 is not None and amzn2.glibcxx == Version("3.4.24")  # GCC 7.3 >= 7.2.0


def test_the_same_id_never_has_two_entries_one_version_prefixes():
    # "7" and "7.9" both listed would make the first one shadow the other
    for a in DISTROS:
        for b in DISTROS:
            if a is not b and a.id == b.id:
                assert not b.version.startswith(a.version + "."), (a.label, b.label)


CU126 = {
    "packages": {"torch": "2.7.0+cu126", "bitsandbytes": "0.45.5"},
    "torch": {"version": "2.7.0+cu126", "cuda": "12.6"},
    "bitsandbytes": {"version": "0.45.5", "copies": 1},
}


@pytest.mark.parametrize("os_release", ["Amazon Linux 2", "Red Hat Enterprise Linux 8.9 (Ootpa)"])
def test_an_old_glibc_from_the_os_rules_out_the_releases_whose_library_needs_more(os_release):
    # bitsandbytes' cuda126 libraries of some releases need a newer glibc than their manylinux tag
    # says (F27); with only the OS named, its glibc decides which releases can serve a cu126 torch
    from repair.planner import bnb_fits
    from repair.view import pick_cuda_lib

    d = distro_of(os_release, DISTROS)
    assert d is not None and d.known("glibc") is not None
    host = {"system": "Linux", "machine": "x86_64", "os_release": os_release}
    view = make_view(facts(host=host, **CU126), KB)
    assert view.glibc == d.glibc and view.glibc_from == d.label
    ruled_out, kept = [], []
    for r in KB.bnb.releases:
        b = r.builds.get("linux-x86_64")
        if not r.has_4bit or b is None or not b.native:
            continue
        lib = pick_cuda_lib(b.cuda_libs, Version("12.6"), r.loader)
        need = b.glibc_for(lib)
        why = " | ".join(bnb_fits(view, KB, r, Version("2.7.0"), Version("12.6"), False))
        if need is not None and need > d.glibc:
            assert f"glibc >= {need}" in why, (r.version, why)
            ruled_out.append(r.version)
        else:
            assert "glibc" not in why, (r.version, why)
            kept.append(r.version)
    assert ruled_out and kept
    diag, plan = analyse(facts(host=host, **CU126))
    step = next((s for s in plan.steps if s.package == "bitsandbytes"), None)
    assert step is not None and step.to is not None, diag.ids
    assert Version(step.to) in kept, step.to
    # the installed release's own library needs more than the OS has: said, with where from
    installed = KB.bnb.release(Version("0.45.5"))
    assert installed is not None
    b = installed.builds["linux-x86_64"]
    need = b.glibc_for(pick_cuda_lib(b.cuda_libs, Version("12.6"), installed.loader))
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    if need is not None and need > d.glibc:
        assert Version("0.45.5") in ruled_out
        assert found and f"needs glibc >= {need}" in found[0].summary
        assert f"this host has {d.glibc} (inferred from {d.label})" in found[0].summary
        assert found[0].evidence["inferred_from"] == d.label
    else:
        assert not found


def test_a_reported_glibc_keeps_the_library_finding_unannotated():
    host = {
        "system": "Linux",
        "machine": "x86_64",
        "os_release": "Amazon Linux 2",
        "libc": "glibc 2.26",
    }
    diag, _ = analyse(facts(host=host, **CU126))
    found = [x for x in diag.findings if x.id == "bnb-platform-unsupported"]
    assert found and "inferred" not in found[0].summary
    assert "inferred_from" not in found[0].evidence


def test_debian_9_is_unconfirmed_so_no_platform_verdict_rests_on_it():
    # stretch's glibc 2.24 comes from news reports (S40): shown nowhere as a ground
    f = facts(
        host={"system": "Linux", "machine": "x86_64", "os_release": "Debian GNU/Linux 9 (stretch)"},
        **OLD_BNB,
    )
    view = make_view(f, KB)
    assert view.glibc is None and view.glibcxx is None
    diag, _ = analyse(f)
    assert not any("inferred from Debian 9" in x.summary for x in diag.findings)
