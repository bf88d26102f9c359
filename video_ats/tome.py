"""Token Merging (ToMe, Bolya et al., ICLR 2023) as pure tensor functions: the merging baseline.

Nothing here knows about a model. A backbone hands each group's keys (one group per frame) to
:func:`bipartite_soft_matching`, which says which tokens merge into which, and :func:`merge_wavg`
merges their features as size-weighted means. :func:`proportional_bias` turns token sizes into the
additive attention bias of proportional attention. :class:`ToMeConfig` is the validated
configuration that says where and how much.

The algorithm, per group of N tokens (the CLS is never part of a group):

1. Split the tokens alternately into A (even indices) and B (odd indices).
2. Cosine similarity of the keys (mean over heads) between every A and every B token; each A token
   keeps its best match in B.
3. The r A tokens with the highest best-match scores merge into their B match:
   x_b ← (s_b·x_b + Σ s_a·x_a) / (s_b + Σ s_a), s_b ← s_b + Σ s_a, where s is a token's size (the
   number of original patches it stands for). The merged A tokens leave the group: N − r remain.
4. Proportional attention: later attention adds log(s_j) to the logits of every key j, so a merged
   token counts as the s_j patches it replaces.

All functions are batched (no Python loop over groups), the matching is deterministic and runs in
float32 without gradient (only the merged features carry one, as in ToMe).

Where it sits in TimeSformer (:mod:`video_ats.models.timesformer`): at a ToMe block, after the
spatial attention and its residual, and before the MLP (ToMe's place: between attention and MLP,
so the MLP already runs on the merged tokens). The keys are that spatial attention's keys. Each frame
is one group, so every frame of every clip loses the same r tokens and the (frames × tokens) layout
stays rectangular. A merged token keeps the (t, p) position of its B token: temporal attention still
groups tokens by spatial position p across frames, spatial attention by frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .errors import UserError

MergeCount = Union[int, float]


def bipartite_soft_matching(metric: torch.Tensor, r: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which tokens merge into which (ToMe's bipartite soft matching).

    metric: (G, N, C) per-group token descriptors (ToMe: the keys, averaged over heads).
    r:      tokens to merge away per group, 0 ≤ r ≤ N // 2.
    Returns ``(src, dst)``, each (G, r) long indices into the N tokens of the group: token ``src``
    (an even index, set A) merges into token ``dst`` (an odd index, set B). Several A tokens may share
    one B token. ``src`` lists the A tokens by decreasing match score.
    """
    g, n, _ = metric.shape
    if not 0 <= r <= n // 2:
        raise ValueError(f"cannot merge {r} of {n} tokens per group; bipartite matching merges at most {n // 2}")
    if r == 0:                                             # nothing to merge (and B may be empty)
        none = torch.empty(g, 0, dtype=torch.long, device=metric.device)
        return none, none
    m = F.normalize(metric.detach().float(), dim=-1)      # a zero vector gets similarity 0, never NaN
    a, b = m[:, ::2], m[:, 1::2]
    best, match = (a @ b.transpose(1, 2)).max(dim=-1)      # (G, |A|) best B for every A token
    order = best.argsort(dim=-1, descending=True, stable=True)[:, :r]
    return 2 * order, 2 * match.gather(1, order) + 1


