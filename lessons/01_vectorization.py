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
# # Lesson 01: vectorization: text -> tokens -> ids -> embedding vectors.
#
# ## What it teaches
# GPT-2 never sees characters. Its byte-level BPE tokenizer cuts the text into tokens (a frequent word is one
# token, a rare word several pieces), each token is an integer id in [0, V), and the embedding layer turns
# each id into a vector: row `id` of the matrix wte [V, C]. That row lookup is the whole of vectorization.
# What the embedding layer expects is therefore a rectangular integer array input_ids [B, T] -- not text,
# not one-hot vectors -- and it returns [B, T, C], to which the position vectors wpe[0..T-1] are added.
#
# ## What to look at
# - the token table: each BPE piece ("Ġ" is a leading space), its id, and the norm of its vector;
# - how words split into pieces, and that " act" (with its space) is not the same token as "act";
# - the check that the lookup wte[ids] equals the matmul one_hot(ids) @ wte, and how much cheaper it is;
# - lessons/out/01_embeddings.png: the sentence's vectors channel by channel, and the norm of every one
#   of the V token vectors against its id. Ids 0-255 are the 256 single bytes that byte-level BPE starts from
#   (every text can be spelled with them); from 256 on, each id is a merge of two earlier tokens, in the order
#   the merges were learned, so ids just above 256 are pieces that were frequent in GPT-2's training text.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from common import compare, load, parse_args, save_figure, show, table

import tinyprompt

TEXT = "I want you to act as a logistician."
WORDS = ["act", " act", " Act", " logistician", " tokenization", " backpropagation", " prompt"]

# %%
args = parse_args()
model, tok = load(args)
wte, wpe = model.wte, model.params["wpe"]["weight"]
V, C = wte.shape

# %% [markdown]
# ## 1. text -> tokens -> ids

# %%
ids = tok.encode(TEXT)
norms = np.linalg.norm(wte[ids], axis=-1)  # [T]
print(f"\n1. text -> tokens -> ids\n   text: {TEXT!r} -> {len(ids)} tokens, "
      f"decode(encode(text)) == text: {tok.decode(ids) == TEXT}")
table(["t", "BPE piece", "text", "id", "|wte[id]|"],
      [(t, tok.id_to_token(i), repr(show(tok.decode([i]))), i, f"{n:.3f}") for t, (i, n) in
       enumerate(zip(ids, norms))])

print("\n   how words split into pieces (· = a leading space):")
for word in WORDS:
    pieces = tok.encode(word)
    print(f"   {show(word)!r:>17} -> {len(pieces)} token(s) {[show(tok.decode([i])) for i in pieces]} "
          f"ids {pieces}")

# %% [markdown]
# ## 2. what the embedding layer expects: an integer array [B, T]
# The lessons check each step against the package with `compare`, which prints one line:
# `name | allclose | max abs diff | max rel diff`.
# - `allclose`: NumPy's `allclose(ours, reference, rtol, atol)`, True when every entry satisfies
#   $|ours - ref| \le atol + rtol\,|ref|$. The tolerance is stated beside the dtype where it is not the
#   default (rtol 1e-5, atol 1e-8): float32 results that sum in another order agree to about rtol 1e-4,
#   float64 ones to 1e-10 or better.
# - `max abs diff`: the largest $|ours - ref|$ over all entries. A copy, a lookup or a reshape gives exactly 0.
# - `max rel diff`: the same divided by the largest $|ref|$, so that it reads the same whatever the scale.
#
# A good line says `allclose: True`; the two diffs say by how much, and 0.00e+00 means bit-for-bit equal.

# %%
input_ids = np.array([ids])  # [B=1, T]
x = wte[input_ids]  # [1, T] -> [1, T, C]: one row of wte per id
print(f"\n2. the embedding layer's input: input_ids {input_ids.dtype} {list(input_ids.shape)} "
      f"(B={input_ids.shape[0]} row, T={input_ids.shape[1]} tokens)")
print(f"   wte {list(wte.shape)} [V, C]   wte[input_ids] -> {list(x.shape)} [B, T, C]   "
      f"wpe {list(wpe.shape)} [N, C]")
compare("model.embed(ids)", model.embed(input_ids), x + wpe[: len(ids)])  # = wte[ids] + wpe[0..T-1]
try:
    model.embed(np.array([[V]]))
except tinyprompt.TinyPromptError as e:
    print(f"   an id outside [0, V) is refused: {e}")

# %% [markdown]
# ## 3. a lookup is a matmul with one-hot rows, without the multiplications by zero

# %%
one_hot = np.zeros((len(ids), V), dtype=wte.dtype)  # [T, V]
one_hot[np.arange(len(ids)), ids] = 1.0
repeats = 3 if args.quick else 20
by_matmul, by_lookup = one_hot @ wte, wte[ids]  # once untimed: the first touch pages wte in from disk
t0 = time.perf_counter()
for _ in range(repeats):
    by_matmul = one_hot @ wte  # [T, V] @ [V, C] -> [T, C]: T*V*C multiply-adds, almost all by zero
