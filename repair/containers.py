"""How a container gets the host's NVIDIA GPU, by engine (S105).

The NVIDIA Container Toolkit mounts the host driver's user-space libraries (libcuda.so.1) and the
GPU devices into a container only when the container is started with the GPU; each engine asks
for it its own way. The host probe names the engine (``host.container``, from the mark it leaves);
where it is not known, the advice names Docker's way and the toolkit, as most reports are Docker.

Pure: texts only.
"""

from __future__ import annotations

# S105: NVIDIA Container Toolkit, "Specialized Configurations with Docker" and "Support for
# Container Device Interface"; NVIDIA's Kubernetes device plugin (the nvidia.com/gpu resource)
HOW_BY_ENGINE = {
    "docker": "start it with `docker run --gpus all ...`",
    "podman": "start it with `podman run --device nvidia.com/gpu=all ...` (CDI: "
    "`sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` on the host)",
    "kubernetes": "request the GPU in the pod spec (`resources: limits: nvidia.com/gpu: 1`; "
    "NVIDIA's device plugin or GPU Operator on the node)",
    # an engine the report does not name: Docker's way, which most reports use
    "container": "start it with the GPU (`docker run --gpus all ...`, or the engine's own way)",
}


# Hosted notebooks may run in a container engine too, but their user gets a GPU from the
# notebook's own setting, not from an engine's flag (S115: Colab's runtime type, which restarts
# the runtime and loses what was installed in it; Kaggle's accelerator setting). The probe names
# them by the variables they set (repair/probe/system.py).
NOTEBOOKS = {
    "colab": (
        "Colab",
        "choose a GPU runtime (Runtime > Change runtime type > Hardware accelerator); the "
        "runtime restarts, so run the install cells again",
    ),
    "kaggle": ("Kaggle", "turn on a GPU accelerator in the notebook's settings"),
}


# A report that says "container" without naming its engine
GENERIC = "container"


def where_words(container: str, article: str = "this") -> str:
    """ "this docker container", "a Colab runtime": how a sentence names where qfix ran."""
    if container in NOTEBOOKS:
        return f"{article} {NOTEBOOKS[container][0]} runtime"
    if container == GENERIC:
        return f"{article} container"
    return f"{article} {container} container"


def notebook_gpu_text(container: str, *, known_without: bool = True) -> str | None:
    """How a hosted notebook gets a GPU, or None where ``container`` is not one;
    ``known_without``: the facts show the runtime has none (else the text is conditional)."""
    if container not in NOTEBOOKS:
        return None
    name, how = NOTEBOOKS[container]
    lead = (
        f"this {name} runtime has no GPU: "
        if known_without
        else f"if this {name} runtime has no GPU, "
    )
    return f"{lead}{how}; then `!nvidia-smi` in a cell lists it"


def gpu_how(container: str) -> str:
    """How a container of this engine is started with the host's GPU (a hosted notebook's way
    is notebook_gpu_text's)."""
    return HOW_BY_ENGINE.get(container, "start it with the host's GPU")


def start_with_gpu(container: str | None) -> str:
    """The clause that tells how to give a container the GPU: this engine's way where the probe
    named one the toolkit documents (a hosted notebook's setting), else the general words
    (`--gpus all` and the toolkit)."""
    # said where the process sees no GPU: a notebook's runtime may have one that is not reached
    notebook = notebook_gpu_text(container, known_without=False) if container else None
    if notebook is not None:
        return notebook
    if container in HOW_BY_ENGINE:
        return (
            f"give {where_words(container)} the GPU: {gpu_how(container)}, with the NVIDIA "
            "Container Toolkit on the host"
        )
    return (
        "in a container, start it with the GPU (`--gpus all` and the NVIDIA Container Toolkit, "
        "or the GPU image of the platform)"
    )
