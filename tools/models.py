#!/usr/bin/env python
"""Thin wrapper: `python tools/models.py ARGS` == `video-ats models ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["models", *sys.argv[1:]]))
