"""Reference pictures: the simulator's view of a cell, so the operator lays out the real table the same way.

The layout is the one the sim benchmark uses for that (scenario, seed), jitter included, seen from the front
camera with the arm at its start pose. Pictures are cached by cell in ``OUT/reference/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leisaac_tasks.scenarios import Scenario


class ReferencePictures:
    def __init__(self, out_dir: Path, size: int = 480, backend: str = "mujoco"):
        self.dir = Path(out_dir)
        self.size = size
        self.backend = backend
        self._env = None  # built on first use: a resumed session may have nothing left to show

    def path(self, scenario: Scenario, seed: int) -> Path:
        return self.dir / f"cell_{scenario.key}_seed{seed}.png"

    def picture(self, scenario: Scenario, seed: int) -> tuple[Path, np.ndarray]:
        import cv2

        path = self.path(scenario, seed)
        if path.exists():
            return path, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        if self._env is None:
            from leisaac_tasks.env import SandwichEnv

            self._env = SandwichEnv(backend=self.backend, cameras=("front",), image_size=self.size)
        obs, _ = self._env.reset(seed=int(seed), options={"scenario": scenario})
        image = np.ascontiguousarray(obs["front"])
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        scale = max(0.3, self.size / 640)
        cv2.putText(bgr, f"cheese,bread = {scenario.key}  seed {seed}", (8, int(24 * scale) + 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), max(1, int(2 * scale)), cv2.LINE_AA)
        self.dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), bgr)
        return path, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
