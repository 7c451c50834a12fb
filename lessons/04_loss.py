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
# # Lesson 04: the loss: next-token cross-entropy where only the output tokens count.
#
# ## What it teaches
# Training pairs are (input, output): `"Review: <sentence>\nSentiment:"` -> `" positive"`. The model sees
# input + output + `<|endoftext|>` (EOS) in one row, and labels say which tokens are scored: -100 ("ignore")
# for the input and for padding, the token id for the output and the final EOS. The labels are shifted inside
# the model: position p predicts the token at p + 1, so the scored positions sit one step before the output
# tokens, the last input token predicting the first output token. The P virtual tokens are put in front
# with label -100: they are never a target. With $(b_m, p_m)$ the row and position of the $m$-th scored
# prediction and $t_m$ its target token, the loss is the mean over all $M$ scored tokens of the batch (not per
# row first -- that is what transformers and PEFT return), in nats (natural logarithm):
# $$\ell = -\frac{1}{M}\sum_{m=1}^{M} \ln p_\theta\big(t_m \mid \text{row } b_m \text{ up to position } p_m\big),
# \qquad p_\theta(\cdot) = \mathrm{softmax}(z_{b_m, p_m}).$$
# A uniform guess over the $V$ tokens scores $\ln V$; a perfect one scores 0.
# Because only those M positions enter the loss, only their logits are needed: the [C, V] output head, the
# largest matmul of GPT-2, runs on M rows instead of B * L. That is exact, not an approximation: the other
# positions' logits would be computed and then multiplied by nothing.
#
# ## What to look at
# - one row position by position: its token, its label, and what that position is asked to predict;
# - the per-token losses, their mean, and the check that it equals `model.loss`;
# - the check that the loss from all B * L logits equals the loss from the M scored rows only;
# - lessons/out/04_loss_mask.png: which positions count, and the per-token losses.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from common import compare, load, parse_args, save_figure, show, table
from matplotlib.patches import Patch

from tinyprompt import data
from tinyprompt.prompt import init_prompt

TEMPLATE = "Review: {input}\nSentiment:"
ROWS = [  # the first three sentences of data/sst2/dev.tsv, with their labels written out as words
    ("it 's a charming and often affecting journey . ", " positive"),
    ("unflinchingly bleak and desperate ", " negative"),
    (("allows us to hope that nolan is poised to embark a major career as a commercial yet inventive "
      "filmmaker . "), " positive"),
]
P = 4
COLOURS = {"virtual token": "#9467bd", "input (label -100)": "#d9d9d9", "output (scored label)": "#2ca02c",
           "padding (label -100)": "white"}

# %%
args = parse_args()
model, tok = load(args)
V = model.config.vocab_size
rows = ROWS[:2] if args.quick else ROWS
examples = data.tokenize([(i, {"input": a, "output": b}) for i, (a, b) in enumerate(rows)], "pairs", tok,
                         template=TEMPLATE).examples
input_ids, labels = data.pad_batch(examples, tok.eos_id)  # [B, T] each; ids padded with EOS, labels -100
prompt = init_prompt("vocab", P, model.wte, seed=0)  # [P, C]
B, T = input_ids.shape
L = P + T

# %% [markdown]
# ## 1. one row, position by position

# %%
b0 = 0
full = np.concatenate([np.full((B, P), -100), labels], axis=1)  # [B, L]: -100 in front for the prompt
n = len(examples[b0].input_ids)
n_out = n - examples[b0].n_input - 1  # the output's own tokens; the last token of the row is the EOS
print(f"\n1. row {b0}: {n} tokens ({examples[b0].n_input} input, {n_out} output + 1 EOS), "
      f"after P={P} virtual tokens. Position p predicts the token at p + 1:")
out = []
for p in range(P + n):
    token = f"v{p}" if p < P else repr(tok.decode([input_ids[b0, p - P]]))
    nxt = full[b0, p + 1] if p + 1 < L else -100
    out.append((p, token, full[b0, p], repr(tok.decode([nxt])) if nxt != -100 else "-"))
table(["position", "token", "label", "scored prediction"], out)

# %% [markdown]
# ## 2. the scored positions, and the per-token losses from the full logits

# %%
b, p, target = model.targets(labels, P)  # [M] each: row, position, the token it must predict
M = len(b)
logits = model.logits(input_ids, prompt).astype(np.float64)  # [B, L, V]: every position, for the lesson
z = logits - logits.max(axis=-1, keepdims=True)
logprobs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log softmax over the V tokens
losses = -logprobs[b, p, target]  # [M]
print(f"\n2. {M} of the B * L = {B} * {L} = {B * L} positions carry a target")
table(["row", "position", "predicts", "p(target)", "loss = -log p"],
      [(bi, pi, repr(tok.decode([t])), f"{math.exp(-li):.2e}", f"{li:.3f}")
       for bi, pi, t, li in zip(b, p, target, losses)])
print(f"   mean over the {M} scored tokens = {losses.mean():.4f}   (ln V = {math.log(V):.4f}, the loss of "
      "a uniform guess)")
