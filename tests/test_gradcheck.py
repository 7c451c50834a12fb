"""The gradient checker can fail: a deliberately wrong backward is caught, with a message naming the tensor."""

import numpy as np
import pytest

from tinyprompt import layers as F
from tinyprompt.gradcheck import TOLERANCES, check, finite_difference


def gelu_backward_planted(dy, x):
    """GELU's backward with a planted bug: the tanh derivative term is dropped (a classic slip)."""
    return dy * 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@pytest.fixture
def x_dy():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 5)), rng.standard_normal((3, 5))


def test_right_backward_passes(x_dy):
    x, dy = x_dy
    check("dx (gelu)", F.gelu_backward(dy, x), finite_difference(lambda v: F.gelu_forward(v)[0], x, dy), "finite_difference")


def test_planted_error_fails_naming_the_tensor_and_the_distance(x_dy):
    x, dy = x_dy
    numeric = finite_difference(lambda v: F.gelu_forward(v)[0], x, dy)
    with pytest.raises(AssertionError) as err:
        check("dx (gelu, planted)", gelu_backward_planted(dy, x), numeric, "finite_difference")
    message = str(err.value)
    assert "dx (gelu, planted)" in message and "allclose: False" in message
    assert "max rel diff" in message and "bound (finite_difference): 1e-06" in message


def test_off_by_a_hair_beyond_the_bound_fails(x_dy):
    """Even an error just above the float32 bound is caught: the bound is not decoration."""
    _, dy = x_dy
    _, bound = TOLERANCES["transformers"]
    wrong = dy * (1 + 3 * bound)
    check("dprompt", dy * (1 + bound / 3), dy, "transformers")
    with pytest.raises(AssertionError, match="dprompt"):
        check("dprompt", wrong, dy, "transformers")


def test_shape_mismatch_fails():
    with pytest.raises(AssertionError, match="shape mismatch"):
        check("dx", np.zeros((2, 3)), np.zeros((3, 2)), "twin_float64")


def test_every_tolerance_names_its_dtype():
    for kind, (dtype, bound) in TOLERANCES.items():
        assert np.dtype(dtype).kind == "f" and 0 < bound < 1, kind
