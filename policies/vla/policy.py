"""A VLA checkpoint behind the benchmark's Policy protocol: camera images + state + instruction -> joint targets.

It predicts a 16-step chunk and executes the first ``n_action_steps`` before predicting again (GR00T runs
open-loop chunks the same way). The sim speaks radians, the model LeRobot units; conversion happens here.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leisaac_tasks.units import lerobot_to_sim, sim_to_lerobot
from policies.vla.images import resize_images
from policies.vla.model import VLA
from policies.vla.runtime import resolve_device


class VLAPolicy:
    privileged = False

    def __init__(self, checkpoint: str | Path | None = None, n_action_steps: int = 8, device: str = "auto"):
        if checkpoint is None:
            raise ValueError("the vla policy needs a checkpoint folder: --policies vla:PATH (from training.finetune)")
        self.device = resolve_device(device)
        self.model = VLA.load(Path(checkpoint)).to(self.device).eval()
        self.name = f"vla:{Path(checkpoint).name}"
        self.cameras = self.model.cfg.cameras
        self.n_action_steps = min(n_action_steps, self.model.cfg.action_horizon)
        self.instruction = ""
        self._queue: deque[np.ndarray] = deque()
        self._generator = torch.Generator(device=self.device)

    def reset(self, instruction: str, seed: int) -> None:
        self.instruction = instruction
        self._queue.clear()
        self._generator.manual_seed(seed)  # the flow's starting noise: episodes replay exactly

    @property
    def done(self) -> bool:
        return False  # a learned policy never declares itself finished; the episode runs to max_steps

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if not self._queue:
            chunk = self.model.predict_chunk(self._batch(observation), self._generator)[0].cpu().numpy()
            self._queue.extend(lerobot_to_sim(chunk[: self.n_action_steps]))
        return self._queue.popleft()

    def _batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        size = self.model.cfg.image_size
        batch: dict[str, Any] = {cam: resize_images(observation[cam], size)[None].to(self.device) for cam in self.cameras}
        batch["state"] = torch.as_tensor(sim_to_lerobot(observation["state"]), dtype=torch.float32)[None].to(self.device)
        batch["task"] = [self.instruction]
        return batch
