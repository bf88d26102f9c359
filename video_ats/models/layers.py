"""Layers shared by the backbones: patch embedding, multi-head attention over padded token groups, MLP,
drop path.

Attention is split into steps (qkv → group padding → attend → un-pad → proj) so a block can step in
between: ATS reads the CLS attention row before choosing which queries to compute, X-ViT shifts
k/v channels across frames on the packed tokens.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import drop_path
from torch import nn

_ATTENTION_BACKEND = "sdpa"


@contextlib.contextmanager
def attention_backend(name: str):
    """Use "math" (explicit softmax(QKᵀ)V, visible to FLOP counters such as fvcore) or "sdpa"."""
    global _ATTENTION_BACKEND
    if name not in ("sdpa", "math"):
        raise ValueError(f"unknown attention backend {name!r}")
    old, _ATTENTION_BACKEND = _ATTENTION_BACKEND, name
    try:
        yield
    finally:
        _ATTENTION_BACKEND = old


def split_heads(qkv: torch.Tensor, num_heads: int):
    """(G, L, 3·D) -> q, k, v each (G, heads, L, D/heads)."""
    g, n, c3 = qkv.shape
    qkv = qkv.view(g, n, 3, num_heads, c3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def merge_heads(o: torch.Tensor) -> torch.Tensor:
    """(G, heads, L, d) -> (G, L, heads·d)."""
    g, h, n, d = o.shape
    return o.transpose(1, 2).reshape(g, n, h * d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: Optional[torch.Tensor] = None,
           dropout: float = 0.0) -> torch.Tensor:
    """softmax(q kᵀ / √d) v per group. ``key_mask`` (G, Lk): bool, True for real keys (every group
    needs one), or a float bias added to the logits of each key (−inf masks it; proportional attention)."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if mask is not None and mask.is_floating_point():
        mask = mask.to(q.dtype)
    if _ATTENTION_BACKEND == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    a = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        a = a + mask if mask.is_floating_point() else a.masked_fill(~mask, float("-inf"))
    a = F.dropout(a.softmax(dim=-1), dropout)
    return a @ v


def attention_row(q: torch.Tensor, k: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attention probabilities of one query per group: q (G, H, d), k (G, H, L, d) -> (G, H, L) fp32."""
    logits = torch.einsum("ghd,ghld->ghl", q.float(), k.float()) * q.shape[-1] ** -0.5
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, :], float("-inf"))
    return logits.softmax(dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with the official parameter names (``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Plain attention over (G, L, D) sequences."""
        q, k, v = split_heads(self.qkv(x), self.num_heads)
        o = attend(q, k, v, key_mask, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(merge_heads(o)))

    def attend(self, q, k, v, key_mask=None):
        return attend(q, k, v, key_mask, self.attn_drop if self.training else 0.0)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """fc1 → GELU → fc2 (names as in the official checkpoints)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def drop_path_grouped(x: torch.Tensor, group: torch.Tensor, num_groups: int, p: float,
                      training: bool) -> torch.Tensor:
    """Stochastic depth on packed rows: one keep/drop decision per group (a clip for TimeSformer, a frame
    for X-ViT, as the official models draw one per sample of their batch), applied to every row of it.

    ``group`` gives the group of each row along dim 0 of ``x``. The decisions are timm's ``drop_path`` on
    one value per group (keep with probability 1 - p, scaled by 1 / (1 - p)); rows of different groups sit
    in one packed tensor, so timm's per-row form cannot be applied to ``x`` directly."""
    if p == 0.0 or not training:
        return x
    keep = drop_path(x.new_ones(num_groups), p, training)
    return x * keep[group].view(-1, *([1] * (x.dim() - 1)))


class PatchEmbed(nn.Module):
    """Conv2d patch embedding of every frame (official name ``patch_embed.proj``):
    (B, C, T, H, W) -> (B, T, H/p, W/p, D)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.proj(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.view(b, t, *y.shape[1:]).permute(0, 1, 3, 4, 2)


def init_vit_weights(module: nn.Module) -> None:
    """The official/timm ViT initialisation: Linear trunc-normal(std 0.02) with zero bias, LayerNorm
    identity (weight 1, bias 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
