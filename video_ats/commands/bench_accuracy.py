"""`video-ats bench-accuracy`: the accuracy-vs-GFLOPs evidence benchmark (see
:mod:`video_ats.analysis.bench_accuracy`): generation → dense training → ATS fine-tuning → evaluation of
dense, ATS off the shelf and fine-tuned, top-K, random dropping and ToMe on the held-out test split,
compared at matched GFLOPs with paired bootstrap CIs. Stages are cached: a rerun redoes what changed."""
from __future__ import annotations

import logging
import os
import shutil

HELP = "accuracy vs GFLOPs benchmark: ATS (off the shelf, fine-tuned) vs top-K, random and ToMe, with CIs"


def add_arguments(parser) -> None:
    from ..analysis.bench_accuracy import BenchSpec

    d = BenchSpec()
    parser.add_argument("--out", default=d.out, help="run folder, stages cached inside (default %(default)s)")
    parser.add_argument("--data", default=None, help="dataset folder (default: $VIDEO_ATS_CACHE or "
                                                      "~/.cache/video-ats, subfolder synthetic-kinetics-v5-seedN)")
    parser.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of the generated videos (default %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds),
                        help="training seeds; the first is the main run, the others repeat dense training and the "
                             "main fine-tune (default %(default)s)")
    parser.add_argument("--ats-scales", type=float, nargs="+", default=list(d.ats_scales),
                        help="K scales of off-the-shelf ATS (default %(default)s)")
    parser.add_argument("--baseline-scales", type=float, nargs="+", default=list(d.baseline_scales),
                        help="K scales of top-K and random dropping (default %(default)s)")
    parser.add_argument("--finetune-scales", type=float, nargs="+", default=list(d.finetune_scales),
                        help="K scales fine-tuned with ATS (default %(default)s)")
    parser.add_argument("--main-finetune-scale", type=float, default=d.main_finetune_scale,
                        help="the fine-tune repeated for every seed (default %(default)s)")
    parser.add_argument("--tome-r", type=float, nargs="+", default=list(d.tome_r),
                        help="ToMe: fraction of each frame's tokens merged at each block (default %(default)s)")
    parser.add_argument("--tome-blocks", type=int, nargs="+", default=list(d.tome_blocks),
                        help="blocks where ToMe merges (default %(default)s)")
    parser.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--publish", metavar="REPO", nargs="?", const=".", default=None,
                        help="also copy the results to REPO/docs/results/accuracy_benchmark.json and the pictures to "
                             "REPO/docs/images/, and regenerate the README block (default REPO: .)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for both training recipes (a change redoes the training stages)")


def run(args) -> int:
    from ..analysis.bench_accuracy import Bench, BenchSpec, render_markdown, update_readme
    from ..engine.builders import check_writable_dir
    from ..errors import UserError
    from ..fileio import publish_readme

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("ats_scales", "baseline_scales", "finetune_scales"):
        if any(not v > 0 for v in getattr(args, name)):
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.main_finetune_scale not in args.finetune_scales:
        raise UserError(f"--main-finetune-scale {args.main_finetune_scale:g} must be one of --finetune-scales "
                        f"{args.finetune_scales}")
    if any(not 0 < r <= 0.5 for r in args.tome_r):
        raise UserError(f"--tome-r values are fractions of a frame's tokens in (0, 0.5], got {args.tome_r}")
    if args.bootstrap < 100:
        raise UserError(f"--bootstrap needs at least 100 resamples, got {args.bootstrap}")
    if min(args.seeds) < 0 or args.data_seed < 0:       # before the data are generated, not after
        raise UserError(f"--seeds and --data-seed must be >= 0, got {args.seeds} and {args.data_seed}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds must be distinct, got {args.seeds}")
    readme = publish_readme(args.publish)
    check_writable_dir(args.out, "benchmark folder")
    spec = BenchSpec(out=args.out, data=args.data, data_seed=args.data_seed, seeds=tuple(args.seeds),
                     ats_scales=tuple(args.ats_scales), baseline_scales=tuple(args.baseline_scales),
                     finetune_scales=tuple(args.finetune_scales), main_finetune_scale=args.main_finetune_scale,
                     tome_r=tuple(args.tome_r), tome_blocks=tuple(args.tome_blocks), bootstrap=args.bootstrap, overrides=tuple(args.overrides))
    result = Bench(spec, log=lambda line: print(line, flush=True)).run()
    block = render_markdown(result)
    out = os.path.abspath(args.out)
    with open(os.path.join(out, "accuracy_benchmark.md"), "w", encoding="utf-8") as f:
        f.write(block)
    print()
    print(block)
    print(f"written to {os.path.join(out, 'accuracy_benchmark.json')} and {os.path.join(out, 'accuracy_benchmark.md')}")
    if readme is not None:
        results_dir = os.path.join(args.publish, "docs", "results")
        images = os.path.join(args.publish, "docs", "images")
        os.makedirs(results_dir, exist_ok=True)
        os.makedirs(images, exist_ok=True)
        shutil.copyfile(os.path.join(out, "accuracy_benchmark.json"), os.path.join(results_dir, "accuracy_benchmark.json"))
        for name in ("bench_accuracy_vs_gflops.png", "bench_kept_tokens_overlay.png", "bench_kept_tokens_hist.png"):
            shutil.copyfile(os.path.join(out, name), os.path.join(images, name))
        update_readme(readme, block)
        print(f"published to {results_dir}, {images} and {readme}")
    return 0
