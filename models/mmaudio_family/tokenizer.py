"""CLIP's byte-level BPE tokenizer, giving open_clip's ``SimpleTokenizer`` ids (what MMAudio uses
through ``open_clip.get_tokenizer('ViT-H-14-378-quickgelu')``), without open_clip or ftfy.

Vocabulary (49408 ids), built from the merge list ``data/bpe_simple_vocab_16e6.txt.gz`` (OpenAI's,
as shipped in open_clip; see ``data/LICENSE-open_clip-bpe.txt``):

    ids 0‥255     the 256 byte symbols β(b)            (β: bytes → printable code points, below)
    ids 256‥511   the same symbols with "</w>" (end of word)
    ids 512‥      the concatenation of each of the first 48894 merges, in file order
    49406, 49407  <start_of_text>, <end_of_text>

β maps the printable Latin-1 bytes (! … ~, ¡ … ¬, ® … ÿ) to themselves and every other byte,
in increasing order, to U+0100, U+0101, … so that every byte is a visible character.

Encoding a text:
1. clean: ftfy-like repair (below), HTML-unescape twice, strip; collapse whitespace runs to one
   space; lower-case.
2. split into pieces with ``<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|
   [^\\s\\p{L}\\p{N}]+`` (letters runs, single digits, punctuation runs, English clitics).
3. each piece → UTF-8 bytes → β symbols, "</w>" appended to the last symbol; then BPE: while some
   adjacent pair is a known merge, merge every (left-to-right, non-overlapping) occurrence of the
   pair of lowest rank. The resulting symbols are looked up in the vocabulary.
4. ``[49406] + ids + [49407]``, truncated to the context length with the last position forced to
   49407, zero-padded to the context length (77).

Cleaning. open_clip calls ``ftfy.fix_text`` first. ftfy is not a dependency here; for text that is
already valid Unicode its default fixes reduce to the rules implemented in ``fix_text``: unescape
HTML entities once when the text has no "<", drop ANSI terminal escapes, turn Latin ligatures
(ﬁ, ﬂ, …) and full-/half-width forms into plain letters, straighten curly quotes, drop control and
invisible formatting characters, read C1 controls (U+0080‥U+009F) as the Windows-1252 characters
they stand for, join UTF-16 surrogate pairs (a lone surrogate becomes U+FFFD), NFC-normalise.
Not implemented: ftfy's mojibake repair (re-decoding text that was UTF-8 read as Latin-1 /
Windows-1252, e.g. "cafÃ©" → "café"); such input tokenizes as written. Measured against open_clip
+ ftfy 6.3.1 on 3000 random strings drawn from ASCII, Latin-1/Windows-1252 symbols, CJK, Cyrillic
and emoji: identical ids for all of them when ftfy's mojibake repair is off; with it on (open_clip's
default) 57 differ, where ftfy "repairs" runs such as "Ã©" or "œ¥" that look like mis-decoded UTF-8.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import shutil
import unicodedata
from pathlib import Path
from typing import Sequence

import regex
import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # merges used: vocab 49408 = 512 byte symbols + merges + 2 specials
START_TOKEN, END_TOKEN = "<start_of_text>", "<end_of_text>"
CONTEXT_LENGTH = 77
END_OF_WORD = "</w>"

_PIECES = regex.compile(
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_ANSI_ESCAPE = regex.compile(r"\x1b\[[0-9;]*[a-zA-Z]")
_C1 = regex.compile(r"[\x80-\x9f]")
_SURROGATE_PAIR = regex.compile(r"[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = regex.compile(r"[\ud800-\udfff]")
_HTML_ENTITY = regex.compile(r"&#?[0-9A-Za-z]{1,24};")
_SINGLE_QUOTES = regex.compile(r"[\u02bc\u2018-\u201b]")
_DOUBLE_QUOTES = regex.compile(r"[\u201c-\u201f]")
# Ligatures of Latin letters (ﬀ…ﬆ, Ĳ/ĳ, Ǆ…ǌ, Ǳ…ǳ) and full-/half-width forms: NFKC gives the plain letters.
_COMPAT = regex.compile(r"[\ufb00-\ufb06\u0132\u0133\u01c4-\u01cc\u01f1-\u01f3\u3000\uff01-\uffee]")
# C0 controls but tab/newlines/form feed, DEL, deprecated format characters, BOM, interlinear
# annotation, musical-notation format characters and language tags: invisible, dropped.
_CONTROL = regex.compile(
    r"[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc\U0001d173-\U0001d17a\U000e0000-\U000e007f]"
)


def _c1_as_windows_1252(match: "regex.Match[str]") -> str:
    # Undefined Windows-1252 bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) stay as they are.
    try:
        return match.group(0).encode("latin-1").decode("windows-1252")
    except UnicodeDecodeError:
        return match.group(0)


def _join_surrogates(match: "regex.Match[str]") -> str:
    hi, lo = (ord(c) for c in match.group(0))
    return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))


def fix_text(text: str) -> str:
    """The subset of ``ftfy.fix_text``'s defaults that applies to valid Unicode (module docstring)."""
    text = _C1.sub(_c1_as_windows_1252, text)
    if "<" not in text:
        text = _HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _ANSI_ESCAPE.sub("", text)
    text = _COMPAT.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)
    text = _SINGLE_QUOTES.sub("'", text)
    text = _DOUBLE_QUOTES.sub('"', text)
    text = _CONTROL.sub("", text)
    text = _SURROGATE_PAIR.sub(_join_surrogates, text)
    text = _SURROGATE.sub("\ufffd", text)
    return unicodedata.normalize("NFC", text)


