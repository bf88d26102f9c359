"""Layers shared by the backbones: patch embedding, multi-head attention over token groups, MLP,
drop path.

Attention is split into steps (qkv → attention inside groups → proj) so a block can step in between:
ATS reads the CLS attention row before choosing which queries to compute, X-ViT shifts k/v channels
across frames on the packed tokens. :func:`attend_groups` runs the attention of packed rows inside
their groups (frames, or spatial positions across time) in one of three layouts:

* ``"bucketed"`` (default): groups of similar lengths in a few padded batches, planned on the host from
  the kept counts (:func:`video_ats.tokens.plan_buckets`), one SDPA call per batch;
* ``"padded"``: every group padded to the longest of the batch, one SDPA call;
* ``"nested"``: no padding at all, nested jagged tensors through SDPA (on CUDA the FlashAttention /
  memory-efficient variable-length kernels; on CPU torch pads internally, which is slow).

Groups that all have the same length (dense sets) always take the padded layout, which for them is a
copy-free view. See docs/performance.md for the measurements behind the default.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import drop_path
from torch import nn

from ..ats import autocast_off
from ..tokens import Groups

_ATTENTION_BACKEND = "sdpa"
ATTENTION_LAYOUTS = ("bucketed", "padded", "nested")
_ATTENTION_LAYOUT = "bucketed"

# Cost of one more padded batch in the bucketed layout, in (query, key) slot pairs of a group (see
# plan_buckets). CPU: measured (docs/performance.md). Other devices (CUDA): an estimate, not measured —
# ~20 µs of launches against tensor-core attention at ~1e-4 µs per pair.
BUCKET_CALL_COST = {"cpu": 500.0}
BUCKET_CALL_COST_OTHER = 250_000.0


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


@contextlib.contextmanager
def attention_layout(name: str):
    """Lay uneven groups out as ``"bucketed"`` (default), ``"padded"`` or ``"nested"`` (module docstring)."""
    global _ATTENTION_LAYOUT
    if name not in ATTENTION_LAYOUTS:
        raise ValueError(f"unknown attention layout {name!r}; use one of {ATTENTION_LAYOUTS}")
    old, _ATTENTION_LAYOUT = _ATTENTION_LAYOUT, name
    try:
        yield
    finally:
        _ATTENTION_LAYOUT = old


def split_heads(qkv: torch.Tensor, num_heads: int, parts: int = 3):
    """(G, L, parts·D) -> ``parts`` tensors (G, heads, L, D/heads) (q, k, v for the default 3)."""
    g, n, c = qkv.shape
    x = qkv.view(g, n, parts, num_heads, c // (parts * num_heads)).permute(2, 0, 3, 1, 4)
    return tuple(x[i] for i in range(parts))


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


Queries = Tuple[Groups, torch.Tensor, Optional[torch.Tensor]]


def attend_groups(groups: Groups, qkv: torch.Tensor, lead: Optional[torch.Tensor], num_heads: int,
                  bias: Optional[torch.Tensor] = None, queries: Optional[Queries] = None,
                  dropout: float = 0.0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Multi-head attention inside every group of packed rows.

    groups:  the groups of the keys (and of the queries unless ``queries`` is given).
    qkv:     (M, 3·D) packed q|k|v rows of the groups' tokens; lead: (G, lead, 3·D) the lead rows (a
             CLS per group) or None.
    bias:    optional (G, groups.length) float key bias in the padded layout (ToMe's proportional
             attention, −inf on padding); it makes the layout padded.
    queries: (q_groups, q (Mq, D), q_lead (G, lead, D)): only these queries attend (ATS: the CLS and
             the kept tokens of every frame); q_groups match ``groups`` one to one. The q part of
             ``qkv`` is then unused.
    Returns the outputs of the query token rows (Mq, D) and of the lead rows (G, lead, D) (or None).
    """
    q_groups = groups if queries is None else queries[0]
    layout = _ATTENTION_LAYOUT
    if bias is not None or (groups.full and q_groups.full):
        layout = "padded"              # nothing to save (dense sets: copy-free views), or a padded bias
    elif layout == "nested" and _ATTENTION_BACKEND == "math":
        layout = "bucketed"            # FLOP counters need explicit matmuls on dense tensors
    if layout == "padded":
        return _attend_padded(groups, qkv, lead, num_heads, bias, queries, dropout)
    if layout == "bucketed":
        return _attend_bucketed(groups, qkv, lead, num_heads, queries, dropout)
    return _attend_nested(groups, qkv, lead, num_heads, queries, dropout)


