"""Fine-tuning loop: timm optimiser / scheduler / mixup, mixed precision (``train.amp``: float16 on CUDA,
bfloat16 on CUDA or CPU), gradient accumulation and clipping, DDP under torchrun, TensorBoard, periodic
validation, atomic checkpoints and auto-resume.

A run is a :class:`_Run` moved through named steps: :func:`_build` (model, data, optimiser),
:func:`_restore` (a resumed checkpoint's states), :func:`_run_epochs` → :func:`_train_epoch`
(:func:`_forward_backward`, :func:`_optimizer_step`) → :func:`_end_epoch` (:func:`_validate`,
:func:`_save_last`).

Checkpoints (``OUTPUT_DIR/checkpoints/last.pt``; ``best.pt`` after the best validation) hold
``model, optimizer, scheduler, scaler, epoch, step, step_in_epoch, rng, config, arch, best_top1`` and
are written by rank 0 with :func:`video_ats.checkpoint.save_state` (temp file + rename: a crash or a
Ctrl-C leaves the previous file intact). Rerunning the same command continues from ``last.pt`` at the
exact optimiser step: the data order is a function of (seed, epoch) and the RNG states are restored.

Public: :func:`train` (the whole run), :func:`build_optimizer`, :func:`build_scheduler`,
:func:`build_train_loader`, :class:`EpochSampler`.
"""
from __future__ import annotations

import logging
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ..checkpoint import read_checkpoint, save_state
from ..errors import UserError, unwrap_worker_error
from ..fileio import FolderLock, atomic_write_text, first_missing_dir, remove_stale_temp_files
from . import distributed
from .builders import build_model, cap_workers, check_writable_dir, model_data_settings, read_split
from .config import default_config, dump_config, parse_views, schema_keys
from .device import amp_precision, autocast
from .eval_spec import EvalSpec, eval_spec

