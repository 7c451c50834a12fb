"""`make demo` end to end, offline: it falls back to tiny-random with a banner, tunes, and scores."""

import os
import subprocess
import sys


def test_demo_runs_offline_and_says_the_weights_are_random(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "tinyprompt.demo", "--rows", "16", "--dev-rows", "8",
                          "--epochs", "1", "--out", str(out)], check=False, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "FALLING BACK TO tiny-random" in run.stdout and "RANDOM weights" in run.stdout
    assert "soft prompt" in run.stdout and "epoch 1/1" in run.stdout
    assert (out / "adapter_model.safetensors").is_file() and (out / "loss.png").is_file()
