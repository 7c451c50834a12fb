"""data.py: parsing JSONL/CSV/TSV, the tokenization and label rule, padding, shuffling, and every bad input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinyprompt.data import (
    IGNORE_INDEX,
    batches,
    check_template,
    epoch_order,
    load_data,
    num_batches,
    pad_batch,
    read_rows,
    split_validation,
    tokenize,
)
from tinyprompt.errors import TinyPromptError
from tinyprompt.tokenizer import bundled_tokenizer

REPO = Path(__file__).resolve().parents[1]


class ByteTokenizer:
    """A stand-in with the Tokenizer interface: one token per UTF-8 byte, EOS = 256. Easy to count by eye."""

    eos_id = 256
    vocab_size = 257
    max_token_chars = 1  # a token is one byte, never more than one character

    def encode(self, text):
        return list(text.encode("utf-8"))

    def encode_start(self, text, n):
        return self.encode(text)[:n]

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


TOK = ByteTokenizer()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path, rows, name="d.jsonl"):
    return write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))


def test_pair_rule_labels_only_on_output_and_eos(tmp_path):
    path = jsonl(tmp_path, [{"input": "ab", "output": "c"}])
    data = load_data(path, TOK, template="Q:{input} A:")
    e = data.examples[0]
    prompt = TOK.encode("Q:ab A:")  # the template is applied verbatim: no space is added anywhere
    assert e.input_ids == prompt + [ord("c"), 256]
    assert e.labels == [IGNORE_INDEX] * len(prompt) + [ord("c"), 256]
    assert (e.n_input, e.output, e.where, data.kind) == (len(prompt), "c", f"{path}:1", "pairs")


def test_text_rule_labels_everywhere_no_eos(tmp_path):
    data = load_data(jsonl(tmp_path, [{"text": "hi"}]), TOK)
    e = data.examples[0]
    assert e.input_ids == e.labels == [ord("h"), ord("i")]
    assert (e.n_input, e.output, data.kind) == (0, None, "text")


def test_template_default_and_pairs_chosen_over_text(tmp_path):
    data = load_data(jsonl(tmp_path, [{"input": "x", "output": "y", "text": "ignored"}]), TOK)
    assert data.kind == "pairs" and data.examples[0].input_ids == [ord("x"), ord("y"), 256]


def test_csv_and_tsv_columns(tmp_path):
    csv_path = write(tmp_path, "d.csv", 'input,output\n"a, b","multi\nline"\nc,d\n')
    data = load_data(csv_path, TOK)
    assert [e.output for e in data.examples] == ["multi\nline", "d"]
    assert [e.where for e in data.examples] == [f"{csv_path}:2", f"{csv_path}:4"]  # where each row starts
    tsv_path = write(tmp_path, "d.tsv", "text\tlabel\nnice film \t1\nbad \t0\n")
    data = load_data(tsv_path, TOK, input_column="text", output_column="label")
    assert data.outputs() == ["1", "0"] and data.examples[0].input_ids[:4] == TOK.encode("nice")
    assert load_data(tsv_path, TOK).kind == "text"  # no input/output columns, but a `text` one
    assert load_data(tsv_path, TOK, text_column="label").examples[1].input_ids == [ord("0")]


def test_bundled_data_files_parse():
    train = load_data(REPO / "data/sst2/train.tsv", TOK, input_column="text", output_column="label")
    dev = load_data(REPO / "data/sst2/dev.tsv", TOK, input_column="text", output_column="label")
    assert (len(train.examples), len(dev.examples)) == (2000, 872)
    assert sorted(train.outputs()) == ["0", "1"]
    prompts = load_data(REPO / "data/awesome-chatgpt-prompts/prompts.csv", TOK, text_column="prompt")
    assert len(prompts.examples) == 168


def test_blank_jsonl_lines_are_skipped_and_numbering_kept(tmp_path):
    path = write(tmp_path, "d.jsonl", '\n{"text": "a"}\n\n{"text": "b"}\n')
    assert [e.where for e in load_data(path, TOK).examples] == [f"{path}:2", f"{path}:4"]


@pytest.mark.parametrize("content, message", [
    ('{"text": "a"}\n{"text": \n', "d.jsonl:2: malformed JSON"),
    ("", "d.jsonl: no rows"),
    ("\n\n", "d.jsonl: no rows"),
    ('{"input": "a", "output": "b"}\n{"input": "a"}\n', "d.jsonl:2: missing 'output'"),
    ('{"prompt": "a"}\n', "d.jsonl:1: no 'input'/'output' or 'text' field (found ['prompt'])"),
    ('{"text": 3}\n', "d.jsonl:1: 'text' must be a string, got int"),
    ('{"text": null}\n', "d.jsonl:1: missing 'text'"),
    ('["a"]\n', "d.jsonl:1: a row must be a JSON object, got list"),
    ('{"text": ""}\n', "d.jsonl:1: empty text"),
])
def test_jsonl_errors(tmp_path, content, message):
    path = write(tmp_path, "d.jsonl", content)
    with pytest.raises(TinyPromptError, match="^" + re.escape(f"{tmp_path}/{message}")):
        load_data(path, TOK)


@pytest.mark.parametrize("content, kwargs, message", [
    ("input,output\n", {}, "d.csv: no rows"),
    ("", {}, "d.csv: no rows"),
    ("a,b\n1,2\n", {}, "d.csv:2: no 'input'/'output' or 'text' field"),
    ("a,b\n1,2\n", {"input_column": "a", "output_column": "c"}, r"d.csv:2: no 'c' field \(found \['a', 'b'\]\)"),
    ("input,output\nx,y\nz\n", {}, "d.csv:3: missing 'output'"),
    ('input,output\n"x,y\n', {}, "d.csv:2: malformed CSV"),
])
def test_csv_errors(tmp_path, content, kwargs, message):
    path = write(tmp_path, "d.csv", content)
    with pytest.raises(TinyPromptError, match=message):
        load_data(path, TOK, **kwargs)


def test_file_and_flag_errors(tmp_path):
    with pytest.raises(TinyPromptError, match="nope.jsonl: no such data file"):
        load_data(tmp_path / "nope.jsonl", TOK)
    with pytest.raises(TinyPromptError, match="unknown data format '.txt'"):
        load_data(write(tmp_path, "d.txt", "x"), TOK)
    with pytest.raises(TinyPromptError, match="both --input-column and --output-column"):
        read_rows(write(tmp_path, "d.csv", "a\n1\n"), input_column="a")
    with pytest.raises(TinyPromptError, match="not both"):
        read_rows(write(tmp_path, "d.csv", "a\n1\n"), input_column="a", output_column="a", text_column="a")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(TinyPromptError, match="latin1.jsonl: not UTF-8"):
        load_data(bad, TOK)


@pytest.mark.parametrize("template, message", [
    ("no placeholder", "does not contain {input}"),
    ("{input} {output}", "only {input} may appear"),
    ("{0}", "only {input} may appear"),
    ("{input", "only {input} may appear"),
])
def test_template_errors(template, message):
    with pytest.raises(TinyPromptError, match=message):
        check_template(template)
    check_template("{{literal}} {input}")  # doubled braces are text


def test_too_long_raises_or_truncates_and_reports(tmp_path):
    path = jsonl(tmp_path, [{"input": "abc", "output": "de"}, {"input": "a", "output": "b"},
                            {"input": "abcdefgh", "output": "z"}])
    with pytest.raises(TinyPromptError, match=r"d.jsonl:1: 6 tokens, but only 4 fit .* --truncate"):
        load_data(path, TOK, max_length=4)
    data = load_data(path, TOK, max_length=4, truncate=True)
    # row 1 keeps "abcd" (d counted), row 2 fits (3 tokens), row 3 keeps only input -> dropped; row 3's
    # 8 characters are more than (4 + 1) tokens can hold, so it is cut unread and its cut is not counted
    assert [e.input_ids for e in data.examples] == [TOK.encode("abcd"), TOK.encode("ab") + [256]]
    assert data.examples[0].labels == [IGNORE_INDEX] * 3 + [ord("d")]
    assert (data.truncated_rows, data.truncated_tokens, data.unread_rows, data.dropped_rows) == (2, 2, 1, 1)
    with pytest.raises(TinyPromptError, match="no rows left after truncation"):
        load_data(jsonl(tmp_path, [{"input": "abcdef", "output": "z"}], "e.jsonl"), TOK, max_length=3,
                  truncate=True)


# Pieces that GPT-2's pre-tokenizer treats differently at a cut: runs of spaces (which give their last space to
# the next word), newlines, contractions, digits, punctuation, <|endoftext|>, non-ASCII, and a word longer than
# any token (its pieces are not a prefix of its cut pieces).
PIECES = ["hello", " world", " ", "  ", "    ", "\n", "\n\n", " \n ", "<|endoftext|>", " <|endoftext|>", "'s",
          "'ll", "123", " 4567", "!!", " ?", "-" * 40, "é", " 日本語", "🙂", "\t", "x" * 300]


@pytest.mark.parametrize("max_token_chars", [None, 13])  # the real bound (128), and the tightest margin
def test_encode_start_equals_cutting_the_full_encoding(max_token_chars):
    tok = bundled_tokenizer()
    tok.max_token_chars = max_token_chars or tok.max_token_chars
    rng = np.random.default_rng(0)
    for _ in range(10):
        text = "".join(rng.choice(PIECES, size=150))
        full = tok.encode(text)
        for size in range(1, len(text), 5):  # a cut at every place a piece can end or be torn
            sure = tok.encode_sure(text, size)
            assert sure == full[: len(sure)], (size, text)
        for n in range(0, 60, 3):
            assert tok.encode_start(text, n) == full[:n], (n, text)


def test_a_huge_row_is_cut_after_encoding_only_its_start(tmp_path, monkeypatch):
    tok = bundled_tokenizer()
    text = "The quick brown fox jumps over the lazy dog, 12 times. " * 4000  # 220k characters
    lengths = []
    encode = tok.backend.encode
    monkeypatch.setattr(tok, "backend", type("Spy", (), {  # the real backend, noting how much it is given
        "encode": lambda self, t, **kw: lengths.append(len(t)) or encode(t, **kw)})())
    rows = [(1, {"input": text, "output": " yes"}), (2, {"input": "Hi", "output": " no"})]
    data = tokenize(rows, "pairs", tok, max_length=50, truncate=True)
    assert max(lengths) <= 2 * 51 * tok.max_token_chars  # the prefix, not the 220k characters
    monkeypatch.undo()
    assert len(data.examples) == 1 and (data.truncated_rows, data.unread_rows, data.dropped_rows) == (1, 1, 1)
    data = tokenize([(1, {"text": text})], "text", tok, max_length=50, truncate=True)
    assert data.examples[0].input_ids == tok.encode(text)[:50]


def examples(tmp_path, n):
    return load_data(jsonl(tmp_path, [{"input": "i" * (k % 3), "output": "o" * (k % 2)} for k in range(n)]),
                     TOK).examples


def test_pad_batch_right_padding(tmp_path):
    ex = examples(tmp_path, 3)  # lengths 1, 3, 3: ("", ""), ("i", "o"), ("ii", "")
    input_ids, labels = pad_batch(ex, pad_id=256)
    assert input_ids.dtype == labels.dtype == np.int64 and input_ids.shape == (3, 3)
    np.testing.assert_array_equal(input_ids, [[256, 256, 256], [105, 111, 256], [105, 105, 256]])
    np.testing.assert_array_equal(labels, [[256, -100, -100], [-100, 111, 256], [-100, -100, 256]])


def test_batches_cover_every_row_once_and_shapes(tmp_path):
    ex = examples(tmp_path, 7)
    got = list(batches(ex, 3, pad_id=256, seed=1, epoch=0))
    assert [b[0].shape[0] for b in got] == [3, 3, 1] and num_batches(7, 3) == 3
    order = epoch_order(7, seed=1, epoch=0)
    for k, (input_ids, labels) in enumerate(got):  # T is the longest row of *that* batch
        rows = [ex[i] for i in order[3 * k : 3 * k + 3]]
        assert input_ids.shape == labels.shape == (len(rows), max(len(e.input_ids) for e in rows))
        np.testing.assert_array_equal(input_ids[:, 0], [e.input_ids[0] for e in rows])
    assert sorted(epoch_order(7, seed=1, epoch=0).tolist()) == list(range(7))
    with pytest.raises(TinyPromptError, match="--batch-size 0"):
        next(batches(ex, 0, pad_id=256))


def test_shuffle_is_deterministic_and_differs_per_epoch_and_seed(tmp_path):
    a, b = epoch_order(50, seed=3, epoch=2), epoch_order(50, seed=3, epoch=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, epoch_order(50, seed=3, epoch=3))
    assert not np.array_equal(epoch_order(50, seed=0, epoch=1), epoch_order(50, seed=1, epoch=0))
    np.testing.assert_array_equal(epoch_order(50, shuffle=False), np.arange(50))
    ex = examples(tmp_path, 5)
    first = [x.tolist() for x, _ in batches(ex, 1, pad_id=256, shuffle=False)]
    assert first == [[e.input_ids] for e in ex]  # no shuffle: file order


def test_split_validation(tmp_path):
    ex = examples(tmp_path, 10)
    train, val = split_validation(ex, 0.3, seed=5)
    assert (len(train), len(val)) == (7, 3)
    assert sorted(e.where for e in train + val) == sorted(e.where for e in ex)
    assert [e.where for e in train] == [e.where for e in ex if e in train]  # file order kept
    assert [e.where for e in split_validation(ex, 0.3, seed=5)[1]] == [e.where for e in val]
    for bad in (0, 1, 1.5, 0.01):
        with pytest.raises(TinyPromptError, match="--val-split"):
            split_validation(ex, bad)


def test_real_tokenizer_rule():
    tokenizer = pytest.importorskip("tinyprompt.tokenizer").load_tokenizer()
    rows = [(1, {"input": "Review: great film\nSentiment:", "output": " positive"})]
    e = tokenize(rows, "pairs", tokenizer).examples[0]
    head = tokenizer.encode("Review: great film\nSentiment:")
    assert e.input_ids == head + tokenizer.encode(" positive") + [tokenizer.eos_id] and e.n_input == len(head)


def test_label_words_map_class_ids_to_words(tmp_path):
    from tinyprompt.data import parse_label_words

    assert parse_label_words("0= negative,1= positive") == {"0": " negative", "1": " positive"}  # spaces kept
    path = write(tmp_path, "s.tsv", "text\tlabel\ngood\t1\nbad\t0\n")
    data = load_data(path, TOK, input_column="text", output_column="label", label_words={"0": " no", "1": " yes"})
    assert [e.output for e in data.examples] == [" yes", " no"] and data.outputs() == [" yes", " no"]
    assert data.examples[0].labels[-5:] == [*b" yes", 256]
    for bad in ("positive", "0=", "=x", "0=a,0=b"):
        with pytest.raises(TinyPromptError, match="--label-words"):
            parse_label_words(bad)
    with pytest.raises(TinyPromptError, match=r"s.tsv:2: output '1' is not in --label-words"):
        load_data(path, TOK, input_column="text", output_column="label", label_words={"0": " no"})
    with pytest.raises(TinyPromptError, match="needs input/output rows"):
        load_data(jsonl(tmp_path, [{"text": "a"}]), TOK, label_words={"0": " no"})
