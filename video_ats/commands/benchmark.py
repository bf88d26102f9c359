"""`video-ats benchmark`: dense vs ATS speed, FLOPs, sampler overhead and memory, side by side."""
from __future__ import annotations

import json
import os

import torch

from ..errors import UserError

HELP = "measure dense vs ATS forward time, GFLOPs, efficiency, ATS overhead and peak memory"


def add_arguments(p):
    p.add_argument("--model", default="timesformer_base_8x224",
                   help="registered model name, see `video-ats models` (default %(default)s)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8],
                   help="batch sizes to measure, one table row group each (default %(default)s)")
    p.add_argument("--ats", action="append", default=None, metavar="NAME|JSON",
                   help="ATS setting: a preset name (mild, half) or a JSON dict; repeatable (default: mild, half)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed forwards per setting; the median is reported (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards before timing (default %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="autocast dtype (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU (default: torch's)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model hyper-parameter (JSON value), e.g. num_frames=16; repeatable")
    p.add_argument("--no-official", action="store_true",
                   help="skip the official-forward baseline (video_ats/reference.py; TimeSformer only)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--output", default=None, help="write the rows as JSON here (and a .md table beside it); "
                   "default: print only")


def run(args) -> int:
    from .. import benchmark
    settings = {}
    for item in args.ats or ["mild", "half"]:
        if item in benchmark.ATS_PRESETS:
            settings[item] = benchmark.ATS_PRESETS[item]
        else:
            try:
                spec = json.loads(item)
            except json.JSONDecodeError:
                raise UserError(f"--ats {item!r} is neither a preset ({', '.join(benchmark.ATS_PRESETS)}) nor JSON") from None
            settings[f"ats{len(settings) + 1}"] = spec
    kwargs = {}
    for kv in args.model_arg:
        key, sep, value = kv.partition("=")
        if not sep:
            raise UserError(f"--model-arg {kv!r} must look like KEY=VALUE")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.output:
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.access(out_dir, os.W_OK):
            raise UserError(f"cannot write to {out_dir!r}")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, dtype {args.dtype}")
    rows = benchmark.run(args.model, args.batch, settings, args.repeats, args.warmup, args.device, dtype,
                         with_official=not args.no_official, with_memory=not args.no_memory, model_kwargs=kwargs)
    table = benchmark.markdown_table(rows)
    print(table)
    if args.output:
        from ..numfmt import round_floats

        with open(args.output, "w") as f:
            json.dump({"rows": round_floats(rows), "torch": torch.__version__, "device": args.device,
                       "threads": torch.get_num_threads(), "dtype": args.dtype}, f, indent=2)
        with open(os.path.splitext(args.output)[0] + ".md", "w") as f:
            f.write(table + "\n")
    return 0
