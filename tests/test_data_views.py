"""Multi-view test views and the training dataset, checked on videos with a known pattern.

Pattern videos: red grows linearly along the long side (so a crop's mean red tells where it was
cut), green = 6 x frame index (so each frame tells which frame it is), blue constant.
"""
import numpy as np
import pytest
import torch

from video_ats.data import MultiViewDataset, TrainDataset, VideoRecord, collate_views
from video_ats.data.synthetic import write_video
from video_ats.errors import UserError

N_FRAMES = 40
ID = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # leave values in [0, 1]


def pattern_video(path, width, height, portrait=False):
    t = np.arange(N_FRAMES)[:, None, None]
    along = np.arange(height)[:, None] if portrait else np.arange(width)[None, :]
    long_side = height if portrait else width
    red = np.broadcast_to(along * 255.0 / (long_side - 1), (N_FRAMES, height, width))
    green = np.broadcast_to(6.0 * t, (N_FRAMES, height, width))
    blue = np.full((N_FRAMES, height, width), 128.0)
    frames = np.stack([red, green, blue], -1).round().astype(np.uint8)
    write_video(str(path), frames, fps=30, crf=4)
    return str(path)


@pytest.fixture(scope="module")
def pattern_videos(data_video_dir):
    return {
        "landscape": pattern_video(data_video_dir / "pat_land.mp4", 96, 48),
        "portrait": pattern_video(data_video_dir / "pat_port.mp4", 48, 96, portrait=True),
        "big": pattern_video(data_video_dir / "pat_big.mp4", 192, 96),
    }


def expected_red(offset, crop=48, long_side=96):
    return (offset + (crop - 1) / 2) * 255.0 / (long_side - 1)


@pytest.mark.parametrize("kind", ["landscape", "portrait", "big"])
def test_three_crops_are_where_they_should_be(pattern_videos, kind):
    ds = MultiViewDataset([VideoRecord(pattern_videos[kind], 5)], 8, 4, crop_size=48, **ID)
    item = ds[0]
    assert item["error"] is None and item["label"] == 5 and item["clip_index"] == 0
    v = item["video"] * 255  # (3 crops, 3, T, 48, 48)
    assert tuple(v.shape) == (3, 3, 8, 48, 48)
    red = v[:, 0].mean(dim=(1, 2, 3))
    # left/top, centre, right/bottom at offsets 0, 24, 48 of the (resized) 96-pixel long side
    want = torch.tensor([expected_red(o) for o in (0, 24, 48)])
    assert torch.allclose(red, want, atol=4), (red, want)
    # the red gradient runs along the crop's width (landscape) or height (portrait)
    r0 = v[1, 0].mean(dim=0)  # (48, 48) centre crop
    along = r0.mean(dim=0) if kind != "portrait" else r0.mean(dim=1)
    across = r0.mean(dim=1) if kind != "portrait" else r0.mean(dim=0)
    assert along[-1] - along[0] > 100 and (across.max() - across.min()) < 6
    # all crops share the same frames: green (frame code) identical across crops
    g = v[:, 1].mean(dim=(2, 3))  # (3, T)
    assert torch.allclose(g[0], g[1], atol=2) and torch.allclose(g[1], g[2], atol=2)


@pytest.mark.parametrize("position, first", [("start", 0), ("center", 4)])
def test_temporal_clip_frames(pattern_videos, position, first):
    ds = MultiViewDataset([VideoRecord(pattern_videos["landscape"], 0)], 8, 4, crop_size=48, frame_spacing="stride",
                          num_crops=1, clip_position=position, **ID)
    g = ds[0]["video"][0, 1].mean(dim=(1, 2)) * 255
    frames = (g / 6).round().long()
    assert frames.tolist() == list(range(first, first + 32, 4))


def test_num_clips_and_collate(pattern_videos):
    recs = [VideoRecord(pattern_videos["landscape"], 3), VideoRecord(pattern_videos["portrait"], 1)]
    ds = MultiViewDataset(recs, 4, 2, crop_size=48, num_clips=2, num_crops=3, **ID)
    assert len(ds) == 4
    items = [ds[i] for i in range(len(ds))]
    assert [(it["video_index"], it["clip_index"]) for it in items] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # clip 1 starts later than clip 0 (40 frames, span 8 -> delta 32 -> starts 0 and 16)
    g0 = items[0]["video"][0, 1, 0].mean() * 255 / 6
    g1 = items[1]["video"][0, 1, 0].mean() * 255 / 6
    assert round(float(g0)) == 0 and round(float(g1)) == 16
    batch = collate_views(items + [{"video": None, "label": 0, "video_index": 7, "clip_index": 0,
                                    "path": "x.mp4", "error": "file not found"}])
    assert tuple(batch["video"].shape) == (12, 3, 4, 48, 48)
    assert batch["video_index"].tolist() == [0] * 6 + [1] * 6
    assert batch["clip_index"].tolist() == [0, 0, 0, 1, 1, 1] * 2
    assert batch["crop_index"].tolist() == [0, 1, 2] * 4
    assert batch["label"].tolist() == [3] * 6 + [1] * 6
    assert batch["failures"] == [{"path": "x.mp4", "error": "file not found", "video_index": 7}]
    assert torch.equal(batch["video"][3:6], items[1]["video"])


