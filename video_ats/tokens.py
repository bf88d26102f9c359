"""The token set shared by both backbones: the kept space-time tokens of a batch, packed.

After ATS each clip keeps a different number of tokens at different (t, h, w) positions. Rather than
masking a full grid (which saves nothing), the kept patch tokens of the whole batch are stored as one
packed (M, D) matrix, M = Σ_b K'_b, so every linear layer runs on exactly the kept tokens. Attention
needs groups (a frame, or a spatial position across time); :class:`Groups` says which token is where
and lays the groups out for attention (see :func:`video_ats.models.layers.attend_groups`): padded to
the longest group, in buckets of similar lengths, or jagged (no padding).

Order of the packed rows: by clip, then frame t, then spatial index p = h·W + w. A dense set (nothing
dropped) is therefore a plain reshape of (B, T, P, D), and dense attention takes a copy-free path.

Host syncs. Shapes depend on how many tokens each group kept, so the host must know those counts. A
:class:`TokenSet` carries them (:class:`HostSizes`): computed from the grid for a dense set, and read
from the device in **one** transfer when a set is cut down (:meth:`TokenSet.select`, i.e. once per ATS
block). Everything else (groups, layouts, the sampler's grid width) is derived from them on the host
and built on the device without further syncs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


def read_on_host(values: torch.Tensor) -> List[int]:
    """A small integer tensor as a Python list: the device→host read of the token bookkeeping. Written
    as an explicit copy to the CPU, so dispatch-level sync counters see it on every device."""
    return values.to("cpu", copy=True).tolist()


def count_per(index: torch.Tensor, n: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(n,) long: how many entries of ``index`` fall on each value 0..n-1 (each counted by its
    ``weights`` entry, e.g. a bool mask, if given). A bincount without bincount's host sync on CUDA."""
    w = torch.ones_like(index) if weights is None else weights.to(torch.long)
    return torch.zeros(n, dtype=torch.long, device=index.device).index_add_(0, index, w)


def indices_of(mask: torch.Tensor, count: int) -> torch.Tensor:
    """The sorted indices of the ``count`` True entries of a 1-D bool ``mask``: ``nonzero`` without
    its device→host sync, since the host already knows how many there are."""
    return torch.nonzero_static(mask, size=count).squeeze(1)


@dataclass(frozen=True)
class HostSizes:
    """Kept-token counts of a token set, on the host: per (clip, frame) and per (clip, position)."""
    frames: Tuple[int, ...]        # B·T entries, index b·T + t
    positions: Tuple[int, ...]     # B·P entries, index b·P + p

    @classmethod
    def full(cls, batch_size: int, grid: Tuple[int, int, int]) -> "HostSizes":
        t, h, w = grid
        return cls((h * w,) * (batch_size * t), (t,) * (batch_size * h * w))

    @classmethod
    def read(cls, frame_counts: torch.Tensor, position_counts: torch.Tensor) -> "HostSizes":
        """From device counts, in one host read."""
        values = read_on_host(torch.cat([frame_counts, position_counts]))
        n = frame_counts.numel()
        return cls(tuple(values[:n]), tuple(values[n:]))

    def per_clip(self, batch_size: int) -> List[int]:
        t = len(self.frames) // batch_size if batch_size else 0
        return [sum(self.frames[b * t:(b + 1) * t]) for b in range(batch_size)]

    @property
    def total(self) -> int:
        return sum(self.frames)


