"""The tuning loop: a frozen GPT-2, training rows, epochs of batches -> a soft prompt [P, C].

    config = TrainConfig(model="tiny-random", data="train.jsonl", out="runs/demo", epochs=3)
    prompt, metrics = train(config)       # `tinyprompt tune` is this call; data= may also be a list of dicts

A run is three steps, each a function below: prepare (the data, the starting prompt, the optimizer, and the
validation of epoch 0), one optimizer step, repeated, and end_epoch (validate, keep the best prompt, save).

One optimizer step ("update", what metrics.json calls a step):
    accumulation_steps micro-batches -> (loss_i, dprompt_i) = model.loss_and_grad(prompt, ids_i, labels_i)
    loss, grad = mean(loss_i), mean(dprompt_i)        # a torch loop's `(loss / accumulation_steps).backward()`
    stop if loss or grad is NaN/inf; clip grad to max_grad_norm; prompt -= optimizer(grad, lr_at(step))
The step's loss is recorded before its update (what a torch loop prints); an epoch's train loss is the mean of
its step losses; the validation loss is the mean over every counted token of the validation rows.

Validation (--val-data or --val-split) runs before the first update (epoch 0) and after each epoch: the loss, and
the accuracy of rank classification among the labels (--labels, or the --label-words words), else exact match
(pair rows). The best epoch has the highest accuracy (exact match), the lower loss breaking ties, or the lowest
loss for text rows; its prompt is kept in best/, and --early-stopping N ends the run N epochs after it.

After each epoch, in this order: the adapter (PEFT format), best/, metrics.json, loss.png, and last
checkpoint.npz, the commit point (prompt, best prompt, optimizer state, epochs and steps done, the history).
Every file is written atomically, so a crash leaves the previous epoch's files or the new ones, never half a
file. --resume restarts at the checkpoint's epoch. Nothing in the loop is random except the batch order, which
is a function of (seed, epoch) alone (data.epoch_order), so there is no generator state to save and a resumed
run takes exactly the steps of an uninterrupted one, bit for bit.
"""

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .config import DEFAULT_LR, DEFAULT_VIRTUAL_TOKENS, TrainConfig, check_config
from .data import IGNORE_INDEX, batches, load_examples, num_batches, parse_label_words, split_validation
from .errors import TinyPromptError
from .evaluate import evaluate, parse_labels, progress
from .hub import load_model, load_tokenizer
from .optim import clip_grad_norm, lr_at, make_optimizer
from .prompt import check_prompt_fits, init_prompt, load_prompt
from .run import (
    CHECKPOINT,
    HISTORY,
    METRICS,
    check_out,
    check_resume,
    clean,
    epochs_since_best,
    fingerprint,
    lock,
    read_checkpoint,
    save_epoch,
    staging,
    swap_in,
    tidy_on_failure,
)


