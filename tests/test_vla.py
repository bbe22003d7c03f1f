"""The small GR00T-architecture VLA: freeze flags, LoRA placement, sampling shape, checkpoint round trip."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from policies.vla.config import PRESETS
from policies.vla.model import VLA, CheckpointError
from policies.vla.normalize import NormStats
from policies.vla.tuning import TuneConfig, TuningError, apply_tuning, parameter_report

CFG = PRESETS["tiny"]


def norm() -> NormStats:
    rng = np.random.default_rng(0)
    return NormStats(tuple(rng.uniform(-90, -10, 6)), tuple(rng.uniform(10, 90, 6)), tuple(rng.uniform(-90, -10, 6)),
                     tuple(rng.uniform(10, 90, 6)), horizon=CFG.action_horizon)


def batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    s = CFG.image_size
    return {"front": torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=g),
            "wrist": torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=g),
            "state": torch.randn(b, 6, generator=g) * 30, "actions": torch.randn(b, 16, 6, generator=g) * 30,
            "action_mask": torch.ones(b, 16, dtype=torch.bool),
            "task": ["pick up the yellow cheese and put it into the white plate", "do not pick up the cheese"][:b]}


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def model() -> VLA:
    return VLA(CFG, norm())


FLAG_PARTS = {
    "tune_llm": lambda m: [m.backbone.llm],
    "tune_visual": lambda m: [m.backbone.vision, m.backbone.projector],
    "tune_projector": lambda m: [m.action_head.state_encoder, m.action_head.action_encoder,
                                 m.action_head.action_decoder, m.action_head.position_embedding],
    "tune_diffusion_model": lambda m: [m.action_head.blocks, m.action_head.timestep_embedder, m.action_head.ada_out],
}


@pytest.mark.parametrize("flag", list(FLAG_PARTS))
def test_each_flag_freezes_exactly_what_it_names(model, flag):
    all_on = TuneConfig(tune_llm=True, tune_visual=True, tune_projector=True, tune_diffusion_model=True)
    apply_tuning(model, all_on)
    everything = trainable(model)
    assert everything == sum(p.numel() for p in model.parameters())
    apply_tuning(model, replace(all_on, **{flag: False}))
    named = FLAG_PARTS[flag](model)
    assert all(trainable(part) == 0 for part in named)
    assert trainable(model) == everything - sum(sum(p.numel() for p in part.parameters()) for part in named)
    # and gradients: a backward pass leaves the frozen part's .grad as None, the rest gets gradients
    model.zero_grad(set_to_none=True)
    model(batch()).backward()
    assert all(p.grad is None for part in named for p in part.parameters())
    assert any(p.grad is not None for p in model.action_head.future_tokens.parameters())  # always trained, as GR00T


def test_default_flags_match_gr00t_and_report_line(model):
    lines = apply_tuning(model, TuneConfig())
    assert lines == ["Tune backbone llm: False", "Tune backbone vision tower: False",
                     "Tune action head projector: True", "Tune action head diffusion model: True"]
    total = sum(p.numel() for p in model.parameters())
    expected = trainable(model)
    assert parameter_report(model) == (f"trainable params: {expected} || all params: {total} || "
                                       f"trainable%: {100 * expected / total:.4f}")
    assert trainable(model.backbone.llm) == trainable(model.backbone.vision) == 0


@pytest.mark.parametrize("tune, where", [
    (TuneConfig(tune_llm=True, lora_rank=4), ("llm",)),
    (TuneConfig(tune_llm=True, tune_visual=True, lora_rank=4), ("llm", "vision")),
])
def test_lora_adds_parameters_only_where_asked(tune, where):
    base = VLA(CFG, norm())
    lora = VLA(CFG, norm(), tune)
    apply_tuning(lora, tune)
    for part in ("llm", "vision", "projector", "to_head"):
        base_part, lora_part = getattr(base.backbone, part), getattr(lora.backbone, part)
        adapters = {n: p.numel() for n, p in lora_part.named_parameters() if "lora_" in n}
        assert bool(adapters) == (part in where), part
        # peft wraps layers (renaming them) but adds nothing besides the adapters
        assert sum(p.numel() for p in lora_part.parameters()) == \
            sum(p.numel() for p in base_part.parameters()) + sum(adapters.values())
        if part in where:  # only the adapters train there; the pretrained weights stay frozen
            assert {n for n, p in lora_part.named_parameters() if p.requires_grad} == set(adapters)
    assert {n for n, _ in lora.action_head.named_parameters()} == {n for n, _ in base.action_head.named_parameters()}


def test_lora_full_model_needs_a_rank():
    with pytest.raises(TuningError, match="--lora-rank is 0"):
        TuneConfig(lora_full_model=True)


@pytest.mark.parametrize("tune, sites", [
    (TuneConfig(lora_rank=8), {"action_head"}),  # N1.5's --lora-rank: the head's attention only
    (TuneConfig(lora_rank=8, tune_projector=False, tune_diffusion_model=False), {"action_head"}),
    (TuneConfig(lora_rank=8, lora_full_model=True), {"action_head", "backbone.llm", "backbone.vision"}),
])
def test_n15_lora_trains_only_qkv_adapters_whatever_the_flags(tune, sites):
    model = VLA(CFG, norm(), tune)
    apply_tuning(model, tune)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    layers = {n.split(".lora_")[0] for n in trained}
    assert {next(s for s in sites if n.startswith(s)) for n in layers} == sites
    qkv = ("to_q", "to_k", "to_v", "query", "key", "value", "qkv")
    assert all(n.rsplit(".", 1)[-1] in qkv for n in layers), layers
    # the tune flags change nothing: the same count with every flag flipped
    flipped = TuneConfig(**{**tune.to_dict(), "tune_projector": not tune.tune_projector,
                            "tune_diffusion_model": not tune.tune_diffusion_model})
    other = VLA(CFG, norm(), flipped)
    apply_tuning(other, flipped)
    assert parameter_report(other) == parameter_report(model)
    assert tune.override_warning() and "freezes every other parameter" in tune.override_warning()


@pytest.mark.parametrize("tune", [TuneConfig(lora_rank=4), TuneConfig(tune_llm=True, tune_visual=True, lora_rank=4),
                                  TuneConfig(lora_rank=4, lora_full_model=True)])
def test_lora_adapters_change_the_chunk_once_b_is_nonzero(tune):
    base = VLA(CFG, norm()).eval()
    lora = VLA(CFG, norm(), tune).eval()
    own = set(lora.state_dict())  # peft renames a wrapped layer's weight to <layer>.base_layer.<name>
    result = lora.load_state_dict({k if k in own else ".base_layer.".join(k.rsplit(".", 1)): v
                                   for k, v in base.state_dict().items()}, strict=False)
    assert not result.unexpected_keys and all("lora_" in k for k in result.missing_keys)
    same = lambda a, b: torch.equal(a.predict_chunk(batch(), torch.Generator().manual_seed(3)),  # noqa: E731
                                    b.predict_chunk(batch(), torch.Generator().manual_seed(3)))
    assert same(base, lora)  # B = 0: peft's adapters start as the identity
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    assert not same(base, lora)


def test_inference_returns_a_16x6_chunk_in_lerobot_units(model):
    model.eval()
    chunk = model.predict_chunk(batch(), torch.Generator().manual_seed(0))
    assert chunk.shape == (2, 16, 6)
    n = model.norm
    assert torch.all(chunk[..., 5] >= n.action_min[5] - 1e-4) and torch.all(chunk[..., 5] <= n.action_max[5] + 1e-4)


def test_checkpoint_round_trip_gives_identical_actions(model, tmp_path):
    tune = TuneConfig(tune_llm=True, lora_rank=4)
    original = VLA(CFG, norm(), tune).eval()
    with torch.no_grad():  # move LoRA B off zero so the adapters actually change the output
        for n, p in original.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    original.save(tmp_path / "ckpt")
    loaded = VLA.load(tmp_path / "ckpt").eval()
    a = original.predict_chunk(batch(), torch.Generator().manual_seed(7))
    b = loaded.predict_chunk(batch(), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert loaded.tune == tune and loaded.norm == original.norm


def test_checkpoint_from_another_config_is_refused(model, tmp_path):
    model.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="another model config"):
        VLA.load(tmp_path / "ckpt", expect=PRESETS["small"])
    with pytest.raises(CheckpointError, match="not a VLA checkpoint"):
        VLA.load(tmp_path / "nowhere")


def test_checkpoint_leaves_out_the_untouched_shipped_llm(tmp_path):
    frozen = VLA(CFG, norm())
    stored = frozen.stored_state()
    assert not any(k.startswith("backbone.llm.") for k in stored)
    full = VLA(CFG, norm(), TuneConfig(tune_llm=True))
    assert any(k.startswith("backbone.llm.") for k in full.stored_state())  # tuned in full: it must be saved
    frozen.save(tmp_path / "ckpt", shard_mb=0.2)
    shards = sorted((tmp_path / "ckpt").glob("model-*.safetensors"))
    assert len(shards) > 1
    assert VLA.load(tmp_path / "ckpt").stored_state().keys() == stored.keys()


def test_compiled_inference_gives_the_eager_chunk_at_every_batch_size():
    """compile_inference pads each batch to a power of two (one graph serves 3, 4, ...); rows come back unchanged,
    each row independent of what it was padded with."""
    torch._dynamo.reset()
    eager, compiled = VLA(CFG, norm()).eval(), VLA(CFG, norm()).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_inference()
    rows = {k: torch.cat([v, v[:1]]) if torch.is_tensor(v) else v + v[:1] for k, v in batch().items()}  # batch of 3
    noise = torch.randn((3, CFG.action_horizon, CFG.action_dim), generator=torch.Generator().manual_seed(3))
    for b in (1, 3):
        sub = {k: v[:b] for k, v in rows.items()}
        torch.testing.assert_close(compiled.predict_chunk(sub, noise=noise[:b]),
                                   eager.predict_chunk(sub, noise=noise[:b]), rtol=1e-4, atol=1e-3)
    # a generator gives the same draw as before: the eager path with the generator equals explicit noise
    g = torch.randn((1, CFG.action_horizon, CFG.action_dim), generator=torch.Generator().manual_seed(5))
    one = {k: v[:1] for k, v in rows.items()}
    assert torch.equal(eager.predict_chunk(one, torch.Generator().manual_seed(5)), eager.predict_chunk(one, noise=g))


def test_batched_cameras_and_fixed_flow_parts_compute_what_the_plain_passes_do():
    """The chunk's kernel savings change no number: both cameras through the tower as one batch equal one pass per
    camera, and the state token and cross-attention keys/values made once equal making them at every Euler step."""
    from policies.vla.backbone import pixel_shuffle

    torch.manual_seed(0)
    model = VLA(CFG, norm()).eval()
    b, bb, head = batch(), model.backbone, model.action_head
    with torch.no_grad():
        images = {cam: b[cam] for cam in CFG.cameras}
        per_camera = torch.cat([bb.projector(pixel_shuffle(bb.vision(images[c]), bb.vision.grid))
                                for c in CFG.cameras], dim=1)
        torch.testing.assert_close(bb.image_tokens(images), per_camera, rtol=1e-5, atol=1e-6)
        vl, mask = model.features(b)
        state = model.norm.normalize_state(b["state"].float())
        noisy = torch.randn(2, CFG.action_horizon, CFG.action_dim, generator=torch.Generator().manual_seed(1))
        t = head._bucket(torch.full((2,), 0.5))
        ctx = head.encode_context(vl, mask)
        made_once = head.velocity(ctx, mask, state, noisy, t, head.fixed_parts(ctx, state))
        assert torch.equal(made_once, head.velocity(ctx, mask, state, noisy, t))


def test_bf16_inference_is_an_option_that_changes_only_rounding(tmp_path):
    """vla:PATH?bf16=1 runs the chunk under bf16 autocast; without it the chunk is computed in fp32, as before."""
    from policies.vla.policy import VLAPolicy

    torch.manual_seed(0)
    VLA(CFG, norm()).save(tmp_path / "ckpt")
    plain = VLAPolicy.from_spec(f"{tmp_path / 'ckpt'}?device=cpu")
    bf16 = VLAPolicy.from_spec(f"{tmp_path / 'ckpt'}?device=cpu&bf16=1")
    assert not plain.model.bf16_inference and bf16.model.bf16_inference
    noise = torch.randn((2, CFG.action_horizon, CFG.action_dim), generator=torch.Generator().manual_seed(3))
    fp32 = plain.model.predict_chunk(batch(), noise=noise)
    low = bf16.model.predict_chunk(batch(), noise=noise)
    assert low.dtype == fp32.dtype == torch.float32
    assert not torch.equal(low, fp32)  # the matmuls did run in bf16
    span = max(hi - lo for lo, hi in zip(norm().action_min, norm().action_max))
    assert (low - fp32).abs().max() < 0.05 * span  # rounding, not another answer
    with pytest.raises(ValueError, match="unknown option"):
        VLAPolicy.from_spec(f"{tmp_path / 'ckpt'}?half=1")
