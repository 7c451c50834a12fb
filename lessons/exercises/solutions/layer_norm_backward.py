"""Solution: layer norm backward (see ../layer_norm_backward.py for the forward)."""

import numpy as np


def layer_norm_backward(dy, x, weight, eps=1e-5):
    xc = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)  # [N, 1]
    xhat = xc * rstd  # [N, C]
    dxhat = dy * weight  # y = xhat * w + b
    # xhat_i = (x_i - mean) rstd: the mean term removes the mean of dxhat, the rstd term its projection on xhat
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
