"""`video-ats predict`: top-k class names for videos, GFLOPs per view dense vs ATS, kept tokens."""
from __future__ import annotations

import logging
import os
import sys

HELP = "predict the top-k classes of videos (files or folders), with GFLOPs per view and kept tokens"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe of the model (default: the config stored in --checkpoint)")
    parser.add_argument("--checkpoint", help="weights: a project checkpoint (class names and config inside) or "
                                             "an official one (then give --config and --label-map); default: "
                                             "random init, with a warning")
    parser.add_argument("--top-k", type=int, default=5, help="classes listed per video (default %(default)s)")
    parser.add_argument("--views", help="CLIPSxCROPS (default: test.views of the config, 1x3)")
    parser.add_argument("--label-map", help="class names, one per line (or JSON {name: index}); default: the "
                                            "checkpoint's class_names, else data.label_map, else class indices")
    parser.add_argument("--json", metavar="FILE", help="write the predictions as a JSON list here")
    parser.add_argument("--plots", metavar="DIR", help="write a kept-token overlay per video here (ATS models)")
    parser.add_argument("--batch-size", type=int, default=8, help="views per forward (default %(default)s)")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER|key=value",
                        help="video files and/or folders of videos; key=value items are config overrides")


def run(args) -> int:
    from ..analysis import predict
    from ..fileio import atomic_write_json
    from .profile import split_inputs

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    inputs, overrides = split_inputs(args.inputs)
    if args.json:
        from ..engine.builders import check_output_file
        check_output_file(args.json, "--json", "predictions.json")
    if args.plots:
        from ..engine.builders import check_writable_dir
        check_writable_dir(args.plots, "--plots folder")
    results = predict.predict(inputs, args.config, args.checkpoint, args.top_k, args.views, args.label_map,
                              args.plots, overrides, args.batch_size, progress=print)
    failed = [r for r in results if r["error"]]
    if args.json:
        atomic_write_json(args.json, results, "predictions", make_parent=True)
        print(f"json: {os.path.abspath(args.json)}")
    if failed:
        print(f"{len(failed)} of {len(results)} inputs could not be predicted (first: {failed[0]['path']}: "
              f"{failed[0]['error']})", file=sys.stderr)
        return 1
    return 0