logger = logging.getLogger("video_ats.engine")
BAD_VIDEOS_NAME = "bad_videos.txt"


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
class EpochSampler(Sampler):
    """Deterministic shuffled order per (seed, epoch), sharded like DistributedSampler (padded so all
    ranks see the same count), truncated to ``num_samples`` per rank and able to start mid-epoch."""

    def __init__(self, size: int, num_samples: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.size, self.num_samples, self.rank, self.world, self.seed = size, num_samples, rank, world_size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def indices(self) -> List[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = math.ceil(self.size / self.world)
        order = (order * (per_rank * self.world // max(self.size, 1) + 1))[:per_rank * self.world]
        return order[self.rank::self.world][:self.num_samples]

    def __iter__(self):
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


def build_train_loader(cfg: Dict[str, Any], records, settings: Dict[str, Any], info: distributed.DistInfo):
    """(loader, dataset, sampler, updates_per_epoch, accum) for the training split."""
    from ..data import TrainDataset, preload_videos

    t = cfg["train"]
    lo, hi = cfg["data"]["scale_range"]
    crop = settings["crop_size"]
    if lo < crop:          # a recipe written for 224 crops used with a small model: keep the ratio
        lo, hi = int(round(crop * 256 / 224)), int(round(crop * 320 / 224))
        logger.info("data.scale_range below the crop size; using [%d, %d]", lo, hi)
    ds = TrainDataset(records, settings["num_frames"], settings["sampling_rate"], crop_size=crop,
                      scale_range=(lo, hi), mean=settings["mean"], std=settings["std"], flip=cfg["data"]["flip"],
                      target_fps=settings["target_fps"], max_retries=cfg["data"]["max_retries"], seed=cfg["seed"],
                      frame_spacing=settings["frame_spacing"],
                      preloaded=preload_videos([r.path for r in records]) if cfg["data"]["preload"] else None)
    bs, world = t["batch_size"], info.world_size
    per_step = bs * world
    gb = t["global_batch_size"] or per_step
    if gb % per_step:
        raise UserError(f"train.global_batch_size {gb} is not a multiple of batch_size x world size = "
                        f"{bs} x {world}; gradient accumulation needs a whole number of batches")
    accum = gb // per_step
    per_rank = math.ceil(len(records) / world)
    micro = per_rank // bs            # whole batches only (mixup needs even, equal batches)
    updates = micro // accum
    if updates < 1:
        raise UserError(f"{len(records)} training videos are too few for one optimiser step of global batch "
                        f"{gb} (batch_size {bs} x {world} ranks x {accum} accumulation); lower train.batch_size "
                        "or train.global_batch_size")
    sampler = EpochSampler(len(records), updates * accum * bs, info.rank, world, cfg["seed"])
    nw = cap_workers(cfg["data"]["num_workers"])
    loader = DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=nw, drop_last=True,
                        pin_memory=info.device.type == "cuda", persistent_workers=False,
                        generator=torch.Generator().manual_seed(cfg["seed"]))
    return loader, ds, sampler, updates, accum


# ------------------------------------------------------------------------------------------------
# optimisation
# ------------------------------------------------------------------------------------------------
def build_optimizer(cfg: Dict[str, Any], model: nn.Module):
    from timm.optim import create_optimizer_v2

    t = cfg["train"]
    try:
        return create_optimizer_v2(model, opt=t["optimizer"], lr=t["lr"], weight_decay=t["weight_decay"],
                                   momentum=t["momentum"])
    except (ValueError, AssertionError, KeyError) as exc:
        raise UserError(f"train.optimizer {t['optimizer']!r}: {exc}") from None


def build_scheduler(cfg: Dict[str, Any], optimizer, updates_per_epoch: int):
    """A timm scheduler stepped per optimiser update (``step_update``), or None."""
    from timm.scheduler import create_scheduler_v2

    t = cfg["train"]
    if t["scheduler"] == "none":
        return None
    sched, _ = create_scheduler_v2(
        optimizer, sched=t["scheduler"], num_epochs=t["epochs"], decay_epochs=t["decay_epochs"],
        decay_milestones=list(t["decay_milestones"]), decay_rate=t["decay_rate"], min_lr=t["min_lr"],
        warmup_lr=t["warmup_lr"], warmup_epochs=t["warmup_epochs"], step_on_epochs=False,
        updates_per_epoch=updates_per_epoch)
    return sched


def build_loss(cfg: Dict[str, Any], num_classes: int):
    """(mixup or None, loss function). Mixup targets already carry the label smoothing."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    t = cfg["train"]
    if t["mixup"] > 0 or t["cutmix"] > 0:
        if t["batch_size"] % 2:
            raise UserError(f"mixup/cutmix need an even train.batch_size, got {t['batch_size']}")
        mix = Mixup(mixup_alpha=t["mixup"], cutmix_alpha=t["cutmix"], prob=t["mixup_prob"],
                    switch_prob=t["mixup_switch_prob"], mode="batch", label_smoothing=t["label_smoothing"],
                    num_classes=num_classes)
        return mix, SoftTargetCrossEntropy()
    if t["label_smoothing"] > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=t["label_smoothing"])
    return None, nn.CrossEntropyLoss()


def mix_video(mixup, x: torch.Tensor, y: torch.Tensor):
    """timm Mixup on a (B, C, T, H, W) batch: viewed as (B, C·T, H, W) so a cutmix box covers the same
    pixels in every frame and channel; mixup is elementwise either way."""
    b, c, t, h, w = x.shape
    x4 = x.reshape(b, c * t, h, w)
    x4, y = mixup(x4, y)
    return x4.reshape(b, c, t, h, w), y


# ------------------------------------------------------------------------------------------------
# RNG state
# ------------------------------------------------------------------------------------------------
def rng_state() -> Dict[str, Any]:
    st = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "numpy": [st[0], torch.from_numpy(st[1].astype(np.int64)),
                                                     int(st[2]), int(st[3]), float(st[4])],
           "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


# Config keys that may change when a run is resumed: where and how it runs, how long, what it logs
# and checkpoints, and the evaluation settings. Everything else (model, data, seed, recipe) is the run's
# fingerprint: a checkpoint whose config differs there belongs to another run and is not resumed.
RESUME_FREE_KEYS = ("name", "output_dir", "device", "data.num_workers", "data.val_annotations", "train.epochs",
                    "train.max_steps", "train.log_every", "train.eval_every", "train.eval_views",
                    "train.ckpt_every_steps", "train.ckpt_every_epochs", "train.keep_epoch_checkpoints",
                    "train.resume", "train.progress", "test.")
LOCK_NAME = "train.lock"


def run_fingerprint(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The dotted config keys that identify a training run (all but :data:`RESUME_FREE_KEYS`); keys a
    checkpoint of an older version lacks take their defaults."""
    defaults = default_config()
    out = {}
    for key in schema_keys():
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in RESUME_FREE_KEYS):
            continue
        node, dflt = cfg, defaults
        for part in key.split("."):
            dflt = dflt[part]
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        out[key] = dflt if node is _MISSING else node
    return out


_MISSING = object()


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_resumable(ckpt: dict, cfg: Dict[str, Any], path: str) -> None:
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict) or "model" not in ckpt:
        raise UserError(f"{path} is not a training checkpoint of this program (no model/config inside); move it "
                        "away, use another output_dir, or train.resume=false to start over")
    old, new = run_fingerprint(ckpt["config"]), run_fingerprint(cfg)
    diff = [k for k in new if old.get(k) != new[k]]
    if diff:
        desc = ", ".join(f"{k} (checkpoint {_short(old.get(k))}, now {_short(new[k])})" for k in diff[:6])
        more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
        raise UserError(f"{path} belongs to another run (another model, data, seed or recipe): the config differs "
                        f"in {desc}{more}; rerun with the run's config ({os.path.dirname(os.path.dirname(path))}"
                        "/config.yaml), use another output_dir, or train.resume=false to start over")


def train(cfg: Dict[str, Any], info: Optional[distributed.DistInfo] = None) -> Dict[str, Any]:
    """Run (or continue) the training of ``cfg``; returns a summary
    ``{"step", "epoch", "losses", "checkpoint", "best_top1", "val"}``. Rank 0 alone writes files.

    Rank 0 holds an exclusive lock on the output folder (``OUTPUT_DIR/train.lock``) for the whole run:
    a second ``train`` on the same folder is refused; a lock left by a killed run is taken over. Stale
    ``*.tmp.<pid>`` files of killed runs are removed from ``OUTPUT_DIR/checkpoints`` first.
    """
    info = info or distributed.init_distributed(cfg["device"])
    out_dir = cfg["output_dir"]
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    lock = None
    made = first_missing_dir(out_dir) if info.is_main else None    # removed again if setup fails (nothing to keep)
    finished = False
    if info.is_main:
        check_writable_dir(ckpt_dir, "output folder")
        lock = FolderLock(os.path.join(out_dir, LOCK_NAME), f"run folder {out_dir}").acquire()
        if lock.note:
            print(lock.note, file=sys.stderr, flush=True)
    try:
        if info.is_main:
            for p in remove_stale_temp_files(ckpt_dir):
                print(f"removed {p}, left by a run that was killed while writing it", file=sys.stderr, flush=True)
        distributed.barrier()
        result = _train(cfg, info)
        finished = True
        return result
    except UserError as exc:
        inner = unwrap_worker_error(exc)       # raised in a DataLoader worker: the same line as without
        if inner is not None:
            raise inner from None
        raise
    except RuntimeError as exc:
        inner = unwrap_worker_error(exc)
        if inner is not None:
            raise inner from None
        raise
    finally:
        if lock is not None:
            lock.release()
        if made and not finished and not _has_files(ckpt_dir):   # a setup error leaves no empty run folder
            shutil.rmtree(made, ignore_errors=True)               # (all of it was made by this run)


def _has_files(folder: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, f)) for f in (os.listdir(folder) if os.path.isdir(folder) else ()))


