"""`make demo`: tune a soft prompt for SST-2 sentiment on a frozen GPT-2, then measure what it changed.

    python -m tinyprompt.demo [--model tiny-pretrained] [--rows 2000] [--epochs 2] [--dev-rows N | --all-dev]

0. how long the run will take: one training step and the scoring of 8 dev rows, timed on this machine, times
   how many of each the run does (on a model of more than BIG_MODEL parameters, progress lines follow);
1. the frozen model's dev accuracy with no prompt and with a hand-written hard prompt (rank classification:
   is " positive" or " negative" the likelier next word?);
2. `tinyprompt tune` on SST-2 training sentences: 10 virtual tokens initialised from the label words;
3. the dev accuracy with the tuned soft prompt, and two generations with and without it.
Everything it prints is measured in this run. The default model is tiny-pretrained, a 4-layer GPT-2 pretrained
by this project (pretrain/), whose corpus never shows the template "{input}Sentiment:": about a minute on 2
cores. `--model gpt2` (500 MB, downloaded once) scores DEV_ROWS_BIG of the 872 dev sentences unless --all-dev.
"""

import argparse
import math
import sys
import time
from pathlib import Path

from .api import load_model_or_fallback, load_tokenizer
from .data import load_data, pad_batch, parse_label_words
from .errors import TinyPromptError
from .evaluate import evaluate, format_results, with_prefix
from .generate import generate
from .gpt2 import GPT2
from .train import TrainConfig, train
from .weights import param_shapes

DATA = Path(__file__).resolve().parent / "assets" / "data" / "sst2"  # packaged: works after pip install
LABEL_WORDS = "0= negative,1= positive"
TEMPLATE = "{input}Sentiment:"  # GLUE sentences end with a space already: no space to add
HARD_PROMPT = "Decide if the movie review is positive or negative.\n"
BATCH = 8
BIG_MODEL = 50_000_000  # parameters: tiny-pretrained has 7.3M, gpt2 124M
DEV_ROWS_BIG = 200  # dev rows scored on a big model by default (accuracy +-0.03); all 872 on a small one


def n_params(config):
    """The model's parameter count, from its shape alone."""
    return sum(math.prod(shape) for shape in param_shapes(config).values())


def dev_rows(args, config, available):
    """How many dev rows the demo scores: --all-dev, --dev-rows, else all on a small model and DEV_ROWS_BIG on
    a model of more than BIG_MODEL parameters."""
    if args.all_dev:
        return available
    return args.dev_rows or (min(available, DEV_ROWS_BIG) if n_params(config) > BIG_MODEL else available)


def measure(model, tok, train_rows, dev, labels):
    """(seconds of one training step of BATCH rows, seconds to score BATCH dev rows), timed here and now.
    The first step runs untimed: it compiles the kernels (or loads them from Numba's cache)."""
    ids, target = pad_batch(train_rows[:BATCH], tok.eos_id)
    prompt = model.wte[:10].astype(model.dtype)  # the shape of the tuned prompt: P = 10
    model.loss_and_grad(prompt, ids, target)
    t = time.perf_counter()
    model.loss_and_grad(prompt, ids, target)
    step = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(model, prompt, dev[:BATCH], tok, labels, BATCH, quiet=True)
    return step, time.perf_counter() - t


def estimate(step_s, score_s, steps, dev_rows, evaluations):
    """Seconds the run will take: its training steps, and `evaluations` passes over `dev_rows` dev rows."""
    return steps * step_s + evaluations * math.ceil(dev_rows / BATCH) * score_s


