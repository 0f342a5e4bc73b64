"""Search: the paper's value formulas, search trees, MCTS* and baselines, and the engine
that batches many questions' model calls together."""
