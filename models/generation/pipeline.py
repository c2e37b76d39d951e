"""Step-by-step video-to-audio generation with Negative Audio Guidance, as a diffusers pipeline.

For a window of d seconds with video V and prompts C_1 … C_K (generation order), and optional
original audio a₀:

    x̃_1 = a₀                              (absent → track 1 is plain CFG, β = 0)
    track_k = decode(Euler ODE of ũ_k)      ũ_k from ``models.generation.nag`` with C_k, V and x̃_k
    x̃_{k+1} = x̃_k + track_k                (summed as waveforms, then encoded by the codec)

Per track the conditioning is computed once: (∅,∅), (V,C_k), (V,∅) through
``preprocess_conditions`` and the codec latent of x̃_k; per ODE step the three velocities come
from ONE forward of batch 3·B, the ControlNet branch running only on the last B rows.

Modes: ``nag`` (the paper), ``independent`` (CFG per prompt, no negatives: MMAudio run once per
caption), ``negative_text`` (CFG whose null branch uses the earlier prompts, joined with ", ",
as negative text: MMAudio's negative prompt).

Window lengths: the network consumes sync features in segments of 8 tokens (1/3 s), so a window
is generated at d' = ⌈3d⌉/3 s (video edge-padded, negative audio zero-padded) and the waveform is
cropped back to round(d · sr) samples.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput

from models.generation.controlnet import AudioControlNet
from models.generation.bundle_beta import declared_beta
from models.generation.guidance_settings import DEFAULT, GuidanceSettings
from models.generation.mmaudio import MMAudio, PreprocessedConditions
from models.generation.nag import nag_velocity
from models.generation.sampling import euler_sample, initial_noise

SYNC_SEGMENT_S = 1.0 / 3.0  # 8 sync tokens at 24/s
EXPECTED_LAYOUT = (
    "a local bundle directory: model_index.json plus one subfolder per component — transformer/ "
    "(models.generation.mmaudio.MMAudio), controlnet/ (models.generation.controlnet.AudioControlNet), codec/ "
    "(models.demo_family.codec.MelCodec or models.mmaudio_family.codec.MMAudioCodec), video_features/ "
    "(models.demo_family.features.VideoFeatures or models.mmaudio_family.video_features.MMAudioVideoFeatures), "
    "text_encoder/ (models.demo_family.features.TextEncoder or models.mmaudio_family.text_encoder.ClipTextEncoder), "
    "tokenizer/ (PreTrainedTokenizerFast; none for the MMAudio family, whose text encoder tokenizes)"
)


@dataclass
class TrackResult:
    """One generated track: waveform at the codec rate, its latent, and its exact settings."""

    waveform: np.ndarray
    latent: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepByStepOutput(BaseOutput):
    tracks: list[np.ndarray]
    sample_rate: int
    settings: list[dict[str, Any]]


# Module paths that bundles written before models/ was split into packages (2026-12-04) name in
# their model_index.json; such bundles keep loading.
LEGACY_MODULES = {
    "models.mmaudio": "models.generation.mmaudio", "models.controlnet": "models.generation.controlnet",
    "models.codec": "models.demo_family.codec", "models.features": "models.demo_family.features",
}


def _alias_legacy_modules(path: Path) -> None:
    """Make the pre-split module names that ``path``'s model_index.json uses resolve to today's
    modules (diffusers looks the class up in ``sys.modules`` under the recorded name)."""
    index = json.loads((path / "model_index.json").read_text())
    for spec in index.values():
        if isinstance(spec, list) and len(spec) == 2 and spec[0] in LEGACY_MODULES:
            sys.modules.setdefault(spec[0], importlib.import_module(LEGACY_MODULES[spec[0]]))


class StepByStepV2APipeline(DiffusionPipeline):
    """Tracks generated in order, each guided away from the audio that already exists."""

    model_cpu_offload_seq = "text_encoder->video_features->transformer->controlnet->codec"
    # A bundle without a trained guidance branch still runs CFG, independent and negative-text modes;
    # the MMAudio family's text encoder carries its own (fixed) tokenizer.
    _optional_components = ["controlnet", "tokenizer"]

    def __init__(self, transformer: MMAudio, controlnet: AudioControlNet | None, codec: Any,
                 video_features: Any, text_encoder: Any, tokenizer: Any) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, controlnet=controlnet, codec=codec,
                              video_features=video_features, text_encoder=text_encoder, tokenizer=tokenizer)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> "StepByStepV2APipeline":
        """Load a bundle from a LOCAL directory only (never a hub download at run time)."""
        path = Path(pretrained_model_name_or_path).expanduser()
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{pretrained_model_name_or_path!s} is not a local model bundle; expected {EXPECTED_LAYOUT}. "
                "Hub ids are not fetched: download or convert the weights into such a directory first "
                "(e.g. `stepfoley convert-mmaudio`).")
        # diffusers resolves custom components by importing their module path from model_index.json.
        import models.demo_family.codec  # noqa: F401
        import models.demo_family.features  # noqa: F401
        import models.mmaudio_family.codec  # noqa: F401
        import models.mmaudio_family.text_encoder  # noqa: F401
        import models.mmaudio_family.video_features  # noqa: F401

        kwargs.setdefault("local_files_only", True)
        _alias_legacy_modules(path)
        pipe = super().from_pretrained(str(path), **kwargs)
        pipe.declared_beta = declared_beta(path)
        return pipe

    @property
    def default_beta(self) -> float:
        """β when a call gives none: the bundle's declared one (guidance.json, for the branch it
        holds: models/generation/bundle_beta.py), else the paper's 1.5."""
        declared = getattr(self, "declared_beta", None)
        return DEFAULT.beta if declared is None else float(declared)

    # ------------------------------------------------------------------ sizes
    @property
    def max_duration_s(self) -> float:
        """The window length the network was built for: its clip tokens over the clip frame rate
        (64 / 8 fps = 8 s for every MMAudio preset and the tiny bundle)."""
        fps = float(self.video_features.frame_specs()["clip"].fps)
        return float(self.transformer.config.clip_seq_len / fps)

    def _model_duration(self, duration: float) -> float:
        if duration <= 0 or duration > self.max_duration_s + 1e-6:
            raise ValueError(f"duration {duration} s outside (0, {self.max_duration_s}] s")
        return min(math.ceil(duration / SYNC_SEGMENT_S - 1e-6) * SYNC_SEGMENT_S, self.max_duration_s)

    def _lengths(self, duration: float) -> dict[str, int]:
        c = self.transformer.config
        if hasattr(self.video_features, "sequence_lengths"):
            # The family's own formulas (MMAudio: the official SequenceConfig, exact for any d).
            return {"latent": int(self.codec.num_latent_frames(duration)),
                    **self.video_features.sequence_lengths(duration)}
        full = self.max_duration_s
        return {
            "latent": int(self.codec.num_latent_frames(duration)),
            "clip": int(duration * c.clip_seq_len / full + 1e-6),
            "sync": int(round(duration * c.sync_seq_len / full / 8)) * 8,
        }

    @property
    def _device(self) -> torch.device:
        return self.transformer.device

    @property
    def _dtype(self) -> torch.dtype:
        return self.transformer.dtype

    # ------------------------------------------------------------------ features
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts → ``[B, text_seq_len, text_dim]``; the empty string gives the network's own
        learned ``empty_string_feat`` (MMAudio's null text)."""
        if hasattr(self.text_encoder, "encode_prompts"):
            feats = self.text_encoder.encode_prompts(list(texts))
        else:
            # the demo family's tokenizer, for bundles whose text encoder has no encode_prompts
            from models.demo_family.features import tokenize

            ids, mask = tokenize(self.tokenizer, list(texts), int(self.transformer.config.text_seq_len))
            feats = self.text_encoder(ids.to(self.text_encoder.device), mask.to(self.text_encoder.device))
        empty = torch.tensor([t.strip() == "" for t in texts], device=feats.device)
        null = self.transformer.empty_string_feat.to(feats.device, feats.dtype)[None].expand_as(feats)
        return torch.where(empty[:, None, None], null, feats).to(self._device, self._dtype)

    @torch.no_grad()
    def encode_video(self, video: dict[str, Any] | None, duration: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames → (clip ``[1, Nc, clip_dim]``, sync ``[1, Ns, sync_dim]``); None → learned null video."""
        n = self._lengths(duration)
        tr = self.transformer
        if video is None:
            return (tr.empty_clip_feat[None].expand(1, n["clip"], -1), tr.empty_sync_feat[None].expand(1, n["sync"], -1))
        clip = self.video_features.encode_clip(video["clip"], duration)
        sync = self.video_features.encode_sync(video["sync"], duration)
        return (_fit_time(clip, n["clip"]).to(self._device, self._dtype),
                _fit_time(sync, n["sync"]).to(self._device, self._dtype))

    @torch.no_grad()
    def encode_audio(self, wave: np.ndarray, duration: float) -> torch.Tensor:
        """Waveform at the codec rate → normalised network latent ``[1, N, latent_dim]``."""
        n_lat = self._lengths(duration)["latent"]
        n = self.codec.num_samples(n_lat) if hasattr(self.codec, "num_samples") else round(duration * self.codec.sample_rate)
        w = np.zeros(n, dtype=np.float32)
        m = min(n, len(wave))
        w[:m] = np.asarray(wave, dtype=np.float32)[:m]
        z = self.codec.encode(torch.from_numpy(w)[None].to(self.codec.device))
        return self.transformer.normalize(_fit_time(z, n_lat).to(self._device, self._dtype))

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor, num_samples: int) -> np.ndarray:
        wave = self.codec.decode(self.transformer.unnormalize(latent).to(self.codec.device, torch.float32))
        out = np.zeros(num_samples, dtype=np.float32)
        w = wave[0].detach().cpu().numpy().astype(np.float32)
        out[: min(num_samples, len(w))] = w[:num_samples]
        # A track is a stem to be mixed: keep it inside full scale (one gain for the whole
        # track, so its dynamics are untouched) instead of letting the file writer clip it.
        peak = float(np.abs(out).max()) if out.size else 0.0
        if peak > 0.99:
            out *= 0.99 / peak
        return out

    # ------------------------------------------------------------------ sampling on features
    @torch.no_grad()
    def generate_latent(self, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor,
                        num_latent_frames: int, generator: torch.Generator, alpha: float,
                        beta: float, num_inference_steps: int,
                        negative_latent: torch.Tensor | None = None,
                        negative_text_f: torch.Tensor | None = None) -> torch.Tensor:
        """The ODE on precomputed features (batch B): CFG, CFG with negative text, or NAG.

        ``beta`` is the effective β (``guidance_settings.effective_beta``: 0 without negatives);
        β ≠ 0 needs ``negative_latent [B, N, latent_dim]`` and a controlnet. Conditioning is
        computed here once; every step is one batched forward of 2·B (CFG) or 3·B (NAG) rows."""
        tr = self.transformer
        b, n = clip_f.shape[0], num_latent_frames
        use_nag = beta != 0.0
        if use_nag and (negative_latent is None or self.controlnet is None):
            raise ValueError("beta != 0 needs negative audio and a controlnet in the bundle")
        cond = tr.preprocess_conditions(clip_f, sync_f, text_f, n)
        null = tr.get_empty_conditions(b, negative_text_features=negative_text_f, latent_len=n,
                                       clip_len=clip_f.shape[1], sync_len=sync_f.shape[1])
        parts = [null, cond]
        if use_nag:
            # u_ψ(x_t, t, V, ∅, x̃): video on, text null.
            parts.append(tr.preprocess_conditions(clip_f, sync_f, tr.empty_string_feat[None].expand(b, -1, -1), n))
        batched = PreprocessedConditions.cat(parts)
        k = len(parts)

        def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            xx = torch.cat([x] * k)
            tt = t.expand(k * b)
            if use_nag:
                v = self.controlnet.predict_flow(tr, xx, tt, batched, negative_latent)
                u_null, u_cond, u_neg = v.chunk(3)
            else:
                u_null, u_cond = tr.predict_flow(xx, tt, batched).chunk(2)
                u_neg = None
            return nag_velocity(u_null, u_cond, u_neg, alpha, beta)

        x0 = initial_noise((b, n, tr.config.latent_dim), generator, self._dtype, self._device)
        return euler_sample(velocity, x0, num_inference_steps)

    # ------------------------------------------------------------------ one track
    @torch.no_grad()
    def generate_track(self, video: dict[str, Any] | None, duration: float, prompt: str,
                       negative_audio: np.ndarray | None = None, negative_prompts: Sequence[str] = (),
                       alpha: float = DEFAULT.alpha, beta: float | None = None,
                       num_inference_steps: int = DEFAULT.steps, mode: str = DEFAULT.mode, seed: int = 0,
                       negative_sources: Sequence[str] | None = None) -> TrackResult:
        """One track against ``negative_audio`` (the audio that already exists, or None);
        ``beta`` None: ``default_beta``."""
        guidance = GuidanceSettings(alpha=alpha, beta=self.default_beta if beta is None else beta, steps=num_inference_steps, mode=mode)
        if mode == "nag" and self.controlnet is None:
            # Refused from the first track on, never downgraded to CFG.
            raise ValueError("this bundle has no controlnet (guidance model u_ψ): mode 'nag' needs one; "
                             "use mode='independent' or 'negative_text'")
        d = self._model_duration(duration)
        n_lat = self._lengths(d)["latent"]
        clip_f, sync_f = self.encode_video(video, d)
        text_f = self.encode_text([prompt])
        neg_latent = neg_text = None
        eff_beta = guidance.effective_beta(has_negatives=negative_audio is not None)
        negatives: list[str] = []
        if eff_beta != 0.0:
            if self.controlnet is None:
                raise ValueError("this bundle has no controlnet (guidance model u_ψ): NAG needs one; "
                                 "use mode='independent' or 'negative_text', or beta=0")
            neg_latent = self.encode_audio(negative_audio, d)
            negatives = list(negative_sources) if negative_sources is not None else ["negative_audio"]
        elif mode == "negative_text" and negative_prompts:
            negatives = list(negative_prompts)
            neg_text = self.encode_text([", ".join(negatives)])
        gen = torch.Generator().manual_seed(int(seed))
        latent = self.generate_latent(clip_f, sync_f, text_f, n_lat, gen, alpha, eff_beta, num_inference_steps,
                                      neg_latent, neg_text)
        n_out = int(round(duration * self.codec.sample_rate))
        settings = {
            "prompt": prompt, "seed": int(seed), "alpha": float(alpha), "beta": eff_beta,
            "steps": int(num_inference_steps), "mode": mode,
            "guidance": "nag" if eff_beta else ("negative_text" if neg_text is not None else "cfg"),
            "negative_sources": negatives, "duration_s": float(duration), "model_duration_s": float(d),
            "sample_rate": int(self.codec.sample_rate), "video": video is not None,
        }
        return TrackResult(self.decode_latent(latent, n_out), latent, settings)

    # ------------------------------------------------------------------ all tracks of a window
    @torch.no_grad()
    def __call__(self, video: dict[str, Any] | None = None, duration: float = 8.0, prompts: Sequence[str] = (),
                 negative_audio: np.ndarray | None = None, alpha: float = DEFAULT.alpha,
                 beta: float | None = None, num_inference_steps: int = DEFAULT.steps,
                 mode: str = DEFAULT.mode, generator: torch.Generator | None = None,
                 seeds: Sequence[int] | None = None) -> StepByStepOutput:
        """Generate ``prompts`` in order; track k is guided away from negative_audio + tracks < k.

        Seeds: ``seeds[k]`` per track, or drawn in order from ``generator``; one is required so a
        result is always reproducible from its recorded settings."""
        prompts = list(prompts)
        if seeds is None:
            if generator is None:
                raise ValueError("pass generator= or seeds= (every stochastic step takes an explicit seed)")
            seeds = [int(torch.randint(0, 2**62, (1,), generator=generator)) for _ in prompts]
        if len(seeds) != len(prompts):
            raise ValueError("need one seed per prompt")
        n_out = int(round(duration * self.codec.sample_rate))
        mix = None if negative_audio is None else _fit_len(np.asarray(negative_audio, np.float32), n_out)
        sources = [] if negative_audio is None else ["negative_audio"]
        tracks, settings = [], []
        for k, (prompt, seed) in enumerate(zip(prompts, seeds)):
            res = self.generate_track(
                video, duration, prompt, negative_audio=mix if mode == "nag" else None,
                negative_prompts=prompts[:k] if mode == "negative_text" else (), alpha=alpha, beta=beta,
                num_inference_steps=num_inference_steps, mode=mode, seed=int(seed), negative_sources=list(sources))
            res.settings["order"] = k + 1
            tracks.append(res.waveform)
            settings.append(res.settings)
            if mode == "nag":
                mix = res.waveform.copy() if mix is None else mix + res.waveform
                sources.append(f"track{k + 1}")
        return StepByStepOutput(tracks=tracks, sample_rate=int(self.codec.sample_rate), settings=settings)


def _fit_time(x: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or edge-pad ``[B, T, C]`` to ``length`` (features of a padded window)."""
    if x.dim() == 2:
        x = x[None]
    t = x.shape[1]
    if t >= length:
        return x[:, :length]
    return torch.cat([x, x[:, -1:].expand(x.shape[0], length - t, x.shape[2])], dim=1)


def _fit_len(w: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(w))] = w[:n]
    return out