def mean_loss(model, prompt, examples, batch_size, pad_id):
    """The loss over every counted token of `examples` (each batch's mean weighted by its token count)."""
    total = count = 0
    for ids, labels in batches(examples, batch_size, pad_id, shuffle=False):
        n = int((labels != IGNORE_INDEX).sum())  # P >= 1: even a row's first token has a predictor
        total, count = total + model.loss(prompt, ids, labels) * n, count + n
    return total / count


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
    runs after each epoch's files are written (the tests interrupt a run there). A run that fails before its
    first save leaves no folder behind that it made."""
    cfg = check_config(cfg)
    if cfg.lr is None:
        cfg = replace(cfg, lr=DEFAULT_LR[cfg.optimizer])
    out = Path(cfg.out)
    with tidy_on_failure(out):
        target = check_out(cfg, (cfg.num_virtual_tokens or DEFAULT_VIRTUAL_TOKENS) * MAX_EMBD * 4)
        with lock(out):
            clean(target, out)
            try:
                return _train(cfg, out, target, model, tokenizer, on_epoch_end)
            finally:
                shutil.rmtree(staging(out), ignore_errors=True)  # an --overwrite that failed before its first save


@dataclass
class Run:
    """One run, set up by prepare(); the loop changes prompt, opt, step, history, best, target and metrics."""
    cfg: TrainConfig
    out: Path  # the run directory
    target: Path  # where the files go: `out`, or out.new/ until the first save of an --overwrite
    model: object  # the frozen GPT2
    tokenizer: object
    train_rows: list  # [Example]
    val_rows: list  # [Example], [] without validation
    labels: list | None  # rank-classification labels of the validation rows
    metric: str | None  # what picks the best epoch: "accuracy", "exact_match", "loss"; None without validation
    prompt: np.ndarray  # [P, C], the only array that learns
    best: np.ndarray | None  # [P, C], the prompt of the best validation epoch so far
    opt: object
    history: dict  # run.HISTORY's lists; val_start holds epoch 0's validation loss (and score)
    step: int  # updates done
    first_epoch: int
    steps_per_epoch: int
    info: dict  # what metrics.json says about the model and the data
    data_hash: str
    metrics: dict | None = None  # of the last epoch saved by this call


def _train(cfg, out, target, model, tokenizer, on_epoch_end):
    model = load_model(cfg.model) if model is None else model
    tokenizer = load_tokenizer(cfg.model) if tokenizer is None else tokenizer
    run = prepare(cfg, out, target, model, tokenizer)
    try:
        for epoch in range(run.first_epoch, run.cfg.epochs):
            if stopped_early(run):
                break
            t0 = time.perf_counter()
            losses = train_epoch(run, epoch)
            end_epoch(run, losses, t0)
            if on_epoch_end is not None:
                on_epoch_end(epoch, run.prompt, run.metrics)
    except KeyboardInterrupt:
        done = len(run.history["epoch_losses"])
        kept = f"{out} holds epoch {done}; continue with the same command and --resume" if done else "nothing was saved"
        print(f"stopped in epoch {done + 1}: {kept}", file=sys.stderr)
        raise
    done, early = len(run.history["epoch_losses"]), stopped_early(run)
    if run.metrics is None:  # nothing left to do
        say(run, f"{out}: the run already has its {done} epochs" + " (it stopped early)" * early)
        run.metrics = json.loads((out / METRICS).read_text())
    elif early:  # not `say`: the run is shorter than asked, --quiet or not
        print(f"stopped early after epoch {done}/{cfg.epochs}: no better validation {run.metric.replace('_', ' ')} "
              f"for {cfg.early_stopping} epochs; the best is epoch {run.metrics['validation']['best_epoch']}, "
              f"in {out / 'best'}")
    return run.prompt, run.metrics


def say(run, text):
    if not run.cfg.quiet:
        print(text)


def load_rows(cfg, tokenizer, max_length):
    """(the training Dataset, train rows, validation rows, the validation rows' kind)."""
    data_args = {"template": cfg.template, "max_length": max_length, "truncate": cfg.truncate,
                 "input_column": cfg.input_column, "output_column": cfg.output_column, "text_column": cfg.text_column,
                 "label_words": parse_label_words(cfg.label_words) if cfg.label_words else None}
    data = load_examples(cfg.data, tokenizer, "data", **data_args)
    if cfg.val_data:
        val = load_examples(cfg.val_data, tokenizer, "val_data", **data_args)
        return data, data.examples, val.examples, val.kind
    if cfg.val_split is not None:
        return data, *split_validation(data.examples, cfg.val_split, cfg.seed), data.kind
    return data, data.examples, [], None


def described(data):
    """What metrics.json and the checkpoint say about `data`: a path as it is, a list of rows in a few words."""
    return f"(a list of {len(data)} rows)" if isinstance(data, list) else data


def starting_prompt(cfg, state, model):
    """(the prompt to start from [P, C], or None for a fresh init; cfg with P and the init filled in). P comes
    first: how much context is left for the rows depends on it."""
    start, init, init_text = None, cfg.init, cfg.init_text
    if state is not None:
        start, init, init_text = state["prompt"], state["config"]["init"], state["config"]["init_text"]
    elif cfg.init_from:
        start, init = load_prompt(cfg.init_from, model.config.n_embd)[0], f"from {cfg.init_from}"
    P = cfg.num_virtual_tokens or (DEFAULT_VIRTUAL_TOKENS if start is None else start.shape[0])
    if start is not None and start.shape[0] != P:
        raise TinyPromptError(f"--num-virtual-tokens {P}, but the prompt to start from has {start.shape[0]}")
    return start, replace(cfg, num_virtual_tokens=P, init=init, init_text=init_text)


def data_stats(data, train_rows, val_rows, max_length):
    """metrics.json's "data": the rows, the tokens that count, what --truncate cut."""
    return {"kind": data.kind, "train_rows": len(train_rows), "val_rows": len(val_rows),
            "train_target_tokens": sum(sum(t != IGNORE_INDEX for t in e.labels) for e in train_rows),
            "max_length": max_length, "truncated_rows": data.truncated_rows,
            "truncated_tokens": data.truncated_tokens, "dropped_rows": data.dropped_rows}


def prepare(cfg, out, target, model, tokenizer):
    """The run before its first update: the starting prompt (or the checkpoint's state, on --resume), the data,
    the optimizer, and on a new run the validation of epoch 0."""
    state = read_checkpoint(out / CHECKPOINT, model.config.n_embd) if cfg.resume else None
    start, cfg = starting_prompt(cfg, state, model)
    P, max_length = cfg.num_virtual_tokens, model.config.n_positions - cfg.num_virtual_tokens
    check_prompt_fits(P, model.config.n_positions, "--num-virtual-tokens")
    data, train_rows, val_rows, val_kind = load_rows(cfg, tokenizer, max_length)
    labels = parse_labels(cfg.labels, cfg.label_words) if val_rows else None
    if labels and val_kind != "pairs":
        raise TinyPromptError("--labels needs validation data of input/output rows, not text rows")
    cfg = replace(cfg, data=described(cfg.data), val_data=described(cfg.val_data))
    data_hash = fingerprint(train_rows, val_rows)
    if state is not None:
        check_resume(cfg, state, data_hash)
    if start is None:
        start = init_prompt(cfg.init, P, model.wte, tokenizer, cfg.init_text, data.outputs(), cfg.seed)
    prompt = np.array(start, dtype=np.float32)  # [P, C]
    opt = make_optimizer(cfg.optimizer, cfg.weight_decay)
    history = {k: [] for k in HISTORY}
    first_epoch, step, best = 0, 0, None
    if state is not None:
        opt.load_state_dict({k[len("optim."):]: v for k, v in state.items() if k.startswith("optim.")})
        first_epoch, step, best = state["epoch"], state["step"], state.get("best_prompt")
        history = {k: state[k].tolist() for k in history}
    steps_per_epoch = num_batches(num_batches(len(train_rows), cfg.batch_size), cfg.accumulation_steps)
    metric = None if not val_rows else "accuracy" if labels else "exact_match" if val_kind == "pairs" else "loss"
    info = {"init": cfg.init, "model": {"name_or_path": cfg.model, **asdict(model.config)},
            "data": data_stats(data, train_rows, val_rows, max_length)}
    run = Run(cfg, out, target, model, tokenizer, train_rows, val_rows, labels, metric, prompt, best, opt, history,
              step, first_epoch, steps_per_epoch, info, data_hash)
    say(run, f"tune: {len(train_rows)} train rows, {len(val_rows)} validation rows ({data.kind}); P={P} virtual "
             f"tokens (init {cfg.init}); {cfg.epochs} epochs x {steps_per_epoch} steps; {cfg.optimizer} lr {cfg.lr}")
    if data.truncated_rows:
        unread = f" ({data.unread_rows} so long that their ends were never read)" if data.unread_rows else ""
        say(run, f"--truncate: cut {data.truncated_rows} rows{unread} by {data.truncated_tokens} tokens in all to "
                 f"fit {max_length} tokens; dropped {data.dropped_rows} rows left with nothing to learn")
    if first_epoch:
        say(run, f"resuming after epoch {first_epoch} (step {step}) from {out / CHECKPOINT}")
    elif val_rows:  # epoch 0: where the prompt starts, the first point of every validation curve
        run.history["val_start"], run.best = validate(run), prompt.copy()
        say(run, f"epoch 0/{cfg.epochs}{val_text(run, *run.history['val_start'])}")
    return run


def diverged(run, what, value):
    """The error that stops a run at a non-finite number: where, and which epoch's prompt is on disk."""
    epoch = len(run.history["epoch_losses"])
    kept = f"the prompt of epoch {epoch} is kept in {run.out}" if epoch else "no prompt was saved"
    return TinyPromptError(f"step {run.step + 1} (epoch {epoch + 1}): the {what} is {value}; stopped, {kept}. "
                           "Try a smaller --lr or --max-grad-norm")


def train_epoch(run, epoch):
    """The updates of one epoch (a progress bar on a terminal); -> their losses."""
    cfg = run.cfg
    micro = list(batches(run.train_rows, cfg.batch_size, run.tokenizer.eos_id, cfg.seed, epoch, cfg.shuffle))
    groups = [micro[i : i + cfg.accumulation_steps] for i in range(0, len(micro), cfg.accumulation_steps)]
    losses = []
    bar = progress(groups, f"epoch {epoch + 1}/{cfg.epochs}", cfg.quiet, unit="step")
    for group in bar:
        losses.append(train_step(run, group))
        if bar is not groups:
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
    return losses


def train_step(run, group):
    """One optimizer step on a group of micro-batches (the update is in place); -> its loss."""
    cfg = run.cfg
    lr = lr_at(run.step, cfg.lr, cfg.lr_schedule, cfg.warmup_steps, cfg.epochs * run.steps_per_epoch)
    loss = optimizer_step(run.model, run.prompt, group, run.opt, cfg, lr, lambda *what: diverged(run, *what))
    run.step += 1
    run.history["step_losses"].append(loss)
    return loss


def validate(run):
    """[loss] of the prompt on the validation rows, and its score (accuracy, exact match) unless the metric is
    the loss. A non-finite loss stops the run before the epoch is saved."""
    cfg = run.cfg
    result = evaluate(run.model, run.prompt, run.val_rows, run.tokenizer, run.labels, cfg.batch_size, cfg.quiet)
    if not math.isfinite(result["loss"]):
        raise diverged(run, "validation loss", result["loss"])
    return [float(result["loss"])] + ([] if run.metric == "loss" else [float(result[run.metric])])


def val_text(run, loss, score=None):
    """The validation part of an epoch line."""
    return f"  val loss {loss:.4f}" + ("" if score is None else f"  val {run.metric.replace('_', ' ')} {score:.3f}")


def stopped_early(run):
    """--early-stopping N: N epochs have passed since the best one."""
    return run.cfg.early_stopping is not None and epochs_since_best(run.history) >= run.cfg.early_stopping


def end_epoch(run, losses, t0):
    """After an epoch's updates (begun at time.perf_counter() t0): validate, keep the best prompt, log, save."""
    cfg, history = run.cfg, run.history
    if run.val_rows:  # before the epoch counts as done: a non-finite loss stops the run unsaved
        result = validate(run)
        history["val_losses"].append(result[0])
        history["val_scores"].extend(result[1:])
    seconds = time.perf_counter() - t0  # the validation included
    history["epoch_losses"].append(float(np.mean(losses)))
    history["epoch_seconds"].append(seconds)
    epoch = len(history["epoch_losses"])
    if run.val_rows and epochs_since_best(history) == 0:
        run.best = run.prompt.copy()
    val = val_text(run, history["val_losses"][-1], *history["val_scores"][-1:]) if run.val_rows else ""
    say(run, f"epoch {epoch}/{cfg.epochs}  train loss {history['epoch_losses'][-1]:.4f}{val}  {seconds:.1f}s")
    run.metrics = epoch_metrics(run)
    save_epoch(run.target, run, run.metrics)
    if run.target != run.out:  # --overwrite: the new run has its first save, only now may the old one go
        swap_in(run.target, run.out)
        run.target = run.out


def epoch_metrics(run):
    """metrics.json: the config, the model and data, and every loss so far."""
    history, seconds = run.history, sum(run.history["epoch_seconds"])
    validation = None
    if run.val_rows:
        validation = {"metric": run.metric, "labels": run.labels, "epoch_0": dict(zip(("loss", "score"),
                      history["val_start"])), "best_epoch": len(history["epoch_losses"]) - epochs_since_best(history),
                      "stopped_early": stopped_early(run)}
    return {"config": asdict(run.cfg), **run.info, "epochs_done": len(history["epoch_losses"]),
            "steps_done": run.step, "steps_per_epoch": run.steps_per_epoch,
            **{k: history[k] for k in ("step_losses", "epoch_losses", "val_losses", "val_scores")},
            "validation": validation, "timings": {"epoch_seconds": history["epoch_seconds"],
                                                  "total_seconds": seconds, "seconds_per_step": seconds / run.step}}
