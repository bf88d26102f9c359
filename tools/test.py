#!/usr/bin/env python
"""Thin wrapper: `python tools/test.py --config CFG --checkpoint PATH ...` == `video-ats test ...`
(works under `torchrun --nproc_per_node N tools/test.py ...`)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from video_ats.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]]))
