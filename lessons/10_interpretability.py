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
# # Lesson 10: what did the prompt learn? Its nearest vocabulary tokens, and its norms.
#
# ## What it teaches
# A tuned virtual token is a vector in the embedding space, but no token has that vector. Lester et al.
# (section 7) read one in two ways:
# - its nearest vocabulary tokens by cosine similarity (prompt.nearest_tokens): the real tokens whose
#   vectors point the same way;
# - its norm against the norms of the V rows of wte: does it lie where real tokens lie, or far out?
# A vocab-initialised prompt starts exactly on rows of wte: each vector's nearest token is the token it
# started as, with cosine 1. Tuning moves it. This lesson measures how far it moved, whether it is still
# nearest to its start, and what it is nearest to now. As a yardstick it also gives the cosine between
# random vectors of the same norms and their nearest tokens: how close "nearest" gets by chance alone.
#
# The claim, measured: the tuned vectors are nearer (cosine) to real tokens than random vectors of the same
# norms (the control), by at least 0.1.
#
# ## What to look at
# - the table: per virtual token, the token it started as, its norm before and after, its cosine to the
#   start, and its 5 nearest tokens now (`tinyprompt inspect lessons/out/10_sst2` prints the same);
# - lessons/out/10_norms.png: the histogram of wte's norms with the prompt's norms marked, and the cosines.

# %%
import matplotlib.pyplot as plt
import numpy as np
from common import DATA, load, parse_args, read_rows, report, same_norms, save_figure, table, tune, write_rows

from tinyprompt.prompt import init_prompt, nearest_tokens

TEMPLATE = "Review: {input}\nSentiment:"
COLUMNS = {"input_column": "text", "output_column": "label", "template": TEMPLATE,
           "label_words": "0= negative,1= positive"}
P, LR, SEED, K = 8, 0.03, 0, 5


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

# %%
args = parse_args()
model, tok = load(args)
wte = model.wte
n_train, epochs = (16, 2) if args.quick else (48, 3)
rows = read_rows(DATA / "sst2" / "train.tsv")
path = write_rows([rows[i] for i in sorted(np.random.default_rng(SEED).permutation(len(rows))[:n_train])],
                  "10_sst2_train.tsv")

# %% [markdown]
# ## 1. tune a prompt that starts from vocabulary rows, so that each vector has a token it started as

# %%
start = init_prompt("vocab", P, wte, seed=SEED)  # [P, C]: what train() starts from (same call, same seed)
start_ids = nearest_tokens(start, wte, k=1)[0][:, 0]  # [P]: each start vector's own token
print(f"\n1. tuning P={P} vectors initialised from vocabulary rows: {n_train} SST-2 rows, AdamW lr {LR}, "
      f"{epochs} epochs")
prompt, _ = tune(model, tok, "10_sst2", data=str(path), num_virtual_tokens=P, init="vocab", lr=LR,
                 epochs=epochs, batch_size=8, seed=SEED, **COLUMNS)

# %% [markdown]
# ## 2. per virtual token: where it started, how far it moved, what it is near now

# %%
ids, sims = nearest_tokens(prompt, wte, k=K)  # [P, K] each, best first
n_start, n_now = np.linalg.norm(start, axis=1), np.linalg.norm(prompt, axis=1)  # [P]
to_start = [cosine(p, s) for p, s in zip(prompt, start)]
print(f"\n2. each virtual token: the token it started as (cosine 1 at the start), and its {K} nearest tokens "
      "now (cosine)")
table(["v", "started as", "|start|", "|now|", "cos(now, start)", f"{K} nearest tokens now"],
      [(i, repr(tok.decode([s])), f"{a:.3f}", f"{b:.3f}", f"{c:.3f}",
        "  ".join(f"{tok.decode([t])!r} {v:.2f}" for t, v in zip(row_ids, row_sims)))
       for i, (s, a, b, c, row_ids, row_sims) in enumerate(zip(start_ids, n_start, n_now, to_start, ids, sims))])
kept = int((ids[:, 0] == start_ids).sum())
print(f"   {kept} of {P} vectors still have their start token as the nearest token")

# %% [markdown]
# ## 3. norms against the vocabulary's, and how close "nearest" gets by chance

# %%
w_norms = np.linalg.norm(wte, axis=1)  # [V]
pct = [float((w_norms < n).mean()) for n in n_now]  # the share of vocabulary rows shorter than each vector
chance = nearest_tokens(same_norms(n_now, wte.shape[1], SEED + 1, copies=8), wte, k=1)[1][:, 0]
print(f"\n3. norms: wte rows median {np.median(w_norms):.3f} (1%..99%: {np.percentile(w_norms, 1):.3f}.."
      f"{np.percentile(w_norms, 99):.3f}); the tuned vectors {n_now.min():.3f}..{n_now.max():.3f}, longer than "
      f"{min(pct):.1%}..{max(pct):.1%} of the vocabulary\n   (on average {n_now.mean() / np.median(w_norms):.1f}x the median "
      f"norm; at the start {n_start.mean() / np.median(w_norms):.1f}x)")
table(["vectors", "mean cosine to their nearest token"],
      [(f"the {P} vocab starts", f"{nearest_tokens(start, wte, k=1)[1].mean():.3f}"),
       (f"the {P} tuned vectors", f"{sims[:, 0].mean():.3f}"),
       (f"{len(chance)} random vectors, the tuned norms (chance)", f"{chance.mean():.3f}")])
gap = float(sims[:, 0].mean() - chance.mean())

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1.2, 1]})
ax1.hist(w_norms, bins=120, color="grey", alpha=0.7, label=f"the V={len(w_norms):,} rows of wte")
for n in n_start:
    ax1.axvline(n, color="C0", ls=":", lw=1.5)
for n in n_now:
    ax1.axvline(n, color="C2", lw=1.5)
ax1.plot([], [], color="C0", ls=":", label="prompt vectors at the start")
ax1.plot([], [], color="C2", label="prompt vectors after tuning")
ax1.set_yscale("log")
ax1.set_xlabel("L2 norm of the vector")
ax1.set_ylabel("number of vocabulary rows (log scale)")
ax1.set_title(f"norms: the tuned vectors average {n_now.mean() / np.median(w_norms):.1f}x the median token's")
ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=9)  # below the axes: off the lines
x = np.arange(P)
ax2.bar(x - 0.2, to_start, width=0.4, color="C0", label="cosine to its start token")
ax2.bar(x + 0.2, sims[:, 0], width=0.4, color="C2", label="cosine to its nearest token now")
ax2.axhline(chance.mean(), color="crimson", ls="--", label="random vectors to their nearest (chance)")
ax2.set_xticks(x, [f"v{i}\n{tok.decode([s])!r}" for i, s in enumerate(start_ids)], fontsize=8)
ax2.set_xlabel("virtual token (and the token it started as)")
ax2.set_ylabel("cosine similarity")
ax2.set_ylim(min(0.0, min(to_start) - 0.05), 1.15)
ax2.axhline(0, color="black", lw=0.8)
ax2.set_title("after tuning: still near the start?")
ax2.legend(loc="upper right", fontsize=8)
fig.suptitle(f"Lesson 10: reading a tuned prompt ({model.name_or_path}, P={P})")
save_figure(fig, "10_norms")
report("10", "the tuned vectors are nearer (cosine) to real tokens than random vectors of the same norms, "
       "by at least 0.1", gap >= 0.1, tuned=float(sims[:, 0].mean()), random_same_norm=float(chance.mean()))
