"""LeRobot policies through the benchmark: a random ACT and Diffusion built from LeRobot configs, loaded back through
LeRobot's factory with their processors, and run in the MuJoCo env and the matrix."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from eval.run_matrix import MatrixConfig, main as run_matrix_main, run
from leisaac_tasks.dataset import Attempt, DemoWriter
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, sim_to_lerobot
from policies.lerobot_hub import LeRobotLoadError, resolve_hub_copy
from policies.lerobot_init import init_policy
from policies.lerobot_policy import LeRobotPolicy
from policies.registry import make_policy
from policies.vla.backbone import minilm_path

SIZE = 64
CHEESE = "pick up the yellow cheese and put it into the white plate"
BREAD = "pick up the bread and put it into the white plate"
TINY_ACT = {"dim_model": 64, "n_heads": 4, "dim_feedforward": 128, "n_encoder_layers": 1, "n_decoder_layers": 1,
            "n_vae_encoder_layers": 1, "latent_dim": 8, "chunk_size": 10, "n_action_steps": 10}
TINY_DIFFUSION = {"down_dims": (16, 32), "kernel_size": 3, "n_groups": 4, "diffusion_step_embed_dim": 16,
                  "spatial_softmax_num_keypoints": 8, "horizon": 8, "n_action_steps": 4, "n_obs_steps": 2,
                  "num_train_timesteps": 10, "num_inference_steps": 3}
HUB_TOKENIZER = "sentence-transformers/all-MiniLM-L6-v2"  # a Hub id; the test serves it from a local copy


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory) -> Path:
    return init_policy("act", tmp_path_factory.mktemp("lerobot") / "act", image_size=SIZE, overrides=TINY_ACT)


@pytest.fixture(scope="module")
def act(act_dir) -> LeRobotPolicy:
    return make_policy(f"lerobot:{act_dir}")


def rollout(env: SandwichEnv, policy: LeRobotPolicy, instruction: str, seed: int, steps: int,
            scene_seed: int | None = None) -> np.ndarray:
    """``steps`` actions of an episode seeded ``seed``; ``scene_seed`` lays out the scene with another seed, so
    that two policy seeds can be compared on identical observations."""
    obs, info = env.reset(seed=seed if scene_seed is None else scene_seed,
                          options={"scenario": "H,H", "instruction": instruction})
    policy.reset(instruction, seed)
    actions = []
    for _ in range(steps):
        actions.append(policy.act(obs, info))
        obs, _, _, _, info = env.step(actions[-1])
    return np.array(actions)


def record_calls(monkeypatch, obj, method: str) -> list:
    """Wrap a real method so each call's first argument is kept; the method still runs."""
    calls: list = []
    original = getattr(obj, method)

    def wrapper(batch, *args, **kwargs):
        calls.append(dict(batch))
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(obj, method, wrapper)
    return calls


def test_act_runs_through_the_matrix(act_dir, tmp_path):
    max_steps = 15
    cfg = MatrixConfig(policies=(f"lerobot:{act_dir}",), families=(), seeds=(0,), image_size=SIZE,
                       max_steps=max_steps, scenarios=(Scenario.parse("H,H"), Scenario.parse("-,H")),
                       out=tmp_path / "matrix")
    rows = list(csv.DictReader(open(run(cfg, progress=False))))
    assert len(rows) == len(cfg.episodes()) == 6
    for row in rows:
        assert row["error"] == "" and row["behaviour"] != "policy_error", row
        assert int(row["steps"]) == max_steps  # a learned policy never ends early


def test_act_is_a_language_blind_control_that_uses_its_own_action_queue(act, env, monkeypatch):
    assert act.abilities.language_blind and act.abilities.cameras == ("front", "wrist")
    chunks = record_calls(monkeypatch, act.model, "predict_action_chunk")
    actions = rollout(env, act, CHEESE, seed=0, steps=12)
    assert len(chunks) == 2  # chunk_size 10 = n_action_steps: steps 0 and 10 predict, the rest pop the queue
    assert np.all(actions >= JOINT_LOW) and np.all(actions <= JOINT_HIGH)
    assert np.ptp(actions, axis=0).max() > 0  # the chunk really moves the targets
    rollout(env, act, CHEESE, seed=0, steps=1)
    assert len(chunks) == 3  # reset emptied the half-used queue, so the new episode predicts at once


