"""Prompt tuning beside the methods it is sold against -- a hard prompt, LoRA, full fine-tuning -- each run the
same way, so that benchmarks/tradeoffs.py and lesson 13 compare like with like.

    steps = fixed_batches(train_rows, n_steps, batch_size=8, pad_id=tok.eos_id, seed=0)  # the same for all
    tuned = train_method(model, "lora", steps, lr=3e-3, seed=0)      # or "pt10", "pt20", "ft"
    scored_model, prompt = tuned.model, tuned.prompt                 # what to evaluate (prompt None but PT)
    nbytes = save_method(run_dir, tuned, model.config)               # the artifact a task stores

Methods: "ptN" = prompt tuning with N virtual tokens (the model frozen; `model.loss_and_grad` + AdamW, as
train.py steps, without its files); "lora" = LoRA r=8, alpha=8 on every c_attn (tinyprompt.lora); "ft" = every
weight (tinyprompt.finetune). All use AdamW (torch's, weight decay 0) and one optimizer step per batch.
This module imports finetune and lora; the prompt-tuning path (train.py, cli.py, api.py) never imports it.

Size letters: B rows, T tokens, P virtual tokens, L = P + T positions, M counted targets, C channels,
V vocabulary, r the LoRA rank.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import finetune, lora
from .data import batches
from .hub import load_model
from .optim import AdamW
from .prompt import init_prompt, load_prompt, save_prompt
from .weights import flatten, param_shapes, save_checkpoint

METHODS = ("pt10", "pt20", "lora", "ft")
LORA_R, LORA_ALPHA = 8, 8  # PEFT's LoraConfig defaults (r=8, lora_alpha=8), on c_attn: PEFT's GPT-2 target
ADAMW_SLOTS = 2  # exp_avg and exp_avg_sq: two float32 numbers per trained number


def virtual_tokens(method):
    """"pt10" -> 10; 0 for a method without a soft prompt."""
    return int(method[2:]) if method.startswith("pt") else 0


@dataclass
class Tuned:
    method: str
    model: object  # the GPT2 to score: the frozen one (PT), merged weights (LoRA), the trained copy (FT)
    prompt: object = None  # [P, C] (PT only)
    lora: object = None  # the adapter's arrays (LoRA only)


def fixed_batches(examples, steps, batch_size, pad_id, seed=0):
    """Exactly `steps` batches: epochs of data.batches (seeded order), repeated as often as needed. Every
    method trains on this same list, so a small training set repeats epochs rather than taking fewer steps."""
    out, epoch = [], 0
    while len(out) < steps:
        out.extend(batches(examples, batch_size, pad_id, seed, epoch))
        epoch += 1
    return out[:steps]


def tune_prompt(model, prompt, steps, lr, on_step=None):
    """Prompt tuning: AdamW on the prompt [P, C] alone, one update per batch; the model is never written.
    on_step(step, loss) after each update, as finetune.fit calls it."""
    prompt, opt = np.array(prompt, dtype=np.float32), AdamW()
    for step, (ids, labels) in enumerate(steps):
        loss, grad = model.loss_and_grad(prompt, ids, labels)  # d loss / d prompt [P, C]: no weight gradient
        opt.step(prompt, grad, lr)
        if on_step is not None:
            on_step(step, loss)
    return prompt


def train_method(model, method, steps, lr, seed=0, prompt0=None, lora0=None, on_step=None):
    """Train `method` on the batches `steps` -> Tuned. PT starts from `prompt0` [P, C] (see init_for); LoRA
    from `lora0` when given (continued training), else from a fresh adapter (seed); FT from `model`'s weights.
    on_step(step, loss) after each update."""
    if method.startswith("pt"):
        return Tuned(method, model, prompt=tune_prompt(model, prompt0, steps, lr, on_step))
    if method == "lora":
        adapter = lora.train_lora(model, steps, lr, r=LORA_R, alpha=LORA_ALPHA, seed=seed, lora=lora0,
                                  on_step=on_step)
        return Tuned(method, lora.merge(model, adapter, alpha=LORA_ALPHA), lora=adapter)
    if method == "ft":
        return Tuned(method, finetune.train_weights(model, steps, lr, on_step=on_step))
    raise ValueError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")


def init_for(method, model, tok, init, outputs, seed):
    """A PT method's starting prompt [P, C] (prompt.init_prompt), None for the others."""
    P = virtual_tokens(method)
    return init_prompt(init, P, model.wte, tok, outputs=outputs, seed=seed) if P else None


