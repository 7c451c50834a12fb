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
# # Lesson 09: where the prompt starts and how long it is: four initialisations, and P from 1 to 20.
#
# ## What it teaches
# Gradient descent has to start somewhere, and a soft prompt has a length. Lester et al. compare both on T5
# (section 3.2, figure 3). The four starts of prompt.init_prompt:
# - random: uniform in [-0.5, 0.5], the paper's random init. Its vectors lie far from every real token
#   (their norms against wte's are printed);
# - vocab: rows of wte for frequent tokens (ids below 5,000), the paper's "sampled vocab";
# - text: the embeddings of a task description, repeated or cut to P tokens (PEFT's TEXT init);
# - labels: the embeddings of the class labels " negative" and " positive" in the first rows, the rest as
#   vocab (the paper's "class label" init).
# Every run uses the same data, learning rate and number of steps; only the start (and the seed: the vocab
# draw and the batch order) differs, so the spread over 3 seeds says how much of a difference is noise.
# Then the length: P = 1, 5, 10, 20 vectors from the vocab start, each against its own untuned start.
#
# The claim, measured: at this scale tuning does the work, not the choice of start or length. On SST-2 with the
# held-out template "{input}Sentiment:", scored by dev accuracy (rank classification of " negative" /
# " positive"):
# - every length gains at least GAIN over the same vectors untuned (the control: what the vectors do before
#   any step);
# - the four starts' mean accuracies differ by less than one start's spread over seeds (the control: what the
#   seed alone does). Lester et al. found the start to matter on T5; here, after a few dozen steps on a
#   4-layer model, the difference between starts is smaller than the noise of a seed -- the reason to run 3.
#
# ## What to look at
# - the tables: each start's accuracy and validation loss before and after, mean and range over seeds; each
#   length's accuracy untuned and tuned;
# - lessons/out/09_initialization.png: the four validation-loss curves (mean, min..max band over seeds) with
#   the chance levels; the final accuracies with error bars; accuracy against P.

# %%
import matplotlib.pyplot as plt
import numpy as np
from common import DATA, chance_lines, load, parse_args, report, sample, save_figure, table, tune

from tinyprompt import data
from tinyprompt.evaluate import rank_classify
from tinyprompt.prompt import INIT_METHODS, init_prompt
from tinyprompt.train import mean_loss

TEMPLATE = "{input}Sentiment:"  # held out of tiny-pretrained's corpus: the prompt must find the skill
LABELS = [" negative", " positive"]
LABEL_WORDS = "0= negative,1= positive"
INIT_TEXT = "Is this movie review positive or negative?"
COLUMNS = {"input_column": "text", "output_column": "label", "template": TEMPLATE}
P, LR, BATCH = 8, 0.03, 8
SEEDS = (0, 1, 2)  # >= 3: a difference smaller than the spread over seeds is noise
LENGTHS = (1, 5, 10, 20)
GAIN = 0.10  # accuracy, tuned over untuned

# %%
args = parse_args()
model, tok = load(args)
n_train, n_val, epochs = (32, 64, 2) if args.quick else (64, 200, 3)
train_path = sample(DATA / "sst2" / "train.tsv", n_train, "09_sst2_train.tsv")
val_path = sample(DATA / "sst2" / "dev.tsv", n_val, "09_sst2_val.tsv")
label_words = data.parse_label_words(LABEL_WORDS)
train_data = data.load_data(train_path, tok, label_words=label_words, **COLUMNS)
val_rows = data.load_data(val_path, tok, label_words=label_words, **COLUMNS).examples
gold = np.array([LABELS.index(e.output) for e in val_rows])  # [N]

def accuracy(prompt):
    return float((rank_classify(model, prompt, val_rows, [tok.encode(w) for w in LABELS], tok.eos_id) == gold).mean())

