"""Pre-training: the Trainer and what it is made of.

config.py       TrainConfig: every train.py setting, its default and meaning
trainer.py      the loop: accumulate, clip, step, evaluate, checkpoint, resume
optim.py        AdamW with decay groups, warmup + cosine schedule, one optimizer step
muon.py         Muon (Newton-Schulz orthogonalised momentum) for the blocks' matrices + AdamW
muon_sharded.py Muon's Newton-Schulz under FSDP: each rank orthogonalizes a share, whole
precision.py    the training step's dtype probe, GradScaler, TF32 (device choice: minigpt.device)
distributed.py  torchrun: process groups, DDP, FSDP2, rank-0 printing
state.py        train_state.pt: optimizer, RNG and sampler state for exact resume
interrupt.py    SIGINT / SIGTERM turned into a clean stop at a step boundary
perf.py         FLOPs per token (6N + 12LHQT), peak FLOP/s, MFU
metrics.py      metrics.jsonl, TensorBoard and W&B logging
plot.py         loss curves from metrics.jsonl (python -m minigpt.train.plot)
"""
