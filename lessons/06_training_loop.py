"""Lesson 06 -- the training loop: batches, gradient accumulation, learning rate, epochs.

What it teaches
  Tuning repeats one step: take a batch of rows, run loss_and_grad (lessons 04-05), move the prompt a little
  against the gradient. Four choices sit around that step:
  - batches: an epoch's rows, in an order drawn from (seed, epoch), are cut into batches of B rows and
    right-padded to the batch's longest row: ids with EOS, labels with -100, so padding is never scored;
  - gradient accumulation: k micro-batches run one after the other, and their losses and gradients are
    averaged before one optimizer step -- a batch of k * B rows in the memory of B. Each micro-batch counts
    equally, whatever its size, as in a torch loop's `(loss / k).backward()`;
  - the learning rate: how far a step moves the prompt; here it warms up from 0, then a schedule decays it;
  - epochs: passes over the training rows. After each, the loss on held-out validation rows, which the
    prompt never trains on, says whether what it learned carries over to rows it has not seen.
  `train.train` is the loop (`tinyprompt tune` calls it): this lesson takes its pieces apart, then runs it.

What to look at
  - one padded batch: each row's ids and labels, and where the padding goes;
  - the check that two micro-batches of 4 rows give the gradient of one batch of 8, and that 1 + 7 do not;
  - the learning rate at each step under the three schedules;
  - the loss per epoch, train and validation, on the real labels and on shuffled ones, and
    lessons/out/06_training.png (the chance levels ln V and ln 2 / 2 in red).

The claim, measured: tuning lowers the validation loss below its start, and below the validation loss of the
same run on the same rows with their labels shuffled (the control), by at least MARGIN nats. The control can
learn the answer's form (one of two words, then EOS) and how often each label comes; only the real labels
say which review gets which, so only they can take the loss below ln 2 / 2, a coin between the labels.
"""

import matplotlib.pyplot as plt
import numpy as np
from common import (
    DATA,
    chance_lines,
    compare,
    load,
    parse_args,
    plot_run,
    read_rows,
    report,
    save_figure,
    show,
    table,
    tune,
    write_rows,
)

from tinyprompt import data, optim
from tinyprompt.prompt import init_prompt
from tinyprompt.train import mean_loss

P = 8  # virtual tokens
LR, SCHEDULE, WARMUP = 0.03, "cosine", 2  # AdamW at PEFT's prompt-tuning lr; 2 warmup steps, then half a cosine
VAL_SPLIT, SEED = 0.2, 0
SST2 = {"template": "Review: {input}\nSentiment:", "input_column": "text", "output_column": "label"}
LABEL_WORDS = "0= negative,1= positive"  # SST-2's 0/1 labels as the words to learn
FLOAT32 = {"rtol": 1e-4, "atol": 1e-7}  # two float32 sums in another order agree to about this
MARGIN = 0.05  # nats per scored token


