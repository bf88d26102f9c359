"""The accuracy benchmark: matched-GFLOPs statistics, stage caching, the Kinetics-shaped scenes, and an
end-to-end run of the whole pipeline on a tiny generated set."""
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from video_ats.analysis.bench_accuracy import (
    Stage,
    fit_linear_probe,
    interpolate_curve,
    matched_comparisons,
    paired_bootstrap_ci,
    probe_top1,
    stage_key,
)
from video_ats.errors import UserError


# ---- statistics -------------------------------------------------------------------------------------
def test_interpolation_is_exact_at_points_linear_between_and_none_outside():
    a, b = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])
    pts = [(2.0, b), (1.0, a)]                              # any order
    assert torch.equal(interpolate_curve(pts, 1.0), a)
    assert torch.equal(interpolate_curve(pts, 2.0), b)
    assert torch.allclose(interpolate_curve(pts, 1.25), 0.75 * a + 0.25 * b)
    assert interpolate_curve(pts, 0.99) is None and interpolate_curve(pts, 2.01) is None


def test_bootstrap_ci_degenerate_cases():
    x = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert paired_bootstrap_ci(x, x, 500) == (0.0, 0.0)
    assert paired_bootstrap_ci(torch.ones(7), torch.zeros(7), 500) == (100.0, 100.0)
    with pytest.raises(ValueError):
        paired_bootstrap_ci(torch.ones(3), torch.ones(4))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=5, max_size=60), st.integers(0, 5))
def test_bootstrap_ci_brackets_the_observed_difference_and_is_paired(pairs, seed):
    a = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    lo, hi = paired_bootstrap_ci(a, b, 400, seed)
    diff = float((a - b).mean()) * 100
    assert -100 <= lo <= hi <= 100
    assert lo - 1e-9 <= diff <= hi + 1e-9                # the resampled means centre on the observed one
    # paired: adding the same per-video effect to both sides changes nothing
    shift = torch.rand(a.numel(), dtype=torch.float64)
    assert paired_bootstrap_ci(a + shift, b + shift, 400, seed) == pytest.approx((lo, hi))


def test_matched_comparison_interpolates_ats_at_the_other_methods_gflops():
    n = 200
    g = torch.Generator().manual_seed(0)
    ats_lo, ats_hi = (torch.rand(n, generator=g) < 0.6).double(), (torch.rand(n, generator=g) < 0.9).double()
    other = (torch.rand(n, generator=g) < 0.5).double()
    curves = {"ats": [{"id": "a1", "gflops_per_view": 1.0}, {"id": "a2", "gflops_per_view": 2.0}],
              "topk": [{"id": "t", "gflops_per_view": 1.5, "budget": {"k": 1}, "top1": float(other.mean()) * 100},
                       {"id": "t_out", "gflops_per_view": 3.0, "budget": {"k": 2}, "top1": 0.0}]}
    correct = {"a1": ats_lo, "a2": ats_hi, "t": other, "t_out": other}
    (m,) = matched_comparisons(curves, correct, resamples=300)             # t_out lies outside ATS's range
    expect = float((other - 0.5 * (ats_lo + ats_hi)).mean()) * 100
    assert m["method"] == "topk" and m["top1_diff_vs_ats"] == pytest.approx(expect, abs=1e-3)
    assert m["ci95"][0] <= m["top1_diff_vs_ats"] <= m["ci95"][1]
    assert m["ats_top1_interpolated"] == pytest.approx(float(0.5 * (ats_lo + ats_hi).mean()) * 100, abs=1e-3)


