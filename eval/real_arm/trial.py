"""One trial: the policy drives the arm for a fixed time at the control rate, every target through the safety filter.

Each step: read the arm (joints in its LeRobot units + camera frames), convert to the Policy protocol (radians,
images; the sim's privileged info on the simulated arm only), act, filter, convert back, send, record the frame.
The run ends after ``max_steps`` steps, or ``SETTLE_STEPS`` after the policy says it is done.

How a run can end, and what the arm does then:
- ``finished``: the arm goes back to its rest pose, hand unchanged (a held slice stays held), torque on;
- ``policy_error`` (the policy raised), ``robot_error`` (reading or commanding the arm failed: a lost serial link,
  a camera gone) and ``interrupted`` (Ctrl-C): rest pose, then torque off (``safety.safe_stop``).
Any other exception (a bug here) also gets the safe stop, then propagates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from eval.real_arm.recording import TrialRecorder
from eval.real_arm.robot import CAMERAS, JointUnits, is_simulated
from eval.real_arm.safety import RateClock, SafetyConfig, SafetyFilter, SafetyLog, move_to_rest, safe_stop
from eval.runner import SETTLE_STEPS, Episode, error_text
from leisaac_tasks.episode import EpisodeClock
from policies.base import Policy

DETECT_FRAME_EVERY = 10  # front frames handed to the outcome detector: 3 per second at 30 Hz


class RobotFault(Exception):
    """Reading or commanding the arm failed; ``__cause__`` is LeRobot's (or pyserial's) exception."""


class PolicyFault(Exception):
    """The policy raised while acting; ``__cause__`` is its exception."""


def _robot(call, *args):
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001  KeyboardInterrupt is not an Exception: it passes through
        raise RobotFault(error_text(exc)) from exc


@dataclass
class TrialRun:
    status: str  # finished | policy_error | robot_error | interrupted
    steps: int = 0
    error: str = ""
    seconds: float = 0.0  # of robot time: sim time on the simulated arm, elapsed time on the real one
    wall_seconds: float = 0.0
    safety: SafetyLog = field(default_factory=SafetyLog)
    before: np.ndarray | None = None  # front camera at the start, arm at rest
    after: np.ndarray | None = None  # front camera at the end, arm back at rest
    frames: list[np.ndarray] = field(default_factory=list)  # front camera during the run, for the detector

    @property
    def error_behaviour(self) -> str | None:
        return {"policy_error": "policy_error", "robot_error": "robot_error"}.get(self.status)


def prepare_arm(robot, units: JointUnits, cfg: SafetyConfig, clock: RateClock, log: SafetyLog) -> None:
    """Before a run: torque on (it may be off after a safe stop), then the rest pose, which is where every sim
    episode starts. The simulated arm is already there: ``stage`` put it there."""
    from eval.real_arm.robot import torque_on

    simulated = is_simulated(robot)
    if not simulated or not robot.bus.torque_enabled:
        torque_on(robot)
    if not simulated and not move_to_rest(robot, units, cfg, clock, log):
        log.event("start_pose_not_reached")


def run_trial(robot, units: JointUnits, policy: Policy, episode: Episode, safety: SafetyFilter,
              clock: RateClock, recorder: TrialRecorder | None, max_steps: int, slow: bool) -> TrialRun:
    run = TrialRun(status="finished")
    log, cfg = run.safety, safety.cfg
    instruction = episode.instruction.text
    simulated = is_simulated(robot)
    wall0 = time.perf_counter()
    sim0 = robot.sim_time() if simulated else 0.0
    episode_clock = EpisodeClock(max_steps, SETTLE_STEPS)  # the sim grid's end rule; counts the actions sent
    try:
        obs = _robot(robot.get_observation)
        run.before = np.array(obs["front"])
        try:  # a remote policy's reset can reach a server that is down: that is this trial's policy_error
            policy.reset(instruction, episode.seed)
        except Exception as exc:  # noqa: BLE001
            raise PolicyFault(error_text(exc)) from exc
        safety.reset()
        clock.start()
        while episode_clock.running:
            q = units.observation_to_sim(obs)
            seen = {"state": q.astype(np.float32), **{cam: obs[cam] for cam in CAMERAS}}
            info = robot.privileged_info() if simulated else {"task_description": instruction}
            try:
                target = policy.act(seen, info)
            except Exception as exc:  # noqa: BLE001  the grid goes on; the row says what broke
                raise PolicyFault(error_text(exc)) from exc
            safe = safety.filter(np.asarray(target, dtype=np.float64), q, episode_clock.steps, log, slow)
            sent = _robot(robot.send_action, units.action(safe))
            if recorder is not None:
                recorder.frame(seen, units.observation_to_sim(sent), instruction)
            episode_clock.tick(policy.done)
            clock.tick()
            obs = _robot(robot.get_observation)
            if episode_clock.steps % DETECT_FRAME_EVERY == 0:
                run.frames.append(np.array(obs["front"]))
    except KeyboardInterrupt:
        run.status = "interrupted"
        log.event("interrupted", step=episode_clock.steps)
    except RobotFault as fault:
        run.status, run.error = "robot_error", str(fault)
        lost = isinstance(fault.__cause__, OSError)  # ConnectionError and serial.SerialException both are
        log.event("serial_lost" if lost else "robot_fault", step=episode_clock.steps, error=str(fault)[:200])
    except PolicyFault as fault:
        run.status, run.error = "policy_error", str(fault)
        log.event("policy_error", step=episode_clock.steps, error=str(fault)[:200])
    except BaseException:
        safe_stop(robot, units, cfg, clock, log, reason="unexpected error")
        raise
    run.steps = episode_clock.steps
    run.seconds = round((robot.sim_time() - sim0) if simulated else time.perf_counter() - wall0, 3)

    if run.status == "finished":
        try:
            if not move_to_rest(robot, units, cfg, clock, log, gripper=False):
                log.event("end_pose_not_reached")
        except KeyboardInterrupt:
            run.status = "interrupted"
            log.event("interrupted", step=run.steps)
        except Exception as exc:  # noqa: BLE001
            run.status, run.error = "robot_error", error_text(exc)
            log.event("serial_lost" if isinstance(exc, OSError) else "robot_fault", step=run.steps,
                      error=run.error[:200])
    if run.status != "finished":
        safe_stop(robot, units, cfg, clock, log, reason=run.status)
    if run.status != "robot_error":
        try:
            run.after = np.array(robot.get_observation()["front"])
        except Exception as exc:  # noqa: BLE001
            log.event("after_frame_failed", error=error_text(exc)[:200])
    run.wall_seconds = round(time.perf_counter() - wall0, 3)
    return run
