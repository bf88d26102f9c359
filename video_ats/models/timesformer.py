"""TimeSformer (Bertasius et al., ICML 2021) with divided space-time attention, and ATS inside it.

Faithful to the official model (facebookresearch/TimeSformer ``timesformer/models/vit.py``): parameter
names, LayerNorm eps 1e-6, qkv bias, CLS handling (repeated per frame in spatial attention, the T
outputs averaged), temporal_fc, and nearest-neighbour resizing of the position/time embeddings for
other input sizes. Official checkpoints load strictly (see ``adapt_state_dict``).

Tokens live in a :class:`~video_ats.tokens.TokenSet`, so after an ATS block the following blocks run
on the kept tokens only: temporal attention among the kept tokens of a spatial position, spatial
attention among the kept tokens of a frame, linear layers on the packed kept tokens of the batch.

Token merging (ToMe, :mod:`video_ats.tome`, the merging baseline; exclusive with ATS) runs at its
blocks after the spatial attention's residual and before the MLP: r tokens of every frame merge into
others of the same frame (matched on that attention's keys; the CLS never merges), each merged token
keeps the position of the token it merged into and carries its size, and all later attention
(temporal and spatial) adds log(size) of each key to the logits (proportional attention).
"""
from __future__ import annotations

import math
import re
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from ..checkpoint import resize_grid_embedding, resize_time_embedding, strip_prefix
from ..errors import UserError
from ..flops import FlopMeter
from ..tokens import TokenSet
from ..tome import MergeCount, resolve_r
from .layers import Attention, Mlp, PatchEmbed, drop_path_grouped, init_vit_weights, split_heads
from .merging import TOME_PROFILE_LABEL, TokenMerging, key_bias, merge_within_frames
from .registry import preset
from .sampling import TokenSampler, TokenSampling, sample_attention

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


# Initialisation of the position and time embeddings. "official": trunc-normal(0.02) position and zero
# time embeddings, as the official code (right when starting from image weights). "sincos": sinusoidal
# encodings (2-D over the patch grid, 1-D over frames; MAE-style), for training from scratch: with the
# official init, position and time carry almost no signal at the start; on classes that come in
# time-reversed pairs (left/right, grow/shrink, ...) the zero time embedding then stays reversal
# symmetric (frame t learns the embedding of frame T-1-t) and a small model stays blind to direction.
EMBED_INITS = ("official", "sincos")
SINCOS_SCALE = 0.5


