"""stage=train_prm: the value model (PRM) regressed on quality-value targets D_V, or with
``stage.target=orm`` the outcome reward model (ORM) regressed on 0/1 final-answer correctness.

``stage.target=prm``: D_V comes from verified search trees (`stage.trees_dir`, written to
`<run>/d_v.jsonl` by the loop's own writer) and/or D_V files (`stage.data_files`).
``stage.target=orm``: the rows are the finished leaves of the same trees, target 1 for a
correct answer and 0 otherwise (:func:`rest_mcts.loop.orm_data.orm_rows`, written to
`<run>/orm_data.jsonl`), and/or files of such rows. Either model starts from `prm.path`, or
from the policy's backbone with a fresh regression head (as in the paper), trains with the
`prm.*` settings and is saved into `<run>/<target>` (`<run>/prm` or `<run>/orm`; search with
an ORM: `prm=orm prm.path=<run>/orm`), Lightning checkpoints into
`<run>/checkpoints/<target>` (`stage.ckpt_path` resumes).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import ConfigError, check_value
from rest_mcts.loop.data import check_d_v_nodes, d_v_rows, load_trees
from rest_mcts.loop.orm_data import orm_rows
from rest_mcts.loop.train import train_prm_model
from rest_mcts.runtime.policy0 import ensure_policy0
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run
from rest_mcts.training.rows import check_data_files, read_value_rows
from rest_mcts.utils.io import write_jsonl


# stage.target -> the file its rows from stage.trees_dir are written to
TARGETS = {"prm": "d_v.jsonl", "orm": "orm_data.jsonl"}


def train_prm(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    ctx = (spec or RunSpec.from_config(cfg)).ctx
    s, out = cfg.stage, Path(cfg.paths.output_dir)
    check_value("stage.val_share", s.val_share, 0, 1)
    check_value("stage.max_length", s.max_length, 1, integer=True)
    target = s.get("target", "prm")
    if target not in TARGETS:
        raise ConfigError(f"stage.target={target} is not one of {list(TARGETS)}")
    files = [str(f) for f in s.data_files or []]
    nodes = s.get("d_v_nodes", "paths")
    check_d_v_nodes(nodes, "stage.d_v_nodes")
    if s.trees_dir:
        trees = load_trees(s.trees_dir)
        rows = orm_rows(trees) if target == "orm" else d_v_rows(trees, nodes=nodes)
        files.insert(0, str(write_jsonl(out / TARGETS[target], rows)))
    # every row checked before policy_0 is trained or a model loaded
    rows = check_data_files(files, read_value_rows, "stage.data_files")
    if not rows:
        raise ConfigError("stage=train_prm has no data: set stage.trees_dir and/or stage.data_files")
    init = ctx.prm_path or ensure_policy0(ctx, out)
    tracker = stage_run(spec)
    metrics = train_prm_model(ctx, rows, out / target, init, logger=tracker.lightning_logger(),
                              ckpt_path=s.get("ckpt_path"), val_share=s.val_share,
                              max_length=s.max_length)
    data_file = out / TARGETS[target]
    tracker.log_artifact(data_file, data_file.stem, "dataset")
    tracker.log_artifact(out / target, target, "model")
    return metrics
