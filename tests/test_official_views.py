"""``test.resize=pyslowfast`` gives the official TimeSformer/PySlowFast test views, pixel for pixel.

Each test writes a tiny real video of one awkward kind and compares the dataset's views with
:func:`oracle_views`, a literal re-statement of the official test path (``Kinetics(cfg, "test")`` with
the PyAV backend: ``pyav_decode`` + ``pyav_decode_stream``, ``decode``'s ``get_start_end_idx`` and
``temporal_sampling``, ``tensor_normalize``, ``spatial_sampling`` = ``random_short_side_scale_jitter`` +
``uniform_crop``), to 1e-6, and the timestamps of the frames chosen.

Frames are told apart by their green level (``GREEN0 + GREEN_STEP * frame number``); red grows along the
width, so a crop cut one pixel off or scaled to another size does not match either.
"""
import math
import wave
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from video_ats.data import (
    DecodeError,
    MultiViewDataset,
    VideoRecord,
    sample_clip_indices,
)
from video_ats.data.decode import target_hw
from video_ats.data.official import decode_official_clip, official_short_side_hw

MEAN, STD = (0.45, 0.4, 0.5), (0.225, 0.2, 0.25)
GREEN0, GREEN_STEP = 16, 5


# ---- writing small test videos -------------------------------------------------------------------


