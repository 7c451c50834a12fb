"""The hot ops of `layers.py`, compiled with Numba: same names, arguments, return values and caches.

`gpt2.py` runs on this module unless TINYPROMPT_KERNELS=numpy selects the readable twins in `layers.py`,
which are also the tests' oracle (tests/test_kernels.py). Each choice below was measured on the benchmark's
shapes (GPT-2 124M, 8 rows x 84 positions, float32, 2-core AMD EPYC, OpenBLAS; best of 15, one thread):

- linear: BLAS through NumPy -- nothing written in Numba comes near OpenBLAS's 95 GFLOP/s a core. The one
  change: [B, L, in] is flattened to one [B*L, in] matrix, since NumPy runs a 3-D `@` as B matmuls of
  L rows (c_fc: 32 ms instead of 39 on one thread, 16 instead of 21 on two). Fusing the bias (or GELU)
  into a Numba loop cannot pay: the bias add is 1-2% of the matmul (`y += b`, in place).
- GELU: one fused loop; float32 uses a rational tanh that LLVM vectorizes (a libm call does not).
  1.2 ms forward, 1.7 backward, against 128 and 143 for the twin (whose x**3 is a slow `pow`).
- layer norm: two passes over each row in float64 accumulators: 0.19 ms forward, 0.25 backward (0.9, 0.8).
- attention: the four products stay matmuls in BLAS (tiny ones, yet a Numba loop nest was 2-3x slower);
  scale, causal mask and softmax are fused into one in-place pass over the scores, and the softmax's
  backward into one over d att. The only [B, H, Lq, Lk] arrays are att (kept: the backward needs it) and
  d att. Outputs are written heads-last ([B, L, H, D] memory), so `merge_heads` needs no copy.
  3.5 + 4.1 ms (twin: 4.2 + 5.7).
- cross-entropy: per row, one pass for the max, one for z = logits - max and the sum of its exps; one pass
  backward. No [M, V] temporaries beyond z and d logits (the twin makes three more). Every softmax exp here is
  `softmax_exp`: with libm's scalar expf the kernel was 2x slower than NumPy; vectorized, LM batch (M = 512,
  V = 50257) on two threads: 25 + 18 ms (twin: 45 + 50).
- embedding: the twins, re-exported.

Every kernel is `parallel=True` (`prange` over rows) and compiled once per dtype into Numba's cache
(`cache=True`). `error_model="numpy"` makes a division a plain division, without Python's zero check that
stops LLVM from vectorizing the loop. Size letters: see `layers.py`.
"""

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .layers import GELU_SCALE, causal_mask, embedding_backward, embedding_forward  # no kernel: the twins
from .threads import matmul  # `@` on one BLAS thread or all, by the size of the product

__all__ = [
    "attention_backward", "attention_forward", "causal_mask", "cross_entropy_backward",
    "cross_entropy_forward", "embedding_backward", "embedding_forward", "gelu_backward", "gelu_forward",
    "layer_norm_backward", "layer_norm_forward", "linear_backward", "linear_forward",
]

# One thread pool, chosen once, before the first kernel runs: Numba's own "workqueue" layer. Its threads
# sleep on a condition variable between kernels. The OpenMP layer's threads spin or sleep as the environment
# says (OMP_WAIT_POLICY): spinning, they take the cores from OpenBLAS's threads in the matmul that follows,
# and the forward took twice as long. workqueue does not nest parallel kernels, and tinyprompt never does.
numba.config.THREADING_LAYER = "workqueue"

# Reassociating sums lets LLVM vectorize reductions; no "nnan"/"ninf": the attention mask is -inf.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
PARALLEL_MIN_SIZE = 1 << 16  # elements in all arrays of a call; below it, one thread is faster


def kernel(function):
    """Compile `function` twice: with its `prange` loops shared among the cores, and as one plain loop, which
    runs when the arrays are small: waking the other threads then costs more than the work (generation: one
    position at a time), and far more when the machine is busy and a woken thread must wait for a core."""
    options = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
    parallel, serial = njit(parallel=True, **options)(function), njit(parallel=False, **options)(function)

    def launch(*args):
        small = sum(a.size for a in args if isinstance(a, np.ndarray)) < PARALLEL_MIN_SIZE
        return (serial if small else parallel)(*args)
    launch.parallel, launch.serial = parallel, serial  # the numba dispatchers, for lesson 12 to look into
    return launch


