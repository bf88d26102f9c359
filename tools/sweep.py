#!/usr/bin/env python
"""Thin wrapper: `python tools/sweep.py ARGS` == `video-ats sweep ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
