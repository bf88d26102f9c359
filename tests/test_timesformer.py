"""TimeSformer (+ATS): faithfulness to the official forward, ATS equivalences, batch independence."""
import pytest
import torch
from _models import clips, tiny_timesformer

import video_ats
from video_ats.ats import ATSConfig
from video_ats.errors import UserError
from video_ats.reference import official_timesformer_forward

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_frames=4, num_classes=7)


@pytest.mark.parametrize("shape", [(2, 3, 4, 32, 32), (2, 3, 6, 48, 40), (1, 3, 2, 16, 32)])
def test_dense_matches_official_forward(shape):
    m = tiny_timesformer(TINY)
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_timesformer_forward(m, x), atol=1e-5, rtol=0)


def test_padded_group_path_equals_dense_view_path(request):
    """The gather/pad machinery used after ATS computes exactly what the dense reshapes compute."""
    m = tiny_timesformer(TINY)
    x = clips(2)
    with torch.no_grad():
        ref = m(x)
        request.getfixturevalue("force_packed_tokens")
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ats", [
    {"blocks": [0, 2, 3], "num_tokens": 10**6},
    {"blocks": [1], "num_tokens": 64, "selection": "topk"},
    {"blocks": [0, 1, 2, 3], "num_tokens": 64, "selection": "topk", "score_mode": "official"},
])
def test_ats_keeping_every_token_reproduces_dense(ats):
    dense, m = tiny_timesformer(TINY), tiny_timesformer(TINY, ats=ats)
    x = clips(3)
    with torch.no_grad():
        ref, out = dense(x), m(x)
    assert all((k == 64).all() for k in m.last_kept_tokens.values())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_logits_independent_of_batch_with_ats_active():
    m = tiny_timesformer(TINY, ats={"blocks": [0, 1, 3], "num_tokens": [0.6, 0.5, 0.4]})
    x = clips(4)
    x[1] *= 3.0                       # different content -> different kept counts
    x[2, :, :, :16] = 0
    with torch.no_grad():
        batch = m(x)
        kept = {k: v.clone() for k, v in m.last_kept_tokens.items()}
        for i in range(4):
            alone = m(x[i:i + 1])
            torch.testing.assert_close(alone, batch[i:i + 1], atol=1e-4, rtol=0)
            assert all(m.last_kept_tokens[k][0] == kept[k][i] for k in kept)
        gfl = video_ats.count_gflops(m, x)
        for i in range(4):
            assert video_ats.count_gflops(m, x[i:i + 1])[0] == pytest.approx(gfl[i].item(), rel=1e-9)
    assert len({tuple(v.tolist()) for v in kept.values()}) > 1 or len(set(kept[0].tolist())) > 1


def test_ats_bounds_and_shrinks_tokens_and_flops():
    m = tiny_timesformer(TINY, ats={"blocks": [0, 2], "num_tokens": [20, 9]})
    x = clips(2)
    with torch.no_grad():
        m(x)
    k0, k2 = m.last_kept_tokens[0], m.last_kept_tokens[2]
    assert (k0 <= 20).all() and (k0 >= 1).all() and (k2 <= 9).all() and (k2 <= k0).all()
    assert (video_ats.count_gflops(m, x) < video_ats.count_gflops(tiny_timesformer(TINY), x)).all()