@pytest.fixture(scope="module")
def diffusion(tmp_path_factory) -> LeRobotPolicy:
    """A random-weight Diffusion policy (neutral statistics): it samples its denoising noise, unlike ACT."""
    ckpt = init_policy("diffusion", tmp_path_factory.mktemp("lerobot") / "dp", image_size=SIZE,
                       overrides=TINY_DIFFUSION)
    return make_policy(f"lerobot:{ckpt}")


def test_the_same_seed_replays_exactly_and_another_seed_does_not(diffusion, env):
    """Policy seed 3, then 4, then 3 again, on one scene (layout seed 0), each 6 steps (a chunk and a half, so a
    queue is left half-used): the repeat equals the first run action for action, and the other seed differs, on
    the first action already, so the difference is the policy's noise, not the scene. This needs reset to seed the
    noise from the episode seed and to empty the action queue and observation history."""
    first = rollout(env, diffusion, BREAD, seed=3, steps=6, scene_seed=0)
    other = rollout(env, diffusion, BREAD, seed=4, steps=6, scene_seed=0)
    again = rollout(env, diffusion, BREAD, seed=3, steps=6, scene_seed=0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0], other[0])  # the denoising noise really comes from the episode seed
    assert np.all(first >= JOINT_LOW) and np.all(first <= JOINT_HIGH)
    assert len({row.tobytes() for row in first}) > 1  # not one action clipped to the limits: a real comparison


def test_the_instruction_reaches_the_policy_as_task(act, env, monkeypatch):
    batches = record_calls(monkeypatch, act.model, "select_action")
    rollout(env, act, "do not pick up the cheese", seed=0, steps=2)
    for batch in batches:  # after LeRobot's preprocessor: normalised tensors plus the task text
        assert list(batch["task"]) == ["do not pick up the cheese"]
        assert batch["observation.images.front"].shape == (1, 3, SIZE, SIZE)
        assert batch["observation.state"].shape == (1, 6)


def test_a_tokenizing_preprocessor_turns_the_instruction_into_tokens(act_dir, env, tmp_path, monkeypatch):
    """A checkpoint whose preprocessor tokenizes the task by Hub id (as SmolVLA's and pi0's do) loads from a local
    copy given with ?models=, and the tokens change with the instruction."""
    ckpt = tmp_path / "act_tokens"
    ckpt.mkdir()
    for f in act_dir.iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    pre = json.loads((ckpt / "policy_preprocessor.json").read_text())
    pre["steps"].insert(2, {"registry_name": "tokenizer_processor",
                            "config": {"tokenizer_name": HUB_TOKENIZER, "max_length": 16, "padding": "max_length"}})
    (ckpt / "policy_preprocessor.json").write_text(json.dumps(pre))
    if resolve_hub_copy(HUB_TOKENIZER, None) is None:  # not cached here: a missing model is one clear error
        with pytest.raises(LeRobotLoadError, match=f"needs {HUB_TOKENIZER} \\(tokenizer\\).*hf download"):
            make_policy(f"lerobot:{ckpt}")
    models = tmp_path / "models"
    (models / HUB_TOKENIZER).parent.mkdir(parents=True)
    os.symlink(minilm_path(), models / HUB_TOKENIZER)
    policy = make_policy(f"lerobot:{ckpt}?models={models}&device=cpu")
    batches = record_calls(monkeypatch, policy.model, "select_action")
    rollout(env, policy, CHEESE, seed=0, steps=1)
    rollout(env, policy, BREAD, seed=0, steps=1)
    tokens = [b["observation.language.tokens"] for b in batches]
    assert tokens[0].shape == (1, 16) and not np.array_equal(tokens[0].numpy(), tokens[1].numpy())


def tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    with DemoWriter(root, (32, 32)) as writer:
        for e in range(2):
            for _ in range(6):
                obs = {cam: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for cam in ("front", "wrist")}
                writer.add_frame({**obs, "state": rng.uniform(JOINT_LOW, JOINT_HIGH)},
                                 rng.uniform(JOINT_LOW, JOINT_HIGH), CHEESE)
            writer.keep(Attempt(attempt=e, source="scripted", scenario="H,-", instruction=CHEESE,
                                intent="place cheese", layout_seed=e, success=True, outcome="cheese=on_plate",
                                frames=6))
    return root


