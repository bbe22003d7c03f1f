"""Generic vision-language pretraining of the VLA's vision tower + projector (Eagle's mlp1), before fine-tuning.

    python -m training.captions --out data/captions --n 2000 --image-size 96
    python -m training.pretrain_backbone --captions data/captions --preset small --steps 2000 --out runs/backbone
    python -m training.finetune ... --backbone-checkpoint runs/backbone

GR00T's Eagle VLM gets generic image-text pretraining before any robot data; ours starts with a random ViT. This
stage aligns it with the frozen LLM on captioned scene renders (descriptions only, no instructions) by a symmetric
CLIP-style InfoNCE loss with a learnable temperature:
- image side: the frozen LLM over ``[CLS] + image tokens`` of both cameras (exactly how the VLA feeds images to
  it), mean-pooled, then a small trainable linear head;
- text side: the frozen LLM over the caption, mean-pooled over its tokens, then a small trainable linear head.
Only the vision tower, the projector and the two heads train. Two captions of different scenes can both be true
for one image ("the plate is empty" holds for many scenes), so the targets spread over every caption in the batch
that is true for the image instead of treating those as negatives.

Image→text retrieval (top-1 over a held-out 10 % split) is measured before and after, two ways: ``exact`` (the
scene's own caption ranks first) and ``true`` (the first-ranked caption states only facts that hold for the
image), each beside its chance level. Writes ``backbone.safetensors`` (the backbone's ``vision.*`` and
``projector.*`` tensors, names as in ``Backbone.state_dict()``, what ``training.finetune`` loads),
``pretrain_config.json`` and ``loss.csv``. Needs only torch, transformers and numpy: no simulator, no lerobot.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from eval.config_cli import add_options, defaults_from, from_args
from policies.vla.backbone import Backbone
from policies.vla.config import PRESETS, VLAConfig
from policies.vla.runtime import RuntimeConfigError, autocast, preset, resolve_device
from training.schedule import cosine_with_warmup

BACKBONE_WEIGHTS = "backbone.safetensors"
SAVED_PREFIXES = ("vision.", "projector.")
FORMAT = "chefmate-backbone-pretrain/1"


class PretrainError(ValueError):
    pass


@dataclass
class PretrainConfig:
    captions: Path
    out: Path
    preset: str = "small"
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    embed_dim: int = 256  # width of the shared image-text space the two heads map into
    text_tokens: int = 128  # captions run up to ~100 tokens; longer ones are cut (the count is reported)
    eval_fraction: float = 0.1
    shift_pixels: int = -1  # random-translation augmentation, ± pixels; -1 = image_size // 16
    log_steps: int = 10
    seed: int = 0
    device: str = "auto"

    @property
    def model_config(self) -> VLAConfig:
        return preset(self.preset)

    def check(self) -> None:
        self.model_config  # noqa: B018  (validates --preset)
        if self.steps < 1 or self.batch_size < 2:
            raise PretrainError(f"need --steps >= 1 and --batch-size >= 2 (a contrastive batch needs negatives), got "
                                f"{self.steps} and {self.batch_size}")
        if not 0 < self.eval_fraction < 1:
            raise PretrainError(f"--eval-fraction must be between 0 and 1, got {self.eval_fraction}")


# --- data -------------------------------------------------------------------------------------------------
@dataclass
class CaptionSet:
    """Images (uint8 (N, 3, S, S) per camera), caption texts, and each scene's facts vs. each caption's claims."""

    images: dict[str, torch.Tensor]
    texts: list[str]
    facts: list[dict[str, Any]]
    stated: list[dict[str, Any]]
    fact_codes: np.ndarray = field(init=False)  # (N, K) id of each scene's value for fact key k
    stated_codes: np.ndarray = field(init=False)  # (N, K) id of each caption's claim for key k, -1 = no claim

    def __post_init__(self) -> None:
        # Facts are small JSON values (lists, dicts, strings): one id per distinct value makes truth a vector test.
        keys = sorted({k for s in self.stated for k in s})
        vocab: dict[str, int] = {}
        code = lambda v: vocab.setdefault(json.dumps(v, sort_keys=True), len(vocab))  # noqa: E731
        shape = (len(self), len(keys))
        self.fact_codes = np.array([[code(f.get(k)) for k in keys] for f in self.facts], np.int64).reshape(shape)
        self.stated_codes = np.array([[code(s[k]) if k in s else -1 for k in keys] for s in self.stated],
                                     np.int64).reshape(shape)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def image_size(self) -> int:
        return int(next(iter(self.images.values())).shape[-1])

    def truth(self, image_rows: np.ndarray, caption_rows: np.ndarray) -> np.ndarray:
        """(len(image_rows), len(caption_rows)) bool: caption j states only facts that hold in image i's scene."""
        facts = self.fact_codes[image_rows][:, None, :]
        claims = self.stated_codes[caption_rows][None, :, :]
        return ((claims == -1) | (claims == facts)).all(-1)

    @classmethod
    def load(cls, directory: Path, cameras: tuple[str, ...]) -> "CaptionSet":
        directory = Path(directory)
        npz, jsonl = directory / "images.npz", directory / "captions.jsonl"
        if not npz.exists() or not jsonl.exists():
            raise PretrainError(f"{directory} is not a caption set (needs images.npz and captions.jsonl); render one "
                                f"with `python -m training.captions --out {directory} --image-size <preset's size>`")
        with np.load(npz) as data:
            missing = [c for c in cameras if c not in data.files]
            if missing:
                raise PretrainError(f"{npz} has no {missing} images (it has {data.files}); re-render it")
            images = {c: torch.from_numpy(data[c]) for c in cameras}
        records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        sizes = {tuple(v.shape) for v in images.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 4 or next(iter(sizes))[0] != len(records):
            raise PretrainError(f"{directory} is inconsistent: image arrays {sorted(sizes)} for {len(records)} "
                                f"captions; re-render it")
        return cls(images, [r["text"] for r in records], [r["facts"] for r in records],
                   [r["stated"] for r in records])


def split(n: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scenes are drawn once per seed, so before/after numbers compare the same images."""
    order = np.random.default_rng(seed).permutation(n)
    n_eval = max(2, int(round(n * eval_fraction)))
    if n - n_eval < 2:
        raise PretrainError(f"only {n} scenes: need at least {n_eval + 2} to hold {n_eval} out and train on the rest; "
                            f"render more with --n")
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


# --- model ------------------------------------------------------------------------------------------------
class ContrastivePretrainer(nn.Module):
    """The VLA's backbone plus two linear heads and a temperature; the LLM stays frozen and in eval mode."""

    def __init__(self, cfg: VLAConfig, embed_dim: int = 256):
        super().__init__()
        self.backbone = Backbone(cfg)
        width = self.backbone.llm.config.hidden_size
        self.image_head = nn.Linear(width, embed_dim)
        self.text_head = nn.Linear(width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature
        self.backbone.llm.requires_grad_(False)
        self.backbone.to_head.requires_grad_(False)  # the VLA's map into its action head: not part of this stage
        self.backbone.llm.eval()

    def train(self, mode: bool = True) -> "ContrastivePretrainer":
        super().train(mode)
        self.backbone.llm.eval()  # frozen: no dropout, as GR00T holds frozen modules in eval mode
        return self

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def image_embedding(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, embed_dim), unit length: LLM over [CLS] + both cameras' image tokens, mean-pooled, through the head."""
        bb = self.backbone
        tokens = bb.image_tokens(images)
        cls = bb.llm.embeddings.word_embeddings.weight[bb.tokenizer.cls_token_id]
        embeds = torch.cat([cls.expand(tokens.shape[0], 1, -1), tokens.to(cls.dtype)], dim=1)
        hidden = bb.llm(inputs_embeds=embeds,
                        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device))
        return F.normalize(self.image_head(hidden.last_hidden_state.mean(1)).float(), dim=-1)

    @torch.no_grad()
    def pooled_text(self, texts: list[str], max_tokens: int, batch: int = 256) -> tuple[torch.Tensor, int]:
        """(N, LLM width) mean-pooled frozen-LLM features of each caption, and how many were cut at max_tokens.

        The LLM is frozen, so these never change: computed once, then only the text head trains.
        """
        bb, out, cut = self.backbone, [], 0
        for i in range(0, len(texts), batch):
            cut += sum(len(ids) > max_tokens for ids in bb.tokenizer(texts[i:i + batch])["input_ids"])
            tok = bb.tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=max_tokens,
                               return_tensors="pt")
            mask = tok["attention_mask"].to(bb.device)
            with autocast(bb.device):
                hidden = bb.llm(input_ids=tok["input_ids"].to(bb.device), attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * m).sum(1) / m.sum(1)).float())
        return torch.cat(out), cut

    def text_embedding(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(pooled).float(), dim=-1)

    def backbone_weights(self) -> dict[str, torch.Tensor]:
        """Exactly what training.finetune.load_backbone_weights reads: the vision tower and the projector."""
        return {k: v.detach().contiguous().cpu() for k, v in self.backbone.state_dict().items()
                if k.startswith(SAVED_PREFIXES)}


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                     truth: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; each row's target is spread over all captions (images) that are true for it."""
    logits = logit_scale.exp().clamp(max=100.0) * image @ text.T
    truth = truth.float()
    i2t = -(truth / truth.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    t2i = -(truth.T / truth.T.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1).mean()
    return (i2t + t2i) / 2


def random_shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ±pixels (edge pixels repeat); small enough to keep left/right facts true."""
    if pixels <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images.float(), (pixels,) * 4, mode="replicate").to(images.dtype)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, b), generator=generator, device=generator.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b, device=images.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


# --- evaluation -------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: ContrastivePretrainer, data: CaptionSet, rows: np.ndarray, pooled: torch.Tensor,
             batch: int = 128) -> dict[str, float]:
    """Image→text retrieval over the held-out scenes, and the contrastive loss there."""
    model.eval()
    device = model.backbone.device
    images = []
    for i in range(0, len(rows), batch):
        idx = torch.as_tensor(rows[i:i + batch])
        with autocast(device):
            images.append(model.image_embedding({c: v[idx].to(device) for c, v in data.images.items()}))
    image, text = torch.cat(images), model.text_embedding(pooled[torch.as_tensor(rows)].to(device))
    truth = data.truth(rows, rows)
    best = (image @ text.T).argmax(1).cpu().numpy()
    loss = contrastive_loss(image, text, model.logit_scale, torch.as_tensor(truth, device=device))
    model.train()
    return {"top1_exact": float(np.mean(best == np.arange(len(rows)))), "top1_true": float(truth[np.arange(len(rows)),
                                                                                                  best].mean()),
            "chance_exact": 1.0 / len(rows), "chance_true": float(truth.mean()), "loss": float(loss),
            "scenes": int(len(rows))}


# --- training ---------------------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    model: ContrastivePretrainer
    losses: list[float]
    before: dict[str, float]
    after: dict[str, float]
    out: Path


def load_checked(cfg: PretrainConfig) -> CaptionSet:
    """Every input check that can fail, before any model is built."""
    cfg.check()
    model_cfg = cfg.model_config
    if (Path(cfg.out) / BACKBONE_WEIGHTS).exists():
        raise PretrainError(f"{cfg.out} already holds a pretrained backbone; choose another --out")
    if not Path(cfg.captions).is_dir():
        raise PretrainError(f"no caption set at {cfg.captions}; render one with `python -m training.captions --out "
                            f"{cfg.captions} --image-size {model_cfg.image_size}`")
    data = CaptionSet.load(cfg.captions, model_cfg.cameras)
    if data.image_size != model_cfg.image_size:
        raise PretrainError(f"{cfg.captions} holds {data.image_size}x{data.image_size} images but preset "
                            f"{cfg.preset!r} needs {model_cfg.image_size}x{model_cfg.image_size}: render them with "
                            f"`python -m training.captions --out <dir> --image-size {model_cfg.image_size}`")
    return data


def pretrain(cfg: PretrainConfig, model: ContrastivePretrainer | None = None, log=print,
             progress: bool = True) -> PretrainResult:
    data = load_checked(cfg)
    model_cfg = cfg.model_config
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = (model or ContrastivePretrainer(model_cfg, cfg.embed_dim)).to(device)
    train_rows, eval_rows = split(len(data), cfg.eval_fraction, cfg.seed)
    batch_size = min(cfg.batch_size, len(train_rows))
    if batch_size < cfg.batch_size:
        log(f"only {len(train_rows)} training scenes: batch size {batch_size} instead of {cfg.batch_size}")
    pooled, cut = model.pooled_text(data.texts, cfg.text_tokens)
    if cut:
        log(f"warning: {cut} of {len(data)} captions are longer than --text-tokens {cfg.text_tokens} and were cut")
    images = {c: v.to(device) for c, v in data.images.items()}  # uint8: a 2000-scene set is ~110 MB at 96²
    shift = data.image_size // 16 if cfg.shift_pixels < 0 else cfg.shift_pixels
    log(f"{len(train_rows)} training / {len(eval_rows)} held-out scenes at {data.image_size}², preset {cfg.preset}, "
        f"{sum(p.numel() for p in model.trainable()) / 1e6:.2f}M trainable parameters, LLM frozen, on {device}")

    before = evaluate(model, data, eval_rows, pooled)
    log(f"before: held-out image→text top-1 exact {before['top1_exact']:.3f} (chance {before['chance_exact']:.3f}), "
        f"true {before['top1_true']:.3f} (chance {before['chance_true']:.3f}), loss {before['loss']:.3f}")
    decay = [p for p in model.trainable() if p.ndim >= 2]
    no_decay = [p for p in model.trainable() if p.ndim < 2]  # norms, biases, temperature: no weight decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda s: cosine_with_warmup(s, cfg.steps, cfg.warmup_ratio))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sampler = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    losses: list[float] = []
    began = time.perf_counter()
    order, pos = sampler.permutation(train_rows), 0
    model.train()
    bar = tqdm(total=cfg.steps, desc="pretrain", unit="step", disable=not progress, dynamic_ncols=True)
    with bar, open(out / "loss.csv", "w", newline="") as log_file:
        writer = csv.writer(log_file)
        writer.writerow(["step", "loss", "lr", "temperature", "seconds"])
        for step in range(1, cfg.steps + 1):
            if pos + batch_size > len(order):  # epochs without replacement
                order, pos = sampler.permutation(train_rows), 0
            rows, pos = order[pos:pos + batch_size], pos + batch_size
            idx = torch.as_tensor(rows, device=device)
            batch = {c: random_shift(v[idx], shift, generator) for c, v in images.items()}
            truth = torch.as_tensor(data.truth(rows, rows), device=device)
            with autocast(device):
                image = model.image_embedding(batch)
            text = model.text_embedding(pooled[idx])
            loss = contrastive_loss(image, text, model.logit_scale, truth)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.trainable(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update()
            if step % cfg.log_steps == 0 or step == cfg.steps:
                writer.writerow([step, f"{losses[-1]:.6f}", f"{schedule.get_last_lr()[0]:.3e}",
                                 f"{1 / model.logit_scale.exp().item():.4f}", f"{time.perf_counter() - began:.2f}"])
                log_file.flush()
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_steps:]):.4f}",
                                lr=f"{schedule.get_last_lr()[0]:.2e}", refresh=False)
    seconds = time.perf_counter() - began

    after = evaluate(model, data, eval_rows, pooled)
    log(f"after:  held-out image→text top-1 exact {after['top1_exact']:.3f} (chance {after['chance_exact']:.3f}), "
        f"true {after['top1_true']:.3f} (chance {after['chance_true']:.3f}), loss {after['loss']:.3f}")
    _save(model, cfg, out, losses, before, after, seconds, device, len(train_rows), cut)
    log(f"wrote {out / BACKBONE_WEIGHTS} (load it with training.finetune --backbone-checkpoint {out}), "
        f"{out / 'pretrain_config.json'} and {out / 'loss.csv'}")
    return PretrainResult(model, losses, before, after, out)


def _save(model: ContrastivePretrainer, cfg: PretrainConfig, out: Path, losses: list[float], before: dict,
          after: dict, seconds: float, device: torch.device, n_train: int, cut: int) -> None:
    from safetensors.torch import save_file

    tmp = out / (BACKBONE_WEIGHTS + ".tmp")
    save_file(model.backbone_weights(), str(tmp))
    tmp.replace(out / BACKBONE_WEIGHTS)  # a kill mid-save never leaves torn weights under the real name
    window = max(1, min(50, len(losses) // 10))  # single-batch losses are noisy: report window means
    meta = {"format": FORMAT, "preset": cfg.preset, "vla": cfg.model_config.to_dict(), "steps": cfg.steps,
            "loss_first": float(np.mean(losses[:window])), "loss_final": float(np.mean(losses[-window:])),
            "loss_window": window, "temperature": 1 / model.logit_scale.exp().item(),
            "retrieval": {"split": "held-out", "direction": "image->text", "before": before, "after": after},
            "train_scenes": n_train, "captions_cut": cut, "seconds": round(seconds, 2), "device": str(device),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}
    (out / "pretrain_config.json").write_text(json.dumps(meta, indent=2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.pretrain_backbone", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=Path, required=True, help="a caption set from `python -m training.captions`")
    p.add_argument("--out", type=Path, required=True, help="folder for backbone.safetensors and the logs")
    p.add_argument("--preset", help=f"model size: {', '.join(PRESETS)} (as for fine-tuning)")
    add_options(p, PretrainConfig, "steps batch_size learning_rate weight_decay embed_dim text_tokens eval_fraction "
                "shift_pixels seed device", shift_pixels="random-shift augmentation (-1 = image size / 16)",
                device="auto (CUDA when there is one), cpu, cuda, cuda:1, ...")
    defaults_from(p, PretrainConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = from_args(PretrainConfig, a)
    try:
        pretrain(cfg)
    except (PretrainError, RuntimeConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