# --- linear: BLAS through NumPy, as one matmul --------------------------------------------------


def linear_forward(x, weight, bias):
    """[..., in] -> [..., out]; the rows of every batch entry go through BLAS as one matrix."""
    y = matmul(x.reshape(-1, x.shape[-1]), weight)  # [B*L, in] @ [in, out] -> [B*L, out]
    y += bias
    return y.reshape(*x.shape[:-1], weight.shape[1])


def linear_backward(dy, weight):
    # forward: y = x @ W + b  ->  dx = dy @ W.T   (no dW, no db: frozen)
    return matmul(dy.reshape(-1, dy.shape[-1]), weight.T).reshape(*dy.shape[:-1], weight.shape[0])


# --- layer norm ---------------------------------------------------------------------------------


@kernel
def _layer_norm_forward(x, weight, bias, eps, y, xhat, rstd):
    R, C = x.shape
    for r in prange(R):
        mean = 0.0  # float64 accumulators, whatever the dtype
        for c in range(C):
            mean += x[r, c]
        mean /= C
        var = 0.0
        for c in range(C):
            var += (x[r, c] - mean) ** 2
        rstd[r] = s = 1.0 / math.sqrt(var / C + eps)
        for c in range(C):
            xhat[r, c] = (x[r, c] - mean) * s
            y[r, c] = xhat[r, c] * weight[c] + bias[c]


def layer_norm_forward(x, weight, bias, eps=1e-5):
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # [R, C], R = every position
    y, xhat, rstd = np.empty_like(x2), np.empty_like(x2), np.empty(len(x2), x2.dtype)
    _layer_norm_forward(x2, weight, bias, eps, y, xhat, rstd)
    return y.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(*x.shape[:-1], 1), weight)


@kernel
def _layer_norm_backward(dy, xhat, rstd, weight, dx):
    R, C = dy.shape
    for r in prange(R):
        # forward: y = xhat * w + b  ->  dxhat = dy * w; the means below are over the C channels
        mean_dxhat, mean_dxhat_xhat = 0.0, 0.0
        for c in range(C):
            mean_dxhat += dy[r, c] * weight[c]
            mean_dxhat_xhat += dy[r, c] * weight[c] * xhat[r, c]
        mean_dxhat, mean_dxhat_xhat = mean_dxhat / C, mean_dxhat_xhat / C
        # forward: xhat = (x - mean(x)) * rstd  ->  dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
        for c in range(C):
            dx[r, c] = rstd[r] * (dy[r, c] * weight[c] - mean_dxhat - xhat[r, c] * mean_dxhat_xhat)


def layer_norm_backward(dy, cache):
    xhat, rstd, weight = cache
    dy2 = np.ascontiguousarray(dy).reshape(-1, dy.shape[-1])
    dx = np.empty_like(dy2)
    _layer_norm_backward(dy2, xhat.reshape(dy2.shape), rstd.reshape(-1), weight, dx)
    return dx.reshape(dy.shape)


# --- GELU, GPT-2's tanh approximation -----------------------------------------------------------


def gelu_tanh(x):
    """t = tanh(s (x + 0.044715 x^3)), the tanh inside GELU. In float64 with math.tanh (exact, for the
    gradient checks); in float32 with float32 constants and Eigen's rational tanh, which LLVM vectorizes
    (a libm call does not): 8x faster, max error 4e-7 (NumPy's float32 tanh: 6e-8)."""
    return math.tanh(GELU_SCALE * (x + 0.044715 * x**3))


F32 = np.float32  # a bare Python float in a kernel is float64 and would turn float32 math into float64
TANH_CLIP = F32(7.90531110763549805)  # the approximation's range; beyond, float32 tanh is +-1 within 3e-7
TANH_P = tuple(F32(a) for a in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03))  # odd numerator / u, highest power first
TANH_Q = tuple(F32(b) for b in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                4.89352518554385e-03))  # even denominator


