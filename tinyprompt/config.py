"""The settings of a tuning run (TrainConfig: `tinyprompt tune`'s flags, one field each) and their checks."""

import math
from dataclasses import dataclass

from .errors import TinyPromptError
from .optim import SCHEDULES
from .prompt import INIT_METHODS

DEFAULT_VIRTUAL_TOKENS = 20  # Lester et al.: 20 tokens already get most of the gain of 100 on T5
OPTIMIZERS = ("adamw", "sgd", "adafactor")
# the lr when --lr is not given. adamw: PEFT's prompt-tuning example. sgd: its step is lr * gradient, and a
# prompt's gradients are small (the loss is spread over P*C numbers), so it needs more than Adam's normalised
# step; 0.1 learns on the toy tasks without overflowing. adafactor: 0.3, what Lester et al. used.
DEFAULT_LR = {"adamw": 0.03, "sgd": 0.1, "adafactor": 0.3}


@dataclass
class TrainConfig:
    model: str = "gpt2"  # hub name, checkpoint folder, or tiny-random
    data: str | list = ""  # training rows: a .jsonl / .csv / .tsv file (data.py) or a list of dicts (api.py)
    out: str = ""  # run directory: the adapter, metrics.json, loss.png, checkpoint.npz, best/
    val_data: str | list | None = None  # validation rows (a file or a list) ...
    val_split: float | None = None  # ... or this fraction of `data` held out (seeded by `seed`)
    labels: str | None = None  # " negative, positive": validation accuracy among these (default: label_words')
    early_stopping: int | None = None  # stop after this many epochs without a better validation metric
    num_virtual_tokens: int | None = None  # P; None = DEFAULT_VIRTUAL_TOKENS, or the init_from adapter's
    init: str = "vocab"  # random | vocab | text | labels (prompt.py); ignored with init_from
    init_text: str | None = None  # the text of init="text"
    init_from: str | None = None  # start from this saved adapter instead
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    epochs: int = 3
    batch_size: int = 8  # rows per micro-batch
    accumulation_steps: int = 1  # micro-batches per optimizer step
    optimizer: str = "adamw"  # adamw | sgd | adafactor (optim.py)
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | linear | cosine, after warmup_steps
    warmup_steps: int = 0
    max_grad_norm: float | None = None  # clip the gradient's L2 norm (None: no clipping)
    seed: int = 0  # batch order, init, validation split
    shuffle: bool = True  # False: file order every epoch
    template: str = "{input}"  # how an input row becomes text (data.py)
    truncate: bool = False  # cut rows longer than the context instead of refusing them
    input_column: str | None = None
    output_column: str | None = None
    text_column: str | None = None
    label_words: str | None = None  # "0= negative,1= positive": map a file's class ids to words
    overwrite: bool = False  # replace a run already in `out`
    resume: bool = False  # continue the run in `out` from its checkpoint
    quiet: bool = False  # no progress bar, no per-epoch lines


def check_config(cfg):
    """Refuse impossible settings before anything is loaded or written."""
    def need(ok, message):
        if not ok:
            raise TinyPromptError(message)
    need(cfg.data, "--data is required")
    need(cfg.out, "--out is required")
    need(cfg.lr is None or (math.isfinite(cfg.lr) and cfg.lr > 0), f"--lr {cfg.lr}: must be a positive number")
    for flag, value in (("epochs", cfg.epochs), ("batch-size", cfg.batch_size),
                        ("accumulation-steps", cfg.accumulation_steps)):
        need(value >= 1, f"--{flag} {value}: must be at least 1")
    P = cfg.num_virtual_tokens
    need(P is None or P >= 1, f"--num-virtual-tokens {P}: must be at least 1")
    need(cfg.warmup_steps >= 0, f"--warmup-steps {cfg.warmup_steps}: must be 0 or more")
    need(math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0, f"--weight-decay {cfg.weight_decay}: must be >= 0")
    need(cfg.max_grad_norm is None or cfg.max_grad_norm > 0, f"--max-grad-norm {cfg.max_grad_norm}: must be > 0")
    need(cfg.optimizer in OPTIMIZERS, f"--optimizer {cfg.optimizer!r}: choose {', '.join(OPTIMIZERS)}")
    need(cfg.lr_schedule in SCHEDULES, f"--lr-schedule {cfg.lr_schedule!r}: choose {', '.join(SCHEDULES)}")
    need(cfg.init in INIT_METHODS, f"--init {cfg.init!r}: choose {', '.join(INIT_METHODS)}")
    need(cfg.init != "text" or cfg.init_from or cfg.init_text, "--init text needs a non-empty --init-text")
    need(cfg.init_text is None or cfg.init == "text", "--init-text is used only with --init text")
    need(not (cfg.val_data and cfg.val_split is not None), "give --val-data or --val-split, not both")
    need(not (cfg.overwrite and cfg.resume), "give --overwrite or --resume, not both")
    need(cfg.early_stopping is None or cfg.early_stopping >= 1, f"--early-stopping {cfg.early_stopping}: must be "
         "at least 1")
    need(cfg.early_stopping is None or cfg.val_data or cfg.val_split is not None,
         "--early-stopping needs validation data: give --val-data or --val-split")
