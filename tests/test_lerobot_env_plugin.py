"""The sandwich task as a LeRobot env plugin: discovered by LeRobot's own plugin loader, scored by the oracle,
in LeRobot's units, and run end to end by the real ``lerobot-eval`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leisaac_tasks.units import sim_to_lerobot
from policies.registry import make_policy

CHEESE = "pick up the yellow cheese and put it into the white plate"


def test_lerobots_plugin_discovery_registers_the_chefmate_env():
    from lerobot.envs.configs import EnvConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()  # imports every installed lerobot_env_* distribution, as lerobot-eval does
    cfg = EnvConfig.get_choice_class("chefmate")(scenario="H,-", family="negation")
    assert cfg.gym_id == "lerobot_env_chefmate/Sandwich-v0"
    assert set(cfg.features_map.values()) == {"action", "observation.state", "observation.images.front",
                                              "observation.images.wrist"}


def _expert_episode(env, steps: int) -> tuple[bool, float]:
    """Drive the LeRobot-facing env with the scripted expert told to place the cheese, converting its radians
    to LeRobot units."""
    expert = make_policy("expert")
    obs, info = env.reset(seed=0)
    expert.reset(CHEESE, 0)
    inner = env.unwrapped._sim
    sim_obs, sim_info = inner.observe(), inner.privileged_info()
    done, reward = False, 0.0
    for _ in range(steps):
        action = sim_to_lerobot(expert.act(sim_obs, sim_info)).astype(np.float32)
        obs, reward, done, truncated, info = env.step(action)
        assert obs["agent_pos"].shape == (6,) and obs["pixels"]["front"].dtype == np.uint8
        sim_obs, sim_info = inner.observe(), inner.privileged_info()
        if done or truncated:
            break
    return bool(info["is_success"]), reward


@pytest.mark.parametrize("instruction, success", [(CHEESE, True), ("do not pick up the cheese", False)])
def test_the_oracle_scores_the_episode_in_lerobot_units(instruction, success):
    import gymnasium as gym

    import lerobot_env_chefmate  # noqa: F401

    # The expert places the cheese whatever this env's instruction says, since it is told the cheese one:
    # the env's oracle must credit it only under the cheese instruction.
    env = gym.make("lerobot_env_chefmate/Sandwich-v0", scenario="H,-", image_size=32, episode_length=300,
                   instruction=instruction, max_episode_steps=300)
    try:
        assert env.unwrapped.task_description == instruction  # what lerobot-eval hands the policy as its task
        got, reward = _expert_episode(env, 300)
    finally:
        env.close()
    assert got is success and reward == float(success)


@pytest.mark.parametrize("family, text", [
    ("contrast", "not the bread — put the cheese on the white plate"),
    ("attribute", "pick up the yellow slice and put it into the white plate"),
])
def test_the_harder_families_through_the_plugin(family, text):
    """lerobot-eval ... --env.family=contrast --env.variant=0: the family's first instruction for the scene, in
    chefmate-matrix --list-instructions' order, is what the policy reads."""
    from lerobot_env_chefmate.env import LeRobotSandwichEnv

    env = LeRobotSandwichEnv(scenario="H,H", family=family, variant=0, image_size=32)
    try:
        assert env.task_description == text and env.instruction.family == family
    finally:
        env.close()


def test_an_unscorable_instruction_is_one_clear_error():
    from lerobot_env_chefmate.env import LeRobotSandwichEnv

    with pytest.raises(ValueError, match="not one the benchmark can score"):
        LeRobotSandwichEnv(instruction="make me a sandwich", image_size=32)
    with pytest.raises(ValueError, match="out of range"):
        LeRobotSandwichEnv(family="negation", variant=99, image_size=32)


def test_lerobot_eval_runs_an_act_policy_on_the_task(tmp_path):
    """The README's command, with the two episodes cut short. ``pretrained_backbone_weights=null``: ACT's
    default ImageNet ResNet-18 comes from the internet, which this machine can't reach."""
    out = tmp_path / "eval"
    exe = Path(sys.executable).parent / "lerobot-eval"
    proc = subprocess.run([str(exe), "--policy.type=act", "--policy.pretrained_backbone_weights=null",
                           "--env.type=chefmate", "--env.episode_length=15", "--env.image_size=32",
                           "--eval.n_episodes=2", "--eval.batch_size=1", "--policy.device=cpu",
                           f"--output_dir={out}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    assert info["per_task"][0]["metrics"]["successes"] == [False, False]  # an untrained ACT does nothing useful


def test_lerobot_train_evaluates_on_the_task_while_training(tmp_path):
    """``lerobot-train --env.type=chefmate`` on a demo dataset of ours: two ACT steps, then LeRobot's own
    evaluation on the task at step 2 writes its per-task success (an untrained ACT fails)."""
    from training.demos.generate import GenerateConfig, generate

    generate(GenerateConfig(recipe="seed", out=tmp_path / "demos", episodes=1, image_size=32), progress=False)
    out = tmp_path / "train"
    exe = Path(sys.executable).parent / "lerobot-train"
    root = tmp_path / "demos" / "cheese"
    proc = subprocess.run([str(exe), "--dataset.repo_id=local/cheese", f"--dataset.root={root}",
                           "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
                           "--policy.pretrained_backbone_weights=null", "--env.type=chefmate", "--env.image_size=32",
                           "--env.episode_length=10", "--steps=2", "--env_eval_freq=2", "--eval.n_episodes=1",
                           "--eval.batch_size=1", "--batch_size=2", "--save_checkpoint=false", "--num_workers=0",
                           "--wandb.enable=false", f"--output_dir={out}"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Suite overall aggregated" in log and "'n_episodes': 1" in log
    assert (out / "eval" / "videos_step_000002").is_dir()
