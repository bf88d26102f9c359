"""`video-ats check-data`: counts of present / missing / undecodable / too-short videos, summaries, per-class
counts, report files and a cleaned annotation list in the input's own format."""
import json
import os
import shutil

from video_ats.cli import main
from video_ats.data import read_annotations


def _dataset_with_problems(engine_data, tmp_path):
    """A copy of the val CSV + one corrupt video + one missing video; and a 'path label' list likewise."""
    root = tmp_path / "root"
    shutil.copytree(engine_data["root"], root)
    lines = open(engine_data["val_csv"]).read().splitlines()
    first = lines[1].split(",")
    label = first[0]
    corrupt = root / "val" / "corrupt1_000000_000001.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    lines += [f"{label},corrupt1,0,1,val", f"{label},missing1,0,1,val"]
    csv_path = tmp_path / "val_plus.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    lst = open(engine_data["val_list"]).read().splitlines()
    lst += [f"{os.path.relpath(corrupt, root)} 0", "val/nowhere.mp4 1"]
    list_path = tmp_path / "val_plus.txt"
    list_path.write_text("# a comment line\n" + "\n".join(lst) + "\n")
    return root, csv_path, list_path, label


def test_check_data_csv_report_and_cleaned_list(engine_data, tmp_path, capsys):
    root, csv_path, _, label = _dataset_with_problems(engine_data, tmp_path)
    out = tmp_path / "chk"
    assert main(["check-data", "--annotations", str(csv_path), "--data-root", str(root), "--output", str(out),
                 "--workers", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert r["num_annotated"] == 10 and r["num_present"] == 9 and r["num_missing"] == 1
    assert r["num_undecodable"] == 1 and r["num_ok"] == 8 and r["num_kept"] == 8
    # engine_data videos are 1 s; the default clip (8 x 32 at 30 fps) needs 8.5 s: all too short, still usable
    assert r["num_too_short"] == 8 and r["clip"]["seconds"] > 8
    assert r["fps"]["min"] == r["fps"]["max"] == 16
    assert r["resolution_most_common"] == [["48x32", 8]] and r["duration_s"]["median"] == 1.0
    assert r["per_class"][label] == {"annotated": 4, "ok": 2, "missing": 1, "undecodable": 1, "too_short": 2}
    assert sorted(p["status"] for p in r["problems"]) == ["missing", "undecodable"]
    assert all("Errno" not in (p["error"] or "") for p in r["problems"])
    assert "missing" in text and "undecodable" in text and "per class" in text
    assert (out / "report.txt").read_text().startswith(str(csv_path))
    # the cleaned list: same format (header and rows as in the input), only the usable videos
    clean = out / "val_plus.clean.csv"
    assert clean.read_text().splitlines()[0] == open(csv_path).read().splitlines()[0]
    recs, names = read_annotations(str(clean), data_root=str(root))
    assert len(recs) == 8 and not any("corrupt1" in r.path or "missing1" in r.path for r in recs)
    assert len(names) == 4
    # a clip short enough for the videos: nothing is too short; --drop-short with the default clip drops all
    cfg = tmp_path / "short.yaml"
    cfg.write_text("model: {name: timesformer, kwargs: {num_frames: 4, sampling_rate: 2}}\n")
    assert main(["check-data", "--annotations", str(csv_path), "--data-root", str(root), "--output", str(out),
                 "--config", str(cfg), "--no-progress", "--decode"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["num_too_short"] == 0 and r["mode"] == "full decode" and r["clip"]["frames_at_target_fps"] == 8
    assert main(["check-data", "--annotations", str(csv_path), "--data-root", str(root), "--output", str(out),
                 "--drop-short", "--no-progress"]) == 1          # nothing usable left -> exit 1
    assert json.loads((out / "report.json").read_text())["num_kept"] == 0


def test_check_data_list_format_and_errors(engine_data, tmp_path, capsys):
    root, _, list_path, _ = _dataset_with_problems(engine_data, tmp_path)
    out = tmp_path / "chk"
    assert main(["check-data", "--annotations", str(list_path), "--data-root", str(root), "--output", str(out),
                 "--no-progress"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert (r["num_annotated"], r["num_missing"], r["num_undecodable"], r["num_ok"]) == (10, 1, 1, 8)
    clean = (out / "val_plus.clean.txt").read_text().splitlines()
    assert len(clean) == 8 and clean == open(engine_data["val_list"]).read().splitlines()
    capsys.readouterr()
    assert main(["check-data", "--annotations", str(tmp_path / "nope.csv"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_check_data_too_short_counts_native_frames_without_target_fps(engine_data, tmp_path, capsys):
    # data.target_fps: null (the quickstart's recipes): the clip counts the videos' own frames, and
    # 'too short' must still be found (it used to be 0 whatever the length, and --drop-short did nothing)
    out = tmp_path / "chk"
    cfg = tmp_path / "native.yaml"
    for rate, short in ((8, 8), (2, 0)):          # 1 s at 16 fps = 16 frames: 4 x 8 = 32 needed, 4 x 2 = 8
        cfg.write_text("model: {name: timesformer, kwargs: {num_frames: 4, sampling_rate: %d}}\n"
                       "data: {target_fps: null}\n" % rate)
        assert main(["check-data", "--annotations", engine_data["val_csv"], "--data-root", engine_data["root"],
                     "--output", str(out), "--config", str(cfg), "--no-progress"]) == 0
        r = json.loads((out / "report.json").read_text())
        assert r["clip"]["seconds"] is None and r["num_too_short"] == short, r["clip"]
    assert "too short" in capsys.readouterr().out
    cfg.write_text("model: {name: timesformer, kwargs: {num_frames: 4, sampling_rate: 8}}\ndata: {target_fps: null}\n")
    assert main(["check-data", "--annotations", engine_data["val_csv"], "--data-root", engine_data["root"],
                 "--output", str(out), "--config", str(cfg), "--no-progress", "--drop-short"]) == 1
    assert json.loads((out / "report.json").read_text())["num_kept"] == 0


def test_check_data_sizes_lengths_and_decoder_notes_of_real_world_files(tmp_path, capsys):
    """A rotated phone video is reported at its displayed size, a Matroska file whose timestamps start late
    at its real length, and files decord cannot read exactly (open GOP, rotation) are counted with the
    reason: the loaders decode them with PyAV, which is slower."""
    from test_data_decode import _write_coded

    _write_coded(str(tmp_path / "rotated.mp4"), "libx264", "mp4", n=30, size=(64, 48),
                 setup=lambda s: s.set_display_rotation(90))
    _write_coded(str(tmp_path / "late.mkv"), "libx264", "matroska", n=30, pts0=75)       # 2 s, starting at 5 s
    _write_coded(str(tmp_path / "open_gop.mp4"), "libx264", "mp4",
                 options={"x264-params": "keyint=24:min-keyint=24:open-gop=1:scenecut=0"})
    _write_coded(str(tmp_path / "plain.mp4"), "libx264", "mp4", n=30)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{name} 0\n" for name in ("rotated.mp4", "late.mkv", "open_gop.mp4", "plain.mp4")))
    out = tmp_path / "chk"
    assert main(["check-data", "--annotations", str(listing), "--output", str(out), "--no-progress"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["num_ok"] == 4 and r["num_pyav"] == 2
    assert dict(r["pyav_reasons"]) == {"rotated video": 1,
                                       "open GOP (frames decoded after a keyframe are shown before it)": 1}
    assert sorted(map(tuple, r["resolution_most_common"])) == [("48x64", 1), ("64x48", 3)]
    assert r["duration_s"]["max"] < 6.5 and r["duration_s"]["min"] == 2.0     # late.mkv: 2 s, not 7 s
    assert "decoded by PyAV      2" in capsys.readouterr().out


def test_check_data_decode_measures_length_from_the_frames_and_lists_damage(tmp_path, capsys):
    """With --decode the decoded frames, not the header, give a video's length (a file cut short said 6 s for
    2 s of frames and passed the too-short check), and files damaged part-way are listed in report.txt too."""
    import av
    from test_data_decode import _blocky_frames

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=15, options={"x264-params": "keyint=15"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for arr in _blocky_frames(90):
            for pk in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])                      # the index survives, half the frames do not
    (tmp_path / "list.txt").write_text("cut.mp4 0\n")
    out = tmp_path / "chk"
    argv = ["check-data", "--annotations", str(tmp_path / "list.txt"), "--output", str(out), "--no-progress",
            "--config", str(tmp_path / "clip.yaml")]
    (tmp_path / "clip.yaml").write_text("model: {name: timesformer, kwargs: {num_frames: 8, sampling_rate: 6}}\n"
                                        "data: {target_fps: 15}\n")          # a clip of 48 frames = 3.2 s
    assert main(argv) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["duration_s"]["max"] == 6.0 and r["num_too_short"] == 0          # the header's length
    assert main(argv + ["--decode"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["duration_s"]["max"] < 3.2 and r["num_too_short"] == 1 and len(r["damaged"]) == 1
    text = (out / "report.txt").read_text()
    assert "damaged part-way (1" in text and "cut.mp4: damaged after frame" in text
    capsys.readouterr()
