"""Benchmarks, one home: ``video-ats benchmark [MODE]``.

=============  ===============================================================================================
mode           what it measures
=============  ===============================================================================================
speed          (default) dense vs ATS speed, GFLOPs, efficiency, sampler share and peak memory, for
               inference or training steps (``--train``), eager or ``--compile``, any model (TimeSformer,
               X-ViT), device and autocast; under keep patterns (uniform, skewed, replayed trained masks)
               — :mod:`.speed`, :mod:`.patterns`, :mod:`.memory`
precision      forward time in fp32 vs under autocast, dense and ATS, interleaved — :mod:`.precision`
attention      attention only: the layouts of ``attend_groups`` on a skewed keep pattern — :mod:`.attention`
data           this project's test-view and training loaders vs pytorchvideo on the same files — :mod:`.data`
export-keep    a trained ATS model's kept-token masks on real clips → a keep-pattern file — :mod:`.export`
report         README tables from results files — :mod:`.report`
=============  ===============================================================================================
"""
from .patterns import (  # noqa: F401
                       KeepPattern,
                       build_pattern,
                       even_keep,
                       expected_masks,
                       install_pattern,
                       resample_stages,
                       skewed_scores,
)
from .speed import ATS_PRESETS, SpeedSpec, format_row, run_speed  # noqa: F401
