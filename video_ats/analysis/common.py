"""Shared helpers of the analysis commands: inputs -> records, decoded test views, batched forwards
with the FLOP meter, kept-token positions (as the models record them), K scaling."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import UserError
from ..flops import FlopMeter

logger = logging.getLogger("video_ats.analysis")

FRACTION_EPS = 1e-6


def check_counts(**counts) -> None:
    """One-line errors for count options below 1 (``--batch-size``, ``--max-videos``; None = not given),
    before any work: 0 would fail deep in a forward loop, a negative ``--max-videos`` would silently slice
    videos off the end."""
    for name, v in counts.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise UserError(f"--{name.replace('_', '-')} must be an integer >= 1, got {v!r}")


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------
def build_eval_model(cfg: Dict[str, Any], checkpoint: Optional[str], need_ats: bool = True,
                     what: str = "profile", checkpoint_obj: Optional[dict] = None) -> nn.Module:
    """The config's model in eval mode with ``checkpoint`` loaded (or random init with a warning).

    ``checkpoint_obj``: the already read checkpoint of ``checkpoint`` (not read again). The model gets a
    ``class_names`` attribute: the checkpoint's stored class names, or None."""
    from ..checkpoint import load_checkpoint
    from ..engine.builders import build_model

    if need_ats and not cfg["model"]["ats"]:
        raise UserError(f"{what} needs a config with ATS (model.ats is null): pass --config with a recipe that sets "
                        "it, or set e.g. model.ats='{blocks: [4, 7, 10], num_tokens: [0.7, 0.5, 0.35]}'")
    from ..checkpoint import read_checkpoint
    from ..engine.builders import checkpoint_class_names

    if checkpoint is not None and not os.path.exists(checkpoint):
        raise UserError(f"checkpoint {checkpoint}: not found")
    pretrained = cfg["model"]["pretrained"]
    if checkpoint is None and pretrained:
        # the config's own weights stand in for --checkpoint: say which file, resolved, and refuse a path
        # that does not exist from here (a recipe's relative path is relative to the working directory)
        full = os.path.abspath(pretrained)
        if not os.path.isfile(full):
            raise UserError(f"no --checkpoint given and the config's model.pretrained {pretrained!r} does not exist "
                            f"(resolved from the working directory to {full}); pass --checkpoint PATH, or "
                            "model.pretrained=null for a random-init model")
        print(f"note: no --checkpoint given: {what} uses the config's model.pretrained weights {full}",
              file=sys.stderr, flush=True)
    torch.manual_seed(int(cfg.get("seed", 0)))      # a random-init model is the same on every run
    model = build_model(cfg, load_pretrained=checkpoint is None)
    model.class_names = None
    if checkpoint and os.path.isdir(checkpoint):        # a Hugging Face folder: names from its id2label
        report = load_checkpoint(model, checkpoint)
    elif checkpoint:
        obj = checkpoint_obj if checkpoint_obj is not None else read_checkpoint(checkpoint)
        report = load_checkpoint(model, obj)
        model.class_names = checkpoint_class_names(obj) or getattr(model, "class_names", None)
        del obj
        for note in report.get("notes", []):
            logger.info("checkpoint: %s", note)
    elif not pretrained:
        print(f"warning: no --checkpoint given: {what} uses a RANDOMLY INITIALISED model (GFLOPs and kept "
              "tokens of a trained model differ)", file=sys.stderr, flush=True)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def records_from_inputs(inputs: Sequence[str], cfg: Dict[str, Any], data_root: Optional[str] = None):
    """Video files and annotation files (Kinetics CSV / ``path label`` lists) -> (records, failures).

    A missing or unreadable input becomes a failure entry ``{"path", "error"}``, never an exception.
    """
    from ..data import VIDEO_EXTENSIONS, VideoRecord, read_annotations

    records, failures = [], []
    if not inputs:
        raise UserError("no input: give video files or annotation files (CSV / 'path label' lists)")
    for path in inputs:
        if path.lower().endswith(VIDEO_EXTENSIONS) or path.lower().endswith((".avi", ".mov")):
            if not os.path.isfile(path):
                failures.append({"path": path, "error": "file not found"})
            else:
                records.append(VideoRecord(path=path, label=-1))
            continue
        if not os.path.isfile(path):
            failures.append({"path": path, "error": "file not found"})
            continue
        try:
            recs, _ = read_annotations(path, data_root=data_root, label_map=cfg["data"]["label_map"])
        except UserError as exc:
            failures.append({"path": path, "error": str(exc)})
            continue
        records.extend(recs)
    return records, failures


