"""Algorithm 1 of the paper (ReST-MCTS* self-training) and its parts, readable in one sitting.

- `algorithm` -- the loop itself: D_V0 and PRM_0, then per iteration MCTS* on the training
  questions, D_V / D_G, PRM_k and policy_k, held-out evaluation (`run_loop`).
- `d_v0`      -- the initial PRM data by BFS tree sampling or reference solutions.
- `data`      -- the one writer of D_V and D_G from verified trees.
- `train`     -- policy_0 (`ensure_policy0`), PRM regression and policy SFT.
- `evaluate`  -- held-out evaluation of an iteration's models.
- `gates`     -- the iteration-0 gates (policy step skill, PRM sibling ranking accuracy).
- `steps`, `report` -- resumable steps with manifests; the results table and plot.

Also here for now, moving to the `runtime` room (docs/architecture.md): `context` (what every
step shares: world, model backends, training settings, seed), `search_run` (a search method
over a split on the batching engine: trees, results.jsonl), `executors` (``executor=local|ray``),
`merge` (joining a sharded search) and `claims` (run-folder locks and config records).
"""
