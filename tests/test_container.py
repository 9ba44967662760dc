"""A container without the host's GPU: how qfix sees the container (probe/system.py) and what
it asks of the user (S105: the NVIDIA Container Toolkit gives a container the driver and GPUs
only when it is started with them; NVIDIA's CUDA images set NVIDIA_VISIBLE_DEVICES)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repair import pipeline
from repair.facts import facts_from_dict, facts_to_dict
from repair.probe.system import container_kind, probe_host
from tests.core_helpers import analyse


def _kind(tmp_path: Path, files: tuple[str, ...] = (), env: dict[str, str] | None = None):
    for name in files:
        (tmp_path / name).write_text("")
    return container_kind(env or {}, tmp_path / ".dockerenv", tmp_path / ".containerenv")


def test_each_engine_is_named_by_the_mark_it_leaves(tmp_path: Path) -> None:
    assert _kind(tmp_path) is None
    assert _kind(tmp_path, env={"container": "lxc"}) == "lxc"
    assert _kind(tmp_path, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "kubernetes"
    assert _kind(tmp_path, (".containerenv",), {"container": "podman"}) == "podman"
    assert _kind(tmp_path, (".dockerenv",)) == "docker"
    # a pod on a node with Docker's runtime has /.dockerenv too: the pod spec is what asks
    assert _kind(tmp_path, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "kubernetes"


def test_the_host_probe_reports_the_container(tmp_path: Path) -> None:
    (tmp_path / ".dockerenv").write_text("")
    host = probe_host(
        environ={},
        dockerenv=tmp_path / ".dockerenv",
        containerenv=tmp_path / "none",
        proc_version=tmp_path / "none",
        nv_tegra_release=tmp_path / "none",
    )
    import platform

    assert host.container == ("docker" if platform.system() == "Linux" else None)


def _container_doc(env: dict | None, torch_cuda: str | None, container: str | None = "docker"):
    torch = "2.5.1+cu121" if torch_cuda else "2.5.1+cpu"
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.35"},
        "driver": {"found": False, "error": "NVML Shared Library Not Found"},
        "python": {"version": "3.11.7", "in_venv": False},
        "packages": {"torch": torch, "bitsandbytes": "0.45.0"},
        "torch": {"version": torch, "cuda": torch_cuda},
        "env": env or {},
    }
    if container:
        doc["host"]["container"] = container
    return doc


def _driver_step(doc: dict):
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    [f] = [f for f in plan.findings if f.id == "no-nvidia-driver"]
    return m, f


@pytest.mark.parametrize(
    ("env", "torch_cuda", "required"),
    [
        ({"NVIDIA_VISIBLE_DEVICES": "all"}, None, True),  # NVIDIA's CUDA image
        ({}, "12.1", True),  # a CUDA torch installed for a GPU
        ({}, None, False),  # nothing says a GPU was meant: CPU 4-bit is as likely
    ],
)
def test_a_container_without_the_driver_is_told_how_to_get_the_gpu(env, torch_cuda, required):
    m, f = _driver_step(_container_doc(env, torch_cuda))
    assert m.required is required
    assert "`docker run --gpus all ...`" in m.text and "NVIDIA Container Toolkit" in m.text
    assert m.text.startswith("if the host has an NVIDIA GPU") is (not required)
    assert "4-bit on the CPU" in m.text  # the alternative stays
    assert f.evidence["container"] == "docker" and "docker container" in f.summary


def test_a_hidden_gpu_and_other_engines_are_named() -> None:
    m, _ = _driver_step(_container_doc({"NVIDIA_VISIBLE_DEVICES": "void"}, None))
    assert "NVIDIA_VISIBLE_DEVICES='void'" in m.text and m.required
    m, _ = _driver_step(_container_doc({}, "12.1", "kubernetes"))
    assert "nvidia.com/gpu: 1" in m.text
    m, _ = _driver_step(_container_doc({}, "12.1", "podman"))
    assert "--device nvidia.com/gpu=all" in m.text


def test_outside_a_container_the_driver_step_is_as_before() -> None:
    m, f = _driver_step(_container_doc({}, "12.1", None))
    assert not m.required and "install an NVIDIA driver" in m.text
    assert "container" not in f.evidence


def test_the_container_round_trips_in_the_facts_json() -> None:
    f = facts_from_dict(_container_doc({}, None, "podman"))
    assert f.host is not None and f.host.container == "podman"
    assert facts_to_dict(f)["host"]["container"] == "podman"


@pytest.mark.parametrize(
    ("container", "how"),
    [
        ("kubernetes", "nvidia.com/gpu: 1"),
        ("podman", "--device nvidia.com/gpu=all"),
        ("lxc", "`--gpus all` and the NVIDIA Container Toolkit"),  # an engine S105 has no way for
        (None, "`--gpus all` and the NVIDIA Container Toolkit"),  # engine unknown: Docker's way
    ],
)
def test_a_cuda_torch_that_sees_no_gpu_is_told_its_engines_way(container, how) -> None:
    """A CUDA torch, torch.cuda.is_available() False, and the driver not read in this process:
    the advice names how this engine gives a container the GPU (S105), not Docker's flag
    everywhere."""
    doc = _container_doc({}, "12.1", container)
    doc["driver"] = {"found": None}
    doc["gpus"] = [{"index": 0, "name": "NVIDIA A10G", "compute_capability": "8.6"}]
    doc["torch"]["cuda_available"] = False
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if "sees no usable GPU" in m.text]
    assert how in m.text
    named = container in ("kubernetes", "podman")
    assert (f"give this {container} container the GPU" in m.text) is named


def test_a_container_whose_driver_answers_is_not_told_to_start_with_the_gpu() -> None:
    """NVML answered inside the container (the probe runs there): it was started with the GPU,
    so the advice goes straight to the checks instead of a clause the facts contradict."""
    doc = _container_doc({}, "12.1", "docker")
    doc["driver"] = {"found": True, "version": "550.54.15", "cuda": "12.4"}
    doc["gpus"] = [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}]
    doc["torch"]["cuda_available"] = False
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if "sees no usable GPU" in m.text]
    assert "--gpus all" not in m.text and "this docker container" not in m.text
    assert "check `nvidia-smi`" in m.text


def test_hosted_notebooks_are_named_before_the_engine_under_them(tmp_path: Path) -> None:
    """A hosted notebook may run under a container engine (a /.dockerenv, a Kubernetes pod), but
    its user gets a GPU from the notebook's setting (S115): the variables it sets name it first."""
    colab = {"COLAB_RELEASE_TAG": "release-colab-20261201-060115-RC00"}
    assert _kind(tmp_path, (".dockerenv",), colab) == "colab"
    assert _kind(tmp_path, env={"COLAB_GPU": ""}) == "colab"
    kaggle = {"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert _kind(tmp_path, env=kaggle) == "kaggle"


@pytest.mark.parametrize("text", [None, "RuntimeError: Found no NVIDIA driver on your system."])
def test_a_colab_cpu_runtime_is_told_to_choose_a_gpu_runtime_not_docker_flags(text) -> None:
    """Colab's CPU runtime with its CUDA torch: the step is Colab's runtime setting (required:
    the CUDA torch was installed for a GPU), never `docker run --gpus all` or the toolkit."""
    doc = _container_doc({}, "12.1", container="colab")
    a = pipeline.analyse(facts_from_dict(doc), error_text=text)
    [m] = [m for m in a.plan.manual if m.id == "no-nvidia-driver"]
    [f] = [f for f in a.plan.findings if f.id == "no-nvidia-driver"]
    assert m.required
    assert "Runtime > Change runtime type" in m.text and "run the install cells again" in m.text
    assert "docker" not in m.text and "Container Toolkit" not in m.text
    assert "in this Colab runtime" in f.summary


def test_a_colab_runtime_with_a_gpu_listed_is_not_told_it_has_none() -> None:
    """A T4 listed, the driver not reported, a CUDA torch that sees no GPU: the advice for the
    process says what to do if the runtime has no GPU, not that it has none."""
    doc = _container_doc({}, "12.1", container="colab")
    doc["driver"] = {"found": None}
    doc["gpus"] = [{"index": 0, "name": "Tesla T4", "compute_capability": "7.5"}]
    doc["torch"]["cuda_available"] = False
    _, plan = analyse(facts_from_dict(doc))
    texts = [m.text for m in plan.manual] + list(plan.notes)
    said = [t for t in texts if "Colab runtime" in t]
    assert said and all("if this Colab runtime has no GPU" in t for t in said)
    assert not any("docker" in t or "fabricmanager" in t for t in texts)


@pytest.mark.parametrize(("torch_cuda", "required"), [("12.1", True), (None, False)])
def test_wsl_without_a_driver_is_told_the_driver_is_the_windows_one(torch_cuda, required) -> None:
    """Under WSL 2 the GPU comes from the Windows driver (S116): the step says to install it on
    Windows and never a Linux driver inside WSL; required where a CUDA torch was installed."""
    doc = _container_doc({}, torch_cuda, container=None)
    doc["host"]["wsl"] = True
    m, _ = _driver_step(doc)
    assert m.required is required
    assert "NVIDIA driver on Windows" in m.text and "never a Linux driver inside WSL" in m.text
    assert "WSL 1 has no GPU" in m.text
    assert "install an NVIDIA driver and GPU" not in m.text


@pytest.mark.parametrize(
    ("os_release", "probed", "seen"),
    [
        ("Unraid (Docker container)", None, "docker"),
        (
            "Ubuntu 22.04 container (nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04)",
            None,
            "container",
        ),
        ("Google Colab (CPU runtime)", None, "colab"),
        ("Kaggle default Docker image", None, "kaggle"),  # the notebook before its engine
        ("Ubuntu 22.04", None, None),
        ("Ubuntu 22.04 (Docker container)", "podman", "podman"),  # the probe's mark wins
    ],
)
def test_a_reports_os_description_names_the_container(os_release, probed, seen) -> None:
    """A report writes where it ran in its OS description; a probe names the engine itself
    (host.container), which wins."""
    from repair.knowledge import load_knowledge
    from repair.view import make_view

    host: dict = {"system": "Linux", "os_release": os_release}
    if probed:
        host["container"] = probed
    view = make_view(facts_from_dict({"schema": "qfix.facts/1", "host": host}), load_knowledge())
    assert view.container == seen


def test_a_report_of_a_container_without_a_driver_is_told_how_to_give_it_the_gpu() -> None:
    """A report of a container whose driver was not found (the OS description says container):
    the advice is how a container gets the host's GPU, in words for an engine it does not name,
    not a driver install inside it."""
    doc = {
        "schema": "qfix.facts/1",
        "host": {"system": "Linux", "os_release": "Ubuntu 22.04 container (nvidia/cuda:12.4.1)"},
        "driver": {"found": False, "source": "report"},
        "packages": {"transformers": None, "bitsandbytes": None},
    }
    _, plan = analyse(facts_from_dict(doc))
    [m] = [m for m in plan.manual if m.id == "no-nvidia-driver"]
    assert "this container does not see it" in m.text and "docker run --gpus all" in m.text
    assert "container container" not in m.text
