"""Typed, frozen configs of the search methods, one per `search=<name>`, checked on
construction.

Each knob is declared once, here: its default, its check (range, integer, choices) and, in
the line comment, the paper's symbol. The YAML files in ``conf/search/`` repeat the defaults
so that ``python run.py --cfg job`` shows every knob; a test holds them equal to these.

A bad value raises :class:`rest_mcts.config.ConfigError` with one line that names the
option as the command line spells it (``search.alpha=1.5 is outside [0, 1] (rollout mixing
weight alpha)``), so ``config.validate`` stops a run before any work, with that line.

Build one with :func:`search_config_from` (from the composed ``cfg.search`` node or any
mapping with a ``name``) or :func:`search_config` (a method's defaults with overrides).
A named variant (``SEARCH_VARIANTS``: ``search=mcts_star_widen``, ``search=mcts_star_lean``)
has its own YAML file with ``name: <variant>``; it builds its method's config with the
variant's settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from rest_mcts.config import ConfigError, Knobs, knob

ANSWER_SELECTIONS = ("best_leaf", "value_vote")
SELF_CRITIC_MODES = ("world", "llm", "off")
UCT_FORMS = ("authors", "plain")
STOP_RULES = ("selected", "finished")
FINISH_MODES = ("complete", "as_is")


class SearchConfig(Knobs):
    """Base of the typed search configs: checks every knob on construction
    (:class:`rest_mcts.config.Knobs`; options named ``search.<knob>``).

    Attributes:
        name: the method's name in the registry and in ``conf/search/<name>.yaml``.
    """

    name: ClassVar[str]
    knob_prefix: ClassVar[str] = "search"

    def check_world(self, world: Any) -> None:
        """Check the knobs against the world the search will run in (before any question);
        raises ConfigError. Most methods suit every world."""

    def to_dict(self) -> dict[str, Any]:
        """The config as the ``search`` group writes it: ``name`` and every knob (a
        sequence knob as a list)."""
        knobs = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {"name": self.name,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}}


# ---------------------------------------------------------------------------- MCTS*
@dataclass(frozen=True)
class MCTSStarConfig(SearchConfig):
    """MCTS* (paper, Section 3.2 and App. C.1; defaults from App. E.2 where it gives them,
    else from the authors' code)."""

    name: ClassVar[str] = "mcts_star"

    # Each knob that differs between the paper, the authors' code (THUDM/ReST-MCTS 2d5f488,
    # MCTS/mcts.py, evaluate.py) and this repo defaults to the paper's setting, or to the
    # authors' where the paper is silent; the comment says which (docs/paper_fidelity.md,
    # "MCTS*", which also says where each item of the paper is known from).

    # T: select-expand-rollout-backpropagate rounds per question (paper App. E.2: 50).
    iterations: int = knob(50, low=1, integer=True, what="iterations T")
    # b: children per thought expansion (paper App. E.2: 3).
    branch: int = knob(3, low=1, integer=True, what="branch b")
    # l: the stop threshold (paper App. E.2: 0.9); see stop_rule.
    end_gate: float = knob(0.9, low=0, high=1, low_open=True, what="threshold l")
    # alpha: rollout update v_C <- alpha * v_C + (1 - alpha) * v_max (Eq. 34; App. E.2: 0.5).
    alpha: float = knob(0.5, low=0, high=1, what="rollout mixing weight alpha")
    # c: UCT exploration constant (paper: no value; authors' evaluate.py: 0.4).
    exploration_constant: float = knob(0.4, low=0, what="UCT constant c")
    # UCT form: authors (v + c * sqrt(2 ln n_parent / n_C), an unvisited child v +
    # unvisited_bonus; MCTS/mcts.py getBestChild: Eq. 33 has no factor 2 and no rule for
    # unvisited children, and its constant is known only as the authors' c) | plain
    # (v + c * sqrt(ln n_parent / n_C), an unvisited child +inf).
    uct: str = knob("authors", choices=UCT_FORMS)
    # The authors' finite bonus of an unvisited child (uct=authors; evaluate.py --inf 0.8).
    unvisited_bonus: float = knob(0.8, low=0, what="UCT bonus of an unvisited child")
    # m: depth of the greedy MC rollout (paper App. E.2: 2; 0: no rollout).
    rollout_steps: int = knob(2, low=0, integer=True, what="rollout depth")
    # d: samples per rollout step, the best by value is kept (paper: no value; authors: 1).
    rollout_branch: int = knob(1, low=1, integer=True, what="samples per rollout step")
    # Policy sampling temperature in the rollout (paper: no value; authors: 0.7).
    rollout_temperature: float = knob(0.7, low=0, what="rollout sampling temperature")
    # Most steps per solution: nodes at this depth are not expanded (this repo's cap; the
    # paper and the authors' MCTS have none).
    max_depth: int = knob(8, low=1, integer=True, what="steps per solution")
    # Policy sampling temperature of thought expansion (paper: no value; authors: 0.7).
    temperature: float = knob(0.7, low=0, what="sampling temperature")
    # Who decides end of inference before a node is expanded: world (the step parser; no
    # hint) | llm (the paper: the policy answers the self-critic prompt greedily, "Problem
    # solved" or "Analysis: <hint>"; text worlds only) | off. true/false read as world/off.
    self_critic: str = knob("world", choices=SELF_CRITIC_MODES)
    # Token cap of one self-critic answer (self_critic=llm).
    critic_max_tokens: int = knob(64, low=1, integer=True, what="self-critic answer tokens")
    # The answer when the search did not stop at l: best_leaf (best-valued finished node) |
    # value_vote (summed values).
    answer_selection: str = knob("best_leaf", choices=ANSWER_SELECTIONS)
    # Token cap for one proposed step.
    max_step_tokens: int = knob(48, low=1, integer=True, what="tokens per step")
    # Progressive widening: expand a node again when its children are spent or its visits
    # reach b * e^2 after e expansions (this repo's variant, search=mcts_star_widen); false:
    # each node is expanded once (the paper's Alg. 2 and the authors' code).
    widen: bool = knob(False, flag=True)
    # When the search stops: selected (the paper, Alg. 2 lines 9-11, and the authors'
    # selectNode: a selected leaf with v >= l ends the search and is the answer, finished
    # or not) | finished (this repo's earlier rule: only a finished node with v >= l stops
    # it; an unfinished leaf at or above l is continued by one greedy step).
    stop_rule: str = knob("selected", choices=STOP_RULES)
    # Stop when the stop rule fires (evaluation); false: run all T iterations, a leaf the
    # stop rule picks is visited but not expanded (the authors' data generation,
    # sample_value='full'; the self-training loop's training search).
    early_stop: bool = knob(True, flag=True)
    # An answer node whose path is not finished (the stop test's leaf, or the best-valued
    # node when none is finished): complete (the authors' code has the policy write the final
    # answer from the chosen node; here one greedy continuation of its path, at most
    # max_step_tokens per step left above max_depth, judged by the world's parser, its
    # tokens counted; the tree is unchanged) | as_is (answered unfinished: scored wrong).
    finish: str = knob("complete", choices=FINISH_MODES)
    # The T curve inside one run: after each of these iteration counts below T, and at T,
    # record the answer the search would give if T were that count, with the policy tokens
    # spent so far (results.jsonl `t_curve`, metrics `<stage>/acc@T=t`;
    # rest_mcts.search.t_curve). Answers and search are unchanged; []: off.
    t_checkpoints: tuple[int, ...] = knob((5, 10, 20, 50, 100, 200), low=1, integer=True,
                                          what="T curve checkpoints", sequence=True)

    def __post_init__(self) -> None:
        if isinstance(self.self_critic, bool):  # YAML reads a bare `off` as false
            object.__setattr__(self, "self_critic", "world" if self.self_critic else "off")
        super().__post_init__()

    def check_world(self, world: Any) -> None:
        """The LLM self-critic needs a world with prompts (Countdown's plain format has no
        critic prompt, and its parser decides the end itself)."""
        from rest_mcts.prompts import prompt_format

        if self.self_critic == "llm" and world is not None and prompt_format(world) is None:
            raise ConfigError(
                "search.self_critic=llm needs a world with prompts (data=math, gsm8k, ...); "
                "this world has none (Countdown decides the end itself: use "
                "search.self_critic=world)"
            )


# ---------------------------------------------------------------------------- baselines
@dataclass(frozen=True)
class CoTConfig(SearchConfig):
    """Chain of thought: one greedy full solution."""

    name: ClassVar[str] = "cot"

    # Greedy: must be 0 (kept as a knob so that configs can state it).
    temperature: float = knob(0.0, low=0, what="sampling temperature")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature != 0:
            raise ConfigError(f"search.temperature={self.temperature} must be 0 (cot is greedy)")


@dataclass(frozen=True)
class SampledConfig(SearchConfig):
    """Knobs shared by the methods that sample n whole solutions and pick one."""

    n: int = knob(8, low=1, integer=True, what="sampled solutions per question")
    temperature: float = knob(1.0, low=0, what="sampling temperature")


@dataclass(frozen=True)
class SelfConsistencyConfig(SampledConfig):
    """Self-consistency (Wang et al. 2023): n sampled solutions, majority vote."""

    name: ClassVar[str] = "self_consistency"


@dataclass(frozen=True)
class BestOfNConfig(SampledConfig):
    """Best-of-N: n sampled solutions, the highest PRM value wins."""

    name: ClassVar[str] = "best_of_n"


@dataclass(frozen=True)
class WeightedVoteConfig(SampledConfig):
    """PRM-weighted vote: n sampled solutions, each votes with its PRM value."""

    name: ClassVar[str] = "weighted_vote"


@dataclass(frozen=True)
class SampledPassConfig(SampledConfig):
    """One sampling pass for every sample-selection rule: n sampled solutions, every step
    prefix valued by the PRM; self-consistency, best-of-N (last value, product), the weighted
    vote and pass@N at each N <= n are read from it (rest_mcts.search.selection)."""

    name: ClassVar[str] = "sampled"

    n: int = knob(16, low=1, integer=True, what="sampled solutions per question")


@dataclass(frozen=True)
class BFSConfig(SearchConfig):
    """Breadth-first beam search over steps (Tree-of-Thoughts style), PRM-guided."""

    name: ClassVar[str] = "bfs"

    # b: steps sampled per frontier node.
    branch: int = knob(3, low=1, integer=True, what="branch b")
    # Frontier nodes kept per depth.
    beam_width: int = knob(3, low=1, integer=True, what="frontier nodes kept per depth")
    # Most steps per solution.
    max_depth: int = knob(8, low=1, integer=True, what="steps per solution")
    temperature: float = knob(1.0, low=0, what="sampling temperature")
    # Token cap for one proposed step.
    max_step_tokens: int = knob(48, low=1, integer=True, what="tokens per step")
    # false: no PRM (tree sampling, e.g. for D_V0): no Score requests, nodes keep value 0,
    # the frontier is the first beam_width unfinished legal nodes.
    score: bool = knob(True, flag=True)


SEARCH_CONFIGS: dict[str, type[SearchConfig]] = {
    cls.name: cls
    for cls in (CoTConfig, SelfConsistencyConfig, BestOfNConfig, WeightedVoteConfig,
                SampledPassConfig, BFSConfig, MCTSStarConfig)
}


# Named variants: `search=<variant>` loads conf/search/<variant>.yaml, the method's knobs with
# these overrides (and `name: <variant>`); the typed config is the method's, so the variant
# runs wherever the method does (the loop's MCTS*, make_search).
SEARCH_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # MCTS* with this repo's progressive widening (the paper expands each node once).
    "mcts_star_widen": ("mcts_star", {"widen": True}),
    # The paper's MCTS* without the greedy MC rollout and without the unvisited bonus
    # (uct=authors with bonus 0: an unvisited child scores its own value): a cheaper search.
    "mcts_star_lean": ("mcts_star", {"rollout_steps": 0, "unvisited_bonus": 0.0}),
}


