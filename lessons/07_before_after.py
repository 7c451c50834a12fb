"""Lesson 07 -- before and after: four tuned vectors change what a frozen GPT-2 writes.

What it teaches
  This is the experiment of the PEFT prompt-tuning tutorial, which used bloomz-560m; here it runs on GPT-2.
  Four virtual tokens, randomly initialised, are tuned on the role prompts of awesome-chatgpt-prompts ("I
  want you to act as a linux terminal. I will type commands and ..."). These are text rows, so every token
  counts in the loss: the prompt is tuned to make such texts likely, as a language model is. Then the frozen
  model gets "I want you to act as a logistician. ", a role that is not among the training rows, and
  continues it greedily with a repetition penalty of 1.5 (a token already present gets its logit divided
  by 1.5 if positive, multiplied if negative). It does so three times: without a prompt, with the untrained
  random prompt, and with the tuned one. The weights are the same every time; only the 4 vectors in front
  change.

What to look at
  - the continuations. Comparing the untrained prompt with the tuned one separates "some vectors are in
    front" from "the vectors were tuned";
  - the loss on held-out role prompts (rows the prompt never trained on) in the three settings;
  - lessons/out/07_before_after.png: the loss per epoch, and those held-out losses.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from common import DATA, load, parse_args, plot_run, read_rows, save_figure, table, tune, write_rows

from tinyprompt import data
from tinyprompt.generate import generate
from tinyprompt.prompt import init_prompt
from tinyprompt.train import mean_loss

QUERY = "I want you to act as a logistician. "
P, INIT, SEED = 4, "random", 0  # the tutorial's 4 virtual tokens, randomly initialised
LR, SCHEDULE = 0.03, "linear"  # tinyprompt's default lr (the tutorial's 0.005 was for bloomz); linear decay
PENALTY = 1.5  # the tutorial's repetition_penalty


def held_out_loss(model, prompt, examples, pad_id):
    """Mean loss over every token but the first of each row. Without a prompt nothing precedes a row's first
    token, so it cannot be scored; leaving it out everywhere scores the three settings on the same tokens."""
    total = count = 0
    for ids, labels in data.batches(examples, 8, pad_id, shuffle=False):
        labels[:, 0] = data.IGNORE_INDEX
        n = int((labels != data.IGNORE_INDEX).sum())
        total, count = total + model.loss(prompt, ids, labels) * n, count + n
    return total / count


def show_text(text):
    return textwrap.fill(text.replace("\n", " \\n "), 110, initial_indent="   | ", subsequent_indent="   | ")


def main():
    args = parse_args(__doc__)
    model, tok = load(args)
    eos, C = tok.eos_id, model.config.n_embd
    n_train, n_val, cut = (6, 4, 32) if args.quick else (30, 8, 48)
    epochs, batch_size, new_tokens = (2, 4, 10) if args.quick else (5, 8, 40)

    # 1. the data: the first rows of the file, each cut to its opening tokens (where "I want you to act as" is)
    rows = read_rows(DATA / "awesome-chatgpt-prompts" / "prompts.csv")
    cut_rows = [{"prompt": tok.decode(tok.encode(r["prompt"])[:cut])} for r in rows[: n_train + n_val]]
    train_path = write_rows(cut_rows[:n_train], "07_roles_train.csv")
    val_path = write_rows(cut_rows[n_train:], "07_roles_val.csv")
    where = [i for i, r in enumerate(rows) if r["prompt"].startswith(QUERY.strip())]
    print(f"\n1. data: the first {n_train} role prompts of data/awesome-chatgpt-prompts/prompts.csv to train on, "
          f"the next {n_val} held out; each cut to its first {cut} tokens")
    print(f"   a training row: {cut_rows[2]['prompt'][:100]!r}...")
    print(f"   the logistician's own prompt is row {where[0] if where else None} of {len(rows)}: "
          f"{'not ' if not where or where[0] >= n_train + n_val else ''}among the rows used here")

    # 2. tune
    print(f"\n2. tuning P={P} virtual tokens (init {INIT}), AdamW lr {LR} {SCHEDULE}, {epochs} epochs, batch "
          f"{batch_size}; every token of a row counts")
    prompt, metrics = tune(model, tok, "07_roles", data=str(train_path), val_data=str(val_path), text_column="prompt",
                           num_virtual_tokens=P, init=INIT, lr=LR, lr_schedule=SCHEDULE, epochs=epochs,
                           batch_size=batch_size, seed=SEED)
    untrained = init_prompt(INIT, P, model.wte, seed=SEED)  # [P, C]: where train() started (same call, same seed)
    val_rows = data.load_data(val_path, tok, text_column="prompt").examples
    val0 = mean_loss(model, untrained, val_rows, batch_size, eos)

    # 3. held-out loss, on the same tokens in all three settings
    settings = {"no prompt": np.zeros((0, C), np.float32), "untrained random prompt": untrained,
                "tuned prompt": prompt}
    losses = {name: held_out_loss(model, p, val_rows, eos) for name, p in settings.items()}
    print(f"\n3. loss on the {n_val} held-out rows (every token but each row's first)")
    table(["setting", "virtual tokens", "held-out loss"],
          [(name, p.shape[0], f"{losses[name]:.4f}") for name, p in settings.items()])

    # 4. before and after
    ids = tok.encode(QUERY)
    print(f"\n4. greedy continuation of {QUERY!r}, {new_tokens} new tokens at most, repetition penalty {PENALTY}")
    for name, p in settings.items():
        new = generate(model, ids, p if p.shape[0] else None, max_new_tokens=new_tokens,
                       repetition_penalty=PENALTY, eos_id=eos)
        print(f"   {name}:")
        print(show_text(QUERY + tok.decode(new)))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [1.3, 1]})
    plot_run(ax1, metrics, val0, "held-out rows (epoch 0: untrained)", "loss (cross-entropy, nats per token)", vocab_size=model.config.vocab_size)
    ax1.set_title(f"tuning {P} virtual tokens on {n_train} role prompts")
    ax1.legend()
    names = list(settings)
    bars = ax2.bar(range(len(names)), [losses[n] for n in names], color=["grey", "C1", "C2"])
    ax2.bar_label(bars, fmt="%.3f")
    ax2.set_xticks(range(len(names)), [n.replace(" random", "\nrandom") for n in names])
    low, high = min(losses.values()), max(losses.values())
    ax2.set_ylim(max(0, low - 0.6 * (high - low + 0.1)), high + 0.3 * (high - low + 0.1))
    ax2.set_ylabel("held-out loss (nats per token, first token of each row excluded)")
    ax2.set_title(f"the {n_val} held-out role prompts")
    fig.suptitle(f"Lesson 07: before and after prompt tuning ({model.name_or_path})")
    save_figure(fig, "07_before_after")


if __name__ == "__main__":
    main()