@dataclass
class _Run:
    """One training run: what :func:`_build` makes, and where the run stands.

    ``epoch`` / ``step`` / ``step_in_epoch`` move as the run goes; ``saved`` is the progress of the last
    completed optimiser step with its RNG states: what a checkpoint records (a Ctrl-C in the middle of a
    step writes that, not the half-done step)."""
    cfg: Dict[str, Any]
    info: distributed.DistInfo
    model: nn.Module
    class_names: List[str]
    loader: DataLoader
    dataset: Any
    sampler: EpochSampler
    updates_per_epoch: int
    accum: int
    optimizer: Any
    scheduler: Any
    mixup: Any
    criterion: nn.Module
    precision: str
    scaler: torch.amp.GradScaler
    val_records: Optional[list]
    val_spec: EvalSpec
    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    best_top1: Optional[float] = None
    total_steps: int = 0
    saved: Dict[str, Any] = field(default_factory=dict)
    losses: List[float] = field(default_factory=list)
    val_results: Optional[Dict[str, Any]] = None
    in_step: bool = False
    writer: Any = None
    bar: Any = None

    @property
    def ckpt_dir(self) -> str:
        return os.path.join(self.cfg["output_dir"], "checkpoints")

    @property
    def last_path(self) -> str:
        return os.path.join(self.ckpt_dir, "last.pt")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _train(cfg: Dict[str, Any], info: distributed.DistInfo) -> Dict[str, Any]:
    """The run: resume check → build → restore → epochs (train, validate, checkpoint) → summary."""
    last_path = os.path.join(cfg["output_dir"], "checkpoints", "last.pt")
    resume = None
    if cfg["train"]["resume"] and os.path.isfile(last_path):
        resume = read_checkpoint(last_path)
        _check_resumable(resume, cfg, last_path)
    run = _build(cfg, info, resume)
    if resume is not None:
        _restore(run, resume)
    if run.scheduler is not None:
        run.scheduler.step_update(num_updates=run.step)
    if info.distributed:
        run.model = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    _open_outputs(run)
    t = cfg["train"]
    run.total_steps = run.updates_per_epoch * t["epochs"]
    if t["max_steps"] is not None:
        run.total_steps = min(run.total_steps, t["max_steps"])
    if resume is not None and info.is_main:      # one line, on stdout only
        if run.epoch >= t["epochs"] or run.step >= run.total_steps:
            print(f"{last_path}: training already finished ({min(run.epoch, t['epochs'])}/{t['epochs']} epochs, "
                  f"step {run.step}); nothing to do. Raise train.epochs (or train.max_steps) to continue, or use "
                  "train.resume=false / another output_dir to start over", flush=True)
        else:
            print(f"resuming from {last_path}: epoch {run.epoch + 1}/{t['epochs']}, step {run.step}", flush=True)
    run.saved = {"epoch": run.epoch, "step": run.step, "step_in_epoch": run.step_in_epoch, "rng": rng_state()}
    try:
        _run_epochs(run)
    finally:
        if run.writer is not None:
            try:
                run.writer.close()
            except Exception as exc:  # e.g. a full disk: the run's own error (if any) is what matters
                logger.warning("TensorBoard: could not close the event file: %s", exc)
    return {"step": run.step, "epoch": run.epoch, "losses": run.losses, "checkpoint": last_path,
            "best_top1": run.best_top1, "val": run.val_results, "updates_per_epoch": run.updates_per_epoch,
            "accumulation": run.accum}