# ---------------------------------------------------------------------------- building
def search_names() -> list[str]:
    """Every name `search=` accepts: the methods and their named variants, sorted."""
    return sorted([*SEARCH_CONFIGS, *SEARCH_VARIANTS])


def method_of(name: str) -> str:
    """The method a search name runs (a variant's method, or the name itself)."""
    return SEARCH_VARIANTS[name][0] if name in SEARCH_VARIANTS else name


def config_class(name: str) -> type[SearchConfig]:
    """The config class of search method (or variant) ``name``; ConfigError (one line) if
    unknown."""
    method = method_of(name)
    if method not in SEARCH_CONFIGS:
        raise ConfigError(f"unknown search {name!r}; choose from {', '.join(search_names())}")
    return SEARCH_CONFIGS[method]


def search_config(name: str, **overrides: Any) -> SearchConfig:
    """The default config of search method ``name`` with ``overrides``; a variant's name
    gives its method's config with the variant's settings under ``overrides``.

    Raises:
        ConfigError: for an unknown method, an unknown knob (named ``search.<key>``, with
            the allowed ones listed) or a bad value.
    """
    cls = config_class(name)
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in overrides:
        if key not in allowed:
            raise ConfigError(
                f"search.{key} is not a knob of search {name!r}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
    variant = SEARCH_VARIANTS[name][1] if name in SEARCH_VARIANTS else {}
    return cls(**{**variant, **overrides})


def search_config_from(mapping: Mapping[str, Any] | SearchConfig) -> SearchConfig:
    """The typed config of a ``search`` node: ``name`` plus knobs (a plain mapping or an
    OmegaConf node; knobs it omits take their defaults). A SearchConfig comes back as is.

    Raises:
        ConfigError: as :func:`search_config`, or when ``name`` is missing.
    """
    if isinstance(mapping, SearchConfig):
        return mapping
    knobs = _plain(mapping)
    name = knobs.pop("name", None)
    if name is None:
        raise ConfigError("search config needs a 'name'")
    return search_config(str(name), **knobs)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy (OmegaConf nodes resolved)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(mapping):
        return dict(OmegaConf.to_container(mapping, resolve=True))  # type: ignore[arg-type]
    return dict(mapping)
