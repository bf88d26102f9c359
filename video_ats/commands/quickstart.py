"""`video-ats quickstart`: the whole pipeline on the embedded synthetic dataset, no download.

Generates the synthetic Kinetics-format dataset (preset "quickstart", cached), trains a tiny
TimeSformer on it from scratch, then fine-tunes the same model with ATS, evaluates both with 1x3 views
and prints a side-by-side table (Top-1, Top-5, GFLOPs/view, clips/s), also written to
``OUT/quickstart.md`` and ``OUT/quickstart.json``. The recipes are the shipped YAML files
``video_ats/configs/synthetic/quickstart{,_ats}.yaml``. Training stages are cached: a rerun evaluates
again and reports the training times measured when they ran.
"""
from __future__ import annotations

import json
import logging
import os
import time

HELP = "train + evaluate a tiny TimeSformer with and without ATS on generated videos (no download)"

RECIPE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "synthetic")
RECIPE = os.path.join(RECIPE_DIR, "quickstart.yaml")              # dense, trained from scratch
ATS_RECIPE = os.path.join(RECIPE_DIR, "quickstart_ats.yaml")      # its ATS fine-tune


def add_arguments(parser) -> None:
    from ..data.synthetic import PRESETS

    parser.add_argument("--out", default=os.path.join("runs", "quickstart"),
                        help="results folder (default %(default)s)")
    parser.add_argument("--data", default=None, help="synthetic dataset cache (default: "
                        "$VIDEO_ATS_CACHE or ~/.cache/video-ats, subfolder synthetic-quickstart-v2)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="dense training epochs (default: the recipe's)")
    parser.add_argument("--ats-epochs", type=int, default=None, help="ATS fine-tuning epochs (default: the recipe's)")
    parser.add_argument("--videos-per-class", type=int, default=PRESETS["quickstart"]["videos_per_class"],
                        help="synthetic videos per class (default %(default)s)")
    parser.add_argument("--sweep", action="store_true",
                        help="then a small sweep: the dense model with ATS off the shelf and the top-K / random "
                             "baselines at several K scales, plus the fine-tuned ATS model (OUT/sweep/); for the "
                             "evidence benchmark with confidence intervals see `video-ats bench-accuracy`")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.4, 0.7, 1.0, 1.4, 1.9],
                        help="K scales for --sweep (of the quickstart's K), default %(default)s; put key=value "
                             "overrides before this option")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for both runs (e.g. train.epochs=10); the recipes are "
                             f"{RECIPE} and {ATS_RECIPE}")


def _dataset(path: str, videos_per_class: int, log) -> dict:
    from ..analysis.bench_accuracy import Stage, stage_key
    from ..data.synthetic import PRESETS, make_synthetic

    params = dict(PRESETS["quickstart"], videos_per_class=videos_per_class, seed=0)
    stage = Stage(path, stage_key("data", params), "1/4 synthetic dataset", log)
    info = stage.load()
    if info is None:
        log(f"[1/4] synthetic dataset: writing {params['classes'] * videos_per_class} videos to {path} ...")
        stage.begin()
        info = stage.finish(paths=make_synthetic(path, **params))
    else:
        log(f"[1/4] synthetic dataset: cached in {path}")
    return info["paths"], stage.key


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table(rows) -> str:
    head = "| model | Top-1 | Top-5 | GFLOPs/view (mean ± std) | dense GFLOPs/view | clips/s |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        g = r["gflops_per_view"]
        lines.append(f"| {name} | {_fmt(r['top1'], '.1f')} | {_fmt(r['top5'], '.1f')} | {_fmt(g['mean'], '.4f')} ± "
                     f"{_fmt(g['std'], '.4f')} | {_fmt(r['dense_gflops_per_view'], '.4f')} | "
                     f"{_fmt(r['views_per_second'], '.1f')} |")
    return "\n".join(lines)


