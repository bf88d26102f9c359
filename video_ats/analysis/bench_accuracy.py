"""The accuracy-vs-GFLOPs evidence benchmark (``video-ats bench-accuracy``).

One seeded pipeline, every stage cached: generate the Kinetics-shaped synthetic set
(``make_synthetic`` preset ``kinetics``) → train the small TimeSformer from scratch (dense) → fine-tune
ATS copies at a few budgets → evaluate, with 1×3 views on the held-out test split:

* ``dense``;
* ``ats``: ATS off the shelf on the dense model, at several K scales;
* ``ats_finetuned``: the fine-tuned copies;
* ``topk`` and ``random``: the paper's baselines (Table A.3) at the same blocks, K scaled to span the
  same GFLOPs range (they keep exactly K, ATS keeps K′ ≤ K);
* ``tome``: token merging (Bolya et al.) at the same blocks, r scaled likewise.

Every method is compared with off-the-shelf ATS *at matched GFLOPs*: ATS's per-video correctness is
interpolated linearly along its curve (x = measured mean GFLOPs per view) at the other point's GFLOPs,
and the Top-1 difference gets a paired bootstrap 95 % CI over the same test videos. A second training
seed repeats dense training and the main fine-tune to show the result is stable.

Two diagnostics, on the *val* split (never test): the validation probe (dropping right after block 0
against the recipe's blocks) and the evidence probe (linear probes of each dense model's residual stream:
where the class evidence sits, in the CLS or spread into every patch token, block by block).

Caching: each stage's folder holds ``stage.json`` with a key (a hash of everything the stage depends
on). A rerun skips stages whose key matches, resumes an interrupted training of the same key, and redoes
a stage (and everything after it) whose inputs changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import UserError
from ..fileio import atomic_write_json

METHODS = ("ats", "ats_finetuned", "topk", "random", "tome")
RESULTS_VERSION = 1
RECIPE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "synthetic", "bench_timesformer.yaml")
FINETUNE_RECIPE = os.path.join(os.path.dirname(RECIPE), "bench_timesformer_ats.yaml")


@dataclass(frozen=True)
class BenchSpec:
    """What the benchmark runs. Defaults are the published run (``docs/results/accuracy_benchmark.json``)."""
    out: str = os.path.join("runs", "bench_accuracy")
    data: Optional[str] = None               # dataset folder (default: the cache, see data_dir())
    data_seed: int = 0
    recipe: str = RECIPE                     # dense training recipe
    finetune_recipe: str = FINETUNE_RECIPE   # ATS fine-tuning recipe (its model.ats gives blocks + base K)
    seeds: Tuple[int, ...] = (0, 1)          # training seeds; the first is the main run
    # K scales (of the fine-tuning recipe's K) for off-the-shelf ATS, the baselines, the fine-tunes
    ats_scales: Tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0, 1.4)
    baseline_scales: Tuple[float, ...] = (0.15, 0.25, 0.35, 0.5, 0.7, 1.0)
    # chosen on val (docs/benchmark.md): the fine-tune at 1.4x K came closest to dense; 1x K is the second budget
    finetune_scales: Tuple[float, ...] = (1.0, 1.4)
    main_finetune_scale: float = 1.4         # the fine-tune repeated for every seed
    tome_r: Tuple[float, ...] = (0.15, 0.25, 0.35, 0.45)   # ToMe: fraction of each frame's tokens merged per block
    # ToMe merges at most half of a frame's tokens per block, so at ATS's two blocks it cannot reach ATS's
    # low-GFLOPs end; it merges in every block but the last, as ToMe usually runs (a bit in each block)
    tome_blocks: Tuple[int, ...] = (0, 1, 2)
    views: Tuple[int, int] = (1, 3)
    # the validation probe: where dropping happens matters more than how. The dense model on the *val*
    # split with ATS, top-K and random dropping right after block 0 at these K (fractions of the patch
    # tokens), and at the recipe's blocks at ``probe_scale`` of its K (~50 % of dense GFLOPs)
    probe_block0_k: Tuple[float, ...] = (0.2, 0.4)
    probe_scale: float = 0.7
    # the evidence probe: linear probes (fit on train, scored on val) of every training seed's dense model
    # on the CLS and on ONE random patch token per clip after each block, on one view per video
    evidence_views: Tuple[int, int] = (1, 1)
    evidence_seed: int = 0                   # draws the probed token of each clip
    bootstrap: int = 2000
    batch_size: int = 48                     # views per forward in evaluation
    overrides: Tuple[str, ...] = ()          # key=value overrides for both training recipes
    data_overrides: Tuple[Tuple[str, Any], ...] = ()   # (key, value) changes to the "kinetics" preset (tests)

    def __post_init__(self):
        if self.main_finetune_scale not in self.finetune_scales:
            raise UserError(f"the main fine-tune scale {self.main_finetune_scale:g} must be one of the fine-tune "
                            f"scales {list(self.finetune_scales)}")

    def data_dir(self) -> str:
        if self.data:
            return self.data
        cache = os.environ.get("VIDEO_ATS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "video-ats"))
        return os.path.join(cache, f"synthetic-kinetics-v5-seed{self.data_seed}")


# ---------------------------------------------------------------------------------------------------
# stage cache
# ---------------------------------------------------------------------------------------------------
def stage_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stage:
    """A cached stage in ``folder``: ``done`` when its ``stage.json`` holds ``key``. ``begin`` wipes a
    folder left by other inputs (an interrupted run of the same key is kept, so training resumes)."""

    def __init__(self, folder: str, key: str, name: str, log: Callable[[str], None]):
        self.folder, self.key, self.name, self.log = folder, key, name, log
        self.marker = os.path.join(folder, "stage.json")
        self.pending = os.path.join(folder, "stage.pending")
        self.t0 = 0.0

    def load(self) -> Optional[dict]:
        try:
            with open(self.marker, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            return None
        return info if info.get("key") == self.key else None

    def begin(self) -> None:
        pending = None
        if os.path.isfile(self.pending):
            with open(self.pending, encoding="utf-8") as f:
                pending = f.read().strip()
        if os.path.isdir(self.folder) and pending != self.key:
            shutil.rmtree(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        with open(self.pending, "w", encoding="utf-8") as f:
            f.write(self.key)
        self.t0 = time.time()

    def finish(self, **info) -> dict:
        info = dict(info, key=self.key, seconds=round(time.time() - self.t0, 1))
        atomic_write_json(self.marker, info, "stage marker", indent=1)
        os.remove(self.pending)
        self.log(f"[{self.name}] done in {info['seconds']:.0f} s")
        return info


def train_stage(out: str, name: str, cfg: Dict[str, Any], upstream: str,
                log: Callable[[str], None] = print) -> Tuple[str, str, float]:
    """Train ``cfg`` in OUT/<name> as a cached :class:`Stage` keyed on the config (output folder and run
    name aside) and ``upstream`` (the key of what it starts from). Returns (checkpoint, key, seconds the
    training took when it ran)."""
    from ..engine.distributed import DistInfo
    from ..engine.train import train

    folder = os.path.join(out, name)
    cfg = dict(cfg, output_dir=folder, name=name.replace(os.sep, "-"))
    key = stage_key("train", {k: v for k, v in cfg.items() if k not in ("output_dir", "name")}, upstream)
    stage = Stage(folder, key, name, log)
    ckpt = os.path.join(folder, "checkpoints", "last.pt")
    info = stage.load()
    if info is None:
        log(f"[{name}] training {cfg['train']['epochs']} epochs (seed {cfg['seed']}, ats {cfg['model']['ats']})")
        stage.begin()
        train(cfg, DistInfo())
        info = stage.finish(checkpoint=ckpt)
    else:
        log(f"[{name}] cached ({info['seconds']:.0f} s when it ran)")
    return ckpt, key, info["seconds"]


# ---------------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------------
def interpolate_curve(points: Sequence[Tuple[float, torch.Tensor]], g: float) -> Optional[torch.Tensor]:
    """Per-video correctness of a curve at GFLOPs ``g``: linear between the two points around ``g``
    (``points``: (gflops, (N,) float correctness) pairs); None outside the curve's GFLOPs range."""
    pts = sorted(points, key=lambda p: p[0])
    if not pts or g < pts[0][0] - 1e-12 or g > pts[-1][0] + 1e-12:
        return None
    for (g0, c0), (g1, c1) in zip(pts, pts[1:]):
        if g0 <= g <= g1:
            w = 0.0 if g1 == g0 else (g - g0) / (g1 - g0)
            return (1 - w) * c0 + w * c1
    return pts[0][1].clone()


