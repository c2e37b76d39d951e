"""Parity of the audio chain against fixtures made with the official MMAudio code.

A fixture is ``<stem>.json`` (component, source file, constructor arguments), ``<stem>.safetensors``
(official state dict; none for the composed autoencoder, whose JSON names the VAE and vocoder
files it used) and ``<stem>_io.safetensors`` (inputs and reference outputs). Everything about the
module's size is read from the JSON, so fixtures of other shapes and seeds work unchanged.

Each output is recomputed the way the fixture's JSON says the official code produced it, end to
end from the io file's *inputs* (``wave``, ``mel``, ``z``), not from the reference intermediates:
e.g. ``decoded_from_mean`` decodes our own posterior mean. The reported number per output is
max |ours − reference|. Tolerance (README of the fixtures): 1e-4 absolute; decoded mels (up to
~18 in magnitude) 1e-4 absolute or 1e-5 relative to the reference's largest magnitude.

Entry points: ``parity(json_path)`` → ``{output: max abs error}`` for one fixture;
``parity_rows(json_path)`` adds the reference magnitude, tolerance and verdict per output;
``audio_parity(directory)`` → ``{fixture stem: {output: error}}`` for every audio-chain fixture
found in a directory (the sibling of ``parity_vision.vision_parity``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from models.mmaudio_family.bigvgan import BigVGAN, config_from_official
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.mel import MelConverter
from models.mmaudio_family.vae import MelVAE

ABS_TOL = 1e-4
REL_TOL_DECODED_MEL = 1e-5
DECODED_MELS = ("decoded_from_mean", "decoded_z", "decoded_mel")


def component_kind(meta: dict[str, Any]) -> str | None:
    """Which audio-chain component a fixture JSON describes (None if it is not one)."""
    source = meta.get("source")
    src = str(source.get("file", "")) if isinstance(source, dict) else ""
    if src.startswith("mmaudio/ext/mel_converter.py"):
        return "mel"
    if src.startswith("mmaudio/ext/autoencoder/vae.py"):
        return "vae"
    if src.startswith("mmaudio/ext/bigvgan_v2/"):
        return "bigvgan_v2"
    if src.startswith("mmaudio/ext/bigvgan/"):
        return "bigvgan"
    if "features_utils.py" in src and "autoencoder" in src:
        return "autoencoder"
    return None


def tolerance(name: str, reference: torch.Tensor) -> float:
    if name in DECODED_MELS:
        return max(ABS_TOL, REL_TOL_DECODED_MEL * float(reference.abs().max()))
    return ABS_TOL


def _read(json_path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(json_path)
    return path, json.loads(path.read_text())


def _io(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path.with_name(path.stem + "_io.safetensors")))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path.with_suffix(".safetensors")))


def mel_config(constructor: dict[str, Any]) -> dict[str, Any]:
    """Our MelConverter arguments from the official ``MelConverter`` constructor record."""
    norm = str(constructor.get("norm_fn", "torch.log10"))
    return dict(sampling_rate=constructor["sampling_rate"], n_fft=constructor["n_fft"],
                num_mels=constructor["num_mels"], hop_size=constructor["hop_size"],
                win_size=constructor["win_size"], fmin=float(constructor["fmin"]), fmax=float(constructor["fmax"]),
                log="log10" if "log10" in norm else "ln")


def _vocoder(path: Path, meta: dict[str, Any]) -> BigVGAN:
    v2 = component_kind(meta) == "bigvgan_v2"
    return BigVGAN.from_official(_weights(path), config_from_official(meta["constructor"], v2=v2))


def _mode(meta: dict[str, Any], vae_meta: dict[str, Any]) -> str:
    found = re.search(r"mode='(\w+)'", str(meta.get("source", {}).get("class", "")))
    if found:
        return found.group(1)
    return {80: "16k", 128: "44k"}[int(vae_meta["constructor"]["data_dim"])]


def _present(todo: dict[str, Callable[[], torch.Tensor]], io: dict[str, torch.Tensor]
             ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Only the outputs the io file holds a reference for (their inputs are then there too)."""
    return {k: (fn(), io[k]) for k, fn in todo.items() if k in io}


