"""Prompt tuning or fine-tuning? The trade-off, measured on one model (tiny-pretrained).

    .venv/bin/python benchmarks/tradeoffs.py [--quick] [--json PATH] [--out DIR] [--fresh]
    make tradeoffs        # the full run; it prints an estimate first (goal: under 30 minutes on 2 idle cores)

Methods, all on tiny-pretrained (tinyprompt/compare.py runs them): the best of three hand-written hard prompts
(chosen on a validation split), prompt tuning with 10 and 20 virtual tokens, LoRA (r=8, alpha=8, every c_attn)
and full fine-tuning. Every trained method gets the same batches (size 8, seeded order) and the same number of
optimizer steps (AdamW, no weight decay); a small training set repeats epochs. Each method's learning rate is
picked on a small grid by the score (then the loss) on a validation split carved from the training rows (never
from dev/test), with seed 0; the final runs use all the training rows, 3 seeds, and that lr.

One figure per claim that the introductions to prompt tuning make against fine-tuning:
1. trainable parameters; bytes stored per task: the saved artifact (a PEFT prompt adapter, a PEFT LoRA adapter,
   a float32 checkpoint);
2. per training step, each (shape, method) in its own fresh process, measured last: seconds (the median time
   between two updates, so the first step and the set-up are left out), FLOPs (forward + backward, counted analytically: compare.step_flops), AdamW state bytes
   and peak RSS (VmHWM) -- on tiny-pretrained and on GPT-2 124M's shapes with random weights, batch 8 x 64
   tokens, 2 targets a row (a label and EOS, as SST-2);
3. data efficiency: SST-2 dev accuracy after 16, 64, 256 and 2,000 training rows, 3 seeds (the rows drawn per
   seed), the same number of steps at every size;
4. task switching: seconds to switch a loaded model from task A to task B (load the artifact and make it
   usable) and to its first answer; whether two tasks share one batch (PT: a [B, P, C] prompt, checked equal
   to each row run alone);
5. continual learning: tune on A (SST-2), then on B (antonyms), score A before and after;
6. accuracy: SST-2 dev (872 rows, rank classification of ' negative' / ' positive') and antonyms (exact match
   on 77 held-out words), 3 seeds, mean and spread (population standard deviation).
Results are cached run by run in <out>/tradeoffs-cache.json, so an interrupted run resumes where it stopped
(--fresh starts over). Writes <out>/tradeoffs.json (every figure; --json PATH elsewhere too),
<out>/tradeoffs.md (the tables) and the figure (docs/tradeoffs.png for the full run, <out>/ for --quick).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np
from bench import cpu_busy_seconds  # benchmarks/ is a folder of scripts

import tinyprompt
from tinyprompt import compare
from tinyprompt.data import load_data, pad_batch, parse_label_words, split_validation
from tinyprompt.evaluate import loss_and_exact_match, rank_classify, with_prefix

MODEL = "tiny-pretrained"
SST2 = {"input_column": "text", "output_column": "label", "template": "{input}Sentiment:",
        "label_words": "0= negative,1= positive"}
TASKS = {  # as benchmarks/quality.py: SST-2 with its dev set; antonyms 60 / 40 (seed 0), exact match
    "sst2": {"train": "data/sst2/train.tsv", "test": "data/sst2/dev.tsv", "columns": SST2, "metric": "accuracy",
             "labels": [" negative", " positive"], "init": "labels", "val_split": 0.1,
             "hard": ["Decide if the movie review is positive or negative.\n",
                      "Is this review positive or negative?\n",
                      "Classify the sentiment of the review as positive or negative.\n"]},
    "antonyms": {"train": "data/toy/antonyms.jsonl", "split": 0.4, "columns": {}, "metric": "exact_match",
                 "labels": None, "init": "vocab", "val_split": 0.2,
                 "hard": ["Give the opposite word.\n", "The opposite of big is small.\n", "Antonyms:\n"]},
}
FULL = {"steps": {"sst2": 250, "antonyms": 150}, "seeds": [0, 1, 2], "sizes": [16, 64, 256, 2000],
        "data_methods": ["pt10", "lora", "ft"], "train_rows": None, "test_rows": None,
        "grid": {"pt10": [0.01, 0.03, 0.1], "pt20": [0.01, 0.03, 0.1], "lora": [1e-3, 3e-3, 1e-2],
                 "ft": [1e-4, 3e-4, 1e-3]},
        "cost_shapes": {"tiny-pretrained": None, "gpt2-124M": (50257, 1024, 768, 12, 12)}, "cost_steps": 4,
        "switch_repeats": 5}
QUICK = {**FULL, "steps": {"sst2": 2, "antonyms": 2}, "seeds": [0, 1], "sizes": [8, 40], "train_rows": 40,
         "test_rows": 12, "grid": {m: g[1:] if m == "pt10" else g[1:2] for m, g in FULL["grid"].items()},
         "cost_shapes": {"tiny-pretrained": None, "small-random": (1000, 128, 64, 2, 4)}, "cost_steps": 2,
         "switch_repeats": 2}
BATCH, COST_B, COST_T, COST_TARGETS = 8, 8, 64, 2
METHODS = ["hard", *compare.METHODS]
CONTINUAL = ("pt10", "lora", "lora-separate", "ft")
SWITCHED = {"hard": None, "pt10": "pt10", "lora": "lora-separate", "ft": "ft"}  # method -> artifacts folder


# --- workers: the cost of one training step, each (shape, method) in a fresh process ----------------


def peak_rss_mb():
    """VmHWM: this process's own high-water mark of resident memory (ru_maxrss is inherited across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def cost_worker(shape, method, steps, scratch):
    """Seconds, FLOPs, state and peak memory of a training step of `method` on `shape`."""
    config = FULL["cost_shapes"].get(shape) or QUICK["cost_shapes"].get(shape)
    if config is None:
        model = tinyprompt.load_model(MODEL)
    else:  # random weights of that shape, saved once (by a worker of its own) and memory-mapped like a real one
        from tinyprompt.weights import GPT2Config, random_params, save_checkpoint
        folder = Path(scratch) / shape
        if method == "write":
            V, N, C, n_layer, n_head = config
            cfg = GPT2Config(vocab_size=V, n_positions=N, n_embd=C, n_layer=n_layer, n_head=n_head)
            save_checkpoint(folder, cfg, random_params(cfg), tokenizer=False)
            return {}
        model = tinyprompt.load_model(str(folder))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.config.vocab_size - 1, (COST_B, COST_T))
    labels = np.where(np.arange(COST_T) >= COST_T - COST_TARGETS, ids, -100)  # [B, T]: the last 2 count
    prompt0 = (rng.standard_normal((compare.virtual_tokens(method) or 1, model.config.n_embd)) * 0.1)
    prompt0 = prompt0.astype(np.float32)

    ends = []
    t0 = time.perf_counter()
    compare.train_method(model, method, [(ids, labels)] * (1 + steps), lr=1e-4, prompt0=prompt0,
                         on_step=lambda step, loss: ends.append(time.perf_counter()))
    # the median time between the ends of two updates: the first step (compiling, touching the weights) and
    # the set-up (FT's copy of every weight, the optimizer's state) are left out
    per_step = statistics.median(np.diff(ends))
    return {"seconds_per_step": per_step, "setup_and_first_step_seconds": ends[0] - t0,
            "flops_per_step": compare.step_flops(model.config, method, COST_B, COST_T, COST_B * COST_TARGETS),
            "trainable_params": compare.trainable_params(model.config, method),
            "optimizer_state_bytes": compare.optimizer_state_bytes(model.config, method),
            "model_bytes": compare.model_bytes(model), "peak_rss_mb": peak_rss_mb(),
            "config": dataclasses.asdict(model.config)}


