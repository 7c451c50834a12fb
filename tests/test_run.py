"""Transactional training (issue 13): divergence after an update, a failed save, --overwrite's swap, the lock and
tampered checkpoints each stop in one TinyPromptError and leave the last good epoch on disk, resumable."""

import errno
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyprompt.card import base_model
from tinyprompt.errors import TinyPromptError
from tinyprompt.optim import make_optimizer
from tinyprompt.prompt import load_prompt
from tinyprompt.run import CHECKPOINT, read_checkpoint
from tinyprompt.train import TrainConfig, train

train_module = importlib.import_module("tinyprompt.train")  # the package exports a function of that name
prompt_module = importlib.import_module("tinyprompt.prompt")

@pytest.fixture
def cfg(tmp_path, toy):
    path = toy

    def make(out="run", **changes):  # 9 rows, batch 3: 3 steps per epoch
        base = {"model": "tiny-random", "data": str(path), "out": str(tmp_path / out), "num_virtual_tokens": 4,
                "batch_size": 3, "epochs": 3, "lr": 0.1, "quiet": True}
        return TrainConfig(**{**base, **changes})
    return make


def epochs_on_disk(out):
    metrics = json.loads((out / "metrics.json").read_text())  # json.loads refuses nothing, so check strictness:
    assert "NaN" not in (out / "metrics.json").read_text() and "Infinity" not in (out / "metrics.json").read_text()
    return metrics["epochs_done"]


def test_an_update_to_inf_is_not_saved_and_resume_recovers(cfg, model, tok, monkeypatch, tmp_path):
    calls = []

    def poisoned(name, weight_decay):
        opt = make_optimizer(name, weight_decay)
        step = opt.step

        def poisoned_step(param, grad, lr):
            step(param, grad, lr)
            calls.append(1)
            if len(calls) == 4:  # epoch 2's first update: loss and gradient were finite, the result is not
                param[0, 0] = np.inf
        opt.step = poisoned_step
        return opt

    monkeypatch.setattr(train_module, "make_optimizer", poisoned)
    with pytest.raises(TinyPromptError, match=r"epoch 2\): the updated prompt is not finite; stopped, the prompt "
                                              r"of epoch 1 is kept"):
        train(cfg(), model, tok)
    assert np.isfinite(load_prompt(tmp_path / "run")[0]).all()
    assert epochs_on_disk(tmp_path / "run") == 1
    monkeypatch.undo()
    _, metrics = train(cfg(resume=True), model, tok)
    assert metrics["epochs_done"] == 3


def test_a_nan_validation_loss_stops_before_the_save(cfg, model, tok, monkeypatch, tmp_path):
    real = train_module.evaluate
    seen = []

    def nan_in_epoch_2(*args):
        seen.append(1)
        return {**real(*args), "loss": float("nan")} if len(seen) == 3 else real(*args)  # epochs 0, 1, 2

    monkeypatch.setattr(train_module, "evaluate", nan_in_epoch_2)
    with pytest.raises(TinyPromptError, match=r"the validation loss is nan; stopped, the prompt of epoch 1 is kept"):
        train(cfg(val_split=0.3), model, tok)
    assert epochs_on_disk(tmp_path / "run") == 1


def failing_writes(monkeypatch, fail_at):
    """Make tinyprompt.prompt's atomic_write (the adapter's files) fail with a full disk on call `fail_at`."""
    real, calls = prompt_module.atomic_write, []

    def write(path, data):
        calls.append(path)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    monkeypatch.setattr(prompt_module, "atomic_write", write)


def test_a_full_disk_in_epoch_2s_save_keeps_epoch_1_and_resume_works(cfg, model, tok, monkeypatch, tmp_path):
    out = tmp_path / "run"
    failing_writes(monkeypatch, fail_at=3)  # epoch 2's adapter_model.safetensors (two writes per save)
    with pytest.raises(TinyPromptError, match=r"epoch 2: could not save .*adapter_model.safetensors \(No space"):
        train(cfg(), model, tok)
    assert epochs_on_disk(out) == 1 and read_checkpoint(out / CHECKPOINT, model.config.n_embd)["epoch"] == 1
    saved = load_prompt(out)[0]
    np.testing.assert_array_equal(saved, read_checkpoint(out / CHECKPOINT, model.config.n_embd)["prompt"])
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    monkeypatch.undo()
    resumed, _ = train(cfg(resume=True), model, tok)
    straight, _ = train(cfg("straight"), model, tok)
    np.testing.assert_array_equal(resumed, straight)  # the failed save cost nothing


