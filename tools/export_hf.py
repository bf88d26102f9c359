#!/usr/bin/env python
"""Thin wrapper: `python tools/export_hf.py --checkpoint CKPT --out DIR [--config CFG]` == `video-ats export-hf ...`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from video_ats.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export-hf", *sys.argv[1:]]))
