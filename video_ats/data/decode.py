"""Video decoding and temporal sampling.

decord is the primary backend: it is asked for exactly the frame indices a clip needs (``get_batch``)
and resizes while decoding when a target size is given. PyAV is the fallback for files decord cannot
open or read (e.g. an mp4 cut short after its index: PyAV decodes the frames that are there), and it
decodes MPEG program and transport streams (.mpg, .ts), in which decord returns wrong frames silently.

Frame-index conventions (PySlowFast-style, see ``docs/data.md``):

* a clip of ``num_frames`` frames at ``sampling_rate`` spans ``num_frames * sampling_rate`` frames
  at ``target_fps``; in a video at ``fps`` that is ``num_frames * sampling_rate * fps / target_fps``
  frames, and consecutive sampled frames are ``sampling_rate * fps / target_fps`` frames apart;
* training takes a uniformly random start; testing splits the video into ``num_clips`` uniform
  temporal clips (``clip_position="start"``: clip i starts at ``delta * i / num_clips`` — clip 0 of
  one starts at frame 0 as in PySlowFast/TimeSformer/X-ViT; ``"center"``: clip i is centred in the
  i-th of ``num_clips`` equal segments — one clip is the centre clip, as in MMAction2);
* indices past the end are clamped to the last decodable frame (short videos repeat their last frame).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..choices import FRAME_SPACINGS

logger = logging.getLogger("video_ats.data")

try:  # decord is optional (no wheels on some platforms); PyAV is always there.
    import decord

    decord.bridge.set_bridge("native")
    _HAVE_DECORD = True
except Exception:  # pragma: no cover - depends on the platform
    decord = None
    _HAVE_DECORD = False

import av

SizeArg = Union[None, int, Tuple[int, int]]

# Containers decord seeks wrongly in: MPEG program and transport streams (.mpg/.vob, .ts/.m2ts/.mts)
# have no frame index (their frame count is a guess from the bitrate until the packets are counted),
# and decord's get_batch returns frames from the wrong place without an error (decord 0.6: MPEG-2 in
# .mpg gave frame ~15 for frame 29, in .ts every frame was off; the same stream in .mp4/.mkv was
# exact). PyAV decodes them in order, which is exact.
DECORD_UNSEEKABLE = ("mpeg", "mpegts", "mpegvideo", "vob")

# decord reaches a frame by seeking to the keyframe before it and counting decoded frames from there. In
# streams where frames decoded after a keyframe are shown before it (open GOPs: x264/x265 --open-gop,
# MPEG-4 part 2 with B-frames) or where every packet of an inter-coded stream claims to be a keyframe (H.263
# in AVI), that count is off and decord returns another frame than the one asked for, without an error
# (decord 0.6: asked for 70 of an open-GOP H.264 file, got 72). The first packets are read (demuxed, not
# decoded) to find such streams, which then go to PyAV; a hazard shows within the first few keyframes.
SEEK_SCAN_KEYFRAMES = 4
SEEK_SCAN_PACKETS = 2000

# Guard against pathological containers: a file claiming more pixels per frame than this is decoded
# at a reduced size only (the caller always asks for a target size on the data paths).
MAX_NATIVE_PIXELS = 8192 * 8192


class DecodeError(RuntimeError):
    """A video that cannot be decoded; the message is one line naming the file and the reason."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # force one line
        super().__init__(f"{self.path}: {self.reason}")


@dataclass
class VideoInfo:
    """What the decoder knows about a file before decoding frames."""

    num_frames: int
    fps: float
    width: int
    height: int
    container: str = ""      # FFmpeg's name of the container format ("mov,mp4,...", "matroska,webm", "mpegts")
    seek_hazard: str = ""    # why decord's frame-exact seeking cannot be trusted in this file ("" = it can)
    rotation: int = 0        # display rotation, counter-clockwise degrees (0/90/180/270); width/height are as displayed


