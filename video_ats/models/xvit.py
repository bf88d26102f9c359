"""X-ViT (Bulat et al., NeurIPS 2021, "Space-time Mixing Attention for Video Transformer"), and ATS inside it.

Faithful to the official model (1adrianb/video-transformers, XVIT backbone + "vit" consensus head):

* the clip is a (B·T) batch of frames (row b·T + t) through a per-frame ViT: Conv2d patch embedding,
  one CLS per frame, position embedding stored for the 224/p grid and resized bicubically
  (align_corners=False, CLS row untouched) for other crops;
* ``temp_embed`` (1, F, 1, D) is added to every token of frame t, CLS included, as ``temp_embed[t mod F]``
  (the released models use F = 8 with 16 frames);
* in every block, k and v (never q) are shifted TSM-style inside groups of ``num_segments`` consecutive
  frames over the flat (head·head_dim) channel index: channels [0, fold) of frame s come from s+1,
  [fold, 2·fold) from s−1, zeros past the group ends, fold = D // shift_div; all tokens incl. CLS;
* final LayerNorm, per-frame CLS → (B, T, D) → temporal head: its own CLS, ``head_depth`` blocks with
  qkv_bias=False and LayerNorm eps 1e-5, no position embedding, then LayerNorm → Linear → GELU →
  Dropout → Linear. Module names mirror the official ones, so official checkpoints load by a prefix
  rename (``base_model.`` → ``""``, ``consensus.`` → ``head.``; see :meth:`XViT.adapt_state_dict`).

With ATS (see docs/xvit.md) each clip keeps a subset of its space-time tokens; per-frame CLS tokens
always stay. Before the first ATS block the model runs on the official (B·T, 1+P, D) layout, where the
shift is a slice copy. From the ATS block on, the state is one packed matrix of rows
``[kept tokens of the batch in (clip, t, p) order; the B·T frame CLS tokens]`` on which every linear
layer runs; attention pads per frame (:meth:`TokenSet.groups`). The k/v shift of a kept token at
(t, p) gathers the rows of (t±1, p), precomputed once per token set; a *dropped* neighbour
contributes zeros — exactly what a frame at a group end receives from its missing neighbour, so the
model has seen it in training, and dropped tokens cost nothing afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import resize_grid_embedding, strip_prefix
from ..errors import UserError
from ..flops import FlopMeter
from ..tokens import TokenSet
from .layers import Attention, Mlp, PatchEmbed, drop_path_grouped, init_vit_weights, merge_heads, split_heads
from .registry import preset
from .sampling import TokenSampler, TokenSampling, sample_attention

XVIT_MEAN = (0.5, 0.5, 0.5)
XVIT_STD = (0.5, 0.5, 0.5)
POS_EMBED_SIZE = 224          # the official model stores its position embedding for 224 crops


# -- temporal channel shift ---------------------------------------------------------------------------

def shift_kv_dense(qkv: torch.Tensor, segments: int, fold: int) -> torch.Tensor:
    """Shift the k and v channels of a (B·T, L, 3·D) qkv tensor across frames (rows b·T + t).

    Inside each group of ``segments`` consecutive frames: channels [0, fold) of frame s come from
    frame s+1, [fold, 2·fold) from frame s−1, zeros past the group ends; q and all other channels are
    unchanged. Done in place on the fresh qkv (the qkv Linear does not keep its output for backward),
    so only the 4·fold shifted channels are copied.
    """
    bt, length, c3 = qkv.shape
    if bt % segments:
        raise ValueError(f"{bt} frames do not split into groups of num_segments={segments}")
    if fold == 0 or segments == 1:
        return qkv
    d = c3 // 3
    x = qkv.view(bt // segments, segments, length, 3, d)
    from_next = x[:, 1:, :, 1:, :fold].clone()
    from_prev = x[:, :-1, :, 1:, fold:2 * fold].clone()
    x[:, :-1, :, 1:, :fold] = from_next
    x[:, -1, :, 1:, :fold] = 0
    x[:, 1:, :, 1:, fold:2 * fold] = from_prev
    x[:, 0, :, 1:, fold:2 * fold] = 0
    return qkv


@dataclass
class PackedLayout:
    """Everything the packed blocks need about a token set, computed once per set (it changes only at
    ATS blocks). Rows are ``[ts tokens (M); frame CLS tokens (B·T, row b·T + t)]``."""
    ts: TokenSet
    next_row: torch.Tensor        # (R,) row of the (t+1, p) neighbour in the same group (clamped to 0)
    prev_row: torch.Tensor        # (R,) row of the (t−1, p) neighbour
    has_next: torch.Tensor        # (R, 1, 1) 1.0 where that neighbour exists (kept, same group), else 0.0
    has_prev: torch.Tensor
    frame: torch.Tensor           # (R,) frame id b·T + t of each row (stochastic depth is per frame)

    @property
    def num_tokens(self) -> int:
        return self.ts.clip.numel()

    @classmethod
    def build(cls, ts: TokenSet, segments: int) -> "PackedLayout":
        t_ = ts.grid[0]
        b = ts.batch_size
        m = ts.clip.numel()
        dev = ts.clip.device
        # token neighbours: one lookup table for both directions; -1 where dropped or outside [0, T)
        both = ts.index_of(torch.cat([ts.clip, ts.clip]), torch.cat([ts.t + 1, ts.t - 1]),
                           torch.cat([ts.p, ts.p]))
        nxt, prv = both[:m], both[m:]
        pos = ts.t % segments
        nxt = torch.where(pos != segments - 1, nxt, -1)                 # never across a group end
        prv = torch.where(pos != 0, prv, -1)
        # frame CLS rows: always present, neighbours are the adjacent CLS rows of the same group
        r = torch.arange(b * t_, device=dev)
        cpos = (r % t_) % segments
        cnxt = torch.where(cpos != segments - 1, m + r + 1, -1)
        cprv = torch.where(cpos != 0, m + r - 1, -1)
        nxt, prv = torch.cat([nxt, cnxt]), torch.cat([prv, cprv])
        frame = torch.cat([ts.clip * t_ + ts.t, r])
        dtype = ts.x.dtype
        return cls(ts, nxt.clamp(min=0), prv.clamp(min=0), (nxt >= 0).to(dtype).view(-1, 1, 1),
                   (prv >= 0).to(dtype).view(-1, 1, 1), frame)


def shift_kv_packed(qkv: torch.Tensor, layout: PackedLayout, fold: int) -> torch.Tensor:
    """:func:`shift_kv_dense` for packed rows (R, 3·D), in place: gathers of the neighbours' k/v channels,
    zeros where the neighbour was dropped by ATS or lies past the end of the shift group."""
    if fold == 0:
        return qkv
    r, c3 = qkv.shape
    d = c3 // 3
    kv = qkv.view(r, 3, d)[:, 1:]
    from_next = kv[:, :, :fold].index_select(0, layout.next_row)
    from_prev = kv[:, :, fold:2 * fold].index_select(0, layout.prev_row)
    dst = qkv.view(r, 3, d)
    dst[:, 1:, :fold] = from_next.mul_(layout.has_next)
    dst[:, 1:, fold:2 * fold] = from_prev.mul_(layout.has_prev)
    return qkv


@dataclass
class FrameRows:
    """X-ViT's tokens between blocks.

    Until the first ATS block: the official layout, ``x`` (B·T, 1 + P, D) with each frame's CLS in
    slot 0, ``layout`` None. From the ATS block on: ``x`` the packed rows [kept tokens of the batch in
    (clip, t, p) order; the B·T frame CLS tokens] and their ``layout`` (which holds the kept token set).
    """
    x: torch.Tensor
    batch_size: int
    grid: Tuple[int, int, int]
    layout: Optional[PackedLayout] = None
    _tokens: Optional[TokenSet] = field(default=None, repr=False)

    def tokens(self) -> TokenSet:
        """The token set (positions): the layout's, or, while dense, every token of the grid (built on
        first use; its features are the tokens of ``x``)."""
        if self.layout is not None:
            return self.layout.ts
        if self._tokens is None:
            b, t = self.batch_size, self.grid[0]
            self._tokens = TokenSet.from_grid(self.x[:, 1:], self.x[:, 0].view(b, t, -1), self.grid)
        return self._tokens

    def frames(self):
        """The per-frame attention groups, CLS in slot 0."""
        return self.tokens().groups("frame", lead=1)

    def split(self, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """A tensor in this layout -> (tokens (M, C) in packed order, frame CLS (B·T, C))."""
        if self.layout is None:
            return y[:, 1:].reshape(-1, y.shape[-1]), y[:, 0]
        m = self.layout.num_tokens
        return y[:m], y[m:]

    def frame_ids(self) -> torch.Tensor:
        """Frame b·T + t of each leading row of ``x`` (stochastic depth is per frame)."""
        if self.layout is None:
            return torch.arange(self.x.shape[0], device=self.x.device)
        return self.layout.frame


# -- blocks -------------------------------------------------------------------------------------------

class SpaceTimeMixingBlock(nn.Module):
    """Pre-norm ViT block whose per-frame attention reads k/v channels shifted from the neighbouring
    frames (the official names: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2); ``num_segments``
    and ``fold`` set the shift (see :func:`shift_kv_dense`)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, num_segments: int = 1,
                 fold: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = drop_path
        self.num_segments, self.fold = num_segments, fold

    def forward(self, s: FrameRows, sampler: Optional[TokenSampler] = None,
                meter: Optional[FlopMeter] = None) -> FrameRows:
        """One block on ``s``; ``sampler`` samples tokens in the attention (ATS): the result is then the
        packed rows of the kept tokens."""
        qkv = self.mixing_qkv(s, sampler is not None)   # norm1 → qkv → k/v shifted across frames
        out, o = self.attention(s, qkv, sampler)        # per frame (ATS here)
        out = self.residual_mlp(out, o)                 # proj → residual → MLP
        if meter is not None:
            self.count_flops(meter, s, out, sampler is not None)
        return out

    def mixing_qkv(self, s: FrameRows, scored: bool = False) -> torch.Tensor:
        """The qkv rows in ``s``'s layout, k/v channels shifted across frames; ``scored`` (an ATS block):
        float32 under autocast too, since ATS scores them."""
        qkv = self.attn.project_qkv(self.norm1(s.x), scored)
        if s.layout is None:                            # frames are rows of the batch: the shift is a slice copy
            return shift_kv_dense(qkv, self.num_segments, self.fold)
        return shift_kv_packed(qkv, s.layout, self.fold)

    def attention(self, s: FrameRows, qkv: torch.Tensor, sampler: Optional[TokenSampler]):
        """Attention per frame. Returns the rows that go on (``s``'s, or with a sampler the packed rows
        of the frame CLS + kept tokens, which only get outputs) and their attention output, same layout."""
        if s.layout is None and sampler is None:       # the official (B·T, 1 + P) layout: plain attention
            return s, merge_heads(self.attn.attend(*split_heads(qkv, self.attn.num_heads)))
        b, t, d = s.batch_size, s.grid[0], s.x.shape[-1]
        tok, cls = s.split(qkv)
        cls = cls.reshape(b * t, 1, -1)
        if sampler is None:
            o, o_cls = self.attn.attend_groups(s.frames(), tok, cls)
            return s, torch.cat([o, o_cls[:, 0]], dim=0)
        x_tok, x_cls = (s.tokens().x, s.x[:, 0]) if s.layout is None else s.split(s.x)
        kept, o, o_cls, layout = sample_attention(
            sampler, self.attn, s.tokens(), s.frames(), tok, cls, x_tok,
            after=lambda kept_set: PackedLayout.build(kept_set, self.num_segments))   # the shift's neighbour rows
        o = torch.cat([o, o_cls[:, 0]], dim=0)
        return FrameRows(torch.cat([kept.x, x_cls.reshape(b * t, d)], dim=0), b, s.grid, layout), o

    def residual_mlp(self, s: FrameRows, o: torch.Tensor) -> FrameRows:
        """proj → residual → MLP → residual on the rows of ``s``; stochastic depth per frame (the official
        backbone sees a (B·T) batch of frames, so its DropPath draws one decision per frame)."""
        frame, n = s.frame_ids(), s.batch_size * s.grid[0]
        x = s.x + drop_path_grouped(self.attn.project(o), frame, n, self.drop_path, self.training)
        x = x + drop_path_grouped(self.mlp(self.norm2(x)), frame, n, self.drop_path, self.training)
        return FrameRows(x, s.batch_size, s.grid, s.layout)

    def count_flops(self, meter: FlopMeter, s: FrameRows, out: FrameRows, sampled: bool) -> None:
        """Per clip: the rows entering (tokens + one CLS per frame) through norm1/qkv, the attention
        pairs per frame (queries leaving × keys entering), the rows leaving through proj/norm2/MLP, and
        ATS's extra CLS-row logits."""
        b, t, d = s.batch_size, s.grid[0], s.x.shape[-1]
        if out.layout is None:                          # dense: T frames of L = 1 + P tokens
            length = s.x.shape[1]
            rows_in = rows_out = t * length
            pairs = rows_in * length
        else:
            rows_in, rows_out = s.tokens().num_tokens + t, out.tokens().num_tokens + t
            pairs = out.frames().pairs_per_clip(b, keys=s.frames())
        meter.rows(rows_in, self.norm1, self.attn.qkv)
        meter.attention(pairs, d)
        meter.rows(rows_out, self.attn.proj, self.norm2, self.mlp.fc1, self.mlp.fc2)
        if sampled:
            meter.add(s.frames().slots_per_clip(b) * d)                     # the CLS row scored by ATS


