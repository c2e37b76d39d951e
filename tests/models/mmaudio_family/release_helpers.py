"""A tiny "official MMAudio release" on disk, in the official file formats and layout, from the
fixtures' tiny weights (VAE 16k, Synchformer, CLIP) plus a random tiny network sized to them and
a random tiny 16 kHz BigVGAN whose hop is the real 256 (the fixture's vocoder has hop 16, which
would make decoded audio 16× too short for an end-to-end run).

    weights/mmaudio_small_16k.pth               torch.save(official-key state dict + derived keys)
    ext_weights/v1-16.pth                       the vae_16k_tiny state dict (raw, as released)
    ext_weights/best_netG.pt                    {'generator': state dict}, legacy weight_g / weight_v
    ext_weights/synchformer_state_dict.pth      vfeat_extractor.* of synchformer_tiny + audio-branch keys
    DFN5B-CLIP-ViT-H-14-384/open_clip_config.json + open_clip_pytorch_model.bin   (clip_tiny)
    sizes.json                                  the per-component size overrides (--config)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from models.generation.mmaudio import MMAudio
from models.mmaudio_family.bigvgan import BigVGAN, config_from_official
from tests.models.helpers import randomize
from tests.models.mmaudio_family.audio_helpers import FIX

VOCODER_H = {"resblock": "1", "num_mels": 80, "upsample_rates": [4, 4, 4, 4], "upsample_kernel_sizes": [8, 8, 8, 8],
             "upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
             "activation": "snakebeta", "snake_logscale": True}


def tiny_network_config() -> dict:
    clip = json.loads((FIX / "clip_tiny.json").read_text())["constructor"]
    sync = json.loads((FIX / "synchformer_tiny.json").read_text())["constructor"]["VIT_overrides"]
    vae = json.loads((FIX / "vae_16k_tiny.json").read_text())["constructor"]
    return dict(latent_dim=vae["embed_dim"], clip_dim=clip["embed_dim"], sync_dim=sync["EMBED_DIM"],
                text_dim=clip["text_cfg"]["width"], hidden_dim=64, depth=2, fused_depth=1, num_heads=2,
                latent_seq_len=250, clip_seq_len=64, sync_seq_len=192, text_seq_len=77, v2=False)


def _vocoder_state_dict(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    voc = BigVGAN(**config_from_official(VOCODER_H, v2=False))
    raw = {}
    for k, v in voc.state_dict().items():
        if k.endswith(".weight"):
            raw[k[:-7] + ".weight_g"] = 0.3 + 0.3 * torch.rand((v.shape[0],) + (1,) * (v.dim() - 1), generator=g)
            raw[k[:-7] + ".weight_v"] = torch.randn(v.shape, generator=g)
        elif k.endswith(".filter"):
            raw[k] = v.clone()
        else:
            raw[k] = 0.05 * torch.randn(v.shape, generator=g)
    return raw


def build_tiny_release(root: Path, seed: int = 0) -> Path:
    """Write the tiny release under ``root``; returns the overrides file (``root / sizes.json``)."""
    (root / "weights").mkdir(parents=True, exist_ok=True)
    (root / "ext_weights").mkdir(exist_ok=True)
    cfg = tiny_network_config()
    net = randomize(MMAudio(**cfg), seed + 1, gain=0.7)
    sd = dict(net.state_dict())
    sd["latent_rot"] = torch.zeros(3)  # derived keys official files carry
    torch.save(sd, root / "weights" / "mmaudio_small_16k.pth")
    torch.save(load_file(str(FIX / "vae_16k_tiny.safetensors")), root / "ext_weights" / "v1-16.pth")
    torch.save({"generator": _vocoder_state_dict(seed + 2)}, root / "ext_weights" / "best_netG.pt")
    sync = load_file(str(FIX / "synchformer_tiny.safetensors"))
    sync["afeat_extractor.dummy.weight"] = torch.zeros(2, 2)  # the audio branch the loader drops
    torch.save(sync, root / "ext_weights" / "synchformer_state_dict.pth")
    clip_dir = root / "DFN5B-CLIP-ViT-H-14-384"
    clip_dir.mkdir(exist_ok=True)
    clip_meta = json.loads((FIX / "clip_tiny.json").read_text())
    (clip_dir / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": clip_meta["constructor"],
         "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}))
    torch.save(load_file(str(FIX / "clip_tiny.safetensors")), clip_dir / "open_clip_pytorch_model.bin")
    sync_cfg = json.loads((FIX / "synchformer_tiny.json").read_text())["constructor"]["VIT_overrides"]
    sizes = {"network": cfg, "vae": json.loads((FIX / "vae_16k_tiny.json").read_text())["constructor"],
             "vocoder": VOCODER_H,
             "synchformer": {"embed_dim": sync_cfg["EMBED_DIM"], "depth": sync_cfg["DEPTH"],
                             "num_heads": sync_cfg["NUM_HEADS"]}}
    (root / "sizes.json").write_text(json.dumps(sizes, indent=2))
    return root / "sizes.json"