def write(path, pts, time_base, rate, width=32, height=32, fmt="mp4"):
    """H.264 video with one frame per entry of ``pts`` (in ``time_base`` units), frame k coded in green."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.time_base = time_base
        s.codec_context.thread_count = 1
        s.options = {"crf": "2", "preset": "veryfast", "x264-params": "threads=1"}
        red = np.broadcast_to(np.linspace(0, 255, width)[None, :], (height, width))
        for k, p in enumerate(pts):
            rgb = np.stack([red, np.full_like(red, GREEN0 + GREEN_STEP * k), np.full_like(red, 128)], -1)
            f = av.VideoFrame.from_ndarray(rgb.round().astype(np.uint8), format="rgb24")
            f.pts, f.time_base = int(p), time_base
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


def stream_pts(path):
    with av.open(path) as c:
        return [f.pts for f in c.decode(video=0)]


def frame_numbers(frames):
    """Frame numbers coded in the green level of uint8 (T, H, W, 3) frames."""
    return [round((float(f[..., 1].float().mean()) - GREEN0) / GREEN_STEP) for f in frames]


# ---- the oracle: the official code's steps, literally -------------------------------------------


def _get_start_end_idx(video_size, clip_size, clip_idx, num_clips):
    delta = max(video_size - clip_size, 0)
    start_idx = delta * clip_idx / num_clips
    end_idx = start_idx + clip_size - 1
    return start_idx, end_idx


def _scale(images, size):
    height, width = images.shape[2], images.shape[3]
    if (width <= height and width == size) or (height <= width and height == size):
        return images
    new_width, new_height = size, size
    if width < height:
        new_height = math.floor((float(height) / width) * size)
    else:
        new_width = math.floor((float(width) / height) * size)
    return torch.nn.functional.interpolate(images, size=(new_height, new_width), mode="bilinear",
                                           align_corners=False)


def _uniform_crop(images, size, spatial_idx):
    height, width = images.shape[2], images.shape[3]
    y_offset = math.ceil((height - size) / 2)
    x_offset = math.ceil((width - size) / 2)
    if height > width:
        if spatial_idx == 0:
            y_offset = 0
        elif spatial_idx == 2:
            y_offset = height - size
    else:
        if spatial_idx == 0:
            x_offset = 0
        elif spatial_idx == 2:
            x_offset = width - size
    return images[:, :, y_offset:y_offset + size, x_offset:x_offset + size]


def oracle_views(path, num_frames, sampling_rate, crop, clip_idx=0, num_clips=1, target_fps=30):
    """(views (3, 3, T, crop, crop), chosen positions among the decoded frames, their pts)."""
    container = av.open(path)
    fps = float(container.streams.video[0].average_rate)
    frames_length = container.streams.video[0].frames
    duration = container.streams.video[0].duration
    if duration is None:
        decode_all_video = True
        video_start_pts, video_end_pts = 0, math.inf
    else:
        decode_all_video = False
        start_idx, end_idx = _get_start_end_idx(frames_length, sampling_rate * num_frames / target_fps * fps,
                                                clip_idx, num_clips)
        timebase = duration / frames_length
        video_start_pts = int(start_idx * timebase)
        video_end_pts = int(end_idx * timebase)
    stream = container.streams.video[0]
    container.seek(max(video_start_pts - 1024, 0), any_frame=False, backward=True, stream=stream)
    frames, buffer_count, buffer_size = {}, 0, 0
    for frame in container.decode(video=0):
        if frame.pts < video_start_pts:
            continue
        if frame.pts <= video_end_pts:
            frames[frame.pts] = frame
        else:
            buffer_count += 1
            frames[frame.pts] = frame
            if buffer_count >= buffer_size:
                break
    all_pts = sorted(frames)
    video_frames = [frames[p] for p in all_pts]
    container.close()
    decoded = torch.as_tensor(np.stack([f.to_rgb().to_ndarray() for f in video_frames]))
    clip_sz = sampling_rate * num_frames / target_fps * fps
    start_idx, end_idx = _get_start_end_idx(decoded.shape[0], clip_sz, clip_idx if decode_all_video else 0,
                                            num_clips if decode_all_video else 1)
    index = torch.linspace(start_idx, end_idx, num_frames)
    index = torch.clamp(index, 0, decoded.shape[0] - 1).long()
    clip = torch.index_select(decoded, 0, index)
    x = clip.float() / 255.0
    x = x - torch.tensor(list(MEAN))
    x = x / torch.tensor(list(STD))
    x = x.permute(3, 0, 1, 2)
    views = torch.stack([_uniform_crop(_scale(x, crop), crop, i) for i in range(3)])
    return views, index.tolist(), [all_pts[i] for i in index.tolist()]


def check_against_oracle(path, num_frames, sampling_rate, crop, num_clips=1):
    """Dataset views == oracle views (1e-6) and the same frames, for every temporal clip; returns the
    official clips (from :func:`decode_official_clip`)."""
    ds = MultiViewDataset([VideoRecord(path, 0)], num_frames, sampling_rate, crop_size=crop, num_clips=num_clips,
                          mean=MEAN, std=STD, resize="pyslowfast")
    clips = []
    for ci in range(num_clips):
        want, positions, pts = oracle_views(path, num_frames, sampling_rate, crop, ci, num_clips)
        item = ds[ci]
        assert item["error"] is None, item["error"]
        assert item["video"].shape == want.shape
        torch.testing.assert_close(item["video"], want, atol=1e-6, rtol=0)
        clip = decode_official_clip(path, num_frames, sampling_rate, clip_index=ci, num_clips=num_clips)
        assert clip.positions.tolist() == positions and clip.pts == pts
        # the pixels are those of the frames with these timestamps
        numbers = {p: k for k, p in enumerate(stream_pts(path))}
        assert frame_numbers(clip.frames) == [numbers[p] for p in pts]
        clips.append(clip)
    return clips


# ---- (a) aspect ratios where the float size rule differs from integer arithmetic ------------------


@pytest.mark.parametrize("width, height", [(60, 44), (44, 60)])
def test_long_side_follows_the_float_rule(tmp_path, width, height):
    crop = 22
    # (60 / 44) * 22 = 29.999999999999996 in floating point: the official long side is 29, not 30
    assert official_short_side_hw(height, width, crop) == ((crop, 29) if width > height else (29, crop))
    assert max(target_hw(height, width, crop)) == 60 * crop // 44 == 30  # the fast path's integer rule
    path = write(tmp_path / "aspect.mp4", range(12), Fraction(1, 30), 30, width, height)
    check_against_oracle(path, 4, 2, crop)


# ---- (b) a frame rate where float32 linspace picks another frame than float64 --------------------


def test_float32_linspace_picks_the_official_frame(tmp_path):
    path = write(tmp_path / "fps59.mp4", range(24), Fraction(1, 59), 59)
    with av.open(path) as c:
        assert float(c.streams.video[0].average_rate) == 59.0
    # 5 frames x 2 at 59 fps (target 30): linspace(0, 18.67, 5); float32 lands on 14.0, float64 on 13.999...
    (clip,) = check_against_oracle(path, 5, 2, 32)
    assert clip.positions.tolist() == [0, 4, 9, 14, 18]
    assert frame_numbers(clip.frames) == [0, 4, 9, 14, 18]
    assert sample_clip_indices(24, 5, 2, fps=59.0, clip_index=0).tolist() == [0, 4, 9, 13, 18]  # fast path


# ---- (c) a first timestamp that is not 0 -----------------------------------------------------------


@pytest.mark.parametrize("num_clips", [1, 2])
def test_nonzero_first_pts(tmp_path, num_clips):
    path = write(tmp_path / "offset.mp4", range(3, 23), Fraction(1, 30), 30)   # starts 3 frames late
    pts = stream_pts(path)
    assert pts[0] > 0 and len(pts) == 20
    clips = check_against_oracle(path, 4, 2, 32, num_clips=num_clips)
    # the window of clip 0 is [0, 7 frame durations] from pts 0: frames 0..4, plus the next one (5)
    assert clips[0].window_pts[0] == 0 and clips[0].num_window_frames == 6
    assert frame_numbers(clips[0].frames) == [0, 2, 4, 5]
    assert sample_clip_indices(20, 4, 2, fps=30.0, clip_index=0).tolist() == [0, 2, 4, 7]  # fast path


# ---- (d) variable frame rate -------------------------------------------------------------------------


@pytest.mark.parametrize("num_clips", [1, 2])
def test_variable_frame_rate(tmp_path, num_clips):
    # 10 frames 100 ms apart, then 30 frames 20 ms apart: 40 frames in 1.6 s, but slow at the start
    ms = np.concatenate([np.arange(10) * 100, 1000 + np.arange(30) * 20])
    path = write(tmp_path / "vfr.mp4", ms, Fraction(1, 1000), 25)
    clips = check_against_oracle(path, 4, 4, 32, num_clips=num_clips)
    # average rate 2000/89: clip 0 spans 12 average frame durations = 0.44 s (pts 0..7118 of 1/16000 s),
    # i.e. frames 0..4 by time (+ frame 5), not frames 0..11 by count
    assert not clips[0].whole_video and clips[0].num_window_frames == 6
    assert frame_numbers(clips[0].frames) == [0, 3, 5, 5]
    assert sample_clip_indices(40, 4, 4, fps=clips[0].fps, clip_index=0).tolist() == [0, 3, 7, 10]  # fast path


# ---- a stream without a duration: the whole video is decoded ---------------------------------------


def test_stream_without_duration_decodes_the_whole_video(tmp_path):
    path = write(tmp_path / "noduration.mkv", range(2, 26), Fraction(1, 30), 30, fmt="matroska")
    with av.open(path) as c:
        assert c.streams.video[0].duration is None
    clips = check_against_oracle(path, 4, 2, 32, num_clips=3)
    assert all(c.whole_video and c.num_window_frames == 24 for c in clips)
    assert [frame_numbers(c.frames)[0] for c in clips] == [0, 5, 10]  # delta 16 over 3 clips


# ---- bad input -----------------------------------------------------------------------------------


def test_bad_files_give_one_line_errors(tmp_path):
    audio = tmp_path / "audio.wav"
    # written with the standard library: PyAV's audio encoder keeps a resampler (a filter graph with its own
    # threads) alive in this process, and a forked DataLoader worker of a later test that frees it hangs for good
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    # a video stream whose frames are all zero bytes: the container is fine, no frame decodes
    good = write(tmp_path / "good.mp4", range(4), Fraction(1, 30), 30)
    with open(good, "rb") as f:
        data = bytearray(f.read())
    start, moov = data.index(b"mdat") + 4, data.index(b"moov")
    assert moov > start  # moov written after the frames
    data[start:moov - 4] = bytes(moov - 4 - start)
    empty = tmp_path / "no_frames.mp4"
    empty.write_bytes(bytes(data))
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    cases = {str(audio): "no video stream", str(empty): "no decodable frame", str(junk): "not a readable video",
             str(tmp_path / "missing.mp4"): "file not found"}
    for path, reason in cases.items():
        with pytest.raises(DecodeError, match=reason) as err:
            decode_official_clip(path, 4, 2)
        assert "\n" not in str(err.value) and str(err.value).startswith(path)
    ds = MultiViewDataset([VideoRecord(p, 0) for p in cases], 4, 2, crop_size=32, resize="pyslowfast")
    for i, reason in enumerate(cases.values()):
        item = ds[i]
        assert item["video"] is None and reason in item["error"] and "\n" not in item["error"]


def test_non_official_temporal_settings_keep_decode_order_frames(tmp_path):
    """clip_position="center" (MMAction2) has no official counterpart: frames by decode-order index,
    pixels by the official steps."""
    from video_ats.data import decode_frames
    from video_ats.data.official import official_views

    path = write(tmp_path / "offset.mp4", range(3, 23), Fraction(1, 30), 30)
    ds = MultiViewDataset([VideoRecord(path, 0)], 4, 2, crop_size=24, clip_position="center", mean=MEAN, std=STD,
                          resize="pyslowfast")
    assert not ds.official_temporal(ds.records[0])
    idx = sample_clip_indices(20, 4, 2, fps=30.0, clip_index=0, clip_position="center")
    frames = decode_frames(path, idx)
    assert frame_numbers(frames) == idx.tolist() == [6, 8, 10, 13]
    want = official_views(frames, 24, ds.crop_offsets, MEAN, STD)
    torch.testing.assert_close(ds[0]["video"], want, atol=1e-6, rtol=0)
