"""Search: the paper's value formulas, search trees, MCTS* and baselines, and the engine
that batches many questions' model calls together.

- `value` -- the quality values v_k, weighted rewards and D_V targets (each formula once);
- `tree` -- search trees of partial solutions, with JSON export;
- `mcts_star` -- MCTS* for one question, as plain sequential logic;
- `critic` -- MCTS*'s self-critic (the world's verdict or the policy's own judgement);
- `baselines` -- CoT, self-consistency, best-of-N, weighted vote, BFS and the `sampled` pass;
- `selection` -- the sample-selection rules and reading a curve at given policy tokens;
- `configs`, `registry` -- a typed config per method, and methods by config name;
- `engine`, `requests` -- the batching engine and what a search asks of it (with costs);
- `steps` -- policy text judged step by step by the world's parser;
- `t_curve` -- the accuracy-vs-T curve inside one MCTS* run;
- `budget_sampling` -- whole solutions per question until a budget of policy tokens is spent;
- `evaluation` -- the policy's own evaluation (greedy, legal steps, pass@N, step skill);
- `verify` -- the training-time verifier (where the gold answer meets search output);
- `oracle_scorer` -- exact quality values from a world's oracle (analysis only).
"""
