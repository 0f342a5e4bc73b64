"""A wandb run for this stage: one place that opens, fills and closes it.

Every stage (search, eval, extract, loop, merge, bootstrap, init_prm, train_*) logs into one
wandb run when ``logger`` is wandb:

- the whole composed config, resolved, with secrets left out (:func:`loggable_config`);
- grouped by sweep or experiment (``group``), ``job_type`` the stage, named by the swept
  values (Hydra's ``override_dirname`` in a multirun), tagged with the chosen config groups
  (:func:`run_identity`);
- metrics under ``split/name`` names, mapped here from the names on disk, which never change
  (:data:`RENAMES`, :func:`wandb_name`);
- a table of sample results (:func:`sample_rows`), model folders and data files as artifacts
  (``logger.log_artifacts``);
- Lightning training inside the stage logs into the same run
  (:meth:`StageRun.lightning_logger`);
- online when credentials exist (``WANDB_API_KEY``, or a key stored by ``wandb login``),
  offline otherwise; ``logger.offline`` overrides, ``WANDB_MODE`` in the environment wins;
- closed when the stage ends, marked failed when it raises (:func:`end_stage_run`).

``run_stage`` calls :func:`begin_stage_run`, which registers :func:`end_stage_run` on the
stage's resource stack; a stage takes the run with :func:`stage_run`, which opens it on
first use (the loop first, with the run id file in its folder, so a resumed loop appends to
the same run). ``logger=null`` never imports wandb; ``logger=csv`` gives Lightning a CSV
logger and the stage's final metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import instantiate

log = logging.getLogger(__name__)

# Names on disk (metrics.json, results.csv, the loop's rows) -> names on wandb. Only here.
RENAMES: dict[str, str] = {
    "iteration": "loop/iter",
    "loop/iteration": "loop/iter",
    "eval/policy_tokens_per_question": "eval/tokens_per_question",
    "search/policy_tokens_per_question": "search/tokens_per_question",
    "prm/val_sibling_acc": "prm/sibling_rank_acc",
    "val/sibling_acc": "val/sibling_rank_acc",
    "sc/n": "eval/sc_n",
    "bfs/beam_width": "eval/bfs_beam_width",
}
# Column prefixes of the loop's evaluation methods (rest_mcts.loop.evaluate.EVAL_METHODS)
# and their suffixes: `mcts/acc` -> `eval/mcts_acc`, `cot/tokens` -> `eval/cot_tokens_per_question`.
EVAL_COLUMNS = ("cot", "sc", "best_of_n", "best_of_n_prod", "weighted_vote", "pass@n", "bfs",
                "mcts", "mcts_lean", "mcts_widen")
EVAL_SUFFIXES = {"acc": "acc", "tokens": "tokens_per_question",
                 "prompt_tokens": "prompt_tokens_per_question",
                 "prm_calls": "prm_calls_per_question"}
# Metric prefixes of the loop's rows, plotted against `loop/iter`.
LOOP_SPLITS = ("eval", "prm", "policy", "data", "search")
# Keys that hold secrets (a key ending in `_env` names an environment variable: kept).
SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|credentials?)($|_)", re.I)
REDACTED = "<redacted>"
RUN_ID_FILE = "wandb_run.json"
# Config groups whose choice becomes a tag.
TAG_GROUPS = ("stage", "model", "data", "search", "prm", "backend", "experiment", "sweep")
# Options of conf/logger/wandb.yaml that are ours, not WandbLogger's / wandb.init's.
OWN_OPTIONS = ("log_artifacts", "table_rows")


def wandb_name(key: str) -> str:
    """The ``split/name`` of a metric key on disk (one table, :data:`RENAMES`)."""
    if key in RENAMES:
        return RENAMES[key]
    head, _, rest = key.partition("/")
    if not rest:
        return f"stage/{key}"
    if head in EVAL_COLUMNS and rest in EVAL_SUFFIXES:
        return f"eval/{head}_{EVAL_SUFFIXES[rest]}"
    if head == "prm" and rest.startswith("val_"):
        rest = rest[len("val_"):]
    return f"{head}/{rest.replace('/', '_')}"


def wandb_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics under their wandb names; None and non-numbers are left out."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or isinstance(value, (int, float)):
            out[wandb_name(key)] = float(value)
    return out


# ------------------------------------------------------------------ credentials, secrets
def has_credentials() -> bool:
    """Is there a wandb key without asking the network: ``WANDB_API_KEY`` (or an identity
    token file), or a key ``wandb login`` stored in the netrc file (``NETRC`` or ~/.netrc)
    for ``WANDB_BASE_URL``?"""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        host = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
        return bool(read_netrc_auth(host=host))
    except Exception as err:  # an unreadable or malformed netrc: no credentials
        log.debug("no wandb credentials from netrc: %s", err)
        return False


def wandb_mode(offline: bool | None) -> str:
    """``WANDB_MODE`` when set in the environment; else offline/online by ``offline``, and
    when that is None by whether credentials exist."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if offline is None:
        offline = not has_credentials()
    return "offline" if offline else "online"