def _build(cfg: Dict[str, Any], info: distributed.DistInfo, resume: Optional[dict]) -> _Run:
    """Seed, model (the checkpoint's weights when resuming, else ``model.pretrained``), data, optimiser,
    scheduler, loss, precision and the validation spec."""
    t = cfg["train"]
    seed_everything(cfg["seed"] + info.rank)
    model = build_model(cfg, load_pretrained=resume is None)
    if resume is not None:
        model.load_state_dict(resume["model"])
    model.to(info.device)
    settings = model_data_settings(cfg, model)
    records, class_names = read_split(cfg["data"]["train_annotations"], cfg, "training", need_labels=True)
    placeholders = class_names == [str(i) for i in range(len(class_names))]     # a list file without names
    if len(class_names) == cfg["model"]["num_classes"] and not (placeholders and getattr(model, "class_names", None)):
        model.class_names = list(class_names)          # saved with the checkpoints, shown by export-hf
    n_cls = cfg["model"]["num_classes"]
    if info.is_main and len(class_names) < n_cls:
        print(f"warning: the training data has {len(class_names)} classes but model.num_classes is {n_cls}: "
              f"the classifier gets {n_cls - len(class_names)} outputs no video trains; set "
              f"model.num_classes={len(class_names)} unless this is intended", file=sys.stderr, flush=True)
    val_records = None
    if t["eval_every"] > 0 and cfg["data"]["val_annotations"]:
        # mapped onto the training classes by name: a split lacking a class keeps the numbering
        val_records, _ = read_split(cfg["data"]["val_annotations"], cfg, "validation", class_names=class_names,
                                    names_from=f"the training classes of {cfg['data']['train_annotations']}",
                                    need_labels=True)
    loader, dataset, sampler, updates_per_epoch, accum = build_train_loader(cfg, records, settings, info)
    dataset.report_file = os.path.join(cfg["output_dir"], BAD_VIDEOS_NAME)   # each bad video warned once per run
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, updates_per_epoch)
    mixup, criterion = build_loss(cfg, cfg["model"]["num_classes"])
    precision = amp_precision(t["amp"], t["amp_dtype"], info.device)
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "float16")
    val_spec = eval_spec(cfg, model, views=parse_views(t["eval_views"], "train.eval_views"), device=info.device)
    return _Run(cfg=cfg, info=info, model=model, class_names=class_names, loader=loader, dataset=dataset,
                sampler=sampler, updates_per_epoch=updates_per_epoch, accum=accum, optimizer=optimizer,
                scheduler=scheduler, mixup=mixup, criterion=criterion, precision=precision, scaler=scaler,
                val_records=val_records, val_spec=val_spec)


