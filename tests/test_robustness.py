"""Robustness: every fault or bad input ends in one UserError line — never a traceback, a silently wrong
result or lost work (issue 12). Fuzzing of config values and checkpoint bytes (hypothesis), run-folder
locks and resume fingerprints, a full / read-only disk mid-run (tmpfs, when running as root), stale
temp files, DataLoader worker errors, unchecked values, early output checks; ``-m slow``: a kill -9 loop
for train and test."""
import errno
import importlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from _models import tiny_timesformer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from video_ats.ats import ATSConfig
from video_ats.checkpoint import load_checkpoint, read_checkpoint, save_state
from video_ats.cli import main
from video_ats.engine.builders import build_model
from video_ats.engine.config import load_config, schema_keys
from video_ats.errors import UserError, unwrap_worker_error
from video_ats.fileio import FolderLock, atomic_write_text, pid_alive, remove_stale_temp_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_frames": 4,
        "sampling_rate": 2, "num_classes": 4}


def _one_line_error(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert err and needle in err[-1], err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not pid_alive(p.pid)
    return p.pid


def _env():
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ------------------------------------------------------------------------------------------------
# config values (items 6, 7)
# ------------------------------------------------------------------------------------------------
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["0x3", "1x0", "3x", "-1", "1e-4", ".nan", "yes",
                                                           "{a: 1}", "[1, 2]", "'0x3'", "1x3"]))
_value = st.one_of(_scalar, st.lists(_scalar, max_size=4), st.dictionaries(st.text(max_size=6), _scalar, max_size=3))


def _yaml_text(v) -> str:
    if isinstance(v, str):
        return v
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(schema_keys() + ["model.kwargs.embed_dim", "model.ats.blocks",
                                                            "nope", "train.nope", "train"]), _value),
                min_size=1, max_size=3))
def test_fuzzed_config_values_give_a_config_or_one_user_error(pairs):
    overrides = [f"{k}={_yaml_text(v)}" for k, v in pairs]
    try:
        cfg = load_config(None, overrides)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert cfg["seed"] >= 0 and cfg["data"]["num_workers"] >= 0 and cfg["train"]["epochs"] >= 1


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["blocks", "num_tokens", "score_mode", "sort_scores", "min_tokens",
                                        "selection", "seed", "other"]), _value, max_size=5))
def test_fuzzed_ats_options_give_a_config_or_one_user_error(spec):
    try:
        cfg = ATSConfig.from_any(spec, depth=4)
    except UserError:
        return
    assert cfg is not None and cfg.blocks and isinstance(cfg.sort_scores, bool)


@pytest.mark.parametrize("override, needle", [
    ("seed=-1", "'seed' must be >= 0"),
    ("data.num_workers=-1", "'data.num_workers' must be >= 0"),
    ("train.max_steps=0", "'train.max_steps' must be >= 1"),
    ("train.max_steps=-1", "'train.max_steps' must be >= 1"),
    ("train.ckpt_every_steps=-1", "'train.ckpt_every_steps' must be >= 0"),
    ("train.eval_every=-1", "'train.eval_every' must be >= 0"),
    ("data.max_retries=-1", "'data.max_retries' must be >= 0"),
    ("test.views=0x3", "test.views must be CLIPSxCROPS"),
    ("test.views=3x0", "test.views must be CLIPSxCROPS"),
    ("train.lr=.nan", "finite"),
])
def test_unchecked_values_are_refused_in_one_line(override, needle):
    with pytest.raises(UserError, match="^.*" + needle.replace("(", r"\(")):
        load_config(None, [override])


def test_views_are_read_as_text(capsys, tmp_path):
    assert load_config(None, ["test.views=2x3"])["test"]["views"] == "2x3"
    assert load_config(None, ["name=0x10"])["name"] == "0x10"          # not the number 16
    _one_line_error(capsys, ["test", "--views", "0x3", "--output", str(tmp_path / "r.json")], "test.views must be")