def _secret_values(plain: Any) -> set[str]:
    """Values of the environment variables that hold secrets: those whose name looks like a
    secret (WANDB_API_KEY, HF_TOKEN, ...) and those a `*_env` option names (api_key_env)."""
    names = {k for k in os.environ if SECRET_KEY.search(k.lower())}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).endswith("_env") and isinstance(value, str):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plain)
    return {os.environ[n] for n in names if len(os.environ.get(n) or "") >= 4}


def redact(plain: Any, secrets: Iterable[str] = ()) -> Any:
    """``plain`` with the value of every secret-named key and every string holding one of
    ``secrets`` replaced by :data:`REDACTED` (`*_env` keys hold names and stay)."""
    secrets = [s for s in secrets if s]

    def clean(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(key, v) for v in value]
        if isinstance(value, str):
            secret_key = SECRET_KEY.search(key) and not key.endswith("_env")
            if secret_key or any(s in value for s in secrets):
                return REDACTED
        return value

    return clean("", plain)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config, resolved (as written where a value resolves only inside a job),
    secrets left out: what the run folder's ``config.yaml`` and the wandb run record."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # an interpolation that only resolves inside a job
        log.warning("config recorded unresolved: %s", err)
        plain = OmegaConf.to_container(cfg, resolve=False)
    return redact(plain, _secret_values(plain))


def loggable_config(cfg: DictConfig) -> dict[str, Any]:
    """:func:`resolved_config` with the chosen config groups under ``choices`` (from Hydra,
    when it composed the run)."""
    plain = resolved_config(cfg)
    choices = _hydra_choices()
    if choices:
        plain["choices"] = choices
    return plain


# ------------------------------------------------------------------ names, groups, tags
def _hydra() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _hydra_choices() -> dict[str, str]:
    hc = _hydra()
    if hc is None:
        return {}
    return {str(k): str(v) for k, v in hc.runtime.choices.items()
            if v is not None and not str(k).startswith("hydra")}


def _swept_values(task: list[str]) -> str:
    """``key=value,...`` of this job's overrides that the command line sweeps (``seed=0,1``,
    ``search.alpha=range(...)``), read from ``sys.argv`` of the multirun's process; empty when
    that is not the launching process (a Slurm job) or nothing is swept."""
    import sys

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parser = OverridesParser.create()
        argv = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        swept = {o.get_key_element() for o in parser.parse_overrides(argv)
                 if o.is_sweep_override()}
        job = [o for o in parser.parse_overrides(task) if o.get_key_element() in swept]
    except Exception:  # not Hydra's command line
        return ""
    return ",".join(sorted(f"{o.get_key_element()}={o.get_value_element_as_str()}"
                           for o in job))


def run_identity(cfg: DictConfig, default_group: str | None = None) -> dict[str, Any]:
    """``name``, ``group``, ``job_type`` and ``tags`` of the stage's wandb run.

    name: the swept values in a multirun (e.g. ``search.alpha=0.5,seed=1``, unique in its
    sweep; all of ``hydra.job.override_dirname`` where the command line is not at hand),
    else ``logger.name``. group:
    ``logger.group``, else the multirun's folder (``<stage>-<time>``), else the chosen
    ``experiment``, else ``default_group`` (the loop: its folder). job_type: the stage.
    tags: ``<group>:<choice>`` of the config groups in :data:`TAG_GROUPS`, and ``logger.tags``.
    """
    from hydra.types import RunMode

    node = cfg.get("logger") or {}
    hc = _hydra()
    multirun = hc is not None and hc.mode == RunMode.MULTIRUN
    name = node.get("name") or cfg.get("run_name")
    if multirun and hc.job.override_dirname:
        name = _swept_values(list(hc.overrides.task)) or str(hc.job.override_dirname)
    choices = _hydra_choices()
    group = node.get("group")
    if not group and multirun:
        sweep = Path(str(hc.sweep.dir))
        group = f"{sweep.parent.name}-{sweep.name}"
    if not group and choices.get("experiment"):
        group = f"experiment-{choices['experiment']}"
    group = group or default_group
    if not choices:  # composed without Hydra's runtime (tests): the groups' own names
        choices = {g: str(cfg[g].name) for g in TAG_GROUPS
                   if isinstance(cfg.get(g), DictConfig) and cfg[g].get("name")}
    tags = [f"{g}:{choices[g]}"[:64] for g in TAG_GROUPS if choices.get(g)]
    tags += [str(t)[:64] for t in node.get("tags") or []]
    return {"name": str(name) if name else None, "group": str(group) if group else None,
            "job_type": str(cfg.stage.name), "tags": tags}


