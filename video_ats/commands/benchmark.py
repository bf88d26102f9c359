"""`video-ats benchmark [MODE] [key=value ...]`: every benchmark of the project, one command.

MODE is ``speed`` (the default: dense vs ATS speed, GFLOPs, efficiency, ATS share, peak memory),
``precision`` (fp32 vs autocast forward, dense and ATS), ``attention`` (the attention layouts of
``attend_groups``, attention only), ``data`` (data loaders vs pytorchvideo), ``export-keep`` (a trained
model's kept-token masks → a keep-pattern file) or ``report`` (README tables from results files). The model is configured as in
every other command: ``--config FILE`` and/or dotted ``key=value`` overrides (``model.name=xvit_b16_16x224
model.kwargs.depth=4``). The implementation lives in :mod:`video_ats.benchmark`.
"""
from __future__ import annotations

import os
import sys

from ..errors import UserError

HELP = ("benchmarks: dense vs ATS speed and efficiency (default; --train, --compile, --amp, keep patterns), "
        "fp32 vs autocast, attention layouts, data loaders vs pytorchvideo, keep-pattern export, README tables")
MODES = ("speed", "precision", "attention", "matmul", "data", "export-keep", "report")

EPILOG = """modes:
  speed        (default) dense vs ATS: GFLOPs/clip, s/batch, clips/s, speed-up, FLOP ratio, efficiency,
               ATS ops share, peak memory; inference or --train; --compile; --amp bf16; --device cuda
  precision    forward time in fp32 vs under autocast (--amp bf16 default, fp16), dense and ATS, interleaved:
               median thread CPU time and wall time per setting and precision, max |Δlogit|
  matmul       the rate (GFLOP/s) of the blocks' linear layers over row counts: what few kept rows cost per FLOP
  attention    attention only: the layouts of attend_groups (padded, bucketed, nested, bucketed:COST,
               blockdiag) on a skewed TimeSformer-B keep pattern; spatial, temporal and ATS cases; --train
  data         this project's test-view and training loaders vs pytorchvideo on the same files
  export-keep  run a trained ATS model on real clips and save what each ATS stage kept (--out FILE.keep),
               for --keep-pattern FILE.keep
  report       markdown tables from --json results files; --readme README.md fills the README block

examples:
  video-ats benchmark --batch 1 8 --keep-pattern uniform skewed --json docs/results/benchmark_timesformer.json
  video-ats benchmark model.name=xvit_b16_16x224 model.num_classes=600 --batch 1 8 --keep-pattern uniform skewed
  video-ats benchmark --train --batch 8 --keep-pattern uniform skewed
  video-ats benchmark --device cuda --amp bf16 --batch 1 8 32
  video-ats benchmark model.name=timesformer model.kwargs.depth=4 model.kwargs.img_size=64 --compile \\
      --ats '{blocks: [1, 2], num_tokens: [0.7, 0.5]}'
  video-ats benchmark precision --batch 1 --repeats 3 --threads 1
  video-ats benchmark attention --batch 1 8 --repeats 7 --threads 1 [--train]
  video-ats benchmark attention --layouts bucketed:0 bucketed:500 bucketed:2000 padded --cases ats
  video-ats benchmark matmul --threads 2 --rows 16 64 256 1569
  video-ats benchmark data --loader test train --json docs/results/benchmark_data.json
  video-ats benchmark export-keep --config configs/synthetic/bench_timesformer_ats.yaml --checkpoint CKPT \\
      --annotations TEST.txt --out benchmarks/keep_patterns/bench_accuracy_ats.keep
  video-ats benchmark report docs/results/benchmark_*.json --readme README.md

key=value overrides go before options that take several values (--batch, --keep-pattern, --loader, --layouts)."""

# option dest -> the modes it belongs to (given in another mode, it is an error)
_MODE_OF = {}
# speed options that other modes take too
_SHARED = {"batch": ("precision", "attention"), "threads": ("precision", "attention", "matmul"), "train": ("attention",),
           "model": ("precision",), "ats": ("precision",), "device": ("precision",), "amp": ("precision",)}


def _group(p, mode, title):
    g = p.add_argument_group(title)

    def add(*names, **kw):
        action = g.add_argument(*names, **kw)
        _MODE_OF[action.dest] = (mode, *_SHARED.get(action.dest, ()))
        return action
    return add


