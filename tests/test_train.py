"""train.py and evaluate.py in process, on tiny-random: the loss falls, runs repeat bit for bit, --resume
continues exactly, accumulation averages, a diverging run stops and keeps its last good prompt, and the eval
metrics agree with the loss and with greedy generation."""

import json

import numpy as np
import pytest

from tinyprompt.data import Example, batches, load_data
from tinyprompt.errors import TinyPromptError
from tinyprompt.evaluate import inspect_prompt, loss_and_exact_match, rank_classify, target_scores
from tinyprompt.generate import generate
from tinyprompt.prompt import load_prompt
from tinyprompt.train import TrainConfig, mean_loss, train


def config(tmp_path, toy, out="run", **changes):
    base = {"model": "tiny-random", "data": str(toy), "out": str(tmp_path / out), "num_virtual_tokens": 4,
            "batch_size": 3, "epochs": 3, "lr": 0.1, "quiet": True}
    return TrainConfig(**{**base, **changes})


def test_loss_falls_and_the_run_files_are_written(tmp_path, toy, model, tok):
    prompt, metrics = train(config(tmp_path, toy, val_split=0.3), model, tok)
    out = tmp_path / "run"
    losses = metrics["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["step_losses"] == metrics["step_losses"] and len(saved["step_losses"]) == 3 * 2  # 6 rows / 3
    assert len(saved["val_losses"]) == 3 and saved["config"]["lr"] == 0.1 and saved["init"] == "vocab"
    assert saved["data"]["train_rows"] == 6 and saved["data"]["val_rows"] == 3
    assert saved["timings"]["seconds_per_step"] > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded, fields = load_prompt(out, model.config.n_embd)  # the PEFT-format adapter round trip
    np.testing.assert_array_equal(loaded, prompt)
    assert fields["num_virtual_tokens"] == 4 and fields["base_model_name_or_path"] == "tiny-random"
    # the last validation loss is the loss of the final prompt on the held-out rows
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_same_seed_same_losses_bit_for_bit(tmp_path, toy, model, tok):
    a, ma = train(config(tmp_path, toy, "a", epochs=2), model, tok)
    b, mb = train(config(tmp_path, toy, "b", epochs=2), model, tok)
    assert ma["step_losses"] == mb["step_losses"]
    np.testing.assert_array_equal(a, b)
    _, mc = train(config(tmp_path, toy, "c", epochs=1, seed=1), model, tok)
    assert mc["step_losses"] != ma["step_losses"][:3]


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor", "sgd"])
def test_resume_continues_bit_identically(tmp_path, toy, model, tok, optimizer):
    settings = {"epochs": 2, "batch_size": 2, "accumulation_steps": 2, "optimizer": optimizer, "lr_schedule":
                "linear", "warmup_steps": 1, "max_grad_norm": 1.0, "val_split": 0.3}
    straight, ms = train(config(tmp_path, toy, "straight", **settings), model, tok)

    def interrupt(epoch, prompt, metrics):
        raise KeyboardInterrupt  # as a Ctrl-C after the first epoch's files are written

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, toy, "resumed", **settings), model, tok, on_epoch_end=interrupt)
    resumed, mr = train(config(tmp_path, toy, "resumed", resume=True, **settings), model, tok)
    assert mr["step_losses"] == ms["step_losses"] and mr["val_losses"] == ms["val_losses"]
    np.testing.assert_array_equal(resumed, straight)
    np.testing.assert_array_equal(load_prompt(tmp_path / "resumed")[0], straight)


def test_resume_refuses_other_settings_or_data(tmp_path, toy, model, tok):
    train(config(tmp_path, toy, epochs=1), model, tok)
    with pytest.raises(TinyPromptError, match="--resume: lr is 0.2 but the run .* used 0.1"):
        train(config(tmp_path, toy, epochs=2, resume=True, lr=0.2), model, tok)
    toy.write_text(toy.read_text().replace("Q: 0", "Q: 7"))
    with pytest.raises(TinyPromptError, match="the data differs"):
        train(config(tmp_path, toy, epochs=2, resume=True), model, tok)
    toy.write_text(toy.read_text().replace("Q: 7", "Q: 0"))
    _, metrics = train(config(tmp_path, toy, epochs=1, resume=True), model, tok)  # already done: no step
    assert len(metrics["step_losses"]) == 3


def test_accumulation_is_the_mean_of_micro_batches(tmp_path, toy, model, tok):
    # every row has 2 targets (" n" + EOS), so the mean of two micro-batch means is the mean of the batch
    whole, mw = train(config(tmp_path, toy, "whole", batch_size=4, shuffle=False, epochs=1), model, tok)
    parts, mp = train(config(tmp_path, toy, "parts", batch_size=2, accumulation_steps=2, shuffle=False, epochs=1),
                      model, tok)
    np.testing.assert_allclose(mp["step_losses"][:2], mw["step_losses"][:2], rtol=1e-6)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)


def test_init_from_starts_at_the_saved_prompt(tmp_path, toy, model, tok):
    first, _ = train(config(tmp_path, toy, "first", epochs=1), model, tok)
    cfg = config(tmp_path, toy, "second", epochs=1, num_virtual_tokens=None, init_from=str(tmp_path / "first"),
                 shuffle=False)
    _, metrics = train(cfg, model, tok)
    ids, labels = next(batches(load_data(toy, tok).examples, 3, tok.eos_id, shuffle=False))
    assert metrics["step_losses"][0] == model.loss(first, ids, labels)  # P (4) came from the adapter
    assert metrics["init"] == f"from {tmp_path / 'first'}"
    with pytest.raises(TinyPromptError, match="--num-virtual-tokens 5, but the prompt to start from has 4"):
        train(config(tmp_path, toy, "third", num_virtual_tokens=5, init_from=str(tmp_path / "first")), model, tok)


