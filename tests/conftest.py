"""Shared test fixtures: generated data (data_*, engine_*) and model helpers."""
import pytest

# ---- data pipeline fixtures (video_ats.data); names prefixed data_ -------------------------------


@pytest.fixture(scope="session")
def data_synthetic(tmp_path_factory):
    """A tiny synthetic Kinetics-format dataset (4 classes x 3 videos, 64x48, 1.5 s at 30 fps)."""
    from video_ats.data import make_synthetic

    out = tmp_path_factory.mktemp("data_synthetic")
    return make_synthetic(str(out), classes=4, videos_per_class=3, size=(64, 48), seconds=1.5,
                          fps=30, seed=0, val_fraction=0.34, workers=2)


@pytest.fixture(scope="session")
def data_video_dir(tmp_path_factory):
    """A session folder for hand-made test videos."""
    return tmp_path_factory.mktemp("data_videos")


# ---- engine fixtures (video_ats.engine: train/test/quickstart); names prefixed engine_ -----------
@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def engine_ov():
    """The :func:`engine_overrides` builder, as a fixture."""
    return engine_overrides


# ---- model fixtures ------------------------------------------------------------------------------
@pytest.fixture
def force_packed_tokens(monkeypatch):
    """Make every new TokenSet take the gather/pad path instead of the copy-free dense views, so tests
    can check that the machinery used after ATS computes exactly what the dense reshapes compute."""
    from video_ats.tokens import TokenSet

    orig = TokenSet.from_grid.__func__

    def not_dense(cls, *a, **k):
        ts = orig(cls, *a, **k)
        ts.dense = False
        return ts

    monkeypatch.setattr(TokenSet, "from_grid", classmethod(not_dense))


# ---- device from the environment ---------------------------------------------------------------
@pytest.fixture(scope="session")
def device():
    """The torch device the device-aware tests run on: ``VIDEO_ATS_TEST_DEVICE`` (cpu, cuda, cuda:N;
    default cpu). ``VIDEO_ATS_TEST_DEVICE=cuda pytest tests/test_benchmark.py tests/test_device_equivalence.py``
    runs them on the first GPU; asking for CUDA where there is none fails here, loudly, rather than
    silently testing the CPU."""
    import os

    import torch

    name = os.environ.get("VIDEO_ATS_TEST_DEVICE", "cpu").strip() or "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"VIDEO_ATS_TEST_DEVICE={name} but CUDA is not available here")
    return dev
