"""Sweeps: read a Hydra multirun folder back (`jobs`), group its jobs over seeds with pooled
accuracy intervals (`groups`), summarise them (`aggregate`, also the command
`python -m rest_mcts.sweeps.aggregate <multirun folder>`), plot it (`plots`), redraw a summary
from its summary.csv alone (`from_summary`), and do so at the end of every multirun
(`callback`, in conf/hydra/default.yaml)."""
