"""The GPT-2 tokenizer: bundled files, known ids, round trips, and (reference) agreement with transformers."""

import pytest

from tinyprompt import hub
from tinyprompt.errors import TinyPromptError
from tinyprompt.tokenizer import ASSETS, bundled_tokenizer, load_tokenizer, write_tokenizer_json

TEXTS = ["Hello world", " leading space", "naïve café 🤖 — 日本語", "line one\nline two\n\n\tend",
         "a<|endoftext|>b", "", "   ", "GPT-2's byte-level BPE: 1234567890!"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYPROMPT_CACHE", str(tmp_path / "weights"))


def test_known_ids():
    tok = load_tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("<|endoftext|>") == [50256]
    assert tok.encode(" Hello") == [18435]  # no prefix space is added to the first word
    assert tok.eos_id == 50256 and tok.vocab_size == 50257
    assert tok.id_to_token(995) == "Ġworld" and tok.decode([995]) == " world"


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    tok = load_tokenizer()
    assert tok.decode(tok.encode(text)) == text


def test_bundled_files_live_in_the_package():
    assert ASSETS.parent.name == "tinyprompt"
    assert (ASSETS / "vocab.bpe").read_text(encoding="utf-8").startswith("#version: 0.2")
    assert (ASSETS / "encoder.json").stat().st_size > 1_000_000
    assert "MIT" in (ASSETS / "SOURCE.md").read_text()


def test_id_out_of_range():
    with pytest.raises(TinyPromptError, match="50257"):
        load_tokenizer().id_to_token(50257)


def test_model_folder_tokenizer_json_is_used(tmp_path):
    write_tokenizer_json(tmp_path / "tokenizer.json")
    tok = load_tokenizer(tmp_path)
    assert [tok.encode(t) for t in TEXTS] == [bundled_tokenizer().encode(t) for t in TEXTS]
    (tmp_path / "tokenizer.json").write_text("{not json")  # proves the folder's file is the one read
    with pytest.raises(TinyPromptError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.mark.reference
def test_transformers_tokenizer_agrees():
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    directory = hub.find_weights("tiny-random")
    ours = load_tokenizer(directory)
    for theirs in (AutoTokenizer.from_pretrained(directory),
                   PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))):
        for text in TEXTS:
            assert theirs(text)["input_ids"] == ours.encode(text), text
            assert theirs.decode(ours.encode(text)) == text
