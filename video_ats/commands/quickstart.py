"""`video-ats quickstart`: the whole pipeline on the embedded synthetic dataset, no download.

Generates the synthetic Kinetics-format dataset (cached), fine-tunes a tiny TimeSformer on it, then
the same model with ATS (initialised from the dense run), evaluates both with 1x3 views and prints a
side-by-side table (Top-1, Top-5, GFLOPs/view, clips/s), also written to ``OUT/quickstart.md`` and
``OUT/quickstart.json``. A few minutes on a laptop CPU.
"""
from __future__ import annotations

import json
import logging
import os
import time

HELP = "train + evaluate a tiny TimeSformer with and without ATS on generated videos (no download)"

# the recipe of configs/synthetic/timesformer_tiny.yaml (+ _ats.yaml), kept here so that an installed
# package runs without the repository's configs folder
DATA = dict(classes=4, videos_per_class=40, size=(96, 72), seconds=2.0, fps=30, seed=0, texture_contrast=20.0)
MODEL_KWARGS = "{img_size: 64, patch_size: 16, embed_dim: 128, depth: 4, num_heads: 4, num_frames: 8, sampling_rate: 4}"
ATS = "{blocks: [1, 2], num_tokens: [0.5, 0.3]}"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=os.path.join("runs", "quickstart"),
                        help="results folder (default %(default)s)")
    parser.add_argument("--data", default=None, help="synthetic dataset cache (default: "
                        "$VIDEO_ATS_CACHE or ~/.cache/video-ats, subfolder synthetic-quickstart-v1)")
    parser.add_argument("--epochs", type=int, default=40, help="dense training epochs (default %(default)s)")
    parser.add_argument("--ats-epochs", type=int, default=6, help="ATS fine-tuning epochs (default %(default)s)")
    parser.add_argument("--videos-per-class", type=int, default=DATA["videos_per_class"],
                        help="synthetic videos per class (default %(default)s)")
    parser.add_argument("--sweep", action="store_true",
                        help="then the synthetic benchmark: the dense model with ATS off the shelf and the top-K / "
                             "random baselines at several K scales, plus the fine-tuned ATS model: Top-1 vs GFLOPs "
                             "per view table and curve in OUT/sweep/")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.4, 0.7, 1.0, 1.4, 1.9],
                        help="K scales for --sweep (of the quickstart's K), default %(default)s; put key=value "
                             "overrides before this option")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for both runs")


def _dataset(path: str, videos_per_class: int) -> dict:
    from ..data import make_synthetic

    spec = dict(DATA, videos_per_class=videos_per_class, size=list(DATA["size"]))
    marker = os.path.join(path, "quickstart.json")
    if os.path.isfile(marker):
        with open(marker) as f:
            cached = json.load(f)
        if cached.get("spec") == spec:
            print(f"[1/4] synthetic dataset: cached in {path}", flush=True)
            return cached["paths"]
    t0 = time.time()
    print(f"[1/4] synthetic dataset: writing {spec['classes'] * videos_per_class} videos to {path} ...", flush=True)
    paths = make_synthetic(path, classes=spec["classes"], videos_per_class=videos_per_class,
                           size=tuple(spec["size"]), seconds=spec["seconds"], fps=spec["fps"], seed=spec["seed"],
                           texture_contrast=spec["texture_contrast"])
    with open(marker, "w") as f:
        json.dump({"spec": spec, "paths": paths}, f, indent=1)
    print(f"      done in {time.time() - t0:.0f} s", flush=True)
    return paths


