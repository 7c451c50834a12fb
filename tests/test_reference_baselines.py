"""The baselines against torch autograd and PEFT (run by `make test-reference`): every weight gradient of full
fine-tuning against transformers' GPT2LMHeadModel, LoRA's loss and gradients against PEFT's LoRA on c_attn,
and adapters crossing both ways (PEFT loads ours with the same logits; we load PEFT's). float32: <= 1e-4
relative to each tensor's largest entry, every weight, on configs no other test uses."""

import numpy as np
import pytest
import torch

import tinyprompt
from tinyprompt import finetune, lora
from tinyprompt.gradcheck import check

pytestmark = pytest.mark.reference

from peft import LoraConfig, PeftModel, get_peft_model
from reference import hf_logits, hf_model, ragged_batch
from transformers import GPT2Config, GPT2LMHeadModel

CONFIGS = {  # (vocab, positions, channels, layers, heads): odd head sizes and counts
    "five-heads": (61, 23, 20, 3, 5),
    "one-head": (89, 17, 28, 2, 1),
}


def checkpoint(tmp_path, name, seed=0):
    V, N, C, n_layer, H = CONFIGS[name]
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=N, n_embd=C, n_layer=n_layer, n_head=H,
                                       initializer_range=0.2, bos_token_id=V - 1, eos_token_id=V - 1))
    model.save_pretrained(tmp_path / name)
    return tmp_path / name


def batch(name, seed=0):
    V, N = CONFIGS[name][:2]
    ids, labels = ragged_batch(np.random.default_rng(seed), B=3, T=N - 2, V=V, lengths=[N - 2, 9, 4], targets="all")
    return ids, labels


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_weight_gradient_equals_torch_autograd(tmp_path, name):
    path = checkpoint(tmp_path, name)
    ids, labels = batch(name)
    loss, grads = finetune.loss_and_weight_grads(tinyprompt.load_model(path), ids, labels)
    theirs = hf_model(path)
    out = theirs(input_ids=torch.as_tensor(ids), labels=torch.as_tensor(labels))  # padding is -100 and last
    out.loss.backward()
    assert loss == pytest.approx(out.loss.item(), rel=1e-5)
    reference = {k.removeprefix("transformer."): p.grad.numpy() for k, p in theirs.named_parameters()}
    assert reference.keys() == grads.keys()  # lm_head is wte (tied): one parameter, both gradients in it
    for key, grad in grads.items():
        check(key, grad, reference[key], "transformers")


def peft_lora(model, r, alpha, adapter=None):
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["c_attn"], fan_in_fan_out=True, lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    peft = get_peft_model(model, config)
    if adapter is not None:
        for name, module in peft.named_modules():
            if name.endswith("attn.c_attn"):
                i = name.split(".h.")[1].split(".")[0]
                module.lora_A["default"].weight.data = torch.as_tensor(adapter[f"h.{i}.attn.c_attn.lora_A.weight"])
                module.lora_B["default"].weight.data = torch.as_tensor(adapter[f"h.{i}.attn.c_attn.lora_B.weight"])
    return peft


def trained_like_adapter(config, r, seed):
    """An adapter as after some training: B no longer 0, so every path of the gradient carries signal."""
    rng = np.random.default_rng(seed)
    return {k: (a + rng.standard_normal(a.shape) * 0.2).astype(np.float32)
            for k, a in lora.init_lora(config, r, seed).items()}


@pytest.mark.parametrize("name,r,alpha", [("five-heads", 8, 8), ("one-head", 3, 7)])
def test_lora_gradients_equal_peft(tmp_path, name, r, alpha):
    path = checkpoint(tmp_path, name, seed=1)
    ours = tinyprompt.load_model(path)
    adapter = trained_like_adapter(ours.config, r, seed=2)
    ids, labels = batch(name, seed=3)
    loss, grads = lora.loss_and_lora_grads(ours, adapter, ids, labels, alpha=alpha)
    peft = peft_lora(hf_model(path), r, alpha, adapter)
    out = peft(input_ids=torch.as_tensor(ids), labels=torch.as_tensor(labels))
    out.loss.backward()
    assert loss == pytest.approx(out.loss.item(), rel=1e-5)
    reference = {}
    for key, p in peft.named_parameters():
        if p.requires_grad:  # PEFT freezes the model: only lora_A / lora_B carry a gradient
            reference[key.removeprefix(lora.PREFIX).replace(".default.", ".")] = p.grad.numpy()
    assert reference.keys() == grads.keys()
    for key, grad in grads.items():
        check(key, grad, reference[key], "transformers")


def test_peft_loads_our_lora_adapter_with_the_same_logits(tmp_path):
    path = checkpoint(tmp_path, "five-heads", seed=4)
    ours = tinyprompt.load_model(path)
    adapter = trained_like_adapter(ours.config, 4, seed=5)
    lora.save_lora(tmp_path / "adapter", adapter, ours.config, r=4, alpha=6, base_model_name_or_path=str(path))
    peft = PeftModel.from_pretrained(hf_model(path), tmp_path / "adapter").eval()
    ids = np.random.default_rng(6).integers(0, CONFIGS["five-heads"][0], (2, 13))
    check("logits", lora.merge(ours, adapter, alpha=6).logits(ids), hf_logits(peft, ids), "transformers")


def test_we_load_peft_s_lora_adapter(tmp_path):
    path = checkpoint(tmp_path, "one-head", seed=7)
    peft = peft_lora(hf_model(path), 2, 5, trained_like_adapter(tinyprompt.load_model(path).config, 2, seed=8))
    peft.save_pretrained(tmp_path / "adapter")
    ours = tinyprompt.load_model(path)
    adapter, fields = lora.load_lora(tmp_path / "adapter", ours.config)
    ids = np.random.default_rng(9).integers(0, CONFIGS["one-head"][0], (2, 11))
    check("logits", lora.merge(ours, adapter, alpha=fields["lora_alpha"]).logits(ids), hf_logits(peft.eval(), ids),
          "transformers")
