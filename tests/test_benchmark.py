"""`video-ats benchmark`: every mode runs end to end on tiny models (no wall-clock assertions: the
figures live in the README, regenerated from results files by `video-ats benchmark report`).

Device-aware: VIDEO_ATS_TEST_DEVICE=cuda runs the speed benchmarks on the GPU (see tests/conftest.py)."""
import json
import math
import os

import pytest
import torch
from _models import tiny_timesformer

from video_ats.cli import main

TINY = ["model.name=timesformer", "model.num_classes=5", "model.kwargs.img_size=32", "model.kwargs.patch_size=8",
        "model.kwargs.embed_dim=32", "model.kwargs.depth=4", "model.kwargs.num_heads=2", "model.kwargs.num_frames=4"]
TINY_XVIT = ["model.name=xvit", "model.num_classes=5", "model.kwargs.img_size=32", "model.kwargs.patch_size=8",
             "model.kwargs.embed_dim=32", "model.kwargs.depth=4", "model.kwargs.num_heads=2",
             "model.kwargs.num_frames=4", "model.kwargs.head_num_heads=2", "model.kwargs.head_mlp_dim=32"]
ATS = ["--ats", "{blocks: [1, 2], num_tokens: [0.5, 0.5]}"]
FAST = ["--repeats", "1", "--warmup", "0", "--no-memory"]


def _rows(path):
    res = json.loads(path.read_text())
    assert res["kind"] == "speed"
    return res["meta"], res["rows"]


def test_speed_uniform_skewed_model_patterns(tmp_path, device):
    out = tmp_path / "speed.json"
    rc = main(["benchmark", *TINY, *ATS, "--ats", "{blocks: [2], num_tokens: 5}", "--keep-pattern", "uniform",
               "skewed", "model", "--batch", "1", "3", "--pattern-clips", "3", "--device", str(device), *FAST,
               "--repeats", "3", "--json", str(out)])
    assert rc == 0
    meta, rows = _rows(out)
    assert meta["token_grid"] == [4, 4, 4] and meta["mode"] == "inference" and meta["device"] == str(device)
    keys = {(r["setting"], r["pattern"], r["batch"]) for r in rows}
    for b in (1, 3):
        assert ("dense", None, b) in keys and ("official", None, b) in keys
        for s in ("ats1", "ats2"):
            for p in ("uniform", "skewed", "model"):
                assert (s, p, b) in keys
    for r in rows:
        assert r["seconds_per_batch"] > 0 and r["gflops_per_clip"] > 0 and r["speedup_vs_dense"] > 0
        dense_ops = next(d["ops_per_step"] for d in rows if d["setting"] == "dense" and d["batch"] == r["batch"])
        if r["pattern"] is not None:
            assert r["efficiency"] == pytest.approx(r["speedup_vs_dense"] / r["flop_ratio_vs_dense"], rel=1e-3)
            lo, hi = r["efficiency_range"]               # the rounds' own ratios bracket their median
            assert lo <= r["efficiency"] <= hi and r["rounds"] == 3
            assert 0 <= r["ats_share"] < 1 and r["flop_ratio_vs_dense"] > 1
            assert r["ops_per_step"] > dense_ops             # scoring, sampling and token bookkeeping
        elif r["setting"] == "dense":
            assert dense_ops > 100                            # 4 blocks of linears, norms, attention
        if r["pattern"] == "uniform" and r["setting"] == "ats1":
            assert r["kept_tokens_per_block"]["1"]["min"] == r["kept_tokens_per_block"]["1"]["max"] == 32
        if r["pattern"] == "skewed" and r["setting"] == "ats1" and r["batch"] == 1:
            assert r["pattern_batches"] == 3             # 3 pattern clips walked at batch 1
            assert r["gflops_max"] > r["gflops_min"]     # skewed clips differ in cost
    # the report renders it; tables come from the file
    capsys_rc = main(["benchmark", "report", str(out)])
    assert capsys_rc == 0


