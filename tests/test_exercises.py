"""lessons/exercises/check.py: every worked solution passes; an unwritten stub and planted wrong answers fail,
with a message that names the wrong tensor and says how far off it is."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "lessons" / "exercises"
NAMES = ["layer_norm_backward", "attention_backward", "prompt_grad", "adamw_step"]

# (exercise, a wrong answer, the tensor the checker must blame, a phrase its message must contain)
WRONG = [
    ("layer_norm_backward", """
import numpy as np
def layer_norm_backward(dy, x, weight, eps=1e-5):  # forgets that var depends on x
    xc = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    dxhat = dy * weight
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))
""", "dx", "max abs diff"),
    ("attention_backward", f"""
import importlib.util, pathlib
spec = importlib.util.spec_from_file_location("s", pathlib.Path({str(EXERCISES)!r}) / "solutions" / "attention_backward.py")
s = importlib.util.module_from_spec(spec); spec.loader.exec_module(s)
def attention_backward(dy, q, k, v):  # dk with the wrong sign
    dq, dk, dv = s.attention_backward(dy, q, k, v)
    return dq, -dk, dv
""", "dk", "the sign is flipped"),
    ("prompt_grad", """
def prompt_grad(dx, P):  # a mean over the rows, not a sum
    return dx[:, :P].mean(axis=0)
""", "dprompt", "constant factor 0.3333"),
    ("prompt_grad", """
def prompt_grad(dx, P):  # the last P positions, not the first
    return dx[:, -P:].sum(axis=0)
""", "dprompt", "max abs diff"),
    ("adamw_step", """
import numpy as np
def adamw_step(param, grad, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):  # no bias correction
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad * grad
    return param * (1 - lr * weight_decay) - lr * m / (np.sqrt(v) + eps), m, v
""", "param", "max abs diff"),
]


def check(*args):
    return subprocess.run([sys.executable, str(EXERCISES / "check.py"), *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes(name):
    run = check(name, "--solution")
    assert run.returncode == 0 and run.stdout.rstrip().endswith("PASS"), run.stdout + run.stderr


@pytest.mark.parametrize("name", NAMES)
def test_unwritten_stub_fails_and_says_so(name):
    run = check(name)
    assert run.returncode == 1 and "not written yet" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("name, code, tensor, phrase", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_planted_wrong_answer_fails_naming_the_tensor(tmp_path, name, code, tensor, phrase):
    answer = tmp_path / f"{name}.py"
    answer.write_text(code)
    run = check(name, "--file", str(answer))
    assert run.returncode == 1 and run.stdout.rstrip().endswith("FAIL"), run.stdout + run.stderr
    blamed = [line for line in run.stdout.splitlines() if line.strip().startswith(f"{tensor}: WRONG")]
    assert blamed, f"no line blames {tensor}:\n{run.stdout}"
    assert phrase in run.stdout, f"message lacks {phrase!r}:\n{run.stdout}"


def test_unknown_exercise_is_a_one_line_error():
    run = check("softmax_backward")
    assert run.returncode == 2 and run.stderr.startswith("error: unknown exercise 'softmax_backward'"), run.stderr
