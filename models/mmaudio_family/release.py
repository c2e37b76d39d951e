"""The official MMAudio release on disk: which files a preset needs, and loading each into our
components with one-line errors that name the file and what was expected.

Layout (MMAudio's own code, commit 974010a; ``--from DIR`` is the directory holding it):

    weights/mmaudio_<preset>.pth              the network (hub hkchengrex/MMAudio, weights/)
    ext_weights/v1-16.pth | v1-44.pth          mel VAE, 16k for small_16k, 44k for the 44k presets
    ext_weights/best_netG.pt                   BigVGAN 16 kHz vocoder (small_16k)
    bigvgan_v2_44khz_128band_512x/             BigVGAN-v2 (44k presets): config.json + bigvgan_generator.pt
                                               ({'generator': state dict}); hub nvidia/bigvgan_v2_44khz_128band_512x
    ext_weights/synchformer_state_dict.pth     Synchformer (only vfeat_extractor.* is kept)
    DFN5B-CLIP-ViT-H-14-384/                   open_clip directory of apple/DFN5B-CLIP-ViT-H-14-384:
                                               open_clip_config.json + open_clip_model.safetensors
                                               (or open_clip_pytorch_model.bin)

The two hub directories are also found under ``ext_weights/`` or given explicitly.

Sizes: every component is built at its official size (network: the preset; VAE / vocoder: the
mode; BigVGAN-v2 and CLIP: their own config files). ``overrides`` replaces a component's
constructor arguments, for releases at other sizes (the tests' tiny release): ``network`` (the
official MMAudio constructor fields), ``vae`` (data_dim, embed_dim, hidden_dim), ``vocoder`` (the
official BigVGAN hyper-parameters, as in bigvgan_vocoder.yml / config.json) and ``synchformer``
(our ``Synchformer`` arguments: embed_dim, depth, num_heads, …).

A network checkpoint is matched against every preset's key manifest (built on the meta device)
so a wrong file is named for what it is: "… keys fit small_16k, not large_44k_v2".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from models.generation.mmaudio import MMAudio, PRESETS, read_official_state_dict
from models.mmaudio_family.bigvgan import BigVGAN, config_from_official
from models.mmaudio_family.clip import OpenClip
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.mel import MelConverter
from models.mmaudio_family.state_dict import read_state_dict
from models.mmaudio_family.synchformer import Synchformer
from models.mmaudio_family.vae import MelVAE

OFFICIAL_PRESETS = ("small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2")
VOCODER_V2_DIR = "bigvgan_v2_44khz_128band_512x"
CLIP_DIR = "DFN5B-CLIP-ViT-H-14-384"
CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
# MMAudio's own md5 checks of the release files (its download utility's table).
OFFICIAL_MD5 = {
    "mmaudio_small_16k.pth": "af93cde404179f58e3919ac085b8033b", "mmaudio_small_44k.pth": "babd74c884783d13701ea2820a5f5b6d",
    "mmaudio_medium_44k.pth": "5a56b6665e45a1e65ada534defa903d0", "mmaudio_large_44k.pth": "fed96c325a6785b85ce75ae1aafd2673",
    "mmaudio_large_44k_v2.pth": "01ad4464f049b2d7efdaa4c1a59b8dfe", "v1-16.pth": "69f56803f59a549a1a507c93859fd4d7",
    "best_netG.pt": "eeaf372a38a9c31c362120aba2dde292", "v1-44.pth": "fab020275fa44c6589820ce025191600",
    "synchformer_state_dict.pth": "5b2f5594b0730f70e41e549b7c94390c",
}


class ReleaseError(ValueError):
    """A release file is missing or is not what the preset needs (one line, names the file)."""


def mode_of(preset: str) -> str:
    return "16k" if preset.endswith("_16k") else "44k"


@dataclass(frozen=True)
class ReleaseFiles:
    root: Path
    preset: str
    network: Path
    vae: Path
    vocoder: Path          # best_netG.pt (16k) or bigvgan_generator.pt (44k)
    vocoder_config: Path | None   # config.json beside the BigVGAN-v2 generator
    synchformer: Path
    clip_config: Path
    clip_weights: Path

    def sources(self) -> dict[str, Path]:
        out = {"network": self.network, "vae": self.vae, "vocoder": self.vocoder, "synchformer": self.synchformer,
               "clip_config": self.clip_config, "clip_weights": self.clip_weights}
        if self.vocoder_config is not None:
            out["vocoder_config"] = self.vocoder_config
        return out


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _need(path: Path, root: Path, what: str) -> Path:
    if not path.is_file():
        raise ReleaseError(f"missing {_rel(path, root)} in {root}: expected {what}")
    return path


def _find_dir(root: Path, name: str, given: Path | None, what: str) -> Path:
    if given is not None:
        if not given.is_dir():
            raise ReleaseError(f"{given} is not a directory: expected {what}")
        return given
    for cand in (root / name, root / "ext_weights" / name):
        if cand.is_dir():
            return cand
    raise ReleaseError(f"missing {name}/ in {root} (or ext_weights/{name}/): expected {what}")


def locate_release(root: str | Path, preset: str, vocoder_dir: str | Path | None = None,
                   clip_dir: str | Path | None = None) -> ReleaseFiles:
    """The files ``preset`` needs under ``root`` (module docstring), or a ``ReleaseError``."""
    root = Path(root).expanduser()
    if preset not in OFFICIAL_PRESETS:
        raise ReleaseError(f"unknown variant {preset!r}; choose one of {', '.join(OFFICIAL_PRESETS)}")
    if not root.is_dir():
        raise ReleaseError(f"{root} is not a directory: expected the official MMAudio release (weights/, ext_weights/)")
    mode = mode_of(preset)
    network = _need(root / "weights" / f"mmaudio_{preset}.pth", root,
                    f"the {preset} network checkpoint (hub hkchengrex/MMAudio, weights/mmaudio_{preset}.pth)")
    vae_name = "v1-16.pth" if mode == "16k" else "v1-44.pth"
    vae = _need(root / "ext_weights" / vae_name, root, f"the {mode} mel VAE that {preset} uses")
    if mode == "16k":
        vocoder = _need(root / "ext_weights" / "best_netG.pt", root, "the 16 kHz BigVGAN vocoder of small_16k")
        vocoder_config = None
    else:
        vdir = _find_dir(root, VOCODER_V2_DIR, Path(vocoder_dir) if vocoder_dir else None,
                         "BigVGAN-v2 (config.json + bigvgan_generator.pt) of nvidia/bigvgan_v2_44khz_128band_512x")
        vocoder = _need(vdir / "bigvgan_generator.pt", root, "the BigVGAN-v2 generator ({'generator': state dict})")
        vocoder_config = _need(vdir / "config.json", root, "BigVGAN-v2's config.json")
    synchformer = _need(root / "ext_weights" / "synchformer_state_dict.pth", root, "Synchformer's state dict")
    cdir = _find_dir(root, CLIP_DIR, Path(clip_dir) if clip_dir else None,
                     "the open_clip directory of apple/DFN5B-CLIP-ViT-H-14-384")
    clip_config = _need(cdir / "open_clip_config.json", root, "open_clip_config.json of DFN5B-CLIP-ViT-H-14-384")
    weights = [cdir / w for w in CLIP_WEIGHTS if (cdir / w).is_file()]
    if not weights:
        raise ReleaseError(f"missing CLIP weights in {_rel(cdir, root)}: expected one of {', '.join(CLIP_WEIGHTS)}")
    return ReleaseFiles(root, preset, network, vae, vocoder, vocoder_config, synchformer, clip_config, weights[0])


# ---------------------------------------------------------------------------- identification
def _fits(sd: Mapping[str, torch.Tensor], cfg: Mapping[str, Any]) -> bool:
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in MMAudio.from_preset(dict(cfg)).state_dict().items()}
    return set(expected) == set(sd) and all(tuple(sd[k].shape) == s for k, s in expected.items())


def presets_fitting(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """The official presets whose key manifest (names and shapes) the state dict matches."""
    return [p for p in OFFICIAL_PRESETS if _fits(sd, PRESETS[p])]


def file_hashes(path: Path) -> dict[str, str]:
    """sha256 and md5 of a file, in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            sha.update(chunk)
            md5.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


