"""The speed benchmark runs end to end on a tiny model (no wall-clock assertions: figures live in the README)."""
import json

from video_ats.cli import main


def test_benchmark_command_writes_rows(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["benchmark", "--model", "timesformer", "--model-arg", "img_size=32", "--model-arg", "patch_size=8",
               "--model-arg", "embed_dim=32", "--model-arg", "depth=10", "--model-arg", "num_heads=2",
               "--model-arg", "num_frames=4", "--batch", "2", "--repeats", "1", "--warmup", "0",
               "--ats", "half", "--ats", '{"blocks": [1], "num_tokens": 8}', "--output", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["setting"] for r in rows} == {"dense", "half", "ats2", "official"}
    for r in rows:
        assert r["seconds_per_batch"] > 0 and r["gflops_per_clip"] > 0
        if r["setting"] == "ats2":
            assert 0 <= r["ats_share_of_forward"] < 1
            assert r["kept_tokens_per_block"] == {"1": r["kept_tokens_per_block"]["1"]}
            assert 1 <= r["kept_tokens_per_block"]["1"] <= 8
            assert r["flop_ratio_vs_dense"] > 1
            assert r["peak_forward_memory_mb"] >= 0
    assert (tmp_path / "bench.md").read_text().startswith("| setting")


def test_benchmark_bad_arguments_are_one_line_errors(capsys):
    assert main(["benchmark", "--ats", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a preset" in err[0]
    assert main(["benchmark", "--model-arg", "depth"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
