"""Builders shared by train / test / profile: the model and the data settings of a config."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from ..errors import UserError
from ..fileio import describe_os_error

logger = logging.getLogger("video_ats.engine")


def build_model(cfg: Dict[str, Any], load_pretrained: bool = True, ats: Any = "config") -> nn.Module:
    """The model of ``cfg["model"]``: registry preset + ``num_classes`` + ``ats`` + ``kwargs``; then the
    ``pretrained`` weights (strict; classifier skipped only with ``drop_head``) when ``load_pretrained``.

    ``ats``: ``"config"`` takes ``cfg.model.ats``; pass ``None`` for the dense twin of the model.
    """
    from ..checkpoint import load_checkpoint
    from ..models import create_model

    m = cfg["model"]
    kwargs = dict(m["kwargs"] or {})
    kwargs["num_classes"] = m["num_classes"]
    spec = m["ats"] if ats == "config" else ats
    if spec is not None:
        kwargs["ats"] = spec
    _check_model_kwargs(kwargs)
    try:
        model = create_model(m["name"], **kwargs)
    except UserError:
        raise
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, AssertionError) as exc:
        shown = {k: v for k, v in kwargs.items() if k != "ats"}
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"cannot build model {m['name']!r} with model.kwargs {shown}: {text}") from None
    if load_pretrained and m["pretrained"]:
        report = load_checkpoint(model, m["pretrained"], drop_head=m["drop_head"])
        for note in report.get("notes", []):
            logger.info("pretrained %s: %s", m["pretrained"], note)
    return model


# constructor arguments that are sizes: ints >= 1 (rates: numbers > 0) whatever the model
_POSITIVE_INT_KWARGS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_frames", "num_classes",
                        "num_segments", "in_chans")
_POSITIVE_NUM_KWARGS = ("mlp_ratio", "sampling_rate")
_UNIT_KWARGS = ("drop_rate", "attn_drop_rate", "drop_path_rate", "head_drop_rate")


def _check_model_kwargs(kwargs: Dict[str, Any]) -> None:
    """One-line errors for model sizes that would fail (or silently misbehave) deep in construction."""
    for k in _POSITIVE_INT_KWARGS:
        v = kwargs.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise UserError(f"model.kwargs.{k} must be an integer >= 1, got {v!r}")
    for k in _POSITIVE_NUM_KWARGS:
        v = kwargs.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise UserError(f"model.kwargs.{k} must be a number > 0, got {v!r}")
    for k in _UNIT_KWARGS:
        v = kwargs.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1):
            raise UserError(f"model.kwargs.{k} must be a number in [0, 1), got {v!r}")
    for k in ("mean", "std"):       # the clips' normalisation (data.mean/std default to these): as data.mean/std
        v = kwargs.get(k)
        if v is not None and (not isinstance(v, (list, tuple)) or len(v) != 3
                              or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in v)
                              or (k == "std" and min(v) <= 0)):
            raise UserError(f"model.kwargs.{k} must be three numbers{' > 0' if k == 'std' else ''}, got {v!r}")
    e, h = kwargs.get("embed_dim"), kwargs.get("num_heads")
    if isinstance(e, int) and isinstance(h, int) and e % h:
        raise UserError(f"model.kwargs.embed_dim {e} is not divisible by model.kwargs.num_heads {h}")


def checkpoint_class_names(obj: Any) -> Optional[List[str]]:
    """The ``class_names`` a project checkpoint stores (index order), or None (official/foreign files)."""
    names = obj.get("class_names") if isinstance(obj, dict) else None
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def model_data_settings(cfg: Dict[str, Any], model: nn.Module) -> Dict[str, Any]:
    """Frames, sampling rate, crop size and normalisation: ``cfg.data`` where set, else the model's."""
    mc = getattr(model, "config", {}) or {}
    d = cfg["data"]

    def pick(key, model_key, default=None):
        if d.get(key) is not None:
            return d[key]
        if model_key in mc:
            return mc[model_key]
        if default is None:
            raise UserError(f"data.{key} is not set and model {cfg['model']['name']!r} has no default for it")
        return default

    out = {
        "num_frames": int(pick("num_frames", "num_frames")),
        "sampling_rate": pick("sampling_rate", "sampling_rate", 8),
        "crop_size": int(pick("crop_size", "img_size")),
        "mean": tuple(float(v) for v in pick("mean", "mean", (0.45,) * 3)),
        "std": tuple(float(v) for v in pick("std", "std", (0.225,) * 3)),
        "target_fps": d["target_fps"],
        "frame_spacing": d["frame_spacing"],
        "test_resize": cfg["test"]["resize"],
    }
    patch = mc.get("patch_size")
    if patch and out["crop_size"] % int(patch):
        lo = out["crop_size"] // int(patch) * int(patch)
        raise UserError(f"data.crop_size {out['crop_size']} is not a multiple of the model's patch size {patch}; "
                        f"use e.g. {lo or int(patch)} or {lo + int(patch)}")
    if float(out["sampling_rate"]).is_integer():
        out["sampling_rate"] = int(out["sampling_rate"])
    return out


