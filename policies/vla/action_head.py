"""GR00T's flow-matching action head, scaled down.

Sequence into the DiT: [state token, future tokens, 16 noisy action tokens]. The DiT alternates cross-attention
to the vision-language features (even blocks) with self-attention (odd blocks), each block normalised by AdaLN on
the flow timestep. The action decoder reads the last 16 tokens as a velocity.

Training: t = (s - u) / s with u ~ Beta(1.5, 1), x_t = (1 - t) noise + t actions, target velocity = actions - noise,
masked MSE. Inference: start from noise and take ``num_inference_steps`` Euler steps of dt = 1 / steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from policies.vla.config import VLAConfig


def sinusoidal(t: torch.Tensor, width: int) -> torch.Tensor:
    """(B,) or (B, N) timesteps -> (..., width) sin/cos features."""
    half = width // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class ActionEncoder(nn.Module):
    """GR00T's MultiEmbodimentActionEncoder: W1(a) ++ sinusoid(t) -> W2 -> swish -> W3."""

    def __init__(self, action_dim: int, width: int):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(action_dim, width), nn.Linear(2 * width, width), nn.Linear(width, width)
        self.width = width

    def forward(self, actions: torch.Tensor, t_bucket: torch.Tensor) -> torch.Tensor:
        tau = sinusoidal(t_bucket[:, None].expand(-1, actions.shape[1]), self.width).to(actions.dtype)
        return self.w3(F.silu(self.w2(torch.cat([self.w1(actions), tau], dim=-1))))


class MHA(nn.Module):
    """Attention with named ``to_q/to_k/to_v/to_out`` projections (GR00T's DiT names; LoRA targets them)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(width, width) for _ in range(4))

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_k(context), self.to_v(context)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``kv``: ``keys_values(context)`` made once, where the same context serves many calls (the Euler steps)."""
        b, n, c = x.shape
        split = lambda y: y.view(b, -1, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        mask = None if context_mask is None else context_mask[:, None, None, :]
        k, v = kv if kv is not None else self.keys_values(context)
        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(k), split(v), attn_mask=mask)
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))


class DiTBlock(nn.Module):
    def __init__(self, width: int, heads: int, cross: bool):
        super().__init__()
        self.cross = cross
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.ada = nn.Linear(width, 4 * width)  # AdaLN: scale and shift of both norms from the timestep
        self.attn = MHA(width, heads)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, temb: torch.Tensor, vl: torch.Tensor, vl_mask: torch.Tensor,
                vl_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        s1, b1, s2, b2 = self.ada(F.silu(temb))[:, None].chunk(4, dim=-1)
        h = self.norm1(x) * (1 + s1) + b1
        x = x + (self.attn(h, vl, vl_mask, vl_kv) if self.cross else self.attn(h, h))
        return x + self.ff(self.norm2(x) * (1 + s2) + b2)