counts = np.bincount(b, minlength=B)
per_row = np.mean([losses[b == r].mean() for r in range(B)])
print(f"   scored tokens per row: {counts.tolist()}; a mean of the per-row means would give {per_row:.4f}"
      + (" (the same here: every row has as many)" if len(set(counts)) == 1 else ""))
compare("mean vs model.loss", losses.mean(), model.loss(prompt, input_ids, labels))
real = np.arange(T) < np.array([len(e.input_ids) for e in examples])[:, None]  # [B, T]: not padding
every = model.loss(prompt, input_ids, np.where(real, input_ids, -100))
print(f"   if every real token counted (labels = input_ids, padding still -100): loss = {every:.4f} over "
      f"{int(real.sum())} tokens")

# %% [markdown]
# **Reading the last two numbers.** The mean over the scored tokens is the loss prompt tuning lowers. The
# last line is what plain language-model training (pretraining) would score instead: every real token of the
# row, so also each word of the review, predicted from the words before it. That loss is several times
# larger, because the next word of a review is hard to guess (thousands of words fit), while the label after
# "Sentiment:" is one of two words and the EOS after it is nearly certain. Counting every token would spend the
# prompt's few numbers on predicting reviews; masking the input with -100 points all of them at the answer.

# %% [markdown]
# ## 3. why the head may skip the other positions: computing all B * L losses and masking gives the same

# %%
shifted = full[:, 1:]  # [B, L-1]: what positions 0..L-2 predict; -100 where nothing
scored = shifted != -100
all_losses = -np.take_along_axis(logprobs[:, :-1], np.where(scored, shifted, 0)[..., None], -1)[..., 0]
masked = (all_losses * scored).sum() / scored.sum()  # the B*L - M others are computed, then times 0
print(f"\n3. the head on all {B * L} positions, then masked, vs on the {M} scored ones (model.loss)")
compare("masked B*L vs M rows", masked, model.loss(prompt, input_ids, labels))
C = model.config.n_embd
print(f"   the head [C, V] ran on {M} rows instead of {B * L}: {B * L / M:.1f}x fewer multiply-adds "
      f"({M * C * V:,} instead of {B * L * C * V:,}); lesson 05 counts the backward too")

# the picture: which positions count, and what each scored token cost
kind = np.zeros((B, L), dtype=int)  # index into COLOURS
for r, e in enumerate(examples):
    kind[r, :P] = 0
    kind[r, P:P + e.n_input] = 1
    kind[r, P + e.n_input:P + len(e.input_ids)] = 2
    kind[r, P + len(e.input_ids):] = 3
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(12, 0.42 * L), 9), gridspec_kw={"height_ratios": [B, 3]})
ax1.imshow(kind, cmap=plt.matplotlib.colors.ListedColormap(list(COLOURS.values())), vmin=0, vmax=3,
           aspect="auto")
for r in range(B):
    for q in range(L):
        text = f"v{q}" if q < P else show(tok.decode([input_ids[r, q - P]]))
        ax1.text(q, r - 0.15, text if kind[r, q] != 3 else "", ha="center", va="center", fontsize=7,
                 rotation=90 if len(text) > 3 else 0)
ax1.scatter(p, b + 0.3, marker="v", color="black", s=25, label="scored: predicts the next token")
ax1.set_xticks(range(0, L, 2))
ax1.set_yticks(range(B), [f"row {r}" for r in range(B)])
ax1.set_xticks(np.arange(-0.5, L), minor=True)
ax1.set_yticks(np.arange(-0.5, B), minor=True)
ax1.grid(which="minor", color="black", lw=0.3)
ax1.set_xlabel("position (0..P-1: virtual tokens)")
ax1.set_title(f"which positions count: {M} of B * L = {B * L} (labels shifted: position p predicts p + 1)")
handles = [Patch(facecolor=c, edgecolor="black", label=k) for k, c in COLOURS.items()]
ax1.legend(handles=[*handles, ax1.collections[0]], loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=5,
           fontsize=8)
x = np.arange(M)
ax2.bar(x, losses, color=[f"C{r}" for r in b])
ax2.axhline(losses.mean(), color="black", ls="--", label=f"mean = {losses.mean():.3f} (the loss)")
ax2.axhline(math.log(V), color="crimson", ls=":", label=f"ln V = {math.log(V):.3f} (a uniform guess)")
ax2.set_xticks(x, [f"row {r}: {show(tok.decode([t]))}" for r, t in zip(b, target)], rotation=45, ha="right")
ax2.set_xlabel("scored target token")
ax2.set_ylabel("-log p(target), nats")
ax2.set_title("per-token cross-entropy")
ax2.set_ylim(0, 1.3 * max(losses.max(), math.log(V)))
ax2.legend(loc="upper right", ncol=2)
fig.suptitle(f"Lesson 04: the loss counts only the output tokens ({model.name_or_path})")
fig.tight_layout()
save_figure(fig, "04_loss_mask")
