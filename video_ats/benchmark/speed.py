"""Model speed: dense vs ATS (and the official forward), inference or training steps, side by side.

For every batch size, every runner — dense, each ATS setting under each keep pattern, optionally the
official TimeSformer forward — is timed in interleaved rounds (dense, ATS 1, ATS 2, …, dense, ATS 1, …),
so background load hits all of them alike. A round of an ATS runner walks ``pattern_clips`` distinct
pattern clips (one forward per batch of them); its time is the mean per batch. Reported per row:

- GFLOPs per clip (mean, min, max over the pattern clips; counted on the tokens each clip kept),
- seconds per batch (median over rounds) and clips/s,
- speed-up vs dense: the median over rounds of the paired ratio t_dense / t_ats of the same round,
- FLOP ratio GFLOPs_dense / GFLOPs_ats and the efficiency = speed-up ÷ FLOP ratio (1.0: the FLOP saving
  shows up fully on the clock), with its range over the rounds (each round's paired ratio ÷ FLOP ratio:
  how much the figure moves with the machine's noise),
- the share of the step spent in ATS's own operations (profiler label ``video_ats.ats``, eager run),
- operators per step (aten ops that do work, views excluded: what a GPU pays in kernel launches),
- peak memory of one step (:mod:`video_ats.benchmark.memory`), kept tokens per ATS block.

``train=True`` times forward + backward + optimizer step (SGD with momentum, a tiny learning rate, random
labels); GFLOPs are the forward's (the backward is ≈ 2× the forward for dense and ATS alike, so the ratio
and the efficiency keep their meaning). ``compile="model"`` (or True) wraps every runner in ``torch.compile``
(the ATS runners with ``dynamic=True``; a scripted sampler runs outside the graph, the token bookkeeping's
host reads break the graph); ``compile="blocks"`` compiles each block's per-token layers instead (norms and
MLP, dynamic row count; :func:`compile_blocks`), which every runner shares: attention and the token
bookkeeping stay eager, so nothing breaks a graph. A failure is one line and that runner goes on uncompiled.
"""
from __future__ import annotations

import copy
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..flops import count_gflops
from ..models.sampling import ATS_PROFILE_LABEL
from .patterns import KeepPattern, PatternState, build_pattern, install_pattern, replay_setting

