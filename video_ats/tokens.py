"""The token set shared by both backbones: the kept space-time tokens of a batch, packed.

After ATS each clip keeps a different number of tokens at different (t, h, w) positions. Rather than
masking a full grid (which saves nothing), the kept patch tokens of the whole batch are stored as one
packed (M, D) matrix, M = Σ_b K'_b, so every linear layer runs on exactly the kept tokens. Attention
needs groups (a frame, or a spatial position across time); :class:`Groups` pads only those groups, to
the longest group of the batch, and masks the padding.

Order of the packed rows: by clip, then frame t, then spatial index p = h·W + w. A dense set (nothing
dropped) is therefore a plain reshape of (B, T, P, D), and dense attention takes a copy-free path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch


@dataclass
class Groups:
    """How the packed tokens split into attention groups, and the padded layout of those groups.

    Every group may carry ``lead`` leading slots (a CLS token) that are always present. Slot
    ``lead + r`` of group ``g`` holds the r-th token of the group in packed order.
    """
    slot: torch.Tensor            # (M,) flat index g * length + lead + rank of each packed token
    sizes: torch.Tensor           # (G,) tokens per group, lead slots excluded
    clip: torch.Tensor            # (G,) clip of each group
    length: int                   # slots per group: lead + longest group
    lead: int
    view: Optional[Tuple[str, Tuple[int, ...]]] = None   # copy-free path for dense sets

    @property
    def num_groups(self) -> int:
        return self.sizes.numel()

    @property
    def full(self) -> bool:
        """No padding anywhere (every group has the same size)."""
        return self.view is not None or bool((self.sizes == self.length - self.lead).all())

    def key_mask(self) -> Optional[torch.Tensor]:
        """(G, length) bool, True where a slot holds a real token; None when nothing is padded."""
        if self.full:
            return None
        pos = torch.arange(self.length, device=self.sizes.device)
        return pos.unsqueeze(0) < (self.sizes + self.lead).unsqueeze(1)

    def pad(self, x: torch.Tensor, lead: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(M, C) packed -> (G, length, C); ``lead`` (G, lead, C) fills the leading slots."""
        c = x.shape[-1]
        if self.view is not None:
            kind, (b, t, p) = self.view
            body = x.view(b * t, p, c) if kind == "frame" else x.view(b, t, p, c).transpose(1, 2).reshape(b * p, t, c)
        else:
            body = x.new_empty(self.num_groups * self.length, c)
            body.index_copy_(0, self.slot, x)
            # padding slots must hold finite values (a masked key still meets 0 · V in A·V), but only
            # they need clearing — not the whole buffer
            body.index_fill_(0, self._empty_slots(lead is None), 0.0)
            body = body.view(self.num_groups, self.length, c)
            if lead is not None:
                body[:, : self.lead] = lead
            return body
        return body if lead is None else torch.cat([lead, body], dim=1)

    def _empty_slots(self, with_lead: bool) -> torch.Tensor:
        """Flat indices of the padding slots (and of the lead slots when ``with_lead``), cached."""
        key = "_empty_with_lead" if with_lead else "_empty"
        if key not in self.__dict__:
            used = torch.zeros(self.num_groups * self.length, dtype=torch.bool, device=self.slot.device)
            used[self.slot] = True
            if not with_lead and self.lead:
                used.view(self.num_groups, self.length)[:, : self.lead] = True
            self.__dict__[key] = (~used).nonzero().squeeze(1)
        return self.__dict__[key]

    def unpad(self, y: torch.Tensor) -> torch.Tensor:
        """(G, length, C) -> (M, C) for the real tokens (lead slots dropped)."""
        c = y.shape[-1]
        if self.view is not None:
            kind, (b, t, p) = self.view
            body = y[:, self.lead:]
            if kind == "frame":
                return body.reshape(b * t * p, c)
            return body.reshape(b, p, t, c).transpose(1, 2).reshape(b * t * p, c)
        return y.reshape(-1, c).index_select(0, self.slot)

    def slots_per_clip(self, batch_size: int) -> torch.Tensor:
        """Σ over each clip's groups of (lead + group size): e.g. the keys one CLS query per group sees."""
        out = torch.zeros(batch_size, dtype=torch.float64, device=self.sizes.device)
        return out.index_add_(0, self.clip, (self.sizes + self.lead).double())

    def pairs_per_clip(self, batch_size: int, keys: Optional["Groups"] = None) -> torch.Tensor:
        """Σ over each clip's groups of (query slots × key slots): the attention matmul size."""
        q = (self.sizes + self.lead).double()
        k = q if keys is None else (keys.sizes + keys.lead).double()
        out = torch.zeros(batch_size, dtype=torch.float64, device=self.sizes.device)
        return out.index_add_(0, self.clip, q * k)


