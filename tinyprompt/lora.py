"""LoRA (Hu et al. 2021) on c_attn, the second baseline prompt tuning is weighed against.

Each block's c_attn weight W [C, 3C] stays frozen; a low-rank update is trained beside it:

    qkv = h1 @ W + b + scaling * (h1 @ A.T) @ B.T,    A [R, C], B [3C, R], scaling = alpha / R

PEFT's defaults for GPT-2: target c_attn, R = 8, alpha = 8, no dropout, A drawn like torch's
nn.Linear (kaiming_uniform_ with a = sqrt(5): U(-1/sqrt(C), 1/sqrt(C))) and B = 0, so training starts
from the pretrained model exactly. The gradients come from the fine-tuning backward (finetune.py), which
adds dA and dB where c_attn's input and output gradient meet:

    forward: qkv += scaling * u @ B.T, u = h1 @ A.T  ->  dB = scaling * dqkv.T @ u,  du = scaling * dqkv @ B,
                                                          dA = du.T @ h1,  dh1 += du @ A

On disk an adapter is what PEFT's `save_pretrained` writes for LoRA: `adapter_model.safetensors` (keys
`base_model.model.transformer.h.{i}.attn.c_attn.lora_{A,B}.weight`) and `adapter_config.json`, so
PeftModel.from_pretrained reads ours. In memory the keys drop the `base_model.model.transformer.` prefix.
"""

import json
import math
from pathlib import Path

import numpy as np
import safetensors.numpy

from .errors import TinyPromptError
from .finetune import fit, flat_views, loss_and_grads_into
from .gpt2 import GPT2
from .prompt import CONFIG_NAME, WEIGHTS_NAME, atomic_write
from .weights import read_safetensors

PREFIX = "base_model.model.transformer."  # where PEFT's GPT2LMHeadModel wrapper puts the blocks


def lora_shapes(config, r=8):
    """{name: shape} of every LoRA matrix: per block, A [R, C] and B [3C, R]."""
    C = config.n_embd
    shapes = {}
    for i in range(config.n_layer):
        shapes[f"h.{i}.attn.c_attn.lora_A.weight"] = (r, C)
        shapes[f"h.{i}.attn.c_attn.lora_B.weight"] = (3 * C, r)
    return shapes