ATS_PRESETS: Dict[str, dict] = {
    # TimeSformer-B: ~30 % fewer FLOPs, late blocks only
    "mild": {"blocks": [4, 7, 10], "num_tokens": [0.7, 0.5, 0.35]},
    # TimeSformer-B: about half the FLOPs
    "half": {"blocks": [3, 5, 7, 9], "num_tokens": [0.5, 0.5, 0.5, 0.5]},
    # X-ViT-B: three late stages (~44 % fewer FLOPs at K' = K)
    "late3": {"blocks": [3, 6, 9], "num_tokens": [0.7, 0.5, 0.35]},
    # X-ViT-B: four stages from block 2 (~65 % fewer FLOPs at K' = K)
    "deep4": {"blocks": [2, 4, 6, 8], "num_tokens": [0.6, 0.4, 0.25, 0.15]},
}
DEFAULT_SETTINGS = {"TimeSformer": ("mild", "half"), "XViT": ("late3", "deep4")}
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class SpeedSpec:
    """What to measure. ``cfg``: an engine config (``video_ats.engine.config.load_config``); its model
    section builds the model (random init unless ``model.pretrained`` is set)."""
    cfg: Dict[str, Any]
    settings: Optional[Dict[str, dict]] = None      # None: the model family's presets (DEFAULT_SETTINGS)
    patterns: Sequence[str] = ("uniform",)
    batch_sizes: Sequence[int] = (1, 8)
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    amp: str = "off"
    train: bool = False
    compile: Any = False                            # False, "model" (or True) or "blocks" (COMPILE_SCOPES)
    with_official: bool = True
    with_memory: bool = True
    pattern_clips: int = 8
    replay_blocks: Optional[Sequence[int]] = None
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; one clear error when CUDA is asked for and absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asked for, but CUDA is not available here (torch "
                            f"{torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise UserError(f"--device {name!r}: only cpu and cuda are supported")
    return dev


def autocast(device: torch.device, amp: str):
    """``torch.autocast`` for ``amp`` (off | bf16 | fp16) on the device type (CPU bf16 included)."""
    if amp not in AMP_DTYPES:
        raise UserError(f"--amp {amp!r} is not one of {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def token_grid(model) -> tuple:
    c = model.config
    side = c["img_size"] // c["patch_size"]
    return (int(c["num_frames"]), side, side)


def make_input(model, batch: int, seed: int = 0) -> torch.Tensor:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, c.get("in_chans", 3), c["num_frames"], c["img_size"], c["img_size"], generator=g)


def build_dense(cfg: Dict[str, Any], seed: int = 0):
    """The config's model without ATS (random init, seeded, unless model.pretrained is set)."""
    from ..engine.builders import build_model

    torch.manual_seed(seed)
    return build_model(cfg, load_pretrained=bool(cfg["model"].get("pretrained")), ats=None)


def default_settings(model) -> List[str]:
    return list(DEFAULT_SETTINGS.get(type(model).__name__, ("mild", "half")))


def check_presets_fit(settings: Dict[str, dict], model) -> None:
    """The default presets are written for the full-depth models; a shallower one (``model.kwargs.depth=4``)
    gets a line that says so and what to pass, rather than an error about a block it never asked for."""
    depth = getattr(model, "depth", None)
    misfit = {n: s["blocks"] for n, s in settings.items() if depth is not None and max(s["blocks"]) >= depth}
    if misfit:
        names = "; ".join(f"{n}: blocks {b}" for n, b in misfit.items())
        raise UserError(f"the default ATS presets ({names}) need blocks this depth-{depth} model does not have; "
                        f"give settings that fit with --ats, e.g. --ats '{{blocks: [1, 2], num_tokens: [0.7, 0.5]}}'")


def twin(model):
    """A copy of ``model`` sharing its parameters, buffers and submodules (no extra memory), with its own
    ATS setting, keep pattern and records (those live on the top-level model only)."""
    out = copy.copy(model)
    out.__dict__.pop("sampler_at", None)
    return out


# ---- runners --------------------------------------------------------------------------------------
@dataclass
class Runner:
    """One timed thing: a model (dense, or an ATS twin under a keep pattern) or the official forward."""
    setting: str
    pattern: Optional[KeepPattern]
    model: Any
    ats: Optional[dict] = None
    state: Optional[PatternState] = None
    fn: Optional[Callable] = None              # what the step calls (the model, compiled or not)
    official: bool = False
    compile_info: Optional[dict] = None
    offsets: List[int] = field(default_factory=lambda: [0])

    @property
    def key(self) -> str:
        return self.setting if self.pattern is None else f"{self.setting}/{self.pattern.name}"

    def set_offset(self, offset: int) -> None:
        if self.state is not None:
            self.state.offset = offset


def make_ats_runner(dense, setting: str, ats: Optional[dict], pattern: KeepPattern,
                    replay_blocks: Optional[Sequence[int]] = None) -> Runner:
    """An ATS twin of ``dense`` with ``ats`` (for a replayed pattern: the pattern's own setting) and the
    keep pattern installed."""
    if pattern.kind == "masks":
        ats = replay_setting(pattern, dense.config["depth"], replay_blocks)
        setting = "replay"
    m = twin(dense)
    m.set_ats(ats)
    state = install_pattern(m, pattern)
    return Runner(setting, pattern, m, ats=ats, state=state, fn=m)


def make_runners(dense, spec: SpeedSpec, grid, check_presets: bool = False) -> List[Runner]:
    """The dense runner, one ATS runner per setting and keep pattern (a replayed pattern brings its own
    blocks), and the official forward; ``check_presets``: the settings are the defaults, checked against the
    model's depth when a pattern uses them."""
    runners = [Runner("dense", None, dense, fn=dense)]
    patterns = [build_pattern(p, grid, spec.seed) for p in dict.fromkeys(spec.patterns)]
    if check_presets and any(pat.kind != "masks" for pat in patterns):
        check_presets_fit(spec.settings, dense)
    for pat in patterns:
        if pat.kind == "masks":
            runners.append(make_ats_runner(dense, "replay", None, pat, spec.replay_blocks))
            continue
        for name, ats in spec.settings.items():
            runners.append(make_ats_runner(dense, name, ats, pat))
    if spec.with_official and not spec.train and type(dense).__name__ == "TimeSformer":
        from ..reference import official_timesformer_forward

        runners.append(Runner("official", None, dense, fn=lambda x, _m=dense: official_timesformer_forward(_m, x),
                              official=True))
    return runners


def pattern_offsets(pattern: Optional[KeepPattern], batch: int, pattern_clips: int) -> List[int]:
    """Clip offsets of the batches one round walks: enough batches to cover ``pattern_clips`` distinct
    clips (one batch when the pattern has a single clip or there is no pattern)."""
    if pattern is None or pattern.clips <= 1:
        return [0]
    n = max(1, math.ceil(min(pattern.clips, max(pattern_clips, batch)) / batch))
    return [i * batch for i in range(n)]


COMPILE_SCOPES = ("model", "blocks")
# the per-token layers of a block that --compile blocks compiles (both backbones name them so)
BLOCK_REGIONS = ("norm1", "norm2", "mlp")


def compile_scope(value) -> Optional[str]:
    """``SpeedSpec.compile`` as a scope name (None: eager)."""
    if value is True:
        return "model"
    if not value:
        return None
    if value not in COMPILE_SCOPES:
        raise UserError(f"unknown compile scope {value!r}; use one of {COMPILE_SCOPES}")
    return value


def _regions(model) -> List[torch.nn.Module]:
    return [m for block in model.blocks for m in (getattr(block, name, None) for name in BLOCK_REGIONS)
            if isinstance(m, torch.nn.Module)]


def compile_blocks(model) -> int:
    """Regional compilation, in place: each block's norms and MLP through ``torch.compile`` with a dynamic
    row count (one graph serves every block and every kept count). Attention and the token bookkeeping stay
    eager, so the kept counts ATS reads on the host neither break a graph nor force a recompilation; the
    modules are shared by every runner (twins share submodules). Returns how many modules were compiled."""
    regions = _regions(model)
    for module in regions:
        module.compile(dynamic=True)
    return len(regions)


def uncompile_blocks(model) -> None:
    """Undo :func:`compile_blocks` (after a failed compilation): the regions run eagerly again."""
    for module in _regions(model):
        module._compiled_call_impl = None


def compile_runner(r: Runner, log: Callable[[str], None], scope: str = "model") -> None:
    """Wrap ``r.fn`` in torch.compile (lazily: the first call compiles); for the ``blocks`` scope the
    regions are compiled once (:func:`compile_blocks`) and ``r.fn`` stays the eager model around them."""
    if scope == "blocks":
        r.compile_info = {"ok": True, "scope": "blocks"}
        return
    if r.official:
        r.compile_info = {"ok": False, "error": "not compiled (the official forward is the eager baseline)"}
        return
    try:
        r.fn = torch.compile(r.model, dynamic=True if r.pattern is not None else None)
        r.compile_info = {"ok": True, "scope": "model"}
    except Exception as exc:  # noqa: BLE001 - reported as one line, the run goes on eagerly
        _compile_failed(r, exc, log)


def _compile_failed(r: Runner, exc: BaseException, log: Callable[[str], None]) -> None:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    msg = f"{type(exc).__name__}: {first}"
    log(f"compile failed for {r.key}: {msg} (running it uncompiled)")
    r.fn = r.model
    r.compile_info = {"ok": False, "error": msg}


def _graph_breaks() -> int:
    try:
        from torch._dynamo.utils import counters
    except Exception:  # noqa: BLE001
        return 0
    return int(sum(counters["graph_break"].values()))


# ---- steps ----------------------------------------------------------------------------------------
class Stepper:
    """Runs one inference forward or one training step (forward + backward + optimizer step)."""

    def __init__(self, dense, device: torch.device, amp: str, train: bool, lr: float = 1e-7):
        self.device, self.amp, self.train = device, amp, train
        self.num_classes = int(dense.config.get("num_classes", 2))
        self.opt = torch.optim.SGD(dense.parameters(), lr=lr, momentum=0.9) if train else None
        self.labels: Dict[int, torch.Tensor] = {}

    def __call__(self, fn: Callable, x: torch.Tensor) -> None:
        if not self.train:
            with torch.no_grad(), autocast(self.device, self.amp):
                fn(x)
            return
        b = x.shape[0]
        if b not in self.labels:
            g = torch.Generator().manual_seed(b)
            self.labels[b] = torch.randint(0, self.num_classes, (b,), generator=g).to(self.device)
        with autocast(self.device, self.amp):
            out = fn(x)
        loss = F.cross_entropy(out.float(), self.labels[b])
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def set_mode(runners: List[Runner], train: bool) -> None:
    for r in runners:
        r.model.train(train)


def ats_share(r: Runner, step: Stepper, x: torch.Tensor) -> float:
    """Fraction of one step's wall time spent inside the ATS profiler label (eager run)."""
    import os

    from torch.profiler import ProfilerActivity, profile

    # Kineto's error-level log line "gpuGetDeviceCount failed" on a CUDA build without a GPU is noise in a
    # successful run; the user's own setting wins
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    dev = step.device
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    r.set_offset(0)
    step(r.model, x)
    sync(dev)
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        step(r.model, x)
        sync(dev)
        total = time.perf_counter() - t0
    ats_us = sum(e.cpu_time_total for e in prof.key_averages() if e.key == ATS_PROFILE_LABEL)
    return ats_us / 1e6 / total


def count_ops(r: Runner, step: Stepper, x: torch.Tensor) -> int:
    """Operators one step dispatches that do work (aten ops that are not views), eager, pattern clip 0.

    A device-independent count of what a GPU pays per kernel launch (and the CPU per dispatch): on a
    GPU a small batch is bound by it rather than by FLOPs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not getattr(func, "is_view", False):
                Count.n += 1
            return func(*args, **(kwargs or {}))

    r.set_offset(0)
    with Count():
        step(r.fn if r.official else r.model, x)
    sync(step.device)
    return Count.n


def _kept_stats(per_block: Dict[int, List[torch.Tensor]]) -> Dict[str, dict]:
    out = {}
    for b, vals in sorted(per_block.items()):
        v = torch.cat(vals).double()
        out[str(b)] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
    return out


def flops_and_kept(r: Runner, x: torch.Tensor) -> Dict[str, Any]:
    """GFLOPs per clip and kept tokens over the runner's pattern batches (eager, eval mode)."""
    gflops, kept, frame_counts = [], {}, []
    for off in r.offsets:
        r.set_offset(off)
        gflops.append(count_gflops(r.model, x))
        for b, t in (getattr(r.model, "last_kept_tokens", None) or {}).items():
            kept.setdefault(int(b), []).append(t.cpu())
        positions = getattr(r.model, "last_kept_positions", None) or {}
        if positions:
            first = min(positions)
            t_ = token_grid(r.model)[0]
            for pos in positions[first]:
                frame_counts.append(torch.bincount(pos[:, 0], minlength=t_))
    g = torch.cat(gflops).double()
    out = {"gflops_per_clip": float(g.mean()), "gflops_min": float(g.min()), "gflops_max": float(g.max()),
           "kept_tokens_per_block": _kept_stats(kept)}
    if frame_counts:
        fc = torch.stack(frame_counts).double()
        out["kept_per_frame_first_ats"] = {"min": float(fc.min()), "median": float(fc.median()),
                                           "max": float(fc.max())}
    return out


# ---- the benchmark --------------------------------------------------------------------------------
def run_speed(spec: SpeedSpec, log: Callable[[str], None] = print,
              on_row: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Measure ``spec``; returns ``{"kind": "speed", "meta": {...}, "rows": [...], "complete": True}``.

    ``on_row`` gets the results so far (``"complete": False``) after every row, so that a run stopped
    by a time limit keeps what it measured (the command writes them to its ``--json`` file)."""
    dev = resolve_device(spec.device)
    autocast(dev, spec.amp)                                  # validates amp
    dense = build_dense(spec.cfg, spec.seed).to(dev)
    presets = spec.settings is None
    if presets:                                              # the model family's presets
        spec.settings = {name: ATS_PRESETS[name] for name in default_settings(dense)}
    grid = token_grid(dense)
    runners = make_runners(dense, spec, grid, check_presets=presets)
    step = Stepper(dense, dev, spec.amp, spec.train)
    scope = compile_scope(spec.compile)
    if scope:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16 * len(runners))
        if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
            torch._dynamo.config.accumulated_cache_size_limit = max(
                torch._dynamo.config.accumulated_cache_size_limit, 64 * len(runners))
        for r in runners:
            compile_runner(r, log, scope)
    meta = _meta(spec, dev, dense, runners)
    rows: List[dict] = []
    for batch in spec.batch_sizes:
        x = make_input(dense, batch, spec.seed).to(dev)
        set_mode(runners, False)
        for r in runners:
            r.offsets = pattern_offsets(r.pattern, batch, spec.pattern_clips)
        cost = {r.key: flops_and_kept(r, x) for r in runners if not r.official}
        cost.update({r.key: cost["dense"] for r in runners if r.official})
        set_mode(runners, spec.train)
        if scope == "blocks" and not any(getattr(m, "_compiled_call_impl", None) for m in _regions(dense)):
            compile_blocks(dense)                           # after the (eager) FLOP count
        if scope:
            for r in runners:                               # the first call compiles: timed on its own
                if not (r.compile_info or {}).get("ok"):
                    continue
                before = _graph_breaks()
                t0 = time.perf_counter()
                try:
                    r.set_offset(0)
                    step(r.fn, x)
                    sync(dev)
                except Exception as exc:  # noqa: BLE001
                    if scope == "blocks":                   # shared regions: every runner goes back to eager
                        uncompile_blocks(dense)
                        for other in runners:
                            _compile_failed(other, exc, log if other is r else (lambda _msg: None))
                        scope = None
                        break
                    _compile_failed(r, exc, log)
                    continue
                info = r.compile_info
                info[f"first_call_s_batch{batch}"] = time.perf_counter() - t0
                info["new_graph_breaks"] = info.get("new_graph_breaks", 0) + _graph_breaks() - before
        for _ in range(spec.warmup):
            for r in runners:
                for off in r.offsets:
                    r.set_offset(off)
                    step(r.fn, x)
        times: Dict[str, List[float]] = {r.key: [] for r in runners}
        for _ in range(spec.repeats):
            for r in runners:                               # round-robin: noise hits every runner alike
                total = 0.0
                for off in r.offsets:
                    r.set_offset(off)
                    sync(dev)
                    t0 = time.perf_counter()
                    step(r.fn, x)
                    sync(dev)
                    total += time.perf_counter() - t0
                times[r.key].append(total / len(r.offsets))
        for r in runners:
            rows.append(_row(spec, r, batch, times, cost, step, x, log))
            if on_row is not None:
                on_row({"kind": "speed", "meta": meta, "rows": list(rows), "complete": False})
    return {"kind": "speed", "meta": meta, "rows": rows, "complete": True}


def _row(spec: SpeedSpec, r: Runner, batch: int, times, cost, step: Stepper, x, log) -> dict:
    t = statistics.median(times[r.key])
    paired = [d / a for d, a in zip(times["dense"], times[r.key])]
    speedup = statistics.median(paired)
    c = cost[r.key]
    flop_ratio = cost["dense"]["gflops_per_clip"] / c["gflops_per_clip"]
    row = {"model": spec.cfg["model"]["name"], "setting": r.setting,
           "pattern": r.pattern.name if r.pattern is not None else None,
           "mode": "train" if spec.train else "inference", "batch": batch,
           "gflops_per_clip": c["gflops_per_clip"], "gflops_min": c["gflops_min"], "gflops_max": c["gflops_max"],
           "seconds_per_batch": t, "clips_per_s": batch / t, "speedup_vs_dense": speedup,
           "flop_ratio_vs_dense": flop_ratio, "rounds": len(times[r.key]), "pattern_batches": len(r.offsets)}
    if r.pattern is not None:
        row["ats"] = r.ats
        row["efficiency"] = speedup / flop_ratio
        row["efficiency_range"] = [min(paired) / flop_ratio, max(paired) / flop_ratio]
        row["kept_tokens_per_block"] = c["kept_tokens_per_block"]
        if "kept_per_frame_first_ats" in c:
            row["kept_per_frame_first_ats"] = c["kept_per_frame_first_ats"]
        row["ats_share"] = ats_share(r, step, x)
    row["ops_per_step"] = count_ops(r, step, x)
    if r.compile_info is not None:
        row["compile"] = dict(r.compile_info)
    if spec.with_memory and not r.official:
        from .memory import peak_memory_mb

        row["peak_memory_mb"] = peak_memory_mb(
            {"cfg": spec.cfg, "ats": r.ats, "pattern": spec_of(r.pattern), "replay_blocks": spec.replay_blocks,
             "batch": batch, "train": spec.train, "amp": spec.amp, "seed": spec.seed}, step.device)
    log(format_row(row))
    return row


def spec_of(pattern: Optional[KeepPattern]) -> Optional[str]:
    if pattern is None:
        return None
    return pattern.info.get("file", pattern.name)


def _meta(spec: SpeedSpec, dev: torch.device, dense, runners: List[Runner]) -> Dict[str, Any]:
    meta = {"model": spec.cfg["model"]["name"], "model_class": type(dense).__name__,
            "model_kwargs": dict(spec.cfg["model"].get("kwargs") or {}), "token_grid": list(token_grid(dense)),
            "weights": spec.cfg["model"].get("pretrained") or "random (seeded)",
            "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "amp": spec.amp, "mode": "train" if spec.train else "inference",
            "compile": compile_scope(spec.compile), "settings": spec.settings, "patterns": list(spec.patterns),
            "batch_sizes": list(spec.batch_sizes), "repeats": spec.repeats, "warmup": spec.warmup,
            "pattern_clips": spec.pattern_clips, "command": command_line()}
    replays = {r.pattern.name: {"ats": r.ats, **{k: v for k, v in r.pattern.info.items()
                                                 if isinstance(v, (str, int, float, list))}}
               for r in runners if r.pattern is not None and r.pattern.kind == "masks"}
    if replays:
        meta["replay"] = replays
    return meta


def allocator_env() -> List[str]:
    """The environment settings that change how host memory is allocated (glibc's ``MALLOC_*`` and
    ``GLIBC_TUNABLES``, a preloaded allocator), as ``NAME=value`` words. They move CPU timings by several
    percent (large tensors mmapped and faulted in anew on every allocation, or kept), so a results file's
    command carries them."""
    import os
    import shlex

    names = sorted(k for k in os.environ if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "LD_PRELOAD"))
    return [f"{k}={shlex.quote(os.environ[k])}" for k in names]


def command_line() -> Optional[str]:
    """The command that is running, as a `video-ats ...` line (for the results files), prefixed by the
    allocator settings in its environment (:func:`allocator_env`), or None when the benchmark was called
    from Python (tests, notebooks)."""
    import os
    import shlex

    if not sys.argv:
        return None
    prog, rest = os.path.basename(sys.argv[0]), [shlex.quote(a) for a in sys.argv[1:]]
    wrappers = {"video-ats": [], "__main__.py": [], "benchmark.py": ["benchmark"],
                "benchmark_data.py": ["benchmark", "data"]}
    if prog not in wrappers:
        return None
    return " ".join([*allocator_env(), "video-ats", *wrappers[prog], *rest])


def device_name(dev: torch.device) -> str:
    """The GPU's name; for the CPU its model name and the widest matrix/vector extension it has (bf16 speed
    depends on it: AMX and AVX512-BF16 run bf16 natively, AVX2 emulates it)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), None)
    return f"{name}, {isa}" if isa else name


