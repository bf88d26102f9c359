"""Training and evaluation engine (used by ``video-ats train/test/quickstart`` and the profiling tools).

Reusable entry points:

* :func:`load_config` (``config.py``): YAML recipe + ``key=value`` overrides -> validated dict.
* :func:`build_model` / :func:`model_data_settings` (``builders.py``).
* :func:`train` (``train.py``): the fine-tuning loop with auto-resume.
* :func:`evaluate` / :func:`build_test_loader` / :func:`summarize` (``evaluate.py``): multi-view testing.
* :func:`init_distributed` (``distributed.py``): torchrun process group.
"""
from .builders import build_model, check_writable_dir, model_data_settings, read_split
from .config import apply_overrides, default_config, dump_config, load_config, parse_views, schema_keys
from .distributed import DistInfo, init_distributed
from .evaluate import build_test_loader, combine_views, dense_gflops, evaluate, summarize, write_results
from .train import train

__all__ = ["DistInfo", "apply_overrides", "build_model", "build_test_loader", "check_writable_dir",
           "combine_views", "default_config", "dense_gflops", "dump_config", "evaluate", "init_distributed",
           "load_config", "model_data_settings", "parse_views", "read_split", "schema_keys", "summarize",
           "train", "write_results"]
