"""Every lesson runs, offline, on tiny-random in its --quick mode, and writes the figures it says it wrote.

The lessons are found by name (lessons/NN_*.py), so a new lesson is tested as soon as it exists.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
FIGURE_LINE = "saved figure: "  # what lessons/common.py's save_figure prints


def test_lessons_exist():
    assert LESSONS, "no lessons/NN_*.py found"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_quick(lesson):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    start = time.time()
    run = subprocess.run([sys.executable, str(lesson), "--model", "tiny-random", "--quick"], cwd=ROOT, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    output = f"--- stdout (end) ---\n{run.stdout[-4000:]}\n--- stderr (end) ---\n{run.stderr[-4000:]}"
    assert run.returncode == 0, f"{lesson.name} exited with {run.returncode}\n{output}"
    assert "RANDOM weights" in run.stdout, f"{lesson.name} does not say its outputs come from random weights"
    figures = [line[len(FIGURE_LINE):].strip() for line in run.stdout.splitlines() if line.startswith(FIGURE_LINE)]
    assert figures, f"{lesson.name} saved no figure\n{output}"
    for figure in figures:
        path = ROOT / figure  # printed relative to the working directory, here the repository root
        assert path.is_file(), f"{lesson.name} printed {figure!r}, which does not exist"
        assert path.stat().st_mtime >= start - 1, f"{figure} was not written by this run"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
