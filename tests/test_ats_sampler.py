"""Properties of the pure ATS sampler (no model involved)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from video_ats.ats import (
    ATSConfig,
    ensure_min_kept,
    inverse_transform_sampling,
    random_selection,
    significance_scores,
    topk_selection,
)
from video_ats.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def score_batches(draw, max_b=4, max_n=40):
    b = draw(st.integers(1, max_b))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    sparsity = draw(st.floats(0.0, 0.9))
    s = torch.rand(b, n, generator=g) ** draw(st.sampled_from([1.0, 3.0, 8.0]))
    s = s * (torch.rand(b, n, generator=g) >= sparsity)
    return s


def reference_its(scores, k):
    """Literal per-row loop over the grid, as written in the paper (first CDF_j ≥ k_i)."""
    out = torch.zeros(scores.shape, dtype=torch.bool)
    for r, row in enumerate(scores.double()):
        total = row.sum()
        if total <= 0:
            continue
        cdf = torch.cumsum(row / total, 0)
        for i in range(1, k + 1):
            ki = (2 * i - 1) / (2 * k)
            hits = (cdf >= ki - 1e-9).nonzero()
            j = int(hits[0]) if len(hits) else int((row > 0).nonzero()[-1])
            out[r, j] = True
    return out


@SETTINGS
@given(score_batches(), st.integers(1, 60))
def test_kept_count_bounded_by_k(scores, k):
    kept = inverse_transform_sampling(scores, k)
    assert (kept.sum(-1) <= k).all()
    assert (kept.sum(-1) <= (scores > 0).sum(-1)).all()


@SETTINGS
@given(score_batches(), st.integers(1, 60))
def test_tokens_above_one_over_k_always_kept(scores, k):
    kept = inverse_transform_sampling(scores, k)
    s = scores / scores.sum(-1, keepdim=True).clamp_min(1e-30)
    big = s >= 1.0 / k + 1e-6
    assert kept[big].all()


@SETTINGS
@given(score_batches(), st.integers(1, 60))
def test_zero_score_tokens_never_kept(scores, k):
    kept = inverse_transform_sampling(scores, k)
    assert not kept[scores == 0].any()


@SETTINGS
@given(score_batches(), st.integers(1, 30))
def test_matches_literal_paper_definition(scores, k):
    # the reference works in float64; avoid grid points that fall within rounding of a CDF step
    kept = inverse_transform_sampling(scores.double(), k)
    ref = reference_its(scores, k)
    s = scores.double() / scores.double().sum(-1, keepdim=True).clamp_min(1e-300)
    cdf = s.cumsum(-1)
    grid = (2 * torch.arange(1, k + 1, dtype=torch.float64) - 1) / (2 * k)
    near = ((cdf.unsqueeze(-1) - grid).abs() < 1e-6).any()
    if not near:
        assert torch.equal(kept, ref)


@SETTINGS
@given(score_batches(max_b=5), st.integers(1, 60))
def test_batch_rows_independent(scores, k):
    kept = inverse_transform_sampling(scores, k)
    for r in range(scores.shape[0]):
        assert torch.equal(inverse_transform_sampling(scores[r:r + 1], k)[0], kept[r])


@pytest.mark.parametrize("n", [1, 2, 7, 196, 1568])
def test_uniform_scores_with_k_equal_n_keep_all(n):
    assert inverse_transform_sampling(torch.ones(3, n), n).all()


@pytest.mark.parametrize("n,k", [(10, 1), (10, 5), (50, 50), (50, 200)])
def test_one_hot_keeps_exactly_one(n, k):
    s = torch.zeros(4, n)
    s[torch.arange(4), torch.tensor([0, n - 1, n // 2, 3])] = 1.0
    kept = inverse_transform_sampling(s, k)
    assert torch.equal(kept, s > 0)


def test_all_zero_rows_keep_nothing_and_no_nan():
    s = torch.zeros(3, 12)
    s[1, 4] = 2.0
    kept = inverse_transform_sampling(s, 6)
    assert kept[0].sum() == 0 and kept[2].sum() == 0 and kept[1].sum() == 1
    sc = significance_scores(torch.zeros(2, 3, 5), torch.randn(2, 3, 5, 4))
    assert torch.isfinite(sc).all() and (sc == 0).all()


def test_flat_scores_keep_about_k_and_dominant_keeps_one():
    flat = torch.ones(1, 1000)
    assert inverse_transform_sampling(flat, 100).sum() == 100
    dom = torch.full((1, 1000), 1e-9)
    dom[0, 500] = 1.0
    assert inverse_transform_sampling(dom, 100).sum() == 1


def test_unnormalised_rows_are_normalised():
    s = torch.rand(3, 30, generator=torch.Generator().manual_seed(1))
    assert torch.equal(inverse_transform_sampling(s * 123.0, 9), inverse_transform_sampling(s, 9))


def test_fraction_is_of_valid_tokens_per_row():
    s = torch.ones(2, 10)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 5:] = False
    s[~valid] = 0
    kept = inverse_transform_sampling(s, 0.4, valid=valid)
    assert kept.sum(-1).tolist() == [4, 2]


def test_per_row_k_tensor():
    s = torch.ones(3, 8)
    kept = inverse_transform_sampling(s, torch.tensor([1, 4, 8]))
    assert kept.sum(-1).tolist() == [1, 4, 8]


@pytest.mark.parametrize("k", [3, 7, 10, 11, 13, 999])
def test_grid_has_exactly_k_points(k):
    # uniform scores over N = k tokens: every grid point falls in its own interval
    assert inverse_transform_sampling(torch.ones(1, k), k).sum() == k


def test_sorted_cdf_keeps_the_same_big_tokens():
    g = torch.Generator().manual_seed(3)
    s = torch.rand(4, 64, generator=g) ** 4
    for k in (8, 16, 32):
        a = inverse_transform_sampling(s, k)
        b = inverse_transform_sampling(s, k, sort=True)
        big = s / s.sum(-1, keepdim=True) >= 1.0 / k
        assert a[big].all() and b[big].all()
        assert (b.sum(-1) <= k).all()


def test_deterministic_and_dtype_independent():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(4, 100, generator=g)
    a = inverse_transform_sampling(s, 20)
    assert torch.equal(a, inverse_transform_sampling(s.clone(), 20))
    # fp32 inside: scores exactly representable in fp16 (multiples of 1/64) select the same tokens from an
    # fp16 tensor as from fp32; a CDF summed in fp16 would round (spacing 1/32 above 32) and pick others
    q = (torch.rand(4, 3000, generator=g) * 64).round() / 64
    assert torch.equal(q.half().float(), q)
    assert torch.equal(inverse_transform_sampling(q.half(), 300), inverse_transform_sampling(q, 300))


@pytest.mark.parametrize("bad", [0, -3, 1.0, 0.0, 1.5, True, "half", None])
def test_invalid_k_is_a_clear_error(bad):
    with pytest.raises(UserError, match="num_tokens"):
        inverse_transform_sampling(torch.ones(1, 4), bad)


def test_paper_and_official_scores():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 6, generator=g).softmax(-1)
    v = torch.randn(2, 3, 6, 4, generator=g)
    paper = significance_scores(a, v, "paper")
    official = significance_scores(a, v, "official")
    exp_paper = (a * v.norm(dim=-1)).sum(1)
    exp_off = a.sum(1) * v.transpose(1, 2).reshape(2, 6, 12).norm(dim=-1)
    torch.testing.assert_close(paper, exp_paper / exp_paper.sum(-1, keepdim=True))
    torch.testing.assert_close(official, exp_off / exp_off.sum(-1, keepdim=True))
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[0, 4:] = False
    masked = significance_scores(a, v, valid=valid)
    assert (masked[0, 4:] == 0).all() and torch.allclose(masked.sum(-1), torch.ones(2))


def test_gradient_flows_through_sampled_rows_and_values():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, 9, 9, generator=g, requires_grad=True)     # CLS + 8 tokens
    v = torch.randn(1, 2, 9, 4, generator=g, requires_grad=True)
    attn = logits.softmax(-1)
    scores = significance_scores(attn[:, :, 0, 1:], v[:, :, 1:])
    kept = inverse_transform_sampling(scores, 4)[0]
    rows = torch.cat([torch.tensor([0]), kept.nonzero().squeeze(1) + 1])
    out = attn[:, :, rows] @ v                                              # A^s V
    out.square().sum().backward()
    assert logits.grad[:, :, rows].abs().sum() > 0
    dropped = torch.tensor([i for i in range(9) if i not in rows.tolist()])
    assert logits.grad[:, :, dropped].abs().sum() == 0                      # rows not kept get none
    assert v.grad.abs().sum() > 0


def test_baselines_keep_exactly_k():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(3, 50, generator=g)
    assert topk_selection(s, 10).sum(-1).tolist() == [10] * 3
    top = topk_selection(s, 10)
    for r in range(3):
        assert s[r][top[r]].min() >= s[r][~top[r]].max()
    r = random_selection(s, 10, generator=torch.Generator().manual_seed(0))
    assert r.sum(-1).tolist() == [10] * 3


def test_min_kept_tops_up_with_best_tokens():
    s = torch.tensor([[0.0, 0.1, 0.9, 0.0, 0.5]])
    kept = torch.tensor([[False, False, True, False, False]])
    out = ensure_min_kept(kept, s, 2)
    assert out.tolist() == [[False, False, True, False, True]]


def test_config_validation():
    cfg = ATSConfig.from_any({"blocks": [4, 7, 10], "num_tokens": [0.7, 0.5, 0.35]}, depth=12)
    assert cfg.num_tokens_at(7) == 0.5 and cfg.num_tokens_at(5) is None
    assert ATSConfig.from_any({"blocks": [3, 4], "num_tokens": 100}, depth=12).num_tokens == (100, 100)
    assert ATSConfig.from_any(None, 12) is None
    for bad, msg in [({"blocks": [12], "num_tokens": 0.5}, "block index"),
                     ({"blocks": [5, 3], "num_tokens": 0.5}, "increasing"),
                     ({"blocks": [1, 2], "num_tokens": [0.5]*3}, "one value per block"),
                     ({"blocks": [1], "num_tokens": 1.0}, "outside"),
                     ({"blocks": [1], "num_tokens": 0.5, "bogus": 1}, "unknown ATS option"),
                     ({"blocks": [1], "num_tokens": 0.5, "score_mode": "x"}, "score_mode"),
                     ({"blocks": [1], "num_tokens": 0.5, "selection": "x"}, "selection")]:
        with pytest.raises(UserError, match=msg):
            ATSConfig.from_any(bad, depth=12)
    assert math.isclose(cfg.as_dict()["num_tokens"][2], 0.35)
