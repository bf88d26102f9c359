"""Paper-style pictures (matplotlib, Agg backend, PNG).

* :func:`plot_token_overlay` — frames of one clip after each ATS stage, dropped patches darkened
  (paper Fig. 7).
* :func:`plot_kept_histograms` — kept tokens per ATS stage over a set of views (paper Fig. 6).
* :func:`plot_accuracy_vs_gflops` — Top-1 vs GFLOPs/view curves of a sweep (ATS vs baselines, dense).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DROPPED_SHADE = 0.2       # dropped patches keep 20 % of their brightness, mixed with grey
GREY = 0.35


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def clip_to_frames(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised (3, T, H, W) model input -> (T, H, W, 3) RGB in [0, 1]."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    rgb = (clip.float().cpu() * s + m).clamp(0, 1)
    return rgb.permute(1, 2, 3, 0).numpy()


def kept_mask(positions: torch.Tensor, grid) -> np.ndarray:
    """(n, 2) [t, p] kept positions -> (T, Hp, Wp) bool."""
    t_, h_, w_ = grid
    mask = np.zeros(t_ * h_ * w_, dtype=bool)
    if positions.numel():
        flat = positions[:, 0] * (h_ * w_) + positions[:, 1]
        mask[flat.numpy()] = True
    return mask.reshape(t_, h_, w_)


def plot_token_overlay(frames: np.ndarray, stages: Dict[int, torch.Tensor], patch_size: int, path: str,
                       title: str = "", max_frames: int = 8) -> str:
    """Rows: the input frames, then one row per ATS block with the dropped patches darkened.

    frames: (T, H, W, 3) in [0, 1]; stages: {block: (n, 2) kept [t, p] positions of this clip}.
    """
    t_, h, w, _ = frames.shape
    hp, wp = h // patch_size, w // patch_size
    cols = list(range(t_)) if t_ <= max_frames else np.linspace(0, t_ - 1, max_frames).round().astype(int).tolist()
    rows = [("input", None)] + [(f"block {b}", kept_mask(stages[b], (t_, hp, wp))) for b in sorted(stages)]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.6 * len(cols) + 0.8, 1.6 * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, mask) in enumerate(rows):
        for c, t in enumerate(cols):
            img = frames[t].copy()
            if mask is not None:
                m = np.kron(mask[t], np.ones((patch_size, patch_size), dtype=bool))[:h, :w]
                img[~m] = img[~m] * DROPPED_SHADE + GREY * (1 - DROPPED_SHADE)
                kept = int(mask[t].sum())
            ax = axes[r][c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=8)
            if mask is not None:
                ax.set_xlabel(f"{kept}/{hp * wp}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_kept_histograms(kept: Dict[int, Sequence[float]], path: str, num_tokens: Optional[Dict[int, object]] = None,
                         full_tokens: Optional[int] = None, title: str = "") -> str:
    """One histogram per ATS block of the tokens kept per view."""
    blocks = sorted(kept, key=int)
    fig, axes = plt.subplots(1, max(len(blocks), 1), figsize=(3.2 * max(len(blocks), 1), 2.8), squeeze=False)
    for ax, b in zip(axes[0], blocks):
        v = np.asarray(kept[b], dtype=float)
        bins = min(20, max(1, int(v.max() - v.min()) + 1)) if v.size else 1
        ax.hist(v, bins=bins, color="tab:blue", edgecolor="black")
        k = (num_tokens or {}).get(b)
        ax.set_title(f"block {b}" + (f" (K={k})" if k is not None else ""), fontsize=9)
        ax.set_xlabel("kept tokens per view")
        ax.set_ylabel("views")
        if v.size:
            ax.axvline(v.mean(), color="tab:red", linestyle="--", label=f"mean {v.mean():.1f}")
            ax.legend(fontsize=7)
    if title or full_tokens:
        fig.suptitle(title + (f"  (of {full_tokens} patch tokens)" if full_tokens else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_gflops(rows: List[dict], path: str, metric: str = "top1", title: str = "",
                            labels: Optional[Dict[str, str]] = None) -> str:
    """``rows``: sweep rows {selection, scale, gflops_mean, top1, top5}; selection "dense" is a point.
    ``labels``: legend text per selection (default: the selection itself)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = {"ats": "o", "topk": "s", "random": "^", "ats_finetuned": "D", "tome": "v"}
    labels = labels or {}
    for sel in [s for s in ("ats", "topk", "random") if any(r["selection"] == s for r in rows)] + \
            sorted({r["selection"] for r in rows} - {"ats", "topk", "random", "dense"}):
        pts = sorted((r["gflops_mean"], r[metric]) for r in rows
                     if r["selection"] == sel and r.get(metric) is not None and r.get("gflops_mean") is not None)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(sel, "x"), label=labels.get(sel, sel))
    for r in rows:
        if r["selection"] == "dense" and r.get(metric) is not None:
            ax.scatter([r["gflops_mean"]], [r[metric]], marker="*", s=160, color="black", label="dense", zorder=3)
    ax.set_xlabel("GFLOPs per view (mean)")
    ax.set_ylabel(f"{'Top-1' if metric == 'top1' else 'Top-5'} accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
