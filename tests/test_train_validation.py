"""Training that keeps the best prompt (issue 14): validation loss and accuracy at epoch 0 and after each epoch,
best/, --early-stopping (also across --resume), and rows given as a list of dicts."""

import importlib
import json

import numpy as np
import pytest
from conftest import TOY_ROWS

from tinyprompt.data import load_examples
from tinyprompt.errors import TinyPromptError
from tinyprompt.evaluate import evaluate
from tinyprompt.prompt import load_prompt, save_prompt
from tinyprompt.run import loss_figure
from tinyprompt.train import TrainConfig, train

train_module = importlib.import_module("tinyprompt.train")  # the package exports a function of that name
LABELS = " 0, 1, 2, 3, 4"  # every sum of the toy rows: a five-way classification


def config(tmp_path, data, out="run", **changes):
    """A run on `data` (the toy file, or a list of rows), validated on the toy file."""
    base = {"model": "tiny-random", "data": data if isinstance(data, list) else str(data), "out": str(tmp_path / out),
            "num_virtual_tokens": 4, "batch_size": 3, "epochs": 2, "lr": 0.1, "quiet": True,
            "val_data": str(tmp_path / "toy.jsonl")}
    return TrainConfig(**{**base, **changes})


def keep_prompts(prompts):
    """on_epoch_end: a copy of the prompt of each epoch, in `prompts` (epoch 1 at index 1)."""
    return lambda epoch, prompt, metrics: prompts.append(prompt.copy())


def test_validation_loss_and_accuracy_from_epoch_0(tmp_path, toy, model, tok, capsys):
    start = np.random.default_rng(0).normal(0, 0.5, (4, model.config.n_embd)).astype(np.float32)
    save_prompt(tmp_path / "start", start, model.config)
    prompts = [start]
    _, metrics = train(config(tmp_path, toy, init_from=str(tmp_path / "start"), labels=LABELS, quiet=False),
                       model, tok, on_epoch_end=keep_prompts(prompts))
    rows = load_examples(str(toy), tok).examples
    expected = [evaluate(model, p, rows, tok, LABELS.split(","), batch_size=3) for p in prompts]  # epochs 0, 1, 2
    validation = metrics["validation"]
    assert validation["metric"] == "accuracy" and validation["labels"] == LABELS.split(",")
    assert validation["epoch_0"] == {"loss": expected[0]["loss"], "score": expected[0]["accuracy"]}
    assert metrics["val_losses"] == [e["loss"] for e in expected[1:]]
    assert metrics["val_scores"] == [e["accuracy"] for e in expected[1:]]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert lines[0] == f"epoch 0/2  val loss {expected[0]['loss']:.4f}  val accuracy {expected[0]['accuracy']:.3f}"
    assert f"val loss {expected[2]['loss']:.4f}  val accuracy {expected[2]['accuracy']:.3f}" in lines[2]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["validation"] == validation and saved["val_scores"] == metrics["val_scores"]


def test_the_metric_is_exact_match_for_pairs_and_the_loss_for_text(tmp_path, toy, model, tok):
    _, metrics = train(config(tmp_path, toy, "pairs", epochs=1), model, tok)
    assert metrics["validation"]["metric"] == "exact_match" and len(metrics["val_scores"]) == 1
    texts = [{"text": f"{a} and {b}"} for a in range(4) for b in range(3)]
    _, metrics = train(config(tmp_path, texts, "text", epochs=1, val_data=None, val_split=0.25), model, tok)
    assert metrics["validation"]["metric"] == "loss" and metrics["val_scores"] == []
    assert list(metrics["validation"]["epoch_0"]) == ["loss"]
    _, metrics = train(config(tmp_path, toy, "none", epochs=1, val_data=None), model, tok)
    assert metrics["validation"] is None and not (tmp_path / "none" / "best").exists()


