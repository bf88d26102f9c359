"""Synthetic Kinetics-format dataset: real H.264 videos of a moving shape over a moving texture.

Each class is a (shape, motion) pair. Motions come in time-reversed pairs (right/left, down/up,
grow/shrink, clockwise/counter-clockwise), so a model that ignores frame order cannot separate them.
The output mirrors a downloaded Kinetics split::

    OUT/
      classes.txt                    one class name per line, sorted (line i = label i)
      kinetics_train.csv             label,youtube_id,time_start,time_end,split
      kinetics_val.csv
      train.txt, val.txt             "relative/path.mp4 label" lists (relative to OUT)
      train/<class_name_with_underscores>/<id>_<start:06d>_<end:06d>.mp4   (per-class folders)
      val/<id>_<start:06d>_<end:06d>.mp4                                  (flat)

Everything is a deterministic function of ``seed`` (every video has its own seed derived from
(seed, split, class, index), and x264 runs single-threaded), so two runs produce identical files.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError

SHAPES = ("square", "disk", "triangle", "cross")
MOTIONS = ("right", "left", "down", "up", "grow", "shrink", "clockwise", "counterclockwise")
MAX_CLASSES = len(SHAPES) * len(MOTIONS)

DEFAULT_CLASSES = 8
DEFAULT_VIDEOS_PER_CLASS = 40
DEFAULT_SIZE = (128, 96)  # (W, H)
DEFAULT_SECONDS = 2.0
DEFAULT_FPS = 30
DEFAULT_VAL_FRACTION = 0.25
_ID_ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))


def class_definitions(num_classes: int) -> List[Tuple[str, str]]:
    """The first ``num_classes`` (shape, motion) pairs.

    Class k uses motion ``k % 8`` and shape ``(k + 9 * (k // 8)) % 4`` (all 32 pairs distinct),
    so any prefix covers as many motions as possible and time-reversed pairs sit next to each other.
    """
    if not 1 <= num_classes <= MAX_CLASSES:
        raise UserError(f"--classes must be between 1 and {MAX_CLASSES}, got {num_classes}")
    m, s = len(MOTIONS), len(SHAPES)
    return [(SHAPES[(k + (m + 1) * (k // m)) % s], MOTIONS[k % m]) for k in range(num_classes)]


def class_name(shape: str, motion: str) -> str:
    if motion in ("grow", "shrink"):
        return f"{shape} {motion}ing" if motion == "shrink" else f"{shape} growing"
    if motion in ("clockwise", "counterclockwise"):
        return f"{shape} circling {motion}"
    return f"{shape} moving {motion}"


def _texture(rng: np.random.Generator, h: int, w: int, contrast: float = 20.0) -> np.ndarray:
    """A low-contrast, smooth colour texture (H, W, 3) float32 in [0, 255], periodic for rolling."""
    coarse = rng.uniform(0, 1, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    # upsample by repetition then box-blur with periodic boundary (vectorised)
    tex = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:h, :w]
    if tex.shape[0] < h or tex.shape[1] < w:
        tex = np.pad(tex, ((0, h - tex.shape[0]), (0, w - tex.shape[1]), (0, 0)), mode="wrap")
    for axis in (0, 1):
        tex = sum(np.roll(tex, k, axis=axis) for k in range(-4, 5)) / 9.0
    base = rng.uniform(60, 120, size=3).astype(np.float32)
    return base + (tex - 0.5) * contrast


def _shape_mask(shape: str, xx, yy, cx, cy, r):
    """Boolean masks (T, H, W) for a shape of half-size r (T,1,1) centred at (cx, cy) (T,1,1)."""
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disk":
        return dx * dx + dy * dy <= r * r
    if shape == "triangle":  # apex up
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.5 + 0.5)
    if shape == "cross":
        arm = np.maximum(r * 0.35, 1.0)
        return ((np.abs(dx) <= r) & (np.abs(dy) <= arm)) | ((np.abs(dy) <= r) & (np.abs(dx) <= arm))
    raise ValueError(shape)


def iter_video_chunks(shape: str, motion: str, width: int, height: int, num_frames: int, seed,
                      chunk: int = 32, object_scale: Tuple[float, float] = (0.10, 0.14),
                      texture_contrast: float = 20.0):
    """Yield uint8 arrays (t, H, W, 3), ``chunk`` frames at a time (bounded memory for long videos):
    one shape following ``motion`` over a drifting texture. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    T, H, W = num_frames, height, width
    S = min(H, W)
    r0 = S * rng.uniform(*object_scale)      # half-size of the shape, as a fraction of the short side
    cx0, cy0 = W / 2 + rng.uniform(-0.08, 0.08) * W, H / 2 + rng.uniform(-0.08, 0.08) * H
    theta0 = rng.uniform(0, 2 * np.pi)
    tex = _texture(rng, H, W, texture_contrast)
    drift = rng.uniform(-1.0, 1.0, size=2) * 0.5  # pixels per frame: a mild camera pan
    hue = int(rng.integers(0, 3))
    color = np.empty(3, dtype=np.float32)
    color[hue] = 255.0
    color[(hue + 1) % 3] = rng.uniform(0, 60)
    color[(hue + 2) % 3] = rng.uniform(200, 255)
    # sensor noise: a small bank of noise frames, cycled (cheap for long videos)
    noise = rng.standard_normal((min(7, T), H, W, 3), dtype=np.float32) * 3.0
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for f0 in range(0, T, chunk):
        fr = np.arange(f0, min(f0 + chunk, T))
        t = (fr.astype(np.float32) / max(T - 1, 1))[:, None, None]  # 0..1 over the video
        r = np.full_like(t, r0)
        if motion in ("right", "left"):
            sgn = 1 if motion == "right" else -1
            cx, cy = cx0 + sgn * (t - 0.5) * 0.6 * W, np.full_like(t, cy0)
        elif motion in ("down", "up"):
            sgn = 1 if motion == "down" else -1
            cx, cy = np.full_like(t, cx0), cy0 + sgn * (t - 0.5) * 0.6 * H
        elif motion in ("grow", "shrink"):
            cx, cy = np.full_like(t, W / 2), np.full_like(t, H / 2)
            lo, hi = S * 0.06, S * 0.32
            r = lo + (hi - lo) * (t if motion == "grow" else 1 - t)
        else:  # circling; image y points down, so +angle is clockwise on screen
            sgn = 1 if motion == "clockwise" else -1
            ang = theta0 + sgn * 1.5 * np.pi * t
            cx, cy = W / 2 + 0.28 * S * np.cos(ang), H / 2 + 0.28 * S * np.sin(ang)
        mask = _shape_mask(shape, xx[None], yy[None], cx, cy, r)  # (t, H, W)
        shifts = np.round(fr[:, None] * drift[None, :]).astype(int)
        rows = (np.arange(H)[None, :] - shifts[:, 0:1]) % H  # (t, H): rolled texture rows
        cols = (np.arange(W)[None, :] - shifts[:, 1:2]) % W  # (t, W)
        frames = tex[rows[:, :, None], cols[:, None, :]]  # (t, H, W, 3)
        frames[mask] = color
        frames += noise[fr % len(noise)]
        yield np.clip(frames, 0, 255).astype(np.uint8)


def render_video(shape: str, motion: str, width: int, height: int, num_frames: int, seed) -> np.ndarray:
    """uint8 array (T, H, W, 3) of a whole synthetic video (see :func:`iter_video_chunks`)."""
    return np.concatenate(list(iter_video_chunks(shape, motion, width, height, num_frames, seed)))


# ---------------------------------------------------------------------------------------------
# The Kinetics-shaped preset: class evidence covering a varying share of the frame
# ---------------------------------------------------------------------------------------------
SCENE_MOTIONS = MOTIONS
# Targets carry the class and are warm-coloured; distractors are cool-coloured and do any motion
# (the other classes' motions too), so a model must find the targets before reading their motion.
_WARM = np.array([[235, 40, 30], [245, 140, 20], [240, 220, 30], [230, 40, 160]], dtype=np.float32)
WARM_NAMES = ("red", "orange", "yellow", "magenta")
# the 8 colour-change classes: 4 pairs of warm colours, each in both orders (time-reversed twins)
COLOUR_CHANGES = {f"{WARM_NAMES[a]}>{WARM_NAMES[b]}": (a, b)
                  for a, b in ((0, 2), (2, 0), (1, 3), (3, 1), (0, 3), (3, 0), (2, 1), (1, 2))}
_COOL = np.array([[30, 90, 235], [20, 200, 220], [40, 190, 70], [120, 70, 230]], dtype=np.float32)


def _trajectory(motion: str, t, rng: np.random.Generator, W: int, H: int, r0: float):
    """Centre (cx, cy) and half-size r, each (t, 1, 1), of one object doing ``motion`` over t ∈ [0, 1]."""
    S = min(W, H)
    one = np.ones_like(t)
    span = rng.uniform(0.35, 0.55)                      # travel as a fraction of the frame side
    r = r0 * one
    if motion in ("right", "left", "down", "up"):
        horizontal = motion in ("right", "left")
        sgn = 1.0 if motion in ("right", "down") else -1.0
        side, other = (W, H) if horizontal else (H, W)
        travel = span * side
        lo, hi = r0 + travel / 2, side - r0 - travel / 2
        c = rng.uniform(lo, hi) if hi > lo else side / 2
        along = c + sgn * (t - 0.5) * travel
        across = rng.uniform(r0, other - r0) * one
        cx, cy = (along, across) if horizontal else (across, along)
    elif motion in ("grow", "shrink"):
        lo_r, hi_r = 0.35 * r0, 1.6 * r0
        cx = rng.uniform(hi_r, W - hi_r) * one
        cy = rng.uniform(min(hi_r, H / 2), max(H - hi_r, H / 2)) * one
        r = lo_r + (hi_r - lo_r) * (t if motion == "grow" else 1 - t)
    else:                                               # circling; +angle is clockwise on screen
        sgn = 1.0 if motion == "clockwise" else -1.0
        radius = rng.uniform(0.16, 0.26) * S
        ox = rng.uniform(radius + r0, W - radius - r0) if W > 2 * (radius + r0) else W / 2
        oy = rng.uniform(radius + r0, H - radius - r0) if H > 2 * (radius + r0) else H / 2
        ang = rng.uniform(0, 2 * np.pi) + sgn * 1.5 * np.pi * t
        cx, cy = ox + radius * np.cos(ang), oy + radius * np.sin(ang)
    return cx, cy, r


def _scene_layout(label: str, width: int, height: int, seed, object_scale, texture_contrast: float,
                  max_targets: int, max_distractors: int, pan_speed: float, colour_window: float = 1.0):
    """The random draws of a scene, in the order :func:`iter_scene_chunks` makes them: the generator (to
    draw on with), the background texture, the pan (px/frame), the objects (targets first) and how many
    of them are targets. An object's colours are (before, after, switch time, shown from, shown until,
    colour outside that window); a window of 1 draws nothing more (the files stay as they were)."""
    rng = np.random.default_rng(seed)
    H, W = height, width
    S = min(H, W)
    tex = _texture(rng, H, W, texture_contrast)
    pan = rng.uniform(-1, 1, size=2)
    pan *= rng.uniform(0, pan_speed) / max(np.linalg.norm(pan), 1e-6)

    def random_motion():
        return SCENE_MOTIONS[rng.integers(len(SCENE_MOTIONS))]

    def colours(palette, pair=None):                     # (start colour, end colour, switch time in [0, 1])
        if pair is None:
            i, j = rng.choice(len(palette), size=2, replace=rng.random() < 0.5)
            pair = (palette[i], palette[j])
        return pair[0], pair[1], rng.uniform(0.3, 0.7)

    def always(c):
        return (*c, -np.inf, np.inf, None)

    def brief(c):                                       # warm only around the switch, a cool colour outside
        if colour_window >= 1:
            return always(c)
        return (*c, c[2] - colour_window / 2, c[2] + colour_window / 2, _COOL[rng.integers(len(_COOL))])

    change = COLOUR_CHANGES.get(label)
    objects = []                                        # (shape, motion, colours (see above), half-size)
    num_targets = int(rng.integers(1, max_targets + 1))
    for _ in range(num_targets):
        if change is None:
            c = _WARM[rng.integers(len(_WARM))]
            objects.append((SHAPES[rng.integers(len(SHAPES))], label, always((c, c, 1.0)),
                            S * rng.uniform(*object_scale)))
        else:
            objects.append((SHAPES[rng.integers(len(SHAPES))], random_motion(),
                            brief(colours(_WARM, (_WARM[change[0]], _WARM[change[1]]))), S * rng.uniform(*object_scale)))
    for _ in range(int(rng.integers(0, max_distractors + 1))):
        c = colours(_COOL) if change is not None else (lambda k: (k, k, 1.0))(_COOL[rng.integers(len(_COOL))])
        objects.append((SHAPES[rng.integers(len(SHAPES))], random_motion(), always(c), S * rng.uniform(*object_scale)))
    return rng, tex, pan, objects, num_targets


def iter_scene_chunks(label: str, width: int, height: int, num_frames: int, seed, chunk: int = 32,
                      object_scale: Tuple[float, float] = (0.05, 0.2), texture_contrast: float = 30.0,
                      max_targets: int = 3, max_distractors: int = 3, pan_speed: float = 1.5,
                      colour_window: float = 1.0):
    """Yield uint8 (t, H, W, 3) chunks of a scene: 1..``max_targets`` warm-coloured targets of random
    shapes and sizes, 0..``max_distractors`` cool-coloured distractors, over a textured background
    panning at up to ``pan_speed`` px/frame. ``label`` is what the targets do:

    * a motion (``"right"``, ``"grow"``, ...): every target does it; distractors do random motions;
    * a colour change ``"red>yellow"`` (see ``COLOUR_CHANGES``): every target turns from the first warm
      colour to the second at a random moment of the middle of the clip while doing a random motion;
      distractors change between cool colours. Either way a time-reversed clip is another class.
      ``colour_window`` < 1 makes the change a brief event: the targets show their warm colours only for
      that share of the clip, centred on the switch, and a cool colour (like a distractor's) otherwise.

    The share of the frame that holds the class evidence varies from clip to clip (object count and
    size), so the number of informative tokens does too. Deterministic for ``seed``.
    """
    T, H, W = num_frames, height, width
    rng, tex, pan, objects, _ = _scene_layout(label, width, height, seed, object_scale, texture_contrast,
                                              max_targets, max_distractors, pan_speed, colour_window)
    order = rng.permutation(len(objects))               # who is drawn on top
    paths = [np.random.default_rng(rng.integers(2**63)) for _ in objects]
    t_all = (np.arange(T, dtype=np.float32) / max(T - 1, 1))[:, None, None]
    tracks = [_trajectory(m, t_all, g, W, H, r0) for (_, m, _, r0), g in zip(objects, paths)]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for f0 in range(0, T, chunk):
        fr = np.arange(f0, min(f0 + chunk, T))
        shifts = np.round(fr[:, None] * pan[None, :]).astype(int)
        rows = (np.arange(H)[None, :] - shifts[:, 1:2]) % H
        cols = (np.arange(W)[None, :] - shifts[:, 0:1]) % W
        frames = tex[rows[:, :, None], cols[:, None, :]]
        for i in order:
            shape, _, (c0, c1, switch, shown, hidden, c_off), _ = objects[i]
            cx, cy, r = (a[fr] for a in tracks[i])
            mask = _shape_mask(shape, xx[None], yy[None], cx, cy, r)           # (t, H, W)
            t = t_all[fr, 0, 0]
            late, on = (t >= switch)[:, None, None], ((t >= shown) & (t < hidden))[:, None, None]
            frames[mask & on & ~late] = c0
            frames[mask & on & late] = c1
            if c_off is not None:
                frames[mask & ~on] = c_off
        yield np.clip(frames, 0, 255).astype(np.uint8)


def rgb_to_yuv420(rgb: np.ndarray):
    """uint8 (T, H, W, 3) RGB -> (Y (T, H, W), U, V (T, H/2, W/2)) uint8, BT.601 limited range.

    Done here rather than by libswscale: its SIMD paths read the padding of the input lines, which
    made the encoded bytes depend on uninitialised memory.
    """
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    T, H, W = y.shape

    def sub(c):  # 2x2 average
        return c.reshape(T, H // 2, 2, W // 2, 2).mean(axis=(2, 4))

    return tuple(np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, sub(u), sub(v)))


def _yuv_frame(width: int, height: int, planes):
    import av

    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, planes):
        buf = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        buf[:, : plane.width] = data
        buf[:, plane.width:] = data[:, -1:]  # defined padding (edge copy)
    return frame


def write_video(path: str, frames, fps: int = DEFAULT_FPS, crf: int = 20, gop: Optional[int] = None) -> None:
    """Encode uint8 frames as H.264 mp4 (yuv420p, single-threaded x264: deterministic).

    ``frames``: an array (T, H, W, 3) or an iterable of such arrays (chunks). ``gop``: keyframe
    interval in frames (default: one second)."""
    import av

    chunks = [frames] if isinstance(frames, np.ndarray) else frames
    it = iter(chunks)
    first = next(it)
    H, W = first.shape[1:3]
    if W % 2 or H % 2:
        raise ValueError(f"H.264/yuv420p needs even sizes, got {W}x{H}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        # Reproducible bytes: single-threaded x264, and no rate-control lookahead -- on small
        # frames x264's lookahead (asm paths) gave different bytes from run to run in one process.
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(int(gop or fps)),
                          "x264-params": "threads=1:lookahead-threads=1:rc-lookahead=0:mbtree=0"}
        pts = 0
        for part in itertools.chain([first], it):
            planes = rgb_to_yuv420(part)
            for k in range(len(part)):
                frame = _yuv_frame(W, H, [p[k] for p in planes])
                frame.pts = pts
                pts += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _youtube_like_id(rng: np.random.Generator) -> str:
    return "".join(_ID_ALPHABET[rng.integers(0, len(_ID_ALPHABET), size=11)])


def _job(args):
    path, shape, motion, w, h, n, fps, seed, gop, style = args
    if shape is None:                                   # the scene preset: the class is the motion
        frames = iter_scene_chunks(motion, w, h, n, seed, **style)
    else:
        frames = iter_video_chunks(shape, motion, w, h, n, seed, **style)
    write_video(path, frames, fps=fps, gop=gop)
    return path


SCENES = ("shapes", "kinetics")
# Named presets of make_synthetic's arguments. "kinetics" is the Kinetics-shaped benchmark set: 8
# classes decided by temporal order (a colour change and its reverse), cluttered scenes, a held-out test
# split of 1,024 videos. ONE small target (half-size 6-14 % of the short side: 0.7-3.8 patches of the
# model's 7x7 grid per frame) among 0-2 distractors, so the class evidence sits in few tokens. Whether
# random dropping then loses depends on where the trained model gathers that evidence (docs/benchmark.md):
# with 1-3 targets of 9-24 % (v3) or one of 8-16 % (v4) random dropping at half the dense GFLOPs lost >= 10
# points on one of the four trained models (the others had spread the class by the first ATS block).
# Harder variants the benchmark's small TimeSformer did not learn in its time budget: motion classes
# (evidence="motion": axis learned, direction not, val Top-1 ~40 %) and brief colour changes
# (colour_window=0.3: the colours shown in ~3 of the 8 frames, val Top-1 47 %).
PRESETS = {
    # 4 colour-pair classes (no time-reversed twins): with moving-shape classes (seeds 0-2) and with
    # colour-change twins (seed 0) the quickstart's 4x4-grid model stayed near 50 % Top-1 in 25 epochs,
    # the pair learned and the direction not; the quickstart demonstrates the pipeline, the temporal
    # task is the benchmark's
    "quickstart": dict(scene="kinetics", evidence="colour_pair", classes=4, videos_per_class=100, size=(96, 72),
                       seconds=2.0, fps=16, object_scale=(0.12, 0.24), texture_contrast=20.0, max_distractors=1,
                       pan_speed=1.0),
    "kinetics": dict(scene="kinetics", evidence="colour", classes=8, videos_per_class=378, size=(80, 64),
                     seconds=2.0, fps=16, val_fraction=50 / 378, test_fraction=128 / 378,
                     object_scale=(0.06, 0.14), texture_contrast=25.0, max_targets=1, max_distractors=2,
                     pan_speed=1.0),
}


# what the targets' class is: their motion, their colour change (each class has its time-reversed twin),
# or the pair of colours they change between (one of each twin pair: no temporal order needed, at most 4)
EVIDENCE = ("motion", "colour", "colour_pair")


def scene_labels(evidence: str) -> Tuple[str, ...]:
    """The kinetics scene's labels for ``evidence``; class k of ``make_synthetic`` is the k-th."""
    return {"motion": SCENE_MOTIONS, "colour": tuple(COLOUR_CHANGES), "colour_pair": tuple(COLOUR_CHANGES)[::2]}[evidence]


def scene_target_sizes(csv_path: str, seed: int = 0, **preset) -> Dict[str, List[float]]:
    """youtube_id -> half-sizes (px, in the generated frames) of the targets of each video of a kinetics-scene
    CSV written by ``make_synthetic(seed=seed, **preset)``: the generator's draws replayed from each video's
    seed, nothing decoded. For analyses of where a method loses (small or few targets)."""
    import inspect

    p = {k: v.default for k, v in inspect.signature(make_synthetic).parameters.items() if k != "out_dir"}
    p.update(preset)
    if p["scene"] != "kinetics":
        raise UserError(f"target sizes exist for the kinetics scene only, got scene {p['scene']!r}")
    with open(csv_path, newline="") as f:
        wanted: Dict[str, set] = {}
        for row in csv.DictReader(f):
            wanted.setdefault(row["label"], set()).add(row["youtube_id"])
    w, h = (int(v) for v in p["size"])
    style = dict(object_scale=tuple(p["object_scale"]), texture_contrast=float(p["texture_contrast"]),
                 max_targets=int(p["max_targets"]), max_distractors=int(p["max_distractors"]),
                 pan_speed=float(p["pan_speed"]), colour_window=float(p["colour_window"]))
    out: Dict[str, List[float]] = {}
    for k, label in enumerate(scene_labels(p["evidence"])[: p["classes"]]):
        ids = wanted.get(scene_class_name(label), set())
        for j in range(p["videos_per_class"] if ids else 0):
            ss = np.random.SeedSequence([int(seed), k, j])                 # as make_synthetic draws them
            yid = _youtube_like_id(np.random.default_rng(ss))
            if yid in ids:
                _, _, _, objects, n = _scene_layout(label, w, h, ss.spawn(1)[0], **style)
                out[yid] = [float(o[3]) for o in objects[:n]]
    return out


def scene_class_name(label: str) -> str:
    if label in COLOUR_CHANGES:
        before, after = label.split(">")
        return f"targets turning {after} from {before}"
    motion = label
    return {"grow": "targets growing", "shrink": "targets shrinking", "clockwise": "targets circling clockwise",
            "counterclockwise": "targets circling counterclockwise"}.get(motion, f"targets moving {motion}")


def make_synthetic(
    out_dir: str,
    classes: int = DEFAULT_CLASSES,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    size: Tuple[int, int] = DEFAULT_SIZE,
    seconds: float = DEFAULT_SECONDS,
    fps: int = DEFAULT_FPS,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    workers: Optional[int] = None,
    gop: Optional[int] = None,
    object_scale: Tuple[float, float] = (0.10, 0.14),
    texture_contrast: float = 20.0,
    scene: str = "shapes",
    evidence: str = "motion",
    test_fraction: float = 0.0,
    max_targets: int = 3,
    max_distractors: int = 3,
    pan_speed: float = 1.5,
    colour_window: float = 1.0,
) -> Dict[str, str]:
    """Write a synthetic Kinetics-format dataset under ``out_dir``; returns the paths written.

    Keys: ``root``, ``classes`` (class-name file), ``train_csv``, ``val_csv``, ``train_list``,
    ``val_list``, ``label_map_json``. ``size`` is (W, H), both even. ``videos_per_class`` videos per
    class, of which ``round(val_fraction * videos_per_class)`` (at least 1 when there are 2 or more)
    go to val. ``workers`` processes encode in parallel (default: CPU count, at most 8). ``gop``:
    keyframe interval in frames (default ``fps``, one second). ``object_scale``: range of the shape's
    half-size as a fraction of the frame's short side; ``texture_contrast``: peak-to-peak amplitude of
    the background texture (0-255 scale). The default (20) keeps the texture visible but lets the object
    dominate: with 50, tiny transformers trained from scratch sat at chance for hundreds of steps.
    ``scene``: "shapes" (one shape per class, class = shape x motion) or "kinetics" (cluttered scenes:
    1..``max_targets`` warm-coloured targets among 0..``max_distractors`` cool-coloured distractors over
    a background panning at up to ``pan_speed`` px/frame; the class is the targets' motion,
    ``evidence="motion"``, their colour change, ``evidence="colour"`` (at most 8 classes), or the pair of
    colours they change between, ``evidence="colour_pair"`` (at most 4); see
    :func:`iter_scene_chunks`); ``colour_window`` < 1 shows the targets' colours only for that share of
    the clip around their change (a brief event, few informative tokens). ``test_fraction``: share of each
    class's videos held out in a ``test`` split (CSV ``kinetics_test.csv``, list ``test.txt``, folder
    ``test/``), after val.
    """
    if scene not in SCENES:
        raise UserError(f"unknown synthetic scene {scene!r}; use one of {SCENES}")
    lo_scale, hi_scale = (float(v) for v in object_scale)
    if not 0 < lo_scale <= hi_scale <= 0.5:
        raise UserError(f"object scale must satisfy 0 < min <= max <= 0.5, got {object_scale}")
    if texture_contrast < 0:
        raise UserError(f"texture contrast must be >= 0, got {texture_contrast}")
    style = {"object_scale": (lo_scale, hi_scale), "texture_contrast": float(texture_contrast)}
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise UserError(f"size must be even and at least 16x16 (W x H), got {w}x{h}")
    if videos_per_class < 1:
        raise UserError(f"videos per class must be >= 1, got {videos_per_class}")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError(f"val and test fractions must be in [0, 1) with a sum below 1, got {val_fraction} "
                        f"and {test_fraction}")
    if fps < 1:
        raise UserError(f"fps must be >= 1, got {fps}")
    num_frames = int(round(seconds * fps))
    if num_frames < 2:
        raise UserError(f"seconds x fps must give at least 2 frames, got {seconds} s at {fps} fps")
    if scene == "kinetics":
        if evidence not in EVIDENCE:
            raise UserError(f"unknown scene evidence {evidence!r}; use one of {EVIDENCE}")
        labels = scene_labels(evidence)
        if not 1 <= classes <= len(labels):
            raise UserError(f"the kinetics scene with evidence {evidence!r} has at most {len(labels)} classes, "
                            f"got {classes}")
        defs = [(None, m) for m in labels[:classes]]
        names = [scene_class_name(m) for _, m in defs]
        if max_targets < 1 or max_distractors < 0 or pan_speed < 0:
            raise UserError(f"kinetics scenes need max_targets >= 1, max_distractors >= 0 and pan_speed >= 0, got "
                            f"{max_targets}, {max_distractors}, {pan_speed}")
        if not 0 < colour_window <= 1:
            raise UserError(f"colour window must be a share of the clip in (0, 1], got {colour_window}")
        if colour_window < 1 and evidence == "motion":
            raise UserError("a colour window needs colour evidence (evidence 'colour' or 'colour_pair'), got 'motion'")
        style = {"object_scale": (lo_scale, hi_scale), "texture_contrast": float(texture_contrast),
                 "max_targets": int(max_targets), "max_distractors": int(max_distractors),
                 "pan_speed": float(pan_speed), "colour_window": float(colour_window)}
    else:
        defs = class_definitions(int(classes))
        names = [class_name(s, m) for s, m in defs]
    order = sorted(range(len(names)), key=lambda k: names[k])  # label = position in sorted names
    label_of = {names[k]: i for i, k in enumerate(order)}
    n_val = int(round(val_fraction * videos_per_class))
    if videos_per_class >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), videos_per_class - 1)
    n_test = int(round(test_fraction * videos_per_class))
    if test_fraction > 0:
        n_test = min(max(n_test, 1), videos_per_class - n_val - 1)
    splits = ("train", "val", "test") if n_test else ("train", "val")

    from ..engine.builders import check_writable_dir      # engine imports data: import here

    check_writable_dir(out_dir)      # a file on the way or a read-only parent: one line, before any encoding
    rows = {split: [] for split in splits}
    jobs = []
    for k, (shape, motion) in enumerate(defs):
        name = names[k]
        for j in range(videos_per_class):
            split = ("test" if j >= videos_per_class - n_test else
                     "val" if j >= videos_per_class - n_test - n_val else "train")
            ss = np.random.SeedSequence([int(seed), k, j])
            rng = np.random.default_rng(ss)
            yid = _youtube_like_id(rng)
            start = int(rng.integers(0, 300))
            end = start + int(np.ceil(seconds))
            fname = f"{yid}_{start:06d}_{end:06d}.mp4"
            rel = os.path.join(split, name.replace(" ", "_"), fname) if split == "train" else os.path.join(split, fname)
            rows[split].append((name, yid, start, end, split, rel))
            jobs.append((os.path.join(out_dir, rel), shape, motion, w, h, num_frames, int(fps),
                         ss.spawn(1)[0], gop, style))
    nw = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if nw > 1 and len(jobs) > 4:
        with ProcessPoolExecutor(max_workers=nw) as ex:
            list(ex.map(_job, jobs, chunksize=max(1, len(jobs) // (nw * 8))))
    else:
        for job in jobs:
            _job(job)

    paths = {"root": os.path.abspath(out_dir)}
    with open(os.path.join(out_dir, "classes.txt"), "w") as f:
        f.write("".join(names[k] + "\n" for k in order))
    paths["classes"] = os.path.join(paths["root"], "classes.txt")
    with open(os.path.join(out_dir, "label_map.json"), "w") as f:
        json.dump(label_of, f, indent=1, sort_keys=True)
    paths["label_map_json"] = os.path.join(paths["root"], "label_map.json")
    for split in splits:
        csv_path = os.path.join(out_dir, f"kinetics_{split}.csv")
        with open(csv_path, "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for name, yid, start, end, sp, _ in rows[split]:
                wr.writerow([name, yid, start, end, sp])
        list_path = os.path.join(out_dir, f"{split}.txt")
        with open(list_path, "w") as f:
            for name, *_, rel in rows[split]:
                f.write(f"{rel} {label_of[name]}\n")
        paths[f"{split}_csv"] = os.path.abspath(csv_path)
        paths[f"{split}_list"] = os.path.abspath(list_path)
    return paths
