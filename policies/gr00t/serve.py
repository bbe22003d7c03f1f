"""Serve one of our VLA checkpoints behind Isaac-GR00T's inference protocol.

    python -m policies.gr00t.serve --checkpoint runs/dis                      # N1.5, 127.0.0.1:5555
    python -m policies.gr00t.serve --checkpoint runs/dis --protocol n1.6 --host 0.0.0.0 --api-token SECRET

Any GR00T client then reaches the model: this repo's ``gr00t``/``gr00t16`` policies, Isaac-GR00T's
``ExternalRobotInferenceClient`` / ``PolicyClient``, or a real-robot script written for them (so100_dualcam keys).
``--port 0`` picks a free port; the ready line names it. ``--record-dir`` keeps every request as received.

Noise: chunk k of an episode with seed s uses the (k+1)-th draw of a generator seeded with s, named by the
request's options (see ``protocol.py``), so a chunk is a pure function of the request and matches the in-process
``vla:`` policy exactly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from policies.gr00t.client import TOKEN_ENV
from policies.gr00t.n15 import N15Protocol
from policies.gr00t.n16 import N16Protocol
from policies.gr00t.protocol import ACTION_DIM, CAMERAS, Gr00tProtocol, ModelInputs, NoiseKey
from policies.gr00t.server import InferenceServer

PROTOCOLS: dict[str, Gr00tProtocol] = {"n1.5": N15Protocol(), "n1.6": N16Protocol()}


class VLAChunks:
    """ModelInputs -> (B, horizon, 6) float32 absolute targets in LeRobot units, from a VLA checkpoint."""

    def __init__(self, checkpoint: Path, device: str = "auto"):
        from policies.vla.model import VLA
        from policies.vla.runtime import resolve_device

        self.device = resolve_device(device)
        self.model = VLA.load(Path(checkpoint)).to(self.device).eval()
        cfg = self.model.cfg
        if set(cfg.cameras) - set(CAMERAS) or cfg.action_dim != ACTION_DIM or cfg.state_dim != ACTION_DIM:
            raise ValueError(f"{checkpoint} reads cameras {cfg.cameras} with {cfg.state_dim}-d state and "
                             f"{cfg.action_dim}-d actions; GR00T's so100_dualcam layout carries cameras "
                             f"{', '.join(CAMERAS)} and 6 joints, so it cannot be served")

    @property
    def action_horizon(self) -> int:
        return self.model.cfg.action_horizon

    def __call__(self, inputs: ModelInputs) -> np.ndarray:
        from policies.vla.policy import model_batch

        batch = model_batch(self.model, inputs.frames, inputs.state, inputs.instructions, self.device)
        generator = self.noise_generator(inputs.noise, len(inputs.state))
        return self.model.predict_chunk(batch, generator).float().cpu().numpy()

    def noise_generator(self, key: NoiseKey, batch_size: int) -> torch.Generator:
        """A generator in the state VLAPolicy's is in before chunk ``key.chunk`` of an episode seeded ``key.seed``.

        The action head draws one (B, horizon, action_dim) normal tensor per chunk and nothing else, so replaying
        ``key.chunk`` such draws reproduces the in-process stream (tests/test_gr00t.py pins the equivalence).
        """
        cfg = self.model.cfg
        generator = torch.Generator(device=self.device).manual_seed(key.seed)
        for _ in range(key.chunk):
            torch.randn((batch_size, cfg.action_horizon, cfg.action_dim), generator=generator, device=self.device)
        return generator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a VLA checkpoint folder (python -m training.finetune)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on; 0.0.0.0 (or *) accepts other machines (default: this one only)")
    p.add_argument("--port", type=int, default=5555, help="TCP port (upstream default 5555); 0 picks a free one")
    p.add_argument("--api-token", default=os.environ.get(TOKEN_ENV),
                   help=f"require this token in every request (default: ${TOKEN_ENV}, else none)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="n1.5",
                   help="n1.5: flat video.*/state.* keys (gr00t/eval/service.py); "
                        "n1.6: nested observation (gr00t/policy/server_client.py)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--record-dir", type=Path, help="write every request, as received, to DIR/<time ns>-<n>.msgpack")
    a = p.parse_args(argv)
    if not 0 <= a.port < 65536:
        p.error(f"--port {a.port} is out of range; use 1-65535, or 0 for a free port")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        chunks = VLAChunks(args.checkpoint, args.device)
        server = InferenceServer(chunks, PROTOCOLS[args.protocol], chunks.action_horizon, host=args.host,
                                 port=args.port, api_token=args.api_token, record_dir=args.record_dir)
    except ValueError as exc:  # a bad checkpoint, device or port: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