def short(text, n=56):
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def main():
    args = parse_args(__doc__)
    model, tok = load(args)
    eos = tok.eos_id
    rows = read_rows(DATA / "sst2" / "train.tsv")
    n_rows, epochs, batch_size, accumulation = (40, 2, 4, 2) if args.quick else (80, 3, 8, 2)
    rows = [rows[i] for i in sorted(np.random.default_rng(SEED).permutation(len(rows))[:n_rows])]
    path = write_rows(rows, "06_sst2.tsv")
    examples = data.load_data(path, tok, label_words=data.parse_label_words(LABEL_WORDS), **SST2).examples
    train_rows, val_rows = data.split_validation(examples, VAL_SPLIT, SEED)  # what train() does with val_split

    # 1. the rows
    e = train_rows[0]
    print(f"\n1. data: {len(rows)} SST-2 rows (seed {SEED}) of data/sst2/train.tsv -> {len(train_rows)} train, "
          f"{len(val_rows)} validation (a seeded {VAL_SPLIT:.0%} held out); labels as words: {LABEL_WORDS!r}")
    print(f"   a row: {tok.decode(e.input_ids[:e.n_input])!r} -> {tok.decode(e.input_ids[e.n_input:])!r}: "
          f"{len(e.input_ids)} tokens, labels -100 x {e.n_input} then {e.labels[e.n_input:]}")

    # 2. batches: a fresh order per epoch, cut into B rows, right-padded
    orders = [data.epoch_order(len(train_rows), SEED, epoch) for epoch in range(2)]
    print(f"\n2. batches of B={batch_size}: the row order is a permutation drawn from (seed, epoch)")
    for epoch, order in enumerate(orders):
        print(f"   epoch {epoch + 1}: rows {order[:12].tolist()} ...")
    first = [train_rows[i] for i in orders[0][:batch_size]]
    ids, labels = data.pad_batch(first, eos)  # [B, T] each: the first batch data.batches yields in epoch 1
    print(f"   the first batch of epoch 1: input_ids and labels {list(ids.shape)} [B, T], T = its longest row; "
          f"padding: id {eos} (EOS), label -100")
    table(["row", "text", "tokens", "padding", "scored"],
          [(r, short(show(tok.decode(e.input_ids[:e.n_input]))), len(e.input_ids), ids.shape[1] - len(e.input_ids),
            int((labels[r] != data.IGNORE_INDEX).sum())) for r, e in enumerate(first)])
    r = int(np.argmin([len(e.input_ids) for e in first]))  # the shortest row: the most padding
    print(f"   row {r} in full:\n   input_ids {ids[r].tolist()}\n   labels    {labels[r].tolist()}")

    # 3. gradient accumulation: the mean of the micro-batches' gradients
    prompt0 = init_prompt("vocab", P, model.wte, seed=SEED)  # [P, C]: the prompt train() starts from below
    eight = train_rows[:8]

    def loss_grad(rows):
        ids, labels = data.pad_batch(rows, eos)
        loss, grad = model.loss_and_grad(prompt0, ids, labels)
        return loss, grad, int((labels != data.IGNORE_INDEX).sum())

    loss8, g8, n8 = loss_grad(eight)
    print(f"\n3. gradient accumulation: one batch of 8 rows ({n8} scored tokens) against micro-batches of it")
    (la, ga, na), (lb, gb, nb) = loss_grad(eight[:4]), loss_grad(eight[4:])
    print(f"   4 + 4 rows ({na} + {nb} scored tokens): the accumulated loss and gradient are (g1 + g2) / 2")
    compare("4+4: mean grad vs 8", (ga + gb) / 2, g8, **FLOAT32)
    compare("4+4: mean loss vs 8", (la + lb) / 2, loss8, **FLOAT32)
    (_, g1, n1), (_, g7, n7) = loss_grad(eight[:1]), loss_grad(eight[1:])
    print(f"   1 + 7 rows ({n1} + {n7} scored tokens): each micro-batch still counts 1/2, so the lone row weighs "
          f"1/2 and each of the 7 others 1/14, instead of 1/8 each")
    compare("1+7: mean grad vs 8", (g1 + g7) / 2, g8, **FLOAT32)
    compare("1+7: token-weighted vs 8", (n1 * g1 + n7 * g7) / (n1 + n7), g8, **FLOAT32)
    print("   (token-weighted: (n1 g1 + n2 g2) / (n1 + n2), with n the scored tokens of each micro-batch)")

    # 4. the learning rate of every optimizer step
    micro = data.num_batches(len(train_rows), batch_size)
    steps_per_epoch = data.num_batches(micro, accumulation)
    total = epochs * steps_per_epoch
    curves = {s: [optim.lr_at(t, LR, s, WARMUP, total) for t in range(total)] for s in optim.SCHEDULES}
    print(f"\n4. {len(train_rows)} rows / B={batch_size} = {micro} micro-batches per epoch; accumulating "
          f"{accumulation} -> {steps_per_epoch} optimizer steps per epoch, {total} in {epochs} epochs")
    print(f"   lr at each step: {WARMUP} warmup steps from 0, then the schedule (this run: {SCHEDULE}, lr {LR})")
    shown = sorted({*range(min(total, 4)), total // 2, total - 2, total - 1})
    table(["step", *optim.SCHEDULES], [(t, *(f"{curves[s][t]:.4f}" for s in optim.SCHEDULES)) for t in shown])

    # 5. the loop itself: train.train, on the real labels and (the control) on the same rows, labels shuffled
    val0 = mean_loss(model, prompt0, val_rows, batch_size, eos)
    train_part, val_part = data.split_validation(rows, VAL_SPLIT, SEED)  # the rows train() holds out, as dicts
    drawn = np.random.default_rng(SEED + 1).permutation([r["label"] for r in train_part])
    shuffled = write_rows([{**r, "label": y} for r, y in zip(train_part, drawn)], "06_sst2_shuffled.tsv")
    val_path = write_rows(val_part, "06_sst2_val.tsv")  # the control is validated on the real labels too
    print(f"\n5. train.train: P={P} virtual tokens (init vocab), AdamW lr {LR} {SCHEDULE}, {epochs} epochs; "
          f"validation loss before the first step: {val0:.4f}")
    print("   twice: on the real labels, and on the same rows with their labels shuffled (the control: it can learn "
          "the answer's form\n   and how often each label comes, but not which review gets which)")
    settings = {"num_virtual_tokens": P, "init": "vocab", "lr": LR, "epochs": epochs,
                "batch_size": batch_size, "accumulation_steps": accumulation, "lr_schedule": SCHEDULE,
                "warmup_steps": WARMUP, "seed": SEED, "label_words": LABEL_WORDS, **SST2}
    runs = {"real labels": tune(model, tok, "06_run", data=str(path), val_split=VAL_SPLIT, **settings)[1],
            "shuffled labels": tune(model, tok, "06_shuffled", data=str(shuffled), val_data=str(val_path),
                                    quiet=True, **settings)[1]}
    metrics = runs["real labels"]
    table(["epoch", "steps", "train loss (mean of its steps)", "validation loss", "shuffled labels: validation"],
          [(0, 0, "", f"{val0:.4f}", f"{val0:.4f}")] +
          [(i + 1, steps_per_epoch * (i + 1), f"{t:.4f}", f"{v:.4f}", f"{c:.4f}") for i, (t, v, c) in
           enumerate(zip(metrics["epoch_losses"], metrics["val_losses"], runs["shuffled labels"]["val_losses"]))])
    print(f"   {metrics['steps_done']} steps, {metrics['timings']['seconds_per_step'] * 1e3:.0f} ms per step "
          f"(validation included); the run's files: lessons/out/06_run/ (adapter, metrics.json, loss.png)")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5))
    for s in optim.SCHEDULES:
        ax1.plot(range(total), curves[s], "o-" if s == SCHEDULE else ".--", lw=2.5 if s == SCHEDULE else 1,
                 label=f"{s}{' (this run)' if s == SCHEDULE else ''}")
    ax1.axvspan(-0.5, WARMUP - 0.5, color="grey", alpha=0.15, label=f"warmup ({WARMUP} steps)")
    for epoch in range(1, epochs):
        ax1.axvline(epoch * steps_per_epoch - 0.5, color="grey", lw=0.5, ls=":")
    ax1.set_xlabel(f"optimizer step ({steps_per_epoch} per epoch: dotted lines)")
    ax1.set_ylabel("learning rate (AdamW step size, embedding units)")
    ax1.set_title(f"the learning rate of each step (peak {LR})")
    ax1.legend()
    for (name, m), color in zip(runs.items(), ("C0", "C7")):
        plot_run(ax2, m, val0, "validation (real labels)", name=f"{name}: ", color=color)
    chance_lines(ax2, model.config.vocab_size, n_labels=2)
    ax2.set_title(f"loss per epoch: {len(train_rows)} train / {len(val_rows)} validation rows, "
                  f"B={batch_size} x {accumulation}")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Lesson 06: the training loop ({model.name_or_path}, P={P})")
    save_figure(fig, "06_training")
    final = {name: m["val_losses"][-1] for name, m in runs.items()}
    report("06", f"tuning lowers the validation loss below its start and at least {MARGIN} nats below the same run "
           "on shuffled labels", final["real labels"] <= min(val0, final["shuffled labels"]) - MARGIN,
           start=val0, real_labels=final["real labels"], shuffled_labels=final["shuffled labels"])


if __name__ == "__main__":
    main()
