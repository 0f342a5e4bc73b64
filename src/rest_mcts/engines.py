"""Which engine serves the models: transformers or vLLM (the ``engine`` config group).

``engine=hf`` (the default) composes ``backend=hf prm=tiny`` (transformers), ``engine=vllm``
composes ``backend=vllm prm=vllm``, and ``engine=auto`` (what the pretrained model configs
choose) picks vLLM when it is installed and torch sees a CUDA device, else transformers. The
primary config's defaults list asks :func:`group_option`, through the resolver
``${rest.engine:<group>,${engine}}``, which file of the ``backend`` and ``prm`` groups to
compose; a group named on the command line (``backend=hf``) wins over it. When the run
starts, :func:`auto_choice` says what ``engine=auto`` chose and why, once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

ENGINES = ("hf", "vllm", "auto")
# the option of each config group that serves its model on each engine
GROUP_OPTIONS = {
    "hf": {"backend": "hf", "prm": "tiny"},
    "vllm": {"backend": "vllm", "prm": "vllm"},
}
VLLM_INSTALL = "pip install -r requirements-gpu.txt"


def vllm_installed() -> bool:
    """Can ``vllm`` be imported? Asked of ``importlib.util.find_spec``, which imports nothing."""
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    """Does torch see a CUDA device?"""
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class AutoChoice:
    """What ``engine=auto`` chose on this machine.

    Attributes:
        engine: ``vllm`` when vLLM is installed and torch sees a CUDA device, else ``hf``.
        vllm: vLLM is installed.
        cuda: torch sees a CUDA device.
    """

    engine: str
    vllm: bool
    cuda: bool

    def reason(self) -> str:
        """Why, in a few words."""
        if self.engine == "vllm":
            return "vLLM is installed and torch sees a CUDA device"
        if not self.cuda:
            return "torch sees no CUDA device"
        return f"torch sees a CUDA device but vLLM is not installed ({VLLM_INSTALL})"

    def message(self, serving: str) -> str:
        """The line a run logs as it starts; ``serving`` says which backends were composed
        (a group named on the command line wins over the choice)."""
        return f"engine=auto chose {self.engine} ({self.reason()}): {serving}"

    @property
    def is_notice(self) -> bool:
        """A GPU without vLLM: the models run on transformers, which the user may not want."""
        return self.cuda and not self.vllm


def rule(vllm: bool, cuda: bool) -> str:
    """``engine=auto``'s rule: ``vllm`` when vLLM is installed and torch sees a CUDA device,
    else ``hf``."""
    return "vllm" if vllm and cuda else "hf"


def choose_engine() -> str:
    """``engine=auto``'s engine on this machine (torch is asked only when vLLM is installed:
    composing a config without vLLM imports no torch)."""
    vllm = vllm_installed()
    return rule(vllm, vllm and cuda_available())


def auto_choice() -> AutoChoice:
    """``engine=auto``'s choice with both facts it rests on."""
    vllm, cuda = vllm_installed(), cuda_available()
    return AutoChoice(rule(vllm, cuda), vllm, cuda)


def group_option(group: str, engine: str) -> str:
    """The option of config group ``group`` (``backend`` or ``prm``) that serves its model
    on ``engine`` (``hf``, ``vllm`` or ``auto``): the resolver ``${rest.engine:...}``.

    Raises:
        ValueError: an unknown group or engine (one line naming it).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} must be one of {', '.join(ENGINES)}")
    if group not in GROUP_OPTIONS["hf"]:
        raise ValueError(f"rest.engine: group {group!r} must be one of "
                         f"{', '.join(GROUP_OPTIONS['hf'])}")
    chosen = choose_engine() if engine == "auto" else engine
    return GROUP_OPTIONS[chosen][group]
