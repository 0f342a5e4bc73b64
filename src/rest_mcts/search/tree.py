"""Search trees: nodes holding partial solutions p_k = [s_1..s_k], with JSON export.

A tree is a flat list of nodes addressed by index (node 0 is the root, the empty partial
solution p_0), which keeps JSON export lossless and cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator


@dataclass
class MCTSState:
    """MCTS*'s control state of one node (other searches leave it at its defaults).

    Attributes:
        expansions: e, thought expansions of this node so far (progressive widening expands
            it again once its visits reach b * e^2).
        fruitless: expansions in a row that brought no new legal step.
        saturated: widening gave up on this node (too many fruitless expansions).
        critic_status: the LLM self-critic's answer about this path: "solved", "hint" or
            "unparsed" (None: not asked).
        critic_tokens: policy tokens of that answer.
        critic_raw: the start of an unparsed answer (None otherwise).
        rollout_v_max: v_max of the greedy MC rollout from this node (None: no rollout).
    """

    expansions: int = 0
    fruitless: int = 0
    saturated: bool = False
    critic_status: str | None = None
    critic_tokens: int = 0
    critic_raw: str | None = None
    rollout_v_max: float | None = None


# Trees written before MCTSState kept its fields in `Node.info`; `Tree.from_dict` moves them.
_LEGACY_STATE_KEYS = tuple(f.name for f in fields(MCTSState))


@dataclass
class Node:
    """One partial solution in a search tree.

    Attributes:
        id: index in the tree (root 0).
        parent: parent index (None at the root).
        step: the step s_k this node adds to its parent's path ("" at the root).
        depth: k, the number of steps in the path.
        children: child indices.
        visits: n_C, visit count.
        value: v_C, the node's current value (PRM score, then rollout and backpropagation
            updates).
        prm_score: the value model's score when the node was created (None if unscored).
        critic: the self-critic's verdict: "end", the LLM critic's hint (MCTS* with
            ``self_critic=llm``; ``mcts.critic_status`` says what it answered: solved,
            hint or unparsed), or None when not asked or without a verdict.
        legal: whether the step parsed as legal.
        terminal: whether the path is finished (no further step).
        answer: the final answer stated by a finished path.
        expanded: children have been generated.
        exhausted: nothing left to explore below (dead end, or every child exhausted).
        tokens: policy tokens spent generating this step.
        correct: verifier's label of a finished path (training trees only; None otherwise).
        mcts: MCTS*'s control state (widening, self-critic, rollout); in JSON null when
            it is untouched.
        info: free-form extras (e.g. an illegal step's error, merged samples).
    """

    id: int
    parent: int | None
    step: str
    depth: int
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value: float = 0.0
    prm_score: float | None = None
    critic: str | None = None
    legal: bool = True
    terminal: bool = False
    answer: str | None = None
    expanded: bool = False
    exhausted: bool = False
    tokens: int = 0
    correct: bool | None = None
    mcts: MCTSState = field(default_factory=MCTSState)
    info: dict[str, Any] = field(default_factory=dict)


class Tree:
    """A search tree for one question."""

    def __init__(self, question_id: str, question_text: str, nodes: list[Node] | None = None):
        self.question_id = question_id
        self.question_text = question_text
        self.nodes: list[Node] = nodes if nodes is not None else [Node(0, None, "", 0)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add_child(self, parent: Node, step: str, **attrs: Any) -> Node:
        node = Node(len(self.nodes), parent.id, step, parent.depth + 1, **attrs)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def children(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i in node.children]

    def parent(self, node: Node) -> Node | None:
        return None if node.parent is None else self.nodes[node.parent]

    def path(self, node: Node) -> list[Node]:
        """Nodes from the root's first child down to `node` (empty for the root)."""
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def steps(self, node: Node) -> tuple[str, ...]:
        """The partial solution p_k of `node` as step texts."""
        return tuple(n.step for n in self.path(node))

    def leaves(self) -> Iterator[Node]:
        return (n for n in self.nodes if not n.children)

    def finished(self) -> list[Node]:
        """Nodes whose path is finished (legal and terminal)."""
        return [n for n in self.nodes if n.terminal and n.legal]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "question": self.question_text,
            "nodes": [_node_record(n) for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Tree":
        names = {f.name for f in fields(Node)}
        nodes = []
        for i, raw in enumerate(data["nodes"]):
            unknown = set(raw) - names
            if unknown:
                raise ValueError(f"tree node {i}: unknown fields {sorted(unknown)}")
            nodes.append(_node_from_record(raw))
        return cls(data["question_id"], data["question"], nodes)

    def save(self, path: str | Path) -> None:
        from rest_mcts.utils.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Tree":
        """The tree saved in ``path``; FileFormatError naming the file when it holds none."""
        from rest_mcts.utils.io import FileFormatError, read_json

        data = read_json(path, dict)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise FileFormatError(f"{path}: not a search tree ({type(err).__name__}: "
                                  f"{' '.join(str(err).split())})") from None


def _node_record(node: Node) -> dict[str, Any]:
    record = asdict(node)
    if node.mcts == MCTSState():
        record["mcts"] = None  # untouched (BFS trees, unvisited MCTS* nodes): keep JSON small
    return record


def _node_from_record(raw: dict[str, Any]) -> Node:
    raw = dict(raw)
    state = raw.pop("mcts", None)
    info = dict(raw.pop("info", None) or {})
    if state is None:  # untouched, or a tree from before MCTSState: its keys were in info
        state = {k: info.pop(k) for k in _LEGACY_STATE_KEYS if k in info}
    return Node(**raw, mcts=MCTSState(**state), info=info)
