"""Each Numba kernel against its NumPy twin in layers.py (float32 and float64), then the whole model with the
kernels against the whole model with the twins. The twins are proven by test_layers.py (finite differences),
so equal here means right."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import tinyprompt
import tinyprompt.gpt2
from tinyprompt import kernels as K
from tinyprompt import layers as L
from tinyprompt.generate import generate
from tinyprompt.gradcheck import TOLERANCES, cmp, rel_error

FIXTURES = Path(__file__).parent / "fixtures"
RTOL = {np.dtype(dtype).type: bound for kind, (dtype, bound) in TOLERANCES.items() if kind.startswith("twin_")}
DTYPES = [np.float32, np.float64]


def check(name, ours, twin, dtype):
    assert ours.shape == twin.shape and ours.dtype == twin.dtype, f"{name}: {ours.shape} {ours.dtype} vs " \
                                                                  f"{twin.shape} {twin.dtype}"
    assert rel_error(ours, twin) <= RTOL[dtype], cmp(name, ours, twin, quiet=True)[1]


def normal(rng, shape, dtype, scale=1.0, read_only=False):
    a = (rng.normal(size=shape) * scale).astype(dtype)
    a.flags.writeable = not read_only  # the model's weights are read-only memory maps
    return a


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 8), (1, 1, 7), (13, 33)])
def test_layer_norm(rng, dtype, shape):
    x, dy = normal(rng, shape, dtype, 3.0), normal(rng, shape, dtype)
    w, b = normal(rng, shape[-1:], dtype, read_only=True), normal(rng, shape[-1:], dtype, read_only=True)
    (y, cache), (y_twin, cache_twin) = K.layer_norm_forward(x, w, b), L.layer_norm_forward(x, w, b)
    check("layer_norm y", y, y_twin, dtype)
    for name, ours, twin in zip(["xhat", "rstd", "weight"], cache, cache_twin):
        check(f"layer_norm cache {name}", ours, twin, dtype)
    check("layer_norm dx", K.layer_norm_backward(dy, cache), L.layer_norm_backward(dy, cache_twin), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 11), (2, 5, 17), (1, 1, 1)])
def test_gelu(rng, dtype, shape):
    x, dy = normal(rng, shape, dtype, 4.0, read_only=True), normal(rng, shape, dtype)  # tails: tanh = +-1
    (y, cache), (y_twin, cache_twin) = K.gelu_forward(x), L.gelu_forward(x)
    check("gelu y", y, y_twin, dtype)
    check("gelu dx", K.gelu_backward(dy, cache), L.gelu_backward(dy, cache_twin), dtype)


def test_gelu_float32_tanh_over_its_whole_range():
    x = np.linspace(-30, 30, 200_001, dtype=np.float32)  # saturated tails, and every scale in between
    check("gelu y", K.gelu_forward(x)[0], L.gelu_forward(x)[0], np.float32)
    check("gelu dx", K.gelu_backward(np.ones_like(x), x), L.gelu_backward(np.ones_like(x), x), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(rng, dtype):
    w, b = normal(rng, (6, 9), dtype, read_only=True), normal(rng, (9,), dtype, read_only=True)
    x = normal(rng, (3, 6, 5), dtype).transpose(0, 2, 1)  # [3, 5, 6], not contiguous
    dy = normal(rng, (3, 5, 9), dtype)
    check("linear y", K.linear_forward(x, w, b), L.linear_forward(x, w, b), dtype)
    check("linear dx", K.linear_backward(dy, w), L.linear_backward(dy, w), dtype)


def split_heads_of_qkv(rng, B, H, Lq, Lk, D, dtype):
    """q, k, v as gpt2.py hands them over: strided [B, H, L, D] views into one [B, L, 3C] matmul output;
    q covers the last Lq of the Lk positions (the keys before it are a KV cache)."""
    qkv = normal(rng, (B, Lk, 3 * H * D), dtype)
    q, k, v = (t.reshape(B, Lk, H, D).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
    return q[:, :, Lk - Lq:], k, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,Lq,Lk,D", [(2, 3, 5, 5, 4), (1, 2, 3, 7, 8), (1, 4, 1, 9, 16), (3, 1, 6, 6, 5)])
def test_attention(rng, dtype, B, H, Lq, Lk, D):
    q, k, v = split_heads_of_qkv(rng, B, H, Lq, Lk, D, dtype)
    dy = normal(rng, (B, H, Lq, D), dtype)
    (y, cache), (y_twin, cache_twin) = K.attention_forward(q, k, v), L.attention_forward(q, k, v)
    check("attention y", y, y_twin, dtype)
    for name, ours, twin in zip(["q", "k", "v", "att"], cache, cache_twin):
        check(f"attention cache {name}", ours, twin, dtype)  # generate.py reads k, v from cache[1:3]
    for name, ours, twin in zip(["dq", "dk", "dv"], K.attention_backward(dy, cache),
                                L.attention_backward(dy, cache_twin)):
        check(f"attention {name}", ours, twin, dtype)


def test_attention_read_only_and_contiguous_inputs(rng):
    q, k, v = (normal(rng, (2, 3, 4, 8), np.float32, read_only=True) for _ in range(3))
    check("attention y", K.attention_forward(q, k, v)[0], L.attention_forward(q, k, v)[0], np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,V,scale", [(4, 9, 1.0), (1, 1, 1.0), (7, 300, 40.0)])  # 40: exps underflow to 0
def test_cross_entropy(rng, dtype, M, V, scale):
    logits, targets = normal(rng, (M, V), dtype, scale, read_only=True), rng.integers(0, V, M)
    (loss, cache), (loss_twin, cache_twin) = K.cross_entropy_forward(logits, targets), \
        L.cross_entropy_forward(logits, targets)
    assert loss.dtype == loss_twin.dtype and loss == pytest.approx(loss_twin, rel=RTOL[dtype])
    for name, ours, twin in zip(["z", "logsumexp"], cache, cache_twin):
        check(f"cross_entropy cache {name}", ours, twin, dtype)
    dlogits, dlogits_twin = K.cross_entropy_backward(cache), L.cross_entropy_backward(cache_twin)
    check("cross_entropy dlogits", dlogits, dlogits_twin, dtype)


@njit
def softmax_exps(z, out):
    for i in range(len(z)):
        out[i] = K.softmax_exp(z[i])


def test_softmax_exp_float32_over_its_whole_range():
    edges = [0.0, -103.0, -104.0, -np.inf, -1e4]
    z = np.concatenate([-np.logspace(-8, 2.1, 100_000), edges]).astype(np.float32)
    ours, exact = np.empty_like(z), np.exp(z.astype(np.float64))
    softmax_exps(z, ours)
    normal = exact > np.finfo(np.float32).tiny  # below: denormals, then 0
    assert np.abs(ours[normal] / exact[normal] - 1).max() < 4e-7
    assert (np.abs(ours - exact)[~normal] < 1.5e-45).all() and ours[-1] == ours[-2] == 0
    nan = np.full(3, np.nan, np.float32)  # a diverged run: NaN in, NaN out (and no read outside the table)
    softmax_exps(nan, nan)
    assert np.isnan(nan).all()


def test_ops_without_a_kernel_are_the_twins():
    for name in ["embedding_forward", "embedding_backward"]:
        assert getattr(K, name) is getattr(L, name)


# --- the whole model: kernels vs twins --------------------------------------------------------------


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURES / "reference.npz"))


@pytest.fixture(scope="module")
def model():
    return tinyprompt.load_model(FIXTURES / "peft-tiny")


def with_ops(monkeypatch, ops, f):
    monkeypatch.setattr(tinyprompt.gpt2, "F", ops)
    return f()


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_kernels_equal_twins(model, ref, monkeypatch, dtype):
    model = model if dtype == np.float32 else model.astype(dtype)
    ids, labels, prompt = ref["input_ids"], ref["labels"], ref["prompt"].astype(dtype)
    logits = with_ops(monkeypatch, K, lambda: model.logits(ids, prompt))
    check("logits", logits, with_ops(monkeypatch, L, lambda: model.logits(ids, prompt)), dtype)
    loss, dprompt = with_ops(monkeypatch, K, lambda: model.loss_and_grad(prompt, ids, labels))
    loss_twin, dprompt_twin = with_ops(monkeypatch, L, lambda: model.loss_and_grad(prompt, ids, labels))
    assert loss == pytest.approx(loss_twin, rel=RTOL[dtype])
    check("dprompt", dprompt, dprompt_twin, dtype)


def test_generation_with_kernels_equals_twins(model, ref, monkeypatch):
    ids, prompt = list(ref["input_ids"][0, :6]), ref["prompt"]
    new = with_ops(monkeypatch, K, lambda: generate(model, ids, prompt, max_new_tokens=8, eos_id=-1))
    assert new == with_ops(monkeypatch, L, lambda: generate(model, ids, prompt, max_new_tokens=8, eos_id=-1))


@pytest.mark.parametrize("setting,module", [(None, "tinyprompt.kernels"), ("numpy", "tinyprompt.layers")])
def test_environment_switch(setting, module):
    env = {k: v for k, v in os.environ.items() if k != "TINYPROMPT_KERNELS"}
    if setting:
        env["TINYPROMPT_KERNELS"] = setting
    out = subprocess.run([sys.executable, "-c", "import tinyprompt.gpt2 as g; print(g.F.__name__)"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == module
