"""Checkpoints: config.json, save/load round trips, read-only memory maps, and errors naming the file.

Finding and downloading checkpoints is tested in test_hub.py.
"""

import gc
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from checkpoints import SMALL, assert_same_params, save_checkpoint_as, sha256
from safetensors.numpy import save_file

from tinyprompt import weights
from tinyprompt.errors import TinyPromptError
from tinyprompt.weights import GPT2Config, load_params, random_params, save_checkpoint

# ---- config.json ----

def test_config_round_trip(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMALL.to_hf_dict()))
    assert GPT2Config.from_json(tmp_path / "config.json") == SMALL
    hf = GPT2Config(50257, 1024, 768, 12, 12).to_hf_dict()
    assert hf["model_type"] == "gpt2" and hf["architectures"] == ["GPT2LMHeadModel"]
    assert hf["activation_function"] == "gelu_new" and hf["n_inner"] is None
    assert hf["bos_token_id"] == hf["eos_token_id"] == 50256 and hf["tie_word_embeddings"] is True

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.mark.parametrize("change, message", [
    ({"n_embd": None}, "missing key 'n_embd'"),
    ({"activation_function": "relu"}, "activation_function is 'relu'"),
    ({"n_inner": 10}, "n_inner is 10"),
    ({"n_head": 3}, "not divisible by n_head 3"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings"),
])
def test_config_errors_name_the_file(tmp_path, change, message):
    raw = {k: v for k, v in {**SMALL.to_hf_dict(), **change}.items() if v is not None or k == "n_inner"}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(TinyPromptError, match=message) as error:
        GPT2Config.from_json(tmp_path / "config.json")
    assert str(tmp_path / "config.json") in str(error.value)


# ---- save and load ----

@pytest.mark.parametrize("layout", ["hub", "transformers"])
@pytest.mark.parametrize("legacy_buffers", [False, True])
def test_round_trip(tmp_path, layout, legacy_buffers):
    params = random_params(SMALL, seed=2)
    save_checkpoint_as(tmp_path, SMALL, params, layout, legacy_buffers, tokenizer=False)
    with open(tmp_path / "model.safetensors", "rb") as f:
        keys = json.loads(f.read(int.from_bytes(f.read(8), "little"))).keys()
    assert ("transformer.wte.weight" in keys) == (layout == "transformers")
    assert ("h.0.attn.bias" in keys) == (legacy_buffers and layout == "hub")  # skipped by the loader
    assert ("lm_head.weight" in keys) == (legacy_buffers and layout == "transformers")  # tied: skipped
    config, loaded = load_params(tmp_path)
    assert config == SMALL
    assert_same_params(loaded, params)


def test_float64_and_float16(tmp_path):
    params = random_params(SMALL, seed=3, dtype=np.float64)
    save_checkpoint(tmp_path / "f64", SMALL, params, tokenizer=False)
    _, loaded = load_params(tmp_path / "f64")
    assert loaded["wte"]["weight"].dtype == np.float64
    assert_same_params(loaded, params)
    half = {k: v.astype(np.float16) for k, v in weights.flatten(params).items()}
    save_checkpoint(tmp_path / "f16", SMALL, weights.unflatten(half), tokenizer=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the copy to float32 is expected, not worth a warning at the CLI
        _, loaded = load_params(tmp_path / "f16")
    assert loaded["wte"]["weight"].dtype == np.float32 and not loaded["wte"]["weight"].flags.writeable
    np.testing.assert_array_equal(loaded["wte"]["weight"], half["wte.weight"].astype(np.float32))


def test_bfloat16_is_the_top_half_of_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)  # exactly representable in bfloat16
    top_half = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + top_half)
    np.testing.assert_array_equal(weights.read_safetensors(tmp_path / "bf16.safetensors")["x"], values)


def test_params_structure_mirrors_hf_keys():
    params = random_params(SMALL)
    assert params["h"][1]["attn"]["c_attn"]["weight"].shape == (16, 48)  # [C, 3C]: HF Conv1D is [in, out]
    assert params["h"][0]["mlp"]["c_proj"]["weight"].shape == (64, 16)  # [4C, C]
    assert list(weights.flatten(params)) == list(weights.param_shapes(SMALL))
    assert params["h"][0]["ln_1"]["weight"].min() == 1 and params["ln_f"]["bias"].max() == 0
    assert np.std(params["h"][0]["attn"]["c_proj"]["weight"]) < 0.015  # 0.02 / sqrt(2 * n_layer) = 0.01
    assert_same_params(random_params(SMALL, seed=5), random_params(SMALL, seed=5))


# ---- read-only memory maps ----

def test_arrays_are_read_only_views_of_the_file(small):
    directory, _ = small
    before = sha256(directory / "model.safetensors")
    _, params = load_params(directory)
    for key, array in weights.flatten(params).items():
        assert not array.flags.writeable, key
        with pytest.raises(ValueError):
            array[...] = 0
        base = array
        while not isinstance(base, np.memmap):  # the .base chain ends at the memory map of the file
            base = base.base
        assert Path(base.filename).resolve() == (directory / "model.safetensors").resolve()
        assert np.shares_memory(array, base)
    assert sha256(directory / "model.safetensors") == before