@dataclass
class Groups:
    """How the packed tokens split into attention groups, and the layouts of those groups.

    Every group may carry ``lead`` leading slots (a CLS token) that are always present. Slot
    ``lead + r`` of group ``g`` holds the r-th token of the group in packed order.
    """
    group: torch.Tensor           # (M,) group of each packed token
    rank: torch.Tensor            # (M,) its rank inside the group
    sizes: torch.Tensor           # (G,) tokens per group, lead slots excluded
    host_sizes: Tuple[int, ...]   # the same, on the host
    clip: torch.Tensor            # (G,) clip of each group
    lead: int
    view: Optional[Tuple[str, Tuple[int, ...]]] = None   # copy-free path for dense sets
    _cache: Dict = field(default_factory=dict, repr=False)

    @property
    def num_groups(self) -> int:
        return len(self.host_sizes)

    @property
    def length(self) -> int:
        """Slots per group in the padded layout: lead + longest group."""
        return self.lead + max(self.host_sizes, default=0)

    @property
    def lengths(self) -> List[int]:
        """Lead + size of every group (host)."""
        return [self.lead + s for s in self.host_sizes]

    @property
    def full(self) -> bool:
        """No padding anywhere (every group has the same size)."""
        return self.view is not None or min(self.host_sizes, default=0) == max(self.host_sizes, default=0)

    @property
    def slot(self) -> torch.Tensor:
        """(M,) flat index g · length + lead + rank of each packed token in the padded layout."""
        if "slot" not in self._cache:
            self._cache["slot"] = self.group * self.length + self.lead + self.rank
        return self._cache["slot"]

    def key_mask(self) -> Optional[torch.Tensor]:
        """(G, length) bool, True where a slot holds a real token; None when nothing is padded."""
        if self.full:
            return None
        pos = torch.arange(self.length, device=self.sizes.device)
        return pos.unsqueeze(0) < (self.sizes + self.lead).unsqueeze(1)

    # -- the padded layout --------------------------------------------------------------------------
    def pad(self, x: torch.Tensor, lead: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(M, C) packed -> (G, length, C); ``lead`` (G, lead, C) fills the leading slots."""
        c = x.shape[-1]
        if self.view is not None:
            kind, (b, t, p) = self.view
            body = x.view(b * t, p, c) if kind == "frame" else x.view(b, t, p, c).transpose(1, 2).reshape(b * p, t, c)
            return body if lead is None else torch.cat([lead, body], dim=1)
        body = x.new_empty(self.num_groups * self.length, c)
        body.index_copy_(0, self.slot, x)
        # padding slots must hold finite values (a masked key still meets 0 · V in A·V), but only
        # they need clearing — not the whole buffer
        body.index_fill_(0, self._empty_slots(lead is None), 0.0)
        body = body.view(self.num_groups, self.length, c)
        if lead is not None:
            body[:, : self.lead] = lead
        return body

    def _empty_slots(self, with_lead: bool) -> torch.Tensor:
        """Flat indices of the padding slots (and of the lead slots when ``with_lead``), cached."""
        key = "empty_with_lead" if with_lead else "empty"
        if key not in self._cache:
            used = torch.zeros(self.num_groups * self.length, dtype=torch.bool, device=self.slot.device)
            used[self.slot] = True
            if not with_lead and self.lead:
                used.view(self.num_groups, self.length)[:, : self.lead] = True
            n_used = len(self.group) + (0 if with_lead else self.lead * self.num_groups)
            self._cache[key] = indices_of(~used, self.num_groups * self.length - n_used)
        return self._cache[key]

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

    # -- the jagged layout: groups one after another, lead slots first, no padding --------------------
    def jagged(self) -> "Jagged":
        if "jagged" not in self._cache:
            lengths = self.sizes + self.lead
            start = lengths.cumsum(0) - lengths
            lead_rows = (start.unsqueeze(1) + torch.arange(self.lead, device=start.device)).reshape(-1)
            offsets = torch.cat([start.new_zeros(1), lengths.cumsum(0)])
            host = self.lengths
            self._cache["jagged"] = Jagged(start[self.group] + self.lead + self.rank, lead_rows, offsets,
                                           sum(host), min(host, default=0), max(host, default=0))
        return self._cache["jagged"]

    # -- the bucketed layout: padded batches of groups of similar lengths ----------------------------
    def buckets(self, queries: Optional["Groups"] = None, call_cost: float = 0.0) -> "Buckets":
        """Bucketed layout of attention from ``queries`` (the same groups by default; else the same
        number of groups, e.g. the kept queries of every frame) to these groups' keys. ``call_cost``:
        the cost of one more padded batch, in (query, key) pairs (see :func:`plan_buckets`); cached."""
        q = self if queries is None else queries
        key = ("buckets", id(q), call_cost)
        if key not in self._cache:
            self._cache[key] = (q, Buckets.build(q, self, call_cost))     # q kept alive: the id stays unique
        return self._cache[key][1]

    # -- per-clip bookkeeping ------------------------------------------------------------------------
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
class Jagged:
    """Groups stored one after another (lead slots first), as nested jagged tensors take them."""
    rows: torch.Tensor            # (M,) row of each packed token
    lead_rows: torch.Tensor       # (G·lead,) rows of the lead slots, group by group
    offsets: torch.Tensor         # (G + 1,) first row of each group, then the total
    total: int
    min_length: int
    max_length: int


def plan_buckets(q_lengths: Sequence[int], k_lengths: Sequence[int], call_cost: float,
                 max_candidates: int = 32) -> List[int]:
    """Split groups into padded batches ("buckets") so that padded work plus a per-batch cost is least.

    Groups are ordered by (key length, query length); a bucket is a run of that order and costs
    n · (longest query) · (longest key) + ``call_cost``. Dynamic programming over at most
    ``max_candidates`` cut points (the distinct orders, or quantiles of them when there are more).
    Returns each bucket's upper bound on the sort key ``k_length · W + q_length``, W = max q + 1.
    """
    if not k_lengths:
        return []
    w = max(q_lengths) + 1
    keys = sorted(k * w + q for q, k in zip(q_lengths, k_lengths))
    distinct = sorted(set(keys))
    if len(distinct) > max_candidates:
        picks = {keys[min(len(keys) - 1, (i * len(keys)) // max_candidates)] for i in range(1, max_candidates)}
        distinct = sorted(picks | {keys[-1]})
    # per candidate interval (previous cut, this cut]: group count and longest query
    count, longest_q, j = [], [], 0
    for cut in distinct:
        n, mq = 0, 0
        while j < len(keys) and keys[j] <= cut:
            n, mq, j = n + 1, max(mq, keys[j] % w), j + 1
        count.append(n)
        longest_q.append(mq)
    c = len(distinct)
    best, prev = [0.0] + [float("inf")] * c, [0] * (c + 1)
    for end in range(1, c + 1):
        n, mq = 0, 0
        mk = distinct[end - 1] // w
        for start in range(end - 1, -1, -1):             # bucket = intervals start..end-1
            n, mq = n + count[start], max(mq, longest_q[start])
            cost = best[start] + n * mq * mk + call_cost
            if cost < best[end]:
                best[end], prev[end] = cost, start
    bounds, end = [], c
    while end > 0:
        bounds.append(distinct[end - 1])
        end = prev[end]
    return bounds[::-1]


@dataclass
class Bucket:
    count: int                      # groups in this bucket
    q_length: int                   # query slots per group (lead included)
    k_length: int                   # key slots per group
    q_start: int                    # first row of the bucket in the query / key buffers
    k_start: int
    key_mask: Optional[torch.Tensor]   # (count, k_length) bool, None when no key is padding


@dataclass
class Buckets:
    """Padded batches of groups of similar lengths, stored back to back in one query and one key
    buffer (each bucket a (count, length, C) block)."""
    buckets: List[Bucket]
    q_rows: torch.Tensor          # (Mq,) buffer row of each query token
    q_lead_rows: torch.Tensor     # (G·lead,) rows of the lead queries, group by group
    k_rows: torch.Tensor
    k_lead_rows: torch.Tensor
    q_total: int
    k_total: int
    same: bool                    # queries are the keys' own groups (one buffer serves both)
    used: Optional[torch.Tensor] = None   # (k_total,) bool, True at real key rows; None when none is padding
    _bias: Dict = field(default_factory=dict, repr=False)

    def key_bias(self, bucket: Bucket, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """The bucket's key mask as an additive logit bias (0 real, −inf padding) in ``dtype``, a view of one
        bias vector made once per plan: given a bool mask, SDPA would build this bias itself on every call."""
        if bucket.key_mask is None:
            return None
        if dtype not in self._bias:
            self._bias[dtype] = torch.zeros(self.k_total, dtype=dtype, device=self.used.device).masked_fill_(
                ~self.used, float("-inf"))
        return self._bias[dtype][bucket.k_start: bucket.k_start + bucket.count * bucket.k_length].view(
            bucket.count, bucket.k_length)

    @classmethod
    def build(cls, q: Groups, k: Groups, call_cost: float) -> "Buckets":
        """Plan on the host from the kept counts (numpy), then one host→device copy of each group's first
        buffer rows; the device work is a handful of index ops whatever the number of buckets."""
        if q.num_groups != k.num_groups or q.lead != k.lead:
            raise ValueError("query and key groups must match one to one")
        lead = k.lead
        q_len, k_len = np.asarray(q.lengths, dtype=np.int64), np.asarray(k.lengths, dtype=np.int64)
        bounds = plan_buckets(q.lengths, k.lengths, call_cost)
        w = int(q_len.max(initial=0)) + 1
        which = np.searchsorted(np.asarray(bounds, dtype=np.int64), k_len * w + q_len)   # bucket of each group
        n = len(bounds)
        count = np.bincount(which, minlength=n)
        lq, lk, k_min = np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, np.iinfo(np.int64).max)
        np.maximum.at(lq, which, q_len)
        np.maximum.at(lk, which, k_len)
        np.minimum.at(k_min, which, k_len)
        q_at, k_at = _starts(count * lq), _starts(count * lk)
        order = np.argsort(which, kind="stable")                  # groups keep their order inside a bucket
        within = np.empty_like(which)
        within[order] = np.arange(len(which)) - _starts(count)[which[order]]
        first = np.stack([q_at[which] + within * lq[which], k_at[which] + within * lk[which]])
        q_first, k_first = host_to_device(first, k.sizes.device)
        buckets = [Bucket(int(count[i]), int(lq[i]), int(lk[i]), int(q_at[i]), int(k_at[i]), None)
                   for i in range(n)]
        k_total = int((count * lk).sum())
        k_rows = k_first.index_select(0, k.group) + k.rank + lead
        arange_lead = torch.arange(lead, device=k_first.device)
        k_lead_rows = (k_first.unsqueeze(1) + arange_lead).reshape(-1)
        uneven = [i for i in range(n) if k_min[i] != lk[i]]           # buckets whose keys need a mask
        used = None
        if uneven:
            used = torch.zeros(k_total, dtype=torch.bool, device=k_first.device)
            used[k_rows] = True
            used[k_lead_rows] = True
            for i in uneven:
                b = buckets[i]
                b.key_mask = used[b.k_start: b.k_start + b.count * b.k_length].view(b.count, b.k_length)
        same = q is k
        q_rows = k_rows if same else q_first.index_select(0, q.group) + q.rank + lead
        q_lead_rows = k_lead_rows if same else (q_first.unsqueeze(1) + arange_lead).reshape(-1)
        return cls(buckets, q_rows, q_lead_rows, k_rows, k_lead_rows, int((count * lq).sum()), k_total, same, used)


def _starts(sizes: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums: where each of consecutive blocks of ``sizes`` starts."""
    return np.cumsum(sizes) - sizes


def host_to_device(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host-made index table on ``device`` without making the host wait for the device: on an
    accelerator a pinned copy, sent asynchronously (the caching host allocator keeps it alive until the
    copy is done); on the CPU the array itself."""
    t = torch.from_numpy(np.ascontiguousarray(values))
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


@dataclass
class TokenSet:
    """Kept patch tokens of a batch of clips, packed, with their space-time positions.

    x:    (M, D) token features, rows ordered by (clip, t, p).
    cls:  (B, C, D) class tokens, not part of ``x``: C = 1 (TimeSformer) or T (X-ViT, one per frame).
    clip, t, p: (M,) long positions; p = h * W + w on the patch grid.
    grid: (T, H, W) of the full token grid.
    size: (M,) float, the number of original patches each token stands for (token merging, see
          :mod:`video_ats.tome`); None means all ones (dense and ATS sets), at no cost.
    host: the kept counts on the host (:class:`HostSizes`); read from the device on first use when
          not given.
    """
    x: torch.Tensor
    cls: torch.Tensor
    clip: torch.Tensor
    t: torch.Tensor
    p: torch.Tensor
    grid: Tuple[int, int, int]
    dense: bool = False
    size: Optional[torch.Tensor] = None
    host: Optional[HostSizes] = None
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
        return cls(x.reshape(b * t_ * h_ * w_, -1), cls_tokens, clip, t, p, grid, dense=True,
                   host=HostSizes.full(b, grid))

    @property
    def batch_size(self) -> int:
        return self.cls.shape[0]

    @property
    def num_tokens(self) -> torch.Tensor:
        """(B,) kept patch tokens per clip (class tokens not counted)."""
        return count_per(self.clip, self.batch_size)

    @property
    def sizes(self) -> HostSizes:
        """The kept counts on the host; a set made without them reads them now (one host sync)."""
        if self.host is None:
            self.host = HostSizes.read(*self._counts())
        return self.host

    def _counts(self, kept: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Device counts per (clip, frame) and per (clip, position) of the tokens (``kept`` ones only)."""
        t_, h_, w_ = self.grid
        b, p_ = self.batch_size, h_ * w_
        return (count_per(self.clip * t_ + self.t, b * t_, kept),
                count_per(self.clip * p_ + self.p, b * p_, kept))

    def replace(self, x: torch.Tensor, cls: Optional[torch.Tensor] = None) -> "TokenSet":
        """Same tokens and layout, new features (the cached groups stay valid)."""
        return TokenSet(x, self.cls if cls is None else cls, self.clip, self.t, self.p, self.grid,
                        self.dense, self.size, self.host, self._groups)

    def select(self, kept: torch.Tensor) -> Tuple[torch.Tensor, HostSizes]:
        """The packed indices of the True rows of the (M,) bool ``kept`` and the counts of what they
        keep, with a single device→host read (of the kept counts per frame and per position)."""
        host = HostSizes.read(*self._counts(kept))
        return indices_of(kept, host.total), host

    def keep(self, kept: torch.Tensor, x: Optional[torch.Tensor] = None,
             size: Optional[torch.Tensor] = None, host: Optional[HostSizes] = None) -> "TokenSet":
        """The subset given by ``kept``: a (M,) bool mask or the sorted packed indices to keep; ``x``
        (M, D) and ``size`` (M,) replace the features and the token sizes first if given; ``host``:
        the kept counts when the caller has them (:meth:`select`)."""
        if kept.dtype == torch.bool:
            idx, host = self.select(kept)
        else:
            idx = kept
        x = self.x if x is None else x
        size = self.size if size is None else size
        dense = self.dense and idx.numel() == self.x.shape[0]
        return TokenSet(x.index_select(0, idx), self.cls, self.clip[idx], self.t[idx], self.p[idx],
                        self.grid, dense, None if size is None else size.index_select(0, idx), host)

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
            raw, host = self.clip * t_ + self.t, list(self.sizes.frames)
        elif by == "position":
            raw, host = self.clip * p_ + self.p, list(self.sizes.positions)
        else:
            raise ValueError(f"unknown grouping {by!r}")
        if self.dense:                              # full grid: groups are reshapes, no index maps
            per_clip, n = (t_, p_) if by == "frame" else (p_, t_)
            rank = torch.arange(raw.numel(), device=dev) % p_ if by == "frame" else self.t
            sizes = torch.full((b * per_clip,), n, dtype=torch.long, device=dev)
            clip = torch.arange(b, device=dev).repeat_interleave(per_clip)
            return Groups(raw, rank, sizes, (n,) * (b * per_clip), clip, lead, view=(by, (b, t_, p_)))
        sizes = count_per(raw, len(host))
        if by == "position":                        # only positions that still hold a token
            present = sizes > 0
            where = indices_of(present, sum(1 for s in host if s))
            raw = (present.long().cumsum(0) - 1)[raw]
            sizes, host = sizes.index_select(0, where), [s for s in host if s]
            clip = where // p_
        else:
            clip = torch.arange(b, device=dev).repeat_interleave(t_)
        order = torch.argsort(raw, stable=True)     # frame groups are already sorted; cheap either way
        start = sizes.cumsum(0) - sizes
        rank = torch.empty_like(raw)
        rank[order] = torch.arange(raw.numel(), device=dev) - start[raw[order]]
        return Groups(raw, rank, sizes, tuple(host), clip, lead)

    def per_clip(self, values: torch.Tensor, fill: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, ...) packed values -> (B, N_max, ...) padded per clip, the (B, N_max) valid mask, and the
        flat index of each packed row in that padded layout (to map results back)."""
        counts = self.num_tokens
        n_max = max(self.sizes.per_clip(self.batch_size), default=0)
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
