"""`backend=openai` and `prm=openai` against real HTTP servers on 127.0.0.1
(tests/helpers/openai_server.py).

The fake server writes the scripted mock policy's text for the request's seed, so the backend
over HTTP must give exactly what `MockPolicyBackend` gives in process: texts (stop strings
put back), token counts, finish reasons, n, seeds.
"""

from __future__ import annotations

import dataclasses

import pytest

from rest_mcts.backends.base import SamplingParams, derive_seed
from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.backends.openai_backend import OpenAIPolicyBackend, _finish, _token_counts
from rest_mcts.backends.openai_client import ServerError
from rest_mcts.backends.openai_scorer import OpenAIValueScorer
from rest_mcts.prompts import policy_prompt, prm_input
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld

from tests.helpers.openai_server import FakeServer, default_value

WORLD = CountdownWorld(num_numbers=4)
PROBLEMS = WORLD.generate(6, seed=0)
PROMPTS = [policy_prompt(p.question.text) for p in PROBLEMS]
STEP = SamplingParams(n=3, temperature=1.0, max_new_tokens=64, stop=("\n",))
WHOLE = SamplingParams(n=2, temperature=0.7, max_new_tokens=40)  # some hit the length cap


def backend(*servers, **kwargs) -> OpenAIPolicyBackend:
    kwargs.setdefault("max_retries", 0)
    return OpenAIPolicyBackend(base_urls=[s.url for s in servers], **kwargs)


def as_tuples(outputs):
    return [(o.prompt_tokens, [dataclasses.astuple(c) for c in o.completions]) for o in outputs]


@pytest.fixture
def server():
    with FakeServer("vllm") as s:
        yield s


@pytest.mark.parametrize("params", [STEP, WHOLE], ids=["step", "whole"])
def test_completions_equal_the_in_process_mock(server, params):
    seeds = [11, 12, 13, 14, 15, 16]
    remote = backend(server).generate(PROMPTS, params, seeds=seeds)
    local = MockPolicyBackend(seed=0).generate(PROMPTS, params, seeds=seeds)
    assert as_tuples(remote) == as_tuples(local)
    reasons = {c.finish_reason for o in remote for c in o.completions}
    assert reasons == ({"stop"} if params.stop else {"eos", "length"})
    # one request per prompt, n in it, the prompt's row seed as `seed`
    bodies = server.bodies("/v1/completions")
    assert sorted(b["seed"] for b in bodies) == seeds
    assert {(b["n"], b["max_tokens"], b["temperature"]) for b in bodies} == {
        (params.n, params.max_new_tokens, params.temperature)}
    assert all(b.get("stop", []) == list(params.stop) for b in bodies)


def test_rows_depend_on_their_own_seed_only(server):
    pool = backend(server)
    both = pool.generate(PROMPTS[:2], STEP, seeds=[1, 2])
    alone = pool.generate(PROMPTS[1:2], STEP, seeds=[2])
    assert as_tuples(both[1:]) == as_tuples(alone)
    assert as_tuples(pool.generate(PROMPTS[1:2], STEP, seeds=[3])) != as_tuples(alone)
    # params.seed stands in for derived row seeds
    called = pool.generate(PROMPTS[:2], dataclasses.replace(STEP, seed=7))
    assert as_tuples(called) == as_tuples(
        pool.generate(PROMPTS[:2], STEP, seeds=[derive_seed(7, 0), derive_seed(7, 1)]))


def test_greedy_asks_once_and_repeats(server):
    params = SamplingParams(n=4, temperature=0.0, max_new_tokens=64, stop=("\n",))
    outputs = backend(server).generate(PROMPTS[:2], params, seeds=[1, 2])
    assert as_tuples(outputs) == as_tuples(MockPolicyBackend().generate(PROMPTS[:2], params))
    assert [(b["n"], "seed" in b) for b in server.bodies("/v1/completions")] == [(1, False)] * 2


