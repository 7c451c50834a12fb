"""evaluate.py beyond the training tests: exact match on rows whose output has no predictor, and progress bars
that show on a terminal unless quiet."""

import numpy as np
import pytest

from tinyprompt.data import pad_batch, tokenize
from tinyprompt.errors import TinyPromptError
from tinyprompt.evaluate import evaluate, loss_and_exact_match, parse_labels, target_scores


def pairs(tok, *rows):
    return tokenize([(i, {"input": a, "output": b}) for i, (a, b) in enumerate(rows, 1)], "pairs", tok).examples


def test_an_empty_input_without_a_prompt_is_never_an_exact_match(model, tok):
    """No prompt and no input: nothing precedes the output's first token, so greedy decoding cannot emit it;
    the row used to count as matched when its output was one token (only the EOS was left to check)."""
    rows = pairs(tok, ("", " the"))
    assert loss_and_exact_match(model, None, rows, tok.eos_id)[1] == 0.0
    # behind a prompt the first token has a predictor: the row matches iff " the" is its argmax
    prompt = np.random.default_rng(0).normal(0, 0.1, (2, model.config.n_embd)).astype(np.float32)
    _, _, hit = target_scores(model, prompt, *pad_batch(rows, tok.eos_id))  # " the", then EOS
    assert len(hit) == 2 and loss_and_exact_match(model, prompt, rows, tok.eos_id)[1] == float(hit[0])


def test_progress_bars_show_on_a_terminal_unless_quiet(model, tok, capsys, monkeypatch):
    rows = pairs(tok, ("1 + 1 =", " 2"), ("2 + 2 =", " 4"))
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    evaluate(model, None, rows, tok, [" 2", " 4"], batch_size=1, quiet=True)
    assert capsys.readouterr().err == ""
    evaluate(model, None, rows, tok, [" 2", " 4"], batch_size=1)
    err = capsys.readouterr().err
    assert "loss, exact match" in err and "rank classification" in err


def test_parse_labels():
    assert parse_labels(" a, b") == [" a", " b"]
    assert parse_labels(None, "0= no,1= yes,2= no") == [" no", " yes"]
    assert parse_labels(None) is None
    with pytest.raises(TinyPromptError, match="appears twice"):
        parse_labels(" a, a")
