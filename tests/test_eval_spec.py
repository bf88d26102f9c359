"""The evaluation spec: built once from the config, its resume fingerprint, one-line errors for bad values,
and the precision it gives the forward (bf16 autocast on CPU when the config asks for it)."""
import dataclasses
import json

import pytest
import torch

from video_ats.choices import CLIP_POSITIONS, COMBINE_MODES, FRAME_SPACINGS, PRECISIONS, RESIZE_MODES
from video_ats.data import read_annotations
from video_ats.engine import EvalSpec, build_model, eval_spec, evaluate, load_config, model_data_settings
from video_ats.engine.config import CHOICES
from video_ats.engine.device import amp_precision
from video_ats.errors import UserError


def _cfg(engine_data, engine_ov, tmp_path, **extra):
    return load_config(None, engine_ov(engine_data, tmp_path / "run", **{"device": "cpu", **extra}))


def _model(cfg):
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_spec_is_the_config(engine_data, engine_ov, tmp_path):
    cfg = _cfg(engine_data, engine_ov, tmp_path, **{"test.views": "2x3", "test.combine": "logit_sum",
                                                    "test.clip_position": "center", "test.batch_size": 5,
                                                    "data.num_workers": 1, "train.amp": False})
    model = _model(cfg)
    spec = eval_spec(cfg, model, checkpoint=None, annotations=engine_data["val_csv"])
    assert spec.views == (2, 3) and spec.views_text == "2x3"
    assert (spec.combine, spec.clip_position, spec.batch_videos, spec.num_workers) == ("logit_sum", "center", 5, 1)
    assert spec.precision == "float32" and spec.device == "cpu"
    assert spec.settings == model_data_settings(cfg, model)          # the frame settings, as the loaders take them
    assert spec.subject["model"] == "timesformer" and spec.subject["annotations"].endswith("val.csv")
    # a command's own flags win over the config; --views text errors name the flag
    assert eval_spec(cfg, model, views="1x1").views == (1, 1)
    assert eval_spec(cfg, model, views=(4, 1), num_workers=0).num_workers == 0
    with pytest.raises(UserError, match="^--views must be CLIPSxCROPS"):
        eval_spec(cfg, model, views="0x3")


def test_same_spec_same_fingerprint_and_every_field_counts(engine_data, engine_ov, tmp_path):
    cfg = _cfg(engine_data, engine_ov, tmp_path)
    model = _model(cfg)
    spec = eval_spec(cfg, model, checkpoint=None, annotations=engine_data["val_csv"])
    again = eval_spec(cfg, model, checkpoint=None, annotations=engine_data["val_csv"])
    assert spec == again and spec.fingerprint() == again.fingerprint()
    fp = spec.fingerprint()
    assert json.loads(json.dumps(fp)) == fp                   # survives the predictions file's header line
    other = {"views": (2, 3), "combine": "logit_sum", "clip_position": "center", "frame_spacing": "stride",
             "resize": "pyslowfast", "precision": "bfloat16", "num_frames": spec.num_frames + 1,
             "sampling_rate": spec.sampling_rate + 1, "crop_size": spec.crop_size + 16, "mean": (0.5, 0.5, 0.5),
             "std": (0.5, 0.5, 0.5), "target_fps": 25.0, "subject": dict(spec.subject, checkpoint="x.pt"),
             "batch_videos": spec.batch_videos + 1, "num_workers": spec.num_workers + 1, "device": "meta"}
    assert set(other) == {f.name for f in dataclasses.fields(EvalSpec)}       # a new field needs a case here
    runtime = {f.name for f in dataclasses.fields(EvalSpec) if f.metadata.get("runtime")}
    assert runtime == {"batch_videos", "num_workers", "device"}
    for name, value in other.items():
        changed = dataclasses.replace(spec, **{name: value})
        if name in runtime:      # where and how fast it runs: a resumed evaluation may change it
            assert changed.fingerprint() == fp, name
        else:
            assert changed.fingerprint() != fp, name


