"""``video-ats test`` as a function: build the config's model, load the weights, evaluate the test split as
the config's :class:`~video_ats.engine.eval_spec.EvalSpec` says and write ``results.json`` (resumable).

Public: :func:`run_test`.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, Optional

import torch

from ..errors import UserError, unwrap_worker_error
from ..fileio import FolderLock, first_missing_dir, remove_if_no_files, remove_stale_temp_files
from . import distributed
from .builders import build_model, check_writable_dir, read_split
from .eval_spec import eval_spec
from .evaluate import evaluate, predictions_path, write_results

logger = logging.getLogger("video_ats.engine")


def run_test(cfg: Dict[str, Any], checkpoint: Optional[str], output: str,
             info: Optional[distributed.DistInfo] = None) -> Dict[str, Any]:
    """Evaluate ``cfg``'s model with ``checkpoint`` (else ``model.pretrained``, else random weights) on ``test.annotations`` (else
    ``data.val_annotations``) and write ``output``; returns the results dict.

    Rank 0 holds a lock on ``output`` for the run (a second ``test`` writing the same file is refused)
    and removes temporary files a killed run left next to it.
    """
    info = info or distributed.DistInfo()
    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise UserError(f"--output {output} is a folder; give a file name such as "
                        f"{os.path.join(output, 'results.json')}")
    if os.path.exists(output) and not os.path.isfile(output):
        raise UserError(f"--output {output} exists and is not a regular file")
    if checkpoint and not os.path.exists(checkpoint):     # before anything is made: the argument a user checks first
        raise UserError(f"checkpoint {checkpoint!r} does not exist")
    if not (cfg["test"]["annotations"] or cfg["data"]["val_annotations"]):
        raise UserError("no test annotations: pass --annotations FILE (or set test.annotations)")
    lock = None
    made = first_missing_dir(out_dir) if info.is_main else None     # removed again if the setup fails
    finished = False
    if info.is_main:
        check_writable_dir(out_dir, "output folder")
        lock = FolderLock(output + ".lock", f"test output {output}").acquire()
        if lock.note:
            print(lock.note, file=sys.stderr, flush=True)
        remove_stale_temp_files(out_dir, [os.path.basename(output), os.path.basename(predictions_path(output))])
    try:
        results = _evaluate_test_split(cfg, checkpoint, output, info)
        finished = True
        return results
    except UserError as exc:
        raise (unwrap_worker_error(exc) or exc) from None
    finally:
        if lock is not None:
            lock.release()
        if not finished:
            remove_if_no_files(made)              # a setup error leaves no empty output folder


def _evaluate_test_split(cfg: Dict[str, Any], checkpoint: Optional[str], output: str,
                         info: distributed.DistInfo) -> Dict[str, Any]:
    from ..checkpoint import load_checkpoint
    from ..data.annotations import index_names
    from ..numfmt import round_floats

    annotations = cfg["test"]["annotations"] or cfg["data"]["val_annotations"]      # checked in run_test
    torch.manual_seed(int(cfg["seed"]))       # a random-init model (no checkpoint) is the same on every run
    pretrained = cfg["model"]["pretrained"]
    if not checkpoint and pretrained and not cfg["model"]["drop_head"]:
        checkpoint = pretrained               # the config's weights, as train, predict and profile use them
    model = build_model(cfg, load_pretrained=not checkpoint)   # drop_head: the backbone, a random classifier
    if checkpoint:
        report = load_checkpoint(model, checkpoint)       # a project/official file or a Hugging Face folder
        for note in report.get("notes", []):
            logger.info("checkpoint: %s", note)
    elif info.is_main:
        what = (f"model.pretrained {pretrained} with model.drop_head: a RANDOMLY INITIALISED classifier" if pretrained
                else "a RANDOMLY INITIALISED model")
        print(f"warning: no --checkpoint given: evaluating {what} (for pipeline checks and GFLOPs profiling "
              "only; accuracy is meaningless)", file=sys.stderr, flush=True)
    class_names = (list(getattr(model, "class_names", None) or []) or None) if checkpoint else None
    if class_names is not None and index_names(class_names):
        class_names = None                    # "0", "1", ...: a list-trained model, nothing to map by name
    # labels are mapped onto the checkpoint's classes by name: a file lacking a class keeps the numbering
    records, _ = read_split(annotations, cfg, "test", class_names=class_names,
                            names_from=f"the class names stored in {checkpoint}", need_labels=True)
    model.to(info.device)
    spec = eval_spec(cfg, model, device=info.device, checkpoint=checkpoint, annotations=annotations)
    results = evaluate(model, records, spec, num_classes=cfg["model"]["num_classes"], output=output,
                       progress=cfg["train"]["progress"], dist_info=info)
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
