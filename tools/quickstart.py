#!/usr/bin/env python
"""Thin wrapper: `python tools/quickstart.py ARGS` == `video-ats quickstart ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["quickstart", *sys.argv[1:]]))