def measure_costs(settings, scratch, log):
    out = {}
    for shape in settings["cost_shapes"]:
        out[shape] = {}
        # the random checkpoint is written first, in a worker of its own: its memory is no method's peak
        for method in (["write"] if settings["cost_shapes"][shape] else []) + list(compare.METHODS):
            command = [sys.executable, __file__, "--worker", f"{shape}:{method}:{settings['cost_steps']}",
                       "--scratch", str(scratch)]
            run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
            if run.returncode:
                sys.exit(f"cost worker {shape}:{method} failed:\n{run.stderr[-3000:]}")
            if method == "write":
                continue
            out[shape][method] = json.loads(run.stdout.strip().splitlines()[-1])
            r = out[shape][method]
            log(f"cost {shape:>15} {method:>4}: {r['seconds_per_step']:.3f} s/step, "
                f"{r['flops_per_step'] / 1e9:.2f} GFLOP/step, peak {r['peak_rss_mb']:.0f} MB")
    return out


# --- tasks, scoring ---------------------------------------------------------------------------------


class Task:
    """A task's rows: train (all), train_fit / val (the lr split), test; and how to score them."""

    def __init__(self, name, tok, settings):
        spec, self.name, self.tok = TASKS[name], name, tok
        self.metric, self.labels, self.init, self.hard = spec["metric"], spec["labels"], spec["init"], spec["hard"]
        columns = {**spec["columns"]}
        if "label_words" in columns:
            columns["label_words"] = parse_label_words(columns["label_words"])
        data = load_data(ROOT / spec["train"], tok, **columns)
        self.outputs = data.outputs()
        if "test" in spec:
            self.train, self.test = data.examples, load_data(ROOT / spec["test"], tok, **columns).examples
        else:
            self.train, self.test = split_validation(data.examples, spec["split"], 0)
        if settings["train_rows"]:  # --quick: a few rows of each
            self.train, self.test = self.train[: settings["train_rows"]], self.test[: settings["test_rows"]]
        self.fit, self.val = split_validation(self.train, spec["val_split"], 0)
        self.steps = settings["steps"][name]

    def score(self, model, prompt, rows, loss=True):
        """(the task's metric, the mean loss or None): accuracy by rank classification, or exact match (whose
        pass gives the loss too); loss=False spares a classification task the extra pass."""
        pad = self.tok.eos_id
        mean_loss, exact = loss_and_exact_match(model, prompt, rows, pad, 32) if loss or not self.labels else (None, None)
        if not self.labels:
            return exact, mean_loss
        label_ids = [self.tok.encode(w) for w in self.labels]
        gold = np.array([self.labels.index(e.output) for e in rows])
        return float(np.mean(rank_classify(model, prompt, rows, label_ids, pad, 32) == gold)), mean_loss

    def train_method(self, model, method, rows, lr, seed, lora0=None):
        steps = compare.fixed_batches(rows, self.steps, BATCH, self.tok.eos_id, seed)
        prompt0 = compare.init_for(method, model, self.tok, self.init, self.outputs, seed)
        return compare.train_method(model, method, steps, lr, seed, prompt0, lora0)


