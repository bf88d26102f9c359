"""`video-ats test`: multi-view evaluation (Top-1/Top-5, GFLOPs per view from the kept tokens)."""
from __future__ import annotations

import logging
import os
import sys

HELP = "multi-view evaluation: Top-1/Top-5 and per-view GFLOPs; rerun the same command to resume"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML recipe (its model section builds the model)")
    parser.add_argument("--checkpoint", help="weights to evaluate (project / official checkpoint, Hugging Face "
                                             "TimeSformer folder); without it "
                                             "the model is randomly initialised (pipeline checks, GFLOPs)")
    parser.add_argument("--annotations", help="test annotation file (default: test.annotations, then "
                                              "data.val_annotations)")
    parser.add_argument("--data-root", help="folder the annotation paths are relative to")
    parser.add_argument("--views", help="CLIPSxCROPS, e.g. 1x3 (default: test.views)")
    parser.add_argument("--combine", choices=("softmax_mean", "logit_sum"),
                        help="how a video's views are combined (default: test.combine = softmax_mean)")
    parser.add_argument("--clip-position", choices=("start", "center"),
                        help="where a single test clip sits (default: test.clip_position = start)")
    parser.add_argument("--batch-size", type=int, help="videos per batch (default: test.batch_size)")
    parser.add_argument("--output", help="results JSON (default: results.json in the run folder, output_dir = "
                        "runs/<config name>); per-video predictions stream to <stem>.predictions.jsonl next to it")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. model.num_classes=600 model.ats=null")


def run(args) -> int:
    from ..engine import config as C

    overrides = list(args.overrides)
    for flag, key in ((args.views, "test.views"), (args.combine, "test.combine"),
                      (args.clip_position, "test.clip_position"), (args.batch_size, "test.batch_size"),
                      (args.data_root, "data.data_root"), (args.annotations, "test.annotations")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    cfg = C.load_config(args.config, overrides)
    from ..engine import distributed as D

    info = D.init_distributed(cfg["device"])
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    output = args.output or os.path.join(cfg["output_dir"], "results.json")
    try:
        results = run_test(cfg, args.checkpoint, output, info)
    finally:
        D.cleanup()
    if info.is_main:
        print(format_results(results))
        warning = failure_warning(results)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"results: {os.path.abspath(output)}")
    return 1 if results.get("top1") is None else 0


FAILURE_WARN_FRACTION = 0.01


def failure_warning(r) -> str:
    """One warning line when more than 1 % of the videos failed ('' otherwise)."""
    failed, total = r.get("num_failed") or 0, (r.get("num_videos") or 0) + (r.get("num_failed") or 0)
    if not total or failed / total <= FAILURE_WARN_FRACTION:
        return ""
    if failed == total:
        return (f"error: none of the {total} videos could be evaluated (e.g. {r['failed'][0]['path']}: "
                f"{r['failed'][0]['error']}); check the data root and run `video-ats check-data`")
    return (f"warning: {failed} of {total} videos ({100 * failed / total:.1f} %) could not be decoded and are not "
            "in Top-1/Top-5 (computed over the rest); `video-ats check-data --annotations A --data-root D` lists them")


def run_test(cfg, checkpoint, output, info):
    """Evaluate ``cfg``'s model with ``checkpoint`` (or random weights) and write ``output``."""
    from ..errors import UserError, unwrap_worker_error
    from ..engine.builders import check_writable_dir
    from ..fileio import FolderLock, remove_stale_temp_files

    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise UserError(f"--output {output} is a folder; give a file name such as {os.path.join(output, 'results.json')}")
    if os.path.exists(output) and not os.path.isfile(output):
        raise UserError(f"--output {output} exists and is not a regular file")
    lock = None
    if info.is_main:
        check_writable_dir(out_dir, "output folder")
        lock = FolderLock(output + ".lock", f"test output {output}").acquire()
        if lock.note:
            print(lock.note, file=sys.stderr, flush=True)
        from ..engine.evaluate import predictions_path
        remove_stale_temp_files(out_dir, [os.path.basename(output), os.path.basename(predictions_path(output))])
    try:
        return _run_test(cfg, checkpoint, output, info)
    except UserError as exc:
        raise (unwrap_worker_error(exc) or exc) from None
    finally:
        if lock is not None:
            lock.release()


