"""Check an exercise answer: python lessons/exercises/check.py NAME [--file PATH]

NAME is one of the exercises beside this file (layer_norm_backward, attention_backward, prompt_grad,
adamw_step). The answer in lessons/exercises/NAME.py (or --file PATH; --solution for the worked one) is run
on small random float64 inputs and compared with central finite differences of the forward pass
(tinyprompt.gradcheck), or, for adamw_step, with tinyprompt.optim.AdamW. For each tensor it prints whether
it matches and, if not, how far off it is, where, and a hint. Exit code 0: correct; 1: wrong; 2: bad NAME.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from tinyprompt import layers
from tinyprompt.gradcheck import finite_difference
from tinyprompt.optim import AdamW

HERE = Path(__file__).resolve().parent


def layer_norm_backward(answer, rng):
    x, w, dy = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(3, 5))
    b = np.zeros(5)
    expected = finite_difference(lambda x_: layers.layer_norm_forward(x_, w, b)[0], x, dy)
    return {"dx": (answer(dy, x, w), expected)}


def attention_backward(answer, rng):
    q, k, v, dy = rng.normal(size=(4, 1, 2, 4, 3))  # each [B=1, H=2, L=4, D=3]
    y = lambda q_, k_, v_: layers.attention_forward(q_, k_, v_)[0]
    dq, dk, dv = answer(dy, q, k, v)
    return {"dq": (dq, finite_difference(lambda t: y(t, k, v), q, dy)),
            "dk": (dk, finite_difference(lambda t: y(q, t, v), k, dy)),
            "dv": (dv, finite_difference(lambda t: y(q, k, t), v, dy))}


def prompt_grad(answer, rng):
    B, P, T, C = 3, 2, 4, 5
    prompt, wte, wpe = rng.normal(size=(P, C)), rng.normal(size=(11, C)), rng.normal(size=(P + T, C))
    ids, dx = rng.integers(0, 11, size=(B, T)), rng.normal(size=(B, P + T, C))
    expected = finite_difference(lambda p: layers.embedding_forward(ids, wte, wpe, p)[0], prompt, dx)
    return {"dprompt": (answer(dx, P), expected)}


def adamw_step(answer, rng):
    param, grad = rng.normal(size=(2, 3, 4)).astype(np.float32)
    m, v = rng.normal(size=(3, 4)).astype(np.float32), rng.random((3, 4)).astype(np.float32)
    settings = {"lr": 0.03, "betas": (0.9, 0.98), "eps": 1e-8, "weight_decay": 0.1}
    opt = AdamW(weight_decay=settings["weight_decay"])
    (opt.beta1, opt.beta2), opt.eps = settings["betas"], settings["eps"]  # not torch's 0.999: a hard-coded one fails
    opt.t, opt.state = 2, {"exp_avg": m.copy(), "exp_avg_sq": v.copy()}  # as if two steps were already taken
    expected = param.copy()
    opt.step(expected, grad, settings["lr"])
    new_param, new_m, new_v = answer(param.copy(), grad, m.copy(), v.copy(), 3, **settings)
    return {"param": (new_param, expected), "m": (new_m, opt.state["exp_avg"]), "v": (new_v, opt.state["exp_avg_sq"])}


EXERCISES = {f.__name__: f for f in (layer_norm_backward, attention_backward, prompt_grad, adamw_step)}
TOLERANCE = {"adamw_step": 1e-5}  # float32, as in training; the others are float64 against FD (error ~1e-9)


def diagnose(name, ours, expected, atol):
    """(ok, lines): does `ours` match `expected`, and if not, how far, where, and a guess at why."""
    ours, expected = np.asarray(ours, np.float64), np.asarray(expected, np.float64)
    if ours.shape != expected.shape:
        return False, [f"  {name}: WRONG SHAPE {ours.shape}, expected {expected.shape}"]
    diff = np.abs(ours - expected)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    if diff.max() <= atol + atol * np.abs(expected).max():
        return True, [f"  {name}: ok (max abs diff {diff.max():.1e})"]
    lines = [(f"  {name}: WRONG: max abs diff {diff.max():.3g} at index {tuple(int(i) for i in worst)} "
             f"(yours {ours[worst]:.6g}, expected {expected[worst]:.6g}); "
             f"{(diff > atol).mean():.0%} of the entries are off")]
    if np.allclose(ours, -expected, atol=1e-6):
        lines.append("    hint: the sign is flipped")
    elif np.abs(ours).max() > 0 and np.allclose(ours / np.where(expected == 0, 1, expected),
                                                 (ours / np.where(expected == 0, 1, expected)).flat[0], atol=1e-6):
        lines.append(f"    hint: off by a constant factor {(ours.flat[0] / expected.flat[0]):.4g}")
    return False, lines


def load_answer(name, path):
    spec = importlib.util.spec_from_file_location(f"answer_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("name", help=f"one of: {', '.join(EXERCISES)}")
    parser.add_argument("--file", help="the answer to check (default: lessons/exercises/NAME.py)")
    parser.add_argument("--solution", action="store_true", help="check the worked solution instead")
    args = parser.parse_args(argv)
    if args.name not in EXERCISES:
        print(f"error: unknown exercise {args.name!r}; choose one of: {', '.join(EXERCISES)}", file=sys.stderr)
        return 2
    path = Path(args.file) if args.file else HERE / ("solutions" if args.solution else "") / f"{args.name}.py"
    if not path.is_file():
        print(f"error: --file {path}: no such file", file=sys.stderr)
        return 2
    print(f"checking {args.name} in {path}")
    try:
        results = EXERCISES[args.name](load_answer(args.name, path), np.random.default_rng(0))
    except NotImplementedError as e:
        print(f"  not written yet: {e}")
        return 1
    verdicts = [diagnose(name, ours, expected, TOLERANCE.get(args.name, 1e-6))
                for name, (ours, expected) in results.items()]
    for _, lines in verdicts:
        print("\n".join(lines))
    ok = all(v for v, _ in verdicts)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
