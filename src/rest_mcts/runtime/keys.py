"""Which config keys shape a result, declared in one place, and the keys computed from that.

Every folder and cache key of a run is the fingerprint of its composed config less the options
that change no number. Each such option is declared here once, by its dotted path, with the
reason it is neutral (:class:`Neutral`); the functions below compute the keys from these
tables alone:

- :func:`result_config`: what a run records (``run_config.json``, ``loop_config.json``): the
  config less :data:`NOT_RESULT_KEYS`;
- :func:`run_key_config`: a stage=search|eval folder's key (:data:`NOT_RUN_KEYS`);
- :func:`loop_key_config`: a loop folder's key, ``outputs/loop_runs/<data>-s<seed>-<key>``
  (:data:`NOT_LOOP_KEYS`);
- :func:`policy0_key`: the cache key of the iteration-0 policy (:data:`POLICY0_PARTS`, less
  :data:`NOT_POLICY0_KEYS`);
- :func:`prm0_key`: the cache key of ``prm=trained``'s PRM_0 (policy_0's key and
  :data:`PRM0_PARTS`, less :data:`NOT_PRM0_KEYS`).

A knob added after a key existed is declared with ``unless`` (left out only while it holds
the value that behaves as before the knob existed), so existing folders and caches keep their
key; ``tests/runtime/test_keys.py`` pins the keys of the default config and of variants.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from rest_mcts.utils.hashing import fingerprint

_ANY = object()  # Neutral.unless default: left out whatever its value


@dataclass(frozen=True)
class Neutral:
    """One option that never changes a number of the run.

    Attributes:
        why: the reason, in a few words.
        worlds: which data worlds the rule covers: ``"all"``, ``"generated"`` (a world that
            makes its questions, Countdown) or ``"dataset"`` (``data.world.dataset`` lists one).
        unless: left out only while the option holds this value (a knob added after the key
            existed, whose other values do change numbers); default: always left out.
        pin: world kind -> the value the option is set to there instead of being left out
            (a key that has always listed it keeps it, at a neutral value); None: left out.
    """

    why: str
    worlds: str = "all"
    unless: Any = _ANY
    pin: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------- declarations
# what a run records: everything but where files go, logging and where the work runs
NOT_RESULT_KEYS: dict[str, Neutral] = {
    "paths": Neutral("where files go"),
    "hydra": Neutral("Hydra's own settings: the run folder, its logging"),
    "logger": Neutral("where metrics are logged"),
    "run_name": Neutral("a name for loggers and folders"),
    "executor": Neutral("every executor gives the same answers (per-request seeds)"),
    "stage.dir": Neutral("where the loop's files go"),
    "stage.concurrency": Neutral("questions searched side by side: batching changes no answer "
                                 "(per-request seeds)"),
    "trainer.default_root_dir": Neutral("where checkpoints go"),
    "trainer.enable_progress_bar": Neutral("a progress bar"),
    "engine": Neutral("added after the key; recorded when it is not the default",
                      unless={"name": "hf"}),
    "prm.max_length": Neutral("added after the key; 256 is the length PRM training always "
                              "used", unless=256),
    **{f"{part}.revision": Neutral("added after the key; null loads the hub's main, as "
                                   "before", unless=None) for part in ("model", "prm", "data")},
    # a dataset world's copies of data.revision / model.revision: they are in the key there
    "data.world.dataset.revision": Neutral("added after the key; data.revision holds it",
                                           unless="${data.revision}"),
    "data.world.prompts.revision": Neutral("added after the key; model.revision holds it",
                                           unless="${oc.select:model.revision,null}"),
    # the baselines' options (rest_mcts.loop.baselines): added after the key; a rest_mcts loop
    # (and any stage that reads none of them) keeps its key
    "stage.method": Neutral("added after the key; rest_mcts is the loop as before",
                            unless="rest_mcts"),
    "stage.pair_judge": Neutral("added after the key; read by stage.method=dpo only",
                                unless="verifier"),
    "stage.budget": Neutral("added after the key; read by the baselines only",
                            unless={"match": None, "tokens_per_question": None}),
    "stage.dpo": Neutral("added after the key; read by stage.method=dpo only",
                         unless={"beta": 0.1, "pairs_per_question": 4}),
}

# question sharding (data.shard/num_shards: which questions a stage=search|eval job takes) never
# shapes a model or a cache: left out, or reset to 0/1 where a dataset world lists them, so every
# key stays what it was before sharding existed; the world itself never shards (run_search does)
SHARDING_KEYS: dict[str, Neutral] = {
    "data.shard": Neutral("which questions a job takes", pin={"dataset": 0}),
    "data.num_shards": Neutral("which questions a job takes", pin={"dataset": 1}),
    "data.limit": Neutral("a generated world's data.limit: stage=search|eval only",
                          worlds="generated"),
    "data.world.dataset.shard": Neutral("the world never shards", worlds="dataset",
                                        pin={"dataset": 0}),
    "data.world.dataset.num_shards": Neutral("the world never shards", worlds="dataset",
                                             pin={"dataset": 1}),
}

# engine=hf|vllm|auto picks the backend and prm options, whose nodes stay in the folder keys:
# the choice itself is in no folder key (a folder resumes whether its engine was named or
# chosen by engine=auto)
ENGINE_KEYS: dict[str, Neutral] = {
    "engine": Neutral("picks the backend and prm options, which are in the key"),
}

# options of the stage, the policy backend and the PRM (its scorer; a search trains no PRM, so
# also its training batch) that change how fast a search runs, never its answers
_THROUGHPUT = {
    "concurrency": "questions side by side",
    "max_batch_size": "inputs per model call",
    "batch_size": "inputs per model call",
    "schedule": "how requests are scheduled",
    "timeout": "a request's timeout",
    "max_retries": "retries of a failed request",
    "backoff_base": "waits between retries",
    "backoff_max": "waits between retries",
}
THROUGHPUT_KEYS: dict[str, Neutral] = {
    f"{part}.{name}": Neutral(f"speed only: {why}")
    for part in ("stage", "backend", "prm", "prm.scorer") for name, why in _THROUGHPUT.items()
}

# a stage=search|eval folder: the run's result config less its speed and its shard (shard.json
# holds that: rest_mcts.runtime.search_run.claim_shard); data.limit stays, it picks questions
NOT_RUN_KEYS: dict[str, Neutral] = {
    **NOT_RESULT_KEYS,
    **ENGINE_KEYS,
    **THROUGHPUT_KEYS,
    **{path: rule for path, rule in SHARDING_KEYS.items() if path != "data.limit"},
}

# a loop folder: also not which methods are evaluated (adds or removes steps and columns,
# never changes a number: a folder resumes with another list, each method is its own step),
# not how many iterations (iteration k never depends on K: a finished loop extended by
# stage.iterations resumes in its folder), not the T curve's checkpoints, and not a search
# job's sharding of a generated world
NOT_LOOP_KEYS: dict[str, Neutral] = {
    **NOT_RESULT_KEYS,
    **ENGINE_KEYS,
    "stage.eval_methods": Neutral("adds or removes evaluation steps, changes no number"),
    "stage.policy_eval": Neutral("an evaluation step of its own, changes no other number"),
    "stage.iterations": Neutral("iteration k never depends on K: an extended loop resumes"),
    "search.t_checkpoints": Neutral("the T curve records more, changes no answer (loop "
                                    "folders made before the knob existed keep their key)"),
    # a dataset world's sharding stays in the key, as it always has
    **{path: Neutral(SHARDING_KEYS[path].why, worlds="generated")
       for path in ("data.shard", "data.num_shards", "data.limit")},
}

# the iteration-0 policy is shaped by these parts of the config (resolved), in this order
POLICY0_PARTS = ("model", "data", "policy", "trainer.max_steps", "seed", "threads")
NOT_POLICY0_KEYS: dict[str, Neutral] = {
    "model.path": Neutral("where the weights are read from (a tiny model is trained here)"),
    "model.name": Neutral("a label"),
    **SHARDING_KEYS,
    "policy.gradient_checkpointing": Neutral("recomputes activations, same gradients",
                                             unless=False),
    "policy.lora": Neutral("added after the key; no adapter is the old behaviour", unless=None),
    "policy.val_greedy_questions": Neutral("a validation metric, trains nothing", unless=0),
    "threads": Neutral("null: one thread per core, not part of keys made before the knob",
                       unless=None),
    # resolved here: null unless a revision is pinned
    **{path: Neutral("added after the key; null loads the hub's main, as before", unless=None)
       for path in ("model.revision", "data.revision", "data.world.dataset.revision",
                    "data.world.prompts.revision")},
}


# PRM_0 of prm=trained (D_V0 by prm.init from policy_0, then PRM training by prm.*) is shaped by
# policy_0 (its key, which holds data, model, policy, seed and threads) and these parts (resolved)
PRM0_PARTS = ("model.path", "backend", "verify", "prm", "trainer", "seed", "threads")
NOT_PRM0_KEYS: dict[str, Neutral] = {
    **{f"backend.{name}": Neutral(f"speed only: {why}") for name, why in _THROUGHPUT.items()},
    "prm.name": Neutral("a label"),
    "prm.path": Neutral("a given PRM is used as it is: no PRM_0 is built"),
    "prm.scorer": Neutral("how the trained PRM is served, not how it is trained"),
    "prm.prefix_cache_tokens": Neutral("speed only: the scorer's KV cache"),
    "prm.context_length": Neutral("the scorer's input cap; training reads prm.max_length"),
    "prm.require_trained": Neutral("a check before a search"),
    "prm.gradient_checkpointing": Neutral("recomputes activations, same gradients"),
    "prm.init.concurrency": Neutral("questions searched side by side: batching changes no "
                                    "answer (per-request seeds)"),
    "prm.init.cache_values": Neutral("the D_V0 trees ask for no value"),
    "trainer.default_root_dir": Neutral("where checkpoints go"),
    "trainer.enable_progress_bar": Neutral("a progress bar"),
    "trainer.enable_model_summary": Neutral("a printed summary"),
    "trainer.log_every_n_steps": Neutral("how often metrics are logged"),
    "threads": Neutral("null: one thread per core (policy_0's key holds it too)", unless=None),
    "prm.revision": Neutral("added after the key; null loads the hub's main, as before",
                            unless=None),
}


# --------------------------------------------------------------------------- computing
def _world_kind(plain: Mapping[str, Any]) -> str:
    data = plain.get("data")
    world = (data.get("world") if isinstance(data, Mapping) else None) or {}
    return "dataset" if "dataset" in world else "generated"


def strip(plain: dict[str, Any], rules: Mapping[str, Neutral]) -> dict[str, Any]:
    """``plain`` (a plain config, changed in place and returned) with each option of
    ``rules`` left out (or pinned) where its rule applies. Paths are dotted from the root."""
    kind = _world_kind(plain)
    for path, rule in rules.items():
        if rule.worlds not in ("all", kind):
            continue
        *parents, name = path.split(".")
        node: Any = plain
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, dict):
            continue
        if kind in (rule.pin or {}):
            node[name] = rule.pin[kind]
        elif name in node and (rule.unless is _ANY or node[name] == rule.unless):
            del node[name]
    return plain


def _plain(cfg: DictConfig | Mapping[str, Any], resolve: bool) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=resolve)
    return copy.deepcopy(dict(cfg))


def result_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The composed config less :data:`NOT_RESULT_KEYS`. Interpolations stay as written, so a
    secret read with ``${oc.env:...}`` never lands in a record."""
    return strip(_plain(cfg, resolve=False), NOT_RESULT_KEYS)


