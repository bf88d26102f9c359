"""Tidy numbers for JSON/CSV reports: ``52.49999761581421`` -> ``52.5``.

Floats of magnitude >= 1 are rounded to ``decimals`` decimal places (4: percentages, GFLOPs, seconds);
smaller ones keep ``decimals`` significant digits (0.16077 -> 0.1608, 0.0052341 -> 0.005234), so the
GFLOPs or std of a toy model do not collapse. Per-video score vectors (``*.predictions.jsonl``) are not
passed through this: they are exact inputs of the resumable evaluation.
"""
from __future__ import annotations

import math
from typing import Any

DECIMALS = 4


def round_float(x: float, decimals: int = DECIMALS) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    if abs(x) >= 1:
        return round(x, decimals)
    return float(f"{x:.{decimals}g}")


def round_floats(obj: Any, decimals: int = DECIMALS) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, scalars) with every float rounded (see module doc)."""
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, float):
        return round_float(obj, decimals)
    if isinstance(obj, dict):
        return {k: round_floats(v, decimals) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_floats(v, decimals) for v in obj]
    if isinstance(obj, tuple):
        return tuple(round_floats(v, decimals) for v in obj)
    return obj
