"""Keep patterns of the speed benchmark: the skewed generator, replayed masks, and that the model's own
sampler keeps exactly the tokens a pattern says (on the device of VIDEO_ATS_TEST_DEVICE)."""
from fractions import Fraction

import pytest
import torch
from _models import tiny_timesformer, tiny_xvit
from hypothesis import given, settings
from hypothesis import strategies as st

import video_ats
from video_ats.benchmark.patterns import (
    KeepPattern,
    build_pattern,
    even_keep,
    expected_masks,
    install_pattern,
    load_pattern_file,
    replay_blocks,
    replay_setting,
    resample_stages,
    save_pattern_file,
    skewed_scores,
    stage_maps,
)
from video_ats.errors import UserError

GRID = (8, 14, 14)                      # TimeSformer-B 8x224


def _even_oracle(n, k):
    """Ranks that inverse transform sampling keeps from n flat scores with K = k, in exact fractions."""
    kept = set()
    for i in range(1, k + 1):
        kept.add(next(j for j in range(n) if Fraction(j + 1, n) >= Fraction(2 * i - 1, 2 * k)))
    return kept


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 50)), min_size=1, max_size=4), st.randoms())
def test_even_keep_is_exact_flat_score_sampling_under_padding(rows, rnd):
    """The uniform pattern's rule: per row, the tokens exact-arithmetic sampling keeps from flat scores
    over the row's valid tokens (valid ones scattered among padding), min(K, n) of them."""
    width = max(n for n, _ in rows) + 3
    valid = torch.zeros(len(rows), width, dtype=torch.bool)
    for r, (n, _) in enumerate(rows):
        valid[r, sorted(rnd.sample(range(width), n))] = True
    k = torch.tensor([k for _, k in rows])
    kept = even_keep(valid, k)
    assert not (kept & ~valid).any()
    for r, (n, kk) in enumerate(rows):
        ranks = (valid[r].long().cumsum(0) - 1)[kept[r]].tolist()
        assert set(ranks) == (_even_oracle(n, kk) if n else set())
        assert len(ranks) == min(n, kk)


def test_skewed_scores_are_seeded_and_deterministic():
    a, b = skewed_scores(GRID, clips=16, seed=3), skewed_scores(GRID, clips=16, seed=3)
    assert a.shape == (16, 8, 196) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, skewed_scores(GRID, clips=16, seed=4))
    assert (a >= 0).all() and (a > 0).all()          # the faint background keeps every score positive
    state = torch.random.get_rng_state()
    skewed_scores(GRID, clips=4, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())     # no global RNG touched


def test_skewed_pattern_keeps_very_different_counts_per_frame_and_per_clip():
    pat = build_pattern("skewed", GRID)
    masks = expected_masks(pat, {"blocks": [3], "num_tokens": [0.5]}, batch=32, depth=12)
    per_frame = masks[0].sum(-1).double()                          # (32 clips, 8 frames)
    per_clip = per_frame.sum(-1)
    assert (per_clip <= 0.5 * 8 * 196 + 1).all()                   # K bounds every clip
    assert per_clip.max() / per_clip.min() >= 3                    # clips differ several-fold
    frame_ratio = per_frame.max(-1).values / per_frame.min(-1).values.clamp_min(1)
    assert frame_ratio.median() >= 3                               # and frames within a clip too
    uniform = expected_masks(build_pattern("uniform", GRID), {"blocks": [3], "num_tokens": [0.5]}, 2, 12)[0]
    assert (uniform.sum((-1, -2)) == 784).all()                    # flat scores: exactly K


def test_resample_stages_nearest_hand_case():
    src = torch.tensor([[[[2, 0],
                          [1, 0]],
                         [[0, 1],
                          [0, 2]]]], dtype=torch.uint8)            # 1 clip, T=2, 2x2
    out = resample_stages(src, (4, 4, 4))
    assert out.shape == (1, 4, 4, 4)
    want0 = torch.tensor([[2, 2, 0, 0], [2, 2, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.uint8)
    want1 = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]], dtype=torch.uint8)
    for t, want in ((0, want0), (1, want0), (2, want1), (3, want1)):
        assert torch.equal(out[0, t], want), t
    # 7x7 -> 14x14: every frame keeps exactly 4x its tokens at every stage
    g = torch.Generator().manual_seed(0)
    st = torch.randint(0, 3, (5, 8, 7, 7), generator=g, dtype=torch.uint8)
    up = resample_stages(st, (8, 14, 14))
    for s in (0, 1):
        assert torch.equal((up > s).sum((-1, -2)), 4 * (st > s).sum((-1, -2)))


def test_stage_maps_and_replay_block_mapping():
    pos = {1: [torch.tensor([[0, 0], [0, 3], [1, 2]])], 2: [torch.tensor([[0, 3]])]}
    st = stage_maps(pos, (2, 2, 2))
    assert st.tolist() == [[[[1, 0], [0, 2]], [[0, 0], [1, 0]]]]
    assert replay_blocks([1, 2], 4, 12) == [5, 8]
    assert replay_blocks([1, 2], 4, 4) == [1, 2]
    assert replay_blocks([0, 1], 4, 2) == [0, 1]


SIZES = dict(img_size=56, patch_size=8, embed_dim=32, depth=4, num_heads=2, num_frames=4, num_classes=5)


