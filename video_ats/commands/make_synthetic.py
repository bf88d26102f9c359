"""`video-ats make-synthetic`: write a small synthetic Kinetics-format dataset (real H.264 videos)."""
from __future__ import annotations

import math
import os
import re
import sys
import time

from ..errors import UserError

HELP = "write a small synthetic Kinetics-format dataset (H.264 mp4, CSVs, path-label lists)"


def parse_size(text: str):
    """'WxH' -> (W, H); raises UserError with one clear line otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise UserError(f"--size must be WIDTHxHEIGHT with even numbers, e.g. 128x96; got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise UserError(f"--size must be even and at least 16x16 (H.264 4:2:0), got {w}x{h}")
    return w, h


def add_arguments(parser) -> None:
    from ..data import synthetic as syn

    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--preset", choices=sorted(syn.PRESETS), default=None,
                        help="a named dataset: 'kinetics' = the accuracy benchmark's Kinetics-shaped set (8 classes, "
                             "cluttered scenes, train/val/test = 1600/400/1024 videos), 'quickstart' = the "
                             "quickstart's; options given explicitly override the preset's values")
    parser.add_argument("--scene", choices=syn.SCENES, default=None,
                        help="'shapes': one shape per class (class = shape x motion); 'kinetics': 1-3 targets among "
                             "distractors, class = the targets' motion (default: shapes)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="fraction of each class's videos held out in a test split (default 0: none)")
    parser.add_argument("--classes", type=int, default=None,
                        help=f"number of classes, 1..{syn.MAX_CLASSES} (default {syn.DEFAULT_CLASSES})")
    parser.add_argument("--videos-per-class", type=int, default=None,
                        help=f"videos per class, all splits together (default {syn.DEFAULT_VIDEOS_PER_CLASS})")
    parser.add_argument("--size", default=None,
                        help="frame size WIDTHxHEIGHT, even numbers (default %dx%d)" % syn.DEFAULT_SIZE)
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"video length in seconds (default {syn.DEFAULT_SECONDS:g})")
    parser.add_argument("--fps", type=int, default=None, help=f"frame rate (default {syn.DEFAULT_FPS})")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help=f"fraction of each class's videos in the val split (default {syn.DEFAULT_VAL_FRACTION:g})")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    parser.add_argument("--gop", type=int, default=None,
                        help="keyframe interval in frames (default: one second, = fps)")
    parser.add_argument("--workers", type=int, default=None,
                        help="encoding processes (default: CPU count, at most 8)")
    parser.add_argument("--object-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="object half-size range as a fraction of the short side (default 0.10 0.14)")
    parser.add_argument("--texture-contrast", type=float, default=None,
                        help="background texture amplitude, 0-255 scale (default 20)")


def run(args) -> int:

    from ..data import synthetic as syn

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} exists and is not a folder; give a folder (created if needed)")
    params = dict(scene="shapes", classes=syn.DEFAULT_CLASSES, videos_per_class=syn.DEFAULT_VIDEOS_PER_CLASS,
                  size=syn.DEFAULT_SIZE, seconds=syn.DEFAULT_SECONDS, fps=syn.DEFAULT_FPS,
                  val_fraction=syn.DEFAULT_VAL_FRACTION, test_fraction=0.0, object_scale=(0.10, 0.14),
                  texture_contrast=20.0)
    if args.preset:
        params.update(syn.PRESETS[args.preset])
    given = dict(scene=args.scene, classes=args.classes, videos_per_class=args.videos_per_class,
                 size=parse_size(args.size) if args.size is not None else None, seconds=args.seconds, fps=args.fps,
                 val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                 object_scale=tuple(args.object_scale) if args.object_scale else None,
                 texture_contrast=args.texture_contrast)
    params.update({k: v for k, v in given.items() if v is not None})
    if not (math.isfinite(params["seconds"]) and params["seconds"] > 0):
        raise UserError(f"--seconds must be a finite number > 0, got {params['seconds']}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.gop is not None and args.gop < 1:
        raise UserError(f"--gop must be >= 1, got {args.gop}")
    t0 = time.time()
    paths = syn.make_synthetic(args.out, seed=args.seed, workers=args.workers, gop=args.gop, **params)
    n = params["classes"] * params["videos_per_class"]
    w, h = params["size"]
    print(f"wrote {n} videos ({params['classes']} classes, {params['scene']} scenes, {w}x{h}, "
          f"{params['seconds']:g} s at {params['fps']} fps) to {paths['root']} in {time.time() - t0:.1f} s")
    for key in ("train_csv", "val_csv", "test_csv", "train_list", "val_list", "test_list", "classes"):
        if key in paths:
            print(f"  {key:10s} {paths[key]}")
    for split in ("train", "val", "test"):           # a split too small to hold a video: say so now, not at training
        lst = paths.get(f"{split}_list")
        if lst and os.path.isfile(lst) and os.path.getsize(lst) == 0:
            print(f"warning: the {split} split is empty ({params['videos_per_class']} videos per class are too few "
                  f"for its fraction); use more --videos-per-class", file=sys.stderr)
    return 0
