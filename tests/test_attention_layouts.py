"""Attention over uneven token groups (models/layers.attend_groups): the bucketed and nested layouts
compute what the padded one computes — outputs and gradients — for any keep pattern, including empty
frames and groups of one token; and whole ATS models agree across layouts."""
import pytest
import torch
from _models import clips, tiny_timesformer
from hypothesis import given, settings
from hypothesis import strategies as st

import video_ats
from video_ats.models import layers
from video_ats.models.layers import attend_groups, attention_layout, lead_attention
from video_ats.tokens import TokenSet, plan_buckets

HEADS, DIM = 2, 8
LAYOUTS = ["bucketed", "nested"]


@st.composite
def keep_patterns(draw):
    """A token set with a random keep mask: frames may be empty, groups may hold one token."""
    b, t, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.6, 0.9, 1.0]))
    per_frame = torch.rand(b * t, 1, generator=gen) < draw(st.floats(0.0, 1.0))    # some frames dense/empty
    keep = (torch.rand(b * t, h * w, generator=gen) < density) | per_frame & (density > 0.5)
    full = TokenSet.from_grid(torch.zeros(b, t, h * w, 1), torch.zeros(b, 1, 1), (t, h, w))
    ts = full.keep(keep.view(-1))
    sub = torch.rand(ts.clip.numel(), generator=gen) < draw(st.floats(0.0, 1.0))      # ATS-like queries
    return ts, sub, seed


def run(layout, groups, qkv, lead, queries=None):
    with attention_layout(layout):
        return attend_groups(groups, qkv, lead, HEADS, queries=queries)


def outputs_and_grads(layout, groups, qkv, lead, sub_set=None, sub_idx=None, seed=0):
    qkv = qkv.detach().requires_grad_()
    lead = None if lead is None else lead.detach().requires_grad_()
    queries = None
    if sub_set is not None:
        queries = (sub_set.groups("frame", lead=1), qkv[:, :DIM].index_select(0, sub_idx), lead[..., :DIM])
    out, out_lead = run(layout, groups, qkv, lead, queries)
    gen = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=gen)).sum()
    if out_lead is not None:
        loss = loss + (out_lead * torch.randn(out_lead.shape, generator=gen)).sum()
    inputs = [qkv] + ([lead] if lead is not None else [])
    grads = torch.autograd.grad(loss, inputs, allow_unused=True) if loss.requires_grad else [None] * len(inputs)
    grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
    return [out, out_lead] + grads


def assert_all_close(got, ref):
    for a, b in zip(got, ref):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@settings(max_examples=40, deadline=None)
@given(keep_patterns(), st.sampled_from([("frame", 1), ("position", 0)]))
def test_layouts_match_padded_self_attention(pattern, grouping):
    ts, _, seed = pattern
    by, lead_slots = grouping
    groups = ts.groups(by, lead=lead_slots)
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(ts.clip.numel(), 3 * DIM, generator=gen)
    lead = torch.randn(groups.num_groups, lead_slots, 3 * DIM, generator=gen) if lead_slots else None
    ref = outputs_and_grads("padded", groups, qkv, lead, seed=seed)
    for layout in LAYOUTS:
        assert_all_close(outputs_and_grads(layout, groups, qkv, lead, seed=seed), ref)


@settings(max_examples=40, deadline=None)
@given(keep_patterns())
def test_layouts_match_padded_for_kept_queries(pattern):
    """The ATS block: keys are every token of a frame, queries the CLS and a subset (maybe none)."""
    ts, sub, seed = pattern
    frames = ts.groups("frame", lead=1)
    kept = ts.keep(sub)
    idx = sub.nonzero().squeeze(1)
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(ts.clip.numel(), 3 * DIM, generator=gen)
    lead = torch.randn(frames.num_groups, 1, 3 * DIM, generator=gen)
    ref = outputs_and_grads("padded", frames, qkv, lead, kept, idx, seed)
    for layout in LAYOUTS:
        assert_all_close(outputs_and_grads(layout, frames, qkv, lead, kept, idx, seed), ref)


@settings(max_examples=30, deadline=None)
@given(keep_patterns())
def test_lead_attention_is_the_cls_row_of_the_padded_attention(pattern):
    ts, _, seed = pattern
    frames = ts.groups("frame", lead=1)
    gen = torch.Generator().manual_seed(seed)
    q_lead, k_lead = torch.randn(2, frames.num_groups, HEADS, 4, generator=gen)
    k = torch.randn(ts.clip.numel(), HEADS, 4, generator=gen)
    got = lead_attention(q_lead, k, k_lead, frames)                                 # (M, heads)
    padded_k = frames.pad(k.flatten(1), k_lead.flatten(1).unsqueeze(1)).view(frames.num_groups, -1, HEADS, 4)
    logits = torch.einsum("ghd,glhd->ghl", q_lead, padded_k) * 0.5
    mask = frames.key_mask()
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None], float("-inf"))
    ref = frames.unpad(logits.softmax(-1).transpose(1, 2))
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(keep_patterns(), st.sampled_from([0.0, 20.0]))
def test_many_buckets_match_padded(pattern, call_cost):
    """With a free (or cheap) padded batch the planner cuts many buckets: the host-planned rows, the per-plan
    key bias and the bucket order must still give the padded layout's outputs and gradients."""
    ts, sub, seed = pattern
    gen = torch.Generator().manual_seed(seed)
    frames = ts.groups("frame", lead=1)
    qkv = torch.randn(ts.clip.numel(), 3 * DIM, generator=gen)
    lead = torch.randn(frames.num_groups, 1, 3 * DIM, generator=gen)
    kept, idx = ts.keep(sub), sub.nonzero().squeeze(1)
    positions = ts.groups("position")
    cases = [(frames, lead, None, None), (frames, lead, kept, idx), (positions, None, None, None)]
    refs = [outputs_and_grads("padded", g, qkv, ld, k, i, seed) for g, ld, k, i in cases]
    old = dict(layers.BUCKET_CALL_COST)
    layers.BUCKET_CALL_COST["cpu"] = call_cost
    try:
        for (g, ld, k, i), ref in zip(cases, refs):
            assert_all_close(outputs_and_grads("bucketed", g, qkv, ld, k, i, seed), ref)
    finally:
        layers.BUCKET_CALL_COST.clear()
        layers.BUCKET_CALL_COST.update(old)


