"""``video-ats predict`` / :func:`video_ats.predict`: top-k class names for single videos, with GFLOPs
per view (dense vs ATS) and the tokens each ATS block kept.

Each video is cut into the evaluation's test views (``test.views``, default 1x3; the clips decoded
once, crops as in evaluation), the views are combined as ``test.combine`` says (softmax mean by
default; ``logit_sum`` takes the softmax of the summed logits) and the top-k classes are named from
``--label-map``, the config's ``data.label_map`` or the ``class_names`` a project checkpoint stores.
A file that cannot be read gets an entry with its ``error`` and the other files are still predicted.

Without ``--config`` the configuration stored in a project checkpoint (``config``) is used, so
``video-ats predict --checkpoint runs/x/checkpoints/last.pt clip.mp4`` is enough.
"""
from __future__ import annotations

import copy
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..errors import UserError
from ..flops import FlopMeter
from . import common

EXTRA_VIDEO_EXTENSIONS = (".avi", ".mov", ".m4v", ".mpg", ".mpeg")


def expand_inputs(inputs: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """Files and folders -> ``[(path, error or None)]``; folders are searched recursively for videos
    (sorted). A missing path or a folder without videos is an error entry, never an exception."""
    from ..data import VIDEO_EXTENSIONS

    exts = tuple(VIDEO_EXTENSIONS) + EXTRA_VIDEO_EXTENSIONS
    out: List[Tuple[str, Optional[str]]] = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for root, dirs, files in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(exts)]
            if not found:
                out.append((item, f"no video files ({', '.join(exts)}) in this folder"))
            out += [(p, None) for p in found]
        elif os.path.isfile(item):
            out.append((item, None))
        else:
            out.append((item, "file not found"))
    return out


