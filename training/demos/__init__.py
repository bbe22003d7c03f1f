"""Demonstrations: recipes, scripted generation, teleop recording, LeRobot datasets and their analysis."""