def clean_text(text: str) -> str:
    """open_clip's "lower" cleaning: repair, unescape HTML twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(fix_text(text))).strip()
    return " ".join(text.split()).lower()


@functools.lru_cache(maxsize=1)
def byte_symbols() -> tuple[str, ...]:
    """β: the printable symbol of each byte value 0‥255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    keep = set(printable)
    symbols, extra = [], 0
    for b in range(256):
        if b in keep:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return tuple(symbols)


def _vocab_order() -> list[int]:
    """Byte values in the order their symbols take ids 0‥255: printable ones first, then the rest."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return printable + [b for b in range(256) if b not in set(printable)]


class ClipTokenizer:
    """Texts → ``LongTensor [N, context_length]`` of open_clip's ids (see module docstring)."""

    def __init__(self, vocab_file: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> None:
        self.vocab_file = Path(vocab_file) if vocab_file is not None else DATA_DIR / VOCAB_FILE
        with gzip.open(self.vocab_file, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        # The first line is a version header; only the first NUM_MERGES merges are in the vocabulary.
        merges = [tuple(line.split()) for line in lines[1: 1 + NUM_MERGES]]
        sym = byte_symbols()
        units = [sym[b] for b in _vocab_order()]
        tokens = units + [u + END_OF_WORD for u in units] + ["".join(m) for m in merges] + [START_TOKEN, END_TOKEN]
        self.encoder: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.decoder: dict[int, str] = {i: t for t, i in self.encoder.items()}
        self.ranks: dict[tuple[str, str], int] = {m: r for r, m in enumerate(merges)}
        self.start_id, self.end_id = self.encoder[START_TOKEN], self.encoder[END_TOKEN]
        self.context_length = int(context_length)
        self._byte_sym = sym
        self._sym_byte = {s: b for b, s in enumerate(sym)}
        self._cache: dict[str, tuple[str, ...]] = {START_TOKEN: (START_TOKEN,), END_TOKEN: (END_TOKEN,)}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, piece: str) -> tuple[str, ...]:
        if piece in self._cache:
            return self._cache[piece]
        word = [*piece[:-1], piece[-1] + END_OF_WORD]
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        out = tuple(word)
        self._cache[piece] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without the start/end tokens."""
        ids: list[int] = []
        for piece in _PIECES.findall(clean_text(text)):
            if piece not in (START_TOKEN, END_TOKEN):
                piece = "".join(self._byte_sym[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self._bpe(piece))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids → text (special tokens kept, padding zeros must be removed by the caller)."""
        text = "".join(self.decoder[int(i)] for i in ids)
        out = bytearray()
        for ch in text.replace(END_OF_WORD, " "):
            out.append(self._sym_byte[ch]) if ch in self._sym_byte else out.extend(ch.encode("utf-8"))
        return out.decode("utf-8", errors="replace")

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        n = int(context_length or self.context_length)
        result = torch.zeros(len(texts), n, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > n:
                ids = ids[:n]
                ids[-1] = self.end_id
            result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return result

    # ------------------------------------------------------------------ bundle layout
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the merge list and ``tokenizer_config.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.vocab_file, d / VOCAB_FILE)
        licence = DATA_DIR / "LICENSE-open_clip-bpe.txt"
        if licence.exists():
            shutil.copyfile(licence, d / licence.name)
        config = {"tokenizer_class": type(self).__name__, "vocab_file": VOCAB_FILE,
                  "context_length": self.context_length}
        (d / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, **kwargs) -> "ClipTokenizer":
        """From a directory written by ``save_pretrained`` (or the packaged vocabulary if None)."""
        if directory is None:
            return cls(**kwargs)
        d = Path(directory)
        config = json.loads((d / "tokenizer_config.json").read_text()) if (d / "tokenizer_config.json").exists() else {}
        vocab = d / config.get("vocab_file", VOCAB_FILE)
        return cls(vocab_file=vocab if vocab.exists() else None,
                   context_length=kwargs.get("context_length", config.get("context_length", CONTEXT_LENGTH)))


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> ClipTokenizer:
    """The packaged tokenizer (built once: reading the merge list takes ~0.1 s)."""
    return ClipTokenizer()
