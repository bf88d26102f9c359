"""`video-ats check-data`: missing / undecodable / too-short videos of an annotation file, a report and a
cleaned annotation list."""
from __future__ import annotations

import inspect
import logging
import os

HELP = "check an annotation file's videos (present, decodable, long enough); report + cleaned list"


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True, help="Kinetics CSV or 'path label' list to check")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to (default: the file's folder)")
    parser.add_argument("--output", help="folder for report.json, report.txt and <name>.clean.<ext> "
                                         "(default: check-data/<annotation file stem>)")
    parser.add_argument("--decode", action="store_true",
                        help="decode every frame of every video (slow; default: a header probe with PyAV)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="videos checked in parallel (default %(default)s)")
    parser.add_argument("--config", help="recipe whose clip length (frames x sampling rate at target_fps) "
                                         "defines 'too short' (default: 8 x 32 at 30 fps, TimeSformer-B)")
    parser.add_argument("--label-map", help="class-name file, as data.label_map")
    parser.add_argument("--drop-short", action="store_true",
                        help="also leave videos shorter than one clip out of the cleaned list")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def clip_settings(cfg) -> tuple:
    """(num_frames, sampling_rate, target_fps) of a config without building its model."""
    from ..models.registry import _MODELS

    kw = dict(cfg["model"]["kwargs"] or {})
    fn = _MODELS.get(cfg["model"]["name"])
    defaults = dict(getattr(fn, "defaults", {}) or {})
    cls = getattr(fn, "model_class", None)
    if cls is not None:
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if p.default is not inspect.Parameter.empty:
                defaults.setdefault(name, p.default)
    frames = cfg["data"]["num_frames"] or kw.get("num_frames") or defaults.get("num_frames") or 8
    rate = cfg["data"]["sampling_rate"] or kw.get("sampling_rate") or defaults.get("sampling_rate") or 8
    return int(frames), float(rate), cfg["data"]["target_fps"]


def run(args) -> int:
    from ..data.check import check_data, format_report
    from ..engine.builders import check_creatable_dir
    from ..engine.config import load_config

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    frames, rate, fps = 8, 32.0, 30.0
    label_map = args.label_map
    if args.config:
        cfg = load_config(args.config)
        frames, rate, fps = clip_settings(cfg)
        label_map = label_map or cfg["data"]["label_map"]
    stem = os.path.splitext(os.path.basename(args.annotations))[0]
    output = args.output or os.path.join("check-data", stem)
    check_creatable_dir(output)                 # before probing every video, not after it
    report = check_data(args.annotations, args.data_root, output, decode=args.decode, workers=args.workers,
                        num_frames=frames, sampling_rate=rate, target_fps=fps, label_map=label_map,
                        drop_short=args.drop_short, progress=not args.no_progress)
    print(format_report(report))
    for what, path in report["files"].items():
        print(f"{what}: {os.path.abspath(path)}")
    return 0 if report["num_kept"] else 1