def test_a_nan_stops_the_run_and_keeps_the_last_good_prompt(tmp_path, toy, model, tok):
    def poison(epoch, prompt, metrics):
        prompt[0, 0] = np.nan  # the in-memory prompt only: epoch 1's files are already on disk

    with pytest.raises(TinyPromptError, match=r"epoch 2\): the loss is nan; stopped, the prompt of epoch 1 is kept"):
        train(config(tmp_path, toy), model, tok, on_epoch_end=poison)
    prompt, _ = load_prompt(tmp_path / "run")
    assert np.isfinite(prompt).all()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_done"] == 1


def test_labels_init_with_label_words(tmp_path, model, tok):
    path = tmp_path / "sst.tsv"
    path.write_text("text\tlabel\ngood fun\t1\ndull\t0\nfine work\t1\n")
    cfg = TrainConfig(model="tiny-random", data=str(path), out=str(tmp_path / "run"), num_virtual_tokens=3,
                      init="labels", input_column="text", output_column="label", template="{input} Sentiment:",
                      label_words="0= negative,1= positive", epochs=1, lr=1e-9, quiet=True)
    prompt, _ = train(cfg, model, tok)
    # the first rows are the label embeddings (in order of first appearance); lr 1e-9 barely moves them
    np.testing.assert_allclose(prompt[:2], model.wte[tok.encode(" positive") + tok.encode(" negative")], atol=1e-6)


def test_truncation_is_reported(tmp_path, model, tok):
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": " a" * 1100}) + "\n" + json.dumps({"text": "short"}) + "\n")
    _, metrics = train(TrainConfig(model="tiny-random", data=str(path), out=str(tmp_path / "run"),
                                   num_virtual_tokens=4, truncate=True, epochs=1, quiet=True), model, tok)
    assert metrics["data"]["truncated_rows"] == 1 and metrics["data"]["truncated_tokens"] == 1100 - 1020


def test_eval_loss_is_the_training_loss(toy, model, tok):
    examples = load_data(toy, tok).examples
    prompt = np.random.default_rng(0).uniform(-0.5, 0.5, (4, model.config.n_embd)).astype(np.float32)
    loss, exact = loss_and_exact_match(model, prompt, examples, tok.eos_id, batch_size=4)
    assert loss == pytest.approx(mean_loss(model, prompt, examples, 3, tok.eos_id), rel=1e-5)
    assert exact == 0.0  # random weights do not add numbers


def test_exact_match_is_greedy_generation(model, tok):
    """Teacher-forced argmax == greedy decoding: a row whose output is the model's own greedy continuation
    matches; change one output token and it no longer does."""
    prompt = np.random.default_rng(1).uniform(-0.5, 0.5, (4, model.config.n_embd)).astype(np.float32)
    rows = []
    for text in ("Hello there", "One two three"):
        ids = tok.encode(text)
        out = generate(model, ids, prompt, max_new_tokens=3, eos_id=tok.eos_id)
        rows.append(Example(ids + out + [tok.eos_id], [-100] * len(ids) + out + [tok.eos_id], len(ids), "x", text))
    wrong = rows[1].input_ids[:-2] + [(rows[1].input_ids[-2] + 1) % 50257, tok.eos_id]
    rows.append(Example(wrong, rows[1].labels[:-2] + wrong[-2:], rows[1].n_input, "x", "wrong"))
    assert loss_and_exact_match(model, prompt, rows[:2], tok.eos_id)[1] == 1.0
    assert loss_and_exact_match(model, prompt, rows[2:], tok.eos_id)[1] == 0.0


def test_rank_classification_picks_the_most_likely_label(toy, model, tok):
    examples = load_data(toy, tok).examples[:4]
    labels = [tok.encode(" 1"), tok.encode(" two"), tok.encode(" 3 4")]  # multi-token labels are summed
    predicted = rank_classify(model, None, examples, labels, tok.eos_id, batch_size=5)
    for e, pick in zip(examples, predicted):
        scores = []
        for ids in labels:  # the brute force: one row, the label's total log-probability
            _, logp, _ = target_scores(model, None, np.array([e.input_ids[: e.n_input] + ids]),
                                       np.array([[-100] * e.n_input + ids]))
            scores.append(logp.sum())
        assert pick == int(np.argmax(scores))


def test_inspect_lists_norms_and_neighbours(model, tok):
    prompt = np.array(model.wte[[15496, 995]])  # "Hello", " world": each is its own nearest token
    lines = inspect_prompt(prompt, model.wte, tok, k=3)
    assert lines[0].startswith("wte row norms: mean") and len(lines) == 2 + 2
    assert "'Hello' 1.00" in lines[2] and "' world' 1.00" in lines[3]


def test_an_interrupt_before_the_first_save_leaves_no_folder(tmp_path, toy, model, tok, monkeypatch, capsys):
    """Ctrl-C in epoch 1: the --out folder (and its parent) that the run made go again, and it says so."""
    import importlib

    def interrupt(run, group):
        raise KeyboardInterrupt
    monkeypatch.setattr(importlib.import_module("tinyprompt.train"), "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, toy, "new/run"), model, tok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.jsonl"]
    assert capsys.readouterr().err == "stopped in epoch 1: nothing was saved\n"
