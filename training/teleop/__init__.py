"""Human demonstrations in the sim: a keyboard or an SO-101 leader arm drives the follower, episodes go to a
LeRobot dataset. ``python -m training.teleop --help`` for the command line.

- ``session``: the device-neutral recording loop (start / success / failure / quit marks, live view).
- ``keyboard``: key input (pynput or a scripted stream) and end-effector control by IK.
- ``leader``: LeRobot's real ``SO101Leader`` teleoperator, its readings converted to sim radians.
"""
