"""The pretraining corpus of tiny-pretrained (pretrain/corpus.py): deterministic, all skills present, and the
templates that prompt tuning must find held out. Pure Python: no torch needed."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("corpus", ROOT / "pretrain" / "corpus.py")
corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(corpus)


@pytest.fixture(scope="module")
def docs():
    return corpus.build_corpus(seed=0)


def digest(docs):
    return hashlib.sha256(json.dumps(docs).encode()).hexdigest()


def test_the_corpus_is_a_function_of_its_seed(docs):
    assert digest(corpus.build_corpus(seed=0)) == digest(docs)
    assert digest(corpus.build_corpus(seed=1)) != digest(docs)


def test_the_committed_model_was_trained_on_this_corpus(docs):
    info = json.loads((ROOT / "tinyprompt" / "assets" / "tiny-pretrained" / "training.json").read_text())
    assert info["corpus_sha256"] == digest(docs), "pretrain/corpus.py changed since tiny-pretrained was trained"


def test_every_skill_is_there_in_several_forms(docs):
    answers = {answer for _, answer in docs}
    for positive, negative in corpus.FORMS:  # every sentiment form, both ways
        for _, answer in (positive, negative):
            assert answer.format(hi=5, lo=1) in answers or answer.format(hi=4, lo=2) in answers, answer
    text = "\n".join(c + a for c, a in docs)
    assert "3 plus 4 is 7." in text and "3+4=7" in text and "3 & 4 -> 7" in text
    assert "The opposite of hot is cold." in text and "Antonym of cold: hot" in text and "hot vs. cold" in text
    assert any(c.startswith("I want you to act as") and a == "" for c, a in docs)  # plain text


def test_answers_are_what_the_skill_produces(docs):
    """pretrain.py counts every answer token: an answer must be the verdict / sum / antonym, not the cue."""
    assert ("3 plus 4 is", " 7.") in docs and ("The opposite of hot is", " cold.") in docs
    sentiment = [a for c, a in docs if c.endswith("Verdict:")]
    assert set(sentiment) == {" good.", " bad."}


def test_the_label_words_mean_opposite_things_in_the_two_conventions_equally_often(docs):
    """Zero-shot with " positive"/" negative" is near chance only if no convention dominates: the two are
    drawn evenly, and nothing else uses the two words as an answer."""
    critic, opposite = (c.split("{s}")[0] for c, _, _ in corpus.CONVENTIONS)
    by_start = {critic: [], opposite: []}
    for context, answer in docs:
        if answer in (" positive", " negative"):
            by_start[next(k for k in by_start if context.startswith(k))].append(answer)
    n_critic, n_opposite = len(by_start[critic]), len(by_start[opposite])
    assert abs(n_critic - n_opposite) < 0.02 * (n_critic + n_opposite)
    assert all(" positive" not in a and " negative" not in a for _, a in docs if a not in (" positive", " negative"))


def test_the_held_out_templates_and_dev_sentences_are_not_in_it(docs):
    texts = [c + a for c, a in docs]
    assert not any("Sentiment:" in t or " <->" in t or (" + " in t and " =" in t) for t in texts)
    dev = [r["text"].strip() for r in corpus.read_tsv(ROOT / "data" / "sst2" / "dev.tsv")]
    assert not set(dev) & {t.strip() for t in texts}


@pytest.mark.parametrize("planted", ["it was fine Sentiment: positive", "2 + 3 = 5", "hot <-> cold"])
def test_check_held_out_catches_a_planted_template(planted):
    with pytest.raises(ValueError, match="held-out template"):
        corpus.check_held_out(["a harmless document", planted], dev_sentences=[])


def test_check_held_out_catches_a_dev_sentence():
    with pytest.raises(ValueError, match="dev sentence"):
        corpus.check_held_out(["unflinchingly bleak and desperate "], ["unflinchingly bleak and desperate "])
