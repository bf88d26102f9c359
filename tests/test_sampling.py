"""The shared ATS step (models/sampling.py): both backbones run it under the profiler label, and the
models record the kept positions themselves."""
import pytest
import torch
from _models import tiny_timesformer, tiny_xvit
from torch.profiler import ProfilerActivity, profile

from video_ats.models.merging import TOME_PROFILE_LABEL
from video_ats.models.sampling import ATS_PROFILE_LABEL

TIMESFORMER = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_frames=4, num_classes=7)
XVIT = dict(TIMESFORMER, num_frames=8, num_segments=4, head_num_heads=4, head_mlp_dim=48)
ATS = {"blocks": [0, 2], "num_tokens": [0.5, 0.6]}


def model(name, **kw):
    if name == "xvit":
        return tiny_xvit(XVIT, embeds=False, **kw)
    return tiny_timesformer(TIMESFORMER, paths=False, **kw)


def clips(m, b=3):
    return torch.randn(b, 3, m.num_frames, 32, 32, generator=torch.Generator().manual_seed(1))


def label_calls(m, x, label):
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        m(x)
    return sum(e.count for e in prof.key_averages() if e.key == label)


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_ats_work_runs_under_the_profiler_label(name):
    m = model(name, ats=ATS)
    x = clips(m, 2)
    assert label_calls(m, x, ATS_PROFILE_LABEL) == 2             # once per ATS block
    m.set_ats(None)
    assert label_calls(m, x, ATS_PROFILE_LABEL) == 0


def test_tome_work_runs_under_its_label():
    m = model("timesformer", tome={"blocks": [1], "r": 3})
    assert label_calls(m, clips(m, 1), TOME_PROFILE_LABEL) == 1


@pytest.mark.parametrize("name,kw", [("timesformer", {"ats": ATS}), ("xvit", {"ats": ATS}),
                                     ("timesformer", {"tome": {"blocks": [0, 2], "r": [5, 0.5]}})])
def test_last_kept_positions_match_the_kept_counts(name, kw):
    m = model(name, **kw)
    t, side = m.num_frames, 32 // m.patch_size
    with torch.no_grad():
        m(clips(m))
    positions = m.last_kept_positions
    assert set(positions) == set(m.last_kept_tokens) == {0, 2}
    for block, per_clip in positions.items():
        assert [len(p) for p in per_clip] == m.last_kept_tokens[block].tolist()
        for p in per_clip:
            assert p.dtype == torch.long and p.shape[1] == 2
            assert 0 <= p[:, 0].min() and p[:, 0].max() < t and 0 <= p[:, 1].min() and p[:, 1].max() < side * side
            flat = p[:, 0] * side * side + p[:, 1]
            assert torch.equal(flat, flat.unique())              # distinct, in (t, p) order
    if "ats" in kw:                                              # a later ATS block keeps a subset
        for p0, p2 in zip(positions[0], positions[2]):
            assert {tuple(v) for v in p2.tolist()} <= {tuple(v) for v in p0.tolist()}


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_kept_positions_follow_the_last_forward(name):
    m = model(name, ats=ATS)
    with torch.no_grad():
        m(clips(m, 3))
        m(clips(m, 1))
    assert all(len(lst) == 1 for lst in m.last_kept_positions.values())
    m.set_ats(None)
    with torch.no_grad():
        m(clips(m, 1))
    assert m.last_kept_positions == {} and m.last_kept_tokens == {}


def test_blocks_have_one_forward():
    from video_ats.models.xvit import SpaceTimeMixingBlock
    assert not any(hasattr(SpaceTimeMixingBlock, n) for n in ("forward_dense", "forward_dense_ats", "forward_packed"))
