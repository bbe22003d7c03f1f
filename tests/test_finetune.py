"""Fine-tuning end to end on CPU with the tiny preset: the loss falls, checkpoints resume, the matrix runs it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.vla.model import VLA
from policies.vla.tuning import TuneConfig
from training.data import DemoData, TrainingWindows, collate
from training.demos.generate import GenerateConfig, generate
from training.finetune import FinetuneConfig, main, train

TINY = dict(preset="tiny", batch_size=8, learning_rate=1e-3, log_steps=1, save_steps=20)
STEPS = 150


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "dis"
    generate(GenerateConfig(recipe="disambiguating", out=out, episodes=2, image_size=32), progress=False)
    return out / "disambiguating"


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    train(FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=STEPS, **TINY), log=lambda *_: None,
          progress=False)
    return out


def fixed_loss(model: VLA, dataset: Path) -> float:
    """Loss on fixed batches with fixed noise and flow times, so before/after compare like with like."""
    windows = TrainingWindows(DemoData([dataset], image_size=model.cfg.image_size), horizon=16)
    batch = collate([windows[i] for i in range(0, len(windows), max(1, len(windows) // 32))])
    torch.manual_seed(0)
    with torch.no_grad():
        return float(model.eval()(batch))


def test_loss_falls_clearly(run, dataset):
    trained = VLA.load(run)
    untrained = VLA(trained.cfg, trained.norm, trained.tune)
    before, after = fixed_loss(untrained, dataset), fixed_loss(trained, dataset)
    assert after < 0.6 * before, (before, after)
    rows = list(csv.DictReader(open(run / "loss.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert (run / "loss.png").exists()


def _state_tensors(state: dict) -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) optimizer state dict, by a flat key."""
    out = {}
    for pid, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                out[f"{pid}.{name}"] = value
    return out


