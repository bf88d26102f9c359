"""Training: the loss falls on generated videos, resume continues exactly, NaN stops cleanly."""
import os

import pytest
import torch

from video_ats.checkpoint import read_checkpoint
from video_ats.engine import load_config, train
from video_ats.errors import UserError


def test_loss_falls_and_checkpoint_is_loadable(engine_data, engine_ov, tmp_path):
    cfg = load_config(None, engine_ov(engine_data, tmp_path / "run", **{
        "train.epochs": 10, "data.flip": "false", "model.kwargs.embed_dim": 64, "train.lr": 0.005}))
    out = train(cfg)
    losses = out["losses"]
    assert out["step"] == len(losses) == 10 * out["updates_per_epoch"]
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.05, losses
    ck = read_checkpoint(out["checkpoint"])
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "config", "arch"} <= set(ck)
    assert ck["step"] == out["step"] and ck["arch"] == "timesformer"
    assert os.path.isfile(tmp_path / "run" / "config.yaml")
    assert any(n.startswith("events") for n in os.listdir(tmp_path / "run" / "tb"))
    import video_ats
    m = video_ats.create_model("timesformer", **cfg["model"]["kwargs"], num_classes=4)
    video_ats.load_checkpoint(m, out["checkpoint"])       # the 'model' key is found


def _weights(path):
    return read_checkpoint(path)["model"]


def test_resume_continues_at_the_right_step(engine_data, engine_ov, tmp_path):
    extra = {"train.batch_size": 2, "train.epochs": 2, "train.scheduler": "cosine", "train.mixup": 0.4,
             "train.label_smoothing": 0.1, "model.kwargs.drop_path_rate": 0.1}
    # uninterrupted: 2 epochs x 8 steps
    full = train(load_config(None, engine_ov(engine_data, tmp_path / "a", **extra)))
    assert full["step"] == 16
    # interrupted mid-epoch at step 5 (checkpoint every step), then the same command again
    part = train(load_config(None, engine_ov(engine_data, tmp_path / "b", **extra,
                                             **{"train.max_steps": 5, "train.ckpt_every_steps": 1})))
    assert part["step"] == 5
    ck = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ck["step"] == 5 and ck["epoch"] == 0 and ck["step_in_epoch"] == 5
    resumed = train(load_config(None, engine_ov(engine_data, tmp_path / "b", **extra)))
    assert resumed["step"] == 16 and len(resumed["losses"]) == 11
    assert resumed["losses"] == pytest.approx(full["losses"][5:], rel=1e-4, abs=1e-5)
    wa, wb = _weights(tmp_path / "a" / "checkpoints" / "last.pt"), _weights(tmp_path / "b" / "checkpoints" / "last.pt")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    # a finished run rerun does nothing more
    again = train(load_config(None, engine_ov(engine_data, tmp_path / "b", **extra)))
    assert again["step"] == 16 and again["losses"] == []


def test_resume_refuses_another_model(engine_data, engine_ov, tmp_path):
    train(load_config(None, engine_ov(engine_data, tmp_path / "r", **{"train.max_steps": 1})))
    with pytest.raises(UserError, match="another model"):
        train(load_config(None, engine_ov(engine_data, tmp_path / "r", **{"model.num_classes": 5})))


def test_nan_loss_stops_and_keeps_last_checkpoint(engine_data, engine_ov, tmp_path, monkeypatch):
    import importlib
    T = importlib.import_module("video_ats.engine.train")
    extra = {"train.max_steps": 4, "train.ckpt_every_steps": 1}
    real = T.build_loss
    calls = {"n": 0}

    def nan_on_third_batch(cfg, num_classes):
        mix, loss = real(cfg, num_classes)

        def bad(logits, y):
            calls["n"] += 1
            out = loss(logits, y)
            return out * float("nan") if calls["n"] == 3 else out
        return mix, bad

    monkeypatch.setattr(T, "build_loss", nan_on_third_batch)
    with pytest.raises(UserError, match="loss became nan at epoch 1, step 3"):
        train(load_config(None, engine_ov(engine_data, tmp_path / "n", **extra)))
    ck = read_checkpoint(tmp_path / "n" / "checkpoints" / "last.pt")
    assert ck["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_keyboard_interrupt_writes_a_whole_checkpoint(engine_data, engine_ov, tmp_path, monkeypatch):
    import importlib
    T = importlib.import_module("video_ats.engine.train")

    calls = {"n": 0}
    real = T.distributed.any_true

    def interrupt_on_fourth_batch(flag, device):
        calls["n"] += 1
        if calls["n"] == 4:          # Ctrl-C between steps 3 and 4 (in the forward of the 4th batch)
            raise KeyboardInterrupt
        return real(flag, device)

    monkeypatch.setattr(T.distributed, "any_true", interrupt_on_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, engine_ov(engine_data, tmp_path / "k", **{"train.batch_size": 2})))
    monkeypatch.setattr(T.distributed, "any_true", real)
    ck = read_checkpoint(tmp_path / "k" / "checkpoints" / "last.pt")
    assert ck["step"] == 3 and ck["step_in_epoch"] == 3
    assert not [f for f in os.listdir(tmp_path / "k" / "checkpoints") if ".tmp" in f]
    out = train(load_config(None, engine_ov(engine_data, tmp_path / "k", **{"train.batch_size": 2})))
    assert out["step"] == 3 * 8 and len(out["losses"]) == 3 * 8 - 3