def run(init, seed, n_virtual):
    """Tune one start -> (start [P, C], val loss at the start, metrics, accuracy untuned, accuracy tuned)."""
    # the prompt train() starts from: the same call with the same arguments (init_prompt is deterministic)
    start = init_prompt(init, n_virtual, model.wte, tok, INIT_TEXT, train_data.outputs(), seed)
    prompt, metrics = tune(model, tok, f"09_{init}_P{n_virtual}_{seed}", data=str(train_path),
                           val_data=str(val_path), num_virtual_tokens=n_virtual, init=init,
                           init_text=INIT_TEXT if init == "text" else None, lr=LR, epochs=epochs,
                           batch_size=BATCH, seed=seed, label_words=LABEL_WORDS, quiet=True, **COLUMNS)
    val0 = mean_loss(model, start, val_rows, BATCH, tok.eos_id)
    return start, val0, metrics, accuracy(start), accuracy(prompt)

# %% [markdown]
# ## 1. the data, the recipe every run shares, and the baseline without a prompt

# %%
steps = epochs * data.num_batches(n_train, BATCH)
w_norms = np.linalg.norm(model.wte, axis=1)  # [V]
print(f"\n1. SST-2: {n_train} training rows (train.tsv), {n_val} validation rows (dev.tsv, "
      f"{gold.mean():.0%} positive); template {TEMPLATE!r}; AdamW lr {LR}, batch {BATCH}, {epochs} epochs = "
      f"{steps} steps for every run")
print(f"   text init: {INIT_TEXT!r} ({len(tok.encode(INIT_TEXT))} tokens, repeated or cut to P); labels init: "
      f"{train_data.outputs()} in the first rows")
print(f"   wte row norms: median {np.median(w_norms):.3f}, min {w_norms.min():.3f}, max {w_norms.max():.3f}")
print(f"   zero-shot (no prompt) accuracy: {accuracy(None):.1%}")

# %% [markdown]
# ## 2. the start: four inits x 3 seeds, P fixed

# %%
runs = {init: [run(init, seed, P) for seed in SEEDS] for init in INIT_METHODS}
acc = {init: np.array([r[4] for r in rs]) for init, rs in runs.items()}  # [seeds] tuned accuracy
final = {init: np.array([r[2]["val_losses"][-1] for r in rs]) for init, rs in runs.items()}  # [seeds]
print(f"\n2. the four starts, P={P}, x {len(SEEDS)} seeds (seed: the random/vocab draw and the batch order)")
table(["init", "mean |vector|", "val loss: start", "end (mean)", "accuracy: untuned (mean)", "tuned: mean",
       "min..max over seeds"],
      [(init, f"{np.mean([np.linalg.norm(r[0], axis=1).mean() for r in rs]):.3f}",
        f"{np.mean([r[1] for r in rs]):.3f}", f"{final[init].mean():.3f}",
        f"{np.mean([r[3] for r in rs]):.1%}", f"{acc[init].mean():.1%}",
        f"{acc[init].min():.1%}..{acc[init].max():.1%}") for init, rs in runs.items()])

# %% [markdown]
# ## 3. the length: P vectors from the vocab start, each against its untuned self

# %%
# one seed per length (the [lengths, seeds] arrays take more): 3 would double the lesson's time
lengths = {n: [run("vocab", seed, n) for seed in SEEDS[:1]] for n in LENGTHS}
untuned = np.array([[r[3] for r in rs] for rs in lengths.values()])  # [lengths, seeds]
tuned = np.array([[r[4] for r in rs] for rs in lengths.values()])
print(f"\n3. the length: P = {', '.join(map(str, LENGTHS))} (init vocab, seed {SEEDS[0]}), the same {steps} steps")
table(["P", "trained numbers", "accuracy untuned", "tuned", "gain"],
      [(n, n * model.config.n_embd, f"{u.mean():.1%}", f"{t.mean():.1%}", f"{t.mean() - u.mean():+.1%}")
       for n, u, t in zip(LENGTHS, untuned, tuned)])

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(19, 5.5), gridspec_kw={"width_ratios": [1.3, 1, 1]})
for i, (init, rs) in enumerate(runs.items()):
    curves = np.array([[r[1], *r[2]["val_losses"]] for r in rs])  # [seeds, epochs + 1]
    ax1.plot(np.arange(epochs + 1), curves.mean(0), "o-", color=f"C{i}", lw=2, label=f"{init} (mean)")
    ax1.fill_between(np.arange(epochs + 1), curves.min(0), curves.max(0), color=f"C{i}", alpha=0.2)
