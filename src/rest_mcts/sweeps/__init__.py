"""Sweeps: read a Hydra multirun folder back (`jobs`), group its jobs over seeds (`groups`), summarise
them (`aggregate`,
also the command `python -m rest_mcts.sweeps.aggregate <multirun folder>`), plot it
(`plots`), and do so at the end of every multirun (`callback`, in conf/hydra/default.yaml)."""
