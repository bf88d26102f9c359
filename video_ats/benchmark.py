"""Model speed benchmark: dense vs ATS (and vs the official forward), measured side by side in one run.

Reported per batch size and setting: GFLOPs per clip (mean), median seconds per batch, clips/s, and for
ATS settings the efficiency = (t_dense / t_ats) ÷ (GFLOPs_dense / GFLOPs_ats) — 1.0 means the FLOP saving
shows up fully on the clock — plus the share of the forward spent in ATS's own operations (scores,
sampling, gathers, index bookkeeping; profiler label ``video_ats.ats``) and the peak memory of the
forward. Runs are interleaved round-robin, so background load hits all settings alike.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import torch

from .engine.device import autocast
from .flops import count_gflops
from .models import create_model
from .models.sampling import ATS_PROFILE_LABEL

ATS_PRESETS: Dict[str, dict] = {
    # ~30 % fewer FLOPs on TimeSformer-B: late blocks only
    "mild": {"blocks": [4, 7, 10], "num_tokens": [0.7, 0.5, 0.35]},
    # ~half the FLOPs on TimeSformer-B
    "half": {"blocks": [3, 5, 7, 9], "num_tokens": [0.5, 0.5, 0.5, 0.5]},
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ats_share(model, x, device, dtype) -> float:
    """Fraction of one forward's wall time spent inside the ATS profiler label."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.no_grad(), autocast(device, dtype):
        model(x)
        _sync(device)
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            total = time.perf_counter() - t0
    ats_us = sum(e.cpu_time_total for e in prof.key_averages() if e.key == ATS_PROFILE_LABEL)
    return ats_us / 1e6 / total


def peak_memory_mb(model_name: str, model_kwargs: dict, ats: Optional[dict], batch: int, device: str) -> float:
    """Peak memory of one forward above what the model and input hold (CPU: max RSS, in a subprocess)."""
    if device.startswith("cuda"):
        dev = torch.device(device)
        model = create_model(model_name, **model_kwargs, ats=ats).to(dev).eval()
        x = _input(model, batch).to(dev)
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    # CPU: in a fresh process, reset the kernel's peak-RSS mark (VmHWM) after building the model and
    # input, run one forward, and report how far the peak rose above the resident size before it.
    code = (
        "import json,sys,torch\n"
        "from video_ats.models import create_model\n"
        "from video_ats.benchmark import _input\n"
        "def kb(f):\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith(f)][0].split()[1])\n"
        "a=json.loads(sys.argv[1]); m=create_model(a['name'],**a['kw'],ats=a['ats']).eval(); x=_input(m,a['b'])\n"
        "with torch.no_grad(): m(x)\n"
        "open('/proc/self/clear_refs','w').write('5'); base=kb('VmRSS')\n"
        "with torch.no_grad(): m(x)\n"
        "print((kb('VmHWM')-base)/1024)\n")
    arg = json.dumps({"name": model_name, "kw": model_kwargs, "ats": ats, "b": batch})
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _input(model, batch: int, seed: int = 0) -> torch.Tensor:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.get("in_chans", 3), cfg["num_frames"], cfg["img_size"], cfg["img_size"], generator=g)


