"""VideoFeatures and TextEncoder: MMAudio token counts, motion sensitivity, tokenizer round trip."""

from __future__ import annotations

import numpy as np
import torch

from models.demo_family.features import FrameSpec, TextEncoder, VideoFeatures, build_tokenizer, tokenize


def _moving_square(n: int, fps: float, hit_times: list[float], size: int = 64) -> np.ndarray:
    """A white square in the top-left cell that jumps at ``hit_times`` (else still)."""
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        jumps = sum(1 for h in hit_times if i / fps >= h)
        x = 2 + (jumps % 2) * 6
        frames[i, 2:10, x : x + 6] = 255
    return frames


def test_frame_specs_and_token_counts() -> None:
    vf = VideoFeatures()
    specs = vf.frame_specs()
    assert set(specs) == {"clip", "sync"}
    assert specs["clip"] == FrameSpec(fps=8.0, size=64, crop="resize")
    assert specs["sync"].fps == 25.0 and specs["sync"].crop == "resize"
    rng = np.random.default_rng(0)
    clip8 = rng.integers(0, 256, (64, 48, 80, 3), dtype=np.uint8)  # any input size is accepted
    sync8 = rng.integers(0, 256, (200, 64, 64, 3), dtype=np.uint8)
    assert vf.encode_clip(clip8, 8.0).shape == (1, 64, 64)
    assert vf.encode_sync(sync8, 8.0).shape == (1, 192, 32)
    assert vf.encode_sync(sync8[:100], 4.0).shape == (1, 96, 32)
    # batched input, and short reads are padded by repeating the last frame
    assert vf.encode_clip(np.stack([clip8[:30], clip8[:30]]), 4.0).shape == (2, 32, 64)


def test_sync_features_follow_motion_in_time_and_space() -> None:
    vf = VideoFeatures()
    frames = _moving_square(100, 25.0, hit_times=[1.0, 3.0])
    sync = vf.encode_sync(frames, 4.0)[0]  # [96, 32]
    energy_top_left = sync[:, 0]
    # motion appears right at the jumps (tokens at 24/s) and nowhere else
    assert energy_top_left[23:26].max() > 0.5 and energy_top_left[71:74].max() > 0.5
    assert energy_top_left[30:60].abs().max() < 1e-6
    assert sync[:, 1:16].abs().max() < 0.5 * energy_top_left.max()  # other cells barely move


def test_clip_projection_is_learnable_and_saved(tmp_path) -> None:
    vf = VideoFeatures()
    frames = _moving_square(32, 8.0, [1.0])
    out = vf.encode_clip(frames, 4.0)
    out.sum().backward()
    assert vf.clip_proj.weight.grad is not None
    vf.save_pretrained(tmp_path)
    assert torch.equal(VideoFeatures.from_pretrained(tmp_path).encode_clip(frames, 4.0), out.detach())


def test_tokenizer_and_text_encoder(tmp_path) -> None:
    tok = build_tokenizer(["a dog barks", "Rain falls, softly."])
    ids, mask = tokenize(tok, ["A dog barks loudly!", "", "rain " * 40])
    assert ids.shape == mask.shape == (3, 16)
    vocab = tok.get_vocab()
    assert ids[0, :3].tolist() == [vocab["a"], vocab["dog"], vocab["barks"]]
    assert ids[0, 3].item() == vocab["[UNK]"] and mask[0, 5:].sum() == 0
    assert mask[2].sum() == 16  # truncated at 16
    tok.save_pretrained(tmp_path / "tok")
    from transformers import PreTrainedTokenizerFast

    again = PreTrainedTokenizerFast.from_pretrained(tmp_path / "tok")
    assert torch.equal(tokenize(again, ["A dog barks loudly!"])[0], ids[:1])

    enc = TextEncoder(vocab_size=len(tok))
    out = enc(ids, mask)
    assert out.shape == (3, 16, 64) and torch.isfinite(out).all()  # empty text does not NaN
    enc.eval()
    enc.save_pretrained(tmp_path / "te")
    assert torch.allclose(TextEncoder.from_pretrained(tmp_path / "te").eval()(ids, mask), enc(ids, mask))
