"""tinyprompt against PyTorch + PEFT on the same GPT-2 124M (random weights), same machine, same threads.

    .venv/bin/python benchmarks/bench.py [--threads N] [--repeats R] [--rounds K] [--quick] [--no-torch]

Measures, batch 8 x 64 tokens after 20 virtual tokens:
- the prompt-tuning step (`loss_and_grad`: forward, and backward to the prompt only) against the same step in
  PEFT, for (a) input/output data, 8 targets per row, and (b) LM data, every token a target: time ratios;
- forward throughput (`logits`, FLOPs counted below) against NumPy's own float32 matmul, the practical peak;
- generation, 50 new tokens after the soft prompt, tokens/s against transformers' `generate`;
- peak memory of each; cold start (empty Numba cache: compiles) and warm start (cached kernels).

Every figure comes from its own fresh subprocess (a "worker"): the two libraries never share a process (their
thread pools would compete), and peak memory (VmHWM: the high-water mark of resident memory, the touched
pages of the memory-mapped weights included) and start-up times belong to one task alone. The thread count
is set for every library before its process starts. Timings: the median of --repeats runs after a warm-up;
each timed figure in --rounds rounds, a round running one side right after the other, and the median of the
rounds' ratios held against the target.
Without torch the PyTorch columns read n/a. Prints a table, then one JSON line.
"""

import time

