"""Loading weights: official checkpoints, this project's checkpoints, plain state dicts, timm ViTs.

Files are read with ``torch.load(weights_only=True)`` (or safetensors): a checkpoint can never run
code. Each model knows how to translate foreign formats into its own names (``adapt_state_dict``,
beside the model); this module does the reading, the head handling and a *strict* load that says
exactly which keys are missing or unexpected — the official loaders' silent ``strict=False`` left
users with random models.
"""
from __future__ import annotations

import errno
import math
import os
import pickle
import re
from typing import Dict, Union

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .fileio import atomic_write, describe_os_error

STATE_KEYS = ("model_state", "model", "state_dict", "module")


def read_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """The raw checkpoint object, read safely. Anything unreadable is one :class:`UserError` line."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"checkpoint {path!r} is a folder, not a checkpoint file")
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path!r} does not exist")
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path!r} is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path!r}: {describe_os_error(exc)}") from None
    if not head:
        raise UserError(f"checkpoint {path!r} is an empty file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu")
        except Exception as exc:
            raise UserError(f"cannot read safetensors checkpoint {path!r}: {_one_line(exc)}") from None
    if path.endswith(".npz"):
        raise UserError(f"{path!r} is a JAX .npz checkpoint; convert it to a PyTorch/safetensors file with timm first")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))      # wording differs between torch versions
        if found:
            what = found.group(1)
            raise UserError(f"refusing to load {path!r}: it contains pickled Python objects ({what}) that could "
                            "run code when loaded. Re-save only its tensors (e.g. torch.save(ckpt['model_state'], "
                            "...)) from a trusted environment.") from None
        raise UserError(f"cannot read checkpoint {path!r}: {_kind_of_file(head)}") from None
    except MemoryError:
        raise UserError(f"cannot read checkpoint {path!r}: {_kind_of_file(head)} (it asks for more memory "
                        "than there is)") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT, errno.EISDIR):
            raise UserError(f"cannot read checkpoint {path!r}: {describe_os_error(exc)}") from None
        raise UserError(f"cannot read checkpoint {path!r}: {_kind_of_file(head)}") from None
    except Exception:   # the unpickler and the zip reader raise anything on damaged input
        raise UserError(f"cannot read checkpoint {path!r}: {_kind_of_file(head)}") from None
    if head.startswith(b"PK"):
        _check_zip_crcs(path)
    return obj


def _check_zip_crcs(path: str) -> None:
    """Refuse a zip checkpoint whose stored bytes do not match their CRC-32: ``torch.load`` does not check
    them, so bytes damaged inside a tensor (a bad disk, a broken copy) would load as silently wrong weights.
    Costs one more read of the file, from the page cache: ~0.3 s per GB on the development machine."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise UserError(f"cannot read checkpoint {path!r}: a damaged PyTorch zip checkpoint ({_one_line(exc)}); "
                        "download or save it again") from None
    if bad is not None:
        raise UserError(f"checkpoint {path!r} is damaged: the bytes of {bad!r} do not match their checksum (a bad "
                        "disk or an interrupted copy?); download or save it again")