# ---- the evidence probe ------------------------------------------------------------------------------
def _features(n: int, num_classes: int, dim: int, gen: torch.Generator, centres=None):
    """(n, dim) features, labels; around per-class ``centres`` when given, else label-free noise."""
    y = torch.randint(0, num_classes, (n,), generator=gen)
    x = torch.randn(n, dim, generator=gen) * 3 + 7                     # off-centre, unscaled: standardizing matters
    return (x if centres is None else x + centres[y]), y


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 8), st.integers(0, 16), st.integers(0, 10_000))
def test_linear_probe_separates_separable_features_and_stays_at_chance_on_noise(num_classes, extra_dims, seed):
    gen = torch.Generator().manual_seed(seed)
    dim = num_classes + extra_dims
    # class centres 40·(a rotated basis vector): >= 56 apart, ~9 noise std from any boundary between two
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
    centres = 40 * rotation[:num_classes]
    train, val = _features(400, num_classes, dim, gen, centres), _features(400, num_classes, dim, gen, centres)
    probe = fit_linear_probe(*train, num_classes)
    assert probe_top1(probe, *train) == 100.0 and probe_top1(probe, *val) == 100.0
    # labels independent of the features: held-out Top-1 near the best constant guess
    train, val = _features(600, num_classes, dim, gen), _features(2000, num_classes, dim, gen)
    top1 = probe_top1(fit_linear_probe(*train, num_classes), *val)
    chance = 100 * float(torch.bincount(val[1]).max()) / val[1].numel()
    assert top1 < chance + 8, (top1, chance)
    # deterministic: the same features give the same probe
    again = fit_linear_probe(*train, num_classes)
    assert torch.equal(again.weight, fit_linear_probe(*train, num_classes).weight)


def test_residual_stream_reads_the_cls_and_the_drawn_token_of_every_block():
    from video_ats.analysis.bench_accuracy import residual_stream
    from video_ats.models.timesformer import TimeSformer

    torch.manual_seed(0)
    model = TimeSformer(img_size=16, patch_size=8, num_classes=3, num_frames=2, embed_dim=16, depth=3,
                        num_heads=2).eval()
    clips = torch.randn(5, 3, 2, 16, 16)
    index = torch.tensor([0, 7, 3, 5, 1])                                # of the 2·2·2 tokens of a clip
    f = residual_stream(model, clips, index, batch_size=2)
    assert f["input"].shape == (5, 16) and f["cls"].shape == f["token"].shape == (3, 5, 16)
    with torch.no_grad():
        ts = model._embed(clips, None)
        assert torch.allclose(f["input"], ts.x.view(5, 8, 16)[torch.arange(5), index])
        for b, blk in enumerate(model.blocks):
            ts = blk(ts)
            assert torch.allclose(f["cls"][b], ts.cls[:, 0], atol=1e-6)
            assert torch.allclose(f["token"][b], ts.x.view(5, 8, 16)[torch.arange(5), index], atol=1e-6)
        # the last block's CLS is what the head reads (after the final norm)
        assert torch.allclose(model.head(model.norm(f["cls"][-1])), model(clips), atol=1e-5)
    assert not model.blocks[0]._forward_pre_hooks and not model.blocks[0]._forward_hooks   # hooks removed


# ---- stage cache ------------------------------------------------------------------------------------
def test_stage_skips_same_key_resumes_interrupted_and_wipes_changed(tmp_path):
    folder = str(tmp_path / "stage")
    s = Stage(folder, stage_key("a", 1), "s", log=lambda _: None)
    assert s.load() is None
    s.begin()
    open(os.path.join(folder, "partial.txt"), "w").close()
    again = Stage(folder, stage_key("a", 1), "s", log=lambda _: None)
    again.begin()                                            # interrupted, same inputs: work is kept
    assert os.path.exists(os.path.join(folder, "partial.txt"))
    again.finish(x=1)
    assert Stage(folder, stage_key("a", 1), "s", log=lambda _: None).load()["x"] == 1
    changed = Stage(folder, stage_key("a", 2), "s", log=lambda _: None)
    assert changed.load() is None
    changed.begin()                                          # other inputs: the old results are gone
    assert not os.path.exists(os.path.join(folder, "partial.txt"))


# ---- the Kinetics-shaped scenes ---------------------------------------------------------------------
def _warm_mask(frames):
    r, g, b = (frames[..., i].astype(int) for i in range(3))
    return (r > 200) & (b < 180) & (r - b > 60)


