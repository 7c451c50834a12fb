# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
# %% [markdown]
# # Lesson 06: the training loop: batches, gradient accumulation, learning rate, epochs.
#
# ## What it teaches
# Tuning repeats one step: take a batch of rows, run loss_and_grad (lessons 04-05), move the prompt a little
# against the gradient. Four choices sit around that step:
# - batches: an epoch's rows, in an order drawn from (seed, epoch), are cut into batches of B rows and
#   right-padded to the batch's longest row: ids with EOS, labels with -100, so padding is never scored;
# - gradient accumulation: k micro-batches run one after the other, and their losses and gradients are
#   averaged before one optimizer step -- a batch of k * B rows in the memory of B. Each micro-batch counts
#   equally, whatever its size, as in a torch loop's `(loss / k).backward()`;
# - the learning rate: how far a step moves the prompt; here it warms up from 0, then a schedule decays it;
# - epochs: passes over the training rows. After each, the loss on held-out validation rows, which the
#   prompt never trains on, says whether what it learned carries over to rows it has not seen.
# `train.train` is the loop (`tinyprompt tune` calls it): this lesson takes its pieces apart, then runs it.
#
# ## Words this lesson uses
# - **SST-2**: the Stanford Sentiment Treebank's binary task: one movie-review sentence per row, label 1
#   (positive) or 0 (negative), lower-cased and tokenized as in the GLUE benchmark. `data/sst2/train.tsv` holds
#   the first 2,000 of its 67,349 training sentences, `data/sst2/dev.tsv` all 872 of its **dev** sentences
#   (data/SOURCES.md).
# - **dev split** vs **validation rows**: SST-2's dev set is the official held-out set (its test labels are not
#   public), so the lessons score accuracy on it (lesson 08). The *validation rows* of this lesson are
#   different: a seeded 20% of this lesson's own training rows that `train.train` holds out of training.
# - **lr**, the learning rate: the size of an optimizer step. With AdamW (section 5 below) it is, at first,
#   about how far each of the P x C numbers of the prompt moves in one step.
# - **init vocab / init labels**: where the prompt's P vectors start (`tinyprompt/prompt.py`). `vocab`: rows of
#   `wte` (the embedding matrix, [lesson 01](01_vectorization.py)) for P ids drawn at random from the 5,000
#   lowest, roughly the most frequent tokens (Lester et al.'s "sampled vocab"); `labels`: one vector per label
#   word (" negative", " positive": its embedding), the remaining rows as `vocab`.
#   [Lesson 09](09_initialization.py) compares the starts.
# - **KL divergence**, how far apart two next-token distributions are, in nats: defined in
#   [lesson 02](02_concatenation.py), step 3 (this lesson compares losses, not distributions).
# - **nats**: the unit of a loss computed with the natural logarithm: a loss of ln 2 = 0.693 nats is a coin
#   flip between two answers. The loss is the mean cross-entropy per scored token ([lesson 04](04_loss.py)); a
#   row here scores two tokens, its label word and the EOS after it, so a coin between the two labels with
#   the EOS certain costs (ln 2 + 0) / 2 = 0.347 nats per token.
#
# ## What to look at
# - one padded batch: each row's ids and labels, and where the padding goes;
# - the check that two micro-batches of 4 rows give the gradient of one batch of 8, and that 1 + 7 do not;
# - the learning rate at each step under the three schedules, and one AdamW step worked by hand;
# - the loss per epoch, train and validation, on the real labels and on shuffled ones, and
#   lessons/out/06_training.png (the chance levels ln V and ln 2 / 2 in red).
#
# **The claim, measured:** tuning lowers the validation loss below its start, and below the validation loss of
# the same run on the same rows with their labels shuffled (the control), by at least `MARGIN` = 0.05 nats. The
# control can learn the answer's form (one of two words, then EOS) and how often each label comes; only the
# real labels say which review gets which. That is why the claim compares the two runs with each other and
# not with a chance line: the control is *not* held above ln 2 / 2. A guess that ignores the review can get
# down to $H(q)/2$, the entropy of the validation rows' label share $q$ over the two scored tokens, which is
# below ln 2 / 2 as soon as the labels are uneven; and the control's prompt does not stop the frozen model
# from reading the review, whose own sense of sentiment can take it a little lower still. Section 6 prints
# that floor next to the control.

# %%
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

