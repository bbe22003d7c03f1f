"""Fine-tuning end to end on CPU with the tiny preset: the loss falls, checkpoints resume, the matrix runs it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from leisaac_tasks.demos.generate import GenerateConfig, generate
from policies.vla.model import VLA
from training.data import DemoData, TrainingWindows, collate
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
    train(FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=STEPS, **TINY), log=lambda *_: None)
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


def test_resume_continues_from_the_last_checkpoint(run, dataset, tmp_path):
    out = tmp_path / "resumed"
    cfg = FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=20, **TINY)
    train(cfg, log=lambda *_: None)
    log: list[str] = []
    train(FinetuneConfig(dataset_paths=[dataset], output_dir=out, max_steps=30, resume=True, **TINY), log=log.append)
    assert any("resuming from" in line and "checkpoint-20" in line for line in log)
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "loss.csv"))]
    assert steps == list(range(1, 31))


def test_bad_inputs_are_one_clear_error(run, dataset, tmp_path, capsys):
    # LoRA on modules that are neither tuned nor targeted
    assert main(["--dataset-path", str(dataset), "--output-dir", str(tmp_path / "a"), "--preset", "tiny",
                 "--lora-rank", "16"]) == 2
    assert "--tune-llm" in capsys.readouterr().err
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
    assert main(["--dataset-path", str(bad), "--output-dir", str(tmp_path / "b"), "--preset", "tiny"]) == 2
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