# ----------------------------------------------------------------------------------------------
# Temporal sampling
# ----------------------------------------------------------------------------------------------


def clip_stride(sampling_rate: float, fps: Optional[float], target_fps: Optional[float]) -> float:
    """Distance in video frames between two sampled frames."""
    if not fps or not target_fps or fps <= 0 or target_fps <= 0:
        return float(sampling_rate)
    return float(sampling_rate) * float(fps) / float(target_fps)


def sample_clip_indices(
    num_video_frames: int,
    num_frames: int,
    sampling_rate: float,
    fps: Optional[float] = None,
    target_fps: Optional[float] = 30,
    clip_index: int = -1,
    num_clips: int = 1,
    clip_position: str = "start",
    window: Optional[Tuple[int, int]] = None,
    rng: Optional[np.random.Generator] = None,
    spacing: str = "pyslowfast",
) -> np.ndarray:
    """Frame indices (int64, length ``num_frames``) of one clip.

    ``clip_index=-1`` draws a random start (training, uses ``rng``); ``0 <= clip_index < num_clips``
    picks the i-th of ``num_clips`` uniform test clips (see module docstring for ``clip_position``).
    ``window=(first, end)`` restricts sampling to frames ``first <= i < end`` (time-based CSV rows on
    untrimmed files). The result is clamped to ``[first, end - 1]``: a video shorter than the clip
    repeats its last frame.

    ``spacing``: ``"pyslowfast"`` (default; what the official TimeSformer/X-ViT checkpoints were trained
    and tested with) spreads the ``num_frames`` indices evenly over the clip's window,
    ``linspace(start, start + span - 1)`` truncated to integers (8×32 at 30 fps: 0, 36, 72, …, 255);
    ``"stride"`` takes every ``step``-th frame exactly (0, 32, …, 224).
    """
    if spacing not in FRAME_SPACINGS:
        raise ValueError(f"spacing must be 'pyslowfast' or 'stride', got {spacing!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    first, end = (0, int(num_video_frames)) if window is None else (int(window[0]), int(window[1]))
    first = max(0, min(first, max(int(num_video_frames) - 1, 0)))
    end = max(first + 1, min(end, int(num_video_frames))) if num_video_frames > 0 else first + 1
    length = end - first
    step = clip_stride(sampling_rate, fps, target_fps)
    span = step * num_frames  # frames covered by the clip
    delta = max(length - span, 0.0)
    if clip_index < 0:
        rng = rng if rng is not None else np.random.default_rng()
        start = rng.uniform(0.0, delta) if delta > 0 else 0.0
    else:
        if not 0 <= clip_index < num_clips:
            raise ValueError(f"clip_index {clip_index} outside [0, {num_clips})")
        if clip_position == "start":
            start = delta * clip_index / num_clips
        elif clip_position == "center":
            start = delta * (2 * clip_index + 1) / (2 * num_clips)
        else:
            raise ValueError(f"clip_position must be 'start' or 'center', got {clip_position!r}")
    if spacing == "pyslowfast":
        # a clip shorter than one frame (span < 1: a low-fps video at a small rate) must not run backwards
        idx = np.linspace(start, start + max(span - 1, 0.0), num_frames).astype(np.int64) + first
    else:
        idx = np.floor(start + step * np.arange(num_frames) + 1e-6).astype(np.int64) + first
    return np.clip(idx, first, end - 1)


# ----------------------------------------------------------------------------------------------
# Size handling
# ----------------------------------------------------------------------------------------------


def target_hw(height: int, width: int, size: SizeArg) -> Tuple[int, int]:
    """Output (H, W) for ``size``: None = native, int = short side, (H, W) = exact."""
    if size is None:
        return int(height), int(width)
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    s = int(size)
    # the long side is floored, as PySlowFast's short-side scaling does
    if height <= width:
        return s, max(s, int(math.floor(width * s / height)))
    return max(s, int(math.floor(height * s / width))), s


def describe_error(exc: BaseException) -> str:
    """A short, readable reason for a decoder exception: FFmpeg's text without the raw errno
    ("[Errno 1094995529] Invalid data found when processing input: 'x.mp4'" -> "invalid data found when
    processing input (corrupt, truncated or not a video file)")."""
    if isinstance(exc, av.error.FFmpegError):
        text = (exc.strerror or "").strip() or type(exc).__name__
        text = text[0].lower() + text[1:]
        if isinstance(exc, av.error.InvalidDataError):
            text += " (corrupt, truncated or not a video file)"
        return text
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise DecodeError(path, "file not found")
    if os.path.isdir(path):
        raise DecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise DecodeError(path, "empty file (0 bytes); re-download or remove it from the list")


# ----------------------------------------------------------------------------------------------
# PyAV
# ----------------------------------------------------------------------------------------------


def video_stream(container):
    """The container's main video stream, chosen as FFmpeg chooses it: attached cover pictures and
    thumbnail tracks are skipped, whatever their order. None when there is no video. (decord's older FFmpeg
    may choose another of several video streams: such files are decoded with PyAV, see :func:`scan_stream`.)"""
    return container.streams.best("video") if container.streams.video else None


def _probe_pyav(path: str, check_seeking: bool = False) -> VideoInfo:
    """The container header's view of the main video stream; ``check_seeking`` also reads the first packets
    for what makes decord's seeks inexact (:func:`scan_stream`)."""
    try:
        with av.open(path) as container:
            st = video_stream(container)
            if st is None:
                raise DecodeError(path, "no video stream in the file")
            fps = float(st.average_rate or st.guessed_rate or 0) or 30.0
            n = int(st.frames or 0)
            if n <= 0:
                dur = stream_duration(container, st)
                n = int(round(dur * fps)) if dur else 0
            w, h = int(st.codec_context.width), int(st.codec_context.height)
            rotation = display_rotation(path, container, st)
            if rotation and rotation % 180:
                w, h = h, w
            hazard = ""
            if check_seeking:
                scan = scan_stream(container, st, rotation, to_end=not st.frames)
                hazard = scan.hazard
                if st.frames and scan.hidden:      # the header counts the edit list's hidden frames too
                    n = max(1, n - scan.hidden)
                elif not st.frames and scan.packets:   # no count in the header (Matroska): the packets are one
                    n = max(1, scan.packets - scan.hidden)
            return VideoInfo(num_frames=n, fps=fps, width=w, height=h, container=container.format.name,
                             seek_hazard=hazard, rotation=rotation or 0)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(path, f"not a readable video: {describe_error(exc)}") from None


def stream_duration(container, st) -> Optional[float]:
    """Seconds of the video stream from the header (None when it gives none)."""
    if "matroska" in container.format.name.split(","):
        # Matroska has no stream duration (FFmpeg may estimate one from the other streams); the container's is
        # the longest stream's (10 s of audio over 3 s of video) and, like the DURATION tag FFmpeg's muxer
        # writes per track, the time of the end rather than the length (a file whose timestamps start 5 s in
        # would count 5 s of frames that are not there)
        end = _tag_seconds(st.metadata.get("DURATION") or st.metadata.get("duration"))
        start = float(st.start_time * st.time_base) if st.start_time is not None and st.time_base else 0.0
        if end is None:
            end, start = (container.duration / 1e6 if container.duration else None), (container.start_time or 0) / 1e6
        dur = end - max(start, 0.0) if end is not None else None
    elif st.duration is not None and st.time_base is not None:
        dur = float(st.duration * st.time_base)
    else:
        dur = container.duration / 1e6 if container.duration else None
    return dur if dur and dur > 0 else None


def _tag_seconds(text: Optional[str]) -> Optional[float]:
    """``"00:00:03.040000000"`` -> 3.04; None when absent or not that form."""
    try:
        h, m, sec = str(text).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, TypeError):
        return None


