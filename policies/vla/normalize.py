"""Min-max normalisation to [-1, 1], with arm actions relative to the current state (GR00T N1.6 style).

The five arm joints of an action chunk are stored as offsets from the state the chunk starts at; the gripper
stays absolute (open/closed is a level, not a motion). Statistics live with the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

ARM = slice(0, 5)
_MIN_RANGE = 1e-6  # a constant dimension (e.g. an unused joint) maps to 0 instead of dividing by zero


@dataclass(frozen=True)
class NormStats:
    state_min: tuple[float, ...]
    state_max: tuple[float, ...]
    action_min: tuple[float, ...]
    action_max: tuple[float, ...]
    relative_arm: bool = True

    @classmethod
    def from_episodes(cls, episodes: Iterable[tuple[np.ndarray, np.ndarray]], horizon: int,
                      relative_arm: bool = True) -> "NormStats":
        """``episodes`` yields (states (T, 6), actions (T, 6)); every chunk start t and offset k < horizon counts."""
        states, chunks = [], []
        for s, a in episodes:
            states.append(s)
            for k in range(horizon):
                shifted = a[np.minimum(np.arange(len(a)) + k, len(a) - 1)].copy()  # padding repeats the last action
                if relative_arm:
                    shifted[:, ARM] -= s[:, ARM]
                chunks.append(shifted)
        if not states:
            raise ValueError("no episodes to compute normalisation statistics from")
        s, a = np.concatenate(states), np.concatenate(chunks)
        return cls(tuple(s.min(0).tolist()), tuple(s.max(0).tolist()), tuple(a.min(0).tolist()),
                   tuple(a.max(0).tolist()), relative_arm)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NormStats":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    # --- tensors -------------------------------------------------------------------------------------
    def _bounds(self, low: Sequence[float], high: Sequence[float], like: torch.Tensor):
        lo = torch.tensor(low, dtype=like.dtype, device=like.device)
        span = (torch.tensor(high, dtype=like.dtype, device=like.device) - lo).clamp(min=_MIN_RANGE)
        return lo, span

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        lo, span = self._bounds(self.state_min, self.state_max, state)
        return 2 * (state - lo) / span - 1

    def normalize_actions(self, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(..., H, 6) absolute actions + (..., 6) state -> normalised (relative arm) chunk."""
        a = actions.clone()
        if self.relative_arm:
            a[..., ARM] = a[..., ARM] - state[..., None, ARM]
        lo, span = self._bounds(self.action_min, self.action_max, a)
        return 2 * (a - lo) / span - 1

    def unnormalize_actions(self, normalized: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        lo, span = self._bounds(self.action_min, self.action_max, normalized)
        a = (normalized.clamp(-1, 1) + 1) / 2 * span + lo
        if self.relative_arm:
            a[..., ARM] = a[..., ARM] + state[..., None, ARM]
        return a
