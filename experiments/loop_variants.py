"""Variants of the self-training loop that share one loop's iteration 0.

    python experiments/loop_variants.py outputs/loop_runs/countdown-s0-<hash> \\
        --variant init_previous "stage.policy_init=previous stage.policy_data=current" \\
        --variant epochs12 "stage.sft.epochs=12"

Iteration 0 of the loop (policy_0, D_V0, PRM_0, the fixed PRM validation set and the
iteration-0 evaluation) depends on none of the settings a variant may change (the policy's SFT,
the training search's data and the PRM's later training), so each variant's folder starts with
a copy of the base folder's iteration 0 (paths inside its manifests pointed at the copy) and
runs `python run.py stage=loop stage.dir=<variant folder> <the base's seed> <overrides>`
from iteration 1. A variant that would change iteration 0 is refused. Each folder keeps its
own `loop_config.json`; reruns resume. The results tables go to each folder's results.md;
`experiments/loop_seeds.py` reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Settings that act from iteration 1 on only: a variant may override these and nothing else.
AFTER_ITERATION_0 = (
    "stage.sft.", "stage.policy_init=", "stage.policy_data=", "stage.train_problems=",
    "stage.d_g_min_value=", "stage.train_early_stop=", "stage.prm_data=", "stage.prm_init=",
    "stage.prm_train.epochs=", "stage.iterations=", "stage.eval_methods=", "stage.policy_eval",
    "logger=", "trainer.enable_progress_bar=",
)
SHARED = ("iter_0", "prm_eval_set")


def check_overrides(overrides: list[str]) -> None:
    for item in overrides:
        if not item.startswith(AFTER_ITERATION_0):
            raise SystemExit(f"error: override {item!r} may change iteration 0; a variant may "
                             f"only set {', '.join(AFTER_ITERATION_0)}")


def base_settings(base: Path) -> dict:
    record = base / "loop_config.json"
    if not record.is_file():
        raise SystemExit(f"error: {record} not found (is {base} a loop folder?)")
    config = json.loads(record.read_text())["config"]
    for step in ("iter_0/prm", "prm_eval_set", "iter_0/d_v0"):
        if not (base / step / "manifest.json").is_file():
            raise SystemExit(f"error: {base / step} is not finished: run the base loop first")
    return config


def copy_iteration0(base: Path, folder: Path) -> None:
    """Copy the base's iteration-0 steps into ``folder``, with every path in a manifest that
    points into the base pointed into the copy instead (skipped when already copied)."""
    for name in SHARED:
        if (folder / name).exists():
            continue
        shutil.copytree(base / name, folder / name, symlinks=True)
        for manifest in (folder / name).rglob("manifest.json"):
            text = manifest.read_text()
            manifest.write_text(text.replace(str(base.resolve()), str(folder.resolve())))


def flat(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_same_iteration0(base_config: dict, folder: Path) -> None:
    """The variant's recorded config differs from the base's only in settings that act from
    iteration 1 on (the base may have been run with other defaults or overrides)."""
    mine = flat(json.loads((folder / "loop_config.json").read_text())["config"])
    theirs = flat(base_config)
    changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    bad = [k for k in changed if not f"{k}=".startswith(AFTER_ITERATION_0)]
    if bad:
        raise SystemExit(f"error: {folder} differs from its base in {', '.join(bad)}, which "
                         "shape iteration 0: the copied iteration 0 is not this variant's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="a loop folder whose iteration 0 is finished")
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"),
                        required=True, help="a name and its space-separated overrides")
    parser.add_argument("--out", type=Path, default=None,
                        help="parent of the variant folders (default: next to the base)")
    parser.add_argument("--extra", default="", help="overrides given to every variant")
    args = parser.parse_args()
    base = args.base.resolve()
    config = base_settings(base)
    seed = config["seed"]
    parent = (args.out or base.parent).resolve()
    for name, overrides in args.variant:
        items = overrides.split() + args.extra.split()
        check_overrides(items)
        folder = parent / f"{base.name}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        copy_iteration0(base, folder)
        cmd = [sys.executable, str(ROOT / "run.py"), "stage=loop", f"seed={seed}",
               f"stage.dir={folder}", f"hydra.run.dir={folder / 'hydra'}", *items]
        print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
        with open(folder / "variant.log", "a") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if (folder / "loop_config.json").is_file():
            check_same_iteration0(config, folder)
        if proc.returncode != 0:
            raise SystemExit(f"error: variant {name} failed (exit {proc.returncode}); "
                             f"see {folder / 'variant.log'}")
        print(f"[{name}] done: {folder / 'results.md'}", flush=True)


if __name__ == "__main__":
    main()
