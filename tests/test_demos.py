"""Scripted demo generation end to end: recipes -> LeRobot v3 datasets -> read back, replay, necessity, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from leisaac_tasks.dataset import JOURNAL, DatasetError, load_dataset, read_journal
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.units import MOTOR_KEYS, lerobot_to_sim
from training.demos.generate import GenerateConfig, generate, main
from training.demos.necessity import report_for

SIZE = 32  # small images keep the CI run short; the pipeline is the same at 224


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("demos")
    generate(GenerateConfig(recipe="seed", out=out / "seed", episodes=10, image_size=SIZE), progress=False)
    generate(GenerateConfig(recipe="disambiguating", out=out / "dis", episodes=20, image_size=SIZE), progress=False)
    return {"cheese": out / "seed" / "cheese", "bread": out / "seed" / "bread",
            "disambiguating": out / "dis" / "disambiguating"}


def test_seed_and_disambiguating_each_give_20_readable_demos(generated):
    seed_total = 0
    for name, root in generated.items():
        ds = load_dataset(root)
        assert ds.meta.fps == 30 and ds.meta.robot_type == "so101_follower"
        assert ds.meta.features["action"]["names"] == list(MOTOR_KEYS)
        if name == "disambiguating":
            assert ds.meta.total_episodes >= 20
        else:
            seed_total += ds.meta.total_episodes
        batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
        for cam in ("front", "wrist"):
            assert batch[f"observation.images.{cam}"].shape == (8, 3, SIZE, SIZE)
            assert batch[f"observation.images.{cam}"].float().std() > 0  # real pixels, not a blank frame
        assert batch["observation.state"].shape == (8, 6) and batch["action"].shape == (8, 6)
        assert len(batch["task"]) == 8 and all(isinstance(t, str) and t for t in batch["task"])
    assert seed_total >= 20


def test_each_dataset_pairs_the_recipe_scenes_with_its_instructions(generated):
    cheese = read_journal(generated["cheese"])
    assert {a.scenario for a in cheese} == {"(H,–)"} and {a.intent for a in cheese} == {"place cheese"}
    dis = [a for a in read_journal(generated["disambiguating"]) if a.episode_index is not None]
    assert {a.scenario for a in dis} == {"(H,H)"}
    assert {a.intent: sum(b.intent == a.intent for b in dis) for a in dis} == {"place cheese": 10, "place bread": 10}
    assert all(a.behaviour == "picked_" + a.intent.split()[1] for a in dis)  # every kept demo did what it was told
    seeds = [a.layout_seed for a in read_journal(generated["disambiguating"])]
    assert len(set(seeds)) == len(seeds)  # a fresh layout per attempt


def test_states_are_in_lerobot_units(generated):
    ds = load_dataset(generated["cheese"])
    state = np.stack([ds.hf_dataset[i]["observation.state"].numpy() for i in range(0, len(ds), 25)])
    assert np.all(np.abs(state[:, :5]) <= 180.0)  # degrees, not radians or raw ticks
    assert np.all((state[:, 5] >= -1.0) & (state[:, 5] <= 101.0))  # gripper 0..100
    assert np.ptp(state[:, 5]) > 10  # the gripper opened and closed


@pytest.mark.parametrize("name", ["bread", "disambiguating"])
def test_replaying_recorded_actions_gives_the_recorded_outcome(generated, name):
    root = generated[name]
    attempt = [a for a in read_journal(root) if a.episode_index is not None][-1]
    ds = load_dataset(root)
    rows = ds.hf_dataset.filter(lambda r: r["episode_index"] == attempt.episode_index)
    actions = lerobot_to_sim(np.stack([r["action"].numpy() for r in rows]))
    assert len(actions) == attempt.frames
    env = SandwichEnv(cameras=(), image_size=SIZE)
    try:
        env.reset(seed=attempt.layout_seed, options={"scenario": attempt.scenario, "instruction": attempt.instruction})
        for a in actions:
            env.step(a)
        assert env.outcome().label == attempt.outcome
        assert "on_plate" in attempt.outcome
    finally:
        env.close()


def test_necessity_flags_seed_but_not_disambiguating(generated):
    assert report_for([generated["cheese"], generated["bread"]]).redundant
    assert not report_for([generated["disambiguating"]]).redundant


def test_resume_continues_where_it_stopped(tmp_path):
    cfg = GenerateConfig(recipe="negation", out=tmp_path / "neg", episodes=2, image_size=SIZE)
    generate(cfg, progress=False)
    generate(GenerateConfig(recipe="negation", out=tmp_path / "neg", episodes=3, image_size=SIZE, resume=True),
             progress=False)
    root = tmp_path / "neg" / "negation"
    journal = read_journal(root)
    assert [a.attempt for a in journal] == list(range(len(journal)))  # no attempt repeated or skipped
    assert load_dataset(root).meta.total_episodes == 3
    # the third demo is the third cell: "do not pick up the cheese, put the bread ... instead"
    third = [a for a in journal if a.episode_index == 2][0]
    assert third.intent == "place bread" and third.behaviour == "picked_bread"


def test_plain_negation_demo_is_a_short_hold(tmp_path):
    generate(GenerateConfig(recipe="negation", out=tmp_path / "neg", episodes=1, image_size=SIZE), progress=False)
    (first,) = read_journal(tmp_path / "neg" / "negation")
    assert first.instruction == "do not pick up the cheese" and first.behaviour == "none"
    assert first.frames < 60  # a finite refusal, not a robot that waits out the clock


# --- bad input ---------------------------------------------------------------------------------------------
def test_unknown_recipe_is_one_error_and_creates_nothing(tmp_path, capsys):
    assert main(["--recipe", "sandwhich", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'sandwhich'" in err and "disambiguating" in err
    assert not (tmp_path / "x").exists()


def test_existing_output_without_resume_is_refused_untouched(generated, capsys):
    out = generated["cheese"].parent
    before = sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert main(["--recipe", "seed", "--out", str(out), "--episodes", "1", "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*")) == before


def test_corrupted_parquet_is_reported_and_left_alone(generated, tmp_path, capsys):
    out = tmp_path / "seed"
    shutil.copytree(generated["cheese"].parent, out)
    victim = sorted((out / "cheese" / "data").rglob("*.parquet"))[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a run killed mid-write
    journal = (out / "cheese" / JOURNAL).read_text()
    with pytest.raises(DatasetError, match="corrupted"):
        load_dataset(out / "cheese")
    assert main(["--recipe", "seed", "--out", str(out), "--episodes", "12", "--resume", "--image-size", str(SIZE),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corrupted" in err and victim.name in err
    assert (out / "cheese" / JOURNAL).read_text() == journal  # nothing was appended


def test_a_discarded_longer_attempt_leaves_no_frames_in_the_next_video(tmp_path):
    """A rejected attempt's staged frames must not leak into the next kept episode (same episode index)."""
    from leisaac_tasks.dataset import Attempt, DemoWriter

    def record(writer: DemoWriter, frames: int, grey: int) -> None:
        for _ in range(frames):
            image = np.full((SIZE, SIZE, 3), grey, np.uint8)
            writer.add_frame({"front": image, "wrist": image, "state": np.zeros(6)}, np.zeros(6), "task")

    def attempt(k: int) -> Attempt:
        return Attempt(attempt=k, source="test", scenario="(H,H)", instruction="task", intent="none",
                       layout_seed=k, success=k == 1, outcome="", frames=0)

    with DemoWriter(tmp_path / "d", (SIZE, SIZE)) as writer:
        record(writer, 12, 40)
        writer.discard(attempt(0))
        record(writer, 5, 200)
        writer.keep(attempt(1))
    ds = load_dataset(tmp_path / "d")
    episode = ds.meta.episodes[0]
    for cam in ("front", "wrist"):
        span = episode[f"videos/observation.images.{cam}/to_timestamp"] - episode[f"videos/observation.images.{cam}/from_timestamp"]
        assert round(span * 30) == 5
    assert all(float(ds[i]["observation.images.front"].float().mean()) > 0.5 for i in range(5))  # no grey-40 frame


