"""The soft prompt [P, C]: how it starts, how it is saved (in PEFT's format), and what it is close to.

Initialisation (`--init`), after Lester et al. 2021, section 2.2 and 3.2:
- random: uniform in [-0.5, 0.5], the paper's random init. (PEFT's RANDOM is torch.nn.Embedding's N(0, 1).)
- vocab: rows of wte for ids drawn from the 5,000 lowest GPT-2 ids -- BPE ids follow merge order, so these
  are roughly the most frequent tokens, the paper's "sampled vocab".
- text: the embeddings of --init-text's tokens, repeated or cut to P exactly as PEFT's TEXT init does.
- labels: the paper's "class label" init: one row per distinct output string (a multi-token label is the
  mean of its token embeddings), the remaining rows as `vocab`.
Starting from a saved adapter (--init-from) is `load_prompt`.

On disk an adapter is what PEFT's `save_pretrained` writes for prompt tuning, so PeftModel.from_pretrained
reads ours and `load_prompt` reads theirs: `adapter_model.safetensors` with one float32 tensor
`prompt_embeddings` [P, C] and `adapter_config.json`. Both files are written atomically (a temp file in the
same directory, then os.replace), so an interrupted save leaves the previous prompt intact.

Size letters: P virtual tokens, C channels (n_embd), V vocab, k neighbours.
"""

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import safetensors.numpy

from tinyprompt import validate
from tinyprompt.errors import InvalidValue, TinyPromptError
from tinyprompt.weights import read_safetensors

INIT_METHODS = ("random", "vocab", "text", "labels")
FREQUENT_TOKENS = 5000  # Lester et al. sample the init from the 5,000 most common tokens
CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"  # PEFT's file names
TENSOR_NAME = "prompt_embeddings"  # the key PEFT stores the prompt under
# PEFT's PromptTuningInit knows TEXT, SAMPLE_VOCAB and RANDOM; `labels` rows are vocabulary embeddings too
PEFT_INIT = {"random": "RANDOM", "vocab": "SAMPLE_VOCAB", "text": "TEXT", "labels": "SAMPLE_VOCAB"}


def check_prompt_fits(P, n_positions, flag):
    """A prompt of P tokens in front must leave the model's context room for at least one token of text.
    `flag` is what the user changes to fix it: --num-virtual-tokens for tune, --prompt/--hard-prompt for eval."""
    if P >= n_positions:
        raise TinyPromptError(f"{flag}: a prompt of {P} tokens leaves no room for text in the model's context of "
                              f"{n_positions} positions (at most {n_positions - 1})")


def init_prompt(method, num_virtual_tokens, wte, tokenizer=None, init_text=None, outputs=None, seed=0):
    """A new prompt [P, C] float32. `tokenizer` is needed by text and labels, `outputs` (the distinct output
    strings of the data) by labels; `seed` drives random and vocab."""
    P, C = num_virtual_tokens, wte.shape[1]
    if P < 1:
        raise TinyPromptError(f"--num-virtual-tokens {P}: must be at least 1")
    rng = np.random.default_rng(seed)
    if method == "random":
        return rng.uniform(-0.5, 0.5, size=(P, C)).astype(np.float32)
    if method == "vocab":
        return sample_vocab(wte, P, rng)
    if method == "text":
        if not init_text:
            raise TinyPromptError("--init text needs a non-empty --init-text")
        ids = tokenizer.encode(init_text)
        # PEFT: cut a long text to P tokens; repeat a short one ceil(P / n) times, then cut
        ids = (ids * math.ceil(P / len(ids)))[:P]
        return np.array(wte[ids], dtype=np.float32)  # [P, C]
    if method == "labels":
        if not outputs:
            raise TinyPromptError("--init labels needs data with outputs (input/output rows)")
        if len(outputs) > P:
            raise TinyPromptError(f"--init labels: {len(outputs)} distinct outputs but only {P} virtual tokens")
        rows = []
        for label in outputs:
            ids = tokenizer.encode(label)
            if not ids:
                raise TinyPromptError(f"--init labels: the output {label!r} has no tokens")
            rows.append(wte[ids].astype(np.float32).mean(axis=0))  # [C], a multi-token label averaged
        return np.concatenate([np.stack(rows), sample_vocab(wte, P - len(rows), rng)]).astype(np.float32)
    raise TinyPromptError(f"--init {method!r}: choose {', '.join(INIT_METHODS)}")


def sample_vocab(wte, n, rng):
    """n rows of wte [V, C] for distinct ids among the FREQUENT_TOKENS lowest (with repeats only if n > 5000)."""
    pool = min(FREQUENT_TOKENS, wte.shape[0])
    ids = rng.choice(pool, size=n, replace=n > pool)
    return np.array(wte[ids], dtype=np.float32).reshape(n, wte.shape[1])  # [n, C]


def adapter_config(prompt, config, base_model_name_or_path="", init="random", init_text=None,
                   tokenizer_name_or_path=None):
    """The adapter_config.json fields PEFT's PromptTuningConfig writes (peft_version left out: PEFT stamps
    its own version when it loads the file). `config` is the model's GPT2Config."""
    if init == "text" and not tokenizer_name_or_path:
        # PEFT refuses a TEXT config without a tokenizer name, so the file would not load there
        raise TinyPromptError("saving a text-initialised prompt needs tokenizer_name_or_path")
    return {
        "auto_mapping": None,
        "base_model_name_or_path": base_model_name_or_path or None,
        "inference_mode": True,  # PEFT then skips its own init (TEXT would fetch a tokenizer) and just loads
        "modules_to_save": None,
        "num_attention_heads": config.n_head,
        "num_layers": config.n_layer,
        "num_transformer_submodules": 1,  # a decoder-only model has one place to prepend the prompt
        "num_virtual_tokens": int(prompt.shape[0]),
        "peft_type": "PROMPT_TUNING",
        "prompt_tuning_init": PEFT_INIT.get(init, "RANDOM"),
        "prompt_tuning_init_text": init_text if init == "text" else None,
        "revision": None,
        "task_type": "CAUSAL_LM",
        "token_dim": int(prompt.shape[1]),
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": tokenizer_name_or_path,
    }


