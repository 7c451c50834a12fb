"""Live checks against transformers and PEFT on random GPT-2 configs (run by `make test-reference`).

Checkpoints are made by transformers itself, in both key layouts: `save_pretrained`'s (`transformer.`-
prefixed) and the hub's (bare keys plus the legacy `attn.bias` / `attn.masked_bias` buffers that old hub
files carry), so the loader is tested on files it did not write.
"""

import numpy as np
import pytest
import torch

import tinyprompt
from tinyprompt.generate import generate
from tinyprompt.gradcheck import TOLERANCES, cmp, rel_error

pytestmark = pytest.mark.reference

from reference import hf_logits, hf_model, peft_loss_and_grad, ragged_batch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

_, RTOL32 = TOLERANCES["transformers"]  # float32, relative to the largest entry

CONFIGS = {  # (vocab, positions, channels, layers, heads)
    "small": (128, 64, 32, 2, 4),
    "deeper": (300, 40, 48, 4, 3),
    "wide-heads": (97, 128, 64, 1, 1),
}


def write_checkpoint(tmp_path, name, layout, seed):
    V, N, C, n_layer, H = CONFIGS[name]
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=V, n_positions=N, n_embd=C, n_layer=n_layer, n_head=H,
                        initializer_range=0.1, bos_token_id=V - 1, eos_token_id=V - 1)
    model = GPT2LMHeadModel(config)
    path = tmp_path / f"{name}-{layout}"
    model.save_pretrained(path)
    if layout == "hub":  # rewrite as the hub's gpt2 file: bare keys, plus the old causal-mask buffers
        state = {k.removeprefix("transformer."): v.contiguous() for k, v in model.state_dict().items()
                 if k.startswith("transformer.")}
        for i in range(n_layer):
            state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(N, N)).view(1, 1, N, N)
            state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    return path


@pytest.mark.parametrize("layout", ["transformers", "hub"])
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("P", [0, 1, 8])
def test_logits_equal_transformers(tmp_path, name, layout, P):
    path = write_checkpoint(tmp_path, name, layout, seed=len(name) + P)
    ours, theirs = tinyprompt.load_model(path), hf_model(path)
    V, N, C = CONFIGS[name][:3]
    rng = np.random.default_rng(P)
    for B, T in [(1, N - P), (3, 11)]:  # the full context, and a batch
        ids = rng.integers(0, V, size=(B, T))
        prompt = rng.uniform(-0.5, 0.5, size=(P, C)).astype(np.float32) if P else None
        a, b = ours.logits(ids, prompt), hf_logits(theirs, ids, prompt)
        assert rel_error(a, b) < RTOL32, cmp(f"logits {name} {layout} B={B} T={T}", a, b, quiet=True)[1]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("P", [1, 8, 20])
@pytest.mark.parametrize("targets", ["last", "all"])
def test_loss_and_grad_equal_peft(tmp_path, name, P, targets):
    path = write_checkpoint(tmp_path, name, "transformers", seed=P)
    ours, theirs = tinyprompt.load_model(path), hf_model(path)
    V, N, C = CONFIGS[name][:3]
    rng = np.random.default_rng(P + len(targets))
    lengths = [min(N - P, 14), 9, 3, 12]  # ragged rows, right-padded
    ids, labels = ragged_batch(rng, B=4, T=max(lengths), V=V, lengths=lengths, targets=targets, n_targets=4)
    prompt = rng.uniform(-0.5, 0.5, size=(P, C)).astype(np.float32)
    loss, dprompt = ours.loss_and_grad(prompt, ids, labels)
    ref_loss, ref_dprompt = peft_loss_and_grad(theirs, prompt, ids, labels, lengths)
    assert loss == pytest.approx(ref_loss, rel=RTOL32)
    assert rel_error(dprompt, ref_dprompt) < RTOL32, cmp("dprompt", dprompt, ref_dprompt, quiet=True)[1]


@pytest.mark.parametrize("P", [0, 5])
def test_greedy_generation_equals_transformers(tmp_path, P):
    path = write_checkpoint(tmp_path, "small", "hub", seed=7)
    ours, theirs = tinyprompt.load_model(path), hf_model(path)
    rng = np.random.default_rng(P)
    ids = rng.integers(0, 127, size=6)
    prompt = rng.uniform(-0.5, 0.5, size=(P, 32)).astype(np.float32) if P else None
    new = generate(ours, list(ids), prompt, max_new_tokens=20, eos_id=-1)
    with torch.no_grad():
        x = theirs.transformer.wte(torch.as_tensor(ids)[None])
        if P:
            x = torch.cat([torch.as_tensor(prompt)[None], x], dim=1)
        out = theirs.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long),
                              max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=127)
    assert new == out[0, -20:].tolist()
