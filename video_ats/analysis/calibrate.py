"""``video-ats calibrate``: one scale factor s on all ATS K values so that the mean GFLOPs per view
lands within ``tolerance`` of a target without exceeding it.

The clips are decoded once; every trial is one forward with the FLOP meter (no accuracy). GFLOPs grow
with s except where ATS's adaptivity makes a step non-monotone, so the search is a bisection that
keeps the best feasible trial seen (not only the bracket), followed by a grid scan over the reachable
range when bisection alone does not land in the window.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import yaml

from ..engine.device import autocast
from ..errors import UserError
from ..fileio import atomic_write_text
from . import common

TOLERANCE = 0.02


class _Trials:
    """GFLOPs mean per distinct K tuple (cached: different s often round to the same K)."""

    def __init__(self, model, clips, base: Dict[str, Any], batch_size: int, device, precision: str = "float32",
                 progress=None):
        self.model, self.clips, self.base, self.batch_size, self.device = model, clips, base, batch_size, device
        self.precision, self.progress = precision, progress
        self.cache: Dict[Tuple, float] = {}
        self.log: List[Dict[str, Any]] = []

    def __call__(self, s: float) -> Tuple[float, List]:
        ks = common.scale_num_tokens(self.base["num_tokens"], s)
        key = tuple(ks)
        if key not in self.cache:
            t0 = time.perf_counter()
            self.model.set_ats(dict(self.base, num_tokens=ks))
            with autocast(self.device, self.precision):
                g = common.measure(self.model, self.clips, self.batch_size, self.device)["gflops"]
            self.cache[key] = float(g.mean())
            self.log.append({"scale": s, "num_tokens": ks, "gflops_mean": self.cache[key]})
            if self.progress:
                self.progress(f"trial {len(self.cache)}: scale {s:.4g}, K {ks} -> {self.cache[key]:.4g} GFLOPs/view "
                              f"({time.perf_counter() - t0:.1f} s)")
        return self.cache[key], ks

    @property
    def evaluations(self) -> int:
        return len(self.cache)


def calibrate(model, clips: torch.Tensor, settings: Dict[str, Any], target: float, tolerance: float = TOLERANCE,
              batch_size: int = 8, device=None, max_iter: int = 40, progress=None,
              precision: str = "float32") -> Dict[str, Any]:
    """Search s for ``model`` (with ATS) on decoded ``clips``, its forwards in ``precision`` (the
    evaluation's: ATS keeps tokens by attention scores, which the precision moves a little); returns the
    result dict (see module doc)."""
    from ..engine.evaluate import dense_gflops

    if getattr(model, "ats", None) is None:
        raise UserError("calibrate needs a config with ATS (model.ats is null)")
    if not target > 0:
        raise UserError(f"--target-gflops must be positive, got {target}")
    base = model.ats.as_dict()
    device = device or next(model.parameters()).device
    dense = dense_gflops(model, settings, device)
    trials = _Trials(model, clips, base, batch_size, device, precision, progress)
    full = common.num_patch_tokens(model, settings)
    s_hi = common.full_scale(base["num_tokens"], full)
    s_lo = min(((0.5 / full) / k if isinstance(k, float) else 0.5 / k) for k in base["num_tokens"])
    g_lo, _ = trials(s_lo)
    g_hi, _ = trials(s_hi)
    reach_lo, reach_hi = g_lo, g_hi
    low = tolerance_low(target, tolerance)
    try:
        if dense is not None and target >= dense:
            raise UserError(f"target {target:.4g} GFLOPs is at or above the dense model's {dense:.4g} GFLOPs per "
                            f"view: no ATS needed (model.ats=null); ATS reaches [{reach_lo:.4g}, {reach_hi:.4g}]")
        if target < reach_lo:
            raise UserError(f"target {target:.4g} GFLOPs is below the minimum reachable {reach_lo:.4g} GFLOPs per "
                            f"view (every K = 1 token); reachable range [{reach_lo:.4g}, {reach_hi:.4g}] with these "
                            f"ATS blocks — move ATS to earlier blocks for less")
        if target > reach_hi and reach_hi < low:
            raise UserError(f"target {target:.4g} GFLOPs is above the maximum reachable {reach_hi:.4g} GFLOPs per "
                            f"view with ATS at blocks {base['blocks']} (every K = all tokens; dense is "
                            f"{dense:.4g}); reachable range [{reach_lo:.4g}, {reach_hi:.4g}]")
        best = _best(trials, target)
        aim = tolerance_low(target, tolerance / 4)       # bisect a little past the window's edge
        lo, hi = s_lo, s_hi
        for _ in range(max_iter):
            if best is not None and best[0] >= aim:
                break
            mid = (lo * hi) ** 0.5 if lo > 0 else (lo + hi) / 2     # geometric: s spans decades
            g, ks = trials(mid)
            if g <= target:
                lo = mid
            else:
                hi = mid
            best = _best(trials, target)
            same_k = common.scale_num_tokens(base["num_tokens"], lo) == common.scale_num_tokens(base["num_tokens"], hi)
            if same_k or hi - lo < 1e-9:
                break
        if best is None or best[0] < low:                  # non-monotone or coarse steps: scan the range
            for i in range(1, 33):
                trials(s_lo * (s_hi / s_lo) ** (i / 33))
                best = _best(trials, target)
                if best is not None and best[0] >= low:
                    break
        if best is None or best[0] < low:
            above = min((g for g in trials.cache.values() if g > target), default=None)
            raise UserError(f"no K scale lands within {100 * tolerance:g} % below {target:.4g} GFLOPs: the closest "
                            f"are {best[0] if best else reach_lo:.4g} (below) and "
                            f"{above if above is not None else reach_hi:.4g} (above) after {trials.evaluations} "
                            f"evaluations: GFLOPs jump over this target (coarse integer K or ATS adaptivity); "
                            f"pick a target outside the gap, use fraction K, or calibrate on more clips")
    finally:
        model.set_ats(base)
    g, ks = best
    chosen = dict(base, num_tokens=ks)
    return {"target_gflops": target, "tolerance": tolerance, "gflops_mean": g, "num_tokens": ks,
            "scale": next(t["scale"] for t in trials.log if t["num_tokens"] == ks), "ats": chosen,
            "base_num_tokens": base["num_tokens"], "dense_gflops": dense, "reachable": [reach_lo, reach_hi],
            "evaluations": trials.evaluations, "num_views": int(clips.shape[0]), "trials": trials.log}


def tolerance_low(target: float, tolerance: float) -> float:
    return target * (1.0 - tolerance)


def _best(trials: _Trials, target: float) -> Optional[Tuple[float, List]]:
    feasible = [(g, list(k)) for k, g in trials.cache.items() if g <= target]
    return max(feasible, key=lambda t: t[0]) if feasible else None


def run_calibration(cfg: Dict[str, Any], checkpoint: Optional[str], annotations: str, target: float,
                    data_root: Optional[str] = None, max_videos: Optional[int] = None,
                    views: Union[None, str, Tuple[int, int]] = None, batch_size: int = 8,
                    tolerance: float = TOLERANCE, progress=None) -> Dict[str, Any]:
    """Config + checkpoint + annotation file -> calibration result (clips decoded once, cut and run as the
    config's EvalSpec says; ``views``: a ``--views`` text or (clips, crops), default ``test.views``).
    ``progress``: a callable given one line per step (decoding, each trial), e.g. ``print``."""
    from ..engine.builders import read_split
    from ..engine.eval_spec import eval_spec

    common.check_counts(batch_size=batch_size, max_videos=max_videos)
    if not target > 0:                      # before decoding: calibrate() says it again for library callers
        raise UserError(f"--target-gflops must be positive, got {target}")
    if not 0 <= tolerance < 1:
        raise UserError(f"--tolerance must be a fraction in [0, 1) of the target, got {tolerance}")
    model = common.build_eval_model(cfg, checkpoint, need_ats=True, what="calibrate")
    spec = eval_spec(cfg, model, views=views)
    device = torch.device(spec.device)
    model.to(device)
    records, _ = read_split(annotations, cfg, "calibration", data_root=data_root)
    views = spec.views
    n = min(len(records), max_videos) if max_videos else len(records)
    t0 = time.perf_counter()
    if progress:
        progress(f"decoding {n} videos x {views[0] * views[1]} views ...")
    clips, meta, failures = common.decode_views(records, spec.settings, views, spec.clip_position, max_videos)
    if progress:
        progress(f"decoded {0 if clips is None else clips.shape[0]} views in {time.perf_counter() - t0:.1f} s "
                 f"({len(failures)} videos failed); searching K, one forward over all views per trial")
    if clips is None:
        raise UserError(f"{annotations}: no clip could be decoded (first failure: "
                        f"{failures[0]['path']}: {failures[0]['error']})" if failures else f"{annotations}: no clips")
    out = calibrate(model, clips, spec.settings, target, tolerance, batch_size, device, progress=progress,
                    precision=spec.precision)
    out.update(num_videos=len({m["video_index"] for m in meta}), num_failed=len(failures), failed=failures,
               views=spec.views_text)
    return out


def write_override(result: Dict[str, Any], path: str, base_config: Optional[str] = None) -> str:
    """YAML ``model: {ats: {...}}`` (with ``_base_`` pointing at the calibrated config when known, so the
    file also works as ``--config`` on its own)."""
    data: Dict[str, Any] = {}
    if base_config:
        data["_base_"] = os.path.abspath(base_config)
    data["model"] = {"ats": result["ats"]}
    header = (f"# video-ats calibrate: ATS K scaled by {result['scale']:.4g} -> mean {result['gflops_mean']:.4g} "
              f"GFLOPs/view (target {result['target_gflops']:.4g}, dense {result['dense_gflops']:.4g}),\n"
              f"# measured on {result['num_views']} views ({result['views']}) in {result['evaluations']} "
              "evaluations. Use as --config, or merge the model.ats section into another recipe.\n")
    atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None),
                      "calibration override", make_parent=True)
    return path
