#!/usr/bin/env python
"""Thin wrapper: `python tools/make_synthetic.py --out DIR ...` == `video-ats make-synthetic ...`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from video_ats.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["make-synthetic", *sys.argv[1:]]))
