"""``video-ats check-data``: what an annotation file's videos look like before training or testing on them.

For every annotated video: is the file there, can it be read (a header probe with PyAV by default: the
container opens, has a video stream with a size and a frame rate and at least one frame; ``decode=True``
decodes every frame), and is it long enough for one clip (``num_frames x sampling_rate`` frames at
``target_fps``; a shorter video still works, its clip repeats the last frame). Writes a report
(``report.json`` + ``report.txt``) and a cleaned annotation file in the input's own format without the
missing and undecodable videos (``drop_short=True`` also drops the too-short ones).

Upstream users of TimeSformer lost points to validation sets with thousands of missing or undecodable
videos without knowing it; this says so before the run.
"""
from __future__ import annotations

import csv
import io
import os
import re
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Sequence

from ..errors import UserError

STATUSES = ("ok", "missing", "undecodable")


def probe_file(path: str, decode: bool = False) -> Dict[str, Any]:
    """``{"status", "error", "fps", "width", "height", "frames", "duration", "pyav_reason"}`` of one video file
    (width/height as displayed; ``pyav_reason``: why the loaders decode it with PyAV rather than decord, or None)."""
    import av

    from .decode import describe_error, display_rotation, scan_stream, stream_duration, video_stream

    out: Dict[str, Any] = {"status": "ok", "error": None, "fps": None, "width": None, "height": None,
                           "frames": None, "duration": None, "pyav_reason": None}
    try:
        size = os.path.getsize(path)
    except OSError:
        return dict(out, status="missing", error="file not found")
    if os.path.isdir(path):
        return dict(out, status="missing", error="is a directory, not a video file")
    if size == 0:
        return dict(out, status="undecodable", error="empty file (0 bytes)")
    try:
        with av.open(path) as container:
            st = video_stream(container)
            if st is None:
                return dict(out, status="undecodable", error="no video stream in the file")
            fps = float(st.average_rate or st.guessed_rate or 0) or None
            w, h = int(st.codec_context.width or 0), int(st.codec_context.height or 0)
            rotation = display_rotation(path, container, st)
            if rotation and rotation % 180:             # the size as shown (and as the loaders decode it)
                w, h = h, w
            dur = stream_duration(container, st)
            frames = int(st.frames or 0) or (int(round(dur * fps)) if dur and fps else 0)
            out.update(fps=fps, width=w or None, height=h or None, duration=dur, frames=frames or None)
            if decode:
                n = 0
                try:
                    for _ in container.decode(st):
                        n += 1
                except (av.error.FFmpegError, OSError) as exc:
                    if n == 0:
                        return dict(out, status="undecodable", error=f"no decodable frame: {describe_error(exc)}")
                    out["error"] = f"damaged after frame {n}: {describe_error(exc)} (the frames before it are used)"
                if n == 0:
                    return dict(out, status="undecodable", error="no decodable frame in the video stream")
                out["frames"] = n
                if fps:                                 # the decoded frames, not the header, say how long
                    out["duration"] = n / fps
            elif not w or not h:
                return dict(out, status="undecodable", error="the video stream has no frame size")
            elif not frames:
                return dict(out, status="undecodable", error="the header reports no frames and no duration")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a verdict on the file
        return dict(out, status="undecodable", error=f"not a readable video: {describe_error(exc)}")
    try:                 # why the loaders will decode it with PyAV rather than decord (slower), if they will
        with av.open(path) as container:
            st = video_stream(container)
            scan = scan_stream(container, st, rotation, to_end=not st.frames and not decode)
        out["pyav_reason"] = scan.hazard or None
        if not decode and out["frames"]:
            if scan.packets and not st.frames:          # no count in the header (Matroska): the packets are one
                out["frames"] = max(1, scan.packets - scan.hidden)
            elif scan.hidden:                           # frames an edit list hides are not shown
                out["frames"] = max(1, out["frames"] - scan.hidden)
    except Exception:  # noqa: BLE001 - the file read above; a late failure only costs this note
        pass
    return out


def _raw_rows(path: str):
    """(header line or None, data rows as text) in the order ``read_annotations`` makes records."""
    from .annotations import _is_csv_header

    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if _is_csv_header(first):
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        rows = [r for r in reader if r and not all(not c.strip() for c in r)]
        return "csv", header, rows
    rows = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return "list", None, rows


def _summary(values: Sequence[float]) -> Optional[Dict[str, float]]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return None
    return {"min": min(v), "median": statistics.median(v), "mean": sum(v) / len(v), "max": max(v)}


def clip_requirement(num_frames: int, sampling_rate: float, target_fps: Optional[float]) -> Dict[str, Any]:
    seconds = num_frames * sampling_rate / target_fps if target_fps else None
    return {"num_frames": num_frames, "sampling_rate": sampling_rate, "target_fps": target_fps,
            "frames_at_target_fps": num_frames * sampling_rate, "seconds": seconds}