class SelfAttentionBlock(nn.Module):
    """GR00T's vl_self_attention: a plain pre-LN transformer over the backbone features."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = MHA(width, heads)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.ff(self.norm2(x))


class FixedParts(NamedTuple):
    """What no flow step changes: the state token, and each cross-attention block's keys and values of the
    context (None for self-attention blocks)."""

    state_token: torch.Tensor
    vl_kv: list[tuple[torch.Tensor, torch.Tensor] | None]


class FlowMatchingActionHead(nn.Module):
    def __init__(self, cfg: VLAConfig):
        super().__init__()
        w = cfg.head_width
        self.cfg = cfg
        self.vlln = nn.LayerNorm(w)
        self.vl_self_attention = nn.ModuleList(SelfAttentionBlock(w, cfg.dit_heads)
                                               for _ in range(cfg.vl_self_attention_depth))
        self.state_encoder = mlp(cfg.state_dim, cfg.head_hidden, w)
        self.action_encoder = ActionEncoder(cfg.action_dim, w)
        self.action_decoder = mlp(w, cfg.head_hidden, cfg.action_dim)
        self.future_tokens = nn.Embedding(cfg.future_tokens, w)
        self.position_embedding = nn.Embedding(cfg.action_horizon, w)
        self.timestep_embedder = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(DiTBlock(w, cfg.dit_heads, cross=(i % 2 == 0)) for i in range(cfg.dit_depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False)
        self.ada_out = nn.Linear(w, 2 * w)
        self.beta = torch.distributions.Beta(cfg.noise_beta_alpha, cfg.noise_beta_beta)

    def encode_context(self, vl: torch.Tensor, vl_mask: torch.Tensor) -> torch.Tensor:
        vl = self.vlln(vl)
        for block in self.vl_self_attention:
            vl = block(vl, vl_mask)
        return vl

    def velocity(self, vl: torch.Tensor, vl_mask: torch.Tensor, state: torch.Tensor, noisy: torch.Tensor,
                 t_bucket: torch.Tensor, fixed: FixedParts | None = None) -> torch.Tensor:
        """``fixed``: ``fixed_parts(vl, state)``, the parts no flow step changes, made once for all of them."""
        b, horizon, _ = noisy.shape
        fixed = fixed or self.fixed_parts(vl, state)
        actions = self.action_encoder(noisy, t_bucket) + self.position_embedding.weight[:horizon]
        future = self.future_tokens.weight[None].expand(b, -1, -1)
        x = torch.cat([fixed.state_token, future, actions], dim=1)
        temb = self.timestep_embedder(sinusoidal(t_bucket, self.cfg.head_width).to(x.dtype))
        for block, kv in zip(self.blocks, fixed.vl_kv):
            x = block(x, temb, vl, vl_mask, kv)
        scale, shift = self.ada_out(F.silu(temb))[:, None].chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale) + shift
        return self.action_decoder(x[:, -horizon:])

    def fixed_parts(self, vl: torch.Tensor, state: torch.Tensor) -> FixedParts:
        """The same at every Euler step, so sampling makes them once instead of once a step: fewer kernels, and a
        batch-1 chunk's time is its hundreds of small kernels."""
        return FixedParts(self.state_encoder(state)[:, None],
                          [block.attn.keys_values(vl) if block.cross else None for block in self.blocks])

    def _bucket(self, t: torch.Tensor) -> torch.Tensor:
        return (t * self.cfg.timestep_buckets).long().clamp(max=self.cfg.timestep_buckets - 1)

    def loss(self, vl: torch.Tensor, vl_mask: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
             action_mask: torch.Tensor) -> torch.Tensor:
        """Masked MSE between predicted and true velocity; ``action_mask`` (B, H) marks real (unpadded) steps."""
        vl = self.encode_context(vl, vl_mask)
        noise = torch.randn_like(actions)
        u = self.beta.sample((actions.shape[0],)).to(actions.device)
        t = (self.cfg.noise_s - u) / self.cfg.noise_s
        noisy = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
        pred = self.velocity(vl, vl_mask, state, noisy, self._bucket(t))
        mask = action_mask[..., None].to(pred.dtype).expand_as(pred)
        return (((pred.float() - (actions - noise).float()) ** 2) * mask).sum() / mask.sum().clamp(min=1)

    @torch.no_grad()
    def sample(self, vl: torch.Tensor, vl_mask: torch.Tensor, state: torch.Tensor,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise`` (B, horizon, action_dim) replaces the generator's draw: batched envs bring their own."""
        vl = self.encode_context(vl, vl_mask)
        b, steps = state.shape[0], self.cfg.num_inference_steps
        if noise is None:
            noise = torch.randn((b, self.cfg.action_horizon, self.cfg.action_dim), generator=generator,
                                device=generator.device if generator is not None else state.device)
        actions = noise.to(state)
        fixed = self.fixed_parts(vl, state)
        for i in range(steps):
            t = torch.full((b,), i / steps, device=state.device)
            actions = actions + self.velocity(vl, vl_mask, state, actions, self._bucket(t), fixed) / steps
        return actions
