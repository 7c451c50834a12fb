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
# # Lesson 07: before and after: a few tuned vectors change what a frozen GPT-2 writes.
#
# ## What it teaches
# The PEFT prompt-tuning tutorial tunes a prompt, then shows what the model writes for one input before and
# after. Its rows (role prompts) have no right answer, so "after" can only be admired. Here the same
# experiment runs on a task whose answers can be counted: antonyms in a template tiny-pretrained never saw,
# "hot <->" -> " cold" (data/toy/antonyms.jsonl). The model learned all 96 pairs in other forms ("The
# opposite of hot is cold."); the soft prompt has to make it use that skill after "<->".
# The pairs are split, both directions of a pair on the same side: the prompt trains on some pairs and is
# judged on pairs it never saw, by what greedy generation writes. The weights are the same in every setting;
# only the P vectors in front change. Three controls separate "the vectors were tuned" from the rest:
# - no prompt: the bare model, before anything;
# - the untuned prompt: the vectors tuning starts from (rows of wte);
# - random vectors with the tuned vectors' norms: as long as the tuned ones, pointing anywhere.
#
# The claim, measured: on held-out pairs, greedy generation after the tuned prompt starts with the antonym far
# more often (by at least 30 points) than in any of the three controls.
#
# ## What to look at
# - the continuations, side by side, and the share that start with the antonym;
# - lessons/out/07_before_after.png: the loss per epoch (train and held-out pairs), and the share of held-out
#   pairs answered right in each setting, with 95% intervals.

# %%
import matplotlib.pyplot as plt
import numpy as np
from common import (
    DATA,
    chance_lines,
    load,
    parse_args,
    plot_run,
    read_rows,
    report,
    same_norms,
    save_figure,
    table,
    tune,
    wilson,
    write_rows,
)

from tinyprompt import data
from tinyprompt.generate import generate
from tinyprompt.prompt import init_prompt
from tinyprompt.train import mean_loss

P, INIT, LR, SEED = 8, "vocab", 0.03, 0
NEW_TOKENS = 4  # enough to see what follows the answer; only the first word is scored

# %%
args = parse_args()
model, tok = load(args)
eos = tok.eos_id
n_train_pairs, epochs = (40, 3) if args.quick else (72, 4)

# %% [markdown]
# ## 1. the data: pairs, not rows, are split, so no held-out word was seen in either direction

# %%
rows = read_rows(DATA / "toy" / "antonyms.jsonl")  # both directions of pair i are rows 2i, 2i + 1
pairs = np.random.default_rng(SEED).permutation(len(rows) // 2)
train_rows = [rows[2 * i + d] for i in sorted(pairs[:n_train_pairs]) for d in (0, 1)]
test_rows = [rows[2 * i + d] for i in sorted(pairs[n_train_pairs:]) for d in (0, 1)]
train_path, test_path = write_rows(train_rows, "07_antonyms_train.jsonl"), write_rows(test_rows, "07_antonyms_test.jsonl")
print(f"\n1. data/toy/antonyms.jsonl: {len(rows) // 2} pairs; {n_train_pairs} pairs ({len(train_rows)} rows) to "
      f"train on, the other {len(pairs) - n_train_pairs} ({len(test_rows)} rows) held out")
print(f"   a row: {train_rows[0]['input']!r} -> {train_rows[0]['output']!r}")

# %% [markdown]
# ## 2. tune

# %%
print(f"\n2. tuning P={P} virtual tokens (init {INIT}), AdamW lr {LR}, {epochs} epochs, batch 8")
prompt, metrics = tune(model, tok, "07_antonyms", data=str(train_path), val_data=str(test_path),
                       num_virtual_tokens=P, init=INIT, lr=LR, epochs=epochs, batch_size=8, seed=SEED)
untuned = init_prompt(INIT, P, model.wte, seed=SEED)  # [P, C]: where train() started (same call, same seed)
val0 = mean_loss(model, untuned, data.load_data(test_path, tok).examples, 8, eos)

# %% [markdown]
# ## 3. before and after: what greedy generation writes for each held-out input, in four settings

# %%
settings = {"no prompt": None, "untuned prompt": untuned,
            "random, tuned norms": same_norms(np.linalg.norm(prompt, axis=1), prompt.shape[1], SEED + 1),
            "tuned prompt": prompt}
new_ids = {name: [generate(model, tok.encode(r["input"]), p, max_new_tokens=NEW_TOKENS, eos_id=eos)
                  for r in test_rows] for name, p in settings.items()}
written = {name: [tok.decode(ids) for ids in rows] for name, rows in new_ids.items()}
# every antonym is one token after its space, so "starts with the antonym" is "its first new token is it"
right = {name: np.array([ids[:1] == tok.encode(r["output"]) for ids, r in zip(rows, test_rows)])
         for name, rows in new_ids.items()}
print(f"\n3. greedy continuation of the held-out inputs ({NEW_TOKENS} new tokens at most); the first "
      f"{min(12, len(test_rows))} of {len(test_rows)}:")
table(["input", "antonym", *settings],
      [(repr(r["input"]), repr(r["output"]), *(repr(written[name][i]) for name in settings))
       for i, r in enumerate(test_rows[:12])])
print(f"\n   continuations that start with the antonym, {len(test_rows)} held-out rows:")
table(["setting", "right", "share", "95% interval"],
      [(name, f"{hits.sum()}/{len(hits)}", f"{hits.mean():.0%}",
        "{:.0%}..{:.0%}".format(*wilson(hits.sum(), len(hits)))) for name, hits in right.items()])

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [1.2, 1]})
plot_run(ax1, metrics, val0, "held-out pairs (epoch 0: untuned)",
         "loss (nats per scored token: antonym, EOS)")
chance_lines(ax1, model.config.vocab_size)
ax1.set_title(f"tuning P={P} vectors on {len(train_rows)} rows")
ax1.legend(fontsize=8)
share = np.array([hits.mean() for hits in right.values()])
err = np.array([[s - lo, hi - s] for s, (lo, hi) in
                zip(share, (wilson(h.sum(), len(h)) for h in right.values()))]).T
bars = ax2.bar(range(len(settings)), 100 * share, yerr=100 * err, capsize=6, color=["grey", "C1", "C3", "C2"])
ax2.bar_label(bars, labels=[f"{s:.0%}" for s in share], padding=14)
ax2.set_xticks(range(len(settings)), [name.replace(", ", ",\n") for name in settings])
ax2.set_ylim(0, 110)
ax2.set_ylabel(f"held-out rows answered right (%, of {len(test_rows)})")
ax2.set_title("greedy generation starts with the antonym (whiskers: 95% interval)", fontsize=10)
fig.suptitle(f"Lesson 07: before and after prompt tuning, antonyms after '<->' ({model.name_or_path})")
save_figure(fig, "07_before_after")
best_control = max(right[name].mean() for name in settings if name != "tuned prompt")
report("07", "on held-out pairs, greedy generation after the tuned prompt starts with the antonym at least 30 "
       "points more often than with no prompt, the untuned prompt, or random vectors of the tuned norms",
       right["tuned prompt"].mean() >= best_control + 0.3,
       **{name.replace(", ", "_").replace(" ", "_"): float(hits.mean()) for name, hits in right.items()})