def test_a_server_that_ignores_n_is_asked_for_the_rest():
    with FakeServer("llamacpp") as server:
        pool = backend(server)
        outputs = pool.generate(PROMPTS[:2], dataclasses.replace(STEP, n=4), seeds=[5, 6])
        assert [len(o.completions) for o in outputs] == [4, 4]
        assert pool.stats["topped_up"] == 6 and pool.pool.stats["requests"] == 8
        # follow-ups ask for the missing samples j.. with seed derive_seed(row seed, j)
        asked = sorted((b["prompt"] == PROMPTS[1], b["n"], b["seed"])
                       for b in server.bodies("/v1/completions"))
        expected = sorted((i == 1, 4 - j, row if j == 0 else derive_seed(row, j))
                          for i, row in enumerate([5, 6]) for j in range(4))
        assert asked == expected
        # llama.cpp reports no stop string: the single one asked for is put back
        for out in outputs:
            assert len({c.text for c in out.completions}) > 1
            assert all(c.text.endswith("\n") and c.finish_reason == "stop"
                       for c in out.completions)
        again = pool.generate(PROMPTS[:2], dataclasses.replace(STEP, n=4), seeds=[5, 6])
        assert as_tuples(again) == as_tuples(outputs)


def test_n_per_request_splits_n_up_front(server):
    pool = backend(server, n_per_request=1)
    outputs = pool.generate(PROMPTS[:1], STEP, seeds=[9])
    assert len(outputs[0].completions) == 3
    assert [b["n"] for b in server.bodies("/v1/completions")] == [1, 1, 1]
    assert pool.stats["topped_up"] == 0


def test_round_robin_over_two_servers():
    with FakeServer() as a, FakeServer() as b:
        pool = backend(a, b)
        outputs = pool.generate(PROMPTS, STEP, seeds=list(range(6)))
        assert as_tuples(outputs) == as_tuples(
            MockPolicyBackend().generate(PROMPTS, STEP, seeds=list(range(6))))
        assert len(a.requests) == len(b.requests) == 3
        assert list(pool.pool.stats["requests_per_url"].values()) == [3, 3]


def test_chat_endpoint_sends_one_user_message(server):
    chat = backend(server, endpoint="chat", model="served-name")
    outputs = chat.generate(PROMPTS[:2], STEP, seeds=[1, 2])
    plain = backend(server).generate(PROMPTS[:2], STEP, seeds=[1, 2])
    assert as_tuples(outputs) == as_tuples(plain)
    bodies = server.bodies("/v1/chat/completions")  # (in the order they arrived)
    assert sorted(b["messages"][0]["content"] for b in bodies) == sorted(PROMPTS[:2])
    assert all(len(b["messages"]) == 1 and b["messages"][0]["role"] == "user" for b in bodies)
    assert {b["model"] for b in bodies} == {"served-name"} and "prompt" not in bodies[0]


def test_usage_is_shared_out_by_length_and_sums_exactly():
    choices = [{"text": "a"}, {"text": "abcd"}, {"text": "abcdefgh"}]
    counts = _token_counts(choices, [c["text"] for c in choices], 10)
    assert sum(counts) == 10 and counts == sorted(counts)
    assert _token_counts([{}, {}], ["", ""], 3) in ([2, 1], [1, 2])
    ids = [{"token_ids": [1, 2]}, {"token_ids": [3]}]
    assert _token_counts(ids, ["xx", "y"], 99) == [2, 1]


