"""Pretrain tiny-pretrained from scratch: a 4-layer GPT-2 with the real GPT-2 tokenizer, on pretrain/corpus.py.

    .venv/bin/python pretrain/pretrain.py            # ~27 minutes on 2 CPU cores -> tinyprompt/assets/tiny-pretrained/
    make pretrain                                    # the same, installing the reference extra (torch) first

A build tool, not part of the package: it uses torch and transformers (the `reference` extra), which tinyprompt
itself never imports. Seeded end to end (corpus, init, batch order), so a rerun gives a model of the same
quality; bit-identical weights would also need the same torch build and thread count.

Training, in numbers: GPT2LMHeadModel(n_layer=4, n_embd=128, n_head=4, n_positions=256, vocab 50,257, tied
head, no dropout), AdamW (0.9, 0.95), lr 3e-3 with 100 warmup steps and a cosine decay to 10%, weight decay
0.1 on matrices, batches of 32 rows x 128 tokens cut from the packed corpus (documents joined by <|endoftext|>).
The output layer is the model's cost: 50,257 x 128 per token. Two savings make 30 CPU minutes enough:
- the loss counts every ANSWER token (the verdict, the sum, the antonym: corpus.py marks them) and a random
  TEXT_FRACTION of the other tokens, so most positions skip the head (the whole sequence still runs through
  the blocks; the text positions that count are an unbiased sample of the language-modelling loss);
- the corpus uses under a third of the vocabulary, so for the first SHORTLIST_FRACTION of the steps the softmax
  runs over the corpus's tokens only; the last steps use the full vocabulary, which pushes every token the
  corpus never uses down to a low probability, as a full softmax always would.
Weights are stored in float16 (14 MB).
"""

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pretrain.corpus import build_corpus
from tinyprompt.tokenizer import bundled_tokenizer

SHORTLIST_FRACTION = 0.9  # of the steps, with the softmax over the corpus's tokens only
TEXT_FRACTION = 0.1  # of the non-answer targets, counted in each step's loss
ASSETS = ROOT / "tinyprompt" / "assets"


def token_stream(docs, tokenizer):
    """(ids, is_answer): the (context, answer) documents as one array of ids, each followed by <|endoftext|>,
    and a same-length bool array that marks the answer tokens."""
    contexts = tokenizer.backend.encode_batch([c for c, _ in docs], add_special_tokens=False)
    answers = tokenizer.backend.encode_batch([a for _, a in docs], add_special_tokens=False)
    ids, is_answer = [], []
    for c, a in zip(contexts, answers):
        ids += [*c.ids, *a.ids, tokenizer.eos_id]
        is_answer += [False] * len(c.ids) + [True] * len(a.ids) + [False]
    return np.array(ids, dtype=np.int64), np.array(is_answer)


def make_model(seed):
    torch.manual_seed(seed)
    # gelu_pytorch_tanh is GPT-2's gelu_new (the tanh approximation) in one fused op instead of five: the
    # same function, a faster step. write_folder stores "gelu_new", the name every GPT-2 config uses.
    config = GPT2Config(vocab_size=50257, n_positions=256, n_embd=128, n_layer=4, n_head=4,
                        activation_function="gelu_pytorch_tanh", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=50256, eos_token_id=50256)
    return GPT2LMHeadModel(config)


def lr_at(step, steps, peak, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def loss_on(model, rows, counted, vocab=None):
    """Next-token cross-entropy of rows [B, T+1] at the targets marked in counted [B, T]; over the token ids
    `vocab` only, if given. Only the counted positions go through the [C, V] head: that is the saving."""
    x, y = rows[:, :-1], rows[:, 1:]
    h = model.transformer(input_ids=x).last_hidden_state[counted]  # [B, T, C] -> [M, C]
    y = y[counted]  # [M]
    w = model.transformer.wte.weight  # [V, C], tied head
    if vocab is not None:
        w, y = w[vocab.ids], vocab.index[y]
    return torch.nn.functional.cross_entropy(h @ w.T, y)  # [M, V'] -> the mean loss


class Shortlist:
    """The corpus's token ids, and a map from a full id to its index among them."""

    def __init__(self, stream):
        self.ids = torch.from_numpy(np.unique(stream))
        self.index = torch.zeros(50257, dtype=torch.long)
        self.index[self.ids] = torch.arange(len(self.ids))


def write_folder(model, out, info):
    """config.json + model.safetensors (float16) + the tokenizer files, into `out`, replaced whole."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.activation_function = "gelu_new"
    model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    model.to(torch.float32)
    shutil.copy(ASSETS / "encoder.json", tmp / "vocab.json")  # GPT-2's BPE files, as transformers names them
    shutil.copy(ASSETS / "vocab.bpe", tmp / "merges.txt")
    (tmp / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "model_max_length": 256, "bos_token": "<|endoftext|>",
         "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=1) + "\n")
    (tmp / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.copy(Path(__file__).with_name("MODEL_CARD.md"), tmp / "README.md")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    parser.add_argument("--batch", type=int, default=32, help="rows per step (default 32)")
    parser.add_argument("--ctx", type=int, default=128, help="tokens per row (default 128)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ASSETS / "tiny-pretrained")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    tok = bundled_tokenizer()
    docs = build_corpus(seed=args.seed)
    stream, is_answer = token_stream(docs, tok)
    n_rows = (len(stream) - 1) // args.ctx
    windows = lambda a: np.lib.stride_tricks.sliding_window_view(a, args.ctx + 1)[::args.ctx][:n_rows]
    rows = torch.from_numpy(windows(stream).copy())  # [n_rows, ctx + 1]
    answer_targets = torch.from_numpy(windows(is_answer)[:, 1:].copy())  # [n_rows, ctx]: target is an answer
    shortlist = Shortlist(stream)
    print(f"corpus: {len(stream):,} tokens, {n_rows:,} rows of {args.ctx + 1}, {len(shortlist.ids):,} distinct "
          f"tokens; {args.steps} steps of {args.batch} rows = {args.steps * args.batch / n_rows:.2f} epochs "
          f"({time.time() - t0:.0f} s)", flush=True)

    model = make_model(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n_rows, generator=gen)
    losses, pos = [], 0
    for step in range(args.steps):
        if pos + args.batch > n_rows:
            order, pos = torch.randperm(n_rows, generator=gen), 0
        picked = order[pos : pos + args.batch]
        batch = rows[picked]
        pos += args.batch
        # every answer token counts; of the others, a random TEXT_FRACTION (an unbiased sample of the LM loss)
        counted = answer_targets[picked] | (torch.rand(batch[:, 1:].shape, generator=gen) < TEXT_FRACTION)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        vocab = shortlist if step < SHORTLIST_FRACTION * args.steps else None
        loss = loss_on(model, batch, counted, vocab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step == args.steps - 1:
            print(f"step {step + 1}/{args.steps}  loss {np.mean(losses[-100:]):.3f}  "
                  f"{'shortlist' if vocab else 'full vocabulary'}  {time.time() - t0:.0f} s", flush=True)
    info = {"corpus_sha256": hashlib.sha256(json.dumps(docs).encode()).hexdigest(), "seed": args.seed,
            "steps": args.steps, "batch": args.batch, "ctx": args.ctx, "lr": args.lr,
            "corpus_tokens": len(stream), "distinct_tokens": len(shortlist.ids),
            "final_loss_full_vocabulary": float(np.mean(losses[-100:])), "seconds": round(time.time() - t0),
            "threads": args.threads, "torch": torch.__version__}
    write_folder(model.eval(), args.out, info)
    print(f"wrote {args.out} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
