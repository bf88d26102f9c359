"""DDP: 2 gloo ranks on CPU (torchrun) give the same evaluation as one process; DDP training runs."""
import json
import os
import subprocess
import sys

import pytest
import torch
from _models import tiny_timesformer

from video_ats.checkpoint import read_checkpoint, save_state
from video_ats.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_frames": 4,
        "sampling_rate": 2}


def _torchrun(args, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "video_ats.cli", *args]
    p = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_ddp_evaluation_equals_single_process(engine_data, engine_ov, tmp_path, capsys):
    m = tiny_timesformer(TINY, paths=False, eval=False, num_classes=4)
    with torch.no_grad():                              # a non-trivial classifier so videos differ
        m.head.weight.normal_(std=1.0)
    ck = str(tmp_path / "ck.pt")
    save_state({"model": m.state_dict()}, ck)
    ov = engine_ov(engine_data, tmp_path / "run", **{"model.ats": "{blocks: [1], num_tokens: [0.5]}",
                                                     "test.batch_size": 2})
    args = ["test", "--checkpoint", ck, "--annotations", engine_data["val_csv"], "--views", "2x3", *ov]
    assert main(args + ["--output", str(tmp_path / "single.json")]) == 0
    _torchrun(args + ["--output", str(tmp_path / "ddp.json")], tmp_path)
    a, b = json.load(open(tmp_path / "single.json")), json.load(open(tmp_path / "ddp.json"))
    assert b["world_size"] == 2 and a["world_size"] == 1
    for key in ("top1", "top5", "num_videos", "num_failed", "dense_gflops_per_view"):
        assert a[key] == b[key], key
    for key in ("mean", "std", "min", "max"):
        assert a["gflops_per_view"][key] == pytest.approx(b["gflops_per_view"][key])
    pa = [json.loads(x) for x in open(a["predictions"])][1:]
    pb = [json.loads(x) for x in open(b["predictions"])][1:]
    assert [r["video_index"] for r in pb] == list(range(8))     # none lost, none twice
    for ra, rb in zip(pa, pb):
        assert ra["scores"] == pytest.approx(rb["scores"], rel=1e-5, abs=1e-6)


def test_ddp_training_runs_and_rank0_writes(engine_data, engine_ov, tmp_path):
    ov = engine_ov(engine_data, tmp_path / "run", **{"train.batch_size": 2, "train.global_batch_size": 8,
                                                     "train.epochs": 1})
    p = _torchrun(["train", *ov], tmp_path)
    ck = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    # 16 videos / 2 ranks = 8 per rank = 4 batches of 2, accumulated 2 at a time -> 2 steps
    assert ck["step"] == 2 and ck["epoch"] == 1 and len(ck["rng_per_rank"]) == 2
    assert p.stdout.count("done:") == 1
