"""Track k of B windows in one batched ODE: B × 3 rows per NAG step (B × 2 for CFG).

Windows are independent; within a window, tracks are sequential (track k's negatives contain
tracks < k). So a device holding B windows can integrate track k of all B together. For window
b with features (V_b, C_b), negatives x̃_b and its own seed s_b:

    x₀[b]    = initial_noise(s_b)                       (drawn per window, as unbatched)
    rows     = [∅ × B, (V, C) × B, (V, ∅ text) × B]     one forward of 3·B rows per step
    ũ[b]     = nag_velocity(u_null[b], u_cond[b], u_ψ[b], α, β)
    x_{i+1}  = x_i + Δt · ũ                              (Euler on the whole batch)

Every row of a transformer forward depends only on its own inputs (attention is within a
sequence, normalisation per token), so row b of the batched result equals the unbatched track
of window b up to floating-point reassociation in the batched matmuls; the seed per (asset,
scene, window, track) is unchanged because each window draws its own x₀ from its own
generator. The conditioning (video, text, the negative's latent) is encoded per window, once
per track, exactly as ``StepByStepV2APipeline.generate_track`` does, and the decode is per
window. Windows of different lengths (latent, clip or sync sequence lengths) or guidance kinds
(CFG for a first track without negatives, NAG otherwise) go to separate batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.generation.mmaudio import PreprocessedConditions
from models.generation.nag import nag_velocity
from models.generation.pipeline import StepByStepV2APipeline, TrackResult
from models.generation.sampling import euler_sample, initial_noise


@dataclass(frozen=True)
class TrackRequest:
    """One window's track k, as ``generate_track`` takes it (modes nag and independent)."""

    video: dict[str, Any] | None
    duration: float
    prompt: str
    negative_audio: np.ndarray | None
    seed: int
    alpha: float
    beta: float
    steps: int
    mode: str = "nag"


@torch.no_grad()
def generate_tracks_batched(pipe: StepByStepV2APipeline, requests: list[TrackRequest]) -> list[TrackResult]:
    """The tracks of ``requests`` (one per window), batched where their shapes allow."""
    prepared = [_prepare(pipe, r) for r in requests]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p["group"], []).append(i)
    latents: dict[int, torch.Tensor] = {}
    for members in groups.values():
        out = _integrate(pipe, [prepared[i] for i in members])
        for i, lat in zip(members, out.split(1)):
            latents[i] = lat
    results = []
    for i, (r, p) in enumerate(zip(requests, prepared)):
        n_out = int(round(r.duration * pipe.codec.sample_rate))
        settings = {"prompt": r.prompt, "seed": int(r.seed), "alpha": float(r.alpha),
                    "beta": p["beta"], "steps": int(r.steps), "mode": r.mode,
                    "guidance": "nag" if p["beta"] else "cfg", "batched": len(requests)}
        results.append(TrackResult(pipe.decode_latent(latents[i], n_out), latents[i], settings))
    return results


def _prepare(pipe: StepByStepV2APipeline, r: TrackRequest) -> dict[str, Any]:
    if r.mode not in ("nag", "independent"):
        raise ValueError(f"batched generation supports modes nag and independent, not {r.mode!r}")
    d = pipe._model_duration(r.duration)
    n_lat = pipe._lengths(d)["latent"]
    clip_f, sync_f = pipe.encode_video(r.video, d)
    text_f = pipe.encode_text([r.prompt])
    beta = float(r.beta) if (r.mode == "nag" and r.negative_audio is not None) else 0.0
    neg = pipe.encode_audio(r.negative_audio, d) if beta else None
    return {"clip": clip_f, "sync": sync_f, "text": text_f, "neg": neg, "n": n_lat, "beta": beta,
            "alpha": float(r.alpha), "steps": int(r.steps),
            "gen": torch.Generator().manual_seed(int(r.seed)),
            "group": (n_lat, clip_f.shape[1], sync_f.shape[1], beta, float(r.alpha), int(r.steps))}


def _integrate(pipe: StepByStepV2APipeline, items: list[dict[str, Any]]) -> torch.Tensor:
    tr = pipe.transformer
    b, n = len(items), items[0]["n"]
    alpha, beta, steps = items[0]["alpha"], items[0]["beta"], items[0]["steps"]
    clip_f = torch.cat([it["clip"] for it in items])
    sync_f = torch.cat([it["sync"] for it in items])
    text_f = torch.cat([it["text"] for it in items])
    cond = tr.preprocess_conditions(clip_f, sync_f, text_f, n)
    null = tr.get_empty_conditions(b, latent_len=n, clip_len=clip_f.shape[1], sync_len=sync_f.shape[1])
    parts = [null, cond]
    neg = None
    if beta:
        if pipe.controlnet is None:
            raise ValueError("beta != 0 needs a controlnet in the bundle")
        parts.append(tr.preprocess_conditions(clip_f, sync_f, tr.empty_string_feat[None].expand(b, -1, -1), n))
        neg = torch.cat([it["neg"] for it in items])
    batched = PreprocessedConditions.cat(parts)
    k = len(parts)

    def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        xx = torch.cat([x] * k)
        tt = t.expand(k * b)
        if beta:
            u_null, u_cond, u_neg = pipe.controlnet.predict_flow(tr, xx, tt, batched, neg).chunk(3)
        else:
            (u_null, u_cond), u_neg = tr.predict_flow(xx, tt, batched).chunk(2), None
        return nag_velocity(u_null, u_cond, u_neg, alpha, beta)

    x0 = torch.cat([initial_noise((1, n, tr.config.latent_dim), it["gen"], tr.dtype, tr.device)
                    for it in items])
    return euler_sample(velocity, x0, steps)
