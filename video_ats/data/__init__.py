"""Kinetics data pipeline: annotations, decoding, training / multi-view test datasets, synthetic data.

See ``docs/data.md`` for the formats, sampling conventions and bad-input behaviour.
"""
from .annotations import VIDEO_EXTENSIONS, VideoRecord, find_missing, load_label_map, read_annotations
from .datasets import MultiViewDataset, TrainDataset, collate_views
from .decode import (DecodeError, MemoryVideo, VideoInfo, VideoReader, decode_frames, preload_videos,
                     probe_video, sample_clip_indices)
from .official import OfficialClip, decode_official_clip
from .synthetic import make_synthetic

__all__ = [
    "VIDEO_EXTENSIONS", "VideoRecord", "find_missing", "load_label_map", "read_annotations",
    "MultiViewDataset", "TrainDataset", "collate_views",
    "DecodeError", "MemoryVideo", "VideoInfo", "VideoReader", "decode_frames", "preload_videos", "probe_video",
    "sample_clip_indices", "OfficialClip", "decode_official_clip",
    "make_synthetic",
]
