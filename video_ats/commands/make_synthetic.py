"""`video-ats make-synthetic`: write a small synthetic Kinetics-format dataset (real H.264 videos)."""
from __future__ import annotations

import re
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
    parser.add_argument("--classes", type=int, default=syn.DEFAULT_CLASSES,
                        help=f"number of classes, 1..{syn.MAX_CLASSES} (default %(default)s)")
    parser.add_argument("--videos-per-class", type=int, default=syn.DEFAULT_VIDEOS_PER_CLASS,
                        help="videos per class, train + val (default %(default)s)")
    parser.add_argument("--size", default="%dx%d" % syn.DEFAULT_SIZE,
                        help="frame size WIDTHxHEIGHT, even numbers (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=syn.DEFAULT_SECONDS,
                        help="video length in seconds (default %(default)s)")
    parser.add_argument("--fps", type=int, default=syn.DEFAULT_FPS, help="frame rate (default %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=syn.DEFAULT_VAL_FRACTION,
                        help="fraction of each class's videos in the val split (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    parser.add_argument("--gop", type=int, default=None,
                        help="keyframe interval in frames (default: one second, = fps)")
    parser.add_argument("--workers", type=int, default=None,
                        help="encoding processes (default: CPU count, at most 8)")
    parser.add_argument("--object-scale", type=float, nargs=2, default=(0.10, 0.14), metavar=("MIN", "MAX"),
                        help="shape half-size range as a fraction of the short side (default 0.10 0.14)")
    parser.add_argument("--texture-contrast", type=float, default=20.0,
                        help="background texture amplitude, 0-255 scale (default %(default)s)")


def run(args) -> int:
    from ..data.synthetic import make_synthetic

    import os

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} exists and is not a folder; give a folder (created if needed)")
    size = parse_size(args.size)
    if args.seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.gop is not None and args.gop < 1:
        raise UserError(f"--gop must be >= 1, got {args.gop}")
    t0 = time.time()
    paths = make_synthetic(args.out, classes=args.classes, videos_per_class=args.videos_per_class,
                           size=size, seconds=args.seconds, fps=args.fps, seed=args.seed,
                           val_fraction=args.val_fraction, workers=args.workers,
                           gop=args.gop, object_scale=tuple(args.object_scale),
                           texture_contrast=args.texture_contrast)
    n = args.classes * args.videos_per_class
    print(f"wrote {n} videos ({args.classes} classes, {size[0]}x{size[1]}, {args.seconds:g} s at "
          f"{args.fps} fps) to {paths['root']} in {time.time() - t0:.1f} s")
    for key in ("train_csv", "val_csv", "train_list", "val_list", "classes"):
        print(f"  {key:10s} {paths[key]}")
    return 0
