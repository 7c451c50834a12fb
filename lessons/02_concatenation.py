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
# # Lesson 02: concatenation: a soft prompt [P, C] in front of the input embeddings [T, C].
#
# ## What it teaches
# A soft prompt is P vectors of the same size C as a token embedding, but free: they are not rows of wte,
# no token id maps to them. They are placed in front of the text's embeddings, so the model sees L = P + T
# positions, and the position vectors wpe[0..L-1] are added to all of them -- the virtual tokens included,
# which pushes the text's first token from position 0 to position P. Under GPT-2's causal mask a position
# sees itself and the positions before it: every text token sees all P virtual tokens, while the virtual
# tokens never see the text, so their hidden states do not depend on the input at all. That is why P
# vectors can steer every input: they act as keys and values the text attends to.
#
# **The claim, measured** (step 4): a prompt tuned for one epoch moves the next-token distribution at least 3x
# more (mean KL, defined in step 3, over SST-2 dev reviews, defined in step 4) than either control: random vectors of the same norms, and a pure position
# shift (P zero vectors, so the text only moves to positions P.. and has P position-only keys to look at).
# Untrained vectors steer a little; tuned ones steer.
#
# ## What to look at
# - the shapes at each step, and the check that they equal `model.embed(ids, prompt)`;
# - the check that the virtual tokens' hidden states are the same for two different texts (up to float32
#   rounding: the check states its tolerance);
# - how much attention the text pays to the virtual tokens, layer by layer;
# - how P random vectors, untrained, already move the next-token distribution (top tokens, KL divergence);
# - lessons/out/02_concatenation.png: what each position may see and the real attention weights; the
#   distribution with and without the prompt, and KL against P; the tuned prompt against its two controls.

# %%
import matplotlib.pyplot as plt
import numpy as np
from common import (
    DATA,
    compare,
    load,
    parse_args,
    read_rows,
    report,
    same_norms,
    sample,
    save_figure,
    show,
    table,
    tune,
)

from tinyprompt import layers
from tinyprompt.prompt import init_prompt

TEXT = "I want you to act as a logistician."
OTHER_TEXT = "The weather today is"
P = 8
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 results of differently ordered sums agree to about this


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def next_token(model, ids, prompt=None):
    """p(next token) [V] after the last position: the blocks on every position, the head on the last only."""
    x, _ = model.forward(model.embed(ids, prompt))  # [1, L, C]
    return softmax(model.head(x[0, -1]).astype(np.float64))  # [C] -> [V]


def fmt_p(p):
    return f"{p:.4f}" if p >= 1e-3 else f"{p:.1e}"


def kl(p, q):
    """KL(p || q) in nats: how surprised q is, on average, by what p predicts."""
    return float(np.sum(p * (np.log(p) - np.log(q))))

# %%
args = parse_args()
model, tok = load(args)
wte, wpe = model.wte, model.params["wpe"]["weight"]
C = model.config.n_embd
fig, panels = plt.subplot_mosaic([["mask", "attention", "share"], ["next", "sweep", "claim"]], figsize=(24, 14),
                              gridspec_kw={"hspace": 0.35})

# %% [markdown]
# ## 1. the shapes, step by step
# Every `compare` line in the lessons reads `name | allclose | max abs diff | max rel diff`. `allclose` is
# NumPy's `allclose(ours, reference, rtol, atol)`: True when every entry satisfies
# $|ours - ref| \le atol + rtol\,|ref|$, with the tolerance stated beside the dtype (float32 results that sum
# in another order agree to about rtol 1e-4; float64 to 1e-10 or better). `max abs diff` is the largest
# $|ours - ref|$; `max rel diff` is that divided by the largest $|ref|$. A copy or a reshaping gives exactly 0.

