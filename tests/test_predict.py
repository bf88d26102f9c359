"""`video-ats predict` / video_ats.predict: class names from the checkpoint, GFLOPs dense vs ATS, kept tokens,
overlays, JSON schema, unreadable files as error entries (exit 1), folders, label maps."""
import json
import os

import pytest
import torch

import video_ats
from video_ats.checkpoint import save_state
from video_ats.cli import main
from video_ats.data import read_annotations
from video_ats.engine import load_config

ATS = "{blocks: [1], num_tokens: [0.5]}"


@pytest.fixture(scope="module")
def ckpt(engine_data, engine_ov, tmp_path_factory):
    """A project checkpoint as training writes it: model, config (with ATS), class_names."""
    d = tmp_path_factory.mktemp("predict")
    cfg = load_config(None, engine_ov(engine_data, d / "run", **{"model.ats": ATS}))
    from video_ats.engine.builders import build_model
    torch.manual_seed(0)
    model = build_model(cfg, load_pretrained=False)
    _, names = read_annotations(engine_data["train_csv"], data_root=engine_data["root"])
    path = str(d / "last.pt")
    save_state({"model": model.state_dict(), "config": cfg, "class_names": names, "arch": "timesformer"}, path)
    return path, names


def _videos(engine_data):
    recs, _ = read_annotations(engine_data["val_csv"], data_root=engine_data["root"])
    return [r.path for r in recs]


def test_predict_api_names_gflops_kept_and_errors(ckpt, engine_data, tmp_path):
    path, names = ckpt
    vids = _videos(engine_data)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    res = video_ats.predict([vids[0], str(bad), str(tmp_path / "nope.mp4")], checkpoint=path, top_k=3)
    assert [r["path"] for r in res] == [vids[0], str(bad), str(tmp_path / "nope.mp4")]
    good, broken, missing = res
    assert good["error"] is None and len(good["top5"]) == 3
    assert {t["label"] for t in good["top5"]} <= set(names)
    probs = [t["prob"] for t in good["top5"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    g = good["gflops_per_view"]
    assert 0 < g["ats"] < g["dense"]
    assert list(good["kept_tokens"]) == ["1"] and len(good["kept_tokens"]["1"]) == 3      # 1x3 views
    assert all(1 <= k <= 8 for k in good["kept_tokens"]["1"])                     # K = 0.5 of 16 tokens
    assert good["views"] == "1x3"
    assert broken["top5"] == [] and "not a readable video" in broken["error"] and "Errno" not in broken["error"]
    assert missing["error"] == "file not found"
    # a folder is searched for videos (sorted, recursive); views and top-k follow the arguments
    folder = os.path.dirname(vids[0])
    res = video_ats.predict(folder, checkpoint=path, views="1x1", top_k=10)
    assert len(res) >= 1 and all(r["error"] is None for r in res)
    assert all(len(r["top5"]) == len(names) and len(r["kept_tokens"]["1"]) == 1 for r in res)
    assert [r["path"] for r in res] == sorted(r["path"] for r in res)


def test_predict_cli_json_plots_and_exit_status(ckpt, engine_data, tmp_path, capsys):
    path, names = ckpt
    vids = _videos(engine_data)
    out, plots = tmp_path / "pred.json", tmp_path / "plots"
    assert main(["predict", "--checkpoint", path, "--json", str(out), "--plots", str(plots), vids[0], vids[1]]) == 0
    text = capsys.readouterr().out
    assert "GFLOPs/view" in text and "with ATS" in text and "kept tokens per view: block 1" in text
    r = json.loads(out.read_text())
    assert len(r) == 2
    for e in r:
        assert {"path", "top5", "gflops_per_view", "kept_tokens", "error"} <= set(e)
        assert e["error"] is None and len(e["top5"]) == 4          # 4 classes: top-5 lists all 4
        assert set(e["top5"][0]) == {"label", "prob"}
        assert os.path.getsize(e["plot"]) > 2000
        assert all(len(str(t["prob"]).split(".")[-1]) <= 4 for t in e["top5"])     # rounded
    # one unreadable file: its error entry, the others predicted, exit status 1
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    assert main(["predict", "--checkpoint", path, "--json", str(out), vids[0], str(bad)]) == 1
    cap = capsys.readouterr()
    r = json.loads(out.read_text())
    assert r[0]["error"] is None and r[1]["error"] and r[1]["top5"] == []
    assert "1 of 2 inputs could not be predicted" in cap.err and "Traceback" not in cap.err


def test_predict_label_map_config_and_overrides(ckpt, engine_data, tmp_path, capsys):
    path, names = ckpt
    vids = _videos(engine_data)
    lm = tmp_path / "labels.txt"
    lm.write_text("\n".join(f"renamed {i}" for i in range(4)) + "\n")
    res = video_ats.predict(vids[0], checkpoint=path, label_map=str(lm))
    assert all(t["label"].startswith("renamed ") for t in res[0]["top5"])
    # a dense override: GFLOPs are the dense ones, no kept tokens
    res = video_ats.predict(vids[0], checkpoint=path, overrides=["model.ats=null"])
    assert res[0]["kept_tokens"] == {} and res[0]["gflops_per_view"]["ats"] is None
    assert res[0]["gflops_per_view"]["dense"] > 0
    # a checkpoint without a stored config (official/plain state dict) needs --config
    plain = tmp_path / "plain.pt"
    save_state({"model": torch.load(path, weights_only=True)["model"]}, str(plain))
    assert main(["predict", "--checkpoint", str(plain), vids[0]]) == 2
    err = capsys.readouterr().err
    assert "needs --config" in err and "Traceback" not in err
    # ... and with --config the class names are indices
    cfg = tmp_path / "cfg.yaml"
    import yaml
    c = load_config(None, [])
    stored = torch.load(path, weights_only=True)["config"]
    c["model"] = stored["model"]
    cfg.write_text(yaml.safe_dump({"model": c["model"]}))
    res = video_ats.predict(vids[0], config=str(cfg), checkpoint=str(plain))
    assert res[0]["top5"][0]["label"].startswith("class ")


def test_plots_folder_is_checked_before_any_prediction(tmp_path, capsys):
    from video_ats.cli import main as cli_main

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert cli_main(["predict", "--checkpoint", str(tmp_path / "none.pt"), str(tmp_path / "v.mp4"),
                     "--plots", str(blocker)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plots folder" in err[0] and "cannot write there" in err[0], err


@pytest.mark.parametrize("argv, message", [
    (["predict", "--checkpoint", "x.pt", "v.mp4", "--json", ""], "--json is empty"),
    (["predict", "--checkpoint", "x.pt", "v.mp4", "--plots", " "], "--plots is empty"),
    (["make-synthetic", "--out", ""], "--out is empty"),
])
def test_empty_output_paths_are_refused_not_ignored(argv, message, capsys):
    from video_ats.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:        # refused by the parser, for every command alike
        cli_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