ax1.set_xticks(range(epochs + 1))
ax1.set_xlabel("epoch (0: before the first step)")
ax1.set_ylabel("validation loss (nats per scored token: label, EOS)")
chance_lines(ax1, model.config.vocab_size, n_labels=2)
ax1.set_title(f"four starts, P={P}: band = min..max over {len(SEEDS)} seeds", fontsize=10)
ax1.grid(alpha=0.3)
ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)  # below the axes: off the data
x = np.arange(len(runs))
means = np.array([a.mean() for a in acc.values()])
spread = np.array([[m - a.min(), a.max() - m] for m, a in zip(means, acc.values())]).T
ax2.bar(x, 100 * means, yerr=100 * spread, capsize=6, color=[f"C{i}" for i in x], alpha=0.8)
for i, a in enumerate(acc.values()):
    ax2.plot(np.full(len(a), i), 100 * a, "k.", ms=8)
ax2.axhline(100 * max(gold.mean(), 1 - gold.mean()), color="crimson", ls="--",
            label=f"always the commoner label ({max(gold.mean(), 1 - gold.mean()):.0%})")
ax2.set_xticks(x, list(runs))
ax2.set_ylim(0, 100)
ax2.set_ylabel(f"dev accuracy after tuning (%, {n_val} rows)")
ax2.set_title("bars: mean; whiskers: min..max; dots: seeds", fontsize=10)
ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1))  # below the axes: off the bars
ax3.plot(LENGTHS, 100 * tuned.mean(1), "o-", color="C2", lw=2, label="tuned (init vocab)")
ax3.plot(LENGTHS, 100 * untuned.mean(1), "s--", color="grey", label="the same vectors untuned (control)")
ax3.axhline(100 * max(gold.mean(), 1 - gold.mean()), color="crimson", ls="--", label="always the commoner label")
ax3.set_xscale("log")
ax3.set_xticks(LENGTHS, [str(n) for n in LENGTHS])
ax3.set_xlabel("P, virtual tokens (log scale)")
ax3.set_ylabel(f"dev accuracy (%, {n_val} rows)")
ax3.set_ylim(0, 100)
ax3.set_title(f"the length: {steps} steps each", fontsize=10)
ax3.grid(alpha=0.3)
ax3.legend(fontsize=8, loc="lower right")
fig.suptitle(f"Lesson 09: where a prompt starts and how long it is ({n_train} SST-2 rows, "
             f"{model.name_or_path})")
save_figure(fig, "09_initialization")
between = max(a.mean() for a in acc.values()) - min(a.mean() for a in acc.values())  # what the start does
within = max(a.max() - a.min() for a in acc.values())  # what the seed alone does (control)
gains = tuned.mean(1) - untuned.mean(1)  # [lengths]
print(f"\n   the starts' mean accuracies span {between:.1%}; one start's spread over seeds reaches {within:.1%}; "
      f"the smallest gain of a length over its untuned vectors: {gains.min():+.1%}")
report("09", f"every length P in {LENGTHS} gains at least {GAIN * 100:.0f} percentage points of accuracy over its "
       "untuned vectors, and the four starts' mean accuracies differ by less than one start's spread over seeds",
       gains.min() >= GAIN and between < within, starts_range=between, seed_range=within,
       **{f"{init}_accuracy": a.tolist() for init, a in acc.items()},
       **{f"{init}_final_loss": v.tolist() for init, v in final.items()},
       lengths=list(LENGTHS), untuned_by_length=untuned.mean(1), tuned_by_length=tuned.mean(1))
