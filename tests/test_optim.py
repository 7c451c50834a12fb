"""optim.py against steps worked out by hand (the reference suite checks the same rules against torch)."""

import math

import numpy as np
import pytest

from tinyprompt.errors import TinyPromptError
from tinyprompt.optim import SGD, Adafactor, AdamW, clip_grad_norm, lr_at, make_optimizer, state_problem


def f32(*x):
    return np.array(x, dtype=np.float32)


def test_adamw_two_steps_by_hand():
    p, opt, lr, b1, b2, eps, wd = f32(1.0), AdamW(weight_decay=0.1), 0.1, 0.9, 0.999, 1e-8, 0.1
    opt.step(p, f32(0.5), lr)
    # step 1: m = 0.05, v = 0.00025; after bias correction m_hat = 0.5, v_hat = 0.25 -> a step of ~lr
    want = 1.0 * (1 - lr * wd) - lr * 0.5 / (0.5 + eps)
    assert p[0] == pytest.approx(want, rel=1e-6)
    opt.step(p, f32(-0.25), lr)
    m, v = 0.9 * 0.05 + 0.1 * -0.25, 0.999 * 0.00025 + 0.001 * 0.0625
    want = want * (1 - lr * wd) - lr / (1 - b1**2) * m / (math.sqrt(v) / math.sqrt(1 - b2**2) + eps)
    assert p[0] == pytest.approx(want, rel=1e-6) and opt.t == 2


def test_adamw_default_has_no_weight_decay():
    p = f32(2.0)
    AdamW().step(p, f32(0.0), 0.1)  # a zero gradient and no decay: nothing moves
    assert p[0] == 2.0


def test_sgd_momentum_by_hand():
    p, opt = f32(1.0), SGD()
    opt.step(p, f32(1.0), 0.1)  # buffer starts at the first gradient: 1
    opt.step(p, f32(2.0), 0.1)  # buffer 0.9 * 1 + 2 = 2.9
    assert p[0] == pytest.approx(1.0 - 0.1 - 0.29, rel=1e-6)
    p = f32(1.0)
    SGD(weight_decay=0.5).step(p, f32(1.0), 0.1)  # L2: grad + 0.5 * p = 1.5, the first buffer
    assert p[0] == pytest.approx(0.85, rel=1e-6)


def test_adafactor_factored_rank_one_gradient_is_sign_descent():
    # for g = outer(a, b), the factored estimate row[p] col[c] / mean(row) equals g^2 exactly, so the first
    # update is lr * g / |g| = lr * sign(g) (RMS 1, not clipped at 1.0; halved at clip_threshold 0.5)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3), rng.normal(size=5)
    g = np.outer(a, b).astype(np.float32)  # [P, C]
    for clip, scale in ((1.0, 1.0), (0.5, 0.5)):
        p = np.zeros((3, 5), np.float32)
        opt = Adafactor()
        opt.clip_threshold = clip  # no flag sets it; the rule must still use it
        opt.step(p, g, 0.3)
        np.testing.assert_allclose(p, -0.3 * scale * np.sign(g), rtol=1e-5)
        assert opt.state["exp_avg_sq_row"].shape == (3,) and opt.state["exp_avg_sq_col"].shape == (5,)


def test_adafactor_second_step_by_hand_one_row():
    # one row: mean(row) = row, so the factored estimate row[0] col[c] / mean(row) is col[c], the exact g^2 average
    p, opt = f32(1.0, -1.0)[None], Adafactor()  # [1, 2]
    opt.step(p, f32(2.0, 2.0)[None], 0.1)  # beta2 at step 1 is 1 - 1^-0.8 = 0: v = g^2, update = sign(g)
    np.testing.assert_allclose(p, [[0.9, -1.1]], rtol=1e-6)
    opt.step(p, f32(1.0, -1.0)[None], 0.1)
    beta2t = 1 - 2**-0.8
    v = beta2t * 4.0 + (1 - beta2t) * 1.0
    u = np.array([1.0, -1.0]) / math.sqrt(v)  # RMS < 1: no clipping
    np.testing.assert_allclose(p, [np.array([0.9, -1.1]) - 0.1 * u], rtol=1e-6)