@overload(gelu_tanh)
def _gelu_tanh_for(x):  # picked by the argument's type when a kernel compiles
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def gelu_tanh32(x):
            u = F32(GELU_SCALE) * (x + F32(0.044715) * x * x * x)
            if abs(u) >= TANH_CLIP:  # exactly +-1: else GELU's backward, 0.5 x (1 - t^2) du, grows like x^3
                return F32(1) if u > 0 else F32(-1)
            u2, p, q = u * u, TANH_P[0], TANH_Q[0]
            for a in TANH_P[1:]:
                p = p * u2 + a
            for b in TANH_Q[1:]:
                q = q * u2 + b
            return u * p / q
        return gelu_tanh32
    return lambda x: math.tanh(GELU_SCALE * (x + 0.044715 * x**3))


@kernel
def _gelu_forward(x, y):
    for i in prange(x.size):
        y[i] = 0.5 * x[i] * (1 + gelu_tanh(x[i]))


@kernel
def _gelu_backward(dy, x, dx):
    for i in prange(x.size):
        # forward: y = 0.5 x (1 + t),  t = tanh(u),  u = s (x + 0.044715 x^3)
        # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = s (1 + 3 * 0.044715 x^2)
        t = gelu_tanh(x[i])
        du = GELU_SCALE * (1 + 3 * 0.044715 * x[i] * x[i])
        dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * x[i] * (1 - t * t) * du)


def gelu_forward(x):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _gelu_forward(x.reshape(-1), y.reshape(-1))
    return y, x


def gelu_backward(dy, x):
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    dx = np.empty_like(x)
    _gelu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx


# --- exp for softmaxes: its argument is <= 0 once the row's max is subtracted ----------------------


def softmax_exp(z):
    """exp(z) for z <= 0. float64: math.exp. float32: a table of 2^(-i/64) times a cubic for the rest, which
    LLVM vectorizes (libm's expf it does not): 4x faster, max relative error 3e-7 (NumPy's own: 2e-7)."""
    return math.exp(z)


EXP_STEP = math.log(2) / 64
EXP_TABLE = np.exp2(-np.arange(9604) / 64).astype(F32)  # exp(-i EXP_STEP), i = 0 .. 104 / EXP_STEP