class HeadBlock(nn.Module):
    """The temporal head's transformer block (timm-0.4 Block: qkv_bias=False, nn.LayerNorm eps 1e-5)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop: float = 0.0,
                 attn_drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads, qkv_bias=False, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, meter: Optional[FlopMeter] = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        if meter is not None:
            n = x.shape[1]
            meter.rows(n, self.norm1, self.attn.qkv, self.attn.proj, self.norm2, self.mlp.fc1, self.mlp.fc2)
            meter.attention(n * n, x.shape[2])
        return x


class TemporalHead(nn.Module):
    """The official "vit" consensus: own CLS + the T frame features → blocks → CLS → MLP head."""

    def __init__(self, dim: int, num_classes: int, depth: int = 1, num_heads: int = 12, mlp_dim: int = 768,
                 mlp_ratio: float = 4.0, drop_rate: float = 0.5):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_encoder = nn.Sequential(*[HeadBlock(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim, eps=1e-5), nn.Linear(dim, mlp_dim), nn.GELU(),
                                      nn.Dropout(drop_rate), nn.Linear(mlp_dim, num_classes))

    def forward(self, feats: torch.Tensor, meter: Optional[FlopMeter] = None) -> torch.Tensor:
        """(B, T, D) frame features -> (B, num_classes)."""
        x = torch.cat([self.cls_token.expand(feats.shape[0], -1, -1), feats], dim=1)
        for blk in self.temporal_encoder:
            x = blk(x, meter)
        if meter is not None:
            meter.rows(1, self.mlp_head[0], self.mlp_head[1], self.mlp_head[4])
        return self.mlp_head(x[:, 0])


# -- the model ----------------------------------------------------------------------------------------

class XViT(TokenSampling, nn.Module):
    """X-ViT with space-time mixing attention and the temporal ("vit") head; ``ats`` adds ATS.

    Input (B, 3, T, H, W) float, output (B, num_classes) logits. After each forward,
    ``last_kept_tokens`` maps every ATS block index to a (B,) tensor of tokens kept per clip.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 400,
                 num_frames: int = 8, num_segments: Optional[int] = None,
                 temporal_embed_frames: Optional[int] = None, shift_div: int = 8, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 head_depth: int = 1, head_num_heads: int = 12, head_mlp_dim: int = 768,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 head_drop_rate: float = 0.5, pos_embed_size: int = POS_EMBED_SIZE, ats=None,
                 sampling_rate: int = 16, mean=XVIT_MEAN, std=XVIT_STD):
        super().__init__()
        num_segments = num_frames if num_segments is None else num_segments
        temporal_embed_frames = num_frames if temporal_embed_frames is None else temporal_embed_frames
        if img_size % patch_size or pos_embed_size % patch_size:
            raise UserError(f"img_size {img_size} and pos_embed_size {pos_embed_size} must be multiples of "
                            f"patch_size {patch_size}")
        for name, value in (("num_frames", num_frames), ("num_segments", num_segments),
                            ("temporal_embed_frames", temporal_embed_frames), ("shift_div", shift_div)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive int, got {value!r}")
        if num_frames % num_segments:
            raise UserError(f"num_frames {num_frames} is not a multiple of num_segments {num_segments}: the "
                            "k/v shift works in groups of num_segments consecutive frames")
        if shift_div < 2:
            raise UserError(f"shift_div must be ≥ 2 (two folds of D/shift_div channels are shifted), got {shift_div}")
        if embed_dim % head_num_heads:
            raise UserError(f"embed_dim {embed_dim} is not divisible by head_num_heads {head_num_heads}")
        self.num_classes, self.num_frames, self.embed_dim, self.depth = num_classes, num_frames, embed_dim, depth
        self.patch_size, self.num_segments, self.shift_div = patch_size, num_segments, shift_div
        self.fold = embed_dim // shift_div
        self.config = dict(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                           num_frames=num_frames, num_segments=num_segments,
                           temporal_embed_frames=temporal_embed_frames, shift_div=shift_div, embed_dim=embed_dim,
                           depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                           head_depth=head_depth, head_num_heads=head_num_heads, head_mlp_dim=head_mlp_dim,
                           pos_embed_size=pos_embed_size, sampling_rate=sampling_rate,
                           mean=tuple(mean), std=tuple(std))
        grid = pos_embed_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, temporal_embed_frames, 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            SpaceTimeMixingBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i],
                                 num_segments, self.fold) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = TemporalHead(embed_dim, num_classes, head_depth, head_num_heads, head_mlp_dim, mlp_ratio,
                                 head_drop_rate)
        self._init_ats(ats)
        self._init_weights()

    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.head.cls_token, std=0.02)
        init_vit_weights(self)

    @property
    def head_keys(self):
        return ("head.mlp_head.4.weight", "head.mlp_head.4.bias")

    # -- embeddings ----------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor, meter: Optional[FlopMeter]) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B·T, 1 + P, D), frame rows b·T + t, CLS in slot 0."""
        c_in = self.patch_embed.proj.in_channels
        if x.dim() != 5 or x.shape[1] != c_in:
            raise ValueError(f"X-ViT expects (B, {c_in}, T, H, W) input, got shape {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"input frames {h}x{w} are not multiples of the patch size {p}")
        if t % self.num_segments:
            raise ValueError(f"{t} input frames do not split into shift groups of num_segments="
                             f"{self.num_segments}")
        hp, wp = h // p, w // p
        tokens = self.patch_embed(x).reshape(b * t, hp * wp, -1)                    # (B·T, P, D)
        cls = self.cls_token.expand(b * t, -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self._pos_embed(hp, wp)
        # temp_embed[t mod F] on every token of frame t (the official view(-1, F, N, D) + temp_embed)
        frames = torch.arange(t, device=x.device) % self.temp_embed.shape[1]
        tokens = (tokens.view(b, t, 1 + hp * wp, -1) + self.temp_embed[0, frames]).view(b * t, 1 + hp * wp, -1)
        if meter is not None:
            meter.rows(t * hp * wp, self.patch_embed.proj)
        return self.pos_drop(tokens)

    def _pos_embed(self, hp: int, wp: int) -> torch.Tensor:
        side = self.config["pos_embed_size"] // self.patch_size
        if (int(hp), int(wp)) == (side, side):
            return self.pos_embed
        # resized here rather than with checkpoint.resize_grid_embedding: that one reads the grid side
        # from the tensor shape, which breaks under jit tracing (fvcore)
        pos = self.pos_embed
        grid = pos[:, 1:].transpose(1, 2).reshape(1, -1, side, side)
        grid = F.interpolate(grid, size=(int(hp), int(wp)), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    # -- forward -------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, flop_meter: Optional[FlopMeter] = None) -> torch.Tensor:
        """Per-frame features (B, T, D): the final-normed frame CLS tokens of the backbone."""
        b, t = x.shape[0], x.shape[2]
        grid = (t, x.shape[3] // self.patch_size, x.shape[4] // self.patch_size)
        s = FrameRows(self._embed(x, flop_meter), b, grid)
        self._start_record()
        for i, blk in enumerate(self.blocks):
            sampler = self.sampler_at(i)
            s = blk(s, sampler, flop_meter)
            if sampler is not None:
                self._record_kept(i, s.tokens())
        cls = s.x[:, 0] if s.layout is None else s.x[s.layout.num_tokens:]
        if flop_meter is not None:
            flop_meter.rows(t, self.norm)                                     # only the CLS rows are used
        return self.norm(cls).view(b, t, -1)

    def forward(self, x: torch.Tensor, flop_meter: Optional[FlopMeter] = None) -> torch.Tensor:
        return self.head(self.forward_features(x, flop_meter), flop_meter)

    # -- checkpoints ---------------------------------------------------------------------------------
    def adapt_state_dict(self, state: Dict[str, torch.Tensor], notes: list) -> Dict[str, torch.Tensor]:
        """Official X-ViT (``base_model.*``, ``consensus.*``, ``new_fc.*``), this project's, or a timm
        ImageNet ViT (backbone initialisation) -> our names."""
        if any(k.startswith(("base_model.", "consensus.")) for k in state):
            unused = sorted(k for k in state if k.startswith("new_fc."))
            state = {k: v for k, v in state.items() if not k.startswith("new_fc.")}
            state = strip_prefix(state, "base_model.")
            state = {("head." + k[len("consensus."):] if k.startswith("consensus.") else k): v
                     for k, v in state.items()}
            notes.append("official X-ViT checkpoint (base_model./consensus. prefixes renamed)")
            if unused:
                notes.append(f"ignored {unused}: the official backbone's own classifier, never used in its "
                             "forward (the temporal head classifies)")
        elif any(".temporal_attn." in k for k in state):
            raise UserError("this is a TimeSformer checkpoint (it has temporal_attn weights); load it into a "
                            "TimeSformer model, not X-ViT")
        elif "blocks.0.attn.qkv.weight" in state and "head.cls_token" not in state:
            state = self._from_image_vit(state, notes)
        own = self.state_dict()
        if "pos_embed" in state and state["pos_embed"].shape != own["pos_embed"].shape \
                and state["pos_embed"].shape[-1] == own["pos_embed"].shape[-1]:
            side = int(round((own["pos_embed"].shape[1] - 1) ** 0.5))
            state["pos_embed"] = resize_grid_embedding(state["pos_embed"], (side, side), "bicubic")
            notes.append(f"pos_embed resized to the stored {side}x{side} patch grid (bicubic)")
        return state

    def _from_image_vit(self, vit: Dict[str, torch.Tensor], notes: list) -> Dict[str, torch.Tensor]:
        """Backbone from an image ViT (timm names are the official X-ViT backbone names); temp_embed
        zero (the model starts as the image ViT plus the shift); the temporal head keeps its fresh init."""
        if "fc_norm.weight" in vit or "dist_token" in vit or "reg_token" in vit:
            raise UserError("image ViT checkpoint has a layout X-ViT cannot start from (fc_norm/dist/reg "
                            "tokens); use a plain ViT-B/16 (CLS token, final norm) weights file")
        state = {k: v for k, v in vit.items() if not k.startswith(("head.", "pre_logits."))}
        own = self.state_dict()
        state["temp_embed"] = torch.zeros_like(own["temp_embed"])
        for key, value in own.items():
            if key.startswith("head."):
                state[key] = value
        notes.append("initialised from an image ViT: temp_embed zero, temporal head freshly initialised")
        return state


_B16 = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, head_depth=1, head_num_heads=12,
            head_mlp_dim=768, shift_div=8, sampling_rate=16, mean=XVIT_MEAN, std=XVIT_STD)
preset(XViT, "xvit", **_B16)
preset(XViT, "xvit_b16_16x224", num_frames=16, num_segments=8, temporal_embed_frames=8, **_B16)
preset(XViT, "xvit_b16_8x224", num_frames=8, num_segments=8, temporal_embed_frames=8, **_B16)
