"""Backbones: one model per file, registered by name."""
from . import timesformer, xvit  # noqa: F401  (importing them registers their presets)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
