"""The official TimeSformer / PySlowFast test views, reproduced step by step (``test.resize=pyslowfast``).

The official test loader (``Kinetics(cfg, "test")`` with the PyAV backend) does, per view:

1. **Clip window in presentation timestamps.** ``fps = float(stream.average_rate)``, ``n = stream.frames``,
   ``duration = stream.duration`` (stream time base). With a duration, the clip's first/last frame
   numbers are ``start = delta * clip_idx / num_clips`` and ``end = start + clip_size - 1`` with
   ``delta = max(n - clip_size, 0)`` and ``clip_size = sampling_rate * num_frames / target_fps * fps``;
   they become timestamps through ``duration / n`` (``int(start * duration / n)``), so the window
   starts at pts 0 whatever the stream's first timestamp, and a variable-frame-rate stream sees its
   frames by time, not by count. Without a duration the whole video is decoded (window [0, inf)).
2. **Decoding the window.** Seek (backwards, to a keyframe) to ``max(start_pts - 1024, 0)``, decode,
   drop frames with ``pts < start_pts``, keep those with ``pts <= end_pts`` *and the first frame past
   end_pts* (the decoder loop stores it before it stops), sorted by pts.
3. **Frame indices.** Among the decoded frames (n'), a float32 ``torch.linspace(start, end, T)`` with
   ``(start, end)`` from the same rule on n' — clip 0 of 1 when a window was decoded (so ``start = 0``,
   ``end = clip_size - 1``), the real (clip_idx, num_clips) when the whole video was — clamped to
   ``[0, n' - 1]`` and truncated (``.long()``).
4. **Pixels.** ``frame.to_rgb().to_ndarray()``, then ``(x / 255 - mean) / std`` in float32 on (T, H, W, C),
   permuted to (C, T, H, W); the short side is scaled to the crop size with bilinear
   ``F.interpolate(align_corners=False)`` unless it already has that size, the long side being
   ``int(math.floor((float(long) / short) * size))`` — the division first, in floating point; crops at
   0 / ``ceil((L - size) / 2)`` / ``L - size`` along the long side, ``ceil((S - size) / 2)`` across.

:func:`decode_official_clip` does 1–3 (without keeping every decoded frame: only the T it needs, a
second pass when that cannot be known up front), :func:`official_views` does 4. Where the official loader
would fail a file (no ``average_rate``; a duration but a frame count of 0) these fall back to the
guessed frame rate and to decoding the whole video; decode errors part-way keep the frames decoded so far.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F

from .decode import DecodeError, _check_file, describe_error

SEEK_MARGIN = 1024  # pts units, as the official pyav_decode_stream


def official_start_end(video_size: float, clip_size: float, clip_idx: int, num_clips: int) -> tuple[float, float]:
    """First and last (fractional) frame number of test clip ``clip_idx`` of ``num_clips``: the official
    ``get_start_end_idx`` for a test clip, with its float arithmetic in its order."""
    delta = max(video_size - clip_size, 0)
    start_idx = delta * clip_idx / num_clips
    end_idx = start_idx + clip_size - 1
    return start_idx, end_idx


def official_positions(start: float, end: float, num_frames: int, num_available: int) -> np.ndarray:
    """The official ``temporal_sampling`` indices: float32 ``torch.linspace(start, end, T)`` clamped to
    ``[0, num_available - 1]`` and truncated. Its float32 rounding picks a neighbouring frame at a few
    clip lengths (e.g. 5 frames over 9.33: float32 gives frame 7 where float64 gives 6)."""
    index = torch.linspace(start, end, num_frames, dtype=torch.float32)
    return torch.clamp(index, 0, num_available - 1).long().numpy()


def official_short_side_hw(height: int, width: int, size: int) -> tuple[int, int]:
    """(H, W) after the official short-side scaling (``random_short_side_scale_jitter`` with
    min = max = size): ``floor((float(long) / short) * size)`` — division first, in floating point, which
    is one pixel short of the integer ``long * size // short`` for some sizes (60x44 to short side 22:
    29, not 30)."""
    if width < height:
        return math.floor((float(height) / width) * size), int(size)
    return int(size), math.floor((float(width) / height) * size)


def official_clip_size(num_frames: int, sampling_rate: float, fps: float, target_fps: float | None) -> float:
    """Frames of the video covered by one clip, computed as the official code does (that order)."""
    if not target_fps:
        return float(sampling_rate * num_frames)
    return sampling_rate * num_frames / target_fps * fps


@dataclass
class OfficialClip:
    """One decoded official test clip and how it was chosen."""

    frames: torch.Tensor            # uint8 (T, H, W, 3), native size
    pts: list[int]                  # presentation timestamp of each of the T frames (stream time base)
    positions: np.ndarray           # index of each frame among the window's decoded frames (sorted by pts)
    window_pts: tuple[int, float]   # (start_pts, end_pts) of the decoded window; end is inf for a whole video
    num_window_frames: int          # frames decoded in the window (the first frame past it included)
    whole_video: bool               # the stream had no duration: the whole video was decoded
    fps: float
    time_base: Fraction | None


def _window_frames(container, path: str, start_pts: int, end_pts: float, keep_index: set[int],
                   keep_pts: set[int]) -> tuple[list[int], dict[int, tuple[int, av.VideoFrame]]]:
    """Decode the official window (see the module docstring, step 2).

    Returns the pts of every frame of the window in decode order and ``{pts: (decode_index, frame)}`` for
    the frames whose decode index is in ``keep_index`` or whose pts is in ``keep_pts`` (a later frame with
    the same pts replaces an earlier one, as in the official pts-keyed dict), plus the last frame."""
    order: list[int] = []
    kept: dict[int, tuple[int, av.VideoFrame]] = {}
    last = None
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    container.seek(max(int(start_pts) - SEEK_MARGIN, 0), any_frame=False, backward=True, stream=stream)
    try:
        for frame in container.decode(video=0):
            if frame.pts is None:
                raise DecodeError(path, "a frame without a presentation timestamp; the official test "
                                        "views need them (use test.resize=decoder)")
            if frame.pts < start_pts:
                continue
            i = len(order)
            order.append(frame.pts)
            if i in keep_index or frame.pts in keep_pts:
                kept[frame.pts] = (i, frame)
            last = (i, frame)
            if frame.pts > end_pts:  # the first frame past the window is kept, then decoding stops
                break
    except (av.error.InvalidDataError, av.error.EOFError, OSError) as exc:
        if not order:  # a damaged file: keep the frames decoded so far, if any
            raise DecodeError(path, f"no decodable frame: {describe_error(exc)}") from None
    if last is not None:
        kept[last[1].pts] = last
    return order, kept


def decode_official_clip(path: str, num_frames: int, sampling_rate: float, target_fps: float | None = 30,
                         clip_index: int = 0, num_clips: int = 1) -> OfficialClip:
    """Test clip ``clip_index`` of ``num_clips`` of ``path``, chosen exactly as the official TimeSformer /
    PySlowFast PyAV test loader chooses it (steps 1–3 of the module docstring). Raises :class:`DecodeError`
    (one line) for a file without a video stream or without a decodable frame."""
    path = str(path)
    _check_file(path)
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} outside [0, {num_clips})")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise DecodeError(path, "no video stream in the file")
            st = container.streams.video[0]
            rate = st.average_rate or st.guessed_rate
            fps = float(rate) if rate else 30.0
            frames_length = int(st.frames or 0)
            duration, time_base = st.duration, st.time_base
            clip_size = official_clip_size(num_frames, sampling_rate, fps, target_fps)
            whole = duration is None or frames_length <= 0
            if whole:
                start_pts, end_pts = 0, math.inf
                clip_args = (clip_index, num_clips)
            else:
                start_idx, end_idx = official_start_end(frames_length, clip_size, clip_index, num_clips)
                timebase = duration / frames_length
                start_pts, end_pts = int(start_idx * timebase), int(end_idx * timebase)
                clip_args = (0, 1)
            # The positions in the window are known before decoding unless the start depends on the
            # window's length (whole video, clip > 0): keep only those frames (and the last, for clamping).
            guess: set[int] = set()
            if clip_args[0] == 0:
                s, e = official_start_end(0, clip_size, 0, 1)
                guess = set(torch.clamp(torch.linspace(s, e, num_frames, dtype=torch.float32), min=0).long().tolist())
            order, kept = _window_frames(container, path, start_pts, end_pts, guess, set())
        if not order:
            raise DecodeError(path, "no decodable frame in the video stream"
                              + ("" if whole else f" at or after pts {start_pts}"))
        sorted_pts = sorted(set(order))
        n = len(sorted_pts)
        s, e = official_start_end(n, clip_size, *clip_args)
        positions = official_positions(s, e, num_frames, n)
        wanted = [sorted_pts[int(p)] for p in positions]
        last_seen = {p: i for i, p in enumerate(order)}
        if not all(w in kept and kept[w][0] == last_seen[w] for w in wanted):
            # out-of-order or repeated timestamps, or a whole video: decode again keeping exactly these
            with av.open(path) as container:
                _, kept = _window_frames(container, path, start_pts, end_pts, set(), set(wanted))
        rgb: dict[int, np.ndarray] = {}
        for w in wanted:
            if w not in rgb:
                rgb[w] = kept[w][1].to_rgb().to_ndarray()
        frames = torch.from_numpy(np.stack([rgb[w] for w in wanted]))
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes one line naming the file
        raise DecodeError(path, f"not a readable video: {describe_error(exc)}") from None
    return OfficialClip(frames=frames, pts=[int(w) for w in wanted], positions=positions,
                        window_pts=(start_pts, end_pts), num_window_frames=n, whole_video=whole, fps=fps,
                        time_base=time_base)


def official_views(frames: torch.Tensor, crop_size: int, offsets: Callable[[int], Sequence[int]],
                   mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Step 4 of the module docstring: uint8 (T, H, W, 3) frames -> float (num_crops, 3, T, crop, crop).

    ``offsets(long_side)`` gives the crop offsets along the long side (0 / centre / long - crop)."""
    size = int(crop_size)
    x = frames.float() / 255.0
    x = x - torch.tensor(list(mean))
    x = x / torch.tensor(list(std))
    x = x.permute(3, 0, 1, 2)  # (C, T, H, W)
    height, width = x.shape[2], x.shape[3]
    if not ((width <= height and width == size) or (height <= width and height == size)):
        x = F.interpolate(x, size=official_short_side_hw(height, width, size), mode="bilinear",
                          align_corners=False)
        height, width = x.shape[2], x.shape[3]
    y0 = math.ceil((height - size) / 2)
    x0 = math.ceil((width - size) / 2)
    if height > width:  # portrait: top / centre / bottom
        views = [x[:, :, o:o + size, x0:x0 + size] for o in offsets(height)]
    else:
        views = [x[:, :, y0:y0 + size, o:o + size] for o in offsets(width)]
    return torch.stack(views)
