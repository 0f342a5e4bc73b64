"""Helpers shared by stages: building the world, choosing problems, locating policies."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import instantiate
from rest_mcts.utils.hashing import fingerprint
from rest_mcts.worlds.base import Problem

log = logging.getLogger(__name__)


def build_world(cfg: DictConfig):
    return instantiate(cfg.data.world, "data.world")


def problems(cfg: DictConfig, world, split: str, n: int, at_most: bool = False) -> list[Problem]:
    """`n` problems of a split, generated from the run's seed (disjoint across splits).

    With `at_most`, fewer when the split holds fewer distinct problems (else an error)."""
    if at_most and hasattr(world, "count_problems"):
        n = min(n, world.count_problems(split))
    return world.generate(n, seed=cfg.seed, split=split)


def policy0_dir(cfg: DictConfig) -> Path:
    """Cache folder of the iteration-0 policy: keyed by everything that shapes it (model
    architecture, world and its bootstrap traces, SFT settings, step budget, seed)."""
    model = {k: v for k, v in cfg.model.items() if k not in ("path", "name")}
    # Knobs added later are left out at their neutral values, so existing caches stay valid.
    neutral = {"gradient_checkpointing": False, "lora": None, "val_greedy_questions": 0}
    policy = {
        k: v for k, v in OmegaConf.to_container(cfg.policy, resolve=True).items()
        if k not in neutral or v != neutral[k]
    }
    key = fingerprint(model, cfg.data, policy, cfg.trainer.get("max_steps"), cfg.seed)
    return Path(cfg.paths.cache_dir) / "policy0" / f"{cfg.data.name}-s{cfg.seed}-{key}"


def resolve_policy_path(cfg: DictConfig) -> Path | str:
    """`model.path` when given, else the cached bootstrapped policy (built if missing)."""
    if cfg.model.path:
        return cfg.model.path
    path = policy0_dir(cfg)
    if not (path / "manifest.json").exists():
        log.info("no cached iteration-0 policy at %s: bootstrapping it first", path)
        from rest_mcts.stages.bootstrap import train_policy0

        train_policy0(cfg, path)
    return path


def build_policy_backend(cfg: DictConfig, model_path: str | Path):
    """The configured policy backend (`backend=hf|...`) serving the model at `model_path`."""
    return instantiate(cfg.backend, "backend", model_path=str(model_path))


def build_scorer(cfg: DictConfig, policy_path: str | Path, world):
    """The configured value scorer (`prm=...`).

    `prm.path` set: that trained PRM. Unset for an HF scorer: a value model whose backbone
    is the policy and whose regression head is freshly initialised (untrained), as the
    paper initialises the PRM from the policy. Scorers without a model (the oracle) are
    built from their config alone.
    """
    node = cfg.prm.scorer
    if "HFValueScorer" not in str(node.get("_target_", "")):
        return instantiate(node, "prm.scorer")
    if cfg.prm.path:
        return instantiate(node, "prm.scorer", model_path=str(cfg.prm.path))
    from rest_mcts.models.factory import load_tokenizer, value_model_from_causal_lm

    # prm.backbone (a 7B model config's PRM backbone, e.g. Mistral-7B) or else the policy.
    backbone = cfg.prm.get("backbone") or policy_path
    log.warning("prm.path is unset: scoring with an UNTRAINED value head on %s", backbone)
    remote = bool(node.get("trust_remote_code", False))
    model = value_model_from_causal_lm(
        str(backbone), dtype=node.get("dtype", "float32"), device=node.get("device", "cpu"),
        trust_remote_code=remote, seed=cfg.seed,
    )
    tokenizer = load_tokenizer(str(backbone), trust_remote_code=remote)
    return instantiate(node, "prm.scorer", model=model, tokenizer=tokenizer)


def evaluate_policy_at(
    cfg: DictConfig,
    model_path: str | Path,
    *,
    num_problems: int,
    samples: int,
    temperature: float,
    split: str = "test",
) -> dict[str, float]:
    """Greedy accuracy, step legality and pass@N of the policy at `model_path`."""
    from rest_mcts.evaluation import evaluate_policy

    world = build_world(cfg)
    test = problems(cfg, world, split, num_problems, at_most=True)
    return evaluate_policy(
        build_policy_backend(cfg, model_path),
        world,
        test,
        samples=samples,
        temperature=temperature,
        max_new_tokens=cfg.data.max_solution_tokens,
        seed=cfg.seed,
    )
