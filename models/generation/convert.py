"""Conversion of an official MMAudio checkpoint into a diffusers component directory.

    official state dict (.pth / .safetensors, official key names)
      → drop derived keys (t_embed.freqs, latent_rot, clip_rot)
      → strict load into ``models.generation.mmaudio.MMAudio(**preset)``
      → ``save_pretrained(out_dir)``: config.json (constructor arguments) +
        diffusion_pytorch_model.safetensors (same key names, so the file stays loadable by the
        official code after adding back nothing: the derived keys are recomputed there too)

The output is the ``transformer/`` folder of a bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from models.generation.mmaudio import MMAudio


def convert_mmaudio(checkpoint: str | Path | Mapping[str, torch.Tensor], config: str | Mapping[str, Any],
                    out_dir: str | Path) -> Path:
    """Convert ``checkpoint`` (preset name or constructor dict ``config``) into ``out_dir``."""
    net = MMAudio.load_official(checkpoint, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(out, safe_serialization=True)
    return out