def display_rotation(path: str, container, st) -> Optional[int]:
    """The rotation a player applies to ``st`` (counter-clockwise degrees: 0, 90, 180, 270), read from the MP4/MOV
    header, where phones put it; None for a matrix that mirrors the picture (not applied: decord would turn it
    upside down). Other containers: 0 (their rotation, rare, is not applied on any path)."""
    if {"mov", "mp4"} & set(container.format.name.split(",")):
        return _mp4_rotation(path, st.id)
    return 0


def upright_turns(degrees: float) -> int:
    """Counter-clockwise quarter turns (0-3) that make a frame upright for a display rotation in degrees (as
    FFmpeg/PyAV report it, counter-clockwise); rotations that are not a multiple of 90° are not applied."""
    turns = round(degrees / 90.0)
    return turns % 4 if abs(degrees - 90.0 * turns) < 1.0 else 0


def _mp4_rotation(path: str, track_id: int) -> Optional[int]:
    """The display rotation of track ``track_id`` of an MP4/MOV file, from its ``tkhd`` matrix (phones record
    portrait video as landscape frames plus this matrix), in counter-clockwise degrees: 0, 90, 180 or 270;
    None when the matrix mirrors. Read from the header boxes without decoding (PyAV shows the rotation only on
    decoded frames)."""
    import struct

    def boxes(buf: bytes, start: int, end: int):
        i = start
        while i + 8 <= end:
            size, kind = struct.unpack_from(">I4s", buf, i)
            head = 8
            if size == 1 and i + 16 <= end:
                size, head = struct.unpack_from(">Q", buf, i + 8)[0], 16
            elif size == 0:
                size = end - i
            if size < head or i + size > end:
                return
            yield kind, i + head, i + size
            i += size

    try:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + 8 <= total:                    # top-level boxes: seek past mdat to moov
                f.seek(pos)
                head = f.read(16)
                size, kind = struct.unpack_from(">I4s", head, 0)
                if size == 1:
                    size = struct.unpack_from(">Q", head, 8)[0]
                elif size == 0:
                    size = total - pos
                if size < 8:
                    return 0
                if kind == b"moov":
                    if size > (256 << 20):
                        return 0
                    f.seek(pos)
                    moov = f.read(size)
                    for kind1, s1, e1 in boxes(moov, 8, len(moov)):
                        if kind1 != b"trak":
                            continue
                        for kind2, s2, e2 in boxes(moov, s1, e1):
                            if kind2 != b"tkhd" or e2 - s2 < 84:
                                continue
                            long_times = moov[s2] == 1           # version 1: 64-bit times and duration
                            at = s2 + (20 if long_times else 12)
                            if struct.unpack_from(">I", moov, at)[0] != track_id:
                                break
                            at += 4 + 4 + (8 if long_times else 4) + 8 + 8
                            a, b, _, c, d = struct.unpack_from(">iiiii", moov, at)
                            if a * d - b * c < 0:
                                return None                      # a mirror, maybe with a turn
                            if a == b == 0:
                                return 0
                            return 90 * upright_turns(-math.degrees(math.atan2(b, a)))
                    return 0
                pos += size
    except (OSError, struct.error):
        pass
    return 0


