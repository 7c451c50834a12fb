"""prompt.py: the four inits, the PEFT-format save/load round trip, every bad adapter, nearest tokens."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import safetensors.numpy

from tinyprompt.errors import TinyPromptError
from tinyprompt.prompt import (
    TENSOR_NAME,
    WEIGHTS_NAME,
    check_prompt_fits,
    init_prompt,
    load_prompt,
    nearest_tokens,
    save_prompt,
)
from tinyprompt.weights import GPT2Config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V, C = 6000, 8
CONFIG = SimpleNamespace(n_embd=C, n_layer=2, n_head=2)  # what save_prompt reads of a GPT2Config


class ByteTokenizer:
    eos_id = 256

    def encode(self, text):
        return list(text.encode("utf-8"))


TOK = ByteTokenizer()


@pytest.fixture
def wte():
    return np.random.default_rng(0).normal(size=(V, C)).astype(np.float32)  # [V, C], rows all distinct


def row_ids(prompt, wte):
    """Which wte row each prompt row equals (-1 if none)."""
    hits = (prompt[:, None, :] == wte[None]).all(-1)  # [P, V]
    return np.where(hits.any(1), hits.argmax(1), -1)


def test_random_init(wte):
    p = init_prompt("random", 10, wte, seed=1)
    assert p.shape == (10, C) and p.dtype == np.float32
    assert -0.5 <= p.min() and p.max() <= 0.5
    np.testing.assert_array_equal(p, init_prompt("random", 10, wte, seed=1))
    assert not np.array_equal(p, init_prompt("random", 10, wte, seed=2))


def test_vocab_init_samples_distinct_frequent_tokens(wte):
    ids = row_ids(init_prompt("vocab", 50, wte, seed=0), wte)
    assert (ids >= 0).all() and (ids < 5000).all() and len(set(ids.tolist())) == 50


def test_text_init_repeats_or_cuts_like_peft(wte):
    ids = row_ids(init_prompt("text", 7, wte, TOK, init_text="abc"), wte)
    assert ids.tolist() == [97, 98, 99, 97, 98, 99, 97]  # ceil(7 / 3) = 3 copies, cut to 7
    ids = row_ids(init_prompt("text", 2, wte, TOK, init_text="abc"), wte)
    assert ids.tolist() == [97, 98]


def test_labels_init(wte):
    p = init_prompt("labels", 5, wte, TOK, outputs=["no", "y"], seed=0)
    np.testing.assert_allclose(p[0], (wte[ord("n")] + wte[ord("o")]) / 2, rtol=1e-6)  # multi-token: mean
    np.testing.assert_array_equal(p[1], wte[ord("y")])
    assert ((row_ids(p[2:], wte) >= 0) & (row_ids(p[2:], wte) < 5000)).all()  # the rest: sampled vocab


@pytest.mark.parametrize("args, kwargs, message", [
    (("random", 0), {}, "--num-virtual-tokens 0"),
    (("words", 4), {}, "--init 'words'"),
    (("text", 4), {"tokenizer": TOK}, "non-empty --init-text"),
    (("labels", 4), {"tokenizer": TOK, "outputs": []}, "needs data with outputs"),
    (("labels", 1), {"tokenizer": TOK, "outputs": ["a", "b"]}, "2 distinct outputs but only 1"),
    (("labels", 4), {"tokenizer": TOK, "outputs": [""]}, "the output '' has no tokens"),
])
def test_init_errors(wte, args, kwargs, message):
    with pytest.raises(TinyPromptError, match=message):
        init_prompt(*args, wte, **kwargs)


def test_save_load_round_trip(tmp_path, wte):
    prompt = init_prompt("random", 4, wte, seed=3)
    save_prompt(tmp_path / "a", prompt, CONFIG, "gpt2", init="text", init_text="hi", tokenizer_name_or_path="gpt2")
    loaded, fields = load_prompt(tmp_path / "a", n_embd=C)
    np.testing.assert_array_equal(loaded, prompt)
    assert fields == {
        "auto_mapping": None, "base_model_name_or_path": "gpt2", "inference_mode": True, "modules_to_save": None,
        "num_attention_heads": 2, "num_layers": 2, "num_transformer_submodules": 1, "num_virtual_tokens": 4,
        "peft_type": "PROMPT_TUNING", "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "hi",
        "revision": None, "task_type": "CAUSAL_LM", "token_dim": C, "tokenizer_kwargs": None,
        "tokenizer_name_or_path": "gpt2"}
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["adapter_config.json", "adapter_model.safetensors"]  # no temp files left behind
    assert os.stat(tmp_path / "a" / "adapter_model.safetensors").st_mode & 0o044  # not private like mkstemp's
    save_prompt(tmp_path / "a", prompt + 1, CONFIG)  # overwriting replaces both files
    np.testing.assert_array_equal(load_prompt(tmp_path / "a")[0], prompt + 1)


def test_a_failed_save_keeps_the_previous_prompt(tmp_path, wte):
    prompt = init_prompt("random", 4, wte)
    save_prompt(tmp_path, prompt, CONFIG)
    with pytest.raises(TinyPromptError, match="does not match the model's n_embd 8"):
        save_prompt(tmp_path, np.zeros((4, 5), np.float32), CONFIG)
    with pytest.raises(TinyPromptError, match="needs tokenizer_name_or_path"):
        save_prompt(tmp_path, prompt, CONFIG, init="text", init_text="x")
    np.testing.assert_array_equal(load_prompt(tmp_path)[0], prompt)


def test_loads_a_prompt_saved_by_peft():
    prompt, fields = load_prompt(FIXTURES / "peft-prompt", n_embd=32)  # see fixtures/make_prompt_fixture.py
    np.testing.assert_allclose(prompt, 0.01 * np.arange(4 * 32).reshape(4, 32), rtol=1e-6)
    assert fields["peft_version"] and fields["num_virtual_tokens"] == 4


def corrupt(tmp_path, wte, name, content):
    save_prompt(tmp_path, init_prompt("random", 4, wte), CONFIG)
    path = tmp_path / name
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        fields = json.loads((tmp_path / "adapter_config.json").read_text())
        path.write_text(json.dumps({**fields, **content}))
    return tmp_path


@pytest.mark.parametrize("name, content, message", [
    ("adapter_config.json", None, "no adapter_config.json"),
    ("adapter_config.json", b"{not json", "adapter_config.json: corrupt JSON"),
    ("adapter_config.json", {"peft_type": "LORA"}, "peft_type 'LORA', expected 'PROMPT_TUNING'"),
    ("adapter_config.json", {"num_transformer_submodules": 2}, "num_transformer_submodules must be 1"),
    ("adapter_config.json", {"num_virtual_tokens": 5}, r"shape \(4, 8\), but .* num_virtual_tokens=5"),
    ("adapter_model.safetensors", None, "no adapter_model.safetensors$"),
    ("adapter_model.safetensors", b"\x00" * 7, "adapter_model.safetensors: corrupt"),
    ("adapter_model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "adapter_model.safetensors: corrupt"),
])
def test_corrupt_adapters(tmp_path, wte, name, content, message):
    with pytest.raises(TinyPromptError, match=message):
        load_prompt(corrupt(tmp_path, wte, name, content))


def test_adapter_errors(tmp_path, wte):
    with pytest.raises(TinyPromptError, match="no such adapter directory"):
        load_prompt(tmp_path / "missing")
    save_prompt(tmp_path, init_prompt("random", 4, wte), CONFIG)
    with pytest.raises(TinyPromptError, match="token_dim 8 but the model has n_embd 768"):
        load_prompt(tmp_path, n_embd=768)
    safetensors.numpy.save_file({"other": np.zeros((4, C), np.float32)}, tmp_path / "adapter_model.safetensors")
    with pytest.raises(TinyPromptError, match=r"no tensor 'prompt_embeddings' \(found \['other'\]\)"):
        load_prompt(tmp_path)
    bad = np.zeros((4, C), np.float32)
    bad[1, 2] = np.nan
    safetensors.numpy.save_file({"prompt_embeddings": bad}, tmp_path / "adapter_model.safetensors")
    with pytest.raises(TinyPromptError, match="NaN or inf"):
        load_prompt(tmp_path)
    os.replace(tmp_path / "adapter_model.safetensors", tmp_path / "adapter_model.bin")
    with pytest.raises(TinyPromptError, match="adapter_model.bin is not read"):
        load_prompt(tmp_path)


def test_float16_prompt_is_widened(tmp_path, wte):
    save_prompt(tmp_path, init_prompt("random", 4, wte), CONFIG)
    half = np.arange(4 * C, dtype=np.float16).reshape(4, C)
    safetensors.numpy.save_file({"prompt_embeddings": half}, tmp_path / "adapter_model.safetensors")
    prompt, _ = load_prompt(tmp_path)
    assert prompt.dtype == np.float32 and np.array_equal(prompt, half.astype(np.float32))


def test_nearest_tokens(wte):
    prompt = np.stack([3 * wte[7], -wte[2] + 0.01 * wte[9]])  # [2, C]
    ids, sims = nearest_tokens(prompt, wte, k=5)
    assert ids.shape == sims.shape == (2, 5) and ids[0, 0] == 7
    np.testing.assert_allclose(sims[0, 0], 1.0, rtol=1e-5)  # cosine ignores the scale
    assert (np.diff(sims, axis=1) <= 0).all()  # best first
    unit = wte / np.linalg.norm(wte, axis=1, keepdims=True)
    brute = np.argsort(-(prompt / np.linalg.norm(prompt, axis=1, keepdims=True)) @ unit.T, axis=1)[:, :5]
    np.testing.assert_array_equal(ids, brute)


def test_bf16_adapter_is_read_as_float32(tmp_path):
    """PEFT can save a prompt in bfloat16; load_prompt widens it (bfloat16 = the top 16 bits of a float32)."""
    values = np.array([[1.0, -2.5], [3.140625, 0.5]], np.float32)  # exactly representable in bfloat16
    save_prompt(tmp_path, values, GPT2Config(10, 8, 2, 1, 1))
    header = json.dumps({TENSOR_NAME: {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    top_half = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    (tmp_path / WEIGHTS_NAME).write_bytes(len(header).to_bytes(8, "little") + header + top_half)
    prompt, _ = load_prompt(tmp_path, n_embd=2)
    assert prompt.dtype == np.float32
    np.testing.assert_array_equal(prompt, values)


def test_a_prompt_must_leave_room_for_text():
    check_prompt_fits(1023, 1024, "--num-virtual-tokens")  # one position is left: enough
    for P in (1024, 5000):
        with pytest.raises(TinyPromptError) as e:
            check_prompt_fits(P, 1024, "--num-virtual-tokens")
        assert str(e.value) == (f"--num-virtual-tokens: a prompt of {P} tokens leaves no room for text in the model's "
                                "context of 1024 positions (at most 1023)")