def _tiny(kind, ats, device, img_size=56):
    if kind == "timesformer":
        return tiny_timesformer(SIZES, paths=False, ats=ats, img_size=img_size).to(device)
    return tiny_xvit(SIZES, embeds=False, head_num_heads=2, head_mlp_dim=32, ats=ats, img_size=img_size).to(device)


def _kept_masks(model, batch, grid):
    t, h, w = grid
    out = []
    for blk in sorted(model.last_kept_positions):
        m = torch.zeros(batch, t, h * w, dtype=torch.bool)
        for c, pos in enumerate(model.last_kept_positions[blk]):
            m[c, pos[:, 0], pos[:, 1]] = True
        out.append(m)
    return out


@pytest.mark.parametrize("kind", ["timesformer", "xvit"])
@pytest.mark.parametrize("pattern", ["uniform", "skewed"])
def test_model_sampler_keeps_exactly_what_the_pattern_says(kind, pattern, device):
    ats = {"blocks": [1, 2], "num_tokens": [0.5, 0.6]}
    grid = (4, 7, 7)
    m = _tiny(kind, ats, device)
    pat = build_pattern(pattern, grid)
    state = install_pattern(m, pat)
    x = torch.randn(3, 3, 4, 56, 56, generator=torch.Generator().manual_seed(0)).to(device)
    for offset in (0, 5):
        state.offset = offset
        with torch.no_grad():
            m(x)
        got = _kept_masks(m, 3, grid)
        want = expected_masks(pat, ats, 3, 4, offset=offset)
        assert len(got) == 2
        for g, w in zip(got, want):
            assert torch.equal(g, w)
    if pattern == "skewed":
        counts = m.last_kept_tokens[1].tolist()
        assert len(set(counts)) > 1                      # clips differ
    install_pattern(m, build_pattern("model", grid))     # back to the model's own scores
    assert "sampler_at" not in m.__dict__


@pytest.mark.parametrize("kind", ["timesformer", "xvit"])
def test_replayed_file_is_kept_exactly_after_upsampling(kind, tmp_path, device):
    g = torch.Generator().manual_seed(1)
    src = (torch.rand(3, 2, 4, 4, generator=g) < 0.6).to(torch.uint8)
    src += ((torch.rand(3, 2, 4, 4, generator=g) < 0.5) & (src > 0)).to(torch.uint8)   # nested stage 2
    src[:, :, 0, 0] = 2                                                                 # never empty
    path = tmp_path / "masks.pt"
    save_pattern_file(str(path), src, {"source_blocks": [1, 2], "source_depth": 4, "num_stages": 2})
    grid = (4, 8, 8)
    pat = build_pattern(str(path), grid)
    assert pat.kind == "masks" and pat.stages == 2 and pat.clips == 3 and pat.name == "replay:masks"
    ats = replay_setting(pat, depth=4)
    assert ats["blocks"] == [1, 2]
    m = _tiny(kind, ats, device, img_size=64)
    install_pattern(m, pat)
    x = torch.randn(4, 3, 4, 64, 64).to(device)                   # batch 4 > 3 clips: clip 0 again
    with torch.no_grad():
        m(x)
    got = _kept_masks(m, 4, grid)
    up = resample_stages(src, grid).view(3, 4, 64)
    rows = torch.tensor([0, 1, 2, 0])
    for s in range(2):
        assert torch.equal(got[s], up[rows] > s)
    assert torch.equal(got[0], expected_masks(pat, ats, 4, 4)[0])


def test_pattern_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown keep pattern"):
        build_pattern("sharp", GRID)
    with pytest.raises(UserError, match="no such file"):
        build_pattern(str(tmp_path / "missing.pt"), GRID)
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(UserError, match="not a keep-pattern file"):
        load_pattern_file(str(bad))
    junk = tmp_path / "junk.pt"
    junk.write_text("not a torch file")
    with pytest.raises(UserError, match="cannot be read"):
        build_pattern(str(junk), GRID)
    m = video_ats.create_model("timesformer", img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                               num_frames=2, num_classes=3)
    with pytest.raises(UserError, match="needs a model with ATS"):
        install_pattern(m, KeepPattern("uniform", "scores", (2, 4, 4), torch.ones(1, 2, 16)))


def test_the_shipped_trained_pattern_replays_on_timesformer_b_and_xvit_grids():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "keep_patterns", "bench_accuracy_ats.keep")
    obj = load_pattern_file(path)
    assert os.path.getsize(path) < 200_000
    assert obj["stages"].shape == (64, 8, 7, 7) and obj["source_blocks"] == [1, 2] and obj["source_depth"] == 4
    src = obj["stages"]
    pat = build_pattern(path, GRID)
    assert pat.stages == 2 and replay_setting(pat, depth=12)["blocks"] == [5, 8]
    up = pat.table.view(64, 8, 14, 14)
    for s in (0, 1):                                           # per-frame counts preserved exactly (x4)
        assert torch.equal((up > s).sum((-1, -2)), 4 * (src > s).sum((-1, -2)))
    xv = build_pattern(path, (16, 14, 14))                     # X-ViT 16x224: every frame twice
    assert torch.equal(xv.table.view(64, 16, 196)[:, 0::2], xv.table.view(64, 16, 196)[:, 1::2])
