"""Data-loader throughput: this project's loaders vs pytorchvideo's Kinetics-style loader, same files.

Two loaders are compared, each against a pytorchvideo ``LabeledVideoDataset`` (``decoder="decord"``)
producing the same kind of output from the same files with the same DataLoader settings:

``test``   1 × 3 test views: one clip of ``num_frames`` at ``sampling_rate`` (frames at 30 fps) from frame
           0, short side resized to ``crop``, left / centre / right ``crop``² crops, normalised
           (:class:`~video_ats.data.MultiViewDataset` vs a ``constant_clips_per_video`` sampler).
``train``  training clips: a random clip, short side jittered in ``scale_range``, a random ``crop``²
           crop, random flip, normalised (:class:`~video_ats.data.TrainDataset` vs a ``random`` clip
           sampler).

pytorchvideo's output is subsampled, resized, cropped and normalised here with plain torch ops
(``pytorchvideo.transforms`` is not imported: it breaks on current torchvision). The window given to
pytorchvideo is ``(T − 1) · rate + 1`` frames long, whose uniform subsample is exactly frames 0, rate,
…, the frames this project's loader takes (and fewer frames for it to decode than a ``T · rate``
window). Loaders run alternately (ours, theirs, ours, …); the ratio of the median views/s is reported.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..errors import UserError

LOADERS = ("test", "train")


@dataclass
class DataSpec:
    data: Optional[str] = None            # a make-synthetic folder; None: generate one
    videos: int = 24
    size: Tuple[int, int] = (340, 256)
    seconds: float = 10.0
    gop: Optional[int] = None
    num_frames: int = 8
    sampling_rate: int = 32
    crop: int = 224
    scale_range: Tuple[int, int] = (256, 320)
    num_workers: int = 2
    batch_size: int = 4
    repeats: int = 3
    loaders: Sequence[str] = LOADERS
    mean: Tuple[float, ...] = (0.45,) * 3
    std: Tuple[float, ...] = (0.225,) * 3
    seed: int = 0


def _resize_short(x: torch.Tensor, short: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    size = (short, max(short, round(w * short / h))) if h <= w else (max(short, round(h * short / w)), short)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class PTVTestViews:
    """pytorchvideo output dict -> the same 3 test views as MultiViewDataset, with plain torch ops."""

    def __init__(self, spec: DataSpec):
        self.spec = spec
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1, 1)

    def __call__(self, item):
        video = item["video"]                                   # (C, T_all, H, W) float in [0, 255]
        idx = torch.linspace(0, video.shape[1] - 1, self.spec.num_frames).round().long()
        x = _resize_short(video.index_select(1, idx).transpose(0, 1), self.spec.crop)   # (T, C, h, w)
        h, w = x.shape[-2:]
        c = self.spec.crop
        if h <= w:
            crops = [x[..., (h - c) // 2:(h - c) // 2 + c, o:o + c] for o in (0, (w - c) // 2, w - c)]
        else:
            crops = [x[..., o:o + c, (w - c) // 2:(w - c) // 2 + c] for o in (0, (h - c) // 2, h - c)]
        v = torch.stack(crops).transpose(1, 2)                  # (3, C, T, c, c)
        return {"video": (v / 255.0 - self.mean) / self.std, "label": item["label"]}


class PTVTrainClip:
    """pytorchvideo output dict -> a training clip as TrainDataset makes it: short-side jitter, random
    crop, random flip, normalisation (seeded per item), with plain torch ops."""

    def __init__(self, spec: DataSpec):
        self.spec = spec
        self.mean = torch.tensor(spec.mean).view(3, 1, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1, 1)

    def __call__(self, item):
        s = self.spec
        video = item["video"]
        idx = torch.linspace(0, video.shape[1] - 1, s.num_frames).round().long()
        g = torch.Generator().manual_seed(hash((item.get("video_index", 0), item.get("clip_index", 0))) % 2**31)
        short = int(torch.randint(s.scale_range[0], s.scale_range[1] + 1, (1,), generator=g))
        x = _resize_short(video.index_select(1, idx).transpose(0, 1), short)   # (T, C, h, w)
        h, w = x.shape[-2:]
        c = s.crop
        top = int(torch.randint(0, h - c + 1, (1,), generator=g))
        left = int(torch.randint(0, w - c + 1, (1,), generator=g))
        x = x[..., top:top + c, left:left + c]
        if bool(torch.rand(1, generator=g) < 0.5):
            x = x.flip(-1)
        x = x.transpose(0, 1)                                   # (C, T, c, c)
        return {"video": (x / 255.0 - self.mean) / self.std, "label": item["label"]}


def _clip_duration(spec: DataSpec) -> float:
    return ((spec.num_frames - 1) * spec.sampling_rate + 0.5) / 30.0


def make_ptv_dataset(records, spec: DataSpec, loader: str):
    try:
        from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler
    except ImportError as exc:
        raise UserError(f"the data-loader benchmark compares with pytorchvideo, which cannot be imported here "
                        f"({exc}); pip install pytorchvideo") from None
    if loader == "test":
        sampler = make_clip_sampler("constant_clips_per_video", _clip_duration(spec), 1)
        transform: Callable = PTVTestViews(spec)
    else:
        sampler = make_clip_sampler("random", _clip_duration(spec))
        transform = PTVTrainClip(spec)
    return LabeledVideoDataset([(r.path, {"label": r.label}) for r in records], sampler,
                               video_sampler=torch.utils.data.SequentialSampler, transform=transform,
                               decode_audio=False, decoder="decord")


def make_our_dataset(records, spec: DataSpec, loader: str):
    from ..data import MultiViewDataset, TrainDataset

    if loader == "test":
        return MultiViewDataset(records, spec.num_frames, spec.sampling_rate, crop_size=spec.crop, num_clips=1,
                                num_crops=3, mean=spec.mean, std=spec.std, clip_position="start", target_fps=30)
    return TrainDataset(records, spec.num_frames, spec.sampling_rate, crop_size=spec.crop,
                        scale_range=spec.scale_range, mean=spec.mean, std=spec.std, target_fps=30, seed=spec.seed)


def run_loader(records, spec: DataSpec, loader: str, ours: bool) -> Tuple[int, float, tuple]:
    """(views, seconds, view shape) of one pass over ``records``."""
    from ..data import collate_views

    if ours:
        ds = make_our_dataset(records, spec, loader)
        collate = collate_views if loader == "test" else None
    else:
        ds = make_ptv_dataset(records, spec, loader)
        collate = None
    dl = torch.utils.data.DataLoader(ds, batch_size=spec.batch_size, num_workers=spec.num_workers,
                                     collate_fn=collate)
    views, shape = 0, None
    t0 = time.perf_counter()
    for batch in dl:
        if isinstance(batch, dict):
            v = batch["video"]
            if v is None:
                continue
            if not ours and loader == "test":
                v = v.flatten(0, 1)                             # (B * 3, C, T, c, c)
        else:
            v = batch[0]
        views += v.shape[0]
        shape = tuple(v.shape[1:])
    return views, time.perf_counter() - t0, shape


def check_same_views(records, spec: DataSpec) -> float:
    """Both test loaders' views of the first video: same shape; mean |difference| in grey levels."""
    ours = make_our_dataset(records[:1], spec, "test")[0]["video"]
    theirs = next(iter(make_ptv_dataset(records[:1], spec, "test")))["video"]
    if ours.shape != theirs.shape:
        raise RuntimeError(f"test views differ in shape: {tuple(ours.shape)} vs {tuple(theirs.shape)}")
    return (ours - theirs).abs().mean().item() * spec.std[0] * 255


