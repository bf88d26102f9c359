"""The thin layer that puts ToMe (:mod:`video_ats.tome`) into TimeSformer's token set.

Each frame is one merging group. With ToMe alone every frame of every clip holds the same number of
tokens, so the packed rows of the batch (ordered by clip, frame, position) are a plain (B·T, N, D)
view, and merging needs no padding: the merged-away tokens leave the set, the others keep their
(t, p) positions, and every token carries its size. Later attention reads the sizes as
proportional-attention biases (:func:`key_bias`).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import UserError
from ..tokens import Groups, TokenSet
from ..tome import MergeCount, ToMeConfig, bipartite_soft_matching, merge_wavg, proportional_bias

# Backbones wrap ToMe's own work (matching, merging, bookkeeping) in this profiler label.
TOME_PROFILE_LABEL = "video_ats.tome"


def merge_within_frames(ts: TokenSet, keys: torch.Tensor, r: int) -> TokenSet:
    """Merge ``r`` tokens inside every frame of ``ts``; ``keys`` (B·T, N, C) are each frame's token
    keys (averaged over heads) in packed order. Every frame must hold the same N tokens."""
    g, n = keys.shape[:2]
    if ts.x.shape[0] != g * n:
        raise RuntimeError(f"ToMe needs the same token count in every frame ({g} frames × {n} ≠ {ts.x.shape[0]})")
    src, dst = bipartite_soft_matching(keys, r)
    size = ts.size.view(g, n) if ts.size is not None else ts.x.new_ones(g, n, dtype=torch.float32)
    x, size, keep = merge_wavg(ts.x.view(g, n, -1), size, src, dst)
    return ts.keep(keep.view(-1), x=x.view(g * n, -1), size=size.view(-1))


def key_bias(groups: Groups, ts: TokenSet) -> Optional[torch.Tensor]:
    """The proportional-attention bias of attention over ``groups`` once the tokens have sizes:
    log(size) per key in the padded layout (lead slots hold a CLS of size 1, padding gets −inf);
    None for tokens without sizes (plain attention, any layout)."""
    if ts.size is None:
        return None
    lead = ts.size.new_ones(groups.num_groups, groups.lead, 1) if groups.lead else None
    return proportional_bias(groups.pad(ts.size.unsqueeze(1), lead).squeeze(-1))


class TokenMerging:
    """ToMe on a backbone: the validated configuration (``self.tome``), switching it (``set_tome``) and
    the r of a given block. Mutually exclusive with ATS (``self.ats``)."""

    depth: int

    def _init_tome(self, tome) -> None:
        self.tome: Optional[ToMeConfig] = None
        self.set_tome(tome)

    def set_tome(self, tome) -> None:
        """Replace the ToMe configuration (None turns ToMe off); validated against the depth."""
        cfg = ToMeConfig.from_any(tome, self.depth)
        if cfg is not None and getattr(self, "ats", None) is not None:
            raise UserError("ToMe and ATS cannot be on at the same time; turn ATS off first (ats=None)")
        self.tome = cfg

    def tome_at(self, block: int) -> Optional[MergeCount]:
        """r of ``block`` as configured if the block merges, else None."""
        return self.tome.r_at(block) if self.tome is not None else None
