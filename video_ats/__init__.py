"""video-ats: Adaptive Token Sampling (ECCV 2022) for the video transformers TimeSformer and X-ViT."""
from .analysis.predict import predict
from .ats import ATSConfig, inverse_transform_sampling, significance_scores
from .checkpoint import load_checkpoint
from .errors import UserError
from .flops import count_gflops
from .hf import export_hf, from_pretrained
from .models import create_model, list_models

__version__ = "0.1.0"      # the one place the version is written; setup.cfg reads it

__all__ = ["ATSConfig", "UserError", "count_gflops", "create_model", "export_hf", "from_pretrained",
           "inverse_transform_sampling", "list_models", "load_checkpoint", "predict", "significance_scores"]
