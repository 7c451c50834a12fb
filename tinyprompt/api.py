"""The Python API: what the `tinyprompt` command does, as functions (re-exported by `import tinyprompt`).

    import tinyprompt as tp
    model, tok = tp.load_model("tiny-pretrained"), tp.load_tokenizer("tiny-pretrained")
    prompt, metrics = tp.train(tp.TrainConfig(data=rows, out="runs/x"), model, tok)  # prompt: [P, C]
    tp.generate(model, tok, "The movie was", prompt)                                  # text in, text out
    tp.evaluate(model, tok, dev_rows, prompt, labels=[" negative", " positive"])     # {"loss", ...}

Models are named as on the command line: a local folder, "tiny-pretrained", "tiny-random", or a hub name
("gpt2" = "openai-community/gpt2", found in or downloaded to the Hugging Face cache; see hub.py).
Size letters: P virtual tokens, C channels, V vocabulary, T text tokens.

This module is the package's face: it sits above every other module and none imports it. Each function checks
its arguments as the command line checks its flags (validate.py, shared by both): a wrong argument is one
TinyPromptError (an InvalidType, also a TypeError, or an InvalidValue, also a ValueError) naming it and its value.
"""

from . import validate
from .config import TrainConfig
from .data import load_examples
from .errors import InvalidType, TinyPromptError
from .evaluate import check_labels
from .evaluate import evaluate as evaluate_examples
from .generate import generate as generate_ids
from .gpt2 import GPT2
from .hub import load_model, load_tokenizer
from .prompt import load_prompt, save_prompt
from .tokenizer import Tokenizer
from .train import train as tune

__all__ = ["TrainConfig", "evaluate", "generate", "load_model", "load_model_or_fallback", "load_prompt",
           "load_tokenizer", "save_prompt", "train"]


def load_model_or_fallback(name_or_path="gpt2") -> GPT2:
    """`load_model`, or -- when that checkpoint cannot be had (no network, empty cache) -- tiny-pretrained,
    saying so in one line. For demos and lessons only: the CLI's tune/eval refuse to fall back silently."""
    try:
        return load_model(name_or_path)
    except TinyPromptError as e:
        print(f"falling back to tiny-pretrained (a small GPT-2 pretrained by this project): {e}", flush=True)
        return load_model("tiny-pretrained")


def check_model(model, tokenizer):
    validate.instance("model", model, GPT2, "tp.load_model")
    validate.instance("tokenizer", tokenizer, Tokenizer, "tp.load_tokenizer")


def generate(model: GPT2, tokenizer: Tokenizer, text: str, prompt=None, max_new_tokens=50, temperature=0.0,
             top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0) -> str:
    """The continuation of `text` (without `text` itself) after the soft prompt [P, C] or none: greedy when
    temperature == 0, else sampled (top_k 0 = all tokens; repetition_penalty > 1 avoids repeats)."""
    check_model(model, tokenizer)
    new = generate_ids(model, tokenizer.encode(validate.text("text", text, empty=True)), prompt, max_new_tokens,
                       temperature, top_k, top_p, repetition_penalty, tokenizer.eos_id, seed)
    return tokenizer.decode(new)


def evaluate(model: GPT2, tokenizer: Tokenizer, data, prompt=None, labels=None, template="{input}",
             batch_size=8) -> dict:
    """{"loss", "exact_match", "accuracy"} of a soft prompt [P, C] (or none) on `data`: a .jsonl/.csv/.tsv
    file, or a list of {"input", "output"} (or {"text"}) dicts. `labels` (e.g. [" negative", " positive"])
    turn on rank classification; a metric that does not apply is None."""
    check_model(model, tokenizer)
    validate.prompt("prompt", prompt, model.config.n_embd)
    labels = None if labels is None else check_labels(labels)
    batch_size = validate.integer("batch_size", batch_size, low=1)
    validate.rows_or_path("data", data)
    P = 0 if prompt is None else len(prompt)
    data = load_examples(data, tokenizer, template=validate.text("template", template, empty=True),
                         max_length=model.config.n_positions - P)
    if labels and data.kind != "pairs":
        raise TinyPromptError(f"{data.path}: labels need input/output rows, not text rows")
    return evaluate_examples(model, prompt, data.examples, tokenizer, labels, batch_size, quiet=True)


def train(config: TrainConfig, model: GPT2 = None, tokenizer: Tokenizer = None, on_epoch_end=None):
    """Tune a soft prompt as `config` says (`tinyprompt tune`'s flags, one field each); -> (prompt [P, C],
    metrics). `model` and `tokenizer` default to config.model's; `on_epoch_end(epoch, prompt, metrics)` runs after
    each epoch's files are saved in config.out. A run that fails before its first save leaves no folder behind."""
    validate.instance("config", config, TrainConfig, "tp.TrainConfig(data=..., out=...)")
    validate.instance("model", model, GPT2, "tp.load_model, or None: config.model's", optional=True)
    validate.instance("tokenizer", tokenizer, Tokenizer, "tp.load_tokenizer, or None: config.model's", optional=True)
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise InvalidType(f"on_epoch_end {validate.shown(on_epoch_end)}: must be a function or None")
    return tune(config, model, tokenizer, on_epoch_end)
