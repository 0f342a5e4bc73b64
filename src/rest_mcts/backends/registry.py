"""Which policy backends and value scorers exist, what each can do, and building them.

Every backend class registers itself where it is defined, with a name and a
:class:`Capabilities` record::

    @register_policy("hf", Capabilities(needs_model=True, trainable=True))
    class HFPolicyBackend: ...

A config node names its class by ``_target_``; :func:`policy_capabilities` and
:func:`scorer_capabilities` import that class (which registers it) and look it up by the
class itself (a subclass inherits its base's entry). Stages ask the capabilities instead of
testing class names: does this scorer need a model (else it is built from its config
alone), can the loop train it, must it be closed.

:func:`build_policy` and :func:`build_scorer` are the one place a configured backend is
built from its node (through :func:`rest_mcts.config.instantiate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from rest_mcts.backends.base import PolicyBackend, ValueScorer
from rest_mcts.config import ConfigError, instantiate

logger = logging.getLogger(__name__)

KINDS = ("policy", "scorer")
T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do and needs.

    Attributes:
        trainable: a neural model the loop can train and reload (the HF policy and value
            model), as opposed to a fixed one (the oracle scorer, the scripted mock policy).
        needs_model: built from a model path or backbone (``model_path=`` / ``model=``);
            False: built from its config alone.
        must_close: holds resources (processes, GPU memory, connections) that the caller
            releases with ``close()`` when done.
        needs_world: takes the run's world (``world=``), e.g. the oracle scorer.
        takes_loaded_model: a scorer that can be handed a model already in memory
            (``model=``, ``tokenizer=``), which is how an untrained value head on
            ``prm.backbone`` is served; False: only a saved folder (``prm.path``), e.g.
            ``prm=vllm``, whose engine loads the weights itself.
        requires: packages the backend imports when it is built (inside its constructor),
            checked before any work by :func:`check_installed`.
        install: how to install ``requires`` (named in that check's error).
    """

    trainable: bool = False
    needs_model: bool = False
    must_close: bool = False
    needs_world: bool = False
    takes_loaded_model: bool = True
    requires: tuple[str, ...] = ()
    install: str = ""


@dataclass(frozen=True)
class Registration:
    """One registered class: its name, kind (``policy`` or ``scorer``) and capabilities."""

    name: str
    kind: str
    cls: type
    capabilities: Capabilities


_REGISTRY: dict[str, dict[type, Registration]] = {kind: {} for kind in KINDS}


def _register(kind: str, name: str, capabilities: Capabilities) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        for other in _REGISTRY[kind].values():
            if other.name == name and other.cls is not cls:
                raise ValueError(f"{kind} name {name!r} is already registered for {other.cls}")
        _REGISTRY[kind][cls] = Registration(name, kind, cls, capabilities)
        return cls

    return decorate


def register_policy(name: str, capabilities: Capabilities) -> Callable[[T], T]:
    """Class decorator: register a :class:`~rest_mcts.backends.base.PolicyBackend` class."""
    return _register("policy", name, capabilities)


def register_scorer(name: str, capabilities: Capabilities) -> Callable[[T], T]:
    """Class decorator: register a :class:`~rest_mcts.backends.base.ValueScorer` class."""
    return _register("scorer", name, capabilities)


def registered(kind: str) -> dict[str, Registration]:
    """The classes of ``kind`` registered so far (those whose modules were imported), by name."""
    return {entry.name: entry for entry in _REGISTRY[kind].values()}


def lookup(kind: str, node_or_class: Mapping[str, Any] | type) -> Registration:
    """The registration of a config node's ``_target_`` class (or of a class).

    Raises:
        ConfigError: no ``_target_``, the class cannot be imported, or it is not registered.
    """
    cls = node_or_class if isinstance(node_or_class, type) else _target_class(kind, node_or_class)
    for klass in cls.__mro__:
        entry = _REGISTRY[kind].get(klass)
        if entry is not None:
            return entry
    names = ", ".join(sorted(registered(kind))) or "none"
    raise ConfigError(
        f"{cls.__module__}.{cls.__qualname__} is not a registered {kind} class "
        f"(registered: {names}); decorate it with backends.registry.register_{kind}"
    )


def policy_capabilities(backend_node: Mapping[str, Any] | type) -> Capabilities:
    """Capabilities of the policy backend a ``backend`` config node (or class) builds."""
    return lookup("policy", backend_node).capabilities


def scorer_capabilities(scorer_node: Mapping[str, Any] | type) -> Capabilities:
    """Capabilities of the value scorer a ``prm.scorer`` config node (or class) builds."""
    return lookup("scorer", scorer_node).capabilities


def check_installed(nodes: Mapping[str, tuple[str, Mapping[str, Any] | None]]) -> None:
    """Refuse, before any work, a configured backend whose packages (its
    :attr:`Capabilities.requires`) cannot be imported: asked of ``importlib.util.find_spec``,
    which imports nothing.

    Args:
        nodes: option name (``backend``, ``prm.scorer``) -> (kind, its config node or None).

    Raises:
        ConfigError: one line naming the option, the missing package and how to install it.
    """
    import importlib.util

    for option, (kind, node) in nodes.items():
        if not node or "_target_" not in node:
            continue
        entry = lookup(kind, node)
        missing = [p for p in entry.capabilities.requires if importlib.util.find_spec(p) is None]
        if missing:
            how = f": {entry.capabilities.install}" if entry.capabilities.install else ""
            raise ConfigError(f"{option}: {', '.join(missing)} is not installed "
                              f"(the {entry.name} {kind} needs it){how}")