# ------------------------------------------------------------------ tables
def sample_rows(out_dir: str | Path, n: int, **extra: Any) -> list[dict[str, Any]]:
    """The first ``n`` questions of a search folder (``results.jsonl``, ``trees/``) as table
    rows: question, prediction, gold, correct, value, policy tokens, the chosen path's steps
    and the size of its tree; ``extra`` columns (iteration, method) in front."""
    path = Path(out_dir) / "results.jsonl"
    rows: list[dict[str, Any]] = []
    if not path.is_file() or n <= 0:
        return rows
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if len(rows) >= n:
                break
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a torn last line
                continue
            tree = Path(out_dir) / "trees" / f"{r['id']}.json"
            nodes = None
            if tree.is_file():
                try:
                    nodes = len(json.loads(tree.read_text()).get("nodes", []))
                except (OSError, ValueError, AttributeError):  # torn, not UTF-8, not a tree
                    nodes = None
            rows.append({
                **extra,
                "id": str(r["id"]),
                "question": str(r.get("question", "")),
                "prediction": str(r.get("prediction")),
                "gold": str(r.get("gold")),
                "correct": bool(r.get("correct")),
                "value": None if r.get("value") is None else float(r["value"]),
                "tokens": int((r.get("costs") or {}).get("policy_tokens", 0)),
                "steps": "\n".join(str(s) for s in r.get("steps") or []),
                "tree_nodes": nodes,
            })
    return rows


