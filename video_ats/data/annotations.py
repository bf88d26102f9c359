"""Annotation files: the official Kinetics CSV and ``path label`` lists.

* Official CSV (header ``label,youtube_id,time_start,time_end,split``; the test CSV of Kinetics
  has no ``label`` column, its rows get label -1). Each row resolves to a file named
  ``{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,webm,mkv}`` under ``data_root``, flat or in
  per-class folders (class name as is, or with spaces as underscores), optionally under a per-split
  folder (``train``/``val``/``test`` as given in the ``split`` column). If no trimmed file exists
  but an untrimmed ``{youtube_id}.{ext}`` does, the record keeps ``time_start``/``time_end`` and the
  loaders sample inside that window (using the video's frame rate).
* ``path label`` lists (PySlowFast/MMAction2): one ``path label`` per line, separated by
  whitespace (the label is the last field, so paths may contain spaces); relative paths are taken
  relative to ``data_root`` (default: the list's folder). Blank lines and ``#`` comments are skipped.

Labels: without a label map, a CSV's class index is the position of its name in the sorted list of
the class names that occur in the file (the convention of the public label maps) and a list's labels
are used as given (class names ``"0"``, ``"1"``, ...). With ``label_map`` (one class name per line,
line i = index i; or JSON ``{name: index}``) CSV names are looked up in it and list labels are
checked against its size.

Missing files: rows whose video does not exist are **kept** (with the path where the file was
expected, ``.mp4`` when no candidate exists), ``read_annotations`` logs one warning with their count,
and the loaders report them like any other undecodable file (training: replaced by another sample;
testing: a failure record). Use :func:`find_missing` to list them, or ``drop_missing=True``.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..errors import UserError

logger = logging.getLogger("video_ats.data")

CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video. ``time_start``/``time_end`` (seconds) are set only when sampling must be
    restricted to a window of the file (an untrimmed video); ``None`` means the whole file."""

    path: str
    label: int
    time_start: Optional[float] = None
    time_end: Optional[float] = None
    video_id: str = ""


def _stem(path: str) -> str:
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    return stem if ext else base


def load_label_map(path: str) -> List[str]:
    """Class names in index order from a label-map file (names one per line, or JSON {name: index})."""
    if not os.path.isfile(path):
        raise UserError(f"label map {path}: file not found; pass a file with one class name per line "
                        f"or a JSON {{name: index}}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise UserError(f"label map {path}: not a UTF-8 text file (byte {exc.start}); pass a file with one class "
                        "name per line or a JSON {name: index}") from None
    if "\0" in text:
        raise UserError(f"label map {path}: a binary file; pass a file with one class name per line or a JSON "
                        "{name: index}")
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"label map {path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if isinstance(obj, list):
            names = [str(x) for x in obj]
        elif isinstance(obj, dict):
            try:
                inv = {int(v): str(k) for k, v in obj.items()}
            except (TypeError, ValueError):
                raise UserError(f"label map {path}: JSON values must be integer class indices") from None
            if sorted(inv) != list(range(len(obj))):
                raise UserError(f"label map {path}: indices must be 0..{len(obj) - 1} without gaps "
                                f"or duplicates")
            names = [inv[i] for i in range(len(obj))]
        else:
            raise UserError(f"label map {path}: expected a JSON object {{name: index}} or a list")
    else:
        names = [ln.strip() for ln in text.splitlines()]
        while names and not names[-1]:
            names.pop()
        for i, n in enumerate(names):
            if not n:
                raise UserError(f"label map {path}:{i + 1}: empty class name")
    seen = {}
    for i, n in enumerate(names):
        if n in seen:
            raise UserError(f"label map {path}: class {n!r} appears twice (index {seen[n]} and {i})")
        seen[n] = i
    if not names:
        raise UserError(f"label map {path}: no class names in the file")
    return names


def _is_csv_header(first_line: str) -> bool:
    cols = [c.strip().strip('"').lower() for c in first_line.split(",")]
    return "youtube_id" in cols and "time_start" in cols


def _resolve_kinetics_file(root: str, name: str, yid: str, start: int, end: int, split: str):
    """(path, found, untrimmed) for one CSV row."""
    fname = f"{yid}_{start:06d}_{end:06d}"
    dirs = []
    subs = [split] if split else []
    subs += ["", ]
    for sub in subs:
        base = os.path.join(root, sub) if sub else root
        if name:
            dirs.append(os.path.join(base, name))
            if " " in name:
                dirs.append(os.path.join(base, name.replace(" ", "_")))
        dirs.append(base)
    for d in dirs:
        for ext in VIDEO_EXTENSIONS:
            p = os.path.join(d, fname + ext)
            if os.path.exists(p):
                return p, True, False
    for d in dirs:  # untrimmed full video
        for ext in VIDEO_EXTENSIONS:
            p = os.path.join(d, yid + ext)
            if os.path.exists(p):
                return p, True, True
    return os.path.join(dirs[0], fname + ".mp4"), False, False