def test_speed_xvit_reports_ats_share_and_skewed_efficiency(tmp_path, device):
    out = tmp_path / "xvit.json"
    assert main(["benchmark", *TINY_XVIT, *ATS, "--keep-pattern", "uniform,skewed", "--batch", "2",
                 "--device", str(device), *FAST, "--json", str(out)]) == 0
    meta, rows = _rows(out)
    assert meta["model_class"] == "XViT"
    assert {r["setting"] for r in rows} == {"dense", "ats1"}          # no official forward for X-ViT
    ats = [r for r in rows if r["pattern"]]
    assert {r["pattern"] for r in ats} == {"uniform", "skewed"}
    assert all(r["ats_share"] > 0 and "efficiency" in r for r in ats)


def test_speed_replays_an_exported_pattern_file(tmp_path, device):
    from video_ats.benchmark.patterns import save_pattern_file

    g = torch.Generator().manual_seed(0)
    st = torch.randint(0, 3, (4, 2, 2, 2), generator=g, dtype=torch.uint8)
    st[:, :, 0, 0] = 2
    f = tmp_path / "trained.pt"
    save_pattern_file(str(f), st, {"source_blocks": [1, 2], "source_depth": 4, "num_stages": 2})
    out = tmp_path / "replay.json"
    assert main(["benchmark", *TINY, "--keep-pattern", str(f), "--batch", "2", "--device", str(device), *FAST,
                 "--no-official", "--json", str(out)]) == 0
    meta, rows = _rows(out)
    rep = [r for r in rows if r["setting"] == "replay"]
    assert len(rep) == 1 and rep[0]["pattern"] == "replay:trained" and rep[0]["ats"]["blocks"] == [1, 2]
    assert meta["replay"]["replay:trained"]["source_grid"] == [2, 2, 2]
    up = st.repeat_interleave(2, 1).repeat_interleave(2, 2).repeat_interleave(2, 3)      # 2x2x2 -> 4x4x4
    want = (up > 0).flatten(1).sum(1).double()              # a round walks all 4 clips (2 batches of 2)
    assert rep[0]["pattern_batches"] == 2
    assert rep[0]["kept_tokens_per_block"]["1"]["mean"] == pytest.approx(float(want.mean()))


def test_default_settings_are_the_model_family_presets(tmp_path):
    out = tmp_path / "d.json"
    deep = [kv for kv in TINY if "depth" not in kv] + ["model.kwargs.depth=11"]
    assert main(["benchmark", *deep, "--batch", "1", *FAST, "--no-official", "--json", str(out)]) == 0
    meta, rows = _rows(out)
    assert list(meta["settings"]) == ["mild", "half"]
    assert {r["setting"] for r in rows} == {"dense", "mild", "half"}


def test_speed_train_mode_runs(tmp_path, device):
    out = tmp_path / "train.json"
    assert main(["benchmark", *TINY, *ATS, "--train", "--keep-pattern", "uniform", "skewed", "--batch", "2",
                 "--device", str(device), *FAST, "--json", str(out)]) == 0
    meta, rows = _rows(out)
    assert meta["mode"] == "train"
    assert {r["setting"] for r in rows} == {"dense", "ats1"}           # the official forward is inference only
    assert all(r["mode"] == "train" and r["seconds_per_batch"] > 0 for r in rows)
    assert all("efficiency" in r for r in rows if r["pattern"])


def test_speed_amp_bf16_and_memory(tmp_path, device):
    out = tmp_path / "amp.json"
    assert main(["benchmark", *TINY, *ATS, "--amp", "bf16", "--batch", "1", "--repeats", "1", "--warmup", "0",
                 "--no-official", "--device", str(device), "--json", str(out)]) == 0
    meta, rows = _rows(out)
    assert meta["amp"] == "bf16"
    assert all(r["peak_memory_mb"] is not None and r["peak_memory_mb"] >= 0 for r in rows)


def test_peak_memory_in_process_cpu():
    from video_ats.benchmark.memory import cpu_step_peak_mb
    from video_ats.engine.config import load_config

    cfg = load_config(None, TINY)
    mb = cpu_step_peak_mb({"cfg": cfg, "ats": {"blocks": [1], "num_tokens": [0.5]}, "pattern": "skewed",
                           "batch": 2, "train": True, "amp": "off"})
    assert mb >= 0


