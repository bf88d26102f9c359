"""`video-ats train --config CFG [key=value ...]`: fine-tune a model; rerun the same command to resume."""
from __future__ import annotations

import logging

HELP = "fine-tune a model from a YAML recipe (auto-resumes from OUTPUT_DIR/checkpoints/last.pt)"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe (configs/...); without it the defaults are used")
    parser.add_argument("--output-dir", help="same as output_dir=DIR")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to (same as data.data_root=DIR)")
    parser.add_argument("--help-config", action="store_true", help="list every config key and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. train.lr=0.01 model.ats=null")


def run(args) -> int:
    from ..engine import config

    if args.help_config:
        print(config.schema_help())
        return 0
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else []) + \
        ([f"data.data_root={args.data_root}"] if args.data_root else [])
    cfg = config.load_config(args.config, overrides)
    from ..engine import distributed
    from ..engine.train import train

    info = distributed.init_distributed(cfg["device"])
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = train(cfg, info)
    finally:
        distributed.cleanup()
    if info.is_main:
        best = summary["best_top1"]
        print(f"done: {summary['step']} steps; checkpoint {summary['checkpoint']}"
              + (f"; best val top1 {best:.2f}" if best is not None else ""))
    return 0