def test_bucket_rows_tile_the_buffers():
    """Every token and lead slot gets its own buffer row inside its group's block of its bucket, and the key
    bias is −inf exactly on the padding rows of uneven buckets."""
    gen = torch.Generator().manual_seed(0)
    full = TokenSet.from_grid(torch.zeros(2, 4, 9, 1), torch.zeros(2, 1, 1), (4, 3, 3))
    ts = full.keep(torch.rand(72, generator=gen) < 0.5)
    frames = ts.groups("frame", lead=1)
    plan = frames.buckets(call_cost=0.0)
    assert len(plan.buckets) > 1
    rows = torch.cat([plan.k_rows, plan.k_lead_rows])
    assert rows.unique().numel() == rows.numel() and int(rows.max()) < plan.k_total
    group_of_row = torch.full((plan.k_total,), -1)
    for b in plan.buckets:
        block = torch.arange(b.k_start, b.k_start + b.count * b.k_length).view(b.count, b.k_length)
        bias = plan.key_bias(b, torch.float32)
        real = torch.isin(block, rows)
        assert (bias is None) == bool(real.all())
        if bias is not None:
            assert torch.equal(bias == 0, real) and bool(torch.isinf(bias[~real]).all())
        for g, r in enumerate(block):
            group_of_row[r] = b.k_start * 1000 + g          # one id per group slot block
    ids = group_of_row[plan.k_rows]
    for g in range(frames.num_groups):                       # a group's tokens share one block, after its lead
        mine = ids[frames.group == g]
        assert mine.unique().numel() <= 1
        if mine.numel():
            assert int(group_of_row[plan.k_lead_rows[g]]) == int(mine[0])


def test_plan_buckets():
    lengths = [1, 2, 2, 5, 9, 9, 9, 40]
    assert plan_buckets(lengths, lengths, call_cost=1e12) == [40 * 41 + 40]            # one batch
    bounds = plan_buckets(lengths, lengths, call_cost=0.0)                              # no padding at all
    assert [b // 41 for b in bounds] == sorted(set(lengths))
    assert plan_buckets([], [], 10.0) == []
    # queries shorter than keys: a batch pads to its longest query and its longest key
    bounds = plan_buckets([1, 1, 30], [40, 40, 40], call_cost=0.0)
    assert len(bounds) == 2


def test_empty_and_dense_groups():
    full = TokenSet.from_grid(torch.zeros(2, 3, 4, 1), torch.zeros(2, 1, 1), (3, 2, 2))
    nothing = full.keep(torch.zeros(24, dtype=torch.bool))
    for ts in (full, nothing):
        frames = ts.groups("frame", lead=1)
        qkv = torch.randn(ts.clip.numel(), 3 * DIM)
        lead = torch.randn(frames.num_groups, 1, 3 * DIM)
        ref = run("padded", frames, qkv, lead)
        for layout in LAYOUTS:
            out = run(layout, frames, qkv, lead)
            torch.testing.assert_close(out[0], ref[0])
            torch.testing.assert_close(out[1], ref[1])
    assert nothing.groups("position").num_groups == 0


TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_frames=4, num_classes=7)
XVIT = dict(TINY, num_frames=8, num_segments=4, head_num_heads=4, head_mlp_dim=48)


def ats_model(name):
    ats = {"blocks": [0, 2], "num_tokens": [0.5, 0.4]}
    if name == "timesformer":
        m = tiny_timesformer(TINY, ats=ats)
    else:
        torch.manual_seed(0)
        m = video_ats.create_model("xvit", **XVIT, ats=ats).eval()
    with torch.no_grad():                                # sharper attention: uneven keeping
        for blk in m.blocks:
            blk.attn.qkv.weight.mul_(6.0)
    return m


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_ats_models_agree_across_layouts(name):
    m = ats_model(name)
    x = clips(3, t=m.num_frames)
    results = {}
    for layout in ["padded"] + LAYOUTS:
        m.zero_grad()
        with attention_layout(layout):
            out = m(x)
        out.logsumexp(-1).sum().backward()
        kept = {k: v.clone() for k, v in m.last_kept_tokens.items()}
        grads = [p.grad.clone() for p in m.parameters() if p.grad is not None]
        results[layout] = (out.detach(), kept, grads)
    ref_out, ref_kept, ref_grads = results["padded"]
    assert len(set(ref_kept[2].tolist())) > 1 or len(set(ref_kept[0].tolist())) > 1, "keep should be uneven"
    for layout in LAYOUTS:
        out, kept, grads = results[layout]
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
        assert all(torch.equal(kept[k], ref_kept[k]) for k in ref_kept)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)
