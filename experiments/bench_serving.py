"""MCTS* through `backend=openai` against llama.cpp's OpenAI-compatible server with
SmolLM2-135M-Instruct: how busy does the search keep the server?

    python experiments/bench_serving.py --prm <SmolLM2 PRM folder> \\
        [--questions 8] [--iterations 4] [--concurrency 1 8 32] [--test gsm8k_test.jsonl]

For each concurrency c (questions searched side by side = requests in flight,
`stage.concurrency=c backend.concurrency=c`) it runs `python run.py stage=eval search=mcts_star
search.self_critic=llm backend=openai ...` on the same GSM8K questions, through a recording
proxy on 127.0.0.1 that notes every request's start, end and completion tokens. Then it floods
the server directly with the very requests of the highest-concurrency run (same bodies, same
seeds), 32 in flight: the server's own throughput on that work. Reported per run:

- policy tokens per second over the search's span (first request to last answer), against
  the flood's: the target is >= 80% at the highest concurrency;
- the server's busy share: the part of the span with at least one request in flight;
- the engine's own split (policy, PRM and the rest) from the run's log.

Needs the extras (requirements-extras.txt, requirements-nodeps.txt) and a SmolLM2 PRM
(`python experiments/smollm2_gsm8k.py` trains one into outputs/smollm2_gsm8k/init_prm/prm), or
`--untrained-prm` (the value head's cost without its judgement: the search's shape differs).
Writes experiments/results/bench_serving.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import ROOT, busy_share, markdown_table
from _llamacpp import GGUF, start_server

RESULTS = ROOT / "experiments" / "results" / "bench_serving.md"
ENGINE_LINE = re.compile(
    r"engine: (\d+) questions, (\d+) policy calls \(([\d.]+)s\), (\d+) scorer calls "
    r"\(([\d.]+)s\), overhead ([\d.]+)%")


class Recorder:
    """A forwarding proxy on 127.0.0.1 that records every POST: (start, end, body, tokens)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.records: list[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 -- http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                start = time.perf_counter()
                request = urllib.request.Request(
                    owner.upstream + self.path.removeprefix("/v1"), data=raw,
                    headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=600) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as err:
                    status, payload = err.code, err.read()
                end = time.perf_counter()
                tokens = 0
                if status == 200:
                    tokens = json.loads(payload).get("usage", {}).get("completion_tokens", 0)
                with owner.lock:
                    owner.records.append({"start": start, "end": end, "tokens": tokens,
                                          "path": self.path, "body": json.loads(raw)})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def take(self) -> list[dict]:
        with self.lock:
            records, self.records = self.records, []
        return records

    def close(self) -> None:
        self.httpd.shutdown()


def timeline(records: list[dict]) -> dict[str, float]:
    """Span (first start to last end), completion tokens, tokens/s over the span, and the
    busy share: the part of the span with at least one request in flight."""
    if not records:
        return {"requests": 0, "tokens": 0, "span": 0.0, "tokens_per_s": 0.0, "busy": 0.0}
    span = max(r["end"] for r in records) - min(r["start"] for r in records)
    tokens = sum(r["tokens"] for r in records)
    return {"requests": len(records), "tokens": tokens, "span": span,
            "tokens_per_s": tokens / span if span else 0.0,
            "busy": busy_share([(r["start"], r["end"]) for r in records])}


def run_search(args: argparse.Namespace, proxy_url: str, concurrency: int,
               schedule: str) -> dict:
    folder = args.out / f"mcts_star_c{concurrency}_{schedule}"
    prm = ["prm.require_trained=false"] if args.untrained_prm else [f"prm.path={args.prm}"]
    command = [
        sys.executable, "run.py", "stage=eval", "model=smollm2_135m", "backend=openai",
        f"backend.base_urls=[{proxy_url}]", "backend.api_key_env=null",
        f"backend.schedule={schedule}",
        "backend.n_per_request=1", f"backend.concurrency={concurrency}",
        f"stage.concurrency={concurrency}", f"data.path={args.test}",
        f"stage.num_problems={args.questions}", "search=mcts_star", "search.self_critic=llm",
        f"search.iterations={args.iterations}", *prm, "logger=null",
        f"hydra.run.dir={folder}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    print("running:", " ".join(command[1:]), flush=True)
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    metrics = json.loads((folder / "metrics.json").read_text())
    match = ENGINE_LINE.search((folder / "run.log").read_text())
    engine = {}
    if match:
        engine = {"policy_calls": int(match[2]), "policy_s": float(match[3]),
                  "scorer_calls": int(match[4]), "scorer_s": float(match[5]),
                  "overhead": float(match[6]) / 100}
    return {"metrics": metrics, "engine": engine}


def flood(url: str, records: list[dict], concurrency: int) -> dict[str, float]:
    """Send the recorded bodies straight to the server, `concurrency` in flight."""
    def post(record: dict) -> dict:
        request = urllib.request.Request(
            url + record["path"].removeprefix("/v1"), data=json.dumps(record["body"]).encode(),
            headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as answer:
            tokens = json.load(answer).get("usage", {}).get("completion_tokens", 0)
        return {"start": start, "end": time.perf_counter(), "tokens": tokens}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        replies = list(pool.map(post, records))
    return timeline(replies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prm", type=Path, help="SmolLM2 PRM folder (stage=init_prm's prm/)")
    parser.add_argument("--untrained-prm", action="store_true",
                        help="score with an untrained value head instead of --prm")
    parser.add_argument("--test", type=Path, default=ROOT / "tests/fixtures/gsm8k_sample.jsonl")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--schedules", nargs="+", default=["streaming", "rounds"],
                        help="engine schedules, each at every concurrency above 1")
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_serving")
    args = parser.parse_args()
    if not args.untrained_prm and (args.prm is None or not (args.prm / "config.json").is_file()):
        sys.exit(f"bench_serving: --prm {args.prm} is not a saved PRM folder (train one with "
                 "python experiments/smollm2_gsm8k.py, or pass --untrained-prm)")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    server, url = start_server(args.server_threads, args.out / "server.log")
    recorder = Recorder(url)
    runs: dict[tuple[int, str], dict] = {}
    try:
        for concurrency in args.concurrency:
            # one question at a time: both schedules send the same requests in the same order
            for schedule in args.schedules[: 1 if concurrency == 1 else None]:
                run = run_search(args, recorder.url, concurrency, schedule)
                run["records"] = recorder.take()
                run["timeline"] = timeline(run["records"])
                runs[concurrency, schedule] = run
                t = run["timeline"]
                print(f"c={concurrency} {schedule}: {t['tokens']} tokens in {t['span']:.1f} s "
                      f"= {t['tokens_per_s']:.1f} tok/s, busy {t['busy']:.0%}", flush=True)
        top = (max(args.concurrency), args.schedules[0])
        flooded = flood(url, runs[top]["records"], 32)
        print(f"flood: {flooded['tokens']} tokens in {flooded['span']:.1f} s = "
              f"{flooded['tokens_per_s']:.1f} tok/s", flush=True)
    finally:
        recorder.close()
        server.terminate()
        server.wait(timeout=20)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    write_results(args, runs, flooded, load_before, load_after)


def write_results(args, runs: dict[tuple[int, str], dict], flooded: dict, before: str,
                  after: str) -> None:
    rows = []
    for (concurrency, schedule), run in runs.items():
        t, e, m = run["timeline"], run["engine"], run["metrics"]
        rows.append([
            concurrency, schedule, t["requests"], t["tokens"], f"{t['span']:.1f}",
            f"{t['tokens_per_s']:.1f}", f"{t['tokens_per_s'] / flooded['tokens_per_s']:.0%}",
            f"{t['busy']:.0%}", f"{e.get('policy_s', float('nan')):.1f}",
            f"{e.get('scorer_s', float('nan')):.1f}",
            f"{m.get('eval/acc', 0):.3f}", f"{m.get('eval/policy_tokens_per_question', 0):.0f}"])
    rows.append(["flood (32 in flight)", "", flooded["requests"], flooded["tokens"],
                 f"{flooded['span']:.1f}", f"{flooded['tokens_per_s']:.1f}", "100%",
                 f"{flooded['busy']:.0%}", "", "", "", ""])
    table = markdown_table(
        ["concurrency", "schedule", "requests", "completion tokens", "span s", "tokens/s", "vs flood",
         "server busy", "engine policy s", "engine PRM s", "acc", "tokens/question"], rows)
    prm = "an untrained value head" if args.untrained_prm else f"`{args.prm}`"
    text = f"""# bench_serving

`python experiments/bench_serving.py {' '.join(sys.argv[1:])}`

MCTS* (`search=mcts_star search.self_critic=llm`, T={args.iterations}) on {args.questions}
GSM8K questions of `{args.test.name}`, policy SmolLM2-135M-Instruct ({GGUF}) served by
llama.cpp's OpenAI-compatible server (llama-cpp-python, {args.server_threads} threads; it
ignores `n` and answers one request at a time, so `backend.n_per_request=1`), PRM {prm}
in-process (HF, float32, CPU). Concurrency c = questions searched side by side =
requests in flight. Machine: {platform.machine()}, {os.cpu_count()} cores shared by the server,
the search process and its PRM. `uptime` before: {before}; after: {after}.

{table}

- tokens/s: completion tokens the server returned over the span from the run's first request
  to its last answer (the search's own time, without process and model start-up).
- server busy: the part of that span with at least one request in flight.
- engine policy s / PRM s: time inside the backends' calls, summed over calls; under
  `streaming` the policy calls overlap (one per question request), so their sum exceeds the
  span.
- flood: the requests of the c={max(args.concurrency)} {args.schedules[0]} run, the same bodies (same seeds), sent straight
  to the server 32 at a time.
"""
    RESULTS.write_text(text)
    (args.out / "runs.json").write_text(json.dumps(
        {f"{c}-{s}": {k: v for k, v in run.items() if k != "records"}
         for (c, s), run in runs.items()}
        | {"flood": flooded}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