@pytest.mark.parametrize(
    "text, choice, stops, expected",
    [
        ("a", {"finish_reason": "length"}, ["\n"], ("a", "length")),
        ("a", {"finish_reason": "stop", "stop_reason": "\n"}, ["\n", "."], ("a\n", "stop")),
        ("a", {"finish_reason": "stop", "stop_reason": None}, ["\n"], ("a", "eos")),
        ("a", {"finish_reason": "stop", "stop_reason": 2}, ["\n"], ("a", "eos")),  # a stop token
        ("a\n", {"finish_reason": "stop", "stop_reason": "\n"}, ["\n"], ("a\n", "stop")),
        ("a", {"finish_reason": "stop", "matched_stop": "\n\n"}, ["\n\n"], ("a\n\n", "stop")),
        ("a", {"finish_reason": "stop"}, ["\n"], ("a\n", "stop")),  # llama.cpp, OpenAI
        ("a", {"finish_reason": "stop"}, ["\n", "."], ("a", "eos")),  # which one? unknown
        ("a", {"finish_reason": "stop"}, [], ("a", "eos")),
    ],
)
def test_finish_reasons_and_stop_strings(text, choice, stops, expected):
    assert _finish(text, choice, stops) == expected


def test_api_key_is_sent_from_the_named_variable_and_shown_nowhere(server, monkeypatch):
    key = "sk-test-do-not-leak-1234"
    monkeypatch.setenv("REST_MCTS_TEST_KEY", key)
    pool = backend(server, api_key_env="REST_MCTS_TEST_KEY")
    pool.generate(PROMPTS[:1], STEP, seeds=[1])
    headers = {k.lower(): v for k, v in server.requests[-1][2].items()}
    assert headers["authorization"] == f"Bearer {key}"
    assert key not in repr(pool) and key not in repr(pool.pool) and key not in str(vars(pool))
    monkeypatch.delenv("REST_MCTS_TEST_KEY")
    backend(server, api_key_env="REST_MCTS_TEST_KEY").generate(PROMPTS[:1], STEP, seeds=[1])
    assert "authorization" not in {k.lower() for k in server.requests[-1][2]}


def test_a_4xx_fails_at_once_in_one_line_naming_the_url(server):
    pool = OpenAIPolicyBackend(base_urls=[server.root], max_retries=3)  # no /v1: 404
    with pytest.raises(ServerError) as err:
        pool.generate(PROMPTS[:1], STEP, seeds=[1])
    message = str(err.value)
    assert f"{server.root}/completions: HTTP 404" in message and "\n" not in message
    assert len(server.requests) == 1  # not retried


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="backend.base_urls"):
        OpenAIPolicyBackend(base_urls=[])
    with pytest.raises(ValueError, match="not an http"):
        OpenAIPolicyBackend(base_urls=["127.0.0.1:8000"])
    with pytest.raises(ValueError, match="backend.endpoint"):
        OpenAIPolicyBackend(endpoint="responses")


def test_registered_with_capabilities(compose_cfg):
    from rest_mcts.backends.registry import policy_capabilities, registered, scorer_capabilities

    policy = policy_capabilities(compose_cfg("backend=openai").backend)
    scorer = scorer_capabilities(compose_cfg("prm=openai").prm.scorer)
    for caps in (policy, scorer):
        assert not caps.trainable and not caps.needs_model and caps.must_close
    assert "openai" in registered("policy") and "openai" in registered("scorer")


def test_the_loop_refuses_served_models(compose_cfg):
    """The loop retrains both models: a served policy or PRM stops it before any work."""
    from rest_mcts.config import ConfigError
    from rest_mcts.loop.algorithm import check_inputs
    from rest_mcts.runtime.context import Context
    from rest_mcts.search.configs import search_config_from

    for overrides, message in [(["backend=openai"], "backend=openai: the loop retrains"),
                               (["prm=openai"], "prm=openai: the loop trains a neural PRM")]:
        cfg = compose_cfg("stage=loop", *overrides)
        with pytest.raises(ConfigError, match=message):
            check_inputs(Context.from_config(cfg), search_config_from(cfg.search))