def test_scene_targets_carry_the_motion_and_the_evidence_share_varies():
    from video_ats.data.synthetic import iter_scene_chunks

    shares, moves = [], []
    for k in range(12):
        v = np.concatenate(list(iter_scene_chunks("right", 80, 64, 16, np.random.SeedSequence([3, k]),
                                                  max_distractors=0, pan_speed=0.0)))
        m = _warm_mask(v)
        shares.append(m[0].mean())
        xs = [np.nonzero(m[t])[1].mean() for t in (0, 15)]
        moves.append(xs[1] - xs[0])
    assert min(moves) > 10                                   # every clip's targets go right
    assert max(shares) > 3 * min(shares)                     # the class evidence covers a varying share
    again = np.concatenate(list(iter_scene_chunks("right", 80, 64, 16, np.random.SeedSequence([3, 0]),
                                                  max_distractors=0, pan_speed=0.0)))
    first = np.concatenate(list(iter_scene_chunks("right", 80, 64, 16, np.random.SeedSequence([3, 0]),
                                                  max_distractors=0, pan_speed=0.0)))
    assert np.array_equal(again, first)


def test_colour_change_targets_turn_in_the_class_order_and_reversal_is_the_twin_class():
    from video_ats.data.synthetic import _WARM, COLOUR_CHANGES, iter_scene_chunks

    def share(frames, colour):
        return (np.abs(frames.astype(int) - colour.astype(int)).max(-1) < 12).mean(axis=(1, 2))

    a, b = COLOUR_CHANGES["red>yellow"]
    for k in range(6):
        v = np.concatenate(list(iter_scene_chunks("red>yellow", 80, 64, 32, np.random.SeedSequence([5, k]),
                                                  object_scale=(0.09, 0.24), max_distractors=0)))
        red, yellow = share(v, _WARM[a]), share(v, _WARM[b])
        assert red[0] > 0 and yellow[0] == 0 and red[-1] == 0 and yellow[-1] > 0   # red first, then yellow
    # every colour change has its time-reversed twin among the classes
    assert all(f"{y}>{x}" in COLOUR_CHANGES for x, y in (key.split(">") for key in COLOUR_CHANGES))


def test_a_colour_window_makes_the_change_a_brief_event_and_leaves_other_scenes_unchanged():
    from video_ats.data.synthetic import _COOL, _WARM, COLOUR_CHANGES, iter_scene_chunks

    def warm(frames):                                        # per frame: pixels of any warm colour
        d = np.abs(frames[..., None, :].astype(int) - _WARM.astype(int)).max(-1)
        return (d < 12).any(-1).sum(axis=(1, 2))

    a, b = COLOUR_CHANGES["red>yellow"]
    for k in range(6):
        seed = np.random.SeedSequence([5, k])
        full = np.concatenate(list(iter_scene_chunks("red>yellow", 80, 64, 32, seed, object_scale=(0.09, 0.24),
                                                     max_targets=1, max_distractors=0)))
        brief = np.concatenate(list(iter_scene_chunks("red>yellow", 80, 64, 32, np.random.SeedSequence([5, k]),
                                                      object_scale=(0.09, 0.24), max_targets=1, max_distractors=0,
                                                      colour_window=0.3)))
        shown = np.nonzero(warm(brief))[0]
        assert warm(full).all() and 0 < len(shown) <= int(0.3 * 31) + 2      # warm only in ~30 % of the frames
        assert np.array_equal(shown, np.arange(shown[0], shown[-1] + 1))     # one window, around the switch
        red, yellow = (np.abs(brief.astype(int) - _WARM[c].astype(int)).max(-1) < 12 for c in (a, b))
        assert red.any(axis=(1, 2)).nonzero()[0].max() < yellow.any(axis=(1, 2)).nonzero()[0].min()
        # outside its window the target is still there, in a cool colour like a distractor's (no distractors
        # here, and the background is far from every cool colour)
        hidden = [t for t in range(32) if t not in shown]
        cool = (np.abs(brief[hidden][..., None, :].astype(int) - _COOL.astype(int)).max(-1) < 12).any(-1)
        assert (cool.sum(axis=(1, 2)) > 10).all()
        assert not (np.abs(full[..., None, :].astype(int) - _COOL.astype(int)).max(-1) < 12).any()
        # a window of 1 is the scene as before: the same bytes
        same = np.concatenate(list(iter_scene_chunks("red>yellow", 80, 64, 32, np.random.SeedSequence([5, k]),
                                                     object_scale=(0.09, 0.24), max_targets=1, max_distractors=0,
                                                     colour_window=1.0)))
        assert np.array_equal(same, full)