def save_prompt(directory, prompt, config, base_model_name_or_path="", init="random", init_text=None,
                tokenizer_name_or_path=None):
    """Write the adapter directory (created if missing); each file replaced atomically. A prompt that
    load_prompt would refuse (NaN or inf, another width) is refused here, before anything is written."""
    validate.prompt("prompt", prompt, validate.integer("config.n_embd", getattr(config, "n_embd", None)), False)
    with np.errstate(over="ignore"):
        prompt = np.ascontiguousarray(prompt, dtype=np.float32)  # [P, C]
    if not np.isfinite(prompt).all():  # finite as float64, past float32's range in the file
        raise InvalidValue(f"prompt {list(prompt.shape)}: a value overflows float32, the adapter's dtype")
    directory = validate.path("directory", directory)
    for name, value in (("base_model_name_or_path", base_model_name_or_path), ("init_text", init_text),
                        ("tokenizer_name_or_path", tokenizer_name_or_path)):
        validate.text(name, value, optional=True, empty=True)
    validate.choice("init", init, INIT_METHODS)
    fields = adapter_config(prompt, config, base_model_name_or_path, init, init_text, tokenizer_name_or_path)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # metadata format=pt: what torch-side loaders (PEFT, transformers) expect to find in the header
    weights = safetensors.numpy.save({TENSOR_NAME: prompt}, metadata={"format": "pt"})
    atomic_write(directory / WEIGHTS_NAME, weights)
    atomic_write(directory / CONFIG_NAME, (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode())


def atomic_write(path, data):
    """Write bytes to path so that a reader (or a crash) sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the rename makes them visible
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600); give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only way to read the umask is to set it; put it straight back
    os.umask(mask)
    return mask


def load_prompt(directory, n_embd=None):
    """(prompt [P, C] float32, adapter_config dict) from a PEFT prompt-tuning adapter directory; with n_embd,
    the prompt must fit that model. Every problem is a one-line TinyPromptError naming the file."""
    directory = Path(validate.path("directory", directory))
    validate.integer("n_embd", n_embd, low=1, optional=True)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not directory.is_dir():
        raise TinyPromptError(f"{directory}: no such adapter directory")
    if not config_path.is_file():
        raise TinyPromptError(f"{directory}: no {CONFIG_NAME} (not a PEFT adapter directory)")
    try:
        fields = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinyPromptError(f"{config_path}: corrupt JSON ({e})") from None
    if not isinstance(fields, dict) or fields.get("peft_type") != "PROMPT_TUNING":
        kind = fields.get("peft_type") if isinstance(fields, dict) else None
        raise TinyPromptError(f"{config_path}: peft_type {kind!r}, expected 'PROMPT_TUNING'")
    if fields.get("num_transformer_submodules", 1) != 1:
        raise TinyPromptError(f"{config_path}: num_transformer_submodules must be 1 (a decoder-only model)")
    if not weights_path.is_file():
        hint = " (adapter_model.bin is not read: save with safe_serialization=True)" \
            if (directory / "adapter_model.bin").is_file() else ""
        raise TinyPromptError(f"{directory}: no {WEIGHTS_NAME}{hint}")
    tensors = read_safetensors(weights_path)  # F16 / BF16 (PEFT can write them) arrive as float32
    if TENSOR_NAME not in tensors:
        raise TinyPromptError(f"{weights_path}: no tensor {TENSOR_NAME!r} (found {sorted(tensors)})")
    prompt = tensors[TENSOR_NAME]
    P, C = fields.get("num_virtual_tokens"), fields.get("token_dim")
    if prompt.ndim != 2 or prompt.shape != (P, C):
        raise TinyPromptError(f"{weights_path}: {TENSOR_NAME} has shape {prompt.shape}, but {CONFIG_NAME} "
                              f"says num_virtual_tokens={P}, token_dim={C}")
    if n_embd is not None and C != n_embd:
        raise TinyPromptError(f"{directory}: the prompt has token_dim {C} but the model has n_embd {n_embd}"
                              " (it was tuned for another model)")
    prompt = prompt.astype(np.float32)  # a float16 prompt is widened; training and the model run in float32
    if not np.isfinite(prompt).all():
        raise TinyPromptError(f"{weights_path}: {TENSOR_NAME} holds NaN or inf values")
    return prompt, fields


def nearest_tokens(prompt, wte, k=5):
    """For each virtual token, the k vocabulary ids with the highest cosine similarity, and those
    similarities: (ids [P, k], sims [P, k]), best first (Lester et al. section 7)."""
    k = min(k, wte.shape[0])
    p = prompt / np.maximum(np.linalg.norm(prompt, axis=1, keepdims=True), 1e-12)  # [P, C] unit rows
    w_norm = np.sqrt(np.einsum("vc,vc->v", wte, wte, dtype=np.float64))  # [V], no [V, C] temporary
    sims = (p.astype(np.float32) @ wte.T) / np.maximum(w_norm, 1e-12).astype(np.float32)  # [P, V]
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # [P, k] the k best, unordered
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    ids = np.take_along_axis(top, order, axis=1)  # [P, k] best first
    return ids, np.take_along_axis(sims, ids, axis=1)
