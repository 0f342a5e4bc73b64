"""The stage's wandb run and the one metric vocabulary: open, fill, close.

Every stage (search, eval, extract, loop, merge, bootstrap, init_prm, train_*) logs into one
wandb run when ``logger`` is wandb:

- the whole composed config, resolved, with secrets left out (`redaction`: what the run
  folder's ``config.yaml`` holds too);
- grouped by sweep or experiment, ``job_type`` the stage, named by the swept keys and
  their values only in a multirun (``search.alpha=0.25 seed=1``), tagged with the chosen
  config groups (`identity`);
- metrics under their canonical ``split/name`` (`names`: the one vocabulary, and the older
  names a reader of an old folder still accepts);
- a table of sample results (`tables`), model folders and data files as artifacts
  (``logger.log_artifacts``);
- Lightning training inside the stage logs into the same run (`wandb_logger`: one training
  step across the stage's trainings, the run's config left alone; `lightning`: the
  Lightning logger of the ``logger`` config group, and the closing of wandb runs);
- online when credentials exist and the wandb server answers a short probe, offline
  otherwise (`credentials`; a key without a reachable server: one warning line naming
  the folder to ``wandb sync`` later);
- opened on first use, closed when the stage ends, marked failed when it raises (`run`:
  :class:`StageRun`, which ``run_stage`` makes, hands the stage as ``spec.tracker`` and ends
  on the stage's resource stack; no module global holds it).

``logger=null`` never imports wandb; ``logger=csv`` gives Lightning a CSV logger and the
stage's final metrics.
"""

from rest_mcts.tracking.credentials import has_credentials, wandb_mode
from rest_mcts.tracking.identity import TAG_GROUPS, loggable_config, run_identity
from rest_mcts.tracking.lightning import (
    OWN_OPTIONS,
    build_logger,
    close_wandb_run,
    finish_logger,
    is_wandb,
    run_logger,
)
from rest_mcts.tracking.names import (
    ALIASES,
    EVAL_COLUMNS,
    EVAL_SUFFIXES,
    LOOP_SPLITS,
    canonical,
    lookup,
    names_of,
    wandb_metrics,
    wandb_name,
)
from rest_mcts.tracking.redaction import REDACTED, SECRET_KEY, redact, resolved_config
from rest_mcts.tracking.run import (
    RUN_ID_FILE,
    StageRun,
    begin_stage_run,
    end_stage_run,
    new_run_id,
    stage_run,
)
from rest_mcts.tracking.tables import sample_rows

__all__ = [
    "ALIASES", "EVAL_COLUMNS", "EVAL_SUFFIXES", "LOOP_SPLITS", "OWN_OPTIONS", "REDACTED",
    "RUN_ID_FILE", "SECRET_KEY", "TAG_GROUPS", "StageRun", "begin_stage_run", "build_logger",
    "canonical", "close_wandb_run", "end_stage_run", "finish_logger", "has_credentials",
    "is_wandb", "loggable_config", "lookup", "names_of", "new_run_id", "redact",
    "resolved_config", "run_identity", "run_logger", "sample_rows", "stage_run",
    "wandb_metrics", "wandb_mode", "wandb_name",
]
