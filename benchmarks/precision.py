"""Forward time in float32 vs under torch.autocast (bf16 on CPU), dense and with ATS, interleaved.

    python benchmarks/precision.py --model timesformer_base_8x224 --batch 1 --repeats 3 --threads 1

Random weights and a fixed random input; each setting runs once per round, rounds interleaved; the
median thread CPU time (all the work with --threads 1, robust when other jobs share the machine) and
wall time are printed.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import video_ats

SETTINGS = {"dense": None, "ats mild": {"blocks": [4, 7, 10], "num_tokens": [0.7, 0.5, 0.35]}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="timesformer_base_8x224")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = video_ats.create_model(args.model, num_classes=400).eval()
    size = m.config["img_size"]
    x = torch.randn(args.batch, 3, m.num_frames, size, size, generator=torch.Generator().manual_seed(0))
    dtype = getattr(torch, args.dtype)
    runs = [(name, amp) for name in SETTINGS for amp in (False, True)]
    times = {r: ([], []) for r in runs}
    logits = {}
    with torch.no_grad():
        for rnd in range(args.repeats + 1):                        # round 0 warms up
            for name, amp in runs:
                m.set_ats(SETTINGS[name])
                ctx = torch.autocast("cpu", dtype=dtype) if amp else contextlib.nullcontext()
                c0, w0 = time.thread_time(), time.perf_counter()
                with ctx:
                    out = m(x)
                if rnd:
                    times[(name, amp)][0].append(time.thread_time() - c0)
                    times[(name, amp)][1].append(time.perf_counter() - w0)
                logits[(name, amp)] = out.float()
    print(f"{args.model}, batch {args.batch}, torch {torch.__version__}, {args.threads} thread(s), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, median of {args.repeats}")
    for name in SETTINGS:
        (c32, w32), (c16, w16) = ((statistics.median(v) for v in times[(name, amp)]) for amp in (False, True))
        diff = (logits[(name, True)] - logits[(name, False)]).abs().max().item()
        print(f"{name:9s} fp32 {c32:7.2f} s CPU ({w32:7.2f} s wall)   {args.dtype} {c16:7.2f} s CPU ({w16:7.2f} s wall)"
              f"   ratio {c16 / c32:.2f}   max |Δlogit| {diff:.3g}")


if __name__ == "__main__":
    main()