@dataclass
class TokenSet:
    """Kept patch tokens of a batch of clips, packed, with their space-time positions.

    x:    (M, D) token features, rows ordered by (clip, t, p).
    cls:  (B, C, D) class tokens, not part of ``x``: C = 1 (TimeSformer) or T (X-ViT, one per frame).
    clip, t, p: (M,) long positions; p = h * W + w on the patch grid.
    grid: (T, H, W) of the full token grid.
    size: (M,) float, the number of original patches each token stands for (token merging, see
          :mod:`video_ats.tome`); None means all ones (dense and ATS sets), at no cost.
    """
    x: torch.Tensor
    cls: torch.Tensor
    clip: torch.Tensor
    t: torch.Tensor
    p: torch.Tensor
    grid: Tuple[int, int, int]
    dense: bool = False
    size: Optional[torch.Tensor] = None
    _groups: Dict[Tuple[str, int], Groups] = field(default_factory=dict, repr=False)

    @classmethod
    def from_grid(cls, x: torch.Tensor, cls_tokens: torch.Tensor, grid: Tuple[int, int, int]) -> "TokenSet":
        """All tokens of a (B, T, P, D) grid (or its (B·T·P, D) flattening)."""
        t_, h_, w_ = grid
        b = cls_tokens.shape[0]
        dev = cls_tokens.device
        clip = torch.arange(b, device=dev).repeat_interleave(t_ * h_ * w_)
        t = torch.arange(t_, device=dev).repeat_interleave(h_ * w_).repeat(b)
        p = torch.arange(h_ * w_, device=dev).repeat(b * t_)
        return cls(x.reshape(b * t_ * h_ * w_, -1), cls_tokens, clip, t, p, grid, dense=True)

    @property
    def batch_size(self) -> int:
        return self.cls.shape[0]

    @property
    def num_tokens(self) -> torch.Tensor:
        """(B,) kept patch tokens per clip (class tokens not counted)."""
        return torch.bincount(self.clip, minlength=self.batch_size)

    def replace(self, x: torch.Tensor, cls: Optional[torch.Tensor] = None) -> "TokenSet":
        """Same tokens and layout, new features (the cached groups stay valid)."""
        return TokenSet(x, self.cls if cls is None else cls, self.clip, self.t, self.p, self.grid,
                        self.dense, self.size, self._groups)

    def keep(self, kept: torch.Tensor, x: Optional[torch.Tensor] = None,
             size: Optional[torch.Tensor] = None) -> "TokenSet":
        """The subset given by ``kept``: a (M,) bool mask or the sorted packed indices to keep; ``x``
        (M, D) and ``size`` (M,) replace the features and the token sizes first if given."""
        idx = kept.nonzero().squeeze(1) if kept.dtype == torch.bool else kept
        x = self.x if x is None else x
        size = self.size if size is None else size
        dense = self.dense and idx.numel() == self.x.shape[0]
        return TokenSet(x.index_select(0, idx), self.cls, self.clip[idx], self.t[idx], self.p[idx],
                        self.grid, dense, None if size is None else size.index_select(0, idx))

    def groups(self, by: str, lead: int = 0) -> Groups:
        """Attention groups: ``"frame"`` (one per clip and frame, all B·T of them, so a lead CLS always
        has a group) or ``"position"`` (one per clip and spatial position that still has a token)."""
        key = (by, lead)
        if key not in self._groups:
            self._groups[key] = self._make_groups(by, lead)
        return self._groups[key]

    def _make_groups(self, by: str, lead: int) -> Groups:
        t_, h_, w_ = self.grid
        b, p_ = self.batch_size, h_ * w_
        dev = self.x.device
        if by == "frame":
            raw, n_raw = self.clip * t_ + self.t, b * t_
        elif by == "position":
            raw, n_raw = self.clip * p_ + self.p, b * p_
        else:
            raise ValueError(f"unknown grouping {by!r}")
        if self.dense:                              # full grid: groups are reshapes, no index maps
            per_clip, n = (t_, p_) if by == "frame" else (p_, t_)
            sizes = torch.full((b * per_clip,), n, dtype=torch.long, device=dev)
            clip = torch.arange(b, device=dev).repeat_interleave(per_clip)
            return Groups(torch.empty(0, dtype=torch.long, device=dev), sizes, clip, lead + n, lead,
                          view=(by, (b, t_, p_)))
        sizes = torch.bincount(raw, minlength=n_raw)
        if by == "position":                        # only positions that still hold a token
            present = sizes > 0
            compact = present.long().cumsum(0) - 1
            raw, sizes = compact[raw], sizes[present]
            clip = present.nonzero().squeeze(1) // p_
        else:
            clip = torch.arange(b, device=dev).repeat_interleave(t_)
        order = torch.argsort(raw, stable=True)     # frame groups are already sorted; cheap either way
        start = sizes.cumsum(0) - sizes
        rank = torch.empty_like(raw)
        rank[order] = torch.arange(raw.numel(), device=dev) - start[raw[order]]
        length = lead + (int(sizes.max()) if sizes.numel() else 0)
        return Groups(raw * length + lead + rank, sizes, clip, length, lead)

    def per_clip(self, values: torch.Tensor, fill: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, ...) packed values -> (B, N_max, ...) padded per clip, the (B, N_max) valid mask, and the
        flat index of each packed row in that padded layout (to map results back)."""
        counts = self.num_tokens
        n_max = int(counts.max()) if counts.numel() else 0
        start = counts.cumsum(0) - counts
        flat = self.clip * n_max + torch.arange(self.clip.numel(), device=self.clip.device) - start[self.clip]
        out = values.new_full((self.batch_size * n_max, *values.shape[1:]), fill)
        out[flat] = values
        valid = torch.zeros(self.batch_size * n_max, dtype=torch.bool, device=values.device)
        valid[flat] = True
        return out.view(self.batch_size, n_max, *values.shape[1:]), valid.view(self.batch_size, n_max), flat

    def index_of(self, clip: torch.Tensor, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Packed row of the token at (clip, t, p), or -1 where that token is not in the set (or t is
        outside [0, T))."""
        t_, h_, w_ = self.grid
        p_ = h_ * w_
        table = torch.full((self.batch_size * t_ * p_,), -1, dtype=torch.long, device=self.x.device)
        table[(self.clip * t_ + self.t) * p_ + self.p] = torch.arange(self.clip.numel(), device=self.x.device)
        inside = (t >= 0) & (t < t_)
        flat = (clip * t_ + t.clamp(0, t_ - 1)) * p_ + p
        return torch.where(inside, table[flat], torch.full_like(flat, -1))
