"""Adaptive Token Sampling (Fayyaz et al., ECCV 2022) as pure tensor functions.

Nothing here knows about a model. A backbone computes an attention matrix, hands the CLS row and
the values to :func:`significance_scores`, and asks :func:`inverse_transform_sampling` which tokens
to keep. :class:`ATSConfig` is the validated configuration that says where and how much.

All functions are batched (no Python loop over samples), deterministic, and work in float32
whatever the model dtype — also under ``torch.autocast``, which they switch off for their own ops
(:func:`float32`): scores, CDF and the sampling grid never drop to fp16/bf16.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Union

import torch

from .errors import UserError

NumTokens = Union[int, float]

SCORE_MODES = ("paper", "official")
SELECTIONS = ("ats", "topk", "random")


def autocast_off(device: torch.device):
    """A context with ``device``'s autocast switched off (a no-op when it is not on)."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def float32(fn):
    """Run ``fn`` with autocast off on the device of its first tensor argument (its own float32
    casts then hold: autocast would otherwise run matmul-like ops in fp16/bf16)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        with autocast_off(first.device) if first is not None else contextlib.nullcontext():
            return fn(*args, **kwargs)
    return wrapper


@float32
def significance_scores(cls_attn: torch.Tensor, values: torch.Tensor, mode: str = "paper",
                        valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Significance S_j of each token from the CLS attention row and the values (paper eq. 3).

    cls_attn: (B, H, N) attention of the CLS query to the N (non-CLS) tokens, per head.
    values:   (B, H, N, d) per-head values of those tokens.
    mode:     "paper"    -> S_j ∝ Σ_h A_{h,cls,j} · ‖V_{h,j}‖
              "official" -> S_j ∝ (Σ_h A_{h,cls,j}) · ‖V_j‖ with V of all heads concatenated
                            (what the authors' released code computes).
    valid:    optional (B, N) bool; padded tokens get score 0.
    Returns (B, N) float32 scores, each row normalised to sum 1 (an all-zero row stays zero).
    """
    v = values.float()
    return scores_from_value_norms(cls_attn, v.norm(dim=-1), mode, valid)


