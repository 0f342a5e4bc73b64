"""The stage's wandb run: opened on first use, filled, closed with the stage.

:func:`begin_stage_run` (called by :func:`rest_mcts.stages.run_stage`) makes the stage's
:class:`StageRun`, not yet opened, and registers its end on the stage's resource stack; the
stage receives it on its run spec (``spec.tracker``) and opens it with ``stage_run(spec)`` (the
loop first, with the run id file in its folder, so a resumed loop appends to the same run).
No module global holds it: the stack that ends it and the spec that carries it are the only
references. Online when credentials exist, offline otherwise
(:func:`rest_mcts.tracking.credentials.wandb_mode`); online but the wandb server does not
answer a short probe (no network, a wrong ``WANDB_BASE_URL``): offline at once, with one
warning line naming the folder to ``wandb sync`` later
(:func:`rest_mcts.tracking.credentials.server_unreachable`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from rest_mcts.tracking.credentials import base_url, server_unreachable, shown_url, wandb_mode
from rest_mcts.tracking.identity import loggable_config, run_identity
from rest_mcts.tracking.lightning import build_logger, is_wandb_node
from rest_mcts.tracking.names import wandb_metrics
from rest_mcts.tracking.tables import sample_rows

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run.json"


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
        self.in_run_already: set[str] = set()  # final metrics the run holds: not logged again
        self._lightning: Any = None
        self.is_wandb = is_wandb_node(self.node)
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
        unreachable = server_unreachable() if mode == "online" else None
        if unreachable:
            mode = "offline"
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
        if unreachable:
            folder = Path(self.run.dir).parent
            log.warning("wandb: %s does not answer (%s); logging offline to %s: upload it "
                        "later with `wandb sync %s`", shown_url(base_url()), unreachable,
                        folder, folder)
        # Lightning's training metrics against the run's training step (one step across
        # every training of the stage: rest_mcts.tracking.wandb_logger), the loop's rows
        # against its iteration (step_metric)
        self.run.define_metric("trainer/global_step")
        for key in ("train/*", "val/*", "trainer/epoch"):
            self.run.define_metric(key, step_metric="trainer/global_step", step_sync=True)
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
        """Log scalar metrics under their canonical names
        (:func:`rest_mcts.tracking.names.canonical`); with a CSV
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

    def skip_at_end(self, keys: Iterable[str]) -> None:
        """Final metrics (keys of the stage's ``metrics.json``) whose values the run already
        holds under their own names (the loop's last row, logged with its iteration):
        :func:`end_stage_run` leaves them out, so each value is logged once."""
        self.in_run_already.update(keys)

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
        """The Lightning logger of every training inside this stage: a
        :class:`rest_mcts.tracking.wandb_logger.RunLogger` on this run (one step across the
        trainings, the run's config left alone), the configured CSV logger, or False."""
        if self._lightning is None:
            if self.run is not None:
                from rest_mcts.tracking.wandb_logger import RunLogger

                first = _read_json(self.resume_file).get("step", 0) if self.resume_file else 0
                self._lightning = RunLogger(self.run, str(self.save_dir), first_step=first,
                                            on_fit_end=self._keep_step)
            elif self.node is not None and not self.is_wandb:
                self._lightning = build_logger(self.node, self.save_dir)
                self._lightning.log_hyperparams(loggable_config(self.cfg))
            else:
                self._lightning = False
        return self._lightning

    # ---- resume bookkeeping (the loop)
    def _keep_step(self, next_step: int) -> None:
        """After a training: the run's next free training step, kept beside the run id so a
        resumed run's trainings go on from it."""
        if self.resume_file is None or self.run is None:
            return
        record = _read_json(self.resume_file)
        record["step"] = int(next_step)
        _write_json(self.resume_file, record)

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
            offline = getattr(run.settings, "mode", None) == "offline" or getattr(
                run.settings, "_offline", False)
            folder = Path(run.dir).parent if getattr(run, "dir", None) else None
            run.finish(exit_code=1 if failed else 0)
            if offline and folder is not None:
                log.info("wandb run logged offline: upload it with `wandb sync %s`", folder)
        elif self._lightning and not self.is_wandb:
            self._lightning.save()


def new_run_id() -> str:
    """A wandb run id (8 lowercase letters and digits, as wandb makes them)."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


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


def begin_stage_run(cfg: DictConfig, save_dir: str | Path,
                    resources: contextlib.ExitStack) -> StageRun:
    """The stage's run, not yet opened; ``run_stage`` calls it before the stage. The run ends
    with the stage's resource stack ``resources``: :func:`end_stage_run` logs its
    :attr:`StageRun.final_metrics` and closes it, marked failed when the stage raised (the
    stage's exception, if any, goes on)."""
    run = StageRun(cfg, save_dir)

    def end_on_exit(kind: type | None, err: BaseException | None, tb: Any) -> None:
        end_stage_run(run, run.final_metrics, failed=kind is not None)

    resources.push(end_on_exit)
    return run


def stage_run(spec: Any, save_dir: str | Path | None = None, *,
              resume_dir: str | Path | None = None, group: str | None = None) -> StageRun:
    """The stage's run (``spec.tracker``, made by :func:`begin_stage_run`), opened on first
    use (arguments: :meth:`StageRun.open`). ``spec``: the stage's run spec
    (:class:`rest_mcts.runtime.spec.RunSpec`) or the run itself. A spec without a run, or
    None (a stage called outside ``run_stage``: a test, a notebook): a run that logs
    nothing."""
    tracker = spec if isinstance(spec, StageRun) else getattr(spec, "tracker", None)
    if tracker is None:
        empty = StageRun(OmegaConf.create({"stage": {"name": "none"}}), ".")
        empty.opened = True
        return empty
    return tracker.open(save_dir, resume_dir=resume_dir, group=group)


def end_stage_run(run: StageRun, metrics: Mapping[str, Any] | None, failed: bool = False) -> None:
    """Log the stage's final metrics and close its run (failed: exit code 1). A stage that
    never used its run still logs its config and final metrics here; those the stage marked
    as already in the run (:meth:`StageRun.skip_at_end`) are not logged again."""
    try:
        if failed:  # the dashboard shows the failed job; a failed start is not retried
            try:
                run.open()
            except Exception as err:
                log.warning("could not open the wandb run of the failed stage: %s", err)
        else:  # a logging failure never fails a finished stage (metrics.json still written)
            try:
                run.open()
                metrics = {k: v for k, v in (metrics or {}).items()
                           if k not in run.in_run_already}
                if metrics:
                    run.log(metrics)
            except Exception as err:
                log.warning("wandb: could not log the stage's final metrics: %s", err)
    finally:
        run.finish(failed=failed)
