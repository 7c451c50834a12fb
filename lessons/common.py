"""What every lesson shares: its two flags, loading the model, saving figures under lessons/out/, and (from
lesson 06 on) writing data subsets and tuning runs there too.

Run a lesson from the repository root, e.g. `.venv/bin/python lessons/01_vectorization.py`; Python puts
lessons/ first on sys.path, so `from common import ...` finds this file. As a notebook (jupytext, VS Code,
lessons/book.py) the kernel starts in lessons/, which puts it on sys.path the same way; there the flags come from
$TINYPROMPT_LESSON_ARGS (parse_args) and each saved figure is also shown below its cell (save_figure).
"""

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the lessons also run in CI
import matplotlib.pyplot as plt
import numpy as np

import tinyprompt
from tinyprompt.gradcheck import cmp
from tinyprompt.train import TrainConfig, train

OUT = Path(__file__).resolve().parent / "out"
DATA = Path(__file__).resolve().parent.parent / "data"  # the data sets the repository carries (data/SOURCES.md)
FIGURE_LINE = "saved figure: "  # tests/test_lessons.py looks for lines starting with this


def in_notebook():
    """True when the lesson runs cell by cell in a Jupyter kernel (ipykernel), not as `python lessons/NN.py`."""
    return "ipykernel" in sys.modules


def parse_args(doc=None):
    """--model (default tiny-pretrained, shipped with the package: offline, seconds) and --quick (small sizes).

    As a script the flags come from the command line. In a Jupyter kernel the command line is the kernel's own
    (`-f kernel.json`), so they come from $TINYPROMPT_LESSON_ARGS instead (e.g. "--quick", what `make book
    QUICK=1` sets), and take their defaults when it is unset."""
    parser = argparse.ArgumentParser(description=(doc or "a tinyprompt lesson").strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-pretrained",
                        help="tiny-pretrained (default, offline), a hub name such as gpt2, a checkpoint folder, "
                             "or tiny-random (random weights: the mechanics only)")
    parser.add_argument("--quick", action="store_true", help="small sizes so the lesson takes seconds")
    if in_notebook():
        return parser.parse_known_args(shlex.split(os.environ.get("TINYPROMPT_LESSON_ARGS", "")))[0]
    return parser.parse_args()


def load(args):
    """(model, tokenizer) for --model, falling back to tiny-pretrained (one line says so) when it cannot be had."""
    model = tinyprompt.load_model_or_fallback(args.model)
    tok = tinyprompt.load_tokenizer(model.name_or_path)
    c = model.config
    print(f"model: {model.name_or_path} ({c.n_layer} layers, {c.n_head} heads, C={c.n_embd}, "
          f"V={c.vocab_size}, {model.dtype})")
    if is_random(model):
        print("note: tiny-random -- outputs come from RANDOM weights: the mechanics are real, the predictions not.")
    return model, tok


def is_random(model):
    return Path(model.name_or_path).name == "tiny-random"


def save_figure(fig, name):
    """Save `fig` as lessons/out/<name>.png, close it, and print where it went."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"{FIGURE_LINE}{os.path.relpath(path)}")
    if in_notebook():  # in a notebook the figure also shows in place, below its cell (the book's pages too)
        from IPython.display import Image, display
        display(Image(filename=str(path)))
    return path


def read_rows(path):
    """The rows of a .csv / .tsv / .jsonl data file as dicts, in file order (the header is not a row)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in f if line.strip()]
        return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))


def write_rows(rows, name):
    """Write rows (dicts) as lessons/out/data/<name>, in the format its suffix names; -> the path.
    The trainer reads files, so a lesson's subset of a data set is written out first."""
    path = OUT / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        if path.suffix == ".jsonl":
            f.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return path


def tune(model, tok, name, **settings):
    """train.train on the loaded model, its run (adapter, metrics.json, loss.png, checkpoint) in
    lessons/out/<name>, replaced on every run of the lesson; -> (prompt [P, C], metrics)."""
    cfg = TrainConfig(model=model.name_or_path, out=str(OUT / name), overwrite=True, **settings)
    return train(cfg, model, tok)


