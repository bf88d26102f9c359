"""A straightforward re-statement of the official TimeSformer forward, on our module's weights.

It follows the official computation step by step — one (B, 1 + H·W·T, D) sequence in (h w t) token
order, einops rearranges between temporal and spatial attention, explicit softmax(QKᵀ)V — and shares
no token-set code with :mod:`video_ats.models.timesformer`. Tests use it as an oracle for faithfulness
(the official checkpoints depend on this exact computation); benchmarks use it as the speed baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _attention(attn, x):
    b, n, c = x.shape
    h = attn.num_heads
    qkv = attn.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = (q @ k.transpose(-2, -1)) * (c // h) ** -0.5
    x = (a.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
    return attn.proj(x)


def _block(blk, x, b, t, w):
    num_spatial = (x.size(1) - 1) // t
    h = num_spatial // w
    # temporal
    xt = x[:, 1:, :]
    xt = rearrange(xt, "b (h w t) m -> (b h w) t m", b=b, h=h, w=w, t=t)
    res_t = _attention(blk.temporal_attn, blk.temporal_norm1(xt))
    res_t = rearrange(res_t, "(b h w) t m -> b (h w t) m", b=b, h=h, w=w, t=t)
    res_t = blk.temporal_fc(res_t)
    xt = x[:, 1:, :] + res_t
    # spatial
    init_cls = x[:, 0, :].unsqueeze(1)
    cls = init_cls.repeat(1, t, 1)
    cls = rearrange(cls, "b t m -> (b t) m", b=b, t=t).unsqueeze(1)
    xs = rearrange(xt, "b (h w t) m -> (b t) (h w) m", b=b, h=h, w=w, t=t)
    xs = torch.cat((cls, xs), 1)
    res_s = _attention(blk.attn, blk.norm1(xs))
    cls = rearrange(res_s[:, 0, :], "(b t) m -> b t m", b=b, t=t).mean(1, True)
    res_s = rearrange(res_s[:, 1:, :], "(b t) (h w) m -> b (h w t) m", b=b, h=h, w=w, t=t)
    x = torch.cat((init_cls, xt), 1) + torch.cat((cls, res_s), 1)
    return x + blk.mlp(blk.norm2(x))


@torch.no_grad()
def official_timesformer_forward(model, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` (a :class:`~video_ats.models.timesformer.TimeSformer`) computed the official
    way (eval mode, no ATS)."""
    b, c, t, hh, ww = x.shape
    x = rearrange(x, "b c t h w -> (b t) c h w")
    x = model.patch_embed.proj(x)
    w = x.size(-1)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat((model.cls_token.expand(x.size(0), -1, -1), x), dim=1)
    if x.size(1) != model.pos_embed.size(1):
        pos = model.pos_embed
        cls_pos = pos[0, 0, :].unsqueeze(0).unsqueeze(1)
        other = pos[0, 1:, :].unsqueeze(0).transpose(1, 2)
        p = int(other.size(2) ** 0.5)
        h = x.size(1) // w
        other = other.reshape(1, x.size(2), p, p)
        other = F.interpolate(other, size=(h, w), mode="nearest").flatten(2).transpose(1, 2)
        x = x + torch.cat((cls_pos, other), 1)
    else:
        x = x + model.pos_embed
    cls_tokens = x[:b, 0, :].unsqueeze(1)
    x = x[:, 1:]
    x = rearrange(x, "(b t) n m -> (b n) t m", b=b, t=t)
    if t != model.time_embed.size(1):
        te = F.interpolate(model.time_embed.transpose(1, 2), size=t, mode="nearest").transpose(1, 2)
        x = x + te
    else:
        x = x + model.time_embed
    x = rearrange(x, "(b n) t m -> b (n t) m", b=b, t=t)
    x = torch.cat((cls_tokens, x), dim=1)
    for blk in model.blocks:
        x = _block(blk, x, b, t, w)
    x = model.norm(x)
    return model.head(x[:, 0])