def _records(root: str):
    from ..data import read_annotations

    records = []
    for split in ("train", "val", "test"):
        p = os.path.join(root, f"{split}.txt")
        if os.path.exists(p) and os.path.getsize(p) > 0:
            records += read_annotations(p, data_root=root)[0]
    if not records:
        raise UserError(f"--data {root}: no train.txt / val.txt / test.txt with videos (a `video-ats "
                        "make-synthetic` folder is expected)")
    return records


def run_data(spec: DataSpec, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Measure ``spec``; returns ``{"kind": "data", "meta": {...}, "rows": [...]}``."""
    from ..data import make_synthetic

    for loader in spec.loaders:
        if loader not in LOADERS:
            raise UserError(f"--loader {loader!r} is not one of {', '.join(LOADERS)}")
    if spec.data is not None and not os.path.isdir(spec.data):
        raise UserError(f"--data {spec.data}: no such folder")
    if min(spec.scale_range) < spec.crop:
        raise UserError(f"--scale-range {spec.scale_range} must not go below --crop {spec.crop}")
    torch.set_num_threads(1)
    tmp = None
    root = spec.data
    generated = None
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="video_ats_bench_")
        root = tmp.name
        classes = 4
        t0 = time.perf_counter()
        make_synthetic(root, classes=classes, videos_per_class=max(1, spec.videos // classes), size=spec.size,
                       seconds=spec.seconds, seed=spec.seed, val_fraction=0.0, gop=spec.gop)
        generated = {"videos": spec.videos, "size": list(spec.size), "seconds": spec.seconds, "fps": 30,
                     "gop": spec.gop or 30}
        log(f"generated {spec.videos} videos {spec.size[0]}x{spec.size[1]}, {spec.seconds:g} s at 30 fps in "
            f"{time.perf_counter() - t0:.1f} s under {root}")
    try:
        records = _records(root)
        log(f"{len(records)} videos; {spec.num_frames}x{spec.sampling_rate} frames, crop {spec.crop}; DataLoader "
            f"num_workers={spec.num_workers}, batch_size={spec.batch_size}; torch threads 1")
        rows = []
        diff = None
        if "test" in spec.loaders:
            diff = check_same_views(records, spec)
            log(f"same-view check: mean |difference| {diff:.1f} grey levels of 255 (different resize kernels)")
        for loader in spec.loaders:
            warm = records[: max(2, spec.num_workers)]         # page cache, worker start-up: untimed
            run_loader(warm, spec, loader, True)
            run_loader(warm, spec, loader, False)
            res: Dict[str, List[float]] = {"video_ats": [], "pytorchvideo": []}
            for _ in range(spec.repeats):
                for name, ours in (("video_ats", True), ("pytorchvideo", False)):
                    views, dt, shape = run_loader(records, spec, loader, ours)
                    res[name].append(views / dt)
                    log(f"  {loader:5s} {name:12s} {views} views of {shape} in {dt:.2f} s -> {views / dt:.1f} views/s")
            a, b = statistics.median(res["video_ats"]), statistics.median(res["pytorchvideo"])
            row = {"loader": loader, "video_ats_views_per_s": a, "pytorchvideo_views_per_s": b, "ratio": a / b,
                   "runs": res}
            log(f"{loader} loader: median views/s video_ats {a:.1f}, pytorchvideo {b:.1f}; ratio {a / b:.2f}x")
            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    from .speed import command_line

    meta = {"data": spec.data or "generated", "generated": generated, "num_videos": len(records),
            "num_frames": spec.num_frames, "sampling_rate": spec.sampling_rate, "crop": spec.crop,
            "scale_range": list(spec.scale_range), "num_workers": spec.num_workers, "batch_size": spec.batch_size,
            "repeats": spec.repeats, "torch": torch.__version__, "same_view_mean_abs_diff": diff,
            "command": command_line()}
    return {"kind": "data", "meta": meta, "rows": rows}