def merge_wavg(x: torch.Tensor, size: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the tokens ``src`` into ``dst`` (per group) as size-weighted averages.

    x:    (G, N, D) features; size: (G, N) sizes (positive); src, dst: (G, r) from
          :func:`bipartite_soft_matching`.
    Returns ``(x, size, keep)`` in the same (G, N) layout: every ``dst`` row holds the weighted mean
    of itself and the tokens merged into it, and its summed size; other rows are unchanged;
    ``keep`` (G, N) bool is False exactly at the ``src`` rows, which have left. Σ size and
    Σ size·x over the kept rows of a group are those of all N input rows.
    """
    d = x.shape[-1]
    w = size.to(x.dtype).unsqueeze(-1)
    weighted = (x * w).scatter_add(1, dst.unsqueeze(-1).expand(-1, -1, d),
                                   (x * w).gather(1, src.unsqueeze(-1).expand(-1, -1, d)))
    new_size = size.scatter_add(1, dst, size.gather(1, src))
    is_dst = torch.zeros_like(size, dtype=torch.bool).scatter(1, dst, True)
    merged = torch.where(is_dst.unsqueeze(-1), weighted / new_size.to(x.dtype).unsqueeze(-1), x)
    keep = torch.ones_like(size, dtype=torch.bool).scatter(1, src, False)
    return merged, new_size, keep


def proportional_bias(size: torch.Tensor) -> torch.Tensor:
    """Additive attention bias of proportional attention: log(size) per key.

    A padding key of size 0 gets −inf, so the bias also masks padding (every row needs one real key).
    """
    return size.float().log()


def resolve_r(r: MergeCount, n: int) -> int:
    """Tokens to merge in a group of ``n``: an int is absolute, a float in (0, 0.5] a fraction of n
    (floor); either way at most n // 2 (bipartite matching merges at most half), as ToMe clamps it."""
    check_r(r)
    k = math.floor(n * r) if isinstance(r, float) else r
    return max(0, min(k, n // 2))


def check_r(value) -> None:
    """An int ≥ 0 (tokens per frame) or a float in (0, 0.5] (fraction of a frame's tokens)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"ToMe r must be an int ≥ 0 or a float in (0, 0.5], got {value!r}")
    if isinstance(value, int) and value < 0:
        raise UserError(f"ToMe r {value} must be ≥ 0 (tokens merged per frame)")
    if isinstance(value, float) and not 0.0 < value <= 0.5:
        raise UserError(f"ToMe r {value} is a float outside (0, 0.5]: a fraction of a frame's tokens, and "
                        "bipartite matching merges at most half of them per block (write 0 for none)")


@dataclass(frozen=True)
class ToMeConfig:
    """Where ToMe merges and how much.

    blocks: 0-indexed blocks that merge (after their spatial attention), distinct and increasing.
    r:      per block (or one value for all): an int = tokens merged in every frame, a float in
            (0, 0.5] = that fraction (floor) of the tokens each frame has when it enters the block.
    """
    blocks: tuple = ()
    r: tuple = ()

    @classmethod
    def from_any(cls, spec, depth: int) -> Optional["ToMeConfig"]:
        """Build from None, a ToMeConfig or the short dict form; validates against the model depth."""
        if spec is None or spec is False:
            return None
        if isinstance(spec, ToMeConfig):
            cfg = spec
        elif isinstance(spec, dict):
            names = [f.name for f in fields(cls)]
            unknown = sorted(set(spec) - set(names))
            if unknown:
                raise UserError(f"unknown ToMe option(s) {unknown}; valid options are {names}")
            cfg = cls(**spec)
        else:
            raise UserError(f"tome must be a dict like {{'blocks': [1, 2], 'r': [0.5, 0.3]}}, "
                            f"got {type(spec).__name__}")
        return cfg._validated(depth)

    def _validated(self, depth: int) -> Optional["ToMeConfig"]:
        blocks = _as_tuple(self.blocks)
        if not blocks:
            return None
        for blk in blocks:
            if isinstance(blk, bool) or not isinstance(blk, int) or not 0 <= blk < depth:
                raise UserError(f"ToMe block {blk!r} is not a block index in [0, {depth - 1}]")
        if list(blocks) != sorted(set(blocks)):
            raise UserError(f"ToMe blocks {list(blocks)} must be distinct and increasing")
        r = _as_tuple(self.r)
        if len(r) == 1:
            r = r * len(blocks)
        if len(r) != len(blocks):
            raise UserError(f"ToMe r has {len(r)} values for {len(blocks)} blocks; give one value per block "
                            "or a single value for all")
        for value in r:
            check_r(value)
        return ToMeConfig(blocks, r)

    def r_at(self, block: int) -> Optional[MergeCount]:
        """r of ``block`` as configured, or None when the block does not merge."""
        return dict(zip(self.blocks, self.r)).get(block)

    def as_dict(self) -> dict:
        return {"blocks": list(self.blocks), "r": list(self.r)}


def _as_tuple(value: Union[MergeCount, Sequence, None]) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)
