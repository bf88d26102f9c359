#!/usr/bin/env python
"""Thin wrapper: `python tools/profile_clips.py ARGS` == `video-ats profile ARGS` (not named profile.py:
that would shadow the standard library module `profile`, which torch imports)."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
