import numpy as np
import pytest

from leisaac_tasks.kinematics import APPROACH_AXIS_LOCAL, CLOSING_AXIS_LOCAL, SO101Kinematics
from leisaac_tasks.perturbations import build_instructions, family_names, load_instruction_file
from leisaac_tasks.scenarios import scenario_set
from policies.instruction_parser import parse_instruction

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kin():
    return SO101Kinematics()


@pytest.mark.parametrize("target,closing", [((0.16, 0.12, 0.05), (1, 0, 0)), ((0.23, 0.11, 0.10), (-1, 0, 0)),
                                            ((0.21, -0.11, 0.07), (0, 1, 0))])
def test_ik_reaches_top_down_grasp_poses(kin, target, closing):
    res = kin.solve(np.array(target), np.array(closing, float), np.array([0, -1.6, 1.5, 1.0, 0]))
    assert res.ok
    pos, rot = kin.link_pose(res.qpos)
    assert np.linalg.norm(kin.point(res.qpos) - target) < 1e-3  # forward kinematics agrees
    assert (rot @ APPROACH_AXIS_LOCAL)[2] < -0.99  # jaws straight down
    assert np.dot(rot @ CLOSING_AXIS_LOCAL, closing) > 0.99


def test_ik_reports_unreachable_targets(kin):
    assert not kin.solve(np.array([0.6, 0.0, 0.05]), np.array([1.0, 0, 0]), np.zeros(5)).ok


def test_expert_reads_every_generated_instruction_as_meant():
    """The scripted expert is the language-following reference: it must understand every family we generate."""
    for scenario in scenario_set(include_extra=True):
        for ins in build_instructions(scenario, family_names()):
            assert parse_instruction(ins.text) == ins.intent, ins


def test_expert_reads_the_example_file():
    for ins in load_instruction_file(ROOT / "eval" / "instructions.example.yaml"):
        assert parse_instruction(ins.text) == ins.intent, ins
