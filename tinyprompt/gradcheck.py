"""Tools to prove a gradient: central finite differences, and `cmp` to compare two arrays.

Used by the tests (their failure messages) and by the lessons (their printed tables).
"""

import numpy as np


def rel_error(ours, reference):
    """max |ours - ref| / max |ref|: one number, insensitive to the scale of the array."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-300))


def cmp(name, ours, reference, rtol=1e-5, atol=1e-8, quiet=False):
    """Print `name | allclose | max abs diff | max rel diff` and return the line (True if allclose)."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if ours.shape != reference.shape:
        line = f"{name:<24} | shape mismatch: {ours.shape} vs {reference.shape}"
        ok = False
    else:
        ok = bool(np.allclose(ours, reference, rtol=rtol, atol=atol))
        diff = np.abs(ours - reference)
        line = f"{name:<24} | allclose: {ok!s:<5} | max abs diff: {diff.max():.2e} | max rel diff: {rel_error(ours, reference):.2e}"
    if not quiet:
        print(line)
    return ok, line


def finite_difference(f, x, dy=None, eps=1e-6):
    """Central differences of sum(f(x) * dy) with respect to every entry of x (float64).

    d/dx_i sum(f(x) * dy) ~= (g(x + eps e_i) - g(x - eps e_i)) / (2 eps), error O(eps^2). With dy = the upstream
    gradient this is exactly what a backward function returns, so the two can be compared entry by entry."""
    x = np.array(x, dtype=np.float64)
    g = (lambda v: float(np.sum(f(v) * dy))) if dy is not None else (lambda v: float(f(v)))
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = g(x)
        x[i] = old - eps
        down = g(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


# How close is close enough, one row per kind of comparison: (dtype compared, bound on `rel_error`).
TOLERANCES = {
    # float64 central differences, eps = 1e-6: truncation error ~1e-12, rounding ~1e-10
    "finite_difference": (np.float64, 1e-6),
    # a Numba kernel against its NumPy twin: same math, different summation order
    "twin_float32": (np.float32, 1e-5),
    "twin_float64": (np.float64, 1e-12),
    # our float32 model against transformers / PEFT (different BLAS, different op order)
    "transformers": (np.float32, 1e-4),
    # an optimizer step against torch's on the same gradients: only the order of roundings differs
    "optimizer": (np.float32, 1e-6),
}


def check(name, ours, reference, kind):
    """Raise AssertionError naming the tensor and how far off it is when `rel_error` exceeds TOLERANCES[kind]."""
    _, bound = TOLERANCES[kind]
    _, line = cmp(name, ours, reference, quiet=True)
    if np.shape(ours) != np.shape(reference) or rel_error(ours, reference) > bound:
        raise AssertionError(f"{line} | bound ({kind}): {bound:.0e}")