def resolve_config(config: Union[None, str, Dict[str, Any]], checkpoint_obj: Optional[dict],
                   overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """``config`` (a path or a loaded config) or else the config stored in the checkpoint, + overrides."""
    from ..engine.config import apply_overrides, load_config, stored_config, validate

    if isinstance(config, dict):
        return validate(apply_overrides(copy.deepcopy(config), overrides))
    if config is not None:
        return load_config(config, overrides)
    cfg = stored_config(checkpoint_obj, overrides)
    if cfg is None:
        raise UserError("predict needs --config: no checkpoint given, or the checkpoint stores no config "
                        "(official checkpoints do not); pass the recipe the model was trained with")
    return cfg


def class_names_for(cfg: Dict[str, Any], model, label_map: Optional[str]) -> Tuple[List[str], str]:
    """Class names in index order and where they came from; ``"class N"`` where nothing names them."""
    from ..data import load_label_map
    from ..data.annotations import index_names

    n = cfg["model"]["num_classes"]
    names, source = None, None
    if label_map:
        names, source = load_label_map(label_map), f"label map {label_map}"
    elif cfg["data"]["label_map"] and os.path.isfile(cfg["data"]["label_map"]):
        names, source = load_label_map(cfg["data"]["label_map"]), f"label map {cfg['data']['label_map']}"
    elif getattr(model, "class_names", None) and not index_names(model.class_names):
        names, source = list(model.class_names), "checkpoint"
    if names is None:
        return [f"class {i}" for i in range(n)], "none (class indices)"
    if len(names) != n:
        print(f"warning: {source} has {len(names)} class names but the model has {n} outputs; outputs without "
              "a name are shown as 'class N'", file=sys.stderr, flush=True)
        names = (names + [f"class {i}" for i in range(len(names), n)])[:n]
    return names, source


@torch.no_grad()
def _predict_one(model, path: str, spec, batch_size: int, with_positions: bool):
    """Logits, GFLOPs and kept tokens of every test view of one video (the clips decoded once)."""
    from ..data import MultiViewDataset, VideoRecord
    from ..data.decode import DecodeError

    ds = MultiViewDataset([VideoRecord(path, -1)], spec.num_frames, spec.sampling_rate, crop_size=spec.crop_size,
                          num_clips=spec.views[0], num_crops=spec.views[1], mean=spec.mean, std=spec.std,
                          clip_position=spec.clip_position, target_fps=spec.target_fps,
                          frame_spacing=spec.frame_spacing, resize=spec.resize)
    clips = []
    for c in range(spec.views[0]):
        try:
            clips.append(ds.load(ds.records[0], c))
        except DecodeError as exc:
            return None, exc.reason
    x_all = torch.cat(clips)                                     # (views, 3, T, c, c)
    device = torch.device(spec.device)
    logits, gflops, kept, positions = [], [], {}, {}
    for start in range(0, x_all.shape[0], batch_size):
        x = x_all[start:start + batch_size].to(device)
        meter = FlopMeter(x.shape[0], device=device)
        hooks = common.KeptPositions(model) if with_positions else None
        with spec.autocast():
            if hooks is not None:
                with hooks:
                    logits.append(model(x, flop_meter=meter).float().cpu())
                for b, lst in hooks.positions.items():
                    positions.setdefault(b, []).extend(lst)
            else:
                logits.append(model(x, flop_meter=meter).float().cpu())
        gflops.append(meter.gflops.cpu())
        for b, t in (getattr(model, "last_kept_tokens", None) or {}).items():
            kept.setdefault(int(b), []).append(t.cpu())
    return {"clips": x_all, "logits": torch.cat(logits), "gflops": torch.cat(gflops),
            "kept": {b: torch.cat(v) for b, v in kept.items()}, "positions": positions}, None


def predict(inputs: Union[str, Sequence[str]], config: Union[None, str, Dict[str, Any]] = None,
            checkpoint: Optional[str] = None, top_k: int = 5, views: Union[None, str, Tuple[int, int]] = None,
            label_map: Optional[str] = None, plots_dir: Optional[str] = None, overrides: Sequence[str] = (),
            batch_size: int = 8, progress=None) -> List[Dict[str, Any]]:
    """Predict the classes of videos (files or folders of videos); one entry per video::

        {"path", "top5": [{"label", "prob"}, ...] (top_k entries), "gflops_per_view": {"dense", "ats"},
         "kept_tokens": {block: [tokens kept, per view]}, "views": "1x3", "error": None | "why"}

    ``config``: a recipe path or a loaded config dict; None takes the config stored in ``checkpoint``.
    ``checkpoint``: project or official weights (None: random init, with a warning). ``views``:
    ``"1x3"`` or ``(clips, crops)`` (default ``test.views``). ``plots_dir``: a kept-token overlay per
    video (ATS models). ``progress``: a callable given one line per finished video.
    """
    from ..checkpoint import read_checkpoint
    from ..engine.eval_spec import eval_spec
    from ..engine.evaluate import dense_gflops, view_probabilities

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [os.fspath(inputs)]
    if not inputs:
        raise UserError("no input: give video files or folders of videos")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    common.check_counts(batch_size=batch_size)
    if checkpoint is not None and not os.path.exists(checkpoint):
        raise UserError(f"checkpoint {checkpoint}: not found")
    # a Hugging Face folder (as test and profile take it) stores no recipe: --config builds the model
    obj = read_checkpoint(checkpoint) if checkpoint and not os.path.isdir(checkpoint) else None
    cfg = resolve_config(config, obj, overrides)
    model = common.build_eval_model(cfg, checkpoint, need_ats=False, what="predict", checkpoint_obj=obj)
    del obj
    spec = eval_spec(cfg, model, views=views)
    device = torch.device(spec.device)
    model.to(device)
    settings = spec.settings
    names, _ = class_names_for(cfg, model, label_map)
    has_ats = getattr(model, "ats", None) is not None
    dense = dense_gflops(model, settings, device)
    with_positions = plots_dir is not None and has_ats and hasattr(model, "patch_size")
    k = min(top_k, len(names))
    results: List[Dict[str, Any]] = []
    for path, error in expand_inputs(inputs):
        entry: Dict[str, Any] = {"path": path, "top5": [], "gflops_per_view": {"dense": dense, "ats": None},
                                 "kept_tokens": {}, "views": spec.views_text, "error": error}
        if error is None:
            out, error = _predict_one(model, path, spec, batch_size, with_positions)
            entry["error"] = error
        if error is None:
            probs = view_probabilities(out["logits"], spec.combine)
            p, idx = probs.topk(k)
            entry["top5"] = [{"label": names[j], "prob": round(float(q), 4)} for q, j in zip(p.tolist(), idx.tolist())]
            g = float(out["gflops"].mean())
            entry["gflops_per_view"] = {"dense": dense, "ats": g if has_ats else None}
            if dense is None and not has_ats:
                entry["gflops_per_view"]["dense"] = g
            entry["kept_tokens"] = {str(b): [int(v) for v in t.tolist()] for b, t in sorted(out["kept"].items())}
            if with_positions and out["positions"]:
                entry["plot"] = _overlay(plots_dir, len(results), path, model, settings, out, entry)
        results.append(entry)
        if progress:
            progress(format_entry(entry))
    from ..numfmt import round_floats
    return round_floats(results)


def _overlay(plots_dir: str, n: int, path: str, model, settings, out, entry) -> str:
    from . import plots

    frames = plots.clip_to_frames(out["clips"][0], settings["mean"], settings["std"])
    name = os.path.splitext(os.path.basename(path))[0]
    top = entry["top5"][0]
    return plots.plot_token_overlay(frames, {b: out["positions"][b][0] for b in out["positions"]}, model.patch_size,
                                    os.path.join(plots_dir, f"tokens_{n:03d}_{name}.png"),
                                    title=f"{os.path.basename(path)}: {top['label']} ({top['prob']:.2f}), view 1 "
                                          f"{float(out['gflops'][0]):.4g} GFLOPs")


def format_entry(e: Dict[str, Any]) -> str:
    """A few readable lines for one prediction entry."""
    if e["error"]:
        return f"{e['path']}: error: {e['error']}"
    lines = [f"{e['path']}"]
    for r, t in enumerate(e["top5"], 1):
        lines.append(f"  {r}. {t['label']:30s} {t['prob']:.4f}")
    g = e["gflops_per_view"]
    if g.get("ats") is not None and g.get("dense"):
        change = 100 * (g["ats"] / g["dense"] - 1)
        line = f"  GFLOPs/view {g['ats']:.4g} with ATS vs {g['dense']:.4g} dense ({change:+.0f} %)"
    else:
        line = f"  GFLOPs/view {g['dense']:.4g} (dense model)" if g.get("dense") is not None else "  GFLOPs/view -"
    lines.append(line)
    if e["kept_tokens"]:
        lines.append("  kept tokens per view: " + ", ".join(
            f"block {b}: {sum(v) / len(v):.1f}" for b, v in e["kept_tokens"].items()))
    if e.get("plot"):
        lines.append(f"  plot: {e['plot']}")
    return "\n".join(lines)
