"""How the shipped default bundle's networks are trained on FoleyWorld: the base and guidance
recipes (the loop itself is models/training/trainer.py, the loss models/training/flow_matching.py).

Base (``train_base``): θ = network + clip projection + text encoder. An example is one source
of a FoleyWorld scene: target x₁ = codec(that source's isolated audio), conditioned on the full
scene's video and a paraphrased caption of that source. So the model learns "make the sound the
caption names, timed by the video", which is what each track of step-by-step generation is.
Each example's text and video are independently replaced by the null features with probability
0.1 (p(text null) = p(video null) = 0.1, 1 % both), for classifier-free guidance. The caption
encoder starts warm (``pretrain_text_encoder``: 300 steps of caption → class), so paraphrases of
one class begin close together instead of at random features. Warm-up 100 steps (a tenth of a
shorter run), learning rate 3e-4.

Guidance (``train_guidance``, the paper's u_ψ): base frozen, only the ControlNet branch ψ is
trained, with the same loss but u_ψ(x_t, t, V, ∅, x̃): target x₁ = one segment of a scene's
soundtrack, condition x̃ = a different, non-overlapping segment of the same soundtrack (so ψ
learns "which sounds are present", not to copy x̃ in time), video of the target segment, text
null (video also nulled 10 % of the time, as audio-only data in the paper). The trainer of the
branch is models/training/guidance.py; this module gives it the demo's FoleyWorld pairs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from models.demo_family.codec import MelCodec
from models.demo_family.features import SYNC_CHANNEL_WIDTH, TextEncoder, VideoFeatures, build_tokenizer, tokenize
from models.generation.mmaudio import MMAudio
from models.training import foleyworld as fw
from models.training.distributed import rank_and_world
from models.training.feature_shards import check_features
from models.training.flow_matching import flow_matching_loss, null_fill
from models.training.guidance import train_guidance_on
from models.training.guidance_sources import PairBatch, ShardPairs
from models.training.scene_bank import SceneBank, build_bank, crop_window
from models.training.trainer import RunConfig, Trainer, set_determinism, step_generator


# The shipped bundle's recipe choices (``stepfoley train`` reproduces the bundle with them; the
# bundle README records what each was measured against). Issue 19: the base trains on
# t ~ logit-N(−1, 1) with the signed-velocity sync channels (the video's timing is decided near
# the noise end, which logit-N(0, 1) visits in 8 % of its examples); issue 17: the branch on
# logit-N(−0.8, 1) with the time-pooled x̃ path. Before both: 0.0, ("energy", "onset"), 0.0, False.
BASE_T_MEAN = -1.0
BASE_SYNC_CHANNELS: tuple[str, ...] = ("energy", "onset", "velocity")
GUIDANCE_T_MEAN = -0.8
GUIDANCE_POOLED_COND = True
# Issue 19 again (2026-12-05, afternoon): the base's timing was still being learned when a
# 3000-step schedule ended (onset F1 0.20 / 0.52 / 0.58 at steps 1100 / 2000 / 3000); the same
# recipe over 4500 steps reaches 0.68 (bundle README, "Synchronisation").
BASE_STEPS = 4500
GUIDANCE_STEPS = 3000


@dataclass
class BatchPick:
    scene: list[int]
    source: list[int]
    offset: list[int]
    caption: list[str]


def pick_base_batch(bank: SceneBank, gen: torch.Generator, batch: int, window: float) -> BatchPick:
    """Uniform scene, then uniform source within it, window offset and caption paraphrase."""
    max_off = int(round((bank.duration - window) * 8))
    scenes, sources, offsets, caps = [], [], [], []
    for _ in range(batch):
        s = int(torch.randint(len(bank), (1,), generator=gen))
        k = int(torch.randint(len(bank.classes[s]), (1,), generator=gen))
        o = int(torch.randint(max_off + 1, (1,), generator=gen))
        options = bank.captions[s][k]
        caps.append(options[int(torch.randint(len(options), (1,), generator=gen))])
        scenes.append(s)
        sources.append(k)
        offsets.append(o)
    return BatchPick(scenes, sources, offsets, caps)


def text_features(text_encoder: TextEncoder, tokenizer, captions: Sequence[str]) -> torch.Tensor:
    ids, mask = tokenize(tokenizer, captions, text_encoder.config.text_seq_len)
    return text_encoder(ids, mask)


def base_conditions(
    bank: SceneBank,
    pick: BatchPick,
    window: float,
    latent_rate: float,
    video_features: VideoFeatures,
    text_encoder: TextEncoder,
    tokenizer,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack a picked batch into (x₁, clip_f, sync_f, text_f)."""
    x1, clip, sync = [], [], []
    for s, k, o in zip(pick.scene, pick.source, pick.offset):
        crop = crop_window(bank, s, o, window, latent_rate)
        x1.append(bank.src_lat[s][k][crop["lat"]].float())
        clip.append(crop["clip"].float())
        sync.append(crop["sync"].float())
    clip_f = video_features.clip_proj(torch.stack(clip))
    text_f = text_features(text_encoder, tokenizer, pick.caption)
    return torch.stack(x1), clip_f, torch.stack(sync), text_f


