"""Do two prompts name the same sound? Judged by meaning, with the bundle's own text encoder.

A scene's tracks are generated one per prompt, each pushed away from the earlier ones, so two
prompts for one sound ("A clock ticking steadily" / "A clock ticks", "A crackling fire" /
"Fire crackles") waste a track and make NAG fight itself. String tests
(``prompt_text.is_near_duplicate``) miss paraphrases; the text tower that scores salience
places paraphrases together. With t_p the L2-normalised text embedding of prompt p
(``embedder.embed_text``):

    same(p, q)  ⇔  t_p · t_q ≥ τ            τ = embedder.same_sound_threshold (else ``DEFAULT_THRESHOLD``)

and, walking the prompts in salience order, a prompt is kept only if it is not ``same`` as any
prompt already kept (greedy: the more salient of two paraphrases stays). An embedder that
cannot read a prompt (``embedder.knows(p)`` false: e.g. the demo scorer's word-level vocabulary
has none of its words) abstains on it, and the string test alone decides.

Thresholds: the demo bundle's FoleyScorer puts prompts of one FoleyWorld class at cosine ≥ 0.99
and prompts of different classes ≤ 0.2 (≤ 0.7 when both are mostly unknown words, which
``knows`` screens out), so 0.9 separates them with margin. For the real CLIP text tower 0.9 is
an uncalibrated guess (no real weights on this machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

DEFAULT_THRESHOLD = 0.9


@runtime_checkable
class TextEmbedder(Protocol):
    name: str

    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor: ...


@dataclass(frozen=True)
class SameSound:
    """``prompt`` was left out because it names the sound of ``kept`` (cosine ``similarity``)."""

    prompt: str
    kept: str
    similarity: float

    @property
    def reason(self) -> str:
        return f"same sound as {self.kept!r} (text similarity {self.similarity:.2f})"


def threshold_of(embedder: Any) -> float:
    return float(getattr(embedder, "same_sound_threshold", DEFAULT_THRESHOLD))


def _reads(embedder: Any, prompt: str) -> bool:
    knows = getattr(embedder, "knows", None)
    return True if knows is None else bool(knows(prompt))


@torch.no_grad()
def distinct_by_meaning(prompts: Sequence[str], embedder: TextEmbedder, *, fixed: Sequence[str] = (),
                        threshold: float | None = None) -> tuple[list[str], list[SameSound]]:
    """``prompts`` (salience order) minus those naming a sound already kept (module docstring).

    ``fixed`` prompts (the user's) are kept unconditionally and come first: a proposal that
    repeats one of them is dropped, never the user's."""
    tau = threshold_of(embedder) if threshold is None else float(threshold)
    everything = list(fixed) + list(prompts)
    if not prompts:
        return [], []
    emb = embedder.embed_text(everything).float()
    emb = torch.nn.functional.normalize(emb, dim=-1)
    reads = [_reads(embedder, p) for p in everything]
    kept_idx = list(range(len(fixed)))
    dropped: list[SameSound] = []
    for j in range(len(fixed), len(everything)):
        best: tuple[float, int] | None = None
        if reads[j]:
            for i in kept_idx:
                if not reads[i]:
                    continue
                sim = float(emb[i] @ emb[j])
                if sim >= tau and (best is None or sim > best[0]):
                    best = (sim, i)
        if best is None:
            kept_idx.append(j)
        else:
            dropped.append(SameSound(everything[j], everything[best[1]], best[0]))
    return [everything[i] for i in kept_idx[len(fixed):]], dropped
