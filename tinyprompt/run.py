"""The run directory (--out) of `tune`: checked before the model loads, locked while a run writes to it, and
written one epoch at a time so that a crash, a full disk or a diverging run never loses the last good epoch.

    check_out(cfg)                  exists or creatable, writable, space for one save, not someone else's run
    with lock(out): ...             one writer at a time: out/.lock holds the owner's pid
    read_checkpoint(path, C)        checkpoint.npz, validated before any of it is used
    save_epoch(out, run, metrics)   an epoch's files: adapter, best/, metrics.json, loss.png, card, checkpoint
    saving(path)                    an OSError during a save -> one line naming the file

--overwrite writes the new run into `out.new/` beside the old one and swaps the two only after the new run's
first successful save (swap_in), so a run that fails before then leaves the old run as it was.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from .card import base_model, write_card
from .errors import TinyPromptError
from .optim import state_problem
from .prompt import CONFIG_NAME, INIT_METHODS, WEIGHTS_NAME, atomic_write, save_prompt

CHECKPOINT, METRICS, PLOT, LOCK, BEST = "checkpoint.npz", "metrics.json", "loss.png", ".lock", "best"
RUN_FILES = (CONFIG_NAME, WEIGHTS_NAME, METRICS, PLOT, CHECKPOINT, BEST)  # what --out must not already hold
PLOT_MARGIN = 1 << 20  # bytes: loss.png (~50 kB), metrics.json, the adapter config, and room to spare
# settings that may differ on --resume: where things are (the data is compared by content), how to start
# (the checkpoint decides), how long (more epochs extend a run) and how loud
RESUMABLE = {"data", "val_data", "out", "init", "init_text", "init_from", "epochs", "early_stopping", "overwrite",
             "resume", "quiet"}
# val_losses, val_scores: after epochs 1, 2, ...; val_start: epoch 0's validation loss (and score)
HISTORY = ("step_losses", "epoch_losses", "val_losses", "val_scores", "val_start", "epoch_seconds")
MAX_EPOCHS = 10**6  # a checkpoint claiming more epochs (or steps) than this was not written by us


def staging(out):
    """Where --overwrite writes the new run until its first save: a sibling, so the swap is a rename."""
    return out.with_name(out.name + ".new")


def check_out(cfg, prompt_bytes):
    """--out may hold a run only with --overwrite (replace it) or --resume (continue it); it must be creatable,
    writable and have room for one save (`prompt_bytes` twice, adapter and checkpoint, plus a margin)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TinyPromptError(f"--out {out}: a file, not a directory")
    if cfg.resume:
        if not (out / CHECKPOINT).is_file():
            raise TinyPromptError(f"--resume: {out} has no {CHECKPOINT} to continue from")
    else:
        held = [name for name in RUN_FILES if (out / name).exists()]
        if held and not cfg.overwrite:
            raise TinyPromptError(f"--out {out} already holds a run ({', '.join(held)}): pass --overwrite to "
                                  "replace it or --resume to continue it")
    target = staging(out) if cfg.overwrite and out.exists() else out
    try:
        target.mkdir(parents=True, exist_ok=True)
        with open(target / ".write-test", "wb") as f:  # os.access lies on read-only mounts and for root
            f.write(b"ok")
        os.unlink(target / ".write-test")
        free = shutil.disk_usage(target).free
    except OSError as e:
        raise TinyPromptError(f"--out {target}: cannot write there ({e.strerror or e})") from None
    need = 6 * prompt_bytes + PLOT_MARGIN  # the adapter, best/, the checkpoint (prompt, best, 2 AdamW moments)
    if free < need:
        raise TinyPromptError(f"--out {target}: {free} bytes free, a save needs about {need}")
    return target


@contextlib.contextmanager
def tidy_on_failure(out):
    """A run that fails (or is interrupted) before its first save leaves the file system as it found it: the
    folders that creating `out` made (it and its missing parents) go again, those still empty, innermost first."""
    out = Path(out).absolute()
    made = [folder for folder in [out, *out.parents] if not folder.exists()]
    try:
        yield
    except BaseException:
        for folder in made:
            with contextlib.suppress(FileNotFoundError):
                if any(folder.iterdir()):
                    break  # an epoch was saved in it: it and its parents stay
                folder.rmdir()
        raise


