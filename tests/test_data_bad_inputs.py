"""Every bad input has a defined behaviour and a one-line message; none stops a loop."""
import glob
import logging
import os
import shutil

import av
import numpy as np
import pytest
import torch

from video_ats.data import (
    DecodeError,
    MultiViewDataset,
    TrainDataset,
    VideoRecord,
    collate_views,
    decode_frames,
    probe_video,
    read_annotations,
)
from video_ats.data.synthetic import render_video, write_video
from video_ats.errors import UserError


def make_moov_first_mp4(path, num_frames=60, size=(64, 48)):
    """An mp4 with its index at the front ("faststart"), so cutting it short keeps the index."""
    frames = render_video("disk", "right", size[0], size[1], num_frames, 3)
    with av.open(path, "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"g": "10", "threads": "1"}
        for arr in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


@pytest.fixture(scope="module")
def bad_dir(data_video_dir, data_synthetic):
    d = data_video_dir / "bad"
    d.mkdir(exist_ok=True)
    good = sorted(glob.glob(os.path.join(data_synthetic["root"], "val", "*.mp4")))[0]
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    data = open(good, "rb").read()
    (d / "cut_no_index.mp4").write_bytes(data[: len(data) // 2])  # moov at the end: lost
    make_moov_first_mp4(str(d / "full_faststart.mp4"))
    full = open(d / "full_faststart.mp4", "rb").read()
    (d / "cut_with_index.mp4").write_bytes(full[: int(len(full) * 0.6)])
    write_video(str(d / "short10.mp4"), render_video("square", "down", 64, 48, 10, 4), fps=30)
    write_video(str(d / "one.mp4"), render_video("square", "down", 64, 48, 1, 5), fps=30)
    write_video(str(d / "portrait.mp4"), render_video("disk", "up", 48, 96, 40, 6), fps=30)
    huge = np.zeros((2, 2160, 3840, 3), dtype=np.uint8)  # 4K: a bright square on black
    huge[:, 800:1400, 1600:2200] = 255
    write_video(str(d / "huge.mp4"), huge, fps=30)
    shutil.copy(good, d / "good.mp4")
    return d


@pytest.fixture(autouse=True)
def fresh_failure_log():
    """Bad files are logged once per process; start each test with a clean slate."""
    from video_ats.data import datasets

    datasets._REPORTED.clear()
    yield


@pytest.mark.parametrize("name, words", [
    ("missing.mp4", "file not found"),
    ("empty.mp4", "empty file (0 bytes)"),
    ("text.mp4", "not a readable video"),
    ("cut_no_index.mp4", "not a readable video"),
])
def test_undecodable_files_raise_one_line_decode_error(bad_dir, name, words):
    with pytest.raises(DecodeError) as ei:
        decode_frames(str(bad_dir / name), [0, 1])
    msg = str(ei.value)
    assert words in msg and name in msg and "\n" not in msg


def test_truncated_mp4_with_index_decodes_the_frames_that_are_there(bad_dir):
    path = str(bad_dir / "cut_with_index.mp4")
    out = decode_frames(path, [0, 10, 59])  # frame 59 is past the cut: clamped to the last one
    assert tuple(out.shape) == (3, 48, 64, 3)
    assert not torch.equal(out[0], out[1])
    full = decode_frames(str(bad_dir / "full_faststart.mp4"), [0])
    assert (out[0].float() - full[0].float()).abs().mean() < 1.0


def test_short_and_one_frame_videos_are_padded(bad_dir):
    short = decode_frames(str(bad_dir / "short10.mp4"), [0, 4, 8, 12, 16])
    last = decode_frames(str(bad_dir / "short10.mp4"), [9])[0]
    assert torch.equal(short[3], last) and torch.equal(short[4], last)  # 12, 16 -> frame 9
    assert not torch.equal(short[2], last)
    one = decode_frames(str(bad_dir / "one.mp4"), list(range(0, 32, 4)))
    assert tuple(one.shape) == (8, 48, 64, 3) and all(torch.equal(one[0], f) for f in one)
    ds = MultiViewDataset([VideoRecord(str(bad_dir / "one.mp4"), 0)], 8, 4, crop_size=32)
    assert tuple(ds[0]["video"].shape) == (3, 3, 8, 32, 32)


def test_huge_resolution_is_scaled_while_decoding(bad_dir):
    path = str(bad_dir / "huge.mp4")
    assert (probe_video(path).width, probe_video(path).height) == (3840, 2160)
    # long side floored as PySlowFast does: 3840 * 64 / 2160 = 113.8 -> 113
    assert tuple(decode_frames(path, [0, 1], size=64).shape) == (2, 64, 113, 3)
    item = MultiViewDataset([VideoRecord(path, 0)], 4, 2, crop_size=32)[0]
    assert item["error"] is None and tuple(item["video"].shape) == (3, 3, 4, 32, 32)
    centre = item["video"][1, :, 0]  # the square sits in the middle of the centre crop
    assert centre[:, 16, 16].min() > centre[:, 1, 1].max()
    x, _ = TrainDataset([VideoRecord(path, 0)], 4, 2, crop_size=32, scale_range=(36, 40))[0]
    assert tuple(x.shape) == (3, 4, 32, 32)


def test_multiview_records_failures_and_keeps_going(bad_dir, caplog):
    names = ["good.mp4", "missing.mp4", "empty.mp4", "text.mp4", "cut_no_index.mp4",
             "cut_with_index.mp4", "short10.mp4", "one.mp4", "portrait.mp4", "huge.mp4", "good.mp4"]
    recs = [VideoRecord(str(bad_dir / n), i % 3) for i, n in enumerate(names)]
    ds = MultiViewDataset(recs, 8, 4, crop_size=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_views)
    with caplog.at_level(logging.WARNING, logger="video_ats.data"):
        batches = list(loader)
        list(loader)  # a second pass logs nothing new
    failures = [f for b in batches for f in b["failures"]]
    assert sorted(os.path.basename(f["path"]) for f in failures) == sorted(
        ["missing.mp4", "empty.mp4", "text.mp4", "cut_no_index.mp4"])
    assert all(f["error"] and "\n" not in f["error"] for f in failures)
    assert sorted(f["video_index"] for f in failures) == [1, 2, 3, 4]
    views = sum(b["video"].shape[0] for b in batches if b["video"] is not None)
    assert views == 3 * (len(names) - 4)
    logged = [r.getMessage() for r in caplog.records if r.name == "video_ats.data"]
    assert len(logged) == 4 and all("evaluation: recorded as a failure" in m for m in logged)


def test_training_replaces_bad_videos_and_logs_once(bad_dir, caplog):
    recs = [VideoRecord(str(bad_dir / n), i) for i, n in
            enumerate(["text.mp4", "good.mp4", "missing.mp4", "empty.mp4"])]
    ds = TrainDataset(recs, 4, 2, crop_size=32, scale_range=(36, 44), max_retries=50, seed=1)
    with caplog.at_level(logging.WARNING, logger="video_ats.data"):
        for epoch in range(3):
            ds.set_epoch(epoch)
            labels = [ds[i][1] for i in range(len(ds))]
            assert labels == [1, 1, 1, 1]  # every bad sample replaced by the only good one
    assert ds.num_failures >= 3
    logged = [r.getMessage() for r in caplog.records
              if r.name == "video_ats.data" and "training: replaced" in r.getMessage()]
    assert len(logged) == len(set(logged)) <= 3


def test_training_gives_up_with_clear_error_when_everything_is_bad(bad_dir):
    recs = [VideoRecord(str(bad_dir / n), 0) for n in ["text.mp4", "missing.mp4"]]
    ds = TrainDataset(recs, 4, 2, crop_size=32, scale_range=(36, 44), max_retries=3)
    with pytest.raises(UserError, match="4 videos in a row could not be decoded"):
        ds[0]


def test_portrait_video_in_training(bad_dir):
    x, y = TrainDataset([VideoRecord(str(bad_dir / "portrait.mp4"), 2)], 8, 4, crop_size=32,
                        scale_range=(32, 40))[0]
    assert tuple(x.shape) == (3, 8, 32, 32) and y == 2


def test_unknown_label_and_malformed_line_in_annotations(tmp_path):
    lm = tmp_path / "labels.txt"
    lm.write_text("a\nb\n")
    bad = tmp_path / "k.csv"
    bad.write_text("label,youtube_id,time_start,time_end,split\na,x,0,10,val\nzzz,y,0,10,val\n")
    with pytest.raises(UserError, match=r"k\.csv:3: unknown class 'zzz'"):
        read_annotations(str(bad), label_map=str(lm))
    bad.write_text("label,youtube_id,time_start,time_end,split\na,x,0,10\n")
    with pytest.raises(UserError, match=r"k\.csv:2: expected 5 comma-separated fields"):
        read_annotations(str(bad))