@float32
def scores_from_value_norms(cls_attn: torch.Tensor, head_norms: torch.Tensor, mode: str = "paper",
                            valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`significance_scores` from per-head value norms ‖V_{h,j}‖ (B, H, N) instead of values;
    the norm of the concatenated value is √(Σ_h ‖V_{h,j}‖²)."""
    a = cls_attn.float()
    norms = head_norms.float()
    if mode == "paper":
        s = (a * norms).sum(dim=1)
    elif mode == "official":
        s = a.sum(dim=1) * norms.square().sum(dim=1).sqrt()
    else:
        raise UserError(f"unknown ATS score mode {mode!r}; use one of {SCORE_MODES}")
    if valid is not None:
        s = s.masked_fill(~valid, 0.0)
    return normalize_rows(s)


def normalize_rows(scores: torch.Tensor) -> torch.Tensor:
    """Rows divided by their sum; rows summing to zero stay zero (never NaN)."""
    total = scores.sum(dim=-1, keepdim=True)
    return scores / torch.where(total > 0, total, torch.ones_like(total))


def resolve_num_samples(num_samples: Union[NumTokens, torch.Tensor], num_tokens: torch.Tensor) -> torch.Tensor:
    """K per row: an int is absolute, a float in (0, 1) a fraction of the row's tokens (ceil, ≥ 1)."""
    if isinstance(num_samples, torch.Tensor):
        return num_samples.to(device=num_tokens.device, dtype=torch.long).expand_as(num_tokens)
    check_num_tokens(num_samples)
    if isinstance(num_samples, float):
        k = torch.ceil(num_tokens.double() * num_samples).long()
        return k.clamp(min=1)
    return torch.full_like(num_tokens, num_samples, dtype=torch.long)


def check_num_tokens(value) -> None:
    """An int ≥ 1 (absolute K) or a float strictly inside (0, 1) (a fraction). 1.0 is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"ATS num_tokens must be an int ≥ 1 or a float in (0, 1), got {value!r}")
    if isinstance(value, int) and value < 1:
        raise UserError(f"ATS num_tokens {value} must be ≥ 1 (an absolute token count)")
    if isinstance(value, float) and not 0.0 < value < 1.0:
        raise UserError(f"ATS num_tokens {value} is a float outside (0, 1); write an int for an "
                        "absolute count (e.g. 1 rather than 1.0)")


@float32
def inverse_transform_sampling(scores: torch.Tensor, num_samples: Union[NumTokens, torch.Tensor],
                               valid: Optional[torch.Tensor] = None, sort: bool = False,
                               max_samples: Optional[int] = None) -> torch.Tensor:
    """Kept-token mask by inverse transform sampling of the score distribution (paper §3.2).

    scores:      (B, N) non-negative; each row is normalised here if it is not already.
    num_samples: K, an int (absolute), a float in (0, 1) (fraction of the row's valid tokens) or a
                 (B,) tensor of per-row K. K ≥ N is allowed.
    valid:       optional (B, N) bool of real (non-padded) tokens; only used to resolve a fraction.
    sort:        build the CDF over the scores sorted ascending (the authors' code does this); it only
                 changes which of several tiny-score neighbours is picked.
    max_samples: an upper bound on every row's K known on the host (the grid width); without it the
                 largest K is read from the device (a host sync).
    Returns a (B, N) bool mask. Each grid point k_i = (2i−1)/(2K), i = 1..K, keeps the first token
    whose CDF reaches it; duplicates collapse, so K' ≤ K tokens survive. A token with S ≥ 1/K is always
    kept, zero-score tokens never are, and all-zero rows keep nothing.
    """
    b, n = scores.shape
    s = normalize_rows(scores.float().clamp_min(0))
    n_valid = valid.sum(-1) if valid is not None else torch.full((b,), n, device=s.device)
    k = resolve_num_samples(num_samples, n_valid)
    order = None
    if sort:
        s, order = s.sort(dim=-1, stable=True)
    cdf = s.cumsum(dim=-1)
    k_max = max_samples if max_samples is not None else (int(k.max()) if b else 0)
    i = torch.arange(1, k_max + 1, device=s.device, dtype=torch.float64)
    grid = ((2 * i - 1) / (2 * k.unsqueeze(1).double())).float()          # (B, k_max)
    grid = grid.masked_fill(i.unsqueeze(0) > k.unsqueeze(1), 2.0)        # beyond K_b: never hits
    idx = torch.searchsorted(cdf, grid, right=False)                      # first j with CDF_j ≥ k_i
    # Rounding can leave the last grid point just above CDF_N; it belongs to the last real token.
    last_positive = torch.where(s > 0, torch.arange(n, device=s.device), -1).amax(-1, keepdim=True)
    hit = (grid <= 1.0) & (last_positive >= 0)
    idx = torch.minimum(idx, last_positive.clamp_min(0))
    kept = torch.zeros(b, n + 1, dtype=torch.bool, device=s.device)
    target = torch.where(hit, idx, n)                                     # column n collects misses
    kept.scatter_(1, target, torch.ones_like(target, dtype=torch.bool))  # tensor source: traceable
    kept = kept[:, :n]
    if order is not None:
        kept = torch.zeros_like(kept).scatter_(1, order, kept)
    return kept


def grid_width(num_samples: Union[NumTokens, torch.Tensor], max_tokens: int) -> Optional[int]:
    """Host upper bound on K for rows of at most ``max_tokens`` valid tokens (``max_samples`` of
    :func:`inverse_transform_sampling`): the ceil rule of :func:`resolve_num_samples`; None for a
    tensor of per-row K (only the device knows it)."""
    if isinstance(num_samples, torch.Tensor):
        return None
    if isinstance(num_samples, float):
        return max(1, math.ceil(max_tokens * num_samples))
    return int(num_samples)


@float32
def topk_selection(scores: torch.Tensor, num_samples, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Baseline: keep the K highest-scoring tokens (paper Table A.3); zero-score tokens never kept."""
    b, n = scores.shape
    n_valid = valid.sum(-1) if valid is not None else torch.full((b,), n, device=scores.device)
    k = resolve_num_samples(num_samples, n_valid).clamp(max=n)
    rank = scores.float().argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
    return (rank < k.unsqueeze(1)) & (scores > 0)


@float32
def random_selection(scores: torch.Tensor, num_samples, valid: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Baseline: keep K tokens uniformly at random among the real ones (seeded by ``generator``)."""
    b, n = scores.shape
    valid = valid if valid is not None else torch.ones(b, n, dtype=torch.bool, device=scores.device)
    k = resolve_num_samples(num_samples, valid.sum(-1)).clamp(max=n)
    noise = torch.rand(b, n, generator=generator, device="cpu").to(scores.device).masked_fill(~valid, 2.0)
    rank = noise.argsort(dim=-1).argsort(dim=-1)
    return (rank < k.unsqueeze(1)) & valid


@float32
def ensure_min_kept(kept: torch.Tensor, scores: torch.Tensor, min_kept: int) -> torch.Tensor:
    """Top up each row to at least ``min_kept`` tokens with its highest-scoring unkept ones."""
    if min_kept <= 0:
        return kept
    need = (min_kept - kept.sum(-1)).clamp(min=0)
    priority = scores.float().masked_fill(kept, float("-inf"))
    rank = priority.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
    return kept | ((rank < need.unsqueeze(1)) & (scores > 0))


@dataclass(frozen=True)
class ATSConfig:
    """Where ATS sits and how many tokens it may keep.

    blocks:      0-indexed transformer blocks that end with an ATS step.
    num_tokens:  K per block (one value is broadcast): an int is absolute, a float in (0, 1) is a
                 fraction of the tokens entering that block. K bounds the kept tokens per clip.
    score_mode:  "paper" (per-head sum) or "official" (head-summed attention × concatenated V norm).
    sort_scores: build the CDF over ascending-sorted scores, as the authors' code does.
    min_tokens:  each clip keeps at least this many tokens (a block option, not the sampler's).
    selection:   "ats" (inverse transform sampling) or the baselines "topk" and "random".
    seed:        seed of the "random" baseline.
    """
    blocks: tuple = ()
    num_tokens: tuple = ()
    score_mode: str = "paper"
    sort_scores: bool = False
    min_tokens: int = 1
    selection: str = "ats"
    seed: int = 0

    @classmethod
    def from_any(cls, spec, depth: int) -> Optional["ATSConfig"]:
        """Build from None, an ATSConfig or the short dict form; validates against the model depth."""
        if spec is None or spec is False:
            return None
        if isinstance(spec, ATSConfig):
            cfg = spec
        elif isinstance(spec, dict):
            names = [f.name for f in fields(cls)]
            unknown = sorted(set(spec) - set(names))
            if unknown:
                raise UserError(f"unknown ATS option(s) {unknown}; valid options are {names}")
            if not _as_tuple(spec.get("blocks")):
                raise UserError(f"ats {spec!r} has no blocks, so it would be a dense model; give blocks "
                                "(e.g. {blocks: [4, 7, 10], num_tokens: [0.7, 0.5, 0.35]}) or ats: null for a "
                                "dense model")
            cfg = cls(**spec)
        else:
            raise UserError(f"ats must be a dict like {{'blocks': [4, 7, 10], 'num_tokens': [0.7, 0.5, 0.35]}}, "
                            f"got {type(spec).__name__}")
        return cfg._validated(depth)

    def _validated(self, depth: int) -> Optional["ATSConfig"]:
        blocks = _as_tuple(self.blocks)
        if not blocks:
            return None
        for blk in blocks:
            if isinstance(blk, bool) or not isinstance(blk, int) or not 0 <= blk < depth:
                raise UserError(f"ATS block {blk!r} is not a block index in [0, {depth - 1}]")
        if list(blocks) != sorted(set(blocks)):
            raise UserError(f"ATS blocks {list(blocks)} must be distinct and increasing")
        num = _as_tuple(self.num_tokens)
        if len(num) == 1:
            num = num * len(blocks)
        if len(num) != len(blocks):
            raise UserError(f"ATS num_tokens has {len(num)} values for {len(blocks)} blocks; give one "
                            "value per block or a single value for all")
        for value in num:
            check_num_tokens(value)
        if self.score_mode not in SCORE_MODES:
            raise UserError(f"ATS score_mode {self.score_mode!r} is not one of {SCORE_MODES}")
        if self.selection not in SELECTIONS:
            raise UserError(f"ATS selection {self.selection!r} is not one of {SELECTIONS}")
        if isinstance(self.min_tokens, bool) or not isinstance(self.min_tokens, int) or self.min_tokens < 0:
            raise UserError(f"ATS min_tokens must be an int ≥ 0, got {self.min_tokens!r}")
        if not isinstance(self.sort_scores, bool):
            raise UserError(f"ATS sort_scores must be true or false, got {self.sort_scores!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"ATS seed must be an int ≥ 0, got {self.seed!r}")
        return ATSConfig(blocks, num, self.score_mode, self.sort_scores, self.min_tokens,
                         self.selection, self.seed)

    def num_tokens_at(self, block: int) -> Optional[NumTokens]:
        """K of ``block``, or None when the block has no ATS step."""
        return dict(zip(self.blocks, self.num_tokens)).get(block)

    def as_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

    def select(self, scores: torch.Tensor, block: int, valid: torch.Tensor) -> torch.Tensor:
        """The kept mask (B, N) for the padded per-clip ``scores`` at ``block`` (no host sync: the
        sampling grid is as wide as K can be for N = ``valid.shape[1]`` tokens)."""
        k = self.num_tokens_at(block)
        if self.selection == "ats":
            kept = inverse_transform_sampling(scores, k, valid=valid, sort=self.sort_scores,
                                              max_samples=grid_width(k, valid.shape[1]))
        elif self.selection == "topk":
            kept = topk_selection(scores, k, valid=valid)
        else:
            gen = torch.Generator().manual_seed(self.seed * 1000 + block)
            kept = random_selection(scores, k, valid=valid, generator=gen)
        return ensure_min_kept(kept, scores, self.min_tokens)


def _as_tuple(value: Union[NumTokens, Sequence, None]) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)
