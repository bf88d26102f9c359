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
longest group, with a block-diagonal mask.

    python benchmarks/attention_layouts.py --batch 1 8 --repeats 7 --threads 1 [--train]
    python benchmarks/attention_layouts.py --layouts bucketed:0 bucketed:500 bucketed:2000 bucketed:8000 padded
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from video_ats.models import layers
from video_ats.models.layers import attention_layout
from video_ats.tokens import TokenSet

GRID = (8, 14, 14)
DIM, HEADS = 768, 12


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


def cases(batch: int):
    ts = skewed_set(batch)
    frames, positions = ts.groups("frame", lead=1), ts.groups("position")
    kept = half_of(ts)
    yield "spatial", ts, frames, None
    yield "temporal", ts, positions, None
    yield "ats", ts, frames, kept


def run(layout, groups, qkv, lead, kept):
    if layout == "blockdiag":
        return blockdiag(groups, qkv, lead, HEADS)
    if ":" in layout:                         # "bucketed:COST": another per-batch cost for the plan
        layout, cost = layout.split(":")
        old, layers.BUCKET_CALL_COST["cpu"] = layers.BUCKET_CALL_COST["cpu"], float(cost)
        try:
            return run(layout, groups, qkv, lead, kept)
        finally:
            layers.BUCKET_CALL_COST["cpu"] = old
    queries = None
    if kept is not None:                      # the kept queries: rows of the entering set's q
        queries = (kept[0], qkv[:, :DIM].index_select(0, kept[1]), lead[..., :DIM])
    with attention_layout(layout):
        return layers.attend_groups(groups, qkv, lead, HEADS, queries=queries)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train", action="store_true", help="forward + backward instead of forward only")
    ap.add_argument("--layouts", nargs="+", default=["padded", "bucketed", "nested", "blockdiag"])
    ap.add_argument("--cases", nargs="+", default=["spatial", "temporal", "ats"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {'forward+backward' if args.train else 'forward'}, "
          f"median of {args.repeats}, thread CPU ms / wall ms")
    for batch in args.batch:
        for name, ts, groups, kept in cases(batch):
            if name not in args.cases:
                continue
            gen = torch.Generator().manual_seed(2)
            qkv = torch.randn(ts.clip.numel(), 3 * DIM, generator=gen, requires_grad=args.train)
            lead = torch.randn(groups.num_groups, groups.lead, 3 * DIM, generator=gen, requires_grad=args.train) \
                if groups.lead else None
            queries = None if kept is None else (kept.groups("frame", lead=1), ts.index_of(kept.clip, kept.t, kept.p))
            layouts = [lay for lay in args.layouts if not (lay == "blockdiag" and queries is not None)]
            ref = run("padded", groups, qkv, lead, queries)[0].detach()
            grad = torch.randn(ref.shape, generator=gen)
            times = {lay: ([], []) for lay in layouts}
            for lay in layouts:
                err = (run(lay, groups, qkv, lead, queries)[0].detach() - ref).abs().max().item()
                assert err < 1e-4, (lay, err)
            for _ in range(args.repeats):
                for lay in layouts:
                    c0, w0 = time.thread_time(), time.perf_counter()
                    if args.train:
                        out, out_lead = run(lay, groups, qkv, lead, queries)
                        ((out * grad).sum() + (out_lead.sum() if out_lead is not None else 0)).backward()
                    else:
                        with torch.no_grad():
                            run(lay, groups, qkv, lead, queries)
                    times[lay][0].append(time.thread_time() - c0)
                    times[lay][1].append(time.perf_counter() - w0)
            q_groups = groups if kept is None else kept.groups("frame", lead=1)
            real = sum(a * b for a, b in zip(q_groups.lengths, groups.lengths))
            padded = groups.num_groups * q_groups.length * groups.length
            with attention_layout("bucketed"):
                cost = layers.BUCKET_CALL_COST["cpu"]
                plan = groups.buckets(None if kept is None else q_groups, call_cost=cost)
            bucketed = sum(b.count * b.q_length * b.k_length for b in plan.buckets)
            print(f"batch {batch} {name:8s}: {groups.num_groups} groups, {ts.clip.numel()} tokens; (query, key) "
                  f"pairs: real {real}, padded {padded / real:.2f}x, bucketed {bucketed / real:.2f}x in "
                  f"{len(plan.buckets)} batches")
            for lay in layouts:
                cpu, wall = (statistics.median(v) * 1e3 for v in times[lay])
                print(f"    {lay:9s} {cpu:9.2f} {wall:9.2f}")


if __name__ == "__main__":
    main()
