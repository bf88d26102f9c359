"""Peak memory of one benchmark step (inference forward or training step), above what the model, its
optimizer state and the input already hold.

CUDA: in this process, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
CPU:  in a fresh process (multiprocessing, spawn), so earlier allocations of this one do not count: the
      model and input are built and one warm-up step runs; then the kernel's peak-RSS mark is reset
      (``/proc/self/clear_refs``) and the rise of the peak RSS (``VmHWM``) over the resident size during
      one more step is the figure. Where that mark cannot be reset (not Linux), the rise of
      ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` over the resident size before the step is used — an
      upper bound on the same quantity.
"""
from __future__ import annotations

import multiprocessing as mp
import queue as _queue
from typing import Any, Dict, Optional

import torch


def _build(job: Dict[str, Any], device: torch.device):
    """The runner a speed benchmark would time for ``job``, its input and its step function."""
    from .patterns import build_pattern
    from .speed import Stepper, build_dense, make_ats_runner, make_input, token_grid

    dense = build_dense(job["cfg"], job.get("seed", 0)).to(device)
    model = dense
    if job.get("pattern"):
        pat = build_pattern(job["pattern"], token_grid(dense), job.get("seed", 0))
        model = make_ats_runner(dense, "", job.get("ats"), pat, job.get("replay_blocks")).model
    elif job.get("ats"):
        model = make_ats_runner(dense, "", job["ats"], build_pattern("model", token_grid(dense))).model
    model.train(bool(job.get("train")))
    step = Stepper(dense, device, job.get("amp", "off"), bool(job.get("train")))
    x = make_input(dense, int(job["batch"]), job.get("seed", 0)).to(device)
    return model, x, step


def _kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_step_peak_mb(job: Dict[str, Any]) -> float:
    """Run in the current process: build, warm up, reset the peak mark, one step; MB above the base."""
    torch.set_num_threads(int(job.get("threads") or torch.get_num_threads()))
    model, x, step = _build(job, torch.device("cpu"))
    step(model, x)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                     # reset VmHWM to the current RSS
        base = _kb("VmRSS")
        step(model, x)
        peak = _kb("VmHWM")
        if base is not None and peak is not None:
            return (peak - base) / 1024
    except OSError:
        pass
    import resource

    base = _kb("VmRSS") or 0
    step(model, x)
    return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def _child(job, out) -> None:
    try:
        out.put(("ok", cpu_step_peak_mb(job)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))


def peak_memory_mb(job: Dict[str, Any], device: torch.device, timeout: float = 1800) -> Optional[float]:
    """Peak memory (MB) of one step of ``job`` (see the module doc) on ``device``; None when the
    measurement itself failed (a warning line says why)."""
    device = torch.device(device)
    if device.type == "cuda":
        model, x, step = _build(job, device)
        step(model, x)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(model, x)
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        del model, x, step
        torch.cuda.empty_cache()
        return peak
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    job = dict(job, threads=torch.get_num_threads())
    proc = ctx.Process(target=_child, args=(job, out), daemon=True)
    proc.start()
    try:
        status, value = out.get(timeout=timeout)
    except _queue.Empty:
        status, value = "error", f"no answer within {timeout:.0f} s"
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
    if status != "ok":
        print(f"warning: peak-memory measurement failed: {value}", flush=True)
        return None
    return float(value)


__all__ = ["peak_memory_mb", "cpu_step_peak_mb"]