# ---------------------------------------------------------------------------------------------------
# An independent, naive implementation of TimeSformer + ATS for one clip: Python loops over spatial
# positions and frames, explicit softmax attention, no TokenSet/Groups code. It also counts its own
# multiply-adds, as an independent check of the FLOP meter.
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

    def attn(self, mod, xq_idx, x, want_row=False):
        """Self-attention over rows of x; outputs only rows xq_idx; returns (out, cls_row_probs, v)."""
        h = mod.num_heads
        n, c = x.shape
        qkv = self.lin(mod.qkv, x).view(n, 3, h, c // h).permute(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q[:, xq_idx] @ k.transpose(-1, -2)) * (c // h) ** -0.5).softmax(-1)
        self.macs += 2 * len(xq_idx) * n * c
        row = ((q[:, :1] @ k.transpose(-1, -2)) * (c // h) ** -0.5).softmax(-1)[:, 0] if want_row else None
        if want_row:
            self.macs += n * c
        o = (a @ v).transpose(0, 1).reshape(len(xq_idx), c)
        return self.lin(mod.proj, o), row, v


def naive_forward(m, x, cfg):
    nv = Naive()
    _, _, t, hh, ww = x.shape
    p = m.patch_size
    gh, gw = hh // p, ww // p
    emb = m.patch_embed.proj(x[0].transpose(0, 1))            # (T, D, gh, gw)
    nv.macs += t * gh * gw * 3 * p * p * m.embed_dim
    d = emb.shape[1]
    feats = emb.flatten(2).transpose(1, 2) + m.pos_embed[0, 1:] + m.time_embed[0, :, None]
    tok = {(ti, pi): feats[ti, pi] for ti in range(t) for pi in range(gh * gw)}
    cls = (m.cls_token + m.pos_embed[:, :1])[0, 0]
    for bi, blk in enumerate(m.blocks):
        keys = sorted(tok)
        # temporal attention per spatial position among its kept frames
        new = {}
        for pi in sorted({k[1] for k in keys}):
            members = [k for k in keys if k[1] == pi]
            xs = torch.stack([tok[k] for k in members])
            o, _, _ = nv.attn(blk.temporal_attn, list(range(len(members))), nv.ln(blk.temporal_norm1, xs))
            o = nv.lin(blk.temporal_fc, o)
            for j, k in enumerate(members):
                new[k] = tok[k] + o[j]
        tok = new
        k_cfg = cfg.num_tokens_at(bi) if cfg is not None else None
        frames = [[k for k in keys if k[0] == ti] for ti in range(t)]
        nv.ln(blk.norm1, torch.stack([tok[k] for k in keys] + [cls]))   # one norm over tokens + CLS
        nv.macs += d * 3 * d                                              # qkv of the CLS, once
        if k_cfg is not None:
            rows, norms, order = [], [], []
            for ti in range(t):
                xs = torch.stack([cls] + [tok[k] for k in frames[ti]])
                _, row, v = Naive().attn(blk.attn, [0], blk.norm1(xs), want_row=True)
                nv.macs += (len(frames[ti]) + 1) * d
                rows.append(row[:, 1:])
                norms.append(v[:, 1:].norm(dim=-1))
                order += frames[ti]
            a = torch.cat(rows, 1)[None]
            nrm = torch.cat(norms, 1)[None]
            s = (a * nrm).sum(1) if cfg.score_mode == "paper" else a.sum(1) * nrm.square().sum(1).sqrt()
            s = s / s.sum()
            kept_mask = cfg.select(s, bi, torch.ones_like(s, dtype=torch.bool))[0]
            kept = {order[j] for j in kept_mask.nonzero().squeeze(1).tolist()}
        else:
            kept = set(keys)
        cls_out, out = [], {}
        for ti in range(t):
            members = frames[ti]
            xs = torch.stack([cls] + [tok[k] for k in members])
            q_idx = [0] + [j + 1 for j, k in enumerate(members) if k in kept]
            mod = blk.attn
            h = mod.num_heads
            qkv = mod.qkv(blk.norm1(xs)).view(len(xs), 3, h, d // h).permute(1, 2, 0, 3)
            nv.macs += len(members) * d * 3 * d
            q, kk, v = qkv[0], qkv[1], qkv[2]
            a = ((q[:, q_idx] @ kk.transpose(-1, -2)) * (d // h) ** -0.5).softmax(-1)
            nv.macs += 2 * len(q_idx) * len(xs) * d
            o = nv.lin(mod.proj, (a @ v).transpose(0, 1).reshape(len(q_idx), d))
            cls_out.append(o[0])
            for j, k in enumerate([k for k in members if k in kept]):
                out[k] = tok[k] + o[j + 1]
        cls = cls + torch.stack(cls_out).mean(0)
        keys = sorted(out)
        y = torch.stack([out[k] for k in keys] + [cls])
        y = y + nv.lin(blk.mlp.fc2, blk.mlp.act(nv.lin(blk.mlp.fc1, nv.ln(blk.norm2, y))))
        tok = {k: y[j] for j, k in enumerate(keys)}
        cls = y[-1]
    nv.macs += d * 5
    logits = nv.lin(m.head, m.norm(cls)[None])
    return logits, nv.macs


@pytest.mark.parametrize("ats", [
    None,
    {"blocks": [0, 2], "num_tokens": [0.5, 0.4]},
    {"blocks": [1, 2, 3], "num_tokens": [30, 20, 6], "score_mode": "official"},
    {"blocks": [0], "num_tokens": 12, "selection": "topk"},
])
def test_packed_ats_model_matches_naive_per_clip_loops(ats):
    m = tiny_timesformer(TINY, ats=ats, img_size=24, patch_size=8)
    cfg = ATSConfig.from_any(ats, m.depth)
    x = clips(3, t=4, size=24, seed=5)
    with torch.no_grad():
        out = m(x)
        gfl = video_ats.count_gflops(m, x)
        for i in range(3):
            ref, macs = naive_forward(m, x[i:i + 1], cfg)
            torch.testing.assert_close(out[i:i + 1], ref, atol=1e-4, rtol=0)
            assert gfl[i].item() * 1e9 == pytest.approx(macs, rel=1e-9)


def test_gradients_reach_all_blocks_through_ats():
    m = tiny_timesformer(TINY, ats={"blocks": [1, 2], "num_tokens": [0.5, 0.5]}).train()
    x = clips(2)
    m(x).logsumexp(-1).sum().backward()
    for i, blk in enumerate(m.blocks):
        assert blk.attn.qkv.weight.grad.abs().sum() > 0, i
        assert blk.mlp.fc1.weight.grad.abs().sum() > 0, i
    assert m.patch_embed.proj.weight.grad.abs().sum() > 0


def test_train_mode_with_drop_path_runs_and_eval_is_deterministic():
    m = tiny_timesformer(TINY, ats={"blocks": [1], "num_tokens": 0.5}, drop_path_rate=0.3).train()
    x = clips(2)
    assert torch.isfinite(m(x)).all()
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


def test_presets_and_bad_arguments():
    names = video_ats.list_models()
    for n in ("timesformer", "timesformer_base_8x224", "timesformer_hr_16x448", "timesformer_large_96x224"):
        assert n in names
    with pytest.raises(UserError, match="unknown model"):
        video_ats.create_model("timesformr")
    with pytest.raises(UserError, match="unknown argument"):
        video_ats.create_model("timesformer", **TINY, depht=3)
    with pytest.raises(UserError, match="block index"):
        video_ats.create_model("timesformer", **TINY, ats={"blocks": [9], "num_tokens": 0.5})
    m = tiny_timesformer(TINY)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        m(torch.randn(1, 3, 4, 30, 32))
    with pytest.raises(ValueError, match=r"expects \(B, 3, T, H, W\)"):
        m(torch.randn(3, 4, 32, 32))


def test_set_ats_switches_sampling_on_and_off():
    m = tiny_timesformer(TINY)
    x = clips(1)
    with torch.no_grad():
        dense = m(x)
        m.set_ats({"blocks": [0], "num_tokens": 10})
        m(x)
        assert m.last_kept_tokens[0].item() <= 10
        m.set_ats(None)
        torch.testing.assert_close(m(x), dense)