def _restore(run: _Run, resume: dict) -> None:
    """Optimiser, scheduler, scaler, progress and RNG states of the checkpoint being resumed."""
    if resume.get("optimizer"):
        run.optimizer.load_state_dict(resume["optimizer"])
    if run.scheduler is not None and resume.get("scheduler"):
        run.scheduler.load_state_dict(resume["scheduler"])
    if resume.get("scaler"):
        run.scaler.load_state_dict(resume["scaler"])
    run.epoch, run.step = int(resume["epoch"]), int(resume["step"])
    run.step_in_epoch = int(resume.get("step_in_epoch", 0))
    run.best_top1 = resume.get("best_top1")
    info = run.info
    rngs = resume.get("rng_per_rank") or []
    if len(rngs) == info.world_size:
        set_rng_state(rngs[info.rank])
    elif info.is_main and resume.get("rng"):
        set_rng_state(resume["rng"])
    else:
        seed_everything(run.cfg["seed"] + info.rank + 7919 * run.step)
    if run.step_in_epoch >= run.updates_per_epoch:
        run.epoch, run.step_in_epoch = run.epoch + 1, 0


def _open_outputs(run: _Run) -> None:
    """Rank 0: the resolved ``config.yaml`` next to the checkpoints and the TensorBoard writer."""
    if not run.info.is_main:
        return
    out_dir = run.cfg["output_dir"]
    atomic_write_text(os.path.join(out_dir, "config.yaml"), dump_config(run.cfg), "config")
    try:
        from torch.utils.tensorboard import SummaryWriter
        run.writer = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=run.step if run.step else None)
    except Exception as exc:  # tensorboard missing or broken: go on without it
        logger.warning("TensorBoard disabled: %s", exc)