def test_the_plot_starts_validation_at_epoch_0_with_the_score_on_a_second_axis():
    history = {"step_losses": [3.0, 2.5, 2.0, 1.8], "epoch_losses": [2.75, 1.9], "val_losses": [2.6, 2.2],
               "val_scores": [0.5, 0.75], "val_start": [3.1, 0.25], "epoch_seconds": [1.0, 1.0]}
    fig = loss_figure(history, 2, "t", "accuracy")
    loss_axes, score_axes = fig.axes
    validation = next(line for line in loss_axes.get_lines() if line.get_label() == "validation")
    assert list(validation.get_xdata()) == [0, 1, 2] and list(validation.get_ydata()) == [3.1, 2.6, 2.2]
    (accuracy,) = score_axes.get_lines()
    assert list(accuracy.get_xdata()) == [0, 1, 2] and list(accuracy.get_ydata()) == [0.25, 0.5, 0.75]
    assert accuracy.get_label() == "validation accuracy"
    assert len(loss_figure({**history, "val_scores": [], "val_start": [3.1]}, 2, "t", "loss").axes) == 1


def scripted(monkeypatch, results, start=0):
    """Make the validation return results[i] = (loss, exact match) at its i-th call, from `start` on."""
    calls = iter(results[start:])

    def fake(*args):
        loss, score = next(calls)
        return {"loss": loss, "exact_match": score, "accuracy": None}
    monkeypatch.setattr(train_module, "evaluate", fake)


# epochs 0..5: the best is epoch 2 (epoch 4 ties its score with a higher loss: no improvement)
RESULTS = [(5.0, 0.1), (4.0, 0.3), (3.5, 0.6), (3.4, 0.5), (3.6, 0.6), (3.3, 0.4)]


def test_best_keeps_the_prompt_of_the_best_epoch(tmp_path, toy, model, tok, monkeypatch):
    scripted(monkeypatch, RESULTS)
    prompts = []
    prompt, metrics = train(config(tmp_path, toy, epochs=5), model, tok, on_epoch_end=keep_prompts(prompts))
    assert metrics["validation"]["best_epoch"] == 2 and not metrics["validation"]["stopped_early"]
    best, fields = load_prompt(tmp_path / "run" / "best", model.config.n_embd)
    np.testing.assert_array_equal(best, prompts[1])  # epoch 2
    assert not np.array_equal(best, prompt) and fields["num_virtual_tokens"] == 4
    assert not list((tmp_path / "run").rglob(".*.tmp"))


def test_the_first_prompt_can_be_the_best(tmp_path, toy, model, tok, monkeypatch):
    scripted(monkeypatch, [(2.0, 0.5), (2.5, 0.5), (3.0, 0.4)])
    _, metrics = train(config(tmp_path, toy), model, tok)
    assert metrics["validation"]["best_epoch"] == 0
    assert not np.array_equal(load_prompt(tmp_path / "run" / "best")[0], load_prompt(tmp_path / "run")[0])


def test_early_stopping_ends_the_run_at_its_patience(tmp_path, toy, model, tok, monkeypatch, capsys):
    scripted(monkeypatch, RESULTS)
    prompts = []
    _, metrics = train(config(tmp_path, toy, epochs=5, early_stopping=2), model, tok,
                       on_epoch_end=keep_prompts(prompts))
    assert metrics["epochs_done"] == 4 and metrics["validation"] == {**metrics["validation"], "best_epoch": 2,
                                                                     "stopped_early": True}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_done"] == 4
    np.testing.assert_array_equal(load_prompt(tmp_path / "run" / "best")[0], prompts[1])
    assert capsys.readouterr().out == ("stopped early after epoch 4/5: no better validation exact match for 2 "
                                       f"epochs; the best is epoch 2, in {tmp_path / 'run' / 'best'}\n")