# %%
ids = np.array([tok.encode(TEXT)])  # [B=1, T]
T = ids.shape[1]
L = P + T
prompt = init_prompt("random", P, wte, seed=0)  # [P, C]: the paper's random init, uniform in [-0.5, 0.5]
print(f"\n1. putting a soft prompt of P={P} virtual tokens in front of {TEXT!r}")
x_text = wte[ids]  # [1, T] -> [1, T, C]
x_prompt = np.broadcast_to(prompt, (1, P, C))  # [P, C] -> [B, P, C]: every row gets the same prompt
x = np.concatenate([x_prompt, x_text], axis=1)  # -> [B, L, C]
x = x + wpe[:L]  # [B, L, C] + [L, C]: positions 0..L-1, the virtual tokens' included
table(["step", "array", "shape"], [
    ("ids", "input_ids", list(ids.shape)),
    ("vectorize", "wte[input_ids]", list(x_text.shape)),
    ("soft prompt", "prompt", list(prompt.shape)),
    ("one per row", "broadcast_to(prompt, (B, P, C))", list(x_prompt.shape)),
    ("concatenate", "cat([prompt, wte[ids]], axis=1)", [1, L, C]),
    ("positions", "+ wpe[:L]", list(x.shape))])
compare("model.embed(ids, prompt)", model.embed(ids, prompt), x)
shift = np.linalg.norm(wpe[P] - wpe[0])
print(f"   the text's first token {tok.decode(ids[0, :1])!r} now gets wpe[{P}] instead of wpe[0] "
      f"(|wpe[{P}] - wpe[0]| = {shift:.3f}; |wpe[0]| = {np.linalg.norm(wpe[0]):.3f})")
norms = np.linalg.norm(prompt, axis=-1)
print(f"   |prompt rows| = {norms.min():.2f}..{norms.max():.2f}; "
      f"|wte rows of the text| = {np.linalg.norm(x_text[0], axis=-1).min():.2f}.."
      f"{np.linalg.norm(x_text[0], axis=-1).max():.2f}")

# %% [markdown]
# ## 2. what the causal mask lets each position see
# The virtual tokens come first and a position attends only to itself and the positions before it, so the
# $P$ virtual positions compute the same hidden states whatever text follows. The check below runs two texts
# of different lengths: the matrix products then run on arrays of other shapes, and float32 sums in another
# order round differently, so "the same" means equal within float32 rounding (the stated tolerance), not bit
# for bit.

# %%
mask = layers.causal_mask(L, L)  # [L, L]: query i may see key j iff j <= i
print(f"\n2. the causal mask [L, L] = [{L}, {L}]: a virtual token sees 1..{P} positions, all virtual;\n"
      f"   a text token sees the {P} virtual tokens, itself, and the text before it")
print(f"   keys visible to query 0: {mask[0].sum()}; to the last virtual token: {mask[P - 1].sum()}; "
      f"to the first text token: {mask[P].sum()}; to the last: {mask[-1].sum()}")
h1, caches = model.forward(model.embed(ids, prompt))
h2, _ = model.forward(model.embed(np.array([tok.encode(OTHER_TEXT)]), prompt))
compare("virtual tokens' states", h1[:, :P], h2[:, :P], **FLOAT32)  # another text: the same states
print(f"   (the last block's output at the {P} virtual positions, for {TEXT!r} and {OTHER_TEXT!r})")

# attn cache = (q, k, v, att); att [B, H, L, L] is the softmax of each query over the keys
atts = [attn_cache[3][0] for _, attn_cache, _, _ in caches]  # n_layer x [H, L, L]
on_prompt = [float(a[:, P:, :P].sum(-1).mean()) for a in atts]  # text queries -> virtual keys
print("\n   share of each text token's attention that goes to the virtual tokens (mean over heads and text "
      "tokens):")
table(["layer", "attention on the P virtual tokens", "a uniform spread would give"],
      [(i, f"{s:.1%}", f"{np.mean([P / (P + t + 1) for t in range(T)]):.1%}") for i, s in enumerate(on_prompt)])

names = [f"v{i}" for i in range(P)] + [show(tok.decode([i])) for i in ids[0]]
axes = [panels["mask"], panels["attention"]]
for ax, image, title, cmap in ((axes[0], mask, "causal mask: may query i see key j? (black: yes)", "Greys"),
                               (axes[1], atts[0].mean(0), "layer 0 attention weights (mean over heads)",
                                "viridis")):
    im = ax.imshow(image, cmap=cmap, vmin=0, vmax=1)
    ax.axvline(P - 0.5, color="crimson", lw=2)
    ax.axhline(P - 0.5, color="crimson", lw=2)
    ax.set_xticks(range(L), names, rotation=90, fontsize=8)
    ax.set_yticks(range(L), names, fontsize=8)
    ax.set_xlabel("key position j (what is looked at)")
    ax.set_ylabel("query position i (who looks)")
    ax.set_title(f"{title}\n(red lines: the end of the P={P} virtual tokens)")