def test_a_slow_video_encoder_loses_no_frame(tmp_path, monkeypatch):
    """LeRobot's streaming encoder drops a frame when its queue stays full for 0.1 s (a loaded box; a vectorized
    run that writes a whole episode at once). A dropped frame shifts every later timestamp onto the wrong
    image, so the writer must never let the queue fill: here the encoder starts 1 s late."""
    import time

    from lerobot.datasets import video_utils

    from leisaac_tasks.dataset import Attempt, DemoWriter

    run = video_utils._CameraEncoderThread.run
    monkeypatch.setattr(video_utils._CameraEncoderThread, "run", lambda self: (time.sleep(1.0), run(self)))
    greys = [3 * k for k in range(80)]
    with DemoWriter(tmp_path / "d", (SIZE, SIZE)) as writer:
        for grey in greys:
            image = np.full((SIZE, SIZE, 3), grey, np.uint8)
            writer.add_frame({"front": image, "wrist": image, "state": np.zeros(6)}, np.zeros(6), "task")
        writer.keep(Attempt(attempt=0, source="test", scenario="(H,H)", instruction="task", intent="none",
                            layout_seed=0, success=True, outcome="", frames=0))
    ds = load_dataset(tmp_path / "d")
    decoded = [round(float(ds[i]["observation.images.wrist"].float().mean()) * 255) for i in range(len(greys))]
    assert len(ds) == len(greys) and max(abs(d - g) for d, g in zip(decoded, greys)) <= 1


def test_generating_never_probes_torchcodec(tmp_path, monkeypatch):
    """Without Debian's FFmpeg libraries, LeRobot's probe for torchcodec logs a 100-line traceback to the console
    before it falls back to PyAV. The writer names PyAV itself, so the probe never runs."""
    import lerobot.datasets.lerobot_dataset as lerobot_dataset

    def probe():
        raise AssertionError("LeRobot was left to probe torchcodec")

    monkeypatch.setattr(lerobot_dataset, "get_safe_default_video_backend", probe)
    generate(GenerateConfig(recipe="seed", out=tmp_path / "d", episodes=1, image_size=32), progress=False)
    assert (tmp_path / "d" / "cheese" / "meta" / "info.json").exists()