@torch.no_grad()
def recompute(json_path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{output name: (ours, reference)} for one fixture."""
    path, meta = _read(json_path)
    kind = component_kind(meta)
    io = _io(path)
    if kind == "mel":
        mel = MelConverter.from_official(_weights(path), mel_config(meta["constructor"]))
        return {"mel": (mel(io["wave"]), io["mel"])}
    if kind == "vae":
        vae = MelVAE.from_official(_weights(path), meta["constructor"])
        mean, std = vae.encode(io["mel"])
        todo = {"moments": lambda: vae.encode_moments(io["mel"]), "posterior_mean": lambda: mean,
                "posterior_std": lambda: std, "decoded_from_mean": lambda: vae.decode(mean),
                "decoded_z": lambda: vae.decode(io["z"]),
                "encoder_conv_in_weight_normalized": lambda: vae.encoder.conv_in.weight}
        return _present(todo, io)
    if kind in ("bigvgan", "bigvgan_v2"):
        return {"wav": (_vocoder(path, meta)(io["mel"]), io["wav"])}
    if kind == "autoencoder":
        vae_path = path.with_name(meta["weights"]["vae"]).with_suffix(".json")
        voc_path = path.with_name(meta["weights"]["vocoder"]).with_suffix(".json")
        vae_meta, voc_meta = json.loads(vae_path.read_text()), json.loads(voc_path.read_text())
        mode = _mode(meta, vae_meta)
        codec = MMAudioCodec.from_components(MelConverter.from_mode(mode),
                                             MelVAE.from_official(_weights(vae_path), vae_meta["constructor"]),
                                             _vocoder(voc_path, voc_meta), mode=mode)
        # The official calls, on the io's own lengths (``MMAudioCodec.encode`` would pad the wave to
        # whole latents first; the tests check that path separately).
        mel = codec.mel_converter(io["wave"])
        mean, std = codec.vae.encode(mel)
        todo = {"mel": lambda: mel, "posterior_mean": lambda: mean, "posterior_std": lambda: std,
                "decoded_mel": lambda: codec.decode_mel(io["z"]),
                "wav": lambda: codec.vocode(codec.decode_mel(io["z"])),
                "wav_from_posterior_mean": lambda: codec.decode(mean.transpose(1, 2))[:, None]}
        return _present(todo, io)
    raise ValueError(f"{path.name}: not an audio-chain fixture (see component_kind)")


def parity_rows(json_path: str | Path) -> list[dict[str, Any]]:
    """Per output: name, max abs error, reference max magnitude, tolerance, ok."""
    rows = []
    for name, (ours, ref) in recompute(json_path).items():
        if ours.shape != ref.shape:
            raise ValueError(f"{Path(json_path).name}: {name} has shape {list(ours.shape)}, reference {list(ref.shape)}")
        err = float((ours.detach().float() - ref.float()).abs().max())
        tol = tolerance(name, ref)
        rows.append(dict(output=name, max_abs_error=err, reference_max_abs=float(ref.abs().max()), tolerance=tol,
                         ok=err <= tol))
    return rows


def parity(json_path: str | Path) -> dict[str, float]:
    """Max abs error per float output of one audio-chain fixture (any directory, any shapes)."""
    return {row["output"]: row["max_abs_error"] for row in parity_rows(json_path)}


def audio_parity(directory: str | Path) -> dict[str, dict[str, float]]:
    """Every audio-chain fixture in ``directory`` (recognised by its JSON's source file):
    ``{fixture stem: {output: max abs error}}``."""
    found = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(meta, dict) and component_kind(meta) is not None:
            found[path.stem] = parity(path)
    return found