def run(model_name: str = "timesformer_base_8x224", batch_sizes=(1, 8), settings: Optional[Dict[str, dict]] = None,
        repeats: int = 5, warmup: int = 1, device: str = "cpu", dtype: Optional[torch.dtype] = None,
        with_official: bool = True, with_memory: bool = True, model_kwargs: Optional[dict] = None,
        log=print) -> List[dict]:
    settings = dict(ATS_PRESETS if settings is None else settings)
    model_kwargs = dict(model_kwargs or {})
    dev = torch.device(device)
    torch.manual_seed(0)
    dense = create_model(model_name, **model_kwargs).to(dev).eval()
    models = {"dense": dense}
    for name, ats in settings.items():
        m = create_model(model_name, **model_kwargs, ats=ats).to(dev).eval()
        m.load_state_dict(dense.state_dict())
        models[name] = m
    runners = {name: m for name, m in models.items()}
    if with_official and model_name.startswith("timesformer"):
        from .reference import official_timesformer_forward
        runners["official"] = lambda x, _m=dense: official_timesformer_forward(_m, x)
    rows = []
    for batch in batch_sizes:
        x = _input(dense, batch).to(dev)
        gflops = {name: count_gflops(m, x.cpu() if dev.type == "cpu" else x).mean().item() for name, m in models.items()}
        gflops["official"] = gflops["dense"]
        times: Dict[str, List[float]] = {name: [] for name in runners}
        with torch.no_grad(), autocast(dev, dtype):
            for _ in range(warmup):
                for fn in runners.values():
                    fn(x)
            for _ in range(repeats):
                for name, fn in runners.items():         # round-robin: noise hits every setting alike
                    _sync(dev)
                    t0 = time.perf_counter()
                    fn(x)
                    _sync(dev)
                    times[name].append(time.perf_counter() - t0)
        t_dense = statistics.median(times["dense"])
        for name in runners:
            t = statistics.median(times[name])
            row = {"model": model_name, "setting": name, "batch": batch, "gflops_per_clip": gflops[name],
                   "seconds_per_batch": t, "clips_per_s": batch / t, "speedup_vs_dense": t_dense / t,
                   "flop_ratio_vs_dense": gflops["dense"] / gflops[name]}
            if name in settings:
                row["ats"] = settings[name]
                row["efficiency"] = row["speedup_vs_dense"] / row["flop_ratio_vs_dense"]
                row["ats_share_of_forward"] = ats_share(models[name], x, dev, dtype)
                row["kept_tokens_per_block"] = {k: v.float().mean().item() for k, v in models[name].last_kept_tokens.items()}
            if with_memory and name in models:
                row["peak_forward_memory_mb"] = peak_memory_mb(model_name, model_kwargs, settings.get(name), batch, device)
            rows.append(row)
            log(format_row(row))
    return rows


def format_row(r: dict) -> str:
    extra = ""
    if "efficiency" in r:
        extra = f"  efficiency {r['efficiency']:.2f}  ATS ops {100 * r['ats_share_of_forward']:.1f}% of forward"
    mem = f"  peak {r['peak_forward_memory_mb']:.0f} MB" if "peak_forward_memory_mb" in r else ""
    return (f"{r['model']:<24} {r['setting']:<9} batch {r['batch']:<3} {r['gflops_per_clip']:8.1f} GFLOPs/clip  "
            f"{r['seconds_per_batch']:7.3f} s/batch  {r['clips_per_s']:6.2f} clips/s  "
            f"speed x{r['speedup_vs_dense']:.2f} FLOPs x{r['flop_ratio_vs_dense']:.2f}{extra}{mem}")


def markdown_table(rows: List[dict]) -> str:
    head = ("| setting | batch | GFLOPs/clip | s/batch | clips/s | speed-up | FLOP ratio | efficiency | ATS ops share | "
            "peak fwd MB |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        eff = f"{r['efficiency']:.2f}" if "efficiency" in r else "–"
        share = f"{100 * r['ats_share_of_forward']:.1f} %" if "ats_share_of_forward" in r else "–"
        mem = f"{r['peak_forward_memory_mb']:.0f}" if "peak_forward_memory_mb" in r else "–"
        lines.append(f"| {r['setting']} | {r['batch']} | {r['gflops_per_clip']:.1f} | {r['seconds_per_batch']:.3f} | "
                     f"{r['clips_per_s']:.2f} | {r['speedup_vs_dense']:.2f} | {r['flop_ratio_vs_dense']:.2f} | {eff} | "
                     f"{share} | {mem} |")
    return "\n".join(lines)
