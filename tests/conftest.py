

# ---- data pipeline fixtures (video_ats.data); names prefixed data_ -------------------------------
import pytest as _data_pytest


@_data_pytest.fixture(scope="session")
def data_synthetic(tmp_path_factory):
    """A tiny synthetic Kinetics-format dataset (4 classes x 3 videos, 64x48, 1.5 s at 30 fps)."""
    from video_ats.data import make_synthetic

    out = tmp_path_factory.mktemp("data_synthetic")
    return make_synthetic(str(out), classes=4, videos_per_class=3, size=(64, 48), seconds=1.5,
                          fps=30, seed=0, val_fraction=0.34, workers=2)


@_data_pytest.fixture(scope="session")
def data_video_dir(tmp_path_factory):
    """A session folder for hand-made test videos."""
    return tmp_path_factory.mktemp("data_videos")


# ---- engine fixtures (video_ats.engine: train/test/quickstart); names prefixed engine_ -----------
@_data_pytest.fixture(scope="session")
def engine_data(tmp_path_factory):
    """Synthetic dataset for the engine tests: 4 classes x 6 videos (4 train + 2 val), 48x32, 1 s."""
    from video_ats.data import make_synthetic

    out = tmp_path_factory.mktemp("engine_data")
    return make_synthetic(str(out), classes=4, videos_per_class=6, size=(48, 32), seconds=1.0,
                          fps=16, seed=0, val_fraction=0.34, workers=2)


def engine_overrides(data, out_dir, **extra):
    """``key=value`` overrides for a tiny TimeSformer on ``engine_data`` (fast on 2 CPU cores)."""
    ov = {
        "model.name": "timesformer", "model.num_classes": 4,
        "model.kwargs": "{img_size: 32, patch_size: 16, embed_dim: 32, depth: 2, num_heads: 2, num_frames: 4, "
                        "sampling_rate: 2}",
        "data.train_annotations": data["train_csv"], "data.val_annotations": data["val_csv"],
        "data.data_root": data["root"], "data.scale_range": "[32, 40]", "data.num_workers": 0,
        "train.epochs": 3, "train.batch_size": 4, "train.optimizer": "adamw", "train.lr": 0.003,
        "train.weight_decay": 0.0, "train.scheduler": "none", "train.eval_every": 0, "train.progress": False,
        "test.batch_size": 3, "output_dir": str(out_dir),
    }
    ov.update(extra)
    return [f"{k}={v}" for k, v in ov.items()]


@_data_pytest.fixture(scope="session")
def engine_ov():
    """The :func:`engine_overrides` builder, as a fixture."""
    return engine_overrides
