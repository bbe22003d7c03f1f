"""The teleop recording loop, the same for every input device.

Per layout seed: reset the scene and hold the arm still until the operator starts (nothing is recorded), then
record one frame per control step (the observation *before* the step and the action sent) until the operator
marks the episode a success (kept) or a failure (discarded), or it runs out of steps (discarded). Then the next
seed. Quitting drops an unfinished episode without logging it, so a resumed run offers that layout again.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from leisaac_tasks import oracle
from leisaac_tasks.dataset import Attempt, DemoWriter
from leisaac_tasks.env import CHEESE_INSTRUCTION, SandwichEnv
from policies.instruction_parser import parse_instruction

EVENTS = frozenset({"start", "success", "failure", "quit"})


class TeleopError(RuntimeError):
    """A device can't be used as asked (no display, wrong port, ...); the message says what to do."""


@runtime_checkable
class TeleopDevice(Protocol):
    """Something a person drives the sim arm with. The session calls, per control step, ``events()`` once and
    then (while recording) ``command()`` once, so a device may act in ``command`` on input it read in ``events``.
    """

    name: str  # recorded as the demo's source, e.g. "keyboard" or "leader"

    def connect(self) -> None: ...

    def reset(self) -> None:
        """A new episode begins: forget any commanded pose; the next ``command`` starts from the robot's joints."""

    def events(self) -> set[str]:
        """Control marks pending since the last call, a subset of ``EVENTS``."""

    def command(self, q_current: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Six joint position targets (radians) for the next step, given the measured joints (radians)."""

    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class SessionConfig:
    scenario: str = "H,H"
    instruction: str = CHEESE_INSTRUCTION
    seeds: Sequence[int] = (0,)  # one layout per attempt, in this order
    episodes: int | None = None  # stop after this many kept demos (None: when the seeds run out)
    max_steps: int = 900  # 30 s of sim time; a longer attempt is discarded
    fps: float = 30.0  # real-time pacing of the loop; the sim always advances 1/control_hz per step
    realtime: bool = True  # tests switch pacing off
    show: bool = True  # live camera view, when a display exists


@dataclass
class SessionResult:
    attempts: list[Attempt]
    quit: bool  # ended by the operator rather than by running out of seeds / reaching ``episodes``

    @property
    def kept(self) -> list[Attempt]:
        return [a for a in self.attempts if a.episode_index is not None]


class TeleopSession:
    def __init__(self, env: SandwichEnv, device: TeleopDevice, writer: DemoWriter, config: SessionConfig,
                 log: Callable[[str], None] = print):
        self.env, self.device, self.writer, self.cfg = env, device, writer, config
        self.log = log
        self.intent = parse_instruction(config.instruction)
        self.view = LiveView(enabled=config.show)

    def run(self) -> SessionResult:
        """Connect the device, record until the seeds or ``episodes`` run out or the operator quits."""
        attempts: list[Attempt] = []
        try:
            self.device.connect()
            for seed in self.cfg.seeds:
                attempt = self._episode(int(seed))
                if attempt is None:
                    return SessionResult(attempts, quit=True)
                attempts.append(attempt)
                if self.cfg.episodes is not None and sum(a.success for a in attempts) >= self.cfg.episodes:
                    break
            return SessionResult(attempts, quit=False)
        except KeyboardInterrupt:  # Ctrl+C: like quit; the caller's DemoWriter still finalizes what was kept
            self.log("interrupted; the unfinished episode is dropped")
            return SessionResult(attempts, quit=True)
        finally:
            self.device.disconnect()
            self.view.close()

    # --- one episode -----------------------------------------------------------------------------------
    def _episode(self, seed: int) -> Attempt | None:
        """Record one attempt on layout ``seed``; returns it kept or discarded, or None if the operator quit."""
        cfg = self.cfg
        obs, info = self.env.reset(seed=seed, options={"scenario": cfg.scenario, "instruction": cfg.instruction})
        self.device.reset()
        hold = obs["state"].astype(np.float64)  # before start the arm keeps its reset pose
        recording, steps = False, 0
        self.log(f"seed {seed}: press B to start recording (N success, R failure, Esc quit)")
        period, next_tick = 1.0 / cfg.fps, time.perf_counter()
        while True:
            events = self.device.events()
            if "quit" in events:
                return None
            if "failure" in events:
                return self._finish(seed, steps, success=False, ended="failure_mark")
            if "success" in events:
                if recording:
                    return self._finish(seed, steps, success=True, ended="success_mark")
                self.log("nothing recorded yet: press B first")
            if "start" in events and not recording:
                recording = True
                self.log("recording")
            if recording:
                action = np.asarray(self.device.command(obs["state"].astype(np.float64), info), dtype=np.float64)
                self.writer.add_frame(obs, action, cfg.instruction)
                steps += 1
            else:
                action = hold
            obs, _, _, _, info = self.env.step(action)
            self.view.show(obs, f"seed {seed}  {'REC' if recording else 'B: start'}  step {steps}")
            if recording and steps >= cfg.max_steps:
                self.log(f"{cfg.max_steps} steps without a success mark")
                return self._finish(seed, steps, success=False, ended="max_steps")
            if cfg.realtime:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.perf_counter()))
                next_tick = max(next_tick, time.perf_counter() - period)  # after a stall, don't race to catch up

    def _finish(self, seed: int, steps: int, success: bool, ended: str) -> Attempt:
        outcome = self.env.outcome()
        oracle_ok = oracle.judge(oracle.expected(self.env.scenario, self.intent), outcome)
        attempt = Attempt(attempt=self.writer.next_attempt, source=self.device.name, scenario=self.env.scenario.label,
                          instruction=self.cfg.instruction, intent=str(self.intent), layout_seed=seed,
                          success=success, outcome=outcome.label, behaviour=outcome.behaviour, frames=steps,
                          extra={"ended": ended, "oracle_agrees": oracle_ok})
        if success and steps:
            self.writer.keep(attempt)
            note = "" if oracle_ok else " (the oracle disagrees: check it)"
            self.log(f"kept episode {attempt.episode_index}: {outcome.label}{note}")
        else:
            attempt.success = False  # nothing recorded can't be a demo
            self.writer.discard(attempt)
            self.log(f"discarded ({ended}): {outcome.label}")
        return attempt


class LiveView:
    """The cameras in a window when there is a display; silently nothing otherwise.

    OpenCV here is the headless build (``imshow`` raises), so fall back to matplotlib with a GUI backend.
    """

    def __init__(self, enabled: bool = True, scale_to: int = 320):
        self.scale_to = scale_to
        self._backend: str | None = None
        self._fig = self._img = None
        if enabled and _has_display():
            self._backend = self._open()

    def _open(self) -> str | None:
        try:
            import cv2

            cv2.namedWindow("chefmate teleop", cv2.WINDOW_AUTOSIZE)
            return "cv2"
        except Exception:
            pass
        try:
            import matplotlib.pyplot as plt

            plt.switch_backend("TkAgg")
            plt.ion()
            self._fig = plt.figure("chefmate teleop")
            return "mpl"
        except Exception:
            return None

    def show(self, obs: dict[str, np.ndarray], status: str) -> None:
        if self._backend is None:
            return
        frames = [obs[k] for k in ("front", "wrist") if k in obs]
        if not frames:
            return
        try:
            image = self._compose(frames)
            if self._backend == "cv2":
                import cv2

                bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                cv2.putText(bgr, status, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
                cv2.imshow("chefmate teleop", bgr)
                cv2.waitKey(1)
            else:
                import matplotlib.pyplot as plt

                if self._img is None:
                    self._img = self._fig.gca().imshow(image)
                    self._fig.gca().axis("off")
                else:
                    self._img.set_data(image)
                self._fig.gca().set_title(status)
                plt.pause(0.001)
        except Exception:  # a window closed or a backend broke mid-session: stop showing, keep recording
            self._backend = None

    def _compose(self, frames: list[np.ndarray]) -> np.ndarray:
        import cv2

        h = max(f.shape[0] for f in frames)
        row = np.concatenate([cv2.resize(f, (f.shape[1] * h // f.shape[0], h)) for f in frames], axis=1)
        scale = max(1.0, self.scale_to / h)
        return cv2.resize(row, (int(row.shape[1] * scale), int(row.shape[0] * scale)),
                          interpolation=cv2.INTER_NEAREST)

    def close(self) -> None:
        try:
            if self._backend == "cv2":
                import cv2

                cv2.destroyAllWindows()
            elif self._backend == "mpl":
                import matplotlib.pyplot as plt

                plt.close(self._fig)
        except Exception:
            pass
        self._backend = None


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # macOS / Windows always have a window system