def test_resume_restores_weights_and_optimizer_and_continues_the_loss(run, dataset, tmp_path, monkeypatch):
    from training import finetune

    out = tmp_path / "resumed"
    cfg = FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=20, **TINY)
    train(cfg, log=lambda *_: None, progress=False)
    saved_weights = VLA.load(out / "checkpoint-20").stored_state()
    saved_optim = torch.load(out / "checkpoint-20" / finetune.TRAINER_STATE, weights_only=False)["optimizer"]

    # Catch the model and optimizer at the moment training resumes, before the first resumed step.
    seen = {}
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        if "optim" not in seen:
            seen["optim"] = {k: v.clone() for k, v in _state_tensors(self.state_dict()).items()}
            seen["lr"] = self.param_groups[0]["lr"]
        return real_step(self, *a, **k)

    real_forward = VLA.forward

    def forward_spy(self, batch):
        if "weights" not in seen:
            seen["weights"] = {k: v.clone() for k, v in self.stored_state().items()}
        return real_forward(self, batch)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    monkeypatch.setattr(VLA, "forward", forward_spy)
    log: list[str] = []
    train(FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=40, resume=True, **TINY),
          log=log.append, progress=False)
    assert any("resuming from" in line and "checkpoint-20" in line for line in log)
    assert seen["weights"].keys() == saved_weights.keys()
    assert all(torch.equal(seen["weights"][k], saved_weights[k]) for k in saved_weights)
    expected = _state_tensors(saved_optim)
    assert seen["optim"].keys() == expected.keys() and expected
    assert all(torch.equal(seen["optim"][k], expected[k]) for k in expected)
    # The schedule follows the new horizon: step 21 of 40 trains at the cosine's value there, not at the old
    # run's final rate of 0.
    from training.schedule import cosine_with_warmup

    assert seen["lr"] == pytest.approx(TINY["learning_rate"] * cosine_with_warmup(20, 40, 0.05))
    rows = list(csv.DictReader(open(out / "loss.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    assert all(float(r["lr"]) > 0 for r in rows[20:39])
    # The loss continues from where it stopped: on fixed batches, untrained > at the stop > after the resumed steps.
    at_stop = VLA.load(out / "checkpoint-20")
    untrained = VLA(at_stop.cfg, at_stop.norm, at_stop.tune)
    losses = [fixed_loss(m, dataset) for m in (untrained, at_stop, VLA.load(out))]
    assert losses[0] > losses[1] > losses[2], losses


def test_the_seeds_command_is_n15_action_head_lora(dataset, tmp_path, capsys):
    """The seed user's flags: LoRA r32, no --lora-full-model -> adapters on the head's attention only, and
    the tune flags change nothing (Isaac-GR00T N1.5's get_lora_model freezes everything else)."""
    lines = {}
    for flag in ("--tune-diffusion-model", "--no-tune-diffusion-model"):
        out = tmp_path / flag.strip("-")
        assert main(["--dataset-path", str(dataset), str(dataset), "--preset", "tiny", "--lora-rank", "32",
                     "--balance-dataset-weights", "--balance-trajectory-weights", "--max-steps", "1",
                     "--batch-size", "2", "--allow-random-vision", "--output-dir", str(out)]) == 0
        captured = capsys.readouterr()
        lines[flag] = [line for line in captured.out.splitlines() if line.startswith("trainable params:")]
        assert "peft then freezes every other parameter" in captured.err
        assert "wrote the model to" in captured.out
        model = VLA.load(out)
        trained = {n for n, p in model.named_parameters() if "lora_" in n}
        assert trained and all(n.startswith("action_head.") and any(f".{t}." in n for t in ("to_q", "to_k", "to_v"))
                               for n in trained)
    assert len(lines["--tune-diffusion-model"]) == 1
    assert lines["--tune-diffusion-model"] == lines["--no-tune-diffusion-model"]


def test_the_seeds_lora_from_a_base_adapts_that_base(run, cheese_only, tmp_path, capsys):
    """--init-checkpoint (a study's base: pretrained backbone + action head): after the seed's LoRA trains on other
    data, every stored weight is still the base's bit for bit, the adapters moved, and actions keep the base's
    normalization rather than the new data's."""
    from training.data import compute_norm_stats

    out = tmp_path / "from_base"
    assert main(["--dataset-path", str(cheese_only), "--preset", "tiny", "--lora-rank", "32", "--max-steps", "3",
                 "--batch-size", "2", "--learning-rate", "1e-2", "--init-checkpoint", str(run),
                 "--output-dir", str(out)]) == 0
    assert f"every weight and the action normalization: {run}" in capsys.readouterr().out
    base, tuned = VLA.load(run), VLA.load(out)
    have = tuned.stored_state()
    for key, value in base.stored_state().items():
        assert torch.equal(have[key if key in have else ".base_layer.".join(key.rsplit(".", 1))], value), key
    adapters = [v for k, v in have.items() if "lora_B" in k]  # peft starts every lora_B at zero
    assert adapters and all(v.abs().sum() > 0 for v in adapters)
    own = compute_norm_stats(DemoData([cheese_only], image_size=32), horizon=16).to_dict()
    assert tuned.norm.to_dict() == base.norm.to_dict() != own

    # A base with adapters of its own, or a second source of vision weights: one clear line each.
    assert main(["--dataset-path", str(cheese_only), "--preset", "tiny", "--init-checkpoint", str(out),
                 "--output-dir", str(tmp_path / "a")]) == 2
    assert "holds LoRA adapters" in capsys.readouterr().err
    assert main(["--dataset-path", str(cheese_only), "--preset", "tiny", "--init-checkpoint", str(run),
                 "--backbone-checkpoint", str(run), "--output-dir", str(tmp_path / "b")]) == 2
    assert "drop --backbone-checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("flags, why", [((), "it is frozen"),
                                         (("--lora-rank", "8", "--lora-full-model"), "only LoRA adapters train on it"),
                                         (("--tune-visual", "--lora-rank", "8"), "only LoRA adapters train on it")])
def test_a_random_vision_tower_that_is_not_tuned_in_full_is_refused(dataset, tmp_path, capsys, flags, why):
    """LoRA adapters leave the tower's random weights in place, --lora-full-model's too: still refused, and the
    message says which it is instead of pointing at a flag nobody passed."""
    assert main(["--dataset-path", str(dataset), "--output-dir", str(tmp_path / "r"), "--preset", "tiny",
                 *flags]) == 2
    err = capsys.readouterr().err
    assert f"random initial weights ({why})" in err and "--backbone-checkpoint" in err
    assert not (tmp_path / "r").exists()


def test_bad_inputs_are_one_clear_error(run, dataset, tmp_path, capsys):
    # --lora-full-model without a rank
    assert main(["--dataset-path", str(dataset), "--output-dir", str(tmp_path / "a"), "--preset", "tiny",
                 "--lora-full-model"]) == 2
    assert "--lora-rank is 0" in capsys.readouterr().err
    # resuming a run with other flags: the checkpoint comes from another config
    assert main(["--dataset-path", str(dataset), "--output-dir", str(run), "--preset", "tiny", "--resume",
                 "--no-tune-diffusion-model", "--max-steps", str(STEPS + 1)]) == 2
    assert "another model or tuning config" in capsys.readouterr().err
    # a dataset without the wrist camera
    bad = tmp_path / "nowrist"
    import shutil

    shutil.copytree(dataset, bad)
    info = (bad / "meta" / "info.json").read_text().replace("observation.images.wrist", "observation.images.side")
    (bad / "meta" / "info.json").write_text(info)
    assert main(["--dataset-path", str(bad), "--output-dir", str(tmp_path / "b"), "--preset", "tiny",
                 "--allow-random-vision"]) == 2
    err = capsys.readouterr().err
    assert "observation.images.wrist" in err and not (tmp_path / "b").exists()


def test_the_matrix_evaluates_a_checkpoint(run, tmp_path):
    from eval.run_matrix import MatrixConfig, run as run_matrix
    from leisaac_tasks.scenarios import Scenario

    out = tmp_path / "matrix"
    run_matrix(MatrixConfig(policies=(f"vla:{run}",), scenarios=(Scenario.parse("H,H"),), families=(), seeds=(0,),
                            image_size=32, max_steps=20, out=out), progress=False)
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    assert len(rows) == 3 and all(r["error"] == "" and r["steps"] == "20" for r in rows)
    assert {r["policy"] for r in rows} == {f"vla:{run}"}
    heatmaps = list(out.glob("heatmap_*.png"))  # one flat file, even though the spec holds a path
    assert len(heatmaps) == 1 and heatmaps[0].parent == out


@pytest.fixture(scope="module")
def cheese_only(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "seed"
    generate(GenerateConfig(recipe="seed", out=out, episodes=1, image_size=32), progress=False)
    return out / "cheese"


@pytest.mark.parametrize("dataset_flag, trajectory_flag", [(True, True), (False, True), (True, False)])
def test_balance_flags_reach_the_sampler(dataset, cheese_only, tmp_path, monkeypatch, dataset_flag, trajectory_flag):
    """Measured draw frequencies of the sampler the CLI built, against GR00T's rules worked from the lengths."""
    from training import finetune

    built = {}
    real = finetune.mixture_sampler

    def capture(windows, *a, **k):
        built["windows"], built["sampler"] = windows, real(windows, *a, **k)
        return built["sampler"]

    monkeypatch.setattr(finetune, "mixture_sampler", capture)
    flags = [("--" if on else "--no-") + name for on, name in ((dataset_flag, "balance-dataset-weights"),
                                                               (trajectory_flag, "balance-trajectory-weights"))]
    assert main(["--dataset-path", str(dataset), str(cheese_only), "--preset", "tiny", "--max-steps", "1",
                 "--batch-size", "2", "--allow-random-vision", "--output-dir", str(tmp_path / "o"), *flags]) == 0
    windows, sampler = built["windows"], built["sampler"]
    n = 30_000
    sampler.num_samples = n
    episode = windows.item_episode[np.fromiter(iter(sampler), dtype=np.int64)]
    lengths, datasets = windows.episode_lengths, windows.episode_datasets
    steps = np.array([lengths[datasets == d].sum() for d in (0, 1)], dtype=float)
    p_dataset = steps / steps.sum() if dataset_flag else np.array([0.5, 0.5])
    for d in (0, 1):
        share = np.isin(episode, np.flatnonzero(datasets == d)).mean()
        assert share == pytest.approx(p_dataset[d], abs=0.015), (d, share)
        eps = np.flatnonzero(datasets == d)
        within = np.array([(episode == e).sum() for e in eps], dtype=float)
        want = lengths[eps] / lengths[eps].sum() if trajectory_flag else np.full(len(eps), 1 / len(eps))
        assert within / within.sum() == pytest.approx(want, abs=0.02), (d, within, want)


def test_frozen_modules_train_in_eval_mode(dataset, tmp_path, monkeypatch):
    """GR00T holds frozen modules in eval mode while the rest trains; checked at every training forward pass."""
    modes = []
    real_forward = VLA.forward

    def spy(self, batch):
        modes.append({"llm": self.backbone.llm.training, "vision": self.backbone.vision.training,
                      "projector": self.backbone.projector.training, "dit": self.action_head.blocks.training,
                      "encoder": self.action_head.state_encoder.training})
        return real_forward(self, batch)

    monkeypatch.setattr(VLA, "forward", spy)
    train(FinetuneConfig(dataset_paths=[dataset], output_dir=tmp_path / "o", max_steps=3, **TINY),
          log=lambda *_: None, progress=False)
    assert len(modes) == 3
    assert all(m == {"llm": False, "vision": False, "projector": False, "dit": True, "encoder": True} for m in modes)


@pytest.mark.parametrize("lora_rank", [0, 8])  # the default tuning, and N1.5's action-head LoRA (peft modules)
def test_compiled_loss_trains_like_eager(dataset, tmp_path, lora_rank):
    """--compile compiles the tensor part of the loss (CUDA graphs on a GPU; inductor here). With inductor drawing
    random numbers as eager does, the same steps give the same losses and the same weights."""
    import torch._inductor.config as inductor

    from safetensors.torch import load_file

    losses = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        torch._dynamo.reset()
        with inductor.patch(fallback_random=True):
            train(FinetuneConfig(dataset_paths=[dataset], output_dir=tmp_path / name, max_steps=3,
                                 compile=compiled, tune=TuneConfig(lora_rank=lora_rank), **TINY),
                  log=lambda *_: None, progress=False)
        losses[name] = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / name / "loss.csv"))]
    assert len(losses["eager"]) == 3 and losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4)
    eager, compiled = (load_file(next((tmp_path / n).glob("*.safetensors"))) for n in ("eager", "compiled"))
    assert eager.keys() == compiled.keys()
    # Adam moves an element by about the learning rate (1e-3) per step whatever its gradient's size, so fused
    # rounding on a near-zero gradient can show up at a fraction of one step: compare within a fifth of it.
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=2e-4)


def test_ddp_on_two_cpu_ranks_draws_different_samples_and_keeps_the_weights_equal(dataset, tmp_path):
    """torchrun --nproc-per-node 2 with gloo: each rank draws its own batches, and after the steps (gradients
    all-reduced) both ranks hold the same weights, which moved from where they started."""
    import json
    import os
    import subprocess
    import sys

    worker = Path(__file__).parent / "ddp_worker.py"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(worker), str(dataset), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]["indices"]) == len(ranks[1]["indices"]) == 2
    assert ranks[0]["indices"] != ranks[1]["indices"]
    # Each rank builds its model with its own seed; DDP broadcasts rank 0's weights, then all-reduces gradients.
    assert ranks[0]["initial"] != ranks[1]["initial"]
    assert ranks[0]["final"] == ranks[1]["final"] != ranks[0]["initial"]