def clean(target, out):
    """Under the lock: drop a staging folder of an earlier failed --overwrite and the .tmp files of a save that
    was killed (SIGKILL skips atomic_write's cleanup)."""
    if target != out:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
    for tmp in target.rglob(".*.tmp"):  # also in best/
        tmp.unlink()


def _alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


@contextlib.contextmanager
def lock(directory):
    """Hold directory/.lock (our pid) while the block runs; refuse if a live process holds it, take it over
    if its owner is dead (a killed run)."""
    path = Path(directory) / LOCK
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)  # atomic: one creator wins
            break
        except FileExistsError:
            try:
                owner = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner):
                raise TinyPromptError(f"--out {directory}: another tune (pid {owner}) is writing there; wait "
                                      f"for it, or delete {path} if that process is not a tune") from None
            path.unlink(missing_ok=True)  # stale: its owner died without cleaning up
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def swap_in(new, out):
    """Replace the run in `out` by the one in `new` (after new's first save): old -> out.old, new -> out."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out / LOCK, new / LOCK)  # the lock moves with the run
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old)


@contextlib.contextmanager
def saving(epoch):
    """Turn an I/O error during epoch `epoch`'s save into one line naming the file."""
    try:
        yield
    except OSError as e:
        where = e.filename or "the run directory"
        raise TinyPromptError(f"epoch {epoch}: could not save {where} ({e.strerror or e}); the files of the "
                              f"epoch before are intact, free some space and continue with --resume") from None


def write_checkpoint(path, run, epoch):
    arrays = {f"optim.{k}": v for k, v in run.opt.state_dict().items()}
    arrays.update({k: np.array(v, dtype=np.float64) for k, v in run.history.items()})
    if run.best is not None:
        arrays["best_prompt"] = run.best
    buf = io.BytesIO()
    np.savez(buf, prompt=run.prompt, epoch=epoch, step=run.step, config=json.dumps(asdict(run.cfg)),
             data_hash=run.data_hash, **arrays)
    atomic_write(path, buf.getvalue())


def read_checkpoint(path, n_embd):
    """checkpoint.npz as a dict, every field checked: a tampered or truncated file fails in one line."""
    try:
        with np.load(path, allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
        state["config"] = json.loads(str(state["config"]))
    except Exception as e:  # noqa: BLE001 (zipfile, numpy and json each raise their own kind)
        raise TinyPromptError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e})") from None

    def need(ok, what):
        if not ok:
            raise TinyPromptError(f"{path}: corrupt checkpoint ({what})")

    missing = [k for k in ("prompt", "epoch", "step", "data_hash", *HISTORY) if k not in state]
    need(not missing, f"missing {', '.join(missing)}")
    need(isinstance(state["config"], dict), "config is not a JSON object")
    prompt = state["prompt"]
    need(prompt.dtype == np.float32 and prompt.ndim == 2 and prompt.shape[1] == n_embd and prompt.shape[0] >= 1,
         f"prompt is {prompt.dtype} {list(prompt.shape)}, expected float32 [P, {n_embd}]")
    need(bool(np.isfinite(prompt).all()), "the prompt holds NaN or inf")
    best = state.get("best_prompt", prompt)
    need(best.dtype == prompt.dtype and best.shape == prompt.shape and bool(np.isfinite(best).all()),
         f"best_prompt is {best.dtype} {list(best.shape)}, expected a finite prompt's float32 {list(prompt.shape)}")
    for key in ("epoch", "step"):
        value = state[key]
        need(value.shape == () and value.dtype.kind in "iu" and 0 <= int(value) <= MAX_EPOCHS * 10**3,
             f"{key} is {value!r}")
        state[key] = int(value)
    need(1 <= state["epoch"] <= MAX_EPOCHS, f"epoch is {state['epoch']}")
    for key in HISTORY:
        need(state[key].ndim == 1 and state[key].dtype == np.float64 and bool(np.isfinite(state[key]).all()),
             f"{key} is not a list of finite numbers")
    need(len(state["epoch_losses"]) == state["epoch"], "the loss history does not match the epoch")
    need(all(len(state[k]) in (0, state["epoch"]) for k in ("val_losses", "val_scores"))
         and len(state["val_start"]) <= 2, "the validation history does not match the epoch")
    optim = {k.removeprefix("optim."): v for k, v in state.items() if k.startswith("optim.")}
    need(not (problem := state_problem(state["config"].get("optimizer"), optim, prompt.shape)), problem)
    return state