def spread(values):
    return {"values": values, "mean": statistics.fmean(values), "std": statistics.pstdev(values)}


def weights_hash(model):
    digest = hashlib.sha256()
    for array in tinyprompt.weights.flatten(model.params).values():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# --- the experiments, each run cached by key ------------------------------------------------------------


class Runner:
    def __init__(self, cache_path, fresh, total_units):
        self.path, self.start, self.units_done, self.total = cache_path, time.perf_counter(), 0, total_units
        self.elapsed = 0.0  # seconds spent in runs that count units (steps)
        self.cache = {} if fresh or not cache_path.is_file() else json.loads(cache_path.read_text())

    def log(self, text):
        elapsed = time.perf_counter() - self.start
        print(f"[{elapsed / 60:5.1f} min] {text}", flush=True)

    def cached(self, key, units, f):
        """f() once per key (its JSON result kept in the cache file); prints progress and what is left."""
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = {**f(), "seconds": round(time.perf_counter() - t0, 2)}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.cache, indent=0))
            tmp.replace(self.path)
            self.units_done += units
            self.elapsed += time.perf_counter() - t0
            left = "" if not self.units_done else \
                f"; ~{self.elapsed / self.units_done * max(self.total - self.units_done, 0) / 60:.0f} min left"
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.cache[key].items()
                     if k != "seconds" and not isinstance(v, dict)}  # the cost's dicts were printed as they came
            self.log(f"{key}: {json.dumps(shown)} ({self.cache[key]['seconds']:.0f} s{left})")
        else:
            self.total -= units
        return self.cache[key]


