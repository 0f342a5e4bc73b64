"""Algorithm 1 of the paper (ReST-MCTS* self-training) and its parts, readable in one sitting.

- `algorithm` -- the loop itself: D_V0 and PRM_0, then per iteration MCTS* on the training
  questions, D_V / D_G, PRM_k and policy_k, held-out evaluation (`run_loop`).
- `context`   -- what every step shares (world, model backends, training settings, seed).
- `d_v0`      -- the initial PRM data by BFS tree sampling or reference solutions.
- `search_run`-- a search method over a split on the batching engine (trees, results.jsonl).
- `data`      -- the one writer of D_V and D_G from verified trees.
- `train`     -- policy_0 (`ensure_policy0`), PRM regression and policy SFT.
- `evaluate`  -- held-out evaluation of an iteration's models.
- `steps`, `report` -- resumable steps with manifests; the results table and plot.
"""