CODEC_LOG_FLOOR = 5e-2
# 32 ms window, 16 ms hop, 32 mel bands, two frames per 64-dim latent token (31.25 tokens/s),
# Griffin-Lim on the analysis hop itself: see models/demo_family/codec.py.
CODEC_ANALYSIS = {"n_fft": 512, "hop_length": 256, "n_mels": 32, "frames_per_latent": 2,
                  "griffin_lim_oversample": 1}


def fit_codec(seeds: Sequence[int], duration: float = 8.0, log_floor: float = CODEC_LOG_FLOOR) -> MelCodec:
    """The bundle's codec with its per-bin normalisation fitted on FoleyWorld soundtracks.

    The log floor sets how much of the normalised range silence takes. FoleyWorld sources are
    digitally silent between events, so at ε = 1e-5 (log −11.5) silence and sound split the
    per-bin σ (≈ 5.6 nats) and every sound is squeezed into a band about 1.4 units wide: the
    dense classes (helicopter, waves, chainsaw, rain, fire) sat 0.24 units apart on average
    (RMS distance of their mean latents), below what a small network renders against unit
    noise. At ε = 0.05 (log −3.0, ~70 dB under the loudest mel band) σ ≈ 2.0 and they sit
    0.66 apart. Measured on the base network (1500 steps, n = 44 held-out single-source
    scenes): evaluator top-1 27 % at ε = 1e-5, 61 % at 1e-2, 64 % at 0.05."""
    codec = MelCodec(log_floor=log_floor, **CODEC_ANALYSIS)
    waves = []
    for s in seeds:
        sc = fw.make_scene(int(s), duration, None, 64)
        waves += [torch.from_numpy(src.audio) for src in sc.sources]
    codec.fit_normalization(waves)
    return codec


def caption_vocabulary() -> list[str]:
    return [c for caps in fw.CAPTIONS.values() for c in caps] + list(fw.CLASSES)


def pretrain_text_encoder(text_encoder: TextEncoder, tokenizer, steps: int, seed: int = 0,
                          batch: int = 32) -> float:
    """Warm start for the caption encoder: classify FoleyWorld captions into their class.

    A linear head on the mask-averaged token features, cross-entropy, AdamW 1e-3; the head is
    thrown away. The flow-matching run then starts from text features that already separate
    the classes (paraphrases of one class close together) instead of from random ones.
    Returns the final batch accuracy."""
    pairs = [(cap, i) for i, c in enumerate(fw.CLASSES) for cap in (*fw.CAPTIONS[c], c)]
    head = nn.Linear(text_encoder.config.text_dim, len(fw.CLASSES))
    opt = torch.optim.AdamW([*text_encoder.parameters(), *head.parameters()], lr=1e-3)
    acc = 0.0
    for step in range(steps):
        gen = step_generator(seed, "text-warmup", step)
        idx = torch.randint(len(pairs), (batch,), generator=gen)
        caps, labels = [pairs[int(i)][0] for i in idx], torch.tensor([pairs[int(i)][1] for i in idx])
        ids, mask = tokenize(tokenizer, caps, text_encoder.config.text_seq_len)
        feats = text_encoder(ids, mask)
        m = mask.unsqueeze(-1).to(feats.dtype)
        logits = head((feats * m).sum(1) / m.sum(1).clamp(min=1))
        loss = nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == labels).float().mean())
    return acc


