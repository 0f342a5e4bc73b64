"""Summarise a Hydra multirun folder over seeds: ``summary.csv``, ``summary.md``, plots.

    python -m rest_mcts.sweeps.aggregate multirun/eval/<time>          # or several folders

The same runs by itself at the end of every multirun (:mod:`rest_mcts.sweeps.callback`).
Jobs are grouped by every swept key except ``seed``; each group gets, for every metric of
its jobs' ``metrics.json``, the mean, the sample standard deviation (n - 1; empty for one
seed) and the count over its seeds. Jobs that failed (a folder without ``metrics.json``) or
are missing (the sweep asked for them, ``multirun.yaml``, and no folder holds them) are
counted per group, listed in ``summary.md`` and on the console, and never stop the summary.

Written into the multirun folder (or ``--out``):

* ``summary.csv``: swept keys (``seed`` excluded), ``jobs``, ``ok``, ``failed``, ``missing``,
  ``seeds``, then ``<metric>.mean``, ``<metric>.std``, ``<metric>.count`` per metric and, for
  an accuracy whose questions are counted (``<split>/num_questions``), ``<metric>.correct``
  and ``<metric>.trials`` (pooled over seeds) with ``<metric>.wilson_low`` / ``.wilson_high``
  (the 95% Wilson interval, :func:`rest_mcts.sweeps.groups.pooled_accuracy`);
* ``summary.md``: the main metrics as ``mean ± std (n)``, the accuracy's Wilson interval,
  and the jobs that are not ok (paths relative to the multirun folder);
* ``<key>.png`` per swept key: the main accuracy (and policy tokens per question) against
  that key's values, whiskers over seeds and Wilson bars beside them, one series per value
  of the other swept keys (:mod:`rest_mcts.sweeps.plots`);
* ``t_curve.csv`` / ``t_curve.png`` when the jobs report MCTS*'s in-run T curve
  (``<stage>/acc@T=t``, ``<stage>/policy_tokens_per_question@T=t``).

``--from-summary`` redraws all of it from a summary's own ``summary.csv`` (which holds the T
curve's columns too) when the job folders are gone (:func:`redraw`).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rest_mcts.figures.intervals import Interval
from rest_mcts.figures.labels import label
from rest_mcts.sweeps.groups import (  # noqa: F401 - Stat and sort_key are imported from here
    SEED_KEY, Group, Stat, group_jobs, pooled_accuracy, questions_metric, sort_key)
from rest_mcts.sweeps.jobs import Sweep, read_sweep
from rest_mcts.tracking.names import UNTRAINED_PRM, names_of

log = logging.getLogger(__name__)

# The accuracy a summary leads with, the first present under any of its names
# (rest_mcts.tracking.names.ALIASES; else any metric ending in "acc").
PRIMARY_METRICS = ("eval/acc", "search/acc", "loop/mcts/acc", "loop/cot/acc",
                   "eval/greedy_acc", "merge/acc")
T_CURVE = re.compile(r"^(?P<prefix>.+)/(?P<what>acc|policy_tokens_per_question)@T=(?P<t>\d+)$")


@dataclass(frozen=True)
class Summary:
    """A summarised sweep and the files written for it."""

    sweep: Sweep
    keys: tuple[str, ...]
    groups: list[Group]
    metrics: tuple[str, ...]
    files: tuple[Path, ...]


def main_metrics(metrics: Sequence[str]) -> list[str]:
    """The accuracy to lead with and, when reported, the same stage's policy tokens per
    question (what plots and the markdown table show)."""
    curve = [m for m in metrics if T_CURVE.match(m)]
    plain = [m for m in metrics if m not in curve]
    acc = next((n for m in PRIMARY_METRICS for n in names_of(m) if n in plain), None)
    acc = acc or next((m for m in plain if m.endswith("acc")), None)
    acc = acc or (plain[0] if plain else None)
    if acc is None:
        return []
    tokens = next((n for n in names_of(f"{acc.rsplit('/', 1)[0]}/policy_tokens_per_question")
                   if n in plain), None)
    return [acc] + ([tokens] if tokens else [])


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


def _ci_cells(ci: Interval | None) -> list[object]:
    if ci is None:
        return ["", "", "", ""]
    return [ci.correct, ci.trials, _fmt(ci.low), _fmt(ci.high)]


CI_COLUMNS = ("correct", "trials", "wilson_low", "wilson_high")


def pooled_metrics(metrics: Sequence[str]) -> set[str]:
    """The accuracies of ``metrics`` whose questions are counted too (they get CI columns)."""
    return {m for m in metrics if questions_metric(m) in metrics}


def write_csv(path: Path, keys: Sequence[str], groups: list[Group], metrics: Sequence[str]) -> Path:
    """summary.csv: one row per group (see the module docstring)."""
    pooled = pooled_metrics(metrics)
    header = [*keys, "jobs", "ok", "failed", "missing", "seeds"]
    for m in metrics:
        header += [f"{m}.mean", f"{m}.std", f"{m}.count"]
        header += [f"{m}.{c}" for c in CI_COLUMNS] if m in pooled else []
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for g in groups:
            row = [*(g.values[k] for k in keys), g.size(), g.count("ok"), g.count("failed"),
                   g.count("missing"), g.seeds()]
            for m in metrics:
                s = g.stats[m]
                row += [_fmt(s.mean), _fmt(s.std), s.count]
                row += _ci_cells(pooled_accuracy(g, m)) if m in pooled else []
            out.writerow(row)
    return path


def t_curve_table(groups: list[Group]) -> list[dict[str, object]]:
    """One row per (group, stage prefix, T): acc and policy tokens per question at T, the
    questions per seed (``questions``) and the pooled Wilson interval (``acc_ci``)."""
    rows = []
    for g in groups:
        points: dict[tuple[str, int], dict[str, object]] = {}
        for metric, stat in g.stats.items():
            match = T_CURVE.match(metric)
            if match and stat.count:
                point = points.setdefault((match["prefix"], int(match["t"])), {})
                point[match["what"]] = stat
                if match["what"] == "acc":
                    point["acc_ci"] = pooled_accuracy(g, metric)
                    point["questions"] = g.stats.get(questions_metric(metric) or "")
        for (prefix, t), point in sorted(points.items()):
            rows.append({"values": g.values, "prefix": prefix, "T": t, **point})
    return rows


def write_t_curve_csv(path: Path, keys: Sequence[str], rows: list[dict]) -> Path:
    """t_curve.csv: group keys, stage prefix, T, then acc and tokens mean/std/count and the
    accuracy's pooled count and Wilson interval (``acc.correct`` ... ``acc.wilson_high``)."""
    what = ("acc", "policy_tokens_per_question")
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*keys, "prefix", "T",
                      *(f"{w}.{s}" for w in what for s in ("mean", "std", "count")),
                      *(f"acc.{c}" for c in CI_COLUMNS)])
        for r in rows:
            cells: list[object] = [*(r["values"][k] for k in keys), r["prefix"], r["T"]]
            for w in what:
                s = r.get(w) or Stat.of([])
                cells += [_fmt(s.mean), _fmt(s.std), s.count]
            out.writerow(cells + _ci_cells(r.get("acc_ci")))
    return path


