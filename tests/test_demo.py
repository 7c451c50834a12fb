"""`make demo` end to end, offline, on its default tiny-pretrained: it says up front how long it will take, tunes,
and the tuned prompt beats the frozen model's zero-shot accuracy on the dev sentences (by a few points). The
path of a big model (`make demo MODEL=gpt2`: a subset of the dev rows, progress lines) runs on tiny-random
with the size limit lowered, since the hub is offline here."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from tinyprompt import demo
from tinyprompt.weights import GPT2Config

ROOT = Path(__file__).resolve().parent.parent
GPT2_124M = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
TINY_PRETRAINED = GPT2Config(vocab_size=50257, n_positions=256, n_embd=128, n_layer=4, n_head=4)
ESTIMATE = re.compile(r"^(\S+): ([\d.]+)M parameters; here one training step of 8 rows takes ([\d.]+) s and scoring "
                      r"8 dev rows ([\d.]+) s, so tuning and scoring should take about [\d.]+ (s|min): (\d+) steps, "
                      r"and (\d+) passes over (\d+) dev sentences", re.MULTILINE)


def accuracies(block):
    """{prompt name: acc} from one of the demo's tables."""
    rows = re.findall(r"^(no prompt|hard prompt .*?|soft prompt \(.*?\))\s+[\d.]+\s+[\d.]+\s+([\d.]+)$", block, re.MULTILINE)
    return {name.split(" ")[0]: float(acc) for name, acc in rows}


def test_demo_runs_offline_on_tiny_pretrained_and_learns(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "tinyprompt.demo", "--rows", "400", "--dev-rows", "200",
                          "--epochs", "1", "--out", str(out)], check=False, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "falling back" not in run.stdout  # tiny-pretrained is the default, not a fallback
    estimate = ESTIMATE.search(run.stdout)
    assert estimate and estimate.group(1) == "tiny-pretrained", run.stdout
    assert estimate.groups()[5:] == ("50", "5", "200")  # 400 rows / 8 = 50 steps; 2 + 2 + 1 passes over the dev rows
    assert "[progress" not in run.stdout  # a small model: no progress lines
    assert "epoch 1/1" in run.stdout and "Greedy continuations" in run.stdout
    after = accuracies(run.stdout.split("3. The tuned soft prompt")[1])
    assert after["soft"] >= after["no"] + 0.02, run.stdout  # measured: 0.72 -> 0.76 on all 872 (README)
    assert (out / "adapter_model.safetensors").is_file() and (out / "loss.png").is_file()


def test_make_demo_defaults_to_tiny_pretrained_and_model_gpt2_is_the_real_one():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^MODEL \?= tiny-pretrained$", makefile, re.MULTILINE)
    assert "$(PY) -m tinyprompt.demo --model $(MODEL)" in makefile


def test_a_big_model_scores_a_subset_of_the_dev_rows_by_default():
    assert demo.n_params(GPT2_124M) == 124_439_808  # GPT-2 small, as the hub counts it
    assert demo.n_params(TINY_PRETRAINED) < demo.BIG_MODEL < demo.n_params(GPT2_124M)
    default = argparse.Namespace(all_dev=False, dev_rows=None)
    assert demo.dev_rows(default, GPT2_124M, 872) == demo.DEV_ROWS_BIG < 872
    assert demo.dev_rows(default, TINY_PRETRAINED, 872) == 872
    assert demo.dev_rows(argparse.Namespace(all_dev=True, dev_rows=None), GPT2_124M, 872) == 872  # --all-dev
    assert demo.dev_rows(argparse.Namespace(all_dev=False, dev_rows=50), GPT2_124M, 872) == 50


def test_the_estimate_counts_steps_and_dev_passes():
    # 500 steps of 0.5 s, and 6 passes over 200 dev rows = 25 batches of 8, each scored in 0.2 s
    assert demo.estimate(step_s=0.5, score_s=0.2, steps=500, dev_rows=200, evaluations=6) == 500 * 0.5 + 6 * 25 * 0.2
    assert demo.minutes(59) == "59 s" and demo.minutes(400) == "6.7 min"


def test_the_big_model_path_on_tiny_random(tmp_path, monkeypatch, capsys):
    """What `make demo MODEL=gpt2` does, on a model counted as big: an estimate, a subset of the dev rows, and
    progress lines on an output that is not a terminal (pytest's capture)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(demo, "BIG_MODEL", 1_000_000)  # tiny-random's 3.4M parameters count as big
    monkeypatch.setattr(demo, "DEV_ROWS_BIG", 24)
    assert demo.main(["--model", "tiny-random", "--rows", "48", "--epochs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    estimate = ESTIMATE.search(out)
    assert estimate and estimate.group(1) == "tiny-random" and estimate.groups()[5:] == ("6", "5", "24"), out
    assert "24 dev sentences of 872 (--all-dev for all)" in out
    assert "1. The frozen model on 24 SST-2 dev sentences" in out
    shown = [int(p) for p in re.findall(r"^\[progress (\d+)%: .* so far, about .* left\]$", out, re.MULTILINE)]
    assert shown and shown == sorted(shown) and set(shown) <= set(range(10, 100, 10)), out
