"""Salience scorers: a real CLIP class from a local directory (tiny random weights, offline),
ordering, and the FoleyWorld scorer trained quickly when FoleyWorld is available."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models.prompting.scorer import ClipScorer, Scorer, load_scorer, order_by_score


def build_tiny_clip(out: Path) -> Path:
    """Random-weight ``CLIPModel`` + a word-level tokenizer + the PIL image processor, saved in
    hub layout, as a user's real CLIP directory would be."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, PreTrainedTokenizerFast

    words = "dog barks rain patters bell rings clock ticks a the".split()
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]")
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16, eos_token_id=3),
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def test_order_by_score_is_descending_and_stable() -> None:
    assert order_by_score(["a", "b", "c", "d"], [0.1, 0.5, 0.1, 0.9]) == [("d", 0.9), ("b", 0.5), ("a", 0.1), ("c", 0.1)]
    assert order_by_score([], []) == []


def test_real_clip_class_from_a_local_dir(tmp_path: Path) -> None:
    scorer = load_scorer(build_tiny_clip(tmp_path / "clip"))
    assert isinstance(scorer, ClipScorer) and isinstance(scorer, Scorer)
    frames = np.random.default_rng(0).integers(0, 256, (10, 48, 40, 3), dtype=np.uint8)
    s = scorer.score(frames, ["Dog barks", "Rain patters", "Bell rings"])
    assert len(s) == 3 and all(-1.0 <= v <= 1.0 for v in s)
    assert scorer.score(frames, ["Dog barks", "Rain patters", "Bell rings"]) == s  # deterministic
    assert scorer.score(frames, []) == []
    with pytest.raises(FileNotFoundError):
        ClipScorer(tmp_path / "missing")


# ---------------------------------------------------------------------------- FoleyWorld scorer

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny" / "scorer"


def test_train_scorer_is_deterministic_and_resumes_bit_identically(tmp_path: Path) -> None:
    pytest.importorskip("models.training.foleyworld")
    from safetensors.torch import load_file

    from models.training.scorer_train import train_scorer

    kw = dict(steps=6, seed=5, threads=1, n_train=12, batch=4, log_every=2, eval_scenes=0)
    full = train_scorer(tmp_path / "a", **kw)
    assert train_scorer(tmp_path / "b", stop_after=2, **kw)["stopped_at"] == 2
    resumed = train_scorer(tmp_path / "b", **kw)
    assert resumed["log"] == full["log"]
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@functools.lru_cache(maxsize=1)
def foley_scorer_dir() -> Path:
    """The shipped scorer when the bundle has one, else one trained once per test process."""
    if (SHIPPED / "scorer.json").is_file():
        return SHIPPED
    from models.training.scorer_train import train_scorer

    out = Path(tempfile.mkdtemp(prefix="stepfoley-scorer-"))
    train_scorer(out, steps=300, seed=0, threads=min(2, os.cpu_count() or 1), n_train=200, eval_scenes=0)
    return out


@pytest.fixture(scope="module")
def foley_scorer():
    pytest.importorskip("models.training.foleyworld")
    from models.prompting.scorer import FoleyScorer

    return FoleyScorer(foley_scorer_dir())


def test_foleyworld_scorer_ranks_present_sources_and_hears_the_mixture(foley_scorer) -> None:
    from models.training.scorer_train import evaluate_scorer

    res = evaluate_scorer(foley_scorer, n_scenes=20)
    print(f"FoleyWorld scorer ({foley_scorer.name}) held-out: {res}")
    assert res["video_pair_accuracy"] >= 0.8 and res["audio_presence_accuracy"] >= 0.8, res
