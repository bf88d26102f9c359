"""`video-ats models`: the registered model presets and their hyper-parameters."""
from __future__ import annotations

HELP = "list the registered models (presets) and their hyper-parameters"


def add_arguments(p):
    p.add_argument("pattern", nargs="?", default="", help="only names containing this")


def run(args) -> int:
    from ..models.registry import _MODELS
    for name in sorted(_MODELS):
        if args.pattern in name:
            defaults = getattr(_MODELS[name], "defaults", {})
            shown = ", ".join(f"{k}={v}" for k, v in defaults.items() if k not in ("mean", "std"))
            print(f"{name:<28} {shown}")
    return 0