def normaliser_state(ckpt: Path) -> dict[str, np.ndarray]:
    (state_file,) = ckpt.glob("policy_preprocessor_step_*_normalizer_processor.safetensors")
    return load_file(state_file)


def test_diffusion_from_a_dataset_normalises_with_its_stats_and_replays_by_seed(env, tmp_path):
    data = tiny_dataset(tmp_path / "demos")
    ckpt = init_policy("diffusion", tmp_path / "dp", image_size=SIZE, dataset=data, overrides=TINY_DIFFUSION)
    saved, stats = normaliser_state(ckpt), json.loads((data / "meta" / "stats.json").read_text())
    for key in ("observation.state", "action"):
        for stat in ("min", "max"):
            np.testing.assert_allclose(saved[f"{key}.{stat}"], stats[key][stat], rtol=1e-6)
    policy = make_policy(f"lerobot:{ckpt}")
    assert policy.abilities.language_blind
    first, again = (rollout(env, policy, CHEESE, seed=0, steps=5) for _ in range(2))
    other = rollout(env, policy, CHEESE, seed=1, steps=5, scene_seed=0)  # the same scene as seed 0's
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)  # the denoising noise really comes from the episode seed


def test_neutral_stats_span_the_joint_limits(act_dir):
    saved = normaliser_state(act_dir)
    np.testing.assert_allclose(saved["action.min"], sim_to_lerobot(JOINT_LOW), rtol=1e-6)
    np.testing.assert_allclose(saved["action.max"], sim_to_lerobot(JOINT_HIGH), rtol=1e-6)


def test_a_bad_path_is_one_clear_error_and_the_grid_does_not_start(tmp_path, capsys):
    with pytest.raises(LeRobotLoadError, match="no such folder"):
        make_policy(f"lerobot:{tmp_path / 'nope'}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(LeRobotLoadError, match="model.safetensors, policy_preprocessor.json"):
        make_policy(f"lerobot:{tmp_path / 'half'}")
    with pytest.raises(LeRobotLoadError, match="unknown option"):
        make_policy(f"lerobot:{tmp_path}?gpu=1")
    out = tmp_path / "matrix"
    assert run_matrix_main(["--policies", f"lerobot:{tmp_path / 'nope'}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: lerobot:") and not out.exists()


@pytest.mark.parametrize("policy_type, repo", [("smolvla", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"),
                                               ("pi0", "google/paligemma-3b-pt-224"),
                                               ("groot", "nvidia/GR00T-N1.7-3B")])  # LeRobot 0.6.1's groot default
def test_vla_types_without_their_hub_backbone_say_what_is_missing(policy_type, repo, tmp_path):
    if resolve_hub_copy(repo, None) is not None:
        pytest.skip(f"{repo} is in the Hugging Face cache here, so init would build the full model")
    with pytest.raises(LeRobotLoadError, match=f"lerobot init {policy_type} needs {repo} .*hf download {repo}"):
        init_policy(policy_type, tmp_path / policy_type, image_size=SIZE)
    assert not (tmp_path / policy_type).exists()


def test_a_smolvla_checkpoint_without_its_vlm_names_it_and_the_fix(tmp_path):
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    from policies.lerobot_init import env_features

    cfg = SmolVLAConfig(device="cpu")
    if resolve_hub_copy(cfg.vlm_model_name, None) is not None:
        pytest.skip(f"{cfg.vlm_model_name} is in the Hugging Face cache here")
    feats = env_features(SIZE)
    cfg.input_features = {k: f for k, f in feats.items() if k != "action"}
    cfg.output_features = {"action": feats["action"]}
    cfg._save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")  # never read: the missing VLM is found first
    # the tokenizer step as make_smolvla_pre_post_processors saves it
    steps = [{"registry_name": "tokenizer_processor", "config": {"tokenizer_name": cfg.vlm_model_name}}]
    (tmp_path / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": steps}))
    (tmp_path / "policy_postprocessor.json").write_text(json.dumps({"name": "policy_postprocessor", "steps": []}))
    with pytest.raises(LeRobotLoadError) as err:
        make_policy(f"lerobot:{tmp_path}")
    message = str(err.value)
    assert f"(smolvla) needs {cfg.vlm_model_name} (VLM backbone and processor, tokenizer)" in message
    assert f"lerobot:{tmp_path}?models=MODELS" in message and "\n" not in message
