"""One image preprocessing for training and acting, so the policy sees at run time what it saw in training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


CHUNK = 32  # frames per interpolate call: keeps the kernel's working set in cache


def resize_images(frames: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """(..., H, W, 3) or (..., 3, H, W) uint8 -> (..., 3, size, size) uint8, bilinear with antialiasing.

    Training's data loader and every acting path call this, so a model sees the same pixels in both."""
    x = torch.as_tensor(frames)
    if x.shape[-1] == 3 and x.shape[-3] != 3:
        x = x.movedim(-1, -3)  # a channels-last view: the layout the uint8 kernel works in
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    if x.shape[-2:] != (size, size):
        if x.dtype == torch.uint8 and x.device.type == "cpu":
            # torch's uint8 antialias kernel: ~10x faster than going through float32, within 1 grey level of it
            out = torch.empty((len(x), 3, size, size), dtype=torch.uint8)
            for i in range(0, len(x), CHUNK):
                out[i:i + CHUNK] = F.interpolate(x[i:i + CHUNK], size=(size, size), mode="bilinear", antialias=True,
                                                 align_corners=False)
            x = out
        else:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255).to(torch.uint8)
    return x.reshape(*lead, 3, size, size)
