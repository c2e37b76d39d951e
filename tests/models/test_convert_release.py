"""Conversion of a whole (tiny) official release into a bundle: layout, parity of the converted
components with the official numbers, one-line errors, and the guidance branch for every preset."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.generation.bundle import bundle_identity
from models.generation.controlnet import AudioControlNet
from models.generation.convert import convert_release
from models.generation.mmaudio import MMAudio, PRESETS
from models.generation.pipeline import StepByStepV2APipeline
from models.mmaudio_family.release import OFFICIAL_PRESETS, ReleaseError, check_network
from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.audio_helpers import FIX
from tests.models.mmaudio_family.release_helpers import build_tiny_release


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("release")
    sizes = build_tiny_release(root)
    return root, json.loads(sizes.read_text())


@pytest.fixture(scope="module")
def bundle(release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, sizes = release
    return convert_release(root, "small_16k", tmp_path_factory.mktemp("out") / "mmaudio-tiny", overrides=sizes)


def _u8_frames(base: torch.Tensor, size: int) -> torch.Tensor:
    """The fixtures' video (each base pixel repeated up to ``size``) as uint8 [T, H, W, 3]."""
    f = size // base.shape[-1]
    return base[0].repeat_interleave(f, -1).repeat_interleave(f, -2).permute(0, 2, 3, 1).contiguous()


def test_bundle_layout_and_provenance(bundle: Path, release) -> None:
    index = json.loads((bundle / "model_index.json").read_text())
    assert index["codec"] == ["models.mmaudio_family.codec", "MMAudioCodec"]
    assert index["controlnet"] == [None, None] and index["tokenizer"] == [None, None]
    ident = bundle_identity(bundle)
    assert set(ident["weights"]) == {f"{c}/diffusion_pytorch_model.safetensors"
                                     for c in ("transformer", "codec", "video_features", "text_encoder")}
    record = json.loads((bundle / "conversion.json").read_text())
    assert record["sources"]["network"]["file"] == "weights/mmaudio_small_16k.pth"
    assert len(record["sources"]["vae"]["sha256"]) == 64
    assert "v1-16.pth" in record["md5_differs_from_official"]  # tiny weights are not the release's
    assert not list(bundle.parent.glob(".*converting*"))  # no temp dir left behind


def test_converted_components_keep_parity(bundle: Path) -> None:
    pipe = StepByStepV2APipeline.from_pretrained(bundle)
    assert pipe.controlnet is None and pipe.tokenizer is None
    clip_io = load_file(str(FIX / "clip_tiny_io.safetensors"))
    clip = pipe.video_features.encode_clip(_u8_frames(clip_io["video_base_u8"], 384), 0.25)
    assert (clip - clip_io["clip_features"]).abs().max() <= 1e-4
    prompts = json.loads((FIX / "clip_tiny.json").read_text())["prompts"]
    text = pipe.text_encoder.encode_prompts(prompts)
    assert (text - clip_io["text_features"]).abs().max() <= 1e-4
    sync_io = load_file(str(FIX / "synchformer_tiny_io.safetensors"))
    sync = pipe.video_features.encode_sync(_u8_frames(sync_io["video_base_u8"], 224), 24 / 25)
    assert (sync - sync_io["sync_features"]).abs().max() <= 1e-4
    ae = load_file(str(FIX / "autoencoder_16k_tiny_io.safetensors"))
    z = pipe.codec.encode(ae["wave"])
    assert (z - ae["posterior_mean"].transpose(1, 2)).abs().max() <= 1e-4
    # The pipeline asks the family for its lengths: the official ones.
    assert pipe._lengths(8.0) == {"latent": 250, "clip": 64, "sync": 192}
    assert pipe._lengths(3.0) == {"latent": 94, "clip": 24, "sync": 64}


def test_missing_and_wrong_files_are_named(release, tmp_path: Path) -> None:
    root, sizes = release
    copy = tmp_path / "rel"
    shutil.copytree(root, copy)
    (copy / "ext_weights" / "best_netG.pt").unlink()
    with pytest.raises(ReleaseError, match=r"missing ext_weights/best_netG.pt .*16 kHz BigVGAN"):
        convert_release(copy, "small_16k", tmp_path / "b", overrides=sizes)
    shutil.copy(root / "ext_weights" / "best_netG.pt", copy / "ext_weights" / "best_netG.pt")
    torch.save(load_file(str(FIX / "vae_44k_tiny.safetensors")), copy / "ext_weights" / "v1-16.pth")
    with pytest.raises(ReleaseError, match=r"v1-16.pth: 128 mel bands, this is the 44k VAE"):
        convert_release(copy, "small_16k", tmp_path / "b", overrides=sizes)
    assert not (tmp_path / "b").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(ReleaseError, match="already exists"):
        convert_release(root, "small_16k", tmp_path / "taken", overrides=sizes)


def test_network_checkpoint_of_another_preset_is_named() -> None:
    with torch.device("meta"):
        sd = MMAudio.from_preset("small_16k").state_dict()
    with pytest.raises(ReleaseError, match="keys fit small_16k, not large_44k_v2"):
        check_network(sd, "large_44k_v2", "weights/mmaudio_large_44k_v2.pth")
    assert check_network(sd, "small_16k", "x") == PRESETS["small_16k"]


@pytest.mark.parametrize("preset", OFFICIAL_PRESETS)
def test_guidance_branch_exists_for_every_preset(preset: str) -> None:
    """One branch block per two backbone blocks (the paper), sized from the preset."""
    with torch.device("meta"):
        net = MMAudio.from_preset(preset)
        branch = AudioControlNet.from_transformer(net, init_from_backbone=False)
    depth = net.config.depth
    assert branch.config.num_layers == math.ceil(depth / 2) and len(branch.blocks) == math.ceil(depth / 2)
    assert [branch.block_for(j) for j in range(depth)] == [j // 2 for j in range(depth)]


def test_video_features_take_frames_of_any_size(bundle: Path) -> None:
    """Frames not at the model's size go through the official transforms first (it used to
    crash: the layout was transposed before the resize)."""
    from models.mmaudio_family.video_preprocess import clip_frames_u8, sync_frames_u8

    pipe = StepByStepV2APipeline.from_pretrained(bundle)
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 200, 300, 3), generator=gen, dtype=torch.uint8)
    direct = pipe.video_features.encode_clip(frames, 0.25)
    resized = clip_frames_u8(frames, 384).permute(0, 2, 3, 1).contiguous()
    assert torch.equal(direct, pipe.video_features.encode_clip(resized, 0.25))
    sync_frames = torch.randint(0, 256, (24, 240, 320, 3), generator=gen, dtype=torch.uint8)
    direct = pipe.video_features.encode_sync(sync_frames, 24 / 25)
    resized = sync_frames_u8(sync_frames, 224).permute(0, 2, 3, 1).contiguous()
    assert torch.equal(direct, pipe.video_features.encode_sync(resized, 24 / 25))
