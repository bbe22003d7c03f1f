"""Keyboard teleop: keys move the gripper in Cartesian space, IK turns that into joint targets.

Key map (LeIsaac's SO-101 letters, but every move is in the robot's base frame, as seen standing behind it;
the robot faces +x, so the front camera shows left/right mirrored):

    W / S   forward / back (+x / -x)        B     start recording
    A / D   left / right (+y / -y)          N     success: keep the episode, next layout
    Q / E   up / down                       R     failure: discard it, next layout
    J / L   turn the jaws left / right      Esc   quit
    Space   toggle the gripper; U / O open / close

A held key moves one step per control tick. The controlled point is the fixed jaw's inner face (the point the
scripted planner grasps with), kept jaws-down where the arm can. Pitch is not a key: the IK keeps the jaws as
vertical as the SO-101 allows.

Key input comes from a ``KeySource``: ``PynputKeySource`` reads the real keyboard (it needs a display, as
LeRobot's own keyboard teleop does); ``ScriptedKeySource`` replays (tick, key) taps for tests and demos.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np

from leisaac_tasks.kinematics import ARM_JOINTS, CLOSING_AXIS_LOCAL, SO101Kinematics
from leisaac_tasks.spec import RobotSpec
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW
from policies.motion import MotionConfig
from training.teleop.session import TeleopError

CONTROL_KEYS: dict[str, str] = {"b": "start", "n": "success", "r": "failure", "esc": "quit"}
MOVE_KEYS: dict[str, tuple[float, float, float]] = {
    "w": (1.0, 0.0, 0.0), "s": (-1.0, 0.0, 0.0),
    "a": (0.0, 1.0, 0.0), "d": (0.0, -1.0, 0.0),
    "q": (0.0, 0.0, 1.0), "e": (0.0, 0.0, -1.0),
}
YAW_KEYS: dict[str, float] = {"j": 1.0, "l": -1.0}
GRIPPER_KEYS: dict[str, str] = {"space": "toggle", "u": "open", "o": "close"}


# --- key input -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyState:
    pressed: tuple[str, ...] = ()  # keys that went down since the last poll, in order (for toggles and marks)
    held: frozenset[str] = frozenset()  # keys down right now (for continuous motion)


class KeySource(Protocol):
    def start(self) -> None: ...

    def poll(self) -> KeyState:
        """Called once per control tick."""

    def stop(self) -> None: ...


class PynputKeySource:
    """The real keyboard, through pynput's global listener (as LeRobot's KeyboardTeleop does).

    pynput's Linux backend talks to the X server, so without a display it cannot start: fail with a clear
    message instead of pynput's import error. Under Wayland only XWayland windows' keys are seen.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pressed: list[str] = []
        self._held: set[str] = set()
        self._listener = None

    @staticmethod
    def check() -> None:
        """Fail early, with the fix, where pynput can't work."""
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise TeleopError("the keyboard is read through the display and DISPLAY is not set: run this in a "
                              "desktop session, or over `ssh -X`")

    def start(self) -> None:
        self.check()
        try:
            from pynput import keyboard
        except Exception as exc:  # pynput raises ImportError with the X error folded into the message
            raise TeleopError(f"cannot read the keyboard through pynput: {exc}".splitlines()[0]) from exc
        self._listener = keyboard.Listener(on_press=self._on_press, on_release=self._on_release)
        self._listener.start()

    @staticmethod
    def _name(key: Any) -> str | None:
        char = getattr(key, "char", None)
        if char:
            return char.lower()
        return getattr(key, "name", None)  # Key.esc -> "esc", Key.space -> "space"

    def _on_press(self, key: Any) -> None:
        name = self._name(key)
        if name is None:
            return
        with self._lock:
            if name not in self._held:  # auto-repeat re-sends presses while a key is held: one edge only
                self._pressed.append(name)
            self._held.add(name)

    def _on_release(self, key: Any) -> None:
        name = self._name(key)
        with self._lock:
            self._held.discard(name)

    def poll(self) -> KeyState:
        with self._lock:
            state = KeyState(tuple(self._pressed), frozenset(self._held))
            self._pressed.clear()
        return state

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


class ScriptedKeySource:
    """Replays taps: ``(tick, key)`` means ``key`` went down and up during poll number ``tick`` (0-based).

    A tap moves one step, so holding a key for n ticks is n taps. After ``end_tick`` (default: the tick after
    the last tap) it presses Esc, so a script that runs out ends the session instead of waiting forever.
    """

    def __init__(self, taps: Iterable[tuple[int, str]], end_tick: int | None = None):
        self._taps: dict[int, list[str]] = {}
        for tick, key in taps:
            self._taps.setdefault(int(tick), []).append(key)
        self.end_tick = end_tick if end_tick is not None else max(self._taps, default=-1) + 1
        self.tick = 0

    def start(self) -> None:
        self.tick = 0

    def poll(self) -> KeyState:
        keys = ["esc"] if self.tick >= self.end_tick else self._taps.get(self.tick, [])
        self.tick += 1
        return KeyState(pressed=tuple(keys))

    def stop(self) -> None:
        pass


