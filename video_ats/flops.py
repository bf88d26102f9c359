"""GFLOPs per clip, in the convention of this literature (fvcore: one multiply-add = one FLOP).

Models report their own work while they run: after its math, every block records, per clip, the rows
that went through each of its layers (``FlopMeter.rows``) and the (query, key) pairs of its attention
(``FlopMeter.attention``, on each group's real length); the meter turns them into multiply-adds from
the layer shapes (linear layers, attention matmuls QKᵀ and AV, layer norms as fvcore does). So an ATS
model is charged for the tokens each clip actually kept — never for the padding of a batch. Softmax,
GELU and additions are not counted (fvcore does not count them either).
"""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import nn

Count = Union[int, float, torch.Tensor]


class FlopMeter:
    """Accumulates multiply-adds per clip; pass it to a model's ``forward(x, flop_meter=...)``."""

    def __init__(self, batch_size: int, device=None):
        self.total = torch.zeros(batch_size, dtype=torch.float64, device=device)

    def add(self, per_clip: Count) -> None:
        """Multiply-adds per clip that are not rows through a layer (e.g. ATS's CLS-row logits)."""
        self.total += per_clip.double() if isinstance(per_clip, torch.Tensor) else float(per_clip)

    def rows(self, rows: Count, *layers: nn.Module) -> None:
        """``rows`` per clip through each of ``layers``, charged from the layer's shape: a Linear
        in·out per row (bias not counted), a LayerNorm 5 per element, a patch Conv2d its kernel."""
        for layer in layers:
            if isinstance(layer, nn.Linear):
                self.linear(rows, layer)
            elif isinstance(layer, nn.LayerNorm):
                self.layer_norm(rows, math.prod(layer.normalized_shape))
            elif isinstance(layer, nn.Conv2d):
                self.conv_patches(rows, layer)
            else:
                raise TypeError(f"no FLOP rule for {type(layer).__name__}")

    def linear(self, tokens: Count, layer: nn.Linear) -> None:
        """``tokens`` rows through a Linear (bias not counted, as in fvcore)."""
        self.add(_d(tokens) * layer.in_features * layer.out_features)

    def layer_norm(self, tokens: Count, dim: int) -> None:
        self.add(_d(tokens) * dim * 5)          # fvcore: 5 per element with an affine transform

    def attention(self, pairs: Count, dim: int) -> None:
        """QKᵀ and AV over ``pairs`` (query, key) pairs, heads·head_dim = ``dim``."""
        self.add(_d(pairs) * dim * 2)

    def conv_patches(self, patches: Count, conv: nn.Conv2d) -> None:
        k = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        self.add(_d(patches) * k * conv.out_channels)

    @property
    def gflops(self) -> torch.Tensor:
        return self.total / 1e9


def _d(x: Count):
    return x.double() if isinstance(x, torch.Tensor) else float(x)


@torch.no_grad()
def count_gflops(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GFLOPs of ``model`` on each clip of ``x`` (B, 3, T, H, W): a (B,) float64 tensor.

    ATS models are charged for the tokens each clip kept. The model runs once, in eval mode.
    """
    if x.dim() != 5:
        raise ValueError(f"count_gflops expects a (B, 3, T, H, W) clip batch, got shape {tuple(x.shape)}")
    meter = FlopMeter(x.shape[0], device=x.device)
    was_training = model.training
    model.eval()
    try:
        model(x, flop_meter=meter)
    finally:
        model.train(was_training)
    return meter.gflops.cpu()
