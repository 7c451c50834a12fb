"""How good is a prompt? Mean loss, exact match, rank classification -- and what a tuned prompt looks like.

`tinyprompt eval` scores any number of soft prompts (and hard prompts, and the bare model) on one data file
with one loaded model, so prompt engineering and prompt tuning are compared on the same rows:
- loss: the mean cross-entropy over every counted token (a pair row's output and EOS, every token of a text
  row), exactly the training loss.
- exact match (pair rows): does greedy generation reproduce the output? Greedy decoding emits output token i
  iff it is the argmax after the input and output tokens 0..i-1, so one teacher-forced forward pass decides
  it for every token at once, with no generation loop. The EOS after the output is not required (a hard
  prompt never learned to stop).
- rank classification (Lester et al. after Brown et al.; `--labels`): score each label string as a
  continuation of the input -- the sum of its tokens' log-probabilities -- and predict the best one. The
  model is never asked to generate, so an untuned model is judged fairly on its preferences.

`inspect_prompt` is Lester et al. section 7: a tuned token's norm against the vocabulary's, and the real
tokens closest to it by cosine similarity.

Size letters: B rows, T tokens, P virtual tokens, C channels, V vocab, M counted targets, K labels.
"""

import sys

import numpy as np

from . import validate
from .data import IGNORE_INDEX, Example, pad_batch, parse_label_words
from .errors import InvalidType, InvalidValue, TinyPromptError
from .prompt import nearest_tokens


def progress(items, desc, quiet, unit="batch"):
    """A tqdm bar on a terminal (tqdm comes with huggingface-hub); the bare iterable otherwise."""
    if quiet or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def target_scores(model, prompt, input_ids, labels):
    """At each counted target: its row b [M], log p(target) [M], and whether the target is the argmax [M].
    As in `loss_and_grad`, only the M target positions go through ln_f and the [C, V] head."""
    P = 0 if prompt is None else prompt.shape[-2]
    b, p, target = model.targets(labels, P)  # position p predicts target (the shift of labels=)
    h, _ = model.forward(model.embed(input_ids, prompt))  # [B, P+T, C]
    logits = model.head(h[b, p])  # [M, C] -> [M, V]
    top = logits.max(axis=1, keepdims=True)  # subtract the max: exp never overflows
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))  # [M] log of the softmax denominator
    logp = logits[np.arange(len(b)), target].astype(np.float64) - log_z
    return b, logp, logits.argmax(axis=1) == target


def with_prefix(examples, prefix):
    """A hard prompt: its token ids in front of every row, not counted in the loss."""
    return [Example(prefix + e.input_ids, [IGNORE_INDEX] * len(prefix) + e.labels, len(prefix) + e.n_input,
                    e.output, e.where) for e in examples]


def loss_and_exact_match(model, prompt, examples, pad_id, batch_size=8, quiet=True):
    """(mean loss over the counted tokens, exact-match rate of the pair rows or None for text rows)."""
    total, count, exact, pairs = 0.0, 0, 0, 0
    for start in progress(range(0, len(examples), batch_size), "loss, exact match", quiet):
        chunk = examples[start : start + batch_size]
        b, logp, hit = target_scores(model, prompt, *pad_batch(chunk, pad_id))
        total, count = total - logp.sum(), count + len(b)
        for r, e in enumerate(chunk):
            if e.output is not None:  # a pair row: its targets are the output tokens, then EOS
                pairs += 1
                row = hit[b == r]
                # an output token with nothing before it (no prompt, empty input) is no target: greedy
                # decoding has no position to emit it from, so the row cannot match
                scored = len(row) == sum(label != IGNORE_INDEX for label in e.labels)
                exact += scored and bool(row[:-1].all())
    return total / count, (exact / pairs if pairs else None)


def rank_classify(model, prompt, examples, label_ids, pad_id, batch_size=8, quiet=True):
    """For each example, the index of the label (token ids) with the highest total log-probability after
    the example's input; -> [N]. One row per (example, label): N * K rows in all."""
    rows = [Example(e.input_ids[: e.n_input] + ids, [IGNORE_INDEX] * e.n_input + ids, e.n_input, None, e.where)
            for e in examples for ids in label_ids]
    scores = np.zeros(len(rows))  # [N * K]
    for start in progress(range(0, len(rows), batch_size), "rank classification", quiet):
        chunk = rows[start : start + batch_size]
        b, logp, _ = target_scores(model, prompt, *pad_batch(chunk, pad_id))
        scores[start : start + len(chunk)] = np.bincount(b, weights=logp, minlength=len(chunk))  # sum per row
    return scores.reshape(len(examples), len(label_ids)).argmax(axis=1)  # [N, K] -> [N]


