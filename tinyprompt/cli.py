"""The `tinyprompt` command (also `python -m tinyprompt`): download | tune | generate | eval | inspect.

    tinyprompt tune --model tiny-random --data train.jsonl --out runs/demo      # -> runs/demo/ (PEFT adapter)
    tinyprompt generate --model tiny-random --prompt runs/demo "Q: 1 plus 1?"
    tinyprompt eval --model tiny-random --prompt runs/demo --data dev.jsonl
    tinyprompt inspect runs/demo --model tiny-random

Every bad input ends in one line `error: ...` on stderr and exit status 2, never a traceback.
"""

import argparse
import sys

from .errors import TinyPromptError


def add_model_arg(p):
    p.add_argument("--model", default="gpt2",
                   help="a hub name (gpt2 = openai-community/gpt2, distilgpt2, gpt2-medium, org/name: from the "
                        "Hugging Face cache, downloaded once), a local folder with config.json + model.safetensors, "
                        "tiny-pretrained (shipped, offline) or tiny-random (random weights; default: %(default)s)")


def add_sampling_args(p):
    p.add_argument("--max-new-tokens", type=int, default=50, help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: the smallest set with this mass")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 makes tokens already in the text less likely (the PEFT tutorial uses 1.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default: %(default)s)")


def cmd_download(args):
    from .hub import download

    print(f"{args.model}: {download(args.model, args.to)}")


def check_sampling_args(args):
    """Refuse sampling settings that have no meaning, before the model loads (the checks of tp.generate)."""
    from .validate import sampling

    sampling("cli", args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.seed)


def cmd_generate(args):
    from .generate import generate
    from .hub import load_model, load_tokenizer

    check_sampling_args(args)
    if not args.text:
        raise TinyPromptError("the text to continue is empty: give at least one character")
    model, tok = load_model(args.model), load_tokenizer(args.model)
    prompts = [None]
    if args.prompt:
        from .prompt import load_prompt

        prompts = [load_prompt(d, model.config.n_embd)[0] for d in args.prompt]
    for directory, prompt in zip(args.prompt or [None], prompts):
        new = generate(model, tok.encode(args.text), prompt, max_new_tokens=args.max_new_tokens,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       repetition_penalty=args.repetition_penalty, eos_id=tok.eos_id, seed=args.seed)
        if len(prompts) > 1:
            print(f"--- {directory}")
        print(args.text + tok.decode(new))


def add_data_args(p):
    p.add_argument("--template", default="{input}",
                   help="how an input becomes text, e.g. 'Review: {input} Sentiment:'; nothing is added between "
                        "it and the output, so put separators here (default: %(default)s)")
    p.add_argument("--input-column", help="the input column / JSON key of pair rows (default: input)")
    p.add_argument("--output-column", help="the output column / JSON key of pair rows (default: output)")
    p.add_argument("--text-column", help="train on whole texts from this column (default: text, when the file "
                                         "has no input/output)")
    p.add_argument("--label-words", metavar="'VALUE=WORD,...'",
                   help="replace outputs by words, e.g. '0= negative,1= positive' for SST-2's 0/1 labels "
                        "(nothing is stripped: keep the space before the word)")


def cmd_tune(args):
    from dataclasses import fields

    from .train import TrainConfig, train

    _, metrics = train(TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)}))
    best = f"; best/: epoch {metrics['validation']['best_epoch']}" if metrics.get("validation") else ""
    print(f"saved {args.out}: adapter_config.json + adapter_model.safetensors (PEFT), metrics.json, loss.png{best}")


def cmd_eval(args):
    from .data import check_template, load_data, parse_label_words
    from .evaluate import check_scorable, evaluate, format_results, parse_labels, with_prefix
    from .hub import load_model, load_tokenizer
    from .prompt import check_prompt_fits, load_prompt
    from .validate import integer

    integer("--batch-size", args.batch_size, low=1)
    integer("--limit", args.limit, low=1, optional=True)
    check_template(args.template)
    words = parse_label_words(args.label_words) if args.label_words else None
    labels = parse_labels(args.labels, args.label_words)
    model, tok = load_model(args.model), load_tokenizer(args.model)
    runs = [(d, load_prompt(d, model.config.n_embd)[0], []) for d in args.prompt or []]
    runs += [(f"hard: {text!r}", None, tok.encode(text)) for text in args.hard_prompt or []]
    runs = runs or [("(no prompt)", None, [])]
    longest = max((0 if p is None else len(p)) + len(prefix) for _, p, prefix in runs)
    check_prompt_fits(longest, model.config.n_positions, "--prompt/--hard-prompt")
    data = load_data(args.data, tok, args.template, model.config.n_positions - longest, False, args.input_column,
                     args.output_column, args.text_column, words)
    if labels and data.kind != "pairs":
        raise TinyPromptError(f"{args.data}: --labels needs input/output rows, not text rows")
    examples = data.examples[: args.limit]
    check_scorable(examples, tok, labels, model.config.n_positions - longest - max(e.n_input for e in examples))
    print(f"eval: {args.data}, {len(examples)} rows ({data.kind})" + (f", labels {labels}" if labels else ""))
    results = [(name, evaluate(model, prompt, with_prefix(examples, prefix), tok, labels, args.batch_size,
                               args.quiet)) for name, prompt, prefix in runs]
    print(format_results(results))