def test_non_string_base_and_binary_files(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: 5\nseed: 1\n")
    with pytest.raises(UserError, match="_base_ must be a file name"):
        load_config(str(tmp_path / "a.yaml"))
    (tmp_path / "b.yaml").write_bytes(b"seed: 1\n\xff\xfe\x00\x01")
    with pytest.raises(UserError, match="not a text file"):
        load_config(str(tmp_path / "b.yaml"))
    (tmp_path / "c.yaml").write_text("test:\n  views: 0x3\n")
    with pytest.raises(UserError, match="quote it"):
        load_config(str(tmp_path / "c.yaml"))


@pytest.mark.parametrize("kwargs, needle", [
    ({"embed_dim": -1}, "model.kwargs.embed_dim must be an integer >= 1"),
    ({"embed_dim": 64, "num_heads": 3}, "not divisible by model.kwargs.num_heads 3"),
    ({"depth": 0}, "model.kwargs.depth must be an integer >= 1"),
    ({"patch_size": 0}, "model.kwargs.patch_size"),
    ({"mlp_ratio": -1}, "model.kwargs.mlp_ratio must be a number > 0"),
    ({"img_size": 30}, "cannot build model 'timesformer' with model.kwargs"),      # ValueError inside
    ({"embed_dim": "a"}, "model.kwargs.embed_dim must be an integer"),
    ({"mean": [0.5, 0.5]}, "model.kwargs.mean must be three numbers"),       # was a broadcast error mid-training
    ({"mean": "abc"}, "model.kwargs.mean must be three numbers"),
    ({"std": [0, 0, 0]}, "model.kwargs.std must be three numbers > 0"),
])
def test_bad_model_sizes_are_one_line(kwargs, needle):
    cfg = load_config(None, ["model.name=timesformer", "model.num_classes=4"])
    cfg["model"]["kwargs"] = {**TINY, **kwargs}
    cfg["model"]["kwargs"].pop("num_classes")
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        build_model(cfg)


@pytest.mark.parametrize("spec, needle", [
    ({"num_tokens": [0.5]}, "has no blocks"),
    ({}, "has no blocks"),
    ({"blocks": [], "num_tokens": [0.5]}, "has no blocks"),
    ({"blocks": [1], "num_tokens": [0.5], "sort_scores": "maybe"}, "sort_scores must be true or false"),
])
def test_ats_options_without_blocks_or_with_fake_bools_are_errors(spec, needle):
    with pytest.raises(UserError, match=needle):
        ATSConfig.from_any(spec, depth=4)
    assert ATSConfig.from_any(None, depth=4) is None


# ------------------------------------------------------------------------------------------------
# checkpoints (item 3)
# ------------------------------------------------------------------------------------------------
CKPT_SIZES = {**TINY, "depth": 1, "embed_dim": 16}        # official init, train mode (as create_model gives)


@pytest.fixture(scope="module")
def ckpt_bytes(tmp_path_factory):
    m = tiny_timesformer(CKPT_SIZES, seed=0, paths=False, eval=False)
    d = tmp_path_factory.mktemp("ck")
    out = {}
    for name, kw in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})):
        p = d / f"{name}.pt"
        torch.save({"model": m.state_dict()}, p, **kw)
        out[name] = p.read_bytes()
    return out


