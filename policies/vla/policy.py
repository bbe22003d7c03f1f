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
from policies.base import Abilities
from policies.vla.images import resize_images
from policies.vla.model import VLA
from policies.vla.runtime import resolve_device


class VLAPolicy:

    @classmethod
    def from_spec(cls, arg: str, **kwargs: Any) -> "VLAPolicy":
        """``vla:PATH``, or with options: ``?compile=1`` compiles inference (worth it for long grids on a GPU),
        ``?bf16=1`` runs it under bf16 autocast, ``?device=cuda`` picks the device; e.g. ``vla:PATH?compile=1&bf16=1``."""
        path, _, query = arg.partition("?")
        options = dict(item.partition("=")[::2] for item in query.split("&") if item)
        unknown = set(options) - {"compile", "device", "bf16"}
        if unknown:
            raise ValueError(f"vla:{arg}: unknown option(s) {', '.join(sorted(unknown))}; use compile=1, bf16=1 or "
                             f"device=cuda")
        if "device" in options:
            kwargs["device"] = options["device"]
        on = lambda key: options.get(key, "0") not in ("0", "false", "")  # noqa: E731
        return cls(path or None, compile=on("compile"), bf16=on("bf16"), **kwargs)

    def __init__(self, checkpoint: str | Path | None = None, n_action_steps: int = 8, device: str = "auto",
                 compile: bool = False, bf16: bool = False):
        if checkpoint is None:
            raise ValueError("the vla policy needs a checkpoint folder: --policies vla:PATH (from training.finetune)")
        self.device = resolve_device(device)
        self.model = VLA.load(Path(checkpoint)).to(self.device).eval()
        self.model.bf16_inference = bf16
        if compile:
            self.model.compile_inference()
        self.name = f"vla:{Path(checkpoint).name}"
        self.abilities = Abilities(cameras=self.model.cfg.cameras, batched=True, white_box=True)
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

    # --- many episodes at once (eval/vector_runner.py): per-env queues and noise, one forward pass ----------
    def reset_slot(self, slot: int, instruction: str, seed: int) -> None:
        if not hasattr(self, "_slots"):
            self._slots: dict[int, tuple[str, deque[np.ndarray], torch.Generator]] = {}
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)  # the same noise stream as reset(instruction, seed) + act()
        self._slots[slot] = (instruction, deque(), generator)

    def slot_done(self, slot: int) -> bool:
        return False

    def slot_needs_observation(self, slot: int) -> bool:
        """True when this env's action queue is empty: its next action needs a new chunk, hence a picture."""
        return not self._slots[slot][1]

    def act_batch(self, slots: list[int], observations: dict[str, np.ndarray]) -> np.ndarray:
        """Joint targets (len(slots), 6) for these envs. ``observations`` are stacked for the slots that need one
        (``slot_needs_observation``), in slot order; the others act from their queues."""
        need = [k for k, s in enumerate(slots) if not self._slots[s][1]]
        if need:
            batch = model_batch(self.model, {cam: observations[cam] for cam in self.abilities.cameras},
                                sim_to_lerobot(observations["state"]),
                                [self._slots[slots[k]][0] for k in need], self.device)
            # Each env draws its flow noise from its own generator, as a single episode would.
            cfg = self.model.cfg
            noise = torch.cat([torch.randn((1, cfg.action_horizon, cfg.action_dim), generator=self._slots[slots[k]][2],
                                           device=self.device) for k in need])
            chunks = self.model.predict_chunk(batch, noise=noise).cpu().numpy()
            for k, chunk in zip(need, chunks):
                self._slots[slots[k]][1].extend(lerobot_to_sim(chunk[: self.n_action_steps]))
        return np.stack([self._slots[s][1].popleft() for s in slots])

    def _batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        return model_batch(self.model, {cam: observation[cam][None] for cam in self.abilities.cameras},
                           sim_to_lerobot(observation["state"])[None], [self.instruction], self.device)


def model_batch(model: VLA, frames: dict[str, np.ndarray], state: np.ndarray, tasks: list[str],
                device: torch.device | str) -> dict[str, Any]:
    """The model's input batch from uint8 frames (B, H, W, 3) per camera, state (B, 6) in LeRobot units and one
    instruction per row; shared by in-process acting, batched acting and ``policies.gr00t.serve``."""
    batch: dict[str, Any] = {cam: resize_images(frames[cam], model.cfg.image_size).to(device)
                             for cam in model.cfg.cameras}
    batch["state"] = torch.as_tensor(np.asarray(state), dtype=torch.float32).to(device)
    batch["task"] = list(tasks)
    return batch
