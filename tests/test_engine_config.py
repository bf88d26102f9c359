"""Config schema: defaults, _base_ inheritance, typed dotted overrides, one-line errors."""
import glob
import os

import pytest

from video_ats.engine.config import default_config, load_config, load_yaml, parse_views, schema_keys
from video_ats.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=0.01", "model.ats={blocks: [4, 7, 10], num_tokens: [0.7, 0.5, 0.35]}",
                             "model.num_classes=600", "train.clip_grad=null", "data.mean=[0.5, 0.5, 0.5]",
                             "train.weight_decay=1e-4", "train.epochs=3"])
    assert cfg["train"]["lr"] == 0.01 and cfg["model"]["num_classes"] == 600
    assert cfg["model"]["ats"]["blocks"] == [4, 7, 10]
    assert cfg["train"]["weight_decay"] == pytest.approx(1e-4)
    assert cfg["output_dir"] == os.path.join("runs", "run")
    cfg = load_config(None, ["model.ats.blocks=[3]", "model.ats.num_tokens=[0.5]", "model.kwargs.depth=4"])
    assert cfg["model"]["ats"] == {"blocks": [3], "num_tokens": [0.5]} and cfg["model"]["kwargs"] == {"depth": 4}
    assert set(schema_keys()) >= {"model.name", "train.lr", "test.views", "data.num_frames"}
    assert default_config()["test"]["combine"] == "softmax_mean"


def test_base_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {name: timesformer, num_classes: 7}\ntrain: {lr: 0.1, epochs: 2}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {lr: 0.2}\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg["model"]["num_classes"] == 7 and cfg["train"]["lr"] == 0.2 and cfg["train"]["epochs"] == 2
    assert cfg["name"] == "child"


@pytest.mark.parametrize("override,needle", [
    ("train.lrr=0.1", "valid keys in train: train.epochs"),
    ("trian.lr=0.1", "valid keys: name, output_dir"),
    ("train.lr=fast", "must be float"),
    ("train.epochs=2.5", "must be int"),
    ("train.epochs=0", "must be >= 1"),
    ("test.combine=vote", "softmax_mean, logit_sum"),
    ("test.views=1y3", "CLIPSxCROPS"),
    ("model.num_classes=null", "must not be null"),
    ("train=3", "is a section"),
    ("train.lr", "not key=value"),
    ("train.mixup_prob=1.5", "must be <= 1"),
    ("train.label_smoothing=2", "must be <= 1"),
    ("model.ats={blocks: [3], blocks: [4]}", "'blocks' is given twice"),
])
def test_bad_overrides_are_one_line(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {lr: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(str(p))
    p.write_text("train: {optimiser: sgd}\n")
    with pytest.raises(UserError, match="unknown config key 'train.optimiser'"):
        load_config(str(p))
    with pytest.raises(UserError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    # plain YAML keeps the last of two equal keys: a second `model:` would silently replace the first
    p.write_text("model: {name: timesformer, num_classes: 7}\ntrain: {lr: 0.1}\nmodel: {num_classes: 9}\n")
    with pytest.raises(UserError, match=r"bad.yaml:3: not valid YAML \(key 'model' is given twice \(first on line 1\)"):
        load_config(str(p))
    p.write_text("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    with pytest.raises(UserError, match="key 'lr' is given twice"):
        load_config(str(p))
    # anchors and merge keys still read as plain YAML reads them
    assert load_yaml("a: &x {k: 1, j: 1}\nb: {<<: *x, j: 2}\n") == {"a": {"k": 1, "j": 1}, "b": {"k": 1, "j": 2}}


def test_views():
    assert parse_views("1x3") == (1, 3) and parse_views("4X3") == (4, 3)
    with pytest.raises(UserError):
        parse_views("0x3")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)))
def test_shipped_configs_are_valid(path):
    import video_ats

    cfg = load_config(path)
    assert cfg["model"]["name"] in video_ats.list_models()
    if cfg["model"]["ats"]:
        model_cls_depth = (cfg["model"]["kwargs"] or {}).get("depth", 12)
        video_ats.ATSConfig.from_any(cfg["model"]["ats"], model_cls_depth)


def test_frame_spacing_defaults_to_pyslowfast_and_reaches_the_datasets():
    from video_ats.engine.builders import model_data_settings
    from video_ats.models import create_model

    cfg = load_config(None, ["model.name=timesformer", "model.kwargs={img_size: 32, patch_size: 8, depth: 1, "
                             "embed_dim: 32, num_heads: 2}"])
    assert cfg["data"]["frame_spacing"] == "pyslowfast"
    model = create_model("timesformer", img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2)
    assert model_data_settings(cfg, model)["frame_spacing"] == "pyslowfast"
    stride = load_config(None, ["data.frame_spacing=stride"])
    assert model_data_settings(stride, model)["frame_spacing"] == "stride"
    with pytest.raises(UserError, match="frame_spacing.*pyslowfast, stride"):
        load_config(None, ["data.frame_spacing=even"])


def test_test_resize_choices_and_defaults():
    assert load_config(None, [])["test"]["resize"] == "decoder"
    assert load_config(None, ["test.resize=pyslowfast"])["test"]["resize"] == "pyslowfast"
    with pytest.raises(UserError, match="test.resize.*decoder, pyslowfast"):
        load_config(None, ["test.resize=bicubic"])
