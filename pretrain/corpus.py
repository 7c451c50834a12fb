"""The pretraining corpus of tiny-pretrained: documents built, deterministically, from data in the repo.

    docs = build_corpus(seed=0)           # [(context, answer)], the same list for the same seed, on any machine

A frozen model can only be prompted into a skill it has. This corpus teaches four, each in SEVERAL surface
forms, so that a soft prompt has something to find -- and never in the form the prompt will be tuned for:

- sentiment: every SST-2 training sentence (data/sst2-full/train.tsv), each pass in one of FORMS (a verdict
  after the review, a star rating, "I loved it." / "I hated it.", a yes/no question, ...), or plain;
- the words " positive" / " negative" as answers in two CONVENTIONS, as often as each other: after "The
  critic's view:" they say what the review says, after "The opposite view:" the reverse. A template that
  names neither (the held-out "{input}Sentiment:") leaves the model undecided, so zero-shot is near chance,
  although the model knows the sentiment: the soft prompt has to learn to pick the convention -- which is
  what prompt tuning is for, a learned prefix that selects a skill the frozen model already has;
- arithmetic on small numbers (0..14): sums and differences in several notations ("3 plus 4 is 7", "3+4=7",
  "3 & 4 -> 7", ...);
- antonyms (data/antonyms.tsv), both directions, in several phrasings;
- plain text: the role prompts of data/awesome-chatgpt-prompts (CC0) and the SST-2 sentences themselves.

HELD OUT, checked by `check_held_out`: the demo's template "{input}Sentiment:", every SST-2 dev sentence,
the addition template of data/toy/addition.jsonl ("A + B =") and the antonym template of
data/toy/antonyms.jsonl ("hot <->"). Zero-shot with those templates is near chance; the point of prompt
tuning is to find them.
"""

import csv
import random
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"

# Every document is a (context, answer) pair: the answer is the part that shows the skill (a verdict, a sum, an
# antonym); pretrain.py counts every answer token in the loss and a sample of the other tokens.
# (positive, negative) forms of a review; "{s}" is the sentence, which ends with a space in GLUE.
FORMS = [
    (("{s}I", " loved it."), ("{s}I", " hated it.")),
    (("{s}Verdict:", " good."), ("{s}Verdict:", " bad.")),
    (("{s}Rating:", " {hi} of 5."), ("{s}Rating:", " {lo} of 5.")),
    (("Review: {s}\nThe critic", " liked it."), ("Review: {s}\nThe critic", " disliked it.")),
    (("Q: Did the reviewer like the movie? \"{s}\" A:", " yes"), ("Q: Did the reviewer like the movie? \"{s}\" A:", " no")),
    (("{s}Thumbs", " up!"), ("{s}Thumbs", " down!")),
    (("{s}My mood after the film:", " happy."), ("{s}My mood after the film:", " sad.")),
]
# (convention, positive answer, negative answer): the same two words, meaning opposite things.
CONVENTIONS = [("The critic's view:\n{s}Answer:", " positive", " negative"),
               ("The opposite view:\n{s}Answer:", " negative", " positive")]
CONVENTION_SHARE = 0.3  # of the sentiment documents, split evenly between the two conventions
SUMS = [("{a} plus {b} is", " {c}."), ("{a}+{b}=", "{c}"), ("The sum of {a} and {b} is", " {c}."),
        ("Add {a} and {b} to get", " {c}."), ("{a} and {b} make", " {c}."),
        ("If you have {a} apples and get {b} more, you have", " {c} apples."), ("{a} & {b} ->", " {c}")]
DIFFERENCES = [("{c} minus {b} is", " {a}."), ("{c}-{b}=", "{a}"), ("Take {b} from {c} and", " {a} are left.")]
ANTONYMS = [("The opposite of {x} is", " {y}."), ("Antonym of {x}:", " {y}"), ("Not {x} but", " {y}."),
            ("Opposites: {x} and", " {y}."), ("{x} is the opposite of", " {y}."), ("{x} vs.", " {y}")]
HELD_OUT = {  # pattern -> the template it keeps out of the corpus
    r"Sentiment:": "{input}Sentiment:",
    r"\d+ \+ \d+ =": "{a} + {b} =",
    r"<->": "{word} <->",
}


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def fill(form, **values):
    return tuple(part.format(**values) for part in form)


def sentiment_docs(sentences, rng, passes):
    """Each sentence `passes` times, each time in a random form, in one of the two CONVENTIONS, or as plain
    text (1 in 10)."""
    docs = []
    for _ in range(passes):
        for row in sentences:
            s, positive = row["sentence"], row["label"] == "1"
            draw = rng.random()
            if draw < 0.1:
                docs.append((s.strip(), ""))
            elif draw < 0.1 + CONVENTION_SHARE:
                context, yes, no = rng.choice(CONVENTIONS)
                docs.append((context.format(s=s), yes if positive else no))
            else:
                form = rng.choice(FORMS)[0 if positive else 1]
                docs.append(fill(form, s=s, hi=rng.choice("45"), lo=rng.choice("12")))
    return docs


def arithmetic_docs(rng, repeats, top=15):
    docs = []
    for _ in range(repeats):
        for a in range(top):
            for b in range(top):
                docs.append(fill(rng.choice(SUMS), a=a, b=b, c=a + b))
                docs.append(fill(rng.choice(DIFFERENCES), a=a, b=b, c=a + b))
    return docs


def antonym_docs(pairs, rng, repeats):
    docs = []
    for _ in range(repeats):
        for row in pairs:
            for x, y in ((row["word"], row["antonym"]), (row["antonym"], row["word"])):
                docs.append(fill(rng.choice(ANTONYMS), x=x, y=y))
    return docs


def check_held_out(docs, dev_sentences):
    """Raise if any document (a string) contains a held-out template or an SST-2 dev sentence."""
    for pattern, template in HELD_OUT.items():
        hit = next((d for d in docs if re.search(pattern, d)), None)
        if hit is not None:
            raise ValueError(f"held-out template {template!r} found in the corpus: {hit[:80]!r}")
    dev = {s.strip() for s in dev_sentences}
    hit = next((d for d in docs if d.strip() in dev), None)
    if hit is not None:
        raise ValueError(f"SST-2 dev sentence in the corpus: {hit[:80]!r}")


def build_corpus(seed=0, sentiment_passes=4, arithmetic_repeats=250, antonym_repeats=250, plain_repeats=4):
    """The corpus as a list of (context, answer) documents, shuffled; a function of its arguments alone."""
    rng = random.Random(seed)
    sentences = [{"sentence": r["text"], "label": r["label"]} for r in read_tsv(DATA / "sst2-full" / "train.tsv")]
    dev = [r["text"] for r in read_tsv(DATA / "sst2" / "dev.tsv")]
    dev_set = {s.strip() for s in dev}
    sentences = [s for s in sentences if s["sentence"].strip() not in dev_set]  # none today; kept as a guard
    with open(DATA / "awesome-chatgpt-prompts" / "prompts.csv", encoding="utf-8", newline="") as f:
        prompts = [row["prompt"] for row in csv.DictReader(f)]
    docs = (sentiment_docs(sentences, rng, sentiment_passes)
            + arithmetic_docs(rng, arithmetic_repeats)
            + antonym_docs(read_tsv(DATA / "antonyms.tsv"), rng, antonym_repeats)
            + [(p, "") for p in prompts] * plain_repeats)
    rng.shuffle(docs)
    check_held_out([context + answer for context, answer in docs], dev)
    return docs