fig.colorbar(im, ax=axes[1], label="attention weight")
ax = panels["share"]
uniform = [np.mean([P / (P + t + 1) for t in range(T)])] * len(on_prompt)
ax.plot(range(len(on_prompt)), on_prompt, "o-", color="C2", label="measured (mean over heads and text tokens)")
ax.plot(range(len(on_prompt)), uniform, "--", color="grey", label="a uniform spread over the visible keys")
ax.set_xticks(range(len(on_prompt)))
ax.set_ylim(0, 1)
ax.set_xlabel("layer")
ax.set_ylabel("share of a text token's attention on the P virtual tokens")
ax.set_title(f"how much the text looks at the {P} random virtual tokens")
ax.legend(loc="lower left", fontsize=9)  # the lower half stays empty: shares sit near the uniform line
axes[0].text(L - 1, P / 2, "virtual tokens never\nsee the text", ha="right", va="center", color="crimson")

# %% [markdown]
# ## 3. P random vectors already move the next-token distribution
# Two numbers say how far apart two next-token distributions $p$ (no prompt) and $q$ (with the prompt) are:
# - the **KL divergence** $\mathrm{KL}(p \,\|\, q) = \sum_v p_v (\ln p_v - \ln q_v)$, in **nats** (natural-log
#   units): 0 when $q = p$, and growing without bound as $q$ gives little probability to tokens $p$ finds
#   likely. It is the extra loss, per token, of predicting with $q$ when the answers follow $p$;
# - the **total variation** $\mathrm{TV}(p, q) = \tfrac{1}{2}\sum_v |p_v - q_v|$, between 0 and 1: the largest
#   difference in probability that $p$ and $q$ give to any one set of tokens (0.3: some set of next tokens
#   gained or lost 30 points of probability).

# %%
p0 = next_token(model, ids)  # [V] after the text alone
p1 = next_token(model, ids, prompt)  # [V] with the prompt in front
print(f"\n3. the next token after {TEXT!r}: without the prompt vs with {P} random virtual tokens")
top0, top1 = np.argsort(-p0)[:5], np.argsort(-p1)[:5]
table(["rank", "no prompt", "p", f"with P={P} random", "p"],
      [(r + 1, repr(tok.decode([a])), fmt_p(p0[a]), repr(tok.decode([b])), fmt_p(p1[b]))
       for r, (a, b) in enumerate(zip(top0, top1))])
print(f"   KL(no prompt || prompt) = {kl(p0, p1):.4f} nats; total variation = {0.5 * np.abs(p0 - p1).sum():.4f}")

sizes = [1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16, 32]
seeds = range(2 if args.quick else 3)
sweep = {method: np.array([[kl(p0, next_token(model, ids, init_prompt(method, n, wte, seed=s))) for s in seeds]
                           for n in sizes]) for method in ("random", "vocab")}
print(f"\n   KL(no prompt || prompt) against P, mean over {len(seeds)} seeds "
      "(random: uniform in [-0.5, 0.5]; vocab: rows of wte of frequent tokens)")
table(["P", "random", "vocab"], [(n, f"{r:.4f}", f"{v:.4f}") for n, r, v in
                                 zip(sizes, sweep["random"].mean(1), sweep["vocab"].mean(1))])

