"""Solution: causal attention backward (see ../attention_backward.py for the forward)."""

import math

import numpy as np


def attention_backward(dy, q, k, v):
    L, scale = q.shape[2], 1.0 / math.sqrt(q.shape[-1])
    scores = np.where(np.tri(L, dtype=bool), q @ k.swapaxes(-1, -2) * scale, -np.inf)  # [B, H, L, L]
    att = np.exp(scores - scores.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)
    datt = dy @ v.swapaxes(-1, -2)  # y = att @ v
    dv = att.swapaxes(-1, -2) @ dy
    dscores = att * (datt - (datt * att).sum(axis=-1, keepdims=True))  # softmax rows
    return dscores @ k * scale, dscores.swapaxes(-1, -2) @ q * scale, dv  # scores = q k^T scale
