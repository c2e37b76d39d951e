"""The paper's comparison (Hayakawa et al., Table 2 and the β / order ablations) on FoleyWorld.

For each held-out test scene s with K sources (classes c_1 … c_K, real audio a_1 … a_K) the
prompts are the sources' captions, ordered by *salience* = the source's RMS level in the real
mix (descending = loudest first, the paper's default; ascending; random = a permutation seeded
by s). Every condition then generates the K tracks of the scene one after another:

* ``independent``  — CFG per prompt, no negatives (MMAudio run once per caption);
* ``negative_text`` — CFG whose null branch carries the earlier prompts as negative text;
* ``nag`` at β — Negative Audio Guidance against the sum of the earlier tracks (β = 0 ≡
  independent, and is run once under that name).

Track k of scene s is sampled with a seed that depends only on (s, c_k), so conditions are
paired: they differ in guidance, never in noise. Track 1 has no earlier audio, so it is the same
for every condition of one order and is generated once.

Per track k ≥ 2 and judge J (the bundle's evaluator, and YAMNet as an independent judge), with
E = Σ_{j<k} track_j:

    separability = 100 · cos(e_J(track_k), e_J(E))             (lower is better)
    fidelity     = score_J(track_k)[c_k]                        (higher is better)
    leakage      = max_{j<k} score_J(track_k)[c_j]              (lower is better)
    top-1        = argmax_c score_J(track_k)[c] == c_k           (per-class confusion)

Per scene: the mix M = Σ_k track_k; class-set recall of M; and over scenes the Fréchet distance
between {e_J(M_s)} and {e_J(real mixture of s)}. Statistics and intervals: ``models.evaluation.metrics``.

Synchronisation (``cfg.sync``, on by default): for every event-driven source of every scene, the
independent-CFG track of its caption (the one the conditions above already generate: same
prompt, seed and video, no negatives), the real isolated source audio (ceiling) and the same
prompt and seed with another scene's video (floor, one extra track per source) are scored
against the source's visual event times (``models.evaluation.sync_run``, ``models.evaluation.sync``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.evaluation.evaluator import load_evaluator
from models.evaluation.metrics import class_set_recall, cosine100
from models.evaluation.sync_run import SyncItem, items_of_scene, measure_sync
from models.evaluation.yamnet_judge import YamnetJudge
from models.generation.bundle import load_bundle
from models.generation.bundle_beta import resolve_beta
from models.generation.guidance_settings import DEFAULT, ORDERS, check_alpha, check_beta, check_mode, \
    check_order, check_steps
from models.training import foleyworld as fw

METHODS = ("independent", "negative_text", "nag")  # the guidance modes, in the report's order


@dataclass(frozen=True)
class Condition:
    method: str
    beta: float
    order: str

    @property
    def key(self) -> str:
        if self.method == "nag":
            return f"nag(β={self.beta:g}, {self.order})"
        return f"{self.method}({self.order})"


@dataclass
class EvalConfig:
    """One evaluation run. ``seeds`` must lie in FoleyWorld's held-out ``test`` split."""

    seeds: range
    methods: tuple[str, ...] = METHODS
    betas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    orders: tuple[str, ...] = ORDERS
    tracks: tuple[int, int] = (2, 3)
    steps: int = DEFAULT.steps
    alpha: float = DEFAULT.alpha
    # None: the bundle's declared β (models/generation/bundle_beta.py), else the paper's 1.5
    beta: float | None = None
    yamnet: bool = True
    threads: int = 1
    sync: bool = True  # the synchronisation table (one extra track per event-driven source)

    def validate(self) -> None:
        test = fw.SPLITS["test"]
        if len(self.seeds) < 2:
            raise ValueError("need at least two scenes (seeds A:B with B ≥ A + 2)")
        if self.seeds.start not in test or (self.seeds.stop - 1) not in test:
            raise ValueError(f"seeds {self.seeds.start}:{self.seeds.stop} are not inside the held-out test "
                             f"split {test.start}:{test.stop} (training and evaluator seeds are never evaluated)")
        # The ranges of the guidance settings' one home (GuidanceError is a ValueError).
        for m in self.methods:
            check_mode(m, "method")
        for o in self.orders:
            check_order(o, "order")
        check_alpha(self.alpha)
        if self.beta is not None:
            check_beta(self.beta)
        check_steps(self.steps)
        for b in self.betas:
            check_beta(b, "betas")
        lo, hi = self.tracks
        if not 2 <= lo <= hi <= 5:
            raise ValueError("tracks must be a range within 2..5")

    def conditions(self) -> list[Condition]:
        """Method comparison (descending order, β of the config), β sweep, order ablation."""
        out: list[Condition] = []

        def add(c: Condition) -> None:
            if c.method == "nag" and c.beta == 0.0:
                c = Condition("independent", 0.0, c.order)
            if c not in out:
                out.append(c)

        main_order = self.orders[0] if self.orders else "descending"
        for m in self.methods:
            add(Condition(m, self.beta if m == "nag" else 0.0, main_order))
        if "nag" in self.methods:
            for b in self.betas:
                add(Condition("nag", float(b), main_order))
            for o in self.orders:
                add(Condition("nag", self.beta, o))
        return out


