"""CLIP BPE tokenizer: open_clip's exact ids (SimpleTokenizer of open_clip_torch 3.3.0)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.tokenizer import DATA_DIR, VOCAB_FILE, ClipTokenizer, clean_text, default_tokenizer

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"

# Ids produced by open_clip_torch 3.3.0's SimpleTokenizer (with ftfy 6.3.1) for texts that exercise
# the cleaning (HTML entities, ligatures, full-width forms, curly quotes, terminal escapes, C1
# controls, BOM, combining marks), clitics, non-Latin scripts and literal special-token strings.
OPEN_CLIP_IDS = [
    ("\u00dcn\u00efc\u00f6d\u00e9 \ufb01ne \u201cquotes\u201d caf\u00e9 123 x\u00b2  &amp;amp; emoji \ud83d\udc15",
     [49406, 6522, 77, 35689, 66, 7255, 67, 4166, 3797, 257, 5808, 257, 15304, 272, 273, 274, 343, 41175, 261,
      16327, 41069, 49407]),
    ("\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff54\uff45\uff58\uff54", [49406, 9407, 23571, 4160, 49407]),
    ("tabs\tand\nnewlines\r\n and  spaces", [49406, 29163, 537, 1218, 3418, 537, 9006, 49407]),
    ("<start_of_text> sneaky <end_of_text>", [49406, 49406, 21293, 49407, 49407]),
    ("It's they're we've I'm you'll he'd", [49406, 585, 568, 889, 982, 649, 1200, 328, 880, 592, 1342, 797, 1896, 49407]),
    ("&lt;b&gt;bold&lt;/b&gt; <b>x</b> &amp;lt;",
     [49406, 283, 321, 285, 8911, 34308, 321, 285, 283, 321, 285, 343, 34308, 321, 285, 283, 49407]),
    ("\u001b[31mred\u001b[0m", [49406, 736, 49407]),
    ("\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
     [49406, 39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486, 49407]),
    ("\u00c7A VA? \u0130stanbul \u00df \u1e9e", [49406, 22711, 1892, 286, 328, 16384, 11231, 127, 509, 127, 509, 49407]),
    ("\u2028line sep\u0085nel", [49406, 1148, 10434, 959, 2693, 49407]),
    ("\u0133ssel \u01c4 \ufb00", [49406, 7337, 19373, 67, 129, 378, 1304, 49407]),
    ("\ufeffbom", [49406, 19469, 49407]),
    ("e\u0301 composed", [49406, 4166, 19916, 49407]),
    ("x \ud83d\udc15 \ud83d y", [49406, 343, 41069, 39802, 344, 49407]),  # surrogate pair, lone surrogate
    ("dog \U0001f415 and cat \U0001f408", [49406, 1929, 41069, 537, 2368, 2074, 486, 49407]),
]


def test_fixture_prompts_give_open_clip_ids_exactly() -> None:
    prompts = json.loads((FIX / "clip_tiny.json").read_text())["prompts"]
    ref = load_file(str(FIX / "clip_tiny_io.safetensors"))["text_tokens"]
    out = default_tokenizer()(prompts)
    assert out.dtype == torch.long
    assert torch.equal(out, ref)


@pytest.mark.parametrize("text,ids", OPEN_CLIP_IDS)
def test_cleaning_and_bpe_match_open_clip(text: str, ids: list[int]) -> None:
    row = default_tokenizer()([text])[0]
    assert row[: len(ids)].tolist() == ids
    assert not row[len(ids):].any()


def test_vocabulary_and_special_tokens() -> None:
    tok = default_tokenizer()
    assert tok.vocab_size == 49408
    assert (tok.start_id, tok.end_id) == (49406, 49407)
    digest = hashlib.sha256((DATA_DIR / VOCAB_FILE).read_bytes()).hexdigest()
    assert digest == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
    assert (DATA_DIR / "LICENSE-open_clip-bpe.txt").exists()


def test_truncation_keeps_end_token_last_and_padding_is_zero() -> None:
    tok = default_tokenizer()
    long = tok(["word " * 200])[0]
    assert long.shape == (77,) and long[0] == 49406 and long[-1] == 49407 and (long[1:-1] != 0).all()
    short = tok("a dog", context_length=8)
    assert short.tolist() == [[49406, 320, 1929, 49407, 0, 0, 0, 0]]


def test_cleaning_lowercases_and_collapses_whitespace() -> None:
    assert clean_text("  A  Dog\n\tBARKING  ") == "a dog barking"
    tok = default_tokenizer()
    assert torch.equal(tok("A  DOG\tbarking"), tok("a dog barking"))
    assert tok.decode([i for i in tok("a dog barking")[0].tolist() if i]) == \
        "<start_of_text>a dog barking <end_of_text>"


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    ClipTokenizer(context_length=77).save_pretrained(tmp_path / "tokenizer")
    again = ClipTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert again.vocab_file == tmp_path / "tokenizer" / VOCAB_FILE
    assert torch.equal(again(["rain on a tin roof"]), default_tokenizer()(["rain on a tin roof"]))