def read_split(path: Optional[str], cfg: Dict[str, Any], what: str,
               data_root: Optional[str] = None, class_names: Optional[List[str]] = None,
               names_from: str = "the model's class names", need_labels: bool = False) -> Tuple[List, List[str]]:
    """Records and class names of one annotation file, with clear errors for missing input.

    ``class_names`` (the checkpoint's or the training split's, in index order): the file's class names
    are mapped onto them *by name* when no ``data.label_map`` is set, so a file lacking a class keeps the
    model's numbering; a class outside them is one :class:`UserError`. Index-only names ("0", "1", ...
    from a ``path label`` list) carry no identity and are ignored. ``need_labels`` (training, accuracy):
    unlabelled rows (label -1) are one :class:`UserError` here, before any video is decoded.
    """
    from ..data import read_annotations
    from ..data.annotations import index_names

    if not path:
        raise UserError(f"no {what} annotation file: set it in the config or on the command line")
    if not os.path.isfile(path):            # before the data root: a misspelled path is reported as such
        raise UserError(f"{what} annotation file {path}: "
                        + ("a folder, not a file" if os.path.isdir(path) else f"not found (working directory {os.getcwd()})"))
    root = data_root if data_root is not None else cfg["data"]["data_root"]
    if root is not None and not os.path.isdir(root):
        raise UserError(f"data root {root}: not a directory (set data.data_root or --data-root)")
    if class_names is not None and index_names(class_names):
        class_names = None
    records, names = read_annotations(path, data_root=root, label_map=cfg["data"]["label_map"],
                                      class_names=class_names, names_from=names_from)
    unlabelled = [r for r in records if r.label < 0]
    if need_labels and unlabelled:
        raise UserError(f"{path}: {len(unlabelled)} of {len(records)} videos have no label (label -1, e.g. "
                        f"{unlabelled[0].path}); {what} needs labelled videos: class indices >= 0 in a 'path label' "
                        "list, or a Kinetics CSV with a label column")
    n = cfg["model"]["num_classes"]
    top = max((r.label for r in records), default=-1)
    if top >= n:
        raise UserError(f"{path}: labels go up to {top} but model.num_classes is {n}; set "
                        f"model.num_classes={max(top + 1, len(names))}")
    return records, names


_CAPPED_NOTED: set = set()


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cap_workers(num_workers: int, what: str = "data.num_workers") -> int:
    """``num_workers`` capped at the CPU cores this process may use (more workers than cores only add
    memory and contention; torch warns about it). The cap is noted once per value."""
    cores = available_cpus()
    if num_workers <= cores:
        return num_workers
    if (num_workers, cores) not in _CAPPED_NOTED:
        _CAPPED_NOTED.add((num_workers, cores))
        print(f"note: {what}={num_workers} capped at {cores}, the CPU cores available to this process",
              flush=True)
    return cores


def check_creatable_dir(path: str, what: str = "output folder") -> str:
    """Make sure ``path`` could be created and written, without creating anything: the nearest existing
    ancestor must be a writable folder (and ``path`` itself a folder if it exists)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UserError(f"{what} {path}: cannot write there ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: cannot write there (permission denied on {probe})")
    return path


def check_output_file(path: str, what: str, example: str) -> str:
    """Make sure the file ``path`` could be written, before any work: not a folder, and its folder could be
    created and written (``example``: a file name suggested when ``path`` is a folder)."""
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder; give a file name such as {os.path.join(path, example)}")
    check_creatable_dir(os.path.dirname(os.path.abspath(path)), f"{what} folder")
    return path


def check_writable_dir(path: str, what: str = "output folder") -> str:
    """Create ``path`` if needed and make sure files can be written there."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot write there ({describe_os_error(exc)})") from None
    return path