@dataclass
class SceneSpec:
    seed: int
    classes: list[str]
    captions: list[str]
    salience_db: list[float]


@dataclass
class EvalResult:
    config: dict[str, Any]
    scenes: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    mixes: list[dict[str, Any]] = field(default_factory=list)
    real: list[dict[str, Any]] = field(default_factory=list)
    judge_accuracy: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sync: list[dict[str, Any]] = field(default_factory=list)


def scene_for(seed: int, tracks: tuple[int, int]) -> tuple[fw.Scene, SceneSpec]:
    lo, hi = tracks
    k = lo + seed % (hi - lo + 1)
    sc = fw.make_scene(seed, 8.0, k, 64)
    sal = [float(20 * np.log10(np.sqrt(np.mean(s.audio.astype(np.float64) ** 2)) + 1e-9)) for s in sc.sources]
    return sc, SceneSpec(seed, [s.cls for s in sc.sources], [s.caption for s in sc.sources], sal)


def order_indices(spec: SceneSpec, order: str) -> list[int]:
    idx = list(range(len(spec.classes)))
    if order == "descending":
        return sorted(idx, key=lambda i: -spec.salience_db[i])
    if order == "ascending":
        return sorted(idx, key=lambda i: spec.salience_db[i])
    return [int(i) for i in np.random.default_rng(spec.seed).permutation(len(idx))]


def track_seed(scene_seed: int, cls: str) -> int:
    return int(scene_seed) * 16 + fw.CLASSES.index(cls)


class Judges:
    """The bundle's evaluator and (optionally) YAMNet, behind one call."""

    def __init__(self, evaluator_dir: Path, yamnet: bool, threads: int) -> None:
        self.evaluator = load_evaluator(evaluator_dir)
        self.classes = tuple(self.evaluator.config.classes)
        self.yamnet = None
        self.names = ["evaluator"]
        if yamnet:
            self.yamnet = YamnetJudge(self.classes, threads=threads)
            self.names.append("yamnet")

    def __call__(self, wave: np.ndarray, sr: int) -> dict[str, tuple[dict[str, float], np.ndarray]]:
        out = {"evaluator": (self.evaluator.class_scores(wave, sr), self.evaluator.embed(wave, sr))}
        if self.yamnet is not None:
            out["yamnet"] = self.yamnet.analyse(wave, sr)
        return out