def save_method(directory, tuned, config, base=""):
    """Write what a task must store to come back -- PT: a PEFT prompt adapter; LoRA: a PEFT LoRA adapter; FT:
    a whole checkpoint (config.json + model.safetensors, float32) -> the bytes of every file written."""
    directory = Path(directory)
    if tuned.method.startswith("pt"):
        save_prompt(directory, tuned.prompt, config, base_model_name_or_path=base)
    elif tuned.method == "lora":
        lora.save_lora(directory, tuned.lora, config, r=LORA_R, alpha=LORA_ALPHA, base_model_name_or_path=base)
    else:
        save_checkpoint(directory, config, tuned.model.params, tokenizer=False)
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def load_method(directory, method, model):
    """Switch the loaded frozen `model` to the task saved in `directory` -> (model to run, prompt or None)."""
    if method.startswith("pt"):
        return model, load_prompt(directory, model.config.n_embd)[0]
    if method == "lora":
        return lora.merge(model, lora.load_lora(directory, model.config)[0], alpha=LORA_ALPHA), None
    return load_model(str(directory)), None


def trainable_params(config, method):
    """The numbers a method trains: P x C for PT; r (C + 3C) per block for LoRA on c_attn ([C, r] and
    [r, 3C]); every weight of the checkpoint for FT."""
    C = config.n_embd
    if method.startswith("pt"):
        return virtual_tokens(method) * C
    if method == "lora":
        return config.n_layer * LORA_R * (C + 3 * C)
    if method == "ft":
        return sum(math.prod(shape) for shape in param_shapes(config).values())
    return 0  # a hard prompt trains nothing


def optimizer_state_bytes(config, method):
    """AdamW's state: two float32 moments per trained number."""
    return ADAMW_SLOTS * 4 * trainable_params(config, method)


def model_bytes(model):
    return sum(a.nbytes for a in flatten(model.params).values())


def step_flops(config, method, B, T, M):
    """FLOPs of one training step (2 per multiply-add), counted the same way for every method, on B rows of
    T tokens with M counted targets in all:
    - forward: every block's matmuls at every position, the causal attention (scores and weighted values, one
      per query-key pair), the [C, V] head at the M targets. A soft prompt's P positions are the same in every
      row (they see only each other), so they run once per batch, as gpt2.py runs them, and each text token
      also attends to the P;
    - backward to the activations (every method needs it: PT's gradient reaches the input through every block,
      LoRA's and FT's reach each block's weights through the blocks after it): the matmuls again, the
      attention twice (four matmuls), the head again;
    - the weight gradients: FT every matmul again (dW = x^T dy) and the head's (wte); LoRA only its
      [C, r] and [r, 3C] matmuls, three times (forward, backward to x, dA and dB); PT none.
    Layer norms, GELU, softmax, the embedding's gradient and the optimizer update are elementwise: left out."""
    C, V, n, P = config.n_embd, config.vocab_size, config.n_layer, virtual_tokens(method)
    N, pairs = P + B * T, P * (P + 1) // 2 + B * (T * P + T * (T + 1) // 2)
    matmuls = n * 2 * N * (3 * C * C + C * C + 4 * C * C + 4 * C * C)  # c_attn, c_proj, c_fc, mlp.c_proj
    attention, head = n * 2 * 2 * pairs * C, 2 * M * C * V
    flops = (matmuls + attention + head) + (matmuls + 2 * attention + head)  # forward + backward to activations
    if method == "ft":
        flops += matmuls + head
    elif method == "lora":
        flops += 3 * n * 2 * N * (C * LORA_R + LORA_R * 3 * C)
    return flops