# ------------------------------------------------------------------ the run
class StageRun:
    """The stage's run: a wandb run (``run``), a CSV logger, or nothing (``logger=null``).

    Opened by :meth:`open` (on first use through :func:`stage_run`); every method is a no-op
    when there is no wandb run, so stages call them unconditionally.
    """

    def __init__(self, cfg: DictConfig, save_dir: str | Path) -> None:
        self.cfg = cfg
        self.node = cfg.get("logger")
        self.save_dir = Path(save_dir)
        self.run: Any = None
        self.opened = False
        self.resume_file: Path | None = None
        self.final_metrics: Mapping[str, Any] | None = None  # the stage's, logged at the end
        self._lightning: Any = None
        self.is_wandb = _is_wandb_node(self.node)
        node = self.node or {}
        self.log_artifacts = bool(node.get("log_artifacts", False))
        self.table_rows = int(node.get("table_rows", 8) or 0)

    def __bool__(self) -> bool:
        return self.run is not None

    # ---- opening
    def open(self, save_dir: str | Path | None = None, *, resume_dir: str | Path | None = None,
             group: str | None = None) -> StageRun:
        """Start the wandb run (once): config, name, group, tags; with ``resume_dir`` the run
        id lives in ``resume_dir/wandb_run.json`` and a second start resumes that run."""
        if self.opened:
            return self
        self.opened = True
        if save_dir is not None:
            self.save_dir = Path(save_dir)
        if not self.is_wandb or not _is_rank_zero():
            return self
        import wandb

        node = OmegaConf.to_container(self.node, resolve=True)
        ident = run_identity(self.cfg, default_group=group)
        mode = wandb_mode(node.get("offline"))
        kwargs: dict[str, Any] = {}
        if resume_dir is not None and mode != "disabled":  # a disabled run logs nothing
            self.resume_file = Path(resume_dir) / RUN_ID_FILE
            record = _read_json(self.resume_file)
            run_id = record.get("id") or new_run_id()
            if not record:
                _write_json(self.resume_file, {"id": run_id, "logged": []})
            kwargs = {"id": run_id, "resume": "allow"}
        self.save_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=node.get("project") or "rest-mcts", entity=node.get("entity"),
            dir=str(self.save_dir), mode=mode, config=loggable_config(self.cfg),
            name=ident["name"], group=ident["group"], job_type=ident["job_type"],
            tags=ident["tags"], reinit="finish_previous", **kwargs,
        )
        # Lightning's training metrics against its step, the loop's against its iteration
        self.run.define_metric("trainer/global_step")
        for split in ("train", "val"):
            self.run.define_metric(f"{split}/*", step_metric="trainer/global_step",
                                   step_sync=True)
        log.info("wandb run %s (%s, group %s, %s)", self.run.id, mode, ident["group"],
                 ident["name"])
        return self

    def step_metric(self, step: str, splits: Iterable[str]) -> None:
        """Plot every metric of ``splits`` against ``step`` (e.g. ``loop/iter``)."""
        if self.run is None:
            return
        self.run.define_metric(step)
        for split in splits:
            self.run.define_metric(f"{split}/*", step_metric=step, step_sync=True)

    # ---- logging
    def log(self, metrics: Mapping[str, Any]) -> None:
        """Log scalar metrics under their wandb names (:func:`wandb_name`); with a CSV
        logger, into its file."""
        named = wandb_metrics(metrics)
        if self.run is not None:
            self.run.log(named)
            self.run.summary.update(named)
        elif self.node is not None and not self.is_wandb and named:
            logger = self.lightning_logger()
            if logger:
                logger.log_metrics(named)
                logger.save()

    def log_table(self, key: str, rows: list[dict[str, Any]]) -> None:
        """A ``wandb.Table`` of ``rows`` (dicts with the same keys) under ``key``."""
        if self.run is None or not rows:
            return
        import wandb

        columns = list(rows[0])
        self.run.log({key: wandb.Table(columns=columns,
                                       data=[[r.get(c) for c in columns] for r in rows])})

    def log_samples(self, out_dir: str | Path, key: str, **extra: Any) -> None:
        """The first ``logger.table_rows`` questions of a search folder as a table."""
        if self.run is not None:
            self.log_table(key, sample_rows(out_dir, self.table_rows, **extra))

    def log_artifact(self, path: str | Path, name: str, kind: str, *,
                     aliases: Iterable[str] = (), metadata: dict | None = None) -> None:
        """A model folder or data file as a wandb artifact (only with
        ``logger.log_artifacts=true``; a missing path is skipped)."""
        path = Path(path)
        if self.run is None or not self.log_artifacts or not path.exists():
            return
        import wandb

        art = wandb.Artifact(re.sub(r"[^\w.-]", "_", name), type=kind,
                             metadata={"path": str(path), **(metadata or {})})
        if path.is_dir():
            art.add_dir(str(path))
        else:
            art.add_file(str(path))
        self.run.log_artifact(art, aliases=list(aliases))

    def lightning_logger(self) -> Any:
        """The Lightning logger of training inside this stage: a WandbLogger on this run, the
        configured CSV logger, or False."""
        if self._lightning is None:
            if self.run is not None:
                from lightning.pytorch.loggers import WandbLogger

                self._lightning = WandbLogger(experiment=self.run,
                                              save_dir=str(self.save_dir))
            elif self.node is not None and not self.is_wandb:
                self._lightning = build_logger(self.node, self.save_dir)
                self._lightning.log_hyperparams(loggable_config(self.cfg))
            else:
                self._lightning = False
        return self._lightning

    # ---- resume bookkeeping (the loop)
    def logged(self, key: str) -> bool:
        """Was ``key`` (e.g. ``iter_1``) logged by an earlier start of this resumed run?"""
        return self.resume_file is not None and key in _read_json(self.resume_file).get(
            "logged", [])

    def mark_logged(self, key: str) -> None:
        if self.resume_file is None or self.run is None:
            return
        record = _read_json(self.resume_file)
        record.setdefault("logged", [])
        if key not in record["logged"]:
            record["logged"].append(key)
        _write_json(self.resume_file, record)

    # ---- closing
    def finish(self, failed: bool = False) -> None:
        """Close the run (exit code 1 when ``failed``); safe to call twice."""
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=1 if failed else 0)
        elif self._lightning and not self.is_wandb:
            self._lightning.save()


def new_run_id() -> str:
    """A wandb run id (8 lowercase letters and digits, as wandb makes them)."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def _is_wandb_node(node: Any) -> bool:
    """Does the logger config name Lightning's WandbLogger (without importing wandb)?"""
    if node is None:
        return False
    target = str(node.get("_target_", ""))
    if target.endswith("WandbLogger"):
        return True
    return _is_wandb_class(target)


def _is_rank_zero() -> bool:
    """Not a non-zero rank of a distributed launch (those log nothing)."""
    return all(os.environ.get(k, "0") in ("", "0") for k in ("RANK", "LOCAL_RANK"))


