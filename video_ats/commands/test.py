"""`video-ats test`: multi-view evaluation (Top-1/Top-5, GFLOPs per view from the kept tokens); the work is
:func:`video_ats.engine.test.run_test`, this module parses the flags and prints the summary."""
from __future__ import annotations

import logging
import os
import sys

from ..choices import CLIP_POSITIONS, COMBINE_MODES

HELP = "multi-view evaluation: Top-1/Top-5 and per-view GFLOPs; rerun the same command to resume"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe (its model section builds the model; default: the recipe a "
                                         "training checkpoint of this project stores, else the defaults)")
    parser.add_argument("--checkpoint", help="weights to evaluate (project / official checkpoint, Hugging Face "
                                             "TimeSformer folder); without it "
                                             "the model is randomly initialised (pipeline checks, GFLOPs)")
    parser.add_argument("--annotations", help="test annotation file (default: test.annotations, then "
                                              "data.val_annotations)")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to")
    parser.add_argument("--views", help="CLIPSxCROPS, e.g. 1x3 (default: test.views)")
    parser.add_argument("--combine", choices=COMBINE_MODES,
                        help="how a video's views are combined (default: test.combine = softmax_mean)")
    parser.add_argument("--clip-position", choices=CLIP_POSITIONS,
                        help="where a single test clip sits (default: test.clip_position = start)")
    parser.add_argument("--batch-size", type=int, help="videos per batch (default: test.batch_size)")
    parser.add_argument("--output", help="results JSON (default: results.json in the run folder, output_dir = "
                        "runs/<config name>); per-video predictions stream to <stem>.predictions.jsonl next to it")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. model.num_classes=600 model.ats=null")


def run(args) -> int:
    from ..engine import distributed
    from ..engine.config import config_for
    from ..engine.test import run_test

    overrides = list(args.overrides)
    # the evaluation flags are config overrides: the config is the one source of the EvalSpec
    for flag, key in ((args.views, "test.views"), (args.combine, "test.combine"),
                      (args.clip_position, "test.clip_position"), (args.batch_size, "test.batch_size"),
                      (args.data_root, "data.data_root"), (args.annotations, "test.annotations")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    cfg, stored = config_for(args.config, args.checkpoint, overrides)   # a training checkpoint carries its recipe
    info = distributed.init_distributed(cfg["device"])
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if stored and info.is_main:
        print(f"config: the recipe stored in {args.checkpoint} (pass --config to use another)", flush=True)
    output = args.output or os.path.join(cfg["output_dir"], "results.json")
    try:
        results = run_test(cfg, args.checkpoint, output, info)
    finally:
        distributed.cleanup()
    if info.is_main:
        print(format_results(results))
        warning = failure_warning(results)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"results: {os.path.abspath(output)}")
    return 1 if results.get("top1") is None else 0


FAILURE_WARN_FRACTION = 0.01


def failure_warning(r) -> str:
    """One warning line when more than 1 % of the videos failed ('' otherwise)."""
    failed, total = r.get("num_failed") or 0, (r.get("num_videos") or 0) + (r.get("num_failed") or 0)
    if not total or failed / total <= FAILURE_WARN_FRACTION:
        return ""
    if failed == total:
        return (f"error: none of the {total} videos could be evaluated (e.g. {r['failed'][0]['path']}: "
                f"{r['failed'][0]['error']}); check the data root and run `video-ats check-data`")
    return (f"warning: {failed} of {total} videos ({100 * failed / total:.1f} %) could not be decoded and are not "
            "in Top-1/Top-5 (computed over the rest); `video-ats check-data --annotations A --data-root D` lists them")


def format_results(r) -> str:
    """Human summary of a results dict (a few lines)."""
    g = r.get("gflops_per_view") or {}
    lines = []
    if r.get("top1") is not None:
        lines.append(f"top1 {r['top1']:.2f}  top5 {r['top5']:.2f}  ({r['num_videos']} videos, {r['views']} views, "
                     f"{r['combine']}, clip at {r['clip_position']})")
    else:
        lines.append(f"no video could be evaluated ({r['num_failed']} failed)")
    if g:
        dense = r.get("dense_gflops_per_view")
        lines.append(f"GFLOPs/view {g['mean']:.4g} ± {g['std']:.2g} (min {g['min']:.4g}, max {g['max']:.4g})"
                     + (f"; dense {dense:.4g}" if dense else ""))
    if r.get("views_per_second"):
        lines.append(f"throughput {r['views_per_second']:.1f} views/s (model forward)")
    if r["num_failed"]:
        lines.append(f"{r['num_failed']} videos failed, e.g. {r['failed'][0]['path']}: {r['failed'][0]['error']}")
    return "\n".join(lines)
