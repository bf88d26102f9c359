"""Annotation parsing: official Kinetics CSV and `path label` lists."""
import json
import logging
import os

import pytest

from video_ats.data import VideoRecord, find_missing, load_label_map, read_annotations
from video_ats.errors import UserError


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_and_list_parse_to_same_samples(data_synthetic):
    for split in ("train", "val"):
        csv_recs, csv_names = read_annotations(data_synthetic[f"{split}_csv"])
        list_recs, list_names = read_annotations(data_synthetic[f"{split}_list"],
                                                 label_map=data_synthetic["classes"])
        assert len(csv_recs) > 0
        assert csv_recs == list_recs
        assert all(os.path.isfile(r.path) for r in csv_recs)
    # class index = position in the sorted class names, and the label map file agrees
    names = load_label_map(data_synthetic["classes"])
    assert names == sorted(names)
    train_csv, train_names = read_annotations(data_synthetic["train_csv"])
    assert train_names == names
    assert {r.label for r in train_csv} == set(range(len(names)))


def test_json_label_map_equals_text_label_map(data_synthetic):
    a = read_annotations(data_synthetic["val_csv"], label_map=data_synthetic["classes"])
    b = read_annotations(data_synthetic["val_csv"], label_map=data_synthetic["label_map_json"])
    assert a == b


def test_label_map_order_is_respected(tmp_path, data_synthetic):
    names = load_label_map(data_synthetic["classes"])
    rev = _write(tmp_path / "rev.txt", "\n".join(reversed(names)) + "\n")
    recs, got = read_annotations(data_synthetic["train_csv"], label_map=rev)
    ref, _ = read_annotations(data_synthetic["train_csv"])
    assert got == names[::-1]
    assert [len(names) - 1 - r.label for r in recs] == [r.label for r in ref]


def test_resolves_flat_and_per_class_layouts_and_extensions(tmp_path):
    root = tmp_path / "k400"
    (root / "val").mkdir(parents=True)
    (root / "train" / "air drumming").mkdir(parents=True)
    (root / "train" / "abseiling").mkdir(parents=True)
    (root / "val" / "aaaaaaaaaaa_000001_000011.webm").write_bytes(b"x")
    (root / "train" / "air drumming" / "bbbbbbbbbbb_000002_000012.mkv").write_bytes(b"x")
    (root / "train" / "abseiling" / "ccccccccccc_000003_000013.mp4").write_bytes(b"x")
    (root / "ddddddddddd.mp4").write_bytes(b"x")  # untrimmed full video, flat
    csv = _write(tmp_path / "ann.csv",
                 "label,youtube_id,time_start,time_end,split\n"
                 "abseiling,aaaaaaaaaaa,1,11,val\n"
                 '"air drumming",bbbbbbbbbbb,2,12,train\n'
                 "abseiling,ccccccccccc,3,13,train\n"
                 "air drumming,ddddddddddd,4.5,14.5,train\n")
    recs, names = read_annotations(csv, data_root=str(root))
    assert names == ["abseiling", "air drumming"]
    assert recs[0].path.endswith(os.path.join("val", "aaaaaaaaaaa_000001_000011.webm"))
    assert recs[1].path.endswith(os.path.join("air drumming", "bbbbbbbbbbb_000002_000012.mkv"))
    assert recs[2].path.endswith(os.path.join("abseiling", "ccccccccccc_000003_000013.mp4"))
    assert [r.label for r in recs] == [0, 1, 0, 1]
    assert recs[0].time_start is None and recs[0].video_id == "aaaaaaaaaaa_000001_000011"
    # untrimmed file: the time window is kept for the sampler
    assert recs[3].path.endswith("ddddddddddd.mp4")
    assert (recs[3].time_start, recs[3].time_end) == (4.5, 14.5)
    assert find_missing(recs) == []


def test_missing_files_are_kept_and_reported_once(tmp_path, caplog):
    (tmp_path / "a.mp4").write_bytes(b"x")
    lst = _write(tmp_path / "list.txt", "a.mp4 0\nmissing1.mp4 1\nsub/missing2.mp4 1\n")
    with caplog.at_level(logging.WARNING, logger="video_ats.data"):
        recs, names = read_annotations(lst)
    assert len(recs) == 3 and names == ["0", "1"]
    warns = [r for r in caplog.records if r.name == "video_ats.data"]
    assert len(warns) == 1 and "2 of 3 videos not found" in warns[0].getMessage()
    assert [os.path.basename(r.path) for r in find_missing(recs)] == ["missing1.mp4", "missing2.mp4"]
    kept, _ = read_annotations(lst, drop_missing=True)
    assert [os.path.basename(r.path) for r in kept] == ["a.mp4"]


