"""What every step of a run shares, typed and built once from the composed config.

:class:`Context` is the run's composition root: it holds the world, the model backends to
build (policy and value scorer, as ``_target_`` specs, built for whichever checkpoint a step
needs), the training settings of both models, the Lightning trainer, the logger, the seed and
the executor. ``run_stage`` builds it once with :meth:`Context.from_config` (which validates
everything up front; :class:`rest_mcts.runtime.spec.RunSpec`); library functions in
:mod:`rest_mcts.runtime` and :mod:`rest_mcts.loop` take it and never read the global config.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from rest_mcts.config import ConfigError, Knobs, check_value, instantiate, knob
from rest_mcts.runtime.executors import executor_from
from rest_mcts.runtime.keys import policy0_key, prm0_key, unsharded
from rest_mcts.training.settings import TrainerSpec, TrainSettings
from rest_mcts.worlds.base import Problem


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def hub_revisions(node: Mapping[str, Any], *paths: str) -> dict[str, str]:
    """Hub id -> pinned revision of a ``model`` or ``prm`` node: its first set ``paths``
    option (``path``; the PRM's ``path``, else ``backbone``) at its ``revision``. Empty for a
    local path or an unset revision: those loads pass no revision."""
    from rest_mcts.models.source import is_hub_id

    path = next((node.get(p) for p in paths if node.get(p)), None)
    revision = node.get("revision")
    if not path or not revision or not is_hub_id(str(path)):
        return {}
    return {str(path): str(revision)}


def _flag(option: str, value: Any) -> bool:
    """A true/false option (one-line ConfigError naming it otherwise)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{option}={value!r} must be true or false")
    return value


@dataclass(frozen=True)
class TinyModelSpec(Knobs):
    """The built-in tiny Llama policy trained from scratch by the bootstrap (``model=tiny``)."""

    knob_prefix: ClassVar[str] = "model"

    hidden_size: int = knob(128, low=1, integer=True)
    num_layers: int = knob(2, low=1, integer=True)
    num_heads: int = knob(4, low=1, integer=True)
    max_position_embeddings: int = knob(256, low=1, integer=True)


@dataclass(frozen=True)
class BootstrapData(Knobs):
    """Traces policy_0 is trained on (``data.bootstrap``): correct solutions (share
    ``correct_share``) mixed with random legal paths, each of whose steps is, with probability
    ``guided_step_prob`` and while the target is still reachable, a move that keeps it
    reachable (else a uniformly random legal move). The two shares set the base policy's
    strength: ``guided_step_prob`` gives it step skill above chance without teaching it whole
    solutions."""

    knob_prefix: ClassVar[str] = "data.bootstrap"

    train_problems: int = knob(3000, low=1, integer=True)
    num_traces: int = knob(80000, low=1, integer=True)
    correct_share: float = knob(0.35, low=0, high=1, what="share of correct traces")
    val_traces: int = knob(1000, low=1, integer=True)
    guided_step_prob: float = knob(0.0, low=0, high=1, what="chance that a step of a "
                                   "non-correct trace keeps the target reachable")


# the searches that ask the value model only for whole sampled solutions: what an outcome reward
# model (prm.outcome, prm=orm) can score (rest_mcts.search.baselines)
OUTCOME_SEARCHES = ("best_of_n", "weighted_vote")


@dataclass(frozen=True)
class Context:
    """The run's world, models, training settings and seed.

    Attributes:
        seed: seed of everything (problems, initialisation, sampling).
        data_name: the world's config name (``data=...``), for folder names.
        world_spec: ``data.world`` (``_target_`` node).
        max_solution_tokens: token cap of a whole solution.
        policy_backend: ``backend`` (``_target_`` node of the policy backend).
        scorer: ``prm.scorer`` (``_target_`` node of the value scorer).
        model_path: ``model.path``: the policy to start from (None: the bootstrapped policy_0).
        model_bootstrap: ``model.bootstrap``: policy_0 is ``model_path`` fine-tuned on the
            world's bootstrap traces (a pretrained model on Countdown) instead of the model as
            it is.
        prm_path: ``prm.path``: a trained PRM (None: untrained head or a model-free scorer).
        prm_backbone: ``prm.backbone``: causal LM under a fresh value head (None: the policy).
        prm_name: ``prm=...`` (the value model's config name), for messages.
        prm_require_trained: ``prm.require_trained``: stage=search/eval refuse an untrained
            value head (the pretrained model configs set it).
        prm_outcome: ``prm.outcome``: the value model is an outcome reward model (``prm=orm``),
            which scores whole solutions only (:meth:`check_outcome_model`).
        model_name: ``model.name``, for messages.
        policy: policy training settings (``policy.*``; they also key the policy_0 cache).
        prm: PRM training settings (``prm.*``).
        trainer: the Lightning trainer.
        logger: ``logger`` (``_target_`` node) or None.
        cache_dir: cache of built artefacts (policy_0).
        tiny_model: architecture of the bootstrapped tiny policy (None for pretrained models).
        bootstrap: policy_0's training traces (None for worlds without a solver).
        policy0_key: fingerprint of everything that shapes policy_0.
        prm_init: ``prm.init`` (``prm=trained``): how the cached PRM_0 is made (D_V0 and its
            rows, resolved; typed by :func:`rest_mcts.loop.prm0.prm0_recipe`); None: the
            ``prm`` option builds no PRM_0.
        prm0_key: fingerprint of everything that shapes that PRM_0
            (:func:`rest_mcts.runtime.keys.prm0_key`); None without ``prm.init``.
        policy_revisions: hub id -> pinned revision (branch, tag or commit) of the policy's
            hub loads: ``model.path`` at ``model.revision`` (:func:`hub_revisions`); ids not
            listed load ``main``.
        prm_revisions: the same for the PRM's loads: ``prm.path`` (else ``prm.backbone``) at
            ``prm.revision``, over ``policy_revisions`` (a PRM on the policy's backbone).
        executor: where searches run (``executor=local|ray``,
            :mod:`rest_mcts.runtime.executors`; None: in this process). Never part of a key:
            every executor gives the same answers.
    """

    seed: int
    data_name: str
    world_spec: Mapping[str, Any]
    max_solution_tokens: int
    policy_backend: Mapping[str, Any]
    scorer: Mapping[str, Any]
    policy: TrainSettings
    prm: TrainSettings
    trainer: TrainerSpec
    cache_dir: Path
    policy0_key: str
    model_path: str | None = None
    model_bootstrap: bool = False
    prm_path: str | None = None
    prm_backbone: str | None = None
    logger: Mapping[str, Any] | None = None
    tiny_model: TinyModelSpec | None = None
    bootstrap: BootstrapData | None = None
    prm_name: str = ""
    prm_require_trained: bool = False
    prm_outcome: bool = False
    model_name: str = ""
    policy_revisions: Mapping[str, str] = field(default_factory=dict)
    prm_revisions: Mapping[str, str] = field(default_factory=dict)
    executor: Any = None
    prm_init: Mapping[str, Any] | None = None
    prm0_key: str | None = None

    def __post_init__(self) -> None:
        check_value("data.max_solution_tokens", self.max_solution_tokens, 1, integer=True)
        self.trainer.check_lora(self.policy)
        self.trainer.check_lora(self.prm)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, cfg: Any, resources: contextlib.ExitStack | None = None) -> "Context":
        """The context of a composed Hydra config (validated: one-line ConfigError).

        ``resources``: the stage's resource stack, on which the executor registers its
        shutdown as it is created (:func:`rest_mcts.runtime.executors.executor_from`)."""
        model = _plain(cfg.model)
        data = unsharded(_plain(cfg.data))
        policy_node = _plain(cfg.policy)
        tiny = None
        if all(k in model for k in ("hidden_size", "num_layers", "num_heads")):
            tiny = TinyModelSpec(**{k: model[k] for k in (
                "hidden_size", "num_layers", "num_heads", "max_position_embeddings") if k in model})
        boot = BootstrapData(**data["bootstrap"]) if data.get("bootstrap") else None
        trainer = _plain(cfg.trainer)
        key = policy0_key(cfg)
        prm = _plain(cfg.prm)
        require_trained = _flag("prm.require_trained", prm.get("require_trained", False))
        return cls(
            seed=int(cfg.seed),
            data_name=str(data["name"]),
            world_spec=data["world"],
            max_solution_tokens=data["max_solution_tokens"],
            policy_backend=_plain(cfg.backend),
            scorer=prm["scorer"],
            policy=TrainSettings.from_node("policy", policy_node),
            prm=TrainSettings.from_node("prm", prm),
            trainer=TrainerSpec.from_node(trainer),
            cache_dir=Path(cfg.paths.cache_dir),
            policy0_key=key,
            model_path=None if model.get("path") is None else str(model["path"]),
            model_bootstrap=_flag("model.bootstrap", model.get("bootstrap", False)),
            prm_path=None if prm.get("path") is None else str(prm["path"]),
            prm_backbone=None if prm.get("backbone") is None else str(prm["backbone"]),
            logger=_plain(cfg.get("logger")),
            tiny_model=tiny,
            bootstrap=boot,
            prm_name=str(prm.get("name", "")),
            prm_require_trained=require_trained,
            prm_outcome=_flag("prm.outcome", prm.get("outcome", False)),
            model_name=str(model.get("name", "")),
            policy_revisions=hub_revisions(model, "path"),
            prm_revisions={**hub_revisions(model, "path"),
                           **hub_revisions(prm, "path", "backbone")},
            executor=executor_from(cfg.get("executor"), resources),
            prm_init=prm.get("init"),
            prm0_key=prm0_key(cfg),
        )

    @functools.cached_property
    def world(self) -> Any:
        """The world (built once)."""
        return instantiate(dict(self.world_spec), "data.world")

    def search_fn(self, search: Any) -> Any:
        """``Question -> SearchGen``: the method ``search`` (a typed search config) bound to the
        run's world and solution token cap (:func:`rest_mcts.search.registry.make_search`),
        checked against the world once per config in this process: the runner's check before
        any model or actor starts and the Searcher that then runs it share one binding.

        Raises:
            ConfigError: a bad method, or one that does not suit the world (one line).
        """
        from rest_mcts.search.configs import search_config_from
        from rest_mcts.search.registry import make_search

        search = search_config_from(search)  # a typed config comes back as it is
        bound = self.__dict__.setdefault("_search_fns", {})
        if search not in bound:
            try:
                bound[search] = make_search(search, self.world,
                                            max_solution_tokens=self.max_solution_tokens)
            except (TypeError, ValueError) as err:
                raise ConfigError(str(err)) from err
        return bound[search]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (sent to a Ray actor) without the bound searches: a process binds its own."""
        return {k: v for k, v in self.__dict__.items() if k != "_search_fns"}

    def pool(self, use: str) -> str:
        """The split that questions for ``use`` come from: ``bootstrap`` (policy_0's traces),
        ``d_v0`` (PRM_0's trees), ``search`` (the self-training searches), ``val`` or ``eval``.
        A world with a ``pools`` mapping (Countdown) gives each use its own disjoint pool;
        other worlds draw bootstrap, D_V0 and the searches from ``train`` (the paper folds
        the MATH train set into both D_V0 and D_G)."""
        default = {"bootstrap": "train", "d_v0": "train", "search": "train", "val": "val",
                   "eval": "test"}
        if use not in default:
            raise ValueError(f"unknown question use {use!r}; one of {sorted(default)}")
        return dict(getattr(self.world, "pools", None) or {}).get(use, default[use])

    def problems(self, split: str, n: int, at_most: bool = False) -> list[Problem]:
        """``n`` problems of a split, generated from the run's seed (disjoint across splits).

        With ``at_most``, fewer when the split holds fewer distinct problems (else an error)."""
        world = self.world
        if at_most and hasattr(world, "count_problems"):
            n = min(n, world.count_problems(split))
        return world.generate(int(n), seed=self.seed, split=split)

    def policy0_dir(self) -> Path:
        """Cache folder of the bootstrapped policy_0, keyed by everything that shapes it."""
        return self.cache_dir / "policy0" / f"{self.data_name}-s{self.seed}-{self.policy0_key}"

    def prm0_dir(self) -> Path:
        """Cache folder of ``prm=trained``'s PRM_0, keyed by everything that shapes it.

        Raises:
            ConfigError: the ``prm`` option builds no PRM_0 (no ``prm.init``).
        """
        if self.prm0_key is None:
            raise ConfigError(f"prm={self.prm_name} builds no PRM_0 (use prm=trained)")
        return self.cache_dir / "prm0" / f"{self.data_name}-s{self.seed}-{self.prm0_key}"

    # ------------------------------------------------------------------ models
    def build_policy(self, model_path: str | Path) -> Any:
        """The policy backend (``backend=...``) serving the model at ``model_path``."""
        from rest_mcts.backends.registry import build_policy

        return build_policy(dict(self.policy_backend), str(model_path), self.policy_revisions)

    def build_scorer(self, prm_path: str | Path | None, policy_path: str | Path | None) -> Any:
        """The value scorer (``prm=...``): the PRM at ``prm_path``; without one, a scorer that
        needs no model (the oracle) or an untrained value head on ``prm.backbone`` / the policy
        (with a warning), as the paper initialises the PRM from the policy."""
        from rest_mcts.backends.registry import build_scorer

        return build_scorer(
            dict(self.scorer), prm_path=None if prm_path is None else str(prm_path),
            backbone=self.prm_backbone or (None if policy_path is None else str(policy_path)),
            seed=self.seed, world=self.world, revisions=self.prm_revisions,
        )

    def revision_of(self, path: str | Path | None, prm: bool = False) -> str | None:
        """The pinned hub revision of ``path`` as the policy (or, with ``prm``, the PRM)
        loads it; None for anything else (local folders: the run's own models)."""
        pins = self.prm_revisions if prm else self.policy_revisions
        return None if path is None else pins.get(str(path))

    def policy_needs_model(self) -> bool:
        """Does the policy backend serve a model (not the scripted ``backend=mock``)?"""
        from rest_mcts.backends.registry import policy_capabilities

        return policy_capabilities(dict(self.policy_backend)).needs_model

    def require_model_policy(self, what: str) -> None:
        """One-line error when ``backend=...`` serves no model of its own (``mock``, ``openai``):
        a retrained policy could not be loaded into it."""
        if not self.policy_needs_model():
            from rest_mcts.backends.registry import lookup

            name = lookup("policy", dict(self.policy_backend)).name
            raise ConfigError(
                f"backend={name}: {what} retrains the policy and loads each new one, which this "
                "backend cannot (use backend=hf)"
            )

    def scorer_is_trainable(self) -> bool:
        """Does ``prm=...`` name a neural value model the loop can train (not the oracle)?"""
        from rest_mcts.backends.registry import scorer_capabilities

        return scorer_capabilities(dict(self.scorer)).trainable

    def scores_with_untrained_head(self, search: Any) -> bool:
        """Would ``search`` score with a freshly initialised (untrained) value head: it asks
        for values, ``prm=...`` is a neural value model and ``prm.path`` is unset?"""
        from rest_mcts.search.registry import config_needs_scorer

        return (not self.prm_path and config_needs_scorer(search)
                and self.scorer_is_trainable())

    def require_trained_prm(self, search: Any) -> None:
        """Stop, before anything is loaded, when ``search`` would score with an untrained
        value head although ``prm.require_trained`` is set: one line saying how to get a
        trained PRM.

        Raises:
            ConfigError: ``prm.require_trained`` is true, ``prm.path`` is unset, the search
                asks for values and ``prm=...`` is a neural value model.
        """
        if not self.prm_require_trained or not self.scores_with_untrained_head(search):
            return
        if self.prm_outcome:
            raise ConfigError(
                f"prm={self.prm_name}: prm.path is unset and an untrained head is no outcome "
                "reward model: train one with `python run.py stage=train_prm stage.target=orm "
                "stage.trees_dir=<verified trees>` and pass prm.path=<that run folder>/orm")
        model = f"model={self.model_name}" if self.model_name else "this model"
        raise ConfigError(
            f"prm.path is unset and {model} is paired with a value-head PRM that must be "
            f"trained first: run `python run.py stage=init_prm {model} data={self.data_name}` "
            f"and pass prm.path=<that run folder>/prm (or prm.path=<a trained PRM>); "
            f"search={search.name} will not score with an untrained head"
        )

    def check_outcome_model(self, stage: str, search: Any) -> None:
        """An outcome reward model (``prm.outcome``) scores whole solutions: ``stage=loop``
        (which trains and searches with a PRM) refuses it, and under ``stage=search|eval`` a
        search that asks it for values must be one that scores finished solutions only
        (:data:`OUTCOME_SEARCHES`).

        Raises:
            ConfigError: one line naming the stage or the search method.
        """
        from rest_mcts.search.registry import config_needs_scorer

        if not self.prm_outcome:
            return
        if stage == "loop":
            raise ConfigError(f"prm={self.prm_name} is an outcome reward model: stage=loop trains "
                              "and searches with a PRM (use prm=tiny; evaluate the ORM with "
                              "stage=eval search=best_of_n|weighted_vote)")
        searching = stage in ("search", "eval") and search is not None
        if searching and config_needs_scorer(search) and search.name not in OUTCOME_SEARCHES:
            raise ConfigError(f"prm={self.prm_name} scores whole solutions only: search="
                              f"{search.name} asks for values of partial ones (use search="
                              f"{'|'.join(OUTCOME_SEARCHES)})")

    def require_trainable_scorer(self, what: str) -> None:
        """One-line error when ``prm=...`` is not a trainable value model."""
        if not self.scorer_is_trainable():
            raise ConfigError(
                f"prm={self.prm_name}: {what} trains a neural PRM (use prm=tiny or a model's PRM)"
            )
