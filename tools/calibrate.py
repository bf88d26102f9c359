#!/usr/bin/env python
"""Thin wrapper: `python tools/calibrate.py ARGS` == `video-ats calibrate ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["calibrate", *sys.argv[1:]]))
