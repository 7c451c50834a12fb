"""Shared by test_weights.py and test_hub.py (their fixtures are in conftest.py): a small config, comparisons."""

import hashlib

import numpy as np

from tinyprompt.weights import GPT2Config, flatten

SMALL = GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_params(a, b):
    fa, fb = flatten(a), flatten(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
