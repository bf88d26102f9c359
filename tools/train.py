#!/usr/bin/env python
"""Thin wrapper: `python tools/train.py --config CFG [key=value ...]` == `video-ats train ...`
(works under `torchrun --nproc_per_node N tools/train.py ...`)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from video_ats.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
