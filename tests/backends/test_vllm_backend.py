"""backend=vllm and prm=vllm: request/response translation, the backends on stand-in engines,
configs and registry (all without vLLM); the same against vLLM's real types (skipped without
vLLM); and a tiny model on a real engine (``gpu``, skipped without vLLM and CUDA)."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rest_mcts.backends import HFValueScorer, SamplingParams
from rest_mcts.backends.base import derive_seed
from rest_mcts.backends.registry import (
    Capabilities,
    build_scorer,
    close_backend,
    policy_capabilities,
    scorer_capabilities,
)
from rest_mcts.backends.vllm_engine import INSTALL_HINT, keep_last, llm_kwargs
from rest_mcts.backends.vllm_policy import (
    VLLMPolicyBackend,
    finish_reason,
    sampling_kwargs,
    to_generation_output,
)
from rest_mcts.backends.vllm_scorer import VLLMValueScorer, pooling_engine_kwargs, value_of
from rest_mcts.config import ConfigError
from rest_mcts.models import build_char_tokenizer, build_tiny_value_model
from rest_mcts.models.value_head import last_token_positions, values_at_positions
from rest_mcts.prompts import prm_input

from tests.helpers.no_vllm import env_without_vllm, hide_vllm
from tests.helpers.paths import ROOT

HAS_VLLM = importlib.util.find_spec("vllm") is not None
NO_VLLM_REASON = "vllm is not installed (pip install -r requirements-gpu.txt)"
ITEMS = [
    ("Make 24 from 6 4 1", ["Step 1: 6 * 4 = 24 (left: 24 1)\n"]),
    ("Make 5 from 2 3", []),
    ("Make 10 from 9 1 7", ["Step 1: 9 + 1 = 10 (left: 10 7)\n", "Step 2: 10 * 7 = 70\n"]),
]


# ---- stand-ins with the field names of vLLM 0.32's types ------------------------------------
@dataclass
class CompletionOutput:
    """``vllm.outputs.CompletionOutput``'s fields that we read (and its first five)."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    """``vllm.RequestOutput``'s fields that we read."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True
    num_cached_tokens: int | None = None


@dataclass
class ClassificationOutput:
    probs: list[float]


@dataclass
class ClassificationRequestOutput:
    """``vllm.ClassificationRequestOutput``'s fields that we read."""

    request_id: str
    outputs: ClassificationOutput
    prompt_token_ids: list[int]
    num_cached_tokens: int = 0
    finished: bool = True
    error: Any = None


@dataclass
class FakeSamplingParams:
    """Records the keywords a ``vllm.SamplingParams`` would be built from."""

    kwargs: dict[str, Any]


def fake_sampling_params(**kwargs: Any) -> FakeSamplingParams:
    return FakeSamplingParams(kwargs)


class FakeCore:
    def __init__(self) -> None:
        self.shut = 0

    def shutdown(self) -> None:
        self.shut += 1