def minutes(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class Progress(GPT2):
    """The same model (the same arrays), counting its work: a line at every tenth of the estimated work,
    on a terminal or not (train's and evaluate's progress bars show on a terminal only)."""

    def __init__(self, model, step_s, score_s, total_s):
        super().__init__(model.config, model.params, model.name_or_path)
        self.step_s, self.batch_s, self.total_s = step_s, score_s / 3, total_s  # scoring 8 rows = 3 batches
        self.done_s, self.shown, self.t0 = 0.0, 0, time.perf_counter()

    def tick(self, seconds):
        self.done_s += seconds
        tenth = min(9, int(10 * self.done_s / self.total_s))
        if tenth > self.shown:
            self.shown, elapsed = tenth, time.perf_counter() - self.t0
            left = elapsed * (self.total_s - self.done_s) / self.done_s
            print(f"[progress {10 * tenth}%: {minutes(elapsed)} so far, about {minutes(left)} left]", flush=True)

    def loss_and_grad(self, prompt, input_ids, labels, need_grad=True):
        result = super().loss_and_grad(prompt, input_ids, labels, need_grad)
        self.tick(self.step_s if need_grad else self.batch_s)
        return result

    def head(self, x):  # evaluate: one head per scored batch
        self.tick(self.batch_s)
        return super().head(x)


def head_of(tsv, rows, out):
    """The header and the first `rows` rows of a TSV, written to `out` (the demo's smaller data)."""
    lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return str(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-pretrained",
                        help="default: tiny-pretrained (shipped, ~1 minute); gpt2: the real one (500 MB download)")
    parser.add_argument("--rows", type=int, default=2000, help="training sentences (default 2000, all of train.tsv)")
    parser.add_argument("--dev-rows", type=int,
                        help=f"dev sentences to score (default: all 872, or {DEV_ROWS_BIG} on a model of more "
                             f"than {BIG_MODEL // 10**6}M parameters such as gpt2)")
    parser.add_argument("--all-dev", action="store_true", help="score all 872 dev sentences, whatever the model")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="runs/demo", help="run directory, replaced each time")
    args = parser.parse_args(argv)
    try:
        model = load_model_or_fallback(args.model)
        tok = load_tokenizer(model.name_or_path)
        rows = args.rows
        out = Path(args.out)
        (out / "data").mkdir(parents=True, exist_ok=True)
        all_dev = len((DATA / "dev.tsv").read_text(encoding="utf-8").splitlines()) - 1
        train_file = head_of(DATA / "train.tsv", rows, out / "data" / "train.tsv")
        dev_file = head_of(DATA / "dev.tsv", dev_rows(args, model.config, all_dev), out / "data" / "dev.tsv")
        columns = {"input_column": "text", "output_column": "label", "template": TEMPLATE}
        label_words = parse_label_words(LABEL_WORDS)
        dev = load_data(dev_file, tok, label_words=label_words, **columns).examples
        labels = [" negative", " positive"]

        train_examples = load_data(train_file, tok, label_words=label_words, **columns).examples
        step_s, score_s = measure(model, tok, train_examples, dev, labels)
        steps = args.epochs * math.ceil(len(train_examples) / BATCH)
        total_s = estimate(step_s, score_s, steps, len(dev), evaluations=args.epochs + 4)
        subset = "" if len(dev) == all_dev else f" of {all_dev} (--all-dev for all)"
        print(f"{model.name_or_path}: {n_params(model.config) / 1e6:.1f}M parameters; here one training step of "
              f"{BATCH} rows takes {step_s:.2f} s and scoring {BATCH} dev rows {score_s:.2f} s, so tuning and scoring "
              f"should take about {minutes(total_s)}: {steps} steps, and {args.epochs + 4} passes over {len(dev)} dev "
              f"sentences{subset}", flush=True)
        if n_params(model.config) > BIG_MODEL:
            model = Progress(model, step_s, score_s, total_s)

        print(f"\n1. The frozen model on {len(dev)} SST-2 dev sentences, rank classification of {labels}")
        results = [("no prompt", evaluate(model, None, dev, tok, labels)),
                   (f"hard prompt {HARD_PROMPT!r}", evaluate(model, None, with_prefix(dev, tok.encode(HARD_PROMPT)), tok, labels))]
        print(format_results(results))

        print(f"\n2. Tuning 10 virtual tokens on {rows} training sentences (the model's weights stay frozen)")
        cfg = TrainConfig(model=model.name_or_path, data=train_file, val_data=dev_file, out=str(out),
                          num_virtual_tokens=10, init="labels", lr=0.03, epochs=args.epochs, batch_size=8,
                          label_words=LABEL_WORDS, overwrite=True, **columns)
        prompt, _ = train(cfg, model, tok)

        print(f"\n3. The tuned soft prompt on the same {len(dev)} dev sentences")
        results.append((f"soft prompt ({out})", evaluate(model, prompt, dev, tok, labels)))
        print(format_results(results))
        print("\n4. Greedy continuations of dev sentences, without and with the tuned prompt")
        for e in dev[:4]:
            text = tok.decode(e.input_ids[: e.n_input])
            plain = tok.decode(generate(model, e.input_ids[: e.n_input], None, max_new_tokens=4, eos_id=tok.eos_id))
            tuned = tok.decode(generate(model, e.input_ids[: e.n_input], prompt, max_new_tokens=4, eos_id=tok.eos_id))
            print(f"\n{text!r} (label{e.output})\n  no prompt   -> {plain!r}\n  soft prompt -> {tuned!r}")
        print(f"\nloss per epoch: {out / 'loss.png'}; the prompt (PEFT format): {out}/adapter_model.safetensors")
    except TinyPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