def test_invalid_values_are_one_line_errors(engine_data, engine_ov, tmp_path):
    cfg = _cfg(engine_data, engine_ov, tmp_path)
    model = _model(cfg)
    for key, bad in (("combine", "max"), ("clip_position", "middle"), ("resize", "nearest")):
        broken = dict(cfg, test=dict(cfg["test"], **{key: bad}))          # past the config validator
        with pytest.raises(UserError) as err:
            eval_spec(broken, model)
        assert str(err.value) == f"test.{key} must be one of {', '.join(CHOICES['test.' + key])}; got {bad!r}"
    with pytest.raises(UserError, match="^train.amp_dtype must be one of float16, bfloat16; got 'fp8'$"):
        eval_spec(dict(cfg, train=dict(cfg["train"], amp_dtype="fp8")), model)
    with pytest.raises(UserError, match="^device 'cuda:x' is not a torch device"):
        eval_spec(dict(cfg, device="cuda:x"), model)
    settings = model_data_settings(cfg, model)
    for field, bad in (("precision", "fp8"), ("batch_videos", 0), ("views", (1, 0)), ("frame_spacing", "even")):
        with pytest.raises(UserError) as err:
            EvalSpec.from_settings(settings, **{field: bad})
        assert "\n" not in str(err.value) and repr(bad) in str(err.value)
    with pytest.raises(UserError, match="test.combine.*must be one of softmax_mean, logit_sum"):
        load_config(None, ["test.combine=max"])


def test_each_choice_is_defined_once():
    from video_ats.commands import test as test_command

    assert CHOICES["test.combine"] is COMBINE_MODES and CHOICES["test.clip_position"] is CLIP_POSITIONS
    assert CHOICES["data.frame_spacing"] is FRAME_SPACINGS and CHOICES["test.resize"] is RESIZE_MODES
    import argparse
    parser = argparse.ArgumentParser()
    test_command.add_arguments(parser)
    choices = {a.dest: a.choices for a in parser._actions if a.choices}
    assert choices["combine"] is COMBINE_MODES and choices["clip_position"] is CLIP_POSITIONS
    assert set(PRECISIONS) == {"float32", *CHOICES["train.amp_dtype"]}


def test_amp_precision_policy():
    assert amp_precision(True, "bfloat16", "cpu") == "bfloat16"
    assert amp_precision(True, "float16", "cpu") == "float32"        # no float16 autocast on a CPU
    assert amp_precision(True, "float16", "cuda") == "float16"
    assert amp_precision(False, "bfloat16", "cuda") == "float32"


@pytest.mark.parametrize("amp_dtype, expect", [("bfloat16", torch.bfloat16), ("float16", torch.float32)])
def test_evaluation_runs_in_the_configured_precision(engine_data, engine_ov, tmp_path, amp_dtype, expect):
    cfg = _cfg(engine_data, engine_ov, tmp_path, **{"train.amp": True, "train.amp_dtype": amp_dtype})
    model = _model(cfg)
    records, _ = read_annotations(engine_data["val_csv"], data_root=engine_data["root"])
    spec = eval_spec(cfg, model, views="1x1")
    seen = []
    hook = model.head.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    try:
        res = evaluate(model, records[:2], spec)
    finally:
        hook.remove()
    # the first forward counts the dense model's FLOPs (no autocast: a count, not a result); then the views
    assert len(seen) >= 2 and set(seen[1:]) == {expect}
    assert res["precision"] == spec.precision == ("bfloat16" if expect == torch.bfloat16 else "float32")
    assert res["num_videos"] == 2 and res["top1"] is not None


def test_training_builds_its_validation_spec_once(engine_data, engine_ov, tmp_path, monkeypatch):
    import importlib
    train_module = importlib.import_module("video_ats.engine.train")
    built = []

    def counting(*args, **kwargs):
        built.append(kwargs.get("views"))
        return eval_spec(*args, **kwargs)

    monkeypatch.setattr(train_module, "eval_spec", counting)
    out = train_module.train(_cfg(engine_data, engine_ov, tmp_path, **{"train.epochs": 2, "train.eval_every": 1,
                                                                      "train.eval_views": "1x2"}))
    assert built == [(1, 2)]                                  # one spec, used by both validations
    assert out["val"]["views"] == "1x2" and out["epoch"] == 2
