"""Real reasoning datasets (MATH, GSM8K, SciBench, GPQA, ...) as normalised problem records.

* :mod:`records`: :class:`Question` (what search may see), :class:`Problem` (with the gold
  answer), the :class:`ProblemRecord` every dataset is normalised to, and
  :class:`DatasetError` (names the file and line of a bad row);
* :mod:`files`: rows of a local JSONL / JSON / parquet file, with their line numbers;
* :mod:`hub`: rows from the Hugging Face hub through ``datasets`` (imported lazily);
* :mod:`normalise`: one function per row format (``math``, ``gsm8k``, ``fields``, ``choice``);
* :mod:`select`: deterministic shuffling, sharding and limit;
* :mod:`steps`: reference solutions as steps, in the project's one step convention;
* :mod:`load`: :func:`load_records`, the whole pipeline for one dataset config.
"""

from rest_mcts.data.load import DatasetSpec, load_records
from rest_mcts.data.records import DatasetError, ProblemRecord

__all__ = ["DatasetError", "DatasetSpec", "ProblemRecord", "load_records"]
