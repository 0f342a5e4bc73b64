"""The rows of D_V and D_G files, read and checked without Lightning or torch, so a stage can
check its data files before it spends anything (training policy_0, loading a model).

* D_V (PRM targets): ``{"question": str, "steps": [str, ...], "target": float in [0, 1]}``
  per line (extra fields such as ``question_id``, ``m``, ``r`` are kept but not needed).
* D_G (policy SFT): ``{"question": str, "steps": [str, ...]}`` per line (the policy learns to
  write the steps after the question, formatted by `prompts.policy_prompt` exactly as at
  search time: with the world's prompt format, e.g. a chat template, when it has one), or
  ``{"prompt": str, "completion": str}`` for text already formatted.

A bad row raises :class:`rest_mcts.utils.io.FileFormatError` (one line naming the file, line
and field), which ``run.py`` reports with exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from rest_mcts.config import ConfigError
from rest_mcts.prompts import policy_prompt
from rest_mcts.utils.io import FileFormatError, jsonl_objects


# ---------------------------------------------------------------------------- D_V
@dataclass(frozen=True)
class ValueRow:
    """One PRM training example: the value target of a partial solution."""

    question: str
    steps: tuple[str, ...]
    target: float


def read_value_rows(path: str | Path) -> list[ValueRow]:
    """Read a D_V JSONL file.

    Raises:
        FileNotFoundError: there is no such file.
        FileFormatError: a line is not a JSON object or a field is wrong (names file and line).
    """
    return _read_rows(path, "PRM data file", _parse_value_row)


def _read_rows(path: str | Path, what: str, parse) -> list:
    """Every line of a JSONL file, parsed by ``parse(raw, where)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} '{path}' not found")
    return [parse(raw, where) for where, raw in jsonl_objects(path)]


def _parse_value_row(raw: dict, where: str) -> ValueRow:
    question, steps, target = raw.get("question"), raw.get("steps"), raw.get("target")
    if not isinstance(question, str) or not question.strip():
        raise FileFormatError(f"{where}: field 'question' must be a non-empty string")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps) or not steps:
        raise FileFormatError(f"{where}: field 'steps' must be a non-empty list of strings")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 <= target <= 1:
        raise FileFormatError(
            f"{where}: field 'target' must be a number in [0, 1], got {target!r}")
    return ValueRow(question, tuple(steps), float(target))


# ---------------------------------------------------------------------------- D_G
@dataclass(frozen=True)
class SFTExample:
    """One supervised example: the policy reads ``prompt`` and learns to write ``completion``."""

    prompt: str
    completion: str

    def __post_init__(self) -> None:
        if not self.completion:
            raise ValueError("SFTExample.completion must be non-empty")


def solution_example(question: str, steps: Sequence[str], fmt: Any = None) -> SFTExample:
    """The SFT example of a full solution: prompt = the question, completion = its steps,
    in the format the policy reads and writes at search time (`prompts.policy_prompt` with
    the world's prompt format ``fmt``; None: the plain format).

    Raises:
        ConfigError: the format's prompt with steps does not extend its prompt without them
            (``model.prompt_style=propose``), so the steps are no completion of it.
    """
    prompt = policy_prompt(question, (), fmt)
    full = policy_prompt(question, steps, fmt)
    if not full.startswith(prompt):
        style = getattr(fmt, "style", None)
        raise ConfigError(
            f"model.prompt_style={style} (data.prompt.style): its prompt of a question with "
            "steps does not start with the question's own prompt, so a correct trace has no SFT "
            "completion; policy SFT needs model.prompt_style=continue")
    return SFTExample(prompt, full[len(prompt):])


def read_solution_rows(path: str | Path, fmt: Any = None) -> list[SFTExample]:
    """Read a D_G JSONL file (``question``/``steps`` rows rendered with the prompt format
    ``fmt``, see :func:`solution_example`).

    Raises:
        FileNotFoundError: there is no such file.
        FileFormatError: a line is not a JSON object or a field is wrong (names file and line).
    """
    return _read_rows(path, "policy SFT data file", partial(_parse_solution, fmt=fmt))


def _parse_solution(raw: dict, where: str, fmt: Any = None) -> SFTExample:
    if "prompt" in raw or "completion" in raw:
        prompt, completion = raw.get("prompt"), raw.get("completion")
        if not isinstance(prompt, str) or not prompt:
            raise FileFormatError(f"{where}: field 'prompt' must be a non-empty string")
        if not isinstance(completion, str) or not completion.strip():
            raise FileFormatError(f"{where}: field 'completion' must be a non-empty string")
        return SFTExample(prompt, completion)
    question, steps = raw.get("question"), raw.get("steps")
    if not isinstance(question, str) or not question.strip():
        raise FileFormatError(f"{where}: field 'question' must be a non-empty string")
    if not isinstance(steps, list) or not steps or not all(
        isinstance(s, str) and s.strip() for s in steps
    ):
        raise FileFormatError(
            f"{where}: field 'steps' must be a non-empty list of non-empty strings")
    return solution_example(question, steps, fmt)


def check_data_files(files: Sequence[str | Path], read, option: str) -> list:
    """Every row of ``files`` read with ``read`` (:func:`read_value_rows` or
    :func:`read_solution_rows`), all checked before anything is spent on them.

    Raises:
        ConfigError: a file does not exist (naming ``option``).
        FileFormatError: a bad row (naming the file and line).
    """
    from rest_mcts.config import ConfigError

    rows: list = []
    for file in files:
        if not Path(file).is_file():
            raise ConfigError(f"{option}: {file} does not exist")
        rows += read(file)
    return rows
