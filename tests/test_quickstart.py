"""`video-ats quickstart --sweep` end to end at a tiny size (the real run is in the README)."""
import csv
import json

import pytest

from video_ats.cli import main


def test_quickstart_with_sweep_runs_end_to_end(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["quickstart", "data.num_workers=0", "train.progress=false", "train.batch_size=4", "--epochs", "1", "--ats-epochs", "1",
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
    # the synthetic dataset and both trainings are cached: a second run evaluates again and reports the
    # training times measured when they ran
    first = json.loads((out / "quickstart.json").read_text())["train_seconds"]
    capsys.readouterr()
    assert main(args[:-3]) == 0
    printed = capsys.readouterr().out
    assert "synthetic dataset: cached" in printed and "[dense] cached" in printed and "[ats] cached" in printed
    assert json.loads((out / "quickstart.json").read_text())["train_seconds"] == first


@pytest.mark.slow
def test_quickstart_dense_model_beats_chance_by_a_wide_margin(tmp_path):
    """The real quickstart recipe (a few minutes): 4 classes, chance is 25 % Top-1."""
    out = tmp_path / "out"
    assert main(["quickstart", "--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    dense, ats = json.loads((out / "quickstart.json").read_text())["rows"]
    assert dense["top1"] >= 70.0, dense["top1"]
    assert ats["gflops_per_view"]["mean"] < 0.6 * dense["gflops_per_view"]["mean"]


def test_quickstart_seeds_report_the_spread_and_publish_the_readme_block(tmp_path, capsys):
    from video_ats.commands.quickstart import README_BEGIN, README_END

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nstale\n{README_END}\n\nafter\n")
    out = tmp_path / "out"
    args = ["quickstart", "data.num_workers=0", "train.batch_size=4", "--epochs", "1", "--ats-epochs", "1",
            "--videos-per-class", "4", "--data", str(tmp_path / "data"), "--out", str(out),
            "--publish", str(tmp_path), "--seeds", "3", "5"]
    assert main(args) == 0
    result = json.loads((out / "quickstart.json").read_text())
    runs = result["seed_runs"]
    assert [r["seed"] for r in runs] == [3, 5] and result["seed"] == 3
    assert (out / "seed3" / "dense").is_dir() and (out / "seed5" / "ats").is_dir()
    assert result["rows"][0]["top1"] == runs[0]["dense_top1"]        # the table is the first seed's
    tops = [r["dense_top1"] for r in runs]
    assert result["spread"]["dense_top1"] == {"mean": round(sum(tops) / 2, 2), "min": min(tops), "max": max(tops)}
    text = readme.read_text()
    assert "stale" not in text and text.endswith("after\n") and "| 5 |" in text
    assert "dense Top-1" in capsys.readouterr().out


def test_quickstart_rejects_repeated_seeds_and_a_folder_without_readme(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "o"), "--seeds", "1", "1"]) == 2
    assert "--seeds must be distinct" in capsys.readouterr().err
    assert main(["quickstart", "--out", str(tmp_path / "o"), "--publish", str(tmp_path)]) == 2
    assert "no README.md there" in capsys.readouterr().err