@dataclass
class FakePolicyLLM:
    """A stand-in ``vllm.LLM`` whose sample ``j`` of a request with seed ``s`` is
    ``"<s + j>/<j>\\n"`` (vLLM seeds sample ``j`` with ``s + j``), greedy ``"g\\n"``."""

    tokenizer: Any
    max_model_len: int = 512
    calls: list[tuple[list[dict], list[FakeSamplingParams]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model_config = SimpleNamespace(max_model_len=self.max_model_len)
        self.llm_engine = SimpleNamespace(engine_core=FakeCore())

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params, *, use_tqdm=True):
        assert use_tqdm is False and isinstance(sampling_params, list)
        self.calls.append((prompts, sampling_params))
        results = []
        for i, (prompt, sp) in enumerate(zip(prompts, sampling_params)):
            ids, kw = prompt["prompt_token_ids"], sp.kwargs
            outs = []
            for j in range(kw["n"]):
                text = "g\n" if kw["seed"] is None else f"{kw['seed'] + j}/{j}\n"
                stop = next((s for s in kw["stop"] if s in text), None)
                outs.append(CompletionOutput(
                    index=j, text=text, token_ids=list(range(len(text))),
                    finish_reason="stop" if stop else "length", stop_reason=stop,
                ))
            results.append(RequestOutput(f"r{i}", None, list(ids), None, outs[::-1],
                                         num_cached_tokens=2))
        return results


class FakePoolingLLM:
    """A stand-in pooling ``vllm.LLM`` that does what vLLM's last-token pooling without
    activation does: the value model's raw output at each input's last token."""

    def __init__(self, model, tokenizer, max_model_len: int = 512) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.model_config = SimpleNamespace(max_model_len=max_model_len)
        self.llm_engine = SimpleNamespace(engine_core=FakeCore())
        self.seen: list[list[int]] = []
        self.pooling_params = None

    def get_tokenizer(self):
        return self.tokenizer

    def classify(self, prompts, *, pooling_params=None, use_tqdm=True):
        self.pooling_params = pooling_params
        results = []
        for i, prompt in enumerate(prompts):
            ids = torch.tensor([prompt["prompt_token_ids"]])
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                raw = values_at_positions(self.model, ids, mask, last_token_positions(mask))
            self.seen.append(list(prompt["prompt_token_ids"]))
            results.append(ClassificationRequestOutput(
                f"c{i}", ClassificationOutput([float(raw[0])]), ids[0].tolist()
            ))
        return results


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def value_model(tokenizer):
    model = build_tiny_value_model(tokenizer, hidden_size=48, num_layers=2, num_heads=4, seed=5)
    with torch.no_grad():  # values spread over [0, 1] and past it, so clamping shows
        model.score.weight.mul_(40.0)
    return model


# ---- translation (no vLLM) ------------------------------------------------------------------
def test_sampling_kwargs_sampled_and_greedy():
    sampled = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_new_tokens=40, stop=("\n",))
    assert sampling_kwargs(sampled, 1234) == {
        "n": 3, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_tokens": 40,
        "stop": ["\n"], "seed": 1234, "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }
    # greedy: vLLM refuses n > 1, and a seed means nothing
    greedy = sampling_kwargs(SamplingParams(n=4, temperature=0.0, max_new_tokens=8), 99)
    assert (greedy["n"], greedy["seed"], greedy["temperature"]) == (1, None, 0.0)
    # below vLLM's own greedy threshold counts as greedy too
    assert sampling_kwargs(SamplingParams(n=2, temperature=1e-7), 5)["n"] == 1


def test_finish_reasons_map_stop_strings_eos_and_length():
    def out(reason, stop_reason=None):
        return CompletionOutput(0, "x", [1], finish_reason=reason, stop_reason=stop_reason)

    assert finish_reason(out("length")) == "length"
    assert finish_reason(out("stop", "\n")) == "stop"  # a stop string
    assert finish_reason(out("stop", None)) == "eos"  # the eos token
    assert finish_reason(out("stop", 128009)) == "eos"  # a stop token of the generation config
    for reason in ("abort", "error", None):
        with pytest.raises(RuntimeError, match="finish_reason"):
            finish_reason(out(reason))


def test_request_output_to_generation_output():
    outs = [
        CompletionOutput(1, "b = 2\n", [5, 6, 7], finish_reason="stop", stop_reason="\n"),
        CompletionOutput(0, "a", [4, 2], finish_reason="stop", stop_reason=None),
        CompletionOutput(2, "ccc", [1, 1, 1, 1], finish_reason="length"),
    ]
    got = to_generation_output(
        RequestOutput("r", "p", [9, 9, 9, 9, 9], None, outs), SamplingParams(n=3, temperature=1.0)
    )
    assert got.prompt_tokens == 5
    assert [(c.text, c.num_tokens, c.finish_reason) for c in got.completions] == [
        ("a", 2, "eos"), ("b = 2\n", 3, "stop"), ("ccc", 4, "length"),
    ]  # in vLLM's index order; eos counted as a generated token
    greedy = to_generation_output(
        RequestOutput("r", None, [1], None, outs[1:2]), SamplingParams(n=4, temperature=0.0)
    )
    assert len(greedy.completions) == 4 and len({c.text for c in greedy.completions}) == 1
    with pytest.raises(RuntimeError, match="returned 1 completions, expected 3"):
        to_generation_output(RequestOutput("r", None, [1], None, outs[:1]),
                             SamplingParams(n=3, temperature=1.0))


def test_value_of_clamps_the_raw_output_and_rejects_bad_ones():
    def out(probs, error=None):
        return ClassificationRequestOutput("c", ClassificationOutput(probs), [1], error=error)

    assert value_of(out([0.25])) == 0.25
    assert value_of(out([-3.0])) == 0.0 and value_of(out([7.5])) == 1.0
    with pytest.raises(ValueError, match="2 outputs, expected 1"):
        value_of(out([0.1, 0.9]))
    with pytest.raises(ValueError, match="NaN"):
        value_of(out([math.nan]))
    with pytest.raises(RuntimeError, match="failed"):
        value_of(out([], error="KV load failure"))


def test_engine_settings_are_checked_before_vllm_is_needed():
    kwargs = llm_kwargs("m", dtype="bfloat16", tensor_parallel_size=2,
                        gpu_memory_utilization=0.6, max_model_len=4096,
                        enable_prefix_caching=True, trust_remote_code=False, seed=3,
                        enforce_eager=False, extra={"swap_space": 4})
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["swap_space"] == 4
    assert kwargs["enable_prefix_caching"] is True and kwargs["max_model_len"] == 4096
    good = dict(dtype="auto", tensor_parallel_size=1, gpu_memory_utilization=0.5,
                max_model_len=None, enable_prefix_caching=None, trust_remote_code=False,
                seed=0, enforce_eager=False)
    for bad, match in [({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization"),
                       ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization"),
                       ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
                       ({"max_model_len": 1}, "max_model_len"),
                       ({"extra": {"seed": 1}}, "repeats")]:
        with pytest.raises(ValueError, match=match):
            llm_kwargs("m", **{**good, **bad})
    with pytest.raises(ValueError, match="model path"):
        llm_kwargs(None, **good)
    # the pooling runner reads the raw output at the last token
    assert pooling_engine_kwargs() == {
        "runner": "pooling", "convert": "classify",
        "pooler_config": {"seq_pooling_type": "LAST", "use_activation": False},
    }
    assert keep_last([[1, 2, 3, 4], [5]], 2) == ([[3, 4], [5]], 1)
    assert keep_last([[1, 2]], None) == ([[1, 2]], 0)


# ---- the backends on stand-in engines (no vLLM) ---------------------------------------------
def test_policy_backend_one_call_per_request_with_row_seeds(tokenizer):
    llm = FakePolicyLLM(tokenizer)
    backend = VLLMPolicyBackend(llm=llm, make_sampling_params=fake_sampling_params, seed=1)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, stop=("\n",))
    prompts = ["Make 5 from 2 3\n", "Make 24 from 6 4 1\n"]
    outs = backend.generate(prompts, params, seeds=[11, 22])
    assert len(llm.calls) == 1  # the merged request is one vLLM call
    sent, sps = llm.calls[0]
    assert [p["prompt_token_ids"] for p in sent] == tokenizer(prompts)["input_ids"]
    assert [sp.kwargs["seed"] for sp in sps] == [11, 22] and all(sp.kwargs["n"] == 2 for sp in sps)
    assert [c.text for c in outs[1].completions] == ["22/0\n", "23/1\n"]
    assert all(c.finish_reason == "stop" for o in outs for c in o.completions)
    # a prompt's samples depend on its row seed alone, not on the rest of the call
    alone = backend.generate(prompts[1:], params, seeds=[22])
    assert alone[0] == outs[1]
    # params.seed: prompt i gets derive_seed(seed, i)
    backend.generate(prompts, SamplingParams(n=1, temperature=1.0, seed=7))
    assert [sp.kwargs["seed"] for sp in llm.calls[-1][1]] == [derive_seed(7, 0), derive_seed(7, 1)]
    # no seeds at all: drawn from the backend's own generator, reproducibly
    backend.generate(prompts, SamplingParams(n=1, temperature=1.0))
    again = VLLMPolicyBackend(llm=FakePolicyLLM(tokenizer),
                              make_sampling_params=fake_sampling_params, seed=1)
    again.generate(prompts, SamplingParams(n=1, temperature=1.0))
    drawn = [sp.kwargs["seed"] for sp in llm.calls[-1][1]]
    assert drawn == [sp.kwargs["seed"] for sp in again.llm.calls[-1][1]] and None not in drawn
    # greedy: one completion per prompt, repeated n times
    greedy = backend.generate(prompts, SamplingParams(n=3, temperature=0.0))
    assert all(sp.kwargs["n"] == 1 for sp in llm.calls[-1][1])
    assert [len(o.completions) for o in greedy] == [3, 3]
    assert backend.stats["calls"] == 5  # 9 prompts in all, 2 cached tokens each:
    assert backend.stats["cached_prompt_tokens"] == 9 * 2
    assert backend.generate([], params) == []


def test_policy_backend_cuts_long_prompts_to_the_context(tokenizer, caplog):
    llm = FakePolicyLLM(tokenizer, max_model_len=20)
    backend = VLLMPolicyBackend(llm=llm, make_sampling_params=fake_sampling_params)
    long = "Make 100 from 9 9 3 7\n" * 3
    outs = backend.generate([long, "Q\n"], SamplingParams(max_new_tokens=8))
    sent = [p["prompt_token_ids"] for p in llm.calls[0][0]]
    assert sent[0] == tokenizer(long)["input_ids"][-12:] and outs[0].prompt_tokens == 12
    assert sent[1] == tokenizer("Q\n")["input_ids"]
    assert backend.stats["truncated_prompts"] == 1 and "keep their last 12 tokens" in caplog.text
    # a budget that alone fills the context (MCTS* finishing an answer on a 256-position
    # model): each request keeps its prompt and generates what the context leaves after it
    q = len(tokenizer("Q\n")["input_ids"])
    backend.generate(["Q\n", long], SamplingParams(max_new_tokens=20))
    sent, sps = llm.calls[-1]
    assert [p["prompt_token_ids"] for p in sent] == [tokenizer("Q\n")["input_ids"],
                                                     tokenizer(long)["input_ids"][-19:]]
    assert [sp.kwargs["max_tokens"] for sp in sps] == [20 - q, 1]
    assert "does not fit max_model_len=20" in caplog.text


def test_policy_backend_close_shuts_the_engine_down(tokenizer):
    llm = FakePolicyLLM(tokenizer)
    backend = VLLMPolicyBackend(llm=llm, make_sampling_params=fake_sampling_params)
    close_backend(backend)  # registered with must_close
    assert llm.llm_engine.engine_core.shut == 1 and backend.llm is None
    backend.close()  # twice is harmless
    assert llm.llm_engine.engine_core.shut == 1
    with pytest.raises(RuntimeError, match="closed"):
        backend.generate(["Q\n"], SamplingParams())


def test_scorer_matches_the_hf_scorer_on_the_same_inputs(tokenizer, value_model):
    llm = FakePoolingLLM(value_model, tokenizer)
    scorer = VLLMValueScorer(llm=llm, make_pooling_params=lambda **kw: SimpleNamespace(**kw))
    assert scorer.context_length == 512
    hf = HFValueScorer(model=value_model, tokenizer=tokenizer)
    values = scorer.score(ITEMS)
    assert values == pytest.approx(hf.score(ITEMS), abs=1e-5)
    assert all(0.0 <= v <= 1.0 for v in values)
    # the same text as the HF scorer builds (rest_mcts.prompts.prm_input), no activation
    assert llm.seen == tokenizer([prm_input(q, s) for q, s in ITEMS])["input_ids"]
    assert llm.pooling_params.use_activation is False
    assert scorer.stats["items"] == 3 and scorer.stats["tokens"] == sum(map(len, llm.seen))
    assert scorer.score([]) == []
    scorer.close()
    assert llm.llm_engine.engine_core.shut == 1
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score(ITEMS)


def test_scorer_cuts_long_inputs_keeping_their_end(tokenizer, value_model, caplog):
    llm = FakePoolingLLM(value_model, tokenizer, max_model_len=512)
    scorer = VLLMValueScorer(llm=llm, max_model_len=10,
                             make_pooling_params=lambda **kw: SimpleNamespace(**kw))
    hf = HFValueScorer(model=value_model, tokenizer=tokenizer, context_length=10)
    assert scorer.score(ITEMS) == pytest.approx(hf.score(ITEMS), abs=1e-5)
    assert all(len(row) <= 10 for row in llm.seen) and scorer.stats["truncated"] == 3
    assert "exceed max_model_len=10" in caplog.text


# ---- configs, registry, the missing-vLLM error (no vLLM) ------------------------------------
def test_configs_compose_and_register(compose_cfg):
    cfg = compose_cfg("backend=vllm", "prm=vllm")
    assert policy_capabilities(cfg.backend) == Capabilities(
        trainable=True, needs_model=True, must_close=True, requires=("vllm",),
        install=INSTALL_HINT,
    )
    assert scorer_capabilities(cfg.prm.scorer) == Capabilities(
        trainable=True, needs_model=True, must_close=True, takes_loaded_model=False,
        requires=("vllm",), install=INSTALL_HINT,
    )
    assert cfg.backend.enable_prefix_caching is True
    # policy and PRM share one GPU: their memory shares leave room for the CUDA context
    assert cfg.backend.gpu_memory_utilization + cfg.prm.scorer.gpu_memory_utilization <= 0.9
    big = compose_cfg("backend=vllm", "prm=vllm", "model=mistral7b")
    assert big.backend.max_model_len == 4096 and big.prm.scorer.max_model_len == 4096
    assert big.backend.dtype == "bfloat16" and big.prm.scorer.dtype == "bfloat16"


def test_gpu_shares_of_policy_and_prm_must_fit_one_gpu(compose_cfg):
    from rest_mcts.stages import check_config

    fits = compose_cfg("backend=vllm", "prm=vllm", "prm.scorer.gpu_memory_utilization=0.4")
    if HAS_VLLM:
        check_config(fits)
    else:  # the shares pass; then the missing package is named
        with pytest.raises(ConfigError, match=r"^backend: vllm is not installed"):
            check_config(fits)
    cfg = compose_cfg("backend=vllm", "prm=vllm", "backend.gpu_memory_utilization=0.8")
    with pytest.raises(ConfigError, match=r"backend.gpu_memory_utilization=0.8 \+ prm.scorer"):
        check_config(cfg)


def test_prm_vllm_without_a_trained_model_stops_before_loading(compose_cfg):
    cfg = compose_cfg("prm=vllm")
    with pytest.raises(ConfigError, match=r"prm.scorer \(vllm\) serves a trained value model: "
                                          r"set prm.path") as err:
        build_scorer(cfg.prm.scorer, prm_path=None, backbone="/no/such/backbone", seed=0)
    assert "\n" not in str(err.value)


def test_close_backend_closes_only_what_must_be_closed():
    from rest_mcts.backends.mock import MockPolicyBackend

    mock = MockPolicyBackend(seed=0)
    mock.close = lambda: pytest.fail("mock is not must_close")  # type: ignore[attr-defined]
    close_backend(mock)
    close_backend(None)
    close_backend(object())


def test_importing_the_vllm_backends_does_not_import_vllm():
    code = ("import sys, rest_mcts.backends.vllm_policy, rest_mcts.backends.vllm_scorer; "
            "from rest_mcts.backends import VLLMPolicyBackend, VLLMValueScorer; "
            "assert 'vllm' not in sys.modules, 'vllm imported'")
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_without_vllm_one_line_names_the_install_command(monkeypatch):
    hide_vllm(monkeypatch)
    for build in (lambda: VLLMPolicyBackend(model_path="some/model"),
                  lambda: VLLMValueScorer(model_path="some/prm")):
        with pytest.raises(ConfigError) as err:
            build()
        assert INSTALL_HINT in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_run_py_backend_vllm_without_vllm_is_one_line(tmp_path, tiny_policy):
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=search", "backend=vllm", "search=cot",
           f"model.path={tiny_policy}", "stage.num_problems=2", "logger=null",
           f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), **env_without_vllm(tmp_path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("error: backend: vllm is not installed (the vllm policy needs it): "
                    f"{INSTALL_HINT}")
    assert "Traceback" not in proc.stderr


# ---- against vLLM's real types (skipped without vLLM) ---------------------------------------
def test_translations_on_vllm_real_types():
    vllm = pytest.importorskip("vllm", reason=NO_VLLM_REASON)
    from vllm.outputs import CompletionOutput as VCompletion
    from vllm.outputs import RequestOutput as VRequest

    sampled = SamplingParams(n=2, temperature=0.8, top_p=0.95, max_new_tokens=16, stop=("\n",))
    sp = vllm.SamplingParams(**sampling_kwargs(sampled, 42))
    assert (sp.n, sp.seed, sp.max_tokens, sp.stop, sp.top_k) == (2, 42, 16, ["\n"], 0)
    assert sp.include_stop_str_in_output and sp.temperature == 0.8 and sp.top_p == 0.95
    greedy = vllm.SamplingParams(**sampling_kwargs(SamplingParams(n=3, temperature=0.0), 1))
    assert greedy.n == 1 and greedy.seed is None
    outs = [
        VCompletion(index=1, text="x\n", token_ids=[3, 4], cumulative_logprob=None,
                    logprobs=None, finish_reason="stop", stop_reason="\n"),
        VCompletion(index=0, text="y", token_ids=[5, 2], cumulative_logprob=None,
                    logprobs=None, finish_reason="stop", stop_reason=None),
    ]
    request = VRequest(request_id="0", prompt=None, prompt_token_ids=[1, 2, 3],
                       prompt_logprobs=None, outputs=outs, finished=True, num_cached_tokens=2)
    got = to_generation_output(request, sampled)
    assert got.prompt_tokens == 3
    assert [(c.text, c.num_tokens, c.finish_reason) for c in got.completions] == [
        ("y", 2, "eos"), ("x\n", 2, "stop"),
    ]


def test_pooling_settings_on_vllm_real_types():
    vllm = pytest.importorskip("vllm", reason=NO_VLLM_REASON)
    from vllm.config import PoolerConfig
    from vllm.outputs import ClassificationOutput as VClass
    from vllm.outputs import ClassificationRequestOutput as VClassRequest

    config = PoolerConfig(**pooling_engine_kwargs()["pooler_config"])
    assert config.seq_pooling_type == "LAST" and config.use_activation is False
    assert vllm.PoolingParams(use_activation=False).use_activation is False
    output = VClassRequest(request_id="0", outputs=VClass([0.375]), prompt_token_ids=[1, 2],
                           num_cached_tokens=0, finished=True)
    assert value_of(output) == 0.375


def test_llm_takes_the_keywords_we_pass():
    pytest.importorskip("vllm", reason=NO_VLLM_REASON)
    import inspect

    from vllm.engine.arg_utils import EngineArgs
    from vllm.entrypoints.llm import LLM

    named = set(inspect.signature(LLM.__init__).parameters) | set(
        inspect.signature(EngineArgs).parameters
    )
    base = llm_kwargs("m", dtype="auto", tensor_parallel_size=1, gpu_memory_utilization=0.5,
                      max_model_len=None, enable_prefix_caching=True, trust_remote_code=False,
                      seed=0, enforce_eager=False, extra=pooling_engine_kwargs())
    assert set(base) <= named, set(base) - named
    generate = inspect.signature(LLM.generate).parameters
    classify = inspect.signature(LLM.classify).parameters
    assert {"sampling_params", "use_tqdm"} <= set(generate)
    assert {"pooling_params", "use_tqdm"} <= set(classify)


# ---- a real engine on a tiny model (gpu; skipped without vLLM and CUDA) ---------------------
@pytest.mark.gpu
@pytest.mark.slow
def test_tiny_models_on_real_vllm_engines(tmp_path, tokenizer):
    pytest.importorskip("vllm", reason=NO_VLLM_REASON)
    from rest_mcts.backends import HFPolicyBackend
    from rest_mcts.models import build_tiny_causal_lm, save_model

    policy = build_tiny_causal_lm(tokenizer, hidden_size=128, num_layers=2, num_heads=2, seed=3)
    value = build_tiny_value_model(tokenizer, hidden_size=128, num_layers=2, num_heads=2, seed=4)
    save_model(policy, tokenizer, tmp_path / "policy")
    save_model(value, tokenizer, tmp_path / "prm")
    engine = dict(dtype="float32", max_model_len=256, enforce_eager=True)
    backend = VLLMPolicyBackend(str(tmp_path / "policy"), gpu_memory_utilization=0.3, **engine)
    scorer = VLLMValueScorer(str(tmp_path / "prm"), gpu_memory_utilization=0.3, **engine)
    try:
        prompts = ["Make 5 from 2 3\n", "Make 24 from 6 4 1\n", "Q\n"]
        sampled = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, stop=("\n",))
        first = backend.generate(prompts, sampled, seeds=[1, 2, 3])
        assert [len(o.completions) for o in first] == [3, 3, 3]
        for out in first:
            for c in out.completions:
                assert c.num_tokens <= 12 and c.finish_reason in ("stop", "eos", "length")
                assert c.finish_reason != "stop" or c.text.endswith("\n")
        # same row seed, other batch: same samples
        assert backend.generate(prompts[1:2], sampled, seeds=[2])[0] == first[1]
        greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=12)
        hf = HFPolicyBackend(model=policy, tokenizer=tokenizer)
        ours = [o.completions[0].text for o in backend.generate(prompts, greedy)]
        theirs = [o.completions[0].text for o in hf.generate(prompts, greedy)]
        assert sum(a == b for a, b in zip(ours, theirs)) >= 2  # float32; ties may differ
        values = scorer.score(ITEMS)
        expected = HFValueScorer(model=value, tokenizer=tokenizer).score(ITEMS)
        assert values == pytest.approx(expected, abs=1e-3)
        assert scorer.score(ITEMS) == pytest.approx(values, abs=1e-6)
    finally:
        close_backend(scorer)
        close_backend(backend)
