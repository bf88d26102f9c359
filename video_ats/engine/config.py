"""Declarative run configuration: a YAML recipe checked against one schema, plus ``key=value`` overrides.

A config is a nested dict with three fixed sections (``model``, ``data``, ``train``, ``test``) and a
few top-level keys. Every key, its type and its default live in :data:`SCHEMA`; a recipe only needs
the keys it changes. ``_base_: other.yaml`` (a path relative to the file, or a list of them) inherits
another recipe; the child's values win, nested sections merge key by key.

Overrides are dotted keys, ``train.lr=0.01 model.ats=null data.num_frames=16``; values are parsed
as YAML (``true``, ``null``, ``[4, 7, 10]``, ``{blocks: [3], num_tokens: [0.5]}``) and type-checked.
Any unknown key or wrong type is a :class:`~video_ats.errors.UserError` naming the valid keys.

Public helpers (used by the train/test/profile commands): :func:`load_config`, :func:`default_config`,
:func:`apply_overrides`, :func:`validate`, :func:`dump_config`, :func:`parse_views`.
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from ..choices import AMP_DTYPES, CLIP_POSITIONS, COMBINE_MODES, FRAME_SPACINGS, RESIZE_MODES, SCHEDULERS
from ..errors import UserError

# Type tags: "int", "float", "bool", "str", "list", "dict", "any"; a "?" allows null; a bound after it
# (">=0", ">=1", ">0") is checked for every value set (YAML or override): "int?>=1" is null or an int >= 1;
# "<=1" after it caps the value too (probabilities: "float>=0<=1").
# Each leaf: (type tag, default, one-line help).
SCHEMA: Dict[str, Any] = {
    "name": ("str?", None, "run name (default: the config file's stem)"),
    "output_dir": ("str?", None, "where checkpoints, logs and results go (default: runs/<name>)"),
    "seed": ("int>=0", 0, "seed of everything (data order, augmentation, initialisation)"),
    "device": ("str", "auto", "auto | cpu | cuda | cuda:N"),
    "model": {
        "name": ("str", "timesformer_base_8x224", "registry name, see `video-ats models`"),
        "num_classes": ("int>=1", 400, "classifier size"),
        "ats": ("dict?", None, "null (dense) or {blocks: [...], num_tokens: [...], score_mode, "
                               "sort_scores, min_tokens, selection, seed}"),
        "pretrained": ("str?", None, "weights to start from: official TimeSformer/X-ViT, a project "
                                     "checkpoint, a timm ImageNet ViT file, or a Hugging Face "
                                     "transformers TimeSformer folder (docs/huggingface.md)"),
        "drop_head": ("bool", False, "do not load the pretrained classifier (another class count)"),
        "kwargs": ("dict", {}, "extra constructor arguments (img_size, depth, drop_path_rate, ...)"),
    },
    "data": {
        "train_annotations": ("str?", None, "training annotation file (Kinetics CSV or 'path label' list)"),
        "val_annotations": ("str?", None, "validation annotation file (periodic validation, default for test)"),
        "data_root": ("str?", None, "folder the annotation paths are relative to (default: the file's folder)"),
        "label_map": ("str?", None, "class-name file (one per line) or JSON {name: index}"),
        "num_frames": ("int?>=1", None, "frames per clip (default: the model preset's)"),
        "sampling_rate": ("float?>0", None, "frame stride at target_fps (default: the model preset's)"),
        "crop_size": ("int?>=1", None, "crop side in pixels (default: the model's img_size)"),
        "mean": ("list?", None, "normalisation mean (default: the model preset's)"),
        "std": ("list?", None, "normalisation std (default: the model preset's)"),
        "scale_range": ("list", [256, 320], "training short-side jitter [min, max]"),
        "flip": ("bool", True, "random horizontal flip in training"),
        "target_fps": ("float?>0", 30.0, "sampling_rate counts frames at this rate (null: native frames)"),
        "frame_spacing": ("str", "pyslowfast", "pyslowfast (linspace over the clip window, as the official "
                                               "checkpoints were trained) | stride (exactly every rate-th frame)"),
        "num_workers": ("int>=0", 4, "DataLoader worker processes per rank"),
        "max_retries": ("int>=0", 10, "training: undecodable videos replaced by another sample this often"),
        "preload": ("bool", False, "training: decode every video once into RAM and draw clips from memory "
                                   "(small datasets only: T x H x W x 3 bytes per video)"),
    },
    "train": {
        "epochs": ("int>=1", 15, "training epochs"),
        "batch_size": ("int>=1", 8, "clips per process per forward"),
        "global_batch_size": ("int?>=1", None, "clips per optimiser step over all ranks; reached by gradient "
                                            "accumulation (null: batch_size x world size)"),
        "optimizer": ("str", "sgd", "any timm.optim.create_optimizer_v2 name (sgd, adamw, ...)"),
        "lr": ("float>=0", 0.005, "base learning rate (for global_batch_size as given, not rescaled)"),
        "momentum": ("float>=0", 0.9, "SGD momentum"),
        "weight_decay": ("float>=0", 1e-4, "weight decay (not applied to biases and norms)"),
        "scheduler": ("str", "step", "cosine | step | multistep | none"),
        "decay_milestones": ("list", [11, 14], "multistep: epochs where lr is multiplied by decay_rate"),
        "decay_epochs": ("float>0", 10, "step: decay every this many epochs"),
        "decay_rate": ("float>=0", 0.1, "step/multistep decay factor"),
        "min_lr": ("float>=0", 0.0, "cosine: final learning rate"),
        "warmup_epochs": ("float>=0", 0, "linear warm-up length (epochs)"),
        "warmup_lr": ("float>=0", 1e-6, "learning rate at the start of warm-up"),
        "label_smoothing": ("float>=0<=1", 0.0, "label smoothing"),
        "mixup": ("float>=0", 0.0, "mixup alpha (0: off)"),
        "cutmix": ("float>=0", 0.0, "cutmix alpha (0: off); the same box on every frame"),
        "mixup_prob": ("float>=0<=1", 1.0, "probability of applying mixup/cutmix to a batch"),
        "mixup_switch_prob": ("float>=0<=1", 0.5, "probability of cutmix instead of mixup when both are on"),
        "clip_grad": ("float?>0", None, "clip the gradient norm to this (null: off)"),
        "amp": ("bool", True, "mixed precision in training and evaluation (float16: CUDA only; bfloat16: CUDA "
                              "and CPU)"),
        "amp_dtype": ("str", "float16", "float16 | bfloat16"),
        "max_steps": ("int?>=1", None, "stop after this many optimiser steps (smoke tests)"),
        "log_every": ("int>=1", 10, "TensorBoard scalars every N optimiser steps"),
        "eval_every": ("int>=0", 1, "validate every N epochs (0: never)"),
        "eval_views": ("str", "1x1", "views of the periodic validation (temporal x spatial)"),
        "ckpt_every_steps": ("int?>=0", None, "also checkpoint every N optimiser steps (0/null: off)"),
        "ckpt_every_epochs": ("int>=1", 1, "checkpoint every N epochs"),
        "keep_epoch_checkpoints": ("bool", False, "keep epoch_NNN.pt files besides last.pt/best.pt"),
        "resume": ("bool", True, "continue from OUTPUT_DIR/checkpoints/last.pt when it exists"),
        "progress": ("bool", True, "tqdm progress bar on rank 0"),
    },
    "test": {
        "annotations": ("str?", None, "test annotation file (default: data.val_annotations)"),
        "views": ("str", "1x3", "temporal clips x spatial crops"),
        "combine": ("str", "softmax_mean", "softmax_mean (MMAction2, the paper) | logit_sum (PySlowFast)"),
        "clip_position": ("str", "start", "start (PySlowFast: first clip from frame 0) | center (MMAction2)"),
        "resize": ("str", "decoder", "decoder (decode-order frames, scaled while decoding: fast) | pyslowfast "
                                     "(the official evaluation's views: frames by timestamp, full-size decode, "
                                     "bilinear F.interpolate)"),
        "batch_size": ("int>=1", 4, "videos per batch (all their views together)"),
    },
}

CHOICES = {
    "train.scheduler": SCHEDULERS,
    "train.amp_dtype": AMP_DTYPES,
    "test.combine": COMBINE_MODES,
    "test.clip_position": CLIP_POSITIONS,
    "data.frame_spacing": FRAME_SPACINGS,
    "test.resize": RESIZE_MODES,
}
FREE_DICTS = ("model.ats", "model.kwargs")   # their inner keys are checked by the model, not here


def _is_leaf(node) -> bool:
    return isinstance(node, tuple)


def default_config() -> Dict[str, Any]:
    """A fresh config holding every default."""
    def build(node):
        return {k: build(v) for k, v in node.items()} if not _is_leaf(node) else copy.deepcopy(node[1])
    return build(SCHEMA)


def schema_keys(node=None, prefix: str = "") -> List[str]:
    """Every dotted leaf key of the schema."""
    node = SCHEMA if node is None else node
    out = []
    for k, v in node.items():
        out += schema_keys(v, prefix + k + ".") if not _is_leaf(v) else [prefix + k]
    return out


def schema_help() -> str:
    """A plain-text reference of all keys (used by ``--help-config``)."""
    lines = []
    for key in schema_keys():
        tag, default, text = _leaf(key)
        lines.append(f"{key:32s} {tag:11s} default {default!r:24s} {text}")
    return "\n".join(lines)


def _leaf(key: str):
    node = SCHEMA
    for part in key.split("."):
        node = node[part]
    return node


_TAG_RE = re.compile(r"(int|float|bool|str|list|dict|any)(\?)?(?:(>=|>)(-?\d+))?(?:<=(-?\d+))?")


def parse_tag(tag: str) -> Tuple[str, bool, Optional[str], Optional[int]]:
    """``"int?>=1"`` -> ``("int", True, ">=", 1)``: base type, nullable, bound operator, bound (the upper
    bound of a ``<=`` tag: :func:`upper_bound`)."""
    m = _TAG_RE.fullmatch(tag)
    if not m:
        raise ValueError(f"bad schema type tag {tag!r}")
    return m.group(1), bool(m.group(2)), m.group(3), int(m.group(4)) if m.group(4) is not None else None


def upper_bound(tag: str) -> Optional[int]:
    """The ``<=`` cap of a type tag (``"float>=0<=1"`` -> 1), or None."""
    m = _TAG_RE.fullmatch(tag)
    return int(m.group(5)) if m and m.group(5) is not None else None


def _check_type(key: str, value, tag: str):
    base, nullable, op, bound = parse_tag(tag)
    if value is None:
        if nullable:
            return None
        raise UserError(f"config key {key!r} must not be null (expected {base})")
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, (list, tuple)),
        "dict": lambda v: isinstance(v, dict),
        "any": lambda v: True,
    }[base](value)
    if not ok:
        hint = ""
        if base == "str" and isinstance(value, (int, float, bool)):
            hint = " (YAML read it as a number/boolean: quote it, e.g. key: '0x3')"
        if base == "bool" and isinstance(value, str):
            hint = " (write true or false)"
        raise UserError(f"config key {key!r} must be {'null or ' if nullable else ''}{base}, got "
                        f"{type(value).__name__} {value!r}{hint}")
    if base == "float":
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"config key {key!r} must be a finite number, got {value}")
    if op is not None and not (value >= bound if op == ">=" else value > bound):
        raise UserError(f"config key {key!r} must be {op} {bound}, got {value}")
    cap = upper_bound(tag)
    if cap is not None and value > cap:
        raise UserError(f"config key {key!r} must be <= {cap}, got {value}")
    if base == "list":
        return list(value)
    return value


def _unknown(key: str, section_prefix: str, node) -> UserError:
    valid = [section_prefix + k for k in node] if not section_prefix else [section_prefix + k for k in node]
    return UserError(f"unknown config key {key!r}; valid keys{' in ' + section_prefix.rstrip('.') if section_prefix else ''}"
                     f": {', '.join(valid)}")


def _merge(dst: dict, src: dict, node, prefix: str) -> None:
    """Merge ``src`` into ``dst`` in place, checking keys and types against the schema ``node``."""
    if not isinstance(src, dict):
        raise UserError(f"config section {prefix.rstrip('.') or '<top>'!r} must be a mapping, got "
                        f"{type(src).__name__}")
    for k, v in src.items():
        key = prefix + str(k)
        if k not in node:
            raise _unknown(key, prefix, node)
        spec = node[k]
        if _is_leaf(spec):
            dst[k] = _check_type(key, copy.deepcopy(v), spec[0])
        else:
            _merge(dst[k], v if v is not None else {}, spec, key + ".")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping: plain YAML keeps the last one, so a
    second ``model:`` section would silently replace the first."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first: Dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":      # `<<: *anchor`: merged below, may repeat keys
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first[key]}); keep one",
                    key_node.start_mark)
            first[key] = key_node.start_mark.line + 1
        except TypeError:                        # an unhashable key: the mapping constructor reports it
            pass
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(stream):
    """YAML text or a text stream -> Python objects, as ``yaml.safe_load`` but refusing duplicate keys."""
    return yaml.load(stream, Loader=_StrictLoader)   # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: str, seen: Tuple[str, ...] = ()) -> List[dict]:
    """The chain of YAML mappings ``[base, ..., file]`` of ``path`` (``_base_`` resolved)."""
    path = os.path.abspath(path)
    if path in seen:
        raise UserError(f"config {path}: _base_ cycle through {' -> '.join(seen)}")
    if not os.path.isfile(path):
        raise UserError(f"config file {path}: {'a folder, not a YAML file' if os.path.isdir(path) else 'not found'}")
    try:
        with open(path, encoding="utf-8") as f:
            data = load_yaml(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"config {path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise UserError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config {path}: the top level must be a mapping of sections, got {type(data).__name__}")
    bases = data.pop("_base_", None)
    chain: List[dict] = []
    if bases is not None:
        bases = [bases] if isinstance(bases, str) else bases
        if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
            raise UserError(f"config {path}: _base_ must be a file name or a list of file names, got "
                            f"{bases!r}")
        for base in bases:
            chain += _read_yaml(os.path.join(os.path.dirname(path), base), seen + (path,))
    return chain + [data]


def parse_override(text: str) -> Tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", yaml-parsed value)``."""
    if "=" not in text:
        raise UserError(f"override {text!r} is not key=value (e.g. train.lr=0.01); valid keys: "
                        f"{', '.join(schema_keys())}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = load_yaml(raw) if raw.strip() != "" else None
    except yaml.constructor.ConstructorError as exc:
        raise UserError(f"override {text!r}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d*\.?\d+(e[-+]?\d+)?", value.strip(), re.I):
        value = float(value)                                     # '1e-4' is a str to YAML 1.1
    return key, value


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``key=value`` strings to ``cfg`` in place (and return it), type-checked."""
    for text in overrides or ():
        key, value = parse_override(text)
        parts = key.split(".")
        node, dst, prefix = SCHEMA, cfg, ""
        for i, part in enumerate(parts):
            full = prefix + part
            if not isinstance(node, dict) or part not in node:
                raise _unknown(key, prefix, node)
            spec = node[part]
            if _is_leaf(spec):
                rest = parts[i + 1:]
                if rest:
                    if full not in FREE_DICTS:
                        raise UserError(f"config key {full!r} is a value, not a section; cannot set {key!r}")
                    inner = dst.get(part) or {}
                    tgt = inner
                    for p in rest[:-1]:
                        tgt = tgt.setdefault(p, {})
                    tgt[rest[-1]] = value
                    dst[part] = inner
                else:
                    if parse_tag(spec[0])[0] == "str" and isinstance(value, (int, float, bool)):
                        value = text.split("=", 1)[1].strip()   # '0x3', '1e3', 'yes': the text as typed
                    dst[part] = _check_type(key, value, spec[0])
                break
            node, dst, prefix = spec, dst[part], full + "."
        else:
            raise UserError(f"config key {key!r} is a section; set one of its keys: "
                            f"{', '.join(prefix + k for k in node)}")
    return cfg


def validate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Cross-field checks (choices, positive numbers, view syntax). Returns ``cfg``."""
    for key, choices in CHOICES.items():
        sec, k = key.split(".")
        if cfg[sec][k] not in choices:
            raise UserError(f"config key {key!r} must be one of {', '.join(choices)}; got {cfg[sec][k]!r}")
    for key in schema_keys():                    # every value against its type tag and bound
        node = cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"config lacks the key {key!r}")
            node = node[part]
        _check_type(key, node, _leaf(key)[0])
    parse_views(cfg["test"]["views"], "test.views")
    parse_views(cfg["train"]["eval_views"], "train.eval_views")
    ms = cfg["train"]["decay_milestones"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ms):
        raise UserError(f"config key 'train.decay_milestones' must be a list of epoch numbers, got {ms}")
    sr = cfg["data"]["scale_range"]
    if len(sr) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sr) or sr[0] > sr[1]:
        raise UserError(f"config key 'data.scale_range' must be two positive integers [min, max], min <= max; got {sr}")
    for key in ("mean", "std"):
        v = cfg["data"][key]
        if v is not None and (len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      and x == x for x in v) or (key == "std" and min(v) <= 0)):
            raise UserError(f"config key 'data.{key}' must be three numbers{' > 0' if key == 'std' else ''}, got {v}")
    return cfg