def _attend_padded(groups, qkv, lead, heads, bias, queries, dropout):
    mask = bias if bias is not None else groups.key_mask()
    if queries is None:
        q, k, v = split_heads(groups.pad(qkv, lead), heads)
        out_groups = groups
    else:
        d = qkv.shape[-1] // 3
        k, v = split_heads(groups.pad(qkv[:, d:], None if lead is None else lead[..., d:]), heads, parts=2)
        out_groups, q_rows, q_lead = queries
        (q,) = split_heads(out_groups.pad(q_rows, q_lead), heads, parts=1)
    o = merge_heads(attend(q, k, v, mask, dropout))
    return out_groups.unpad(o), (o[:, :groups.lead] if groups.lead else None)


def _rows_into(total: int, rows: torch.Tensor, x: torch.Tensor, lead_rows: torch.Tensor,
               lead: Optional[torch.Tensor]) -> torch.Tensor:
    """A (total, C) buffer holding ``x`` (M, C) at ``rows`` and ``lead`` (G, lead, C) at ``lead_rows``,
    zeros elsewhere (padding must be finite: a masked key still meets 0 · V)."""
    c = x.shape[-1]
    filled = rows.numel() + lead_rows.numel()
    buf = x.new_empty(total, c) if filled == total else x.new_zeros(total, c)
    buf.index_copy_(0, rows, x)
    if lead is not None and lead_rows.numel():
        buf.index_copy_(0, lead_rows, lead.reshape(-1, c).to(x.dtype))
    return buf


def _attend_bucketed(groups, qkv, lead, heads, queries, dropout):
    cost = BUCKET_CALL_COST.get(qkv.device.type, BUCKET_CALL_COST_OTHER)
    plan = groups.buckets(None if queries is None else queries[0], call_cost=cost)
    d = qkv.shape[-1] // 3
    if queries is None:
        kbuf = _rows_into(plan.k_total, plan.k_rows, qkv, plan.k_lead_rows, lead)
        qbuf = None
    else:
        kbuf = _rows_into(plan.k_total, plan.k_rows, qkv[:, d:], plan.k_lead_rows,
                          None if lead is None else lead[..., d:])
        qbuf = _rows_into(plan.q_total, plan.q_rows, queries[1], plan.q_lead_rows, queries[2])
    outs = []
    for b in plan.buckets:
        kb = kbuf[b.k_start: b.k_start + b.count * b.k_length].view(b.count, b.k_length, -1)
        if qbuf is None:
            q, k, v = split_heads(kb, heads)
        else:
            k, v = split_heads(kb, heads, parts=2)
            (q,) = split_heads(qbuf[b.q_start: b.q_start + b.count * b.q_length].view(b.count, b.q_length, d),
                               heads, parts=1)
        outs.append(merge_heads(attend(q, k, v, plan.key_bias(b, q.dtype), dropout)).reshape(-1, d))
    o = torch.cat(outs) if len(outs) > 1 else outs[0]
    out_lead = o.index_select(0, plan.q_lead_rows).view(-1, groups.lead, d) if groups.lead else None
    return o.index_select(0, plan.q_rows), out_lead


def _jagged_parts(j, x: torch.Tensor, lead: Optional[torch.Tensor], parts: int) -> torch.Tensor:
    """(parts, total, C/parts): the rows of ``x`` (M, C) and ``lead`` in jagged order, each part
    contiguous (what SDPA on nested tensors needs)."""
    c = x.shape[-1] // parts
    buf = x.new_empty(parts, j.total, c)
    buf.index_copy_(1, j.rows, x.view(-1, parts, c).transpose(0, 1))
    if lead is not None and j.lead_rows.numel():
        buf.index_copy_(1, j.lead_rows, lead.reshape(-1, parts, c).transpose(0, 1).to(x.dtype))
    return buf


