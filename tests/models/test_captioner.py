"""Captioner backends: the real transformers VLM path on a tiny random-weight Idefics3 (the
SmolVLM architecture) built offline, and the FoleyWorld captioner's recall."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models.prompting.captioner import (
    INSTRUCTION,
    Caption,
    Captioner,
    GenerationSettings,
    VLMCaptioner,
    keyframe_indices,
    keyframes,
    load_captioner,
    mosaic,
)

IMAGE_SIDE = 32  # tiny vision tower: 32 px images, 8 px patches, pixel shuffle 2 → 4 tokens/image


def build_tiny_idefics3(out: Path) -> Path:
    """A random-weight Idefics3 (SmolVLM's architecture) with its real processor class, a BPE
    tokenizer trained in milliseconds and a SmolVLM-style chat template, saved like a hub
    checkpoint so ``AutoProcessor`` / ``AutoModelForImageTextToText`` load it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil,
                              Idefics3Processor, PreTrainedTokenizerFast)

    specials = ["<unk>", "<pad>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([INSTRUCTION, "User: Assistant: Ocean waves crash loudly\nSail flaps rhythmically"], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<|im_start|>", eos_token="<end_of_utterance>")
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMAGE_SIDE},
                                                max_image_size={"longest_edge": IMAGE_SIDE})
    template = (
        "{% for m in messages %}{{ '<|im_start|>' if loop.first else '' }}{{ m['role'] | capitalize }}:"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=fast, image_seq_len=4,
                                  chat_template=template)
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=IMAGE_SIDE, patch_size=8),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, vocab_size=len(fast),
                         max_position_embeddings=512, pad_token_id=fast.pad_token_id),
        scale_factor=2, image_token_id=fast.convert_tokens_to_ids("<image>"), pad_token_id=fast.pad_token_id)
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(cfg).save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


def _frames(t: int = 50, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_keyframe_indices_spread_and_bounds() -> None:
    assert keyframe_indices(100, 4) == [12, 37, 62, 87]
    assert keyframe_indices(3, 8) == [0, 1, 2]
    assert keyframe_indices(1, 4) == [0]
    for n_frames in range(1, 60):
        idx = keyframe_indices(n_frames, 5)
        assert idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < n_frames
    with pytest.raises(ValueError):
        keyframe_indices(0, 4)


def test_keyframes_and_mosaic_shapes() -> None:
    f = _frames(20)
    kf = keyframes(f, 4)
    assert kf.shape == (4, 48, 64, 3) and kf.dtype == np.uint8
    assert np.array_equal(kf[0], f[keyframe_indices(20, 4)[0]])
    m = mosaic(f, grid=2, tile=16)
    assert m.shape == (3, 32, 32) and float(m.min()) >= -1.0 and float(m.max()) <= 1.0
    assert mosaic(f[:1], grid=2, tile=16).shape == (3, 32, 32)  # one frame repeated
    with pytest.raises(ValueError):
        keyframes(np.zeros((0, 8, 8, 3), np.uint8), 4)


def test_vlm_loads_through_auto_classes_and_templates_the_keyframes(tiny_vlm_dir: Path) -> None:
    cap = load_captioner(tiny_vlm_dir, settings=GenerationSettings(num_frames=3, max_new_tokens=8))
    assert isinstance(cap, VLMCaptioner) and isinstance(cap, Captioner)
    assert type(cap.model).__name__ == "Idefics3ForConditionalGeneration"
    prompt, inputs = cap.build_inputs(_frames(30), k=4)
    # One image placeholder per keyframe, then the instruction with k filled in, then the turn.
    assert prompt.startswith("<|im_start|>User:<image><image><image>")
    assert "up to 4 distinct sound events" in prompt and prompt.endswith("Assistant:")
    assert inputs["pixel_values"].shape[:2] == (1, 3)
    assert inputs["pixel_values"].shape[-2:] == (IMAGE_SIDE, IMAGE_SIDE)
    image_id = cap.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_id).sum()) == 3 * 4  # image_seq_len tokens per image


