"""rest-mcts: ReST-MCTS* (Zhang et al., NeurIPS 2024) -- process-reward-guided tree search
and self-training, batched and reproducible."""

__version__ = "0.1.0"

from rest_mcts.resolvers import register as _register_resolvers

_register_resolvers()
