"""The `tinyprompt` command: download | generate (tune, eval and inspect come with the tuning workflow).

Every bad input ends in one line `error: ...` on stderr and exit status 2, never a traceback.
"""

import argparse
import sys

from .errors import TinyPromptError


def add_model_arg(p):
    p.add_argument("--model", default="gpt2",
                   help="hub name (gpt2, distilgpt2, gpt2-medium, ...), a local directory with config.json + "
                        "model.safetensors, or tiny-random (random weights, offline; default: %(default)s)")


def add_sampling_args(p):
    p.add_argument("--max-new-tokens", type=int, default=50, help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: the smallest set with this mass")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 makes tokens already in the text less likely (the PEFT tutorial uses 1.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default: %(default)s)")


def cmd_download(args):
    from .hub import find_weights

    print(f"{args.model}: {find_weights(args.model)}")


def cmd_generate(args):
    from .generate import generate
    from .gpt2 import load_model
    from .tokenizer import load_tokenizer

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


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyprompt", description="Soft prompt tuning on GPT-2, in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch a checkpoint into weights/ (or write tiny-random)")
    add_model_arg(p)
    p.set_defaults(run=cmd_download)

    p = sub.add_parser("generate", help="continue a text, with or without a tuned soft prompt")
    add_model_arg(p)
    p.add_argument("--prompt", action="append", metavar="ADAPTER_DIR",
                   help="a tuned soft prompt (PEFT adapter directory); repeat to compare several")
    add_sampling_args(p)
    p.add_argument("text", help="the text to continue")
    p.set_defaults(run=cmd_generate)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except TinyPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
