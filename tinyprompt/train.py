"""The tuning loop: a frozen GPT-2, a data file, epochs of batches -> a soft prompt [P, C].

    config = TrainConfig(model="tiny-random", data="train.jsonl", out="runs/demo", epochs=3)
    prompt, metrics = train(config)       # `tinyprompt tune` is this call

One optimizer step ("update", what metrics.json calls a step):
    accumulation_steps micro-batches -> (loss_i, dprompt_i) = model.loss_and_grad(prompt, ids_i, labels_i)
    loss, grad = mean(loss_i), mean(dprompt_i)        # a torch loop's `(loss / accumulation_steps).backward()`
    stop if loss or grad is NaN/inf; clip grad to max_grad_norm; prompt -= optimizer(grad, lr_at(step))
The step's loss is recorded before its update (what a torch loop prints); an epoch's train loss is the mean of
its step losses; the validation loss is the mean over every counted token of the validation rows.

After each epoch, in this order: the adapter (PEFT format), metrics.json, loss.png, and last checkpoint.npz,
the commit point (prompt, optimizer state, epochs and steps done, loss history). Every file is written
atomically, so a crash leaves the previous epoch's files or the new ones, never half a file. --resume restarts
at the checkpoint's epoch. Nothing in the loop is random except the batch order, which is a function of
(seed, epoch) alone (data.epoch_order), so there is no generator state to save and a resumed run takes
exactly the steps of an uninterrupted one, bit for bit.
"""

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .data import IGNORE_INDEX, batches, load_data, num_batches, parse_label_words, split_validation
from .errors import TinyPromptError
from .optim import SCHEDULES, clip_grad_norm, lr_at, make_optimizer
from .prompt import INIT_METHODS, init_prompt, load_prompt
from .run import (
    CHECKPOINT,
    METRICS,
    check_out,
    check_resume,
    clean,
    fingerprint,
    lock,
    read_checkpoint,
    save_epoch,
    staging,
    swap_in,
)

DEFAULT_VIRTUAL_TOKENS = 20  # Lester et al.: 20 tokens already get most of the gain of 100 on T5
OPTIMIZERS = ("adamw", "sgd", "adafactor")
# the lr when --lr is not given. adamw: PEFT's prompt-tuning example. sgd: its step is lr * gradient, and a
# prompt's gradients are small (the loss is spread over P*C numbers), so it needs more than Adam's normalised
# step; 0.1 learns on the toy tasks without overflowing. adafactor: 0.3, what Lester et al. used.
DEFAULT_LR = {"adamw": 0.03, "sgd": 0.1, "adafactor": 0.3}


@dataclass
class TrainConfig:
    model: str = "gpt2"  # hub name, checkpoint folder, or tiny-random
    data: str = ""  # training file: .jsonl / .csv / .tsv (data.py)
    out: str = ""  # run directory: the adapter, metrics.json, loss.png, checkpoint.npz
    val_data: str | None = None  # a validation file ...
    val_split: float | None = None  # ... or this fraction of `data` held out (seeded by `seed`)
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


def mean_loss(model, prompt, examples, batch_size, pad_id):
    """The loss over every counted token of `examples` (each batch's mean weighted by its token count)."""
    total = count = 0
    for ids, labels in batches(examples, batch_size, pad_id, shuffle=False):
        n = int((labels != IGNORE_INDEX).sum())  # P >= 1: even a row's first token has a predictor
        total, count = total + model.loss(prompt, ids, labels) * n, count + n
    return total / count


def progress(items, desc, quiet):
    """A tqdm bar on a terminal (tqdm comes with huggingface-hub); the bare iterable otherwise."""
    if quiet or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def optimizer_step(model, prompt, group, opt, cfg, lr, stop):
    """One update of `prompt` (in place) from a group of micro-batches; returns the loss before the update.
    `stop(what, value)` is raised on the first non-finite loss, gradient norm or updated prompt."""
    loss, grad = 0.0, np.zeros_like(prompt)
    for ids, labels in group:
        micro_loss, micro_grad = model.loss_and_grad(prompt, ids, labels)
        loss, grad = loss + micro_loss, grad + micro_grad
    loss, grad = loss / len(group), grad / np.float32(len(group))
    if not math.isfinite(loss):
        raise stop("loss", loss)
    norm = clip_grad_norm(grad, cfg.max_grad_norm) if cfg.max_grad_norm else float(np.linalg.norm(grad))
    if not math.isfinite(norm):
        raise stop("gradient norm", norm)
    opt.step(prompt, grad, lr)
    if not np.isfinite(prompt).all():  # a finite gradient can still overflow float32 through a huge lr
        raise stop("updated prompt", "not finite")
    return loss


