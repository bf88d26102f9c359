"""Hugging Face ``transformers`` TimeSformer folders: read them, write them.

A ``TimesformerForVideoClassification`` folder (as ``save_pretrained`` writes it, or a hub-cache snapshot
``~/.cache/huggingface/hub/models--ORG--NAME/snapshots/<rev>/``) holds ``config.json`` and the weights:
``model.safetensors``, ``pytorch_model.bin``, or shards listed by a ``*.index.json``. Nothing here needs
the ``transformers`` package or the network: the config is plain JSON and the weights are read with
safetensors or ``torch.load(weights_only=True)``.

- :func:`from_pretrained` builds the matching TimeSformer and loads it strictly (class names from
  ``id2label``); ATS can be switched on at the same time.
- :func:`load_checkpoint` accepts such a folder too (recipes' ``model.pretrained``, ``test --checkpoint``):
  the model must have the folder's architecture, else one error names every differing field.
- :func:`export_hf` writes a dense model back as such a folder (``video-ats export-hf``).

The name translation lives beside the model (``video_ats/models/timesformer.py``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from .errors import UserError
from .fileio import atomic_write, atomic_write_json, describe_os_error

CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
ATS_FIELD = "video_ats_ats"          # extra config.json field: the ATS settings the model was tuned with
EXTRA_FIELD = "video_ats"            # extra config.json field: clip sampling and normalisation


@dataclasses.dataclass
class HFSource:
    """A transformers model on disk: its folder, parsed ``config.json`` and the weight files to read."""
    path: str
    folder: str
    config: dict
    files: List[str]

    def read_state_dict(self) -> Dict[str, torch.Tensor]:
        from .checkpoint import extract_state_dict, read_checkpoint
        state: Dict[str, torch.Tensor] = {}
        for f in self.files:
            part = extract_state_dict(read_checkpoint(f))
            clash = sorted(set(part) & set(state))
            if clash:
                raise UserError(f"{f}: tensors {clash[:3]} appear in two shards of {self.folder}")
            state.update(part)
        return state

    @property
    def class_names(self) -> Optional[List[str]]:
        id2label = self.config.get("id2label")
        if not id2label:
            return None
        try:
            table = {int(k): str(v) for k, v in id2label.items()}
        except (TypeError, ValueError):
            raise UserError(f"{self.folder}/{CONFIG}: id2label keys must be integers") from None
        if sorted(table) != list(range(len(table))):
            raise UserError(f"{self.folder}/{CONFIG}: id2label keys are not 0..{len(table) - 1}")
        return [table[i] for i in range(len(table))]


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a JSON object")
    return obj


def _snapshot(folder: str) -> str:
    """A hub-cache repository folder (``models--ORG--NAME``) -> its snapshot of ``refs/main`` (or its only one)."""
    snaps = os.path.join(folder, "snapshots")
    if os.path.isfile(os.path.join(folder, CONFIG)) or not os.path.isdir(snaps):
        return folder
    ref = os.path.join(folder, "refs", "main")
    if os.path.isfile(ref):
        with open(ref) as f:
            rev = f.read().strip()
        if os.path.isdir(os.path.join(snaps, rev)):
            return os.path.join(snaps, rev)
    revs = sorted(os.listdir(snaps))
    if len(revs) == 1:
        return os.path.join(snaps, revs[0])
    raise UserError(f"{folder} is a hub-cache folder with {len(revs)} snapshots and no refs/main; pass one of "
                    f"{os.path.join(snaps, '<rev>')} ({', '.join(revs[:4])})")


def _weights_in(folder: str) -> List[str]:
    for name in WEIGHTS:
        if os.path.isfile(os.path.join(folder, name)):
            return [os.path.join(folder, name)]
    for name in INDEXES:
        if os.path.isfile(os.path.join(folder, name)):
            return _shards(os.path.join(folder, name))
    present = sorted(os.listdir(folder))
    hint = ("; TensorFlow/Flax weights only: convert them with transformers first"
            if any(p.endswith((".h5", ".msgpack")) for p in present) else "")
    raise UserError(f"{folder}: no weights ({' / '.join(WEIGHTS + INDEXES)}) next to config.json; found "
                    f"{', '.join(present[:8]) or 'nothing'}{hint}")


def _shards(index_path: str) -> List[str]:
    weight_map = _read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"{index_path}: no weight_map")
    folder = os.path.dirname(index_path)
    files = [os.path.join(folder, f) for f in sorted(set(weight_map.values()))]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"{index_path} lists shards that are not there: {', '.join(missing[:3])}")
    return files


def resolve_hf(path: Union[str, os.PathLike]) -> Optional[HFSource]:
    """``path`` as a transformers model (a folder with config.json, a hub-cache folder, or a weights/index
    file next to a config.json that names a ``model_type``); None when it is something else."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        folder = _snapshot(path)
        if not os.path.isfile(os.path.join(folder, CONFIG)):
            raise UserError(f"{path} is a folder without {CONFIG}, so not a Hugging Face model folder; pass the folder "
                            "that save_pretrained wrote, or a checkpoint file")
        return HFSource(path, folder, _read_json(os.path.join(folder, CONFIG)), _weights_in(folder))
    if not os.path.isfile(path):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    cfg_path = os.path.join(folder, CONFIG)
    if not os.path.isfile(cfg_path):
        return None
    try:
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "model_type" not in config:     # e.g. a timm hub folder: not ours
        return None
    files = _shards(path) if path.endswith(".index.json") else [path]
    return HFSource(path, folder, config, files)