@pytest.mark.slow
def test_speed_compile_mode_runs(tmp_path, device):
    """torch.compile of the dense and the ATS model (minutes on a busy 2-core CPU: slow)."""
    out = tmp_path / "compile.json"
    assert main(["benchmark", *TINY, *ATS, "--compile", "--keep-pattern", "uniform", "--batch", "2",
                 "--device", str(device), *FAST, "--no-official", "--json", str(out)]) == 0
    _, rows = _rows(out)
    for r in rows:
        c = r["compile"]
        assert c["ok"] or c["error"]                    # compiled, or one line saying why not
        if c["ok"] and r["pattern"]:
            assert c["new_graph_breaks"] >= 1           # at least at the scripted sampler


@pytest.mark.slow
@pytest.mark.parametrize("tiny", [TINY, TINY_XVIT], ids=["timesformer", "xvit"])
def test_compile_blocks_has_no_graph_break_and_keeps_the_logits(tmp_path, tiny):
    """--compile blocks: every runner compiled, no graph break anywhere (the bookkeeping is never traced), and
    the regions give the eager logits."""
    from video_ats.benchmark.speed import compile_blocks, uncompile_blocks
    from video_ats.engine.builders import build_model
    from video_ats.engine.config import load_config

    out = tmp_path / "blocks.json"
    assert main(["benchmark", *tiny, *ATS, "--compile", "blocks", "--keep-pattern", "uniform", "skewed",
                 "--batch", "2", *FAST, "--no-official", "--json", str(out)]) == 0
    meta, rows = _rows(out)
    assert meta["compile"] == "blocks" and len(rows) == 3
    for r in rows:
        assert r["compile"]["ok"] and r["compile"]["scope"] == "blocks" and r["compile"]["new_graph_breaks"] == 0
    torch.manual_seed(0)
    model = build_model(load_config(None, tiny), ats={"blocks": [1, 2], "num_tokens": [0.5, 0.5]}).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        eager = model(x)
        assert compile_blocks(model) == 3 * 4
        compiled = model(x)
        uncompile_blocks(model)
        again = model(x)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert torch.equal(again, eager)


