"""Evaluation: per-video aggregation with known scores, GFLOPs per view, failures, resume, results schema."""
import json
import os

import pytest
import torch

from video_ats.data import MultiViewDataset, read_annotations
from video_ats.engine import build_model, load_config, model_data_settings
from video_ats.engine.evaluate import combine_views, evaluate, predictions_path, summarize, write_results
from video_ats.flops import count_gflops

RESULT_KEYS = {"top1", "top5", "views", "num_videos", "num_failed", "failed", "gflops_per_view",
               "dense_gflops_per_view", "combine", "clip_position"}


def test_combine_views_known_scores():
    logits = torch.tensor([[5.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0]])
    soft = combine_views(logits, "softmax_mean")
    assert soft.argmax() == 1                                   # averaged probabilities favour class 1
    expect = torch.softmax(logits.double(), -1).mean(0)
    torch.testing.assert_close(soft, expect)
    assert combine_views(logits, "logit_sum").argmax() == 0    # summed logits favour class 0
    assert combine_views(logits, "logit_sum").tolist() == [5.0, 4.0, 0.0]


def test_summarize_micro_accuracy():
    recs = [
        {"video_index": 0, "path": "a", "label": 0, "error": None, "scores": [0.9, 0.1, 0.0], "gflops": [1.0, 3.0]},
        {"video_index": 1, "path": "b", "label": 0, "error": None, "scores": [0.8, 0.1, 0.1], "gflops": [2.0, 2.0]},
        {"video_index": 2, "path": "c", "label": 0, "error": None, "scores": [0.8, 0.1, 0.1], "gflops": [2.0, 2.0]},
        {"video_index": 3, "path": "d", "label": 2, "error": None, "scores": [0.5, 0.4, 0.1], "gflops": [2.0, 2.0]},
        {"video_index": 4, "path": "e", "label": 1, "error": "cannot decode"},
    ]
    s = summarize(recs, num_classes=3)
    assert s["top1"] == pytest.approx(75.0)          # micro: 3 of 4 videos (macro would give 33.3)
    assert s["top5"] == pytest.approx(100.0) and s["top5_k"] == 3
    assert s["num_videos"] == 4 and s["num_failed"] == 1 and s["failed"] == [{"path": "e", "error": "cannot decode"}]
    assert s["gflops_per_view"]["mean"] == pytest.approx(2.0) and s["gflops_per_view"]["min"] == 1.0
    assert s["gflops_per_view"]["max"] == 3.0 and s["gflops_per_view"]["std"] == pytest.approx(0.5)


def _setup(engine_data, engine_ov, tmp_path, ats=True):
    extra = {"model.ats": "{blocks: [1], num_tokens: [0.5]}"} if ats else {}
    cfg = load_config(None, engine_ov(engine_data, tmp_path / "run", **extra))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    settings = model_data_settings(cfg, model)
    records, _ = read_annotations(engine_data["val_csv"], data_root=engine_data["root"])
    return cfg, model, settings, records


