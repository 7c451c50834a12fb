"""Shared by test_weights.py and test_hub.py (their fixtures are in conftest.py): a small config, comparisons,
and checkpoints laid out as other writers lay them out, for the loader to read."""

import hashlib

import numpy as np
from safetensors.numpy import save

from tinyprompt.weights import GPT2Config, flatten, save_checkpoint

SMALL = GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_params(a, b):
    fa, fb = flatten(a), flatten(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def save_checkpoint_as(directory, config, params, layout, legacy_buffers=False, tokenizer=True):
    """save_checkpoint, then model.safetensors rewritten as another writer lays it out.

    layout="hub": keys as in the gpt2 repos on the hub (`h.0.attn.c_attn.weight`), what save_checkpoint writes.
    layout="transformers": keys as `save_pretrained` writes them (`transformer.h.0.attn.c_attn.weight`).
    legacy_buffers=True adds what older files carry and the loader must skip: the causal-mask buffers
    `h.N.attn.bias` / `h.N.attn.masked_bias` (hub layout) or a copy of wte as `lm_head.weight` (transformers).
    """
    directory = save_checkpoint(directory, config, params, tokenizer)
    flat = flatten(params)
    dtype = flat["wte.weight"].dtype
    if legacy_buffers and layout == "hub":
        N = config.n_positions
        for i in range(config.n_layer):
            flat[f"h.{i}.attn.bias"] = np.tril(np.ones((N, N), dtype))[None, None]  # [1, 1, N, N] causal mask
            flat[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype)
    if layout == "transformers":
        flat = {f"transformer.{k}": v for k, v in flat.items()}
        if legacy_buffers:
            flat["lm_head.weight"] = flat["transformer.wte.weight"]
    arrays = {k: np.ascontiguousarray(v) for k, v in flat.items()}
    (directory / "model.safetensors").write_bytes(save(arrays, metadata={"format": "pt"}))
    return directory
