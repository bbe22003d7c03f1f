"""Caption renders and contrastive backbone pretraining: captions true to the sim, LLM frozen, weights load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from leisaac_tasks.scenarios import INGREDIENTS, Placement, Scenario
from policies.vla.config import PRESETS
from training.captions import (GRIPPER_OPEN_RAD, INSTRUCTION_WORDS, OBJECTS, CaptionConfig, SceneFacts, generate,
                               write_caption)
from training.pretrain_backbone import (BACKBONE_WEIGHTS, CaptionSet, ContrastivePretrainer, PretrainConfig, main,
                                        pretrain)

TINY = PRESETS["tiny"]
SCENES = 24


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("captions")
    # Render at 64² (not the CLI's 224²) to keep the test short; resize_images brings it to the tiny preset's 32².
    generate(CaptionConfig(out=out, n=SCENES, image_size=TINY.image_size, render_size=64, seed=3), log=lambda *_: None)
    return out


def records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "captions.jsonl").read_text().splitlines()]


def test_caption_set_files(captions):
    with np.load(captions / "images.npz") as d:
        for cam in ("front", "wrist"):
            assert d[cam].shape == (SCENES, 3, 32, 32) and d[cam].dtype == np.uint8
            assert d[cam].reshape(SCENES, -1).std(1).min() > 5  # real renders, not blank frames
            assert len({d[cam][i].tobytes() for i in range(SCENES)}) == SCENES
    assert len(records(captions)) == SCENES
    assert json.loads((captions / "meta.json").read_text())["scenes_per_second"] > 0


def test_captions_are_true_to_the_sim_state(captions):
    expected = {Placement.HOLDER: {"holder"}, Placement.PLATE: {"plate"}, Placement.ABSENT: {"absent", "table"}}
    recs = records(captions)
    assert len({r["text"] for r in recs}) == SCENES  # templates and synonyms vary
    for r in recs:
        text, facts, scenario = r["text"], r["facts"], Scenario.parse(r["scenario"])
        for name in INGREDIENTS:
            # facts are read back from the simulated poses; they must agree with the layout the scene was built from
            assert facts["placement"][name] in expected[scenario.placement(name)], r
            if facts["placement"][name] == "absent":
                assert name not in text, r  # an absent slice is never mentioned
                assert r["object_poses"][name] is None
            else:
                assert name in text, r
        assert facts["holder"] == [n for n in INGREDIENTS if facts["placement"][n] == "holder"]
        assert sorted(facts["plate"]) == sorted(n for n in INGREDIENTS if facts["placement"][n] == "plate")
        assert facts["gripper_open"] == (r["qpos"][5] > GRIPPER_OPEN_RAD)
        if facts["gripper_open"]:
            assert "closed" not in text and "shut" not in text, r
        else:
            assert "open" not in text, r
        assert set(facts["wrist_sees"]) <= set(OBJECTS)
        assert not any(word in text for word in INSTRUCTION_WORDS), r  # descriptions only
        assert all(facts[k] == v for k, v in r["stated"].items()), r  # everything the caption states holds


def test_write_caption_describes_containers_exactly():
    facts = SceneFacts(placement={"cheese": "absent", "bread": "plate"}, holder=[], plate=["bread"], table={},
                       gripper_open=True, gripper_place="left:holder", gripper_height="low",
                       gripper_in_front_view=True, wrist_sees=["plate", "bread"], hidden_front=[])
    rng = np.random.default_rng(0)
    texts = {write_caption(facts, rng)[0] for _ in range(50)}
    assert len(texts) > 20
    for text in texts:
        assert "cheese" not in text and "bread" in text and "open" in text
        assert any(w in text for w in ("holder is empty", "nothing stands in the holder", "holds no slice"))
    stacked = SceneFacts(placement={"cheese": "plate", "bread": "plate"}, holder=[], plate=["cheese", "bread"],
                         table={}, gripper_open=False, gripper_place="between", gripper_height="mid",
                         gripper_in_front_view=True, wrist_sees=[], hidden_front=[])
    text, stated = write_caption(stacked, rng)
    assert "on top" in text or "stacked on" in text
    assert stated["plate"] == ["cheese", "bread"] and stated["gripper_open"] is False


def test_truth_matrix_counts_vaguer_captions_as_true(captions):
    data = CaptionSet.load(captions, TINY.cameras)
    rows = np.arange(len(data))
    truth = data.truth(rows, rows)
    assert truth.diagonal().all()
    vague = dict(data.stated[0])
    vague.pop("wrist_sees", None)
    holds = [all(f[k] == v for k, v in vague.items()) for f in data.facts]
    data = CaptionSet(data.images, data.texts, data.facts, [vague] + data.stated[1:])
    assert data.truth(rows, np.array([0]))[:, 0].tolist() == holds


def test_pretrain_tiny_trains_only_vision_and_heads(captions, tmp_path, capsys):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = ContrastivePretrainer(TINY, embed_dim=32)
    llm_before = {k: v.clone() for k, v in model.backbone.llm.state_dict().items()}
    vision_before = {k: v.clone() for k, v in model.backbone.vision.state_dict().items()}
    out, logged = tmp_path / "backbone", []
    result = pretrain(PretrainConfig(captions=captions, out=out, preset="tiny", steps=30, batch_size=16,
                                     learning_rate=2e-3, eval_fraction=0.15, log_steps=5), model=model,
                      log=logged.append)
    bar = capsys.readouterr().err
    assert "pretrain: 100%" in bar and "30/30" in bar and "loss=" in bar  # progress with the loss
    assert logged[-1].startswith(f"wrote {out / BACKBONE_WEIGHTS}") and "loss.csv" in logged[-1]

    losses = result.losses
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.1, losses  # the contrastive loss falls
    assert not model.backbone.llm.training and all(not p.requires_grad for p in model.backbone.llm.parameters())
    llm_after = model.backbone.llm.state_dict()
    assert all(torch.equal(llm_before[k], llm_after[k]) for k in llm_before)  # bit-identical
    vision_after = model.backbone.vision.state_dict()
    assert any(not torch.equal(vision_before[k], vision_after[k]) for k in vision_before)

    meta = json.loads((out / "pretrain_config.json").read_text())
    assert meta["preset"] == "tiny" and meta["steps"] == 30 and np.isfinite(meta["loss_final"])
    for when in ("before", "after"):
        assert 0.0 <= meta["retrieval"][when]["top1_exact"] <= 1.0
    assert (out / "loss.csv").read_text().splitlines()[0] == "step,loss,lr,temperature,seconds"

    # Exactly the backbone's vision tower and projector, under Backbone.state_dict() names.
    saved = load_file(str(out / BACKBONE_WEIGHTS))
    expected = {k for k in model.backbone.state_dict() if k.startswith(("vision.", "projector."))}
    assert set(saved) == expected
    assert torch.equal(saved["vision.patch.weight"], vision_after["patch.weight"])

    from policies.vla.model import VLA
    from policies.vla.normalize import NormStats
    from training.finetune import load_backbone_weights  # lazily: finetune pulls in the training data stack

    fresh = VLA(TINY, NormStats((-1.0,) * 6, (1.0,) * 6, (-1.0,) * 6, (1.0,) * 6, horizon=TINY.action_horizon))
    load_backbone_weights(fresh, out)
    loaded = fresh.backbone.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)

    # with LoRA on the vision tower, peft has moved each wrapped weight under .base_layer; it must still load
    from policies.vla.tuning import TuneConfig

    lora = VLA(TINY, fresh.norm, TuneConfig(tune_visual=True, lora_rank=4))
    load_backbone_weights(lora, out)
    vision = lora.backbone.vision.state_dict()
    assert torch.equal(vision["blocks.0.attn.qkv.base_layer.weight"], saved["vision.blocks.0.attn.qkv.weight"])


def test_captions_cli_shows_progress_and_what_it_wrote(tmp_path, capsys):
    from training.captions import main as captions_main

    out = tmp_path / "captions"
    assert captions_main(["--out", str(out), "--n", "4", "--image-size", "32", "--render-size", "32"]) == 0
    printed = capsys.readouterr()
    assert "scenes: 100%" in printed.err and "4/4" in printed.err
    assert printed.out.strip().splitlines()[-1].startswith(f"wrote 4 scenes to {out}")


def test_bad_input_exits_2_with_a_clear_message(captions, tmp_path, capsys):
    assert main(["--captions", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a"), "--preset", "tiny"]) == 2
    assert "no caption set" in capsys.readouterr().err
    # The tiny set is 32x32; the small preset needs 96x96 and says which --image-size to render with.
    assert main(["--captions", str(captions), "--out", str(tmp_path / "b"), "--preset", "small"]) == 2
    err = capsys.readouterr().err
    assert "--image-size 96" in err and err.count("\n") == 1
    assert main(["--captions", str(captions), "--out", str(tmp_path / "c"), "--preset", "huge"]) == 2
    assert "unknown --preset" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # nothing written on bad input


def test_pretraining_imports_no_simulator_or_lerobot():
    code = ("import sys, training.pretrain_backbone; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('mujoco', 'lerobot', 'gymnasium')]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
