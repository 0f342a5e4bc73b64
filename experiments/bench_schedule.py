"""The engine's two schedules against a server that batches continuously (can the search
keep a server busy?): ``rounds`` (each round's requests merged and sent together; the
round waits for all of them) against ``streaming`` (each question's request goes out as soon
as the question makes it).

    python experiments/bench_schedule.py [--questions 64] [--iterations 10]
        [--concurrency 8 32] [--ttft-ms 20] [--tpot-ms 4]

The server is a stand-in for `vllm serve` under a batch it has room for: an OpenAI-compatible
HTTP server on 127.0.0.1 whose every request takes ttft + tokens x tpot of wall time however
many others are in flight (continuous batching with spare capacity: a decode step costs the
same for 1 or 32 sequences), its text from `backend=mock` (scripted Countdown steps, one
token a character). It sleeps rather than computes, so the 2-core machine's load hardly moves
the result. MCTS* (`search=mcts_star`, the paper's settings but T=--iterations) runs on
Countdown test questions through `backend=openai` with the exact oracle as its value model,
in this process, with each schedule: wall time, tokens/s, the server's busy share, and
whether the answers are equal. Writes experiments/results/bench_schedule.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import ROOT, busy_share, markdown_table

from rest_mcts.backends.base import SamplingParams
from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
from rest_mcts.search.configs import search_config_from
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld

RESULTS = ROOT / "experiments" / "results" / "bench_schedule.md"


class ContinuousServer:
    """`/v1/completions` answered by the mock policy after ttft + tokens x tpot seconds
    (every request in its own thread: no queueing). Records (start, end, tokens)."""

    def __init__(self, ttft: float, tpot: float) -> None:
        self.ttft, self.tpot = ttft, tpot
        self.policy = MockPolicyBackend(seed=0)
        self.lock = threading.Lock()
        self.records: list[tuple[float, float, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 -- http.server's name
                start = time.perf_counter()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer, tokens = owner.complete(body)
                time.sleep(max(0.0, owner.ttft + tokens * owner.tpot
                               - (time.perf_counter() - start)))
                with owner.lock:
                    owner.records.append((start, time.perf_counter(), tokens))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def complete(self, body: dict) -> tuple[dict, int]:
        stops = body.get("stop") or []
        params = SamplingParams(n=int(body.get("n", 1)), temperature=float(body["temperature"]),
                                top_p=float(body.get("top_p", 1.0)),
                                max_new_tokens=int(body["max_tokens"]), stop=tuple(stops))
        seed = body.get("seed")
        with self.lock:
            (out,) = self.policy.generate([body["prompt"]], params,
                                          seeds=None if seed is None else [seed])
        choices = []
        for index, completion in enumerate(out.completions):
            text, reason = completion.text, completion.finish_reason
            matched = next((s for s in stops if reason == "stop" and text.endswith(s)), None)
            choices.append({"index": index, "text": text[: -len(matched)] if matched else text,
                            "finish_reason": "length" if reason == "length" else "stop",
                            "stop_reason": matched})
        tokens = sum(c.num_tokens for c in out.completions)
        return ({"choices": choices, "usage": {"prompt_tokens": out.prompt_tokens,
                                               "completion_tokens": tokens}},
                max(c.num_tokens for c in out.completions))

    def take(self) -> list[tuple[float, float, int]]:
        with self.lock:
            records, self.records = self.records, []
        return records

    def close(self) -> None:
        self.httpd.shutdown()


def in_flight(records: list[tuple[float, float, int]]) -> float:
    """Requests in flight on average over the span (first start to last end)."""
    span = max(end for _, end, _ in records) - min(start for start, _, _ in records)
    return sum(end - start for start, end, _ in records) / span if span else 0.0


def run(server: ContinuousServer, world, problems, iterations: int, concurrency: int,
        schedule: str) -> dict:
    search = make_search(search_config_from({"name": "mcts_star", "iterations": iterations}),
                         world, max_solution_tokens=128)
    policy = OpenAIPolicyBackend(base_urls=server.url, api_key_env=None, max_retries=0,
                                 concurrency=max(32, concurrency), schedule=schedule)
    engine = SearchEngine(policy, OracleScorer(world), concurrency=concurrency, seed=0,
                          progress=False)
    server.take()
    start = time.perf_counter()
    results = engine.run_all((p.id, search(p.question)) for p in problems)
    wall = time.perf_counter() - start
    policy.close()
    records = server.take()
    tokens = sum(r.costs.policy_tokens for r in results.values())
    answers = {k: (r.steps, r.answer, r.costs.policy_tokens) for k, r in results.items()}
    correct = sum(world.is_correct(p, list(results[p.id].steps)) for p in problems
                  if results[p.id].finished)
    return {"wall": wall, "tokens": tokens, "tokens_per_s": tokens / wall,
            "requests": len(records),
            "busy": busy_share([(start, end) for start, end, _ in records]),
            "in_flight": in_flight(records),
            "policy_calls": engine.stats["policy_calls"], "acc": correct / len(problems),
            "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--tpot-ms", type=float, default=4.0)
    args = parser.parse_args()
    before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    world = CountdownWorld()
    problems = world.generate(args.questions, seed=0, split="test")
    server = ContinuousServer(args.ttft_ms / 1000, args.tpot_ms / 1000)
    rows, equal = [], []
    try:
        for concurrency in args.concurrency:
            got = {s: run(server, world, problems, args.iterations, concurrency, s)
                   for s in ("rounds", "streaming")}
            equal.append(got["rounds"]["answers"] == got["streaming"]["answers"])
            for schedule, r in got.items():
                speedup = got["rounds"]["wall"] / r["wall"]
                rows.append([concurrency, schedule, f"{r['wall']:.2f}", r["tokens"],
                             f"{r['tokens_per_s']:.0f}", f"{speedup:.2f}x", f"{r['busy']:.0%}",
                             f"{r['in_flight']:.1f}", r["requests"], int(r["policy_calls"]), f"{r['acc']:.3f}"])
                print(rows[-1], flush=True)
    finally:
        server.close()
    after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    table = markdown_table(["concurrency", "schedule", "wall s", "policy tokens", "tokens/s",
                            "vs rounds", "server busy", "mean in flight", "requests", "engine policy calls",
                            "acc"], rows)
    text = f"""# bench_schedule

`python experiments/bench_schedule.py {' '.join(sys.argv[1:])}`

MCTS* (paper settings, T={args.iterations}) on {args.questions} Countdown test questions
through `backend=openai`, value model the exact oracle, against a stand-in for a
continuously batching server (every request takes {args.ttft_ms:g} ms + {args.tpot_ms:g} ms
per generated token of its longest choice, whatever else is in flight; text from
`backend=mock`). Concurrency = questions searched side by side. Answers (steps, prediction,
tokens of every question) equal between the schedules: {all(equal)}. Machine:
{platform.machine()}, {os.cpu_count()} cores; `uptime` before: {before}; after: {after}.

{table}

- server busy: the part of the run with at least one request in flight; mean in flight: the
  requests in flight on average (a server that batches continuously turns them into
  throughput).
- rounds: one policy call per round and sampling setting; the round's last request holds
  every question. streaming: one call per question request, answered as it arrives.
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
