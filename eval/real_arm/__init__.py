"""The benchmark's grid on an SO-ARM 101 through LeRobot: operator-guided trials, safety on by default, and a
simulated SO-101 behind LeRobot's Robot interface so the whole path runs in CI.

``SimSO101`` is exported here because LeRobot's ``make_robot_from_config`` looks for the robot class next to
its config's package.
"""

from eval.real_arm.sim_robot import SimSO101, SimSO101Config

__all__ = ["SimSO101", "SimSO101Config"]
