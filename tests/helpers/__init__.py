"""Helpers shared by the tests (not tests themselves): paths, fake servers, scripted search
fakes, the offline wandb reader, the DDP training script, figures read back."""
