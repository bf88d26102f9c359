#!/usr/bin/env python
"""1 x 3 test-view throughput: video_ats.data.MultiViewDataset vs pytorchvideo's LabeledVideoDataset.

Both loaders read the same generated Kinetics-format files (or ``--data DIR`` made by
``video-ats make-synthetic``) and produce the same views: one temporal clip of ``--num-frames``
frames at ``--sampling-rate`` (at 30 fps) starting at frame 0, short side resized to ``--crop``,
three ``--crop`` x ``--crop`` crops (left / centre / right), normalised, as float (3, T, crop, crop)
per view. Same DataLoader settings (``--num-workers``, ``--batch-size``). pytorchvideo is used with
``decoder="decord"`` and a ConstantClipsPerVideoSampler (1 clip, clip 0 starts at 0 s); its output is
temporally subsampled, resized and cropped here with torch ops (``pytorchvideo.transforms`` is not
imported: it breaks on current torchvision). Prints views/s of each and the ratio.

    python tools/benchmark_data.py                       # generates 24 videos 340x256, 10 s, 30 fps
    python tools/benchmark_data.py --data /path/to/synthetic --num-workers 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from video_ats.data import MultiViewDataset, collate_views, make_synthetic, read_annotations  # noqa: E402


class PTVViews:
    """pytorchvideo output dict -> the same 3 views as MultiViewDataset, with plain torch ops."""

    def __init__(self, num_frames, crop, mean, std):
        self.num_frames, self.crop = num_frames, crop
        self.mean = torch.tensor(mean).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1, 1)

    def __call__(self, item):
        video = item["video"]  # (C, T_all, H, W) float in [0, 255]
        t_all = video.shape[1]
        idx = torch.linspace(0, t_all - 1, self.num_frames).round().long()
        x = video.index_select(1, idx).transpose(0, 1)  # (T, C, H, W)
        h, w = x.shape[-2:]
        c = self.crop
        size = (c, max(c, round(w * c / h))) if h <= w else (max(c, round(h * c / w)), c)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        h, w = x.shape[-2:]
        if h <= w:
            offs = [0, (w - c) // 2, w - c]
            crops = [x[..., (h - c) // 2:(h - c) // 2 + c, o:o + c] for o in offs]
        else:
            offs = [0, (h - c) // 2, h - c]
            crops = [x[..., o:o + c, (w - c) // 2:(w - c) // 2 + c] for o in offs]
        v = torch.stack(crops).transpose(1, 2)  # (3, C, T, c, c)
        v = (v / 255.0 - self.mean) / self.std
        return {"video": v, "label": item["label"], "video_index": item["video_index"]}


def run_ours(records, args):
    ds = MultiViewDataset(records, args.num_frames, args.sampling_rate, crop_size=args.crop,
                          num_clips=1, num_crops=3, mean=args.mean, std=args.std,
                          clip_position="start", target_fps=30)
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers,
                                     collate_fn=collate_views)
    views = failures = 0
    shape = None
    t0 = time.perf_counter()
    for batch in dl:
        if batch["video"] is not None:
            views += batch["video"].shape[0]
            shape = tuple(batch["video"].shape[1:])
        failures += len(batch["failures"])
    return views, time.perf_counter() - t0, shape, failures


def make_ptv_dataset(records, args):
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    # a window of (T - 1) * rate + 1 frames: uniform subsampling of it gives exactly frames
    # 0, rate, 2 * rate, ... -- the frames MultiViewDataset takes (and fewer frames for it to decode
    # than the usual T * rate window)
    clip_duration = ((args.num_frames - 1) * args.sampling_rate + 0.5) / 30.0
    return LabeledVideoDataset(
        [(r.path, {"label": r.label}) for r in records],
        make_clip_sampler("constant_clips_per_video", clip_duration, 1),
        video_sampler=torch.utils.data.SequentialSampler,
        transform=PTVViews(args.num_frames, args.crop, args.mean, args.std),
        decode_audio=False, decoder="decord")


def check_same_views(records, args):
    """Both loaders' views of the first video: same shape; mean |difference| (resize kernels differ)."""
    ours = MultiViewDataset(records[:1], args.num_frames, args.sampling_rate, crop_size=args.crop,
                            mean=args.mean, std=args.std)[0]["video"]
    theirs = next(iter(make_ptv_dataset(records[:1], args)))["video"]
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    diff = (ours - theirs).abs().mean().item() * args.std[0] * 255
    print(f"same-view check on {os.path.basename(records[0].path)}: shapes {tuple(ours.shape)}, "
          f"mean |difference| {diff:.1f} grey levels of 255 (different resize kernels)")


def run_ptv(records, args):
    ds = make_ptv_dataset(records, args)
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers)
    views = 0
    shape = None
    t0 = time.perf_counter()
    for batch in dl:
        v = batch["video"].flatten(0, 1)  # (B * 3, C, T, c, c)
        views += v.shape[0]
        shape = tuple(v.shape[1:])
    return views, time.perf_counter() - t0, shape, 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a make-synthetic output folder (default: generate one)")
    ap.add_argument("--videos", type=int, default=24, help="videos to generate (default %(default)s)")
    ap.add_argument("--size", default="340x256", help="generated frame size WxH (default %(default)s)")
    ap.add_argument("--seconds", type=float, default=10.0, help="generated length (default %(default)s)")
    ap.add_argument("--gop", type=int, default=None, help="keyframe interval of generated files "
                    "(default: 30 frames = 1 s)")
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--sampling-rate", type=int, default=32)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each loader")
    args = ap.parse_args(argv)
    args.mean, args.std = (0.45,) * 3, (0.225,) * 3
    torch.set_num_threads(1)

    tmp = None
    root = args.data
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="video_ats_bench_")
        root = tmp.name
        w, h = (int(v) for v in args.size.lower().split("x"))
        classes = 4
        t0 = time.perf_counter()
        make_synthetic(root, classes=classes, videos_per_class=max(1, args.videos // classes),
                       size=(w, h), seconds=args.seconds, seed=0, val_fraction=0.0, gop=args.gop)
        print(f"generated {args.videos} videos {w}x{h}, {args.seconds:g} s at 30 fps in "
              f"{time.perf_counter() - t0:.1f} s under {root}")
    records = []
    for split in ("train", "val"):
        p = os.path.join(root, f"{split}.txt")
        if os.path.exists(p) and os.path.getsize(p) > 0:
            records += read_annotations(p, data_root=root)[0]
    print(f"{len(records)} videos; views: 1x3, {args.num_frames}x{args.sampling_rate} frames, crop "
          f"{args.crop}; DataLoader num_workers={args.num_workers}, batch_size={args.batch_size}; "
          f"torch threads 1")

    check_same_views(records, args)
    # warm-up (page cache, worker start-up code paths) on a few videos, untimed
    warm = records[: max(2, args.num_workers)]
    run_ours(warm, args)
    run_ptv(warm, args)
    res = {"video_ats": [], "pytorchvideo": []}
    for _ in range(args.repeats):
        for name, fn in (("video_ats", run_ours), ("pytorchvideo", run_ptv)):
            views, dt, shape, fails = fn(records, args)
            res[name].append(views / dt)
            print(f"  {name:12s} {views} views of {shape} in {dt:.2f} s -> {views / dt:.1f} views/s"
                  + (f" ({fails} failures)" if fails else ""))
    ours, theirs = statistics.median(res["video_ats"]), statistics.median(res["pytorchvideo"])
    print(f"median views/s: video_ats {ours:.1f}, pytorchvideo {theirs:.1f}; "
          f"ratio {ours / theirs:.2f}x")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
