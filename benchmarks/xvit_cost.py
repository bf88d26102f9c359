"""Dense vs ATS cost of X-ViT-B/16 16×224: GFLOPs per view (count_gflops) and CPU forward time.

    python benchmarks/xvit_cost.py [--repeats 3] [--threads 2] [--batch 1]

Weights are random (no checkpoint is needed to measure cost); with random weights the CLS attention is
nearly flat, so ATS keeps close to K tokens per block — the upper bound of its cost. A trained model
keeps K' ≤ K (fewer where attention is peaked), so its GFLOPs can only be lower.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import video_ats

SETTINGS = [
    ("dense", None),
    ("ATS [3,6,9] K=[0.7,0.5,0.35]", {"blocks": [3, 6, 9], "num_tokens": [0.7, 0.5, 0.35]}),
    ("ATS [2,4,6,8] K=[0.6,0.4,0.25,0.15]", {"blocks": [2, 4, 6, 8], "num_tokens": [0.6, 0.4, 0.25, 0.15]}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = video_ats.create_model("xvit_b16_16x224", num_classes=600).eval()
    x = torch.randn(args.batch, 3, 16, 224, 224)
    print(f"X-ViT-B/16 16x224, batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'setting':40s} {'GFLOPs/view':>12s} {'kept tokens after each ATS block':>34s} {'CPU s (median)':>15s}")
    rows = []
    for name, ats in SETTINGS:
        model.set_ats(ats)
        g = video_ats.count_gflops(model, x).mean().item()
        kept = "/".join(str(int(v.float().mean())) for v in model.last_kept_tokens.values()) or "3136"
        rows.append((name, ats, g, kept, []))
    # settings interleaved round-robin, so load from other processes hits them alike
    with torch.inference_mode():
        for _, ats, _, _, _ in rows:                            # warm-up
            model.set_ats(ats)
            model(x)
        for _ in range(args.repeats):
            for _, ats, _, _, times in rows:
                model.set_ats(ats)
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
    dense_t = statistics.median(rows[0][4])
    for name, _, g, kept, times in rows:
        t = statistics.median(times)
        print(f"{name:40s} {g:12.1f} {kept:>34s} {t:15.2f} ({t / dense_t:.0%})")

if __name__ == "__main__":
    main()
