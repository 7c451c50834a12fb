"""The reference implementation: Hugging Face transformers + PEFT on the same weights (needs torch).

Imported only by `reference`-marked tests and by `fixtures/make_fixtures.py`; the core suite never imports it.
"""

import numpy as np
import torch
from peft import PromptTuningConfig, get_peft_model
from transformers import GPT2LMHeadModel

torch.set_num_threads(1)  # deterministic reductions, and no contention with a parallel pytest worker


def hf_model(directory, dtype=torch.float32):
    """transformers' GPT-2 from a checkpoint directory, eager attention (the textbook formula), eval mode."""
    model = GPT2LMHeadModel.from_pretrained(directory, attn_implementation="eager", dtype=dtype)
    return model.eval()


def hf_logits(model, input_ids, prompt=None):
    """GPT2LMHeadModel(inputs_embeds=cat(prompt, wte[ids])).logits as numpy [B, P+T, V]."""
    with torch.no_grad():
        x = model.transformer.wte(torch.as_tensor(input_ids))
        if prompt is not None:
            p = torch.as_tensor(prompt, dtype=x.dtype)[None].expand(x.shape[0], -1, -1)
            x = torch.cat([p, x], dim=1)
        return model(inputs_embeds=x).logits.numpy()


def greedy_reference(model, input_ids, prompt, max_new_tokens):
    """Greedy decoding the plainest way: a full forward on cat(prompt, wte[ids]) per new token, no cache,
    argmax of the last logits. What "the same generation" means; unlike `generate`, nothing in it moves
    between transformers releases."""
    ids = list(input_ids)
    for _ in range(max_new_tokens):
        ids.append(int(hf_logits(model, np.array([ids]), prompt)[0, -1].argmax()))
    return ids[len(input_ids):]


def peft_model(model, prompt):
    """PEFT prompt tuning around `model`, its prompt_embeddings set to `prompt` [P, C]."""
    P, C = prompt.shape
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, token_dim=C,
                                num_layers=model.config.n_layer, num_attention_heads=model.config.n_head)
    peft = get_peft_model(model, config)
    peft.prompt_encoder["default"].embedding.weight.data = torch.as_tensor(prompt, dtype=model.dtype).clone()
    return peft


def peft_loss_and_grad(model, prompt, input_ids, labels, lengths=None):
    """PEFT's loss and d loss / d prompt_embeddings. `lengths` [B]: real tokens per row (the rest is right
    padding, masked out with attention_mask = 0 as a PEFT user would)."""
    peft = peft_model(model, prompt)
    input_ids = torch.as_tensor(input_ids)
    mask = torch.ones_like(input_ids)
    if lengths is not None:
        mask = (torch.arange(input_ids.shape[1])[None] < torch.as_tensor(lengths)[:, None]).long()
    out = peft(input_ids=input_ids, attention_mask=mask, labels=torch.as_tensor(labels))
    out.loss.backward()
    grad = peft.prompt_encoder["default"].embedding.weight.grad
    return out.loss.item(), grad.numpy().copy()


def ragged_batch(rng, B, T, V, lengths, targets="last", n_targets=3):
    """ids [B, T] right-padded with eos (V - 1) and labels with -100 on padding, and on the input part
    when targets == "last" (only each row's last `n_targets` tokens count) -- as tinyprompt.data builds them."""
    ids = np.full((B, T), V - 1, dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(0, V, size=n)
        first = 0 if targets == "all" else max(n - n_targets, 0)
        labels[r, first:n] = ids[r, first:n]
    return ids, labels