def offline_base_model(adapter, base):
    """The adapter's base model if it needs no download (a local folder or a shipped model): `inspect` reads a
    file someone else may have written, so a name in it must not make us fetch from the hub."""
    from pathlib import Path

    if base in ("tiny-random", "tiny-pretrained") or (base and Path(base).expanduser().is_dir()):
        return base
    raise TinyPromptError(f"{adapter}: its base model {base!r} is not a local folder: name it with --model")


def cmd_inspect(args):
    from .evaluate import inspect_prompt
    from .hub import load_model, load_tokenizer
    from .prompt import load_prompt
    from .validate import integer

    integer("--k", args.k, low=1)
    prompt, fields = load_prompt(args.adapter)
    name = args.model or offline_base_model(args.adapter, fields.get("base_model_name_or_path"))
    model, tok = load_model(name), load_tokenizer(name)
    print(f"{args.adapter}: {prompt.shape[0]} virtual tokens x {prompt.shape[1]} channels, model {name}")
    print("\n".join(inspect_prompt(prompt, model.wte, tok, args.k)))


def add_tune_parser(sub):
    from .config import DEFAULT_VIRTUAL_TOKENS, OPTIMIZERS, TrainConfig
    from .optim import SCHEDULES
    from .prompt import INIT_METHODS

    d = TrainConfig()
    p = sub.add_parser("tune", help="tune a soft prompt on a data file; writes a PEFT adapter to --out",
                       description="Tune a soft prompt (Lester et al. 2021) for a frozen GPT-2. Writes OUT/"
                                   "adapter_config.json + adapter_model.safetensors (loadable by PEFT), "
                                   "metrics.json, loss.png and checkpoint.npz (for --resume) after every epoch.")
    add_model_arg(p)
    p.add_argument("--data", required=True, help=".jsonl ({input, output} or {text} rows), .csv or .tsv")
    p.add_argument("--out", required=True, help="run directory; refused if it already holds a run, unless "
                                                "--overwrite or --resume")
    p.add_argument("--val-data", help="validation file: its loss and accuracy (--labels) or exact match are "
                                      "printed and plotted before training (epoch 0) and after every epoch, and "
                                      "OUT/best/ keeps the prompt of the best epoch (no validation, no best/)")
    p.add_argument("--val-split", type=float, help="hold out this fraction of --data for validation (e.g. 0.1)")
    p.add_argument("--labels", metavar="' positive',' negative'",
                   help="comma-separated label strings: the validation accuracy is rank classification among "
                        "them (default: the --label-words words; without either, exact match)")
    p.add_argument("--early-stopping", type=int, metavar="N", help="stop when the validation accuracy (exact "
                   "match, or loss for text rows) has not improved for N epochs; needs --val-data or --val-split")
    p.add_argument("--num-virtual-tokens", type=int, metavar="P",
                   help=f"soft-prompt length (default: {DEFAULT_VIRTUAL_TOKENS}, or the --init-from adapter's)")
    p.add_argument("--init", choices=INIT_METHODS, default=d.init,
                   help="random: uniform [-0.5, 0.5]; vocab: embeddings of frequent tokens; text: of --init-text; "
                        "labels: of the distinct outputs, the rest vocab (default: %(default)s)")
    p.add_argument("--init-text", help="the text for --init text (repeated or cut to P tokens, as PEFT does)")
    p.add_argument("--init-from", metavar="ADAPTER_DIR", help="start from a saved prompt (ours or PEFT's)")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate, > 0 (default: adamw 0.03, sgd 0.1, "
                                                          "adafactor 0.3 as Lester et al.)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over --data (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="rows per batch (default: %(default)s)")
    p.add_argument("--accumulation-steps", type=int, default=d.accumulation_steps,
                   help="batches per update; the update uses their mean loss (default: %(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="adamw: torch's AdamW; sgd: momentum 0.9; adafactor: Lester et al.'s (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="pull the prompt towards 0 each update (default: %(default)s)")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default=d.lr_schedule,
                   help="after --warmup-steps of linear warmup from 0 (default: %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="first updates with the lr rising from 0 (default: %(default)s)")
    p.add_argument("--max-grad-norm", type=float, help="clip the gradient to this L2 norm (default: no clipping)")
    p.add_argument("--seed", type=int, default=d.seed, help="batch order, init, --val-split (default: %(default)s)")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep file order every epoch")
    add_data_args(p)
    p.add_argument("--truncate", action="store_true", help="cut rows longer than the context (reported) "
                                                           "instead of refusing them")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (same settings; "
                                                         "--epochs may be raised)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(run=cmd_tune)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line `error: ...` (exit 2) instead of the whole usage text."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def check_text(argv):
    """The edge for text: arguments that are not valid UTF-8 reach Python as lone surrogates
    (surrogateescape); refuse them here, once, instead of letting them fail deep inside."""
    for i, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise TinyPromptError(f"argument {i + 1} {arg!r} is not valid UTF-8 text") from None


def build_parser():
    parser = Parser(prog="tinyprompt", description="Soft prompt tuning on GPT-2, in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch a model into the Hugging Face cache (or a copy into --to DIR)",
                       description="Download a hub model into the Hugging Face cache (HF_HOME / HF_HUB_CACHE), "
                                   "where every later run, offline too, finds it; print its folder.")
    p.add_argument("model", metavar="MODEL", help="hub name (gpt2, openai-community/gpt2, ...), tiny-pretrained, "
                                                  "tiny-random or a local folder")
    p.add_argument("--to", metavar="DIR", help="also copy config.json, model.safetensors and tokenizer.json "
                                               "into DIR (e.g. weights/gpt2)")
    p.set_defaults(run=cmd_download)

    p = sub.add_parser("generate", help="continue a text, with or without a tuned soft prompt")
    add_model_arg(p)
    p.add_argument("--prompt", action="append", metavar="ADAPTER_DIR",
                   help="a tuned soft prompt (PEFT adapter directory); repeat to compare several")
    add_sampling_args(p)
    p.add_argument("text", help="the text to continue")
    p.set_defaults(run=cmd_generate)

    add_tune_parser(sub)

    p = sub.add_parser("eval", help="loss, exact match and rank-classification accuracy of prompts on data")
    add_model_arg(p)
    p.add_argument("--prompt", action="append", metavar="ADAPTER_DIR", help="a soft prompt; repeat to compare")
    p.add_argument("--hard-prompt", action="append", metavar="TEXT",
                   help="a text put before every input; repeat to compare (no prompt at all if neither is given)")
    p.add_argument("--data", required=True, help="pair rows (loss, exact match, accuracy) or text rows (loss)")
    p.add_argument("--labels", metavar="' positive',' negative'",
                   help="comma-separated label strings: rank classification picks the one with the highest "
                        "log-probability after the input (default: the --label-words words)")
    add_data_args(p)
    p.add_argument("--batch-size", type=int, default=8, help="rows per forward pass (default: %(default)s)")
    p.add_argument("--limit", type=int, help="use only the first N rows")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("inspect", help="a tuned prompt's norms and nearest vocabulary tokens")
    p.add_argument("adapter", metavar="ADAPTER_DIR")
    p.add_argument("--model", help="the model whose vocabulary to compare with (default: the adapter's "
                                   "base_model_name_or_path)")
    p.add_argument("--k", type=int, default=5, help="neighbours per virtual token (default: %(default)s)")
    p.set_defaults(run=cmd_inspect)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        check_text(argv)
        args = build_parser().parse_args(argv)
        args.run(args)
        sys.stdout.flush()  # here, not at exit: a reader that closed the pipe is caught below
    except TinyPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout was closed by its reader (`| head`): stop quietly, as `cat` does
        stdout_to_devnull()
        return 141  # 128 + SIGPIPE, the shell's status for a process a closed pipe ended
    return 0


def stdout_to_devnull():
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing will flush it
        pass


if __name__ == "__main__":
    sys.exit(main())
