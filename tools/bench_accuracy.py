#!/usr/bin/env python
"""Thin wrapper: `python tools/bench_accuracy.py ARGS` == `video-ats bench-accuracy ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench-accuracy", *sys.argv[1:]]))
