"""What a run stands on, below Algorithm 1 and above training: the typed run, where its
searches run, its folders and its base policy. Stages and the loop (:mod:`rest_mcts.loop`)
use it; nothing here imports the loop or a stage.

- `context`    -- what every step shares (world, model backends, training settings, seed,
  executor), typed and built once from the composed config (:class:`Context`).
- `spec`       -- the frozen run spec a stage gets: its Context and its search config, built
  and checked once before any work (:class:`RunSpec`).
- `executors`  -- where the questions of a search are searched: this process or a pool of
  Ray actors kept for the whole stage (``executor=local|ray``).
- `search_run` -- a search method over a split on the batching engine (trees, results.jsonl;
  ``stage=search|eval`` and the loop's searches).
- `merge`      -- the folders of a sharded search joined into one (``stage=merge``).
- `claims`     -- run folders one run owns: a lock for its lifetime and the config (and its
  fingerprint) that made the folder, checked on every resume.
- `keys`       -- which options shape a result, declared once each with the reason, and the
  loop-folder, run-config and policy_0 keys computed from those declarations.
- `policy0`    -- the base policy every stage starts from (``ensure_policy0``: ``model.path``
  or the bootstrapped tiny policy_0, cached).
"""
