"""The paper's two comparisons on Countdown, over seeds: self-training methods (its Table 2)
and verifiers (its Table 3).

    .venv/bin/python experiments/paper_tables.py --seeds 0,1,2,3,4,5 -- threads=1

1. Table 2 (:func:`_table2.run_table2`): per seed, the ReST-MCTS* loop, then ReST-EM and DPO
   matched to its measured policy tokens per training question, ``--iterations`` iterations
   each, in ``<root>/<method>-s<seed>/`` (resumed when run again). Writes
   ``experiments/results/table2_countdown.md`` (``--table2``).
2. Table 3 (:func:`_table3.run_table3`): the verifiers of each seed's ReST-MCTS* loop (its last
   iteration's policy and PRM; the ORM trained on the trees behind that PRM's D_V) on
   ``--problems`` held-out questions at MCTS*'s policy tokens. Writes
   ``experiments/results/table3_countdown.md`` (``--table3``).

Every loop, search and model is cached, so an interrupted run resumes where it stopped. The
overrides after ``--`` go to every loop and to Table 3 (``threads=1``, ``data=countdown3``, a
smaller ``stage.train_problems`` for a quick check).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _table2  # noqa: E402  (the experiments folder is on the path from here)
import _table3  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated seeds")
    parser.add_argument("--iterations", type=int, default=2, help="self-training iterations K")
    parser.add_argument("--problems", type=int, default=200,
                        help="held-out questions per seed of Table 3")
    parser.add_argument("--root", type=Path, default=ROOT / "outputs" / "paper_tables",
                        help="loops in <root>/<method>-s<seed>, Table 3's work in <root>/table3")
    parser.add_argument("--table2", type=Path, default=RESULTS / "table2_countdown.md")
    parser.add_argument("--table3", type=Path, default=RESULTS / "table3_countdown.md")
    parser.add_argument("overrides", nargs="*", help="config overrides (after --)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        parser.error("--seeds: give at least one seed")

    command = shlex.join(["python", "experiments/paper_tables.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print(_table2.run_table2(seeds, root=args.root, out=args.table2, overrides=args.overrides,
                             iterations=args.iterations, command=command))

    start, load_before = time.time(), _table3.uptime()
    inputs = [_table3.loop_inputs(seed, _table2.loop_folder(args.root, "rest_mcts", seed))
              for seed in seeds]
    table, cells = _table3.run_table3(inputs, out=args.root / "table3", problems=args.problems,
                                      overrides=args.overrides)
    report = _table3.table3_report(
        inputs, table, cells, command=command, start=start, load_before=load_before,
        notes=[f"the ReST-MCTS* loops of Table 2 ({args.table2.name}), iteration "
               f"{args.iterations}"])
    args.table3.parent.mkdir(parents=True, exist_ok=True)
    args.table3.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
