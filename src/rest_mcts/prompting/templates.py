"""Prompt template files (``rest_mcts/prompt_templates/<name>.txt``) and how they are filled.

Templates are plain text with named slots such as ``{question}``; only the slots passed to
:func:`fill` are replaced, so the LaTeX braces in a template (``\\boxed{...}``) stay as they
are. A template may also be given as a path to any text file.

Shipped templates (English versions of the paper's prompts, THUDM/ReST-MCTS
``tasks/prompts.py``):

* ``cot``: chain of thought (``cot_prompt_en``), adapted to this project's step convention
  (one ``Step k:`` line per step, final ``The answer is $\\boxed{...}$``);
* ``expansion``: next-step expansion (``zero_single_proposal_prompt_mistral``), answer
  ``Next step: ...``;
* ``expansion_hint``: next-step expansion with the self-critic's analysis
  (``zero_single_proposal_prompt_use_reflection_en``), answer ``Next step: ...``;
* ``hint``: one line carrying the self-critic's analysis, appended to the ``cot`` prompt;
* ``critic``: self-critic, end of inference or hint (``single_reflection_prompt_en``),
  answer ``Problem solved`` or ``Analysis: ...``;
* ``verify``: answer verification by an LLM judge (``utils/verify_llm.py``, translated from
  Chinese), answer ``0`` or ``1``;
* ``metamath_alpaca``: the Alpaca prompt MetaMath models were trained with (no chat template);
* ``plain``: the instruction alone.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

TEMPLATE_PACKAGE = "rest_mcts.prompt_templates"


@functools.lru_cache(maxsize=64)
def load_template(name: str) -> str:
    """The text of a shipped template (by name) or of a template file (by path).

    Raises:
        FileNotFoundError: no such template; the message lists the shipped ones.
    """
    path = Path(name)
    if path.suffix == ".txt" and path.is_file():
        return path.read_text(encoding="utf-8")
    folder = resources.files(TEMPLATE_PACKAGE)
    file = folder / f"{name}.txt"
    if not file.is_file():
        shipped = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
        raise FileNotFoundError(f"prompt template {name!r} not found (shipped: {', '.join(shipped)})")
    return file.read_text(encoding="utf-8")


def fill(template: str, **slots: str) -> str:
    """Replace each ``{slot}`` named in ``slots``; other braces are left untouched.

    Raises:
        KeyError: a given slot does not occur in the template (a wrong template for the job).
    """
    out = template
    for key, value in slots.items():
        marker = "{" + key + "}"
        if marker not in out:
            raise KeyError(f"template has no slot {marker}")
        out = out.replace(marker, value)
    return out