def test_vlm_generation_limits_settings_and_determinism(tiny_vlm_dir: Path) -> None:
    settings = GenerationSettings(num_frames=2, max_new_tokens=12, do_sample=True, temperature=1.0, top_p=0.95)
    cap = VLMCaptioner(tiny_vlm_dir, settings=settings)
    frames = _frames(40, seed=1)
    a = cap.caption(frames, k=3, seed=7)
    b = cap.caption(frames, k=3, seed=7)
    assert isinstance(a, Caption)
    assert 0 < a.settings["generated_tokens"] <= 12
    assert a.raw_text == b.raw_text  # same seed, same sample
    assert {"do_sample", "temperature", "top_p", "max_new_tokens", "num_frames", "seed", "model"} <= set(a.settings)
    assert a.settings["do_sample"] is True and a.settings["seed"] == 7
    # The random model's answer is garbage; whatever survives cleaning is bounded and non-empty.
    assert len(a.prompts) <= 3 and all(p.strip() and len(p.split()) <= 12 for p in a.prompts)
    greedy = VLMCaptioner(tiny_vlm_dir, settings=GenerationSettings(num_frames=2, max_new_tokens=5))
    g = greedy.caption(frames, k=5, seed=1)
    assert g.settings["generated_tokens"] <= 5 and "temperature" in g.settings
    assert greedy.caption(frames, k=5, seed=2).raw_text == g.raw_text  # greedy ignores the seed


def test_missing_captioner_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="captioner directory not found"):
        VLMCaptioner(tmp_path / "nope")


# ---------------------------------------------------------------------------- FoleyWorld captioner

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny" / "captioner"


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_captioner_is_deterministic_and_resumes_bit_identically(tmp_path: Path) -> None:
    pytest.importorskip("models.training.foleyworld")
    from models.prompting.captioner import FoleyCaptioner
    from models.training.captioner_train import train_captioner

    kw = dict(steps=6, seed=3, threads=1, n_train=12, batch=4, log_every=2)
    full = train_captioner(tmp_path / "a", **kw)
    part = train_captioner(tmp_path / "b", stop_after=4, **kw)
    assert part["stopped_at"] == 4 and (tmp_path / "b" / "_ckpt.pt").is_file()
    resumed = train_captioner(tmp_path / "b", **kw)
    assert resumed["log"] == full["log"]
    a, b = _params(FoleyCaptioner(tmp_path / "a").model), _params(FoleyCaptioner(tmp_path / "b").model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "train_log.json").is_file() and not (tmp_path / "a" / "_ckpt.pt").exists()


QUICK_STEPS, QUICK_SCENES = 500, 200


@functools.lru_cache(maxsize=1)
def foley_captioner_dir() -> Path:
    """The shipped captioner when the bundle has one, else one trained once per test process
    (small and quick; the tasks tests reuse it)."""
    if (SHIPPED / "captioner.json").is_file():
        return SHIPPED
    from models.training.captioner_train import train_captioner

    out = Path(tempfile.mkdtemp(prefix="stepfoley-captioner-"))
    train_captioner(out, steps=QUICK_STEPS, seed=0, threads=min(2, os.cpu_count() or 1), n_train=QUICK_SCENES,
                    eval_scenes=0)
    return out


@pytest.fixture(scope="module")
def foley_captioner():
    pytest.importorskip("models.training.foleyworld")
    from models.prompting.captioner import FoleyCaptioner

    return FoleyCaptioner(foley_captioner_dir())


def test_foleyworld_captioner_recall_on_heldout_seeds(foley_captioner) -> None:
    from models.training.captioner_train import evaluate_captioner_recall

    res = evaluate_captioner_recall(foley_captioner, n_scenes=40, split="test")
    print(f"FoleyWorld captioner ({foley_captioner.name}) held-out: {res}")
    assert res["recall"] >= 0.8, res
    cap = foley_captioner.caption(np.zeros((25, 64, 64, 3), np.uint8), k=5, seed=0)
    assert len(cap.prompts) <= 5 and cap.settings["backend"] == "foleyworld"
