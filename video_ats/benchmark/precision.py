"""Forward time in float32 vs under torch.autocast (bf16 on CPU by default), dense and with ATS, interleaved.

    video-ats benchmark precision --batch 1 --repeats 3 --threads 1
    video-ats benchmark precision model.name=xvit_b16_16x224 --amp fp16 --device cuda

Random weights (seeded) and a fixed random input (:func:`.speed.build_dense`, :func:`.speed.make_input`);
each (setting, precision) runs once per round, rounds interleaved, after one untimed warm-up round; the
median thread CPU time (all the work with ``--threads 1``, robust when other jobs share the machine) and
wall time are printed, with the autocast/fp32 CPU-time ratio and the largest logit difference.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..errors import UserError
from .speed import (
    ATS_PRESETS,
    Stepper,
    autocast,
    build_dense,
    check_presets_fit,
    default_settings,
    make_input,
    resolve_device,
    sync,
    twin,
)


@dataclass
class PrecisionSpec:
    """What to measure. ``cfg``: an engine config whose model section builds the model; ``settings``:
    ATS settings next to dense (None: the model family's first preset, ``mild`` for TimeSformer-B)."""
    cfg: Dict[str, Any]
    settings: Optional[Dict[str, dict]] = None
    batch_sizes: Sequence[int] = (1,)
    repeats: int = 3
    amp: str = "bf16"
    device: str = "cpu"
    seed: int = 0


def run_precision(spec: PrecisionSpec, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Measure ``spec``; returns ``{"kind": "precision", "meta": {...}, "rows": [...]}``, one row per
    (batch, setting, precision) with the median ``cpu_s`` and ``wall_s``."""
    if spec.amp == "off":
        raise UserError("`video-ats benchmark precision` compares fp32 with autocast: give --amp bf16 or fp16")
    dev = resolve_device(spec.device)
    autocast(dev, spec.amp)                                  # validates amp
    dense = build_dense(spec.cfg, spec.seed).to(dev).eval()
    settings = spec.settings
    if settings is None:
        first = default_settings(dense)[0]
        settings = {first: ATS_PRESETS[first]}
        check_presets_fit(settings, dense)
    models = {"dense": dense}
    for name, ats in settings.items():
        m = twin(dense)
        m.set_ats(ats)
        models[name if name.startswith("ats") else f"ats {name}"] = m
    steps = {amp: Stepper(dense, dev, amp, train=False) for amp in ("off", spec.amp)}
    runs = [(name, amp) for name in models for amp in ("off", spec.amp)]
    meta = {"model": spec.cfg["model"]["name"], "model_class": type(dense).__name__, "device": str(dev),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "amp": spec.amp,
            "settings": settings, "batch_sizes": list(spec.batch_sizes), "repeats": spec.repeats, "seed": spec.seed}
    log(f"{meta['model']}, batch {', '.join(map(str, spec.batch_sizes))}, torch {torch.__version__}, device {dev}, "
        f"{meta['threads']} thread(s), CPU capability {meta['cpu_capability']}, median of {spec.repeats}")
    label = {"off": "fp32", "bf16": "bfloat16", "fp16": "float16"}
    rows: List[dict] = []
    for batch in spec.batch_sizes:
        x = make_input(dense, batch, spec.seed).to(dev)
        times = {r: ([], []) for r in runs}
        for rnd in range(spec.repeats + 1):                  # round 0 warms up
            for name, amp in runs:
                sync(dev)
                c0, w0 = time.thread_time(), time.perf_counter()
                steps[amp](models[name], x)
                sync(dev)
                if rnd:
                    times[(name, amp)][0].append(time.thread_time() - c0)
                    times[(name, amp)][1].append(time.perf_counter() - w0)
        for name, m in models.items():
            with torch.no_grad():
                ref = m(x).float()
                with autocast(dev, spec.amp):
                    low = m(x).float()
            diff = (low - ref).abs().max().item()
            (c32, w32), (c16, w16) = ((statistics.median(v) for v in times[(name, amp)])
                                      for amp in ("off", spec.amp))
            log(f"{'' if len(spec.batch_sizes) == 1 else f'batch {batch} '}{name:11s} "
                f"fp32 {c32:7.2f} s CPU ({w32:7.2f} s wall)   {label[spec.amp]} {c16:7.2f} s CPU ({w16:7.2f} s wall)"
                f"   ratio {c16 / c32:.2f}   max |Δlogit| {diff:.3g}")
            for amp, cpu, wall in (("off", c32, w32), (spec.amp, c16, w16)):
                rows.append({"batch": batch, "setting": name, "precision": "fp32" if amp == "off" else amp,
                             "cpu_s": cpu, "wall_s": wall, "cpu_ratio_vs_fp32": cpu / c32,
                             "max_abs_logit_diff_vs_fp32": 0.0 if amp == "off" else diff})
    return {"kind": "precision", "meta": meta, "rows": rows}