def run_task(runner, task, model, settings):
    """Hard prompt chosen on val; lr grid on val; the chosen lr on all training rows, every seed, on test."""
    out = {"metric": task.metric, "train_rows": len(task.train), "val_rows": len(task.val),
           "test_rows": len(task.test), "steps": task.steps}
    hard = {h: runner.cached(f"{task.name}/hard-val/{h!r}", 0, lambda h=h: dict(zip(("score", "loss"), task.score(
        model, None, with_prefix(task.val, task.tok.encode(h)))))) for h in task.hard}
    best = max(hard, key=lambda h: (hard[h]["score"], -hard[h]["loss"]))
    test = runner.cached(f"{task.name}/hard-test", 0, lambda: dict(zip(("score", "loss"), task.score(
        model, None, with_prefix(task.test, task.tok.encode(best))))))
    out["hard_prompt"] = {"chosen": best, "val": {h: v["score"] for h, v in hard.items()}, "test": test["score"]}
    out["grid"], out["lr"], out["results"] = {}, {}, {"hard": spread([test["score"]] * len(settings["seeds"]))}
    for method in compare.METHODS:
        grid = {}
        for lr in settings["grid"][method]:
            def fit(lr=lr, method=method):
                tuned = task.train_method(model, method, task.fit, lr, 0)
                return dict(zip(("score", "loss"), task.score(tuned.model, tuned.prompt, task.val)))
            grid[lr] = runner.cached(f"{task.name}/grid/{method}/lr={lr}", task.steps, fit)
        lr = max(grid, key=lambda x: (grid[x]["score"], -grid[x]["loss"]))
        out["grid"][method] = {str(x): v["score"] for x, v in grid.items()}
        out["lr"][method] = lr

        def final(seed, method=method, lr=lr):
            tuned = task.train_method(model, method, task.train, lr, seed)
            return dict(zip(("score", "loss"), task.score(tuned.model, tuned.prompt, task.test, loss=False)))
        out["results"][method] = spread([runner.cached(f"{task.name}/test/{method}/lr={lr}/seed={seed}", task.steps,
                                                       lambda seed=seed: final(seed))["score"]
                                         for seed in settings["seeds"]])
    return out


def data_efficiency(runner, task, model, settings, lrs, main):
    """Accuracy against the number of training rows (drawn per seed); the largest size reuses the main runs
    when it is the whole training set."""
    out = {}
    for method in settings["data_methods"]:
        out[method] = {}
        for n in settings["sizes"]:
            if n >= len(task.train):  # all the training rows: the main runs
                out[method][str(n)] = main[method]["values"]
                continue
            values = []
            for seed in settings["seeds"]:
                rows = [task.train[i] for i in sorted(np.random.default_rng([seed, n]).permutation(len(task.train))[:n])]

                def fit(rows=rows, seed=seed, method=method):
                    tuned = task.train_method(model, method, rows, lrs[method], seed)
                    return {"score": task.score(tuned.model, tuned.prompt, task.test, loss=False)[0]}
                values.append(runner.cached(f"{task.name}/rows={n}/{method}/lr={lrs[method]}/seed={seed}",
                                            task.steps, fit)["score"])
            out[method][str(n)] = values
    return out


def continual(runner, a, b, model, lrs_a, lrs_b, artifacts):
    """Tune on A, score A; then tune on B and score A again with what A's solution now is. "ft" continues the
    fine-tuned weights on B; "lora" continues A's adapter on B (one adapter); "lora-separate" trains B its own
    adapter on the frozen model; "pt10" tunes B its own prompt on the frozen model. Saves each method's A and
    B artifacts (task switching loads them)."""
    def one(method):
        base = "lora" if method == "lora-separate" else method
        frozen = weights_hash(model)
        tuned_a = a.train_method(model, base, a.train, lrs_a[base], 0)
        before = a.score(tuned_a.model, tuned_a.prompt, a.test)
        prompt_a = None if tuned_a.prompt is None else tuned_a.prompt.copy()
        compare.save_method(artifacts / method / "A", tuned_a, model.config, MODEL)
        start = tuned_a.model if method == "ft" else model  # FT goes on from A's weights
        tuned_b = b.train_method(start, base, b.train, lrs_b[base], 0, lora0=tuned_a.lora if method == "lora" else None)
        compare.save_method(artifacts / method / "B", tuned_b, model.config, MODEL)
        # A's solution after B: FT's weights and the continued adapter are now B's; PT and a separate adapter
        # keep A's own (and the frozen model)
        after_model = tuned_b.model if method in ("ft", "lora") else tuned_a.model
        after = a.score(after_model, tuned_a.prompt, a.test)
        return {"A_before": before[0], "A_after": after[0], "A_loss_before": before[1], "A_loss_after": after[1],
                "B": b.score(tuned_b.model, tuned_b.prompt, b.test)[0],
                "frozen_model_unchanged": weights_hash(model) == frozen,
                "A_prompt_unchanged": None if prompt_a is None else bool(np.array_equal(prompt_a, tuned_a.prompt))}
    return {m: runner.cached(f"continual/{m}", a.steps + b.steps, lambda m=m: one(m)) for m in CONTINUAL}