@pytest.mark.parametrize("kwargs, what", [(dict(colour_window=0.0), "colour window"),
                                          (dict(colour_window=1.5), "colour window"),
                                          (dict(colour_window=0.3, evidence="motion"), "colour evidence")])
def test_a_bad_colour_window_is_refused(tmp_path, kwargs, what):
    from video_ats.data import make_synthetic

    with pytest.raises(UserError, match=what):
        make_synthetic(str(tmp_path), scene="kinetics", **{"evidence": "colour", **kwargs})


def test_kinetics_preset_writes_a_held_out_test_split(tmp_path):
    from video_ats.data import make_synthetic, read_annotations

    paths = make_synthetic(str(tmp_path), scene="kinetics", classes=8, videos_per_class=5, size=(48, 32),
                           seconds=0.5, fps=16, val_fraction=0.2, test_fraction=0.2, workers=1)
    splits = {s: read_annotations(paths[f"{s}_csv"], data_root=paths["root"])[0] for s in ("train", "val", "test")}
    assert {s: len(r) for s, r in splits.items()} == {"train": 24, "val": 8, "test": 8}
    assert not {r.path for r in splits["test"]} & {r.path for r in splits["train"] + splits["val"]}
    assert all(os.path.isfile(r.path) for rs in splits.values() for r in rs)
    names = open(paths["classes"]).read().split("\n")
    assert "targets moving left" in names and "targets circling clockwise" in names
    colour = make_synthetic(str(tmp_path / "colour"), scene="kinetics", evidence="colour", classes=8,
                            videos_per_class=2, size=(32, 32), seconds=0.5, fps=8, workers=1)
    assert "targets turning yellow from red" in open(colour["classes"]).read().split("\n")


def test_scene_rejects_more_classes_than_motions(tmp_path):
    from video_ats.data import make_synthetic
    from video_ats.errors import UserError

    with pytest.raises(UserError, match="at most 8 classes"):
        make_synthetic(str(tmp_path), scene="kinetics", classes=9, videos_per_class=2, workers=1)
    with pytest.raises(UserError, match="'colour_pair' has at most 4 classes"):
        make_synthetic(str(tmp_path), scene="kinetics", evidence="colour_pair", classes=5, videos_per_class=2)


def test_colour_pair_classes_have_no_time_reversed_twin(tmp_path):
    from video_ats.data import make_synthetic
    from video_ats.data.annotations import read_annotations

    paths = make_synthetic(str(tmp_path), scene="kinetics", evidence="colour_pair", classes=4, videos_per_class=1,
                           size=(32, 24), seconds=0.5, fps=8, val_fraction=0.0, workers=1)
    _, names = read_annotations(paths["train_csv"])
    pairs = [n.split("turning ")[1].split(" from ") for n in names]        # [after, before]
    assert len(names) == 4 and len({frozenset(p) for p in pairs}) == 4     # four different colour pairs


# ---- end to end -------------------------------------------------------------------------------------
TINY = """
model:
  name: timesformer
  num_classes: 8
  kwargs: {img_size: 16, patch_size: 8, embed_dim: 16, depth: 3, num_heads: 2, num_frames: 4, sampling_rate: 2}
data:
  target_fps: null
  scale_range: [16, 20]
  flip: false
  num_workers: 0
  preload: true
train:
  epochs: 1
  batch_size: 8
  optimizer: adamw
  lr: 0.001
  scheduler: none
  eval_every: 0
test:
  batch_size: 8
"""