def add_arguments(p) -> None:
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("items", nargs="*", metavar="[MODE] key=value|FILE",
                   help=f"MODE: {', '.join(MODES)} (default speed); then dotted config overrides (speed, precision, "
                        "export-keep), e.g. model.name=xvit_b16_16x224 model.kwargs.depth=4; report: results files")
    p.add_argument("--config", help="YAML recipe whose model section is benchmarked (speed, precision) or exported "
                                    "(export-keep)")
    p.add_argument("--json", dest="json_out", metavar="FILE",
                   help="write the results here (speed, precision, attention, matmul, data)")
    p.add_argument("--output", dest="json_out", help=argparse.SUPPRESS)          # the old name of --json
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per runner / loader; the median is reported (default: speed 5, precision 3, "
                        "attention 7, matmul 5, data 3)")
    p.add_argument("--seed", type=int, default=0, help="input, weights and skewed-pattern seed (default 0)")

    add = _group(p, "speed", "speed options (--batch, --threads: also precision and attention; --train: also "
                             "attention; --model, --ats, --device, --amp: also precision)")
    add("--model", help="registered model name (same as model.name=NAME; default timesformer_base_8x224)")
    add("--batch", nargs="+", default=None, metavar="N",
        help="batch sizes (e.g. --batch 1 8 32 or --batch 1,8; default 1 8; precision 1)")
    add("--ats", action="append", default=None, metavar="NAME|YAML",
        help="ATS setting: a preset (mild, half for TimeSformer-B; late3, deep4 for X-ViT-B) or a YAML/JSON dict "
             "like '{blocks: [1], num_tokens: 0.5}'; repeatable (default: model.ats of --config, else the "
             "model family's two presets)")
    add("--keep-pattern", nargs="+", default=None, metavar="PATTERN",
        help="what the ATS blocks keep: uniform (flat scores, K' = K), skewed (seeded moving object of changing "
             "size), model (the model's own scores), or FILE.keep from export-keep (replayed, upsampled to the "
             "model's grid); several are measured side by side (default uniform)")
    add("--replay-blocks", default=None, metavar="B1,B2",
        help="blocks where a replayed file's stages go (default: the source blocks at the same relative depth)")
    add("--pattern-clips", type=int, default=None,
        help="distinct pattern clips a round walks (skewed/replay; default 8: at batch 1, 8 forwards a round)")
    add("--train", action="store_true", default=None, help="time training steps: forward + backward + SGD step")
    add("--compile", nargs="?", const="model", default=None, choices=("model", "blocks"),   # speed.COMPILE_SCOPES
        help="torch.compile: 'model' (the default when given alone) compiles every runner whole (ATS: dynamic "
             "shapes; the token bookkeeping's host reads break the graph), 'blocks' only each block's norms and "
             "MLP (dynamic row count, no graph break; attention and bookkeeping eager); a failure is one line "
             "and the run goes on uncompiled")
    add("--warmup", type=int, default=None, help="untimed rounds before timing (default 1)")
    add("--device", default=None, help="cpu, cuda, cuda:N or auto (default cpu)")
    add("--amp", choices=["off", "bf16", "fp16"], default=None,
        help="autocast dtype (CPU bf16 too; default off = fp32; precision: the dtype compared with fp32, "
             "default bf16)")
    add("--dtype", choices=["fp32", "bf16", "fp16"], default=None, help=argparse.SUPPRESS)  # old name of --amp
    add("--threads", type=int, default=None,
        help="torch intra-op threads (default: torch's; precision and attention: 1; matmul: torch's)")
    add("--no-official", action="store_true", default=None,
        help="skip the official-forward baseline (video_ats/reference.py; TimeSformer inference only)")
    add("--no-memory", action="store_true", default=None, help="skip the peak-memory measurement")
    add("--model-arg", action="append", default=None, metavar="KEY=VALUE",
        help="deprecated: use model.kwargs.KEY=VALUE")

    add = _group(p, "attention", "attention options")
    add("--layouts", nargs="+", default=None, metavar="LAYOUT",
        help="padded, bucketed, nested, blockdiag (benchmark-only block-diagonal mask) or bucketed:COST (another "
             "per-batch call cost for the bucket plan); default padded bucketed nested blockdiag")
    add("--cases", nargs="+", default=None, metavar="CASE",
        help="spatial, temporal, ats (default: all three)")

    add = _group(p, "matmul", "matmul options")
    add("--rows", nargs="+", default=None, metavar="N",
        help="row counts (default 16 32 64 128 256 512 1024 1569; 1569 = TimeSformer-B at batch 1, dense)")
    add("--dim", type=int, default=None, help="embedding width D of the layers (default 768: the B models)")

    add = _group(p, "data", "data options")
    add("--loader", nargs="+", default=None, choices=["test", "train"],
        help="which loaders to compare with pytorchvideo (default: test train)")
    add("--data", help="a `video-ats make-synthetic` folder (default: generate --videos videos)")
    add("--videos", type=int, default=None, help="videos to generate (default 24)")
    add("--size", default=None, help="generated frame size WxH (default 340x256)")
    add("--seconds", type=float, default=None, help="generated length (default 10)")
    add("--gop", type=int, default=None, help="keyframe interval of generated files (default 30 frames = 1 s)")
    add("--num-frames", type=int, default=None, help="frames per clip (default 8)")
    add("--sampling-rate", type=int, default=None, help="frame stride at 30 fps (default 32)")
    add("--crop", type=int, default=None, help="crop side (default 224)")
    add("--scale-range", default=None, help="training short-side jitter MIN,MAX (default 256,320)")
    add("--num-workers", type=int, default=None, help="DataLoader workers (default 2)")
    add("--batch-size", type=int, default=None, help="DataLoader batch size (default 4)")

    add = _group(p, "export-keep", "export-keep options")
    add("--checkpoint", help="the trained ATS model's weights")
    add("--annotations", help="clips to run it on (default: test.annotations, then data.val_annotations)")
    add("--data-root", help="folder the annotation paths are relative to")
    add("--clips", type=int, default=None, help="videos, spread evenly over the file (default 64)")
    add("--out", help="the keep-pattern file to write (.pt)")

    add = _group(p, "report", "report options")
    add("--readme", help="replace the block between the README's benchmark markers with the tables")


