"""Issue 11 §4-§5: class names mapped by name (test / validation), and what tripped a new user: train
--data-root, misspelled --annotations, seeded test without checkpoint, results.json in the run folder, the
failure warning, profile without --checkpoint, BrokenPipe, the resume message, the fewer-classes warning,
the worker cap, rounded JSON, readable decode errors, no empty run folder, benchmark --help, quickstart
rerun times, calibrate progress."""
import json
import os
import re
import subprocess
import sys

import pytest
from _models import tiny_timesformer

from video_ats.checkpoint import read_checkpoint, save_state
from video_ats.cli import build_parser, main
from video_ats.engine import load_config, train
from video_ats.engine.builders import read_split
from video_ats.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_frames": 4,
        "sampling_rate": 2}


def _csv_without(src, tmp_path, drop_class, extra_rows=(), name="part.csv"):
    lines = open(src).read().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if not ln.startswith(drop_class + ",")] + list(extra_rows)
    path = tmp_path / name
    path.write_text("\n".join(kept) + "\n")
    return str(path)


def _names(engine_data):
    return sorted({ln.split(",")[0] for ln in open(engine_data["val_csv"]).read().splitlines()[1:]})


def test_test_labels_follow_the_checkpoint_class_names(engine_data, engine_ov, tmp_path, capsys):
    names = _names(engine_data)
    cfg = load_config(None, engine_ov(engine_data, tmp_path / "run"))
    # the file lacks the first class: by position every label would shift by one; by name it does not
    part = _csv_without(engine_data["val_csv"], tmp_path, names[0])
    full, _ = read_split(engine_data["val_csv"], cfg, "test")
    by_path = {r.path: r.label for r in full}
    shifted, _ = read_split(part, cfg, "test")
    assert any(by_path[r.path] != r.label for r in shifted)          # the old, silent renumbering
    mapped, got = read_split(part, cfg, "test", class_names=names)
    assert got == names and all(by_path[r.path] == r.label for r in mapped)
    # end to end: `test` with a checkpoint that stores class_names
    m = tiny_timesformer(TINY, paths=False, eval=False, num_classes=4)
    ck = str(tmp_path / "ck.pt")
    save_state({"model": m.state_dict(), "class_names": names}, ck)
    out = tmp_path / "r.json"
    assert main(["test", "--checkpoint", ck, "--annotations", part, "--output", str(out),
                 *engine_ov(engine_data, tmp_path / "run")]) == 0
    capsys.readouterr()
    r = json.loads(out.read_text())
    assert r["class_names_from"] == "checkpoint"
    preds = [json.loads(ln) for ln in open(r["predictions"]).read().splitlines()[1:]]
    assert sorted(p["label"] for p in preds) == sorted(by_path[p["path"]] for p in preds)
    # a class the model does not know: one clear error
    bad = _csv_without(engine_data["val_csv"], tmp_path, "", ["juggling,abcdefghijk,0,1,val"], name="bad.csv")
    rc = main(["test", "--checkpoint", ck, "--annotations", bad, "--output", str(tmp_path / "b.json"),
               *engine_ov(engine_data, tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "unknown class 'juggling'" in err[-1] and "class names stored in" in err[-1]


def test_training_val_split_names_warnings_resume_message(engine_data, engine_ov, tmp_path, capsys):
    names = _names(engine_data)
    val = _csv_without(engine_data["val_csv"], tmp_path, names[1])
    ov = engine_ov(engine_data, tmp_path / "run", **{
        "data.val_annotations": val, "train.eval_every": 1, "train.epochs": 1, "model.num_classes": 6})
    out = train(load_config(None, ov))
    cap = capsys.readouterr()
    assert "training data has 4 classes but model.num_classes is 6" in cap.err
    assert out["val"]["num_videos"] == 6
    ck = read_checkpoint(out["checkpoint"])
    assert ck["class_names"] == names
    # rerun of a finished run: one line that says so (no 'epoch 2/1', not printed twice)
    train(load_config(None, ov))
    text = capsys.readouterr().out
    assert text.count("already finished") == 1 and "2/1" not in text and "resuming" not in text
    # validation with a class the training split lacks: one clear error
    extra = _csv_without(engine_data["val_csv"], tmp_path, "", ["juggling,abcdefghijk,0,1,val"], name="v2.csv")
    with pytest.raises(UserError, match="unknown class 'juggling'.*training classes"):
        train(load_config(None, engine_ov(engine_data, tmp_path / "run2", **{
            "data.val_annotations": extra, "train.eval_every": 1, "train.max_steps": 1})))
    # a setup error leaves no empty run / checkpoints folder behind
    assert not (tmp_path / "run2").exists()
    assert main(["train", *engine_ov(engine_data, tmp_path / "run3"), "model.num_classes=2"]) == 2
    assert not (tmp_path / "run3").exists()
    # ... nor the parent folders it made on the way (runs/ of a fresh checkout)
    assert main(["train", *engine_ov(engine_data, tmp_path / "new" / "run4"), "model.num_classes=2"]) == 2
    assert not (tmp_path / "new").exists()


def test_test_setup_errors_come_first_and_leave_no_folder(engine_data, engine_ov, tmp_path, capsys, monkeypatch):
    """A missing checkpoint is the first thing said (it used to come after the annotations), and a test that
    fails in its setup leaves no empty output folder (``runs/run/`` was left behind)."""
    monkeypatch.chdir(tmp_path)
    assert main(["test", "--checkpoint", "runs/nothere/last.pt"]) == 2
    assert "checkpoint 'runs/nothere/last.pt' does not exist" in capsys.readouterr().err
    assert main(["test", *engine_ov(engine_data, tmp_path / "runs" / "t"), "--annotations", "missing.csv"]) == 2
    assert "missing.csv: not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    # a finished evaluation run again says that it takes the stored predictions over
    assert main(["test", *engine_ov(engine_data, tmp_path / "t2")]) == 0
    capsys.readouterr()
    assert main(["test", *engine_ov(engine_data, tmp_path / "t2")]) == 0
    assert re.search(r"resuming: (\d+) of \1 videos already evaluated", capsys.readouterr().out)


def test_test_seeded_results_in_run_folder_and_failure_warning(engine_data, engine_ov, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tops = []
    for run in ("a", "b"):                                   # no --checkpoint, no --output
        assert main(["test", *engine_ov(engine_data, tmp_path / run)]) == 0
        tops.append(json.loads((tmp_path / run / "results.json").read_text())["top1"])
    assert tops[0] == tops[1] and not (tmp_path / "results.json").exists()
    capsys.readouterr()
    # 1 failed video of 9 (> 1 %): a warning line; every video failing: exit status 1
    name = _names(engine_data)[0]
    bad = _csv_without(engine_data["val_csv"], tmp_path, "", [f"{name},notthere123,0,1,val"], name="nine.csv")
    assert main(["test", "--annotations", bad, *engine_ov(engine_data, tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 9 videos (11.1 %) could not be decoded" in err and "check-data" in err
    none = tmp_path / "none.csv"
    none.write_text("label,youtube_id,time_start,time_end,split\nx,gone1234567,0,1,val\n")
    assert main(["test", "--annotations", str(none), *engine_ov(engine_data, tmp_path / "d")]) == 1
    assert "none of the 1 videos could be evaluated" in capsys.readouterr().err
    # floats in results.json are rounded
    r = json.loads((tmp_path / "c" / "results.json").read_text())
    for v in [r["top1"], r["top5"], r["dense_gflops_per_view"], *r["gflops_per_view"].values()]:
        assert v == (round(v, 4) if abs(v) >= 1 else float(f"{v:.4g}")), v


def test_new_user_cli_items(engine_data, engine_ov, tmp_path, capsys, monkeypatch):
    # train has --data-root (the data-root error message names it)
    args = build_parser().parse_args(["train", "--data-root", "/x"])
    assert args.data_root == "/x"
    assert main(["train", *engine_ov(engine_data, tmp_path / "r"), "--data-root", str(tmp_path / "nodir")]) == 2
    assert "set data.data_root or --data-root" in capsys.readouterr().err
    # a misspelled --annotations is reported as such, even when the data root is wrong too
    assert main(["test", "--annotations", str(tmp_path / "vall.csv"), "--data-root", str(tmp_path / "nodir"),
                 "--output", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "test annotation file" in err and "vall.csv: not found" in err and "data root" not in err
    # profile without --checkpoint: a relative model.pretrained that does not exist is an error, not a silent load
    cfg = tmp_path / "p.yaml"
    cfg.write_text("model: {name: timesformer, num_classes: 4, ats: {blocks: [1], num_tokens: [0.5]}, "
                   "pretrained: runs/nothing/checkpoints/last.pt, kwargs: " + json.dumps(TINY) + "}\ndevice: cpu\n")
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "--config", str(cfg), "--output", str(tmp_path / "p.json"), engine_data["val_csv"]]) == 2
    err = capsys.readouterr().err
    assert "model.pretrained 'runs/nothing/checkpoints/last.pt' does not exist" in err and "--checkpoint" in err
    # benchmark --help: every option described, defaults shown
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = capsys.readouterr().out
    for opt in ("--repeats", "--warmup", "--device", "--batch", "--model"):
        assert opt in text
    assert text.count("default") >= 6


def test_help_config_into_a_closed_pipe_is_quiet():
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run(f"{sys.executable} -m video_ats train --help-config | head -1", shell=True,
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.stdout.count("\n") == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_small_helpers(monkeypatch, tmp_path):
    from video_ats.data import DecodeError, decode_frames
    from video_ats.engine import builders
    from video_ats.numfmt import round_floats

    raw = {"a": 52.49999761581421, "b": [0.16077777, 1.2e-07, 0.005234567], "c": 3, "d": None, "e": True}
    assert round_floats(raw) == {"a": 52.5, "b": [0.1608, 1.2e-07, 0.005235], "c": 3, "d": None, "e": True}
    monkeypatch.setattr(builders, "available_cpus", lambda: 2)
    assert builders.cap_workers(8) == 2 and builders.cap_workers(1) == 1
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(os.urandom(3000))
    with pytest.raises(DecodeError) as exc:
        decode_frames(str(bad), [0])
    assert "Errno" not in str(exc.value) and "invalid data" in str(exc.value)
    # (a quickstart rerun reporting the first run's training times: tests/test_quickstart.py)