def _read_csv(path, root, names_fixed, names_from="the label map"):
    records_raw = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise UserError(f"{path}: empty annotation file") from None
        cols = [c.strip().lower() for c in header]
        need = ["youtube_id", "time_start", "time_end"]
        missing = [c for c in need if c not in cols]
        if missing:
            raise UserError(f"{path}:1: CSV header lacks column(s) {', '.join(missing)}; expected "
                            f"{','.join(CSV_COLUMNS)}")
        pos = {c: cols.index(c) for c in cols}
        has_label = "label" in pos
        for row in reader:
            lineno = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(cols):
                raise UserError(f"{path}:{lineno}: expected {len(cols)} comma-separated fields "
                                f"({','.join(cols)}), got {len(row)}: {','.join(row)[:80]!r}")
            yid = row[pos["youtube_id"]].strip()
            if not yid:
                raise UserError(f"{path}:{lineno}: empty youtube_id")
            try:
                ts = float(row[pos["time_start"]])
                te = float(row[pos["time_end"]])
            except ValueError:
                raise UserError(f"{path}:{lineno}: time_start/time_end must be numbers, got "
                                f"{row[pos['time_start']]!r}, {row[pos['time_end']]!r}") from None
            if te <= ts:
                raise UserError(f"{path}:{lineno}: time_end ({te:g}) must be after time_start ({ts:g})")
            name = row[pos["label"]].strip() if has_label else ""
            if has_label and not name:
                raise UserError(f"{path}:{lineno}: empty label")
            split = row[pos["split"]].strip() if "split" in pos else ""
            records_raw.append((lineno, name, yid, ts, te, split))
    if names_fixed is not None:
        class_names = list(names_fixed)
    else:
        class_names = sorted({r[1] for r in records_raw if r[1]})
    index = {n: i for i, n in enumerate(class_names)}
    unknown = {}
    for lineno, name, *_ in records_raw:
        if name and name not in index:
            unknown.setdefault(name, lineno)
    if unknown:
        first = sorted(unknown.items(), key=lambda kv: kv[1])
        name, lineno = first[0]
        more = ""
        if len(first) > 1:
            more = f"; {len(first) - 1} more unknown: " + ", ".join(repr(n) for n, _ in first[1:6]) + \
                (", ..." if len(first) > 6 else "")
        raise UserError(f"{path}:{lineno}: unknown class {name!r} (not in {names_from}, {len(class_names)} "
                        f"classes){more}; use the label map / checkpoint that matches this annotation file")
    records = []
    for lineno, name, yid, ts, te, split in records_raw:
        label = index[name] if name else -1
        p, found, untrimmed = _resolve_kinetics_file(root, name, yid, int(ts), int(te), split)
        if untrimmed:
            rec = VideoRecord(p, label, ts, te, f"{yid}_{int(ts):06d}_{int(te):06d}")
        else:
            rec = VideoRecord(p, label, None, None, _stem(p))
        records.append(rec)
    return records, class_names


def _read_list(path, root, names_fixed, names_from="the label map"):
    records = []
    max_label = -1
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.rsplit(None, 1)
            if len(parts) != 2:
                raise UserError(f"{path}:{lineno}: expected 'path label', got {s[:80]!r}")
            rel, lab = parts
            try:
                label = int(lab)
            except ValueError:
                raise UserError(f"{path}:{lineno}: label must be an integer class index, got {lab!r} "
                                f"(for class names use the Kinetics CSV format)") from None
            if label < -1:
                raise UserError(f"{path}:{lineno}: negative label {label}")
            if names_fixed is not None and label >= len(names_fixed):
                what = "the label map's" if names_from.startswith("the label map") else f"{names_from}:"
                raise UserError(f"{path}:{lineno}: label {label} outside {what} {len(names_fixed)} classes")
            p = rel if os.path.isabs(rel) else os.path.join(root, rel)
            records.append(VideoRecord(os.path.normpath(p), label, None, None, _stem(p)))
            max_label = max(max_label, label)
    if names_fixed is not None:
        class_names = list(names_fixed)
    else:
        class_names = [str(i) for i in range(max_label + 1)]
    return records, class_names