@dataclass(frozen=True)
class Heading:
    """What summary.md says above its table: the sweep's name (its folder's, never a path),
    job counts, swept keys, and one line per job not ok (paths relative to the folder)."""

    name: str
    asked: int | None
    ok: int
    failed: int
    missing: int
    swept: tuple[str, ...]
    not_ok: tuple[str, ...] = ()

    @classmethod
    def of(cls, sweep: Sweep) -> "Heading":
        def where(job) -> str:
            if job.folder is None:
                return "no folder"
            try:
                return Path(job.folder).relative_to(sweep.folder).as_posix()
            except ValueError:
                return Path(job.folder).name
        def why(job) -> str:  # a reason may name a file by its full path
            for root in {str(sweep.folder), str(Path(sweep.folder).resolve())}:
                job_reason = job.reason.replace(root + os.sep, "")
                if job_reason != job.reason:
                    return job_reason
            return job.reason
        bad = tuple(f"{job.status}: {job.label()} ({where(job)}): {why(job)}"
                    for job in sweep.jobs if job.status != "ok")
        ok, failed, missing = (len(sweep.by_status(s)) for s in ("ok", "failed", "missing"))
        return cls(Path(sweep.folder).resolve().name, sweep.expected, ok, failed, missing,
                   sweep.swept, bad)


    @classmethod
    def of_groups(cls, folder: Path, keys: Sequence[str], groups: list[Group]) -> "Heading":
        """From groups read back from summary.csv: the jobs not ok are a count, no names."""
        ok, failed, missing = (sum(g.count(s) for g in groups) for s in ("ok", "failed",
                                                                        "missing"))
        seeded = any(len(g.seeds().split()) > 1 for g in groups)
        not_ok = ((f"{failed} failed and {missing} missing jobs (redrawn from summary.csv: "
                   "see the original summary for which)",) if failed or missing else ())
        return cls(folder.resolve().name, sum(g.size() for g in groups), ok, failed, missing,
                   tuple(keys) + ((SEED_KEY,) if seeded else ()), not_ok)