def _read_json(path: Path) -> dict[str, Any]:
    from rest_mcts.utils.io import FileFormatError, read_json

    try:
        return read_json(path, dict)
    except (OSError, FileFormatError):
        return {}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    from rest_mcts.utils.io import write_json

    write_json(path, value)


# ------------------------------------------------------------------ the stage's run
_ACTIVE: StageRun | None = None


def begin_stage_run(cfg: DictConfig, save_dir: str | Path,
                    resources: contextlib.ExitStack) -> StageRun:
    """Register the stage's (not yet opened) run; ``run_stage`` calls it before the stage.
    The run ends with the stage's resource stack ``resources``: :func:`end_stage_run` logs
    its :attr:`StageRun.final_metrics` and closes it, marked failed when the stage raised."""
    global _ACTIVE
    if _ACTIVE is not None:  # a previous job in this process left it open
        _ACTIVE.finish(failed=True)
    _ACTIVE = StageRun(cfg, save_dir)
    resources.push(_end_on_exit)
    return _ACTIVE


def _end_on_exit(kind: type | None, err: BaseException | None, tb: Any) -> None:
    """Exit callback of the stage's resource stack (:func:`begin_stage_run`); the stage's
    exception, if any, goes on."""
    end_stage_run(None if _ACTIVE is None else _ACTIVE.final_metrics, failed=kind is not None)


def stage_run(save_dir: str | Path | None = None, *, resume_dir: str | Path | None = None,
              group: str | None = None) -> StageRun:
    """The stage's run, opened on first use (arguments: :meth:`StageRun.open`). Outside
    ``run_stage`` (a library call from a test or notebook) a run that logs nothing."""
    if _ACTIVE is None:
        empty = StageRun(OmegaConf.create({"stage": {"name": "none"}}), ".")
        empty.opened = True
        return empty
    return _ACTIVE.open(save_dir, resume_dir=resume_dir, group=group)


def end_stage_run(metrics: Mapping[str, Any] | None, failed: bool = False) -> None:
    """Log the stage's final metrics and close its run (failed: exit code 1). A stage that
    never used its run still logs its config and final metrics here."""
    global _ACTIVE
    run, _ACTIVE = _ACTIVE, None
    if run is None:
        return
    try:
        if failed:  # the dashboard shows the failed job; a failed start is not retried
            try:
                run.open()
            except Exception as err:
                log.warning("could not open the wandb run of the failed stage: %s", err)
        else:  # a logging failure never fails a finished stage (metrics.json still written)
            try:
                run.open()
                if metrics:
                    run.log(metrics)
            except Exception as err:
                log.warning("wandb: could not log the stage's final metrics: %s", err)
    finally:
        run.finish(failed=failed)


# ------------------------------------------------------------------ Lightning loggers
def build_logger(cfg_logger: DictConfig | None, save_dir: str | Path) -> Any:
    """Instantiate `cfg.logger` (wandb, csv) or return False when it is null.

    wandb runs offline when `offline` is null and no credentials exist (WANDB_API_KEY or a
    key stored by `wandb login`: :func:`has_credentials`), so a machine
    without a key or network still logs everything locally (`wandb sync` uploads it later).
    Stages log through :class:`StageRun`, which hands Lightning a logger on its run.
    """
    if cfg_logger is None:
        return False
    node = OmegaConf.to_container(cfg_logger, resolve=True)
    for key in OWN_OPTIONS:  # ours, not WandbLogger's
        node.pop(key, None)
    node["save_dir"] = str(save_dir)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    wandb_logger = _is_wandb_class(node.get("_target_"))
    if wandb_logger:
        if node.get("offline") is None:
            node["offline"] = not has_credentials()
        if node["offline"]:
            os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        log.info("wandb logger (%s)", "offline" if node["offline"] else "online")
    logger = instantiate(node, "logger")
    if wandb_logger:
        # Lightning always passes `anonymous=None` to wandb.init, which wandb (0.31 here)
        # answers with "The anonymous setting has no effect" on every run; None means unset.
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)
    return logger



def _wandb_logger_class() -> type | None:
    """Lightning's WandbLogger class (None when Lightning cannot provide it)."""
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:
        return None
    return WandbLogger


def _is_wandb_class(target: Any) -> bool:
    """Does the `_target_` path name Lightning's WandbLogger or a subclass of it?"""
    if not target:
        return False
    from hydra.utils import get_class

    wandb_logger = _wandb_logger_class()
    try:
        cls = get_class(str(target))
    except Exception:  # instantiate reports a bad target with its own one-line error
        return False
    return wandb_logger is not None and isinstance(cls, type) and issubclass(cls, wandb_logger)
