"""tinyprompt: soft prompt tuning (Lester et al. 2021) on a pretrained GPT-2, in NumPy with a hand-written
backward pass to the prompt only.

    model = tinyprompt.load_model("gpt2")                  # read-only, memory-mapped weights
    logits = model.logits(input_ids, prompt)               # [B, P+T, V]
    loss, dprompt = model.loss_and_grad(prompt, input_ids, labels)
"""

from .errors import TinyPromptError
from .gpt2 import GPT2, load_model, load_model_or_fallback
from .tokenizer import load_tokenizer

__all__ = ["GPT2", "TinyPromptError", "load_model", "load_model_or_fallback", "load_tokenizer"]