START = time.perf_counter()  # first: the start-up figures count every import after the interpreter's own

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = {  # (V, N, C, n_layer, n_head), batch B, text tokens T, virtual tokens P, targets per row, new tokens
    "full": {"config": (50257, 1024, 768, 12, 12), "B": 8, "T": 64, "P": 20, "targets": 8, "new_tokens": 50},
    "quick": {"config": (1000, 128, 64, 2, 4), "B": 2, "T": 16, "P": 4, "targets": 4, "new_tokens": 8},
}
TARGETS = {  # metric -> (bound, "max" = at most, "min" = at least); ratios are tinyprompt / PyTorch+PEFT
    "step_io": (0.5, "max"), "step_lm": (0.9, "max"), "forward": (0.8, "min"), "generate": (1.5, "min"),
    "memory": (0.6, "max"), "cold_start": (15.0, "max"), "warm_start": (3.0, "max"),
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# --- workers: one task in a fresh process, its result as one JSON line on stdout ---------------------


def batch(size, case):
    """ids [B, T], labels [B, T] (case "io": the last `targets` tokens of a row count; "lm": all), prompt."""
    import numpy as np
    rng = np.random.default_rng(0)
    (V, _, C, _, _), B, T, P = size["config"], size["B"], size["T"], size["P"]
    ids = rng.integers(0, V - 1, (B, T))
    labels = ids.copy()
    if case == "io":
        labels[:, :-size["targets"]] = -100
    return ids, labels, (rng.standard_normal((P, C)) * 0.02).astype(np.float32)


def timed(f, repeats):
    """Median wall time of f() over `repeats` runs, after one warm-up run."""
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def block_flops(size, positions, pairs):
    """2 x multiply-adds of the n_layer blocks on `positions` positions with `pairs` (query, key) pairs that
    the causal mask keeps: the matmuls, and the attention twice (scores, then the weighted sum of values)."""
    _, _, C, n_layer, _ = size["config"]
    return n_layer * (2 * positions * (C * 3 * C + C * C + 2 * C * 4 * C) + 2 * 2 * pairs * C)


def forward_flops(size, B, L):
    """A forward on B x L positions: the blocks, then the output head at every position."""
    V, _, C, _, _ = size["config"]
    return block_flops(size, B * L, B * (L * (L + 1) // 2)) + 2 * B * L * C * V


def step_flops(size, targets):
    """The FLOPs a prompt-tuning step cannot avoid: the blocks forward and backward to the activations (dx costs
    the forward's matmuls again) on the P virtual tokens once (they see only each other, so they are the same
    in every row) and on the T tokens of every row (each sees the P and the tokens up to it); the output head
    forward and backward at the `targets` positions only."""
    V, _, C, _, _ = size["config"]
    B, T, P = size["B"], size["T"], size["P"]
    blocks = block_flops(size, P + B * T, P * (P + 1) // 2 + B * (T * P + T * (T + 1) // 2))
    return 2 * blocks + 2 * 2 * targets * C * V


def cpu_model():
    """The CPU's name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def tinyprompt_worker(task, args, size):
    import tinyprompt
    from tinyprompt.generate import generate
    imports_mb = peak_rss_mb()  # the interpreter, NumPy, Numba (LLVM) and tinyprompt, before any weight
    start = time.perf_counter()
    model = tinyprompt.load_model(args.checkpoint)
    ids, labels, prompt = batch(size, "lm" if task == "step_lm" else "io")
    result = {}
    if task.endswith("start"):
        model.loss_and_grad(prompt, ids, labels)  # the first call compiles the kernels, or loads them
        result["seconds"] = time.perf_counter() - args.t0  # from the process's start, imports included
        result["first_call_s"] = time.perf_counter() - start
    elif task.startswith("step"):
        result["seconds"] = timed(lambda: model.loss_and_grad(prompt, ids, labels), args.repeats)
    elif task == "forward":  # and the peak right after, in the same process: both see the machine as it is
        result["seconds"] = timed(lambda: model.logits(ids, prompt), args.repeats)
        result["gflops"] = forward_flops(size, len(ids), ids.shape[1] + len(prompt)) / result["seconds"] / 1e9
        result["peak_gflops"] = matmul_peak(args.repeats)
    elif task == "generate":
        n = size["new_tokens"]
        result["seconds"] = timed(lambda: generate(model, list(ids[0]), prompt, max_new_tokens=n, eos_id=-1),
                                  args.repeats)
        result["tokens_per_s"] = n / result["seconds"]
        # every new token reads every weight: they are all resident, on top of what the imports hold
        result["floor_mb"] = {"imports": imports_mb, "weights": sum(p.nbytes for p in leaves(model.params)) / 2**20}
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel ran in this worker
        layer = None
    result["threads"] = {"numba": numba.get_num_threads(), "numba_layer": layer, **blas_info()}
    result["threads"]["blas_threads"] = f"1 or {tinyprompt.threads.MAX_THREADS}"  # by the matmul (threads.py)
    return result


def matmul_peak(repeats):
    """GFLOP/s of NumPy's float32 matmul, the fastest of two of the model's shapes and a big square one, on
    all of BLAS's threads (tinyprompt leaves NumPy on one thread, save for its own big matmuls: threads.py)."""
    import numpy as np

    from tinyprompt.threads import matmul
    best = 0.0
    for m, k, n in [(512, 768, 3072), (512, 3072, 768), (2048, 2048, 2048)]:
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
        best = max(best, 2 * m * k * n / timed(lambda a=a, b=b: matmul(a, b), 3 * repeats) / 1e9)
    return best


def leaves(params):
    """The arrays of a nested dict/list of weights."""
    children = params.values() if isinstance(params, dict) else params if isinstance(params, list) else None
    return [params] if children is None else [a for c in children for a in leaves(c)]


def torch_worker(task, args, size):
    import torch
    from peft import PromptTuningConfig, get_peft_model
    from transformers import GPT2LMHeadModel
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(args.checkpoint).eval()  # float32, default attention (sdpa)
    (V, _, C, n_layer, n_head), result = size["config"], {}
    ids, labels, prompt = batch(size, "lm" if task == "step_lm" else "io")
    if task.endswith("start") or task.startswith("step"):
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=len(prompt), token_dim=C,
                                    num_layers=n_layer, num_attention_heads=n_head)
        peft = get_peft_model(model, config)
        weight = peft.prompt_encoder["default"].embedding.weight
        weight.data = torch.as_tensor(prompt).clone()
        ids_t, labels_t = torch.as_tensor(ids), torch.as_tensor(labels)

        def step():
            weight.grad = None
            peft(input_ids=ids_t, labels=labels_t).loss.backward()  # the weights are frozen: prompt grad only
        if task.endswith("start"):
            step()
            result["seconds"] = time.perf_counter() - args.t0
            result["first_call_s"] = time.perf_counter() - start
        else:
            result["seconds"] = timed(step, args.repeats)
        return {**result, "threads": {"torch": torch.get_num_threads()}}
    with torch.no_grad():
        embeds = torch.cat([torch.as_tensor(prompt)[None].expand(len(ids), -1, -1),
                            model.transformer.wte(torch.as_tensor(ids))], dim=1)  # [B, P + T, C]
        if task == "forward":
            result["seconds"] = timed(lambda: model(inputs_embeds=embeds).logits, args.repeats)
            result["gflops"] = forward_flops(size, *embeds.shape[:2]) / result["seconds"] / 1e9
        else:  # generate: greedy, with the KV cache, exactly new_tokens of them
            n, row = size["new_tokens"], embeds[:1]
            kwargs = {"inputs_embeds": row, "attention_mask": torch.ones(row.shape[:2], dtype=torch.long),
                      "max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "pad_token_id": V - 1}
            result["seconds"] = timed(lambda: model.generate(**kwargs), args.repeats)
            result["tokens_per_s"] = n / result["seconds"]
    return {**result, "threads": {"torch": torch.get_num_threads()}}


def blas_info():
    """Which BLAS NumPy runs, its kernel (core type) and threads: from threadpoolctl if installed, else asked
    directly of the OpenBLAS that NumPy's wheels bundle."""
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            return {"blas": blas[0].get("internal_api"), "blas_kernel": blas[0].get("architecture"),
                    "blas_threads": blas[0].get("num_threads")}
    except ImportError:
        pass
    import ctypes

    import numpy as np
    libs = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("libscipy_openblas*.so*"))
    if not libs:
        return {"blas": "unknown"}
    lib = ctypes.CDLL(str(libs[0]))
    lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
    return {"blas": "openblas", "blas_kernel": lib.scipy_openblas_get_corename64_().decode(),
            "blas_threads": lib.scipy_openblas_get_num_threads64_()}


def peak_rss_mb():
    """This process's peak resident memory: VmHWM, the high-water mark of its own address space (not
    ru_maxrss, which Linux carries over from the parent through fork and exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
    return kib / (1 << 20 if sys.platform == "darwin" else 1024)


def write_checkpoint(directory, size):
    import numpy as np

    from tinyprompt.weights import GPT2Config, random_params, save_checkpoint
    V, N, C, n_layer, n_head = size["config"]
    config = GPT2Config(vocab_size=V, n_positions=N, n_embd=C, n_layer=n_layer, n_head=n_head)
    save_checkpoint(directory, config, random_params(config, seed=0, dtype=np.float32), tokenizer=False)


def worker(args):
    size = SIZES["quick" if args.quick else "full"]
    side, task = args.worker.split(":")
    if task == "write_checkpoint":
        return write_checkpoint(args.checkpoint, size)
    result = (tinyprompt_worker if side == "tinyprompt" else torch_worker)(task, args, size)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


# --- the parent: run the workers, then print the table and the JSON ---------------------------------


def run(args, side, task, env=None):
    command = [sys.executable, __file__, "--worker", f"{side}:{task}", "--checkpoint", str(args.checkpoint),
               "--threads", str(args.threads), "--repeats", str(args.repeats)] + ["--quick"] * args.quick
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads)), **(env or {})}
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode:
        sys.exit(f"worker {side}:{task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None


def measure(args, scratch, with_torch):
    """{task: [(tinyprompt's result, torch's result or None), one pair per round]}. A round runs the two
    sides one right after the other, so that a ratio compares them under the same load: the machine's speed
    drifts by 10-20% over minutes, more than a round takes."""
    cache = {"NUMBA_CACHE_DIR": str(scratch / "numba-cache")}  # empty: the first worker compiles everything
    rows = {"cold_start": run(args, "tinyprompt", "cold_start", cache),
            "warm_start": run(args, "tinyprompt", "warm_start", cache)}
    torch_start = run(args, "torch", "cold_start") if with_torch else None  # torch has no compile cache:
    rows = {task: [(result, torch_start)] for task, result in rows.items()}  # one figure for both rows
    tasks = ("step_io", "step_lm", "forward", "generate")
    rows.update({task: [] for task in tasks})
    for _ in range(args.rounds):
        for task in tasks:
            rows[task].append((run(args, "tinyprompt", task, cache), run(args, "torch", task) if with_torch else None))
    return rows


def cpu_busy_seconds():
    """CPU seconds that all processes of the machine have used since boot (Linux; 0 elsewhere). Less what
    the workers used, it tells how busy other processes kept the cores during the benchmark."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return 0.0
    ticks = [int(t) for t in stat.read_text().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


FIGURES = [  # metric, unit, result key, figure of one round held against the target (a: tinyprompt's result,
    # b: torch's value or None), meaning
    ("step_io", "s", "seconds", lambda a, b: b and a["seconds"] / b, "x torch's time"),
    ("step_lm", "s", "seconds", lambda a, b: b and a["seconds"] / b, "x torch's time"),
    ("forward", "GFLOP/s", "gflops", lambda a, b: a["gflops"] / a["peak_gflops"], "x matmul peak"),
    ("generate", "tok/s", "tokens_per_s", lambda a, b: b and a["tokens_per_s"] / b, "x torch's speed"),
    ("cold_start", "s", "seconds", lambda a, b: a["seconds"], "s to a first step"),
    ("warm_start", "s", "seconds", lambda a, b: a["seconds"], "s to a first step"),
] + [(f"memory_{task}", "MB", "peak_rss_mb", lambda a, b: b and a["peak_rss_mb"] / b, "x torch's peak")
     for task in ("step_io", "step_lm", "generate")]


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2


def report(args, size, rows):
    peak = median([ours["peak_gflops"] for ours, _ in rows["forward"]])
    threads = rows["step_io"][0][0]["threads"]
    summary = {"threads": args.threads, "repeats": args.repeats, "quick": args.quick, **threads,
               "env": {k: v for k, v in os.environ.items() if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
               "matmul_peak_gflops": round(peak, 1), "other_processes_cores": round(max(args.others, 0), 2)}
    print(f"tinyprompt vs PyTorch + PEFT: GPT-2 (V, N, C, layers, heads) = {size['config']}, "
          f"batch {size['B']} x {size['T']} tokens + {size['P']} virtual; {args.threads} threads each; "
          f"median of {args.repeats} runs; {args.rounds} rounds")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"NumPy BLAS: {threads.get('blas')} ({threads.get('blas_kernel')} kernel, "
          f"{threads.get('blas_threads')} threads), float32 matmul peak {peak:.1f} GFLOP/s (median of the rounds); "
          f"numba threading layer: {threads.get('numba_layer')}")
    others, cores = summary["other_processes_cores"], os.cpu_count()
    print(f"Other processes kept {others} of {cores} cores busy during the run"
          f"{'' if others < 0.1 else ': the figures are skewed, run again on an idle machine'}")
    header = (f"{'metric':<20} | {'tinyprompt':>10} | {'PyTorch+PEFT':>12} | {'figure':>24} | {'rounds':>13} "
              f"| {'target':>7} | met")
    print(header + "\n" + "-" * len(header))
    for metric, unit, key, figure, meaning in FIGURES:
        pairs = rows[metric.removeprefix("memory_")]  # [(ours, theirs)], one per round
        figures = [figure(ours, theirs and theirs[key]) for ours, theirs in pairs]  # each round's own ratio
        a = median([ours[key] for ours, _ in pairs])
        b = None if pairs[0][1] is None else median([theirs[key] for _, theirs in pairs])
        value = None if None in figures else median(figures)
        bound, kind = TARGETS["memory" if metric.startswith("memory") else metric]
        met = None if value is None else (value <= bound if kind == "max" else value >= bound)
        target = f"{'<=' if kind == 'max' else '>='} {bound:g}"
        summary[metric] = {"unit": unit, "tinyprompt": round(a, 4), "torch": b and round(b, 4),
                           "figure": value and round(value, 3), "rounds": value and [round(f, 3) for f in figures],
                           "target": target, "met": met}
        shown = "n/a" if value is None else f"{value:.2f} {meaning}"
        spread = "" if value is None or len(figures) == 1 else f"{min(figures):.2f}-{max(figures):.2f}"
        print(f"{f'{metric} ({unit})':<20} | {a:>10.3f} | {'n/a' if b is None else f'{b:.3f}':>12} | "
              f"{shown:>24} | {spread:>13} | {target:>7} | {'n/a' if met is None else 'yes' if met else 'NO'}")
    for metric, targets in (("step_io", size["B"] * size["targets"]), ("step_lm", size["B"] * size["T"])):
        floor = step_flops(size, targets) / (peak * 1e9)  # seconds at the matmul peak
        summary[metric]["flop_floor_s"] = round(floor, 4)
        print(f"{metric}: FLOP floor {floor * 1e3:.2f} ms ({step_flops(size, targets) / 1e9:.3f} GFLOP at the "
              f"matmul peak); floor / tinyprompt's time = {floor / summary[metric]['tinyprompt']:.2f} (1 = at the peak)")
    floor = rows["generate"][0][0]["floor_mb"]
    torch_mb = summary["memory_generate"]["torch"]
    summary["memory_generate"]["floor_mb"] = {k: round(v, 1) for k, v in floor.items()}
    print(f"memory_generate: floor {sum(floor.values()):.0f} MB = the float32 weights {floor['weights']:.0f} MB "
          f"+ the imports {floor['imports']:.0f} MB" + (f" = {sum(floor.values()) / torch_mb:.2f} x torch's peak"
                                                        if torch_mb else ""))
    print(json.dumps(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every library")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (the median is kept)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the timed figures, each side right after the other (the median ratio is kept)")
    parser.add_argument("--quick", action="store_true", help="a tiny model: a smoke run of the script")
    parser.add_argument("--no-torch", action="store_true", help="tinyprompt's figures only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.threads, args.repeats, args.rounds) < 1:
        parser.error("--threads, --repeats and --rounds must be at least 1")
    args.t0 = START
    if args.worker:
        return worker(args)

    size = SIZES["quick" if args.quick else "full"]
    with_torch = not args.no_torch and all(find_spec(m) for m in ("torch", "transformers", "peft"))
    busy, wall = cpu_busy_seconds(), time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="tinyprompt-bench-"))
    try:
        args.checkpoint = scratch / "gpt2-random"
        run(args, "tinyprompt", "write_checkpoint")  # in a worker too: this process stays small
        rows = measure(args, scratch, with_torch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    others = cpu_busy_seconds() - busy - children.ru_utime - children.ru_stime  # CPU seconds
    args.others = others / (time.perf_counter() - wall)  # cores, on average
    report(args, size, rows)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