def _sig(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, written out (250, not 2.5e+02)."""
    text = format(float(f"{value:.{digits}g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _stat_cell(s: Stat) -> str:
    if not s.count:
        return "-"
    if math.isnan(s.std):
        return f"{_sig(s.mean, 4)} (1)"
    return f"{_sig(s.mean, 4)} ± {_sig(s.std, 2)} ({s.count})"


def _ci_cell(ci: Interval | None) -> str:
    return "-" if ci is None else f"[{ci.low:.3f}, {ci.high:.3f}] ({ci.correct} / {ci.trials})"


def write_markdown(path: Path, heading: Heading, keys: Sequence[str], groups: list[Group],
                   shown: Sequence[str], plots: Sequence[Path], note: str = "") -> Path:
    """summary.md: ``note`` (bold, when given), the main metrics per group as mean ± std (n)
    and each accuracy's pooled 95% Wilson interval, then the jobs not ok. Every path in it
    is relative: the file stays true when the folder is moved or shared."""
    h = heading
    lines = [f"# Sweep summary: {h.name}", ""]
    asked = "unknown" if h.asked is None else str(h.asked)
    lines += [f"Jobs asked for: {asked}; ok: {h.ok}; failed: {h.failed}; missing: {h.missing}. "
              f"Swept: {', '.join(h.swept) or 'nothing'}; mean ± sample std (n seeds).", ""]
    if note:
        lines += [f"**{note}**", ""]
    pooled = [m for m in shown if questions_metric(m) in groups[0].stats] if groups else []
    if pooled:
        lines += ["95% CI: the Wilson score interval on the correct answers pooled over a "
                  "setting's seeds (correct / questions × seeds). The seeds answer the same "
                  "questions, so it shows question-sampling error; the ± std shows the spread "
                  "between seeds.", ""]
    header = [*keys, "ok / jobs"]
    for m in shown:
        header.append(f"{label(m)} ({m})" if label(m) != m else m)
        header += [f"{m} 95% CI"] if m in pooled else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        cells = [g.values[k] for k in keys] + [f"{g.count('ok')} / {g.size()}"]
        for m in shown:
            cells.append(_stat_cell(g.stats[m]))
            cells += [_ci_cell(pooled_accuracy(g, m))] if m in pooled else []
        lines.append("| " + " | ".join(cells) + " |")
    if h.not_ok:
        lines += ["", "## Jobs not ok", ""] + [f"- {line}" for line in h.not_ok]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path.write_text("\n".join(lines) + "\n")
    return path


def untrained_note(sweep: Sweep) -> str:
    """One line when jobs scored with an untrained value head (``prm.path`` unset), else ""."""
    jobs = [j for j in sweep.by_status("ok") if j.metrics.get(UNTRAINED_PRM) == 1.0]
    return untrained_line(len(jobs), len(sweep.by_status("ok")))


def untrained_line(untrained: int, ok: int) -> str:
    """The untrained-PRM note for ``untrained`` of ``ok`` jobs ("" when none)."""
    if not untrained:
        return ""
    return (f"UNTRAINED PRM: {untrained} of {ok} jobs scored with an "
            "untrained value head (prm.path unset), so their PRM values are noise and the "
            "sweep measures nothing about them; pass prm.path=<a trained PRM>")


def untrained_of_groups(groups: list[Group]) -> str:
    """The untrained-PRM note from the mean of ``prm/untrained_head`` per setting (a summary
    read back from summary.csv)."""
    untrained = sum(round(g.stats[UNTRAINED_PRM].mean * g.stats[UNTRAINED_PRM].count)
                    for g in groups if UNTRAINED_PRM in g.stats and g.stats[UNTRAINED_PRM].count)
    return untrained_line(untrained, sum(g.count("ok") for g in groups))


def report(sweep: Sweep, note: str = "") -> None:
    """The console report: counts, one line per job that failed or is missing, ``note``."""
    ok, failed, missing = (len(sweep.by_status(s)) for s in ("ok", "failed", "missing"))
    asked = "?" if sweep.expected is None else sweep.expected
    log.info("sweep %s: %s jobs asked for, %d ok, %d failed, %d missing",
             sweep.folder, asked, ok, failed, missing)
    for job in sweep.jobs:
        if job.status != "ok":
            log.warning("%s job %s (%s): %s", job.status, job.label(),
                        job.folder or "no folder", job.reason)
    if note:
        log.warning("%s", note)


def aggregate(folder: str | Path, out: str | Path | None = None, plots: bool = True) -> Summary:
    """Summarise the multirun ``folder`` into ``out`` (default: the folder itself).

    Never raises for a failed or missing job (they are reported); a plot that fails is
    logged and left out.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    sweep = read_sweep(folder)
    target = Path(out) if out is not None else sweep.folder
    note = untrained_note(sweep)
    report(sweep, note)
    keys, groups, metrics = group_jobs(sweep)
    files = write_all(target, Heading.of(sweep), keys, groups, metrics, note, plots)
    return Summary(sweep, keys, groups, metrics, files)


def redraw(folder: str | Path, out: str | Path | None = None, plots: bool = True
           ) -> tuple[Path, ...]:
    """Rewrite summary.csv (with the Wilson columns), t_curve.csv, summary.md and the plots
    of the summary in ``folder`` from its summary.csv alone, into ``out`` (default:
    ``folder``): ``--from-summary`` (:mod:`rest_mcts.sweeps.from_summary`).

    Raises:
        FileNotFoundError: ``folder`` has no summary.csv.
        ValueError: its summary.csv is no sweep summary.
    """
    from rest_mcts.sweeps.from_summary import read_summary

    folder = Path(folder)
    path = folder / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (--from-summary wants a summary's folder)")
    keys, groups, metrics = read_summary(path)
    target = Path(out) if out is not None else folder
    note = untrained_of_groups(groups)
    if note:
        log.warning("%s", note)
    return write_all(target, Heading.of_groups(folder, keys, groups), keys, groups, metrics,
                     note, plots)


def write_all(target: Path, heading: Heading, keys: Sequence[str], groups: list[Group],
              metrics: Sequence[str], note: str, plots: bool = True,
              curve: list[dict] | None = None) -> tuple[Path, ...]:
    """summary.csv, t_curve.csv (from ``curve``, else the groups' T metrics), the plots and
    summary.md into ``target``; returns the files written."""
    target.mkdir(parents=True, exist_ok=True)
    shown = main_metrics(metrics)
    files = [write_csv(target / "summary.csv", keys, groups, metrics)]
    curve = t_curve_table(groups) if curve is None else curve
    if curve:
        files.append(write_t_curve_csv(target / "t_curve.csv", keys, curve))
    pngs: list[Path] = []
    if plots and shown:
        from rest_mcts.sweeps import plots as plotting

        try:
            for key in keys:
                pngs.append(plotting.plot_against_key(target / f"{_safe(key)}.png", key, keys,
                                                      groups, shown, untrained=bool(note)))
            if curve:
                pngs.append(plotting.plot_t_curve(target / "t_curve.png", keys, curve,
                                                  untrained=bool(note)))
        except Exception as err:  # noqa: BLE001 - the tables matter more than a figure
            log.warning("plot failed: %s: %s", type(err).__name__, err)
    files.append(write_markdown(target / "summary.md", heading, keys, groups, shown, pngs, note))
    files += pngs
    for path in files:
        log.info("wrote %s", path)
    return tuple(files)


def _safe(key: str) -> str:
    """A file name for a swept key (``search.alpha`` -> ``search.alpha``, ``+a/b`` -> ``a_b``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", key).strip("_") or "key"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rest_mcts.sweeps.aggregate <multirun folder>... [--out DIR] [--no-plots]``
    or ``... --from-summary <summary folder>...``; exit status 0 when every folder was
    summarised (failed jobs included), 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m rest_mcts.sweeps.aggregate",
        description="Summarise Hydra multirun folders over seeds: summary.csv, summary.md, "
                    "one plot per swept key, the T curve when present.")
    parser.add_argument("folders", nargs="+", type=Path, help="multirun folders (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write here instead of into the folder (one folder only)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--from-summary", action="store_true",
                        help="the folders hold a summary (summary.csv, t_curve.csv), not jobs: "
                             "redraw its tables and plots from it")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.folders) > 1:
        parser.error("--out takes one folder")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    status = 0
    for folder in args.folders:
        try:
            if args.from_summary:
                redraw(folder, args.out, plots=not args.no_plots)
            else:
                aggregate(folder, args.out, plots=not args.no_plots)
        except (FileNotFoundError, ValueError) as err:
            log.error("%s", err)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
