"""CLI: `video-ats test/train` bad inputs give one-line errors (exit 2); results.json schema."""
import json

from _models import tiny_timesformer

from video_ats.checkpoint import save_state
from video_ats.cli import main

TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_frames": 4,
        "sampling_rate": 2}


def _one_line_error(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert err and needle in err[-1], err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def _ckpt(tmp_path, name="ck.pt", **kw):
    m = tiny_timesformer({**TINY, "num_classes": 4}, paths=False, eval=False, **kw)
    path = str(tmp_path / name)
    save_state({"model": m.state_dict(), "arch": "timesformer"}, path)
    return path


def test_test_command_writes_results_schema(engine_data, engine_ov, tmp_path, capsys):
    ov = engine_ov(engine_data, tmp_path / "run")
    out = tmp_path / "res" / "results.json"
    rc = main(["test", "--checkpoint", _ckpt(tmp_path), "--annotations", engine_data["val_csv"], "--data-root",
               engine_data["root"], "--views", "1x3", "--output", str(out), *ov,
               "model.ats={blocks: [1], num_tokens: [0.5]}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    r = json.load(open(out))
    for key in ("top1", "top5", "views", "num_videos", "num_failed", "failed", "gflops_per_view",
                "dense_gflops_per_view", "combine", "clip_position", "checkpoint", "model", "predictions"):
        assert key in r, key
    assert r["views"] == "1x3" and r["num_videos"] == 8 and r["num_failed"] == 0 and r["failed"] == []
    assert 0 <= r["top1"] <= r["top5"] <= 100
    assert set(r["gflops_per_view"]) == {"mean", "std", "min", "max"}
    assert r["gflops_per_view"]["max"] <= r["dense_gflops_per_view"]
    assert r["combine"] == "softmax_mean" and r["clip_position"] == "start"
    assert "top1" in captured.out and "GFLOPs/view" in captured.out
    # without --checkpoint: random weights, said loudly
    rc = main(["test", "--annotations", engine_data["val_csv"], "--output", str(tmp_path / "rand.json"), *ov,
               "test.combine=logit_sum", "test.clip_position=center"])
    captured = capsys.readouterr()
    assert rc == 0 and "RANDOMLY INITIALISED" in captured.err
    r = json.load(open(tmp_path / "rand.json"))
    assert r["combine"] == "logit_sum" and r["clip_position"] == "center"


def test_test_without_checkpoint_evaluates_model_pretrained(engine_data, engine_ov, tmp_path, capsys):
    """`model.pretrained` is the weights `test` evaluates when no --checkpoint is given, as for train,
    predict and profile; only with drop_head (a random classifier) does it warn of random weights."""
    ov = engine_ov(engine_data, tmp_path / "run")
    ckpt = _ckpt(tmp_path)
    base = ["test", "--annotations", engine_data["val_csv"], "--data-root", engine_data["root"], *ov]
    assert main([*base, "--checkpoint", ckpt, "--output", str(tmp_path / "a.json")]) == 0
    capsys.readouterr()
    assert main([*base, f"model.pretrained={ckpt}", "--output", str(tmp_path / "b.json")]) == 0
    assert "RANDOMLY" not in capsys.readouterr().err
    a, b = (json.load(open(tmp_path / f)) for f in ("a.json", "b.json"))
    assert open(a["predictions"]).read() == open(b["predictions"]).read()          # same scores, video by video
    assert a["top1"] == b["top1"] and b["checkpoint"] == a["checkpoint"]
    assert main([*base, f"model.pretrained={ckpt}", "model.drop_head=true", "--output", str(tmp_path / "c.json")]) == 0
    assert "RANDOMLY INITIALISED classifier" in capsys.readouterr().err


def test_bad_inputs_are_one_line(engine_data, engine_ov, tmp_path, capsys):
    ov = engine_ov(engine_data, tmp_path / "run")
    base = ["test", "--output", str(tmp_path / "r.json"), *ov]
    _one_line_error(capsys, base + ["--annotations", str(tmp_path / "nope.csv")], "not found")
    _one_line_error(capsys, base + ["--annotations", engine_data["val_csv"], "--data-root", str(tmp_path / "nodir")],
                    "not a directory")
    # a checkpoint with another class count: clear message, head dropped only when asked
    other = _ckpt(tmp_path, "five.pt", num_classes=5)
    _one_line_error(capsys, base + ["--annotations", engine_data["val_csv"], "--checkpoint", other], "drop_head")
    # another architecture (embedding size)
    wide = _ckpt(tmp_path, "wide.pt", embed_dim=48)
    _one_line_error(capsys, base + ["--annotations", engine_data["val_csv"], "--checkpoint", wide],
                    "another architecture")
    # unwritable output folder (a file in the way)
    (tmp_path / "afile").write_text("x")
    _one_line_error(capsys, ["test", "--annotations", engine_data["val_csv"], "--output",
                             str(tmp_path / "afile" / "r.json"), *ov], "cannot write")
    # config errors
    _one_line_error(capsys, base + ["train.lrr=1"], "unknown config key 'train.lrr'")
    _one_line_error(capsys, base + ["train.epochs=many"], "must be int")
    _one_line_error(capsys, ["train", "--config", str(tmp_path / "missing.yaml")], "not found")
    # training: missing annotations, labels beyond num_classes, unwritable output
    _one_line_error(capsys, ["train", *ov, "data.train_annotations=" + str(tmp_path / "x.csv")], "not found")
    _one_line_error(capsys, ["train", *ov, "model.num_classes=2"], "model.num_classes")
    _one_line_error(capsys, ["train", *ov, "output_dir=" + str(tmp_path / "afile" / "run")], "cannot write")
    # fine-tuning from a checkpoint of another class count needs model.drop_head
    _one_line_error(capsys, ["train", *ov, "model.pretrained=" + other], "drop_head")
    rc = main(["train", *ov, "model.pretrained=" + other, "model.drop_head=true", "train.max_steps=1",
               "output_dir=" + str(tmp_path / "ft")])
    assert rc == 0, capsys.readouterr().err


def test_help_config_lists_keys(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "train.global_batch_size" in out and "model.ats" in out


def test_test_takes_the_recipe_a_training_checkpoint_stores(engine_data, engine_ov, tmp_path, capsys):
    """Without --config, `test` builds the model from the recipe a project checkpoint stores (as predict and
    export-hf do) instead of the default TimeSformer-B, which no such checkpoint fits."""
    import torch

    from video_ats.engine import load_config

    cfg = load_config(None, engine_ov(engine_data, tmp_path / "run", **{"model.ats": "{blocks: [1], num_tokens: [0.5]}"}))
    m = tiny_timesformer({**TINY, "num_classes": 4}, paths=False, eval=False)
    ck = str(tmp_path / "trained.pt")
    save_state({"model": m.state_dict(), "config": cfg, "arch": "timesformer"}, ck)
    out = tmp_path / "stored.json"
    assert main(["test", "--checkpoint", ck, "--annotations", engine_data["val_csv"], "--output", str(out),
                 "test.views=1x1"]) == 0
    captured = capsys.readouterr()
    assert f"the recipe stored in {ck}" in captured.out
    r = json.load(open(out))
    assert r["num_videos"] == 8 and r["views"] == "1x1"                    # the override still applies
    assert r["gflops_per_view"]["max"] < r["dense_gflops_per_view"]      # the stored ATS setting is on
    # a plain state dict stores no recipe: the defaults build TimeSformer-B, which it does not fit
    plain = str(tmp_path / "plain.pt")
    torch.save(m.state_dict(), plain)
    _one_line_error(capsys, ["test", "--checkpoint", plain, "--annotations", engine_data["val_csv"],
                             "--output", str(tmp_path / "p.json")], "--config")


def test_profile_takes_the_recipe_a_training_checkpoint_stores(engine_data, engine_ov, tmp_path, capsys):
    """profile/calibrate/sweep, like test and predict: no --config means the checkpoint's own recipe (ATS
    included); with neither, one line that says what to pass."""
    from video_ats.engine import load_config

    cfg = load_config(None, engine_ov(engine_data, tmp_path / "run", **{"model.ats": "{blocks: [1], num_tokens: [0.5]}"}))
    m = tiny_timesformer({**TINY, "num_classes": 4}, paths=False, eval=False)
    ck = str(tmp_path / "trained.pt")
    save_state({"model": m.state_dict(), "config": cfg, "arch": "timesformer"}, ck)
    out = tmp_path / "profile.json"
    assert main(["profile", "--checkpoint", ck, engine_data["val_csv"], "--data-root", engine_data["root"],
                 "--max-videos", "2", "--output", str(out)]) == 0
    assert f"the recipe stored in {ck}" in capsys.readouterr().err
    report = json.load(open(out))
    assert set(report["kept_tokens_per_view"]) == {"1"}                  # the stored ATS setting: block 1
    assert report["gflops_per_view"]["ats"]["mean"] < report["gflops_per_view"]["dense"]["mean"]
    _one_line_error(capsys, ["profile", engine_data["val_csv"], "--output", str(tmp_path / "p2.json")],
                    "pass --config")
