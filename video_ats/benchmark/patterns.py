"""Keep patterns: which tokens the ATS blocks of a benchmarked model keep.

With random weights the CLS attention is almost flat, so ATS keeps about K tokens in every frame of
every clip — the easiest case for an efficient implementation (equal frame lengths, equal clips). A
trained model keeps very different numbers of tokens per frame and per clip, which costs padding in the
attention groups. A *keep pattern* fixes what the ATS blocks keep, independently of the weights:

``model``    the model's own significance scores (random weights: ≈ K tokens, spread evenly).
``uniform``  exactly K tokens per clip at every ATS block, evenly spaced (:func:`even_keep`): what the
             sampler keeps from flat scores, computed in integers so that every device keeps the same.
``skewed``   seeded synthetic scores concentrated on a moving object whose size changes from frame to
             frame (:func:`skewed_scores`): frames keep very different numbers of tokens and clips
             differ several-fold, like a trained model on real video.
``FILE``      replayed masks (``.keep``, or any ``torch.save`` file): the kept positions a trained model produced at each of its ATS stages
             (written by ``video-ats benchmark export-keep``), resampled to the benchmarked model's
             token grid by nearest neighbour (:func:`resample_stages`) and kept exactly.

Scores go through the project's own sampler (:meth:`ATSConfig.select`, i.e. inverse transform sampling
with the setting's K); replayed masks are fed to :func:`~video_ats.ats.inverse_transform_sampling` as
flat scores on the kept tokens with K = their count, which selects exactly those tokens. Either way
the model computes its real significance scores first (so the sampler's cost is what a trained model
pays) and only the choice is replaced: :class:`ScriptedSampler` is what the model's ``sampler_at``
returns once :func:`install_pattern` has been called.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..ats import ATSConfig, inverse_transform_sampling, resolve_num_samples
from ..errors import UserError
from ..models.sampling import select_tokens

PATTERN_NAMES = ("model", "uniform", "skewed")
FILE_FORMAT = "video-ats-keep-pattern-v1"
SKEWED_CLIPS = 64          # distinct clips of the skewed generator (cycled over larger batches)


@dataclass
class KeepPattern:
    """A keep pattern for one token grid.

    kind:   "model" (no override), "even" (K evenly spaced tokens, :func:`even_keep`), "scores"
            (``table`` (C, T, P) float significance per clip, sampled with the setting's K) or "masks" (``table`` (C, T, P) uint8: the number of ATS stages each
            token survives; stage s keeps the tokens with value > s).
    clips:  C, the number of distinct clips; batch row b uses clip (offset + b) mod C.
    stages: number of ATS stages of a "masks" pattern (its ATS setting must have as many blocks).
    """
    name: str
    kind: str
    grid: Tuple[int, int, int]
    table: Optional[torch.Tensor] = None
    stages: int = 0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def clips(self) -> int:
        return 1 if self.table is None else int(self.table.shape[0])

    def rows(self, batch: int, offset: int = 0) -> torch.Tensor:
        """Pattern clip of each batch row."""
        return (torch.arange(batch) + offset) % self.clips


# ---- synthetic patterns ---------------------------------------------------------------------------
def even_keep(valid: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: ``k`` (B,) tokens evenly spaced among each row's ``valid`` ones.

    This is what inverse transform sampling keeps from flat scores in exact arithmetic: grid point
    (2i − 1)/(2K) picks the first of the n valid tokens whose CDF (r + 1)/n reaches it. With flat scores
    those often tie exactly (K = n/2: every grid point sits on a CDF step), and float rounding — which
    differs between CPU and CUDA cumsums — then decides; here the rule is integer: token of rank r is
    kept iff some i has 2K·r < n(2i − 1) ≤ 2K(r + 1), i.e. iff d(r + 1) > d(r) with
    d(x) = min(K, ⌊(2Kx + n) / 2n⌋), the number of grid points at or below x/n."""
    rank = valid.long().cumsum(-1) - 1
    n = valid.sum(-1, keepdim=True).clamp_min(1)
    k = k.to(device=valid.device, dtype=torch.long).view(-1, 1)

    def points_up_to(x):
        return torch.minimum((2 * k * x + n) // (2 * n), k)

    return valid & (points_up_to(rank + 1) > points_up_to(rank))


def skewed_scores(grid: Tuple[int, int, int], clips: int = SKEWED_CLIPS, seed: int = 0) -> torch.Tensor:
    """(clips, T, P) seeded synthetic significance scores with a trained model's skew.

    Each clip has one object moving across the frame (bouncing off the borders); its radius is the
    clip's base size (log-uniform between 8 % and 30 % of the short side: clips differ several-fold)
    times a per-frame factor (log-uniform in [0.35, 1.6]: frames differ several-fold). Token scores are a
    Gaussian bump over the object (cut at twice the radius) over a faint noisy background (≤ 1e-3), so
    ATS keeps the object's tokens — many in frames where it is big, few where it is small.
    Deterministic for (grid, clips, seed): a CPU generator, no global RNG.
    """
    t_, h_, w_ = grid
    g = torch.Generator().manual_seed(int(seed))
    short = min(h_, w_)

    def loguniform(n, lo, hi):
        return torch.exp(torch.empty(n).uniform_(math.log(lo), math.log(hi), generator=g))

    base = loguniform(clips, 0.08, 0.30) * short                                  # (C,)
    factor = loguniform(clips * t_, 0.35, 1.6).view(clips, t_)                    # (C, T)
    radius = (base.unsqueeze(1) * factor).clamp_min(0.5)                          # (C, T) in tokens
    start = torch.rand(clips, 2, generator=g) * torch.tensor([h_ - 1.0, w_ - 1.0])
    speed = (torch.rand(clips, 2, generator=g) * 2 - 1) * 0.12 * short            # tokens per frame
    steps = torch.arange(t_, dtype=torch.float32).view(1, t_, 1)
    span = torch.tensor([max(h_ - 1.0, 1e-6), max(w_ - 1.0, 1e-6)])
    pos = start.unsqueeze(1) + speed.unsqueeze(1) * steps                         # (C, T, 2), unfolded
    pos = span - (pos.remainder(2 * span) - span).abs()                           # bounce off the borders
    yy = torch.arange(h_, dtype=torch.float32).view(1, 1, h_, 1)
    xx = torch.arange(w_, dtype=torch.float32).view(1, 1, 1, w_)
    d2 = (yy - pos[..., 0, None, None]) ** 2 + (xx - pos[..., 1, None, None]) ** 2   # (C, T, H, W)
    r2 = radius[..., None, None] ** 2
    bump = torch.exp(-d2 / (2 * r2)) * (d2 <= 4 * r2)
    background = torch.rand(clips, t_, h_, w_, generator=g) * 1e-3
    return (bump + background).view(clips, t_, h_ * w_)


# ---- replayed masks -------------------------------------------------------------------------------
def resample_stages(stages: torch.Tensor, grid: Tuple[int, int, int]) -> torch.Tensor:
    """Nearest-neighbour resampling of (C, T, H, W) stage maps to ``grid`` (T', H', W') per axis:
    target index i takes source index floor(i · S / S'). Each kept source token becomes the block of
    target tokens it covers (×2 per side for 7×7 → 14×14, so every frame keeps exactly 4× its tokens:
    the per-frame share is preserved), and nested stages stay nested."""
    c, t, h, w = stages.shape
    t2, h2, w2 = grid
    it = torch.arange(t2) * t // t2
    ih = torch.arange(h2) * h // h2
    iw = torch.arange(w2) * w // w2
    return stages[:, it][:, :, ih][:, :, :, iw]


def stage_maps(positions: Dict[int, List[torch.Tensor]], grid: Tuple[int, int, int]) -> torch.Tensor:
    """(C, T, H, W) uint8 from a model's ``last_kept_positions`` (block -> per clip (n, 2) [t, p]): the
    number of its ATS stages each token survived."""
    t, h, w = grid
    blocks = sorted(positions)
    clips = len(positions[blocks[0]]) if blocks else 0
    out = torch.zeros(clips, t * h * w, dtype=torch.uint8)
    for blk in blocks:
        for c, pos in enumerate(positions[blk]):
            out[c, pos[:, 0] * h * w + pos[:, 1]] += 1
    return out.view(clips, t, h, w)


def load_pattern_file(path: str) -> Dict[str, Any]:
    """A keep-pattern file written by :func:`save_pattern_file`; one clear error for anything else."""
    if os.path.isdir(path):
        raise UserError(f"keep pattern {path!r} is a folder; give a keep-pattern file written by "
                        "`video-ats benchmark export-keep`")
    if not os.path.isfile(path):
        raise UserError(f"keep pattern {path!r}: no such file (use uniform, skewed, model or a file written by "
                        "`video-ats benchmark export-keep`)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"keep pattern {path!r} cannot be read ({type(exc).__name__}); "
                        "write one with `video-ats benchmark export-keep`") from None
    if not isinstance(obj, dict) or obj.get("format") != FILE_FORMAT or not isinstance(obj.get("stages"), torch.Tensor):
        raise UserError(f"keep pattern {path!r} is not a keep-pattern file ({FILE_FORMAT}); "
                        "write one with `video-ats benchmark export-keep`")
    st = obj["stages"]
    if st.dim() != 4 or min(st.shape) < 1:
        raise UserError(f"keep pattern {path!r}: stages must be (clips, T, H, W), got {tuple(st.shape)}")
    if st.is_floating_point() or st.is_complex() or st.dtype == torch.bool or int(st.min()) < 0:
        raise UserError(f"keep pattern {path!r}: stages must be counts ≥ 0 (uint8), got {st.dtype}")
    if int(st.max()) < 1:
        raise UserError(f"keep pattern {path!r} keeps nothing past any stage (all stages are 0)")
    for key in ("num_stages", "source_depth"):
        v = obj.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise UserError(f"keep pattern {path!r}: {key} must be an integer ≥ 1, got {v!r}")
    blocks = obj.get("source_blocks")
    if blocks is not None and not (isinstance(blocks, (list, tuple)) and blocks
                                   and all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in blocks)):
        raise UserError(f"keep pattern {path!r}: source_blocks must be a list of block indices, got {blocks!r}")
    return obj


