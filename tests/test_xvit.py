"""X-ViT (+ATS): faithfulness to the official forward, the shift groups, ATS equivalences and the
dropped-neighbour rule, official checkpoints, FLOP counts."""
import pytest
import torch
import torch.nn.functional as F
from _models import tiny_xvit
from fvcore.nn import FlopCountAnalysis
from torch.utils.flop_counter import FlopCounterMode

import video_ats
from video_ats.errors import UserError
from video_ats.models.layers import attention_backend
from video_ats.models.xvit import PackedLayout, shift_kv_dense, shift_kv_packed
from video_ats.tokens import TokenSet

# 8 frames in shift groups of 4 and a temporal embedding of period 4: the released 16/8/8 layout, small
TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_frames=8, num_segments=4,
            temporal_embed_frames=4, head_num_heads=4, head_mlp_dim=48, num_classes=7)


def clips(b, t=8, size=32, seed=1):
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


# -- an independent, naive reading of the official forward -------------------------------------------

def _tsm(k, segments, fold):
    """Official-style shift on (B·T, heads, N, hd): flat channels, zero-filled out buffer."""
    bt, h, n, hd = k.shape
    y = k.permute(0, 2, 1, 3).reshape(bt // segments, segments, n, h * hd)
    out = torch.zeros_like(y)
    out[:, :-1, :, :fold] = y[:, 1:, :, :fold]
    out[:, 1:, :, fold:2 * fold] = y[:, :-1, :, fold:2 * fold]
    out[:, :, :, 2 * fold:] = y[:, :, :, 2 * fold:]
    return out.reshape(bt, n, h, hd).permute(0, 2, 1, 3)


def _block(x, blk, eps, shift=None):
    h = blk.attn.num_heads
    bt, n, d = x.shape
    y = F.layer_norm(x, (d,), blk.norm1.weight, blk.norm1.bias, eps)
    qkv = F.linear(y, blk.attn.qkv.weight, blk.attn.qkv.bias).reshape(bt, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if shift is not None:
        k, v = _tsm(k, *shift), _tsm(v, *shift)
    a = ((q @ k.transpose(-2, -1)) * (d // h) ** -0.5).softmax(-1)
    x = x + blk.attn.proj((a @ v).transpose(1, 2).reshape(bt, n, d))
    y = F.layer_norm(x, (d,), blk.norm2.weight, blk.norm2.bias, eps)
    return x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(y)))


def official_xvit_features(m, x):
    b, c, t, hh, ww = x.shape
    p, d = m.patch_size, m.embed_dim
    f = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, hh, ww)
    tok = F.conv2d(f, m.patch_embed.proj.weight, m.patch_embed.proj.bias, stride=p).flatten(2).transpose(1, 2)
    tok = torch.cat([m.cls_token.expand(b * t, -1, -1), tok], dim=1)
    pos = m.pos_embed
    side = m.config["pos_embed_size"] // p      # 224 // p unless overridden
    if (hh // p, ww // p) != (side, side):
        g = pos[:, 1:].reshape(1, side, side, d).permute(0, 3, 1, 2)
        g = F.interpolate(g, size=(hh // p, ww // p), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:, :1], g.flatten(2).transpose(1, 2)], dim=1)
    tok = tok + pos
    n = tok.shape[1]
    tok = (tok.view(-1, m.temp_embed.shape[1], n, d) + m.temp_embed).view(b * t, n, d)
    for blk in m.blocks:
        tok = _block(tok, blk, 1e-6, (m.num_segments, d // m.shift_div))
    tok = F.layer_norm(tok, (d,), m.norm.weight, m.norm.bias, 1e-6)
    return tok[:, 0].reshape(b, t, d)


def official_xvit_forward(m, x):
    feats = official_xvit_features(m, x)
    head = m.head
    z = torch.cat([head.cls_token.expand(feats.shape[0], -1, -1), feats], dim=1)
    for blk in head.temporal_encoder:
        z = _block(z, blk, 1e-5)
    ln, fc1, fc2 = head.mlp_head[0], head.mlp_head[1], head.mlp_head[4]
    z = F.layer_norm(z[:, 0], (z.shape[-1],), ln.weight, ln.bias, 1e-5)
    return fc2(F.gelu(fc1(z)))


class _Official(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return official_xvit_forward(self.m, x)


# -- the dense model -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 8, 32, 32), {}),
    ((1, 3, 8, 48, 40), {}),                                      # another crop: bicubic pos resize
    ((2, 3, 4, 32, 32), {"num_frames": 4, "num_segments": 4, "temporal_embed_frames": 4}),
    ((1, 3, 8, 32, 32), {"pos_embed_size": 32, "shift_div": 4}),  # stored grid = crop grid
])
def test_dense_matches_official_forward(shape, kw):
    m = tiny_xvit(TINY, **kw)
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_xvit_forward(m, x), atol=1e-5, rtol=0)


def test_shift_groups_16_frames_8_segments():
    """Released layout: a change in frame 9 reaches frame 8 (same group) but never frame 7."""
    m = tiny_xvit(TINY, num_frames=16, num_segments=8, temporal_embed_frames=8, depth=2)
    x = clips(1, t=16)
    x2 = x.clone()
    x2[:, :, 9] += 1.0
    x3 = x.clone()
    x3[:, :, 3] += 1.0
    with torch.no_grad():
        f, f2, f3 = m.forward_features(x), m.forward_features(x2), m.forward_features(x3)
    diff = (f2 - f).abs().amax(-1)[0]
    assert diff[:8].max() == 0                     # the whole first group, frame 7 included
    assert diff[8] > 1e-4 and diff[10] > 1e-4     # neighbours inside the group
    d3 = (f3 - f).abs().amax(-1)[0]
    assert d3[2] > 1e-4 and d3[4] > 1e-4 and d3[8:].max() == 0
    assert d3[0] == 0                              # two blocks reach only two frames away


def test_shift_dense_channels():
    qkv = torch.randn(2 * 4, 3, 3 * 16)            # 2 clips × 4 frames, 3 tokens, D = 16
    src = qkv.clone().view(2, 4, 3, 3, 16)
    out = shift_kv_dense(qkv, segments=4, fold=2).view(2, 4, 3, 3, 16)
    torch.testing.assert_close(out[:, :, :, 0], src[:, :, :, 0])                       # q untouched
    torch.testing.assert_close(out[:, :3, :, 1:, :2], src[:, 1:, :, 1:, :2])           # from s+1
    torch.testing.assert_close(out[:, 1:, :, 1:, 2:4], src[:, :3, :, 1:, 2:4])         # from s−1
    assert out[:, 3, :, 1:, :2].abs().max() == 0 and out[:, 0, :, 1:, 2:4].abs().max() == 0
    torch.testing.assert_close(out[..., 1:, 4:], src[..., 1:, 4:])


def test_config_and_presets():
    m = video_ats.create_model("xvit_b16_16x224", num_classes=600, depth=1)
    c = m.config
    assert (c["num_frames"], c["num_segments"], c["temporal_embed_frames"], c["sampling_rate"]) == (16, 8, 8, 16)
    assert c["mean"] == (0.5, 0.5, 0.5) and c["std"] == (0.5, 0.5, 0.5) and c["img_size"] == 224
    assert m.temp_embed.shape == (1, 8, 1, 768) and m.pos_embed.shape == (1, 197, 768)
    g = video_ats.create_model("xvit", num_frames=4, depth=1)
    assert g.config["num_segments"] == 4 and g.temp_embed.shape[1] == 4
    assert "xvit_b16_8x224" in video_ats.list_models()
    with pytest.raises(UserError, match="num_segments"):
        video_ats.create_model("xvit", num_frames=6, num_segments=4, depth=1)
    with pytest.raises(UserError, match="unknown argument"):
        video_ats.create_model("xvit", num_segment=4)
    with pytest.raises(ValueError, match="num_segments"):
        tiny_xvit(TINY)(clips(1, t=6))


# -- ATS --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ats", [
    {"blocks": [0, 1, 2], "num_tokens": 10**4},
    {"blocks": [1], "num_tokens": 16 * 8, "selection": "topk"},
    {"blocks": [0, 2], "num_tokens": 10**4, "score_mode": "official"},
])
@pytest.mark.parametrize("packed", [False, True])
def test_ats_keeping_every_token_reproduces_dense(ats, packed, request):
    dense, m = tiny_xvit(TINY), tiny_xvit(TINY, ats=ats)
    x = clips(3)
    if packed:       # force the gather/pad path (not the copy-free dense views) after the ATS block
        request.getfixturevalue("force_packed_tokens")
    with torch.no_grad():
        ref, out = dense(x), m(x)
    assert all((k == 8 * 16).all() for k in m.last_kept_tokens.values())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


ATS = {"blocks": [0, 1], "num_tokens": [0.5, 0.4]}


def test_ats_batch_independence():
    m = tiny_xvit(TINY, ats=ATS, sharpen=12.0)
    x = clips(4)
    with torch.no_grad():
        together = m(x)
        kept = {k: v.clone() for k, v in m.last_kept_tokens.items()}
        alone = torch.cat([m(x[i:i + 1]) for i in range(4)])
    assert len(set(kept[1].tolist())) > 1, "clips should keep different numbers of tokens"
    assert (kept[1] < 8 * 16).all()
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)


def test_ats_trains():
    m = tiny_xvit(TINY, ats=ATS, sharpen=6.0, drop_path_rate=0.2).train()
    m(clips(2)).logsumexp(-1).sum().backward()
    assert m.blocks[2].mlp.fc1.weight.grad.abs().sum() > 0
    assert m.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_dropped_neighbour_contributes_zeros():
    """Unit check of the packed shift: a kept token reads (t±1, p) when kept, zeros when dropped or
    across a shift-group end; frame CLS rows always read their neighbours' CLS."""
    b, t, hw, d, fold, seg = 2, 4, 3, 8, 2, 2
    full = TokenSet.from_grid(torch.randn(b, t, hw, d), torch.randn(b, t, d), (t, 1, hw))
    keep = torch.rand(full.clip.numel(), generator=torch.Generator().manual_seed(0)) < 0.6
    ts = full.keep(keep)
    layout = PackedLayout.build(ts, seg)
    m, r = ts.clip.numel(), ts.clip.numel() + b * t
    qkv = torch.randn(r, 3 * d)
    src = qkv.clone().view(r, 3, d)
    out = shift_kv_packed(qkv, layout, fold).view(r, 3, d)
    where = {(int(c), int(tt), int(p)): i for i, (c, tt, p) in enumerate(zip(ts.clip, ts.t, ts.p))}
    for i in range(r):
        if i < m:
            c, tt, p = int(ts.clip[i]), int(ts.t[i]), int(ts.p[i])
            nxt = where.get((c, tt + 1, p)) if (tt % seg) != seg - 1 else None
            prv = where.get((c, tt - 1, p)) if (tt % seg) != 0 else None
        else:
            c, tt = divmod(i - m, t)
            nxt = i + 1 if (tt % seg) != seg - 1 else None
            prv = i - 1 if (tt % seg) != 0 else None
        want_n = src[nxt, 1:, :fold] if nxt is not None else torch.zeros(2, fold)
        want_p = src[prv, 1:, fold:2 * fold] if prv is not None else torch.zeros(2, fold)
        torch.testing.assert_close(out[i, 1:, :fold], want_n)
        torch.testing.assert_close(out[i, 1:, fold:2 * fold], want_p)
        torch.testing.assert_close(out[i, 0], src[i, 0])
        torch.testing.assert_close(out[i, 1:, 2 * fold:], src[i, 1:, 2 * fold:])
    assert (layout.has_next[:m] == 0).sum() > (ts.t[:m] % seg == seg - 1).sum()  # some dropped neighbours


def masked_reference(m, x, ats):
    """X-ViT + ATS on the full grid with an alive mask: dropped tokens are masked keys and contribute
    zero k/v to their neighbours' shifted channels. Kept-token features must match the packed model."""
    from video_ats.ats import ATSConfig, scores_from_value_norms
    cfg = ATSConfig.from_any(ats, m.depth)
    b, _, t, hh, ww = x.shape
    tok = m._embed(x, None)                                                  # (B·T, 1+P, D)
    bt, n, d = tok.shape
    heads = m.blocks[0].attn.num_heads
    alive = torch.ones(bt, n, dtype=torch.bool)
    seg, fold = m.num_segments, m.fold
    for i, blk in enumerate(m.blocks):
        y = F.layer_norm(tok, (d,), blk.norm1.weight, blk.norm1.bias, 1e-6)
        qkv = blk.attn.qkv(y).view(bt, n, 3, d)
        kv = qkv[:, :, 1:] * alive[:, :, None, None]                       # dropped: nothing to give
        g = kv.view(bt // seg, seg, n, 2, d)
        sh = g.clone()
        sh[:, :-1, ..., :fold], sh[:, -1, ..., :fold] = g[:, 1:, ..., :fold], 0
        sh[:, 1:, ..., fold:2 * fold], sh[:, 0, ..., fold:2 * fold] = g[:, :-1, ..., fold:2 * fold], 0
        sh = sh.view(bt, n, 2, heads, d // heads).permute(2, 0, 3, 1, 4)
        k, v = sh[0], sh[1]
        q = qkv[:, :, 0].view(bt, n, heads, d // heads).transpose(1, 2)
        logits = (q * (d // heads) ** -0.5) @ k.transpose(-2, -1)
        a = logits.masked_fill(~alive[:, None, None, :], float("-inf")).softmax(-1)
        if cfg.num_tokens_at(i) is not None:
            cls_a = a[:, :, 0, 1:].reshape(b, t, heads, n - 1).permute(0, 2, 1, 3).reshape(b, heads, -1)
            norms = v[:, :, 1:].norm(dim=-1).reshape(b, t, heads, n - 1).permute(0, 2, 1, 3).reshape(b, heads, -1)
            valid = alive[:, 1:].reshape(b, -1)
            scores = scores_from_value_norms(cls_a, norms, cfg.score_mode, valid)
            # the packed model sees only alive tokens; compact, select, scatter back
            idx = [valid[c].nonzero().squeeze(1) for c in range(b)]
            nmax = max(len(j) for j in idx)
            comp = torch.zeros(b, nmax)
            cval = torch.zeros(b, nmax, dtype=torch.bool)
            for c in range(b):
                comp[c, :len(idx[c])], cval[c, :len(idx[c])] = scores[c, idx[c]], True
            ck = cfg.select(comp, i, cval)
            kept = torch.zeros_like(valid)
            for c in range(b):
                kept[c, idx[c]] = ck[c, :len(idx[c])]
            alive = torch.cat([torch.ones(bt, 1, dtype=torch.bool), kept.view(bt, n - 1)], dim=1)
        o = (a @ v).transpose(1, 2).reshape(bt, n, d)
        tok = tok + blk.attn.proj(o)
        tok = tok + blk.mlp(F.layer_norm(tok, (d,), blk.norm2.weight, blk.norm2.bias, 1e-6))
    feats = F.layer_norm(tok[:, 0], (d,), m.norm.weight, m.norm.bias, 1e-6).view(b, t, d)
    return m.head(feats), alive


def test_ats_matches_masked_full_grid_reference():
    """The whole packed ATS path (selection, kept-query attention, packed shift with the zero rule)
    equals a masked computation on the full grid."""
    ats = {"blocks": [0, 1], "num_tokens": [0.5, 0.5]}
    m = tiny_xvit(TINY, ats=ats, sharpen=6.0)
    x = clips(3)
    with torch.no_grad():
        out = m(x)
        ref, alive = masked_reference(m, x, ats)
    counts = alive[:, 1:].reshape(3, -1).sum(-1)
    assert torch.equal(counts, m.last_kept_tokens[1])
    assert (counts < 8 * 16).all()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


# -- checkpoints ------------------------------------------------------------------------------------

def to_official(state):
    out = {}
    for k, v in state.items():
        out[("consensus." + k[len("head."):]) if k.startswith("head.") else "base_model." + k] = v
    return out


def test_official_checkpoint_round_trip(tmp_path):
    src = tiny_xvit(TINY, seed=3)
    d, classes = TINY["embed_dim"], TINY["num_classes"]
    state = to_official(src.state_dict())
    assert "consensus.temporal_encoder.0.attn.qkv.weight" in state
    assert "consensus.temporal_encoder.0.attn.qkv.bias" not in state                  # qkv_bias=False
    assert {"consensus.mlp_head.0.weight", "consensus.mlp_head.1.weight", "consensus.mlp_head.4.weight"} <= set(state)
    state["new_fc.weight"], state["new_fc.bias"] = torch.randn(classes, d), torch.randn(classes)
    ckpt = {"model_state": state, "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.03, "params": [0, 1]}]},
            "epoch": 30, "cfg": "MODEL:\n  ARCH: vit\nDATA:\n  NUM_FRAMES: 8\n"}
    path = tmp_path / "xvit_official.pth"
    torch.save(ckpt, path)
    dst = tiny_xvit(TINY, seed=4)
    report = video_ats.load_checkpoint(dst, path)
    assert any("new_fc" in n for n in report["notes"])
    x = clips(2)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), atol=0, rtol=0)
    # this project's own names load as they are
    video_ats.load_checkpoint(tiny_xvit(TINY, seed=5), src.state_dict())


def test_official_checkpoint_errors():
    src = tiny_xvit(TINY, seed=3)
    state = to_official(src.state_dict())
    wrong = {"model." + k: v for k, v in state.items()}
    with pytest.raises(UserError, match="missing keys"):
        video_ats.load_checkpoint(tiny_xvit(TINY), {"model_state": wrong})
    partial = dict(state)
    del partial["base_model.blocks.1.attn.proj.weight"]
    with pytest.raises(UserError, match=r"1 missing keys \[blocks.1.attn.proj.weight\]"):
        video_ats.load_checkpoint(tiny_xvit(TINY), {"model_state": partial})
    with pytest.raises(UserError, match="classifier"):
        video_ats.load_checkpoint(tiny_xvit(TINY, num_classes=5), {"model_state": state})
    report = video_ats.load_checkpoint(tiny_xvit(TINY, num_classes=5), {"model_state": state}, drop_head=True)
    assert any("drop_head" in n for n in report["notes"])


def test_init_from_timm_image_vit(tmp_path):
    """Backbone from a timm ViT file: with the shift off (fold 0) and temp_embed zero, the frame
    features are the image ViT's CLS features, frame by frame."""
    timm = pytest.importorskip("timm")
    vit = timm.models.vision_transformer.VisionTransformer(img_size=224, patch_size=32, embed_dim=64, depth=2,
                                                           num_heads=4, num_classes=10).eval()
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    m = video_ats.create_model("xvit", img_size=64, patch_size=32, embed_dim=64, depth=2, num_heads=4,
                               num_frames=2, head_num_heads=4, shift_div=128, num_classes=3).eval()
    report = video_ats.load_checkpoint(m, path)
    assert any("image ViT" in n for n in report["notes"])
    x = torch.randn(1, 3, 2, 224, 224)
    with torch.no_grad():
        ours = m.forward_features(x)[0]
        ref = vit.forward_features(x[0].transpose(0, 1))[:, 0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


# -- FLOPs ------------------------------------------------------------------------------------------

def fvcore_count(module, x):
    fca = FlopCountAnalysis(module, (x,))
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with attention_backend("math"), torch.no_grad():
        return fca.total()


def test_dense_flops_match_fvcore():
    m = tiny_xvit(TINY)
    x = clips(1)
    ours = video_ats.count_gflops(m, x).item() * 1e9
    # the official forward normalises every token at the end, we only the CLS rows: 5·D·P per frame
    official = fvcore_count(_Official(m), x)
    assert official - ours == pytest.approx(8 * 16 * 5 * TINY["embed_dim"], rel=1e-9)
    assert fvcore_count(m, x) == pytest.approx(ours, rel=1e-9)            # our own forward, same ops


def test_ats_flops_match_torch_counter_when_nothing_is_padded():
    """Keep-all ATS: every frame group has the same size, so an op-level count of the run (incl. the
    sampler's CLS-row logits) is exact. fvcore cannot trace the sampler (its bool scatter_), so this
    uses torch's FlopCounterMode (2 per multiply-add, layer norms not seen: added analytically)."""
    m = tiny_xvit(TINY, ats={"blocks": [0, 2], "num_tokens": 10**4})
    x = clips(1)
    ours = video_ats.count_gflops(m, x).item() * 1e9
    with attention_backend("math"), FlopCounterMode(display=False) as fc, torch.no_grad():
        m(x)
    assert all((k == 8 * 16).all() for k in m.last_kept_tokens.values())
    d, t, n = TINY["embed_dim"], 8, 17
    layer_norms = 5 * d * (TINY["depth"] * 2 * t * n + t + 2 * (t + 1) + 1)
    assert fc.get_total_flops() / 2 + layer_norms == pytest.approx(ours, rel=1e-9)
    # and the dense model through the same counter agrees with fvcore's count of it
    dense = tiny_xvit(TINY)
    with attention_backend("math"), FlopCounterMode(display=False) as fc, torch.no_grad():
        dense(x)
    assert fc.get_total_flops() / 2 + layer_norms == pytest.approx(fvcore_count(dense, x), rel=1e-9)


def test_ats_flops_follow_the_kept_tokens(monkeypatch):
    """With real dropping the count is the analytic cost of the kept tokens, frame by frame."""
    ats = {"blocks": [0, 1], "num_tokens": [0.5, 0.4]}
    m = tiny_xvit(TINY, ats=ats, sharpen=6.0)
    x = clips(2)
    sets = []
    orig = PackedLayout.build.__func__
    monkeypatch.setattr(PackedLayout, "build", classmethod(lambda cls, ts, s: sets.append(ts) or orig(cls, ts, s)))
    got = video_ats.count_gflops(m, x) * 1e9
    d, t, p, hid = 64, 8, 16, 256
    lin = lambda r: r * (5 * d + 3 * d * d + d * d + 5 * d + 2 * d * hid)    # noqa: E731
    for c in range(2):
        per_frame = [torch.full((t,), p)] + [torch.bincount(ts.t[ts.clip == c], minlength=t) for ts in sets]
        total = t * p * 3 * 64 * d                                           # patch embedding
        for i in range(3):
            n_in = per_frame[min(i, len(per_frame) - 1)]
            if i in (0, 1):                                                  # ATS block: keys n_in, rows n_out
                n_out = per_frame[i + 1]
                total += (n_in + 1).sum() * (5 * d + 3 * d * d) + (n_in + 1).sum() * d
                total += ((n_out + 1) * (n_in + 1)).sum() * 2 * d
                total += (n_out + 1).sum() * (d * d + 5 * d + 2 * d * hid)
            else:
                total += lin((n_in + 1).sum()) + ((n_in + 1) ** 2).sum() * 2 * d
        total += t * 5 * d                                                   # final norm (CLS rows)
        total += lin(t + 1) + (t + 1) ** 2 * 2 * d + 5 * d + d * 48 + 48 * 7  # temporal head
        assert got[c].item() == pytest.approx(float(total), rel=1e-12)
    assert (got < video_ats.count_gflops(tiny_xvit(TINY), x) * 1e9).all()


@pytest.mark.parametrize("name,frames,published", [
    ("xvit_b16_8x224", 8, 140.7),
    pytest.param("xvit_b16_16x224", 16, 281.4, marks=pytest.mark.slow),      # ~15-20 s on 2 busy cores
])
def test_full_size_dense_count_matches_published_fvcore(name, frames, published):
    """The full forward users run (count_gflops), not a formula: 140.71 / 281.42 GFLOPs."""
    m = video_ats.create_model(name, num_classes=600).eval()
    g = video_ats.count_gflops(m, torch.zeros(1, 3, frames, 224, 224)).item()
    assert g == pytest.approx(published, rel=0.02)
    assert g == pytest.approx(published, abs=0.1)          # in fact within rounding of the published


@pytest.mark.slow
def test_full_size_count_matches_fvcore_on_official_forward():
    m = video_ats.create_model("xvit_b16_8x224", num_classes=600).eval()
    x = torch.zeros(1, 3, 8, 224, 224)
    assert video_ats.count_gflops(m, x).item() * 1e9 == pytest.approx(fvcore_count(_Official(m), x), rel=0.02)