def report(lesson, claim, holds, **numbers):
    """Write the lesson's one measured claim as lessons/out/<lesson>.json (tests/test_lessons.py reads it) and
    print it as the lesson's last line."""
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"claim": claim, "holds": bool(holds), **{k: _plain(v) for k, v in numbers.items()}}
    tmp = OUT / f"{lesson}.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(OUT / f"{lesson}.json")  # atomic: a test never reads half a file
    print(f"claim {'HOLDS' if holds else 'DOES NOT HOLD'}: {claim}")
    print(f"result: {json.dumps(result)}")
    return result


def _plain(v):
    """NumPy scalars and arrays as JSON numbers and lists."""
    return v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v


def compare(name, ours, reference, **tolerances):
    """gradcheck.cmp's line `name | allclose | max abs diff | max rel diff`, indented like the lessons' text."""
    ok, line = cmp(name, ours, reference, quiet=True, **tolerances)
    print(f"   {line}")
    return ok


def table(headers, rows):
    """Print rows as an aligned text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print("  ".join(v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
              .rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _is_number(s):
    try:
        float(s.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return False


def show(token):
    """A token's text made visible: a leading space as '·', newlines as '\\n'."""
    return token.replace(" ", "·").replace("\n", "\\n")


def human_bytes(n):
    """Bytes in decimal units (1 MB = 10^6 bytes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000


def sample(path, n, name, seed=0):
    """n rows of a data file, drawn with a fixed seed (file order kept), written to lessons/out/data/<name>."""
    rows = read_rows(path)
    return write_rows([rows[i] for i in sorted(np.random.default_rng(seed).permutation(len(rows))[:n])], name)


def timed(f, repeats):
    """(median seconds of f() over `repeats` calls, the last call's result)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def chance_lines(ax, vocab_size, n_labels=0):
    """The chance levels of a loss plot, as red lines: ln V, a uniform guess over the vocabulary; with
    n_labels, ln(n_labels) / 2, a uniform guess between one-token labels when a row's scored tokens are its
    label and the EOS after it (pair rows, data.py) and the EOS is already certain. The y axis becomes
    logarithmic, so that ln V (~10.8) and a loss near 0.3 both stay readable; call it after plotting."""
    ax.set_yscale("log")
    ax.set_ylabel(f"{ax.get_ylabel()} (log scale)")
    ax.axhline(math.log(vocab_size), color="crimson", ls=":", label=f"ln V = {math.log(vocab_size):.2f}: uniform over "
               "the vocabulary")
    if n_labels:
        level = math.log(n_labels) / 2
        ax.axhline(level, color="crimson", ls="--", label=f"ln {n_labels} / 2 = {level:.2f}: a coin between the "
                   f"{n_labels} labels (label and EOS scored, EOS certain)")


def plot_run(ax, metrics, val0, val_label, ylabel="loss (cross-entropy, nats per scored token)", name="",
             color="C0"):
    """A run's losses on `ax`: each step's (faint), each epoch's mean, and validation from epoch 0 (dashed).
    `name` prefixes the labels, so two runs can share the axes."""
    epochs = len(metrics["epoch_losses"])
    x_steps = np.arange(1, len(metrics["step_losses"]) + 1) / metrics["steps_per_epoch"]  # step s ends at s / n
    ax.plot(x_steps, metrics["step_losses"], color=color, alpha=0.3, lw=1, label=f"{name}train, each step "
            "(before its update)")
    ax.plot(np.arange(1, epochs + 1), metrics["epoch_losses"], "o-", color=color, label=f"{name}train, epoch mean")
    ax.plot(np.arange(0, epochs + 1), [val0, *metrics["val_losses"]], "s--", color=color, lw=2,
            label=f"{name}{val_label}")
    ax.set_xticks(range(epochs + 1))
    ax.set_xlabel("epoch (0: before the first step)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def same_norms(norms, C, seed, copies=1):
    """Random directions, one per norm [N] (tiled `copies` times), each scaled to its norm -> [copies * N, C]
    float32: the control "vectors as long as the tuned ones, pointing anywhere"."""
    x = np.random.default_rng(seed).normal(size=(copies * len(norms), C))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * np.tile(norms, copies)[:, None]).astype(np.float32)


def wilson(correct, n, z=1.96):
    """The 95% Wilson score interval of a proportion correct / n."""
    p = correct / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)