ax1, ax2 = panels["next"], panels["sweep"]
shown = list(dict.fromkeys([*top0, *top1]))  # the union of both top-5s
y = np.arange(len(shown))
ax1.barh(y - 0.2, p0[shown], height=0.4, label="no prompt")
ax1.barh(y + 0.2, p1[shown], height=0.4, label=f"{P} random virtual tokens")
ax1.set_yticks(y, [repr(tok.decode([i])) for i in shown])
ax1.invert_yaxis()
ax1.set_xlabel("probability of the next token")
ax1.set_title(f"next token after {TEXT!r}")
ax1.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
for method, marker in (("random", "o"), ("vocab", "s")):
    mean, lo, hi = sweep[method].mean(1), sweep[method].min(1), sweep[method].max(1)
    ax2.plot(sizes, mean, marker=marker, label=f"{method} init (mean, min..max over seeds)")
    ax2.fill_between(sizes, lo, hi, alpha=0.2)
ax2.set_xscale("log", base=2)
ax2.set_xticks(sizes, [str(n) for n in sizes])
ax2.set_xlabel("P, number of virtual tokens (log scale)")
ax2.set_ylabel("KL(no prompt || with prompt), nats")
ax2.set_title("how far untrained virtual tokens move the prediction")
ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)  # below the axes: off the data

# %% [markdown]
# ## 4. the claim: a TUNED prompt moves the prediction far more than its two controls
# **SST-2** is the Stanford Sentiment Treebank's binary task: one movie-review sentence per row, label 1
# (positive) or 0 (negative). `data/sst2/train.tsv` holds the first 2,000 of its training sentences,
# `data/sst2/dev.tsv` all 872 of its **dev** sentences, the official held-out set (data/SOURCES.md). The
# prompt is tuned on training rows ([lesson 06](06_training_loop.py) takes the loop apart) and judged on dev
# reviews it never saw. `init="labels"` starts two of its vectors at the embeddings of the label words and the
# others at rows of `wte` of frequent tokens (lesson 06 defines the inits, lesson 09 compares them).

# %%
n_train = 64 if args.quick else 400
train_path = sample(DATA / "sst2" / "train.tsv", n_train, "02_sst2_train.tsv")
print(f"\n4. tuning P={P} vectors for one epoch on {n_train} SST-2 rows ('{{input}}Sentiment:' -> ' positive' / "
      "' negative'), then the mean KL over dev reviews, against two controls")
tuned, _ = tune(model, tok, "02_sst2", data=str(train_path), num_virtual_tokens=P, init="labels", lr=0.03,
                epochs=1, batch_size=8, seed=0, input_column="text", output_column="label",
                template="{input}Sentiment:", label_words="0= negative,1= positive", quiet=True)
same_norm = same_norms(np.linalg.norm(tuned, axis=1), tuned.shape[1], seed=1)  # [P, C]
prompts = {"tuned prompt": tuned, "random, same norms": same_norm,
           "position shift only (zeros)": np.zeros_like(tuned)}  # zeros: the P slots carry only wpe
reviews = [r["text"] + "Sentiment:" for r in read_rows(DATA / "sst2" / "dev.tsv")[:8 if args.quick else 32]]
shifts = {name: np.mean([kl(next_token(model, np.array([tok.encode(t)])),
                            next_token(model, np.array([tok.encode(t)]), p)) for t in reviews])
          for name, p in prompts.items()}
table(["prompt in front", f"mean KL(no prompt || prompt), nats, {len(reviews)} dev reviews"],
      [(name, f"{v:.4f}") for name, v in shifts.items()])
ax = panels["claim"]
bars = ax.bar(range(3), list(shifts.values()), color=["C2", "C1", "grey"])
ax.bar_label(bars, fmt="%.3f")
ax.set_xticks(range(3), list(shifts))
ax.set_ylabel("mean KL(no prompt || with prompt), nats")
ax.set_title(f"the claim: {P} tuned vectors against two controls")
fig.suptitle(f"Lesson 02: {P} virtual tokens in front of {T} text tokens: what the causal mask lets them do, and "
             f"how far they move the prediction ({model.name_or_path})")
save_figure(fig, "02_concatenation")
control = max(shifts["random, same norms"], shifts["position shift only (zeros)"])
report("02", "a tuned prompt moves the next-token distribution at least 3x more than a random prompt of the "
       "same norms and than a pure position shift", shifts["tuned prompt"] >= 3 * control,
       **{k.split(" (")[0].replace(",", "").replace(" ", "_"): float(v) for k, v in shifts.items()})