@dataclass
class StreamScan:
    """What the first packets of a video stream say (:func:`scan_stream`)."""
    hazard: str = ""                 # why decord's seeks cannot be trusted here ("" = they can)
    hidden: int = 0                  # leading frames an edit list hides (a stream-copy cut between keyframes)
    packets: Optional[int] = None    # the stream's packets (= frames), when the scan reached the end of the file


def scan_stream(container, st, rotation: Optional[int] = 0, to_end: bool = False) -> StreamScan:
    """Why decord could return other frames than the ones asked for in this file (see ``SEEK_SCAN_KEYFRAMES``;
    such files are decoded with PyAV), and how many leading frames an edit list hides: the header counts them,
    players and PyAV do not show them. Reads packets without decoding them: the first few keyframes' worth, or
    with ``to_end`` up to ``SEEK_SCAN_PACKETS`` to count them (for containers whose header has no frame
    count). ``rotation`` from :func:`display_rotation`."""
    if rotation is None:
        return StreamScan("mirrored display matrix (not applied)")
    if rotation:        # decord applies it inconsistently (4-channel frames at the native size in decord 0.6)
        return StreamScan(f"rotated video ({rotation}°)")
    if _index_less(container.format.name):
        return StreamScan(f"decord seeks inexactly in {container.format.name!r} streams")
    videos = [v for v in container.streams.video if not v.disposition & av.stream.Disposition.attached_pic]
    if len(videos) > 1:
        return StreamScan(f"{len(videos)} video streams (decord may read another one than the main stream)")
    packets = keys = hidden = 0
    key_pts = None
    hazard = ""
    ended = False
    try:
        for packet in container.demux(st):
            if not packet.size:
                continue
            packets += 1
            if getattr(packet, "is_discard", False):     # (an older PyAV without the flag: no cut found)
                hidden += 1
            if packet.is_keyframe:
                keys += 1
                if keys > SEEK_SCAN_KEYFRAMES and not to_end:
                    break
                if keys <= SEEK_SCAN_KEYFRAMES:
                    key_pts = packet.pts
            elif (key_pts is not None and packet.pts is not None and packet.pts < key_pts and not hazard
                  and keys <= SEEK_SCAN_KEYFRAMES):
                hazard = "open GOP (frames decoded after a keyframe are shown before it)"
            if packets >= SEEK_SCAN_PACKETS:
                break
        else:
            ended = True
    except (av.error.FFmpegError, OSError):
        pass                                 # damaged further on: decoding will tell
    if hidden:          # decord counts and seeks as if they were shown: frame 30 of such a file came out as 20
        hazard = f"an edit list hides the first {hidden} frames (a stream-copy cut)"
    elif (not hazard and keys == packets > 2 and not getattr(st.codec_context.codec, "intra_only", False)
          and "avi" in container.format.name.split(",")):
        # AVI indexes may flag every packet (H.263); elsewhere the flags come from the encoder and an all-key
        # stream is all-intra (H.264 keyint=1), which decord seeks in exactly
        hazard = "every packet of an inter-coded stream in an AVI is marked as a keyframe"
    return StreamScan(hazard, hidden, packets if ended else None)


