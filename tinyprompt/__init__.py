"""tinyprompt: soft prompt tuning (Lester et al. 2021) on a pretrained GPT-2, in NumPy with a hand-written
backward pass to the prompt only.

    import tinyprompt as tp
    model, tok = tp.load_model("tiny-pretrained"), tp.load_tokenizer("tiny-pretrained")  # read-only weights
    prompt, metrics = tp.train(tp.TrainConfig(data=rows, out="runs/x"), model, tok)  # rows: a file or dicts
    print(tp.generate(model, tok, "Q: 2 plus 3? A:", prompt))
    logits = model.logits(input_ids, prompt)                    # [B, P+T, V]
    loss, dprompt = model.loss_and_grad(prompt, input_ids, labels)

The functions are documented in api.py; README.md, "Python API", has a complete example.
"""

from .api import (
    TrainConfig,
    evaluate,
    generate,
    load_model,
    load_model_or_fallback,
    load_prompt,
    load_tokenizer,
    save_prompt,
    train,
)
from .errors import InvalidType, InvalidValue, TinyPromptError
from .gpt2 import GPT2

__all__ = ["GPT2", "InvalidType", "InvalidValue", "TinyPromptError", "TrainConfig", "evaluate", "generate",
           "load_model", "load_model_or_fallback", "load_prompt", "load_tokenizer", "save_prompt", "train"]
