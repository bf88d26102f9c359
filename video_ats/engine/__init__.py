"""Training and evaluation engine (used by ``video-ats train/test/quickstart`` and the profiling tools).

Reusable entry points:

* :func:`load_config` (``config.py``): YAML recipe + ``key=value`` overrides -> validated dict.
* :func:`build_model` / :func:`model_data_settings` (``builders.py``).
* :func:`train` (``train.py``): the fine-tuning loop with auto-resume.
* :class:`EvalSpec` / :func:`eval_spec` (``eval_spec.py``): how a model is evaluated, from a config.
* :func:`evaluate` / :func:`build_test_loader` / :func:`summarize` (``evaluate.py``): multi-view testing.
* :func:`run_test` (``test.py``): ``video-ats test`` as a function (model, weights, test split, results).
* :func:`init_distributed` (``distributed.py``): torchrun process group; :func:`resolve_device` and
  :func:`autocast` (``device.py``): where and in which precision a model runs.
"""
from .builders import build_model, check_writable_dir, model_data_settings, read_split
from .config import apply_overrides, default_config, dump_config, load_config, parse_views, schema_keys
from .device import autocast, resolve_device
from .distributed import DistInfo, init_distributed
from .eval_spec import EvalSpec, eval_spec
from .evaluate import build_test_loader, combine_views, dense_gflops, evaluate, summarize, write_results
from .test import run_test
from .train import train

__all__ = ["DistInfo", "EvalSpec", "apply_overrides", "autocast", "build_model", "build_test_loader",
           "check_writable_dir", "combine_views", "default_config", "dense_gflops", "dump_config", "eval_spec",
           "evaluate", "init_distributed", "load_config", "model_data_settings", "parse_views", "read_split",
           "resolve_device", "run_test", "schema_keys", "summarize", "train", "write_results"]
