"""Algorithm 1 of the paper (ReST-MCTS* self-training) and its parts, readable in one sitting.
What it stands on (the run's Context, the search runner, executors, run folders, policy_0)
lives one floor down, in :mod:`rest_mcts.runtime`.

- `algorithm` -- the loop itself: D_V0 and PRM_0, then per iteration MCTS* on the training
  questions, D_V / D_G, PRM_k and policy_k, held-out evaluation (`run_loop`).
- `baselines` -- the self-training baselines on the same steps (`stage.method=rest_em|dpo`):
  budget-matched samples, ReST-EM's correct samples or DPO pairs, the policy, evaluation.
- `baseline_data` -- the baselines' data: ReST-EM's D_G, DPO's preference pairs.
- `budget`    -- their equal budget: policy tokens per training question of a ReST-MCTS* loop.
- `d_v0`      -- the initial PRM data by BFS tree sampling or reference solutions.
- `prm0`      -- PRM_0 on D_V0 as stage=init_prm builds it, and prm=trained's cached PRM_0.
- `data`      -- the one writer of D_V and D_G from verified trees.
- `orm_data`  -- the outcome reward model's rows (finished leaves, 0/1 correct) of the same trees.
- `train`     -- the loop's training steps: PRM regression, policy SFT and policy DPO.
- `evaluate`  -- held-out evaluation of an iteration's models.
- `gates`     -- the iteration-0 gates (the policy's step skill, PRM_0's ranking).
- `steps`     -- resumable steps with manifests.
- `report`    -- the results table and plot.
"""
