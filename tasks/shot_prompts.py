"""Stage: keyframes of one scene → its ordered missing-sound prompts.

For a scene (one shot; all its windows share the list, so a long shot keeps its sounds):

1. caption — the captioner (a VLM from a local dir, or the bundle's FoleyWorld captioner)
   proposes up to ``k + spare`` prompts from keyframes spread over the scene, already cleaned
   by ``models.prompting.prompt_text``;
2. order — descending text–video similarity from the scorer (the demo bundle's FoleyScorer,
   an MMAudio-family bundle's own CLIP towers, or a CLIP from a local dir); ties keep the
   captioner's order; the score is recorded per prompt. Proposals must be well formed
   (``prompt_text.form_problem``: a repeated phrase is collapsed, a truncated one dropped) and
   name different sounds, judged by meaning with the scorer's text tower
   (``prompt_meaning.distinct_by_meaning``): of two paraphrases the more salient stays;
3. already there — when the scene has original audio, prompts whose sound it already has are
   dropped: the bundle scorer's audio-presence probability ≥ ``presence_threshold``, YAMNet's
   class score ≥ ``yamnet_threshold`` (real footage), silero-vad's speech fraction ≥
   ``speech_threshold`` for dialogue-like prompts. Every drop is recorded with its evidence; a
   tagger that is not installed is recorded as skipped;
4. user prompts — from ``--prompts FILE.csv`` rows for this asset and time range and from the
   sidecar ``<video>.prompts.txt``, ``replace`` or ``extend`` the captioner's list (user
   prompts first, in their ``order``; never dropped by step 3 — the user asked for them);
5. keep ``k`` captioner prompts (user prompts are never cut).

Inputs are plain arrays and paths (frames ``uint8 [T,H,W,3]``, audio float32), results are
dataclasses; the provenance rows are written by the caller (tasks/asset_stages.py, through
tasks/asset_prompts.py).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from models.prompting.audio_taggers import default_taggers
from models.prompting.captioner import load_captioner
from models.prompting.domain_check import THRESHOLD as DOMAIN_THRESHOLD, check_domain
from models.prompting.prompt_meaning import distinct_by_meaning
from models.prompting.prompt_text import collapse_repeats, form_problem, is_near_duplicate
from models.prompting.scorer import load_scorer, order_by_score
from tasks.config import ConfigError
from tasks.library_files import SIDECAR_SUFFIX
from tasks.model_cache import loaded_once

log = logging.getLogger(__name__)

PromptMode = Literal["replace", "extend"]
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_PROMPT_WORDS = 12


class PromptsFileError(ConfigError):
    """A malformed user prompts file; the message names the file and the line."""


# ============================================================================ user prompts


@dataclass(frozen=True)
class UserPrompt:
    """One user-given prompt: for an asset (path or sha256), optionally a time range of it."""

    asset: str
    prompt: str
    start_s: float | None = None
    end_s: float | None = None
    order: int | None = None
    origin: str = ""  # "file.csv:12" or "clip.mp4.prompts.txt:3", for the record

    def covers(self, start_s: float, end_s: float) -> bool:
        """Whether this prompt applies to a scene spanning [start_s, end_s) (any overlap)."""
        lo = -math.inf if self.start_s is None else self.start_s
        hi = math.inf if self.end_s is None else self.end_s
        return lo < end_s and hi > start_s

    def matches_asset(self, path: str | Path | None, sha256: str | None) -> bool:
        key = self.asset.strip()
        if SHA256_RE.match(key):
            return sha256 is not None and key.lower() == sha256.lower()
        if path is None:
            return False
        p = Path(path)
        k = Path(key)
        if k.is_absolute():
            try:
                return k.resolve() == p.resolve()
            except OSError:
                return False
        # Relative ("shots/clip.mp4", "clip.mp4"): the asset path ends with those components,
        # so a CSV written against the library root works from anywhere.
        parts = tuple(x for x in k.parts if x not in (".", ""))
        return bool(parts) and p.absolute().parts[-len(parts):] == parts


MAX_ORDER = 1000  # a rank among a scene's prompts; more than the tracks anyone generates

_HEADER_ALIASES = {
    "asset": "asset", "path": "asset", "file": "asset", "video": "asset", "sha256": "asset", "sha": "asset",
    "asset_path": "asset", "start": "start", "start_s": "start", "start_seconds": "start", "end": "end",
    "end_s": "end", "end_seconds": "end", "prompt": "prompt", "text": "prompt", "order": "order", "rank": "order",
}


def _number(raw: str, what: str, where: str) -> float | None:
    raw = raw.strip()
    if raw == "":
        return None
    try:
        val = float(raw)
    except ValueError:
        raise PromptsFileError(f"{where}: {what} {raw!r} is not a number of seconds") from None
    if not math.isfinite(val) or val < 0:
        raise PromptsFileError(f"{where}: {what} {raw!r} must be a finite number ≥ 0")
    return val


def _clean_user_prompt(raw: str, where: str) -> str:
    text = " ".join(raw.split())
    if not text:
        raise PromptsFileError(f"{where}: empty prompt")
    if len(text.split()) > MAX_PROMPT_WORDS:
        raise PromptsFileError(f"{where}: prompt has {len(text.split())} words (at most {MAX_PROMPT_WORDS}): {text!r}")
    return text


def read_prompts_csv(path: str | Path) -> list[UserPrompt]:
    """Rows of a user prompts CSV.

    Columns (header row, names case-insensitive, aliases accepted): ``asset`` (path or sha256),
    optional ``start`` / ``end`` seconds, ``prompt``, optional ``order``. Without a header the
    columns are positional: ``asset,prompt`` or ``asset,start,end,prompt[,order]``. Blank lines
    and lines starting with ``#`` are ignored. Any malformed row raises ``PromptsFileError``
    naming the file and line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PromptsFileError(f"{p}: prompts file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsFileError(f"{p}: cannot read prompts file: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    out: list[UserPrompt] = []
    columns: list[str] | None = None
    for lineno, row in enumerate(rows, start=1):
        where = f"{p}:{lineno}"
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if columns is None:
            names = [c.strip().lower() for c in row]
            if "prompt" in names or "text" in names:
                columns = [_HEADER_ALIASES.get(n, n) for n in names]
                unknown = [n for n, c in zip(names, columns) if c not in {"asset", "start", "end", "prompt", "order"}]
                if unknown:
                    raise PromptsFileError(f"{where}: unknown column(s) {', '.join(unknown)} "
                                           "(expected asset, start, end, prompt, order)")
                if "asset" not in columns:
                    raise PromptsFileError(f"{where}: header has no asset column (path or sha256)")
                continue
            columns = []  # positional
        if columns:
            if len(row) != len(columns):
                raise PromptsFileError(f"{where}: expected {len(columns)} columns, got {len(row)}")
            rec = dict(zip(columns, row))
        elif len(row) == 2:
            rec = {"asset": row[0], "prompt": row[1]}
        elif len(row) in (4, 5):
            rec = dict(zip(["asset", "start", "end", "prompt", "order"], row))
        else:
            raise PromptsFileError(f"{where}: expected asset,prompt or asset,start,end,prompt[,order] "
                                   f"(or a header row), got {len(row)} columns")
        asset = rec.get("asset", "").strip()
        if not asset:
            raise PromptsFileError(f"{where}: empty asset (give a path or a sha256)")
        start = _number(rec.get("start", ""), "start", where)
        end = _number(rec.get("end", ""), "end", where)
        if start is not None and end is not None and end <= start:
            raise PromptsFileError(f"{where}: end {end:g} s is not after start {start:g} s")
        order_raw = rec.get("order", "").strip()
        order = None
        if order_raw:
            try:
                order = int(order_raw)
            except ValueError:
                raise PromptsFileError(f"{where}: order {order_raw!r} is not an integer") from None
            if not 1 <= order <= MAX_ORDER:
                raise PromptsFileError(f"{where}: order {order_raw!r} must be in 1..{MAX_ORDER} (1 = first)")
        out.append(UserPrompt(asset, _clean_user_prompt(rec.get("prompt", ""), where), start, end, order, where))
    return out


def sidecar_path(video: str | Path) -> Path | None:
    """``clip.mp4.prompts.txt`` next to the video, else ``clip.prompts.txt``; None if neither."""
    v = Path(video)
    for cand in (v.with_name(v.name + SIDECAR_SUFFIX), v.with_name(v.stem + SIDECAR_SUFFIX)):
        if cand.is_file():
            return cand
    return None


def read_sidecar(video: str | Path) -> list[UserPrompt]:
    """One prompt per line for the whole asset; blank lines and ``#`` comments ignored."""
    side = sidecar_path(video)
    if side is None:
        return []
    try:
        lines = side.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsFileError(f"{side}: cannot read sidecar prompts: {exc}") from None
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append(UserPrompt(str(video), _clean_user_prompt(line, f"{side}:{lineno}"), origin=f"{side}:{lineno}"))
    return out


def unknown_asset_warnings(rows: Iterable[UserPrompt], assets: Iterable[tuple[str | Path, str | None]]) -> list[str]:
    """A warning per distinct CSV asset that matches none of ``assets`` ((path, sha256) pairs)."""
    known = list(assets)
    seen: dict[str, str] = {}
    for r in rows:
        if r.asset not in seen and not any(r.matches_asset(p, s) for p, s in known):
            seen[r.asset] = f"{r.origin}: prompts for unknown asset {r.asset!r} are ignored"
    for msg in seen.values():
        log.warning(msg)
    return list(seen.values())


def user_prompts_for_scene(rows: Iterable[UserPrompt], asset_path: str | Path | None, asset_sha256: str | None,
                           start_s: float, end_s: float) -> list[UserPrompt]:
    """The rows for this asset and scene, sorted by ``order`` (rows without one after, in file
    order)."""
    hits = [r for r in rows if r.matches_asset(asset_path, asset_sha256) and r.covers(start_s, end_s)]
    return [r for _, r in sorted(enumerate(hits), key=lambda ir: (ir[1].order is None, ir[1].order or 0, ir[0]))]


# ============================================================================ results


@dataclass
class ScenePrompt:
    text: str
    order: int  # 1 = most salient
    score: float | None  # text–video similarity (None without a scorer)
    source: str  # "captioner" | "user"
    origin: str = ""


@dataclass
class DroppedPrompt:
    text: str
    reason: str
    stage: str  # "clean" | "same" (same sound as a kept prompt) | "present" | "limit" | "replaced"


@dataclass
class ScenePrompts:
    """Everything the stage decided for one scene; the caller writes the rows."""

    prompts: list[ScenePrompt]
    dropped: list[DroppedPrompt] = field(default_factory=list)
    raw_text: str = ""
    captioner: dict[str, Any] = field(default_factory=dict)
    scorer: str | None = None
    notes: list[str] = field(default_factory=list)  # taggers skipped, silent audio, ...
    # The demo captioner on footage unlike FoleyWorld: {"distance": d, "note": what the user is told}.
    domain: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> list[str]:
        """Human lines for ``stepfoley prompts``: the prompts in order with score and source,
        then what was left out and why."""
        lines = [f"{p.order}. {p.text}" + (f"  ({p.score:.3f})" if p.score is not None else "")
                 + (f"  [{p.source}]" if p.source != "captioner" else "") for p in self.prompts]
        lines += [f"   dropped: {d.text} — {d.reason}" for d in self.dropped
                  if d.stage in ("same", "present", "limit")]
        lines += [f"   note: {n}" for n in self.notes]
        return lines


# ============================================================================ the stage


def is_silent(audio: np.ndarray | None, rms_floor: float = 1e-4) -> bool:
    if audio is None:
        return True
    a = np.asarray(audio, dtype=np.float64)
    return a.size == 0 or not np.isfinite(a).all() or float(np.sqrt(np.mean(a * a))) < rms_floor


def drop_already_present(prompts: Sequence[str], audio: np.ndarray, sample_rate: int, scorer: Any = None,
                         taggers: Sequence[Any] = (), presence_threshold: float = 0.5,
                         yamnet_threshold: float = 0.3, speech_threshold: float = 0.2
                         ) -> tuple[list[str], list[DroppedPrompt], list[str]]:
    """Split ``prompts`` into (kept, dropped with evidence, notes) against the original audio."""
    notes: list[str] = []
    reasons: dict[str, list[str]] = {p: [] for p in prompts}
    if scorer is not None and hasattr(scorer, "audio_presence"):
        for p, prob in zip(prompts, scorer.audio_presence(audio, sample_rate, list(prompts))):
            if prob >= presence_threshold:
                reasons[p].append(f"{scorer.name} presence {prob:.2f} ≥ {presence_threshold:g}")
    thresholds = {"yamnet": yamnet_threshold, "silero-vad": speech_threshold}
    for tagger in taggers:
        if not tagger.available:
            notes.append(tagger.reason)
            continue
        res = tagger.presence(audio, sample_rate, list(prompts))
        thr = thresholds.get(tagger.name, 0.5)
        for p, s in res.scores.items():
            if s >= thr:
                reasons[p].append(f"{tagger.name} {res.evidence.get(p, f'{s:.2f}')} ≥ {thr:g}")
    kept = [p for p in prompts if not reasons[p]]
    dropped = [DroppedPrompt(p, "already in the original audio: " + "; ".join(r), "present")
               for p, r in reasons.items() if r]
    return kept, dropped, notes


def finish_scene_prompts(caption: Any, frames: np.ndarray, *, k: int = 5, scorer: Any = None,
                         original_audio: np.ndarray | None = None, sample_rate: int | None = None,
                         taggers: Sequence[Any] = (), user_prompts: Sequence[UserPrompt] = (),
                         mode: PromptMode = "extend", presence_threshold: float = 0.5,
                         yamnet_threshold: float = 0.3, speech_threshold: float = 0.2) -> ScenePrompts:
    """Steps 2–5 of the module docstring on a captioner's ``Caption``."""
    if mode not in ("replace", "extend"):
        raise ConfigError(f"prompts mode must be replace or extend, not {mode!r}")
    result = ScenePrompts(prompts=[], raw_text=caption.raw_text, captioner=dict(caption.settings),
                          scorer=getattr(scorer, "name", None))
    result.dropped += [DroppedPrompt(t, r, "clean") for t, r in caption.dropped]
    proposed = []
    for p in caption.prompts:  # whichever captioner proposed them: well formed or left out
        fixed = collapse_repeats(p)
        if fixed != p:
            result.dropped.append(DroppedPrompt(p, f"repeated phrase, kept as {fixed!r}", "clean"))
        problem = form_problem(fixed)
        if problem is None:
            proposed.append(fixed)
        else:
            result.dropped.append(DroppedPrompt(fixed, f"not well formed: {problem}", "clean"))
    if mode == "replace" and user_prompts:
        result.dropped += [DroppedPrompt(p, "replaced by user prompts", "replaced") for p in proposed]
        proposed = []

    scores: dict[str, float] = {}
    if scorer is not None:
        texts = proposed + [u.prompt for u in user_prompts]
        scores = dict(zip(texts, scorer.score(frames, texts))) if texts else {}
        proposed = [p for p, _ in order_by_score(proposed, [scores[p] for p in proposed])]
    if proposed and hasattr(scorer, "embed_text"):
        # One track per sound: paraphrases of a more salient (or a user's) prompt go.
        proposed, same = distinct_by_meaning(proposed, scorer, fixed=[u.prompt for u in user_prompts])
        result.dropped += [DroppedPrompt(d.prompt, d.reason, "same") for d in same]

    if proposed and original_audio is not None and sample_rate:
        if is_silent(original_audio):
            result.notes.append("original audio is silent: nothing to leave out")
        else:
            proposed, dropped, notes = drop_already_present(
                proposed, original_audio, int(sample_rate), scorer, taggers,
                presence_threshold, yamnet_threshold, speech_threshold)
            result.dropped += dropped
            result.notes += notes

    users = []
    for u in user_prompts:
        if any(is_near_duplicate(u.prompt, q.prompt) for q in users):
            result.dropped.append(DroppedPrompt(u.prompt, "duplicate user prompt", "clean"))
            continue
        users.append(u)
    keep: list[ScenePrompt] = [ScenePrompt(u.prompt, 0, scores.get(u.prompt), "user", u.origin) for u in users]
    for p in proposed:
        if any(is_near_duplicate(p, q.text) for q in keep):
            result.dropped.append(DroppedPrompt(p, "duplicate of a user prompt", "clean"))
        elif sum(q.source == "captioner" for q in keep) + len(users) >= max(k, len(users)):
            result.dropped.append(DroppedPrompt(p, f"beyond k={k}", "limit"))
        else:
            keep.append(ScenePrompt(p, 0, scores.get(p), "captioner"))
    for i, sp in enumerate(keep, start=1):
        sp.order = i
    result.prompts = keep
    return result


def demo_captioner_note(frames: np.ndarray, captioner: Any) -> dict[str, Any]:
    """For the demo (FoleyWorld) captioner: how far the keyframes are from FoleyWorld and, when
    they are out of its domain, the note a user sees (``models.prompting.domain_check``); empty
    for any other captioner, which is not limited to one synthetic world."""
    classes = list((getattr(captioner, "meta", None) or {}).get("classes") or [])
    if not classes:
        return {}
    check = check_domain(frames)
    out: dict[str, Any] = {"distance": round(check.distance, 3)}
    if check.out_of_domain:
        out["note"] = (f"prompts made by the demo captioner {captioner.name}, which knows only FoleyWorld's "
                       f"{len(classes)} sounds ({', '.join(classes)}); this footage does not look like FoleyWorld "
                       f"(distance {check.distance:.1f} > {DOMAIN_THRESHOLD:g}). Bring a VLM captioner "
                       "(stepfoley models pull --captioner REPO --to DIR, then --captioner DIR) or your own "
                       "prompts (--prompts FILE.csv).")
    return out


def propose_scene_prompts(frames: np.ndarray, captioner: Any, *, k: int = 5, seed: int = 0, spare: int = 2,
                          **kwargs: Any) -> ScenePrompts:
    """The whole stage for one scene (see module docstring); ``kwargs`` go to
    ``finish_scene_prompts``. ``spare`` extra proposals survive drops in step 3."""
    caption = captioner.caption(frames, k=k + max(0, spare), seed=seed)
    result = finish_scene_prompts(caption, frames, k=k, **kwargs)
    result.domain = demo_captioner_note(frames, captioner)
    if not any(p.source == "captioner" for p in result.prompts):
        result.domain.pop("note", None)  # the user's prompts replaced the demo's: nothing to warn of
    if result.domain.get("note"):
        result.notes.append(result.domain["note"])
    return result


# ============================================================================ models, loaded once


@loaded_once(maxsize=4)
def load_prompt_models(captioner_dir: str, scorer_dir: str | None, device: str) -> tuple[Any, Any]:
    """Captioner and scorer loaded once per worker process."""
    return load_captioner(captioner_dir, device=device), (load_scorer(scorer_dir, device=device) if scorer_dir else None)


@loaded_once(maxsize=2)
def load_scene_scorer(scorer_dir: str, device: str) -> Any:
    """The scorer alone (a bundle without a captioner still orders and records user prompts)."""
    return load_scorer(scorer_dir, device=device)


@loaded_once(maxsize=1)
def _real_taggers() -> tuple[Any, ...]:
    return tuple(default_taggers())


def scene_prompts(frames: np.ndarray, captioner_dir: str | Path, scorer_dir: str | Path | None = None, *,
                  k: int = 5, seed: int = 0, original_audio: np.ndarray | None = None,
                  sample_rate: int | None = None, use_taggers: bool = True,
                  user_prompts: Sequence[UserPrompt] = (), mode: PromptMode = "extend",
                  device: str = "cpu") -> ScenePrompts:
    """``propose_scene_prompts`` with models from local directories (cached per process)."""
    captioner, scorer = load_prompt_models(str(captioner_dir), str(scorer_dir) if scorer_dir else None, device)
    # The taggers only judge an audible original soundtrack: silent footage never loads them.
    audible = original_audio is not None and not is_silent(original_audio)
    return propose_scene_prompts(frames, captioner, k=k, seed=seed, scorer=scorer, original_audio=original_audio,
                                 sample_rate=sample_rate, taggers=_real_taggers() if use_taggers and audible else (),
                                 user_prompts=user_prompts, mode=mode)

