"""Token Merging (ToMe) baseline: the pure functions, and TimeSformer with ToMe inside."""
import pytest
import torch
from _models import clips, tiny_timesformer
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import video_ats
from video_ats.analysis.common import KeptPositions, measure
from video_ats.engine.evaluate import dense_gflops
from video_ats.errors import UserError
from video_ats.models.layers import attend, attention_backend
from video_ats.tokens import TokenSet
from video_ats.tome import ToMeConfig, bipartite_soft_matching, merge_wavg, proportional_bias, resolve_r

SETTINGS = settings(max_examples=30, deadline=None)
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_frames=4, num_classes=5)


# ---------------------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------------------
@st.composite
def groups(draw):
    g, n, d = draw(st.integers(1, 4)), draw(st.integers(1, 17)), draw(st.integers(1, 6))
    r = draw(st.integers(0, n // 2))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(g, n, d, generator=gen, dtype=torch.float64)
    metric = torch.randn(g, n, 3, generator=gen)
    size = torch.randint(1, 5, (g, n), generator=gen).double()
    return x, metric, size, r


@SETTINGS
@given(groups())
def test_merge_conserves_size_and_size_weighted_sum(case):
    x, metric, size, r = case
    g, n, _ = x.shape
    src, dst = bipartite_soft_matching(metric, r)
    out, new_size, keep = merge_wavg(x, size, src, dst)
    assert (keep.sum(1) == n - r).all()                               # every group loses exactly r
    assert (src % 2 == 0).all() and (dst % 2 == 1).all()              # A = even, B = odd
    assert all(len(set(row.tolist())) == r for row in src)           # an A token merges once
    assert not keep.gather(1, src).any()
    k = keep.unsqueeze(-1)
    torch.testing.assert_close((new_size * keep).sum(1), size.sum(1))                    # Σ size
    torch.testing.assert_close((new_size.unsqueeze(-1) * out * k).sum(1), (size.unsqueeze(-1) * x).sum(1))
    untouched = keep.clone().scatter_(1, dst, False)
    assert torch.equal(out[untouched], x[untouched]) and torch.equal(new_size[untouched], size[untouched])


@SETTINGS
@given(groups())
def test_matching_and_merge_follow_the_literal_definition(case):
    """Per-group loops: best cosine match in B for each A token, the r best A tokens merge, each merged
    token is the size-weighted mean of its members."""
    x, metric, size, r = case
    src, dst = bipartite_soft_matching(metric, r)
    out, new_size, _ = merge_wavg(x, size, src, dst)
    for gi in range(x.shape[0]):
        n = x.shape[1]
        a_idx, b_idx = list(range(0, n, 2)), list(range(1, n, 2))
        if not b_idx:
            assert r == 0
            continue
        cos = torch.nn.functional.cosine_similarity(metric[gi, a_idx, None].double(),
                                                    metric[gi, None, b_idx].double(), dim=-1)
        best = cos.max(1).values                                      # each A token's best B score
        chosen = [a_idx.index(s) for s in src[gi].tolist()]
        others = [i for i in range(len(a_idx)) if i not in chosen]
        if chosen and others:                                         # the r best-matching A tokens
            assert best[chosen].min() >= best[others].max() - 1e-6
        for i, dd in zip(chosen, dst[gi].tolist()):                  # each merges into its best B
            assert cos[i, b_idx.index(dd)] >= best[i] - 1e-6
        for dd in set(dst[gi].tolist()):
            members = [dd] + [s for s, e in zip(src[gi].tolist(), dst[gi].tolist()) if e == dd]
            w = size[gi, members]
            torch.testing.assert_close(out[gi, dd], (w[:, None] * x[gi, members]).sum(0) / w.sum())
            assert new_size[gi, dd] == w.sum()


def test_matching_is_deterministic_and_bounded():
    metric = torch.randn(3, 9, 4)
    assert all(torch.equal(u, v) for u, v in zip(bipartite_soft_matching(metric, 3), bipartite_soft_matching(metric, 3)))
    with pytest.raises(ValueError, match="at most 4"):
        bipartite_soft_matching(metric, 5)
    zeros = torch.zeros(1, 4, 2)                       # zero keys: similarity 0, never NaN
    src, dst = bipartite_soft_matching(zeros, 2)
    out, size, keep = merge_wavg(torch.randn(1, 4, 3), torch.ones(1, 4), src, dst)
    assert torch.isfinite(out).all() and keep.sum() == 2 and size[keep].sum() == 4


def test_resolve_r():
    assert resolve_r(0, 16) == 0 and resolve_r(3, 16) == 3 and resolve_r(100, 16) == 8 and resolve_r(100, 15) == 7
    assert resolve_r(0.5, 16) == 8 and resolve_r(0.3, 8) == 2 and resolve_r(0.5, 15) == 7 and resolve_r(0.1, 5) == 0
    assert resolve_r(4, 1) == 0


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_proportional_attention_with_unit_sizes_equals_plain_attention(backend):
    q, k, v = (torch.randn(3, 2, 5, 4) for _ in range(3))
    sizes = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2, [1.0] * 4 + [0.0]])     # 0 = padding
    with attention_backend(backend):
        torch.testing.assert_close(attend(q, k, v, proportional_bias(torch.ones(3, 5))), attend(q, k, v))
        torch.testing.assert_close(attend(q, k, v, proportional_bias(sizes)), attend(q, k, v, sizes > 0))
        # size s counts as s copies of the same key
        big = torch.cat([k[:, :, :1].expand(-1, -1, 3, -1), k[:, :, 1:]], dim=2)
        vbig = torch.cat([v[:, :, :1].expand(-1, -1, 3, -1), v[:, :, 1:]], dim=2)
        s = torch.tensor([3.0, 1, 1, 1, 1]).expand(3, 5)
        torch.testing.assert_close(attend(q, k, v, proportional_bias(s)), attend(q, big, vbig))