def paired_bootstrap_ci(a: torch.Tensor, b: torch.Tensor, resamples: int = 2000, seed: int = 0,
                        level: float = 0.95) -> Tuple[float, float]:
    """Percentile CI of mean(a − b) in points (×100) over videos resampled with replacement; ``a`` and
    ``b`` are per-video scores of the same videos (paired)."""
    if a.shape != b.shape or a.dim() != 1 or a.numel() == 0:
        raise ValueError("paired bootstrap needs two equally long, non-empty 1-D tensors")
    d = (a.double() - b.double()) * 100.0
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, d.numel(), (resamples, d.numel()), generator=g)
    means = d[idx].mean(dim=1)
    lo, hi = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def matched_comparisons(curves: Dict[str, List[dict]], correct: Dict[str, torch.Tensor], reference: str = "ats",
                        resamples: int = 2000, seed: int = 0) -> List[dict]:
    """Each point of every other curve against ``reference`` interpolated at the point's GFLOPs."""
    ref = [(p["gflops_per_view"], correct[p["id"]]) for p in curves.get(reference, [])]
    out = []
    for method, points in curves.items():
        if method == reference:
            continue
        for p in points:
            c_ref = interpolate_curve(ref, p["gflops_per_view"])
            if c_ref is None:
                continue
            c = correct[p["id"]]
            lo, hi = paired_bootstrap_ci(c, c_ref, resamples, seed)
            out.append({"method": method, "budget": p["budget"], "gflops_per_view": p["gflops_per_view"],
                        "top1": p["top1"], "ats_top1_interpolated": round(float(c_ref.mean()) * 100, 4),
                        "top1_diff_vs_ats": round(float((c - c_ref).mean()) * 100, 4),
                        "ci95": [round(lo, 4), round(hi, 4)]})
    return out


def top1_by_quantile(correct: Dict[str, Sequence[int]], value: Sequence[float], bins: int = 4) -> Dict[str, Any]:
    """Top-1 of each result in ``correct`` (per-video 0/1, in the order of ``value``) within each of ``bins``
    equal-count bins of ``value`` (smallest first): where a method loses, not only how much."""
    v = torch.tensor(value, dtype=torch.float64)
    edges = torch.quantile(v, torch.linspace(0, 1, bins + 1, dtype=torch.float64))
    which = torch.bucketize(v, edges[1:-1], right=True)                   # bin 0 .. bins-1
    out = {"edges": [round(float(e), 2) for e in edges], "videos": torch.bincount(which, minlength=bins).tolist(),
           "top1": {}}
    for pid, c in correct.items():
        c = torch.tensor(c, dtype=torch.float64)
        if c.numel() != v.numel():
            raise ValueError(f"{pid}: {c.numel()} results for {v.numel()} videos")
        out["top1"][pid] = [round(100 * float(c[which == b].mean()), 2) if (which == b).any() else None
                            for b in range(bins)]
    return out


# ---------------------------------------------------------------------------------------------------
# evaluation on decoded views
# ---------------------------------------------------------------------------------------------------
@dataclass
class TestViews:
    """The decoded test views (decoded once, shared by every evaluation)."""
    clips: torch.Tensor           # (V, 3, T, c, c) normalised
    video: torch.Tensor           # (V,) video index of each view
    labels: torch.Tensor          # (N,) label of each evaluated video
    paths: List[str]
    failures: List[dict] = field(default_factory=list)


def decode_test_views(records, spec) -> TestViews:
    """Every test view of ``records`` as the :class:`~video_ats.engine.eval_spec.EvalSpec` ``spec`` cuts them."""
    from .common import decode_views

    clips, meta, failures = decode_views(records, spec.settings, spec.views, spec.clip_position)
    if clips is None:
        raise UserError("no test video could be decoded")
    index = sorted({m["video_index"] for m in meta})
    pos = {v: i for i, v in enumerate(index)}
    video = torch.tensor([pos[m["video_index"]] for m in meta])
    labels = torch.tensor([int(records[v].label) for v in index])
    return TestViews(clips, video, labels, [records[v].path for v in index], failures)


@torch.no_grad()
def evaluate_views(model, tv: TestViews, batch_size: int, spec) -> Dict[str, Any]:
    """Top-1/Top-5 over videos (a video's views combined as ``spec.combine`` says), per-video correctness,
    GFLOPs per view (mean/std) and kept tokens per view of ``model`` on the decoded views, its forwards
    in ``spec.precision``."""
    from ..engine.evaluate import topk_accuracy
    from .common import measure

    device = next(model.parameters()).device
    with spec.autocast(device):
        res = measure(model, tv.clips, batch_size, device)
    logits = res["logits"].double()
    # all videos at once: the views' softmax averaged (softmax_mean) or their logits summed (logit_sum)
    per_view = torch.softmax(logits, dim=-1) if spec.combine == "softmax_mean" else logits
    n = tv.labels.numel()
    scores = torch.zeros(n, per_view.shape[1], dtype=torch.float64).index_add_(0, tv.video, per_view)
    if spec.combine == "softmax_mean":
        scores /= torch.bincount(tv.video, minlength=n).clamp_min(1).unsqueeze(1).double()
    correct = (scores.argmax(dim=1) == tv.labels).double()
    g = res["gflops"].double()
    return {"top1": round(float(correct.mean()) * 100, 4),
            "top5": round(topk_accuracy(scores, tv.labels, scores.shape[1], 5), 4),
            "gflops_per_view": round(float(g.mean()), 6), "gflops_std": round(float(g.std(correction=0)), 6),
            "kept_tokens_per_view": {str(b): round(float(v.double().mean()), 2) for b, v in res["kept"].items()},
            "kept_tokens": {str(b): v.tolist() for b, v in res["kept"].items()},
            "correct": correct.to(torch.uint8).tolist()}


# ---------------------------------------------------------------------------------------------------
# the evidence probe: linear probes of the residual stream
# ---------------------------------------------------------------------------------------------------
# How the probes are fit (part of the stage key). A mild L2 on standardized features keeps the fit
# finite on separable features (a single CLS often separates the classes) without shrinking it.
PROBE_FIT = {"l2": 1e-3, "max_iter": 500}