def run(args) -> int:
    from ..analysis.bench_accuracy import train_stage
    from ..engine.distributed import DistInfo
    from ..engine.builders import check_writable_dir
    from ..engine.config import load_config
    from ..engine.evaluate import predictions_path
    from ..errors import UserError
    from ..engine.test import run_test

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def log(line):
        print(line, flush=True)

    out = os.path.abspath(args.out)
    check_writable_dir(out, "results folder")
    cache = args.data or os.path.join(os.environ.get("VIDEO_ATS_CACHE", os.path.join(os.path.expanduser("~"),
                                                                                    ".cache", "video-ats")),
                                      "synthetic-quickstart-v2")
    t_all = time.time()
    paths, data_key = _dataset(cache, args.videos_per_class, log)
    data = [f"data.train_annotations={paths['train_csv']}", f"data.val_annotations={paths['val_csv']}",
            f"data.data_root={paths['root']}", f"seed={args.seed}", "device=cpu", "train.progress=false"]
    for flag in ("epochs", "ats_epochs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    epochs = [f"train.epochs={args.epochs}"] if args.epochs else []
    ats_epochs = [f"train.epochs={args.ats_epochs}"] if args.ats_epochs else []
    dense_cfg = load_config(RECIPE, data + epochs + list(args.overrides))
    log(f"[2/4] training the dense TimeSformer ({dense_cfg['train']['epochs']} epochs)")
    dense_ckpt, dense_key, t_dense = train_stage(out, "dense", dense_cfg, data_key, log)
    ats_cfg = load_config(ATS_RECIPE, data + ats_epochs + [f"model.pretrained={dense_ckpt}", *args.overrides])
    log(f"[3/4] fine-tuning it with ATS {ats_cfg['model']['ats']} ({ats_cfg['train']['epochs']} epochs)")
    ats_ckpt, _, t_ats = train_stage(out, "ats", ats_cfg, dense_key, log)
    log("[4/4] evaluating both, 1x3 views")
    info = DistInfo()
    rows = []
    for name, cfg, ckpt in (("TimeSformer-tiny (dense)", dense_cfg, dense_ckpt),
                            ("TimeSformer-tiny + ATS", ats_cfg, ats_ckpt)):
        cfg = dict(cfg, model=dict(cfg["model"], pretrained=None))
        result_path = os.path.join(os.path.dirname(os.path.dirname(ckpt)), "results.json")
        for stale in (result_path, predictions_path(result_path)):   # always re-measure, never resume here
            if os.path.exists(stale):
                os.remove(stale)
        rows.append((name, run_test(cfg, ckpt, result_path, info)))
    text = table(rows)
    classes = dense_cfg["model"]["num_classes"]
    summary = (f"{classes} classes (chance {100.0 / classes:.0f} % Top-1), {rows[0][1]['num_videos']} validation "
               f"videos, 1x3 views, softmax averaged; seed {args.seed}; training {t_dense:.0f} s dense + "
               f"{t_ats:.0f} s ATS (as measured when they ran); total this run {time.time() - t_all:.0f} s")
    print()
    print(text)
    print(summary)
    with open(os.path.join(out, "quickstart.md"), "w") as f:
        f.write(text + "\n\n" + summary + "\n")
    with open(os.path.join(out, "quickstart.json"), "w") as f:
        json.dump({"rows": [{"name": n, **r} for n, r in rows], "summary": summary, "seed": args.seed,
                   "train_seconds": {"dense": t_dense, "ats": t_ats}}, f, indent=2)
    print(f"written to {os.path.join(out, 'quickstart.md')}")
    if args.sweep:
        _benchmark_sweep(ats_cfg, os.path.dirname(os.path.dirname(dense_ckpt)), paths, rows[1][1], args.scales,
                         os.path.join(out, "sweep"))
    return 0


def _benchmark_sweep(ats_cfg, dense_dir: str, paths: dict, ats_result: dict, scales, out_dir: str) -> None:
    """The dense model with ATS off the shelf and the top-K / random baselines (same blocks, K scaled),
    plus the fine-tuned ATS model: one Top-1 vs GFLOPs-per-view table and curve."""
    from ..analysis.sweep import HEADER, format_row, sweep, write_outputs

    print(f"[sweep] dense checkpoint with ATS / top-K / random at K scales {list(scales)}", flush=True)
    cfg = dict(ats_cfg, model=dict(ats_cfg["model"], pretrained=None))
    result = sweep(cfg, os.path.join(dense_dir, "checkpoints", "last.pt"), paths["val_csv"], scales,
                   ["ats", "topk", "random"], (1, 3), data_root=paths["root"], progress=None)
    g = ats_result.get("gflops_per_view") or {}
    result["rows"].append({"selection": "ats fine-tuned", "scale": 1.0,
                           "num_tokens": ats_cfg["model"]["ats"]["num_tokens"], "top1": ats_result["top1"],
                           "top5": ats_result["top5"], "gflops_mean": g.get("mean"), "gflops_std": g.get("std"),
                           "num_videos": ats_result["num_videos"], "num_failed": ats_result["num_failed"]})
    files = write_outputs(result, out_dir)
    print(HEADER)
    for r in result["rows"]:
        print(format_row(r))
    dense = result["rows"][0]
    best = [r for r in result["rows"][1:] if r["selection"].startswith("ats") and r["top1"] is not None
            and r["top1"] >= dense["top1"] - 0.5]
    if best:
        r = min(best, key=lambda r: r["gflops_mean"])
        print(f"cheapest ATS within 0.5 pt of dense Top-1: {r['selection']} K={r['num_tokens']} "
              f"{r['top1']:.1f} vs {dense['top1']:.1f} at {r['gflops_mean']:.4g} GFLOPs/view "
              f"({100 * (1 - r['gflops_mean'] / dense['gflops_mean']):.0f} % fewer)")
    print(f"written to {files['csv']} and {files['png']}")
