"""Export the kept-token masks of a trained ATS model on real clips as a keep-pattern file.

The file (``torch.save``, a few tens of kB) holds ``stages``: (clips, T, H, W) uint8, the number of the
model's ATS stages each token survived (stage s kept the tokens with value > s; stages are nested), and
where it came from: ``source_model``, ``source_grid``, ``source_depth``, ``source_blocks``,
``source_num_tokens``, ``num_stages``, ``checkpoint``, ``annotations``, ``views``. ``video-ats benchmark
--keep-pattern FILE`` replays it on any model (:mod:`video_ats.benchmark.patterns`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional

import torch

from ..errors import UserError
from .patterns import save_pattern_file, stage_maps
from .speed import command_line


def export_keep(cfg: Dict[str, Any], checkpoint: Optional[str], out: str, annotations: Optional[str] = None,
                data_root: Optional[str] = None, clips: int = 64, batch_size: int = 16,
                log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run ``cfg``'s ATS model (with ``checkpoint``) on the centre crop of one clip of ``clips`` videos
    spread evenly over the annotation file, and write what each ATS stage kept to ``out``."""
    from ..analysis.common import build_eval_model, decode_views, measure
    from ..engine.builders import model_data_settings, read_split

    if clips < 1:
        raise UserError(f"--clips must be ≥ 1, got {clips}")
    from ..engine.builders import check_output_file

    check_output_file(out, "--out", "keep.pt")          # before the model runs over the clips, not after
    model = build_eval_model(cfg, checkpoint, need_ats=True, what="export-keep")
    settings = model_data_settings(cfg, model)
    path = annotations or cfg["test"]["annotations"] or cfg["data"]["val_annotations"]
    records, _ = read_split(path, cfg, "export-keep", data_root=data_root,
                            class_names=getattr(model, "class_names", None))
    n = min(clips, len(records))
    picked = [records[i * len(records) // n] for i in range(n)]
    views, _, failures = decode_views(picked, settings, (1, 1))
    if views is None:
        raise UserError(f"none of the {n} videos could be decoded (e.g. {failures[0]['path']}: {failures[0]['error']})")
    if failures:
        log(f"note: {len(failures)} of {n} videos could not be decoded and are left out")
    model.eval()
    res = measure(model, views, batch_size, device=torch.device("cpu"), with_positions=True)
    c = model.config
    side = c["img_size"] // c["patch_size"]
    grid = (int(c["num_frames"]), side, side)
    stages = stage_maps(res["positions"], grid)
    ats = model.ats
    info = {"source_model": cfg["model"]["name"], "source_grid": list(grid), "source_depth": int(c["depth"]),
            "source_blocks": list(ats.blocks), "source_num_tokens": list(ats.num_tokens),
            "num_stages": len(ats.blocks), "checkpoint": checkpoint,
            "annotations": path, "views": "1x1 (centre crop of the first test clip)",
            "clips": int(stages.shape[0]),
            "command": command_line()}
    save_pattern_file(out, stages, info)
    total = grid[0] * grid[1] * grid[2]
    kept = [(stages > s).flatten(1).sum(1).double() for s in range(len(ats.blocks))]
    for s, k in enumerate(kept):
        log(f"stage {s} (after block {ats.blocks[s]}): kept {k.mean():.1f} of {total} tokens per clip on average "
            f"(min {k.min():.0f}, max {k.max():.0f})")
    log(f"wrote {stages.shape[0]} clips' keep masks to {os.path.abspath(out)} ({os.path.getsize(out) / 1024:.1f} kB)")
    return info
