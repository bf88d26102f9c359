"""The tools/*.py wrappers run as scripts. A wrapper named like a stdlib module (e.g. profile.py) would
shadow it for every script in tools/ — torch imports cProfile, which imports profile — and break them all."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")))


def test_every_subcommand_has_a_wrapper_and_none_shadows_the_stdlib():
    from video_ats.cli import COMMANDS
    stems = {os.path.splitext(os.path.basename(t))[0] for t in TOOLS}
    missing = [c for c in COMMANDS if not any(c.replace("-", "_") in s for s in stems)]
    assert not missing, missing
    # tools/test.py is the name users expect (PySlowFast habit); nothing in torch imports the `test` package
    shadowing = sorted(stems & set(sys.stdlib_module_names) - {"test"})
    assert not shadowing, shadowing


@pytest.mark.parametrize("name", ["train.py", "test.py", "profile_clips.py"])
def test_wrapper_runs(name):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "usage:" in p.stdout
