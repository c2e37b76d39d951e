"""MMAudioCodec: the official MMAudio audio chain behind the codec interface the pipeline uses
(the demo family's ``MelCodec`` is the other implementation).

    encode:  wave [B, N] ─ MelConverter ─▶ log-mel [B, C, N / h] ─ MelVAE.encode ─▶ posterior
             (mean, std) [B, E, N / 2h] ─ transpose ─▶ latent [B, N / 2h, E]   (the posterior MEAN)
    decode:  latent [B, L, E] ─ transpose ─ MelVAE.decode ─▶ log-mel [B, C, 2L]
             ─ BigVGAN ─▶ wave [B, 1, 2L · h] ─▶ [B, 2L · h]

h is the mel hop (256 at 16 kHz, 512 at 44.1 kHz) and the vocoder's hop equals it, so one latent
frame is 2h samples: 31.25 latents/s at 16 kHz, 43.07/s at 44.1 kHz, and a window of d seconds
has ⌈d · sr / 2h⌉ latents (8 s → 250 / 345; MMAudio's ``SequenceConfig``).

Layouts. The network's latent is [B, N, E] (time first); the VAE works in [B, E, N]; the codec
transposes at its boundary, as MMAudio's ``FeaturesUtils.decode`` does. The latent is the VAE's
*un-normalised* posterior: the network normalises with its own ``latent_mean`` / ``latent_std``
(``MMAudio.normalize`` / ``unnormalize`` in ``models/generation/mmaudio.py``, called by the pipeline around
``encode`` / ``decode``), so doing it here too would normalise twice.

Which posterior statistic ``encode`` returns: the mean. MMAudio trained the network on
``normalize(mean + std · ε)``, i.e. samples scattered around the mean with the posterior's own
noise; the mean is the centre of that distribution — the single latent closest (in expected
squared error) to every target the network saw for that audio — and it is what
``decode(encode(wave))`` reconstructs best. It is also deterministic: the negative audio of NAG is
encoded once per track, so the same earlier tracks always give the same conditioning, the
encoded condition can be cached, and a regenerated track is reproducible without threading a
generator through the codec. ``encode_posterior`` returns (mean, std) for callers that want to
sample (e.g. a trainer reproducing MMAudio's target distribution).

Lengths: ``encode`` zero-pads the wave to a whole number of latent frames (2h samples) so every
latent frame sees real analysis frames; ``decode`` returns exactly L · 2 · (vocoder hop) samples,
which is L · 2h for the official chains (the tiny parity chains pair a 256-hop mel with a 16-hop
vocoder, so that equality is not enforced). The vocoder
(BigVGAN for 16 kHz, BigVGAN-v2 512x for 44.1 kHz) is a component of its own class and
checkpoint; the codec owns one instance so a bundle saves and loads the chain as one directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from models.mmaudio_family import bigvgan as bigvgan_mod
from models.mmaudio_family import mel as mel_mod
from models.mmaudio_family import vae as vae_mod
from models.mmaudio_family.bigvgan import BigVGAN
from models.mmaudio_family.mel import MelConverter
from models.mmaudio_family.vae import MelVAE

MODES = ("16k", "44k")


class MMAudioCodec(ModelMixin, ConfigMixin):
    """Mel converter + mel VAE + vocoder with the pipeline's codec interface (module doc).

    ``mode`` picks the official sizes; ``mel_config`` / ``vae_config`` / ``vocoder_config`` override any of the three
    components' constructor arguments (tiny test sizes, other vocoders)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, mode: str = "16k", mel_config: Mapping[str, Any] | None = None,
                 vae_config: Mapping[str, Any] | None = None, vocoder_config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown MMAudio codec mode {mode!r}; known: {list(MODES)}")
        self.mel_converter = MelConverter(**dict(mel_mod.MODES[mode] if mel_config is None else mel_config))
        self.vae = MelVAE(**dict(vae_mod.PRESETS[mode] if vae_config is None else vae_config))
        self.vocoder = BigVGAN(**dict(bigvgan_mod.PRESETS[mode] if vocoder_config is None else vocoder_config))
        c_mel, c_vae, c_voc = self.mel_converter.config, self.vae.config, self.vocoder.config
        if not c_mel.num_mels == c_vae.data_dim == c_voc.num_mels:
            raise ValueError(f"mel bands disagree: converter {c_mel.num_mels}, VAE {c_vae.data_dim}, "
                             f"vocoder {c_voc.num_mels}")

    # ------------------------------------------------------------------ building
    @classmethod
    def from_components(cls, mel_converter: MelConverter, vae: MelVAE, vocoder: BigVGAN,
                        mode: str = "16k") -> "MMAudioCodec":
        """Wrap already-loaded components (their configs become the codec's)."""
        with torch.device("meta"):
            codec = cls(mode=mode, mel_config=_init_args(mel_converter), vae_config=_init_args(vae),
                        vocoder_config=_init_args(vocoder))
        codec.mel_converter, codec.vae, codec.vocoder = mel_converter, vae, vocoder
        return codec.eval()

    @classmethod
    def from_official(cls, vae_checkpoint: str | Path | Mapping[str, torch.Tensor],
                      vocoder_checkpoint: str | Path | Mapping[str, torch.Tensor], mode: str = "16k",
                      vae_config: Mapping[str, Any] | None = None,
                      vocoder_config: Mapping[str, Any] | None = None) -> "MMAudioCodec":
        """The official chain of ``mode`` from its two checkpoints (``v1-16.pth`` + ``best_netG.pt``
        or ``v1-44.pth`` + ``bigvgan_generator.pt``); configs default to the official sizes."""
        if mode not in MODES:
            raise ValueError(f"unknown MMAudio codec mode {mode!r}; known: {list(MODES)}")
        mel = MelConverter.from_mode(mode)
        vae = MelVAE.from_official(vae_checkpoint, mode if vae_config is None else vae_config)
        vocoder = BigVGAN.from_official(vocoder_checkpoint, mode if vocoder_config is None else vocoder_config)
        return cls.from_components(mel, vae, vocoder, mode=mode)

    # ------------------------------------------------------------------ rates and lengths
    @property
    def sample_rate(self) -> int:
        return self.mel_converter.sample_rate

    @property
    def latent_hop(self) -> int:
        """Samples per latent frame: mel hop × the VAE's temporal down-sampling."""
        return self.mel_converter.hop_size * self.vae.downsampling

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.latent_hop

    @property
    def latent_dim(self) -> int:
        return self.vae.embed_dim

    def num_latent_frames(self, duration_s: float) -> int:
        """⌈d · sr / latent_hop⌉ (8 s → 250 at 16 kHz, 345 at 44.1 kHz)."""
        # The epsilon keeps float noise (8.000000001 s) from adding a frame.
        return int(math.ceil(duration_s * self.latent_rate - 1e-6))

    def num_samples(self, num_frames: int) -> int:
        return int(num_frames) * self.latent_hop

    # ------------------------------------------------------------------ analysis
    def wave_to_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Wave [B, N] (or [N]) → log-mel [B, C, ⌈N / latent_hop⌉ · 2], zero-padded to whole latents."""
        if wave.dim() == 1:
            wave = wave[None]
        wave = wave.to(self.mel_converter.mel_basis.device, torch.float32)
        n = wave.shape[-1]
        target = max(1, math.ceil(n / self.latent_hop)) * self.latent_hop
        return self.mel_converter(F.pad(wave, (0, target - n)))

    @torch.no_grad()
    def encode_posterior(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Wave [B, N] → the VAE posterior's (mean, std), each [B, L, E] (network layout)."""
        mean, std = self.vae.encode(self.wave_to_mel(wave))
        return mean.transpose(1, 2), std.transpose(1, 2)

    @torch.no_grad()
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """Wave [B, N] at ``sample_rate`` → un-normalised latent [B, ⌈N / latent_hop⌉, E]: the posterior mean."""
        return self.encode_posterior(wave)[0]

    # ------------------------------------------------------------------ synthesis
    @torch.no_grad()
    def decode_mel(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent [B, L, E] → log-mel [B, C, 2L]."""
        if latent.dim() == 2:
            latent = latent[None]
        return self.vae.decode(latent.transpose(1, 2).to(torch.float32))

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, C, T] → wave [B, 1, T · hop]."""
        return self.vocoder(mel)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Un-normalised latent [B, L, E] → wave [B, 2L · vocoder hop] in [−1, 1] (= L · latent_hop officially)."""
        return self.vocode(self.decode_mel(latent))[:, 0]


def _init_args(module: ConfigMixin) -> dict[str, Any]:
    """A component's constructor arguments (its config without diffusers' bookkeeping keys)."""
    return {k: v for k, v in module.config.items() if not k.startswith("_")}
