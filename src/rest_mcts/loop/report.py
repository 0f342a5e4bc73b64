"""The self-training loop's results: one row per iteration, as markdown, CSV and a plot.

The CSV has every column of :data:`COLUMNS` (the per-depth ones, :data:`BY_DEPTH`, only
there); the markdown splits the others into tables that fit a screen: the evaluated methods
by iteration (accuracy and policy tokens per question in one cell, in
:data:`rest_mcts.loop.evaluate.EVAL_METHODS` order), each method's costs (policy tokens,
prompt tokens and PRM calls per question) and the PRM and data columns. A key a row
lacks (an older loop folder, a method left out) is empty in the CSV and "-" in markdown; a
key is read under any of its names (:func:`rest_mcts.tracking.names.lookup`), so a row that
holds a metric under an older name fills the same column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from rest_mcts.loop import gates
from rest_mcts.loop.evaluate import EVAL_METHODS, SAMPLED
from rest_mcts.tracking.names import lookup
from rest_mcts.utils.io import read_json

# Method columns (prefix, header): accuracy and costs of each method of the evaluation.
METHODS: list[tuple[str, str]] = list(EVAL_METHODS.values())
# Column prefixes of the rules read from the one sampling pass at MCTS*'s tokens.
SAMPLED_PREFIXES = frozenset(EVAL_METHODS[name][0] for name in SAMPLED)
# A method's costs per question (suffix, header, format).
COSTS: list[tuple[str, str, str]] = [
    ("tokens", "policy tok/q", "{:.0f}"),
    ("prompt_tokens", "prompt tok/q", "{:.0f}"),
    ("prm_calls", "PRM calls/q", "{:.1f}"),
]
# The sampling pass and BFS's beam (key, header, format).
BUDGET: list[tuple[str, str, str]] = [
    ("sampled/n_max", "n_max", "{:.0f}"),
    ("sampled/n_at_tokens", "N at MCTS* tok", "{:.1f}"),
    ("sampled/target_tokens", "MCTS* tok/q", "{:.0f}"),
    ("sampled/bracketed", "bracketed", "{:.0f}"),
    ("bfs/beam_width", "BFS beam", "{:.0f}"),
]

# The policy alone (stage.policy_eval: k = its samples), the PRM and the data (key, header,
# format): the last markdown table.
OTHER: list[tuple[str, str, str]] = [
    ("policy/greedy_acc", "policy greedy", "{:.3f}"),
    ("policy/pass@k", "policy pass@k", "{:.3f}"),
    ("policy/legal_step_rate", "policy legal steps", "{:.3f}"),
    ("prm/val_mse", "PRM mse", "{:.4f}"),
    ("prm/val_sibling_acc", "PRM sibling acc", "{:.3f}"),
    ("prm/val_oracle_mse", "PRM oracle mse", "{:.4f}"),
    ("prm/val_oracle_acc@0.1", "PRM oracle acc@0.1", "{:.3f}"),
    ("data/d_v_rows", "D_V rows", "{:.0f}"),
    ("data/d_g_traces", "D_G traces", "{:.0f}"),
    ("data/dpo_pairs", "DPO pairs", "{:.0f}"),
    ("data/train_tokens_per_question", "train policy tok/q", "{:.0f}"),
    ("data/budget_tokens", "budget tok/q", "{:.0f}"),
]


# Per depth d of a step (CSV only; experiments/loop_seeds.py and the iteration-0 gates read
# them): the policy's step skill, a uniformly random legal move's, their ratio
# (rest_mcts.search.evaluation.step_skill) and the PRM's sibling ranking accuracy.
DEPTHS = (1, 2, 3)
BY_DEPTH: list[tuple[str, str, str]] = [
    *((f"policy/{name}@{d}", f"policy {name} d={d}", "{:.3f}") for d in DEPTHS
      for name in ("step_skill", "step_random", "step_skill_ratio")),
    *((f"prm/val_sibling_acc@{d}", f"PRM sibling acc d={d}", "{:.3f}") for d in DEPTHS),
]


def _method_columns(prefix: str, header: str) -> list[tuple[str, str, str]]:
    return [(f"{prefix}/acc", f"{header} acc", "{:.3f}"),
            *((f"{prefix}/{suffix}", f"{header} {what}", fmt) for suffix, what, fmt in COSTS)]


# (column key, header, format) in CSV order; a missing key is empty (CSV) or "-" (markdown).
# The keys cot/*, sc/* and mcts/* are those of older tables.
COLUMNS: list[tuple[str, str, str]] = [
    ("iteration", "iter", "{:.0f}"),
    *(column for prefix, header in METHODS for column in _method_columns(prefix, header)),
    *BUDGET,
    *OTHER,
    *BY_DEPTH,
]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = lookup(row, key)
    return "-" if value is None else fmt.format(value)


def _beyond(row: dict, prefix: str) -> bool:
    """Whether a sampled rule's accuracy was read at the end of its N curve, not at MCTS*'s
    tokens (the curve does not bracket them)."""
    return prefix in SAMPLED_PREFIXES and lookup(row, "sampled/bracketed") == 0.0


def _method_cell(row: dict, prefix: str) -> str:
    acc, tokens = lookup(row, f"{prefix}/acc"), lookup(row, f"{prefix}/tokens")
    if acc is None:
        return "-"
    mark = " †" if _beyond(row, prefix) else ""
    return f"{acc:.3f}" + ("" if tokens is None else f" ({tokens:.0f}{mark})")


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(line) + " |" for line in lines)]


def markdown(rows: Sequence[dict]) -> str:
    """The results in markdown: the methods' held-out accuracy (policy tokens per question)
    by iteration; each method's accuracy and costs per question (policy tokens, prompt
    tokens, PRM calls), one line per iteration and method; then the PRM and data columns.
    A method or budget column that no row holds is left out (a baseline loop evaluates CoT
    alone)."""
    def it(row: dict) -> str:
        return _cell(row, "iteration", "{:.0f}")

    def held(key: str) -> bool:
        return any(lookup(row, key) is not None for row in rows)

    shown = [(p, h) for p, h in METHODS if held(f"{p}/acc")] or METHODS
    budget = [(k, h, f) for k, h, f in BUDGET
              if k not in ("sampled/bracketed", "sampled/target_tokens") and held(k)]
    methods = _table(
        ["iter", *(h for _, h, _ in budget), *(header for _, header in shown)],
        [[it(row), *(_cell(row, k, f) for k, _, f in budget),
          *(_method_cell(row, prefix) for prefix, _ in shown)] for row in rows],
    )
    costs = _table(
        ["iter", "method", "acc", *(h for _, h, _ in COSTS)],
        [[it(row), header, _cell(row, f"{prefix}/acc", "{:.3f}"),
          *(_cell(row, f"{prefix}/{suffix}", fmt) for suffix, _, fmt in COSTS)]
         for row in rows for prefix, header in METHODS if lookup(row, f"{prefix}/acc") is not None],
    )
    other = _table(["iter", *(h for _, h, _ in OTHER)],
                   [[it(row), *(_cell(row, k, f) for k, _, f in OTHER)] for row in rows])
    note = "Held-out accuracy (policy tokens per question)."
    if any(p in SAMPLED_PREFIXES or p in ("bfs", "mcts_lean") for p, _ in shown):
        note += (" SC, BoN (PRM last step value, "
            "PRM product of step values), vote (PRM) and pass@N (any of N correct: the "
            "ceiling) come from one sampling pass of n_max solutions per question (about "
            "2 x MCTS* tokens / CoT tokens, capped by stage.sc_max_n), each read at MCTS*'s "
            "tokens by linear interpolation in log tokens between the two N that bracket "
            "them (N at MCTS* tok: the N read the same way). † : the N curve does not "
            "bracket MCTS*'s tokens; the value is its end's, at the tokens shown. "
            "BFS beam: ceil(N / b) with N = ceil(MCTS* tokens / CoT tokens) and MCTS*'s "
            "branch b. MCTS* lean: no rollout, no bonus for unvisited children.")
    return "\n".join([note, "", *methods, "", "Costs per question:", "", *costs, "",
                      *other]) + "\n"


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([k for k, _, _ in COLUMNS])
        for row in rows:
            writer.writerow(["" if lookup(row, k) is None else lookup(row, k)
                             for k, _, _ in COLUMNS])


def questions_of(row: dict, default: int | None = None) -> int | None:
    """The held-out questions behind a row's accuracies (``eval/num_questions``, recorded
    from the evaluation's metrics; ``default`` for a row of an older folder)."""
    value = lookup(row, "eval/num_questions")
    return int(value) if value else default


