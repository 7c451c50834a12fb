"""The Python API: what the `tinyprompt` command does, as functions (re-exported by `import tinyprompt`).

    import tinyprompt as tp
    model, tok = tp.load_model("tiny-pretrained"), tp.load_tokenizer("tiny-pretrained")
    prompt, metrics = tp.train(tp.TrainConfig(data=rows, out="runs/x"), model, tok)  # prompt: [P, C]
    tp.generate(model, tok, "The movie was", prompt)                                  # text in, text out
    tp.evaluate(model, tok, dev_rows, prompt, labels=[" negative", " positive"])     # {"loss", ...}

Models are named as on the command line: a local folder, "tiny-pretrained", "tiny-random", or a hub name
("gpt2" = "openai-community/gpt2", found in or downloaded to the Hugging Face cache; see hub.py).
Size letters: P virtual tokens, C channels, V vocabulary, T text tokens.
"""

import numpy as np

from .data import Dataset, apply_label_words, load_data, tokenize
from .errors import TinyPromptError
from .evaluate import evaluate as evaluate_examples
from .generate import generate as generate_ids
from .gpt2 import GPT2
from .hub import find_weights
from .tokenizer import Tokenizer
from .tokenizer import load_tokenizer as _tokenizer_of_folder
from .weights import load_params


def load_model(name_or_path="gpt2", dtype=np.float32) -> GPT2:
    """A frozen GPT-2 by hub name ("gpt2", "distilgpt2", "org/name"), local folder, "tiny-pretrained" or
    "tiny-random". float32 weights are used in place (a read-only memory map); another dtype makes a copy.
    `model.logits(input_ids [B, T], prompt [P, C])` -> [B, P+T, V]."""
    config, params = load_params(find_weights(name_or_path))
    model = GPT2(config, params, str(name_or_path))
    return model if model.dtype == dtype else model.astype(dtype)


def load_model_or_fallback(name_or_path="gpt2") -> GPT2:
    """`load_model`, or -- when that checkpoint cannot be had (no network, empty cache) -- tiny-pretrained,
    saying so in one line. For demos and lessons only: the CLI's tune/eval refuse to fall back silently."""
    try:
        return load_model(name_or_path)
    except TinyPromptError as e:
        print(f"falling back to tiny-pretrained (a small GPT-2 pretrained by this project): {e}", flush=True)
        return load_model("tiny-pretrained")


def load_tokenizer(name_or_path=None) -> Tokenizer:
    """The tokenizer of a model (its folder's tokenizer.json), else the bundled GPT-2 one. Never downloads:
    a hub model that is not in the cache gets the bundled tokenizer, which every GPT-2 size shares."""
    folder = None
    if name_or_path is not None:
        try:
            folder = find_weights(name_or_path, local_files_only=True)
        except TinyPromptError:  # not on this machine: load_model will say so, if it is ever asked for
            pass
    return _tokenizer_of_folder(folder)


def generate(model: GPT2, tokenizer: Tokenizer, text: str, prompt=None, **sampling) -> str:
    """The continuation of `text` (without `text` itself) after the soft prompt [P, C] or none.
    `sampling`: max_new_tokens=50, temperature=0.0 (greedy), top_k, top_p, repetition_penalty, seed."""
    new = generate_ids(model, tokenizer.encode(text), prompt, eos_id=tokenizer.eos_id, **sampling)
    return tokenizer.decode(new)


def evaluate(model: GPT2, tokenizer: Tokenizer, data, prompt=None, labels=None, template="{input}",
             batch_size=8) -> dict:
    """{"loss", "exact_match", "accuracy"} of a soft prompt [P, C] (or none) on `data`: a .jsonl/.csv/.tsv
    file, or a list of {"input", "output"} (or {"text"}) dicts. `labels` (e.g. [" negative", " positive"])
    turn on rank classification; a metric that does not apply is None."""
    P = 0 if prompt is None else len(prompt)
    examples = load_examples(data, tokenizer, template=template, max_length=model.config.n_positions - P).examples
    return evaluate_examples(model, prompt, examples, tokenizer, labels, batch_size)


def load_examples(data, tokenizer, name="data", label_words=None, **options) -> Dataset:
    """`data` as token ids + labels: a file (data.load_data, which takes `options`), or a list of
    {"input", "output"} or {"text"} dicts (template, max_length and truncate apply; `name` is what messages
    call it)."""
    if not isinstance(data, list):
        return load_data(data, tokenizer, label_words=label_words, **options)
    if not data or not all(isinstance(row, dict) for row in data):
        raise TinyPromptError(f"{name}: expected a non-empty list of dicts, or a file")
    kind = "pairs" if "input" in data[0] else "text"
    for i, row in enumerate(data, 1):
        for key in ("input", "output") if kind == "pairs" else ("text",):
            if not isinstance(row.get(key), str):
                raise TinyPromptError(f"{name}:{i}: {key!r} must be a string, got {type(row.get(key)).__name__}")
    columns = [k for k in ("input_column", "output_column", "text_column") if options.get(k)]
    if columns:
        raise TinyPromptError(f"{name}: {columns[0]} is for files; a list's keys are input/output or text")
    rows = [(i, dict(row)) for i, row in enumerate(data, 1)]  # copies: the label words replace outputs in place
    if label_words:
        rows = apply_label_words(rows, kind, label_words, name)
    keep = {k: options[k] for k in ("template", "max_length", "truncate") if k in options}
    return tokenize(rows, kind, tokenizer, path=name, **keep)