def format_row(r: dict) -> str:
    name = r["setting"] + (f" [{r['pattern']}]" if r.get("pattern") else "")
    extra = ""
    if "efficiency" in r:
        spread = r.get("efficiency_range")
        spread = f" [{spread[0]:.2f}–{spread[1]:.2f}]" if spread else ""
        extra = f"  efficiency {r['efficiency']:.2f}{spread}  ATS ops {100 * r['ats_share']:.1f}%"
    mem = f"  peak {r['peak_memory_mb']:.0f} MB" if r.get("peak_memory_mb") is not None else ""
    if r.get("ops_per_step") is not None:
        mem = f"  {r['ops_per_step']} ops" + mem
    comp = ""
    if "compile" in r:
        comp = "  compiled" if r["compile"].get("ok") else "  (not compiled)"
        if r["compile"].get("new_graph_breaks"):
            comp += f", {r['compile']['new_graph_breaks']} new graph breaks"
    return (f"{r['model']:<22} {name:<26} {r['mode']:<9} batch {r['batch']:<3} "
            f"{r['gflops_per_clip']:8.4g} GFLOPs/clip {r['seconds_per_batch']:8.4f} s/batch "
            f"{r['clips_per_s']:8.2f} clips/s  speed x{r['speedup_vs_dense']:.2f} "
            f"FLOPs x{r['flop_ratio_vs_dense']:.2f}{extra}{mem}{comp}")
