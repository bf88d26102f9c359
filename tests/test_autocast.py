"""Mixed precision: ATS models under torch.autocast (bf16 on CPU; fp16 and bf16 on CUDA when present).

ATS scores, CDF and sampling are float32 whatever the autocast (ats.py switches it off for its own ops),
and an ATS block projects its q, k, v in float32 so that the CLS attention row it scores is float32
from end to end; everything else runs in the autocast dtype."""
import pytest
import torch
from _models import clips, tiny_timesformer, tiny_xvit

from video_ats.ats import inverse_transform_sampling, significance_scores
from video_ats.models.layers import lead_attention
from video_ats.tokens import TokenSet

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_frames=4, num_classes=7)
XVIT = dict(TINY, num_frames=8, num_segments=4, head_num_heads=4, head_mlp_dim=48, pos_embed_size=32)
ATS = {"blocks": [1, 2], "num_tokens": [0.5, 0.5]}

DEVICES = [("cpu", torch.bfloat16)]
if torch.cuda.is_available():
    DEVICES += [("cuda", torch.float16), ("cuda", torch.bfloat16)]


def peaked(m, seed, salient=3, strength=2.0, boost=6.0):
    """What a trained model looks like to ATS: a few salient positions draw most of the CLS attention
    in every head (random weights alone give near-flat rows, where any rounding flips marginal picks)."""
    gen = torch.Generator().manual_seed(seed)
    d, heads = m.embed_dim, m.blocks[0].attn.num_heads
    with torch.no_grad():
        pos = torch.randperm(m.pos_embed.shape[1] - 1, generator=gen)[:salient]
        m.pos_embed[0, 1 + pos, 0] += boost
        m.cls_token[0, 0, 0] += boost
        for blk in m.blocks:
            for h in range(heads):
                blk.attn.qkv.weight[h * d // heads, 0] += strength           # q, channel 0 of each head
                blk.attn.qkv.weight[d + h * d // heads, 0] += strength       # k
    return m


def model(name, ats=ATS, seed=0):
    if name == "timesformer":
        m = tiny_timesformer(TINY, seed=seed, ats=ats)
    else:
        m = tiny_xvit(XVIT, seed=seed, embeds=False, ats=ats)
    return peaked(m, seed)


def test_sampler_is_float32_under_autocast():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 4, 50, generator=gen).softmax(-1)
    v = torch.randn(3, 4, 50, 16, generator=gen)
    ref_s = significance_scores(a, v)
    ref_k = inverse_transform_sampling(ref_s, 0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = significance_scores(a, v)
        kept = inverse_transform_sampling(s, 0.3)
    assert s.dtype == torch.float32 and torch.equal(s, ref_s) and torch.equal(kept, ref_k)
    # the CLS attention row: float32 (autocast would run its einsum in bf16)
    ts = TokenSet.from_grid(torch.zeros(2, 3, 4, 1), torch.zeros(2, 1, 1), (3, 2, 2))
    frames = ts.groups("frame", lead=1)
    q, k_lead = torch.randn(2, frames.num_groups, 4, 8, generator=gen)
    k = torch.randn(24, 4, 8, generator=gen)
    ref = lead_attention(q, k, k_lead, frames)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = lead_attention(q, k, k_lead, frames)
    assert got.dtype == torch.float32 and torch.equal(got, ref)


def kept_agreement(a, b, tokens_per_clip):
    """Share of (clip, token) keep decisions that agree, over every ATS block."""
    differ = total = 0
    for block in a:
        for pa, pb in zip(a[block], b[block]):
            differ += len({tuple(v) for v in pa.tolist()} ^ {tuple(v) for v in pb.tolist()})
            total += tokens_per_clip
    return 1 - differ / total


@pytest.mark.parametrize("device,dtype", DEVICES)
@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_low_precision_logits_and_kept_tokens_match_float32(name, device, dtype):
    m, dense = model(name).to(device), model(name, ats=None).to(device)
    x = clips(8, t=m.num_frames, seed=10).to(device)
    with torch.no_grad():
        ref, ref_dense = m(x), dense(x)
        ref_kept = m.last_kept_positions
        with torch.autocast(device, dtype=dtype):
            out, out_dense = m(x), dense(x)
        kept = m.last_kept_positions
    assert out.dtype == dtype and out_dense.dtype == dtype
    assert any((n < m.num_frames * 16).any() for n in m.last_kept_tokens.values())
    assert kept_agreement(ref_kept, kept, m.num_frames * 16) >= 0.99
    scale = ref.abs().max().item()
    torch.testing.assert_close(out.float(), ref, atol=0.03 * scale, rtol=0)
    torch.testing.assert_close(out_dense.float(), ref_dense, atol=0.03 * scale, rtol=0)


@pytest.mark.parametrize("device,dtype", DEVICES)
@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_training_step_under_autocast(name, device, dtype):
    m = model(name).to(device).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in m.parameters()]
    x, y = clips(4, t=m.num_frames).to(device), torch.tensor([0, 3, 5, 6], device=device)
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16)
    # fp16: the scaler's first scale (2**16) may overflow the fp16 gradients; it then skips the step and
    # halves the scale, as designed. Retry a few times; a model whose gradients overflow at any scale fails.
    for _ in range(6):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype):
            loss = torch.nn.functional.cross_entropy(m(x), y)
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        if scaler.get_scale() >= scale:                  # no inf/nan found: the optimizer stepped
            break
    else:
        pytest.fail(f"{dtype} gradients overflowed at every loss scale down to {scaler.get_scale()}")
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert m.blocks[-1].mlp.fc1.weight.grad.abs().sum() > 0 and m.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, m.parameters()))


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_only_ats_blocks_project_qkv_in_float32(name):
    """The dense model runs entirely in the autocast dtype; an ATS model only lifts its ATS blocks' qkv."""
    for ats in (None, ATS):
        m = model(name, ats=ats)
        seen = {}
        hooks = [blk.attn.qkv.register_forward_hook(lambda mod, inp, out, i=i, seen=seen: seen.__setitem__(i, out.dtype))
                 for i, blk in enumerate(m.blocks)]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            m(clips(2, t=m.num_frames))
        for h in hooks:
            h.remove()
        lifted = set(ATS["blocks"]) if ats else set()
        assert seen == {i: torch.float32 if i in lifted else torch.bfloat16 for i in range(m.depth)}
