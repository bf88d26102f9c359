"""Backbones: one model per file, registered by name."""
from .registry import create_model, list_models, register_model
from . import timesformer, xvit  # noqa: F401  (importing them registers their presets)

__all__ = ["create_model", "list_models", "register_model"]
