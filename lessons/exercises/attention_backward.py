"""Exercise: the backward pass of causal self-attention on split heads.

forward, q, k, v [B, H, L, D]:
    scores = q @ k^T / sqrt(D)            [B, H, L, L], with scores[i, j] = -inf for j > i (causal mask)
    att = softmax(scores, axis=-1)        [B, H, L, L]
    y = att @ v                           [B, H, L, D]
Given dy [B, H, L, D], return (dq, dk, dv), each shaped like its input. Hint: for a softmax row,
dscores = att * (datt - sum_j(datt * att)); masked entries have att = 0, so they need no special case.
Check: python lessons/exercises/check.py attention_backward
"""

import numpy as np  # noqa: F401  (you will need it)


def attention_backward(dy, q, k, v):
    raise NotImplementedError("return dq, dk, dv")