def _split_mode(items):
    items = list(items)
    mode = items.pop(0) if items and items[0] in MODES else "speed"
    return mode, items


def _check_mode_options(args, mode: str) -> None:
    for dest, owners in _MODE_OF.items():
        if mode not in owners and getattr(args, dest, None) not in (None, False):
            flag = "--" + dest.replace("_", "-")
            raise UserError(f"{flag} is an option of `video-ats benchmark {' / '.join(owners)}`, not of mode {mode}")


def _ints(values, what: str):
    out = []
    for v in values:
        for part in str(v).split(","):
            if part.strip():
                try:
                    n = int(part)
                except ValueError:
                    raise UserError(f"{what} {part!r} is not an integer") from None
                if n < 1:
                    raise UserError(f"{what} must be ≥ 1, got {n}")
                out.append(n)
    return out


# integer options and their smallest value: 0 repeats would report a timing of nothing (or fail in
# statistics.median), a negative warm-up would be skipped silently
_MINIMUMS = {"repeats": 1, "dim": 1, "warmup": 0, "threads": 1, "pattern_clips": 1, "clips": 1, "videos": 1, "gop": 1,
             "num_frames": 1, "sampling_rate": 1, "crop": 1, "num_workers": 0, "batch_size": 1}


def _check_minimums(args) -> None:
    for dest, low in _MINIMUMS.items():
        v = getattr(args, dest, None)
        if v is not None and v < low:
            raise UserError(f"--{dest.replace('_', '-')} must be ≥ {low}, got {v}")
    if getattr(args, "seconds", None) is not None and not args.seconds > 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")


def _overrides(items, mode: str):
    for it in items:
        if "=" not in it:
            raise UserError(f"unexpected argument {it!r}: give key=value config overrides (e.g. "
                            f"model.name=xvit_b16_16x224) or a mode ({', '.join(MODES)}) first")
    return list(items)


def parse_settings(items, cfg_ats):
    """``--ats`` items -> {name: spec}; None when nothing was given (the model family's presets)."""
    import yaml

    from ..benchmark.speed import ATS_PRESETS
    from ..engine.config import load_yaml

    if not items:
        return {"config": cfg_ats} if cfg_ats else None
    settings = {}
    for item in items:
        if item in ATS_PRESETS:
            settings[item] = ATS_PRESETS[item]
            continue
        try:
            spec = load_yaml(item)
        except yaml.constructor.ConstructorError as exc:
            raise UserError(f"--ats {item!r}: {exc.problem}") from None
        except yaml.YAMLError:
            spec = None
        if not isinstance(spec, dict):
            raise UserError(f"--ats {item!r} is neither a preset ({', '.join(ATS_PRESETS)}) nor a dict like "
                            "'{blocks: [4, 7, 10], num_tokens: [0.7, 0.5, 0.35]}'")
        settings[f"ats{len(settings) + 1}"] = spec
    return settings