def run_key_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Every option that shapes a stage=search|eval folder's results (:data:`NOT_RUN_KEYS`)."""
    return strip(_plain(cfg, resolve=False), NOT_RUN_KEYS)


def loop_key_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Everything that shapes the loop's results (:data:`NOT_LOOP_KEYS`)."""
    return strip(_plain(cfg, resolve=False), NOT_LOOP_KEYS)


def unsharded(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a plain ``data`` node) under :data:`SHARDING_KEYS`: its question sharding left
    out, or reset to 0/1 where a dataset world lists it."""
    rules = {path: rule for path, rule in SHARDING_KEYS.items() if path.startswith("data.")}
    return strip({"data": copy.deepcopy(dict(data))}, rules)["data"]


def policy0_key(cfg: DictConfig) -> str:
    """The iteration-0 policy's cache key: :data:`POLICY0_PARTS` of the resolved config, less
    :data:`NOT_POLICY0_KEYS` (a part left out whole, ``threads: null``, is no part; an unset
    one is None). A pretrained ``model.path`` that the bootstrap fine-tunes
    (``model.bootstrap: true``) shapes policy_0, so then its path is a part too."""
    parts = _key_parts(cfg, POLICY0_PARTS, NOT_POLICY0_KEYS)
    if OmegaConf.select(cfg, "model.bootstrap", default=False) is True:
        parts.append({"bootstrapped_from": OmegaConf.select(cfg, "model.path")})
    return fingerprint(*parts)


def prm0_key(cfg: DictConfig) -> str | None:
    """The cache key of ``prm=trained``'s PRM_0: policy_0's key (:func:`policy0_key`) and
    :data:`PRM0_PARTS` of the resolved config, less :data:`NOT_PRM0_KEYS`; None when the
    ``prm`` option builds no PRM_0 (it has no ``prm.init``)."""
    if OmegaConf.select(cfg, "prm.init") is None:
        return None
    return fingerprint(policy0_key(cfg), *_key_parts(cfg, PRM0_PARTS, NOT_PRM0_KEYS))


def _key_parts(cfg: DictConfig, paths: tuple[str, ...],
               rules: Mapping[str, Neutral]) -> list[Any]:
    """The values of ``paths`` in the resolved config less ``rules``, in order (a path left
    out whole by its rule, ``threads: null``, is no part; an unset one is None)."""
    plain = strip({path.split(".")[0]: _resolved(cfg.get(path.split(".")[0]))
                   for path in paths}, rules)
    parts = []
    for path in paths:
        node: Any = plain
        for part in path.split("."):
            node = node.get(part, _ANY) if isinstance(node, Mapping) else _ANY
        if node is _ANY and path in rules:  # threads: null
            continue
        node = None if node is _ANY else node  # an unset option (trainer.max_steps): None
        parts.append(int(node) if path in ("seed", "threads") else node)
    return parts


def _resolved(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