def _decode_pyav(path: str, indices: np.ndarray, size: SizeArg, turns: int = 0) -> torch.Tensor:
    """Decode ``indices`` (frame numbers in decode order) with PyAV, turned ``turns`` quarter turns
    counter-clockwise (the header's display rotation); clamps to the frames that exist."""
    wanted = np.asarray(indices, dtype=np.int64)
    last_needed = int(wanted.max()) if wanted.size else 0
    needed = set(int(i) for i in wanted)
    frames = {}
    last = None  # (index, av.VideoFrame) of the last decoded frame, for clamping
    out_hw = None
    try:
        with av.open(path) as container:
            st = video_stream(container)
            if st is None:
                raise DecodeError(path, "no video stream in the file")
            st.thread_type = "AUTO"
            i = -1
            try:
                for frame in container.decode(st):
                    i += 1
                    if out_hw is None:       # upright frames, as players show them
                        shown = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
                        out_hw = target_hw(*shown, size)
                    if i in needed:
                        frames[i] = _upright_rgb(frame, out_hw, turns)
                    last = (i, frame)
                    if i >= last_needed:
                        break
            except (av.error.InvalidDataError, av.error.EOFError, OSError) as exc:
                # a truncated or damaged file: keep the frames decoded so far
                if last is None:
                    raise DecodeError(path, f"no decodable frame: {describe_error(exc)}") from None
            if last is None:
                raise DecodeError(path, "no decodable frame in the video stream")
            if last[0] not in frames:  # the clip runs past the end: its tail repeats the last frame
                frames[last[0]] = _upright_rgb(last[1], out_hw, turns)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(path, f"not a readable video: {describe_error(exc)}") from None
    if not frames:
        raise DecodeError(path, "no decodable frame in the video stream")
    have = np.array(sorted(frames))
    # clamp every wanted index to the last frame at or before it (frames past the end -> last frame)
    pos = np.searchsorted(have, wanted, side="right") - 1
    pos = np.clip(pos, 0, len(have) - 1)
    stacked = np.stack([frames[int(k)] for k in have])
    return torch.from_numpy(stacked[pos])