def _run_test(cfg, checkpoint, output, info):
    import torch

    from ..checkpoint import load_checkpoint
    from ..data.annotations import index_names
    from ..engine.builders import build_model, cap_workers, model_data_settings, read_split
    from ..engine.evaluate import evaluate, file_fingerprint, write_results
    from ..errors import UserError
    from ..numfmt import round_floats

    annotations = cfg["test"]["annotations"] or cfg["data"]["val_annotations"]
    if not annotations:
        raise UserError("no test annotations: pass --annotations FILE (or set test.annotations)")
    torch.manual_seed(int(cfg["seed"]))       # a random-init model (no checkpoint) is the same on every run
    model = build_model(cfg, load_pretrained=False)
    if checkpoint:
        report = load_checkpoint(model, checkpoint)       # a project/official file or a Hugging Face folder
        for note in report.get("notes", []):
            logging.getLogger("video_ats.engine").info("checkpoint: %s", note)
    elif info.is_main:
        print("warning: no --checkpoint given: evaluating a RANDOMLY INITIALISED model (for pipeline checks "
              "and GFLOPs profiling only; accuracy is meaningless)", file=sys.stderr, flush=True)
    class_names = (list(getattr(model, "class_names", None) or []) or None) if checkpoint else None
    if class_names is not None and index_names(class_names):
        class_names = None                    # "0", "1", ...: a list-trained model, nothing to map by name
    # labels are mapped onto the checkpoint's classes by name: a file lacking a class keeps the numbering
    records, names = read_split(annotations, cfg, "test", class_names=class_names,
                                names_from=f"the class names stored in {checkpoint}")
    model.to(info.device)
    settings = model_data_settings(cfg, model)
    views = C_parse(cfg["test"]["views"])
    fingerprint = {"model": cfg["model"]["name"], "num_classes": cfg["model"]["num_classes"],
                   "ats": cfg["model"]["ats"], "kwargs": cfg["model"]["kwargs"],
                   "checkpoint": file_fingerprint(checkpoint), "annotations": os.path.abspath(annotations)}
    results = evaluate(model, records, settings, views=views, combine=cfg["test"]["combine"],
                       clip_position=cfg["test"]["clip_position"], batch_videos=cfg["test"]["batch_size"],
                       num_classes=cfg["model"]["num_classes"], device=info.device,
                       num_workers=cap_workers(cfg["data"]["num_workers"]), output=output, fingerprint=fingerprint,
                       amp=cfg["train"]["amp"], progress=cfg["train"]["progress"], dist_info=info)
    results.update({"model": cfg["model"]["name"], "ats": cfg["model"]["ats"],
                    "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
                    "annotations": os.path.abspath(annotations), "config": cfg["name"],
                    "class_names_from": "checkpoint" if class_names else
                    ("label_map" if cfg["data"]["label_map"] else "annotation file (sorted names)")})
    if getattr(model, "class_names", None):      # from the checkpoint (HF id2label / training annotations)
        results["class_names"] = list(model.class_names)
    results = round_floats(results)
    if info.is_main:
        write_results(results, output)
    return results


def C_parse(text):
    from ..engine.config import parse_views
    return parse_views(text, "test.views")


def format_results(r) -> str:
    """Human summary of a results dict (a few lines)."""
    g = r.get("gflops_per_view") or {}
    lines = []
    if r.get("top1") is not None:
        lines.append(f"top1 {r['top1']:.2f}  top5 {r['top5']:.2f}  ({r['num_videos']} videos, {r['views']} views, "
                     f"{r['combine']}, clip at {r['clip_position']})")
    else:
        lines.append(f"no video could be evaluated ({r['num_failed']} failed)")
    if g:
        dense = r.get("dense_gflops_per_view")
        lines.append(f"GFLOPs/view {g['mean']:.4g} ± {g['std']:.2g} (min {g['min']:.4g}, max {g['max']:.4g})"
                     + (f"; dense {dense:.4g}" if dense else ""))
    if r.get("views_per_second"):
        lines.append(f"throughput {r['views_per_second']:.1f} views/s (model forward)")
    if r["num_failed"]:
        lines.append(f"{r['num_failed']} videos failed, e.g. {r['failed'][0]['path']}: {r['failed'][0]['error']}")
    return "\n".join(lines)
