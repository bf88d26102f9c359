"""Training and multi-view test datasets over :class:`VideoRecord` lists.

Both decode only the frame indices a clip needs (decord ``get_batch``, PyAV fallback) and scale
while decoding; crops, flips and normalisation are ``torchvision.transforms.v2.functional`` ops on
the (T, C, H, W) video tensor. Output clips are (C, T, H, W) float tensors.
"""
from __future__ import annotations

import logging
import math
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from ..choices import CLIP_POSITIONS, FRAME_SPACINGS, RESIZE_MODES
from ..errors import UserError
from .annotations import VideoRecord
from .decode import DecodeError, MemoryVideo, VideoReader, sample_clip_indices
from .official import decode_official_clip, official_views

logger = logging.getLogger("video_ats.data")

# paths already reported by this process (a bad file is logged once, not once per epoch)
_REPORTED: set = set()
_REPORTED_LOCK = threading.Lock()


def _report_once(path: str, reason: str, what: str, report_file: Optional[str] = None) -> None:
    """Warn about a bad video once. ``report_file`` (a run's ``bad_videos.txt``) extends "once" over
    processes — DataLoader workers are new processes every epoch — and over resumes of that run."""
    with _REPORTED_LOCK:
        if path in _REPORTED:
            return
        _REPORTED.add(path)
    if report_file is not None and not _first_in_file(report_file, path, reason):
        return
    logger.warning("%s: %s (%s)", path, reason, what)


