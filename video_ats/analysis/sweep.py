"""``video-ats sweep``: accuracy and GFLOPs of the model at several K scales x selections (ATS vs the
top-K and random baselines at the same blocks and K, paper Table A.3), plus dense."""
from __future__ import annotations

import csv
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import UserError
from . import common

COLUMNS = ("selection", "scale", "num_tokens", "top1", "top5", "gflops_mean", "gflops_std", "num_videos",
           "num_failed")


def sweep(cfg: Dict[str, Any], checkpoint: Optional[str], annotations: str, scales: Sequence[float],
          selections: Sequence[str], views: Union[None, str, Tuple[int, int]] = None, data_root: Optional[str] = None,
          max_videos: Optional[int] = None, progress=print) -> Dict[str, Any]:
    """Evaluate the config's model dense and with every selection x K scale; ``views``: a ``--views`` text or
    (clips, crops), default ``test.views``. Every run evaluates as the config's EvalSpec says."""
    from ..ats import SELECTIONS
    from ..engine.builders import read_split
    from ..engine.eval_spec import eval_spec
    from ..engine.evaluate import evaluate

    bad = [s for s in selections if s not in SELECTIONS]
    if bad:
        raise UserError(f"unknown selection(s) {bad}; use {list(SELECTIONS)}")
    if any(not s > 0 for s in scales):
        raise UserError(f"--scales must be positive, got {list(scales)}")
    common.check_counts(max_videos=max_videos)
    model = common.build_eval_model(cfg, checkpoint, need_ats=True, what="sweep")
    # no DataLoader workers: a sweep starts 1 + selections x scales evaluations, each would start its own
    spec = eval_spec(cfg, model, views=views, num_workers=0)
    model.to(spec.device)
    records, _ = read_split(annotations, cfg, "sweep", data_root=data_root, class_names=model.class_names,
                            names_from=f"the class names of {checkpoint}", need_labels=True)
    if max_videos:
        records = records[:max_videos]
    base = model.ats.as_dict()
    runs: List[Tuple[str, Optional[float], Optional[Dict[str, Any]]]] = [("dense", None, None)]
    for sel in selections:
        for s in scales:
            runs.append((sel, s, dict(base, selection=sel, num_tokens=common.scale_num_tokens(base["num_tokens"], s))))
    rows = []
    try:
        for sel, s, ats in runs:
            model.set_ats(ats)
            r = evaluate(model, records, spec, num_classes=cfg["model"]["num_classes"])
            g = r.get("gflops_per_view") or {}
            row = {"selection": sel, "scale": s, "num_tokens": ats["num_tokens"] if ats else None,
                   "top1": r["top1"], "top5": r["top5"], "gflops_mean": g.get("mean"), "gflops_std": g.get("std"),
                   "num_videos": r["num_videos"], "num_failed": r["num_failed"],
                   "kept_tokens_per_view": r.get("kept_tokens_per_view")}
            rows.append(row)
            if progress:
                progress(format_row(row))
    finally:
        model.set_ats(base)
    if all(r["num_videos"] == 0 for r in rows):
        raise UserError(f"{annotations}: no video could be evaluated")
    return {"model": cfg["model"]["name"], "config": cfg["name"], "ats": base, "views": spec.views_text,
            "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
            "annotations": os.path.abspath(annotations), "dense_gflops": rows[0]["gflops_mean"], "rows": rows}


def format_row(r: Dict[str, Any]) -> str:
    scale = "-" if r["scale"] is None else f"{r['scale']:g}"
    k = "-" if r["num_tokens"] is None else ",".join(f"{v:g}" for v in r["num_tokens"])
    t1 = "-" if r["top1"] is None else f"{r['top1']:.2f}"
    t5 = "-" if r["top5"] is None else f"{r['top5']:.2f}"
    g = "-" if r["gflops_mean"] is None else f"{r['gflops_mean']:.4g}"
    return f"{r['selection']:14s} {scale:>6s} {k:>20s} {t1:>7s} {t5:>7s} {g:>10s}"


HEADER = f"{'select':14s} {'scale':>6s} {'K':>20s} {'top1':>7s} {'top5':>7s} {'GFLOPs':>10s}"


def write_outputs(result: Dict[str, Any], out_dir: str) -> Dict[str, str]:
    from ..fileio import atomic_write_json
    from ..numfmt import round_floats
    from .plots import plot_accuracy_vs_gflops

    result = round_floats(result)
    atomic_write_json(os.path.join(out_dir, "sweep.json"), result, make_parent=True)
    csv_path = os.path.join(out_dir, "sweep.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in result["rows"]:
            w.writerow([(" ".join(f"{v:g}" for v in r[c]) if c == "num_tokens" and r[c] else
                         ("" if r[c] is None else r[c])) for c in COLUMNS])
    png = plot_accuracy_vs_gflops(result["rows"], os.path.join(out_dir, "accuracy_vs_gflops.png"),
                                  title=f"{result['model']} ({result['views']} views), ATS blocks "
                                        f"{result['ats']['blocks']}")
    return {"json": os.path.join(out_dir, "sweep.json"), "csv": csv_path, "png": png}
