"""Hugging Face transformers TimeSformer folders: from_pretrained, model.pretrained, export-hf.

A tiny random ``TimesformerForVideoClassification`` (no download) is the reference: our model built from
its folder must give its logits (inputs (B, T, C, H, W) there, (B, C, T, H, W) here)."""
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

import video_ats  # noqa: E402
from video_ats import UserError  # noqa: E402
from video_ats.cli import main  # noqa: E402
from video_ats.engine import build_model, load_config  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NAMES = ["abseiling", "bowling", "cartwheeling", "dribbling", "eating cake"]
TINY = dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64)
KWARGS = "{img_size: 32, patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2, num_frames: 4, mlp_ratio: 2.0}"
TOL = 1e-5


def hf_model(seed=0, **changes):
    from transformers import TimesformerConfig, TimesformerForVideoClassification
    cfg = TimesformerConfig(**{**TINY, **changes}, id2label=dict(enumerate(NAMES)),
                            label2id={n: i for i, n in enumerate(NAMES)})
    torch.manual_seed(seed)
    m = TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():                   # every tensor random, so a wrong name mapping cannot hide
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    return m


def clip(b=2, t=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, t, 32, 32, generator=g)          # ours: (B, C, T, H, W)


def hf_logits(m, x):
    with torch.no_grad():
        return m(pixel_values=x.transpose(1, 2)).logits     # transformers: (B, T, C, H, W)


