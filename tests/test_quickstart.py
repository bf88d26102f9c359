"""`video-ats quickstart --sweep` end to end at a tiny size (the real run is in the README)."""
import csv
import json

from video_ats.cli import main


def test_quickstart_with_sweep_runs_end_to_end(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["quickstart", "data.num_workers=0", "train.progress=false", "--epochs", "1", "--ats-epochs", "1",
            "--videos-per-class", "4", "--data", str(data), "--out", str(out), "--sweep", "--scales", "1.0"]
    assert main(args) == 0
    rows = json.loads((out / "quickstart.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["TimeSformer-tiny (dense)", "TimeSformer-tiny + ATS"]
    dense, ats = rows
    assert dense["num_videos"] == ats["num_videos"] == 4          # 1 val video per class
    assert ats["gflops_per_view"]["mean"] < dense["gflops_per_view"]["mean"] == dense["dense_gflops_per_view"]
    with open(out / "sweep" / "sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    assert [r["selection"] for r in sweep] == ["dense", "ats", "topk", "random", "ats fine-tuned"]
    assert float(sweep[-1]["gflops_mean"]) == ats["gflops_per_view"]["mean"]
    assert (out / "sweep" / "accuracy_vs_gflops.png").stat().st_size > 10_000
    assert "|" in (out / "quickstart.md").read_text()
    # the synthetic dataset is cached: a second run does not regenerate it
    capsys.readouterr()
    assert main(args[:-3]) == 0
    assert "cached" in capsys.readouterr().out
