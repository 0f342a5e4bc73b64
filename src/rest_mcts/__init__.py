"""rest-mcts: ReST-MCTS* (Zhang et al., NeurIPS 2024) -- process-reward-guided tree search
and self-training, batched and reproducible.

Rooms (arrows point down; docs/architecture.md):

- `cli` -- the command line (`run.py`, `rest-mcts`, `python -m rest_mcts` through
  `__main__`): checks it, finds `conf/`, runs the stage;
- `stages` -- one thin wrapper per `stage=<name>`;
- `loop` -- Algorithm 1 (the self-training loop);
- `runtime` -- what a run stands on: the run context and spec, the search runner, executors,
  shard merging, run folders and policy_0;
- `training` -- Lightning modules and data for PRM regression and policy SFT;
- `search` -- the paper's value formulas, trees, MCTS* and baselines, the batching engine;
- `backends` -- policy and value-scorer protocols and their implementations;
- `models` -- model and tokenizer construction and loading;
- `worlds`, `data`, `answers` -- problems and step formats, answer checking, datasets.

Shared helpers: `config` (checks and `instantiate`), `overrides` (command-line overrides
checked as Hydra will compose them, misspelt keys named), `config_sources` (the config
folders Hydra searches: `conf/` and the user's own), `resolvers` (config resolvers, registered
on import), `engines` (transformers or vLLM: the `engine` group, `engine=auto`'s choice), `prompts` (Countdown's text formats), `prompting` and `prompt_templates` (the
paper's prompts for text worlds), `tracking` (the stage's wandb run), `sweeps` (multirun
summaries), `figures` (axis labels, Wilson intervals and series styles every plot shares),
`view` (search-tree pages), `utils` (I/O, hashing, seeding, secrets, console).
"""

__version__ = "0.1.0"

from rest_mcts.resolvers import register as _register_resolvers

_register_resolvers()
