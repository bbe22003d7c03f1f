"""The learning-rate schedule GR00T fine-tunes with: linear warmup, then cosine decay to zero."""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, total: int, warmup_ratio: float) -> float:
    warmup = max(1, int(total * warmup_ratio))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