def test_an_unwritable_out_fails_before_the_model_loads(cfg, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(TinyPromptError, match="a-file/run: cannot write there"):
        train(cfg("a-file/run"))  # no model given: reaching load_model would take seconds, not fail like this


def test_overwrite_swaps_only_after_the_first_save(cfg, model, tok, monkeypatch, tmp_path):
    out = tmp_path / "run"
    train(cfg(epochs=1), model, tok)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    failing_writes(monkeypatch, fail_at=1)
    with pytest.raises(TinyPromptError, match="could not save"):
        train(cfg(epochs=2, lr=0.2, overwrite=True), model, tok)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old run, untouched
    assert not (tmp_path / "run.new").exists()  # the unfinished new run is cleared away
    monkeypatch.undo()
    train(cfg(epochs=2, lr=0.2, overwrite=True), model, tok)
    assert epochs_on_disk(out) == 2 and json.loads((out / "metrics.json").read_text())["config"]["lr"] == 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "toy.jsonl"]  # no run.new / run.old left


def test_a_live_lock_refuses_a_stale_one_is_taken_over(cfg, model, tok, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getppid()}\n")  # a live process
    with pytest.raises(TinyPromptError, match=rf"another tune \(pid {os.getppid()}\) is writing there"):
        train(cfg(epochs=1), model, tok)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    (out / ".lock").write_text(dead.stdout)
    (out / ".adapter_model.safetensors.abc.tmp").write_bytes(b"half a file")  # a save killed by SIGKILL
    train(cfg(epochs=1), model, tok)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def tamper(path, **changes):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


TAMPERED = {  # tiny-random: n_embd 64, P 4
    "not a zip": (None, "corrupt checkpoint (BadZipFile"),
    "missing prompt": ({"prompt": None}, "missing prompt"),
    "wrong width": ({"prompt": np.zeros((4, 7), np.float32)}, "expected float32 [P, 64]"),
    "wrong dtype": ({"prompt": np.zeros((4, 64), np.float64)}, "prompt is float64"),
    "nan prompt": ({"prompt": np.full((4, 64), np.nan, np.float32)}, "the prompt holds NaN or inf"),
    "absurd epoch": ({"epoch": np.array(10**12)}, "epoch is"),
    "negative step": ({"step": np.array(-5)}, "step is"),
    "epoch not an int": ({"epoch": np.array("1")}, "epoch is"),
    "history mismatch": ({"epoch": np.array(2)}, "the loss history does not match the epoch"),
}


@pytest.mark.parametrize("name", TAMPERED)
def test_a_tampered_checkpoint_fails_in_one_line(cfg, model, tok, tmp_path, name):
    out = tmp_path / "run"
    if not (out / CHECKPOINT).exists():
        train(cfg(epochs=1), model, tok)
    changes, message = TAMPERED[name]
    if changes is None:
        (out / CHECKPOINT).write_bytes(b"PK\x03\x04 not really")
    else:
        tamper(out / CHECKPOINT, **changes)
    with pytest.raises(TinyPromptError, match=r"checkpoint.npz: corrupt checkpoint \(") as e:
        train(cfg(epochs=2, resume=True), model, tok)
    assert "\n" not in str(e.value) and message in str(e.value)


@pytest.mark.parametrize(("optimizer", "lr"), [("adamw", 0.03), ("sgd", 0.1), ("adafactor", 0.3)])
def test_each_optimizer_has_its_default_lr(cfg, model, tok, optimizer, lr):
    _, metrics = train(cfg(optimizer=optimizer, lr=None, epochs=1), model, tok)
    assert metrics["config"]["lr"] == lr


def test_the_adapter_gets_a_model_card_and_an_absolute_base_model(cfg, model, tok, tmp_path, monkeypatch):
    _, metrics = train(cfg(epochs=1), model, tok)
    card = (tmp_path / "run" / "README.md").read_text()
    for needed in ("base_model: tiny-random", "PROMPT_TUNING", "PeftModel.from_pretrained", "lr 0.1",
                   f"train loss {metrics['epoch_losses'][-1]:.4f}", "(loss.png)"):
        assert needed in card, needed
    (tmp_path / "weights" / "gpt2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert base_model("weights/gpt2") == str(tmp_path / "weights" / "gpt2")  # absolute, loadable from anywhere
    assert base_model("gpt2") == "openai-community/gpt2"
