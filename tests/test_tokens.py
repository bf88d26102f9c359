"""TokenSet and Groups (video_ats/tokens.py): packed order, pad/unpad, positions after keep."""
import pytest
import torch

from video_ats.tokens import TokenSet

GRID = (3, 2, 3)                      # T, H, W: 6 positions per frame, 18 tokens per clip


def full_set(b=2, d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t, h, w = GRID
    return TokenSet.from_grid(torch.randn(b, t, h * w, d, generator=gen), torch.randn(b, 1, d, generator=gen), GRID)


def dropped(b=2, seed=0):
    ts = full_set(b, seed=seed)
    keep = torch.rand(ts.x.shape[0], generator=torch.Generator().manual_seed(seed + 1)) < 0.5
    keep[0] = True                    # the first clip keeps its token (0, 0)
    return ts, keep, ts.keep(keep)


def test_from_grid_packed_order():
    ts = full_set()
    t, h, w = GRID
    assert ts.dense and torch.equal(ts.num_tokens, torch.tensor([18, 18]))
    i = torch.arange(ts.x.shape[0])
    assert torch.equal(ts.clip, i // 18) and torch.equal(ts.t, i % 18 // 6) and torch.equal(ts.p, i % 6)


@pytest.mark.parametrize("by", ["frame", "position"])
@pytest.mark.parametrize("lead", [0, 1])
@pytest.mark.parametrize("drop", [False, True])
def test_pad_unpad_round_trip(by, lead, drop):
    ts = dropped()[2] if drop else full_set()
    g = ts.groups(by, lead=lead)
    cls = torch.full((g.num_groups, lead, ts.x.shape[1]), 7.0) if lead else None
    padded = g.pad(ts.x, cls)
    assert padded.shape == (g.num_groups, g.length, ts.x.shape[1])
    assert torch.equal(g.unpad(padded), ts.x)
    if lead:
        assert (padded[:, :lead] == 7.0).all()
    mask = g.key_mask()
    if mask is not None:              # padding slots: masked and finite zeros
        assert (padded[~mask] == 0).all() and mask.sum() == ts.x.shape[0] + lead * g.num_groups
    if by == "frame" and g.view is None:                      # each token sits in its (clip, frame) group
        assert torch.equal(g.slot // g.length, ts.clip * GRID[0] + ts.t)


def test_dense_view_path_equals_index_path():
    ts = full_set()
    sparse = ts.keep(torch.ones(ts.x.shape[0], dtype=torch.bool))
    sparse.dense = False
    for by in ("frame", "position"):
        a, b = ts.groups(by, lead=1), sparse.groups(by, lead=1)
        assert a.view is not None and b.view is None
        lead = torch.zeros(a.num_groups, 1, ts.x.shape[1])
        assert torch.equal(a.pad(ts.x, lead), b.pad(ts.x, lead))
        assert torch.equal(a.pairs_per_clip(2), b.pairs_per_clip(2))


def test_index_of():
    ts, keep, kept = dropped()
    rows = kept.index_of(kept.clip, kept.t, kept.p)
    assert torch.equal(rows, torch.arange(kept.x.shape[0]))
    gone = (~keep).nonzero().squeeze(1)
    assert (kept.index_of(ts.clip[gone], ts.t[gone], ts.p[gone]) == -1).all()
    outside = kept.index_of(torch.tensor([0, 0]), torch.tensor([-1, GRID[0]]), torch.tensor([0, 0]))
    assert outside.tolist() == [-1, -1]
    assert kept.index_of(torch.tensor([0]), torch.tensor([0]), torch.tensor([0])).item() == 0


def test_position_groups_after_keep():
    ts, keep, kept = dropped()
    g = kept.groups("position")
    present = torch.unique(kept.clip * 6 + kept.p)            # only positions that still hold a token
    assert g.num_groups == present.numel()
    assert torch.equal(g.sizes, torch.bincount(kept.clip * 6 + kept.p, minlength=12)[present])
    assert torch.equal(g.clip, present // 6)
    assert g.length == int(g.sizes.max())
    # slot order inside a group follows time
    padded = g.pad(torch.stack([kept.t, kept.p], 1).float())
    mask = g.key_mask()
    for i in range(g.num_groups):
        ts_ = padded[i, mask[i], 0] if mask is not None else padded[i, :, 0]
        assert torch.equal(ts_, ts_.sort().values)
        assert (padded[i, mask[i] if mask is not None else slice(None), 1] == present[i] % 6).all()
    assert torch.equal(g.pairs_per_clip(2), torch.zeros(2, dtype=torch.float64).index_add_(
        0, g.clip, g.sizes.double() ** 2))


def test_keep_carries_positions_and_features():
    ts, keep, kept = dropped()
    idx = keep.nonzero().squeeze(1)
    assert not kept.dense
    assert torch.equal(kept.x, ts.x[idx]) and torch.equal(kept.t, ts.t[idx]) and torch.equal(kept.p, ts.p[idx])
    assert torch.equal(kept.num_tokens, torch.bincount(ts.clip[idx], minlength=2))
    assert torch.equal(ts.keep(idx).x, kept.x)                 # indices or a mask: the same subset
    frames = kept.groups("frame", lead=1)
    assert frames.num_groups == 2 * GRID[0]                   # every frame keeps a group (for its CLS)
    assert torch.equal(frames.slots_per_clip(2), (kept.num_tokens + GRID[0]).double())