def test_saving_over_a_mapped_checkpoint_leaves_old_arrays_intact(small):
    directory, params = small
    _, old = load_params(directory)
    save_checkpoint(directory, SMALL, random_params(SMALL, seed=9), tokenizer=False)
    assert_same_params(old, params)  # the old file lives on, mapped, until its arrays are gone


def rss_anon_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


@pytest.fixture
def big_checkpoint(tmp_path):
    """~200 MB on disk, written without keeping it in memory afterwards."""
    config = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=512, n_layer=8, n_head=8)
    flat = {k: np.full(shape, 0.5, np.float32) for k, shape in weights.param_shapes(config).items()}
    save_checkpoint(tmp_path / "big", config, weights.unflatten(flat), tokenizer=False)
    del flat
    gc.collect()
    return tmp_path / "big"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_loading_does_not_copy_into_anonymous_memory(big_checkpoint):
    size = (big_checkpoint / "model.safetensors").stat().st_size
    assert size > 190e6
    before = rss_anon_kb()
    _, params = load_params(big_checkpoint)
    total = sum(float(a.sum(dtype=np.float64)) for a in weights.flatten(params).values())  # touch every page
    grown = (rss_anon_kb() - before) * 1024
    assert total == pytest.approx(0.5 * size / 4, rel=1e-3)
    assert grown < 0.05 * size, f"RssAnon grew by {grown / 1e6:.1f} MB for a {size / 1e6:.0f} MB checkpoint"


# ---- errors name the key and the file ----

def test_missing_files(tmp_path, small):
    directory, _ = small
    (directory / "model.safetensors").unlink()
    with pytest.raises(TinyPromptError, match="model.safetensors: no such file"):
        load_params(directory)
    with pytest.raises(TinyPromptError, match="config.json: no such file"):
        load_params(tmp_path / "nowhere")


def test_wrong_shape_and_missing_key(small):
    directory, _ = small
    (directory / "config.json").write_text(json.dumps({**SMALL.to_hf_dict(), "n_positions": 64}))
    with pytest.raises(TinyPromptError, match=r"'wpe.weight' has shape \[32, 16\], config.json says \[64, 16\]"):
        load_params(directory)
    (directory / "config.json").write_text(json.dumps({**SMALL.to_hf_dict(), "n_layer": 3}))
    with pytest.raises(TinyPromptError, match="missing tensor 'h.2.ln_1.weight'") as error:
        load_params(directory)
    assert str(directory / "model.safetensors") in str(error.value)
    (directory / "config.json").write_text(json.dumps({**SMALL.to_hf_dict(), "n_layer": 1}))
    with pytest.raises(TinyPromptError, match="unexpected tensor 'h.1"):
        load_params(directory)


def test_corrupt_header(small):
    directory, _ = small
    path = directory / "model.safetensors"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[:8]) + b"{garbage" + bytes(data[16:]))
    with pytest.raises(TinyPromptError, match="corrupt header, not JSON"):
        load_params(directory)
    path.write_bytes((10**12).to_bytes(8, "little") + bytes(data[8:]))
    with pytest.raises(TinyPromptError, match="corrupt header"):
        load_params(directory)
    path.write_bytes(b"")
    with pytest.raises(TinyPromptError, match="0 bytes, but config.json describes a model of at least"):
        load_params(directory)
    with pytest.raises(TinyPromptError, match="corrupt header"):
        weights.read_safetensors(path)


def test_header_lies_about_a_tensor(tmp_path):
    save_file({"x": np.zeros(4, np.float32)}, str(tmp_path / "a.safetensors"))
    data = (tmp_path / "a.safetensors").read_bytes()
    for old, new, message in [(b"[4]", b"[5]", "'x' of shape"), (b'"F32"', b'"I64"', "dtype I64")]:
        (tmp_path / "b.safetensors").write_bytes(data.replace(old, new))
        with pytest.raises(TinyPromptError, match=message):
            weights.read_safetensors(tmp_path / "b.safetensors")


def test_truncated_file(small):
    directory, _ = small
    path = directory / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(TinyPromptError, match="truncated: '.*' needs bytes up to") as error:
        load_params(directory)
    assert str(path) in str(error.value)


def test_save_refuses_wrong_shapes(tmp_path):
    params = random_params(SMALL)
    params["h"][0]["ln_1"]["bias"] = np.zeros(3, np.float32)
    with pytest.raises(TinyPromptError, match="'h.0.ln_1.bias' of shape \\[3\\]"):
        save_checkpoint(tmp_path, SMALL, params)


@pytest.mark.reference
@pytest.mark.parametrize("layout", ["hub", "transformers"])
@pytest.mark.parametrize("legacy_buffers", [False, True])
def test_transformers_loads_what_we_save(tmp_path, layout, legacy_buffers):
    from transformers import GPT2LMHeadModel

    params = random_params(SMALL, seed=4)
    save_checkpoint_as(tmp_path, SMALL, params, layout, legacy_buffers)
    model = GPT2LMHeadModel.from_pretrained(tmp_path)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    ours = {f"transformer.{k}": v for k, v in weights.flatten(params).items()}
    assert state.keys() == ours.keys() | {"lm_head.weight"}
    for key, value in ours.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    np.testing.assert_array_equal(state["lm_head.weight"], params["wte"]["weight"])  # tied
    assert model.config.n_inner is None and model.config.activation_function == "gelu_new"