def peek_checkpoint(path: Union[str, os.PathLike]):
    """A checkpoint file's object memory-mapped, so that its tensors are not read (e.g. to take the recipe a
    training checkpoint stores before building the model); None for a folder, a safetensors file or anything
    that does not load this way (:func:`read_checkpoint` then says why, when the weights are loaded)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or path.endswith((".safetensors", ".npz")):
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be mapped; the full read reports damage
        return None


def _kind_of_file(head: bytes) -> str:
    """What a file that torch could not load looks like, as the end of an error sentence."""
    if head.startswith(b"PK"):
        return ("a damaged or truncated PyTorch zip checkpoint (an interrupted download or copy?); "
                "download or save it again")
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return ("a damaged or truncated legacy (non-zip) PyTorch checkpoint (an interrupted download or "
                "copy?); download or save it again")
    try:
        text = head.decode("utf-8")
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return "a text file, not a PyTorch checkpoint"
    except UnicodeDecodeError:
        pass
    return "not a PyTorch checkpoint (unrecognised contents)"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def extract_state_dict(obj) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: ``model_state`` (PySlowFast), ``model`` (ours), ``state_dict``
    or the object itself; a ``module.`` prefix (DDP) is removed."""
    state = obj
    for _ in range(2):
        if isinstance(state, dict):
            for key in STATE_KEYS:
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError("checkpoint holds no state dict (looked for a dict of tensors, possibly under "
                        f"{', '.join(STATE_KEYS)})")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_checkpoint(model: nn.Module, checkpoint: Union[str, os.PathLike, dict], drop_head: bool = False,
                    strict: bool = True) -> dict:
    """Load weights into ``model``; returns a report ``{"format", "notes", "missing", "unexpected"}``.

    checkpoint: a path (official TimeSformer .pyth, official X-ViT .pth, this project's checkpoint,
                a plain state dict, a timm ImageNet ViT file for initialisation, a Hugging Face
                transformers TimeSformer folder or its weights file) or a loaded dict.
    drop_head:  keep the model's own freshly initialised classifier (fine-tuning on another class
                count); without it a classifier of another shape is an error.
    strict:     any key that is missing or unexpected after adaptation is an error.
    """
    hf = None
    if not isinstance(checkpoint, dict):
        from .hf import check_architecture, resolve_hf
        hf = resolve_hf(checkpoint)
    if hf is not None:
        check_architecture(model, hf, drop_head)
        obj = hf.read_state_dict()
        names = hf.class_names
    else:
        obj = read_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
        names = obj.get("class_names") if isinstance(obj, dict) else None
    state = extract_state_dict(obj)
    notes: list = []
    adapt = getattr(model, "adapt_state_dict", None)
    if adapt is not None:
        state = adapt(state, notes)
    own = model.state_dict()
    head_keys = set(getattr(model, "head_keys", ()))
    if drop_head:
        dropped = sorted(k for k in head_keys if k in state)
        state = {k: v for k, v in state.items() if k not in head_keys}
        if dropped:
            notes.append(f"classifier {dropped} not loaded (drop_head): it keeps its fresh initialisation")
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        if set(mismatched) <= head_keys:
            k = mismatched[0]
            raise UserError(f"the checkpoint's classifier {k} has shape {tuple(state[k].shape)} but the model's "
                            f"is {tuple(own[k].shape)} (another class count); to fine-tune, load with "
                            "drop_head=True (CLI: model.drop_head=true), or set model.num_classes to match")
        desc = ", ".join(f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:4])
        raise UserError(f"checkpoint does not fit this model ({len(mismatched)} shape mismatches: {desc}); "
                        "is it for another architecture or size? Build the model it was trained as (the recipe: "
                        "--config, or model.name / model.kwargs overrides)")
    missing = sorted(set(own) - set(state) - (head_keys if drop_head else set()))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise UserError(f"checkpoint does not match {type(model).__name__}: {len(missing)} missing keys "
                        f"{_few(missing)}, {len(unexpected)} unexpected keys {_few(unexpected)}; "
                        "is it for another architecture?")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UserError(f"checkpoint does not fit {type(model).__name__}: {_one_line(exc)}") from None
    if (not drop_head and isinstance(names, (list, tuple)) and len(names) == getattr(model, "num_classes", -1)
            and len(names) > 0):
        model.class_names = [str(n) for n in names]
    return {"notes": notes, "missing": missing, "unexpected": unexpected}


def _few(keys, n: int = 5) -> str:
    return "[]" if not keys else "[" + ", ".join(keys[:n]) + (", …]" if len(keys) > n else "]")


def strip_prefix(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def resize_grid_embedding(pos: torch.Tensor, new_hw, mode: str, has_cls: bool = True) -> torch.Tensor:
    """Resize a (1, [1+] S·S, D) position embedding stored for a square S×S grid to ``new_hw``."""
    cls, grid = (pos[:, :1], pos[:, 1:]) if has_cls else (pos[:, :0], pos)
    side = math.isqrt(int(grid.shape[1]))
    if side * side != grid.shape[1]:
        raise UserError(f"position embedding with {grid.shape[1]} grid entries is not a square grid")
    if (side, side) == tuple(new_hw):
        return pos
    g = grid.transpose(1, 2).reshape(1, -1, side, side).float()
    kwargs = {"align_corners": False} if mode in ("bicubic", "bilinear") else {}
    g = F.interpolate(g, size=tuple(new_hw), mode=mode, **kwargs).to(pos.dtype)
    return torch.cat([cls, g.flatten(2).transpose(1, 2)], dim=1)


def resize_time_embedding(te: torch.Tensor, frames: int, mode: str = "nearest") -> torch.Tensor:
    """Resize a (1, T, D) time embedding to ``frames`` entries along T."""
    if te.shape[1] == frames:
        return te
    return F.interpolate(te.transpose(1, 2).float(), size=frames, mode=mode).transpose(1, 2).to(te.dtype)


def save_state(obj: dict, path: Union[str, os.PathLike], what: str = "checkpoint") -> None:
    """Write ``obj`` atomically (:func:`video_ats.fileio.atomic_write`): a temporary file in the same
    folder, then a rename; a failure (full disk, read-only folder) is a one-line UserError and the
    previous file at ``path`` stays as it was."""
    atomic_write(path, lambda f: torch.save(obj, f), what,
                 hint=f"the previous {what} (if any) is kept")
