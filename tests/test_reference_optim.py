"""optim.py step by step against torch.optim, transformers' Adafactor and schedules, and torch's clipping
(run by `make test-reference`): the same random gradients in, the same prompt out, every step."""

import numpy as np
import pytest
import torch

from tinyprompt.gradcheck import TOLERANCES, rel_error
from tinyprompt.optim import SGD, Adafactor, AdamW, clip_grad_norm, lr_at

pytestmark = pytest.mark.reference

import transformers.optimization as hf

_, RTOL = TOLERANCES["optimizer"]  # float32 state, float32 arithmetic in both
STEPS, P, C = 12, 5, 16

OPTIMIZERS = {  # name: (ours, torch's, lr); weight decay is the one setting a flag reaches
    "adamw": (lambda: AdamW(), lambda ps: torch.optim.AdamW(ps, lr=1.0, weight_decay=0.0), 1e-2),
    "adamw-decay": (lambda: AdamW(weight_decay=0.1), lambda ps: torch.optim.AdamW(ps, lr=1.0, weight_decay=0.1), 1e-2),
    "sgd-momentum": (lambda: SGD(), lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9), 1e-2),
    "sgd-decay": (lambda: SGD(weight_decay=0.01),
                  lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9, weight_decay=0.01), 1e-2),
    # Lester et al.: Adafactor, lr 0.3, no parameter scaling, no relative step
    "adafactor": (lambda: Adafactor(), lambda ps: hf.Adafactor(ps, lr=1.0, scale_parameter=False,
                                                             relative_step=False, warmup_init=False), 0.3),
    "adafactor-decay": (lambda: Adafactor(weight_decay=0.01),
                        lambda ps: hf.Adafactor(ps, lr=1.0, weight_decay=0.01, scale_parameter=False,
                                                relative_step=False), 0.3),
}

SCHEDULES = {  # name: transformers' scheduler factory (warmup 3 of STEPS)
    "constant": lambda opt: hf.get_constant_schedule_with_warmup(opt, 3),
    "linear": lambda opt: hf.get_linear_schedule_with_warmup(opt, 3, STEPS),
    "cosine": lambda opt: hf.get_cosine_schedule_with_warmup(opt, 3, STEPS),
}


def run_both(ours, theirs, lr, schedule="constant", warmup=0, max_norm=None, seed=0):
    """STEPS updates of the same prompt from the same gradients; yields (step, ours, torch's) after each."""
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=(P, C)).astype(np.float32)
    grads = rng.normal(size=(STEPS, P, C)) * rng.uniform(0.1, 3.0, size=(STEPS, 1, 1))  # [STEPS, P, C]
    p, t = p0.copy(), torch.nn.Parameter(torch.tensor(p0))
    opt_t = theirs([t])
    for group in opt_t.param_groups:
        group["lr"] = lr  # the base lr the scheduler scales (LambdaLR reads initial_lr from here)
    sched = SCHEDULES[schedule](opt_t) if warmup else None
    opt = ours()
    for step, g in enumerate(grads.astype(np.float32)):
        t.grad = torch.tensor(g)
        g = g.copy()
        if max_norm is not None:
            norm_t = torch.nn.utils.clip_grad_norm_([t], max_norm)
            norm = clip_grad_norm(g, max_norm)
            assert norm == pytest.approx(norm_t.item(), rel=RTOL)
            assert rel_error(g, t.grad.numpy()) <= RTOL
        our_lr = lr_at(step, lr, schedule, warmup, STEPS)
        assert our_lr == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        opt_t.step()
        if sched is not None:
            sched.step()
        opt.step(p, g, our_lr)
        yield step, p, t.detach().numpy(), p0


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch_every_step(name):
    ours, theirs, lr = OPTIMIZERS[name]
    for step, p, ref, p0 in run_both(ours, theirs, lr):
        assert rel_error(p, ref) <= RTOL, f"{name} step {step}: {rel_error(p, ref):.2e}"
        # the displacement too: a tiny relative error on the prompt could hide a wrong (small) update
        assert rel_error(p - p0, ref - p0) <= 1e-4, f"{name} step {step}: update {rel_error(p - p0, ref - p0):.2e}"


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", ["adamw", "adafactor", "sgd-momentum"])
def test_schedules_and_clipping_match(name, schedule):
    ours, theirs, lr = OPTIMIZERS[name]
    for step, p, ref, _ in run_both(ours, theirs, lr, schedule=schedule, warmup=3, max_norm=1.0, seed=1):
        assert rel_error(p, ref) <= RTOL, f"{name}/{schedule} step {step}"


def test_schedule_values_match_transformers_lambdas():
    for warmup, total in ((0, 10), (4, 10), (10, 10), (3, 1)):
        for step in range(total + 3):
            assert lr_at(step, 2.0, "constant", warmup, total) == 2.0 * hf._get_constant_schedule_with_warmup_lr_lambda(
                step, num_warmup_steps=warmup)
            assert lr_at(step, 2.0, "linear", warmup, total) == 2.0 * hf._get_linear_schedule_with_warmup_lr_lambda(
                step, num_warmup_steps=warmup, num_training_steps=total)
            assert lr_at(step, 2.0, "cosine", warmup, total) == pytest.approx(
                2.0 * hf._get_cosine_schedule_with_warmup_lr_lambda(step, num_warmup_steps=warmup,
                                                                     num_training_steps=total, num_cycles=0.5),
                abs=1e-15)