def test_evaluate_matches_manual_per_video_aggregation(engine_data, engine_ov, tmp_path):
    cfg, model, settings, records = _setup(engine_data, engine_ov, tmp_path)
    out = str(tmp_path / "results.json")
    res = evaluate(model, records, settings, views=(2, 3), combine="softmax_mean", batch_videos=3,
                   num_classes=4, output=out)
    assert res["num_videos"] == len(records) and res["num_failed"] == 0 and res["views"] == "2x3"
    ds = MultiViewDataset(records, settings["num_frames"], settings["sampling_rate"], settings["crop_size"],
                          num_clips=2, num_crops=3, mean=settings["mean"], std=settings["std"])
    preds = [json.loads(line) for line in open(predictions_path(out))][1:]
    assert [p["video_index"] for p in preds] == list(range(len(records)))
    correct, gflops = 0, []
    with torch.no_grad():
        for v in range(len(records)):
            x = torch.cat([ds[2 * v]["video"], ds[2 * v + 1]["video"]])    # 6 views
            logits = torch.cat([model(x[i:i + 1]) for i in range(6)])       # one view at a time
            g = count_gflops(model, x)
            gflops += g.tolist()
            scores = torch.softmax(logits.double(), -1).mean(0)
            torch.testing.assert_close(torch.tensor(preds[v]["scores"], dtype=torch.float64), scores,
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(torch.tensor(preds[v]["gflops"], dtype=torch.float64), g)
            correct += int(scores.argmax() == records[v].label)
    assert res["top1"] == pytest.approx(100.0 * correct / len(records))
    assert res["gflops_per_view"]["mean"] == pytest.approx(sum(gflops) / len(gflops))
    model.set_ats(None)
    dense = float(count_gflops(model, x[:1])[0])
    assert res["dense_gflops_per_view"] == pytest.approx(dense)
    assert res["gflops_per_view"]["max"] <= dense


def test_failed_videos_are_listed_and_results_schema(engine_data, engine_ov, tmp_path):
    cfg, model, settings, records = _setup(engine_data, engine_ov, tmp_path, ats=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    from video_ats.data import VideoRecord
    records = records + [VideoRecord(str(bad), 1), VideoRecord(str(tmp_path / "missing.mp4"), 2)]
    res = evaluate(model, records, settings, views=(1, 3), batch_videos=4, num_classes=4)
    assert res["num_failed"] == 2 and res["num_videos"] == len(records) - 2
    assert {f["path"] for f in res["failed"]} == {str(bad), str(tmp_path / "missing.mp4")}
    assert all(f["error"] for f in res["failed"])
    assert RESULT_KEYS <= set(res)
    assert res["combine"] == "softmax_mean" and res["clip_position"] == "start"
    assert set(res["gflops_per_view"]) == {"mean", "std", "min", "max"}
    assert res["gflops_per_view"]["mean"] == pytest.approx(res["dense_gflops_per_view"])   # no ATS
    write_results(res, str(tmp_path / "r.json"))
    assert json.load(open(tmp_path / "r.json"))["num_failed"] == 2


def test_killed_evaluation_resumes_to_the_identical_result(engine_data, engine_ov, tmp_path):
    cfg, model, settings, records = _setup(engine_data, engine_ov, tmp_path)
    kw = dict(views=(1, 3), batch_videos=2, num_classes=4, fingerprint={"run": 1})
    ref = evaluate(model, records, settings, output=str(tmp_path / "ref.json"), **kw)
    out = str(tmp_path / "res.json")
    evaluate(model, records, settings, output=out, **kw)
    # rebuild the state a kill after the first batch leaves: a partial file with 2 videos and a cut line
    lines = open(predictions_path(out)).read().splitlines(keepends=True)
    os.remove(predictions_path(out))
    os.makedirs(out + ".partial")
    with open(os.path.join(out + ".partial", "rank0.jsonl"), "w") as f:
        f.write("".join(lines[:3]) + lines[3][:40])
    res = evaluate(model, records, settings, output=out, **kw)
    assert res["views_evaluated_this_run"] == 3 * (len(records) - 2)
    for key in ("top1", "top5", "num_videos", "gflops_per_view", "dense_gflops_per_view", "failed"):
        assert res[key] == ref[key], key
    assert open(predictions_path(out)).read() == open(predictions_path(str(tmp_path / "ref.json"))).read()
    assert not os.path.exists(out + ".partial")
    # a finished evaluation rerun computes nothing and gives the same numbers
    res2 = evaluate(model, records, settings, output=out, **kw)
    assert res2["views_evaluated_this_run"] == 0 and res2["top1"] == ref["top1"]
    # predictions of another evaluation are never mixed in
    from video_ats.errors import UserError
    with pytest.raises(UserError, match="different evaluation"):
        evaluate(model, records, settings, output=out, **{**kw, "fingerprint": {"run": 2}})
