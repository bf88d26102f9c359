#!/usr/bin/env python
"""Thin wrapper: `python tools/check_data.py ARGS` == `video-ats check-data ARGS`."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["check-data", *sys.argv[1:]]))