def plot(rows: Sequence[dict], path: Path, title: str, questions: int | None = None) -> None:
    """Accuracy of every evaluated method by iteration, each with its 95% Wilson interval over
    the held-out questions (:func:`rest_mcts.figures.intervals.wilson_of_rate`), and the PRM's
    sibling ranking accuracy against the exact values. Series sit side by side (a small
    sideways shift), each with its own colour and marker; MCTS* is drawn thicker, pass@N (the
    ceiling) dotted, the PRM dashed. ``questions``: the held-out questions when a row does
    not say."""
    from rest_mcts.figures.intervals import wilson_of_rate
    from rest_mcts.figures.labels import label
    from rest_mcts.figures.style import LINE_ALPHA, dodge, pyplot, series_style

    plt = pyplot()
    iterations = [lookup(row, "iteration") for row in rows]
    fig, ax = plt.subplots(figsize=(8.4, 4.8))
    curves = [(f"{prefix}/acc", header) for prefix, header in METHODS]
    curves.append(("prm/val_sibling_acc", "PRM sibling ranking acc (validation set)"))
    present = [(key, name) for key, name in curves
               if any(lookup(row, key) is not None for row in rows)]
    top = 0.0
    for i, (key, name) in enumerate(present):
        points = [(it, lookup(row, key), questions_of(row, questions))
                  for it, row in zip(iterations, rows) if lookup(row, key) is not None]
        xs = dodge([p[0] for p in points], i, len(present), iterations)
        ys = [p[1] for p in points]
        style = series_style(i)
        if key.startswith("prm"):
            style.update(color="0.35", linestyle="--")
        else:
            style["linestyle"] = ":" if key.startswith("pass@n") else "-"
        width = 2.4 if key == "mcts/acc" else 1.4  # the paper's method stands out
        cis = [wilson_of_rate(y, n) if n and not key.startswith("prm") else None
               for y, (_, _, n) in zip(ys, points)]
        low = [y - ci.low if ci else 0.0 for y, ci in zip(ys, cis)]
        high = [ci.high - y if ci else 0.0 for y, ci in zip(ys, cis)]
        ax.errorbar(xs, ys, yerr=[low, high], capsize=2.5, elinewidth=1, markersize=5,
                    linewidth=width, alpha=LINE_ALPHA, label=name, **style)
        top = max(top, *(y + h for y, h in zip(ys, high)))
    ax.set_xlabel(label("iteration"))
    ax.set_ylabel(label("eval/acc"))
    ax.set_xticks(iterations)
    ax.set_ylim(0, min(1.0, top * 1.1 + 0.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    counts = sorted({n for row in rows if (n := questions_of(row, questions))})
    basis = (f"{' or '.join(str(n) for n in counts)} held-out questions per point; "
             "bars: 95% Wilson interval" if counts else "held-out questions: not recorded")
    ax.set_title(f"{title}\n{basis}", fontsize=9)
    fig.text(0.01, 0.01, "Methods read from one sampling pass at MCTS*'s tokens (SC, BoN, "
             "vote, pass@N) are interpolated: their interval is approximate. PRM: no interval.",
             fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


# Parts of a loop's wall time: (part, pattern of the steps it sums, matched by fnmatch).
PARTS: list[tuple[str, str]] = [
    ("D_V0 (BFS trees of the base policy)", "iter_0/d_v0"),
    ("PRM validation set (BFS trees)", "prm_eval_set"),
    ("PRM_0 training", "iter_0/prm"),
    ("MCTS* on the training questions", "iter_[1-9]*/search"),
    ("samples on the training questions (baselines)", "iter_[1-9]*/sample"),
    ("DPO pairs", "iter_[1-9]*/pairs"),
    ("extract D_V, D_G", "iter_[1-9]*/extract"),
    ("PRM_k training", "iter_[1-9]*/prm"),
    ("policy_k SFT (DPO for the DPO baseline)", "iter_[1-9]*/policy"),
    ("evaluation: the policy alone", "iter_*/eval_policy"),
    ("evaluation: search methods", "iter_*/eval_[!pP]*"),
    ("evaluation: PRM", "iter_*/eval_prm"),
]


def step_seconds(root: str | Path) -> dict[str, float]:
    """Wall seconds of every finished step of the loop folder ``root`` (from the manifests;
    a step that was resumed counts only its last, finishing run)."""
    root = Path(root)
    out = {}
    for manifest in sorted(root.glob("**/manifest.json")):
        record = read_json(manifest, dict)  # a step's manifest names its step (a model's does not)
        if "step" in record and isinstance(record.get("seconds"), (int, float)):
            out[manifest.parent.relative_to(root).as_posix()] = float(record["seconds"])
    return out


def time_table(root: str | Path, bootstrap_seconds: float | None = None) -> str:
    """Markdown table of the loop's wall time by part (:data:`PARTS`), with the bootstrap of
    policy_0 (trained before the loop, outside its folder) when given, and the total."""
    import fnmatch

    seconds = step_seconds(root)
    lines = [] if bootstrap_seconds is None else [("policy_0 bootstrap", bootstrap_seconds)]
    for part, pattern in PARTS:
        total = sum(v for step, v in seconds.items() if fnmatch.fnmatch(step, pattern))
        if total:
            lines.append((part, total))
    lines.append(("total", sum(v for _, v in lines)))
    return "\n".join(_table(["part", "minutes"], [[p, f"{v / 60:.1f}"] for p, v in lines]))


def write_report(
    rows: Sequence[dict], folder: str | Path, title: str, bootstrap_seconds: float | None = None,
    questions: int | None = None,
) -> dict[str, Path]:
    """``results.md`` (the tables, the iteration-0 gates of :mod:`rest_mcts.loop.gates`, then
    the wall time by part), ``results.csv`` and
    ``accuracy.png`` in ``folder`` (``questions``: the held-out questions, for rows that do
    not record them); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / "results.md", "csv": folder / "results.csv",
             "plot": folder / "accuracy.png"}
    gate_lines = "\n".join(f"- {line}" for line in gates.summary(rows[0])) if rows else ""
    paths["markdown"].write_text(
        f"# {title}\n\n" + markdown(rows) + "\n\n## Iteration-0 gates\n\n" + gate_lines
        + "\n\n## Wall time\n\n" + time_table(folder, bootstrap_seconds) + "\n")
    write_csv(rows, paths["csv"])
    plot(rows, paths["plot"], title, questions)
    return paths


def print_summary(
    rows: Sequence[dict], root: Path, title: str, paths: dict[str, Path], eval_problems: int
) -> None:
    """The loop's closing console summary: the table and where everything went."""
    print("\n" + title + f" (held-out {eval_problems} problems)\n\n" + markdown(rows))
    print(f"results: {paths['markdown']} and {paths['csv']}")
    print(f"plot:    {paths['plot']}")
    print(f"time:    {paths['markdown']} (wall time by part)")
    if not (root / "iter_0" / "prm").is_dir():  # a baseline loop: no trees, no PRM
        print(f"samples: {root}/iter_*/sample/samples.jsonl (training), "
              f"{root}/iter_*/eval_*/trees (evaluation)")
        print(f"models:  {root}/iter_*/policy/model (Lightning checkpoints in "
              "iter_*/policy/checkpoints)")
        return
    print(f"trees:   {root}/iter_*/search/trees (training), {root}/iter_*/eval_*/trees (evaluation)")
    print(f"models:  {root}/iter_*/prm/model, {root}/iter_*/policy/model "
          f"(Lightning checkpoints in iter_*/*/checkpoints)")