MAX_EMBD = 1600  # gpt2-xl's width: --out is checked before the model (and its width) is known


@np.errstate(over="ignore", invalid="ignore")  # a diverging run is caught below, in one line, not in warnings
def train(cfg, model=None, tokenizer=None, on_epoch_end=None):
    """Tune a prompt as `cfg` says; returns (prompt [P, C], metrics). `on_epoch_end(epoch, prompt, metrics)`
    runs after each epoch's files are written (the tests interrupt a run there)."""
    check_config(cfg)
    if cfg.lr is None:
        cfg = replace(cfg, lr=DEFAULT_LR[cfg.optimizer])
    out = Path(cfg.out)
    target = check_out(cfg, (cfg.num_virtual_tokens or DEFAULT_VIRTUAL_TOKENS) * MAX_EMBD * 4)
    with lock(out):
        clean(target, out)
        try:
            return _train(cfg, out, target, model, tokenizer, on_epoch_end)
        finally:
            shutil.rmtree(staging(out), ignore_errors=True)  # an --overwrite that failed before its first save


def _train(cfg, out, target, model, tokenizer, on_epoch_end):
    if model is None:
        from .api import load_model

        model = load_model(cfg.model)
    if tokenizer is None:
        from .api import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
    state = read_checkpoint(out / CHECKPOINT, model.config.n_embd) if cfg.resume else None
    # P first: how much context is left for the rows depends on it
    start, init, init_text = None, cfg.init, cfg.init_text
    if state is not None:
        start, init, init_text = state["prompt"], state["config"]["init"], state["config"]["init_text"]
    elif cfg.init_from:
        start, init = load_prompt(cfg.init_from, model.config.n_embd)[0], f"from {cfg.init_from}"
    P = cfg.num_virtual_tokens or (DEFAULT_VIRTUAL_TOKENS if start is None else start.shape[0])
    if start is not None and start.shape[0] != P:
        raise TinyPromptError(f"--num-virtual-tokens {P}, but the prompt to start from has {start.shape[0]}")
    cfg = replace(cfg, num_virtual_tokens=P, init=init, init_text=init_text)

    max_length = model.config.n_positions - P
    data_args = {"template": cfg.template, "max_length": max_length, "truncate": cfg.truncate,
                 "input_column": cfg.input_column, "output_column": cfg.output_column, "text_column": cfg.text_column,
                 "label_words": parse_label_words(cfg.label_words) if cfg.label_words else None}
    data = load_data(cfg.data, tokenizer, **data_args)
    train_rows, val_rows = data.examples, []
    if cfg.val_data:
        val_rows = load_data(cfg.val_data, tokenizer, **data_args).examples
    elif cfg.val_split is not None:
        train_rows, val_rows = split_validation(train_rows, cfg.val_split, cfg.seed)
    data_hash = fingerprint(train_rows, val_rows)
    if state is not None:
        check_resume(cfg, state, data_hash)
    if start is None:
        start = init_prompt(init, P, model.wte, tokenizer, cfg.init_text, data.outputs(), cfg.seed)
    prompt = np.array(start, dtype=np.float32)  # [P, C], the only array that learns

    opt = make_optimizer(cfg.optimizer, cfg.weight_decay)
    history = {"step_losses": [], "epoch_losses": [], "val_losses": [], "epoch_seconds": []}
    first_epoch, step = 0, 0
    if state is not None:
        opt.load_state_dict({k[len("optim."):]: v for k, v in state.items() if k.startswith("optim.")})
        first_epoch, step = state["epoch"], state["step"]
        history = {k: state[k].tolist() for k in history}
    micro = num_batches(len(train_rows), cfg.batch_size)
    steps_per_epoch = num_batches(micro, cfg.accumulation_steps)
    total_steps = cfg.epochs * steps_per_epoch
    pad_id = tokenizer.eos_id  # GPT-2 has no pad token; padded positions are never targets anyway
    say = (lambda *a: None) if cfg.quiet else print
    say(f"tune: {len(train_rows)} train rows, {len(val_rows)} validation rows ({data.kind}); P={P} virtual "
        f"tokens (init {init}); {cfg.epochs} epochs x {steps_per_epoch} steps; {cfg.optimizer} lr {cfg.lr}")
    if data.truncated_rows:
        say(f"--truncate: cut {data.truncated_rows} rows by {data.truncated_tokens} tokens in all to fit "
            f"{max_length} tokens; dropped {data.dropped_rows} rows left with nothing to learn")
    if first_epoch:
        say(f"resuming after epoch {first_epoch} (step {step}) from {out / CHECKPOINT}")
    info = {"init": init, "model": {"name_or_path": cfg.model, **asdict(model.config)},
            "data": {"kind": data.kind, "train_rows": len(train_rows), "val_rows": len(val_rows),
                     "train_target_tokens": sum(sum(t != IGNORE_INDEX for t in e.labels) for e in train_rows),
                     "max_length": max_length, "truncated_rows": data.truncated_rows,
                     "truncated_tokens": data.truncated_tokens, "dropped_rows": data.dropped_rows}}

    def stop(what, value):
        epoch = len(history["epoch_losses"])
        kept = f"the prompt of epoch {epoch} is kept in {out}" if epoch else "no prompt was saved"
        return TinyPromptError(f"step {step + 1} (epoch {epoch + 1}): the {what} is {value}; stopped, {kept}. "
                               "Try a smaller --lr or --max-grad-norm")

    metrics = None
    try:
        for epoch in range(first_epoch, cfg.epochs):
            t0 = time.perf_counter()
            epoch_batches = list(batches(train_rows, cfg.batch_size, pad_id, cfg.seed, epoch, cfg.shuffle))
            groups = [epoch_batches[i : i + cfg.accumulation_steps]
                      for i in range(0, len(epoch_batches), cfg.accumulation_steps)]
            losses = []
            bar = progress(groups, f"epoch {epoch + 1}/{cfg.epochs}", cfg.quiet)
            for group in bar:
                lr = lr_at(step, cfg.lr, cfg.lr_schedule, cfg.warmup_steps, total_steps)
                loss = optimizer_step(model, prompt, group, opt, cfg, lr, stop)
                step += 1
                losses.append(loss)
                history["step_losses"].append(loss)
                if bar is not groups:
                    bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
            if val_rows:  # before the epoch counts as done: a non-finite one stops the run unsaved
                val_loss = mean_loss(model, prompt, val_rows, cfg.batch_size, pad_id)
                if not math.isfinite(val_loss):
                    raise stop("validation loss", val_loss)
                history["val_losses"].append(val_loss)
            history["epoch_losses"].append(float(np.mean(losses)))
            history["epoch_seconds"].append(time.perf_counter() - t0)
            val = f"  val loss {history['val_losses'][-1]:.4f}" if val_rows else ""
            say(f"epoch {epoch + 1}/{cfg.epochs}  train loss {history['epoch_losses'][-1]:.4f}{val}  "
                f"{history['epoch_seconds'][-1]:.1f}s")

            seconds = sum(history["epoch_seconds"])
            metrics = {"config": asdict(cfg), **info, "epochs_done": epoch + 1, "steps_done": step,
                       "steps_per_epoch": steps_per_epoch, **{k: history[k] for k in history if k != "epoch_seconds"},
                       "timings": {"epoch_seconds": history["epoch_seconds"], "total_seconds": seconds,
                                   "seconds_per_step": seconds / step}}
            save_epoch(target, cfg, model, prompt, opt, metrics, history, data_hash, steps_per_epoch)
            if target != out:  # --overwrite: the new run has its first save, only now may the old one go
                swap_in(target, out)
                target = out
            if on_epoch_end is not None:
                on_epoch_end(epoch, prompt, metrics)
    except KeyboardInterrupt:
        done = len(history["epoch_losses"])
        print(f"stopped in epoch {done + 1}: {out} holds epoch {done}; continue with the same command and "
              "--resume", file=sys.stderr)
        raise
    if metrics is None:
        say(f"{out}: the run already has its {cfg.epochs} epochs")
        metrics = json.loads((out / METRICS).read_text())
    return prompt, metrics
