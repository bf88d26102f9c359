"""Multi-view evaluation with per-clip GFLOPs, streamed per-video predictions and exact resume.

The test set is split into *views*: ``num_clips`` temporal clips x ``num_crops`` spatial crops per
video (``"1x3"``). Each video's views are combined into one score vector — ``softmax_mean`` (average
of softmax scores, MMAction2 and the paper's protocol) or ``logit_sum`` (PySlowFast's sum of logits) —
and Top-1/Top-5 are plain (micro) accuracies over videos (torchmetrics ``MulticlassAccuracy(
average="micro")``; its default, ``macro``, is a per-class mean).

GFLOPs are counted per view (one clip through the model) from the tokens that view actually kept
(``video_ats.flops.FlopMeter`` attached to the very forward that gives the scores), never on a padded
batch; the dense model's GFLOPs per view (ATS switched off) are reported next to them.

Streaming and resume: videos are sharded over ranks (video ``v`` on rank ``v % world``) and batched
in a fixed order of whole videos (``test.batch_size`` videos per batch with all their views). After
each batch every rank appends its videos' records to ``<output>.partial/rank<R>.jsonl`` (flushed).
A rerun of the same command reads these files, skips finished batches and recomputes the others in
the same composition, so the final result is identical to an uninterrupted run. At the end rank 0
merges everything into ``<output stem>.predictions.jsonl`` (sorted by video) and ``results.json``.

How to evaluate (views, combination, frames, precision, ...) is one
:class:`~video_ats.engine.eval_spec.EvalSpec`. Reusable pieces: :func:`build_test_loader`,
:func:`evaluate`, :func:`summarize`, :func:`dense_gflops`, :func:`combine_views`.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..choices import COMBINE_MODES
from ..errors import UserError
from ..fileio import atomic_write, atomic_write_json, describe_os_error
from ..flops import FlopMeter, count_gflops
from . import distributed
from .builders import cap_workers
from .eval_spec import EvalSpec

logger = logging.getLogger("video_ats.engine")

RESULTS_VERSION = 1


# ------------------------------------------------------------------------------------------------
# view combination and metrics
# ------------------------------------------------------------------------------------------------
def combine_views(logits: torch.Tensor, mode: str = "softmax_mean") -> torch.Tensor:
    """(views, classes) logits of one video -> (classes,) float64 score vector."""
    logits = logits.double()
    if mode == "softmax_mean":
        return torch.softmax(logits, dim=-1).mean(0)
    if mode == "logit_sum":
        return logits.sum(0)
    raise UserError(f"view combination must be one of {COMBINE_MODES}, got {mode!r}")


def view_probabilities(logits: torch.Tensor, mode: str = "softmax_mean") -> torch.Tensor:
    """(views, classes) logits of one video -> (classes,) probabilities: the softmax mean, or the softmax
    of the summed logits for ``logit_sum``."""
    scores = combine_views(logits, mode)
    return scores if mode == "softmax_mean" else torch.softmax(scores, dim=-1)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int) -> float:
    """Plain (micro) Top-k accuracy in percent, via torchmetrics."""
    from torchmetrics.classification import MulticlassAccuracy

    k = min(k, num_classes)
    metric = MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro")
    return float(metric(scores.float(), labels.long())) * 100.0


def _stats(values: Sequence[float]) -> Optional[Dict[str, float]]:
    if not values:
        return None
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std(correction=0)), "min": float(t.min()),
            "max": float(t.max())}


def summarize(records: Iterable[dict], num_classes: int) -> Dict[str, Any]:
    """Metrics of per-video records (as written to the predictions file)."""
    records = sorted(records, key=lambda r: r["video_index"])
    good = [r for r in records if r.get("error") is None]
    failed = [{"path": r["path"], "error": r["error"]} for r in records if r.get("error") is not None]
    out: Dict[str, Any] = {"num_videos": len(good), "num_failed": len(failed), "failed": failed}
    if good:
        scores = torch.tensor([r["scores"] for r in good], dtype=torch.float64)
        labels = torch.tensor([r["label"] for r in good], dtype=torch.long)
        if (labels < 0).any():
            raise UserError("the test annotations have videos without labels (label -1); accuracy needs labels")
        out["top1"] = topk_accuracy(scores, labels, num_classes, 1)
        out["top5"] = topk_accuracy(scores, labels, num_classes, 5)
        out["top5_k"] = min(5, num_classes)
    else:
        out["top1"] = out["top5"] = None
    out["gflops_per_view"] = _stats([g for r in good for g in r["gflops"]])
    kept: Dict[str, List[float]] = {}
    for r in good:
        for blk, v in (r.get("kept_tokens") or {}).items():
            kept.setdefault(blk, []).extend(v)
    out["kept_tokens_per_view"] = {blk: _stats(v) for blk, v in sorted(kept.items(), key=lambda kv: int(kv[0]))}
    return out


# ------------------------------------------------------------------------------------------------
# loader
# ------------------------------------------------------------------------------------------------
def shard_batches(num_videos: int, num_clips: int, batch_videos: int, rank: int = 0,
                  world_size: int = 1) -> List[List[int]]:
    """Item-index batches of this rank: whole videos ``v % world == rank``, ``batch_videos`` per batch."""
    mine = list(range(rank, num_videos, world_size))
    out = []
    for i in range(0, len(mine), batch_videos):
        out.append([v * num_clips + c for v in mine[i:i + batch_videos] for c in range(num_clips)])
    return out


def build_test_loader(records: Sequence, settings: Dict[str, Any], views: Tuple[int, int],
                      clip_position: str = "start", batch_videos: int = 4, rank: int = 0, world_size: int = 1,
                      num_workers: int = 0, batches: Optional[List[List[int]]] = None):
    """A DataLoader over the multi-view items of this rank's videos (whole videos per batch).

    ``settings``: :func:`video_ats.engine.builders.model_data_settings` output. ``batches`` restricts
    the loader to these item batches (resume); default: all of this rank's batches.
    Returns ``(loader, dataset)``; each batch is :func:`video_ats.data.collate_views` output.
    """
    from ..data import MultiViewDataset, collate_views

    num_clips, num_crops = views
    ds = MultiViewDataset(records, settings["num_frames"], settings["sampling_rate"],
                          crop_size=settings["crop_size"], num_clips=num_clips, num_crops=num_crops,
                          mean=settings["mean"], std=settings["std"], clip_position=clip_position,
                          target_fps=settings["target_fps"], frame_spacing=settings["frame_spacing"],
                          resize=settings.get("test_resize", "decoder"))
    if batches is None:
        batches = shard_batches(len(records), num_clips, batch_videos, rank, world_size)
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate_views, num_workers=num_workers,
                        persistent_workers=False)
    return loader, ds


# ------------------------------------------------------------------------------------------------
# prediction store (streaming + resume)
# ------------------------------------------------------------------------------------------------
def predictions_path(output: str) -> str:
    stem = output[:-5] if output.endswith(".json") else output
    return stem + ".predictions.jsonl"


class PredictionStore:
    """Per-video records streamed to ``<output>.partial/rank<R>.jsonl``; merged at the end."""

    def __init__(self, output: str, fingerprint: Dict[str, Any], rank: int):
        self.output = output
        self.final = predictions_path(output)
        self.partial_dir = output + ".partial"
        self.fingerprint = fingerprint
        self.rank = rank
        self._fh = None

    def _read(self, path: str) -> List[dict]:
        out = []
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":           # a line cut short by a kill: ignored
            lines = lines[:-1]
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if i == 0 and "header" in rec:
                if rec["header"] != self.fingerprint:
                    diff = sorted(k for k in set(rec["header"]) | set(self.fingerprint)
                                  if rec["header"].get(k) != self.fingerprint.get(k))
                    raise UserError(f"{path} holds predictions of a different evaluation (differs in: "
                                    f"{', '.join(diff)}); delete it (and {self.partial_dir}) or choose "
                                    "another --output")
                continue
            if "video_index" in rec:
                out.append(rec)
        return out

    def load_done(self) -> Dict[int, dict]:
        done: Dict[int, dict] = {}
        files = ([self.final] if os.path.isfile(self.final) else []) + \
            sorted(glob.glob(os.path.join(self.partial_dir, "rank*.jsonl")))
        for path in files:
            for rec in self._read(path):
                done[int(rec["video_index"])] = rec
        return done

    def _path(self) -> str:
        return os.path.join(self.partial_dir, f"rank{self.rank}.jsonl")

    def _fail(self, exc: OSError) -> UserError:
        return UserError(f"cannot write predictions {self._path()}: {describe_os_error(exc, self._path())}; "
                         "the predictions so far are kept, rerun the same command to resume")

    def open(self) -> None:
        path = self._path()
        try:
            os.makedirs(self.partial_dir, exist_ok=True)
            if os.path.isfile(path):                 # cut a half-written last line before appending
                with open(path, "rb+") as f:
                    data = f.read()
                    cut = data.rfind(b"\n") + 1
                    if cut != len(data):
                        f.truncate(cut)
            new = not os.path.isfile(path) or os.path.getsize(path) == 0
            self._fh = open(path, "a", encoding="utf-8")
            if new:
                self._fh.write(json.dumps({"header": self.fingerprint}) + "\n")
                self._fh.flush()
        except OSError as exc:
            self.close()
            raise self._fail(exc) from None

    def write(self, records: List[dict]) -> None:
        if self._fh is None:
            self.open()
        try:
            self._fh.write("".join(json.dumps(r) + "\n" for r in records))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            self.close()
            raise self._fail(exc) from None

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:      # a failed flush of a full disk: the error was reported by write()
                pass

    def finalize(self, records: List[dict]) -> None:
        """Rank 0: write the merged, sorted predictions file atomically and drop the partial files."""
        def write(f):
            f.write(json.dumps({"header": self.fingerprint}) + "\n")
            for r in sorted(records, key=lambda r: r["video_index"]):
                f.write(json.dumps(r) + "\n")
        atomic_write(self.final, write, "predictions", binary=False,
                     hint=f"the predictions so far are kept in {self.partial_dir}; rerun the same command")
        shutil.rmtree(self.partial_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def dense_gflops(model: nn.Module, settings: Dict[str, Any], device=None) -> Optional[float]:
    """GFLOPs of one view through ``model`` with ATS (and ToMe) switched off (the dense baseline)."""
    device = device or next(model.parameters()).device
    x = torch.zeros(1, 3, settings["num_frames"], settings["crop_size"], settings["crop_size"], device=device)
    saved = {name: getattr(model, name, None) for name in ("ats", "tome")}
    saved = {name: spec for name, spec in saved.items() if spec is not None}
    if any(not hasattr(model, f"set_{name}") for name in saved):
        return None
    try:
        for name in saved:
            getattr(model, f"set_{name}")(None)
        return float(count_gflops(model, x)[0])
    finally:
        for name, spec in saved.items():
            getattr(model, f"set_{name}")(spec)


def _video_records(batch: dict, logits: torch.Tensor, gflops: torch.Tensor, kept: Dict[int, torch.Tensor],
                   videos: Dict[int, Tuple[str, int]], combine: str) -> List[dict]:
    """Per-video records of one batch (all views of each video are in it)."""
    failures: Dict[int, str] = {}
    for f in batch["failures"]:
        failures.setdefault(int(f["video_index"]), f["error"] or "could not be decoded")
    vids = batch["video_index"]
    out = []
    for v, (path, label) in sorted(videos.items()):
        if v in failures:
            out.append({"video_index": v, "path": path, "label": label, "error": failures[v]})
            continue
        sel = (vids == v).nonzero().flatten()
        if sel.numel() == 0:
            out.append({"video_index": v, "path": path, "label": label, "error": "no views decoded"})
            continue
        out.append({
            "video_index": v, "path": path, "label": label, "error": None,
            "scores": combine_views(logits[sel], combine).tolist(),
            "gflops": gflops[sel].tolist(),
            "kept_tokens": {str(b): t[sel].tolist() for b, t in kept.items()},
        })
    return out


def evaluate(model: nn.Module, records: Sequence, spec: Union[EvalSpec, Mapping[str, Any]], *,
             num_classes: Optional[int] = None, output: Optional[str] = None, progress: bool = False,
             dist_info: Optional[distributed.DistInfo] = None, fingerprint: Optional[Dict[str, Any]] = None,
             **spec_fields) -> Dict[str, Any]:
    """Evaluate ``model`` on ``records`` with multi-view testing as ``spec`` says; returns the results dict
    (all ranks).

    ``spec``: an :class:`EvalSpec` (:func:`~video_ats.engine.eval_spec.eval_spec` builds one from a
    config), or the short form for scripts: a frame-settings dict (``model_data_settings``) with the
    other spec fields as keywords (``views=(1, 3), combine=..., batch_videos=...``) and ``fingerprint``
    as the spec's subject. ``output``: a ``results.json`` path; per-video predictions stream next to it
    and a rerun resumes (see the module docstring) unless its spec's fingerprint differs; without it
    nothing is written. Under torchrun pass ``dist_info``; videos are sharded over ranks and the
    returned dict holds all of them.
    """
    if not isinstance(spec, EvalSpec):
        spec = EvalSpec.from_settings(spec, subject=fingerprint or {}, **spec_fields)
    elif spec_fields or fingerprint is not None:
        raise TypeError(f"evaluate() takes an EvalSpec or settings + spec fields, not both "
                        f"(got {sorted(spec_fields) + (['fingerprint'] if fingerprint is not None else [])})")
    info = dist_info or distributed.DistInfo()
    device = torch.device(spec.device) if spec.device is not None else next(model.parameters()).device
    num_classes = num_classes or getattr(model, "num_classes", None)
    num_clips, num_crops = spec.views
    settings = spec.settings
    header = dict(spec.fingerprint(), num_videos=len(records))
    store = PredictionStore(output, header, info.rank) if output else None
    done = store.load_done() if store else {}
    if done and info.is_main:       # a rerun of the same evaluation: say what it takes over, and how to redo it
        print(f"resuming: {len(done)} of {len(records)} videos already evaluated with these views and this model "
              f"({store.final}); delete that file to evaluate them again", flush=True)
    all_batches = shard_batches(len(records), num_clips, spec.batch_videos, info.rank, info.world_size)
    pending = [b for b in all_batches if any(i // num_clips not in done for i in b)]
    was_training = model.training
    model.eval()
    dense = dense_gflops(model, settings, device)
    loader, _ = build_test_loader(records, settings, spec.views, spec.clip_position, spec.batch_videos, info.rank,
                                  info.world_size, cap_workers(spec.num_workers), batches=pending)
    mine: Dict[int, dict] = {v: r for v, r in done.items() if v % info.world_size == info.rank}
    forward_s, n_views = 0.0, 0
    bar = None
    if progress and info.is_main and pending:
        from tqdm import tqdm
        bar = tqdm(total=len(all_batches), initial=len(all_batches) - len(pending), desc="test", unit="batch",
                   dynamic_ncols=True)
    t_start = time.perf_counter()
    try:
        for items, batch in zip(pending, loader):
            vids = sorted({i // num_clips for i in items})
            videos = {v: (records[v].path, int(records[v].label)) for v in vids}
            if batch["video"] is not None:
                x = batch["video"].to(device, non_blocking=True)
                meter = FlopMeter(x.shape[0], device=device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                with spec.autocast(device):
                    logits = model(x, flop_meter=meter)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                forward_s += time.perf_counter() - t0
                n_views += x.shape[0]
                logits = logits.float().cpu()
                gflops = meter.gflops.cpu()
                kept = {b: t.cpu() for b, t in (getattr(model, "last_kept_tokens", None) or {}).items()}
            else:
                logits, gflops, kept = torch.zeros(0, num_classes), torch.zeros(0), {}
            recs = [r for r in _video_records(batch, logits, gflops, kept, videos, spec.combine)
                    if r["video_index"] not in mine]
            for r in recs:
                mine[r["video_index"]] = r
            if store is not None and recs:
                store.write(recs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(views_per_s=f"{n_views / max(forward_s, 1e-9):.1f}")
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
        model.train(was_training)
    wall = time.perf_counter() - t_start

    gathered = distributed.all_gather_objects({"records": list(mine.values()), "views": n_views, "forward_s": forward_s,
                                     "wall_s": wall})
    merged: Dict[int, dict] = {}
    for part in gathered:
        for r in part["records"]:
            merged.setdefault(int(r["video_index"]), r)
    missing = sorted(set(range(len(records))) - set(merged))
    if missing:
        raise RuntimeError(f"evaluation lost {len(missing)} videos (first index {missing[0]}); this is a bug")
    total_views = sum(p["views"] for p in gathered)
    total_fwd = max(p["forward_s"] for p in gathered) if gathered else 0.0
    results: Dict[str, Any] = {"version": RESULTS_VERSION}
    results.update(summarize(merged.values(), num_classes))
    results.update({
        "views": spec.views_text,
        "num_clips": num_clips, "num_crops": num_crops,
        "combine": spec.combine, "clip_position": spec.clip_position,
        "frame_spacing": spec.frame_spacing, "resize": spec.resize, "precision": spec.precision,
        "dense_gflops_per_view": dense,
        "gflops_convention": "fvcore (one multiply-add = one FLOP), counted per view on the tokens it kept",
        "views_per_second": (total_views / total_fwd) if total_fwd > 0 else None,
        "views_evaluated_this_run": total_views,
        "world_size": info.world_size,
        "num_classes": num_classes,
        "frames": spec.num_frames, "sampling_rate": spec.sampling_rate, "crop_size": spec.crop_size,
    })
    if results["gflops_per_view"] and dense:
        results["gflops_reduction"] = 1.0 - results["gflops_per_view"]["mean"] / dense
    if store is not None:
        results["predictions"] = os.path.abspath(store.final)
        if info.is_main:
            store.finalize(list(merged.values()))
    distributed.barrier()
    return results


def write_results(results: Dict[str, Any], path: str) -> None:
    """``results.json`` written atomically."""
    atomic_write_json(path, results, "results",
                      hint="the predictions are kept; rerun the same command to write the results")
