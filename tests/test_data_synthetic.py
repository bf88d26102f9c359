"""Synthetic Kinetics-format generator and its command."""
import csv
import hashlib
import os
import subprocess
import sys

import numpy as np

from video_ats.cli import main as cli_main
from video_ats.data import decode_frames, probe_video, read_annotations
from video_ats.data.synthetic import MOTIONS, class_definitions, make_synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(classes=3, videos_per_class=2, size=(32, 32), seconds=0.5, fps=20, workers=1)


def tree_digest(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_generator_is_deterministic(tmp_path):
    a = tree_digest(make_synthetic(str(tmp_path / "a"), seed=7, **TINY)["root"])
    b = tree_digest(make_synthetic(str(tmp_path / "b"), seed=7, **dict(TINY, workers=2))["root"])
    c = tree_digest(make_synthetic(str(tmp_path / "c"), seed=8, **TINY)["root"])
    assert a == b  # same seed: byte-identical files, whatever the number of workers
    assert len([k for k in a if k.endswith(".mp4")]) == 6
    videos = [k for k in a if k.endswith(".mp4")]
    assert set(videos) != {k for k in c if k.endswith(".mp4")} or any(a[k] != c[k] for k in videos)


def test_layout_and_files(data_synthetic):
    root = data_synthetic["root"]
    names = open(data_synthetic["classes"]).read().splitlines()
    assert len(names) == 4 and names == sorted(names)
    with open(data_synthetic["train_csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["label", "youtube_id", "time_start", "time_end", "split"]
    assert all(r[4] == "train" for r in rows[1:]) and {r[0] for r in rows[1:]} == set(names)
    train, _ = read_annotations(data_synthetic["train_csv"])
    val, _ = read_annotations(data_synthetic["val_csv"])
    assert len(train) == 8 and len(val) == 4  # 3 per class, 1 of them in val
    assert all(os.path.dirname(r.path) == os.path.join(root, "val") for r in val)  # flat
    assert all(os.path.basename(os.path.dirname(r.path)).replace("_", " ") in names for r in train)
    info = probe_video(train[0].path)
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 45, 30.0)
    assert not set(r.video_id for r in train) & set(r.video_id for r in val)


def object_centre(frames):
    """Centroid (x, y) and area of the bright object in each frame (uint8 T, H, W, 3)."""
    f = frames.numpy().astype(np.float32)
    mask = f.max(axis=-1) > 190  # the object has a saturated channel; the texture stays below
    ys, xs = np.mgrid[0:f.shape[1], 0:f.shape[2]]
    area = mask.sum(axis=(1, 2))
    cx = (mask * xs).sum(axis=(1, 2)) / np.maximum(area, 1)
    cy = (mask * ys).sum(axis=(1, 2)) / np.maximum(area, 1)
    return cx, cy, area


def test_motion_is_the_class_signal(tmp_path):
    paths = make_synthetic(str(tmp_path / "m"), classes=8, videos_per_class=1, size=(64, 48),
                           seconds=1.0, fps=30, seed=3, val_fraction=0.0, workers=2)
    recs, names = read_annotations(paths["train_csv"])
    assert [m for _, m in class_definitions(8)] == list(MOTIONS)
    for r in recs:
        cx, cy, area = object_centre(decode_frames(r.path, [0, 29]))
        name = names[r.label]
        assert area.min() > 0, name
        if name.endswith("moving right"):
            assert cx[1] - cx[0] > 20
        elif name.endswith("moving left"):
            assert cx[0] - cx[1] > 20
        elif name.endswith("moving down"):
            assert cy[1] - cy[0] > 15
        elif name.endswith("moving up"):
            assert cy[0] - cy[1] > 15
        elif name.endswith("growing"):
            assert area[1] > 4 * area[0]
        elif name.endswith("shrinking"):
            assert area[0] > 4 * area[1]
        else:  # circling: sign of the cross product of (start - centre) and (mid - centre)
            mid = object_centre(decode_frames(r.path, [10]))
            v0 = np.array([cx[0] - 32, cy[0] - 24])
            v1 = np.array([mid[0][0] - 32, mid[1][0] - 24])
            cross = v0[0] * v1[1] - v0[1] * v1[0]  # > 0: clockwise on screen (y down)
            assert (cross > 0) == name.endswith(" clockwise"), name


def test_cli_runs_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["make-synthetic", "--out", str(out), "--classes", "2", "--videos-per-class", "2",
                     "--size", "32x32", "--seconds", "0.5", "--workers", "1"]) == 0
    assert (out / "kinetics_train.csv").exists() and (out / "val.txt").exists()
    for argv, words in [(["--size", "12x"], "--size must be WIDTHxHEIGHT"),
                        (["--size", "33x32"], "must be even"),
                        (["--classes", "0"], "--classes must be between 1 and 32"),
                        (["--seconds", "0"], "--seconds must be a finite number > 0"), (["--seconds", "nan"], "finite number"),
                        (["--videos-per-class", "0"], "videos per class must be >= 1")]:
        assert cli_main(["make-synthetic", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1 and err.startswith("video-ats make-synthetic: error:")


def test_tools_wrapper(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic.py"),
                        "--out", str(tmp_path / "w"), "--size", "12x"], capture_output=True, text=True)
    assert r.returncode == 2 and "--size must be WIDTHxHEIGHT" in r.stderr and "Traceback" not in r.stderr


def test_scene_target_sizes_are_the_rendered_targets(tmp_path):
    """The replayed target half-sizes are those of the videos written: with one target, no distractor and a
    flat background, the target's pixel count in frame 0 grows with the replayed half-size."""
    from video_ats.data.synthetic import scene_target_sizes

    kw = dict(scene="kinetics", evidence="colour", classes=2, videos_per_class=8, size=(96, 96), seconds=0.5,
              fps=8, val_fraction=0.25, test_fraction=0.25, object_scale=(0.05, 0.3), texture_contrast=0.0,
              max_targets=1, max_distractors=0, pan_speed=0.0)
    paths = make_synthetic(str(tmp_path / "d"), seed=3, workers=1, **kw)
    sizes = scene_target_sizes(paths["train_csv"], seed=3, **kw)
    rows = list(csv.DictReader(open(paths["train_csv"])))
    assert set(sizes) == {r["youtube_id"] for r in rows} and all(len(v) == 1 for v in sizes.values())
    half, area = [], []
    for rel in (line.split()[0] for line in open(paths["train_list"])):
        frame = decode_frames(os.path.join(paths["root"], rel), [0])[0].numpy().astype(int)
        yid = os.path.basename(rel)[:11]
        half.append(sizes[yid][0])
        area.append(int((frame[..., 0] > 180).sum()))          # warm targets on a background below 130
    rank = lambda v: np.argsort(np.argsort(v))                  # noqa: E731
    assert np.corrcoef(rank(half), rank(area))[0, 1] > 0.8
