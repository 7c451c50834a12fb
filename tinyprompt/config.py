"""The settings of a tuning run (TrainConfig: `tinyprompt tune`'s flags, one field each) and their checks."""

from dataclasses import dataclass, replace

from . import validate
from .data import check_template, parse_label_words
from .errors import InvalidValue
from .evaluate import parse_labels
from .optim import SCHEDULES
from .prompt import INIT_METHODS
from .run import MAX_EPOCHS

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
    """Refuse impossible settings before anything is loaded or written (validate.py, shared with the API);
    -> cfg with every value in its plain form (paths as str, NumPy numbers as int or float)."""
    def need(ok, message):
        if not ok:
            raise InvalidValue(message)
    v = validate
    need(not isinstance(cfg.data, (str, list)) or cfg.data, "--data is required")
    need(not isinstance(cfg.out, str) or cfg.out, "--out is required")
    P = v.integer("--num-virtual-tokens", cfg.num_virtual_tokens, low=1, optional=True)
    plain = {"model": v.path("--model", cfg.model), "data": v.rows_or_path("--data", cfg.data),
             "out": v.path("--out", cfg.out), "val_data": v.rows_or_path("--val-data", cfg.val_data, optional=True),
             "init_from": v.path("--init-from", cfg.init_from, optional=True), "num_virtual_tokens": P,
             "lr": v.number("--lr", cfg.lr, lambda x: x > 0, "a positive number", optional=True),
             "epochs": v.integer("--epochs", cfg.epochs, low=1, high=MAX_EPOCHS),
             "batch_size": v.integer("--batch-size", cfg.batch_size, low=1),
             "accumulation_steps": v.integer("--accumulation-steps", cfg.accumulation_steps, low=1),
             "warmup_steps": v.integer("--warmup-steps", cfg.warmup_steps, low=0),
             "early_stopping": v.integer("--early-stopping", cfg.early_stopping, low=1, optional=True),
             "seed": v.integer("--seed", cfg.seed, low=0),
             "weight_decay": v.number("--weight-decay", cfg.weight_decay, lambda x: x >= 0, ">= 0"),
             "max_grad_norm": v.number("--max-grad-norm", cfg.max_grad_norm, lambda x: x > 0, "> 0", optional=True),
             "val_split": v.number("--val-split", cfg.val_split, lambda x: 0 < x < 1, "between 0 and 1",
                                   optional=True)}
    for name in ("shuffle", "truncate", "overwrite", "resume", "quiet"):
        v.flag(f"--{name}", getattr(cfg, name))
    for name in ("init_text", "labels", "input_column", "output_column", "text_column", "label_words"):
        v.text(f"--{name.replace('_', '-')}", getattr(cfg, name), optional=True)
    v.choice("--optimizer", v.text("--optimizer", cfg.optimizer), OPTIMIZERS)
    v.choice("--lr-schedule", v.text("--lr-schedule", cfg.lr_schedule), SCHEDULES)
    v.choice("--init", v.text("--init", cfg.init), INIT_METHODS)
    check_template(v.text("--template", cfg.template, empty=True))
    need(cfg.init != "text" or cfg.init_from or cfg.init_text, "--init text needs a non-empty --init-text")
    need(cfg.init_text is None or cfg.init == "text", "--init-text is used only with --init text")
    need(not (cfg.val_data and cfg.val_split is not None), "give --val-data or --val-split, not both")
    need(not (cfg.overwrite and cfg.resume), "give --overwrite or --resume, not both")
    validation = cfg.val_data or cfg.val_split is not None
    need(cfg.early_stopping is None or validation, "--early-stopping needs validation data: give --val-data or "
         "--val-split")
    if cfg.label_words:
        parse_label_words(cfg.label_words)
    if validation:  # the validation labels (two at least, none empty), before any file is written
        parse_labels(cfg.labels, cfg.label_words)
    return replace(cfg, **plain)
