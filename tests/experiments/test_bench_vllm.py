"""experiments/bench_vllm.py: its pure parts (recording vLLM calls, the call profile, the
share of the flood, the report) on stand-ins with vLLM's field names; the engines themselves
are not started here (the benchmark's runs take minutes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import bench_vllm as bv  # experiments/ is on pytest's pythonpath (pyproject.toml)


class Params(SimpleNamespace):
    """A stand-in for vllm.SamplingParams."""

    def clone(self) -> "Params":
        return Params(**vars(self))


def params(seed: int, n: int = 2) -> Params:
    return Params(n=n, temperature=0.7, top_p=1.0, top_k=0, max_tokens=48, stop=["\n"],
                  seed=seed)


class FakeLLM:
    """Answers each prompt with n completions of seed % 5 + 1 + index tokens."""

    def __init__(self) -> None:
        self.tokenizer = "tok"

    def generate(self, prompts, sampling, use_tqdm=False):
        outs = []
        for p in sampling:
            outs.append(SimpleNamespace(outputs=[
                SimpleNamespace(token_ids=[7] * (p.seed % 5 + 1 + i), text=f"s{p.seed}.{i}")
                for i in range(p.n)]))
        return outs


def record(llm: bv.RecordingLLM, seeds: list[int]) -> None:
    llm.generate([{"prompt_token_ids": [1, s]} for s in seeds], [params(s) for s in seeds])


def test_recording_llm_forwards_and_records_each_call_with_cloned_params():
    llm = bv.RecordingLLM(FakeLLM())
    given = [params(3)]
    out = llm.generate([{"prompt_token_ids": [1, 2]}], given, use_tqdm=False)
    given[0].seed = 99  # vLLM may change the params it is given: the record keeps its own
    assert [len(o.token_ids) for o in out[0].outputs] == [4, 5]
    assert llm.tokenizer == "tok"  # everything else is forwarded
    (call,) = llm.take()
    assert call.params[0].seed == 3 and call.tokens == [[4, 5]] and call.texts == [["s3.0", "s3.1"]]
    assert call.end >= call.start and llm.take() == []


def test_request_rows_and_same_requests_ignore_the_order_of_calls():
    a, b = bv.RecordingLLM(FakeLLM()), bv.RecordingLLM(FakeLLM())
    record(a, [1, 2]), record(a, [3])
    record(b, [3, 1]), record(b, [2])
    rows = bv.request_rows(a.calls)
    assert rows[0] == {"call": 0, "prompt_token_ids": [1, 1], "n": 2, "temperature": 0.7,
                       "top_p": 1.0, "top_k": 0, "max_tokens": 48, "stop": ["\n"], "seed": 1}
    assert [r["call"] for r in rows] == [0, 0, 1]
    assert bv.same_requests(a.calls, b.calls)
    record(b, [4])
    assert not bv.same_requests(a.calls, b.calls)


def test_call_profile_counts_decode_steps_by_each_calls_longest_completion():
    llm = bv.RecordingLLM(FakeLLM())
    record(llm, [1, 2])  # completions of 2, 3 and 3, 4 tokens: 12 tokens, longest 4
    record(llm, [4])     # 5 and 6 tokens: 11 tokens, longest 6
    calls = llm.take()
    calls[0].start, calls[0].end = 0.0, 1.0
    calls[1].start, calls[1].end = 2.0, 3.0
    p = bv.call_profile(calls, wall=4.0)
    assert p["calls"] == 2 and p["tokens"] == 23 and p["decode_steps"] == 10
    assert p["tokens_per_step"] == pytest.approx(2.3)
    assert p["in_calls_share"] == pytest.approx(0.5)
    assert p["call_tokens_per_s"] == pytest.approx(11.5)
    assert p["sequences_per_call"] == pytest.approx(3.0)
    assert bv.call_profile([], wall=0.0)["tokens_per_step"] == 0.0


def test_matching_texts_is_the_share_of_prompts_answered_the_same():
    llm = bv.RecordingLLM(FakeLLM())
    record(llm, [1, 2])
    assert bv.matching_texts(llm.calls, [["s1.0", "s1.1"], ["x", "s2.1"]]) == 0.5


def test_fastest_keeps_the_quickest_try_and_every_tries_time():
    best = bv.fastest([{"wall_s": 3.0, "x": 1}, {"wall_s": 2.0, "x": 2}, {"wall_s": 4.0, "x": 3}])
    assert best == {"wall_s": 2.0, "x": 2, "tries_wall_s": [3.0, 2.0, 4.0]}
    plan = bv.Plan(questions=64, iterations=10, concurrency=(1, 64), c1_questions=8)
    assert (plan.questions_at(1), plan.questions_at(64)) == (8, 64)


def test_share_verdict_says_whether_the_target_is_met():
    assert bv.share_verdict(0.6) == "60% of the flood: target >= 60% met"
    assert bv.share_verdict(0.594) == "59% of the flood: target >= 60% NOT met"


def result(flood_tps: float, top_tps: float) -> dict:
    """A made-up result of one model, as measure() returns it."""
    profile = {"calls": 4, "in_calls_share": 0.8, "call_tokens_per_s": 1000.0,
               "sequences_per_call": 12.0, "tokens_per_step": 6.0, "in_calls_s": 3.0,
               "decode_steps": 600}
    search = [{"concurrency": c, "questions": q, "policy_tokens": 4000, "wall_s": 4000 / tps,
               "tokens_per_s": tps, "scorer_s": 0.1, "prompt_tokens": 900,
               "cached_prompt_tokens": 300, "profile": profile}
              for c, q, tps in ((1, 4, 100.0), (16, 16, top_tps))]
    engine = {"worker_threads": [{"torch_threads": 1, "cores": [0]}], "block_size": 16,
              "VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_CPU_KVCACHE_SPACE": "2",
              "max_num_seqs": 256, "max_model_len": 512, "dtype": "torch.float32"}
    reload = {"prompts": 8, "reload_s": 0.5, "reset_prefix_cache_s": 0.01, "repack_s": 0.09,
              "first_call_after_reload_s": 0.4, "close_s": 5.0, "build_s": 40.0,
              "first_call_after_build_s": 1.0, "reloaded_equal_fresh": 3,
              "repacked_equal_fresh": 8, "a_equal_b": 0}
    return {
        "command": "python experiments/bench_vllm.py --quick", "date": "2026-12-07 12:00",
        "seconds": 120.0, "load_start": "1.0", "load_end": "2.0", "policy": "/p",
        "checkpoint_b": "/b", "machine": {"nproc": 2, "cpu": "Xeon", "python": "Python 3.11",
                                          "torch": "2.13.0", "vllm": "0.32.0",
                                          "torch_threads": 2},
        "plan": {"questions": 16, "c1_questions": 4, "iterations": 3, "concurrency": [1, 16],
                 "repeats": 3, "hf_threads": [1, 2]},
        "vllm": {"engine": engine, "search": search, "reload": reload,
                 "flood": {"requests": 40, "sequences": 90, "policy_tokens": 4000,
                           "wall_s": 4000 / flood_tps, "tokens_per_s": flood_tps},
                 "prefix": [{**search[-1], "tokens_per_s": top_tps / 2, "prefix_caching": False,
                             "block_size": 16, "cached_prompt_tokens": 0}]},
        "hf": [{"concurrency": 16, "questions": 16, "policy_calls": 7, "policy_tokens": 4100,
                "wall_s": 2.0, "tokens_per_s": 2050.0, "threads": 1}],
    }


def test_report_gives_each_concurrency_its_share_of_the_flood_and_the_verdict():
    text = bv.report({"tiny": result(flood_tps=1000.0, top_tps=550.0),
                      "smollm2": result(flood_tps=200.0, top_tps=150.0)}, notes="A note.")
    assert "| tiny | vLLM c=16 | 16 | 4 | 4,000 | 7.3 | 550 | 55% |" in text
    assert "| tiny | vLLM c=1 | 4 | 4 | 4,000 | 40.0 | 100 | 10% |" in text
    assert "| tiny | HF c=16, 1 thread(s) | 16 | 7 | 4,100 | 2.0 | 2,050 | 205% |" in text
    assert "the HF backend runs with 1 and 2" in text and "fastest of 3 tries" in text
    assert "- tiny: concurrency 16 at 55% of the flood: target >= 60% NOT met." in text
    assert "- smollm2: concurrency 16 at 75% of the flood: target >= 60% met." in text
    assert "| tiny | on | 16 | 16 | 550 | 900 | 300 | 1.00x |" in text
    assert "| tiny | 16 | 80% | 20% | 1.4% | 1,000 | 12.0 | 6.0 | 5.0 |" in text
    assert "| tiny | off | 16 | 16 | 275 | 900 | 0 | 0.50x |" in text
    # restart 5 + 40 = 45 s against reload 0.5 + 0.09 + 0.01 = 0.6 s
    row = "| tiny | 5.0 | 40.0 | 0.50 | 0.090 | 0.010 | 75x | 1.00 | 0.40 | 3/8 | 8/8 | 0/8 |"
    assert row in text
    assert "vLLM worker: 1 torch thread(s) on core(s) [0]" in text
    assert text.rstrip().endswith("## Notes\n\nA note.")
    assert "`python experiments/bench_vllm.py --quick`" in text


def test_others_line_names_each_other_vllm_worker_once():
    worker = {"pid": 7, "nice": 0, "cores": [0]}
    assert bv.others_line([[worker], [], [worker]]) == (
        "other jobs' vLLM workers seen: pid 7 (nice 0, cores [0])")
    assert bv.others_line([[], []]) == "no other job's vLLM worker seen"
    assert bv.others_line(None) == "other jobs' vLLM workers not recorded"