def run_evaluation(bundle: str | Path, cfg: EvalConfig,
                   progress: Callable[[str, int, int], None] | None = None) -> EvalResult:
    """Generate every condition's tracks on the held-out scenes and judge them."""
    import torch

    cfg.validate()
    cfg = dataclasses.replace(cfg, beta=resolve_beta(cfg.beta, bundle))
    torch.set_num_threads(cfg.threads)
    t_start = time.time()
    pipe = load_bundle(bundle)
    pipe.set_progress_bar_config(disable=True)
    judges = Judges(Path(bundle) / "evaluator", cfg.yamnet, cfg.threads)
    sr = int(pipe.codec.sample_rate)
    conds = cfg.conditions()
    res = EvalResult(config={**dataclasses.asdict(cfg), "seeds": [cfg.seeds.start, cfg.seeds.stop],
                             "bundle": str(bundle), "conditions": [c.key for c in conds]})
    specs = [scene_for(s, cfg.tracks) for s in cfg.seeds]
    total = sum(len(sp.classes) - 1 for _, sp in specs) * len(conds) + \
        len(specs) * len({c.order for c in conds})
    sync_items = [it for sc, _ in specs for it in items_of_scene(sc, track_seed)] if cfg.sync else []
    if len({it.scene for it in sync_items}) < 2:
        sync_items = []  # the shuffled-video floor needs a second scene
    # Floors always; own-video tracks only when no independent condition generates them.
    total += len(sync_items) * (1 if any(c.method == "independent" for c in conds) else 2)
    done = 0
    emb: dict[str, list[np.ndarray]] = {}
    gen_s = judge_s = 0.0
    independent: dict[tuple[int, str], np.ndarray] = {}  # (scene, class) → its independent track

    def judge(wave: np.ndarray) -> dict[str, tuple[dict[str, float], np.ndarray]]:
        nonlocal judge_s
        t = time.time()
        out = judges(wave, sr)
        judge_s += time.time() - t
        return out

    for si, (sc, spec) in enumerate(specs):
        video = fw.model_video(sc.frames)
        res.scenes.append(dataclasses.asdict(spec))
        real = judge(sc.mixture)
        for jn, (scores, e) in real.items():
            emb.setdefault(f"real/{jn}", []).append(e)
        res.real.append({"scene": spec.seed, "classes": spec.classes,
                         **{f"{jn}_recall": _recall(real[jn][0], spec.classes) for jn in real}})
        for src in sc.sources:  # each judge's own accuracy on real held-out sources
            for jn, (scores, _) in judge(src.audio).items():
                res.judge_accuracy.setdefault(jn, []).append([src.cls, max(scores, key=scores.get)])
        first: dict[str, np.ndarray] = {}
        for cond in conds:
            order = order_indices(spec, cond.order)
            waves: list[np.ndarray] = []
            for k, i in enumerate(order):
                cls, prompt = spec.classes[i], spec.captions[i]
                seed = track_seed(spec.seed, cls)
                if k == 0 and cond.order in first:
                    wave = first[cond.order]
                else:
                    earlier = np.sum(waves, axis=0) if waves else None
                    t = time.time()
                    out = pipe.generate_track(
                        video, 8.0, prompt,
                        negative_audio=earlier if cond.method == "nag" else None,
                        negative_prompts=[spec.captions[j] for j in order[:k]] if cond.method == "negative_text" else (),
                        alpha=cfg.alpha, beta=cond.beta,
                        num_inference_steps=cfg.steps,
                        mode=cond.method, seed=seed)
                    gen_s += time.time() - t
                    wave = out.waveform
                    done += 1
                    if progress:
                        progress(cond.key, done, total)
                    if k == 0:
                        first[cond.order] = wave
                if cond.method == "independent":
                    independent[(spec.seed, cls)] = wave
                if k > 0:
                    rec = {"scene": spec.seed, "condition": cond.key, "method": cond.method, "beta": cond.beta,
                           "order": cond.order, "position": k + 1, "K": len(order), "class": cls,
                           "prompt": prompt, "seed": seed, "earlier": [spec.classes[j] for j in order[:k]]}
                    mine, prev = judge(wave), judge(np.sum(waves, axis=0))
                    for jn, (scores, e) in mine.items():
                        rec[f"{jn}_separability"] = cosine100(e, prev[jn][1])
                        rec[f"{jn}_fidelity"] = scores[cls]
                        rec[f"{jn}_leakage"] = max(scores[c] for c in rec["earlier"])
                        rec[f"{jn}_top1"] = max(scores, key=scores.get)
                    res.tracks.append(rec)
                waves.append(wave)
                if si == 0:
                    res.example.setdefault(cond.key, []).append({"class": cls, "prompt": prompt, "wave": wave})
            mix = np.sum(waves, axis=0)
            mj = judge(mix)
            mrec = {"scene": spec.seed, "condition": cond.key, "method": cond.method, "beta": cond.beta,
                    "order": cond.order, "classes": spec.classes}
            for jn, (scores, e) in mj.items():
                mrec[f"{jn}_recall"] = _recall(scores, spec.classes)
                emb.setdefault(f"{cond.key}/{jn}", []).append(e)
            res.mixes.append(mrec)
        if si == 0:
            res.example["_real"] = [{"class": s.cls, "prompt": s.caption, "wave": s.audio} for s in sc.sources]
            res.example["_sample_rate"] = sr
    if sync_items:
        def generate(item: SyncItem, video_of: SyncItem) -> np.ndarray:
            nonlocal gen_s, done
            if video_of is item and (item.scene, item.cls) in independent:
                return independent[(item.scene, item.cls)]  # same prompt, seed and video
            t = time.time()
            wave = pipe.generate_track(video_of.video, 8.0, item.caption, alpha=cfg.alpha, beta=0.0,
                                       num_inference_steps=cfg.steps, mode="independent", seed=item.seed).waveform
            gen_s += time.time() - t
            done += 1
            if progress:
                progress("sync (event sources)", done, total)
            return wave

        res.sync = measure_sync(sync_items, generate, sr)
    res.embeddings = {k: np.stack(v) for k, v in emb.items()}
    res.timings = {"total_s": round(time.time() - t_start, 1), "generation_s": round(gen_s, 1),
                   "judging_s": round(judge_s, 1), "tracks_generated": done}
    return res


def _recall(scores: dict[str, float], classes: Sequence[str]) -> float:
    return class_set_recall(scores, classes)
