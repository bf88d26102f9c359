"""Model registry: presets by name, created with ``video_ats.create_model(name, **overrides)``."""
from __future__ import annotations

import inspect
from typing import Callable, Dict

from torch import nn

from ..errors import UserError

_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _MODELS[fn.__name__] = fn
    return fn


def list_models():
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the preset's hyper-parameters."""
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    fn = _MODELS[name]
    cls = getattr(fn, "model_class", None)
    if cls is not None:
        valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise UserError(f"{name}: unknown argument(s) {unknown}; valid arguments: {', '.join(valid)}")
    model = fn(**kwargs)
    model.model_name = name
    return model


def preset(cls, name: str, **defaults):
    """Register ``name`` as ``cls(**defaults)`` with overridable keyword arguments."""
    def build(**kwargs):
        return cls(**{**defaults, **kwargs})
    build.__name__ = name
    build.__doc__ = f"{cls.__name__} preset {name}: {defaults}"
    build.model_class = cls
    build.defaults = defaults
    return register_model(build)
