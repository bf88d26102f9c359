#!/usr/bin/env python
"""Thin wrapper: `python tools/benchmark.py ARGS` == `video-ats benchmark ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