def _training_seconds(out: str, key: str, measured: float, trained: bool):
    """``measured`` if this run trained, else the time recorded by the run that did (None if unknown)."""
    if trained:
        return measured
    try:
        with open(os.path.join(out, "quickstart.json")) as f:
            return json.load(f).get("train_seconds", {}).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _secs(t) -> str:
    return "? s (trained by an earlier run)" if t is None else f"{t:.0f} s"


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
    from ..engine import distributed as D
    from ..engine.builders import check_writable_dir
    from ..engine.config import load_config
    from ..engine.evaluate import predictions_path
    from ..engine.train import train
    from .test import run_test

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = os.path.abspath(args.out)
    check_writable_dir(out, "results folder")
    cache = args.data or os.path.join(os.environ.get("VIDEO_ATS_CACHE", os.path.join(os.path.expanduser("~"),
                                                                                    ".cache", "video-ats")),
                                      "synthetic-quickstart-v1")
    t_all = time.time()
    paths = _dataset(cache, args.videos_per_class)
    base = [
        "model.name=timesformer", f"model.num_classes={DATA['classes']}", f"model.kwargs={MODEL_KWARGS}",
        f"data.train_annotations={paths['train_csv']}", f"data.val_annotations={paths['val_csv']}",
        f"data.data_root={paths['root']}", "data.scale_range=[64, 80]", "data.num_workers=2",
        # the synthetic classes include left- vs right-moving objects: a horizontal flip would swap them
        "data.flip=false",
        "train.batch_size=8", "train.optimizer=adamw", "train.lr=0.001", "train.weight_decay=0.05",
        "train.scheduler=cosine", "train.min_lr=0.00001", "train.clip_grad=1.0", "train.eval_every=0",
        "test.views=1x3", "test.batch_size=8", "device=cpu",
    ]
    dense_dir, ats_dir = os.path.join(out, "dense"), os.path.join(out, "ats")
    dense_cfg = load_config(None, base + [f"train.epochs={args.epochs}", "train.warmup_epochs=1",
                                          "train.warmup_lr=0.0002", f"output_dir={dense_dir}", "name=dense",
                                          *args.overrides])
    ats_cfg = load_config(None, base + [f"model.ats={ATS}", f"train.epochs={args.ats_epochs}", "train.lr=0.0005",
                                        f"model.pretrained={os.path.join(dense_dir, 'checkpoints', 'last.pt')}",
                                        f"output_dir={ats_dir}", "name=ats", *args.overrides])
    info = D.DistInfo()
    t0 = time.time()
    print(f"[2/4] training the dense TimeSformer ({args.epochs} epochs) -> {dense_dir}", flush=True)
    s_dense = train(dense_cfg, info)
    t_dense = time.time() - t0
    t0 = time.time()
    print(f"[3/4] fine-tuning it with ATS {ATS} ({args.ats_epochs} epochs) -> {ats_dir}", flush=True)
    s_ats = train(ats_cfg, info)
    t_ats = time.time() - t0
    # a rerun finds both runs finished and trains nothing: keep the training times the first run measured
    t_dense, t_ats = (_training_seconds(out, "dense", t_dense, bool(s_dense["losses"])),
                      _training_seconds(out, "ats", t_ats, bool(s_ats["losses"])))
    print("[4/4] evaluating both, 1x3 views", flush=True)
    rows = []
    for name, cfg, d in (("TimeSformer-tiny (dense)", dense_cfg, dense_dir), ("TimeSformer-tiny + ATS", ats_cfg, ats_dir)):
        cfg["model"]["pretrained"] = None
        result_path = os.path.join(d, "results.json")
        for stale in (result_path, predictions_path(result_path)):   # always re-measure, never resume here
            if os.path.exists(stale):
                os.remove(stale)
        res = run_test(cfg, os.path.join(d, "checkpoints", "last.pt"), result_path, info)
        rows.append((name, res))
    text = table(rows)
    chance = 100.0 / DATA["classes"]
    summary = (f"{DATA['classes']} classes (chance {chance:.0f} % Top-1), "
               f"{rows[0][1]['num_videos']} validation videos, 1x3 views, softmax averaged; training "
               f"{_secs(t_dense)} dense + {_secs(t_ats)} ATS; total {time.time() - t_all:.0f} s")
    print()
    print(text)
    print(summary)
    with open(os.path.join(out, "quickstart.md"), "w") as f:
        f.write(text + "\n\n" + summary + "\n")
    with open(os.path.join(out, "quickstart.json"), "w") as f:
        json.dump({"rows": [{"name": n, **r} for n, r in rows], "summary": summary,
                   "train_seconds": {"dense": t_dense, "ats": t_ats}}, f, indent=2)
    print(f"written to {os.path.join(out, 'quickstart.md')}")
    if args.sweep:
        _benchmark_sweep(ats_cfg, dense_dir, paths, rows[1][1], args.scales, os.path.join(out, "sweep"))
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