@pytest.mark.parametrize("case, needle", [
    ("zip_cut", "damaged or truncated PyTorch zip checkpoint"),
    ("legacy_cut", "damaged or truncated legacy (non-zip) PyTorch checkpoint"),
    ("text", "a text file, not a PyTorch checkpoint"),
    ("random", "not a PyTorch checkpoint"),
    ("empty", "is an empty file"),
    ("folder", "is a folder"),
    ("missing", "does not exist"),
])
def test_malformed_checkpoints_are_one_complete_line(ckpt_bytes, tmp_path, case, needle):
    p = tmp_path / "ck.pt"
    data = {"zip_cut": ckpt_bytes["zip"][: len(ckpt_bytes["zip"]) // 2],
            "legacy_cut": ckpt_bytes["legacy"][: len(ckpt_bytes["legacy"]) // 2],
            "text": b"hello, this is not a checkpoint\n" * 10, "random": bytes(random.Random(0).randbytes(999)),
            "empty": b""}.get(case)
    if case == "folder":
        p.mkdir()
    elif data is not None:
        p.write_bytes(data)
    with pytest.raises(UserError) as info:
        load_checkpoint(tiny_timesformer(CKPT_SIZES, seed=None, paths=False, eval=False), str(p))
    msg = str(info.value)
    assert needle in msg and "\n" not in msg and msg.rstrip().endswith(("again", "checkpoint", "file", "exist",
                                                                         "contents)"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_checkpoint_bytes_load_or_give_one_user_error(ckpt_bytes, tmp_path_factory, data):
    kind = data.draw(st.sampled_from(["zip", "legacy", "random", "flip"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=2048))
    else:
        src = ckpt_bytes["zip" if kind == "flip" else kind]
        cut = data.draw(st.integers(0, len(src)))
        blob = src[:cut]
        if kind == "flip" and blob:
            i = data.draw(st.integers(0, len(blob) - 1))
            blob = blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1:]
    p = tmp_path_factory.mktemp("fuzz") / "ck.pt"
    p.write_bytes(blob)
    try:
        load_checkpoint(tiny_timesformer(CKPT_SIZES, seed=None, paths=False, eval=False), str(p))
    except UserError as exc:
        assert "\n" not in str(exc)


# ------------------------------------------------------------------------------------------------
# locks, resume fingerprint, stale temp files (items 1, 4)
# ------------------------------------------------------------------------------------------------
def test_folder_lock_refuses_a_second_holder_and_takes_over_a_stale_one(tmp_path):
    path = str(tmp_path / "train.lock")
    with FolderLock(path, "run folder X") as first:
        assert first.note is None
        with pytest.raises(UserError, match=f"in use by another video-ats process \\(pid {os.getpid()} on host"):
            FolderLock(path, "run folder X").acquire()
    assert not os.path.exists(path)
    dead = _dead_pid()
    with open(path, "w") as f:
        json.dump({"pid": dead, "host": __import__("socket").gethostname()}, f)
    with FolderLock(path, "run folder X") as lock:
        assert f"stale lock of pid {dead}" in lock.note
        assert json.load(open(path))["pid"] == os.getpid()
    with open(path, "w") as f:
        json.dump({"pid": 1234, "host": "elsewhere"}, f)
    with pytest.raises(UserError, match="locked by pid 1234 on host elsewhere"):
        FolderLock(path, "run folder X").acquire()


def test_a_second_train_on_a_locked_folder_is_refused(engine_data, engine_ov, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    # another process holding the lock as FolderLock does (flock + pid/host), without importing torch
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, socket, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | "
         "os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'pid': os.getpid(), 'host': "
         "socket.gethostname()}).encode()); print('locked', flush=True); time.sleep(120)",
         str(run / "train.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = _one_line_error(capsys, ["train", *engine_ov(engine_data, run)], f"pid {holder.pid}")
        assert "is in use by another video-ats process" in line
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "checkpoints" / "last.pt").exists()


def test_resume_checks_the_run_fingerprint_and_cleans_stale_temp_files(engine_data, engine_ov, tmp_path, capsys):
    run = tmp_path / "run"
    base = engine_ov(engine_data, run, **{"train.max_steps": 1})
    assert main(["train", *base]) == 0
    ckpts = run / "checkpoints"
    dead = _dead_pid()
    (ckpts / f"last.pt.tmp.{dead}").write_bytes(b"x" * 1000)
    (ckpts / f"last.pt.tmp.{os.getpid()}").write_bytes(b"alive")          # a live process's: kept
    capsys.readouterr()
    line = _one_line_error(capsys, ["train", *base, "seed=1", "train.lr=0.01"], "belongs to another run")
    assert "seed (checkpoint 0, now 1)" in line and "train.lr" in line
    assert yaml.safe_load(open(run / "config.yaml"))["seed"] == 0           # not rewritten
    assert not (ckpts / f"last.pt.tmp.{dead}").exists() and (ckpts / f"last.pt.tmp.{os.getpid()}").exists()
    os.remove(ckpts / f"last.pt.tmp.{os.getpid()}")
    # what may change on resume: epochs, max_steps, workers, logging
    assert main(["train", *engine_ov(engine_data, run, **{"train.max_steps": 2, "train.progress": True,
                                                           "train.log_every": 3})]) == 0
    assert read_checkpoint(ckpts / "last.pt")["step"] == 2
    assert not (run / "train.lock").exists()


def test_a_second_test_on_the_same_output_is_refused(tmp_path):
    out = str(tmp_path / "results.json")
    with FolderLock(out + ".lock", "x"):
        cfg = load_config(None, ["model.name=timesformer", "model.num_classes=4", "device=cpu",
                                 "test.annotations=val.csv"])
        from video_ats.engine.distributed import DistInfo
        from video_ats.engine.test import run_test
        with pytest.raises(UserError, match=f"test output {out} is in use .*pid {os.getpid()}"):
            run_test(cfg, None, out, DistInfo())


def test_remove_stale_temp_files_only_touches_dead_pids(tmp_path):
    dead = _dead_pid()
    for name in (f"a.pt.tmp.{dead}", f"a.pt.tmp.{os.getpid()}", "a.pt", "notes.tmp.txt"):
        (tmp_path / name).write_text("x")
    assert remove_stale_temp_files(str(tmp_path)) == [str(tmp_path / f"a.pt.tmp.{dead}")]
    assert sorted(os.listdir(tmp_path)) == sorted(["a.pt", f"a.pt.tmp.{os.getpid()}", "notes.tmp.txt"])


# ------------------------------------------------------------------------------------------------
# full disk / read-only folder mid-run (item 2)
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs (root only; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder):
    """Fill the file system of ``folder`` to the last byte."""
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 16, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_atomic_write_on_a_full_disk_keeps_the_old_file(small_fs):
    p = small_fs / "last.pt"
    save_state({"a": torch.zeros(10)}, p)
    _fill(small_fs)
    with pytest.raises(UserError, match=f"cannot write checkpoint {p}: no space left on device; the previous"):
        save_state({"a": torch.randn(100000)}, p)
    assert torch.equal(read_checkpoint(p)["a"], torch.zeros(10))
    assert sorted(os.listdir(small_fs)) == ["filler", "last.pt"]
    with pytest.raises(UserError, match="no space left on device"):
        atomic_write_text(small_fs / "r.json", "x" * 100000, "results")


def test_train_with_a_disk_that_fills_mid_run(engine_data, engine_ov, small_fs, monkeypatch, capsys):
    import importlib
    T = importlib.import_module("video_ats.engine.train")
    real, calls = T.save_state, {"n": 0}

    def fill_before_second(obj, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            _fill(small_fs)
        return real(obj, path, *a, **k)

    monkeypatch.setattr(T, "save_state", fill_before_second)
    run = small_fs / "run"
    line = _one_line_error(capsys, ["train", *engine_ov(engine_data, run, **{"train.max_steps": 3,
                                                                             "train.ckpt_every_steps": 1})],
                           "no space left on device")
    assert str(run / "checkpoints" / "last.pt") in line
    assert read_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    assert not [f for f in os.listdir(run / "checkpoints") if ".tmp." in f]


def test_test_with_a_disk_that_fills_or_turns_read_only_mid_run(engine_data, engine_ov, small_fs, monkeypatch,
                                                               capsys, tmp_path):
    E = importlib.import_module("video_ats.engine.evaluate")
    real, calls = E.PredictionStore.write, {"n": 0}
    mode = {"how": "full"}

    def break_before_second(self, records):
        calls["n"] += 1
        # full: the second write (the first batch is kept); read-only: the rerun's first write (how many
        # batches the full disk still took depends on tmpfs's page slack, so the rerun may have only one left)
        if calls["n"] == (2 if mode["how"] == "full" else 1):
            if mode["how"] == "full":
                _fill(small_fs)
            elif subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True).returncode:
                # the kernel refuses while the run holds files open for writing (busy): raise what a write
                # into a folder turned read-only raises
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(small_fs / "results.json.partial"))
        return real(self, records)

    monkeypatch.setattr(E.PredictionStore, "write", break_before_second)
    out = small_fs / "results.json"
    argv = ["test", "--annotations", engine_data["val_csv"], "--data-root", engine_data["root"], "--views", "1x1",
            "--output", str(out), *engine_ov(engine_data, tmp_path / "x", **{"test.batch_size": 2})]
    line = _one_line_error(capsys, argv, "no space left on device")
    assert "cannot write predictions" in line and "predictions so far are kept" in line
    partial = (small_fs / "results.json.partial" / "rank0.jsonl").read_text().splitlines()
    assert len(partial) >= 1 + 2                    # header + at least the first batch's 2 videos, all whole
    assert all(json.loads(ln) for ln in partial)     # (a page of the file may still have had room)
    os.remove(small_fs / "filler")
    # start the read-only case afresh: the full-disk run may already have streamed every batch (failing only
    # when merging them), and a rerun that resumes would then write nothing before the folder turns read-only
    shutil.rmtree(small_fs / "results.json.partial", ignore_errors=True)
    calls["n"] = 0
    mode["how"] = "ro"
    line = _one_line_error(capsys, argv, "read-only file system")
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], capture_output=True)
    monkeypatch.setattr(E.PredictionStore, "write", real)
    assert main(argv) == 0
    assert json.load(open(out))["num_videos"] + json.load(open(out))["num_failed"] == 8


def test_read_only_output_folder_is_one_line(engine_data, engine_ov, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; covered by the tmpfs remount case")
    ro.chmod(0o555)
    try:
        _one_line_error(capsys, ["train", *engine_ov(engine_data, ro / "run")], "permission denied")
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------------------------------------
# DataLoader worker errors, bad data warnings, output checks (items 5, 8, 9)
# ------------------------------------------------------------------------------------------------
def test_worker_error_wrapper_is_unwrapped():
    wrapped = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1, in f\n    raise UserError('boom')\n"
                        "video_ats.errors.UserError: 11 videos in a row could not be decoded (last: a.mp4)\n")
    assert str(unwrap_worker_error(wrapped)) == "11 videos in a row could not be decoded (last: a.mp4)"
    assert unwrap_worker_error(RuntimeError("Caught KeyError in DataLoader worker process 0.\nOriginal Traceback"
                                            "\nKeyError: 1")) is None
    assert unwrap_worker_error(UserError("plain")) is None


def _broken_list(engine_data, tmp_path, n_broken):
    good = [ln for ln in open(engine_data["train_list"]).read().splitlines() if ln.strip()]
    root = os.path.dirname(engine_data["train_list"])
    lines = [f"{os.path.join(root, ln.rsplit(None, 1)[0])} {ln.rsplit(None, 1)[1]}" for ln in good]
    for i in range(n_broken):
        bad = tmp_path / f"broken{i}.mp4"
        bad.write_text("not a video")
        lines[i] = f"{bad} 0"
    p = tmp_path / "train.txt"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


@pytest.mark.parametrize("workers", [0, 1])
def test_too_many_broken_videos_is_the_same_line_with_workers(engine_data, engine_ov, tmp_path, capsys, workers):
    lst = _broken_list(engine_data, tmp_path, 16)
    ov = engine_ov(engine_data, tmp_path / "run", **{"data.train_annotations": lst, "data.data_root": "null",
                                                      "data.num_workers": workers, "data.max_retries": 0})
    line = _one_line_error(capsys, ["train", *ov], "videos in a row could not be decoded")
    assert line.startswith("video-ats train: error: 1 videos in a row")


def test_a_broken_training_video_is_warned_once_per_run(engine_data, engine_ov, tmp_path):
    lst = _broken_list(engine_data, tmp_path, 1)
    ov = engine_ov(engine_data, tmp_path / "run", **{"data.train_annotations": lst, "data.data_root": "null",
                                                      "data.num_workers": 1, "train.epochs": 3})
    log = tmp_path / "warnings.log"
    handler = logging.FileHandler(log)              # inherited by the forked DataLoader workers
    data_logger = logging.getLogger("video_ats.data")
    data_logger.addHandler(handler)
    try:
        assert main(["train", *ov]) == 0
    finally:
        data_logger.removeHandler(handler)
        handler.close()
    text = log.read_text()
    assert text.count("broken0.mp4: ") == 1, text
    assert [ln.split("\t")[0] for ln in open(tmp_path / "run" / "bad_videos.txt")] == [str(tmp_path / "broken0.mp4")]


def test_duplicate_annotation_rows_are_warned_with_the_count(engine_data, tmp_path, caplog):
    from video_ats.data import read_annotations

    rows = open(engine_data["val_csv"]).read().splitlines()
    p = tmp_path / "dup.csv"
    p.write_text("\n".join(rows + rows[1:3]) + "\n")
    with caplog.at_level(logging.WARNING, logger="video_ats.data"):
        records, _ = read_annotations(str(p), data_root=engine_data["root"])
    assert len(records) == len(rows) - 1 + 2
    assert any("2 duplicate rows" in r.getMessage() for r in caplog.records)


def test_binary_annotation_file_is_one_line(tmp_path):
    from video_ats.data import read_annotations

    p = tmp_path / "ann.csv"
    p.write_bytes(b"label,youtube_id,time_start,time_end,split\n\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(UserError, match="a binary file, not an annotation file"):
        read_annotations(str(p))
    p.write_bytes(b"a.mp4 1\n\xff\xfe\xfa b.mp4 2\n" + b"c.mp4 0\n" * 10)
    with pytest.raises(UserError, match="not a UTF-8 text file"):
        read_annotations(str(p))


def test_outputs_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    E = importlib.import_module("video_ats.engine.evaluate")

    monkeypatch.setattr(E, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --output"))
    (tmp_path / "res").mkdir()
    _one_line_error(capsys, ["test", "--output", str(tmp_path / "res"), "model.name=timesformer"], "is a folder")
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, ["make-synthetic", "--out", str(tmp_path / "file")], "exists and is not a folder")
    # a file on the way to the folder: one line, not makedirs' NotADirectoryError traceback
    _one_line_error(capsys, ["make-synthetic", "--out", str(tmp_path / "file" / "sub")],
                    "cannot write there")


def test_analysis_outputs_and_counts_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    # a folder given as an output file, a file as an output folder, --batch-size 0, a negative
    # --max-videos: one line before any model is built (they were tracebacks, an error after the whole
    # run, or a silent [:max_videos] slice of all videos but the last)
    common = importlib.import_module("video_ats.analysis.common")
    monkeypatch.setattr(common, "build_eval_model", lambda *a, **k: pytest.fail("built a model before the checks"))
    cfg = tmp_path / "ats.yaml"
    kwargs = {k: v for k, v in TINY.items() if k != "num_classes"}
    cfg.write_text(yaml.safe_dump({"model": {"name": "timesformer", "num_classes": 4, "kwargs": kwargs,
                                             "ats": {"blocks": [1], "num_tokens": [0.5]}}}))
    folder, file = tmp_path / "folder", tmp_path / "file"
    folder.mkdir()
    file.write_text("x")
    video, ann = str(tmp_path / "v.mp4"), str(tmp_path / "a.txt")
    prof = ["profile", "--config", str(cfg), video]
    _one_line_error(capsys, prof + ["--output", str(folder)], "--output " + str(folder) + " is a folder")
    _one_line_error(capsys, prof + ["--plots", str(file)], "--plots folder")
    _one_line_error(capsys, prof + ["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0")
    _one_line_error(capsys, prof + ["--max-videos", "-1"], "--max-videos must be an integer >= 1, got -1")
    cal = ["calibrate", "--config", str(cfg), "--annotations", ann, "--target-gflops", "0.001"]
    _one_line_error(capsys, cal + ["--output", str(folder)], "is a folder; give a file name")
    _one_line_error(capsys, cal + ["--output", str(tmp_path / "c.yaml"), "--tolerance", "-1"], "--tolerance must be")
    _one_line_error(capsys, ["calibrate", "--config", str(cfg), "--annotations", ann, "--target-gflops", "0",
                             "--output", str(tmp_path / "c.yaml")], "--target-gflops must be positive")
    _one_line_error(capsys, ["sweep", "--config", str(cfg), "--annotations", ann, "--output", str(tmp_path / "sw"),
                             "--max-videos", "0"], "--max-videos must be an integer >= 1")
    _one_line_error(capsys, ["predict", "--config", str(cfg), video, "--json", str(folder)], "is a folder")
    _one_line_error(capsys, ["predict", "--config", str(cfg), video, "--batch-size", "0"], "--batch-size must be")
    _one_line_error(capsys, ["export-hf", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(file)],
                    "--out folder")
    _one_line_error(capsys, ["check-data", "--annotations", ann, "--output", str(file)], "is not a folder")
    bench = ["benchmark", "--config", str(cfg), "--batch", "1"]
    _one_line_error(capsys, bench + ["--json", str(folder)], "is a folder")
    _one_line_error(capsys, bench + ["--repeats", "0"], "--repeats must be ≥ 1, got 0")
    _one_line_error(capsys, bench + ["--warmup", "-1"], "--warmup must be ≥ 0, got -1")


def test_unlabelled_rows_are_refused_before_training_or_evaluating(engine_data, engine_ov, tmp_path, capsys,
                                                                   monkeypatch):
    # label -1 (a 'path label' list, a CSV without labels): training crashed in the loss, test only said
    # so after evaluating every video
    E = importlib.import_module("video_ats.engine.evaluate")
    monkeypatch.setattr(E, "evaluate", lambda *a, **k: pytest.fail("evaluated unlabelled videos"))
    rows = open(engine_data["val_list"]).read().splitlines()
    lst = tmp_path / "unlabelled.txt"
    lst.write_text("\n".join(rows[:-1] + [rows[-1].rsplit(" ", 1)[0] + " -1"]) + "\n")
    ov = engine_ov(engine_data, tmp_path / "run", **{"data.train_annotations": str(lst)})
    line = _one_line_error(capsys, ["train", *ov], "1 of ")
    assert "have no label (label -1" in line and "training needs labelled videos" in line
    ov = engine_ov(engine_data, tmp_path / "run2")
    _one_line_error(capsys, ["test", "--annotations", str(lst), "--output", str(tmp_path / "r.json"), *ov],
                    "test needs labelled videos")


# ------------------------------------------------------------------------------------------------
# kill -9 loops (slow)
# ------------------------------------------------------------------------------------------------
def _kill_loop(argv, cwd, trials, rng, lo, hi):
    for _ in range(trials):
        p = subprocess.Popen([sys.executable, "-m", "video_ats", *argv], cwd=cwd, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(lo, hi))
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        assert b"Traceback" not in err, err.decode()
    r = subprocess.run([sys.executable, "-m", "video_ats", *argv], cwd=cwd, env=_env(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r


@pytest.mark.slow
def test_kill_9_loop_train_and_test(engine_data, engine_ov, tmp_path):
    rng = random.Random(0)
    extra = {"train.epochs": 2, "train.batch_size": 2, "train.ckpt_every_steps": 1}
    ref = tmp_path / "ref"
    assert main(["train", *engine_ov(engine_data, ref, **extra)]) == 0
    run = tmp_path / "run"
    _kill_loop(["train", *engine_ov(engine_data, run, **extra)], tmp_path, 4, rng, 3.0, 7.0)
    a, b = read_checkpoint(ref / "checkpoints" / "last.pt"), read_checkpoint(run / "checkpoints" / "last.pt")
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert not [f for f in os.listdir(run / "checkpoints") if ".tmp." in f]
    assert not (run / "train.lock").exists()

    ck = str(ref / "checkpoints" / "last.pt")
    targs = ["test", "--checkpoint", ck, "--annotations", engine_data["val_csv"], "--data-root", engine_data["root"],
             "--views", "2x3", *engine_ov(engine_data, tmp_path / "x", **{"test.batch_size": 1})]
    assert main([*targs, "--output", str(tmp_path / "ref.json")]) == 0
    _kill_loop([*targs, "--output", str(tmp_path / "res.json")], tmp_path, 4, rng, 2.5, 5.0)
    r1, r2 = json.load(open(tmp_path / "ref.json")), json.load(open(tmp_path / "res.json"))
    for key in ("top1", "top5", "num_videos", "num_failed", "gflops_per_view"):
        assert r1[key] == r2[key], key
    assert not (tmp_path / "res.json.lock").exists()


def test_bench_accuracy_options_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    # a negative seed used to surface as "config key 'seed'" after the videos were generated
    B = importlib.import_module("video_ats.analysis.bench_accuracy")
    monkeypatch.setattr(B.Bench, "data", lambda self: pytest.fail("generated data before checking the options"))
    out = ["bench-accuracy", "--out", str(tmp_path / "bench")]
    for argv, needle in [(["--seeds", "-1"], "--seeds and --data-seed must be >= 0"),
                         (["--data-seed", "-2"], "--seeds and --data-seed must be >= 0"),
                         (["--seeds", "0", "0"], "--seeds must be distinct"),
                         (["--ats-scales", "0"], "--ats-scales must be positive"),
                         (["--tome-r", "0.7"], "--tome-r values are fractions")]:
        _one_line_error(capsys, out + argv, needle)
    assert not (tmp_path / "bench").exists()


def test_late_faults_found_by_probes_are_one_line_and_early(tmp_path, capsys):
    import video_ats
    from video_ats.cli import main as cli_main
    from video_ats.engine import build_model, load_config
    from video_ats.engine.builders import model_data_settings
    from video_ats.errors import UserError

    # a crop the patch grid cannot tile: refused with the sizes that work, not at the first forward
    cfg = load_config(None, ["model.name=timesformer", "model.kwargs.img_size=32", "model.kwargs.patch_size=8",
                             "model.kwargs.depth=1", "model.kwargs.embed_dim=32", "model.kwargs.num_heads=2",
                             "model.num_classes=3", "data.crop_size=30"])
    with pytest.raises(UserError, match="not a multiple of the model's patch size 8; use e.g. 24 or 32"):
        model_data_settings(cfg, build_model(cfg))
    # export-hf: a folder where a file goes is refused before anything is written
    model = video_ats.create_model("timesformer", img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                   num_frames=2, num_classes=3)
    out = tmp_path / "hf"
    (out / "config.json").mkdir(parents=True)
    with pytest.raises(UserError, match="config.json is a folder"):
        video_ats.export_hf(model, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]     # no weights without a config
    # a folder given as a config; key=value overrides split by an option
    assert cli_main(["train", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a folder, not a YAML file" in err[0], err
    with pytest.raises(SystemExit):
        cli_main(["test", "data.num_workers=0", "--views", "1x1", "model.num_classes=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "put all key=value overrides together" in err[0], err