def test_bench_accuracy_end_to_end_is_cached_and_consistent(tmp_path):
    from video_ats.analysis.bench_accuracy import Bench, BenchSpec, findings, render_markdown

    (tmp_path / "dense.yaml").write_text(TINY)
    (tmp_path / "ats.yaml").write_text("_base_: dense.yaml\nmodel:\n  ats: {blocks: [1], num_tokens: [0.5]}\n")
    spec = BenchSpec(out=str(tmp_path / "run"), data=str(tmp_path / "data"), recipe=str(tmp_path / "dense.yaml"),
                     finetune_recipe=str(tmp_path / "ats.yaml"), seeds=(0, 1), ats_scales=(0.5, 1.0),
                     baseline_scales=(0.5, 1.0), finetune_scales=(1.0,), main_finetune_scale=1.0, tome_r=(0.25, 0.5),
                     tome_blocks=(0, 1), bootstrap=200,
                     data_overrides=(("videos_per_class", 5), ("size", (32, 24)), ("seconds", 0.5),
                                     ("val_fraction", 0.2), ("test_fraction", 0.2)))
    logs = []
    r = Bench(spec, log=logs.append).run()
    assert r["num_val_videos"] == 8 and r["data"]["splits"] == {"train": 24, "val": 8, "test": 8}
    assert {m for m, pts in r["curves"].items() if pts} == {"ats", "ats_finetuned", "topk", "random", "tome"}
    assert len(r["seed_runs"]) == 2 and r["dense"]["gflops_per_view"] > 0
    for run in r["seed_runs"]:                                # every seed: off-the-shelf ATS and random too
        assert 0 < run["ats_gflops_per_view"] < run["dense_gflops_per_view"]
        assert 0 < run["random_gflops_per_view"] < run["dense_gflops_per_view"]
    ats_main = next(p for p in r["curves"]["ats"] if p["budget"]["scale"] == 1.0)
    assert r["seed_runs"][0]["ats_top1"] == ats_main["top1"]
    for pts in r["curves"].values():
        for p in pts:                                         # every reduction costs less than dense
            assert 0 < p["gflops_per_view"] < r["dense"]["gflops_per_view"]
    with open(os.path.join(spec.out, "accuracy_benchmark.json")) as f:
        assert json.load(f)["dense"] == r["dense"]
    for name in ("bench_accuracy_vs_gflops.png", "bench_kept_tokens_overlay.png", "bench_kept_tokens_hist.png"):
        assert os.path.getsize(os.path.join(spec.out, name)) > 1000
    probe = r["val_probe"]                                    # chosen on val: its own split, same model
    assert probe["split"] == "val" and probe["num_videos"] == 8
    assert {(p["method"], tuple(p["blocks"])) for p in probe["points"]} == {
        (m, b) for m in ("ats", "topk", "random") for b in ((0,), (1,))}
    for p in probe["points"]:
        assert 0 < p["gflops_per_view"] < probe["dense"]["gflops_per_view"]
    k02 = {p["method"]: p for p in probe["points"] if p["blocks"] == [0] and p["num_tokens"] == [0.2]}
    assert k02["topk"]["gflops_per_view"] == pytest.approx(k02["random"]["gflops_per_view"])  # both keep exactly K
    assert k02["ats"]["gflops_per_view"] <= k02["random"]["gflops_per_view"] + 1e-9          # ATS keeps K' <= K
    evidence = r["evidence_probe"]                            # every seed's dense model, fit on train, scored on val
    assert [e["seed"] for e in evidence] == [0, 1]
    for e in evidence:
        assert e["split"] == "val" and e["num_videos"] == 8 and e["num_train_videos"] == 24
        assert [b["block"] for b in e["blocks"]] == [0, 1, 2]
        assert all(0 <= b[k] <= 100 for b in e["blocks"] for k in ("cls_top1", "token_top1"))
        assert 0 <= e["input_token_top1"] <= 100 and 100 / 8 <= e["chance"] <= 100
    area = r["by_target_area"]                                # where each method loses: by the targets' size
    assert [sd["seed"] for sd in area["seeds"]] == [0, 1] and sum(area["videos"]) == 8
    assert area["edges"] == sorted(area["edges"]) and area["edges"][0] > 0
    for sd in area["seeds"]:
        rows = {row["id"]: row for row in sd["rows"]}
        assert {"dense", "ats_finetuned_x1", "ats_x1", "random_x0.7"} <= set(rows)
        for row in rows.values():                             # the quartiles average back to the overall Top-1
            per = [v for v in row["top1_by_quartile"] if v is not None]
            assert all(0 <= v <= 100 for v in per)
            weighted = sum(v * n for v, n in zip(row["top1_by_quartile"], area["videos"]) if v is not None) / 8
            assert weighted == pytest.approx(row["top1"], abs=0.05)
    times = r["seconds"]
    assert {"data", "seed0/dense", "evidence_probe_seed0", "evidence_probe_seed1", "decode_test_views",
            "decode_val_views", "decode_train_1x1_views", "decode_val_1x1_views"} <= set(times["stages"])
    assert times["full_run"] == pytest.approx(sum(times["stages"].values()), abs=0.2)
    md = render_markdown(r)
    assert "| dense |" in md and "Where the tokens are dropped" in md and "What the numbers say" in md
    assert "Top-1 by target size" in md and "| 1 | random dropping (0.7× K) |" in md
    assert "Where the class evidence is" in md and "| after block 2 |" in md and "| after block 1 (ATS block) |" in md
    assert any(line.startswith("Evidence probe (linear, val; seeds 0 / 1): after the first ATS block (1)")
               for line in findings(r))

    logs.clear()
    again = Bench(spec, log=logs.append).run()                  # everything cached: same numbers, no work
    assert not any("training" in line or "[eval" in line for line in logs), logs
    assert any("evidence_probe] cached" in line for line in logs), logs
    assert again["curves"] == r["curves"] and again["matched"] == r["matched"]
    assert again["evidence_probe"] == r["evidence_probe"]
    # the stage times stay those of the run that did the work (decoding included), not the rerun's, though
    # the rerun decodes the test views again (the failure count and the pictures need them)
    assert again["seconds"]["stages"] == times["stages"] and again["seconds"]["full_run"] == times["full_run"]
    assert again["num_failed_videos"] == 0 and again["seconds"]["this_run"] > 0

    changed = Bench(BenchSpec(**{**spec.__dict__, "ats_scales": (0.5, 0.75)}), log=logs.append).run()
    assert [p["budget"]["scale"] for p in changed["curves"]["ats"]] != [p["budget"]["scale"] for p in r["curves"]["ats"]]
    assert not any("training" in line for line in logs)        # only the new evaluation ran