def parse_labels(labels, label_words=None):
    """--labels " negative"," positive" -> [" negative", " positive"]; without it the distinct words of
    --label-words (a classification task's classes); None when neither is given."""
    if not labels:
        words = list(dict.fromkeys(parse_label_words(label_words).values())) if label_words else None
        return words and check_labels(words, "--label-words", label_words)
    return check_labels(labels.split(","), "--labels", labels)


def check_labels(labels, name="labels", given=None):
    """Rank-classification labels: two distinct non-empty strings at least. With one label, or an empty one
    (no tokens: log-probability 0, the highest there is), the same label always wins: a meaningless accuracy."""
    given = labels if given is None else given
    validate.of_type(name, labels, (list, tuple), "a list of label strings")
    if not all(isinstance(label, str) for label in labels):
        raise InvalidType(f"{name} {validate.shown(given)}: every label must be a string")
    for problem, found in (("a label is empty", "" in labels), ("a label appears twice", len(set(labels)) < len(labels)),
                           ("rank classification needs two labels at least", len(labels) < 2)):
        if found:
            raise InvalidValue(f"{name} {validate.shown(given)}: {problem}")
    return list(labels)


def check_scorable(examples, tokenizer, labels, room):
    """Refuse, before any forward pass, what would score without meaning: an empty output (exact match would count
    it as right whatever the prompt), an output that is not a label, a label that does not fit in the `room`
    tokens left after the longest input (only that much of it is encoded). -> the labels' token ids, or None."""
    for e in examples:
        if e.output == "":
            raise TinyPromptError(f"{e.where}: empty output: exact match would count it as right whatever the prompt")
        if labels and e.output not in labels:
            raise TinyPromptError(f"{e.where}: output {e.output!r} is not one of --labels {validate.shown(labels)}")
    label_ids = [tokenizer.encode_start(label, room + 1) for label in labels or []]
    for label, ids in zip(labels or [], label_ids):
        if len(ids) > room:
            raise TinyPromptError(f"label {validate.shown(label)}: too long, only {room} tokens fit after the "
                                  "longest input")
    return label_ids if labels else None


def evaluate(model, prompt, examples, tokenizer, labels=None, batch_size=8, quiet=False):
    """One row of `tinyprompt eval`: {"loss", "exact_match", "accuracy"} (None where it does not apply).
    `labels`: the label strings for rank classification; every row's output must be one of them.
    quiet=False: progress bars on a terminal."""
    P = 0 if prompt is None else prompt.shape[-2]
    label_ids = check_scorable(examples, tokenizer, labels, model.config.n_positions - P - max(e.n_input for e in
                                                                                                examples))
    loss, exact = loss_and_exact_match(model, prompt, examples, tokenizer.eos_id, batch_size, quiet)
    accuracy = None
    if labels:
        gold = np.array([labels.index(e.output) for e in examples])
        predicted = rank_classify(model, prompt, examples, label_ids, tokenizer.eos_id, batch_size, quiet)
        accuracy = float(np.mean(predicted == gold))
    return {"loss": loss, "exact_match": exact, "accuracy": accuracy}


def format_results(results):
    """The table `tinyprompt eval` prints: one line per prompt."""
    width = max(len("prompt"), *(len(name) for name, _ in results))
    lines = [f"{'prompt':<{width}}  {'loss':>8}  {'exact':>6}  {'acc':>6}"]
    for name, r in results:
        cells = [f"{r['loss']:8.4f}"] + ["     -" if r[k] is None else f"{r[k]:6.3f}" for k in ("exact_match", "accuracy")]
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def inspect_prompt(prompt, wte, tokenizer, k=5):
    """Lines: the norms of wte's rows, then per virtual token its norm and its k nearest tokens by cosine."""
    if prompt.shape[1] != wte.shape[1]:
        raise TinyPromptError(f"the prompt has token_dim {prompt.shape[1]} but the model has n_embd {wte.shape[1]}")
    w_norms = np.sqrt(np.einsum("vc,vc->v", wte, wte, dtype=np.float64))  # [V], no [V, C] temporary
    lines = [(f"wte row norms: mean {w_norms.mean():.3f}, median {np.median(w_norms):.3f}, "
              f"min {w_norms.min():.3f}, max {w_norms.max():.3f} ({wte.shape[0]} tokens)"),
             f"{'token':>5}  {'norm':>7}  nearest vocabulary tokens by cosine similarity"]
    ids, sims = nearest_tokens(prompt, wte, k)  # [P, k] each
    for i, (norm, row_ids, row_sims) in enumerate(zip(np.linalg.norm(prompt, axis=1), ids, sims)):
        near = "  ".join(f"{tokenizer.decode([t])!r} {s:.2f}" for t, s in zip(row_ids, row_sims))
        lines.append(f"{i:>5}  {norm:7.3f}  {near}")
    return lines
