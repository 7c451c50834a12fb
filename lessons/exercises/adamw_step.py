"""Exercise: one AdamW step (torch.optim.AdamW's rule), on the prompt.

With t the step number counted from 1, m and v the running moments (zeros before step 1):
    param <- param * (1 - lr * weight_decay)          (decoupled weight decay)
    m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
    param <- param - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
Return the new (param, m, v); do not modify the inputs.
Check: python lessons/exercises/check.py adamw_step
"""

import numpy as np  # noqa: F401  (you will need it)


def adamw_step(param, grad, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    raise NotImplementedError("return param, m, v after one step")
