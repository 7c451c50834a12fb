"""Every lesson runs offline in its --quick mode on its default model (tiny-pretrained), writes the figures it
says it wrote, and -- where a lesson measures a claim against a control -- the claim holds. Each lesson is a
jupytext percent-format script, so that it also opens and runs as a notebook (tests/test_book.py runs them so).

The lessons are found by name (lessons/NN_*.py), so a new lesson is tested as soon as it exists. They run once,
two at a time (the machine has 2 cores), in a module fixture; each test reads its lesson's run.
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
OUT = ROOT / "lessons" / "out"
FIGURE_LINE = "saved figure: "  # what lessons/common.py's save_figure prints
# The lessons that measure a claim against a control (report() -> lessons/out/NN.json); on tiny-pretrained each
# must hold on --quick. lessons/README.md gives each claim and its measured numbers.
CLAIMS = ["02", "05", "06", "07", "08", "09", "10", "11", "13"]


def run_lesson(lesson):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    start = time.time()
    run = subprocess.run([sys.executable, str(lesson), "--quick"], cwd=ROOT, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    return run, start, time.time() - start


@pytest.fixture(scope="module")
def runs():
    with ThreadPoolExecutor(2) as pool:
        return dict(zip([p.stem for p in LESSONS], pool.map(run_lesson, LESSONS)))


def test_lessons_exist():
    assert LESSONS, "no lessons/NN_*.py found"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_is_a_notebook(lesson):
    """Each lesson is a jupytext percent-format script: it opens with a markdown cell (its title and what it
    teaches), its prose sits in `# %% [markdown]` cells between `# %%` code cells, and it runs top to bottom,
    with no main() behind a __main__ guard that a notebook would never call."""
    text = lesson.read_text()
    body = text.split("# ---\n", 2)[-1] if text.startswith("# ---\n") else text  # after jupytext's header
    assert body.lstrip().startswith("# %% [markdown]\n# # Lesson "), f"{lesson.name} does not open with its title cell"
    assert "# ## What it teaches" in text, f"{lesson.name}: no 'What it teaches' in its first cell"
    assert text.count("# %% [markdown]") >= 2 and "\n# %%\n" in text, f"{lesson.name}: not in cells"
    assert "__main__" not in text and "parse_args(" in text, f"{lesson.name}: runs behind a __main__ guard"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_quick(runs, lesson):
    run, start, seconds = runs[lesson.stem]
    output = f"--- stdout (end) ---\n{run.stdout[-4000:]}\n--- stderr (end) ---\n{run.stderr[-4000:]}"
    assert run.returncode == 0, f"{lesson.name} exited with {run.returncode}\n{output}"
    assert "tiny-pretrained" in run.stdout, f"{lesson.name} does not run on tiny-pretrained by default\n{output}"
    assert seconds < 120, f"{lesson.name} --quick took {seconds:.0f} s (goal: 60 s on an idle 2-core machine)"
    figures = [line[len(FIGURE_LINE):].strip() for line in run.stdout.splitlines() if line.startswith(FIGURE_LINE)]
    assert figures, f"{lesson.name} saved no figure\n{output}"
    for figure in figures:
        path = ROOT / figure  # printed relative to the working directory, here the repository root
        assert path.is_file(), f"{lesson.name} printed {figure!r}, which does not exist"
        assert path.stat().st_mtime >= start - 1, f"{figure} was not written by this run"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"


@pytest.mark.parametrize("number", CLAIMS)
def test_lesson_claim_holds(runs, number):
    (lesson,) = [p for p in LESSONS if p.stem.startswith(number)]
    run, start, _ = runs[lesson.stem]
    path = OUT / f"{number}.json"
    assert path.is_file() and path.stat().st_mtime >= start - 1, f"{lesson.name} wrote no {path.name}\n{run.stdout[-2000:]}"
    result = json.loads(path.read_text())
    assert f"result: {json.dumps(result)}" in run.stdout, f"{lesson.name} did not print its result line"
    assert result["holds"], f"{lesson.name}: the claim does not hold: {result}"
