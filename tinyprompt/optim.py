"""Optimisers, learning-rate schedules and gradient clipping for the one trainable array: the prompt [P, C].

Each rule is torch's (or transformers') update written out in NumPy, line for line, so a run here and a run
with torch.optim on the same gradients give the same prompt (checked by the reference tests to 1e-6):
- AdamW: torch.optim.AdamW (bias corrections, eps added *outside* the square root, decoupled weight decay).
  Our default weight_decay is 0, not torch's 0.01: decaying a soft prompt towards the origin pulls it away
  from the region where real token embeddings live.
- SGD: torch.optim.SGD with momentum 0.9 (torch's default is 0), no dampening, no Nesterov.
- Adafactor: transformers.optimization.Adafactor with an explicit lr (relative_step=False, warmup_init=False,
  scale_parameter=False, beta1=None): what Lester et al. tuned with, at lr 0.3. The prompt is 2-D, so the
  second moment is factored (one running mean per row and per column instead of one per entry).
Only weight decay is a flag (--weight-decay); the other hyperparameters are torch's / transformers' defaults,
kept as class attributes.
Schedules are the lr_lambda of transformers' get_{constant,linear,cosine}_schedule_with_warmup.

Optimisers work in float32 in place, like torch on a float32 parameter: `opt.step(prompt, grad, lr)`.
`state_dict()` returns only NumPy arrays (the step count too), so `np.savez(path, **opt.state_dict())` saves
it for --resume and `opt.load_state_dict(dict(np.load(path)))` restores it.
"""

import math

import numpy as np

from tinyprompt.errors import TinyPromptError