# %%
args = parse_args()
model, tok = load(args)
eos = tok.eos_id
rows = read_rows(DATA / "sst2" / "train.tsv")
n_rows, epochs, batch_size, accumulation = (40, 2, 4, 2) if args.quick else (80, 3, 8, 2)
rows = [rows[i] for i in sorted(np.random.default_rng(SEED).permutation(len(rows))[:n_rows])]
path = write_rows(rows, "06_sst2.tsv")
examples = data.load_data(path, tok, label_words=data.parse_label_words(LABEL_WORDS), **SST2).examples
train_rows, val_rows = data.split_validation(examples, VAL_SPLIT, SEED)  # what train() does with val_split

# %% [markdown]
# ## 1. the rows

# %%
e = train_rows[0]
print(f"\n1. data: {len(rows)} SST-2 rows (seed {SEED}) of data/sst2/train.tsv -> {len(train_rows)} train, "
      f"{len(val_rows)} validation (a seeded {VAL_SPLIT:.0%} held out); labels as words: {LABEL_WORDS!r}")
print(f"   a row: {tok.decode(e.input_ids[:e.n_input])!r} -> {tok.decode(e.input_ids[e.n_input:])!r}: "
      f"{len(e.input_ids)} tokens, labels -100 x {e.n_input} then {e.labels[e.n_input:]}")

# %% [markdown]
# ## 2. batches: a fresh order per epoch, cut into B rows, right-padded

# %%
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

# %% [markdown]
# ## 3. gradient accumulation: the mean of the micro-batches' gradients

# %%
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

# %% [markdown]
# ## 4. the learning rate of every optimizer step

# %%
micro = data.num_batches(len(train_rows), batch_size)
steps_per_epoch = data.num_batches(micro, accumulation)
total = epochs * steps_per_epoch
curves = {s: [optim.lr_at(t, LR, s, WARMUP, total) for t in range(total)] for s in optim.SCHEDULES}
print(f"\n4. {len(train_rows)} rows / B={batch_size} = {micro} micro-batches per epoch; accumulating "
      f"{accumulation} -> {steps_per_epoch} optimizer steps per epoch, {total} in {epochs} epochs")
