"""``video-ats profile``: GFLOPs per view (dense vs ATS) and kept tokens per ATS block on real clips."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..errors import UserError
from . import common


def profile(cfg: Dict[str, Any], inputs: Sequence[str], checkpoint: Optional[str] = None,
            views: Union[None, str, Tuple[int, int]] = None, batch_size: int = 8, data_root: Optional[str] = None,
            plots_dir: Optional[str] = None, max_videos: Optional[int] = None) -> Dict[str, Any]:
    """Profile the config's ATS model on the views of ``inputs`` (``views``: a ``--views`` text or (clips,
    crops), default ``test.views``); returns the JSON-ready report."""
    from ..engine.eval_spec import eval_spec
    from ..engine.evaluate import dense_gflops

    common.check_counts(batch_size=batch_size, max_videos=max_videos)
    model = common.build_eval_model(cfg, checkpoint, need_ats=True, what="profile")
    spec = eval_spec(cfg, model, views=views)
    device = torch.device(spec.device)
    model.to(device)
    settings = spec.settings
    views = spec.views
    records, failures = common.records_from_inputs(inputs, cfg, data_root)
    clips, meta, bad = common.decode_views(records, settings, views, spec.clip_position, max_videos)
    failures += bad
    report: Dict[str, Any] = {
        "model": cfg["model"]["name"], "config": cfg["name"], "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
        "ats": common.ats_dict(model), "views": f"{views[0]}x{views[1]}", "frames": settings["num_frames"],
        "crop_size": settings["crop_size"], "num_videos": len({m["video_index"] for m in meta}),
        "num_views": len(meta), "num_failed": len(failures), "failed": failures,
        "gflops_convention": "fvcore (one multiply-add = one FLOP), per view, on the tokens it kept",
    }
    if clips is None:
        raise UserError("no view could be decoded: " + "; ".join(f"{f['path']}: {f['error']}" for f in failures[:3]))
    with spec.autocast():
        res = common.measure(model, clips, batch_size, device, with_positions=plots_dir is not None)
    dense = dense_gflops(model, settings, device)
    full = common.num_patch_tokens(model, settings) if hasattr(model, "patch_size") else None
    report["patch_tokens"] = full
    report["gflops_per_view"] = {"dense": {"mean": dense, "std": 0.0, "min": dense, "max": dense},
                                 "ats": common.stats(res["gflops"])}
    report["gflops_reduction"] = 1.0 - report["gflops_per_view"]["ats"]["mean"] / dense if dense else None
    blocks = {}
    n_in = torch.full((clips.shape[0],), full or 0, dtype=torch.long)
    for b in sorted(res["kept"]):
        k = model.ats.num_tokens_at(b)
        kept = res["kept"][b]
        entry = {"num_tokens": k, "kept": common.stats(kept)}
        if full:
            bound = common.k_bound(k, n_in)
            entry["k_bound"] = common.stats(bound)
            entry["within_bound"] = bool((kept <= bound.clamp(min=model.ats.min_tokens)).all())
            n_in = kept.long()
        blocks[str(b)] = entry
    report["kept_tokens_per_view"] = blocks
    report["per_view"] = [dict(m, gflops=float(g), kept={str(b): int(res["kept"][b][i]) for b in res["kept"]})
                          for i, (m, g) in enumerate(zip(meta, res["gflops"].tolist()))]
    if plots_dir is not None:
        report["plots"] = write_profile_plots(plots_dir, model, settings, clips, meta, res, report)
    return report


def write_profile_plots(plots_dir: str, model, settings, clips, meta, res, report) -> List[str]:
    from . import plots

    os.makedirs(plots_dir, exist_ok=True)
    out = []
    ks = {b: model.ats.num_tokens_at(b) for b in res["kept"]}
    out.append(plots.plot_kept_histograms({b: res["kept"][b].tolist() for b in res["kept"]},
                                          os.path.join(plots_dir, "kept_tokens_hist.png"), ks,
                                          report.get("patch_tokens"), title=f"{report['model']} ATS"))
    positions = res.get("positions") or {}
    if positions and hasattr(model, "patch_size"):
        seen = set()
        for i, m in enumerate(meta):               # one overlay per video (its first view)
            if m["video_index"] in seen:
                continue
            seen.add(m["video_index"])
            frames = plots.clip_to_frames(clips[i], settings["mean"], settings["std"])
            name = os.path.splitext(os.path.basename(m["path"]))[0]
            path = os.path.join(plots_dir, f"tokens_{len(seen) - 1:03d}_{name}.png")
            out.append(plots.plot_token_overlay(frames, {b: positions[b][i] for b in positions}, model.patch_size,
                                                path, title=f"{os.path.basename(m['path'])} (clip {m['clip_index']}, "
                                                            f"crop {m['crop_index']}): {res['gflops'][i]:.3g} GFLOPs"))
            if len(seen) >= 16:
                break
    else:
        report["plots_note"] = "no kept positions were recorded (the model has no ATS or ToMe block): no token overlays"
    return out


def format_report(r: Dict[str, Any]) -> str:
    g = r["gflops_per_view"]
    lines = [f"{r['model']}  {r['num_videos']} videos, {r['num_views']} views ({r['views']}), "
             f"{r['frames']} frames at {r['crop_size']}px" + (f", {r['patch_tokens']} patch tokens" if r.get("patch_tokens") else ""),
             f"{'GFLOPs/view':14s} {'mean':>10s} {'std':>9s} {'min':>10s} {'max':>10s}"]
    for name in ("dense", "ats"):
        s = g[name]
        lines.append(f"{name:14s} {s['mean']:10.4g} {s['std']:9.2g} {s['min']:10.4g} {s['max']:10.4g}")
    if r.get("gflops_reduction") is not None:
        lines.append(f"reduction      {100 * r['gflops_reduction']:.1f} %")
    lines.append(f"{'ATS block':10s} {'K':>8s} {'kept mean':>10s} {'std':>8s} {'min':>6s} {'max':>6s}")
    for b, e in r["kept_tokens_per_view"].items():
        s = e["kept"]
        lines.append(f"{b:10s} {e['num_tokens']!s:>8s} {s['mean']:10.1f} {s['std']:8.1f} {s['min']:6.0f} {s['max']:6.0f}")
    for f in r["failed"]:
        lines.append(f"failed: {f['path']}: {f['error']}")
    return "\n".join(lines)