def train_base(out: Path, *, seed: int = 0, threads: int = 1, steps: int = BASE_STEPS, batch: int = 8,
               scenes: int = 600, ema_decay: float = 0.999, text_warmup_steps: int = 300,
               minutes: float | None = None, quiet: bool = False, t_mean: float = BASE_T_MEAN,
               sync_channels: Sequence[str] = BASE_SYNC_CHANNELS) -> dict[str, Any]:
    """Base network + clip projection + text encoder (flow matching, CFG dropout, EMA).

    ``t_mean`` shifts the logit-normal t towards the noise end (flow_matching.py);
    ``sync_channels`` picks the demo sync stream's channel groups (features.py), and the
    network's sync width follows them."""
    set_determinism(seed, threads)
    run_dir = Path(out) / "_runs" / "base"
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(fw.SPLITS["train"])[: scenes]
    codec = fit_codec(seeds[:60])
    sync_dim = 16 * sum(SYNC_CHANNEL_WIDTH[c] for c in sync_channels)
    video_features = VideoFeatures(seed=seed, sync_channels=tuple(sync_channels), sync_dim=sync_dim)
    text_encoder = TextEncoder()
    tokenizer = build_tokenizer(caption_vocabulary(), max_length=16)
    if text_warmup_steps and not (run_dir / "state.pt").exists():
        pretrain_text_encoder(text_encoder, tokenizer, text_warmup_steps, seed)
    net = MMAudio.from_preset("tiny", latent_dim=codec.latent_dim, sync_dim=sync_dim)
    net.empty_string_feat.requires_grad_(True)  # our null text is learned, not an encoder output
    bank = build_bank(seeds, 8.0, codec, video_features)
    cfg = RunConfig("base", steps, batch, 3e-4, window=8.0, warmup=min(100, max(1, steps // 10)),
                    minutes_cap=minutes,
                    seed=seed, threads=threads, ckpt_every=100, ema_decay=ema_decay)
    trainer = Trainer(cfg, run_dir, {"transformer": net, "clip_proj": video_features.clip_proj,
                                     "text_encoder": text_encoder})

    def loss_fn(gen: torch.Generator, step: int) -> torch.Tensor:
        pick = pick_base_batch(bank, gen, batch, 8.0)
        x1, clip_f, sync_f, text_f = base_conditions(bank, pick, 8.0, codec.latent_rate, video_features,
                                                     text_encoder, tokenizer)
        drop_t = torch.rand(batch, generator=gen) < cfg.null_text_p
        drop_v = torch.rand(batch, generator=gen) < cfg.null_video_p
        text_f = null_fill(text_f, drop_t, net.empty_string_feat[None])
        clip_f = null_fill(clip_f, drop_v, net.empty_clip_feat[None])
        sync_f = null_fill(sync_f, drop_v, net.empty_sync_feat[None])
        return flow_matching_loss(lambda xt, t: net(xt, clip_f, sync_f, text_f, t), x1, gen, t_mean)

    summary = trainer.run(loss_fn, quiet=quiet)
    summary["recipe"] = {"t_mean": t_mean, "sync_channels": list(sync_channels)}  # provenance of the run
    trainer.load_ema_into_modules()
    net.empty_string_feat.requires_grad_(False)
    for name, module in (("transformer", net), ("codec", codec), ("video_features", video_features),
                         ("text_encoder", text_encoder)):
        module.save_pretrained(Path(out) / name)
    tokenizer.save_pretrained(Path(out) / "tokenizer")
    return summary


class FoleyWorldPairs:
    """The demo's guidance pairs: 4 s halves of 8 s FoleyWorld scenes (target = one half, x̃ = the
    other; clip features are the raw 8 fps grid, projected by the caller's frozen head).

    ``probe_bank`` holds scenes outside the training ones for the validation probe and the x̃
    dependence (without it the probe draws training scenes); ``silence`` is the codec's latent of
    a silent half, the x̃ = silence control."""

    def __init__(self, bank: SceneBank, latent_rate: float, seeds: Sequence[int],
                 probe_bank: SceneBank | None = None, silence: torch.Tensor | None = None) -> None:
        self.bank, self.latent_rate, self.seeds = bank, latent_rate, list(seeds)
        self.probe_bank, self._silence = probe_bank, silence
        self.half = int(math.ceil(4.0 * latent_rate - 1e-6))

    def _half(self, bank: SceneBank, s: int, first: bool) -> dict[str, Any]:
        return crop_window(bank, s, 0 if first else 32, 4.0, self.latent_rate)

    def _draw(self, bank: SceneBank, gen: torch.Generator, n: int) -> PairBatch:
        x1, cond, clip, sync = [], [], [], []
        for _ in range(n):
            s = int(torch.randint(len(bank), (1,), generator=gen))
            first = bool(torch.randint(2, (1,), generator=gen))
            crop = self._half(bank, s, first)
            x1.append(bank.mix_lat[s][crop["lat"]].float())
            cond.append(bank.mix_lat[s][self._half(bank, s, not first)["lat"]].float()[: self.half])
            clip.append(crop["clip"].float())
            sync.append(crop["sync"].float())
        return PairBatch(torch.stack(x1), torch.stack(cond), torch.stack(clip), torch.stack(sync))

    def pairs(self, gen: torch.Generator, n: int, part: int = 0, parts: int = 1) -> PairBatch:
        # The bank is small and rendered by every process: each micro-batch draws from all of it.
        return self._draw(self.bank, gen, n)

    def probe_pairs(self, gen: torch.Generator, n: int) -> PairBatch:
        return self._draw(self.probe_bank or self.bank, gen, n)

    def other_clip_condition(self, batch: PairBatch, gen: torch.Generator) -> torch.Tensor:
        """A half of a random probe scene for each row (the 'does u_ψ listen to x̃' control); a
        draw may hit the row's own scene with probability 1 / scenes."""
        bank = self.probe_bank or self.bank
        out = []
        for _ in range(batch.x1.shape[0]):
            s = int(torch.randint(len(bank), (1,), generator=gen))
            first = bool(torch.randint(2, (1,), generator=gen))
            out.append(bank.mix_lat[s][self._half(bank, s, first)["lat"]].float()[: self.half])
        return torch.stack(out)

    def silence(self) -> torch.Tensor | None:
        return self._silence

    def identity(self) -> dict[str, Any]:
        return {"kind": "foleyworld", "scenes": len(self.seeds), "first_seed": self.seeds[0],
                "last_seed": self.seeds[-1], "probe_scenes": len(self.probe_bank) if self.probe_bank else 0}


def train_guidance(out: Path, *, seed: int = 0, threads: int = 1, steps: int = GUIDANCE_STEPS, batch: int = 8,
                   scenes: int = 400, minutes: float | None = None, quiet: bool = False,
                   features: Path | None = None, grad_accum: int = 1, probe_scenes: int | None = None,
                   pooled_cond: bool = GUIDANCE_POOLED_COND, t_mean: float = GUIDANCE_T_MEAN) -> dict[str, Any]:
    """u_ψ for the bundle at ``out`` (models/training/guidance.py), on extracted real-footage
    ``features`` (stepfoley extract-features) or, by default, on FoleyWorld: target = one 4 s
    half of a scene's soundtrack, condition = the other half, video of the target half.

    ``pooled_cond`` (the branch's time-pooled x̃ path) and ``t_mean`` (logit-normal t shifted
    towards noise) are the issue-17 §5 candidates; the defaults are the shipped branch's recipe.
    At 400 steps, t_mean −0.8 with the pooled path tripled the held-out x̃ gain at t = 0.2
    (2.2 → 6.3 %), the pooled path alone did not move it (bundle README)."""
    out = Path(out)
    if features is not None:
        rank_and_world()  # under torchrun: join the process group before anything else
        check_features(features, out)
        return train_guidance_on(out, ShardPairs(features), steps=steps,
                                 batch=batch, seed=seed, threads=threads, grad_accum=grad_accum,
                                 minutes=minutes, quiet=quiet, pooled_cond=pooled_cond, t_mean=t_mean)
    set_determinism(seed, threads)
    codec = MelCodec.from_pretrained(out / "codec")
    video_features = VideoFeatures.from_pretrained(out / "video_features").requires_grad_(False)
    seeds = list(fw.SPLITS["train"])[100_000: 100_000 + scenes]
    # Probe scenes: the train split's next seeds, never trained on (and not the evaluation's test scenes).
    n_probe = min(32, scenes) if probe_scenes is None else probe_scenes
    probe_seeds = list(fw.SPLITS["train"])[100_000 + scenes: 100_000 + scenes + n_probe]
    half = int(math.ceil(4.0 * codec.latent_rate - 1e-6))
    with torch.no_grad():
        silence = codec.encode(torch.zeros(1, int(round(4.0 * codec.sample_rate))))[0][:half]
    source = FoleyWorldPairs(build_bank(seeds, 8.0, codec, video_features), codec.latent_rate, seeds,
                             build_bank(probe_seeds, 8.0, codec, video_features) if probe_seeds else None, silence)

    @torch.no_grad()
    def project(b: PairBatch) -> PairBatch:
        return dataclasses.replace(b, clip=video_features.clip_proj(b.clip))

    return train_guidance_on(out, source, steps=steps, batch=batch, seed=seed, threads=threads,
                             grad_accum=grad_accum, minutes=minutes, quiet=quiet, transform=project,
                             pooled_cond=pooled_cond, t_mean=t_mean)
