"""prompt.py against PEFT (run by `make test-reference`): our adapter loads in PeftModel.from_pretrained with
the same prompt_embeddings and the same logits, PEFT's adapter loads here, and our text init is PEFT's."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyprompt
from tinyprompt.gradcheck import rel_error
from tinyprompt.prompt import init_prompt, load_prompt, save_prompt
from tinyprompt.tokenizer import load_tokenizer

pytestmark = pytest.mark.reference

from peft import PeftModel, PromptTuningConfig, get_peft_model
from reference import hf_model
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RTOL32 = 1e-4  # float32 logits, relative to the largest entry


def tiny_gpt2(vocab_size=96, n_embd=32):
    """A random GPT2LMHeadModel built in the test: nothing is downloaded."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_positions=48, n_embd=n_embd, n_layer=2, n_head=4,
                        bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
    return GPT2LMHeadModel(config).eval()


def peft_prompt(peft_model):
    return peft_model.prompt_encoder["default"].embedding.weight.detach().numpy()


@pytest.mark.parametrize("init", ["random", "vocab", "text", "labels"])
def test_our_adapter_loads_in_peft(tmp_path, init):
    model = tiny_gpt2()
    prompt = np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32)
    save_prompt(tmp_path, prompt, model.config, "tiny-random", init=init, init_text="Classify:",
                tokenizer_name_or_path="gpt2")
    peft = PeftModel.from_pretrained(model, tmp_path)  # inference mode: PEFT runs no init, fetches nothing
    np.testing.assert_array_equal(peft_prompt(peft), prompt)
    assert peft.peft_config["default"].num_virtual_tokens == 6


def test_same_logits_in_peft_and_tinyprompt(tmp_path):
    ours = tinyprompt.load_model(FIXTURES / "peft-tiny")
    prompt = np.random.default_rng(2).uniform(-0.5, 0.5, size=(5, ours.config.n_embd)).astype(np.float32)
    save_prompt(tmp_path, prompt, ours.config, str(FIXTURES / "peft-tiny"))
    peft = PeftModel.from_pretrained(hf_model(FIXTURES / "peft-tiny"), tmp_path)
    ids = np.random.default_rng(3).integers(0, ours.config.vocab_size, size=(2, 7))
    with torch.no_grad():
        theirs = peft(input_ids=torch.as_tensor(ids)).logits.numpy()  # [B, P+T, V]
    loaded, _ = load_prompt(tmp_path, n_embd=ours.config.n_embd)
    assert rel_error(ours.logits(ids, loaded), theirs) <= RTOL32


@pytest.mark.parametrize("init", ["RANDOM", "SAMPLE_VOCAB"])
def test_peft_adapter_loads_here(tmp_path, init):
    model = get_peft_model(tiny_gpt2(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=7,
                                                           prompt_tuning_init=init))
    model.save_pretrained(tmp_path)
    prompt, fields = load_prompt(tmp_path, n_embd=32)
    np.testing.assert_array_equal(prompt, peft_prompt(model))
    assert fields["prompt_tuning_init"] == init and fields["token_dim"] == 32


def test_our_config_has_every_field_peft_writes(tmp_path):
    model = get_peft_model(tiny_gpt2(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    model.save_pretrained(tmp_path / "peft")
    save_prompt(tmp_path / "ours", np.zeros((2, 32), np.float32), model.config)
    theirs = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    ours = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert set(theirs) - set(ours) == {"peft_version"}  # PEFT's own version stamp, filled in when it loads
    assert {k: v for k, v in theirs.items() if k != "peft_version"} == ours


@pytest.mark.parametrize("text, P", [("Classify if the review is positive or negative:", 4),
                                     ("Sentiment:", 8), ("x", 3)])
def test_text_init_is_peft_text_init(tmp_path, text, P):
    # PEFT's TEXT init tokenizes with AutoTokenizer: give it the bundled GPT-2 tokenizer as a local folder
    ours_tok = load_tokenizer()
    ours_tok.save(tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2TokenizerFast"}))
    assert AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"] == ours_tok.encode(text)
    model = tiny_gpt2(vocab_size=50257, n_embd=8)  # the real vocabulary, so the ids index real rows
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, prompt_tuning_init="TEXT",
                                prompt_tuning_init_text=text, tokenizer_name_or_path=str(tmp_path))
    peft = get_peft_model(model, config)
    wte = model.transformer.wte.weight.detach().numpy()
    np.testing.assert_array_equal(init_prompt("text", P, wte, ours_tok, init_text=text), peft_prompt(peft))