def _run_epochs(run: _Run) -> None:
    """Epochs until ``train.epochs`` or ``total_steps``; each ends with validation and checkpoints as the
    recipe says. Ctrl-C writes the state of the last completed step."""
    t = run.cfg["train"]
    try:
        while run.epoch < t["epochs"] and run.step < run.total_steps:
            _train_epoch(run)
            finished_epoch = run.step_in_epoch >= run.updates_per_epoch
            last = run.step >= run.total_steps or (finished_epoch and run.epoch + 1 >= t["epochs"])
            if finished_epoch or last:
                _end_epoch(run, finished_epoch, last)
            if last:
                break
    except KeyboardInterrupt:
        run.close_bar()
        if run.info.is_main:
            if not run.in_step and run.saved["step"] > 0:
                _save_checkpoint(run, run.last_path)     # state after the last completed step; atomic
                print(f"interrupted: checkpoint of step {run.saved['step']} written to {run.last_path}; rerun the "
                      "same command to resume", flush=True)
            else:
                print(f"interrupted: {run.last_path} left as it was; rerun the same command to resume", flush=True)
        raise


def _train_epoch(run: _Run) -> None:
    """The epoch's remaining batches: forward/backward per batch, an optimiser step every ``accum`` of
    them; stops at ``total_steps``."""
    t, info = run.cfg["train"], run.info
    run.dataset.set_epoch(run.epoch)
    run.sampler.set_epoch(run.epoch, run.step_in_epoch * run.accum * t["batch_size"])
    run.model.train()
    if info.is_main and t["progress"]:
        from tqdm import tqdm
        run.bar = tqdm(total=run.updates_per_epoch, initial=run.step_in_epoch,
                       desc=f"epoch {run.epoch + 1}/{t['epochs']}", unit="step", dynamic_ncols=True, leave=True)
    t_step, clips, micro, loss_acc = time.perf_counter(), 0, 0, 0.0
    run.optimizer.zero_grad(set_to_none=True)
    for x, y in run.loader:
        x = x.to(info.device, non_blocking=True)
        y = y.to(info.device, non_blocking=True)
        if run.mixup is not None:
            x, y = mix_video(run.mixup, x, y)
        micro += 1
        sync = micro % run.accum == 0
        loss = _forward_backward(run, x, y, sync)
        loss_acc += float(loss.detach()) / run.accum
        clips += x.shape[0] * info.world_size
        if not sync:
            continue
        _optimizer_step(run)
        run.losses.append(loss_acc)
        _log_step(run, loss_acc, clips / max(time.perf_counter() - t_step, 1e-9))
        t_step, clips, loss_acc = time.perf_counter(), 0, 0.0
        if t["ckpt_every_steps"] and run.step % t["ckpt_every_steps"] == 0:
            _save_last(run)
        if run.step >= run.total_steps:
            break
    run.close_bar()


def _forward_backward(run: _Run, x: torch.Tensor, y: torch.Tensor, sync: bool) -> torch.Tensor:
    """Loss of one batch and its gradients (accumulated; DDP syncs them on the step's last batch only)."""
    info = run.info
    ctx = run.model.no_sync() if (info.distributed and not sync) else nullcontext()
    with ctx:
        with autocast(info.device, run.precision):
            loss = run.criterion(run.model(x), y)
        if distributed.any_true(not torch.isfinite(loss).item(), info.device):
            raise UserError(
                f"loss became {loss.item()} at epoch {run.epoch + 1}, step {run.step + 1}; training stopped. "
                f"The last good checkpoint ({run.last_path if os.path.isfile(run.last_path) else 'none yet'}) "
                "is kept; lower train.lr, set train.clip_grad, or check the data")
        run.scaler.scale(loss / run.accum).backward()
    return loss


def _optimizer_step(run: _Run) -> None:
    """Clip, step, advance the counters and the schedule; ``saved`` then holds the new step. ``in_step`` is
    set while it runs: a Ctrl-C there must not checkpoint a half-updated model."""
    t = run.cfg["train"]
    run.in_step = True
    if t["clip_grad"] is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), t["clip_grad"])
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.step_in_epoch += 1
    if run.scheduler is not None:
        run.scheduler.step_update(num_updates=run.step)
    run.saved = {"epoch": run.epoch, "step": run.step, "step_in_epoch": run.step_in_epoch, "rng": rng_state()}
    run.in_step = False