@pytest.mark.parametrize("make", [AdamW, SGD, Adafactor])
def test_state_dict_round_trip_through_npz(tmp_path, make):
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(5, 4, 6)).astype(np.float32)
    p1, a = rng.normal(size=(4, 6)).astype(np.float32), make()
    for g in grads[:3]:
        a.step(p1, g, 0.01)
    np.savez(tmp_path / "opt.npz", **a.state_dict())
    p2, b = p1.copy(), make()
    b.load_state_dict(dict(np.load(tmp_path / "opt.npz")))
    for g in grads[3:]:
        a.step(p1, g, 0.01)
        b.step(p2, g, 0.01)
    np.testing.assert_array_equal(p1, p2)  # resuming is bit for bit
    assert b.t == 5


def test_state_and_argument_errors():
    with pytest.raises(TinyPromptError, match=r"missing \['exp_avg_sq'\] for AdamW"):
        AdamW().load_state_dict({"step": np.array(1), "exp_avg": np.zeros(2)})
    with pytest.raises(TinyPromptError, match="float32 param"):
        AdamW().step(np.zeros(2), np.zeros(2), 0.1)
    with pytest.raises(TinyPromptError, match="--optimizer 'adam'"):
        make_optimizer("adam")
    assert isinstance(make_optimizer("adafactor"), Adafactor)
    with pytest.raises(TinyPromptError, match="Adafactor factors a 2-D parameter"):
        Adafactor().step(np.zeros(3, np.float32), np.zeros(3, np.float32), 0.1)
    with pytest.raises(TinyPromptError, match="--lr-schedule 'step'"):
        lr_at(5, 0.1, "step")


def saved_state(name, shape=(4, 6)):
    opt, p = make_optimizer(name), np.zeros(shape, np.float32)
    opt.step(p, np.ones(shape, np.float32), 0.1)
    return opt.state_dict()


BAD_STATES = {  # name: (optimizer, changes to its saved state of a [4, 6] parameter, a text of the problem)
    "unknown optimizer": ("adam", {}, "unknown optimizer 'adam'"),
    "missing slot": ("adamw", {"exp_avg": None}, "AdamW's state lacks 'exp_avg'"),
    "another optimizer's slot": ("sgd", {"exp_avg": np.zeros((4, 6), np.float32)}, "SGD's state has no 'exp_avg'"),
    "step negative": ("adamw", {"step": np.array(-1)}, "step is int64 array(-1)"),
    "step a float": ("sgd", {"step": np.array(1.5)}, "expected an integer >= 0"),
    "slot of other rows": ("adamw", {"exp_avg": np.zeros((3, 6), np.float32)}, "'exp_avg' is float32 [3, 6]"),
    "slot 1-D": ("sgd", {"momentum_buffer": np.zeros(7, np.float32)}, "expected float32 [4, 6]"),
    "slot of text": ("adamw", {"exp_avg_sq": np.array("x")}, "'exp_avg_sq' is <U1 []"),
    "factor of other columns": ("adafactor", {"exp_avg_sq_col": np.ones(5, np.float32)}, "expected float32 [6]"),
    "slot NaN": ("adamw", {"exp_avg": np.full((4, 6), np.nan, np.float32)}, "'exp_avg' holds NaN or inf"),
    "second moment negative": ("adafactor", {"exp_avg_sq_row": -np.ones(4, np.float32)}, "negative mean of squares"),
}


@pytest.mark.parametrize("name", BAD_STATES)
def test_a_bad_saved_state_is_named(name):
    optimizer, changes, problem = BAD_STATES[name]
    state = {**saved_state("adamw" if optimizer == "adam" else optimizer), **changes}
    assert problem in state_problem(optimizer, {k: v for k, v in state.items() if v is not None}, (4, 6))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "adafactor"])
def test_a_saved_state_has_no_problem(optimizer):
    assert state_problem(optimizer, saved_state(optimizer), (4, 6)) == ""


def test_schedules():
    assert [lr_at(s, 1.0, "constant", warmup_steps=2) for s in range(4)] == [0.0, 0.5, 1.0, 1.0]
    assert [lr_at(s, 1.0, "linear", 2, 10) for s in (0, 1, 2, 6, 10, 12)] == [0, 0.5, 1.0, 0.5, 0.0, 0.0]
    cos = [lr_at(s, 1.0, "cosine", 0, 10) for s in (0, 5, 10)]
    np.testing.assert_allclose(cos, [1.0, 0.5, 0.0], atol=1e-12)
    assert lr_at(3, 0.3, "constant") == 0.3


def test_clip_grad_norm():
    g = f32(3.0, 4.0)
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-6)  # scaled by 1 / (5 + 1e-6)
    g = f32(0.3, 0.4)
    clip_grad_norm(g, 1.0)  # under the limit: unchanged
    np.testing.assert_array_equal(g, f32(0.3, 0.4))