def test_compile_blocks_failure_is_one_line_and_every_runner_goes_on_eagerly(tmp_path, monkeypatch, capsys):
    def broken_compile(self, *a, **k):               # what a missing C compiler does: fail at the first call
        def fail(*args, **kwargs):
            raise RuntimeError("no C compiler found\nlong traceback text")
        self._compiled_call_impl = fail

    monkeypatch.setattr(torch.nn.Module, "compile", broken_compile)
    out = tmp_path / "c.json"
    assert main(["benchmark", *TINY, *ATS, "--compile", "blocks", "--batch", "1", *FAST, "--no-official",
                 "--json", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "compile failed" in line]
    assert len(lines) == 1 and "RuntimeError: no C compiler found" in lines[0]
    _, rows = _rows(out)
    assert len(rows) == 2 and all(r["compile"] == {"ok": False, "error": "RuntimeError: no C compiler found"}
                                  for r in rows)
    assert all(r["seconds_per_batch"] > 0 for r in rows)


def test_compile_failure_is_one_line_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise RuntimeError("no C compiler found\nlong traceback text")

    monkeypatch.setattr(torch, "compile", broken)
    out = tmp_path / "c.json"
    assert main(["benchmark", *TINY, *ATS, "--compile", "--batch", "1", *FAST, "--no-official",
                 "--json", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "compile failed" in line]
    assert len(lines) == 2 and "RuntimeError: no C compiler found" in lines[0]
    _, rows = _rows(out)
    assert all(r["compile"] == {"ok": False, "error": "RuntimeError: no C compiler found"} for r in rows)


def test_a_run_cut_short_keeps_the_rows_it_measured(tmp_path, monkeypatch):
    """Rows reach the --json file as they are measured (marked incomplete), so a time limit or Ctrl-C
    in the middle of a long benchmark loses only the row in progress."""
    from video_ats.benchmark import speed

    real_row, calls = speed._row, []

    def row_then_stop(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_row(*a, **k)

    monkeypatch.setattr(speed, "_row", row_then_stop)
    out = tmp_path / "cut.json"
    assert main(["benchmark", *TINY, *ATS, "--keep-pattern", "uniform", "skewed", "--batch", "1", *FAST,
                 "--no-official", "--json", str(out)]) == 130           # "interrupted"
    res = json.loads(out.read_text())
    assert res["complete"] is False and [r["setting"] for r in res["rows"]] == ["dense", "ats1"]
    assert "Partial results" in main_report(out)
    monkeypatch.setattr(speed, "_row", real_row)
    assert main(["benchmark", *TINY, *ATS, "--batch", "1", *FAST, "--no-official", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] is True and "Partial results" not in main_report(out)


def main_report(path):
    from video_ats.benchmark.report import load_results, render_speed

    return render_speed(load_results(str(path)))


def test_key_value_overrides_and_deprecated_model_arg(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["benchmark", *TINY, "--batch", "1", *ATS, "--keep-pattern", "uniform", *FAST, "--no-official",
                 "--json", str(a)]) == 0
    old = ["--model", "timesformer", "model.num_classes=5"]
    for kv in TINY[2:]:
        old += ["--model-arg", kv.split(".", 2)[2]]
    assert main(["benchmark", *old, "--batch", "1", *ATS, *FAST, "--no-official", "--output", str(b)]) == 0
    assert "deprecated" in capsys.readouterr().err
    ma, mb = _rows(a)[0], _rows(b)[0]
    assert ma["model_kwargs"] == {k.split(".", 2)[2].split("=")[0]: int(k.split("=")[1]) for k in TINY[2:]}
    assert ma["model_kwargs"] == mb["model_kwargs"] and ma["model"] == mb["model"] == "timesformer"
    # key=value swallowed by --batch (nargs) still counts as an override
    c = tmp_path / "c.json"
    assert main(["benchmark", *ATS, *FAST, "--no-official", "--json", str(c), "--batch", "1", *TINY]) == 0
    assert _rows(c)[0]["model"] == "timesformer"


@pytest.mark.parametrize("argv,match", [
    (["--keep-pattern", "nope.pt"], "no such file"),
    (["--keep-pattern", "sharp"], "unknown keep pattern"),
    (["--ats", "nonsense"], "neither a preset"),
    (["model.kwargs.depth"], "unexpected argument"),
    (["model.nonsense=3"], "nonsense"),
    (["--batch", "0"], "must be ≥ 1"),
    (["--model-arg", "depth"], "KEY=VALUE"),
    (["--loader", "test"], "option of `video-ats benchmark data`"),
    (["report"], "needs results files"),
    (["report", "missing.json"], "not found"),
    (["export-keep", "--out", "x.pt"], "needs --checkpoint"),
    (["data", "--data", "/nonexistent/folder"], "no such folder"),
    (["attention", "--layouts", "padded", "sideways"], "'sideways' is not a layout"),
    (["attention", "--layouts", "nested:500"], "only bucketed takes a call cost"),
    (["attention", "--cases", "diagonal"], "not a case"),
    (["attention", "model.name=xvit"], "takes no positional arguments"),
    (["--layouts", "padded"], "option of `video-ats benchmark attention`"),
    (["attention", "--amp", "bf16"], "not of mode attention"),
    (["precision", "--amp", "off"], "compares fp32 with autocast"),
    (["precision", "--ats", "nonsense"], "neither a preset"),
    # the default presets (blocks up to 10) on a shallow model: say so, not "block 4 is not a block index"
    (["model.name=timesformer", "model.kwargs.depth=4", "model.kwargs.img_size=32", "--batch", "1"],
     "the default ATS presets (mild: blocks [4, 7, 10]; half: blocks [3, 5, 7, 9]) need blocks this depth-4"),
    (["precision", "model.name=timesformer", "model.kwargs.depth=4", "model.kwargs.img_size=32", "--amp", "bf16"],
     "the default ATS presets (mild: blocks [4, 7, 10]) need blocks this depth-4"),
])
def test_bad_inputs_are_one_line_errors_with_exit_code_2(argv, match, capsys):
    assert main(["benchmark", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_when_unavailable_is_one_line(capsys):
    assert main(["benchmark", *TINY, "--device", "cuda", "--amp", "bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]


def test_report_fills_the_readme_block(tmp_path):
    from video_ats.benchmark import report

    res = {"kind": "speed", "meta": {"model": "timesformer", "token_grid": [4, 4, 4], "device": "cpu",
                                     "device_name": "x86_64", "amp": "off", "torch": "2.x", "threads": 2,
                                     "mode": "inference", "compile": False, "command": "video-ats benchmark"},
           "rows": [{"setting": "dense", "pattern": None, "batch": 1, "gflops_per_clip": 2.0, "gflops_min": 2.0,
                     "gflops_max": 2.0, "seconds_per_batch": 0.2, "clips_per_s": 5.0, "speedup_vs_dense": 1.0,
                     "flop_ratio_vs_dense": 1.0, "peak_memory_mb": 10.0},
                    {"setting": "half", "pattern": "skewed", "batch": 1, "gflops_per_clip": 1.0, "gflops_min": 0.5,
                     "gflops_max": 1.5, "seconds_per_batch": 0.125, "clips_per_s": 8.0, "speedup_vs_dense": 1.6,
                     "flop_ratio_vs_dense": 2.0, "efficiency": 0.8, "efficiency_range": [0.72, 0.854],
                     "ats_share": 0.01,
                     "kept_per_frame_first_ats": {"min": 2, "median": 5, "max": 12},
                     "ats": {"blocks": [1], "num_tokens": [0.5]}}]}
    data = {"kind": "data", "meta": {"generated": {"videos": 4, "size": [64, 48], "seconds": 1.0, "gop": 30},
                                     "num_frames": 4, "sampling_rate": 2, "crop": 32, "num_workers": 0,
                                     "batch_size": 2, "torch": "2.x"},
            "rows": [{"loader": "train", "video_ats_views_per_s": 30.0, "pytorchvideo_views_per_s": 10.0,
                      "ratio": 3.0}]}
    files = []
    for name, obj in (("s.json", res), ("d.json", data)):
        (tmp_path / name).write_text(json.dumps(obj))
        files.append(str(tmp_path / name))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- benchmark:begin old -->\nhand-typed\n<!-- benchmark:end -->\ntail\n")
    assert main(["benchmark", "report", *files, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "hand-typed" not in text and text.endswith("<!-- benchmark:end -->\ntail\n")
    assert report.BEGIN_LINE in text
    assert "| half | skewed | 1 | 1 (0.5–1.5) | 2–12 | 0.125 | 8.00 | 1.60 | 2.00 | **0.80** (0.72–0.85) | 1.0 % | – |" in text
    assert "| training clips | 30.0 | 10.0 | **3.0×** |" in text
    assert "Efficiency" in text
    nomark = tmp_path / "plain.md"
    nomark.write_text("nothing\n")
    assert main(["benchmark", "report", files[0], "--readme", str(nomark)]) == 2


def test_the_real_readme_has_the_benchmark_markers():
    import os

    from video_ats.benchmark import report

    path = os.path.join(os.path.dirname(__file__), "..", "README.md")
    text = open(path, encoding="utf-8").read()
    assert text.count(report.README_BEGIN) == 1 and text.count(report.README_END) == 1


def test_export_keep_writes_a_replayable_file(tmp_path, data_synthetic):
    """Export from a (random-weight) ATS checkpoint on real decoded clips, then replay the file."""
    from video_ats.benchmark.patterns import build_pattern, load_pattern_file

    kw = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2, "num_frames": 4,
          "sampling_rate": 2}
    model = tiny_timesformer(kw, paths=False, eval=False, num_classes=4)
    ckpt = tmp_path / "ats.pt"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "keep.pt"
    kwargs = "{" + ", ".join(f"{k}: {v}" for k, v in kw.items()) + "}"
    rc = main(["benchmark", "export-keep", "model.name=timesformer", "model.num_classes=4", f"model.kwargs={kwargs}",
               "model.ats={blocks: [1, 2], num_tokens: [0.5, 0.5]}", "data.target_fps=null",
               "--checkpoint", str(ckpt), "--annotations", data_synthetic["val_csv"],
               "--data-root", data_synthetic["root"], "--clips", "3", "--out", str(out)])
    assert rc == 0
    obj = load_pattern_file(str(out))
    assert obj["stages"].shape == (3, 4, 4, 4) and obj["source_blocks"] == [1, 2] and obj["source_depth"] == 4
    st = obj["stages"].flatten(1)
    assert ((st > 0).sum(1) <= 32).all() and ((st > 1).sum(1) <= 16).all() and (st > 1).any()
    pat = build_pattern(str(out), (8, 8, 8))
    assert pat.stages == 2 and pat.table.shape == (3, 8, 64)


def test_data_mode_runs_on_a_tiny_dataset(tmp_path, data_synthetic):
    pytest.importorskip("pytorchvideo")
    out = tmp_path / "data.json"
    rc = main(["benchmark", "data", "--data", data_synthetic["root"], "--num-frames", "4", "--sampling-rate", "2",
               "--crop", "32", "--scale-range", "40,48", "--num-workers", "0", "--batch-size", "2",
               "--repeats", "1", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["kind"] == "data" and [r["loader"] for r in res["rows"]] == ["test", "train"]
    assert all(r["video_ats_views_per_s"] > 0 and r["pytorchvideo_views_per_s"] > 0 for r in res["rows"])


def test_precision_mode_times_fp32_and_autocast_for_dense_and_ats(tmp_path, capsys):
    out = tmp_path / "precision.json"
    assert main(["benchmark", "precision", *TINY, *ATS, "--batch", "1", "2", "--repeats", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["kind"] == "precision" and res["meta"]["amp"] == "bf16" and res["meta"]["threads"] == 1
    rows = res["rows"]
    assert sorted((r["batch"], r["setting"], r["precision"]) for r in rows) == sorted(
        (b, s, p) for b in (1, 2) for s in ("dense", "ats1") for p in ("fp32", "bf16"))
    for r in rows:
        assert math.isfinite(r["cpu_s"]) and r["cpu_s"] > 0 and math.isfinite(r["wall_s"]) and r["wall_s"] > 0
        assert math.isfinite(r["max_abs_logit_diff_vs_fp32"]) and r["max_abs_logit_diff_vs_fp32"] >= 0
    printed = [line for line in capsys.readouterr().out.splitlines() if "s CPU" in line]
    assert len(printed) == 4 and all("fp32" in line and "bfloat16" in line and "ratio" in line for line in printed)


def test_attention_mode_times_every_layout_and_case(tmp_path, capsys):
    out = tmp_path / "attention.json"
    layouts = ["padded", "bucketed", "nested", "blockdiag", "bucketed:0"]
    assert main(["benchmark", "attention", "--batch", "1", "--repeats", "1", "--layouts", *layouts,
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["kind"] == "attention" and res["meta"]["threads"] == 1 and res["meta"]["mode"] == "inference"
    got = {(r["case"], r["layout"]) for r in res["rows"]}
    for case in ("spatial", "temporal", "ats"):                # blockdiag has no query subset: not for ats
        assert {(case, lay) for lay in layouts if not (case == "ats" and lay == "blockdiag")} <= got
    assert ("ats", "blockdiag") not in got
    for r in res["rows"]:
        assert r["batch"] == 1 and r["cpu_ms"] > 0 and r["wall_ms"] > 0 and math.isfinite(r["cpu_ms"])
        assert r["max_abs_err_vs_padded"] < 1e-4 and r["padded_ratio"] >= r["bucketed_ratio"] >= 1
    printed = capsys.readouterr().out
    assert printed.count("(query, key) pairs") == 3 and "bucketed:0" in printed


def test_attention_mode_train_runs_one_case(tmp_path):
    out = tmp_path / "attention_train.json"
    assert main(["benchmark", "attention", "--train", "--batch", "1", "--repeats", "1", "--layouts", "padded",
                 "bucketed", "--cases", "temporal", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["mode"] == "train"
    assert [(r["case"], r["layout"]) for r in res["rows"]] == [("temporal", "padded"), ("temporal", "bucketed")]


def test_matmul_rates_per_row_count_and_report(tmp_path, capsys):
    out = tmp_path / "mm.json"
    assert main(["benchmark", "matmul", "--rows", "32", "8,16", "--dim", "32", "--repeats", "2", "--threads", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["kind"] == "matmul" and res["meta"]["threads"] == 1 and res["meta"]["dim"] == 32
    assert res["meta"]["shapes"] == {"qkv": [32, 96], "proj": [32, 32], "fc1": [32, 128], "fc2": [128, 32]}
    assert [r["rows"] for r in res["rows"]] == [8, 16, 32]                 # sorted, from both spellings
    for r in res["rows"]:
        assert set(r["gflops_per_s"]) == {"qkv", "proj", "fc1", "fc2"} and min(r["gflops_per_s"].values()) > 0
    top = res["rows"][-1]
    assert top["relative_rate"] == pytest.approx(1.0)                       # the reference is the most rows
    capsys.readouterr()
    assert main(["benchmark", "report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| rows | qkv | proj | fc1 | fc2 | rate vs the most rows |" in text and "| 32 |" in text


def test_results_files_record_the_allocator_settings_they_ran_under(tmp_path, monkeypatch):
    """glibc's MALLOC_* settings move CPU timings by several percent, so the command a results file
    records carries them; without them it is the plain command."""
    out = tmp_path / "mm.json"
    argv = ["benchmark", "matmul", "--rows", "8", "--dim", "32", "--repeats", "1", "--threads", "1",
            "--json", str(out)]
    monkeypatch.setattr("sys.argv", ["/venv/bin/video-ats", *argv])
    for name in [k for k in os.environ if k.startswith("MALLOC_")] + ["GLIBC_TUNABLES", "LD_PRELOAD"]:
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 0
    assert json.loads(out.read_text())["meta"]["command"] == "video-ats " + " ".join(argv)
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1 x")
    assert main(argv) == 0
    assert json.loads(out.read_text())["meta"]["command"] == (
        "GLIBC_TUNABLES='glibc.malloc.trim_threshold=1 x' MALLOC_MMAP_MAX_=0 video-ats " + " ".join(argv))


@pytest.mark.parametrize("argv, message", [
    (["matmul", "--rows", "0"], "--rows must be ≥ 1"),
    (["matmul", "--rows", "many"], "--rows 'many' is not an integer"),
    (["matmul", "--rows", "100000000"], "GiB of tensors"),
    (["matmul", "model.name=x"], "takes no positional arguments"),
    (["--rows", "8"], "is an option of `video-ats benchmark matmul`"),
])
def test_matmul_bad_options_are_one_line(argv, message, capsys):
    assert main(["benchmark", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_matmul_reports_its_rounds_as_it_goes():
    from video_ats.benchmark.matmul import MatmulSpec, run_matmul

    partial = []
    res = run_matmul(MatmulSpec(rows=(4, 8), dim=16, repeats=3, min_seconds=0.0), log=lambda _m: None,
                     on_round=partial.append)
    assert [p["complete"] for p in partial] == [False, False] and res["complete"]
    assert [p["rows"][0]["rounds"] for p in partial] == [1, 2] and res["rows"][0]["rounds"] == 3
    from video_ats.benchmark.report import render_matmul

    assert "stopped after 1 of 3 rounds" in render_matmul(partial[0])


def _bad_results(tmp_path):
    good = {"kind": "matmul", "meta": {"dim": 8, "shapes": {"qkv": [8, 24]}, "device": "cpu", "torch": "2", "threads": 1},
            "rows": [{"rows": 4, "gflops_per_s": {"qkv": 1.0}, "relative_rate": 1.0}]}
    cases = {"no_rows": {**good, "rows": []}, "no_meta": {k: v for k, v in good.items() if k != "meta"},
             "rate_text": {**good, "rows": [{"rows": 4, "gflops_per_s": {"qkv": "fast"}, "relative_rate": 1.0}]},
             "row_int": {**good, "rows": [3]}, "wrong_kind": {**good, "kind": "speed"}}
    for name, obj in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(obj))
    return list(cases)


def test_report_refuses_malformed_results_and_readmes_in_one_line(tmp_path, capsys):
    readme = tmp_path / "README.md"
    body = "# x\n<!-- benchmark:begin -->\nkept tables\n<!-- benchmark:end -->\n"
    readme.write_text(body)
    for name in _bad_results(tmp_path):
        assert main(["benchmark", "report", str(tmp_path / f"{name}.json"), "--readme", str(readme)]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "results file" in err[0], (name, err)
        assert readme.read_text() == body                 # nothing written over the tables
    (tmp_path / "mm.json").write_text(json.dumps({"kind": "matmul", "meta": {
        "dim": 8, "shapes": {"qkv": [8, 24]}, "device": "cpu", "torch": "2", "threads": 1},
        "rows": [{"rows": 4, "gflops_per_s": {"qkv": 1.0}, "relative_rate": 1.0}]}))
    reversed_md = tmp_path / "rev.md"
    reversed_md.write_text("<!-- benchmark:end -->\n<!-- benchmark:begin -->\n")
    latin = tmp_path / "latin.md"
    latin.write_bytes(b"\xff<!-- benchmark:begin -->\n<!-- benchmark:end -->\n")
    for target, message in ((reversed_md, "comes before the begin marker"), (latin, "not UTF-8"),
                            (tmp_path, "is a folder")):
        assert main(["benchmark", "report", str(tmp_path / "mm.json"), "--readme", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("argv, message", [
    (["--replay-blocks", "1"], "--replay-blocks places the stages of a replayed keep-pattern file"),
    (["export-keep", "--checkpoint", "missing.pt", "--out", "."], "--out . is a folder"),
])
def test_speed_and_export_options_are_checked_before_any_work(argv, message, capsys):
    assert main(["benchmark", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("change, message", [
    ({"stages": torch.zeros(2, 0, 2, 2, dtype=torch.uint8)}, "stages must be (clips, T, H, W)"),
    ({"stages": torch.full((1, 1, 2, 2), float("nan"))}, "stages must be counts"),
    ({"stages": torch.zeros(1, 2, 2, 2, dtype=torch.uint8)}, "keeps nothing"),
    ({"num_stages": "abc"}, "num_stages must be an integer"),
    ({"source_depth": 0}, "source_depth must be an integer"),
    ({"source_blocks": "xy"}, "source_blocks must be a list"),
])
def test_keep_pattern_files_with_bad_contents_are_one_line(tmp_path, change, message):
    from video_ats.benchmark.patterns import FILE_FORMAT, build_pattern
    from video_ats.errors import UserError

    obj = {"format": FILE_FORMAT, "stages": torch.ones(1, 2, 2, 2, dtype=torch.uint8), "num_stages": 1,
           "source_depth": 4, "source_blocks": [1], **change}
    path = tmp_path / "bad.keep"
    torch.save(obj, path)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_pattern(str(path), (2, 4, 4))
    with pytest.raises(UserError, match="is a folder"):
        build_pattern(str(tmp_path) + "/", (2, 4, 4))


@pytest.mark.parametrize("argv", [["benchmark", "--compile", "bogus"], ["benchmark", "matmul", "--rows"],
                                  ["no-such-command"], ["benchmark", "--json", ""], ["benchmark", "--device", " "],
                                  ["benchmark", "--keep-pattern", "uniform", ""]])
def test_argument_errors_are_one_line_with_the_help_to_read(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "--help`)" in err[0], err