# ---------------------------------------------------------------------------- loading
def _wrap(path: Path, root: Path, what: str, exc: Exception) -> ReleaseError:
    return ReleaseError(f"{_rel(path, root)}: not {what} ({' '.join(str(exc).split())[:300]})")


def check_network(sd: Mapping[str, torch.Tensor], preset: str, rel: str,
                  override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The constructor config ``sd`` loads into, or a ``ReleaseError`` naming what it fits."""
    cfg = dict(override) if override else dict(PRESETS[preset])
    if _fits(sd, cfg):
        return cfg
    fit = presets_fitting(sd)
    if fit:
        raise ReleaseError(f"{rel}: this network checkpoint's keys fit {' / '.join(fit)}, not {preset}")
    size = " at the overridden size" if override else ""
    raise ReleaseError(f"{rel}: this checkpoint's keys fit no MMAudio preset{size} (expected {preset})")


def load_network(files: ReleaseFiles, override: Mapping[str, Any] | None = None) -> MMAudio:
    try:
        sd = read_official_state_dict(files.network)
    except Exception as exc:  # unreadable / not a torch checkpoint
        raise _wrap(files.network, files.root, "a torch checkpoint", exc) from exc
    cfg = check_network(sd, files.preset, _rel(files.network, files.root), override)
    return MMAudio.load_official(sd, cfg)


def load_codec(files: ReleaseFiles, vae_override: Mapping[str, Any] | None = None,
               vocoder_override: Mapping[str, Any] | None = None) -> MMAudioCodec:
    mode = mode_of(files.preset)
    bands = {"16k": 80, "44k": 128}[mode]
    try:
        vae_sd = read_state_dict(files.vae)
    except Exception as exc:
        raise _wrap(files.vae, files.root, "a torch checkpoint", exc) from exc
    mean = vae_sd.get("data_mean")
    want = int(vae_override.get("data_dim", bands)) if vae_override else bands
    if mean is not None and mean.dim() == 3 and mean.shape[1] != want:
        other = {80: "the 16k VAE (v1-16.pth)", 128: "the 44k VAE (v1-44.pth)"}.get(int(mean.shape[1]), "another VAE")
        raise ReleaseError(f"{_rel(files.vae, files.root)}: {mean.shape[1]} mel bands, this is {other}; "
                           f"{files.preset} needs the {mode} VAE ({want} bands)")
    try:
        vae = MelVAE.from_official(vae_sd, dict(vae_override) if vae_override else mode)
    except ValueError as exc:
        raise _wrap(files.vae, files.root, f"the {mode} mel VAE", exc) from exc
    v2 = mode == "44k"
    if vocoder_override:
        voc_cfg: str | dict[str, Any] = config_from_official(vocoder_override, v2=v2)
    elif files.vocoder_config is not None:
        voc_cfg = config_from_official(json.loads(files.vocoder_config.read_text()), v2=True)
    else:
        voc_cfg = mode
    try:
        vocoder = BigVGAN.from_official(files.vocoder, voc_cfg)
    except Exception as exc:
        name = "BigVGAN-v2 44 kHz 128-band 512x" if v2 else "the 16 kHz BigVGAN (best_netG.pt)"
        raise _wrap(files.vocoder, files.root, name, exc) from exc
    if vocoder.config.num_mels != vae.config.data_dim:
        raise ReleaseError(f"{_rel(files.vocoder, files.root)}: a {vocoder.config.num_mels}-band vocoder, "
                           f"the {mode} VAE makes {vae.config.data_dim}-band mels")
    return MMAudioCodec.from_components(MelConverter.from_mode(mode), vae, vocoder, mode=mode)


def load_synchformer(files: ReleaseFiles, override: Mapping[str, Any] | None = None) -> Synchformer:
    try:
        return Synchformer.from_official(files.synchformer, dict(override) if override else None)
    except Exception as exc:
        raise _wrap(files.synchformer, files.root, "Synchformer's state dict (vfeat_extractor.*)", exc) from exc


def load_clip(files: ReleaseFiles) -> OpenClip:
    try:
        raw = json.loads(files.clip_config.read_text())
    except (OSError, ValueError) as exc:
        raise _wrap(files.clip_config, files.root, "an open_clip config", exc) from exc
    cfg = raw.get("model_cfg", raw)
    try:
        return OpenClip.from_official(files.clip_weights, cfg)
    except Exception as exc:
        raise _wrap(files.clip_weights, files.root, "open_clip weights fitting open_clip_config.json", exc) from exc