def _log_step(run: _Run, loss: float, clips_per_s: float) -> None:
    t = run.cfg["train"]
    lr = run.optimizer.param_groups[0]["lr"]
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", clips_per_s=f"{clips_per_s:.1f}")
    if run.writer is not None and (run.step % t["log_every"] == 0 or run.step == 1):
        run.writer.add_scalar("train/loss", loss, run.step)
        run.writer.add_scalar("train/lr", lr, run.step)
        run.writer.add_scalar("train/clips_per_s", clips_per_s, run.step)


def _end_epoch(run: _Run, finished_epoch: bool, last: bool) -> None:
    """After a finished epoch (or the run's last step): validate when due, then checkpoint when due."""
    t = run.cfg["train"]
    done_epochs = run.epoch + 1 if finished_epoch else run.epoch
    if (run.val_records is not None and t["eval_every"] > 0 and
            ((finished_epoch and done_epochs % t["eval_every"] == 0) or last)):
        _validate(run, done_epochs)
    if finished_epoch:
        run.epoch, run.step_in_epoch = run.epoch + 1, 0
        run.saved.update(epoch=run.epoch, step_in_epoch=0)
    if last or run.epoch % t["ckpt_every_epochs"] == 0:
        _save_last(run)
    if run.info.is_main and t["keep_epoch_checkpoints"] and finished_epoch:
        _save_checkpoint(run, os.path.join(run.ckpt_dir, f"epoch_{run.epoch:03d}.pt"))


def _validate(run: _Run, done_epochs: int) -> None:
    """Evaluate the validation split as ``val_spec`` says; a new best Top-1 writes ``best.pt``."""
    from .evaluate import evaluate

    info = run.info
    res = evaluate(_unwrap(run.model), run.val_records, run.val_spec, num_classes=run.cfg["model"]["num_classes"],
                   dist_info=info)
    run.val_results = res
    top1 = res["top1"]
    if info.is_main:
        print(f"epoch {done_epochs}: val top1 {top1:.2f} top5 {res['top5']:.2f} "
              f"({res['num_videos']} videos, {run.cfg['train']['eval_views']} views)", flush=True)
        if run.writer is not None:
            run.writer.add_scalar("val/top1", top1, run.step)
            run.writer.add_scalar("val/top5", res["top5"], run.step)
    if top1 is not None and (run.best_top1 is None or top1 > run.best_top1):
        run.best_top1 = top1
        if info.is_main:
            _save_checkpoint(run, os.path.join(run.ckpt_dir, "best.pt"), extra={"top1": top1})


def _save_checkpoint(run: _Run, path: str, rng_all=None, extra=None) -> None:
    """Rank 0: model, optimiser, scheduler, scaler, the ``saved`` progress and RNG, config and class names."""
    model = _unwrap(run.model)
    obj = {"model": model.state_dict(), "optimizer": run.optimizer.state_dict(),
           "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
           "scaler": run.scaler.state_dict(), "epoch": run.saved["epoch"], "step": run.saved["step"],
           "step_in_epoch": run.saved["step_in_epoch"], "rng": run.saved["rng"], "config": run.cfg,
           "arch": run.cfg["model"]["name"], "best_top1": run.best_top1,
           "class_names": getattr(model, "class_names", None) or run.class_names}
    if rng_all is not None:
        obj["rng_per_rank"] = rng_all
    obj.update(extra or {})
    save_state(obj, path)


def _save_last(run: _Run) -> None:
    """``last.pt`` with every rank's RNG state (collective: every rank calls it)."""
    rng_all = distributed.all_gather_objects(run.saved["rng"])
    if run.info.is_main:
        _save_checkpoint(run, run.last_path, rng_all)
