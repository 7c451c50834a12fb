"""Training data: a JSONL / CSV / TSV file -> token ids + labels -> padded batches.

Two kinds of row (one kind per file):
- pairs `{"input": ..., "output": ...}`: the loss counts only the output tokens and a final EOS, so the prompt
  learns to *answer*, not to repeat the question. This is the rule of PEFT's causal-LM prompt-tuning example:
      ids    = encode(template.format(input=input)) + encode(output) + [eos]
      labels = [-100] * len(encode(template.format(input=input))) + encode(output) + [eos]
  The two parts are encoded separately, so BPE never merges across the boundary, and nothing is added
  between them: a space or a newline belongs to the data or to the template (default "{input}").
- text `{"text": ...}`: labels = ids, every token counts and no EOS is appended -- what the PEFT tutorial
  that tuned on role prompts did (`tokenizer(text)` with labels = input_ids).

Labels are *not* shifted here: labels[t] is the token expected at position t, and the model shifts them
(like transformers' `labels=`), after putting -100 in front for the P virtual tokens. The first text token is
therefore predicted from the last virtual token.

Size letters: B batch, T the longest row of the batch.
"""

import csv
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprompt import validate
from tinyprompt.errors import TinyPromptError

IGNORE_INDEX = -100  # label of a position that does not count in the loss (transformers' convention)


@dataclass
class Example:
    input_ids: list  # [T] token ids of the row
    labels: list  # [T] same ids where the loss counts, -100 elsewhere
    n_input: int  # tokens of the templated input (0 for a text row): the part generation is given
    output: str | None  # the output string of a pair row (for eval and the `labels` init), None for text
    where: str  # "file:line", for messages


@dataclass
class Dataset:
    examples: list  # [Example]
    path: str
    kind: str  # "pairs" or "text"
    truncated_rows: int = 0  # rows cut to max_length (truncate=True)
    truncated_tokens: int = 0  # tokens cut from them (not counting the rows cut unread)
    unread_rows: int = 0  # rows so long they were cut before encoding: what was cut from them is not counted
    dropped_rows: int = 0  # rows left with no counted token after the cut

    def outputs(self):
        """The distinct output strings, in order of first appearance (the classes, for the `labels` init)."""
        return list(dict.fromkeys(e.output for e in self.examples if e.output is not None))


