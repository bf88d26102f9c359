#!/usr/bin/env python
"""Thin wrapper: `python tools/benchmark_data.py ARGS` == `video-ats benchmark data ARGS` (the data-loader
benchmark: this project's test-view and training loaders vs pytorchvideo on the same files)."""
import sys

from video_ats.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "data", *sys.argv[1:]]))