@dataclass
class LinearProbe:
    """Multinomial logistic regression on features standardized with the training features' statistics."""
    mean: torch.Tensor            # (D,)
    std: torch.Tensor             # (D,)
    weight: torch.Tensor          # (D, C)
    bias: torch.Tensor            # (C,)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std) @ self.weight + self.bias


def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = PROBE_FIT["l2"],
                     max_iter: int = PROBE_FIT["max_iter"]) -> LinearProbe:
    """Fit a probe of (N, D) features ``x`` to labels ``y``: mean cross-entropy + ``l2``·‖W‖², full-batch
    L-BFGS in float64 from zero weights, so the same features always give the same probe."""
    x = x.double()
    mean, std = x.mean(dim=0), x.std(dim=0, correction=0).clamp_min(1e-8)   # a constant feature stays 0
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(z @ w + b, y) + l2 * w.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():                 # callers extract features under no_grad
        opt.step(loss)
    return LinearProbe(mean, std, w.detach(), b.detach())


def probe_top1(probe: LinearProbe, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of ``probe`` on features ``x`` with labels ``y``."""
    return round(float((probe.logits(x).argmax(dim=1) == y).double().mean()) * 100, 4)


def fit_and_score(train: Tuple[torch.Tensor, torch.Tensor], val: Tuple[torch.Tensor, torch.Tensor],
                  num_classes: int) -> float:
    """Val Top-1 (%) of a probe fit on the (features, labels) of ``train``."""
    return probe_top1(fit_linear_probe(*train, num_classes, **PROBE_FIT), *val)


def _token_of(ts, index: torch.Tensor) -> torch.Tensor:
    """(B, D): patch token ``index[b]`` (of the T·P in (t, p) order) of each clip b of the TokenSet ``ts``."""
    if not ts.dense:
        raise RuntimeError("the evidence probe needs a dense forward (every token in every block)")
    b = ts.batch_size
    return ts.x.reshape(b, -1, ts.x.shape[-1])[torch.arange(b, device=index.device), index]


@torch.no_grad()
def residual_stream(model, clips: torch.Tensor, token_index: torch.Tensor, batch_size: int) -> Dict[str, torch.Tensor]:
    """The dense TimeSformer ``model``'s residual stream on ``clips`` (V, 3, T, c, c): ``input`` (V, D) the
    patch token ``token_index`` (V,) of each clip entering block 0 (patch + position + time embedding);
    ``cls`` and ``token`` (depth, V, D): the CLS and that same patch token after each block (before the
    final norm). Read with hooks on the blocks, whose first argument and output are TokenSets."""
    grabbed: List[Any] = []
    hooks = [model.blocks[0].register_forward_pre_hook(lambda _m, args: grabbed.append(args[0]))]
    hooks += [blk.register_forward_hook(lambda _m, _args, out: grabbed.append(out)) for blk in model.blocks]
    device = next(model.parameters()).device
    cls, tok = [], []
    try:
        for start in range(0, clips.shape[0], batch_size):
            grabbed.clear()
            index = token_index[start:start + batch_size].to(device)
            model(clips[start:start + batch_size].to(device))
            cls.append(torch.stack([ts.cls[:, 0] for ts in grabbed[1:]]).float().cpu())
            tok.append(torch.stack([_token_of(ts, index) for ts in grabbed]).float().cpu())
    finally:
        for h in hooks:
            h.remove()
    tok_all = torch.cat(tok, dim=1)
    return {"input": tok_all[0], "token": tok_all[1:], "cls": torch.cat(cls, dim=1)}


# ---------------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------------
class Bench:
    """Runs :class:`BenchSpec`; ``run()`` returns the results dict (also written to ``out``)."""

    def __init__(self, spec: BenchSpec, log: Callable[[str], None] = print):
        self.spec, self.log = spec, log
        self.out = os.path.abspath(spec.out)
        self.times: Dict[str, float] = {}
        self._views: Dict[str, TestViews] = {}     # decoded views per split ("test", "val")
        self._eval_spec = None           # the EvalSpec the views were cut with (set with the first)
        self._views_ready = 0.0
        self._summary_decodes: Dict[str, float] = {}   # decodings done only for the summary (see stage_seconds)

    # -- data ------------------------------------------------------------------------------------------
    def data(self) -> Dict[str, str]:
        from ..data.synthetic import PRESETS, make_synthetic

        params = dict(PRESETS["kinetics"], seed=self.spec.data_seed, **dict(self.spec.data_overrides))
        folder = self.spec.data_dir()
        stage = Stage(folder, stage_key("data", params), "data", self.log)
        info = stage.load()
        if info is None:
            n = params["classes"] * params["videos_per_class"]
            self.log(f"[data] writing {n} synthetic videos (preset kinetics, seed {self.spec.data_seed}) to {folder}")
            stage.begin()
            paths = make_synthetic(folder, **params)
            info = stage.finish(paths=paths)
        else:
            self.log(f"[data] cached in {folder}")
        self.times["data"] = info["seconds"]
        self.data_key = stage.key
        return info["paths"]

    # -- training --------------------------------------------------------------------------------------
    def _train_cfg(self, recipe: str, paths: Dict[str, str], seed: int, extra: Sequence[str]) -> Dict[str, Any]:
        from ..engine.config import load_config

        return load_config(recipe, [f"data.train_annotations={paths['train_csv']}",
                                    f"data.val_annotations={paths['val_csv']}", f"data.data_root={paths['root']}",
                                    f"seed={seed}", "device=cpu", "train.progress=false",
                                    *self.spec.overrides, *extra])

    def _train(self, name: str, cfg: Dict[str, Any], upstream: str) -> Tuple[str, str]:
        ckpt, key, seconds = train_stage(self.out, name, cfg, upstream, self.log)
        self.times[name] = seconds
        return ckpt, key

    def base_ats(self) -> Dict[str, Any]:
        from ..engine.config import load_config

        ats = load_config(self.spec.finetune_recipe, [])["model"]["ats"]
        if not ats or not ats.get("blocks"):
            raise UserError(f"{self.spec.finetune_recipe}: model.ats must give the ATS blocks and K")
        return ats

    # -- evaluation ------------------------------------------------------------------------------------
    def _views_name(self, split: str, views: Optional[Tuple[int, int]] = None) -> str:
        """``split`` for the benchmark's views, else e.g. ``train_1x1``."""
        views = tuple(views or self.spec.views)
        return split if views == tuple(self.spec.views) else f"{split}_{views[0]}x{views[1]}"

    def _views_of(self, cfg, model, paths, split: str = "test", views: Optional[Tuple[int, int]] = None) -> TestViews:
        """The views of ``split`` (the benchmark's ``views`` unless given), decoded once as the first
        evaluated config's EvalSpec cuts them (every config of the benchmark has the same data and test
        settings)."""
        name = self._views_name(split, views)
        if name not in self._views:
            from ..engine.builders import read_split
            from ..engine.eval_spec import eval_spec

            t0 = time.time()
            records, _ = read_split(paths[f"{split}_csv"], cfg, "test")
            if self._eval_spec is None:
                self._eval_spec = eval_spec(cfg, model, views=self.spec.views)
            cut = replace(self._eval_spec, views=tuple(views or self.spec.views))
            decoded = self._views[name] = decode_test_views(records, cut)
            self.log(f"[decode] {len(decoded.paths)} {split} videos, {decoded.clips.shape[0]} views, "
                     f"{len(decoded.failures)} failed, in {time.time() - t0:.0f} s")
            self.times[f"decode_{name}_views"] = round(time.time() - t0, 1)
            self._views_ready = time.time()
        return self._views[name]

    def evaluate(self, cfg, ckpt: str, ckpt_key: str, paths, settings: List[Tuple[str, str, Dict[str, Any]]],
                 tag: str, split: str = "test") -> Dict[str, dict]:
        """Evaluate ``ckpt`` on ``split`` under each (point id, method, reduction) setting; cached per setting."""
        from ..analysis.common import build_eval_model

        folder = os.path.join(self.out, tag, "eval" if split == "test" else f"probe_{split}")
        os.makedirs(folder, exist_ok=True)
        out, model, seconds = {}, None, 0.0
        for pid, method, reduction in settings:
            key = stage_key("eval", ckpt_key, self.data_key, method, reduction, self.spec.views,
                            *([] if split == "test" else [split]))
            path = os.path.join(folder, f"{pid}.json")
            cached = _read_json(path)
            if cached is not None and cached.get("key") == key:
                out[pid] = cached
                seconds += cached.get("seconds", 0.0)
                continue
            t_point = time.time()
            if model is None:
                model = build_eval_model(dict(cfg, model=dict(cfg["model"], ats=None, pretrained=None)), ckpt,
                                         need_ats=False, what="bench-accuracy")
            _set_reduction(model, method, reduction)
            views = self._views_of(cfg, model, paths, split)
            t_point = max(t_point, self._views_ready)             # decoding is its own stage
            res = evaluate_views(model, views, self.spec.batch_size, self._eval_spec)
            res.update(key=key, id=pid, method=method, reduction=reduction, seconds=round(time.time() - t_point, 1))
            seconds += res["seconds"]
            atomic_write_json(path, res, "evaluation", indent=1, make_parent=True)
            out[pid] = res
            self.log(f"[eval {tag} {split}] {pid:28s} Top-1 {res['top1']:6.2f}  GFLOPs/view {res['gflops_per_view']:.4f}"
                     f"  ({res['seconds']:.0f} s)")
        name = f"eval_{tag}" if split == "test" else f"probe_{split}_{tag}"
        self.times[name] = round(self.times.get(name, 0.0) + seconds, 1)
        return out

    def probe(self, cfg, ckpt: str, ckpt_key: str, paths, base: Dict[str, Any], tag: str) -> Dict[str, Any]:
        """The validation probe (see ``BenchSpec.probe_block0_k``): the dense model on the val split with
        each selection dropping right after block 0 and at the recipe's blocks. Chosen on val, never test."""
        settings = [("dense", "dense", None)]
        for k in self.spec.probe_block0_k:
            settings += [(f"{m}_block0_k{k:g}", m, {"blocks": [0], "num_tokens": [k], "selection": m})
                         for m in ("ats", "topk", "random")]
        settings += [(f"{m}_x{self.spec.probe_scale:g}", m, _scaled_ats(base, self.spec.probe_scale, selection=m))
                     for m in ("ats", "topk", "random")]
        res = self.evaluate(cfg, ckpt, ckpt_key, paths, settings, tag, split="val")
        dense = res.pop("dense")
        return {"split": "val", "num_videos": len(dense["correct"]),
                "dense": {"top1": dense["top1"], "gflops_per_view": dense["gflops_per_view"]},
                "points": [{"method": r["method"], "blocks": r["reduction"]["blocks"],
                            "num_tokens": r["reduction"]["num_tokens"], "gflops_per_view": r["gflops_per_view"],
                            "top1": r["top1"], "kept_tokens_per_view": r["kept_tokens_per_view"]}
                           for r in res.values()]}

    def evidence_probe(self, cfg, ckpt: str, ckpt_key: str, paths, seed: int) -> Dict[str, Any]:
        """Where the class evidence sits in the dense model of training seed ``seed``: linear probes, fit
        on the train split and scored on val (never test), of the CLS and of ONE random patch token per
        clip after every block, and of that token entering block 0 (the control: a raw token, mostly
        background, should not carry the class). A cached stage (OUT/seed<N>/evidence_probe)."""
        from .common import build_eval_model

        s, tag = self.spec, f"seed{seed}"
        key = stage_key("evidence_probe", ckpt_key, self.data_key, s.evidence_views, s.evidence_seed, PROBE_FIT)
        stage = Stage(os.path.join(self.out, tag, "evidence_probe"), key, f"{tag}/evidence_probe", self.log)
        info = stage.load()
        if info is None:
            model = build_eval_model(dict(cfg, model=dict(cfg["model"], ats=None, pretrained=None)), ckpt,
                                     need_ats=False, what="bench-accuracy")
            splits = {split: self._views_of(cfg, model, paths, split, s.evidence_views) for split in ("train", "val")}
            stage.begin()                         # after decoding: decoding is its own stage
            info = stage.finish(result=self._probe_splits(model, splits, seed))
            r = info["result"]
            self.log(f"[{tag}/evidence_probe] val Top-1 of one random token after blocks 0..: "
                     f"{[b['token_top1'] for b in r['blocks']]}, of the CLS: {[b['cls_top1'] for b in r['blocks']]}")
        else:
            self.log(f"[{tag}/evidence_probe] cached ({info['seconds']:.0f} s when it ran)")
        self.times[f"evidence_probe_{tag}"] = info["seconds"]
        return info["result"]

    def _probe_splits(self, model, splits: Dict[str, TestViews], seed: int) -> Dict[str, Any]:
        """The evidence probe's numbers from the decoded train and val views (see :meth:`evidence_probe`)."""
        gen = torch.Generator().manual_seed(self.spec.evidence_seed)
        feats, labels = {}, {}
        for split, tv in splits.items():                     # train, then val: a fixed draw per split
            t, c = tv.clips.shape[2], tv.clips.shape[-1] // model.patch_size
            index = torch.randint(0, t * c * c, (tv.clips.shape[0],), generator=gen)   # uniform over T·H·W
            feats[split] = residual_stream(model, tv.clips, index, self.spec.batch_size)
            labels[split] = tv.labels[tv.video]              # one sample per view
        n_cls = int(model.num_classes)

        def top1(part: str, block: Optional[int] = None) -> float:
            pick = (lambda f: f[part]) if block is None else (lambda f: f[part][block])
            return fit_and_score((pick(feats["train"]), labels["train"]), (pick(feats["val"]), labels["val"]), n_cls)

        y_val = labels["val"]
        return {"seed": seed, "split": "val", "num_videos": int(splits["val"].labels.numel()),
                "num_train_videos": int(splits["train"].labels.numel()),
                "views": f"{self.spec.evidence_views[0]}x{self.spec.evidence_views[1]}",
                "blocks": [{"block": b, "cls_top1": top1("cls", b), "token_top1": top1("token", b)}
                           for b in range(len(model.blocks))],
                "input_token_top1": top1("input"),
                # the best constant guess: the val share of its most frequent class
                "chance": round(float(torch.bincount(y_val).max()) / y_val.numel() * 100, 4)}

    # -- everything ------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        t_all = time.time()
        spec = self.spec
        paths = self.data()
        base = self.base_ats()
        seed_runs, evidence, by_area, main = [], [], [], None
        for i, seed in enumerate(spec.seeds):
            tag = f"seed{seed}"
            dense_cfg = self._train_cfg(spec.recipe, paths, seed, [])
            dense_ckpt, dense_key = self._train(os.path.join(tag, "dense"), dense_cfg, self.data_key)
            ft_scales = spec.finetune_scales if i == 0 else (spec.main_finetune_scale,)
            finetuned = {}
            for s in ft_scales:
                ats = _scaled_ats(base, s)
                ft_cfg = self._train_cfg(spec.finetune_recipe, paths, seed,
                                         [f"model.pretrained={dense_ckpt}", f"model.ats={json.dumps(ats)}"])
                finetuned[s] = (ats, *self._train(os.path.join(tag, f"ats_finetuned_x{s:g}"), ft_cfg, dense_key))
            settings = [("dense", "dense", None)]
            if i == 0:
                settings += [(f"ats_x{s:g}", "ats", _scaled_ats(base, s)) for s in spec.ats_scales]
                settings += [(f"{m}_x{s:g}", m, _scaled_ats(base, s, selection=m))
                             for m in ("topk", "random") for s in spec.baseline_scales]
                settings += [(f"tome_r{r:g}", "tome", {"blocks": list(spec.tome_blocks), "r": r}) for r in spec.tome_r]
            # every seed: off-the-shelf ATS at the main fine-tune's K and random dropping at about its GFLOPs,
            # so the seed table shows whether the ordering of the methods holds across training seeds
            seed_checks = [(f"ats_x{spec.main_finetune_scale:g}", "ats", _scaled_ats(base, spec.main_finetune_scale)),
                           (f"random_x{spec.probe_scale:g}", "random",
                            _scaled_ats(base, spec.probe_scale, selection="random"))]
            settings += [c for c in seed_checks if c[0] not in {pid for pid, _, _ in settings}]
            results = self.evaluate(dense_cfg, dense_ckpt, dense_key, paths, settings, tag)
            evidence.append(self.evidence_probe(dense_cfg, dense_ckpt, dense_key, paths, seed))
            for s, (ats, ckpt, key) in finetuned.items():
                ft_cfg = dict(dense_cfg, model=dict(dense_cfg["model"], ats=ats))
                results.update(self.evaluate(ft_cfg, ckpt, key, paths, [(f"ats_finetuned_x{s:g}", "ats", ats)], tag))
            main_ft = results[f"ats_finetuned_x{spec.main_finetune_scale:g}"]
            ats_pid, random_pid = (pid for pid, _, _ in seed_checks)
            seed_runs.append({"seed": seed, "dense_top1": results["dense"]["top1"],
                              "ats_finetuned_top1": main_ft["top1"],
                              "ats_finetuned_gflops_per_view": main_ft["gflops_per_view"],
                              "dense_gflops_per_view": results["dense"]["gflops_per_view"],
                              "ats_top1": results[ats_pid]["top1"],
                              "ats_gflops_per_view": results[ats_pid]["gflops_per_view"],
                              "random_top1": results[random_pid]["top1"],
                              "random_gflops_per_view": results[random_pid]["gflops_per_view"]})
            by_area.append((seed, {pid: results[pid] for pid in self._area_ids() if pid in results}))
            if i == 0:
                main = (dense_cfg, dense_ckpt, finetuned, results)
                probe = self.probe(dense_cfg, dense_ckpt, dense_key, paths, base, tag)
        self._ensure_test_views(main, paths)
        result = self.summarize(main, seed_runs, base, paths)
        result["val_probe"] = probe
        result["evidence_probe"] = evidence
        result["by_target_area"] = self.by_target_area(main[0], paths, by_area)
        results_file = os.path.join(self.out, "accuracy_benchmark.json")
        result["seconds"] = self.stage_seconds(time.time() - t_all, _read_json(results_file))
        atomic_write_json(results_file, result, "results", indent=1, make_parent=True)
        self.pictures(main, result, paths)
        return result

    def _area_ids(self) -> List[str]:
        """The results split by target area: every seed's dense, fine-tuned and off-the-shelf ATS and random
        dropping at the seed table's budgets, and (seed 0) top-K there and random dropping at lower budgets."""
        sp = self.spec
        lower = [s for s in sorted(sp.baseline_scales, reverse=True) if s < sp.probe_scale][:2]
        return (["dense", f"ats_finetuned_x{sp.main_finetune_scale:g}", f"ats_x{sp.main_finetune_scale:g}",
                 f"topk_x{sp.probe_scale:g}"] + [f"random_x{s:g}" for s in [sp.probe_scale] + lower])

    def by_target_area(self, cfg, paths, by_seed) -> Dict[str, Any]:
        """Top-1 per quartile of the test videos' target area: the targets' Σ (2·half-size)² in patches of the
        model's view (the generator's draws replayed, see ``scene_target_sizes``)."""
        from ..data.synthetic import PRESETS, scene_target_sizes

        preset = dict(PRESETS["kinetics"], **dict(self.spec.data_overrides))    # what data() generated
        sizes = scene_target_sizes(paths["test_csv"], seed=self.spec.data_seed, **preset)
        kw = cfg["model"]["kwargs"]
        per_px = kw["img_size"] / min(preset["size"]) / kw["patch_size"]   # generated px -> patches of the view
        area = [sum((2 * r * per_px) ** 2 for r in sizes[os.path.basename(path)[:11]])
                for path in self._views["test"].paths]
        out = {"quantity": "target patches per frame (sum of (2 x half-size)^2 at the model's view)", "seeds": []}
        for seed, res in by_seed:
            strat = top1_by_quantile({pid: r["correct"] for pid, r in res.items()}, area)
            out.update(edges=strat["edges"], videos=strat["videos"])
            out["seeds"].append({"seed": seed, "rows": [
                {"id": pid, "method": "ats_finetuned" if pid.startswith("ats_finetuned") else r.get("method", "dense"),
                 "gflops_per_view": r["gflops_per_view"], "top1": r["top1"], "top1_by_quartile": strat["top1"][pid]}
                for pid, r in res.items()]})
        return out

    def _ensure_test_views(self, main, paths) -> None:
        """Decode the test views when every evaluation was cached: the failure count needs them (and the
        pictures decode them anyway)."""
        if "test" in self._views:
            return
        from .common import build_eval_model

        dense_cfg, dense_ckpt = main[0], main[1]
        model = build_eval_model(dict(dense_cfg, model=dict(dense_cfg["model"], ats=None, pretrained=None)),
                                 dense_ckpt, need_ats=False, what="bench-accuracy")
        self._views_of(dense_cfg, model, paths, "test")
        # decoded for the summary, not for an evaluation: a full run's decoding time is the one it took then
        self._summary_decodes["decode_test_views"] = self.times.pop("decode_test_views")

    def stage_seconds(self, this_run: float, previous: Optional[dict]) -> Dict[str, Any]:
        """Each stage's seconds *when it ran*: cached stages keep theirs. Decoding views is not cached: a
        rerun whose evaluations are all cached does not decode (or only for the summary), so a decoding
        this run skipped keeps its time from the ``previous`` results (same data: a data change reruns
        every evaluation), else the time this run took to decode it for the summary. Their sum is what
        a full run from scratch takes; ``this_run`` is this run's wall time (a cached rerun: mostly
        loading)."""
        stages = dict(self.times)
        ran_before = ((previous or {}).get("seconds") or {}).get("stages") or {}
        for name in self._decoded_views():
            if name not in stages and (name in ran_before or name in self._summary_decodes):
                stages[name] = ran_before.get(name, self._summary_decodes.get(name))
        return {"stages": stages, "full_run": round(sum(stages.values()), 1), "this_run": round(this_run, 1),
                "note": "stages: seconds each stage took when it ran (a rerun reuses cached stages); full_run: "
                        "their sum, a run from scratch; this_run: the wall time of the run that wrote this file"}

    def _decoded_views(self) -> List[str]:
        """The stage names of every decoding a full run does (the test and val views of the evaluations
        and the val probe, the train and val views of the evidence probe)."""
        e = self.spec.evidence_views
        names = [self._views_name("test"), self._views_name("val"), self._views_name("train", e), self._views_name("val", e)]
        return [f"decode_{n}_views" for n in dict.fromkeys(names)]

    def pictures(self, main, result: Dict[str, Any], paths) -> List[str]:
        """OUT/bench_*.png: the accuracy-vs-GFLOPs curves; for the main fine-tuned ATS model the kept
        tokens over the frames of the test clips that kept fewest and most tokens (paper Fig. 7) and
        the kept-token histograms per ATS stage over all test views (Fig. 6)."""
        from .common import build_eval_model, measure
        from .plots import clip_to_frames, plot_kept_histograms, plot_token_overlay

        dense_cfg, _, finetuned, results = main
        ats, ckpt, _ = finetuned[self.spec.main_finetune_scale]
        ev = results[f"ats_finetuned_x{self.spec.main_finetune_scale:g}"]
        files = [plot_curves(result, os.path.join(self.out, "bench_accuracy_vs_gflops.png"))]
        last = str(max(int(b) for b in ev["kept_tokens"]))
        n_tok = torch.tensor(ev["kept_tokens"][last])
        model = build_eval_model(dict(dense_cfg, model=dict(dense_cfg["model"], ats=ats, pretrained=None)), ckpt,
                                 what="bench-accuracy")
        tv = self._views_of(dense_cfg, model, paths, "test")
        centre = torch.arange(tv.clips.shape[0]) % self.spec.views[1] == self.spec.views[1] // 2
        picks = [int(i) for i in (n_tok.masked_fill(~centre, 1 << 30).argmin(), n_tok.masked_fill(~centre, -1).argmax())]
        with self._eval_spec.autocast(next(model.parameters()).device):
            res = measure(model, tv.clips[picks], batch_size=len(picks), with_positions=True)
        frames = [clip_to_frames(tv.clips[i], model.config["mean"], model.config["std"]) for i in picks]
        _, hp, wp = frames[0].shape[0], frames[0].shape[1] // model.patch_size, frames[0].shape[2] // model.patch_size
        stacked = {b: torch.cat([torch.stack([pos[:, 0], pos[:, 1] + k * hp * wp], dim=1)  # clips one above the other
                                 for k, pos in enumerate(per_clip)]) for b, per_clip in res["positions"].items()}
        files.append(plot_token_overlay(
            __import__("numpy").concatenate(frames, axis=1), stacked, model.patch_size,
            os.path.join(self.out, "bench_kept_tokens_overlay.png"),
            title=f"fine-tuned ATS {ats['num_tokens']}: test clips keeping fewest (top) and most (bottom) tokens"))
        files.append(plot_kept_histograms({int(b): v for b, v in ev["kept_tokens"].items()},
                                          os.path.join(self.out, "bench_kept_tokens_hist.png"),
                                          num_tokens=dict(zip(ats["blocks"], ats["num_tokens"])),
                                          full_tokens=int(tv.clips.shape[2] * hp * wp),
                                          title=f"fine-tuned ATS, {tv.clips.shape[0]} test views"))
        return files

    def summarize(self, main, seed_runs, base, paths) -> Dict[str, Any]:
        dense_cfg, dense_ckpt, finetuned, results = main
        curves: Dict[str, List[dict]] = {m: [] for m in METHODS}
        correct: Dict[str, torch.Tensor] = {}
        for pid, r in results.items():
            correct[pid] = torch.tensor(r["correct"], dtype=torch.float64)
            if pid == "dense":
                continue
            method = "ats_finetuned" if pid.startswith("ats_finetuned") else r["method"]
            budget = {"r": r["reduction"]["r"]} if method == "tome" else {
                "num_tokens": r["reduction"]["num_tokens"], "scale": float(pid.rsplit("_x", 1)[1])}
            curves[method].append({"id": pid, "budget": budget, "gflops_per_view": r["gflops_per_view"],
                                   "gflops_std": r["gflops_std"], "top1": r["top1"], "top5": r["top5"],
                                   "kept_tokens_per_view": r["kept_tokens_per_view"]})
        for pts in curves.values():
            pts.sort(key=lambda p: p["gflops_per_view"])
        matched = matched_comparisons(curves, correct, "ats", self.spec.bootstrap)
        dense = results["dense"]
        for m in matched:
            m["gflops_reduction"] = round(1 - m["gflops_per_view"] / dense["gflops_per_view"], 4)
        vs_dense = []
        for p in curves["ats_finetuned"] + curves["ats"]:
            lo, hi = paired_bootstrap_ci(correct[p["id"]], correct["dense"], self.spec.bootstrap)
            vs_dense.append({"method": "ats_finetuned" if p["id"].startswith("ats_finetuned") else "ats",
                             "budget": p["budget"], "gflops_per_view": p["gflops_per_view"],
                             "gflops_reduction": round(1 - p["gflops_per_view"] / dense["gflops_per_view"], 4),
                             "top1_diff_vs_dense": round(p["top1"] - dense["top1"], 4),
                             "ci95": [round(lo, 4), round(hi, 4)]})
        from ..data.synthetic import PRESETS
        from ..engine.config import load_config

        recipe = load_config(self.spec.recipe, [])
        return {
            "version": RESULTS_VERSION,
            "benchmark": "video-ats bench-accuracy: small TimeSformer on the Kinetics-shaped synthetic set",
            "torch": torch.__version__,
            "data": {"preset": "kinetics", "seed": self.spec.data_seed,
                     **_json_safe(dict(PRESETS["kinetics"], **dict(self.spec.data_overrides))),
                     "splits": {s: _count_lines(paths[f"{s}_csv"]) for s in ("train", "val", "test")}},
            "model": {"name": recipe["model"]["name"], **recipe["model"]["kwargs"]},
            "ats_blocks": list(base["blocks"]), "ats_base_num_tokens": list(base["num_tokens"]),
            "tome_blocks": list(self.spec.tome_blocks),
            "views": f"{self.spec.views[0]}x{self.spec.views[1]}", "combine": dense_cfg["test"]["combine"],
            "num_val_videos": len(dense["correct"]),      # the evaluated *test* videos (the field name)
            "num_failed_videos": len(self._views["test"].failures),
            "dense": {"top1": dense["top1"], "top5": dense["top5"], "gflops_per_view": dense["gflops_per_view"]},
            "curves": {m: [{k: v for k, v in p.items() if k != "id"} for p in pts] for m, pts in curves.items()},
            "matched": matched,
            "vs_dense": vs_dense,
            "bootstrap": {"resamples": self.spec.bootstrap, "level": 0.95, "paired_over": "test videos"},
            "seed_runs": seed_runs,
        }


def _scaled_ats(base: Dict[str, Any], s: float, selection: str = "ats") -> Dict[str, Any]:
    from .common import scale_num_tokens

    return dict(base, num_tokens=scale_num_tokens(base["num_tokens"], s), selection=selection)


def _set_reduction(model, method: str, reduction: Optional[Dict[str, Any]]) -> None:
    """Switch the dense model to one evaluated setting (dense, ATS or a baseline, ToMe)."""
    if hasattr(model, "set_tome"):
        model.set_tome(None)
    model.set_ats(None)
    if method == "tome":
        if not hasattr(model, "set_tome"):
            raise UserError(f"{type(model).__name__} has no token merging (ToMe)")
        model.set_tome(reduction)
    elif method != "dense":
        model.set_ats(reduction)


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _json_safe(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _count_lines(csv_path: str) -> int:
    with open(csv_path, encoding="utf-8") as f:
        return max(sum(1 for _ in f) - 1, 0)


# ---------------------------------------------------------------------------------------------------
# reporting: markdown, figures, the README block
# ---------------------------------------------------------------------------------------------------
METHOD_NAMES = {"dense": "dense", "ats": "ATS, off the shelf", "ats_finetuned": "ATS, fine-tuned",
                "topk": "top-K", "random": "random dropping", "tome": "ToMe (token merging)"}
README_BEGIN = "<!-- bench-accuracy:begin (generated by `video-ats bench-accuracy --publish`; do not edit) -->"
README_END = "<!-- bench-accuracy:end -->"


def _budget(method: str, b: Dict[str, Any]) -> str:
    if method == "tome":
        return f"r = {b['r']:g}"
    return "K = " + ", ".join(f"{k:g}" for k in b["num_tokens"])


def _ci(ci) -> str:
    return f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def render_markdown(r: Dict[str, Any], image_dir: str = "docs/images") -> str:
    """The README block: setup line, the table of every point, matched comparisons, seed runs, figures."""
    d = r["dense"]
    g0 = d["gflops_per_view"]
    m = r["model"]
    lines = [
        f"Small TimeSformer ({m['depth']} blocks, width {m['embed_dim']}, {m['num_frames']} frames on a "
        f"{m['img_size'] // m['patch_size']}×{m['img_size'] // m['patch_size']} patch grid) trained from scratch on "
        f"the Kinetics-shaped synthetic set ({r['data']['classes']} classes, "
        f"{r['data']['splits']['train']} train / {r['data']['splits']['val']} val / "
        f"{r['data']['splits']['test']} test videos); {r['num_val_videos']} test videos, {r['views']} views, "
        f"softmax averaged. ATS, top-K and random dropping at blocks {r['ats_blocks']}, ToMe at blocks "
        f"{r['tome_blocks']}. torch {r['torch']}.",
        "",
        "| method | budget | GFLOPs/view | vs dense | Top-1 | Top-5 | tokens kept after each reduction block |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| dense | – | {g0:.4f} | – | {d['top1']:.1f} | {d['top5']:.1f} | – |",
    ]
    for method in METHODS:
        for p in r["curves"].get(method, []):
            kept = " / ".join(f"{v:.0f}" for _, v in sorted(p["kept_tokens_per_view"].items(), key=lambda kv: int(kv[0])))
            lines.append(f"| {METHOD_NAMES[method]} | {_budget(method, p['budget'])} | {p['gflops_per_view']:.4f} | "
                         f"{100 * (p['gflops_per_view'] / g0 - 1):+.0f} % | {p['top1']:.1f} | {p['top5']:.1f} | {kept} |")
    lines += ["", "**What the numbers say** (computed from the results file):", ""] + [f"- {f}" for f in findings(r)]
    lines += ["", "**At matched GFLOPs** — each point against off-the-shelf ATS interpolated along its curve to the "
              "same GFLOPs per view; Δ = method − ATS in Top-1 points, paired bootstrap 95 % CI over the same "
              f"test videos ({r['bootstrap']['resamples']} resamples):", "",
              "| method | budget | GFLOPs/view | Top-1 | ATS Top-1 at that GFLOPs | Δ vs ATS [95 % CI] |",
              "|---|---|---:|---:|---:|---|"]
    for c in r["matched"]:
        lines.append(f"| {METHOD_NAMES[c['method']]} | {_budget(c['method'], c['budget'])} | {c['gflops_per_view']:.4f} "
                     f"| {c['top1']:.1f} | {c['ats_top1_interpolated']:.1f} | **{c['top1_diff_vs_ats']:+.1f}** "
                     f"{_ci(c['ci95'])} |")
    lines += ["", "**Against dense** (paired bootstrap 95 % CI of the Top-1 difference):", "",
              "| method | budget | GFLOPs/view | fewer GFLOPs | Δ Top-1 vs dense [95 % CI] |", "|---|---|---:|---:|---|"]
    for c in r["vs_dense"]:
        lines.append(f"| {METHOD_NAMES[c['method']]} | {_budget(c['method'], c['budget'])} | {c['gflops_per_view']:.4f} "
                     f"| {100 * c['gflops_reduction']:.0f} % | {c['top1_diff_vs_dense']:+.1f} {_ci(c['ci95'])} |")
    probe = r.get("val_probe")
    if probe:
        g_val = probe["dense"]["gflops_per_view"]
        lines += ["", f"**Where the tokens are dropped** (validation probe, dense model, {probe['num_videos']} *val* "
                  f"videos; dense Top-1 {probe['dense']['top1']:.1f}): dropping right after block 0 against the "
                  f"recipe's blocks {r['ats_blocks']}:", "",
                  "| method | blocks | K | GFLOPs/view | vs dense | Top-1 |", "|---|---|---|---:|---:|---:|"]
        for p in probe["points"]:
            lines.append(f"| {METHOD_NAMES[p['method']]} | {p['blocks']} | {', '.join(f'{k:g}' for k in p['num_tokens'])} "
                         f"| {p['gflops_per_view']:.4f} | {100 * (p['gflops_per_view'] / g_val - 1):+.0f} % | {p['top1']:.1f} |")
    lines += _evidence_table(r)
    lines += _area_table(r)
    lines += ["", "**Training seeds** (same data, same recipes):", "",
              "| seed | dense Top-1 | fine-tuned ATS Top-1 (GFLOPs/view) | ATS off the shelf, same K | "
              "random dropping |", "|---:|---:|---:|---:|---:|"]
    for s in r["seed_runs"]:
        extra = (f"{s['ats_top1']:.1f} ({s['ats_gflops_per_view']:.4f}) | {s['random_top1']:.1f} "
                 f"({s['random_gflops_per_view']:.4f})" if "ats_top1" in s else "– | –")
        lines.append(f"| {s['seed']} | {s['dense_top1']:.1f} | {s['ats_finetuned_top1']:.1f} "
                     f"({s['ats_finetuned_gflops_per_view']:.4f}) | {extra} |")
    st = r.get("seconds", {}).get("stages", {})
    if st:
        total = r["seconds"].get("full_run", r["seconds"].get("total_this_run"))   # older files: the run's wall time
        lines += ["", "Stage times, each as long as it took when it ran (s): " +
                  ", ".join(f"{k} {v:.0f}" for k, v in st.items()) +
                  (f"; a full run from scratch: {total:.0f} s ({total / 60:.0f} min)" if total else "") + "."]
    lines += ["", f"![Top-1 vs GFLOPs per view]({image_dir}/bench_accuracy_vs_gflops.png)",
              f"![kept tokens, fine-tuned ATS]({image_dir}/bench_kept_tokens_overlay.png)",
              f"![kept-token histograms, fine-tuned ATS]({image_dir}/bench_kept_tokens_hist.png)"]
    return "\n".join(lines) + "\n"


def _evidence_table(r: Dict[str, Any]) -> List[str]:
    """The evidence probe (if any) as rows = residual stream position, columns = seed × {CLS, one token}."""
    ev = r.get("evidence_probe")
    if not ev:
        return []
    ats_blocks = set(r.get("ats_blocks", []))
    lines = ["", f"**Where the class evidence is** (evidence probe: linear probes of each dense model's residual "
             f"stream, fit on the {ev[0]['num_train_videos']} train videos, Top-1 on the {ev[0]['num_videos']} "
             f"*val* videos, one centre view each). A patch token drawn at random (mostly background: the "
             f"targets are small) that predicts the class would mean the evidence had spread into every token; "
             f"the CLS leaving an ATS block has read every token that entered it (tokens are dropped as queries, "
             f"not keys), so its column is the evidence gathered before the first token goes.", "",
             "| residual stream | " + " | ".join(f"seed {e['seed']}: CLS | seed {e['seed']}: one random token"
                                                for e in ev) + " |",
             "|---|" + "---:|---:|" * len(ev),
             "| entering block 0 (embeddings) | " + " | ".join(f"– | {e['input_token_top1']:.1f}" for e in ev) + " |"]
    for i, blk in enumerate(ev[0]["blocks"]):
        b = blk["block"]
        where = f"after block {b}" + (" (ATS block)" if b in ats_blocks else "")
        lines.append(f"| {where} | " + " | ".join(f"{e['blocks'][i]['cls_top1']:.1f} | {e['blocks'][i]['token_top1']:.1f}"
                                                  for e in ev) + " |")
    lines += ["", f"Chance (the most frequent val class): {ev[0]['chance']:.1f} %."]
    return lines


def _area_table(r: Dict[str, Any]) -> List[str]:
    """Top-1 per quartile of target area (if any): rows = seed x result, columns = quartiles, smallest first."""
    a = r.get("by_target_area")
    if not a:
        return []
    e = a["edges"]
    quart = [f"{e[i]:.1f}–{e[i + 1]:.1f}" for i in range(len(e) - 1)]
    g0 = r["dense"]["gflops_per_view"]
    lines = ["", f"**Where the methods lose: Top-1 by target size** ({a['videos'][0]} test videos per quartile of the "
             f"targets' area, in patches per frame of the model's view; 1×3 views):", "",
             "| seed | result | GFLOPs/view | vs dense | " + " | ".join(quart) + " |",
             "|---:|---|---:|---:|" + "---:|" * len(quart)]
    for sd in a["seeds"]:
        for row in sd["rows"]:
            name = "dense" if row["id"] == "dense" else f"{METHOD_NAMES[row['method']]} ({row['id'].rsplit('_x', 1)[-1]}× K)"
            cells = " | ".join("–" if v is None else f"{v:.1f}" for v in row["top1_by_quartile"])
            lines.append(f"| {sd['seed']} | {name} | {row['gflops_per_view']:.4f} | "
                         f"{100 * (row['gflops_per_view'] / g0 - 1):+.0f} % | {cells} |")
    return lines


def findings(r: Dict[str, Any]) -> List[str]:
    """Plain-language lines for the README, each computed from the results (no number typed by hand)."""
    out = []
    d = r["dense"]
    # the fine-tune nearest the goal: the most accurate at >= 45 % fewer GFLOPs, else the cheapest
    fts = [c for c in r["vs_dense"] if c["method"] == "ats_finetuned"]
    goal = [c for c in fts if c["gflops_reduction"] >= 0.45]
    best_ft = (max(goal, key=lambda c: c["top1_diff_vs_dense"]) if goal else
               max(fts, key=lambda c: c["gflops_reduction"]) if fts else None)
    if best_ft is not None:
        out.append(f"Fine-tuned ATS at {100 * best_ft['gflops_reduction']:.0f} % fewer GFLOPs: "
                   f"{best_ft['top1_diff_vs_dense']:+.1f} Top-1 points against dense, 95 % CI "
                   f"{_ci(best_ft['ci95'])} (the goal: within 0.5 point at >= 45 % fewer).")
    for method in ("random", "topk", "tome", "ats_finetuned"):
        diffs = [c for c in r["matched"] if c["method"] == method]
        if diffs:
            lo, hi = min(c["top1_diff_vs_ats"] for c in diffs), max(c["top1_diff_vs_ats"] for c in diffs)
            sig = sum(1 for c in diffs if c["ci95"][0] > 0), sum(1 for c in diffs if c["ci95"][1] < 0)
            out.append(f"{METHOD_NAMES[method]} against off-the-shelf ATS at matched GFLOPs: {lo:+.1f} to {hi:+.1f} "
                       f"points over {len(diffs)} budgets ({sig[0]} significantly better than ATS, {sig[1]} worse).")
    half = interpolate_curve([(p["gflops_per_view"], torch.tensor(p["top1"])) for p in r["curves"]["random"]],
                             0.5 * d["gflops_per_view"])
    seeds = r.get("seed_runs", [])
    if half is not None:
        per_seed = [f"seed {s['seed']} {s['random_top1'] - s['dense_top1']:+.1f} at "
                    f"{100 * s['random_gflops_per_view'] / s['dense_gflops_per_view']:.0f} %"
                    for s in seeds if "random_top1" in s]
        out.append(f"Random dropping at 50 % of dense GFLOPs: {float(half) - d['top1']:+.1f} points against dense "
                   f"(the task's design target: a loss of >= 10, so that which tokens are kept matters)"
                   + (f"; every training seed: {', '.join(per_seed)}." if per_seed else "."))
    if len(seeds) > 1 and all("ats_top1" in s for s in seeds):
        out.append("Across training seeds " + "; ".join(
            f"seed {s['seed']}: dense {s['dense_top1']:.1f}, fine-tuned ATS {s['ats_finetuned_top1']:.1f}, ATS off the "
            f"shelf {s['ats_top1']:.1f}, random {s['random_top1']:.1f}" for s in seeds) + ".")
    ev, blocks = r.get("evidence_probe"), r.get("ats_blocks")
    if ev and blocks:                     # the first ATS block: its CLS read every token, its tokens are what is kept
        first = min(blocks)
        at = [e["blocks"][first] for e in ev]
        seeds_txt = " / ".join(str(e["seed"]) for e in ev)
        out.append(f"Evidence probe (linear, val; seeds {seeds_txt}): after the first ATS block ({first}) the CLS gives "
                   + " / ".join(f"{b['cls_top1']:.1f}" for b in at) + " % Top-1 and one random patch token "
                   + " / ".join(f"{b['token_top1']:.1f}" for b in at) + " % (one token entering block 0: "
                   + " / ".join(f"{e['input_token_top1']:.1f}" for e in ev) + f" %, chance {ev[0]['chance']:.1f} %).")
    return out


def update_readme(readme: str, block: str, begin: str = README_BEGIN, end: str = README_END) -> None:
    """Replace the text between the markers ``begin`` and ``end`` of ``readme`` with ``block``."""
    from ..fileio import replace_generated_block

    replace_generated_block(readme, block, begin, end)


def plot_curves(r: Dict[str, Any], path: str) -> str:
    from .plots import plot_accuracy_vs_gflops

    rows = [{"selection": "dense", "gflops_mean": r["dense"]["gflops_per_view"], "top1": r["dense"]["top1"]}]
    for method, pts in r["curves"].items():
        rows += [{"selection": method, "gflops_mean": p["gflops_per_view"], "top1": p["top1"]} for p in pts]
    return plot_accuracy_vs_gflops(rows, path, title=f"{r['num_val_videos']} test videos, {r['views']} views "
                                                     f"(x: measured mean GFLOPs per view)", labels=METHOD_NAMES)