def check_rank(r, alpha):
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise TinyPromptError(f"LoRA rank r must be an integer >= 1, got {r!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha <= 0:
        raise TinyPromptError(f"LoRA alpha must be a positive number, got {alpha!r}")


def init_lora(config, r=8, seed=0):
    """A fresh adapter {name: float32 array}: A ~ U(-1/sqrt(C), 1/sqrt(C)) as PEFT, B = 0 (no change yet)."""
    check_rank(r, 1)
    rng, bound = np.random.default_rng(seed), 1.0 / math.sqrt(config.n_embd)
    return {name: (rng.uniform(-bound, bound, shape) if "lora_A" in name else np.zeros(shape)).astype(np.float32)
            for name, shape in lora_shapes(config, r).items()}


def per_block(lora, n_layer, alpha):
    """The adapter as finetune.py's blocks take it: per block (A, B, scaling)."""
    r = lora["h.0.attn.c_attn.lora_A.weight"].shape[0]
    return [(lora[f"h.{i}.attn.c_attn.lora_A.weight"], lora[f"h.{i}.attn.c_attn.lora_B.weight"], alpha / r)
            for i in range(n_layer)]


def loss_and_lora_grads(model, lora, input_ids, labels, alpha=8):
    """-> (loss, {name: d loss / d A or B}) with the model frozen: same loss convention as loss_and_grad."""
    grads = {name: np.zeros_like(a, dtype=model.dtype) for name, a in lora.items()}
    loss = loss_and_grads_into(model, input_ids, labels, grads, per_block(lora, model.config.n_layer, alpha))
    return loss, grads


def train_lora(model, batches, lr, r=8, alpha=8, seed=0, weight_decay=0.0, max_grad_norm=None, on_step=None,
               lora=None):
    """AdamW on A and B only (one flat vector), one step per (input_ids, labels) batch; the model stays frozen.
    Starts from `lora` if given (continued training), else from init_lora(seed). -> the trained adapter."""
    check_rank(r, alpha)
    shapes = lora_shapes(model.config, r)
    flat, params = flat_views(shapes)
    for name, a in (lora or init_lora(model.config, r, seed)).items():
        params[name][...] = a
    grad_flat, grads = flat_views(shapes)
    blocks = per_block(params, model.config.n_layer, alpha)
    fit(flat, grad_flat, lambda ids, labels: loss_and_grads_into(model, ids, labels, grads, blocks), batches, lr,
        weight_decay, max_grad_norm, on_step)
    return params


def merge(model, lora, alpha=8):
    """A GPT2 whose c_attn weights are W + scaling * A.T @ B.T ([C, R] @ [R, 3C]: the update in Conv1D's
    [in, out] layout); every other weight is shared with `model`, not copied. Score it like any model."""
    blocks = []
    for block, (A, B, scaling) in zip(model.params["h"], per_block(lora, model.config.n_layer, alpha)):
        c_attn = {**block["attn"]["c_attn"], "weight": block["attn"]["c_attn"]["weight"] + scaling * (A.T @ B.T)}
        blocks.append({**block, "attn": {**block["attn"], "c_attn": c_attn}})
    return GPT2(model.config, {**model.params, "h": blocks}, model.name_or_path)


def adapter_config(config, r, alpha, base_model_name_or_path=""):
    """The adapter_config.json fields of PEFT's LoraConfig for GPT-2's c_attn (a Conv1D: fan_in_fan_out)."""
    return {
        "base_model_name_or_path": base_model_name_or_path or None,
        "bias": "none",
        "fan_in_fan_out": True,  # Conv1D stores [in, out]: PEFT transposes B @ A to match
        "inference_mode": True,
        "init_lora_weights": True,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "target_modules": ["c_attn"],
        "task_type": "CAUSAL_LM",
    }


def save_lora(directory, lora, config, r=8, alpha=8, base_model_name_or_path=""):
    """Write a PEFT LoRA adapter directory (created if missing); each file replaced atomically."""
    check_rank(r, alpha)
    shapes = lora_shapes(config, r)
    if set(lora) != set(shapes) or any(lora[k].shape != s for k, s in shapes.items()):
        raise TinyPromptError(f"the adapter does not fit this model with r={r}: expected {len(shapes)} matrices "
                              f"shaped like {list(shapes.items())[:2]}")
    if not all(np.isfinite(a).all() for a in lora.values()):
        raise TinyPromptError("the adapter holds NaN or inf values: not saved")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {PREFIX + k: np.ascontiguousarray(a, dtype=np.float32) for k, a in lora.items()}
    atomic_write(directory / WEIGHTS_NAME, safetensors.numpy.save(tensors, metadata={"format": "pt"}))
    fields = adapter_config(config, r, alpha, base_model_name_or_path)
    atomic_write(directory / CONFIG_NAME, (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode())


def load_lora(directory, config=None):
    """(adapter {name: float32 array}, adapter_config dict) from a PEFT LoRA directory on c_attn; with the
    model's `config`, every matrix must fit that model at the file's rank r."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise TinyPromptError(f"{directory}: not a PEFT adapter directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        fields = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise TinyPromptError(f"{config_path}: corrupt JSON ({e})") from None
    if not isinstance(fields, dict) or fields.get("peft_type") != "LORA":
        raise TinyPromptError(f"{config_path}: not a LoRA adapter (peft_type "
                              f"{fields.get('peft_type') if isinstance(fields, dict) else None!r})")
    tensors = read_safetensors(weights_path)
    lora = {k.removeprefix(PREFIX).replace(".default.", "."): np.array(a, np.float32) for k, a in tensors.items()}
    if not lora or any(".attn.c_attn.lora_" not in k for k in lora):
        raise TinyPromptError(f"{weights_path}: expected only c_attn lora_A / lora_B tensors, found {sorted(lora)[:3]}")
    if not all(np.isfinite(a).all() for a in lora.values()):
        raise TinyPromptError(f"{weights_path}: the adapter holds NaN or inf values")
    if config is not None:
        shapes = lora_shapes(config, fields.get("r"))
        for name, shape in shapes.items():
            if name not in lora or lora[name].shape != shape:
                found = list(lora[name].shape) if name in lora else "nothing"
                raise TinyPromptError(f"{weights_path}: {name} should be {list(shape)} for this model at "
                                      f"r={fields.get('r')}, found {found}")
    return lora, fields