def _first_in_file(report_file: str, path: str, reason: str) -> bool:
    """Append ``path`` to ``report_file`` unless it is listed there already (under an flock, so
    concurrent workers agree); True when it was new. A file that cannot be used counts as new."""
    import fcntl

    try:
        with open(report_file, "a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.seek(0)
            known = {line.split("\t", 1)[0] for line in f.read().splitlines()}
            if path in known:
                return False
            f.write(f"{path}\t{reason}\n")
            f.flush()
        return True
    except OSError:
        return True


def _window(record: VideoRecord, fps: float) -> Optional[Tuple[int, int]]:
    if record.time_start is None or record.time_end is None:
        return None
    return int(math.floor(record.time_start * fps)), int(math.ceil(record.time_end * fps))


def _to_model_input(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (..., T, C, H, W), or float already in [0, 1] -> normalised float (..., C, T, H, W)."""
    x = TF.to_dtype(frames, torch.float32, scale=True)
    x = TF.normalize(x, mean=list(mean), std=list(std))
    return x.transpose(-4, -3)


class TrainDataset(Dataset):
    """Random clip, short-side scale jitter, random crop, horizontal flip, normalisation.

    Item: ``(video float tensor (3, num_frames, crop_size, crop_size), label int)``.

    Short side scaled to a random integer in ``scale_range`` (inclusive) while decoding, then a
    random ``crop_size`` square. A file that cannot be decoded is logged once (logger
    ``video_ats.data``) and replaced by another random sample, up to ``max_retries`` times; only if
    all of them fail does the item raise (a :class:`UserError` saying the data is probably wrong).

    Randomness is a function of ``(seed, epoch, index, attempt)``; call :meth:`set_epoch` at each
    epoch for runs that reproduce exactly. Without it, torch's per-worker seed (new every epoch with
    DataLoader workers) and a per-process call counter vary the draws between epochs.
    ``transform``: optional extra augmentation applied to the uint8 (T, C, H, W) clip after crop and
    flip (e.g. ``torchvision.transforms.v2.RandAugment()``).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        num_frames: int,
        sampling_rate: int,
        crop_size: int = 224,
        scale_range: Tuple[int, int] = (256, 320),
        mean: Sequence[float] = (0.45,) * 3,
        std: Sequence[float] = (0.225,) * 3,
        flip: bool = True,
        target_fps: Optional[float] = 30,
        max_retries: int = 10,
        seed: int = 0,
        transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        frame_spacing: str = "pyslowfast",
        preloaded: Optional[Dict[str, MemoryVideo]] = None,
    ):
        if not records:
            raise UserError("TrainDataset: no records (empty annotation file?)")
        lo, hi = int(scale_range[0]), int(scale_range[1])
        if lo > hi:
            raise UserError(f"scale_range must be (min, max), got {scale_range}")
        if lo < crop_size:
            raise UserError(f"scale_range {scale_range} must not go below crop_size {crop_size}")
        self.records = list(records)
        self.num_frames = int(num_frames)
        self.sampling_rate = sampling_rate
        self.crop_size = int(crop_size)
        self.scale_range = (lo, hi)
        self.mean, self.std = tuple(mean), tuple(std)
        self.flip = flip
        self.target_fps = target_fps
        self.max_retries = int(max_retries)
        self.seed = int(seed)
        self.transform = transform
        self.frame_spacing = _check_spacing(frame_spacing)
        self.epoch: Optional[int] = None
        self._calls = 0
        self.num_failures = 0  # failed decodes seen by this process
        # path -> whole video decoded once (see video_ats.data.preload_videos); clips are then drawn
        # from memory and scaled with an antialiased bilinear resize instead of inside the decoder
        self.preloaded = preloaded or {}
        self.report_file: Optional[str] = None  # set by the engine: bad videos warned once per run

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int) -> np.random.Generator:
        if self.epoch is not None:
            key = [self.seed, self.epoch, index]
        else:
            self._calls += 1
            key = [self.seed, torch.initial_seed() % (2**63), self._calls, index]
        return np.random.default_rng(key)

    def load(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        """One augmented clip (3, T, crop, crop) of ``record``; raises :class:`DecodeError`."""
        short = int(rng.integers(self.scale_range[0], self.scale_range[1] + 1))
        memory = self.preloaded.get(record.path)
        with (memory.resized(short) if memory is not None else VideoReader(record.path, size=short)) as reader:
            info = reader.info
            idx = sample_clip_indices(info.num_frames, self.num_frames, self.sampling_rate,
                                      fps=info.fps, target_fps=self.target_fps, clip_index=-1,
                                      window=_window(record, info.fps), rng=rng,
                                      spacing=self.frame_spacing)
            frames = reader.get_frames(idx)  # (T, H, W, 3) uint8
        frames = frames.permute(0, 3, 1, 2)  # (T, 3, H, W)
        H, W = frames.shape[-2:]
        c = self.crop_size
        if H < c or W < c:  # a decoder that ignored the size request; scale up
            frames = TF.resize(frames, [max(c, H), max(c, W)], antialias=True)
            H, W = frames.shape[-2:]
        top = int(rng.integers(0, H - c + 1))
        left = int(rng.integers(0, W - c + 1))
        frames = TF.crop(frames, top, left, c, c)
        if self.flip and rng.random() < 0.5:
            frames = TF.horizontal_flip(frames)
        if self.transform is not None:
            frames = self.transform(frames)
        return _to_model_input(frames, self.mean, self.std)

    def __getitem__(self, index: int):
        rng = self._rng(index)
        tried = []
        for attempt in range(self.max_retries + 1):
            record = self.records[index]
            try:
                return self.load(record, rng), int(record.label)
            except DecodeError as exc:
                self.num_failures += 1
                _report_once(record.path, exc.reason, "training: replaced by another sample", self.report_file)
                tried.append(record.path)
                index = int(rng.integers(0, len(self.records)))
        raise UserError(f"{len(tried)} videos in a row could not be decoded (last: {tried[-1]}); "
                        f"check the data root and the annotation file")


class MultiViewDataset(Dataset):
    """Test views: ``num_clips`` uniform temporal clips x ``num_crops`` spatial crops per video.

    One item per (video, temporal clip); the clip is decoded once, with the short side scaled to
    ``crop_size`` while decoding, and all its spatial crops are cut from it: left/centre/right for
    landscape frames, top/centre/bottom for portrait ones (offsets 0, centre, L - crop as in
    PySlowFast; ``num_crops=1`` is the centre crop). Item::

        {"video": float (num_crops, 3, T, crop, crop) or None, "label": int, "video_index": int,
         "clip_index": int, "path": str, "error": None or "<one-line reason>"}

    ``clip_position``: ``"start"`` (default; PySlowFast/TimeSformer/X-ViT: a single test clip
    starts at frame 0, clip i at ``delta * i / num_clips``) or ``"center"`` (MMAction2: clip i is
    centred in the i-th of ``num_clips`` equal segments, a single clip is the centre clip).

    ``resize``: ``"decoder"`` (default, fast): frames by decode-order index (:func:`sample_clip_indices`),
    scaled while decoding. ``"pyslowfast"``: the official TimeSformer/PySlowFast test views — frames
    chosen by presentation timestamp and float32 indices (with ``clip_position="start"``,
    ``frame_spacing="pyslowfast"`` and no CSV time window; otherwise decode-order indices), full-size
    decode, the official normalisation, short-side size rule, bilinear scaling and crops
    (:mod:`video_ats.data.official`; ``docs/data.md`` says where the two differ).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        num_frames: int,
        sampling_rate: int,
        crop_size: int = 224,
        num_clips: int = 1,
        num_crops: int = 3,
        mean: Sequence[float] = (0.45,) * 3,
        std: Sequence[float] = (0.225,) * 3,
        clip_position: str = "start",
        target_fps: Optional[float] = 30,
        frame_spacing: str = "pyslowfast",
        resize: str = "decoder",
    ):
        if clip_position not in CLIP_POSITIONS:
            raise UserError(f"clip_position must be 'start' or 'center', got {clip_position!r}")
        if num_clips < 1 or num_crops < 1:
            raise UserError(f"num_clips and num_crops must be >= 1, got {num_clips}, {num_crops}")
        self.records = list(records)
        self.num_frames = int(num_frames)
        self.sampling_rate = sampling_rate
        self.crop_size = int(crop_size)
        self.num_clips = int(num_clips)
        self.num_crops = int(num_crops)
        self.mean, self.std = tuple(mean), tuple(std)
        self.clip_position = clip_position
        self.target_fps = target_fps
        self.frame_spacing = _check_spacing(frame_spacing)
        if resize not in RESIZE_MODES:
            raise UserError(f"resize must be 'decoder' (scale while decoding, fast) or 'pyslowfast' (decode at "
                            f"full size, then bilinear interpolation as PySlowFast), got {resize!r}")
        self.resize = resize

    def __len__(self) -> int:
        return len(self.records) * self.num_clips

    def crop_offsets(self, length: int) -> List[int]:
        """Offsets of the spatial crops along the long side of ``length`` pixels."""
        room = max(length - self.crop_size, 0)
        centre = (room + 1) // 2          # PySlowFast's uniform_crop: ceil((length - size) / 2)
        if self.num_crops == 1:
            return [centre]
        # 0, ..., centre, ..., room (3 crops: 0 / centre / room, as PySlowFast)
        return [int(round(room * i / (self.num_crops - 1))) if 2 * i != self.num_crops - 1 else centre
                for i in range(self.num_crops)]

    def official_temporal(self, record: VideoRecord) -> bool:
        """Whether ``resize="pyslowfast"`` also chooses the frames as the official loader does (by
        presentation timestamp, see :mod:`video_ats.data.official`): with its temporal settings
        (``clip_position="start"``, ``frame_spacing="pyslowfast"``) on a trimmed file (no CSV time window)."""
        return (self.clip_position == "start" and self.frame_spacing == "pyslowfast"
                and (record.time_start is None or record.time_end is None))

    def load(self, record: VideoRecord, clip_index: int) -> torch.Tensor:
        c = self.crop_size
        if self.resize == "pyslowfast":
            return self._load_official(record, clip_index)
        with VideoReader(record.path, size=c) as reader:
            info = reader.info
            idx = self._indices(record, info, clip_index)
            frames = reader.get_frames(idx)
        frames = frames.permute(0, 3, 1, 2)  # (T, 3, H, W)
        H, W = frames.shape[-2:]
        if min(H, W) != c:  # decoder ignored the size request
            frames = TF.resize(frames, c, antialias=True)
            H, W = frames.shape[-2:]
        if H > W:  # portrait: top / centre / bottom
            crops = [TF.crop(frames, o, (W - c) // 2, c, c) for o in self.crop_offsets(H)]
        else:
            crops = [TF.crop(frames, (H - c) // 2, o, c, c) for o in self.crop_offsets(W)]
        return _to_model_input(torch.stack(crops), self.mean, self.std)  # (crops, 3, T, c, c)

    def _indices(self, record: VideoRecord, info, clip_index: int) -> np.ndarray:
        return sample_clip_indices(info.num_frames, self.num_frames, self.sampling_rate,
                                   fps=info.fps, target_fps=self.target_fps,
                                   clip_index=clip_index, num_clips=self.num_clips,
                                   clip_position=self.clip_position,
                                   window=_window(record, info.fps), spacing=self.frame_spacing)

    def _load_official(self, record: VideoRecord, clip_index: int) -> torch.Tensor:
        """The official views: frames by timestamp (when :meth:`official_temporal`), full-size decode,
        normalisation, bilinear short-side scaling with the official size rule, uniform crops."""
        if self.official_temporal(record):
            frames = decode_official_clip(record.path, self.num_frames, self.sampling_rate,
                                          target_fps=self.target_fps, clip_index=clip_index,
                                          num_clips=self.num_clips).frames
        else:  # MMAction2 clip position, stride spacing or a time window: decode-order indices
            with VideoReader(record.path) as reader:
                frames = reader.get_frames(self._indices(record, reader.info, clip_index))
        return official_views(frames, self.crop_size, self.crop_offsets, self.mean, self.std)

    def __getitem__(self, index: int) -> Dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        vi, ci = divmod(index, self.num_clips)
        record = self.records[vi]
        item = {"video": None, "label": int(record.label), "video_index": vi, "clip_index": ci,
                "path": record.path, "error": None}
        try:
            item["video"] = self.load(record, ci)
        except DecodeError as exc:
            item["error"] = exc.reason
            _report_once(record.path, exc.reason, "evaluation: recorded as a failure")
        return item


def collate_views(batch: List[Dict]) -> Dict:
    """DataLoader collate for :class:`MultiViewDataset` items.

    Returns ``{"video": (N_views, 3, T, H, W) or None, "video_index", "clip_index", "crop_index",
    "label": int64 (N_views,), "paths": list[str] (per view), "failures": [{"path", "error",
    "video_index"}, ...]}``. Failed items are passed through in ``failures`` only.
    """
    good = [b for b in batch if b.get("video") is not None]
    failures = [{"path": b["path"], "error": b["error"], "video_index": b["video_index"]}
                for b in batch if b.get("video") is None]
    out = {"failures": failures}
    if not good:
        empty = torch.zeros(0, dtype=torch.long)
        out.update(video=None, video_index=empty, clip_index=empty.clone(), crop_index=empty.clone(),
                   label=empty.clone(), paths=[])
        return out
    counts = torch.tensor([b["video"].shape[0] for b in good])
    out["video"] = torch.cat([b["video"] for b in good], dim=0)
    out["video_index"] = torch.tensor([b["video_index"] for b in good]).repeat_interleave(counts)
    out["clip_index"] = torch.tensor([b["clip_index"] for b in good]).repeat_interleave(counts)
    out["label"] = torch.tensor([b["label"] for b in good]).repeat_interleave(counts)
    out["crop_index"] = torch.cat([torch.arange(int(n)) for n in counts])
    out["paths"] = [b["path"] for b, n in zip(good, counts.tolist()) for _ in range(n)]
    return out


def _check_spacing(spacing: str) -> str:
    if spacing not in FRAME_SPACINGS:
        raise UserError(f"frame_spacing must be 'pyslowfast' (frames spread evenly over the clip window, as "
                        f"the official checkpoints were trained) or 'stride', got {spacing!r}")
    return spacing