def check_architecture(model: nn.Module, src: HFSource, drop_head: bool = False) -> None:
    """One UserError naming every field where ``model`` differs from the folder's config. Input size and
    frame count may differ (the embeddings are resized, as for official checkpoints)."""
    from .models.timesformer import HF_ARCH_FIELDS, TimeSformer, timesformer_kwargs_from_hf

    want = timesformer_kwargs_from_hf(src.config)
    if not isinstance(model, TimeSformer):
        raise UserError(f"{src.path} is a transformers TimeSformer; it loads into a TimeSformer model "
                        f"(model.name timesformer...), not {type(model).__name__}")
    have = dict(model.config)
    have["mlp_ratio"] = model.blocks[0].mlp.fc1.out_features if len(model.blocks) else 0
    want["mlp_ratio"] = int(want["embed_dim"] * want["mlp_ratio"])
    diffs, head = [], False
    for ours, theirs in HF_ARCH_FIELDS.items():
        if ours in ("img_size", "num_frames") or (ours == "num_classes" and drop_head):
            continue
        if have.get(ours) != want[ours]:
            if ours == "num_classes":
                head = True
            shown = "intermediate_size" if ours == "mlp_ratio" else theirs
            diffs.append(f"{shown} {want[ours]} (model {ours}: {have.get(ours)})")
    if diffs:
        fix = "set model.kwargs / model.num_classes in the recipe to match (or use video_ats.from_pretrained)"
        if head:
            fix += "; to fine-tune on another class count, model.drop_head=true"
        raise UserError(f"{src.path}: the model does not match this transformers TimeSformer: "
                        f"{'; '.join(diffs)}. {fix}")


def _extra(config: dict) -> dict:
    extra = config.get(EXTRA_FIELD)
    return extra if isinstance(extra, dict) else {}


def _data_defaults(src: HFSource, kwargs: dict) -> dict:
    """Sampling rate of the official preset with this geometry (transformers does not record it; the
    facebook/timesformer-* folders are the official checkpoints converted), and the normalisation of
    ``preprocessor_config.json`` when the folder has one."""
    from .models.registry import _MODELS
    out = {}
    geometry = ("img_size", "patch_size", "num_frames", "embed_dim", "depth", "num_heads")
    for name, fn in sorted(_MODELS.items()):
        d = getattr(fn, "defaults", {})
        if name.startswith("timesformer_") and all(d.get(k) == kwargs[k] for k in geometry):
            out["sampling_rate"] = d["sampling_rate"]
            break
    pre = os.path.join(src.folder, "preprocessor_config.json")
    if os.path.isfile(pre):
        proc = _read_json(pre)
        for ours, theirs in (("mean", "image_mean"), ("std", "image_std")):
            v = proc.get(theirs)
            if isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v):
                out[ours] = tuple(float(x) for x in v)
    return out


