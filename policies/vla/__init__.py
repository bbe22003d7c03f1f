"""A small VLA with GR00T N1.5/N1.6's architecture: Eagle-like backbone + flow-matching DiT action head.

config.py       sizes (dataclass presets)         backbone.py     ViT -> pixel-shuffle MLP1 -> MiniLM (BERT)
action_head.py  flow-matching DiT head            model.py        the two joined; loss, sampling, checkpoints
normalize.py    relative/absolute min-max stats   tuning.py       GR00T's tune_* flags and LoRA (peft)
policy.py       the benchmark's Policy protocol around a checkpoint
"""