t_matmul = (time.perf_counter() - t0) / repeats
t0 = time.perf_counter()
for _ in range(repeats):
    by_lookup = wte[ids]  # [T] -> [T, C]: T*C copies
t_lookup = (time.perf_counter() - t0) / repeats
print("\n3. vectorization = a row lookup = one_hot(ids) @ wte")
compare("wte[ids] vs one_hot@wte", by_lookup, by_matmul)
print(f"   one_hot @ wte: {len(ids) * V * C:,} multiply-adds, {t_matmul * 1e3:.2f} ms;  "
      f"wte[ids]: {len(ids) * C:,} copies, {t_lookup * 1e3:.3f} ms  ({t_matmul / t_lookup:,.0f}x faster)")

# %% [markdown]
# ## 4. the picture
# The norms below tell something about how the model was trained. In tiny-pretrained most token vectors have
# almost the same norm (about 0.72) and point almost the same way: they are the tokens its small pretraining
# corpus (README, "tiny-pretrained") never or hardly uses. Such a token is never an input, so its only
# gradient comes from the output head, which is tied to `wte` (lesson 03): "do not predict me", the same push
# for every unused token, plus the same weight decay. They all drift to nearly one vector. The tokens the
# corpus does use, like this sentence's, were pulled apart by real gradients and have larger, varied norms.
# The cell prints how many tokens share that norm and how closely their directions agree (cosine to their
# mean direction); on `--model gpt2` the picture is different (every token was trained on web text).

# %%
all_norms = np.linalg.norm(wte, axis=-1)  # [V]
print(f"\n4. norms of all {V:,} token vectors: min {all_norms.min():.3f}, median {np.median(all_norms):.3f}, "
      f"max {all_norms.max():.3f}; this sentence's: {norms.min():.3f}..{norms.max():.3f}")
median = np.median(all_norms)
crowd = np.abs(all_norms - median) < 0.05 * median  # [V]: within 5% of the median norm
direction = wte[crowd].sum(0) / np.linalg.norm(wte[crowd].sum(0))  # their mean direction, unit length
cosines = (wte[crowd] @ direction) / all_norms[crowd]  # [n]: cosine of each to that direction
print(f"   {crowd.sum():,} of {V:,} tokens ({crowd.mean():.0%}) lie within 5% of the median norm; their cosine to "
      f"their mean direction: median {np.median(cosines):.3f} (1 = the same direction)")
print(f"   ids 0-255 (the single bytes): median norm {np.median(all_norms[:256]):.3f}, "
      f"{crowd[:256].sum()} of 256 in that crowd")
labels = [f"{show(tok.decode([i]))} ({i})" for i in ids]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [1.1, 1]})
shown = min(C, 64)
vmax = float(np.abs(by_lookup[:, :shown]).max())
im = ax1.imshow(by_lookup[:, :shown], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
ax1.set_yticks(range(len(ids)), labels)
ax1.set_xlabel(f"channel (the first {shown} of C={C})")
ax1.set_ylabel("token (id)")
ax1.set_title("wte[ids]: one row of the embedding matrix per token")
fig.colorbar(im, ax=ax1, label="value")
ax2.scatter(np.arange(V), all_norms, s=1, alpha=0.3, color="grey", rasterized=True, label="every token")
ax2.scatter(ids, norms, s=40, color="crimson", label="this sentence's tokens", zorder=3)
top = float(all_norms.max())
for k, j in enumerate(sorted(set(range(len(ids))), key=lambda t: ids[t])):  # labels stacked above, by id
    ax2.annotate(show(tok.decode([ids[j]])), (ids[j], norms[j]), xytext=(ids[j], top * (1.08 + 0.11 * k)),
                 fontsize=8, color="crimson", ha="center", arrowprops={"arrowstyle": "-", "color": "crimson",
                                                                      "lw": 0.5, "alpha": 0.6})
ax2.set_ylim(0, top * (1.15 + 0.11 * len(ids)))
ax2.axvspan(0, 255, color="C0", alpha=0.08, label="ids 0-255: the single bytes")
ax2.set_xscale("symlog", linthresh=10)  # ids of common tokens are small: a log axis spreads them out
ax2.set_xlim(0, V)
ax2.set_xlabel("token id (symlog axis: linear below 10, logarithmic above; from 256 on, BPE merge order)")
ax2.set_ylabel("|wte[id]| (L2 norm)")
ax2.set_title(f"norm of each of the V={V:,} token vectors")
ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)  # below the axes: off the data
fig.suptitle(f"Lesson 01: text -> ids -> vectors ({model.name_or_path})")
save_figure(fig, "01_embeddings")
