"""Matrix products over few rows: the rate a linear layer reaches at each row count.

After an ATS block a model's linear layers run on the kept tokens only. At batch 8 that is still
thousands of rows; at batch 1 it can be a few hundred or fewer (TimeSformer-B's ``half`` preset leaves
~100 rows after its last ATS block), and a CPU's matrix product runs below its full rate on so few rows.
That lost rate is a cost per FLOP which no FLOP count shows, and one reason why batch-1 efficiency stays
under batch-8 efficiency on the CPU (docs/speed_benchmark.md, "Batch 1 on the CPU").

This times ``torch.addmm`` (what ``F.linear`` runs on the CPU) with the transformer's own shapes (qkv D→3D,
proj D→D, fc1 D→4D, fc2 4D→D; D = 768 for the B models) over row counts, in interleaved rounds (every row
count and shape once a round, so noise hits all alike). The output is preallocated: a fresh output per call
lets the allocator return and re-fault large buffers depending on the order of sizes, which blurs the rate.
It reports GFLOP/s (one multiply-add = 2 FLOPs here: a rate, not the fvcore count) and each row count's rate
relative to the largest row count's.

    video-ats benchmark matmul --threads 2 --json docs/results/benchmark_3b_matmul_cpu.json
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import torch

# 1,569 = TimeSformer-B 8×224 at batch 1: 8 × 196 tokens + the CLS (dense)
DEFAULT_ROWS = (16, 32, 64, 128, 256, 512, 1024, 1569)


@dataclass
class MatmulSpec:
    rows: Sequence[int] = DEFAULT_ROWS
    dim: int = 768
    mlp_ratio: float = 4.0
    repeats: int = 5
    min_seconds: float = 0.02      # each timed call repeats the product until it has run this long
    seed: int = 0


def shapes(dim: int, mlp_ratio: float) -> Dict[str, tuple]:
    """(in, out) features of a block's linear layers."""
    hidden = int(dim * mlp_ratio)
    return {"qkv": (dim, 3 * dim), "proj": (dim, dim), "fc1": (dim, hidden), "fc2": (hidden, dim)}


# refuse sizes whose tensors would not fit comfortably (a typo such as --rows 1569000): one line, no OOM
MAX_BYTES = 8 * 2**30


def check_size(spec: MatmulSpec) -> None:
    from ..errors import UserError

    dims = shapes(spec.dim, spec.mlp_ratio).values()
    top = max(spec.rows)
    need = 4 * (sum(i * o + o for i, o in dims) + sum(spec.rows) * sum(i + o for i, o in dims))
    if need > MAX_BYTES:
        raise UserError(f"--rows up to {top} with --dim {spec.dim} needs {need / 2**30:.1f} GiB of tensors (limit "
                        f"{MAX_BYTES // 2**30} GiB); use fewer rows or a smaller --dim")


def _time(fn, min_seconds: float) -> float:
    """Seconds per call of ``fn``, calling it until ``min_seconds`` have passed (at least twice)."""
    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if calls >= 2 and elapsed >= min_seconds:
            return elapsed / calls


def run_matmul(spec: MatmulSpec, log=print, on_round: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Rate of the linear layers' matrix product per row count and layer shape; returns ``{"kind": "matmul",
    "meta", "rows"}``. ``on_round`` gets the results of the rounds so far (``"complete": False``) after every
    round, so that an interrupted run keeps what it measured."""
    from .speed import command_line, device_name

    check_size(spec)
    g = torch.Generator().manual_seed(spec.seed)
    layers = {name: (torch.randn(n_out, n_in, generator=g), torch.randn(n_out, generator=g))
              for name, (n_in, n_out) in shapes(spec.dim, spec.mlp_ratio).items()}
    inputs = {(m, n_in): torch.randn(m, n_in, generator=g) for m in spec.rows
              for n_in, _ in shapes(spec.dim, spec.mlp_ratio).values()}
    outputs = {(m, name): torch.empty(m, w.shape[0]) for m in spec.rows for name, (w, _) in layers.items()}
    times: Dict[tuple, list] = {(m, name): [] for m in spec.rows for name in layers}
    meta = {"device": "cpu", "device_name": device_name(torch.device("cpu")), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "dim": spec.dim, "mlp_ratio": spec.mlp_ratio,
            "shapes": {k: list(v) for k, v in shapes(spec.dim, spec.mlp_ratio).items()},
            "repeats": spec.repeats, "command": command_line()}

    def result(complete: bool) -> Dict[str, Any]:
        rate = {key: 2 * key[0] * layers[key[1]][0].numel() / statistics.median(t) / 1e9 for key, t in times.items()}
        top = max(spec.rows)
        rows = []
        for m in spec.rows:
            per = {name: rate[(m, name)] for name in layers}
            rel = statistics.mean(per[name] / rate[(top, name)] for name in layers)
            rows.append({"rows": m, "gflops_per_s": per, "relative_rate": rel, "rounds": len(times[(m, "qkv")])})
        return {"kind": "matmul", "meta": meta, "rows": rows, "complete": complete}

    with torch.no_grad():
        for r in range(spec.repeats):                  # interleaved: one call of every case per round
            for m in spec.rows:
                for name, (w, b) in layers.items():
                    product = functools.partial(torch.addmm, b, inputs[(m, w.shape[1])], w.t(), out=outputs[(m, name)])
                    times[(m, name)].append(_time(product, spec.min_seconds))
            if on_round is not None and r + 1 < spec.repeats:
                on_round(result(False))
    res = result(True)
    for row in res["rows"]:
        log(f"{row['rows']:6d} rows  " + "  ".join(f"{k} {v:6.1f}" for k, v in row["gflops_per_s"].items())
            + f"  GFLOP/s   x{row['relative_rate']:.2f}")
    return res