def ours(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The reference model saved as safetensors and as a pytorch_model.bin folder."""
    m = hf_model()
    root = tmp_path_factory.mktemp("hf")
    m.save_pretrained(str(root / "st"))
    bin_dir = root / "bin"
    m.save_pretrained(str(bin_dir), safe_serialization=False)
    if not (bin_dir / "pytorch_model.bin").exists():       # transformers >= 5 always writes safetensors
        torch.save(m.state_dict(), str(bin_dir / "pytorch_model.bin"))
        os.remove(str(bin_dir / "model.safetensors"))
    return m, root


@pytest.mark.parametrize("kind", ["st", "bin"])
def test_from_pretrained_equals_transformers(ref, kind):
    m, root = ref
    folder = root / kind
    weights = "model.safetensors" if kind == "st" else "pytorch_model.bin"
    assert (folder / weights).exists()
    x = clip()
    want = hf_logits(m, x)
    for path in (folder, folder / weights):              # the folder, or its weights file next to config.json
        model = video_ats.from_pretrained(str(path))
        assert model.num_classes == 5 and model.config["embed_dim"] == 32 and model.config["num_frames"] == 4
        assert model.class_names == NAMES
        got = ours(model, x)
        assert (got - want).abs().max().item() < TOL


def test_ats_keeping_every_token_equals_dense(ref):
    m, root = ref
    x = clip()
    model = video_ats.from_pretrained(str(root / "st"), ats={"blocks": [0], "num_tokens": 10000})
    assert model.ats is not None
    assert (ours(model, x) - hf_logits(m, x)).abs().max().item() < TOL
    assert model.last_kept_tokens[0].tolist() == [64, 64]       # 4 frames x 4x4 patches, all kept


def test_sharded_and_hub_cache_layouts(ref, tmp_path):
    m, root = ref
    m.save_pretrained(str(tmp_path / "sharded"), max_shard_size="20KB")
    assert any(n.endswith(".index.json") for n in os.listdir(tmp_path / "sharded"))
    # hub cache: models--ORG--NAME/{refs/main, snapshots/<rev>/...}
    repo = tmp_path / "models--org--tiny"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in ("config.json", "model.safetensors"):
        (snap / name).write_bytes((root / "st" / name).read_bytes())
    x = clip()
    want = hf_logits(m, x)
    for path in (tmp_path / "sharded", repo, snap):
        assert (ours(video_ats.from_pretrained(str(path)), x) - want).abs().max().item() < TOL


def test_strict_errors_are_one_line(ref, tmp_path):
    _, root = ref
    from safetensors.torch import load_file, save_file
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((root / "st" / "config.json").read_bytes())
    state = load_file(str(root / "st" / "model.safetensors"))
    del state["timesformer.encoder.layer.1.temporal_dense.weight"]
    state["timesformer.encoder.layer.1.extra.weight"] = torch.zeros(1)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(UserError) as err:
        video_ats.from_pretrained(str(bad))
    msg = str(err.value)
    assert "\n" not in msg and "blocks.1.temporal_fc.weight" in msg and "layer.1.extra.weight" in msg

    # what the model cannot represent is refused, naming the field
    for change, word in (({"attention_type": "joint_space_time"}, "attention_type"),
                         ({"hidden_act": "relu"}, "hidden_act")):
        d = tmp_path / word
        d.mkdir()
        cfg = json.loads((root / "st" / "config.json").read_text())
        cfg.update(change)
        (d / "config.json").write_text(json.dumps(cfg))
        (d / "model.safetensors").write_bytes((root / "st" / "model.safetensors").read_bytes())
        with pytest.raises(UserError, match=word):
            video_ats.from_pretrained(str(d))
    with pytest.raises(UserError, match="no weights"):
        empty = tmp_path / "noweights"
        empty.mkdir()
        (empty / "config.json").write_bytes((root / "st" / "config.json").read_bytes())
        video_ats.from_pretrained(str(empty))


def test_other_layer_norm_eps_and_no_qkv_bias(tmp_path):
    m = hf_model(seed=3, layer_norm_eps=1e-5, qkv_bias=False)
    m.save_pretrained(str(tmp_path / "m"))
    model = video_ats.from_pretrained(str(tmp_path / "m"))
    assert model.blocks[0].norm1.eps == 1e-5 and model.blocks[0].attn.qkv.bias is None
    x = clip()
    assert (ours(model, x) - hf_logits(m, x)).abs().max().item() < TOL


def test_backbone_folder_without_classifier(tmp_path):
    from transformers import TimesformerConfig, TimesformerModel
    torch.manual_seed(4)
    m = TimesformerModel(TimesformerConfig(**TINY)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    m.save_pretrained(str(tmp_path / "base"))
    x = clip()
    with torch.no_grad():
        want = m(pixel_values=x.transpose(1, 2)).last_hidden_state[:, 0]
    model = video_ats.from_pretrained(str(tmp_path / "base"))
    assert model.num_classes == 0 and (ours(model, x) - want).abs().max().item() < TOL
    assert video_ats.from_pretrained(str(tmp_path / "base"), num_classes=7, drop_head=True).head.out_features == 7


def _cfg(folder, **extra):
    ov = {"model.name": "timesformer", "model.num_classes": 5, "model.kwargs": KWARGS,
          "model.pretrained": str(folder)}
    ov.update(extra)
    return load_config(None, [f"{k}={v}" for k, v in ov.items()])


def test_recipe_pretrained_folder(ref):
    m, root = ref
    model = build_model(_cfg(root / "st"))
    x = clip()
    assert (ours(model, x) - hf_logits(m, x)).abs().max().item() < TOL
    assert model.class_names == NAMES

    # another architecture in the recipe: one error naming every differing field
    wrong = "{img_size: 32, patch_size: 8, embed_dim: 32, depth: 3, num_heads: 4, num_frames: 4, mlp_ratio: 2.0}"
    with pytest.raises(UserError) as err:
        build_model(_cfg(root / "st", **{"model.kwargs": wrong}))
    msg = str(err.value)
    assert "\n" not in msg and "num_hidden_layers 2" in msg and "num_attention_heads 2" in msg
    with pytest.raises(UserError, match="drop_head"):
        build_model(_cfg(root / "st", **{"model.num_classes": 3}))

    # fine-tuning on other classes: the classifier stays fresh, the backbone is loaded
    tuned = build_model(_cfg(root / "st", **{"model.num_classes": 3, "model.drop_head": True}))
    assert tuned.head.out_features == 3 and tuned.class_names is None
    ref_m = video_ats.from_pretrained(str(root / "st"))
    assert torch.equal(tuned.blocks[1].mlp.fc1.weight, ref_m.blocks[1].mlp.fc1.weight)
    # more frames than the folder: the time embedding is resized (nearest), as for official checkpoints
    longer = video_ats.from_pretrained(str(root / "st"), num_frames=8)
    assert longer.time_embed.shape[1] == 8 and ours(longer, clip(t=8)).shape == (2, 5)


def _project_checkpoint(tmp_path, ats=None, names=NAMES):
    overrides = {"model.name": "timesformer", "model.num_classes": 5, "model.kwargs": KWARGS}
    if ats:
        overrides["model.ats"] = ats
    cfg = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(5)
    model = build_model(cfg, ats=None)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    path = str(tmp_path / "ckpt.pt")
    torch.save({"model": model.state_dict(), "config": cfg, "class_names": names, "epoch": 1}, path)
    return model, path


def test_export_hf_round_trip(tmp_path, capsys):
    from transformers import TimesformerForVideoClassification
    model, ckpt = _project_checkpoint(tmp_path, ats="{blocks: [1], num_tokens: [0.5]}")
    out = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", ckpt, "--out", str(out)]) == 0
    assert "video_ats_ats" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["video_ats_ats"]["blocks"] == [1] and config["video_ats_ats"]["num_tokens"] == [0.5]
    hf = TimesformerForVideoClassification.from_pretrained(str(out)).eval()
    assert [hf.config.id2label[i] for i in range(5)] == NAMES
    x = clip()
    assert (hf_logits(hf, x) - ours(model, x)).abs().max().item() < TOL          # dense weights
    back = video_ats.from_pretrained(str(out), ats="recorded")
    assert back.class_names == NAMES and back.ats.blocks == (1,)
    back.set_ats(None)
    assert (ours(back, x) - ours(model, x)).abs().max().item() < TOL


def test_export_hf_needs_a_recipe_and_a_timesformer(tmp_path):
    model, _ = _project_checkpoint(tmp_path)
    plain = str(tmp_path / "plain.pt")
    torch.save(model.state_dict(), plain)
    assert main(["export-hf", "--checkpoint", plain, "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(UserError, match="TimeSformer"):
        video_ats.export_hf(video_ats.create_model("xvit", img_size=32, patch_size=8, embed_dim=64, depth=1,
                                                   num_heads=4, num_frames=8, num_segments=4, head_num_heads=4,
                                                   temporal_embed_frames=4, head_mlp_dim=48, num_classes=5),
                            str(tmp_path / "x"))


def test_project_checkpoint_carries_class_names(tmp_path):
    model, ckpt = _project_checkpoint(tmp_path)
    fresh = build_model(load_config(None, ["model.name=timesformer", "model.num_classes=5",
                                           f"model.kwargs={KWARGS}"]))
    assert fresh.class_names is None
    video_ats.load_checkpoint(fresh, ckpt)
    assert fresh.class_names == NAMES


def test_fine_tune_from_folder_then_export(ref, engine_data, engine_ov, tmp_path, capsys):
    """model.pretrained=<folder> + drop_head through `video-ats train`; the checkpoint carries the new class
    names and export-hf writes them as id2label."""
    from transformers import TimesformerForVideoClassification
    _, root = ref
    ov = engine_ov(engine_data, tmp_path / "run", **{
        "model.kwargs": KWARGS[:-1] + ", sampling_rate: 2}", "model.pretrained": str(root / "st"),
        "model.drop_head": "true", "train.max_steps": 1})
    assert main(["train", *ov]) == 0, capsys.readouterr().err
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    names = torch.load(str(ckpt), weights_only=True)["class_names"]
    assert len(names) == 4 and names != ["0", "1", "2", "3"]
    assert main(["export-hf", "--checkpoint", str(ckpt), "--out", str(tmp_path / "hf")]) == 0
    hf = TimesformerForVideoClassification.from_pretrained(str(tmp_path / "hf"))
    assert [hf.config.id2label[i] for i in range(4)] == names
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["video_ats"]["sampling_rate"] == 2

    # `video-ats test --checkpoint FOLDER`: the recipe's model gets the folder's weights and class names,
    # and the test labels are mapped onto those names
    test_ov = engine_ov(engine_data, tmp_path / "eval", **{"model.kwargs": KWARGS[:-1] + ", sampling_rate: 2}",
                                                          "test.views": "1x1"})
    out = tmp_path / "eval" / "results.json"
    assert main(["test", "--checkpoint", str(tmp_path / "hf"), "--output", str(out), *test_ov]) == 0
    assert json.loads(out.read_text())["class_names"] == names
    # a folder whose classes are not this data's is one clear line, not a silently renumbered evaluation
    capsys.readouterr()
    wrong = engine_ov(engine_data, tmp_path / "eval2", **{"model.kwargs": KWARGS[:-1] + ", sampling_rate: 2}",
                                                         "model.num_classes": 5, "test.views": "1x1"})
    assert main(["test", "--checkpoint", str(root / "st"), "--output", str(tmp_path / "eval2" / "r.json"), *wrong]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown class" in err[0], err


def test_predict_takes_a_hugging_face_folder_as_test_and_profile_do(ref, data_synthetic, tmp_path, capsys):
    # predict said "checkpoint FOLDER: not found" for an existing folder
    _, root = ref
    cfg = tmp_path / "hf.yaml"
    cfg.write_text(f"model: {{name: timesformer, num_classes: 5, kwargs: {KWARGS}}}\ntest: {{views: 1x1}}\n")
    video = open(data_synthetic["val_list"]).read().split()[0]
    video = os.path.join(data_synthetic["root"], video)
    assert main(["predict", "--checkpoint", str(root / "st"), "--config", str(cfg), "--top-k", "2", video]) == 0
    out = capsys.readouterr().out
    assert any(n in out for n in NAMES), out                  # class names from the folder's id2label
    assert main(["predict", "--checkpoint", str(root / "st"), video]) == 2       # no recipe inside: --config
    assert "predict needs --config" in capsys.readouterr().err
