"""Attention over uneven token groups: the layouts of ``attend_groups`` side by side (attention only).

A skewed keep pattern on a TimeSformer-B grid (14×14 patches × 8 frames, embed 768, 12 heads): every
(clip, frame) keeps between 2 and 196 tokens (log-uniform, seeded), at random positions. Three cases:

* ``spatial``  — frame groups with the CLS as lead slot (self-attention, as in every block after ATS);
* ``temporal`` — spatial-position groups across time (TimeSformer's temporal attention after ATS);
* ``ats``      — the ATS block itself: keys = the frame groups above, queries = CLS + about half of
                 each frame's tokens.

Each layout runs from packed q|k|v rows to packed outputs (gathers, padding and un-padding included).
Settings are interleaved round-robin; the median is reported, as thread CPU time (robust when other
jobs share the machine; with ``--threads 1`` it is all the work) and wall time. ``blockdiag`` is a
benchmark-only candidate (not in the library): groups packed first-fit into sequences as long as the
longest group, with a block-diagonal mask. ``bucketed:COST`` is the bucketed layout planned with
another per-batch call cost (``layers.BUCKET_CALL_COST``).

    video-ats benchmark attention --batch 1 8 --repeats 7 --threads 1 [--train]
    video-ats benchmark attention --layouts bucketed:0 bucketed:500 bucketed:2000 bucketed:8000 padded
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..models import layers
from ..models.layers import ATTENTION_LAYOUTS, attention_layout
from ..tokens import TokenSet

GRID = (8, 14, 14)
DIM, HEADS = 768, 12
DEFAULT_LAYOUTS = ("padded", "bucketed", "nested", "blockdiag")
CASES = ("spatial", "temporal", "ats")


@dataclass
class AttentionSpec:
    """What to measure: batch sizes × cases × layouts, ``repeats`` interleaved rounds (median reported)."""
    batch_sizes: Sequence[int] = (1, 8)
    repeats: int = 7
    train: bool = False                          # forward + backward instead of forward only
    layouts: Sequence[str] = DEFAULT_LAYOUTS
    cases: Sequence[str] = CASES
    seed: int = 0                                # keep pattern seed; query half seed + 1, inputs seed + 2


def check_layout(name: str) -> None:
    """One clear line for a layout this benchmark cannot run."""
    base, sep, cost = name.partition(":")
    if sep:
        if base != "bucketed":
            raise UserError(f"--layouts {name!r}: only bucketed takes a call cost, e.g. bucketed:500")
        try:
            float(cost)
        except ValueError:
            raise UserError(f"--layouts {name!r}: the call cost must be a number, e.g. bucketed:500") from None
        return
    if name not in (*ATTENTION_LAYOUTS, "blockdiag"):
        raise UserError(f"--layouts {name!r} is not a layout; use {', '.join((*ATTENTION_LAYOUTS, 'blockdiag'))} "
                        "or bucketed:COST")


def check_case(name: str) -> None:
    if name not in CASES:
        raise UserError(f"--cases {name!r} is not a case; use {', '.join(CASES)}")


def skewed_set(batch: int, seed: int = 0, low: int = 2, high: int = 196) -> TokenSet:
    gen = torch.Generator().manual_seed(seed)
    t, h, w = GRID
    counts = (low * torch.exp(torch.rand(batch, t, generator=gen) * math.log(high / low))).round().long()
    keep = torch.zeros(batch, t, h * w, dtype=torch.bool)
    for b in range(batch):
        for f in range(t):
            keep[b, f, torch.randperm(h * w, generator=gen)[: int(counts[b, f])]] = True
    full = TokenSet.from_grid(torch.zeros(batch, t, h * w, 1), torch.zeros(batch, 1, 1), GRID)
    return full.keep(keep.view(-1))


def half_of(ts: TokenSet, seed: int = 1) -> TokenSet:
    keep = torch.rand(ts.clip.numel(), generator=torch.Generator().manual_seed(seed)) < 0.5
    return ts.keep(keep)


def blockdiag(groups, qkv, lead, heads):
    """Benchmark-only candidate: groups packed first-fit-decreasing into sequences of the longest
    group's length, attention with a block-diagonal mask."""
    cap = groups.length
    lengths = groups.lengths
    bins, fill, start = [], [], [0] * len(lengths)
    for g in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for i, used in enumerate(fill):
            if used + lengths[g] <= cap:
                start[g], fill[i] = i * cap + used, used + lengths[g]
                break
        else:
            start[g] = len(bins) * cap
            bins.append(g)
            fill.append(lengths[g])
    n = len(fill)
    first = torch.tensor(start)
    rows = first[groups.group] + groups.lead + groups.rank
    lead_rows = (first.unsqueeze(1) + torch.arange(groups.lead)).reshape(-1)
    seg = torch.full((n * cap,), -1, dtype=torch.long)
    seg[rows] = groups.group
    seg[lead_rows] = torch.arange(len(lengths)).repeat_interleave(groups.lead)
    seg = seg.view(n, cap)
    allowed = ((seg.unsqueeze(2) == seg.unsqueeze(1)) & (seg.unsqueeze(1) >= 0)) | torch.eye(cap, dtype=torch.bool)
    c = qkv.shape[-1]
    buf = qkv.new_zeros(n * cap, c).index_copy(0, rows, qkv)
    if lead is not None:
        buf = buf.index_copy(0, lead_rows, lead.reshape(-1, c))
    q, k, v = layers.split_heads(buf.view(n, cap, c), heads)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))
    o = layers.merge_heads(o).reshape(-1, c // 3)
    out_lead = o.index_select(0, lead_rows).view(-1, groups.lead, c // 3) if groups.lead else None
    return o.index_select(0, rows), out_lead


def cases(batch: int, seed: int = 0):
    ts = skewed_set(batch, seed)
    frames, positions = ts.groups("frame", lead=1), ts.groups("position")
    kept = half_of(ts, seed + 1)
    yield "spatial", ts, frames, None
    yield "temporal", ts, positions, None
    yield "ats", ts, frames, kept


def run_layout(layout, groups, qkv, lead, kept):
    if layout == "blockdiag":
        return blockdiag(groups, qkv, lead, HEADS)
    if ":" in layout:                         # "bucketed:COST": another per-batch cost for the plan
        layout, cost = layout.split(":")
        old, layers.BUCKET_CALL_COST["cpu"] = layers.BUCKET_CALL_COST["cpu"], float(cost)
        try:
            return run_layout(layout, groups, qkv, lead, kept)
        finally:
            layers.BUCKET_CALL_COST["cpu"] = old
    queries = None
    if kept is not None:                      # the kept queries: rows of the entering set's q
        queries = (kept[0], qkv[:, :DIM].index_select(0, kept[1]), lead[..., :DIM])
    with attention_layout(layout):
        return layers.attend_groups(groups, qkv, lead, HEADS, queries=queries)


def run_attention(spec: AttentionSpec, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Measure ``spec`` and print the table; returns ``{"kind": "attention", "meta": {...}, "rows": [...]}``
    with one row per (batch, case, layout): median thread CPU ms and wall ms, and the case's pair counts."""
    for lay in spec.layouts:
        check_layout(lay)
    for name in spec.cases:
        check_case(name)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "mode": "train" if spec.train else "inference", "grid": list(GRID), "embed_dim": DIM, "heads": HEADS,
            "batch_sizes": list(spec.batch_sizes), "repeats": spec.repeats, "layouts": list(spec.layouts),
            "cases": list(spec.cases), "seed": spec.seed}
    log(f"torch {torch.__version__}, {meta['threads']} thread(s), "
        f"{'forward+backward' if spec.train else 'forward'}, median of {spec.repeats}, thread CPU ms / wall ms")
    rows: List[dict] = []
    for batch in spec.batch_sizes:
        for name, ts, groups, kept in cases(batch, spec.seed):
            if name not in spec.cases:
                continue
            gen = torch.Generator().manual_seed(spec.seed + 2)
            qkv = torch.randn(ts.clip.numel(), 3 * DIM, generator=gen, requires_grad=spec.train)
            lead = torch.randn(groups.num_groups, groups.lead, 3 * DIM, generator=gen, requires_grad=spec.train) \
                if groups.lead else None
            queries = None if kept is None else (kept.groups("frame", lead=1), ts.index_of(kept.clip, kept.t, kept.p))
            layouts = [lay for lay in spec.layouts if not (lay == "blockdiag" and queries is not None)]
            ref = run_layout("padded", groups, qkv, lead, queries)[0].detach()
            grad = torch.randn(ref.shape, generator=gen)
            times = {lay: ([], []) for lay in layouts}
            errs = {}
            for lay in layouts:
                errs[lay] = (run_layout(lay, groups, qkv, lead, queries)[0].detach() - ref).abs().max().item()
                assert errs[lay] < 1e-4, (lay, errs[lay])
            for _ in range(spec.repeats):
                for lay in layouts:
                    c0, w0 = time.thread_time(), time.perf_counter()
                    if spec.train:
                        out, out_lead = run_layout(lay, groups, qkv, lead, queries)
                        ((out * grad).sum() + (out_lead.sum() if out_lead is not None else 0)).backward()
                    else:
                        with torch.no_grad():
                            run_layout(lay, groups, qkv, lead, queries)
                    times[lay][0].append(time.thread_time() - c0)
                    times[lay][1].append(time.perf_counter() - w0)
            q_groups = groups if kept is None else kept.groups("frame", lead=1)
            real = sum(a * b for a, b in zip(q_groups.lengths, groups.lengths))
            padded = groups.num_groups * q_groups.length * groups.length
            with attention_layout("bucketed"):
                cost = layers.BUCKET_CALL_COST["cpu"]
                plan = groups.buckets(None if kept is None else q_groups, call_cost=cost)
            bucketed = sum(b.count * b.q_length * b.k_length for b in plan.buckets)
            log(f"batch {batch} {name:8s}: {groups.num_groups} groups, {ts.clip.numel()} tokens; (query, key) "
                f"pairs: real {real}, padded {padded / real:.2f}x, bucketed {bucketed / real:.2f}x in "
                f"{len(plan.buckets)} batches")
            for lay in layouts:
                cpu, wall = (statistics.median(v) * 1e3 for v in times[lay])
                log(f"    {lay:9s} {cpu:9.2f} {wall:9.2f}")
                rows.append({"batch": batch, "case": name, "layout": lay, "cpu_ms": cpu, "wall_ms": wall,
                             "groups": groups.num_groups, "tokens": ts.clip.numel(), "pairs_real": real,
                             "padded_ratio": padded / real, "bucketed_ratio": bucketed / real,
                             "buckets": len(plan.buckets), "max_abs_err_vs_padded": errs[lay]})
    return {"kind": "attention", "meta": meta, "rows": rows}
