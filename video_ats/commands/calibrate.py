"""`video-ats calibrate`: scale the ATS K values so the mean GFLOPs per view meet a budget."""
from __future__ import annotations

import logging
import os
import sys

HELP = "scale all ATS K values by one factor to hit a GFLOPs/view target (within 2 percent, never above)"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe with model.ats set (default: the recipe a training checkpoint of this project "
                                         "stores)")
    parser.add_argument("--checkpoint", help="weights (kept tokens depend on them; default: random init + warning)")
    parser.add_argument("--annotations", required=True, help="clips to calibrate on (Kinetics CSV / list)")
    parser.add_argument("--target-gflops", type=float, required=True, help="mean GFLOPs per view to reach")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to")
    parser.add_argument("--max-videos", type=int, help="use at most this many videos")
    parser.add_argument("--views", help="CLIPSxCROPS (default: test.views)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="allowed shortfall (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="views per forward (default %(default)s)")
    parser.add_argument("--output", default="ats_calibrated.yaml", help="override YAML (default %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def run(args) -> int:
    from ..analysis import calibrate
    from ..engine.builders import check_output_file
    from ..engine.config import config_for

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, stored = config_for(args.config, args.checkpoint, args.overrides)   # a training checkpoint carries its recipe
    if stored:
        print(f"config: the recipe stored in {args.checkpoint} (pass --config to use another)", file=sys.stderr)
    check_output_file(args.output, "--output", "ats_calibrated.yaml")   # before the search, not after it

    def progress(line: str) -> None:       # stderr: stdout keeps the result lines only
        print(f"calibrate: {line}", file=sys.stderr, flush=True)

    res = calibrate.run_calibration(cfg, args.checkpoint, args.annotations, args.target_gflops, args.data_root,
                                    args.max_videos, args.views, args.batch_size, args.tolerance, progress=progress)
    calibrate.write_override(res, args.output, args.config)
    print(f"target {res['target_gflops']:.4g} GFLOPs/view (reachable {res['reachable'][0]:.4g} .. "
          f"{res['reachable'][1]:.4g}, dense {res['dense_gflops']:.4g})")
    print(f"chosen K {res['num_tokens']} at blocks {res['ats']['blocks']} (scale {res['scale']:.4g} of "
          f"{res['base_num_tokens']})")
    print(f"achieved {res['gflops_mean']:.4g} GFLOPs/view mean over {res['num_views']} views "
          f"({100 * (res['gflops_mean'] / res['target_gflops'] - 1):+.2f} %), {res['evaluations']} evaluations")
    if res["num_failed"]:
        print(f"{res['num_failed']} videos could not be decoded, e.g. {res['failed'][0]['path']}: "
              f"{res['failed'][0]['error']}")
    if args.overrides:
        print("note: the command-line overrides are not in the file; pass them again with it")
    print(f"override: {os.path.abspath(args.output)}")
    return 0