def sincos_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, dim) Transformer-style sinusoidal encoding of the (N,) ``positions`` (dim even)."""
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = positions.double().unsqueeze(1) * freq
    return torch.stack([angle.sin(), angle.cos()], dim=2).flatten(1)


def sincos_embeddings(grid: int, num_frames: int, dim: int, scale: float = SINCOS_SCALE):
    """(1, grid²+1, D) position embedding (rows: half the channels, columns: the other half; CLS row
    zero) and (1, T, D) time embedding, sinusoidal, times ``scale``."""
    if dim % 4:
        raise ValueError(f"sincos embeddings need embed_dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pos = torch.cat([sincos_encoding(rows.flatten(), dim // 2), sincos_encoding(cols.flatten(), dim // 2)], dim=1)
    pos = torch.cat([torch.zeros(1, dim, dtype=pos.dtype), pos])
    time = sincos_encoding(torch.arange(num_frames), dim)
    return (scale * pos).float().unsqueeze(0), (scale * time).float().unsqueeze(0)


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention → temporal_fc → residual; spatial attention (ATS here) → residual;
    (ToMe here) → MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = drop_path

    def _drop(self, x: torch.Tensor, ts: TokenSet, per_clip: bool = False) -> torch.Tensor:
        clip = torch.arange(ts.batch_size, device=x.device) if per_clip else ts.clip
        return drop_path_grouped(x, clip, ts.batch_size, self.drop_path, self.training)

    def forward(self, ts: TokenSet, sampler: Optional[TokenSampler] = None, tome_r: Optional[MergeCount] = None,
                meter: Optional[FlopMeter] = None) -> TokenSet:
        """One block on ``ts``; ``sampler`` samples tokens in the spatial attention (ATS), ``tome_r``
        (exclusive with it) merges that many tokens inside every frame after the spatial attention."""
        xt = self.temporal(ts)                                  # temporal attention → temporal_fc → residual
        attended, cls, qkv = self.spatial(ts, xt, sampler)     # spatial attention per frame (ATS) → residual
        merged = self.merge(attended, qkv, tome_r)              # ToMe
        out = self.mlp_residual(merged, cls)                    # MLP
        if meter is not None:
            self.count_flops(meter, ts, attended, merged, sampler is not None)
        return out

    def temporal(self, ts: TokenSet) -> torch.Tensor:
        """The kept tokens of each spatial position attend to each other (no CLS); returns x + residual."""
        positions = ts.groups("position")
        qkv = self.temporal_attn.qkv(self.temporal_norm1(ts.x))
        o, _ = self.temporal_attn.attend_groups(positions, qkv, bias=key_bias(positions, ts))
        return ts.x + self._drop(self.temporal_fc(self.temporal_attn.project(o)), ts)

    def spatial(self, ts: TokenSet, xt: torch.Tensor, sampler: Optional[TokenSampler]):
        """Attention per frame; each frame gets a copy of the clip's CLS as its first query, and the T
        CLS outputs are averaged back. With a sampler only the CLS + kept queries get outputs.
        Returns the tokens after the residual, the new CLS (B, 1, D) and the tokens' qkv rows (M, 3D)."""
        b, t, d = ts.batch_size, ts.grid[0], xt.shape[-1]
        frames = ts.groups("frame", lead=1)
        scored = sampler is not None                        # ATS scores float32 q, k, v (under autocast too)
        qkv_tok = self.attn.project_qkv(self.norm1(xt), scored)
        qkv_cls = self.attn.project_qkv(self.norm1(ts.cls), scored).repeat_interleave(t, dim=0)   # (B·T, 1, 3D)
        if sampler is None:
            out = ts.replace(xt)
            o, o_cls = self.attn.attend_groups(frames, qkv_tok, qkv_cls, bias=key_bias(frames, ts))
        else:                             # the next block's temporal groups are ATS bookkeeping too
            out, o, o_cls, _ = sample_attention(sampler, self.attn, ts, frames, qkv_tok, qkv_cls, xt,
                                                after=lambda kept: kept.groups("position"))
        res_tok = self.attn.project(o)
        res_cls = self.attn.project(o_cls).view(b, t, d).mean(dim=1, keepdim=True)     # average over frames
        out = out.replace(out.x + self._drop(res_tok, out))
        return out, ts.cls + self._drop(res_cls, out, per_clip=True), qkv_tok

    def merge(self, ts: TokenSet, qkv: torch.Tensor, tome_r: Optional[MergeCount]) -> TokenSet:
        """ToMe: r tokens inside every frame merge, matched on the spatial attention's keys (from the
        tokens' qkv rows; every frame holds the same tokens, so they are a (B·T, N) grid)."""
        frames = ts.groups("frame", lead=1)
        r = resolve_r(tome_r, frames.length - 1) if tome_r is not None else 0
        if not r:
            return ts
        if not frames.full:
            raise RuntimeError("ToMe needs the same token count in every frame")
        with record_function(TOME_PROFILE_LABEL):
            k = split_heads(qkv.view(frames.num_groups, frames.length - 1, -1), self.attn.num_heads)[1]
            return merge_within_frames(ts, k.mean(dim=1), r)

    def mlp_residual(self, ts: TokenSet, cls: torch.Tensor) -> TokenSet:
        """MLP on the tokens and the CLS, as one packed matrix."""
        b, d = ts.batch_size, ts.x.shape[-1]
        y = torch.cat([ts.x, cls.view(b, d)], dim=0)
        y = y + self._drop_mlp(self.mlp(self.norm2(y)), ts)
        return ts.replace(y[:-b], cls=y[-b:].view(b, 1, d))

    def count_flops(self, meter: FlopMeter, ts: TokenSet, attended: TokenSet, merged: TokenSet,
                    sampled: bool) -> None:
        """Per clip: the tokens entering the block (``ts``), those with spatial-attention outputs
        (``attended``: ATS's kept ones) and those leaving it (``merged``), through each layer; the
        attention pairs of every group; ATS's extra CLS-row logits and ToMe's similarity matmul."""
        b, t, d = ts.batch_size, ts.grid[0], ts.x.shape[-1]
        n, n_attended, n_out = ts.num_tokens, attended.num_tokens, merged.num_tokens
        frames, attended_frames = ts.groups("frame", lead=1), attended.groups("frame", lead=1)
        meter.rows(n, self.temporal_norm1, self.temporal_attn.qkv, self.temporal_attn.proj, self.temporal_fc)
        meter.attention(ts.groups("position").pairs_per_clip(b), d)
        meter.rows(n + 1, self.norm1, self.attn.qkv)                        # tokens + the clip's CLS
        meter.attention(attended_frames.pairs_per_clip(b, keys=frames), d)
        meter.rows(n_attended + t, self.attn.proj)                         # + one CLS output per frame
        meter.rows(n_out + 1, self.norm2, self.mlp.fc1, self.mlp.fc2)
        if sampled:
            meter.add(frames.slots_per_clip(b) * d)                         # the CLS row scored by ATS
        if merged is not attended:
            n_frame = frames.length - 1              # A: the even tokens of a frame, B: the odd ones
            meter.add(t * ((n_frame + 1) // 2) * (n_frame // 2) * (d // self.attn.num_heads))  # A·Bᵀ

    def _drop_mlp(self, y: torch.Tensor, ts: TokenSet) -> torch.Tensor:
        clip = torch.cat([ts.clip, torch.arange(ts.batch_size, device=y.device)])
        return drop_path_grouped(y, clip, ts.batch_size, self.drop_path, self.training)



class TimeSformer(TokenSampling, TokenMerging, nn.Module):
    """TimeSformer with divided space-time attention; ``ats`` adds Adaptive Token Sampling, ``tome``
    (exclusive with ``ats``) token merging, e.g. ``{"blocks": [1, 2], "r": [0.5, 0.3]}``.

    Input (B, 3, T, H, W) float, output (B, num_classes) logits. After each forward,
    ``last_kept_tokens`` maps every ATS (or ToMe) block index to a (B,) tensor of the patch tokens each
    clip has left after that block.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 400,
                 num_frames: int = 8, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, head_drop_rate: float = 0.0,
                 ats=None, sampling_rate: int = 8, mean=KINETICS_MEAN, std=KINETICS_STD, tome=None,
                 norm_eps: float = 1e-6, embed_init: str = "official"):
        super().__init__()
        if embed_init not in EMBED_INITS:
            raise ValueError(f"embed_init must be one of {EMBED_INITS}, got {embed_init!r}")
        self.embed_init = embed_init
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.num_classes, self.num_frames, self.embed_dim, self.depth = num_classes, num_frames, embed_dim, depth
        self.patch_size = patch_size
        self.config = dict(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                           num_frames=num_frames, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                           mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, sampling_rate=sampling_rate,
                           mean=tuple(mean), std=tuple(std), norm_eps=norm_eps)
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.time_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            DividedSpaceTimeBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i],
                                  norm_eps) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_ats(ats)
        self._init_tome(tome)
        self._init_weights()

    # -- initialisation as in the official code ------------------------------------------------------
    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.embed_init == "sincos":
            grid = math.isqrt(self.pos_embed.shape[1] - 1)
            pos, time = sincos_embeddings(grid, self.num_frames, self.embed_dim)
            with torch.no_grad():
                self.pos_embed.copy_(pos)
                self.time_embed.copy_(time)
        init_vit_weights(self)
        for i, blk in enumerate(self.blocks):
            if i > 0:                      # the official code zero-initialises temporal_fc after block 0
                nn.init.zeros_(blk.temporal_fc.weight)
                nn.init.zeros_(blk.temporal_fc.bias)

    @property
    def head_keys(self):
        return ("head.weight", "head.bias")

    # -- embeddings ----------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor, meter: Optional[FlopMeter]) -> TokenSet:
        if x.dim() != 5 or x.shape[1] != self.patch_embed.proj.in_channels:
            raise ValueError(f"TimeSformer expects (B, {self.patch_embed.proj.in_channels}, T, H, W) input, "
                             f"got shape {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"input frames {h}x{w} are not multiples of the patch size {p}")
        tokens = self.patch_embed(x)                                   # (B, T, Hp, Wp, D)
        hp, wp = tokens.shape[2:4]
        tokens = tokens + self._pos_embed(hp, wp).view(1, 1, hp, wp, -1)
        tokens = self.pos_drop(tokens)
        tokens = tokens + self._time_embed(t).view(1, t, 1, 1, -1)
        tokens = self.time_drop(tokens)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, 1, -1)   # the CLS gets no time embedding
        if meter is not None:
            meter.rows(t * hp * wp, self.patch_embed.proj)
        return TokenSet.from_grid(tokens, cls, (t, hp, wp))

    def _pos_embed(self, hp: int, wp: int) -> torch.Tensor:
        pos = self.pos_embed[0, 1:]
        side = math.isqrt(int(pos.shape[0]))          # int(): shapes are tensors under tracing
        if (hp, wp) == (side, side):
            return pos
        grid = pos.T.reshape(1, -1, side, side)
        return F.interpolate(grid, size=(hp, wp), mode="nearest").flatten(2)[0].T

    def _time_embed(self, t: int) -> torch.Tensor:
        te = self.time_embed
        if te.shape[1] == t:
            return te[0]
        return F.interpolate(te.transpose(1, 2), size=t, mode="nearest")[0].T

    # -- forward -------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, flop_meter: Optional[FlopMeter] = None) -> torch.Tensor:
        ts = self._embed(x, flop_meter)
        self._start_record()
        for i, blk in enumerate(self.blocks):
            sampler, tome_r = self.sampler_at(i), self.tome_at(i)
            ts = blk(ts, sampler, tome_r, flop_meter)
            if sampler is not None or tome_r is not None:
                self._record_kept(i, ts)
        if flop_meter is not None:
            flop_meter.rows(1, self.norm)
        return self.norm(ts.cls[:, 0])

    def forward(self, x: torch.Tensor, flop_meter: Optional[FlopMeter] = None) -> torch.Tensor:
        feats = self.head_drop(self.forward_features(x, flop_meter))
        if flop_meter is not None and isinstance(self.head, nn.Linear):
            flop_meter.rows(1, self.head)
        return self.head(feats)

    # -- checkpoints ---------------------------------------------------------------------------------
    def adapt_state_dict(self, state: Dict[str, torch.Tensor], notes: list) -> Dict[str, torch.Tensor]:
        """Official TimeSformer (``model.`` prefix), this project's, or a timm ImageNet ViT -> our names,
        with the embeddings resized (nearest, as the official code) to this model's grid and frames."""
        if any(k.startswith("model.") for k in state):
            state = strip_prefix(state, "model.")
            notes.append("official TimeSformer checkpoint (model. prefix removed)")
        if any(k.startswith(_HF_MARKERS) for k in state):
            state = {hf_key_to_ours(k): v for k, v in state.items()}
            notes.append("Hugging Face transformers TimesformerForVideoClassification weights (names translated)")
        if "blocks.0.attn.qkv.weight" in state and "blocks.0.temporal_attn.qkv.weight" not in state:
            state = self._from_image_vit(state, notes)
        own = self.state_dict()
        if "pos_embed" in state and state["pos_embed"].shape != own["pos_embed"].shape:
            side = math.isqrt(int(own["pos_embed"].shape[1]) - 1)
            state["pos_embed"] = resize_grid_embedding(state["pos_embed"], (side, side), "nearest")
            notes.append(f"pos_embed resized to the {side}x{side} patch grid (nearest)")
        if "time_embed" in state and state["time_embed"].shape != own["time_embed"].shape:
            state["time_embed"] = resize_time_embedding(state["time_embed"], self.num_frames)
            notes.append(f"time_embed resized to {self.num_frames} frames (nearest)")
        return state

    def _from_image_vit(self, vit: Dict[str, torch.Tensor], notes: list) -> Dict[str, torch.Tensor]:
        """Initialise from an image ViT (timm names): spatial parts copied, temporal attention from the
        spatial one, temporal_fc zero (the block starts as an identity in time), time_embed zero."""
        if "fc_norm.weight" in vit or "dist_token" in vit or "reg_token" in vit:
            raise UserError("image ViT checkpoint has a layout TimeSformer cannot start from (fc_norm/dist/reg "
                            "tokens); use a plain ViT-B/16 (CLS token, final norm) weights file")
        state = {k: v for k, v in vit.items() if not k.startswith(("head.", "pre_logits."))}
        for i in range(self.depth):
            pre = f"blocks.{i}."
            for name in ("weight", "bias"):
                if pre + "norm1." + name in vit:
                    state[pre + "temporal_norm1." + name] = vit[pre + "norm1." + name].clone()
                for lin in ("qkv", "proj"):
                    if pre + f"attn.{lin}.{name}" in vit:
                        state[pre + f"temporal_attn.{lin}.{name}"] = vit[pre + f"attn.{lin}.{name}"].clone()
            state[pre + "temporal_fc.weight"] = torch.zeros(self.embed_dim, self.embed_dim)
            state[pre + "temporal_fc.bias"] = torch.zeros(self.embed_dim)
        state["time_embed"] = torch.zeros(1, self.num_frames, self.embed_dim)
        own = self.state_dict()
        for key in self.head_keys:
            state[key] = own[key]
        notes.append("initialised from an image ViT: temporal attention copied from spatial, temporal_fc and "
                     "time_embed zero, classifier freshly initialised")
        return state


# -- Hugging Face transformers format (TimesformerForVideoClassification / TimesformerModel) -------------
# Same math as ours (and the official model); only names differ. Inputs there are (B, T, C, H, W).
_HF_MARKERS = ("timesformer.embeddings.", "embeddings.patch_embeddings.")
_HF_TOP = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
           "embeddings.time_embeddings": "time_embed", "embeddings.patch_embeddings.projection": "patch_embed.proj",
           "layernorm": "norm"}
_HF_BLOCK = {"attention.attention.qkv": "attn.qkv", "attention.output.dense": "attn.proj",
             "temporal_attention.attention.qkv": "temporal_attn.qkv",
             "temporal_attention.output.dense": "temporal_attn.proj", "temporal_dense": "temporal_fc",
             "temporal_layernorm": "temporal_norm1", "layernorm_before": "norm1", "layernorm_after": "norm2",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
_HF_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def hf_key_to_ours(key: str) -> str:
    """A transformers TimeSformer parameter name -> ours; an unknown name is returned unchanged (so a
    strict load lists it as unexpected)."""
    if key.startswith("classifier."):
        return "head." + key[len("classifier."):]
    k = key[len("timesformer."):] if key.startswith("timesformer.") else key
    if k in _HF_TOP:
        return _HF_TOP[k]
    module, _, param = k.rpartition(".")
    if module in _HF_TOP and param in ("weight", "bias"):
        return f"{_HF_TOP[module]}.{param}"
    found = _HF_LAYER.match(k)
    if found and found.group(2) in _HF_BLOCK:
        return f"blocks.{found.group(1)}.{_HF_BLOCK[found.group(2)]}.{found.group(3)}"
    return key


def ours_key_to_hf(key: str) -> str:
    """Our parameter name -> the TimesformerForVideoClassification one (inverse of ``hf_key_to_ours``)."""
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    top = {v: k for k, v in _HF_TOP.items()}
    if key in top:
        return "timesformer." + top[key]
    module, _, param = key.rpartition(".")
    if module in top:
        return f"timesformer.{top[module]}.{param}"
    found = re.match(r"blocks\.(\d+)\.(.+)\.(weight|bias)$", key)
    block = {v: k for k, v in _HF_BLOCK.items()}
    if found and found.group(2) in block:
        return f"timesformer.encoder.layer.{found.group(1)}.{block[found.group(2)]}.{found.group(3)}"
    raise KeyError(f"no Hugging Face name for parameter {key!r}")


def _square(value, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise UserError(f"{what} {list(value)} is not square; video-ats TimeSformer needs square frames/patches")
        value = value[0]
    return int(value)


def timesformer_kwargs_from_hf(config: dict) -> dict:
    """TimeSformer constructor arguments from a transformers ``TimesformerConfig`` (its config.json dict);
    anything this model cannot represent is a UserError naming the field."""
    kind = config.get("model_type", "timesformer")
    if kind != "timesformer":
        raise UserError(f"config.json has model_type {kind!r}; only transformers TimeSformer folders "
                        "(model_type 'timesformer') can be loaded")
    problems = []
    attention = config.get("attention_type", "divided_space_time")
    if attention != "divided_space_time":
        problems.append(f"attention_type {attention!r} (only 'divided_space_time' is implemented)")
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        problems.append(f"hidden_act {act!r} (only exact 'gelu')")
    hidden, heads = int(config.get("hidden_size", 768)), int(config.get("num_attention_heads", 12))
    if hidden % heads:
        problems.append(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    inter = int(config.get("intermediate_size", 3072))
    mlp_ratio = inter / hidden
    if int(hidden * mlp_ratio) != inter:
        problems.append(f"intermediate_size {inter} is not expressible as hidden_size × mlp_ratio")
    img, patch = _square(config.get("image_size", 224), "image_size"), _square(config.get("patch_size", 16), "patch_size")
    if img % patch:
        problems.append(f"image_size {img} is not a multiple of patch_size {patch}")
    if problems:
        raise UserError("this transformers TimeSformer cannot be represented: " + "; ".join(problems))
    id2label = config.get("id2label")
    num_classes = len(id2label) if id2label else int(config.get("num_labels", 2))
    if config.get("architectures") == ["TimesformerModel"]:          # the backbone alone: no classifier
        num_classes = 0
    return dict(img_size=img, patch_size=patch, in_chans=int(config.get("num_channels", 3)),
                num_frames=int(config.get("num_frames", 8)), embed_dim=hidden,
                depth=int(config.get("num_hidden_layers", 12)), num_heads=heads, mlp_ratio=mlp_ratio,
                qkv_bias=bool(config.get("qkv_bias", True)), norm_eps=float(config.get("layer_norm_eps", 1e-6)),
                num_classes=num_classes, drop_rate=float(config.get("hidden_dropout_prob", 0.0)),
                attn_drop_rate=float(config.get("attention_probs_dropout_prob", 0.0)),
                drop_path_rate=float(config.get("drop_path_rate", 0.0) or 0.0))


# constructor arguments that decide parameter shapes or the forward (the rest is regularisation)
HF_ARCH_FIELDS = {"img_size": "image_size", "patch_size": "patch_size", "in_chans": "num_channels",
                  "num_frames": "num_frames", "embed_dim": "hidden_size", "depth": "num_hidden_layers",
                  "num_heads": "num_attention_heads", "mlp_ratio": "intermediate_size/hidden_size",
                  "qkv_bias": "qkv_bias", "norm_eps": "layer_norm_eps", "num_classes": "id2label"}


def hf_config_from_model(model: "TimeSformer", class_names=None) -> dict:
    """The transformers ``TimesformerConfig`` dict describing ``model`` (dense; no ATS field)."""
    c = model.config
    if c["img_size"] % c["patch_size"]:
        raise UserError("image size is not a multiple of the patch size")
    n = model.num_classes
    names = list(class_names) if class_names is not None and len(class_names) == n else [f"LABEL_{i}" for i in range(n)]
    return {
        "architectures": ["TimesformerForVideoClassification"], "model_type": "timesformer",
        "image_size": c["img_size"], "patch_size": c["patch_size"], "num_channels": c["in_chans"],
        "num_frames": c["num_frames"], "hidden_size": c["embed_dim"], "num_hidden_layers": c["depth"],
        "num_attention_heads": c["num_heads"], "intermediate_size": model.blocks[0].mlp.fc1.out_features,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": c["norm_eps"], "qkv_bias": c["qkv_bias"],
        "attention_type": "divided_space_time", "drop_path_rate": 0,     # an int: transformers 5 checks the type
        "id2label": {str(i): str(name) for i, name in enumerate(names)},
        "label2id": {str(name): i for i, name in enumerate(names)},
    }


_TSF = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mean=KINETICS_MEAN, std=KINETICS_STD)
preset(TimeSformer, "timesformer", img_size=224, num_frames=8, sampling_rate=32)
preset(TimeSformer, "timesformer_base_8x224", img_size=224, num_frames=8, sampling_rate=32, **_TSF)
preset(TimeSformer, "timesformer_hr_16x448", img_size=448, num_frames=16, sampling_rate=16, **_TSF)
preset(TimeSformer, "timesformer_large_96x224", img_size=224, num_frames=96, sampling_rate=4, **_TSF)
