"""Conversion of an official MMAudio checkpoint into a diffusers component directory.

    official state dict (.pth / .safetensors, official key names)
      → drop derived keys (t_embed.freqs, latent_rot, clip_rot)
      → strict load into ``models.generation.mmaudio.MMAudio(**preset)``
      → ``save_pretrained(out_dir)``: config.json (constructor arguments) +
        diffusion_pytorch_model.safetensors (same key names, so the file stays loadable by the
        official code after adding back nothing: the derived keys are recomputed there too)

The output is the ``transformer/`` folder of a bundle.

A whole release (``convert_release``), into a complete bundle:

    locate the preset's files (``models.mmaudio_family.release``), then one component at a time
    (load strictly → ``save_pretrained`` as safetensors → free), so peak memory is the largest
    component, not the sum:
        transformer/     MMAudio(preset)                    weights/mmaudio_<preset>.pth
        codec/           MMAudioCodec(mode)                 mel converter + VAE + vocoder of the mode
        video_features/  MMAudioVideoFeatures               CLIP image tower + Synchformer
        text_encoder/    ClipTextEncoder                    CLIP text tower (+ the fixed tokenizer)
        controlnet       none: a converted release has no trained guidance branch (NAG refused)
    + model_index.json, conversion.json (preset, each source file's sha256 / md5, md5 mismatches
    against MMAudio's own checks), README.md. Written into a temp directory beside ``out`` and
    renamed into place, so ``out`` is either absent or complete.

The network's input widths must equal the encoders' outputs (clip_dim = CLIP embed_dim,
sync_dim = Synchformer width, text_dim = CLIP text width, latent_dim = VAE latent): a mismatch
stops the conversion before the bundle appears.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
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


# ---------------------------------------------------------------------------- a whole release


MODEL_INDEX = {
    "_class_name": "StepByStepV2APipeline",
    "codec": ["models.mmaudio_family.codec", "MMAudioCodec"],
    "controlnet": [None, None],
    "text_encoder": ["models.mmaudio_family.text_encoder", "ClipTextEncoder"],
    "tokenizer": [None, None],
    "transformer": ["models.generation.mmaudio", "MMAudio"],
    "video_features": ["models.mmaudio_family.video_features", "MMAudioVideoFeatures"],
}


def _save(module: torch.nn.Module, directory: Path) -> None:
    module.save_pretrained(directory, safe_serialization=True)


def convert_release(root: str | Path, preset: str, out: str | Path,
                    overrides: Mapping[str, Mapping[str, Any]] | None = None,
                    vocoder_dir: str | Path | None = None, clip_dir: str | Path | None = None,
                    force: bool = False) -> Path:
    """Convert the official release under ``root`` for ``preset`` into the bundle ``out``."""
    import diffusers

    # the MMAudio family (CLIP, Synchformer, VAE, vocoders) loads only for a whole-release conversion
    from models.mmaudio_family.release import (
        OFFICIAL_MD5,
        ReleaseError,
        file_hashes,
        load_clip,
        load_codec,
        load_network,
        load_synchformer,
        locate_release,
    )
    from models.mmaudio_family.text_encoder import ClipTextEncoder  # (same reason)
    from models.mmaudio_family.video_features import MMAudioVideoFeatures  # (same reason)

    ov = {k: dict(v) for k, v in (overrides or {}).items()}
    unknown = set(ov) - {"network", "vae", "vocoder", "synchformer"}
    if unknown:
        raise ReleaseError(f"unknown override section(s) {sorted(unknown)}: use network, vae, vocoder, synchformer")
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not force:
        raise ReleaseError(f"{out} already exists and is not empty (pass --force to replace it)")
    files = locate_release(root, preset, vocoder_dir, clip_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.converting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        net = load_network(files, ov.get("network"))
        dims = {"latent_dim": net.config.latent_dim, "clip_dim": net.config.clip_dim,
                "sync_dim": net.config.sync_dim, "text_dim": net.config.text_dim}
        _save(net, tmp / "transformer")
        del net
        gc.collect()

        codec = load_codec(files, ov.get("vae"), ov.get("vocoder"))
        if codec.latent_dim != dims["latent_dim"]:
            raise ReleaseError(f"{files.vae.name}: a {codec.latent_dim}-dim latent, the network takes {dims['latent_dim']}")
        _save(codec, tmp / "codec")
        del codec
        gc.collect()

        clip = load_clip(files)
        sync = load_synchformer(files, ov.get("synchformer"))
        if clip.config.embed_dim != dims["clip_dim"]:
            raise ReleaseError(f"{files.clip_config.name}: CLIP embed_dim {clip.config.embed_dim}, "
                               f"the network's clip_dim is {dims['clip_dim']}")
        if sync.config.embed_dim != dims["sync_dim"]:
            raise ReleaseError(f"{files.synchformer.name}: Synchformer width {sync.config.embed_dim}, "
                               f"the network's sync_dim is {dims['sync_dim']}")
        _save(MMAudioVideoFeatures.from_components(clip, sync), tmp / "video_features")
        del sync
        text = ClipTextEncoder.from_open_clip(clip)
        del clip
        if text.token_embedding.embedding_dim != dims["text_dim"]:
            raise ReleaseError(f"{files.clip_config.name}: CLIP text width {text.token_embedding.embedding_dim}, "
                               f"the network's text_dim is {dims['text_dim']}")
        _save(text, tmp / "text_encoder")
        del text
        gc.collect()

        sources = {}
        mismatched = []
        for role, path in files.sources().items():
            h = file_hashes(path)
            sources[role] = {"file": path.relative_to(files.root).as_posix() if path.is_relative_to(files.root)
                             else str(path), **h}
            if path.name in OFFICIAL_MD5 and OFFICIAL_MD5[path.name] != h["md5"]:
                mismatched.append(path.name)
        record = {"preset": preset, "mode": "16k" if preset.endswith("_16k") else "44k", "sources": sources,
                  "md5_differs_from_official": mismatched, "overrides": ov, "guidance_branch": None}
        (tmp / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
        index = {"_class_name": MODEL_INDEX["_class_name"], "_diffusers_version": diffusers.__version__,
                 **{k: v for k, v in MODEL_INDEX.items() if k != "_class_name"}}
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "README.md").write_text(
            f"# MMAudio {preset}, converted by `stepfoley convert-mmaudio`\n\n"
            "Official MMAudio release (MIT) with CLIP DFN5B and Synchformer as diffusers components;\n"
            "source files and their hashes in conversion.json. No trained guidance branch (controlnet):\n"
            "modes independent and negative_text run; nag needs a branch trained by `stepfoley train`.\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