def switching(task_a, task_b, model, artifacts, repeats):
    """Seconds to switch the loaded model from A to B (load B's artifact, make it usable), and to B's first
    answer; whether rows of A and B share one batch (PT: one prompt per row, checked against each row alone)."""
    out = {}
    request = pad_batch(task_b.test[:1], task_b.tok.eos_id)[0]  # one B request [1, T]
    for method, folder in SWITCHED.items():
        def switch(method=method, folder=folder):
            if method == "hard":
                return model, None, task_b.tok.encode(task_b.hard[0])
            return (*compare.load_method(artifacts / folder / "B", method, model), [])

        def answer(method=method):
            m, prompt, prefix = switch()
            return m.logits(np.array([prefix + list(request[0])]), prompt)
        switch(), answer()  # warm-up: compiled kernels, disk cache
        out[method] = {"switch_seconds": median_time(switch, repeats),
                       "first_answer_seconds": median_time(answer, repeats),
                       "shares_batch": method in ("hard", "pt10"),
                       "stored_bytes": sum(p.stat().st_size for p in (artifacts / folder / "B").rglob("*")
                                           if p.is_file()) if folder else len(task_b.hard[0].encode())}
    # a mixed batch: A's and B's rows, each with its own prompt [B, P, C]
    pa, pb = (compare.load_method(artifacts / "pt10" / t, "pt10", model)[1] for t in "AB")
    rows = [e for pair in zip(task_a.test[:4], task_b.test[:4]) for e in pair]
    ids = pad_batch(rows, task_a.tok.eos_id)[0]
    mixed = model.logits(ids, np.stack([pa, pb] * 4))  # [8, P + T, V]
    alone = np.concatenate([model.logits(ids[i:i + 1], (pa, pb)[i % 2]) for i in range(len(rows))])
    out["pt10"]["mixed_batch_max_abs_diff"] = float(np.abs(mixed - alone).max())
    out["model_bytes"] = compare.model_bytes(model)
    return out