def parse_views(text: str, what: str = "views") -> Tuple[int, int]:
    """``"1x3"`` -> ``(1 temporal clip, 3 spatial crops)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UserError(f"{what} must be CLIPSxCROPS with positive numbers, e.g. 1x3 or 4x3; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Defaults <- ``path`` (with its ``_base_`` chain) <- ``overrides``; validated.

    ``path`` may be None (defaults + overrides only). Returns a plain nested dict; ``cfg["name"]``
    and ``cfg["output_dir"]`` are filled in.
    """
    cfg = default_config()
    if path is not None:
        for layer in _read_yaml(path):
            _merge(cfg, layer, SCHEMA, "")
    apply_overrides(cfg, overrides)
    if not cfg["name"]:
        cfg["name"] = os.path.splitext(os.path.basename(path))[0] if path else "run"
    if not cfg["output_dir"]:
        cfg["output_dir"] = os.path.join("runs", cfg["name"])
    return validate(cfg)


def stored_config(checkpoint_obj: Any, overrides: Sequence[str] = ()) -> Optional[Dict[str, Any]]:
    """The config a training checkpoint of this project stores (its ``config``), on top of today's defaults
    (older checkpoints lack newer keys), with ``overrides``, validated; None when the object stores none
    (official checkpoints, plain state dicts). ``model.pretrained`` is cleared: the checkpoint is the weights."""
    stored = checkpoint_obj.get("config") if isinstance(checkpoint_obj, dict) else None
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        return None
    cfg = default_config()
    try:
        _merge(cfg, {k: v for k, v in copy.deepcopy(stored).items() if k in SCHEMA}, SCHEMA, "")
    except UserError as exc:
        raise UserError(f"the config stored in the checkpoint does not load ({exc}); pass --config") from None
    cfg["model"]["pretrained"] = None
    apply_overrides(cfg, overrides)
    cfg["name"] = cfg["name"] or "run"
    cfg["output_dir"] = cfg["output_dir"] or os.path.join("runs", cfg["name"])
    return validate(cfg)


def config_for(path: Optional[str], checkpoint: Optional[str], overrides: Sequence[str] = ()) -> Tuple[Dict[str, Any], bool]:
    """The config of an evaluation command: ``path``'s when given; else the recipe a training checkpoint of
    this project stores (read memory-mapped, the weights are not loaded); else the defaults. Returns the
    config and whether it came from the checkpoint."""
    if path is None and checkpoint:
        from ..checkpoint import peek_checkpoint

        cfg = stored_config(peek_checkpoint(checkpoint), overrides)
        if cfg is not None:
            return cfg, True
    return load_config(path, overrides), False


def dump_config(cfg: Dict[str, Any]) -> str:
    """YAML text of a resolved config (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