def _attend_nested(groups, qkv, lead, heads, queries, dropout):
    d = qkv.shape[-1] // 3
    kj = groups.jagged()
    if queries is None:
        qj = kj
        q_vals, k_vals, v_vals = _jagged_parts(kj, qkv, lead, 3).unbind(0)
    else:
        qj = queries[0].jagged()
        k_vals, v_vals = _jagged_parts(kj, qkv[:, d:], None if lead is None else lead[..., d:], 2).unbind(0)
        q_vals = _jagged_parts(qj, queries[1], queries[2], 1)[0]

    def nested(values, j):
        nt = torch.nested.nested_tensor_from_jagged(values.view(j.total, heads, d // heads), j.offsets,
                                                    min_seqlen=j.min_length, max_seqlen=j.max_length)
        return nt.transpose(1, 2)                                          # (G, heads, j, d/heads)

    with warnings.catch_warnings():          # torch's own CPU fallback builds prototype strided nested tensors
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors is in prototype stage")
        o = F.scaled_dot_product_attention(nested(q_vals, qj), nested(k_vals, kj), nested(v_vals, kj),
                                           dropout_p=dropout)
    o = o.transpose(1, 2).values().reshape(qj.total, d)
    out_lead = o.index_select(0, qj.lead_rows).view(-1, groups.lead, d) if groups.lead else None
    return o.index_select(0, qj.rows), out_lead


def lead_attention(q_lead: torch.Tensor, k: torch.Tensor, k_lead: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Attention probabilities of each group's lead query (its CLS) over the group's keys, read at the
    token keys: (M, heads) float32, whatever the autocast state (ATS scores are float32).

    q_lead, k_lead: (G, heads, d) the lead query and key of each group (one lead slot); k: (M, heads, d)
    the keys of the packed tokens. The logits are taken on the packed rows and only they (heads
    channels, not D) are padded per group for the softmax.
    """
    if groups.lead != 1:
        raise ValueError("lead_attention needs groups with exactly one lead slot")
    scale = q_lead.shape[-1] ** -0.5
    with autocast_off(k.device):
        q = q_lead.float()
        tok = torch.einsum("mhd,mhd->mh", q.index_select(0, groups.group), k.float()) * scale
        own = torch.einsum("ghd,ghd->gh", q, k_lead.float()) * scale
        logits = groups.pad(tok, own.unsqueeze(1))                       # (G, length, heads)
        mask = groups.key_mask()
        if mask is not None:
            logits = logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return groups.unpad(logits.softmax(dim=1))


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

    def project_qkv(self, x: torch.Tensor, full_precision: bool = False) -> torch.Tensor:
        """The qkv projection of ``x``; ``full_precision``: outside autocast, in the weights' dtype (an
        ATS block's: the CLS attention row and the value norms it scores are then float32 from end to
        end; its attention itself still runs under autocast)."""
        if not full_precision:
            return self.qkv(x)
        with autocast_off(x.device):
            return self.qkv(x.to(self.qkv.weight.dtype))

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Plain attention over (G, L, D) sequences."""
        q, k, v = split_heads(self.qkv(x), self.num_heads)
        o = attend(q, k, v, key_mask, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(merge_heads(o)))

    def attend(self, q, k, v, key_mask=None):
        return attend(q, k, v, key_mask, self.attn_drop if self.training else 0.0)

    def attend_groups(self, groups: Groups, qkv: torch.Tensor, lead: Optional[torch.Tensor] = None,
                      bias: Optional[torch.Tensor] = None, queries: Optional[Queries] = None):
        """:func:`attend_groups` with this module's heads and attention dropout."""
        return attend_groups(groups, qkv, lead, self.num_heads, bias, queries,
                             self.attn_drop if self.training else 0.0)

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