def read_annotations(
    path: str,
    data_root: Optional[str] = None,
    label_map: Optional[str] = None,
    drop_missing: bool = False,
    class_names: Optional[Sequence[str]] = None,
    names_from: str = "the given class names",
) -> Tuple[List[VideoRecord], List[str]]:
    """Parse an annotation file (official Kinetics CSV or ``path label`` list, auto-detected).

    ``data_root``: where the videos are (default: the annotation file's folder). ``label_map``:
    optional class-name file (see module docstring). ``class_names``: class names in index order to map
    the file's names onto when there is no ``label_map`` (e.g. a checkpoint's, or the training split's:
    a test file lacking a class then keeps the model's numbering); a name outside them is one
    :class:`UserError` (``names_from`` says where they came from). Returns ``(records, class_names)``.
    Malformed input raises :class:`~video_ats.errors.UserError` naming the file and line. Rows whose
    video is missing are kept (and logged once as a count) unless ``drop_missing``.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"annotation file {path}: {'a folder, not a file' if os.path.isdir(path) else 'not found'}")
    root = str(data_root) if data_root is not None else (os.path.dirname(os.path.abspath(path)))
    if data_root is not None and not os.path.isdir(root):
        raise UserError(f"data root {root}: not a directory")
    names_fixed = load_label_map(str(label_map)) if label_map is not None else None
    _check_text_file(path)
    if names_fixed is not None:
        names_from = f"the label map {label_map}"
    elif class_names is not None:
        names_fixed = [str(n) for n in class_names]
    with open(path, encoding="utf-8", errors="replace") as f:
        first = ""
        for line in f:
            if line.strip():
                first = line
                break
    if not first:
        raise UserError(f"{path}: empty annotation file")
    try:
        if _is_csv_header(first):
            records, class_names = _read_csv(path, root, names_fixed, names_from)
        else:
            if first.count(",") >= 3 and len(first.split()) < 2:
                raise UserError(f"{path}:1: looks like a CSV without the official header "
                                f"'{','.join(CSV_COLUMNS)}'; add the header line")
            records, class_names = _read_list(path, root, names_fixed, names_from)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file (byte {exc.start}); an annotation file is a Kinetics "
                        "CSV or a 'path label' list") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    if not records:
        raise UserError(f"{path}: no samples in the annotation file")
    dup = len(records) - len(set(records))
    if dup:
        seen, first_dup = set(), None
        for r in records:
            if r in seen:
                first_dup = r
                break
            seen.add(r)
        logger.warning("%s: %d duplicate rows (the same video and label more than once; first: %s); they are "
                       "kept and count several times", path, dup, first_dup.path)
    relabelled = len(set(records)) - len({(r.path, r.time_start, r.time_end) for r in records})
    if relabelled:
        logger.warning("%s: %d videos appear with more than one label", path, relabelled)
    missing = find_missing(records)
    if missing:
        logger.warning("%s: %d of %d videos not found under %s (first: %s)%s", path, len(missing),
                       len(records), root, missing[0].path,
                       "; dropped" if drop_missing else "; kept, the loaders will skip them")
        if drop_missing:
            gone = {id(r) for r in missing}
            records = [r for r in records if id(r) not in gone]
    return records, class_names


def _check_text_file(path: str) -> None:
    """A one-line error for a binary file given as annotations (NUL bytes or not UTF-8)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise UserError(f"annotation file {path}: cannot read it ({exc.strerror or exc})") from None
    if b"\0" in head:
        raise UserError(f"{path}: a binary file, not an annotation file (a Kinetics CSV or a 'path label' list)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:          # not just a multi-byte character cut at the end of the sample
            raise UserError(f"{path}: not a UTF-8 text file (byte {exc.start}); an annotation file is a "
                            "Kinetics CSV or a 'path label' list") from None


def index_names(names: Optional[Sequence[str]]) -> bool:
    """True when ``names`` are just "0", "1", ... (what a ``path label`` list yields): they carry no class
    identity to map another file's names onto."""
    return names is not None and [str(n) for n in names] == [str(i) for i in range(len(names))]


def find_missing(records: Sequence[VideoRecord]) -> List[VideoRecord]:
    """The records whose video file does not exist (or is empty)."""
    out = []
    for r in records:
        try:
            if os.path.getsize(r.path) == 0:
                out.append(r)
        except OSError:
            out.append(r)
    return out
