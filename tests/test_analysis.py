"""profile / calibrate / sweep commands and the analysis pictures, on a tiny TimeSformer and the
synthetic videos of the ``data_synthetic`` fixture (random init: these check the pipeline, not accuracy)."""
import json
import os

import numpy as np
import pytest
import yaml

from video_ats.cli import main
from video_ats.errors import UserError

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2, "num_frames": 8,
        "sampling_rate": 4}


def _config(tmp_path, data, ats, name="tiny.yaml"):
    cfg = {"model": {"name": "timesformer", "num_classes": 4, "kwargs": TINY, "ats": ats},
           "data": {"data_root": data["root"], "num_workers": 0},
           "test": {"views": "1x3", "batch_size": 4}, "device": "cpu"}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _error_line(err):
    """The single ``video-ats X: error:`` line of stderr (warnings may precede it), no traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(lines) == 1, err
    return lines[0]


def _image_ok(path, min_side=100):
    from matplotlib.image import imread

    assert os.path.isfile(path) and os.path.getsize(path) > 2000, path
    img = imread(path)
    assert min(img.shape[:2]) >= min_side, img.shape
    assert float(np.var(img[..., :3])) > 1e-3, f"{path} looks blank"


@pytest.fixture(scope="module")
def ats_cfg(tmp_path_factory, data_synthetic):
    d = tmp_path_factory.mktemp("analysis_cfg")
    return _config(d, data_synthetic, {"blocks": [1, 2], "num_tokens": [0.5, 0.3]})


def test_profile_report_and_plots(tmp_path, ats_cfg, data_synthetic, capsys):
    out, plots = tmp_path / "profile.json", tmp_path / "plots"
    missing = str(tmp_path / "nope.mp4")
    rc = main(["profile", "--config", ats_cfg, "--output", str(out), "--plots", str(plots),
               data_synthetic["val_csv"], missing])
    assert rc == 0
    text = capsys.readouterr().out
    assert "dense" in text and "ATS block" in text and "nope.mp4: file not found" in text
    r = json.loads(out.read_text())
    assert r["num_videos"] == 4 and r["num_views"] == 12 and r["num_failed"] == 1
    g = r["gflops_per_view"]
    assert g["ats"]["mean"] < g["dense"]["mean"]
    assert g["ats"]["min"] <= g["ats"]["mean"] <= g["ats"]["max"]
    assert set(r["kept_tokens_per_view"]) == {"1", "2"}
    full = r["patch_tokens"]
    assert full == 8 * 4 * 4
    for e in r["kept_tokens_per_view"].values():
        assert e["within_bound"] and e["kept"]["max"] <= e["k_bound"]["max"]
    assert r["kept_tokens_per_view"]["1"]["kept"]["max"] <= 0.5 * full
    assert len(r["per_view"]) == 12
    pngs = r["plots"]
    assert any("kept_tokens_hist" in p for p in pngs) and sum("tokens_0" in p for p in pngs) == 4
    for p in pngs:
        _image_ok(p)


def test_profile_bad_inputs(tmp_path, ats_cfg, data_synthetic, capsys):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    good = os.path.join(data_synthetic["root"], open(data_synthetic["val_list"]).readline().split()[0])
    out = tmp_path / "p.json"
    assert main(["profile", "--config", ats_cfg, "--output", str(out), str(garbage), good]) == 0
    r = json.loads(out.read_text())
    assert r["num_failed"] == 1 and r["failed"][0]["path"].endswith("broken.mp4") and r["num_views"] == 3
    capsys.readouterr()
    # nothing decodable: one line, no traceback
    assert main(["profile", "--config", ats_cfg, "--output", str(out), str(garbage)]) == 2
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("video-ats profile: error: no view could be decoded")
    # a config without ATS
    dense_cfg = _config(tmp_path, data_synthetic, None, "dense.yaml")
    assert main(["profile", "--config", dense_cfg, good]) == 2
    assert "needs a config with ATS" in _error_line(capsys.readouterr().err)


def test_calibrate_hits_target(tmp_path, ats_cfg, data_synthetic, capsys):
    from video_ats.analysis import common as A
    from video_ats.analysis.calibrate import run_calibration
    from video_ats.engine.builders import model_data_settings, read_split
    from video_ats.engine.config import load_config

    cfg = load_config(ats_cfg)
    probe = run_calibration(cfg, None, data_synthetic["val_csv"], 0.008, max_videos=2)
    lo, hi = probe["reachable"]
    assert 0.008 * 0.98 <= probe["gflops_mean"] <= 0.008 and probe["evaluations"] == len(probe["trials"])
    target = float(f"{lo + 0.3 * (hi - lo):.6g}")
    out = tmp_path / "cal.yaml"
    rc = main(["calibrate", "--config", ats_cfg, "--annotations", data_synthetic["val_csv"], "--max-videos", "2",
               "--target-gflops", str(target), "--output", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    text = cap.out
    assert "chosen K" in text and "evaluations" in text
    assert "calibrate: decoding 2 videos" in cap.err and "calibrate: trial 1:" in cap.err    # progress lines
    over = yaml.safe_load(out.read_text())
    ks = over["model"]["ats"]["num_tokens"]
    assert over["model"]["ats"]["blocks"] == [1, 2] and ks != [0.5, 0.3]
    # the file works as --config on its own, and its K gives GFLOPs in the window (measured independently)
    cal = load_config(str(out))
    assert cal["model"]["ats"]["num_tokens"] == ks and cal["model"]["kwargs"] == TINY
    model = A.build_eval_model(cal, None)
    settings = model_data_settings(cal, model)
    records, _ = read_split(data_synthetic["val_csv"], cal, "test")
    clips, _, _ = A.decode_views(records[:2], settings, (1, 3))
    g = float(A.measure(model, clips)["gflops"].mean())
    assert target * 0.98 <= g <= target


def test_calibrate_unreachable_targets(tmp_path, ats_cfg, data_synthetic, capsys):
    base = ["calibrate", "--config", ats_cfg, "--annotations", data_synthetic["val_csv"], "--output",
            str(tmp_path / "c.yaml")]
    assert main(base + ["--target-gflops", "1e-6"]) == 2
    err = _error_line(capsys.readouterr().err)
    assert "below the minimum reachable" in err and "reachable range" in err
    assert main(base + ["--target-gflops", "1000"]) == 2
    assert "dense" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "c.yaml").exists()


def test_sweep_table_and_plot(tmp_path, ats_cfg, data_synthetic, capsys):
    out = tmp_path / "sweep"
    rc = main(["sweep", "--config", ats_cfg, "--annotations", data_synthetic["val_csv"], "--scales", "0.5", "1.0",
               "--selections", "ats", "topk", "--views", "1x1", "--output", str(out)])
    assert rc == 0
    r = json.loads((out / "sweep.json").read_text())
    rows = r["rows"]
    assert [(x["selection"], x["scale"]) for x in rows] == [("dense", None), ("ats", 0.5), ("ats", 1.0),
                                                            ("topk", 0.5), ("topk", 1.0)]
    dense = rows[0]["gflops_mean"]
    for x in rows:
        assert x["top1"] is not None and 0 <= x["top1"] <= 100 and x["num_videos"] == 4
    for x in rows[1:]:
        assert x["gflops_mean"] < dense
    assert rows[1]["gflops_mean"] < rows[2]["gflops_mean"]       # fewer tokens, fewer FLOPs
    assert rows[1]["num_tokens"] == [0.25, 0.15]
    lines = (out / "sweep.csv").read_text().strip().splitlines()
    assert lines[0].startswith("selection,scale,num_tokens,top1,top5,gflops_mean") and len(lines) == 6
    _image_ok(str(out / "accuracy_vs_gflops.png"))
    assert main(["sweep", "--config", ats_cfg, "--annotations", data_synthetic["val_csv"], "--selections", "best",
                 "--output", str(out)]) == 2
    assert "unknown selection" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_kept_positions_match_counts(ats_cfg, name):
    import torch

    from video_ats.analysis.common import KeptPositions, build_eval_model
    from video_ats.engine.config import load_config

    kwargs = dict(TINY, head_num_heads=2, head_mlp_dim=32) if name == "xvit" else TINY
    cfg = load_config(ats_cfg, [f"model.name={name}", f"model.kwargs={json.dumps(kwargs)}"])
    model = build_eval_model(cfg, None)
    x = torch.randn(3, 3, 8, 32, 32)
    with KeptPositions(model) as hooks:
        model(x)
    assert set(hooks.positions) == {1, 2}
    for b, lst in hooks.positions.items():
        assert [len(p) for p in lst] == model.last_kept_tokens[b].tolist()
        for p in lst:
            assert p[:, 0].max() < 8 and p[:, 1].max() < 16
    # block 2 keeps a subset of block 1's tokens
    for p1, p2 in zip(hooks.positions[1], hooks.positions[2]):
        s1 = {tuple(v) for v in p1.tolist()}
        assert all(tuple(v) in s1 for v in p2.tolist())
    # hooks and method wrappers are removed afterwards
    assert all(not blk._forward_hooks and "forward_packed" not in vars(blk) for blk in model.blocks)


def test_scale_num_tokens():
    from video_ats.analysis.common import scale_num_tokens

    assert scale_num_tokens([0.5, 8], 0.5) == [0.25, 4]
    assert scale_num_tokens([0.5, 8], 10) == [0.999999, 80]
    assert scale_num_tokens([0.5, 3], 1e-9) == [1e-06, 1]


def test_calibrate_survives_non_monotone_gflops(ats_cfg, monkeypatch):
    """A dip in GFLOPs(s) (ATS adaptivity) must not stop the search from landing in the window."""
    import torch

    from video_ats.analysis import calibrate as K
    from video_ats.analysis import common as A
    from video_ats.analysis.common import build_eval_model
    from video_ats.engine.builders import model_data_settings
    from video_ats.engine.config import load_config

    cfg = load_config(ats_cfg)
    model = build_eval_model(cfg, None)
    settings = model_data_settings(cfg, model)

    def fake_measure(m, clips, batch_size=8, device=None, with_positions=False):
        k0, k1 = m.ats.num_tokens
        g = 0.001 * (1 + 5 * k0 + 3 * k1) - (0.002 if 0.3 < k0 < 0.6 else 0.0)   # a notch: non-monotone
        return {"gflops": torch.full((clips.shape[0],), g, dtype=torch.float64), "kept": {}}

    monkeypatch.setattr(A, "measure", fake_measure)
    clips = torch.zeros(2, 3, 8, 32, 32)
    for target in (0.0022, 0.0030, 0.0063, 0.0085):
        res = K.calibrate(model, clips, settings, target)
        assert target * 0.98 <= res["gflops_mean"] <= target, (target, res["gflops_mean"], res["trials"])
        assert res["evaluations"] == len(res["trials"])
    # GFLOPs jump from 0.00308 to 0.00508 (s = 1.2): a target in the gap is refused with the neighbours
    with pytest.raises(UserError, match="closest are 0.003.* and 0.005"):
        K.calibrate(model, clips, settings, 0.0046)
    assert model.ats.num_tokens == (0.5, 0.3)        # the model's own K is restored


def test_cli_help_lists_analysis_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "profile" in text and "calibrate" in text and "sweep" in text
    for cmd in ("profile", "calibrate", "sweep"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "--config" in capsys.readouterr().out
