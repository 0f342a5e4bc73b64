"""The self-training loop's results: one row per iteration, as markdown, CSV and a plot."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

# (column key, header, format) in table order; a missing key prints as "-".
COLUMNS: list[tuple[str, str, str]] = [
    ("iteration", "iter", "{:.0f}"),
    ("cot/acc", "CoT acc", "{:.3f}"),
    ("cot/tokens", "CoT tok/q", "{:.0f}"),
    ("sc/acc", "SC acc", "{:.3f}"),
    ("sc/n", "SC n", "{:.0f}"),
    ("sc/tokens", "SC tok/q", "{:.0f}"),
    ("mcts/acc", "MCTS* acc", "{:.3f}"),
    ("mcts/tokens", "MCTS* tok/q", "{:.0f}"),
    ("prm/val_mse", "PRM mse", "{:.4f}"),
    ("prm/val_sibling_acc", "PRM sibling acc", "{:.3f}"),
    ("prm/val_oracle_mse", "PRM oracle mse", "{:.4f}"),
    ("prm/val_oracle_acc@0.1", "PRM oracle acc@0.1", "{:.3f}"),
    ("data/d_v_rows", "D_V rows", "{:.0f}"),
    ("data/d_g_traces", "D_G traces", "{:.0f}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def markdown(rows: Sequence[dict]) -> str:
    """The results table in markdown (one line per iteration)."""
    header = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([k for k, _, _ in COLUMNS])
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row[k] for k, _, _ in COLUMNS])


def plot(rows: Sequence[dict], path: Path, title: str) -> None:
    """Accuracy (CoT, self-consistency, MCTS*) and the PRM's sibling ranking accuracy against
    the exact values by iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = [row["iteration"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("cot/acc", "policy CoT (greedy)"), ("sc/acc", "self-consistency"),
                       ("mcts/acc", "MCTS* with PRM_k"),
                       ("prm/val_sibling_acc", "PRM sibling ranking acc")):
        points = [(i, row[key]) for i, row in zip(iterations, rows) if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=label,
                    linestyle="--" if key.startswith("prm") else "-")
    ax.set_xlabel("self-training iteration k")
    ax.set_ylabel("accuracy (held-out)")
    ax.set_xticks(iterations)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows: Sequence[dict], folder: str | Path, title: str) -> dict[str, Path]:
    """``results.md``, ``results.csv`` and ``accuracy.png`` in ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / "results.md", "csv": folder / "results.csv",
             "plot": folder / "accuracy.png"}
    paths["markdown"].write_text(f"# {title}\n\n" + markdown(rows))
    write_csv(rows, paths["csv"])
    plot(rows, paths["plot"], title)
    return paths


def print_summary(
    rows: Sequence[dict], root: Path, title: str, paths: dict[str, Path], eval_problems: int
) -> None:
    """The loop's closing console summary: the table and where everything went."""
    print("\n" + title + f" (held-out {eval_problems} problems)\n\n" + markdown(rows))
    print(f"results: {paths['markdown']} and {paths['csv']}")
    print(f"plot:    {paths['plot']}")
    print(f"trees:   {root}/iter_*/search/trees (training), {root}/iter_*/eval_*/trees (evaluation)")
    print(f"models:  {root}/iter_*/prm/model, {root}/iter_*/policy/model "
          f"(Lightning checkpoints in iter_*/*/checkpoints)")
