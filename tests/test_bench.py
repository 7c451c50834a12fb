"""benchmarks/bench.py's arithmetic: the FLOP counts that the throughput and floor figures divide by, and the
median that a figure over rounds is. Its timings are not tested here: they are measured, by running it."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def blocks_of_forward(size, B, L):
    V, _, C, _, _ = size["config"]
    return bench.forward_flops(size, B, L) - 2 * B * L * C * V  # the head at every position, off


@pytest.mark.parametrize("name", ["quick", "full"])
def test_the_step_floor_counts_the_prompt_once(name):
    """A forward of B rows of P + T positions runs the P virtual tokens (and their attention pairs) B times;
    the step's floor runs them once, and the head on the target positions only, forward and backward."""
    size = bench.SIZES[name]
    V, _, C, _, _ = size["config"]
    B, T, P = size["B"], size["T"], size["P"]
    blocks = blocks_of_forward(size, B, P + T) - (B - 1) * blocks_of_forward(size, 1, P)
    assert bench.step_flops(size, targets=7) == 2 * blocks + 2 * 2 * 7 * C * V


def test_the_forward_counts_every_position_and_the_kept_attention_pairs():
    size = {"config": (10, 8, 4, 1, 1)}  # V, N, C, one layer
    linear = 2 * 3 * (4 * 12 + 4 * 4 + 2 * 4 * 16)  # 3 positions through c_attn, c_proj, c_fc, mlp c_proj
    attention = 2 * 2 * (1 + 2 + 3) * 4  # query i sees i + 1 keys: scores, then the weighted values
    assert bench.forward_flops(size, B=1, L=3) == linear + attention + 2 * 3 * 4 * 10


@pytest.mark.parametrize("values, middle", [([3.0], 3.0), ([5.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.5)])
def test_median(values, middle):
    assert bench.median(values) == middle
