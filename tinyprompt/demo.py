"""`make demo`: tune a soft prompt for SST-2 sentiment on a frozen GPT-2, then measure what it changed.

    python -m tinyprompt.demo [--model gpt2] [--rows 2000] [--epochs 2]

1. the frozen model's dev accuracy with no prompt and with a hand-written hard prompt (rank classification:
   is " positive" or " negative" the likelier next word?);
2. `tinyprompt tune` on SST-2 training sentences: 10 virtual tokens initialised from the label words;
3. the dev accuracy with the tuned soft prompt, and two generations with and without it.
Everything it prints is measured in this run. Without network it uses tiny-pretrained, a 4-layer GPT-2 pretrained
by this project (pretrain/), whose corpus never shows the template "{input}Sentiment:", and says so in one line.
"""

import argparse
import sys
from pathlib import Path

from .api import load_model_or_fallback, load_tokenizer
from .data import load_data, parse_label_words
from .errors import TinyPromptError
from .evaluate import evaluate, format_results, with_prefix
from .generate import generate
from .train import TrainConfig, train

DATA = Path(__file__).resolve().parent / "assets" / "data" / "sst2"  # packaged: works after pip install
LABEL_WORDS = "0= negative,1= positive"
TEMPLATE = "{input}Sentiment:"  # GLUE sentences end with a space already: no space to add
HARD_PROMPT = "Decide if the movie review is positive or negative.\n"


def head_of(tsv, rows, out):
    """The header and the first `rows` rows of a TSV, written to `out` (the demo's smaller data)."""
    lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return str(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2", help="default: gpt2; tiny-pretrained when gpt2 cannot be had")
    parser.add_argument("--rows", type=int, default=2000, help="training sentences (default 2000, all of train.tsv)")
    parser.add_argument("--dev-rows", type=int, default=872, help="dev sentences to score (default 872: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="runs/demo", help="run directory, replaced each time")
    args = parser.parse_args(argv)
    try:
        model = load_model_or_fallback(args.model)
        tok = load_tokenizer(model.name_or_path)
        rows = args.rows
        out = Path(args.out)
        (out / "data").mkdir(parents=True, exist_ok=True)
        train_file = head_of(DATA / "train.tsv", rows, out / "data" / "train.tsv")
        dev_file = head_of(DATA / "dev.tsv", args.dev_rows, out / "data" / "dev.tsv")
        columns = {"input_column": "text", "output_column": "label", "template": TEMPLATE}
        dev = load_data(dev_file, tok, label_words=parse_label_words(LABEL_WORDS), **columns).examples
        labels = [" negative", " positive"]

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
