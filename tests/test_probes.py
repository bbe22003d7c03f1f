"""The VRAM probe and the language-embedding probe, on the tiny preset and the CPU."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.vla.config import PRESETS
from policies.vla.model import VLA
from policies.vla.tuning import apply_tuning
from training import probe_language, probe_vram
from training.probe_vram import (SYNTHETIC_NORM, TUNINGS, ProbeConfig, count_saved_bytes, recommend, run_probe,
                                 write_reports)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vram(tmp_path_factory):
    out = tmp_path_factory.mktemp("vram") / "vram.md"
    cfg = ProbeConfig(preset="tiny", batch_size=2, steps=1, budget_gb=24, out=out, device="cpu", latency_runs=1,
                      warmup_steps=0, latency_warmup=0)  # counts, not timings, are under test: keep it quick
    result = run_probe(cfg, log=lambda _: None)
    write_reports(result)
    return result


def test_vram_probe_has_every_setting(vram):
    assert [r.name for r in vram.rows] == [name for name, _ in TUNINGS]
    for r in vram.rows:
        assert r.peak_gib is None and r.memory_source == "estimate"  # no GPU: the analytic estimate, labelled
        assert r.static_gib == pytest.approx((4 * r.total_params + 12 * r.trainable_params) / 2**30)
        assert r.activation_gib > 0 and r.seconds_per_step > 0 and r.latency_ms > 0


def test_static_memory_matches_a_real_adamw_step(vram):
    """Measured, not re-derived: the bytes of the weights, gradients and AdamW state tensors that one real optimizer
    step leaves behind (the optimizer training.finetune uses), per setting."""
    for (name, tune), row in zip(TUNINGS, vram.rows):
        torch.manual_seed(0)
        model = VLA(PRESETS["tiny"], SYNTHETIC_NORM, tune)
        apply_tuning(model, tune)
        trainable = [p for p in model.parameters() if p.requires_grad]
        for p in trainable:
            p.grad = torch.zeros_like(p)
        optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
        optimizer.step()
        weights = sum(p.untyped_storage().nbytes() for p in model.parameters())
        grads = sum(p.grad.untyped_storage().nbytes() for p in trainable)
        moments = sum(v.untyped_storage().nbytes() for state in optimizer.state.values()
                      for key, v in state.items() if key != "step")  # step: one scalar per tensor, bookkeeping
        assert len(optimizer.state) == len(trainable), name
        assert row.static_gib * 2**30 == weights + grads + moments, (name, row.static_gib * 2**30,
                                                                     weights, grads, moments)


def test_saved_activations_are_counted_as_hand_computed():
    """A graph small enough to count by hand: what each op keeps for backward, parameters left out."""
    w = torch.randn(8, 4, requires_grad=True)  # the "parameter"
    x = torch.randn(3, 8, requires_grad=True)

    def forward() -> torch.Tensor:
        h = x @ w  # keeps x (for w's gradient, 3*8*4 = 96 B) and w (for x's, 8*4*4 = 128 B)
        y = torch.tanh(h)  # keeps its output, 3*4 float32 = 48 B
        z = torch.sigmoid(y.double())  # the cast keeps nothing; sigmoid keeps its float64 output, 3*4*8 = 96 B
        return z.sum()

    assert count_saved_bytes(forward) == 96 + 128 + 48 + 96
    assert count_saved_bytes(forward, exclude=[w]) == 96 + 48 + 96


def test_trainable_counts_grow_with_capacity(vram):
    n = {r.name: r.trainable_params for r in vram.rows}
    assert n["frozen backbone (GR00T default)"] < n["LLM LoRA r16"] < n["LLM LoRA r32"]
    assert n["LLM+vision LoRA r16"] > n["LLM LoRA r16"] and n["LLM+vision LoRA r32"] > n["LLM LoRA r32"]
    assert n["full"] == max(n.values()) and n["full"] == vram.rows[-1].total_params


def test_trainable_counts_match_requires_grad(vram):
    for (name, tune), row in zip(TUNINGS, vram.rows):
        model = VLA(PRESETS["tiny"], SYNTHETIC_NORM, tune)
        apply_tuning(model, tune)
        assert row.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad), name
        assert row.total_params == sum(p.numel() for p in model.parameters()), name


def test_frozen_backbone_saves_fewer_activations(vram):
    # Nothing in a frozen backbone needs a gradient, so autograd keeps none of its activations.
    frozen, lora = vram.rows[0], vram.rows[1]
    assert frozen.activation_gib < lora.activation_gib


def test_counting_saved_tensors_frees_the_graph():
    # Regression: a pack hook that hands back the tensor itself ties a saved output to its own grad_fn, a cycle
    # that kept every activation of the probe's forward pass alive (seen on CUDA as peaks that grew per setting).
    x = torch.randn(1000, requires_grad=True)
    outputs = []

    def forward() -> torch.Tensor:
        y = torch.sigmoid(x * 2)  # sigmoid saves its output
        outputs.append(weakref.ref(y))
        return y.sum()

    assert count_saved_bytes(forward, exclude=[x]) >= 4000
    gc.collect()
    assert outputs[0]() is None


def test_recommendation_respects_budget(vram):
    none = recommend(vram.rows, budget_gib=1e-6)
    assert none.row is None and "none fits" in none.message
    assert recommend(vram.rows, budget_gib=1e6).row.name == "full"
    frozen = vram.rows[0]
    only_frozen = recommend(vram.rows, budget_gib=frozen.memory_gib)  # just enough for the smallest
    assert only_frozen.row is frozen and "language model stays frozen" in only_frozen.message


def test_vram_reports_written(vram):
    md = Path(vram.config.out)
    assert "| full |" in md.read_text() and "Recommendation" in md.read_text()
    assert len(md.with_suffix(".csv").read_text().splitlines()) == 1 + len(TUNINGS)
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["recommendation"]["name"] == "full" and len(data["rows"]) == len(TUNINGS)


@pytest.mark.parametrize("argv", [["--preset", "huge"], ["--batch-size", "0"], ["--steps", "-1"],
                                  ["--budget-gb", "0"], ["--out", "reports/vram.txt"]])
def test_vram_bad_input_exits_2(argv, capsys):
    assert probe_vram.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_vram_probe_shows_each_settings_progress(tmp_path, monkeypatch, capsys):
    """On a CPU the probe takes minutes: the bar names the setting and what it is doing, step by step."""
    monkeypatch.setattr(probe_vram, "TUNINGS", TUNINGS[:1])
    out = tmp_path / "vram.md"
    assert probe_vram.main(["--preset", "tiny", "--device", "cpu", "--batch-size", "2", "--steps", "1",
                            "--latency-runs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    name = TUNINGS[0][0]
    for phase in ("building the model", "counting activations", "training step 3/3", "chunk latency (1 runs)"):
        assert f"{name}: {phase}" in printed.err, phase
    assert "1/1" in printed.err and name in printed.out  # the bar, and the setting's result line
    assert printed.out.strip().splitlines()[-1] == (f"wrote {out}, {out.with_suffix('.csv')} and "
                                                    f"{out.with_suffix('.json')}")


def test_probe_vram_needs_no_simulator():
    code = ("import sys, training.probe_vram, training.probe_language; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'mujoco', 'lerobot'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- language probe --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return VLA(PRESETS["tiny"], SYNTHETIC_NORM).eval()


def _images(size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {cam: torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=g)
            for cam in PRESETS["tiny"].cameras}


def test_identical_instructions_are_similarity_one(tiny_model):
    s = probe_language.similarity_matrices(tiny_model, _images(), ["pick up the bread", "pick up the bread", "hello"])
    for m in s.values():
        assert m[0, 1] == pytest.approx(1.0, abs=1e-9)
        assert m[0, 2] < 1 - 1e-6


def test_text_positions_cover_the_instruction_only(tiny_model):
    tok = tiny_model.backbone.tokenize(["", "pick up the cheese"])
    feats, mask = tiny_model.features({**{k: v.expand(2, -1, -1, -1) for k, v in _images().items()},
                                       "task": ["", "pick up the cheese"]})
    text = probe_language.text_positions(tiny_model, mask)
    assert text.sum(1).tolist() == tok["attention_mask"].sum(1).tolist()  # [CLS] + word pieces + [SEP]


def test_language_probe_end_to_end(tmp_path, capsys):
    assert probe_language.main(["--preset", "tiny", "--out", str(tmp_path), "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert "rendering the scene" in printed.err and "3/3 stages" in printed.err  # the progress bar
    assert printed.out.strip().splitlines()[-1].startswith(f"wrote {tmp_path}/: summary.md")
    keys = [i.key for i in probe_language.PROBE_INSTRUCTIONS]
    for name in ("similarity.csv", "similarity_text.csv"):
        header, s = probe_language.read_matrix_csv(tmp_path / name)
        assert header == keys and s.shape == (len(keys), len(keys))
        np.testing.assert_allclose(s, s.T, atol=1e-6)
        np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-6)
    assert (tmp_path / "similarity.png").stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    assert "Hypothesis" in summary and "cheese vs bread" in summary
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["llm_frozen"] is True and set(data["summaries"]) == {"all", "text"}


def test_language_probe_reads_a_checkpoint(tmp_path):
    from policies.vla.tuning import TuneConfig

    tune = TuneConfig(tune_llm=True, lora_rank=4)
    torch.manual_seed(0)
    VLA(PRESETS["tiny"], SYNTHETIC_NORM, tune).save(tmp_path / "run")
    out = tmp_path / "probe"
    assert probe_language.main(["--checkpoint", str(tmp_path / "run"), "--out", str(out), "--device", "cpu"]) == 0
    data = json.loads((out / "summary.json").read_text())
    assert data["llm_frozen"] is False and data["tuning"] == "LLM LoRA r4, vision tower frozen"
    assert "compare it with a frozen reference" in (out / "summary.md").read_text()


@pytest.mark.parametrize("argv", [[], ["--preset", "tiny", "--checkpoint", "runs/x"], ["--preset", "huge"],
                                  ["--preset", "tiny", "--scenario", "X,Y"], ["--checkpoint", "no/such/run"],
                                  ["--checkpoint", "runs/x", "--backbone-checkpoint", "b"],
                                  ["--preset", "tiny", "--backbone-checkpoint", "no/such/backbone"]])
def test_language_bad_input_exits_2(argv, capsys, tmp_path):
    assert probe_language.main([*argv, "--out", str(tmp_path / "probe"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
