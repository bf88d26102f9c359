"""`video-ats profile`: GFLOPs per view (dense vs ATS) and kept tokens per ATS block on real clips."""
from __future__ import annotations

import logging
import os
import sys

HELP = "GFLOPs per view (dense vs ATS) and kept tokens per ATS block on given videos / annotation lists"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe with model.ats set (default: the recipe a training checkpoint of this project "
                                         "stores)")
    parser.add_argument("--checkpoint", help="weights (default: random init, with a warning)")
    parser.add_argument("--views", help="CLIPSxCROPS as in evaluation (default: test.views)")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to")
    parser.add_argument("--batch-size", type=int, default=8, help="views per forward (default %(default)s)")
    parser.add_argument("--max-videos", type=int, help="use at most this many videos")
    parser.add_argument("--output", default="profile.json", help="JSON report (default %(default)s)")
    parser.add_argument("--plots", metavar="DIR", help="also write token overlays and kept-token histograms here")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_LIST|key=value",
                        help="video files and/or annotation files; key=value items are config overrides")


def split_inputs(items):
    overrides = [a for a in items if "=" in a and not os.path.exists(a)]
    inputs = [a for a in items if a not in overrides]
    return inputs, overrides


def run(args) -> int:
    from ..analysis import profile
    from ..engine.builders import check_output_file, check_writable_dir
    from ..engine.config import config_for
    from ..fileio import atomic_write_json
    from ..numfmt import round_floats

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    inputs, overrides = split_inputs(args.inputs)
    cfg, stored = config_for(args.config, args.checkpoint, overrides)   # a training checkpoint carries its recipe
    if stored:
        print(f"config: the recipe stored in {args.checkpoint} (pass --config to use another)", file=sys.stderr)
    check_output_file(args.output, "--output", "profile.json")          # before the work, not after it
    if args.plots:
        check_writable_dir(args.plots, "--plots folder")    # created now: a folder that cannot be made fails first
    report = profile.profile(cfg, inputs, args.checkpoint, args.views, args.batch_size, args.data_root, args.plots,
                             args.max_videos)
    atomic_write_json(args.output, round_floats(report), "report", make_parent=True)
    print(profile.format_report(report))
    for p in report.get("plots", []):
        print(f"plot: {p}")
    print(f"report: {os.path.abspath(args.output)}")
    return 0