@overload(softmax_exp)
def _softmax_exp_for(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        def softmax_exp32(z):
            z = max(z, F32(-104))  # exp(-104) rounds to 0 in float32 (and the table ends); a NaN stays NaN
            i = np.int32(z * F32(-1 / EXP_STEP) + F32(0.5))  # nearest: z = -i EXP_STEP + r, |r| <= EXP_STEP/2
            i = min(max(i, 0), len(EXP_TABLE) - 1)  # in the table even for a NaN (then r, and exp, are NaN)
            r = F32(np.float64(z) + EXP_STEP * i)  # in float64: float32's i EXP_STEP would be 3e-6 off at -80
            return EXP_TABLE[i] * (F32(1) + r * (F32(1) + r * (F32(0.5) + r * F32(1 / 6))))  # exp(r): Taylor
        return softmax_exp32
    return lambda z: math.exp(z)


# --- cross-entropy on the rows that carry a target ------------------------------------------------


@kernel
def _cross_entropy_forward(logits, targets, z, logsumexp, losses):
    M, V = logits.shape
    for m in prange(M):
        top = logits[m].max()
        total = 0.0
        for j in range(V):
            z[m, j] = logits[m, j] - top
            total += softmax_exp(z[m, j])
        logsumexp[m] = math.log(total)
        losses[m] = logsumexp[m] - z[m, targets[m]]


def cross_entropy_forward(logits, targets):
    """logits [M, V], targets [M] -> mean over the M rows of -log softmax(logits)[target]."""
    logits, targets = np.ascontiguousarray(logits), np.ascontiguousarray(targets, dtype=np.int64)
    z, logsumexp, losses = np.empty_like(logits), *np.empty((2, len(logits)), logits.dtype)
    _cross_entropy_forward(logits, targets, z, logsumexp, losses)
    return losses.mean(), (z, logsumexp, targets)


@kernel
def _cross_entropy_backward(z, logsumexp, targets, scale, dlogits):
    M, V = z.shape
    for m in prange(M):
        # forward: loss = mean_m(logsumexp(z_m) - z_m[t_m])  ->  dlogits = (softmax(z) - onehot(t)) / M
        for j in range(V):
            dlogits[m, j] = softmax_exp(z[m, j] - logsumexp[m]) * scale
        dlogits[m, targets[m]] -= scale


def cross_entropy_backward(cache):
    z, logsumexp, targets = cache
    dlogits = np.empty_like(z)
    _cross_entropy_backward(z, logsumexp, targets, z.dtype.type(1 / len(z)), dlogits)
    return dlogits  # [M, V]


# --- causal self-attention: BLAS for the four products, one fused kernel for scale + mask + softmax --------


@kernel
def _causal_softmax(scores, scale):
    """In place, scores [B, H, Lq, Lk] -> att: softmax(scale * row) over the keys each query may see."""
    B, H, Lq, Lk = scores.shape
    rows = scores.reshape(B * H * Lq, Lk)
    for r in prange(B * H * Lq):
        row, last = rows[r], r % Lq + Lk - Lq  # query i is position i + Lk - Lq: it sees keys 0..last
        top = row[: last + 1].max()
        total = 0.0
        for j in range(last + 1):
            row[j] = softmax_exp(scale * (row[j] - top))  # minus the max: exp never overflows
            total += row[j]
        row[: last + 1] /= total
        row[last + 1:] = 0  # the future, masked: exactly 0, as softmax gives -inf


@kernel
def _causal_softmax_backward(datt, att, scale):
    """In place, datt [B, H, Lq, Lk] -> d scores."""
    B, H, Lq, Lk = att.shape
    datt, att = datt.reshape(B * H * Lq, Lk), att.reshape(B * H * Lq, Lk)
    for r in prange(B * H * Lq):
        # forward: att_r = softmax(scale s_r)  ->  ds_rj = scale att_rj (datt_rj - sum_l att_rl datt_rl);
        # a masked key has att = 0, so its ds is 0 too
        dot = 0.0
        for j in range(Lk):
            dot += att[r, j] * datt[r, j]
        for j in range(Lk):
            datt[r, j] = scale * att[r, j] * (datt[r, j] - dot)


def heads_last(B, L, H, D, dtype):
    """An empty [B, H, L, D] array whose memory is [B, L, H, D]: merge_heads of it is a free reshape."""
    return np.empty((B, L, H, D), dtype).transpose(0, 2, 1, 3)


def attention_forward(q, k, v):
    """q [B, H, Lq, D], k and v [B, H, Lk, D] -> [B, H, Lq, D]. Lk > Lq when keys come from a KV cache.
    q, k, v are used where they are (split_heads' strided views are fine for BLAS): no copies."""
    B, H, Lq, D = q.shape
    att = q @ k.swapaxes(-1, -2)  # [B, H, Lq, D] @ [B, H, D, Lk] -> [B, H, Lq, Lk], the scores for now
    _causal_softmax(att, q.dtype.type(1.0 / math.sqrt(D)))  # scale, mask, softmax: in place
    y = np.matmul(att, v, out=heads_last(B, Lq, H, D, q.dtype))  # [B, H, Lq, Lk] @ [B, H, Lk, D]
    return y, (q, k, v, att)


def attention_backward(dy, cache):
    q, k, v, att = cache
    (B, H, Lq, D), Lk = q.shape, k.shape[2]
    # forward: y = att @ v
    dv = np.matmul(att.swapaxes(-1, -2), dy, out=heads_last(B, Lk, H, D, q.dtype))  # [B, H, Lk, D]
    dscores = dy @ v.swapaxes(-1, -2)  # d att, [B, H, Lq, Lk]: the backward's one such temporary
    _causal_softmax_backward(dscores, att, q.dtype.type(1.0 / math.sqrt(D)))  # now d (q @ k.T) (scale in)
    # forward: scores = q @ k.T
    dq = np.matmul(dscores, k, out=heads_last(B, Lq, H, D, q.dtype))  # [B, H, Lq, D]
    dk = np.matmul(dscores.swapaxes(-1, -2), q, out=heads_last(B, Lk, H, D, q.dtype))  # [B, H, Lk, D]
    return dq, dk, dv