def read_key_script(path: Path) -> ScriptedKeySource:
    """A key script file: one tap per line, ``TICK KEY`` (e.g. ``0 b``, ``12 w``); blank lines and ``#`` comments
    are skipped. ``TICK`` counts control steps from the session's start; the script ends with Esc after its last
    tap. Keys are the ones the session reads: b, n, r, esc, w, a, s, d, q, e, j, l, u, o, space."""
    taps = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}, line {n}: {line!r} is not 'TICK KEY' (e.g. '12 w'); fix the line")
        taps.append((int(parts[0]), parts[1].lower()))
    return ScriptedKeySource(taps)


def control_events(state: KeyState) -> set[str]:
    return {CONTROL_KEYS[k] for k in state.pressed if k in CONTROL_KEYS}


# --- the device --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyboardConfig:
    pos_step: float = 0.004  # metres per tick while a move key is held (12 cm/s at 30 Hz)
    yaw_step: float = float(np.radians(3.0))  # radians per tick while J / L is held
    max_joint_speed: float = 1.2  # rad/s: eases the first jaws-down reorientation instead of snapping to it
    control_hz: float = 30.0
    gripper_open: float = MotionConfig.gripper_open  # same openings as the scripted demos
    gripper_closed: float = MotionConfig.gripper_closed


@dataclass
class _Pose:
    """What the operator commands: a point, the jaws' heading, the gripper, and the IK solution for them."""

    point: np.ndarray
    yaw: float
    gripper: float
    arm_goal: np.ndarray  # IK solution (5 joints), also the next solve's seed
    joints: np.ndarray = field(default_factory=lambda: np.zeros(6))  # rate-limited targets actually sent


class KeyboardTeleop:
    name = "keyboard"

    def __init__(self, config: KeyboardConfig = KeyboardConfig(), keys: KeySource | None = None,
                 robot: RobotSpec = RobotSpec()):
        self.cfg = config
        self.keys: KeySource = keys if keys is not None else PynputKeySource()
        self.kin = SO101Kinematics(robot)
        self._pose: _Pose | None = None
        self._state = KeyState()
        self.unreachable = 0  # key steps refused because the IK could not follow (the arm just stays)

    def connect(self) -> None:
        self.keys.start()

    def disconnect(self) -> None:
        self.keys.stop()

    def reset(self) -> None:
        self._pose = None

    def events(self) -> set[str]:
        self._state = self.keys.poll()  # command() acts on this same tick's keys
        return control_events(self._state)

    def command(self, q_current: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._pose is None:
            self._pose = self._pose_of(np.asarray(q_current, dtype=np.float64))
        pose, state = self._pose, self._state
        self._state = KeyState()  # each tick's keys act once
        active = set(state.pressed) | state.held  # a tap shorter than a tick still moves one step
        move = sum((np.array(MOVE_KEYS[k]) for k in active if k in MOVE_KEYS), np.zeros(3))
        turn = sum(YAW_KEYS[k] for k in active if k in YAW_KEYS)
        if move.any() or turn:
            self._step_to(pose, pose.point + move * self.cfg.pos_step, pose.yaw + turn * self.cfg.yaw_step)
        for key in state.pressed:
            action = GRIPPER_KEYS.get(key)
            if action == "toggle":
                midway = (self.cfg.gripper_open + self.cfg.gripper_closed) / 2
                pose.gripper = self.cfg.gripper_closed if pose.gripper > midway else self.cfg.gripper_open
            elif action is not None:
                pose.gripper = self.cfg.gripper_open if action == "open" else self.cfg.gripper_closed
        max_delta = self.cfg.max_joint_speed / self.cfg.control_hz
        pose.joints[:ARM_JOINTS] += np.clip(pose.arm_goal - pose.joints[:ARM_JOINTS], -max_delta, max_delta)
        pose.joints[ARM_JOINTS] = pose.gripper  # the gripper servo is slow enough on its own
        return np.clip(pose.joints, JOINT_LOW, JOINT_HIGH).astype(np.float64)

    # --- helpers ---------------------------------------------------------------------------------------
    def _pose_of(self, q: np.ndarray) -> _Pose:
        arm = q[:ARM_JOINTS].copy()
        _, rot = self.kin.link_pose(arm)
        closing = rot @ CLOSING_AXIS_LOCAL
        return _Pose(point=self.kin.point(arm), yaw=float(np.arctan2(closing[1], closing[0])), gripper=float(q[5]),
                     arm_goal=arm, joints=q.copy())

    def _step_to(self, pose: _Pose, point: np.ndarray, yaw: float) -> None:
        closing = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        result = self.kin.solve(point, closing, pose.arm_goal)
        if result.ok:
            pose.point, pose.yaw, pose.arm_goal = point, yaw, result.qpos
        else:
            self.unreachable += 1
