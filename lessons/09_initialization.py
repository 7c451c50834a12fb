"""Lesson 09 -- where the prompt starts: random, vocab, text and class-label initialisation.

What it teaches
  Gradient descent has to start somewhere, and for a soft prompt the start matters. Lester et al. (section
  3.2) compare the starts below on T5. The four starts of prompt.init_prompt:
  - random: uniform in [-0.5, 0.5], the paper's random init. Its vectors lie far from every real token
    (their norms against wte's are printed);
  - vocab: rows of wte for frequent tokens (ids below 5,000), the paper's "sampled vocab";
  - text: the embeddings of a task description, repeated or cut to P tokens (PEFT's TEXT init);
  - labels: the embeddings of the class labels " negative" and " positive" in the first rows, the rest as
    vocab (the paper's "class label" init).
  Every run uses the same data, batches, learning rate and number of steps; only the start differs. So the
  curves show how the start alone shapes a short run.

What to look at
  - the table: the norm of each start's vectors against wte's, and the validation loss before and after;
  - lessons/out/09_initialization.png: the four loss curves on one plot (train per step, validation per
    epoch).
"""

import matplotlib.pyplot as plt
import numpy as np
from common import DATA, load, parse_args, sample, save_figure, table, tune

from tinyprompt import data
from tinyprompt.prompt import INIT_METHODS, init_prompt
from tinyprompt.train import mean_loss

TEMPLATE = "Review: {input}\nSentiment:"
LABEL_WORDS = "0= negative,1= positive"
INIT_TEXT = "Is this movie review positive or negative?"
COLUMNS = {"input_column": "text", "output_column": "label", "template": TEMPLATE}
P, LR, BATCH, SEED = 8, 0.03, 8, 0


def main():
    args = parse_args(__doc__)
    model, tok = load(args)
    n_train, n_val, epochs = (16, 8, 2) if args.quick else (32, 16, 2)
    train_path = sample(DATA / "sst2" / "train.tsv", n_train, "09_sst2_train.tsv")
    val_path = sample(DATA / "sst2" / "dev.tsv", n_val, "09_sst2_val.tsv")
    label_words = data.parse_label_words(LABEL_WORDS)
    train_data = data.load_data(train_path, tok, TEMPLATE, input_column="text", output_column="label",
                                label_words=label_words)
    val_rows = data.load_data(val_path, tok, TEMPLATE, input_column="text", output_column="label",
                              label_words=label_words).examples
    steps = epochs * data.num_batches(n_train, BATCH)
    w_norms = np.linalg.norm(model.wte, axis=1)  # [V]
    print(f"\n1. SST-2: {n_train} training rows (train.tsv), {n_val} validation rows (dev.tsv), seed {SEED}; "
          f"P={P}, AdamW lr {LR}, batch {BATCH}, {epochs} epochs = {steps} steps for every start")
    print(f"   text init: {INIT_TEXT!r} ({len(tok.encode(INIT_TEXT))} tokens, repeated or cut to {P}); labels init: "
          f"{train_data.outputs()} in the first rows")
    print(f"   wte row norms: median {np.median(w_norms):.3f}, min {w_norms.min():.3f}, max {w_norms.max():.3f}")

    runs = {}
    for init in INIT_METHODS:
        # the prompt train() starts from: the same call with the same arguments (init_prompt is deterministic)
        start = init_prompt(init, P, model.wte, tok, INIT_TEXT, train_data.outputs(), SEED)
        val0 = mean_loss(model, start, val_rows, BATCH, tok.eos_id)
        _, metrics = tune(model, tok, f"09_{init}", data=str(train_path), val_data=str(val_path),
                          num_virtual_tokens=P, init=init, init_text=INIT_TEXT if init == "text" else None,
                          lr=LR, epochs=epochs, batch_size=BATCH, seed=SEED, label_words=LABEL_WORDS, quiet=True,
                          **COLUMNS)
        runs[init] = (start, val0, metrics)

    shared = sum(any(np.array_equal(row, other) for other in runs["vocab"][0]) for row in runs["labels"][0])
    print(f"   (the labels start shares {shared} of its {P} vectors with the vocab start)")
    print(f"\n2. the four starts, each tuned for {steps} steps (runs in lessons/out/09_<init>/)")
    table(["init", "mean |vector| at start", "val loss at start", *(f"val loss epoch {e + 1}" for e in range(epochs)),
           "train loss, last epoch"],
          [(init, f"{np.linalg.norm(start, axis=1).mean():.3f}", f"{val0:.4f}",
            *(f"{v:.4f}" for v in m["val_losses"]), f"{m['epoch_losses'][-1]:.4f}")
           for init, (start, val0, m) in runs.items()])

    fig, ax = plt.subplots(figsize=(10, 6))
    for i, (init, (_, val0, m)) in enumerate(runs.items()):
        per_epoch = m["steps_per_epoch"]
        x = np.arange(1, len(m["step_losses"]) + 1) / per_epoch
        ax.plot(x, m["step_losses"], color=f"C{i}", alpha=0.45, lw=1.2)
        ax.plot(np.arange(epochs + 1), [val0, *m["val_losses"]], "o--", color=f"C{i}", lw=2, label=init)
    ax.plot([], [], color="black", alpha=0.45, lw=1.2, label="thin: train loss of each step")
    ax.plot([], [], "o--", color="black", lw=2, label="dashed: validation loss per epoch")
    ax.set_xticks(range(epochs + 1))
    ax.set_xlabel("epoch (0: before the first step)")
    ax.set_ylabel("loss (cross-entropy, nats per scored token)")
    ax.set_title(f"Lesson 09: four initialisations of P={P} virtual tokens, {n_train} SST-2 rows "
                 f"({model.name_or_path})")
    ax.grid(alpha=0.3)
    ax.legend(title="colour: init", ncol=2)
    save_figure(fig, "09_initialization")


if __name__ == "__main__":
    main()
