"""One image preprocessing for training and acting, so the policy sees at run time what it saw in training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_images(frames: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """(..., H, W, 3) or (..., 3, H, W) uint8 -> (..., 3, size, size) uint8, bilinear with antialiasing."""
    x = torch.as_tensor(frames)
    if x.shape[-1] == 3 and x.shape[-3] != 3:
        x = x.movedim(-1, -3)
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x.reshape(*lead, 3, size, size)
