"""`video-ats sweep`: Top-1/Top-5 and GFLOPs at several K scales x selections (ATS, top-K, random) + dense."""
from __future__ import annotations

import logging
import os
import sys

HELP = "accuracy vs GFLOPs at several K scales for ATS and the top-K / random baselines, plus dense"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe with model.ats set (blocks and base K) (default: the recipe a training checkpoint of this project "
                                         "stores)")
    parser.add_argument("--checkpoint", help="weights (default: random init, with a warning)")
    parser.add_argument("--annotations", required=True, help="evaluation annotation file")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0],
                        help="factors applied to every K (default %(default)s)")
    parser.add_argument("--selections", nargs="+", default=["ats", "topk", "random"],
                        help="token selections to compare (default %(default)s)")
    parser.add_argument("--views", help="CLIPSxCROPS (default: test.views)")
    parser.add_argument("--max-videos", type=int, help="use at most this many videos")
    parser.add_argument("--output", required=True, help="folder for sweep.json, sweep.csv, accuracy_vs_gflops.png")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def run(args) -> int:
    from ..analysis import sweep
    from ..engine.builders import check_writable_dir
    from ..engine.config import config_for

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, stored = config_for(args.config, args.checkpoint, args.overrides)   # a training checkpoint carries its recipe
    if stored:
        print(f"config: the recipe stored in {args.checkpoint} (pass --config to use another)", file=sys.stderr)
    check_writable_dir(args.output, "sweep output folder")
    print(sweep.HEADER)
    result = sweep.sweep(cfg, args.checkpoint, args.annotations, args.scales, args.selections, args.views,
                         args.data_root, args.max_videos, progress=lambda line: print(line, flush=True))
    paths = sweep.write_outputs(result, args.output)
    for name, p in paths.items():
        print(f"{name}: {os.path.abspath(p)}")
    return 0
