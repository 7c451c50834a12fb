"""Exercise: the backward pass of layer norm, for the input only (the weights are frozen).

forward, over the last axis (C channels) of x [N, C]:
    mean = x.mean(-1);  var = ((x - mean)^2).mean(-1);  rstd = 1 / sqrt(var + eps)
    xhat = (x - mean) * rstd;  y = xhat * weight + bias
Given dy [N, C] (dLoss/dy), return dx [N, C]. Hints: start from dxhat = dy * weight; mean and var both
depend on every x_j, so dx has three terms. Check: python lessons/exercises/check.py layer_norm_backward
"""

import numpy as np  # noqa: F401  (you will need it)


def layer_norm_backward(dy, x, weight, eps=1e-5):
    raise NotImplementedError("write dx = dLoss/dx here")
