#!/usr/bin/env python
"""Thin wrapper: `python tools/predict.py ARGS` == `video-ats predict ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
