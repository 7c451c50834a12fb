"""Every op of GPT-2 as a forward/backward pair, in plain NumPy.

Each `X_forward(...)` returns `(out, cache)`: the cache is exactly what `X_backward` needs.
Each `X_backward(dout, cache)` returns the gradient with respect to the op's *input activation* only.
There is no `dweight` and no `dbias` anywhere: in prompt tuning the pretrained weights are frozen,
so their gradients are never needed, and never computed. Only the activations carry gradient,
all the way back to the soft prompt.

Size letters, used in every shape comment of the package:
    B batch rows, P soft-prompt (virtual) tokens, T text tokens, L = P + T positions,
    C channels (n_embd), H heads, D = C / H head size, V vocabulary, M counted target tokens.

These functions are also the readable reference ("twins") of the Numba kernels in `kernels.py`.
"""

import math

import numpy as np

# --- embedding: vectorize the text, put the soft prompt in front, add positions ----------------


def embedding_forward(input_ids, wte, wpe, prompt=None, start=0):
    """[B, T] ids + prompt -> [B, P+T, C]. The prompt is [P, C] (the same for every row) or [B, P, C]
    (one per row: several tasks in one batch). `start` is the position of the first token (KV cache)."""
    x = wte[input_ids]  # [B, T] -> [B, T, C]  (vectorization: a row lookup, no matmul)
    if prompt is not None and prompt.shape[-2]:
        B, (P, C) = x.shape[0], prompt.shape[-2:]
        prompt = np.broadcast_to(prompt.astype(x.dtype, copy=False), (B, P, C))  # [P, C] -> [B, P, C]
        x = np.concatenate([prompt, x], axis=1)  # [B, P, C] + [B, T, C] -> [B, L, C]
    return x + wpe[start : start + x.shape[1]]  # every position, virtual tokens included, gets wpe


def embedding_backward(dx, P):
    """forward: x[:, :P] = prompt (the same [P, C] in every row), x[:, P:] = wte[ids] (frozen).
    So d prompt = the sum over rows of dx[:, :P]; the wte/wpe rows get nothing (frozen)."""
    return dx[:, :P].sum(axis=0)  # [B, L, C] -> [P, C]


# --- layer norm -------------------------------------------------------------------------------


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """[..., C] -> [..., C]: normalize each position over its channels, then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    xc = x - mean
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)  # [..., 1]
    xhat = xc * rstd  # [..., C]
    return xhat * weight + bias, (xhat, rstd, weight)


def layer_norm_backward(dy, cache):
    xhat, rstd, weight = cache
    # forward: y = xhat * w + b, so dxhat = dy * w.
    dxhat = dy * weight
    # forward: xhat = (x - mean(x)) * rstd with rstd = 1/sqrt(var(x) + eps). Differentiating through both
    # mean and var gives the classic three-term formula (each term's mean is over the C channels):
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


# --- linear (HF's Conv1D: weight stored [in, out]) ---------------------------------------------


def linear_forward(x, weight, bias):
    """[..., in] -> [..., out]. No cache: the backward needs only the weight. The input x is what
    dweight = x.T @ dy would need, and prompt tuning never computes dweight."""
    return x @ weight + bias


def linear_backward(dy, weight):
    # forward: y = x @ W + b  ->  dx = dy @ W.T   (no dW = x.T @ dy, no db = dy.sum(): W and b are frozen)
    return dy @ weight.T  # [..., out] -> [..., in]


# --- GELU, GPT-2's tanh approximation ("gelu_new") ---------------------------------------------

GELU_SCALE = math.sqrt(2.0 / math.pi)  # a Python float: a NumPy float64 scalar would upcast float32 arrays


def gelu_forward(x):
    t = np.tanh(GELU_SCALE * (x + 0.044715 * x * x * x))  # x * x * x: x**3 is a slow pow on float32
    return 0.5 * x * (1.0 + t), x


def gelu_backward(dy, x):
    # forward: y = 0.5 x (1 + t),  t = tanh(u),  u = s (x + 0.044715 x^3)
    # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = s (1 + 3 * 0.044715 x^2)
    t = np.tanh(GELU_SCALE * (x + 0.044715 * x * x * x))  # x * x * x: x**3 is a slow pow on float32
    du = GELU_SCALE * (1.0 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def split_heads(x, H):
    B, L, C = x.shape
    return x.reshape(B, L, H, C // H).transpose(0, 2, 1, 3)  # [B, L, C] -> [B, H, L, D]


def merge_heads(x):
    B, H, L, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, L, H * D)  # [B, H, L, D] -> [B, L, C]


# --- causal self-attention on already split heads ---------------------------------------------


def causal_mask(Lq, Lk):
    """[Lq, Lk] bool: query i (the last Lq of Lk positions) may see key j iff j <= i + (Lk - Lq)."""
    return np.tri(Lq, Lk, k=Lk - Lq, dtype=bool)


def attention_forward(q, k, v):
    """q [B, H, Lq, D], k and v [B, H, Lk, D] -> [B, H, Lq, D]. Lk > Lq when keys come from a KV cache."""
    D = q.shape[-1]
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(D))  # [B, H, Lq, D] @ [B, H, D, Lk] -> [B, H, Lq, Lk]
    scores = np.where(causal_mask(q.shape[2], k.shape[2]), scores, -np.inf)  # no peeking at the future
    att = np.exp(scores - scores.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)  # softmax over keys; masked keys get exactly 0
    return att @ v, (q, k, v, att)  # [B, H, Lq, Lk] @ [B, H, Lk, D] -> [B, H, Lq, D]


def attention_backward(dy, cache):
    q, k, v, att = cache
    scale = 1.0 / math.sqrt(q.shape[-1])
    # forward: y = att @ v
    datt = dy @ v.swapaxes(-1, -2)  # [B, H, Lq, D] @ [B, H, D, Lk] -> [B, H, Lq, Lk]
    dv = att.swapaxes(-1, -2) @ dy  # [B, H, Lk, Lq] @ [B, H, Lq, D] -> [B, H, Lk, D]
    # forward: att = softmax(scores)  ->  dscores = att * (datt - sum_j(datt * att)); masked att = 0 gives 0
    dscores = att * (datt - (datt * att).sum(axis=-1, keepdims=True))
    # forward: scores = q @ k.T * scale
    dq = (dscores @ k) * scale  # [B, H, Lq, Lk] @ [B, H, Lk, D] -> [B, H, Lq, D]
    dk = (dscores.swapaxes(-1, -2) @ q) * scale  # [B, H, Lk, Lq] @ [B, H, Lq, D] -> [B, H, Lk, D]
    return dq, dk, dv


# --- residual ----------------------------------------------------------------------------------
# forward: y = x + f(x). backward: dx = dy + (df/dx)^T dy -- the gradient flows through both paths and
# adds up. It is one `+` in gpt2.py's backward, not worth a function.

# --- next-token cross-entropy on the rows that carry a target ----------------------------------


def cross_entropy_forward(logits, targets):
    """logits [M, V], targets [M] -> mean over the M rows of -log softmax(logits)[target]."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.exp(z).sum(axis=-1))  # [M]
    losses = logsumexp - z[np.arange(len(targets)), targets]  # [M]
    return losses.mean(), (z, logsumexp, targets)


def cross_entropy_backward(cache):
    z, logsumexp, targets = cache
    # forward: loss = mean_m(logsumexp(z_m) - z_m[t_m])  ->  dlogits = (softmax(z) - onehot(t)) / M
    dlogits = np.exp(z - logsumexp[:, None])
    dlogits[np.arange(len(targets)), targets] -= 1.0
    return dlogits / len(targets)  # [M, V]