def build_policy(
    backend_node: Mapping[str, Any], model_path: str | Path | None,
    revisions: Mapping[str, str] | None = None,
) -> PolicyBackend:
    """The policy backend of a ``backend`` config node, serving the model at ``model_path``
    (ignored, and may be None, for a backend without a model such as ``mock``); ``revisions``
    (hub id -> pinned revision) gives its revision, passed only when it has one."""
    if policy_capabilities(backend_node).needs_model:
        if model_path is None:
            raise ConfigError("backend: this policy backend needs a model path")
        return instantiate(backend_node, "backend", model_path=str(model_path),
                           **_revision((revisions or {}).get(str(model_path))))
    return instantiate(backend_node, "backend")


def build_scorer(
    scorer_node: Mapping[str, Any],
    *,
    prm_path: str | Path | None,
    backbone: str | Path | None,
    seed: int,
    world: Any = None,
    revisions: Mapping[str, str] | None = None,
) -> ValueScorer:
    """The value scorer of a ``prm.scorer`` config node.

    * A scorer without a model (the oracle) is built from its config alone (plus ``world``
      when it takes one).
    * ``prm_path`` set: that trained value model.
    * ``prm_path`` unset: a value model whose backbone is ``backbone`` (``prm.backbone``, or
      else the policy) under a freshly initialised, UNTRAINED regression head (seeded by
      ``seed``), as the paper initialises the PRM from the policy; a warning says so. A
      scorer that loads only saved folders (``takes_loaded_model=False``) needs ``prm_path``.

    Args:
        scorer_node: the ``prm.scorer`` node (``_target_`` and knobs).
        prm_path: trained value-model folder or hub id (``prm.path``), or None.
        backbone: causal LM under a fresh head when ``prm_path`` is None.
        seed: seed of the fresh head.
        world: the run's world, passed to scorers that take one (``needs_world``).
        revisions: hub id -> pinned revision (``prm.revision``, ``model.revision``): the
            revision of ``prm_path`` or ``backbone``, passed only when that id has one.

    Raises:
        ConfigError: the scorer needs a model and neither ``prm_path`` nor ``backbone`` is set,
            or it loads only saved folders and ``prm_path`` is unset.
    """
    capabilities = scorer_capabilities(scorer_node)
    extra = {"world": world} if capabilities.needs_world and world is not None else {}
    if not capabilities.needs_model:
        return instantiate(scorer_node, "prm.scorer", **extra)
    if prm_path:
        return instantiate(scorer_node, "prm.scorer", model_path=str(prm_path), **extra,
                           **_revision((revisions or {}).get(str(prm_path))))
    if not capabilities.takes_loaded_model:
        name = lookup("scorer", scorer_node).name
        raise ConfigError(
            f"prm.scorer ({name}) serves a trained value model: set prm.path (stage=init_prm "
            "or stage=train_prm writes one); an untrained head on the backbone needs prm=tiny"
        )
    if not backbone:
        raise ConfigError("prm.scorer needs a model: set prm.path (or prm.backbone / a policy)")
    from rest_mcts.models.factory import load_tokenizer, value_model_from_causal_lm

    logger.warning("prm.path is unset: scoring with an UNTRAINED value head on %s", backbone)
    remote = bool(scorer_node.get("trust_remote_code", False))
    revision = (revisions or {}).get(str(backbone))
    model = value_model_from_causal_lm(
        str(backbone),
        dtype=scorer_node.get("dtype", "float32"),
        device=scorer_node.get("device", "cpu"),
        trust_remote_code=remote,
        seed=seed,
        revision=revision,
    )
    tokenizer = load_tokenizer(str(backbone), trust_remote_code=remote, revision=revision)
    return instantiate(scorer_node, "prm.scorer", model=model, tokenizer=tokenizer, **extra)


def _revision(revision: str | None) -> dict[str, str]:
    """``revision=`` for a backend's constructor: only when set (an unset one adds nothing)."""
    return {"revision": str(revision)} if revision else {}


def close_backend(backend: Any) -> None:
    """Release what a policy backend or value scorer holds (GPU memory, processes,
    connections) when its class is registered with ``must_close``; others are left alone.
    Safe on None and on an unregistered object."""
    if backend is None:
        return
    entry = None
    for kind in KINDS:
        entry = next(
            (_REGISTRY[kind][klass] for klass in type(backend).__mro__ if klass in _REGISTRY[kind]),
            None,
        )
        if entry is not None:
            break
    if entry is not None and entry.capabilities.must_close:
        backend.close()


def _target_class(kind: str, node: Mapping[str, Any]) -> type:
    target = node.get("_target_") if hasattr(node, "get") else None
    if not target:
        raise ConfigError(f"the {kind} config node has no _target_")
    from hydra.utils import get_class

    try:
        return get_class(str(target))
    except Exception as err:  # noqa: BLE001 -- re-raised with the option's name
        raise ConfigError(f"{kind} _target_ {target!r} cannot be imported: {err}") from err
