"""Solution: one AdamW step, as torch.optim.AdamW takes it."""

import numpy as np


def adamw_step(param, grad, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)  # decay the weights, not the gradient
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)  # bias corrections: m and v start at 0
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