def test_list_paths_relative_absolute_and_with_spaces(tmp_path):
    absfile = tmp_path / "abs dir" / "v 1.mp4"
    (tmp_path / "root").mkdir()
    lst = _write(tmp_path / "l.txt", f"# comment\n\nrel/x.mp4 3\n{absfile} 0\n  spaced name.mp4\t2  \n")
    recs, names = read_annotations(lst, data_root=str(tmp_path / "root"))
    root = str(tmp_path / "root")
    assert recs[0] == VideoRecord(os.path.join(root, "rel", "x.mp4"), 3, None, None, "x")
    assert recs[1].path == str(absfile) and recs[1].label == 0
    assert recs[2].path == os.path.join(root, "spaced name.mp4") and recs[2].label == 2
    assert names == ["0", "1", "2", "3"]


def test_csv_without_label_column_gives_minus_one(tmp_path):
    csv = _write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\nabc,0,10,test\n")
    recs, names = read_annotations(csv)
    assert recs[0].label == -1 and names == []


@pytest.mark.parametrize("body, line, words", [
    ("abseiling,abc,0,10,train\nabseiling,abc,0\n", 3, "expected 5"),
    ("abseiling,abc,zero,10,train\n", 2, "must be numbers"),
    ("abseiling,abc,10,5,train\n", 2, "after time_start"),
    ("abseiling,,0,10,train\n", 2, "empty youtube_id"),
    (",abc,0,10,train\n", 2, "empty label"),
])
def test_malformed_csv_line_names_file_and_line(tmp_path, body, line, words):
    csv = _write(tmp_path / "bad.csv", "label,youtube_id,time_start,time_end,split\n" + body)
    with pytest.raises(UserError) as ei:
        read_annotations(csv)
    msg = str(ei.value)
    assert f"bad.csv:{line}:" in msg and words in msg and "\n" not in msg


def test_unknown_label_in_csv(tmp_path):
    lm = _write(tmp_path / "labels.txt", "abseiling\nair drumming\n")
    csv = _write(tmp_path / "a.csv", "label,youtube_id,time_start,time_end,split\n"
                 "abseiling,abc,0,10,val\nbaking cookies,def,0,10,val\n")
    with pytest.raises(UserError, match=r"a\.csv:3: unknown class 'baking cookies'"):
        read_annotations(csv, label_map=lm)


@pytest.mark.parametrize("body, line, words", [
    ("a.mp4 0\nb.mp4 cat\n", 2, "must be an integer"),
    ("a.mp4 0\nlonely\n", 2, "expected 'path label'"),
    ("a.mp4 -3\n", 1, "negative label"),
])
def test_malformed_list_line(tmp_path, body, line, words):
    lst = _write(tmp_path / "bad.txt", body)
    with pytest.raises(UserError) as ei:
        read_annotations(lst)
    assert f"bad.txt:{line}:" in str(ei.value) and words in str(ei.value)


def test_list_label_outside_label_map(tmp_path):
    lm = _write(tmp_path / "labels.txt", "a\nb\n")
    lst = _write(tmp_path / "l.txt", "x.mp4 1\ny.mp4 2\n")
    with pytest.raises(UserError, match=r"l\.txt:2: label 2 outside the label map's 2 classes"):
        read_annotations(lst, label_map=lm)


def test_bad_label_maps_and_files(tmp_path):
    with pytest.raises(UserError, match="twice"):
        load_label_map(_write(tmp_path / "dup.txt", "a\nb\na\n"))
    with pytest.raises(UserError, match="gaps"):
        load_label_map(_write(tmp_path / "gap.json", json.dumps({"a": 0, "b": 2})))
    with pytest.raises(UserError, match="invalid JSON"):
        load_label_map(_write(tmp_path / "bad.json", "{\"a\": 0,"))
    (tmp_path / "ckpt.pt").write_bytes(b"\x80\x02\x90garbage\xff")          # a binary file given as --label-map
    with pytest.raises(UserError, match="label map .*ckpt.pt: not a UTF-8 text file"):
        load_label_map(str(tmp_path / "ckpt.pt"))
    (tmp_path / "nul.txt").write_bytes(b"a\n\x00\x01\n")
    with pytest.raises(UserError, match="label map .*nul.txt: a binary file"):
        load_label_map(str(tmp_path / "nul.txt"))
    with pytest.raises(UserError, match="not found"):
        read_annotations(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="empty annotation file"):
        read_annotations(_write(tmp_path / "empty.txt", "\n\n"))
    with pytest.raises(UserError, match="without the official header"):
        read_annotations(_write(tmp_path / "nohdr.csv", "abseiling,abc,0,10,train\n"))