def from_pretrained(path: Union[str, os.PathLike], ats=None, drop_head: bool = False, **overrides) -> nn.Module:
    """The TimeSformer stored in a transformers folder, weights loaded strictly.

    path:      the folder (``save_pretrained`` output or hub-cache snapshot / repository folder), or its
               weights / index file next to ``config.json``.
    ats:       ATS settings to apply on top (e.g. ``{"blocks": [4, 7, 10], "num_tokens": [0.7, 0.5, 0.35]}``);
               None = dense; ``"recorded"`` = the settings ``export-hf`` recorded in config.json.
    drop_head: keep a fresh classifier (with ``num_classes=N`` to fine-tune on other classes).
    overrides: TimeSformer constructor arguments (``num_frames``, ``img_size``: embeddings are resized;
               ``drop_path_rate``, ``sampling_rate``, ``mean``, ``std``, ``num_classes``, ...).

    ``model.class_names`` holds ``id2label`` in label order (None with ``drop_head``).
    """
    from .checkpoint import load_checkpoint
    from .models import create_model
    from .models.timesformer import timesformer_kwargs_from_hf

    src = resolve_hf(path)
    if src is None:
        raise UserError(f"{path}: not a Hugging Face model (a folder with config.json and model.safetensors / "
                        "pytorch_model.bin, or such a weights file next to its config.json)")
    kwargs = timesformer_kwargs_from_hf(src.config)
    kwargs.update(_data_defaults(src, kwargs))
    extra = _extra(src.config)
    for key in ("sampling_rate", "mean", "std"):
        if extra.get(key) is not None:
            kwargs[key] = tuple(extra[key]) if isinstance(extra[key], list) else extra[key]
    if ats == "recorded":
        ats = src.config.get(ATS_FIELD)
    kwargs.update(overrides)
    if ats is not None:
        kwargs["ats"] = ats
    model = create_model("timesformer", **kwargs)
    load_checkpoint(model, src.path, drop_head=drop_head)
    return model


def _as_json(value):
    if isinstance(value, tuple):
        return [_as_json(v) for v in value]
    return value


def export_hf(model: nn.Module, out_dir: Union[str, os.PathLike], class_names: Optional[Sequence[str]] = None,
              ats=None, extra: Optional[dict] = None) -> Dict[str, str]:
    """Write ``model`` (dense weights) as a transformers ``TimesformerForVideoClassification`` folder:
    ``config.json`` (with ``id2label`` from ``class_names``, the ATS settings under ``video_ats_ats`` and
    ``extra`` under ``video_ats``) and ``model.safetensors``. Returns the written paths."""
    from safetensors.torch import save

    from .ats import ATSConfig
    from .models.timesformer import TimeSformer, hf_config_from_model, ours_key_to_hf

    if not isinstance(model, TimeSformer):
        raise UserError(f"export-hf writes TimeSformer models only (transformers has no {type(model).__name__})")
    if model.num_classes <= 0:
        raise UserError("export-hf needs a model with a classifier (num_classes > 0)")
    names = list(class_names) if class_names is not None else model.class_names
    if names is not None and len(names) != model.num_classes:
        raise UserError(f"{len(names)} class names for a model with {model.num_classes} classes")
    config = hf_config_from_model(model, names)
    spec = ats if ats is not None else model.ats
    if spec is not None:
        cfg = spec if isinstance(spec, ATSConfig) else ATSConfig.from_any(spec, model.depth)
        if cfg is not None:
            config[ATS_FIELD] = {k: _as_json(v) for k, v in dataclasses.asdict(cfg).items()}
    if extra:
        config[EXTRA_FIELD] = {k: _as_json(v) for k, v in extra.items()}
    state = {ours_key_to_hf(k): v.detach().to("cpu", torch.float32).contiguous()
             for k, v in model.state_dict().items()}
    out_dir = os.fspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write the export folder {out_dir}: {describe_os_error(exc)}") from None
    weights, cfg_path = os.path.join(out_dir, WEIGHTS[0]), os.path.join(out_dir, CONFIG)
    for path in (weights, cfg_path):          # before writing either: never a folder with weights and no config
        if os.path.isdir(path):
            raise UserError(f"cannot export to {out_dir}: {path} is a folder; remove it or choose another --out")
    atomic_write(weights, lambda f: f.write(save(state, metadata={"format": "pt"})), "weights")
    atomic_write_json(cfg_path, config, "config")
    return {"config": cfg_path, "weights": weights}
