"""chefmate-diagnose: counterfactual actions tell a language follower from a blind policy, and the seed's
setting (cheese-only + bread-only data, N1.5 action-head LoRA) is called out end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policies.registry import make_policy
from training.demos.generate import GenerateConfig, generate
from training.diagnose import (DiagnoseConfig, Frame, behaviour_section, diagnose, linear_probe_accuracy,
                               rendered_frames)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return rendered_frames((), 32, seeds=1)  # the scripted policies read poses, not pixels


def test_a_language_follower_reacts_to_meaning_and_not_to_wording(frames):
    beh = behaviour_section(make_policy("expert"), frames, steps=16)
    assert beh.follows
    assert beh.action_sensitivity_differ > 0.02 and beh.action_sensitivity_agree == 0.0


@pytest.mark.parametrize("spec", ["blind", "idle"])
def test_a_blind_policy_gives_the_same_actions_under_every_instruction(frames, spec):
    beh = behaviour_section(make_policy(spec), frames, steps=16)
    assert not beh.follows
    assert beh.action_sensitivity_differ == 0.0 and beh.action_sensitivity_agree == 0.0


@pytest.mark.parametrize("spec, verdict", [
    ("expert", "the actions follow the instruction's meaning"),
    ("words", "the actions follow words, not meaning: they change with the object but not with the negation"),
    ("blind", "the actions ignore the instruction's meaning"),
    ("idle", "not competent"),
])
def test_each_baseline_gets_the_verdict_a_reader_expects(tmp_path, spec, verdict):
    """Competence first (a short closed-loop grid), then the kinds of meaning change the actions follow."""
    report = diagnose(DiagnoseConfig(spec, tmp_path / spec, seeds=1, image_size=32, grid_seeds=1),
                      log=lambda *_: None)
    assert report["verdict"].startswith(verdict), report["verdict"]
    assert report["representation"] is None  # black boxes: no features to probe
    assert (report["closed_loop"]["competence"] == 0.0) is (spec == "idle")
    assert (tmp_path / spec / "diagnosis.md").read_text().startswith(f"# Why does `{spec}` ignore language?")


def test_without_the_grid_the_verdict_says_competence_is_unchecked(tmp_path):
    report = diagnose(DiagnoseConfig("idle", tmp_path / "i", seeds=1, image_size=32, grid=False), log=lambda *_: None)
    assert report["verdict"].startswith("competence unchecked") and report["closed_loop"] is None


def test_the_probe_verdict_is_undetermined_when_its_ci_straddles_the_mark():
    from training.diagnose import Representation, verdict

    def report(lo: float, hi: float) -> dict:
        rep = Representation(0.9, 0.95, (lo + hi) / 2, 1 / 3, 18, 18, (lo, hi))
        return {"representation": {"text_probe_accuracy": rep.text_probe_accuracy, "text_probe_chance": 1 / 3,
                                    "text_probe_ci": (lo, hi), "probe_mark": rep.probe_mark,
                                    "separates": rep.separates},
                "behaviour": {"follows": False, "by_kind": {"object": 0.0}, "ignored_kinds": ["object"],
                              "action_sensitivity_agree": 0.0},
                "closed_loop": {"competence": 1.0}, "data": None}

    assert verdict(report(0.50, 0.80)).startswith("undetermined: a linear probe reads the intent at 0.65")
    assert verdict(report(0.20, 0.50)).startswith("the backbone cannot tell them apart")
    assert verdict(report(0.70, 0.90)).startswith("features separate the instructions but the head ignores them")


def test_linear_probe_reads_a_separable_label_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"] * 40)
    signal = np.eye(3)[[ord(v) - 97 for v in y]] * 3
    x = np.hstack([signal, rng.normal(size=(120, 20))])
    assert linear_probe_accuracy(x[:60], y[:60], x[60:], y[60:]) == 1.0
    noise = rng.normal(size=(120, 23))
    assert linear_probe_accuracy(noise[:60], y[:60], noise[60:], y[60:]) < 0.6


@pytest.fixture(scope="module")
def seed_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("diag") / "seed"
    generate(GenerateConfig(recipe="seed", out=out, episodes=2, image_size=32), progress=False)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent
    return subprocess.run([str(exe / args[0]), *args[1:]], capture_output=True, text=True)


@pytest.fixture(scope="module")
def seed_model(seed_data, tmp_path_factory) -> Path:
    """The seed user's command at toy scale: cheese-only + bread-only, N1.5's action-head LoRA r32."""
    model = tmp_path_factory.mktemp("seed_model") / "model"
    done = _cli("chefmate-finetune", "--dataset-path", str(seed_data / "cheese"), str(seed_data / "bread"),
                "--preset", "tiny", "--lora-rank", "32", "--balance-dataset-weights", "--balance-trajectory-weights",
                "--max-steps", "1", "--batch-size", "2", "--allow-random-vision", "--output-dir", str(model))
    assert done.returncode == 0, done.stderr[-2000:]
    return model


def test_the_seeds_command_then_diagnose_through_the_cli(seed_data, seed_model, tmp_path):
    cheese, bread, model = seed_data / "cheese", seed_data / "bread", seed_model
    out = tmp_path / "diag"
    done = _cli("chefmate-diagnose", "--policy", f"vla:{model}", "--dataset", str(cheese), str(bread),
                "--out", str(out), "--no-grid")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {out / 'diagnosis.md'}" in done.stdout
    report = json.loads((out / "diagnosis.json").read_text())
    assert report["data"]["language_redundant"] is True  # cheese-only + bread-only: the scene gives it away
    assert report["data"]["config"]["lora_overrides_flags"] is True
    assert 0.0 <= report["representation"]["text_probe_accuracy"] <= 1.0
    for key in ("action_sensitivity_differ", "action_sensitivity_agree"):
        assert report["behaviour"][key] >= 0.0
    assert report["verdict"].startswith("competence unchecked") and "LoRA r32" in report["verdict"]
    lo, hi = report["representation"]["text_probe_ci"]
    assert lo <= report["representation"]["text_probe_accuracy"] <= hi


def test_diagnose_reads_a_model_whose_outputs_sit_on_a_gpu(seed_data, seed_model, tmp_path, monkeypatch):
    """On the GPU box every study's diagnose crashed ("can't convert cuda:0 device type tensor to numpy"): the
    features came back on the GPU and went to numpy. Here the model's outputs are fake CUDA tensors, which refuse
    numpy as CUDA's do, so the same mix-up fails on the CPU."""
    from fake_device import model_outputs_on_fake_cuda
    from policies.vla.model import VLA

    model_outputs_on_fake_cuda(monkeypatch, VLA, "features", "predict_chunk")
    report = diagnose(DiagnoseConfig(f"vla:{seed_model}", tmp_path / "diag", (seed_data / "cheese",
                                     seed_data / "bread"), grid=False), log=lambda *_: None)
    assert 0.0 <= report["representation"]["text_probe_accuracy"] <= 1.0
    assert report["behaviour"]["action_sensitivity_differ"] >= 0.0