def _write_json(obj, path: str, quiet: bool = False) -> None:
    from ..fileio import atomic_write_json
    from ..numfmt import round_floats

    atomic_write_json(path, round_floats(obj), what="results file")
    if not quiet:
        print(f"results: {os.path.abspath(path)}")


def _check_writable(path) -> None:
    if path:
        if os.path.isdir(path):
            raise UserError(f"--json {path} is a folder; give a file name such as {os.path.join(path, 'results.json')}")
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d) or not os.access(d, os.W_OK):
            raise UserError(f"cannot write {path!r}: {d} is not a writable folder")


def run(args) -> int:
    mode, items = _split_mode(args.items)
    # values that nargs="+" options swallowed after themselves: key=value items belong to the overrides
    for dest in ("batch", "keep_pattern"):
        vals = getattr(args, dest, None)
        if vals:
            moved = [v for v in vals if "=" in v and not os.path.exists(v)]
            items += moved
            setattr(args, dest, [v for v in vals if v not in moved] or None)
    _check_mode_options(args, mode)
    _check_minimums(args)
    _check_writable(args.json_out)
    if mode == "report":
        return _run_report(args, items)
    if mode in ("data", "attention", "matmul"):
        if items:
            raise UserError(f"`video-ats benchmark {mode}` takes no positional arguments, got {items}")
        return {"data": _run_data, "attention": _run_attention, "matmul": _run_matmul}[mode](args)
    overrides = _overrides(items, mode)
    if args.model_arg:
        for kv in args.model_arg:
            key, sep, value = kv.partition("=")
            if not sep or not key:
                raise UserError(f"--model-arg {kv!r} must look like KEY=VALUE (deprecated: use model.kwargs.KEY=VALUE)")
            overrides.append(f"model.kwargs.{key}={value}")
        print("note: --model-arg is deprecated; use model.kwargs.KEY=VALUE", file=sys.stderr)
    if getattr(args, "model", None):
        overrides.insert(0, f"model.name={args.model}")
    from ..engine import config as C

    cfg = C.load_config(args.config, overrides)
    if mode == "export-keep":
        return _run_export(args, cfg)
    if mode == "precision":
        return _run_precision(args, cfg)
    return _run_speed(args, cfg)


def _run_speed(args, cfg) -> int:
    import torch

    from ..benchmark import speed

    dev = speed.resolve_device(args.device or "cpu")          # a missing CUDA is an error before any work
    amp = args.amp or {"fp32": "off", None: "off"}.get(args.dtype, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    patterns = []
    for v in args.keep_pattern or ["uniform"]:
        patterns += [s for s in v.split(",") if s] if not os.path.exists(v) else [v]
    from ..benchmark.patterns import build_pattern

    for pat in patterns:                                       # bad names / files: one line, before any work
        if pat not in ("model", "uniform", "skewed"):
            build_pattern(pat, (1, 1, 1))
    replay_blocks = None
    if args.replay_blocks and all(p in ("model", "uniform", "skewed") for p in patterns):
        raise UserError("--replay-blocks places the stages of a replayed keep-pattern file; give one with "
                        "--keep-pattern FILE.keep (uniform, skewed and model use the --ats blocks)")
    if args.replay_blocks:
        try:
            replay_blocks = [int(b) for b in args.replay_blocks.split(",") if b.strip()]
        except ValueError:
            raise UserError(f"--replay-blocks {args.replay_blocks!r} must be block indices like 5,8") from None
    spec = speed.SpeedSpec(
        cfg=cfg, settings=parse_settings(args.ats, cfg["model"].get("ats")), patterns=patterns,
        batch_sizes=_ints(args.batch or [1, 8], "--batch"), repeats=args.repeats or 5,
        warmup=1 if args.warmup is None else args.warmup, device=str(dev), amp=amp, train=bool(args.train),
        compile=args.compile or False, with_official=not args.no_official, with_memory=not args.no_memory,
        pattern_clips=args.pattern_clips or 8, replay_blocks=replay_blocks, seed=args.seed)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, amp {amp}, "
          f"{'training steps' if spec.train else 'inference'}{f', torch.compile ({spec.compile})' if spec.compile else ''}")
    # every finished row goes to the results file at once: a run cut short keeps what it measured
    on_row = (lambda partial: _write_json(partial, args.json_out, quiet=True)) if args.json_out else None
    res = speed.run_speed(spec, on_row=on_row)
    from ..benchmark.report import render_speed

    print(render_speed(res))
    if args.json_out:
        _write_json(res, args.json_out)
    return 0