def decode_views(records, settings: Dict[str, Any], views: Tuple[int, int], clip_position: str = "start",
                 max_videos: Optional[int] = None):
    """Decode every test view once (as evaluation cuts them).

    Returns ``(clips, meta, failures)``: clips a (V, 3, T, c, c) tensor (or None when nothing decoded),
    meta one dict per view ``{"path", "video_index", "clip_index", "crop_index"}``, failures
    ``[{"path", "error"}]`` for videos that could not be decoded.
    """
    from ..data import MultiViewDataset

    records = list(records)[:max_videos] if max_videos else list(records)
    ds = MultiViewDataset(records, settings["num_frames"], settings["sampling_rate"],
                          crop_size=settings["crop_size"], num_clips=views[0], num_crops=views[1],
                          mean=settings["mean"], std=settings["std"], clip_position=clip_position,
                          target_fps=settings["target_fps"], frame_spacing=settings["frame_spacing"],
                          resize=settings.get("test_resize", "decoder"))
    clips, meta, failures, failed = [], [], [], set()
    for i in range(len(ds)):
        try:
            item = ds[i]
        except Exception as exc:  # noqa: BLE001 - a broken file must not stop the analysis
            item = {"video": None, "video_index": i // views[0], "path": records[i // views[0]].path,
                    "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        if item["video"] is None:
            if item["video_index"] not in failed:
                failed.add(item["video_index"])
                failures.append({"path": item["path"], "error": item["error"] or "could not be decoded"})
            continue
        for c in range(item["video"].shape[0]):
            clips.append(item["video"][c])
            meta.append({"path": item["path"], "video_index": item["video_index"],
                         "clip_index": item["clip_index"], "crop_index": c})
    return (torch.stack(clips) if clips else None), meta, failures


# ---------------------------------------------------------------------------------------------
# forwards
# ---------------------------------------------------------------------------------------------
class KeptPositions:
    """The (t, p) positions each clip kept at every ATS (or ToMe) block, in the forward run inside the
    ``with`` block: ``positions`` maps block -> list (one per clip of the last such forward) of (n, 2)
    long tensors [t, p]. It reads what the model records itself (``last_kept_positions``); nothing is
    patched or hooked."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.positions: Dict[int, List[torch.Tensor]] = {}
        self._before = None

    def __enter__(self):
        self._before = getattr(self.model, "_kept_index", None)
        return self

    def __exit__(self, *exc):
        record = getattr(self.model, "_kept_index", None)
        if record is not None and record is not self._before:      # a forward ran inside the block
            self.positions = self.model.last_kept_positions


@torch.no_grad()
def measure(model: nn.Module, clips: torch.Tensor, batch_size: int = 8, device=None,
            with_positions: bool = False) -> Dict[str, Any]:
    """Logits (V, classes), GFLOPs (V,) and kept tokens {block: (V,)} of ``model`` on ``clips``, in
    batches of views.

    With ``with_positions`` also ``positions`` {block: [ (n, 2) per view ]} (the model's
    ``last_kept_positions`` of every batch).
    """
    device = device or next(model.parameters()).device
    logits, gflops, kept, positions = [], [], {}, {}
    for start in range(0, clips.shape[0], batch_size):
        x = clips[start:start + batch_size].to(device)
        meter = FlopMeter(x.shape[0], device=device)
        out = model(x, flop_meter=meter)
        if with_positions:
            for b, lst in (getattr(model, "last_kept_positions", None) or {}).items():
                positions.setdefault(b, []).extend(lst)
        logits.append(out.float().cpu())
        gflops.append(meter.gflops.cpu())
        for b, t in (getattr(model, "last_kept_tokens", None) or {}).items():
            kept.setdefault(int(b), []).append(t.cpu())
    out = {"logits": torch.cat(logits) if logits else torch.zeros(0),
           "gflops": torch.cat(gflops) if gflops else torch.zeros(0, dtype=torch.float64),
           "kept": {b: torch.cat(v) for b, v in kept.items()}}
    if with_positions:
        out["positions"] = positions
    return out


def stats(values) -> Optional[Dict[str, float]]:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if t.numel() == 0:
        return None
    return {"mean": float(t.mean()), "std": float(t.std(correction=0)), "min": float(t.min()),
            "max": float(t.max())}


# ---------------------------------------------------------------------------------------------
# K scaling
# ---------------------------------------------------------------------------------------------
def scale_num_tokens(num_tokens: Sequence, s: float) -> List:
    """Every K scaled by ``s``: fractions f·s clamped into (0, 1) (6 decimals), ints round(k·s) ≥ 1."""
    out = []
    for k in num_tokens:
        if isinstance(k, float):
            out.append(min(max(round(k * s, 6), FRACTION_EPS), 1.0 - FRACTION_EPS))
        else:
            out.append(max(1, int(round(k * s))))
    return out


def full_scale(num_tokens: Sequence, full_tokens: int) -> float:
    """The smallest s at which every K covers all ``full_tokens`` tokens (larger s changes nothing)."""
    s = 1.0
    for k in num_tokens:
        s = max(s, (1.0 / k) if isinstance(k, float) else (full_tokens + 0.5) / k)
    return s


def num_patch_tokens(model: nn.Module, settings: Dict[str, Any]) -> int:
    side = settings["crop_size"] // model.patch_size
    return settings["num_frames"] * side * side


def ats_dict(model_or_cfg) -> Dict[str, Any]:
    """The ATS dict of a model (validated form)."""
    ats = getattr(model_or_cfg, "ats", None)
    return ats.as_dict() if ats is not None else {}


def k_bound(num_tokens, n_in: torch.Tensor) -> torch.Tensor:
    """K resolved on ``n_in`` incoming tokens as ATS resolves it (ceil for fractions), capped at ``n_in``."""
    from ..ats import resolve_num_samples

    return torch.minimum(resolve_num_samples(num_tokens, n_in), n_in)
