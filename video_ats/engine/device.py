"""Where a model runs and in which precision: :func:`resolve_device`, :func:`amp_precision`, :func:`autocast`.

One place for both, so training, every evaluation (``test``, validation, ``sweep``, ``calibrate``,
``profile``, ``predict``, ``bench-accuracy``) and the speed benchmark agree on what ``device: cuda``
and ``train.amp_dtype: bfloat16`` mean.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Union

import torch

from ..choices import AMP_DTYPES, PRECISIONS
from ..errors import UserError

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(spec: Union[str, torch.device], local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:LOCAL_RANK``.

    A device that is not a torch device, or CUDA where there is none, is one :class:`UserError` line."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise UserError(f"device {spec!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {spec!r} asked for, but CUDA is not available here")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def amp_precision(amp: bool, amp_dtype: str, device: Union[str, torch.device]) -> str:
    """The precision a config's ``train.amp`` / ``train.amp_dtype`` give on ``device``.

    float16 autocast runs on CUDA only: on a CPU it is slower than float32 (no fp16 kernels) and not what
    the recipes' ``amp: true`` is meant for; bfloat16 runs on CUDA and on CPUs."""
    if amp_dtype not in AMP_DTYPES:
        raise UserError(f"train.amp_dtype must be one of {', '.join(AMP_DTYPES)}; got {amp_dtype!r}")
    if not amp:
        return "float32"
    if torch.device(device).type != "cuda" and amp_dtype == "float16":
        return "float32"
    return amp_dtype


def autocast(device: Union[str, torch.device], precision: Union[None, str, torch.dtype] = None):
    """The context a forward runs in: autocast to ``precision`` (a name of :data:`PRECISIONS` or a torch
    dtype) on ``device``'s type; float32 / None is full precision (no autocast)."""
    if isinstance(precision, str):
        if precision not in _TORCH_DTYPES:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        precision = _TORCH_DTYPES[precision]
    if precision is None or precision == torch.float32:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=precision)
