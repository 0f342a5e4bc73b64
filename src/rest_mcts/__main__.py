"""`python -m rest_mcts ...`: the same command line as `python run.py ...` (rest_mcts.cli)."""

from rest_mcts.cli import main

if __name__ == "__main__":
    main()