def test_findings_are_computed_from_the_results():
    from video_ats.analysis.bench_accuracy import findings

    pt = lambda g, t: {"gflops_per_view": g, "top1": t}                       # noqa: E731
    r = {"dense": {"top1": 90.0, "gflops_per_view": 1.0},
         "curves": {"random": [pt(0.4, 50.0), pt(0.6, 70.0)]},
         "vs_dense": [{"method": "ats_finetuned", "gflops_reduction": 0.6, "top1_diff_vs_dense": -1.2,
                       "ci95": [-2.0, -0.5]},                 # cheaper but further from dense: not the one
                      {"method": "ats_finetuned", "gflops_reduction": 0.5, "top1_diff_vs_dense": -0.3,
                       "ci95": [-1.0, 0.4]},
                      {"method": "ats_finetuned", "gflops_reduction": 0.3, "top1_diff_vs_dense": 0.1,
                       "ci95": [-0.5, 0.6]}],                 # under 45 % fewer: outside the goal
         "matched": [{"method": "random", "top1_diff_vs_ats": 2.0, "ci95": [0.5, 3.5]},
                     {"method": "random", "top1_diff_vs_ats": -1.0, "ci95": [-2.0, 0.1]}],
         "seed_runs": []}
    lines = findings(r)
    assert lines[0].startswith("Fine-tuned ATS at 50 % fewer GFLOPs: -0.3")
    assert "-1.0 to +2.0 points over 2 budgets (1 significantly better than ATS, 0 worse)" in lines[1]
    assert lines[2].startswith("Random dropping at 50 % of dense GFLOPs: -30.0 points")   # 60 at 0.5, dense 90


def test_top1_by_quantile_splits_videos_into_equal_bins():
    from video_ats.analysis.bench_accuracy import top1_by_quantile

    value = [float(v) for v in range(100)]                    # 25 videos per quartile
    right_on_large = [int(v >= 50) for v in range(100)]       # right exactly on the upper half
    out = top1_by_quantile({"a": right_on_large, "all": [1] * 100}, value)
    assert out["videos"] == [25, 25, 25, 25]
    assert out["top1"]["a"] == [0.0, 0.0, 100.0, 100.0] and out["top1"]["all"] == [100.0] * 4
    assert out["edges"][0] == 0.0 and out["edges"][-1] == 99.0
    with pytest.raises(ValueError):
        top1_by_quantile({"short": [1] * 99}, value)
