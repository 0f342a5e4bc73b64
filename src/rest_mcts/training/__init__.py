"""Training the two models with Lightning: PRM regression and policy SFT (and DPO).

- `prm`, `prm_data`, `prm_metrics` -- the PRM's LightningModule (MSE on quality values), its
  D_V data, and its metrics against D_V targets and the exact values;
- `rows` -- D_V and D_G rows read from their files (no torch: checked before any training);
- `policy_sft`, `sft_data`, `callbacks` -- policy SFT (loss on the solution tokens only), its
  data and its callbacks;
- `policy_dpo` -- policy DPO against a frozen reference (the DPO baseline loop) and its pair data;
- `settings` -- typed training settings (`TrainSettings`, `TrainerSpec`);
- `artifacts` -- the one fit-and-save (resumable checkpoints, then ``save_pretrained``);
- `resumable` -- what a checkpoint must also hold for an exact resume (data order, RNGs);
- `optim` -- AdamW with warmup and cosine decay;
- `knobs` -- gradient checkpointing and LoRA;
- `strategies` -- Lightning strategies a YAML file cannot spell (FSDP).

Training takes its Lightning logger as an argument (``logger=``); it is built from the
`logger` config group by :mod:`rest_mcts.tracking.lightning`.
"""
