"""The GPT-2 tokenizer: text <-> token ids, with no download.

GPT-2 uses byte-level BPE: text is split into bytes, each byte is shown as a printable character ("Ġ" is a
space), and 50,000 learned merges glue frequent pairs into the 50,257 tokens of `encoder.json`. We let the
`tokenizers` library run it (fast, and exactly what transformers uses). A model folder's own
`tokenizer.json` wins; otherwise the tokenizer is built from the files bundled in `tinyprompt/assets/`
(see SOURCE.md there), which all GPT-2 sizes share.

    tok = load_tokenizer()
    tok.encode("Hello world")   # [15496, 995]
    tok.decode([15496, 995])    # "Hello world"
"""

from functools import lru_cache
from pathlib import Path

import tokenizers
from tokenizers import decoders, pre_tokenizers
from tokenizers.models import BPE

from tinyprompt.errors import TinyPromptError

ASSETS = Path(__file__).resolve().parent / "assets"
EOS = "<|endoftext|>"


class Tokenizer:
    """A thin wrapper so the rest of tinyprompt sees plain Python lists, not `tokenizers.Encoding`s."""

    def __init__(self, backend: tokenizers.Tokenizer):
        self.backend = backend
        self.eos_id = backend.token_to_id(EOS)  # 50256: ends a document, GPT-2 has no other special token
        if self.eos_id is None:
            raise TinyPromptError(f"the vocabulary has no {EOS} token, which ends every training row")
        self.vocab_size = backend.get_vocab_size()  # 50257
        # No token covers more characters than its stored piece has (byte-level: one per byte; 66 for
        # GPT-2), so a text of more than k * max_token_chars characters has more than k tokens.
        self.max_token_chars = max(map(len, backend.get_vocab()))
        # GPT-2's pre-tokenizer cuts text into pieces (words, runs of spaces, <|endoftext|>) by looking only a
        # character ahead, so a prefix of the text has the same pieces except near its end: encode_start
        # relies on it. A normalizer (NFKC, lowercasing, ...) or another pre-tokenizer may not.
        self.local = backend.normalizer is None and isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel)

    def encode(self, text: str) -> list[int]:
        # add_special_tokens=False: GPT-2 adds no BOS/EOS around text; "<|endoftext|>" written in the
        # text itself still becomes 50256 because it is registered as a special token.
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_start(self, text: str, n: int) -> list[int]:
        """encode(text)[:n], encoding only a prefix of the text: a 20 MB row cut to 1024 tokens costs
        milliseconds and kilobytes, not minutes and gigabytes."""
        size = (n + 1) * self.max_token_chars  # no token covers more characters: enough for n tokens
        while self.local and size < len(text):
            ids = self.encode_sure(text, size)
            if len(ids) >= n:
                return ids[:n]
            size *= 2  # a piece longer than the bound (a huge word) is not sure yet: look further
        return self.encode(text)[:n]

    def encode_sure(self, text: str, size: int) -> list[int]:
        """The tokens of text[:size] that are certainly encode(text)'s first ones (tests/test_data.py checks):
        those of the pieces that end a margin before the cut. The pieces after it may be cut short (a word, a
        run of spaces that keeps its last space for the next word, an <|endoftext|> torn in two)."""
        encoding = self.backend.encode(text[:size], add_special_tokens=False)
        margin = size - self.max_token_chars - 2  # <|endoftext|> is a token: no longer than max_token_chars
        unsure = next(i for i, (_, end) in enumerate(encoding.offsets) if end > margin)  # the last token's end is size
        return encoding.ids[: encoding.word_ids.index(encoding.word_ids[unsure])]  # up to that token's piece

    def decode(self, ids) -> str:
        # Keep special tokens visible: an "<|endoftext|>" in generated text is worth seeing.
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def id_to_token(self, i: int) -> str:
        """The BPE piece as stored, e.g. 995 -> "Ġworld" ("Ġ" marks a leading space); decode([i]) gives " world"."""
        token = self.backend.id_to_token(int(i))
        if token is None:
            raise TinyPromptError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
        return token

    def save(self, path) -> Path:
        """Write tokenizer.json, the file transformers' AutoTokenizer / PreTrainedTokenizerFast can load."""
        self.backend.save(str(path))
        return Path(path)


@lru_cache(maxsize=1)
def _bundled_backend() -> tokenizers.Tokenizer:
    # Built once per process (~0.3 s): parsing 50k merges is the slow part.
    backend = tokenizers.Tokenizer(BPE.from_file(str(ASSETS / "encoder.json"), str(ASSETS / "vocab.bpe")))
    # add_prefix_space=False: "Hello" at the start of a text stays token 15496, not " Hello" (18435).
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # Without this the literal string "<|endoftext|>" would be split into 6 ordinary pieces.
    backend.add_special_tokens([EOS])
    return backend


def bundled_tokenizer() -> Tokenizer:
    """The GPT-2 tokenizer built from the bundled encoder.json + vocab.bpe."""
    return Tokenizer(_bundled_backend())


def write_tokenizer_json(path) -> Path:
    """Write the bundled tokenizer as a tokenizer.json (used for tiny-random and save_checkpoint)."""
    return bundled_tokenizer().save(path)


def load_tokenizer(folder=None) -> Tokenizer:
    """The tokenizer of a model folder if it has a tokenizer.json, else the bundled one.

    Only a folder: a model name is resolved to its folder by `tinyprompt.load_tokenizer` (api.py), so this
    module needs nothing from hub.py (which imports it).
    """
    file = Path(folder).expanduser() / "tokenizer.json" if folder is not None else None
    if file is not None and file.is_file():
        try:
            return Tokenizer(tokenizers.Tokenizer.from_file(str(file)))
        except Exception as e:  # noqa: BLE001 (tokenizers raises a bare Exception for a bad file)
            raise TinyPromptError(f"{file}: not a valid tokenizer.json ({e})") from None
    return bundled_tokenizer()
