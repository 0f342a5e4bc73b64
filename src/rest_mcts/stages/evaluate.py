"""stage=eval: CoT (greedy) and sampled accuracy of a policy on held-out problems."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import instantiate
from rest_mcts.evaluation import evaluate_policy
from rest_mcts.training.loggers import build_logger, log_and_finish
from rest_mcts.stages.common import build_world, problems, resolve_policy_path

log = logging.getLogger(__name__)


def build_policy_backend(cfg: DictConfig, model_path: str | Path):
    """The configured policy backend (`backend=hf|...`) serving the model at `model_path`."""
    return instantiate(cfg.backend, "backend", model_path=str(model_path))


def evaluate_policy_at(
    cfg: DictConfig,
    model_path: str | Path,
    *,
    num_problems: int,
    samples: int,
    temperature: float,
    split: str = "test",
) -> dict[str, float]:
    world = build_world(cfg)
    test = problems(cfg, world, split, num_problems)
    backend = build_policy_backend(cfg, model_path)
    return evaluate_policy(
        backend,
        world,
        test,
        samples=samples,
        temperature=temperature,
        max_new_tokens=cfg.data.max_solution_tokens,
        seed=cfg.seed,
    )


def evaluate(cfg: DictConfig) -> dict[str, float]:
    path = resolve_policy_path(cfg)
    metrics = evaluate_policy_at(
        cfg,
        path,
        num_problems=cfg.stage.num_problems,
        samples=cfg.stage.samples,
        temperature=cfg.stage.temperature,
        split=cfg.stage.split,
    )
    log.info("policy %s: %s", path, {k: round(v, 4) for k, v in metrics.items()})
    log_and_finish(build_logger(cfg.get("logger"), Path(cfg.paths.output_dir)), metrics)
    return metrics