@pytest.mark.parametrize("drop", [False, True])
def test_block_with_unit_sizes_equals_block_without_sizes(drop):
    """Both the temporal and the spatial attention read sizes; all ones (padding included) changes nothing."""
    m = tiny_timesformer(TINY)
    blk = m.blocks[1]
    gen = torch.Generator().manual_seed(3)
    ts = TokenSet.from_grid(torch.randn(2, 4, 16, 32, generator=gen), torch.randn(2, 1, 32, generator=gen), (4, 4, 4))
    if drop:                                            # uneven groups: padded keys must stay masked
        ts = ts.keep(torch.rand(ts.x.shape[0], generator=gen) < 0.6)
    unit = TokenSet(ts.x, ts.cls, ts.clip, ts.t, ts.p, ts.grid, ts.dense, size=torch.ones(ts.x.shape[0]))
    with torch.no_grad():
        ref, out = blk(ts), blk(unit)
    torch.testing.assert_close(out.x, ref.x, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.cls, ref.cls, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------
def test_r_zero_reproduces_dense():
    dense, m = tiny_timesformer(TINY), tiny_timesformer(TINY, tome={"blocks": [0, 1, 2], "r": 0})
    x = clips(3)
    with torch.no_grad():
        torch.testing.assert_close(m(x), dense(x), atol=1e-5, rtol=0)
    assert set(m.last_kept_tokens) == {0, 1, 2} and all((k == 64).all() for k in m.last_kept_tokens.values())
    assert torch.equal(video_ats.count_gflops(m, x), video_ats.count_gflops(dense, x))


def test_every_frame_loses_r_and_kept_tokens_are_reported():
    m = tiny_timesformer(TINY, tome={"blocks": [0, 2], "r": [5, 0.5]})
    x = clips(2)
    with torch.no_grad(), KeptPositions(m) as hooks:
        m(x)
    assert torch.equal(m.last_kept_tokens[0], torch.tensor([44, 44]))       # 16 − 5 = 11 per frame
    assert torch.equal(m.last_kept_tokens[2], torch.tensor([24, 24]))       # 11 − ⌊0.5·11⌋ = 6 per frame
    for pos in hooks.positions[2]:
        assert torch.equal(torch.bincount(pos[:, 0], minlength=4), torch.full((4,), 6))
    res = measure(m, x)
    assert torch.equal(res["kept"][2], torch.tensor([24, 24]))
    assert (res["gflops"] < video_ats.count_gflops(tiny_timesformer(TINY), x)).all()


def test_create_model_dict_and_set_tome():
    m = video_ats.create_model("timesformer", **TINY, tome={"blocks": [1, 2], "r": [0.5, 0.3]})
    assert m.tome == ToMeConfig((1, 2), (0.5, 0.3))
    x = clips(1)
    with torch.no_grad():
        m(x)
        assert m.last_kept_tokens[1].item() == 32 and m.last_kept_tokens[2].item() == 24
        m.set_tome(None)
        dense = m(x)
        assert m.last_kept_tokens == {}
        m.set_tome(ToMeConfig(blocks=[0], r=2))
        assert m(x).shape == dense.shape and m.last_kept_tokens[0].item() == 56
        m.set_tome(None)
        torch.testing.assert_close(m(x), dense)


def test_dense_gflops_switches_tome_off_and_back_on():
    m = tiny_timesformer(TINY, tome={"blocks": [1], "r": 0.5})
    settings_ = {"num_frames": 4, "crop_size": 32}
    assert dense_gflops(m, settings_) == pytest.approx(video_ats.count_gflops(tiny_timesformer(TINY), clips(1)).item(), rel=1e-12)
    assert m.tome is not None and m.tome.r_at(1) == 0.5


# ---------------------------------------------------------------------------------------------------
# An independent, naive TimeSformer + ToMe for one clip: dicts of tokens keyed by (t, p), Python loops
# over positions and frames, explicit softmax attention with log(size) added, per-frame matching.
# It counts its own multiply-adds, as an independent check of the FLOP meter.
# ---------------------------------------------------------------------------------------------------
class Naive:
    def __init__(self):
        self.macs = 0.0

    def lin(self, layer, x):
        self.macs += x.shape[0] * layer.in_features * layer.out_features
        return layer(x)

    def ln(self, norm, x):
        self.macs += x.numel() * 5
        return norm(x)

    def attn(self, mod, qkv, log_size):
        """Full attention of the rows of qkv (n, 3D); log_size (n,) added to every key's logit."""
        n, c3 = qkv.shape
        h, c = mod.num_heads, c3 // 3
        q, k, v = qkv.view(n, 3, h, c // h).permute(1, 2, 0, 3)
        a = ((q @ k.transpose(-1, -2)) * (c // h) ** -0.5 + log_size).softmax(-1)
        self.macs += 2 * n * n * c
        return (a @ v).transpose(0, 1).reshape(n, c), k


def naive_forward(m, x, tome):
    nv = Naive()
    _, _, t, hh, ww = x.shape
    p = m.patch_size
    gh, gw = hh // p, ww // p
    emb = m.patch_embed.proj(x[0].transpose(0, 1))
    nv.macs += t * gh * gw * 3 * p * p * m.embed_dim
    d = emb.shape[1]
    feats = emb.flatten(2).transpose(1, 2) + m.pos_embed[0, 1:] + m.time_embed[0, :, None]
    tok = {(ti, pi): feats[ti, pi] for ti in range(t) for pi in range(gh * gw)}
    size = {key: 1.0 for key in tok}
    cls = (m.cls_token + m.pos_embed[:, :1])[0, 0]
    for bi, blk in enumerate(m.blocks):
        keys = sorted(tok)
        for pi in sorted({k[1] for k in keys}):                       # temporal attention per position
            members = [k for k in keys if k[1] == pi]
            xs = nv.ln(blk.temporal_norm1, torch.stack([tok[k] for k in members]))
            o, _ = nv.attn(blk.temporal_attn, nv.lin(blk.temporal_attn.qkv, xs),
                           torch.tensor([size[k] for k in members]).log())
            o = nv.lin(blk.temporal_fc, nv.lin(blk.temporal_attn.proj, o))
            tok.update({k: tok[k] + o[j] for j, k in enumerate(members)})
        nv.ln(blk.norm1, torch.stack([tok[k] for k in keys] + [cls]))  # one norm over tokens + CLS
        nv.macs += d * 3 * d                                            # qkv of the CLS, once
        cls_out, frame_keys = [], {}
        for ti in range(t):                                             # spatial attention per frame
            members = [k for k in keys if k[0] == ti]
            xs = blk.norm1(torch.stack([cls] + [tok[k] for k in members]))
            qkv = blk.attn.qkv(xs)
            nv.macs += len(members) * d * 3 * d
            o, kk = nv.attn(blk.attn, qkv, torch.tensor([1.0] + [size[k] for k in members]).log())
            o = nv.lin(blk.attn.proj, o)
            cls_out.append(o[0])
            tok.update({k: tok[k] + o[j + 1] for j, k in enumerate(members)})
            frame_keys[ti] = (members, kk[:, 1:].mean(0))
        cls = cls + torch.stack(cls_out).mean(0)
        r_spec = tome.r_at(bi) if tome is not None else None
        for members, kmean in frame_keys.values():                # ToMe inside each frame
            r = resolve_r(r_spec, len(members)) if r_spec is not None else 0
            if not r:
                continue
            a, b = members[0::2], members[1::2]
            ka = torch.nn.functional.normalize(kmean[0::2], dim=-1)
            kb = torch.nn.functional.normalize(kmean[1::2], dim=-1)
            sim = ka @ kb.T
            nv.macs += len(a) * len(b) * kmean.shape[1]
            best, arg = sim.max(1)
            for i in sorted(range(len(a)), key=lambda i: -best[i].item())[:r]:
                src, dst = a[i], b[int(arg[i])]
                s_new = size[src] + size[dst]
                tok[dst] = (size[src] * tok[src] + size[dst] * tok[dst]) / s_new
                size[dst] = s_new
                del tok[src], size[src]
        keys = sorted(tok)
        y = torch.stack([tok[k] for k in keys] + [cls])
        y = y + nv.lin(blk.mlp.fc2, blk.mlp.act(nv.lin(blk.mlp.fc1, nv.ln(blk.norm2, y))))
        tok = {k: y[j] for j, k in enumerate(keys)}
        cls = y[-1]
    nv.macs += d * 5
    return nv.lin(m.head, m.norm(cls)[None]), nv.macs, len(tok)


@pytest.mark.parametrize("tome", [
    None,
    {"blocks": [0, 1, 2], "r": [0.5, 0.3, 2]},
    {"blocks": [1], "r": 7},
    {"blocks": [0, 2], "r": 0.25},
])
def test_packed_tome_model_matches_naive_per_clip_loops(tome):
    m = tiny_timesformer(TINY, tome=tome)
    cfg = ToMeConfig.from_any(tome, m.depth)
    x = clips(3, seed=5)
    with torch.no_grad():
        out = m(x)
        kept = {k: v.clone() for k, v in m.last_kept_tokens.items()}
        gfl = video_ats.count_gflops(m, x)
        for i in range(3):
            ref, macs, n_left = naive_forward(m, x[i:i + 1], cfg)
            torch.testing.assert_close(out[i:i + 1], ref, atol=1e-4, rtol=0)
            assert gfl[i].item() * 1e9 == pytest.approx(macs, rel=1e-9)
            if kept:
                assert kept[max(kept)][i].item() == n_left


def test_logits_and_flops_do_not_depend_on_the_batch():
    m = tiny_timesformer(TINY, tome={"blocks": [0, 1, 2], "r": [0.5, 0.3, 1]})
    x = clips(4)
    x[1] *= 3.0
    x[2, :, :, :16] = 0
    with torch.no_grad():
        batch = m(x)
        gfl = video_ats.count_gflops(m, x)
        for i in range(4):
            torch.testing.assert_close(m(x[i:i + 1]), batch[i:i + 1], atol=1e-4, rtol=0)
            assert video_ats.count_gflops(m, x[i:i + 1])[0] == pytest.approx(gfl[i].item(), rel=1e-12)


def test_flop_meter_matches_torch_flop_counter():
    """torch's counter (2 per multiply-add) sees linears, conv, attention matmuls (math backend) and the
    matching matmul A·Bᵀ, not layer norms; and it also counts the padding of the temporal groups (a
    position keeps a different number of frames after merging), which the meter rightly does not."""
    m = tiny_timesformer(TINY, tome={"blocks": [0, 1], "r": [0.5, 3]})
    x = clips(1)
    with attention_backend("math"), FlopCounterMode(display=False) as fc, torch.no_grad(), KeptPositions(m) as hooks:
        m(x)
    d = m.embed_dim
    n_in = [64, 32, 20]                                      # tokens entering blocks 0, 1, 2
    n_out = [32, 20, 20]                                     # after each block's merge
    layer_norms = sum(5 * d * (a + (a + 1) + (b + 1)) for a, b in zip(n_in, n_out)) + 5 * d
    padding = 0                                              # temporal attention of blocks 1 and 2
    for block in (0, 1):
        per_position = torch.bincount(hooks.positions[block][0][:, 1])
        per_position = per_position[per_position > 0]
        padding += 2 * d * (per_position.numel() * int(per_position.max()) ** 2 - int((per_position ** 2).sum()))
    assert padding > 0
    meter = video_ats.count_gflops(m, x).item() * 1e9
    assert meter - layer_norms + padding == pytest.approx(fc.get_total_flops() / 2, rel=1e-9)


def test_training_step_with_tome():
    m = tiny_timesformer(TINY, tome={"blocks": [0, 1], "r": [0.5, 0.25]}, drop_path_rate=0.2).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = clips(2), torch.tensor([1, 3])
    loss = torch.nn.functional.cross_entropy(m(x), y)
    loss.backward()
    for i, blk in enumerate(m.blocks):
        assert blk.attn.qkv.weight.grad.abs().sum() > 0, i
        assert blk.temporal_attn.qkv.weight.grad.abs().sum() > 0, i
        assert blk.mlp.fc1.weight.grad.abs().sum() > 0, i
    before = m.blocks[2].mlp.fc1.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, m.blocks[2].mlp.fc1.weight)
    assert torch.isfinite(m(x)).all()


@pytest.mark.parametrize("spec, match", [
    ({"blocks": [3], "r": 2}, "block index"),
    ({"blocks": [2, 1], "r": 2}, "distinct and increasing"),
    ({"blocks": [0, 1], "r": [1, 2, 3]}, "3 values for 2 blocks"),
    ({"blocks": [0], "r": -1}, "≥ 0"),
    ({"blocks": [0], "r": 0.7}, "outside"),
    ({"blocks": [0], "r": 1.0}, "outside"),
    ({"blocks": [0], "r": True}, "int ≥ 0"),
    ({"blocks": [0], "r": "4"}, "int ≥ 0"),
    ({"blocks": [0], "ratio": 0.5}, "unknown ToMe option"),
    ([0, 1], "must be a dict"),
])
def test_bad_configs_are_user_errors(spec, match):
    with pytest.raises(UserError, match=match):
        video_ats.create_model("timesformer", **TINY, tome=spec)
    m = tiny_timesformer(TINY)
    with pytest.raises(UserError, match=match):
        m.set_tome(spec)
    assert m.tome is None


def test_tome_and_ats_are_exclusive():
    tome, ats = {"blocks": [1], "r": 2}, {"blocks": [1], "num_tokens": 0.5}
    with pytest.raises(UserError, match="same time"):
        video_ats.create_model("timesformer", **TINY, tome=tome, ats=ats)
    m = tiny_timesformer(TINY, tome=tome)
    with pytest.raises(UserError, match="turn ToMe off"):
        m.set_ats(ats)
    m.set_tome(None)
    m.set_ats(ats)
    with pytest.raises(UserError, match="turn ATS off"):
        m.set_tome(tome)
    assert m.tome is None and m.ats is not None