def test_early_stopping_survives_a_resume(tmp_path, toy, model, tok, monkeypatch, capsys):
    scripted(monkeypatch, RESULTS)
    _, straight = train(config(tmp_path, toy, "straight", epochs=5, early_stopping=2), model, tok)

    def interrupt(epoch, prompt, metrics):
        if epoch == 2:  # after epoch 3: one epoch without improvement so far
            raise KeyboardInterrupt

    scripted(monkeypatch, RESULTS)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, toy, epochs=5, early_stopping=2), model, tok, on_epoch_end=interrupt)
    scripted(monkeypatch, RESULTS, start=4)  # the resumed run validates epoch 4 first
    _, resumed = train(config(tmp_path, toy, epochs=5, early_stopping=2, resume=True), model, tok)
    assert resumed["epochs_done"] == 4 and resumed["validation"] == straight["validation"]
    assert resumed["step_losses"] == straight["step_losses"]
    for name in ("best", "."):
        np.testing.assert_array_equal(load_prompt(tmp_path / "run" / name)[0],
                                      load_prompt(tmp_path / "straight" / name)[0])
    capsys.readouterr()
    _, again = train(config(tmp_path, toy, epochs=5, early_stopping=2, resume=True, quiet=False), model, tok)
    assert again["epochs_done"] == 4 and "the run already has its 4 epochs (it stopped early)" in capsys.readouterr().out


def test_early_stopping_needs_validation_data(tmp_path, toy, model, tok):
    with pytest.raises(TinyPromptError, match="--early-stopping needs validation data"):
        train(config(tmp_path, toy, val_data=None, early_stopping=2), model, tok)
    with pytest.raises(TinyPromptError, match="--early-stopping 0: must be at least 1"):
        train(config(tmp_path, toy, early_stopping=0), model, tok)
    assert not (tmp_path / "run").exists()


def test_rows_in_memory_train_exactly_like_a_file(tmp_path, toy, model, tok):
    file_prompt, from_file = train(config(tmp_path, toy, "file"), model, tok)
    rows = [dict(row) for row in TOY_ROWS]
    list_prompt, from_list = train(config(tmp_path, rows, "list", val_data=rows), model, tok)
    assert from_list["step_losses"] == from_file["step_losses"] and from_list["val_losses"] == from_file["val_losses"]
    np.testing.assert_array_equal(list_prompt, file_prompt)
    assert from_list["config"]["data"] == "(a list of 9 rows)" and rows == TOY_ROWS  # the caller's rows unchanged
    words = [{"input": "good", "output": "1"}, {"input": "bad", "output": "0"}]
    _, metrics = train(config(tmp_path, words, "words", val_data=words, label_words="0= no,1= yes", epochs=1),
                       model, tok)
    assert metrics["validation"]["labels"] == [" no", " yes"] and words[0]["output"] == "1"


@pytest.mark.parametrize(("rows", "message"), [
    ([], "--data is required"),
    (["a row"], "data: expected a non-empty list of dicts"),
    ([{"input": "a", "output": 1}], "data:1: 'output' must be a string, got int"),
    ([{"input": "a", "output": "b"}, {"input": "c"}], "data:2: 'output' must be a string, got NoneType"),
])
def test_bad_rows_in_memory_fail_in_one_line(tmp_path, model, tok, rows, message):
    with pytest.raises(TinyPromptError, match=message):
        train(config(tmp_path, rows, val_data=None), model, tok)


def test_labels_must_name_every_validation_output(tmp_path, toy, model, tok):
    with pytest.raises(TinyPromptError, match=r"toy.jsonl:\d+: output ' \d' is not one of --labels"):
        train(config(tmp_path, toy, labels=" 0, 1"), model, tok)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("quiet", [True, False])
def test_the_validation_pass_has_a_progress_bar_unless_quiet(tmp_path, toy, model, tok, capsys, monkeypatch, quiet):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    train(config(tmp_path, toy, epochs=1, labels=LABELS, quiet=quiet), model, tok)
    err = capsys.readouterr().err
    assert ("rank classification" in err and "loss, exact match" in err and "epoch 1/1" in err) is not quiet
    assert not quiet or err == ""