def _with_threads(n: int, fn, *a):
    """``fn(*a)`` with ``n`` torch intra-op threads, the previous count restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*a)
    finally:
        torch.set_num_threads(old)


def _run_precision(args, cfg) -> int:
    from ..benchmark.precision import PrecisionSpec, run_precision

    spec = PrecisionSpec(cfg=cfg, settings=parse_settings(args.ats, cfg["model"].get("ats")),
                         batch_sizes=_ints(args.batch or [1], "--batch"), repeats=args.repeats or 3,
                         amp=args.amp or "bf16", device=args.device or "cpu", seed=args.seed)
    res = _with_threads(args.threads or 1, run_precision, spec)
    if args.json_out:
        _write_json(res, args.json_out)
    return 0


def _run_attention(args) -> int:
    from ..benchmark.attention import CASES, DEFAULT_LAYOUTS, AttentionSpec, check_case, check_layout, run_attention

    spec = AttentionSpec(batch_sizes=_ints(args.batch or [1, 8], "--batch"), repeats=args.repeats or 7,
                         train=bool(args.train), layouts=list(dict.fromkeys(args.layouts or DEFAULT_LAYOUTS)),
                         cases=list(dict.fromkeys(args.cases or CASES)), seed=args.seed)
    for lay in spec.layouts:                                   # bad names: one line, before any work
        check_layout(lay)
    for name in spec.cases:
        check_case(name)
    res = _with_threads(args.threads or 1, run_attention, spec)
    if args.json_out:
        _write_json(res, args.json_out)
    return 0


def _run_matmul(args) -> int:
    import torch

    from ..benchmark.matmul import DEFAULT_ROWS, MatmulSpec, run_matmul
    from ..benchmark.report import render_matmul

    spec = MatmulSpec(rows=sorted(set(_ints(args.rows or DEFAULT_ROWS, "--rows"))), dim=args.dim or 768,
                      repeats=args.repeats or 5, seed=args.seed)
    # every finished round goes to the results file at once: an interrupted run keeps what it measured
    on_round = (lambda partial: _write_json(partial, args.json_out, quiet=True)) if args.json_out else None
    res = _with_threads(args.threads or torch.get_num_threads(), run_matmul, spec, print, on_round)
    print(render_matmul(res))
    if args.json_out:
        _write_json(res, args.json_out)
    return 0


def _run_data(args) -> int:
    from ..benchmark.data import DataSpec, run_data
    from ..benchmark.report import render_data

    spec = DataSpec()
    for key in ("data", "videos", "seconds", "gop", "num_frames", "sampling_rate", "crop", "num_workers",
                "batch_size", "repeats", "seed"):
        v = getattr(args, key, None)
        if v is not None:
            setattr(spec, key, v)
    if args.loader:
        spec.loaders = list(dict.fromkeys(args.loader))
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise UserError(f"--size {args.size!r} must be WxH, e.g. 340x256") from None
        spec.size = (w, h)
    if args.scale_range:
        lo_hi = _ints([args.scale_range], "--scale-range")
        if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
            raise UserError(f"--scale-range {args.scale_range!r} must be MIN,MAX")
        spec.scale_range = tuple(lo_hi)
    res = run_data(spec)
    print(render_data(res))
    if args.json_out:
        _write_json(res, args.json_out)
    return 0


def _run_export(args, cfg) -> int:
    from ..benchmark.export import export_keep

    if not args.out:
        raise UserError("export-keep needs --out FILE.keep")
    if not args.checkpoint:
        raise UserError("export-keep needs --checkpoint: the trained ATS model whose kept tokens are exported")
    export_keep(cfg, args.checkpoint, args.out, args.annotations, args.data_root, args.clips or 64)
    return 0


def _run_report(args, files) -> int:
    from ..benchmark import report

    if not files:
        raise UserError("report needs results files: video-ats benchmark report FILE.json ... [--readme README.md]")
    results = [report.load_results(f) for f in files]
    block = report.render(results, files)
    if args.readme:
        report.update_readme(args.readme, block)
        print(f"updated {args.readme} ({len(files)} results files)")
    else:
        print(block)
    return 0