def test_search_through_the_server_equals_the_in_process_mock(server):
    """MCTS* on Countdown: backend=openai (over HTTP) and backend=mock give the same trees."""
    search = make_search({"name": "mcts_star", "iterations": 4}, WORLD, max_solution_tokens=128)

    def run(policy):
        engine = SearchEngine(policy, OracleScorer(WORLD), concurrency=6, progress=False)
        results = engine.run_all((p.id, search(p.question)) for p in PROBLEMS)
        return {k: (r.steps, r.answer, r.costs.policy_tokens) for k, r in results.items()}

    assert run(backend(server)) == run(MockPolicyBackend(seed=0))


# ----------------------------------------------------------------------------- prm=openai
def test_prm_reads_raw_values_from_classify(server):
    scorer = OpenAIValueScorer(base_urls=server.root, model="prm", max_batch_size=2)
    items = [(p.question.text, ()) for p in PROBLEMS[:3]]
    items += [(PROBLEMS[0].question.text, ("x",)), (PROBLEMS[1].question.text, ("y", "z"))]
    values = scorer.score(items)
    expected = [min(1.0, max(0.0, default_value(prm_input(q, s)))) for q, s in items]
    assert values == pytest.approx(expected)
    bodies = server.bodies("/classify")
    assert sorted(len(b["input"]) for b in bodies) == [1, 2, 2]  # (sent side by side)
    assert all(b["use_activation"] is False and b["model"] == "prm" for b in bodies)
    sent = sorted(text for body in bodies for text in body["input"])
    assert sent == sorted(prm_input(q, s) for q, s in items)


def test_prm_values_are_clamped_and_a_multi_output_model_is_refused(server):
    scorer = OpenAIValueScorer(base_urls=server.root)
    assert scorer._parse("u", {"data": [{"index": 1, "probs": [1.7]}, {"index": 0, "probs": [-2]}]},
                         2) == [0.0, 1.0]
    with pytest.raises(ServerError, match="u: the model has 2 outputs"):
        scorer._parse("u", {"data": [{"index": 0, "probs": [0.1, 0.9]}]}, 1)
    with pytest.raises(ServerError, match="1 values for 2 inputs"):
        scorer._parse("u", {"data": [{"index": 0, "probs": [0.1]}]}, 2)


def test_mcts_star_with_prm_openai_end_to_end(server):
    search = make_search({"name": "mcts_star", "iterations": 3}, WORLD, max_solution_tokens=128)
    scorer = OpenAIValueScorer(base_urls=server.root)
    engine = SearchEngine(backend(server), scorer, concurrency=6, progress=False)
    results = engine.run_all((p.id, search(p.question)) for p in PROBLEMS)
    assert len(results) == 6 and engine.stats["scorer_items"] == scorer.stats["items"] > 0
    assert server.bodies("/classify") and server.bodies("/v1/completions")


# ----------------------------------------------------------------------------- LLM judge
def test_the_llm_judge_works_through_backend_openai(server):
    """verify.judge = greedy_texts on a backend=openai node, built as the config builds it."""
    from rest_mcts.answers.judge import LLMJudge
    from rest_mcts.config import instantiate

    node = {"_target_": "rest_mcts.backends.base.greedy_texts", "max_new_tokens": 4,
            "backend": {"_target_": "rest_mcts.backends.openai_backend.OpenAIPolicyBackend",
                        "base_urls": [server.url], "max_retries": 0}}
    generate = instantiate(node, "verify.judge")
    prompt = "VERIFY: 7 equals 7?"
    assert generate([prompt]) == [c.text for c in MockPolicyBackend().generate(
        [prompt], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))[0].completions]
    server.reply = "1"
    judge = LLMJudge(generate, _Prompts())
    assert judge.equal("x = 7", "7") is True
    body = server.bodies("/v1/completions")[-1]
    assert (body["prompt"], body["max_tokens"], body["temperature"], body["n"]) == (
        "VERIFY x = 7 || 7", 4, 0.0, 1)


class _Prompts:
    def verify_prompt(self, solution: str, gold: str) -> str:
        return f"VERIFY {solution} || {gold}"
