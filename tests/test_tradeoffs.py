"""benchmarks/tradeoffs.py --quick: every part runs, its JSON holds every figure, and the invariants that a broken
comparison would break hold (the quick run's accuracies are noise: only their structure and range are tested).
The full run's numbers are measured by running it (`make tradeoffs`), not here."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyprompt.weights import GPT2Config, param_shapes

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["hard", "pt10", "pt20", "lora", "ft"]
TRAINED = METHODS[1:]


def run(out, json_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    command = [sys.executable, str(ROOT / "benchmarks" / "tradeoffs.py"), "--quick", "--out", str(out),
               "--json", str(json_path)]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"tradeoffs.py --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(json_path.read_text()), done.stdout, time.perf_counter() - start


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("tradeoffs")
    first = run(out, out / "first.json")
    second = run(out, out / "second.json")  # the same folder: every run comes from the cache
    return out, first, second


def test_every_part_is_reported(quick):
    out, (r, stdout, _), (last, _, _) = quick
    assert {"settings", "cost", "tasks", "data_efficiency", "continual", "switching", "trainable_params",
            "stored_bytes", "seconds", "other_processes_cores"} <= r.keys()
    assert r["settings"]["quick"] and r["settings"]["model"] == "tiny-pretrained"
    assert list(r["cost"]) == r["settings"]["cost_shapes"] and len(r["cost"]) == 2  # tiny-pretrained + a GPT-2 shape
    for name in ("tradeoffs-quick.json", "tradeoffs-quick.md", "tradeoffs.png"):
        assert (out / name).is_file(), name
    assert (out / "tradeoffs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "tradeoffs-quick.json").read_text()) == last  # --json writes the same figures
    assert "| pt10 |" in stdout and "| ft |" in stdout


def test_trainable_parameters_and_state_follow_the_shapes(quick):
    _, (r, _, _), _ = quick
    for costs in r["cost"].values():
        config = GPT2Config(**costs["ft"]["config"])
        C, n_layer = config.n_embd, config.n_layer
        every_weight = sum(math.prod(shape) for shape in param_shapes(config).values())
        assert costs["ft"]["trainable_params"] == every_weight and 4 * every_weight == costs["ft"]["model_bytes"]
        assert costs["pt10"]["trainable_params"] == 10 * C and costs["pt20"]["trainable_params"] == 20 * C
        assert costs["lora"]["trainable_params"] == n_layer * 8 * (C + 3 * C)  # A [8, C] and B [3C, 8] a block
        for method in TRAINED:
            c = costs[method]
            assert c["optimizer_state_bytes"] == 2 * 4 * c["trainable_params"]  # AdamW: two float32 moments
            assert c["seconds_per_step"] > 0 and c["peak_rss_mb"] > 50 and c["flops_per_step"] > 0
        # a step of every method runs the forward and the backward to the activations; FT adds every dW
        assert costs["pt20"]["flops_per_step"] > costs["pt10"]["flops_per_step"]
        assert costs["ft"]["flops_per_step"] > max(costs[m]["flops_per_step"] for m in ("pt10", "lora"))
    tiny = r["cost"]["tiny-pretrained"]
    assert r["trainable_params"] == {"hard": 0, **{m: tiny[m]["trainable_params"] for m in TRAINED}}
    assert tiny["pt10"]["trainable_params"] == 10 * 128  # tiny-pretrained: C = 128


def test_stored_bytes_are_the_artifacts(quick):
    _, (r, _, _), _ = quick
    stored, n = r["stored_bytes"], r["trainable_params"]
    assert stored["hard"] < stored["pt10"] < stored["pt20"] < stored["lora"] < stored["ft"]
    for method in TRAINED:  # float32 tensors plus a header and a config: a little more than 4 bytes a number
        assert 4 * n[method] < stored[method] < 4 * n[method] + 20_000, method


def test_each_lr_and_hard_prompt_is_the_best_on_validation(quick):
    _, (r, _, _), _ = quick
    seeds = r["settings"]["seeds"]
    for name, task in r["tasks"].items():
        hard = task["hard_prompt"]
        assert hard["val"][hard["chosen"]] == max(hard["val"].values())
        for method in TRAINED:
            grid = task["grid"][method]
            assert str(task["lr"][method]) in grid and grid[str(task["lr"][method])] == max(grid.values())
            assert [float(lr) for lr in grid] == r["settings"]["grid"][method]
        for method in METHODS:
            result = task["results"][method]
            assert len(result["values"]) == len(seeds) and all(0 <= v <= 1 for v in result["values"]), (name, method)
        assert task["val_rows"] > 0 and task["test_rows"] > 0


def test_data_efficiency_covers_every_size_and_seed(quick):
    _, (r, _, _), _ = quick
    sizes, seeds = r["settings"]["sizes"], r["settings"]["seeds"]
    for method, by_n in r["data_efficiency"].items():
        assert list(by_n) == [str(n) for n in sizes]
        assert all(len(v) == len(seeds) and all(0 <= x <= 1 for x in v) for v in by_n.values())
        assert by_n[str(sizes[-1])] == r["tasks"]["sst2"]["results"][method]["values"]  # all rows: the main runs


def test_continual_learning_prompt_tuning_leaves_task_a_exactly(quick):
    _, (r, _, _), _ = quick
    c = r["continual"]
    assert all(v["frozen_model_unchanged"] for v in c.values())  # no method writes the shipped weights
    for kept in ("pt10", "lora-separate"):  # A's own prompt / adapter on the untouched model
        assert c[kept]["A_after"] == c[kept]["A_before"] and c[kept]["A_loss_after"] == c[kept]["A_loss_before"]
    assert c["pt10"]["A_prompt_unchanged"] is True
    for moved in ("ft", "lora"):  # what A's score depends on was trained on B
        assert c[moved]["A_loss_after"] != c[moved]["A_loss_before"], moved


def test_task_switching(quick):
    _, (r, _, _), _ = quick
    s = r["switching"]
    assert s["pt10"]["shares_batch"] and s["hard"]["shares_batch"]
    assert not s["lora"]["shares_batch"] and not s["ft"]["shares_batch"]
    assert s["pt10"]["mixed_batch_max_abs_diff"] <= 1e-4  # a [B, P, C] prompt: each row as if alone
    for method in ("hard", "pt10", "lora", "ft"):
        assert s[method]["switch_seconds"] > 0 and s[method]["first_answer_seconds"] > 0
    assert s["lora"]["stored_bytes"] < s["ft"]["stored_bytes"] == r["stored_bytes"]["ft"]


def test_a_second_run_resumes_from_the_cache(quick):
    _, (first, _, _), (second, stdout, _) = quick
    assert second["tasks"] == first["tasks"] and second["data_efficiency"] == first["data_efficiency"]
    assert second["continual"] == first["continual"] and second["cost"] == first["cost"]
    assert "/grid/" not in stdout  # no training run was repeated