def save_pattern_file(path: str, stages: torch.Tensor, info: Dict[str, Any]) -> None:
    """Write stage maps (C, T, H, W) uint8 and their provenance (``info``: JSON-like values)."""
    from ..fileio import atomic_write

    obj = {"format": FILE_FORMAT, "stages": stages.to(torch.uint8).contiguous(), **info}
    atomic_write(path, lambda f: torch.save(obj, f), what="keep pattern", make_parent=True)


def replay_blocks(source_blocks: Sequence[int], source_depth: int, depth: int) -> List[int]:
    """The target model's blocks at the same relative depth: ATS after block b of a depth-d model sits
    after (b + 1) / d of the network, i.e. after block round((b + 1) · D / d) − 1 of a depth-D model."""
    out = []
    for b in source_blocks:
        t = max(0, min(depth - 1, round((b + 1) * depth / source_depth) - 1))
        out.append(max(t, out[-1] + 1) if out else t)
    if out and out[-1] >= depth:
        raise UserError(f"cannot place {len(out)} replayed ATS stages in a depth-{depth} model")
    return out


def replay_setting(pattern: KeepPattern, depth: int, blocks: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The ATS setting a replayed pattern runs under: one block per stage (``blocks``, or the source
    blocks at the same relative depth) and K = the mean kept share of each stage (K only bounds the
    sampler here; the replayed masks decide what is kept)."""
    info = pattern.info
    if blocks is None:
        blocks = replay_blocks(info.get("source_blocks") or list(range(pattern.stages)),
                               int(info.get("source_depth") or depth), depth)
    blocks = [int(b) for b in blocks]
    if len(blocks) != pattern.stages:
        raise UserError(f"keep pattern {pattern.name!r} has {pattern.stages} ATS stages; replay blocks "
                        f"{blocks} give {len(blocks)}")
    share, prev = [], pattern.table.numel()
    for s in range(pattern.stages):
        n = int((pattern.table > s).sum())
        share.append(min(max(n / max(prev, 1), 1e-3), 0.999))
        prev = n
    return {"blocks": blocks, "num_tokens": [round(v, 4) for v in share]}


# ---- building a pattern ---------------------------------------------------------------------------
def build_pattern(spec: str, grid: Tuple[int, int, int], seed: int = 0) -> KeepPattern:
    """``spec``: model | uniform | skewed | a file path (see the module doc)."""
    grid = tuple(int(v) for v in grid)
    if spec == "model":
        return KeepPattern("model", "model", grid)
    if spec == "uniform":
        return KeepPattern("uniform", "even", grid)
    if spec == "skewed":
        return KeepPattern("skewed", "scores", grid, skewed_scores(grid, SKEWED_CLIPS, seed), info={"seed": seed})
    if not (spec.endswith((".pt", ".keep")) or os.sep in spec or os.path.exists(spec)):
        raise UserError(f"unknown keep pattern {spec!r}; use one of {', '.join(PATTERN_NAMES)} or a .pt file "
                        "written by `video-ats benchmark export-keep`")
    obj = load_pattern_file(spec)
    stages = obj["stages"]
    n_stages = int(obj.get("num_stages") or int(stages.max()))
    table = resample_stages(stages, grid).reshape(stages.shape[0], grid[0], grid[1] * grid[2])
    info = {k: v for k, v in obj.items() if k not in ("stages", "format")}
    info["file"] = spec
    info["source_grid"] = list(stages.shape[1:])
    name = "replay:" + os.path.splitext(os.path.basename(spec))[0]
    return KeepPattern(name, "masks", grid, table, n_stages, info)


# ---- running a model under a pattern --------------------------------------------------------------
class _Choice:
    """Stands in for the ATSConfig inside :func:`select_tokens`: same score mode, scripted choice."""

    def __init__(self, cfg: ATSConfig, wanted: torch.Tensor):
        self.score_mode = cfg.score_mode
        self._wanted = wanted

    def select(self, scores, block, valid):
        return self._wanted


class PatternState:
    """What a model under a pattern reads at every forward: the pattern and the clip offset (batch row
    b uses pattern clip (offset + b) mod C). Change ``offset`` between forwards to walk the clips."""

    def __init__(self, pattern: KeepPattern, offset: int = 0):
        self.pattern, self.offset = pattern, int(offset)
        self._tables: Dict[torch.device, torch.Tensor] = {}

    def table(self, device) -> torch.Tensor:
        device = torch.device(device)
        if device not in self._tables:
            self._tables[device] = self.pattern.table.to(device)
        return self._tables[device]


class ScriptedSampler:
    """The ATS step of ``block`` with the choice of tokens scripted by a :class:`KeepPattern`.

    The model's real significance scores are still computed (the sampler's cost stays what a trained
    model pays); then the pattern's scores for the tokens still present are sampled with this block's K
    by the setting's own sampler (kind "scores"), or the pattern's stage mask is selected exactly (kind
    "masks": flat scores on the wanted tokens, K = their count). ``select`` runs outside torch.compile
    graphs (its shapes depend on the data), so a compiled model breaks its graph only here.
    """

    def __init__(self, cfg: ATSConfig, block: int, stage: int, state: PatternState):
        self.cfg, self.block, self.stage, self.state = cfg, int(block), int(stage), state
        self.select = _disable_compile(self._select)

    @property
    def num_tokens(self):
        return self.cfg.num_tokens_at(self.block)

    def _select(self, ts, cls_attn, value_norms):
        pat = self.state.pattern
        if tuple(ts.grid) != pat.grid:
            raise UserError(f"keep pattern {pat.name!r} was built for grid {pat.grid}, the model has {tuple(ts.grid)}")
        dev = ts.clip.device
        if pat.kind == "even":
            _, valid, _ = ts.per_clip(ts.t)                                     # the layout select_tokens uses
            keep = even_keep(valid, resolve_num_samples(self.num_tokens, valid.sum(-1)))
        else:
            rows = pat.rows(ts.batch_size, self.state.offset).to(dev)
            per_token = self.state.table(dev)[rows[ts.clip], ts.t, ts.p]        # (M,)
            padded, valid, _ = ts.per_clip(per_token)
        if pat.kind == "scores":
            wanted = self.cfg.select(padded.float(), self.block, valid)
        else:                                  # the sampler on flat scores over the wanted tokens keeps them all
            if pat.kind == "masks":
                keep = (padded > self.stage) & valid
            wanted = inverse_transform_sampling(keep.float(), keep.sum(-1).clamp_min(1), valid=valid,
                                                max_samples=keep.shape[-1])
        return select_tokens(ts, cls_attn, value_norms, _Choice(self.cfg, wanted.contiguous()), self.block)


def _disable_compile(fn):
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return disable(fn) if disable is not None else fn


def install_pattern(model, pattern: KeepPattern, offset: int = 0) -> Optional[PatternState]:
    """Make ``model``'s ATS blocks keep what ``pattern`` says (stage s = the s-th ATS block of its
    setting): the model's ``sampler_at`` now returns :class:`ScriptedSampler`s. Returns the
    :class:`PatternState` (None for the "model" pattern, which removes any earlier override)."""
    model.__dict__.pop("sampler_at", None)
    if pattern.kind == "model":
        return None
    cfg = model.ats
    if cfg is None:
        raise UserError("a keep pattern needs a model with ATS")
    if pattern.kind == "masks" and len(cfg.blocks) != pattern.stages:
        raise UserError(f"keep pattern {pattern.name!r} has {pattern.stages} stages but the ATS setting has "
                        f"{len(cfg.blocks)} blocks {list(cfg.blocks)}")
    state = PatternState(pattern, offset)
    samplers = {b: ScriptedSampler(cfg, b, i, state) for i, b in enumerate(cfg.blocks)}
    model.__dict__["sampler_at"] = samplers.get
    return state


def expected_masks(pattern: KeepPattern, ats: Dict[str, Any], batch: int, depth: int,
                   offset: int = 0) -> List[torch.Tensor]:
    """What a model under ``pattern`` and setting ``ats`` keeps, computed on the token grid alone (no
    model): per ATS stage a (batch, T, P) bool mask. A test oracle for :class:`ScriptedSampler`."""
    cfg = ATSConfig.from_any(ats, depth)
    t, h, w = pattern.grid
    if pattern.table is not None:
        table = pattern.table[pattern.rows(batch, offset)].reshape(batch, t * h * w)
    present = torch.ones(batch, t * h * w, dtype=torch.bool)
    out = []
    for s, blk in enumerate(cfg.blocks):
        if pattern.kind == "masks":
            kept = present & (table > s)
        elif pattern.kind == "even":
            n = present.sum(-1)
            kept = even_keep(present, resolve_num_samples(cfg.num_tokens_at(blk), n))
        else:
            kept = torch.zeros_like(present)
            for b in range(batch):                      # one clip at a time: no padding involved
                idx = present[b].nonzero().squeeze(1)
                sel = cfg.select(table[b, idx].float().unsqueeze(0), blk, torch.ones(1, idx.numel(), dtype=torch.bool))
                kept[b, idx[sel[0]]] = True
        out.append(kept.view(batch, t, h * w))
        present = kept
    return out