def _upright_rgb(frame, out_hw: Tuple[int, int], turns: int) -> np.ndarray:
    """An RGB (H, W, 3) array of ``frame`` scaled to ``out_hw`` (as displayed) and turned ``turns`` quarter
    turns counter-clockwise."""
    h, w = (out_hw[1], out_hw[0]) if turns % 2 else out_hw
    rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _index_less(container: str) -> bool:
    """A stream container without a frame index (MPEG-PS/TS; FFmpeg's format name, e.g. "mpegts"): frame
    counts and seeks are estimates."""
    return bool(set(container.split(",")) & set(DECORD_UNSEEKABLE))


def _pyav_num_packets(path: str) -> int:
    """Video packets in the file (one frame each once parsed): read without decoding, so cheap."""
    try:
        with av.open(path) as container:
            return sum(1 for packet in container.demux(video_stream(container)) if packet.size)
    except Exception:
        return 0


def _pyav_num_decodable(path: str) -> int:
    n = 0
    try:
        with av.open(path) as container:
            st = video_stream(container)
            try:
                for _ in container.decode(st):
                    n += 1
            except (av.error.InvalidDataError, av.error.EOFError, OSError):
                pass
    except Exception:
        return n
    return n


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


class VideoReader:
    """One opened video: decord when it can read the file (and seeks exactly in its container), PyAV
    otherwise; ``backend`` says which.

    ``size`` (None / short side / (H, W)) is applied while decoding. ``info`` holds the frame count
    (what the decoder reports as decodable), the average frame rate and the *native* size.
    """

    def __init__(self, path: str, size: SizeArg = None, num_threads: int = 1):
        self.path = str(path)
        _check_file(self.path)
        self.size = size
        self._vr = None
        self.backend = "pyav"
        self._decord_error = None
        native = probe = None
        if _HAVE_DECORD:
            probe = _probe_pyav(self.path, check_seeking=True)   # the header: native size, format, seeking
            if probe.seek_hazard:
                self._decord_error = probe.seek_hazard
            else:
                try:
                    native = self._open_decord(probe, num_threads)
                    self.backend = "decord"
                except Exception as exc:  # decord cannot open it: try PyAV
                    self._decord_error = f"{type(exc).__name__}: {exc}"
                    self._vr = None
        if self._vr is None:
            info = probe if probe is not None else _probe_pyav(self.path, check_seeking=True)   # the count too
            if _index_less(info.container):     # the header's frame count is a guess from the bitrate: count packets
                info.num_frames = _pyav_num_packets(self.path)
            if info.num_frames <= 0:
                info.num_frames = _pyav_num_decodable(self.path)
            if info.num_frames <= 0:
                raise DecodeError(self.path, "no decodable frame in the video stream")
            self.info = info
            logger.debug("%s: decord could not open it (%s); using PyAV", self.path, self._decord_error)
        else:
            self.info = native

    def _open_decord(self, probe: VideoInfo, num_threads: int) -> VideoInfo:
        # decord needs the output size at construction; the native size comes from the container
        # header (cheap) so the frame data is scaled once, inside the decoder.
        h, w = target_hw(probe.height, probe.width, self.size) if self.size is not None else (-1, -1)
        self._vr = decord.VideoReader(
            self.path, ctx=decord.cpu(0), width=w, height=h, num_threads=num_threads
        )
        n = len(self._vr)
        if n <= 0:
            raise RuntimeError("decord reports 0 frames")
        fps = float(self._vr.get_avg_fps() or 0) or probe.fps
        return VideoInfo(num_frames=n, fps=fps, width=probe.width, height=probe.height, container=probe.container)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 tensor (T, H, W, 3) of the given frame indices (clamped to the decodable range)."""
        idx = np.clip(np.asarray(indices, dtype=np.int64), 0, max(self.info.num_frames - 1, 0))
        if self._vr is not None:
            uniq, inverse = np.unique(idx, return_inverse=True)
            try:
                batch = self._vr.get_batch(uniq.tolist()).asnumpy()
                self._vr.seek(0)  # releases decoder buffers (memory growth across calls otherwise)
                return torch.from_numpy(batch[inverse.reshape(-1)])
            except Exception as exc:  # e.g. over-reported frame count or a damaged packet
                self._decord_error = f"{type(exc).__name__}: {exc}"
                logger.debug("%s: decord get_batch failed (%s); using PyAV", self.path, exc)
                self._vr = None
                self.backend = "pyav"
        return _decode_pyav(self.path, idx, self.size, self.info.rotation // 90)

    def close(self) -> None:
        self._vr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MemoryVideo:
    """A whole video decoded once, at native size, kept in memory: the :class:`VideoReader` interface
    (``info``, ``get_frames``, context manager) with ``size`` applied by resizing the picked frames
    (bilinear, antialiased), so clips of a small dataset can be drawn every epoch without decoding."""

    def __init__(self, frames: torch.Tensor, fps: float, size: SizeArg = None):
        self.frames, self.size = frames, size
        n, h, w, _ = frames.shape
        self.info = VideoInfo(num_frames=n, fps=fps, width=w, height=h)

    @classmethod
    def decode(cls, path: str) -> "MemoryVideo":
        with VideoReader(path) as r:
            return cls(r.get_frames(range(r.info.num_frames)), r.info.fps)

    def resized(self, size: SizeArg) -> "MemoryVideo":
        return MemoryVideo(self.frames, self.info.fps, size)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        idx = torch.as_tensor(np.clip(np.asarray(indices, dtype=np.int64), 0, self.info.num_frames - 1))
        frames = self.frames.index_select(0, idx)
        if self.size is None:
            return frames
        h, w = target_hw(self.info.height, self.info.width, self.size)
        if (h, w) == (self.info.height, self.info.width):
            return frames
        from torchvision.transforms.v2 import functional as TF

        return TF.resize(frames.permute(0, 3, 1, 2), [h, w], antialias=True).permute(0, 2, 3, 1).contiguous()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def preload_videos(paths: Sequence[str], workers: int = 2) -> Dict[str, MemoryVideo]:
    """Decode every video of ``paths`` once (threads); videos that fail are left out (the dataset then
    reports them when it meets them, as for any broken file)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path):
        try:
            return path, MemoryVideo.decode(path)
        except (DecodeError, OSError):
            return path, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return {p: v for p, v in pool.map(one, sorted(set(paths))) if v is not None}


def probe_video(path: str) -> VideoInfo:
    """Frame count, average fps and native size of a video (raises :class:`DecodeError`)."""
    with VideoReader(path) as r:
        return r.info


def decode_frames(path: str, indices: Sequence[int], size: SizeArg = None) -> torch.Tensor:
    """Decode the given frame indices of ``path`` as a uint8 tensor (T, H, W, 3).

    ``size``: None (native), an int (short side, aspect kept) or (H, W). Indices past the end are
    clamped to the last decodable frame. decord first; PyAV if decord cannot open or read the file.
    Raises :class:`DecodeError` with a one-line reason when neither can.
    """
    try:
        with VideoReader(path, size=size) as r:
            return r.get_frames(indices)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(path, describe_error(exc)) from None