class Optimizer:
    """State = a step count + named arrays shaped like the parameter, created at the first step."""

    slots = ()  # names of the state arrays

    def __init__(self):
        self.t = 0  # optimizer steps taken
        self.state = {}

    def state_dict(self):
        return {"step": np.array(self.t, dtype=np.int64), **{k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        missing = {"step", *self.slots} - set(state)
        if missing:
            raise TinyPromptError(f"optimizer state: missing {sorted(missing)} for {type(self).__name__}")
        self.t = int(state["step"])
        self.state = {k: np.array(state[k], dtype=np.float32) for k in self.slots}

    def step(self, param, grad, lr):
        if param.dtype != np.float32 or grad.shape != param.shape:
            raise TinyPromptError(f"optimizer: float32 param and same-shape grad expected, got {param.dtype} "
                                  f"{param.shape} and {grad.shape}")
        if not self.state:
            self.state = self.init_state(param)
        self.t += 1
        self.update(param, grad.astype(np.float32, copy=False), float(lr))


class AdamW(Optimizer):
    slots = ("exp_avg", "exp_avg_sq")
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch's defaults

    def __init__(self, weight_decay=0.0):
        super().__init__()
        self.weight_decay = weight_decay

    def init_state(self, param):
        return {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}

    def update(self, param, grad, lr):
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        param *= 1 - lr * self.weight_decay  # decoupled: decay the weights, not the gradient
        m += (1 - self.beta1) * (grad - m)  # m = beta1 m + (1 - beta1) g   (torch: exp_avg.lerp_)
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad  # v = beta2 v + (1 - beta2) g^2
        bias_correction1 = 1 - self.beta1**self.t  # m and v start at 0: divide out their pull towards 0
        bias_correction2 = 1 - self.beta2**self.t
        step_size = lr / bias_correction1
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps  # eps outside the sqrt, as torch
        param -= step_size * (m / denom)


class SGD(Optimizer):
    slots = ("momentum_buffer",)
    momentum = 0.9

    def __init__(self, weight_decay=0.0):
        super().__init__()
        self.weight_decay = weight_decay

    def init_state(self, param):
        return {"momentum_buffer": np.zeros_like(param)}

    def update(self, param, grad, lr):
        d = grad + self.weight_decay * param if self.weight_decay else grad  # SGD's decay is L2 in the grad
        buf = self.state["momentum_buffer"]
        if self.t == 1:
            buf[...] = d  # torch starts the buffer at the first gradient, not at 0
        else:
            buf *= self.momentum
            buf += d
        param -= lr * buf


class Adafactor(Optimizer):
    slots = ("exp_avg_sq_row", "exp_avg_sq_col")
    eps1, clip_threshold, decay_rate = 1e-30, 1.0, -0.8  # transformers' defaults

    def __init__(self, weight_decay=0.0):
        super().__init__()
        self.weight_decay = weight_decay

    def init_state(self, param):
        if param.ndim != 2:
            raise TinyPromptError(f"Adafactor factors a 2-D parameter [P, C], got shape {param.shape}")
        return {"exp_avg_sq_row": np.zeros(param.shape[0], np.float32),  # [P]
                "exp_avg_sq_col": np.zeros(param.shape[1], np.float32)}  # [C]

    def update(self, param, grad, lr):
        s = self.state
        beta2t = 1.0 - self.t**self.decay_rate  # the second-moment decay grows towards 1: 1 - t^-0.8
        g2 = grad**2 + self.eps1  # [P, C]
        s["exp_avg_sq_row"] *= beta2t
        s["exp_avg_sq_row"] += (1.0 - beta2t) * g2.mean(axis=-1)  # [P]
        s["exp_avg_sq_col"] *= beta2t
        s["exp_avg_sq_col"] += (1.0 - beta2t) * g2.mean(axis=-2)  # [C]
        # v[p, c] ~ row[p] col[c] / mean(row): a rank-1 estimate of the second moment
        row, col = s["exp_avg_sq_row"], s["exp_avg_sq_col"]
        r_factor = 1 / np.sqrt(row / row.mean(axis=-1, keepdims=True))  # [P]
        update = r_factor[..., None] * (1 / np.sqrt(col[..., None, :])) * grad  # [P, C]
        update /= max(float(rms(update)) / self.clip_threshold, 1.0)  # clip the update's RMS, not the grad
        update *= lr
        if self.weight_decay:
            param += (-self.weight_decay * lr) * param
        param -= update


def rms(x):
    return np.linalg.norm(x) / math.sqrt(x.size)  # root mean square: ||x|| / sqrt(numel)


def make_optimizer(name, weight_decay=0.0):
    """The optimizer behind --optimizer {adamw,sgd,adafactor}, with our defaults."""
    if name == "adamw":
        return AdamW(weight_decay=weight_decay)
    if name == "sgd":
        return SGD(weight_decay=weight_decay)
    if name == "adafactor":
        return Adafactor(weight_decay=weight_decay)
    raise TinyPromptError(f"--optimizer {name!r}: choose adamw, sgd or adafactor")


def state_problem(name, state, shape):
    """What is wrong with `state` as make_optimizer(name).state_dict() for a parameter of `shape` ("" if
    nothing): a checkpoint someone changed must fail in one line when read, not deep inside a step."""
    try:
        opt = make_optimizer(name)
    except TinyPromptError:
        return f"unknown optimizer {name!r}"
    expected = {"step": (), **{k: v.shape for k, v in opt.init_state(np.zeros(shape, np.float32)).items()}}
    if missing := sorted(expected.keys() - state.keys()):
        return f"{type(opt).__name__}'s state lacks {missing[0]!r}"
    if extra := sorted(state.keys() - expected.keys()):
        return f"{type(opt).__name__}'s state has no {extra[0]!r}"
    step = np.asarray(state["step"])
    if step.shape != () or step.dtype.kind not in "iu" or step < 0:
        return f"the optimizer's step is {step.dtype} {step!r}, expected an integer >= 0"
    for key, want in expected.items():
        value = np.asarray(state[key])
        if key != "step" and (value.dtype.kind != "f" or value.shape != want):
            return f"optimizer state {key!r} is {value.dtype} {list(value.shape)}, expected float32 {list(want)}"
        if not np.isfinite(value).all():
            return f"optimizer state {key!r} holds NaN or inf"
        if key.startswith("exp_avg_sq") and (value < 0).any():  # a mean of squares: its square root is taken
            return f"optimizer state {key!r} holds a negative mean of squares"
    return ""


SCHEDULES = ("constant", "linear", "cosine")


def lr_at(step, lr, schedule="constant", warmup_steps=0, total_steps=1):
    """The learning rate of optimizer step `step` (0 for the first update), as a torch LambdaLR with
    transformers' lambdas gives it: warmup from 0 (so a warmup's first update uses lr 0), then constant,
    linear decay to 0 at total_steps, or half a cosine down to 0."""
    if step < warmup_steps:
        return lr * float(step) / float(max(1, warmup_steps))
    if schedule == "constant":
        return lr
    progress_left = max(1, total_steps - warmup_steps)
    if schedule == "linear":
        return lr * max(0.0, float(total_steps - step) / float(progress_left))
    if schedule == "cosine":
        progress = float(step - warmup_steps) / float(progress_left)
        return lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    raise TinyPromptError(f"--lr-schedule {schedule!r}: choose {', '.join(SCHEDULES)}")


def clip_grad_norm(grad, max_norm):
    """torch.nn.utils.clip_grad_norm_ for one array: scale grad in place so its L2 norm is at most
    max_norm; returns the norm before clipping (inf/nan pass through, for the trainer to catch)."""
    total_norm = np.float32(np.linalg.norm(grad))
    clip_coef = np.float32(max_norm) / (total_norm + np.float32(1e-6))  # the 1e-6 keeps a zero grad finite
    grad *= min(clip_coef, np.float32(1.0))
    return float(total_norm)