def check_data(annotations: str, data_root: Optional[str] = None, output: Optional[str] = None,
               decode: bool = False, workers: int = 4, num_frames: int = 8, sampling_rate: float = 32,
               target_fps: Optional[float] = 30.0, label_map: Optional[str] = None, drop_short: bool = False,
               progress: bool = True) -> Dict[str, Any]:
    """Check every video of ``annotations``; returns the report (also written under ``output`` when given)."""
    from .annotations import read_annotations

    t0 = time.perf_counter()
    records, class_names = read_annotations(annotations, data_root=data_root, label_map=label_map)
    kind, header, rows = _raw_rows(annotations)
    if len(rows) != len(records):      # cannot happen for files read_annotations accepted; be safe
        raise UserError(f"{annotations}: {len(rows)} rows but {len(records)} records; cannot write a cleaned list")
    need = clip_requirement(num_frames, sampling_rate, target_fps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(records), desc="check-data", unit="video", dynamic_ncols=True)
    uses = Counter(r.path for r in records)          # a file may back several rows (untrimmed videos)
    unique = sorted(uses)
    results: Dict[str, Dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, res in zip(unique, pool.map(lambda p: probe_file(p, decode), unique)):
            results[path] = res
            if bar is not None:
                bar.update(uses[path])
    if bar is not None:
        bar.close()

    per_video, counts = [], Counter()
    per_class: Dict[str, Counter] = {}
    for rec in records:
        res = dict(results[rec.path])
        if res["status"] == "ok" and need["seconds"]:
            length = (rec.time_end - rec.time_start) if rec.time_start is not None else res["duration"]
            if length is None and res["frames"] and res["fps"]:
                length = res["frames"] / res["fps"]
            res["too_short"] = bool(length is not None and length + 1e-6 < need["seconds"])
        elif res["status"] == "ok":     # target_fps null: the clip counts the video's own frames
            frames = res["frames"] or (res["duration"] * res["fps"] if res["duration"] and res["fps"] else None)
            if rec.time_start is not None and res["fps"]:
                frames = (rec.time_end - rec.time_start) * res["fps"]
            res["too_short"] = bool(frames is not None and frames + 1e-6 < need["frames_at_target_fps"])
        else:
            res["too_short"] = False
        counts[res["status"]] += 1
        counts["too_short"] += res["too_short"]
        name = class_names[rec.label] if 0 <= rec.label < len(class_names) else ("(no label)" if rec.label < 0
                                                                                 else str(rec.label))
        c = per_class.setdefault(name, Counter())
        c["annotated"] += 1
        c[res["status"]] += 1
        c["too_short"] += res["too_short"]
        per_video.append({"path": rec.path, "label": name, **res})

    ok = [v for v in per_video if v["status"] == "ok"]
    res_counts = Counter(f"{v['width']}x{v['height']}" for v in ok if v["width"])
    fps_counts = Counter(round(v["fps"], 3) for v in ok if v["fps"])
    report: Dict[str, Any] = {
        "annotations": os.path.abspath(annotations),
        "data_root": os.path.abspath(data_root) if data_root else os.path.dirname(os.path.abspath(annotations)),
        "mode": "full decode" if decode else "header probe",
        "clip": need,
        "num_annotated": len(records), "num_present": len(records) - counts["missing"],
        "num_missing": counts["missing"], "num_undecodable": counts["undecodable"], "num_ok": counts["ok"],
        "num_too_short": counts["too_short"],
        "fps": _summary(v["fps"] for v in ok), "fps_most_common": [[f, n] for f, n in fps_counts.most_common(5)],
        "duration_s": _summary(v["duration"] for v in ok),
        "short_side": _summary(min(v["width"], v["height"]) for v in ok if v["width"] and v["height"]),
        "resolution_most_common": [[r, n] for r, n in res_counts.most_common(5)],
        "num_classes": len(class_names),
        "per_class": {n: {k: per_class[n][k] for k in ("annotated", "ok", "missing", "undecodable", "too_short")}
                      for n in sorted(per_class)},
        "classes_without_usable_video": sorted(n for n in per_class if per_class[n]["ok"] == 0),
        "problems": [{"path": v["path"], "label": v["label"], "status": v["status"], "error": v["error"]}
                     for v in per_video if v["status"] != "ok"],
        "too_short": [{"path": v["path"], "duration": v["duration"]} for v in per_video if v["too_short"]],
        "damaged": [{"path": v["path"], "error": v["error"]} for v in ok if v["error"]],
        # files the loaders decode with PyAV (exact but slower): decord cannot read them exactly
        "num_pyav": sum(1 for v in ok if v["pyav_reason"]),
        "pyav_reasons": [[why, n] for why, n in Counter(_reason_kind(v["pyav_reason"]) for v in ok
                                                         if v["pyav_reason"]).most_common()],
        "seconds": time.perf_counter() - t0,
    }
    keep = [v["status"] == "ok" and not (drop_short and v["too_short"]) for v in per_video]
    report["num_kept"] = sum(keep)
    if output is not None:
        report["files"] = write_outputs(report, output, annotations, kind, header, rows, keep)
    return report


def _reason_kind(reason: str) -> str:
    """A decoder note without its per-file detail ("rotated video (90°)" -> "rotated video")."""
    return re.sub(r"\s*\(.*\)$", "", reason) if reason.startswith("rotated") else reason


def write_outputs(report, output: str, annotations: str, kind: str, header, rows, keep) -> Dict[str, str]:
    from ..fileio import atomic_write_json
    from ..numfmt import round_floats

    try:
        os.makedirs(output, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output folder {output}: cannot write there ({exc.strerror or exc})") from None
    stem, ext = os.path.splitext(os.path.basename(annotations))
    clean = os.path.join(output, f"{stem}.clean{ext or '.txt'}")
    files = {"json": os.path.join(output, "report.json"), "text": os.path.join(output, "report.txt"),
             "clean": clean}
    try:
        with open(clean, "w", encoding="utf-8", newline="") as f:
            if kind == "csv":
                w = csv.writer(f, lineterminator="\n")
                w.writerow(header)
                w.writerows(r for r, k in zip(rows, keep) if k)
            else:
                f.writelines(r + "\n" for r, k in zip(rows, keep) if k)
        with open(files["text"], "w", encoding="utf-8") as f:
            f.write(format_report(report) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write in {output}: {exc.strerror or exc}") from None
    atomic_write_json(files["json"], round_floats(dict(report, files=files)), "report")
    return files


def _fmt_summary(s: Optional[Dict[str, float]], unit: str = "", spec: str = ".4g") -> str:
    if not s:
        return "-"
    return (f"min {s['min']:{spec}}{unit}, median {s['median']:{spec}}{unit}, max {s['max']:{spec}}{unit}")


def format_report(r: Dict[str, Any], max_problems: int = 10) -> str:
    n = r["num_annotated"] or 1
    clip = r["clip"]
    lines = [
        f"{r['annotations']} ({r['mode']}; videos under {r['data_root']})",
        f"annotated      {r['num_annotated']:7d}",
        f"present        {r['num_present']:7d}  ({100 * r['num_present'] / n:.1f} %)",
        f"missing        {r['num_missing']:7d}  ({100 * r['num_missing'] / n:.1f} %)",
        f"undecodable    {r['num_undecodable']:7d}  ({100 * r['num_undecodable'] / n:.1f} %)",
        f"too short      {r['num_too_short']:7d}  (under {clip['seconds']:.3g} s = {clip['num_frames']} frames x "
        f"{clip['sampling_rate']:g} at {clip['target_fps']:g} fps; still usable, the clip repeats its last frame)"
        if clip["seconds"] else f"too short      {r['num_too_short']:7d}  (under {clip['frames_at_target_fps']:g} "
        f"frames = {clip['num_frames']} frames x {clip['sampling_rate']:g} at the native frame rate; still usable, "
        "the clip repeats its last frame)",
        f"usable         {r['num_ok']:7d}  ({100 * r['num_ok'] / n:.1f} %); kept in the cleaned list: {r['num_kept']}",
        f"fps            {_fmt_summary(r['fps'])}; most common "
        + ", ".join(f"{f:g} ({c})" for f, c in r["fps_most_common"]),
        f"duration       {_fmt_summary(r['duration_s'], ' s')}",
        f"short side     {_fmt_summary(r['short_side'], ' px', '.0f')}; most common "
        + ", ".join(f"{res} ({c})" for res, c in r["resolution_most_common"]),
        f"classes        {r['num_classes']}" + (f"; without any usable video: {len(r['classes_without_usable_video'])} "
                                                f"({', '.join(r['classes_without_usable_video'][:5])}"
                                                f"{', ...' if len(r['classes_without_usable_video']) > 5 else ''})"
                                                if r["classes_without_usable_video"] else ""),
        "per class (annotated / usable / missing / undecodable / too short):",
    ]
    if r.get("num_pyav"):
        lines.insert(-1, f"decoded by PyAV {r['num_pyav']:6d}  (decord cannot read them exactly; PyAV is exact but slower: "
                     + ", ".join(f"{why}: {c}" for why, c in r["pyav_reasons"]) + ")")
    for name, c in r["per_class"].items():
        lines.append(f"  {name:32s} {c['annotated']:6d} {c['ok']:6d} {c['missing']:6d} {c['undecodable']:6d} "
                     f"{c['too_short']:6d}")
    damaged = r.get("damaged") or []
    if damaged:
        lines.append(f"damaged part-way ({len(damaged)}, usable: the frames before the damage are used; first "
                     f"{min(max_problems, len(damaged))}):")
        lines += [f"  {d['path']}: {d['error']}" for d in damaged[:max_problems]]
    if r["problems"]:
        lines.append(f"problems ({len(r['problems'])}, first {min(max_problems, len(r['problems']))}):")
        for p in r["problems"][:max_problems]:
            lines.append(f"  {p['status']:11s} {p['path']}: {p['error']}")
    return "\n".join(lines)