def fingerprint(*example_lists):
    """A hash of every row's ids and labels: --resume checks it is continuing on the same data."""
    rows = [[[e.input_ids, e.labels] for e in examples] for examples in example_lists]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def check_resume(cfg, state, data_hash):
    saved = state["config"]
    for f in fields(cfg):
        if f.name not in RESUMABLE and saved.get(f.name) != getattr(cfg, f.name):
            raise TinyPromptError(f"--resume: {f.name} is {getattr(cfg, f.name)!r} but the run in {cfg.out} used "
                                  f"{saved.get(f.name)!r}; resume with the same settings")
    if str(state["data_hash"]) != data_hash:
        raise TinyPromptError(f"--resume: the data differs from what the run in {cfg.out} was trained on")


def epochs_since_best(history):
    """Epochs since the best validation epoch (0 = the last one is the best). Best: the highest score, the lower
    loss breaking a tie (only the loss when there is no score); of equals the first, as a tie is no improvement."""
    losses = [history["val_start"][0], *history["val_losses"]]  # epochs 0, 1, ...
    scores = [*history["val_start"][1:], *history["val_scores"]] or [0.0] * len(losses)
    curve = list(zip(scores, [-loss for loss in losses]))  # larger is better
    return len(curve) - 1 - max(range(len(curve)), key=curve.__getitem__)


def loss_figure(history, steps_per_epoch, title, metric):
    """loss.png: per-step losses faint, the epoch means solid, validation dashed from epoch 0, against epochs;
    the validation accuracy (or exact match) dotted, on its own axis at the right."""
    from matplotlib.figure import Figure  # no pyplot: no window, no global state; savefig uses Agg

    fig = Figure(figsize=(7, 4.2))
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.12, top=0.92)  # fixed margins: a layout engine costs a draw
    ax = fig.add_subplot()
    steps = np.arange(1, len(history["step_losses"]) + 1) / steps_per_epoch  # step s ends at epoch s/n
    ax.plot(steps, history["step_losses"], color="C0", alpha=0.3, lw=1, label="train, each step")
    epochs = np.arange(0, len(history["epoch_losses"]) + 1)  # validation starts at epoch 0, training at 1
    ax.plot(epochs[1:], history["epoch_losses"], "o-", color="C0", label="train, epoch mean")
    if history["val_start"]:
        ax.plot(epochs, [history["val_start"][0], *history["val_losses"]], "s--", color="C1", label="validation")
    ax.set(xlabel="epoch", ylabel="loss (cross-entropy, nats per token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    if history["val_scores"]:
        twin = ax.twinx()  # a score in [0, 1] beside a loss of ~10 nats: its own axis
        twin.plot(epochs, [history["val_start"][1], *history["val_scores"]], "^:", color="C2",
                  label=f"validation {metric.replace('_', ' ')}")
        twin.set(ylabel=metric.replace("_", " "), ylim=(-0.02, 1.02))
        twin.legend(loc="upper right")
    return fig


def save_epoch(out, run, metrics):
    """The epoch's files, the checkpoint last: it is the commit point --resume trusts."""
    cfg, init = run.cfg, run.cfg.init
    with saving(metrics["epochs_done"]):
        base = base_model(cfg.model)
        for directory, prompt in [(out, run.prompt)] + ([(out / BEST, run.best)] if run.best is not None else []):
            save_prompt(directory, prompt, run.model.config, base, init=init if init in INIT_METHODS else "random",
                        init_text=cfg.init_text if init == "text" else None, tokenizer_name_or_path=base)
        atomic_write(out / METRICS, (json.dumps(metrics, indent=1, allow_nan=False) + "\n").encode())
        title = f"prompt tuning {Path(cfg.model).name}: P={cfg.num_virtual_tokens}, {cfg.optimizer} lr {cfg.lr}"
        png = io.BytesIO()
        loss_figure(run.history, run.steps_per_epoch, title, run.metric).savefig(png, format="png", dpi=100)
        atomic_write(out / PLOT, png.getvalue())
        write_card(out, cfg, metrics)
        write_checkpoint(out / CHECKPOINT, run, metrics["epochs_done"])
