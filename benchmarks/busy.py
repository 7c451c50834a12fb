"""The lessons and the demo on an idle machine and with every core held by other programs: how much slower?

    .venv/bin/python benchmarks/busy.py                    # lessons 02, 06, 08 (--quick) and `make demo`
    .venv/bin/python benchmarks/busy.py --only 06 --repeats 3
    .venv/bin/python benchmarks/busy.py --repo /tmp/before # the same commands on another checkout (before/after)
    .venv/bin/python benchmarks/busy.py --shapes           # single matmuls on one BLAS thread and on all
    .venv/bin/python benchmarks/busy.py -- .venv/bin/python lessons/03_forward.py --quick   # any command

"Loaded" = --hogs processes (default: one per core) that spin `while True: pass` while the command runs.
Each command runs once untimed (Numba's cache fills), then --repeats times idle and --repeats times loaded,
interleaved (idle, loaded, idle, ...) so that the machine's drift hits both; each time is the median. Target:
loaded within 3x of idle (a fair share of the CPU is half of it: 2x). The script also prints how many cores
other processes (neither the command nor the hogs) kept busy during the idle runs: above 0.1, the "idle"
figures are not idle. `--repo` runs the commands in another checkout, with its own tinyprompt first on
PYTHONPATH: e.g. `git archive main | tar -x -C /tmp/before` gives the code before a change.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_busy_seconds, cpu_model  # benchmarks/ is a folder of scripts

ROOT = Path(__file__).resolve().parent.parent
HOG = "while True: pass"
LESSONS = {"02": "lessons/02_concatenation.py", "06": "lessons/06_training_loop.py",
           "08": "lessons/08_engineering_vs_tuning.py"}
SHAPES = [(1, 128, 512), (1, 768, 3072), (8, 128, 512), (20, 768, 3072), (240, 128, 512), (672, 512, 128),
          (64, 128, 50257), (256, 768, 768), (512, 768, 768), (512, 768, 3072), (64, 768, 50257)]


def commands(args):
    """name -> argv: the lessons with --quick, and what `make demo` runs (tiny-pretrained)."""
    if args.command:
        return {" ".join(args.command): args.command}
    py = args.python
    cmds = {f"lesson {k} --quick": [py, path, "--quick"] for k, path in LESSONS.items()}
    cmds["make demo (tiny-pretrained)"] = [py, "-m", "tinyprompt.demo", "--out", "runs/busy-demo"]
    return {name: argv for name, argv in cmds.items() if not args.only or any(o in name for o in args.only)}


class Hogs:
    """`n` processes that each keep a core busy, for the duration of a `with` block."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(self.n)]
        time.sleep(0.5)  # let them reach the loop
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def run_once(argv, cwd, env):
    t = time.perf_counter()
    done = subprocess.run(argv, check=False, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - t


def time_commands(args):
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    if args.repo:
        env["PYTHONPATH"] = os.pathsep.join([str(args.repo), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cwd = args.repo or ROOT
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; code: {cwd}; load: {args.hogs} x `{HOG}`; "
          f"median of {args.repeats}")
    header = f"{'command':<30} | {'idle s':>7} | {'loaded s':>8} | {'loaded/idle':>11} | target | met"
    print(header + "\n" + "-" * len(header), flush=True)
    worst = 0.0
    for name, argv in commands(args).items():
        run_once(argv, cwd, env)  # untimed: compiles the kernels into Numba's cache
        idle, loaded, others, wall = [], [], 0.0, 0.0
        for _ in range(args.repeats):
            busy, children = cpu_busy_seconds(), os.times()
            idle.append(run_once(argv, cwd, env))
            after = os.times()
            used = after.children_user + after.children_system - children.children_user - children.children_system
            others, wall = others + cpu_busy_seconds() - busy - used, wall + idle[-1]
            with Hogs(args.hogs):
                loaded.append(run_once(argv, cwd, env))
        i, lo = statistics.median(idle), statistics.median(loaded)
        worst = max(worst, lo / i)
        print(f"{name:<30} | {i:7.1f} | {lo:8.1f} | {lo / i:10.1f}x |  <= 3x | {'yes' if lo / i <= 3 else 'NO'}"
              f"   (other processes: {max(others, 0) / wall:.2f} cores during the idle runs)", flush=True)
    return worst


def time_shapes(args):
    """Median ms of [M, K] @ [K, N] float32 on one BLAS thread and on all, idle and loaded, in this process."""
    import numpy as np

    sys.path.insert(0, str(args.repo or ROOT))
    from tinyprompt.threads import ALL_CORES_FROM, MAX_THREADS, set_threads, threads_for
    print(f"CPU: {cpu_model()}; one BLAS thread vs {MAX_THREADS}; median ms of 21; tinyprompt uses all from "
          f"{ALL_CORES_FROM / 1e6:.0f}M multiply-adds")
    print(f"{'M x K x N':>18} | {'M*K*N':>8} | {'idle 1':>7} | {'idle all':>8} | {'load 1':>7} | {'load all':>8} | rule")
    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        cells = []
        for hogs in (0, args.hogs):
            with Hogs(hogs):
                for threads in (1, MAX_THREADS):
                    set_threads(threads)
                    a @ b
                    times = []
                    for _ in range(21):
                        t = time.perf_counter()
                        a @ b
                        times.append(time.perf_counter() - t)
                    cells.append(statistics.median(times) * 1e3)
        print(f"{f'{m} x {k} x {n}':>18} | {m * k * n / 1e6:7.1f}M | {cells[0]:7.3f} | {cells[1]:8.3f} | "
              f"{cells[2]:7.3f} | {cells[3]:8.3f} | {threads_for(m, k, n)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=os.cpu_count(), help="busy processes (default: one per core)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs each, idle and loaded (median)")
    parser.add_argument("--only", nargs="+", help="only the commands whose name holds one of these (02, demo)")
    parser.add_argument("--repo", type=Path, help="run the commands in this checkout instead (its tinyprompt)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (default: this one)")
    parser.add_argument("--shapes", action="store_true", help="time single matmuls instead of the commands")
    parser.add_argument("command", nargs="*", help="a command to time instead (after --)")
    args = parser.parse_args()
    if args.repeats < 1 or args.hogs < 0:
        parser.error("--repeats must be at least 1 and --hogs at least 0")
    if args.shapes:
        return time_shapes(args)
    worst = time_commands(args)
    print(f"worst: {worst:.1f}x idle ({'within' if worst <= 3 else 'NOT within'} the 3x target)")


if __name__ == "__main__":
    main()