print(f"   lr at each step: {WARMUP} warmup steps from 0, then the schedule (this run: {SCHEDULE}, lr {LR})")
shown = sorted({*range(min(total, 4)), total // 2, total - 2, total - 1})
table(["step", *optim.SCHEDULES], [(t, *(f"{curves[s][t]:.4f}" for s in optim.SCHEDULES)) for t in shown])

# %% [markdown]
# ## 5. one AdamW step by hand
#
# `train.train` moves the prompt with AdamW (`tinyprompt/optim.py`, torch's rule line for line). For the
# prompt $\theta$ [P, C], its gradient $g$ at step $t = 1, 2, \dots$, the learning rate $\eta$ (lr), the weight
# decay $\lambda$, and torch's constants $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\epsilon = 10^{-8}$, with
# $m_0 = v_0 = 0$ and every product taken entry by entry ($\odot$):
#
# $$\theta \leftarrow (1 - \eta\lambda)\,\theta \qquad \text{(decoupled weight decay: the prompt shrinks, the gradient is untouched)}$$
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g \odot g$$
#
# $$\hat m_t = \frac{m_t}{1 - \beta_1^t} \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}
# \qquad \text{(bias correction: } m \text{ and } v \text{ start at 0)}$$
#
# $$\theta \leftarrow \theta - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}$$
#
# $m$ is a running mean of the gradient, $v$ of its square. At $t = 1$ the corrections make $\hat m_1 = g$ and
# $\hat v_1 = g \odot g$, so the step is $\eta\, g / (|g| + \epsilon)$: every entry moves by almost exactly
# $\eta$, whatever the size of its gradient -- which is why lr reads as a distance. Later, an entry whose
# gradient keeps its sign keeps steps near $\eta$; one whose gradient flips sign gets smaller ones. The cell
# below does the first step on the gradient of section 3's batch of 8, with $\lambda = 0.01$ so that every term
# shows (the runs below use tinyprompt's default, $\lambda = 0$), and checks it against `optim.AdamW`.

# %%
b1, b2, adam_eps, wd = optim.AdamW.beta1, optim.AdamW.beta2, optim.AdamW.eps, 0.01
g = g8.astype(np.float64)  # [P, C]: the gradient of the batch of 8 at prompt0
theta = prompt0.astype(np.float64) * (1 - LR * wd)  # decoupled weight decay
m, v = np.zeros_like(g), np.zeros_like(g)  # m_0 = v_0 = 0
m = b1 * m + (1 - b1) * g  # m_1
v = b2 * v + (1 - b2) * g * g  # v_1: g * g is element-wise
m_hat, v_hat = m / (1 - b1**1), v / (1 - b2**1)  # bias correction at t = 1
theta = theta - LR * m_hat / (np.sqrt(v_hat) + adam_eps)
by_torch_rule = prompt0.copy()
optim.AdamW(weight_decay=wd).step(by_torch_rule, g8, LR)  # the optimizer train() uses, in place
print(f"\n5. one AdamW step by hand (lr {LR}, weight decay {wd}, t = 1) on the batch-of-8 gradient:")
j = int(np.argmax(np.abs(g[0])))  # the entry of virtual token 0 with the largest gradient
table(["entry", "theta", "g", "m_1", "v_1", "m_hat", "v_hat", "step = theta_new - theta"],
      [(f"[0, {j}]", f"{prompt0[0, j]:+.4f}", f"{g[0, j]:+.2e}", f"{m[0, j]:+.2e}", f"{v[0, j]:.2e}",
        f"{m_hat[0, j]:+.2e}", f"{v_hat[0, j]:.2e}", f"{theta[0, j] - prompt0[0, j]:+.4f}")])
moved = np.abs(theta - prompt0 * (1 - LR * wd))  # [P, C]: the Adam part of the step, decay taken out
print(f"   |Adam step| over all {g.size} entries: min {moved.min():.4f}, median {np.median(moved):.4f}, "
      f"max {moved.max():.4f} (lr = {LR}: at t = 1 each entry moves by lr, whatever the size of its gradient)")
compare("by hand vs optim.AdamW", theta, by_torch_rule, **FLOAT32)

# %% [markdown]
# ## 6. the loop itself: train.train, on the real labels and (the control) on the same rows, labels shuffled

# %%
val0 = mean_loss(model, prompt0, val_rows, batch_size, eos)
train_part, val_part = data.split_validation(rows, VAL_SPLIT, SEED)  # the rows train() holds out, as dicts
drawn = np.random.default_rng(SEED + 1).permutation([r["label"] for r in train_part])
shuffled = write_rows([{**r, "label": y} for r, y in zip(train_part, drawn)], "06_sst2_shuffled.tsv")
val_path = write_rows(val_part, "06_sst2_val.tsv")  # the control is validated on the real labels too
print(f"\n6. train.train: P={P} virtual tokens (init vocab), AdamW lr {LR} {SCHEDULE}, {epochs} epochs; "
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
q = float(np.mean([e.output == " positive" for e in val_rows]))  # the validation rows' share of positives
floor = -(q * np.log(q) + (1 - q) * np.log(1 - q)) / 2 if 0 < q < 1 else 0.0  # H(q) / 2, nats per token
print(f"   the validation rows are {q:.0%} positive: a guess that ignores the review scores at best H(q) / 2 = "
      f"{floor:.4f} nats per token (ln 2 / 2 = {np.log(2) / 2:.4f} only for a 50/50 split)")

# %% [markdown]
# **Reading the table.** The *train loss* of an epoch is the mean of the losses of its steps, each taken
# *before* that step's update, so it mixes the prompt at the start of the epoch (high loss) with the prompt at
# its end; the *validation loss* is measured once, after the epoch's last step. In the first epochs the train
# column therefore sits above the validation column even though the validation rows are unseen: it lags the
# prompt by about half an epoch. With only a few validation rows the validation loss is also noisy, and can
# rise again while the train loss falls (the first sign of over-fitting). The shuffled-label control falls
# too -- it learns to answer with a label word and then EOS -- and may end near or below ln 2 / 2 when the
# validation labels are uneven (the H(q) / 2 line above); the claim is the gap between the two runs.

# %%
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
ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)  # off the data
for (name, m), color in zip(runs.items(), ("C0", "C7")):
    plot_run(ax2, m, val0, "validation (real labels)", name=f"{name}: ", color=color)
chance_lines(ax2, model.config.vocab_size, n_labels=2)
ax2.set_title(f"loss per epoch: {len(train_rows)} train / {len(val_rows)} validation rows, "
              f"B={batch_size} x {accumulation}")
ax2.axhline(floor, color="grey", ls="-.", label=f"H(q) / 2 = {floor:.2f}: the label share of the validation rows, "
            "review ignored")
ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # off the data
fig.suptitle(f"Lesson 06: the training loop ({model.name_or_path}, P={P})")
save_figure(fig, "06_training")
final = {name: m["val_losses"][-1] for name, m in runs.items()}
report("06", f"tuning lowers the validation loss below its start and at least {MARGIN} nats below the same run "
       "on shuffled labels", final["real labels"] <= min(val0, final["shuffled labels"]) - MARGIN,
       start=val0, real_labels=final["real labels"], shuffled_labels=final["shuffled labels"])