def read_rows(path, input_column=None, output_column=None, text_column=None):
    """Rows of a .jsonl / .csv / .tsv file as (line, {"input", "output"} or {"text"}), and the kind.

    The column (or JSON key) names: --input-column/--output-column, or --text-column, else `input`/`output`
    when the file has both, else `text`. The choice is made once per file (from the first JSONL row or the
    CSV header); every row must then have those fields, as strings.
    """
    path = Path(path)
    if not path.is_file():  # reading a FIFO would wait for a writer, a device may never end
        what = "a directory" if path.is_dir() else "a FIFO or a device" if path.exists() else None
        raise TinyPromptError(f"{path}: {what}, not a data file" if what else f"{path}: no such data file")
    if (input_column is None) != (output_column is None):
        raise TinyPromptError("give both --input-column and --output-column, or neither")
    if input_column is not None and text_column is not None:
        raise TinyPromptError("give --input-column/--output-column or --text-column, not both")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".tsv"):
        raise TinyPromptError(f"{path}: unknown data format {suffix!r} (use .jsonl, .csv or .tsv)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: ignore a spreadsheet's byte-order mark
            raw = list(_jsonl(f, path) if suffix == ".jsonl" else _csv(f, path, suffix))
    except UnicodeDecodeError as e:
        raise TinyPromptError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:  # permission denied, an I/O error
        raise TinyPromptError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not raw:
        raise TinyPromptError(f"{path}: no rows")
    fields = raw[0][1].keys()  # the first JSONL row, or the CSV header
    if input_column is not None:
        kind, keys = "pairs", {"input": input_column, "output": output_column}
    elif text_column is not None:
        kind, keys = "text", {"text": text_column}
    elif "input" in fields and "output" in fields:
        kind, keys = "pairs", {"input": "input", "output": "output"}
    elif "text" in fields:
        kind, keys = "text", {"text": "text"}
    else:
        raise TinyPromptError(f"{path}:{raw[0][0]}: no 'input'/'output' or 'text' field (found {sorted(fields)});"
                              " name them with --input-column/--output-column or --text-column")
    absent = [name for name in keys.values() if name not in fields]
    if absent:
        raise TinyPromptError(f"{path}:{raw[0][0]}: no {absent[0]!r} field (found {sorted(fields)})")
    rows = []
    for line, record in raw:
        row = {}
        for ours, theirs in keys.items():
            value = record.get(theirs)
            if value is None:
                raise TinyPromptError(f"{path}:{line}: missing {theirs!r}")
            if not isinstance(value, str):
                raise TinyPromptError(f"{path}:{line}: {theirs!r} must be a string, got {type(value).__name__}")
            row[ours] = value
        rows.append((line, row))
    return rows, kind


def _jsonl(f, path):
    for line, text in enumerate(f, start=1):
        if not text.strip():
            continue  # blank lines (a trailing newline, a separator) carry no row
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise TinyPromptError(f"{path}:{line}: malformed JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # an int of more than 4300 digits; nesting deeper than ~1000
            raise TinyPromptError(f"{path}:{line}: unreadable JSON row ({type(e).__name__}: {e})") from None
        if not isinstance(record, dict):
            raise TinyPromptError(f"{path}:{line}: a row must be a JSON object, got {type(record).__name__}")
        yield line, record


def _csv(f, path, suffix):
    # strict: an unclosed quote is an error, instead of a field that silently swallows the rest of the file
    reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",", strict=True)
    line = 1
    try:
        if reader.fieldnames is None:
            return
        line = reader.line_num + 1  # the physical line where the next record starts (fields may span lines)
        for record in reader:
            # DictReader fills missing fields with None; extra fields go under the key None
            yield line, {k: v for k, v in record.items() if k is not None}
            line = reader.line_num + 1
    except csv.Error as e:
        raise TinyPromptError(f"{path}:{line}: malformed {suffix[1:].upper()} ({e})") from None


def check_template(template):
    """The template must use {input} once or more and nothing else (literal braces are written {{ }}), and as
    it is: a format spec or a conversion ({input:>100000000}) could make each row gigabytes long."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as e:
        raise TinyPromptError(f"--template {template!r}: only {{input}} may appear in braces ({e!r})") from None
    if any(name != "input" for name, _, _ in fields):
        raise TinyPromptError(f"--template {template!r}: only {{input}} may appear in braces")
    if any(spec or conversion for _, spec, conversion in fields):
        raise TinyPromptError(f"--template {template[:60]!r}: write {{input}} without a format spec or conversion")
    if not fields:
        raise TinyPromptError(f"--template {template!r} does not contain {{input}}")


def tokenize(rows, kind, tokenizer, template="{input}", max_length=None, truncate=False, path=""):
    """Rows -> Dataset of Examples (the rule in the module docstring); rows longer than max_length
    (= n_positions - P) raise, or with truncate=True keep their first max_length tokens and are counted.
    A text too long to fit whatever it holds is encoded only as far as the cut needs (encode_start)."""
    if kind == "pairs":
        check_template(template)
    if max_length is not None and max_length < 1:
        raise TinyPromptError(f"{path}: no row fits: the virtual tokens fill the model's context, {1 - max_length} "
                              "positions too many for even one token of text (lower --num-virtual-tokens)")
    data = Dataset([], str(path), kind)
    eos = tokenizer.eos_id
    # A text longer than this has more than max_length tokens: encode only its first max_length + 1, so a
    # 20 MB row costs a few kB of tokens, not millions of them (and gigabytes), before it is refused or cut.
    cap = None if max_length is None else (max_length + 1) * tokenizer.max_token_chars
    for line, row in rows:
        where = f"{path}:{line}"
        texts = [template.format(input=row["input"]), row["output"]] if kind == "pairs" else [row["text"]]
        cut = cap is not None and any(len(text) > cap for text in texts)
        encoded = [tokenizer.encode_start(text, max_length + 1) if cut else tokenizer.encode(text) for text in texts]
        if kind == "pairs":
            prompt_ids, answer = encoded[0], encoded[1] + [eos]
            ids, labels = prompt_ids + answer, [IGNORE_INDEX] * len(prompt_ids) + answer
            n_input, output = len(prompt_ids), row["output"]
        else:
            ids = encoded[0]
            labels, n_input, output = list(ids), 0, None
            if not ids:
                raise TinyPromptError(f"{where}: empty text")
        if max_length is not None and len(ids) > max_length:
            if not truncate:
                size = f"over {len(ids)}" if cut else f"{len(ids)}"
                raise TinyPromptError(f"{where}: {size} tokens, but only {max_length} fit after the virtual"
                                      " tokens (shorten the row, use fewer virtual tokens, or --truncate)")
            # keep the start, like a tokenizer's truncation="right"; the end of the answer is what is lost
            data.truncated_rows += 1
            if cut:
                data.unread_rows += 1  # its end was never encoded, so its cut tokens are not counted
            else:
                data.truncated_tokens += len(ids) - max_length
            ids, labels, n_input = ids[:max_length], labels[:max_length], min(n_input, max_length)
            if all(label == IGNORE_INDEX for label in labels):
                data.dropped_rows += 1  # only the input is left: nothing to learn from this row
                continue
        data.examples.append(Example(ids, labels, n_input, output, where))
    if not data.examples:
        raise TinyPromptError(f"{path}: no rows left after truncation")
    return data


def parse_label_words(text):
    """--label-words "0= negative,1= positive" -> {"0": " negative", "1": " positive"}: a verbalizer that
    turns a file's class ids into the words the model should say. Split at commas, then at the first "=";
    nothing is stripped, so the space before "negative" stays (GPT-2's " negative" is one token)."""
    words = {}
    for item in text.split(","):
        key, sep, word = item.partition("=")
        if not sep or not key or not word:
            raise TinyPromptError(f"--label-words {text!r}: write it as 'VALUE=WORD,VALUE=WORD' ({item!r})")
        if key in words:
            raise TinyPromptError(f"--label-words {text!r}: {key!r} is given twice")
        words[key] = word
    return words


def apply_label_words(rows, kind, label_words, path=""):
    """Replace each pair row's output by its word; an output the mapping does not name is an error."""
    if kind != "pairs":
        raise TinyPromptError(f"{path}: --label-words needs input/output rows, not text rows")
    for line, row in rows:
        if row["output"] not in label_words:
            raise TinyPromptError(f"{path}:{line}: output {row['output']!r} is not in --label-words "
                                  f"(it maps {sorted(label_words)})")
        row["output"] = label_words[row["output"]]
    return rows


def load_data(path, tokenizer, template="{input}", max_length=None, truncate=False,
              input_column=None, output_column=None, text_column=None, label_words=None):
    """read_rows (+ the --label-words verbalizer) + tokenize: the one call the trainer and `eval` make."""
    rows, kind = read_rows(path, input_column, output_column, text_column)
    if label_words:
        rows = apply_label_words(rows, kind, label_words, path)
    return tokenize(rows, kind, tokenizer, template, max_length, truncate, path)


def load_examples(data, tokenizer, name="data", label_words=None, **options) -> Dataset:
    """`data` as token ids + labels: a file (load_data, which takes `options`), or a list of {"input",
    "output"} or {"text"} dicts (template, max_length and truncate apply; `name` is what messages call it)."""
    if not isinstance(validate.rows_or_path(name, data), list):
        return load_data(data, tokenizer, label_words=label_words, **options)
    if not data or not all(isinstance(row, dict) for row in data):
        raise TinyPromptError(f"{name}: expected a non-empty list of dicts, or a file")
    kind = "pairs" if "input" in data[0] else "text"
    for i, row in enumerate(data, 1):
        for key in ("input", "output") if kind == "pairs" else ("text",):
            if not isinstance(row.get(key), str):
                raise TinyPromptError(f"{name}:{i}: {key!r} must be a string, got {type(row.get(key)).__name__}")
    columns = [k for k in ("input_column", "output_column", "text_column") if options.get(k)]
    if columns:
        raise TinyPromptError(f"{name}: {columns[0]} is for files; a list's keys are input/output or text")
    rows = [(i, dict(row)) for i, row in enumerate(data, 1)]  # copies: the label words replace outputs in place
    if label_words:
        rows = apply_label_words(rows, kind, label_words, name)
    keep = {k: options[k] for k in ("template", "max_length", "truncate") if k in options}
    return tokenize(rows, kind, tokenizer, path=name, **keep)


def split_validation(examples, fraction, seed=0):
    """(train, val): a seeded random `fraction` of the rows held out; both keep file order."""
    if not 0 < fraction < 1:
        raise TinyPromptError(f"--val-split {fraction}: must be between 0 and 1")
    n_val = round(len(examples) * fraction)
    if n_val == 0 or n_val == len(examples):
        raise TinyPromptError(f"--val-split {fraction} of {len(examples)} rows leaves an empty train or val set")
    held = set(np.random.default_rng(seed).permutation(len(examples))[:n_val].tolist())
    train = [e for i, e in enumerate(examples) if i not in held]
    val = [e for i, e in enumerate(examples) if i in held]
    return train, val


def epoch_order(n, seed=0, epoch=0, shuffle=True):
    """The row order of one epoch: a permutation drawn from (seed, epoch), so each epoch differs, a rerun is
    identical, and --resume can rebuild the order of the epoch it resumes. shuffle=False keeps file order."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)  # a seed *sequence*: (1, 0) != (0, 1)


def pad_batch(examples, pad_id):
    """Right padding to the longest row: input_ids [B, T] padded with pad_id (GPT-2 has no pad token, so
    the EOS id), labels [B, T] padded with -100. Exact under the causal mask: a real token never attends to
    a later padded one, and padded positions are never targets."""
    T = max(len(e.input_ids) for e in examples)
    input_ids = np.full((len(examples), T), pad_id, dtype=np.int64)  # [B, T]
    labels = np.full((len(examples), T), IGNORE_INDEX, dtype=np.int64)  # [B, T]
    for b, e in enumerate(examples):
        input_ids[b, : len(e.input_ids)] = e.input_ids
        labels[b, : len(e.labels)] = e.labels
    return input_ids, labels


def batches(examples, batch_size, pad_id, seed=0, epoch=0, shuffle=True):
    """Yield (input_ids [B, T], labels [B, T]) for one epoch; the last batch may be smaller (nothing dropped)."""
    if batch_size < 1:
        raise TinyPromptError(f"--batch-size {batch_size}: must be at least 1")
    order = epoch_order(len(examples), seed, epoch, shuffle)
    for start in range(0, len(order), batch_size):
        yield pad_batch([examples[i] for i in order[start : start + batch_size]], pad_id)


def num_batches(n, batch_size):
    return -(-n // batch_size)  # ceil: the last, partial batch counts
