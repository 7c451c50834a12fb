"""Each op's backward against central finite differences in float64 (relative error <= 1e-6)."""

import numpy as np
import pytest

from tinyprompt import layers as F
from tinyprompt.gradcheck import TOLERANCES, cmp, finite_difference, rel_error

_, RTOL_FD = TOLERANCES["finite_difference"]


def check(name, ours, f, x, dy):
    numeric = finite_difference(f, x, dy)
    assert rel_error(ours, numeric) <= RTOL_FD, cmp(name, ours, numeric, quiet=True)[1]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_layer_norm(rng):
    x, w, b = rng.normal(size=(2, 3, 8)), rng.normal(size=8), rng.normal(size=8)
    dy = rng.normal(size=(2, 3, 8))
    _, cache = F.layer_norm_forward(x, w, b)
    check("layer_norm", F.layer_norm_backward(dy, cache), lambda v: F.layer_norm_forward(v, w, b)[0], x, dy)


def test_linear(rng):
    x, w, b = rng.normal(size=(2, 3, 5)), rng.normal(size=(5, 7)), rng.normal(size=7)
    dy = rng.normal(size=(2, 3, 7))
    check("linear", F.linear_backward(dy, w), lambda v: F.linear_forward(v, w, b), x, dy)


def test_gelu(rng):
    x, dy = rng.normal(scale=2.0, size=(3, 11)), rng.normal(size=(3, 11))
    _, cache = F.gelu_forward(x)
    check("gelu", F.gelu_backward(dy, cache), lambda v: F.gelu_forward(v)[0], x, dy)


def test_gelu_is_gpt2s_tanh_approximation():
    # gelu_new(1) from transformers' NewGELUActivation, computed by hand: 0.5 * (1 + tanh(sqrt(2/pi) * 1.044715))
    assert F.gelu_forward(np.array([1.0]))[0][0] == pytest.approx(0.8411919906082768, rel=1e-12)


@pytest.mark.parametrize("Lq,Lk", [(5, 5), (2, 5)])  # (2, 5): queries after a KV cache of 3 positions
def test_attention(rng, Lq, Lk):
    q, k, v = rng.normal(size=(2, 3, Lq, 4)), rng.normal(size=(2, 3, Lk, 4)), rng.normal(size=(2, 3, Lk, 4))
    dy = rng.normal(size=(2, 3, Lq, 4))
    _, cache = F.attention_forward(q, k, v)
    dq, dk, dv = F.attention_backward(dy, cache)
    check("attention dq", dq, lambda t: F.attention_forward(t, k, v)[0], q, dy)
    check("attention dk", dk, lambda t: F.attention_forward(q, t, v)[0], k, dy)
    check("attention dv", dv, lambda t: F.attention_forward(q, k, t)[0], v, dy)


def test_attention_is_causal(rng):
    q, k, v = (rng.normal(size=(1, 2, 6, 4)) for _ in range(3))
    y, _ = F.attention_forward(q, k, v)
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 4:], v2[:, :, 4:] = 99.0, 99.0  # change the future of position 3
    np.testing.assert_array_equal(F.attention_forward(q, k2, v2)[0][:, :, :4], y[:, :, :4])


def test_cross_entropy(rng):
    logits, targets = rng.normal(size=(4, 9)), np.array([0, 3, 8, 3])
    _, cache = F.cross_entropy_forward(logits, targets)
    check("cross_entropy", F.cross_entropy_backward(cache), lambda v: F.cross_entropy_forward(v, targets)[0],
          logits, None)


def test_cross_entropy_value(rng):
    logits, targets = rng.normal(size=(3, 5)), np.array([1, 4, 0])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert F.cross_entropy_forward(logits, targets)[0] == pytest.approx(-np.log(p[[0, 1, 2], targets]).mean())


def test_embedding(rng):
    wte, wpe, prompt = rng.normal(size=(10, 4)), rng.normal(size=(8, 4)), rng.normal(size=(3, 4))
    ids = np.array([[1, 2], [5, 9]])
    x = F.embedding_forward(ids, wte, wpe, prompt)
    np.testing.assert_array_equal(x[1, 0], prompt[0] + wpe[0])  # the prompt sits in front ...
    np.testing.assert_array_equal(x[1, 4], wte[9] + wpe[4])  # ... and shifts the text's positions by P
    dx = rng.normal(size=x.shape)
    check("embedding", F.embedding_backward(dx, 3), lambda v: F.embedding_forward(ids, wte, wpe, v), prompt, dx)