def test_normalisation_uses_the_given_mean_and_std(pattern_videos):
    rec = [VideoRecord(pattern_videos["landscape"], 0)]
    raw = MultiViewDataset(rec, 4, 2, crop_size=48, **ID)[0]["video"]
    norm = MultiViewDataset(rec, 4, 2, crop_size=48, mean=(0.45, 0.4, 0.5), std=(0.225, 0.2, 0.25))[0]["video"]
    m = torch.tensor([0.45, 0.4, 0.5]).view(1, 3, 1, 1, 1)
    s = torch.tensor([0.225, 0.2, 0.25]).view(1, 3, 1, 1, 1)
    assert torch.allclose(norm, (raw - m) / s, atol=1e-5)


def test_train_dataset_crops_flips_and_reproducibility(pattern_videos):
    rec = [VideoRecord(pattern_videos["landscape"], 4)]
    ds = TrainDataset(rec, 8, 4, crop_size=32, scale_range=(48, 64), seed=3, frame_spacing="stride", **ID)
    ds.set_epoch(0)
    a, y = ds[0]
    assert tuple(a.shape) == (3, 8, 32, 32) and y == 4 and a.dtype == torch.float32
    assert torch.equal(a, ds[0][0])  # same (seed, epoch, index) -> same clip
    seen_flip = seen_noflip = False
    starts = set()
    for epoch in range(1, 25):
        ds.set_epoch(epoch)
        x, _ = ds[0]
        red = x[0].mean(dim=(0, 1)) * 255  # along width
        if red[-1] > red[0] + 20:
            seen_noflip = True
        elif red[0] > red[-1] + 20:
            seen_flip = True
        frames = (x[1].mean(dim=(1, 2)) * 255 / 6).round().long()
        d = torch.diff(frames)
        assert torch.all(d == 4)  # consecutive sampled frames 4 apart (40 frames: room for 32)
        starts.add(int(frames[0]))
    assert seen_flip and seen_noflip
    assert len(starts) > 2 and min(starts) >= 0 and max(starts) <= 40 - 29


def test_train_dataset_rejects_bad_settings(pattern_videos):
    from video_ats.errors import UserError

    rec = [VideoRecord(pattern_videos["landscape"], 0)]
    with pytest.raises(UserError, match="crop_size"):
        TrainDataset(rec, 8, 4, crop_size=224, scale_range=(128, 160))
    with pytest.raises(UserError, match="no records"):
        TrainDataset([], 8, 4)
    with pytest.raises(UserError, match="clip_position"):
        MultiViewDataset(rec, 8, 4, clip_position="middle")


def test_crop_offsets_follow_pyslowfast_uniform_crop():
    # PySlowFast: left/top 0, centre ceil((L - size) / 2), right/bottom L - size
    ds = MultiViewDataset([], 8, 4, crop_size=224)
    assert ds.crop_offsets(227) == [0, 2, 3]
    assert ds.crop_offsets(298) == [0, 37, 74]
    assert ds.crop_offsets(224) == [0, 0, 0]
    assert MultiViewDataset([], 8, 4, crop_size=224, num_crops=1).crop_offsets(227) == [2]


def test_pyslowfast_resize_matches_a_by_hand_pyslowfast_computation(pattern_videos):
    """resize="pyslowfast": full-size decode, bilinear F.interpolate (align_corners=False) of the short side
    to the crop size (long side floored), uniform_crop offsets, then normalisation."""
    import math

    import torch.nn.functional as F

    from video_ats.data import decode_frames, sample_clip_indices
    from video_ats.data.decode import probe_video

    path = pattern_videos["landscape"]
    mean, std = (0.45, 0.4, 0.5), (0.225, 0.2, 0.25)
    ds = MultiViewDataset([VideoRecord(path, 0)], 4, 2, crop_size=32, mean=mean, std=std, resize="pyslowfast")
    got = ds[0]["video"]                                             # (3 crops, 3, T, 32, 32)
    info = probe_video(path)
    idx = sample_clip_indices(info.num_frames, 4, 2, fps=info.fps, clip_index=0, num_clips=1)
    frames = decode_frames(path, idx).permute(0, 3, 1, 2).float() / 255.0     # (T, 3, H, W)
    h, w = frames.shape[-2:]
    size = (32, int(math.floor(w * 32 / h))) if h <= w else (int(math.floor(h * 32 / w)), 32)
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    room = frames.shape[-1] - 32
    want = []
    for x0 in (0, math.ceil(room / 2), room):
        crop = frames[..., :, x0:x0 + 32]
        crop = (crop - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        want.append(crop.transpose(0, 1))
    torch.testing.assert_close(got, torch.stack(want), atol=1e-5, rtol=0)
    # the fast decoder path sees the same picture, up to the resampling kernel
    fast = MultiViewDataset([VideoRecord(path, 0)], 4, 2, crop_size=32, mean=mean, std=std)[0]["video"]
    assert (fast - got).abs().mean() < 0.1
    with pytest.raises(UserError, match="resize"):
        MultiViewDataset([], 4, 2, resize="nearest")
