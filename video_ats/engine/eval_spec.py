"""One evaluation spec: how a model is evaluated, built once from the config by :func:`eval_spec`.

``test``, the validation inside ``train``, ``sweep``, ``calibrate``, ``profile``, ``predict`` and
``bench-accuracy`` all evaluate through an :class:`EvalSpec`, so they cut the same views, combine them
the same way and run the forward in the same precision. The spec also gives the fingerprint that a
resumed ``test`` compares against the predictions already on disk (:meth:`EvalSpec.fingerprint`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..choices import CLIP_POSITIONS, COMBINE_MODES, FRAME_SPACINGS, PRECISIONS, RESIZE_MODES
from ..errors import UserError
from .config import parse_views
from .device import amp_precision, autocast, resolve_device

# Fields that say where and how fast an evaluation runs, not what it computes: a resumed evaluation may
# change them (another GPU, more workers, a batch that fits), as it may change the number of ranks, so
# they are left out of the fingerprint.
RUNTIME = {"runtime": True}


def _key(name: str) -> Dict[str, Any]:
    """Field metadata: the config key a field comes from (named in error messages)."""
    return {"key": name}


@dataclass(frozen=True)
class EvalSpec:
    """How a model is evaluated. Fields other than ``batch_videos``, ``num_workers`` and ``device`` (see
    :data:`RUNTIME`) are the resume fingerprint; ``subject`` names what is evaluated (model, weights, data)."""

    # the frames of a view: the config's data section, else the model's defaults (model_data_settings)
    num_frames: int
    sampling_rate: float
    crop_size: int
    mean: Tuple[float, ...] = (0.45, 0.45, 0.45)
    std: Tuple[float, ...] = (0.225, 0.225, 0.225)
    target_fps: Optional[float] = 30.0
    frame_spacing: str = field(default="pyslowfast", metadata=_key("data.frame_spacing"))
    resize: str = field(default="decoder", metadata=_key("test.resize"))
    # the views of a video and how their scores are combined
    views: Tuple[int, int] = field(default=(1, 3), metadata=_key("test.views"))
    combine: str = field(default="softmax_mean", metadata=_key("test.combine"))
    clip_position: str = field(default="start", metadata=_key("test.clip_position"))
    # the forward's precision: float32, or autocast to float16 / bfloat16 (train.amp, train.amp_dtype)
    precision: str = "float32"
    # the evaluated model, weights and data (JSON-able); two evaluations of different subjects never mix
    subject: Mapping[str, Any] = field(default_factory=dict, hash=False)
    batch_videos: int = field(default=4, metadata={**RUNTIME, **_key("test.batch_size")})
    # as asked for; capped at the CPU cores when a loader starts (the cap's note is printed only then)
    num_workers: int = field(default=0, metadata={**RUNTIME, **_key("data.num_workers")})
    device: Optional[str] = field(default=None, metadata=RUNTIME)      # None: where the model's weights are

    def __post_init__(self):
        views = parse_views(self.views, "views") if isinstance(self.views, str) else self.views
        views = tuple(views) if isinstance(views, (tuple, list)) else ()
        if len(views) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in views):
            raise UserError(f"views must be (clips, crops) with positive integers, e.g. (1, 3); got {self.views!r}")
        object.__setattr__(self, "views", views)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "subject", dict(self.subject))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))
        for name, allowed in (("combine", COMBINE_MODES), ("clip_position", CLIP_POSITIONS),
                              ("frame_spacing", FRAME_SPACINGS), ("resize", RESIZE_MODES),
                              ("precision", PRECISIONS)):
            value = getattr(self, name)
            if value not in allowed:
                raise UserError(f"{_label(name)} must be one of {', '.join(allowed)}; got {value!r}")
        for name, low in (("num_frames", 1), ("crop_size", 1), ("batch_videos", 1), ("num_workers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{_label(name)} must be an integer >= {low}; got {value!r}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **fields_) -> "EvalSpec":
        """A spec from a frame-settings dict (:func:`~video_ats.engine.builders.model_data_settings`) and
        the other fields as keywords (which win over the dict): the short form for scripts and tests."""
        frames = {k: settings[k] for k in ("num_frames", "sampling_rate", "crop_size")}
        frames.update({k: settings[k] for k in ("mean", "std", "target_fps", "frame_spacing") if k in settings})
        if "test_resize" in settings:
            frames["resize"] = settings["test_resize"]
        return cls(**{**frames, **fields_})

    @property
    def settings(self) -> Dict[str, Any]:
        """The frame settings in :func:`~video_ats.engine.builders.model_data_settings` form (what the
        loaders and :func:`~video_ats.engine.evaluate.dense_gflops` take)."""
        return {"num_frames": self.num_frames, "sampling_rate": self.sampling_rate, "crop_size": self.crop_size,
                "mean": self.mean, "std": self.std, "target_fps": self.target_fps,
                "frame_spacing": self.frame_spacing, "test_resize": self.resize}

    @property
    def views_text(self) -> str:
        return f"{self.views[0]}x{self.views[1]}"

    def fingerprint(self) -> Dict[str, Any]:
        """What identifies this evaluation's predictions (JSON-able, flat so a mismatch names the keys):
        the subject and every field but the runtime ones."""
        out = dict(self.subject)
        for f in fields(self):
            if f.name == "subject" or f.metadata.get("runtime"):
                continue
            value = getattr(self, f.name)
            out[f.name] = self.views_text if f.name == "views" else (list(value) if isinstance(value, tuple)
                                                                     else value)
        return out

    def autocast(self, device: Union[None, str, torch.device] = None):
        """The context a forward runs in: autocast to :attr:`precision` on ``device`` (default: the spec's)."""
        where = device if device is not None else self.device
        if where is None:
            raise ValueError("EvalSpec.autocast needs a device: the spec has none (pass the model's)")
        return autocast(where, self.precision)


def _label(name: str) -> str:
    meta = next((f.metadata for f in fields(EvalSpec) if f.name == name), {})
    return meta.get("key", name)


def eval_spec(cfg: Dict[str, Any], model: Optional[torch.nn.Module] = None, *,
              views: Union[None, str, Sequence[int]] = None, device: Union[None, str, torch.device] = None,
              num_workers: Optional[int] = None, checkpoint: Optional[str] = None,
              annotations: Optional[str] = None) -> EvalSpec:
    """The evaluation spec of a loaded config: the ``test`` section, ``train.amp`` / ``train.amp_dtype``,
    ``device``, ``data.num_workers`` and the frame settings (``data``, else the ``model``'s defaults).

    The keywords are a command's own overrides (None: the config's value): ``views`` a ``--views`` text
    or ``(clips, crops)``; ``device`` where the model runs (a torchrun rank passes its own);
    ``num_workers`` the DataLoader workers. ``checkpoint`` and ``annotations`` are the evaluated weights
    and data: with the config's model section they are the spec's ``subject``.
    """
    from .builders import model_data_settings

    if views is None:
        views = parse_views(cfg["test"]["views"], "test.views")
    elif isinstance(views, str):
        views = parse_views(views, "--views")
    where = resolve_device(device if device is not None else cfg["device"])
    m = cfg["model"]
    subject = {"model": m["name"], "num_classes": m["num_classes"], "ats": m["ats"], "kwargs": m["kwargs"],
               "checkpoint": file_fingerprint(checkpoint),
               "annotations": os.path.abspath(annotations) if annotations else None}
    return EvalSpec.from_settings(
        model_data_settings(cfg, model), views=tuple(views), combine=cfg["test"]["combine"],
        clip_position=cfg["test"]["clip_position"],
        precision=amp_precision(cfg["train"]["amp"], cfg["train"]["amp_dtype"], where), subject=subject,
        batch_videos=cfg["test"]["batch_size"],
        num_workers=cfg["data"]["num_workers"] if num_workers is None else num_workers, device=str(where))


def file_fingerprint(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """Path, size and modification time of a weights file (of a Hugging Face folder's files): a rerun with
    a changed file does not resume the predictions of the old one."""
    if not path:
        return None
    if os.path.isdir(path):                    # a Hugging Face folder: its config and weight files
        from ..hf import CONFIG, resolve_hf
        src = resolve_hf(path)
        return {"path": os.path.abspath(path),
                "files": [file_fingerprint(f) for f in [os.path.join(src.folder, CONFIG), *src.files]]}
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
