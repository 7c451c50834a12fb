"""tinyprompt/threads.py: BLAS threads by the size of the matmul. Importing tinyprompt leaves NumPy's BLAS on one
thread; a product of ALL_CORES_FROM multiply-adds or more runs on all of them and hands back one. Its timing
is measured by benchmarks/busy.py, not here."""

import os
import subprocess
import sys

import numpy as np

import tinyprompt
from tinyprompt import gpt2, kernels, threads


def test_a_small_matmul_gets_one_thread_a_big_one_all():
    assert threads.threads_for(8, 128, 512) == 1  # tiny-pretrained's MLP on 8 rows: 0.5M multiply-adds
    assert threads.threads_for(672, 512, 128) == 1  # the biggest linear of the lessons: 44M
    assert threads.threads_for(512, 768, 3072) == threads.MAX_THREADS  # GPT-2 124M's MLP on 8 x 64 tokens
    assert threads.threads_for(1, 768, 50257) == 1  # one token's logits in generation: 39M
    n = threads.ALL_CORES_FROM
    assert threads.threads_for(1, 1, n - 1) == 1 and threads.threads_for(1, 1, n) == threads.MAX_THREADS


def test_the_import_leaves_one_blas_thread_and_remembers_the_cap():
    code = ("import tinyprompt, threadpoolctl\n"
            "blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
            "print(tinyprompt.threads.MAX_THREADS, [i['num_threads'] for i in blas])")
    for cap in ("2", "1"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": cap, "OMP_NUM_THREADS": cap}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == [cap, "[1]"], out.stdout + out.stderr


def test_matmul_raises_the_threads_for_a_big_product_only(monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "set_threads", calls.append)
    monkeypatch.setattr(threads, "MAX_THREADS", 4)
    monkeypatch.setattr(threads, "ALL_CORES_FROM", 1000)
    a, b = np.ones((10, 10), np.float32), np.ones((10, 9), np.float32)
    np.testing.assert_array_equal(threads.matmul(a, b), a @ b)  # 900 multiply-adds: one thread, no call
    assert calls == []
    np.testing.assert_array_equal(threads.matmul(a, np.ones((10, 10), np.float32)), np.full((10, 10), 10.0))
    assert calls == [4, 1]  # all of them for the product, then back to one


def test_the_model_hot_matmuls_go_through_the_rule(monkeypatch):
    """Every linear (forward and backward) and the head: the rule sees them all."""
    seen = []

    def counted(a, b):
        seen.append((a.shape[0], a.shape[1], b.shape[1]))
        return a @ b
    monkeypatch.setattr(kernels, "matmul", counted)
    monkeypatch.setattr(gpt2, "matmul", counted)
    model = tinyprompt.load_model("tiny-random")
    c = model.config
    ids = np.array([[5, 6, 7, 8]])
    prompt = np.zeros((2, c.n_embd), np.float32)
    model.loss_and_grad(prompt, ids, ids)
    linears = 4 * c.n_layer  # c_attn, c_proj, c_fc, mlp c_proj
    # forward: the prompt pass and the text pass; backward: both again, but block 0's text pass skips c_attn
    assert len(seen) == 4 * linears - 1 + 2  # + the head forward and its backward
    assert sum(n == c.vocab_size or k == c.vocab_size for _, k, n in seen) == 2
    seen.clear()
    model.logits(ids, prompt)
    assert len(seen) == linears + 1