def median_time(f, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- report ------------------------------------------------------------------------------------------


def tables(r):
    s, t, c = r["tasks"]["sst2"], r["tasks"]["antonyms"], r["cost"]
    shapes = list(c)
    lines = ["| method | trainable params | stored per task | lr (SST-2 / antonyms) | SST-2 dev acc | antonyms exact |"
             + "".join(f" s/step {x} | GFLOP/step {x} | optim state {x} | peak RSS {x} |" for x in shapes),
             "|---" * (6 + 4 * len(shapes)) + "|"]
    for m in METHODS:
        cells = [m, f"{r['trainable_params'][m]:,}", f"{r['stored_bytes'][m]:,} B",
                 "-" if m == "hard" else f"{s['lr'][m]:g} / {t['lr'][m]:g}",
                 f"{s['results'][m]['mean']:.3f} ± {s['results'][m]['std']:.3f}",
                 f"{t['results'][m]['mean']:.3f} ± {t['results'][m]['std']:.3f}"]
        for x in shapes:
            if m == "hard":
                cells += ["-"] * 4
            else:
                k = c[x][m]
                cells += [f"{k['seconds_per_step']:.3f}", f"{k['flops_per_step'] / 1e9:.2f}",
                          f"{k['optimizer_state_bytes'] / 1e6:.2f} MB", f"{k['peak_rss_mb']:.0f} MB"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| method | A (SST-2) before | A after tuning B | B (antonyms) | frozen model unchanged |",
              "|---|---|---|---|---|"]
    for m, v in r["continual"].items():
        lines.append(f"| {m} | {v['A_before']:.3f} | {v['A_after']:.3f} | {v['B']:.3f} | "
                     f"{v['frozen_model_unchanged']} |")
    lines += ["", "| method | switch A -> B (s) | to B's first answer (s) | A and B in one batch |", "|---|---|---|---|"]
    for m in ("hard", "pt10", "lora", "ft"):
        v = r["switching"][m]
        lines.append(f"| {m} | {v['switch_seconds']:.4f} | {v['first_answer_seconds']:.4f} | "
                     f"{'yes' if v['shares_batch'] else 'no'} |")
    sizes = r["settings"]["sizes"]
    lines += ["", "| method | " + " | ".join(f"{n} rows" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for m, by_n in r["data_efficiency"].items():
        lines.append(f"| {m} | " + " | ".join(f"{statistics.fmean(by_n[str(n)]):.3f} ± "
                                               f"{statistics.pstdev(by_n[str(n)]):.3f}" for n in sizes) + " |")
    return "\n".join(lines)


def figure(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    sizes = r["settings"]["sizes"]
    for i, (m, by_n) in enumerate(r["data_efficiency"].items()):
        mean = [statistics.fmean(by_n[str(n)]) for n in sizes]
        std = [statistics.pstdev(by_n[str(n)]) for n in sizes]
        ax1.errorbar(np.array(sizes) * (1 + 0.04 * (i - 1)), mean, yerr=std, marker="o", capsize=4,
                     label=f"{m} ({r['trainable_params'][m]:,} trained)")
    ax1.axhline(r["tasks"]["sst2"]["results"]["hard"]["mean"], color="grey", ls="--", label="best hard prompt")
    ax1.set_xscale("log")
    ax1.set_xlabel("SST-2 training rows (same number of steps at every size)")
    ax1.set_ylabel(f"SST-2 dev accuracy ({r['tasks']['sst2']['test_rows']} rows); mean ± std, seeds")
    ax1.set_title("data efficiency")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    shape = list(r["cost"])[-1]
    methods = compare.METHODS
    x = np.arange(len(methods))
    c = r["cost"][shape]
    ft = c["ft"]
    for j, (key, label) in enumerate([("seconds_per_step", "seconds / step"), ("flops_per_step", "FLOPs / step"),
                                      ("peak_rss_mb", "peak RSS"), ("optimizer_state_bytes", "optimizer state")]):
        vals = [c[m][key] / ft[key] for m in methods]
        ax2.bar(x + (j - 1.5) * 0.2, vals, 0.2, label=label)
    ax2.set_xticks(x, methods)
    ax2.set_yscale("log")
    ax2.set_ylabel("relative to full fine-tuning (log scale)")
    ax2.set_title(f"cost of a training step, {shape} shapes")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Prompt tuning, LoRA and fine-tuning on {MODEL}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def planned_units(settings):
    """Optimizer steps the quality runs will take (the unit of the progress estimate)."""
    s, a = settings["steps"]["sst2"], settings["steps"]["antonyms"]
    grid = sum(len(g) for g in settings["grid"].values())
    main = len(compare.METHODS) * len(settings["seeds"])
    data = len(settings["data_methods"]) * len([n for n in settings["sizes"] if n < 2000]) * len(settings["seeds"])
    return (grid + main + data) * s + (grid + main) * a + 4 * (s + a)


def estimate(total_steps, task, model, settings):
    """Seconds the whole run should take at the speed measured now: a few SST-2 steps of each method, one
    evaluation on the test rows, and the cost workers (a rough allowance: 3 minutes, 15 s for --quick)."""
    per_step = []
    for method in compare.METHODS:
        ends = []
        steps = compare.fixed_batches(task.train, 4, BATCH, task.tok.eos_id, 0)
        prompt0 = compare.init_for(method, model, task.tok, task.init, task.outputs, 0)
        compare.train_method(model, method, steps, 1e-4, 0, prompt0,
                             on_step=lambda step, loss, ends=ends: ends.append(time.perf_counter()))
        per_step.append(statistics.median(np.diff(ends)))
    t0 = time.perf_counter()
    task.score(model, None, task.test, loss=False)
    seeds, grid = len(settings["seeds"]), sum(len(g) for g in settings["grid"].values())
    on_test = 2 * len(compare.METHODS) * seeds + len(settings["data_methods"]) * len(settings["sizes"]) * seeds + 12
    on_val = 2 * grid * len(task.val) / len(task.test) * 1.5  # 1.5: with the loss pass
    evaluations = (time.perf_counter() - t0) * (on_test + on_val)  # antonyms' counted as SST-2's: an upper bound
    return total_steps * statistics.fmean(per_step) + evaluations + (15 if settings["train_rows"] else 180)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part (seconds; for the tests)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--fresh", action="store_true", help="ignore the cache of finished runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        shape, method, steps = args.worker.split(":")
        print(json.dumps(cost_worker(shape, method, int(steps), args.scratch)))
        return
    settings = QUICK if args.quick else FULL
    name = "tradeoffs-quick" if args.quick else "tradeoffs"
    args.out.mkdir(parents=True, exist_ok=True)
    busy0 = cpu_busy_seconds()  # every process's CPU seconds so far: the others' share is printed at the end
    runner = Runner(args.out / f"{name}-cache.json", args.fresh, planned_units(settings))
    model, tok = tinyprompt.load_model(MODEL), tinyprompt.load_tokenizer(MODEL)
    report = {"settings": {**{k: v for k, v in settings.items() if k != "cost_shapes"}, "batch_size": BATCH,
                           "quick": args.quick, "model": MODEL, "cost_shapes": list(settings["cost_shapes"]),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                           "load_average_at_start": os.getloadavg()[0]}}
    tasks = {name: Task(name, tok, settings) for name in TASKS}
    sst2 = tasks["sst2"]
    runner.log(f"planned: {runner.total:,} optimizer steps in the quality runs; "
               f"{estimate(runner.total, sst2, model, settings) / 60:.0f} min in all at the speed measured now")
    runner.log("1/5 accuracy: hard prompt, lr grid on validation, then every seed on test")
    report["tasks"] = {name: run_task(runner, task, model, settings) for name, task in tasks.items()}
    report["trainable_params"] = {m: compare.trainable_params(model.config, m) for m in METHODS}
    runner.log("2/5 data efficiency")
    report["data_efficiency"] = data_efficiency(runner, sst2, model, settings, report["tasks"]["sst2"]["lr"],
                                                report["tasks"]["sst2"]["results"])
    runner.log("3/5 continual learning: SST-2, then antonyms")
    artifacts = args.out / f"{name}-artifacts"
    if not all((artifacts / m / t).is_dir() for m in CONTINUAL for t in "AB"):
        for key in [k for k in runner.cache if k.startswith("continual/")]:
            del runner.cache[key]  # the artifacts are gone: train again to have them
    report["continual"] = continual(runner, sst2, tasks["antonyms"], model, report["tasks"]["sst2"]["lr"],
                                    report["tasks"]["antonyms"]["lr"], artifacts)
    runner.log("4/5 task switching")
    report["switching"] = switching(sst2, tasks["antonyms"], model, artifacts, settings["switch_repeats"])
    runner.log("5/5 the cost of a training step, each method in its own process")
    with tempfile.TemporaryDirectory() as scratch:
        report["cost"] = {k: v for k, v in runner.cached("cost", 0, lambda: measure_costs(
            settings, Path(scratch), runner.log)).items() if k != "seconds"}
    report["stored_bytes"] = {m: report["switching"][m if m in ("hard", "lora", "ft") else "pt10"]["stored_bytes"]
                              for m in METHODS}
    p20 = artifacts / "pt20-size"
    report["stored_bytes"]["pt20"] = compare.save_method(p20, compare.Tuned("pt20", model, prompt=np.zeros(
        (20, model.config.n_embd), np.float32)), model.config, MODEL)
    report["seconds"] = round(time.perf_counter() - runner.start, 1)
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    report["other_processes_cores"] = round((cpu_busy_seconds() - busy0 - own) / report["seconds"], 2)
    text = tables(report)
    print("\n" + text)
    fig = figure(report, (args.out if args.quick else ROOT / "docs") / "tradeoffs.png")
    print(f"figure: {os.path.relpath(fig)}")
    for path in [args.out / f"{name}.json", *([args.json] if args.json else [])]:
        path.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(text + "\n")
    runner.log(f"done in {report['seconds'] / 60:.1f} min; other processes kept {report['other_processes_cores']} "
               "cores busy meanwhile (above 0.1: the timings were measured under load)")


if __name__ == "__main__":
    main()
