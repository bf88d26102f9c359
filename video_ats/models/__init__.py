"""Backbones: one model per file, registered by name."""
import importlib.util

from .registry import create_model, list_models, register_model
from . import timesformer  # noqa: F401  (registers the TimeSformer presets)

if importlib.util.find_spec(f"{__name__}.xvit") is not None:  # X-ViT registers its presets too
    from . import xvit  # noqa: F401

__all__ = ["create_model", "list_models", "register_model"]
