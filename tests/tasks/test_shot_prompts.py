"""The prompts stage: user prompt files (CSV, sidecar), merging, dropping what the original
audio already has (real YAMNet on a real rain recording), and the stage on a real VLM."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from models.prompting.captioner import Caption, GenerationSettings, VLMCaptioner
from tasks.shot_prompts import (PromptsFileError, UserPrompt, drop_already_present, finish_scene_prompts,
                           propose_scene_prompts, read_prompts_csv, read_sidecar, sidecar_path,
                           unknown_asset_warnings, user_prompts_for_scene)

SHA = hashlib.sha256(b"clip").hexdigest()
RAIN = Path(__file__).resolve().parents[2] / "models" / "training" / "foleyworld_sounds" / "rain"  # real ESC-10 clips


def _csv(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "prompts.csv"
    p.write_text(body, encoding="utf-8")
    return p


def test_csv_with_header_sha_path_times_and_order(tmp_path: Path) -> None:
    p = _csv(tmp_path, "asset,start,end,prompt,order\n"
                       f"{SHA},,,Rain patters on the roof,2\n"
                       "shots/clip.mp4,0,4.5,Door slams,1\n"
                       "\n# a comment\n"
                       "other.mp4,,,Dog barks,\n")
    rows = read_prompts_csv(p)
    assert [r.prompt for r in rows] == ["Rain patters on the roof", "Door slams", "Dog barks"]
    assert rows[1].start_s == 0.0 and rows[1].end_s == 4.5 and rows[1].order == 1
    assert rows[0].origin == f"{p}:2"
    clip = tmp_path / "shots" / "clip.mp4"
    # Scene 0–5 s: both rows for the clip, by order; scene 6–8 s: the timed row does not apply.
    assert [r.prompt for r in user_prompts_for_scene(rows, clip, SHA, 0.0, 5.0)] == ["Door slams", "Rain patters on the roof"]
    assert [r.prompt for r in user_prompts_for_scene(rows, clip, SHA, 6.0, 8.0)] == ["Rain patters on the roof"]
    assert user_prompts_for_scene(rows, clip, None, 6.0, 8.0) == []  # sha row needs the sha
    warns = unknown_asset_warnings(rows, [(clip, SHA)])
    assert len(warns) == 1 and "other.mp4" in warns[0] and f"{p}:6" in warns[0]


def test_csv_without_header_is_positional(tmp_path: Path) -> None:
    rows = read_prompts_csv(_csv(tmp_path, "a.mp4,Clock ticks\nb.mp4,1,2,Bell rings,3\n"))
    assert rows[0] == UserPrompt("a.mp4", "Clock ticks", origin=rows[0].origin)
    assert (rows[1].start_s, rows[1].end_s, rows[1].order) == (1.0, 2.0, 3)


@pytest.mark.parametrize("body, line, message", [
    ("asset,prompt\na.mp4,\n", 2, "empty prompt"),
    ("asset,start,end,prompt\na.mp4,x,2,Bell rings\n", 2, "start 'x' is not a number"),
    ("asset,start,end,prompt\na.mp4,3,2,Bell rings\n", 2, "end 2 s is not after start 3 s"),
    ("asset,start,end,prompt\na.mp4,-1,2,Bell rings\n", 2, "must be a finite number"),
    ("asset,prompt,order\na.mp4,Bell rings,first\n", 2, "order 'first' is not an integer"),
    ("asset,prompt\na.mp4,Bell rings\nb.mp4,Dog,barks,x\n", 3, "expected 2 columns, got 4"),
    ("a.mp4,Bell rings,3\n", 1, "got 3 columns"),
    ("asset,prompt,volume\na.mp4,Bell rings,3\n", 1, "unknown column(s) volume"),
    ("prompt\nBell rings\n", 1, "no asset column"),
    (",Bell rings\n", 1, "empty asset"),
    ("a.mp4," + " ".join(["very"] * 13) + " loud\n", 1, "at most 12"),
])
def test_malformed_rows_name_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    p = _csv(tmp_path, body)
    with pytest.raises(PromptsFileError) as err:
        read_prompts_csv(p)
    assert str(err.value).startswith(f"{p}:{line}: ") and message in str(err.value)


def test_missing_csv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PromptsFileError, match="prompts file not found"):
        read_prompts_csv(tmp_path / "nope.csv")


def test_sidecar_both_spellings(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    assert sidecar_path(video) is None and read_sidecar(video) == []
    (tmp_path / "clip.prompts.txt").write_text("# sounds\nWind howls\n\n  Sail flaps rhythmically \n")
    assert [u.prompt for u in read_sidecar(video)] == ["Wind howls", "Sail flaps rhythmically"]
    (tmp_path / "clip.mp4.prompts.txt").write_text("Bell rings\n")
    assert [u.prompt for u in read_sidecar(video)] == ["Bell rings"]  # the full name wins
    rows = read_sidecar(video)
    assert rows[0].covers(0, 1e9) and rows[0].matches_asset(video, None)


def _caption(text: str, k: int = 5) -> Caption:
    from models.prompting.prompt_text import clean_prompts_detailed

    c = clean_prompts_detailed(text, k=k)
    return Caption(c.prompts, text, c.dropped, {"backend": "given text"})


FRAMES = np.zeros((16, 32, 32, 3), np.uint8)


def test_merge_extend_and_replace() -> None:
    cap = _caption("1. Dog barks\n2. Clock ticks\n3. A beautiful sunset\n4. Bell rings\n5. Door creaks")
    users = [UserPrompt("a.mp4", "Wind howls", origin="x:1"), UserPrompt("a.mp4", "dog barking", origin="x:2")]
    ext = finish_scene_prompts(cap, FRAMES, k=4, user_prompts=users, mode="extend")
    assert ext.texts == ["Wind howls", "dog barking", "Clock ticks", "Bell rings"]
    assert [p.order for p in ext.prompts] == [1, 2, 3, 4]
    assert [p.source for p in ext.prompts] == ["user", "user", "captioner", "captioner"]
    reasons = {d.text: d.reason for d in ext.dropped}
    assert reasons["A beautiful sunset"] == "not a sound"
    assert reasons["Dog barks"] == "duplicate of a user prompt"
    assert reasons["Door creaks"] == "beyond k=4"
    assert ext.describe()[0] == "1. Wind howls  [user]" and "dropped: Door creaks — beyond k=4" in ext.describe()[-1]
    rep = finish_scene_prompts(cap, FRAMES, k=4, user_prompts=users, mode="replace")
    assert rep.texts == ["Wind howls", "dog barking"]
    assert finish_scene_prompts(cap, FRAMES, k=2, mode="replace").texts == ["Dog barks", "Clock ticks"]


@pytest.fixture(scope="module")
def rain() -> tuple[np.ndarray, int]:
    sf = pytest.importorskip("soundfile")
    files = sorted(RAIN.glob("*.flac"))
    assert files, f"no rain recordings in {RAIN}"
    a, sr = sf.read(files[0], dtype="float32")
    return a, sr


def test_drop_what_the_original_audio_already_has(rain: tuple[np.ndarray, int]) -> None:
    from models.prompting.audio_taggers import SpeechTagger, YamnetTagger

    yam = YamnetTagger()
    if not yam.available:
        pytest.skip(yam.reason)
    audio, sr = rain
    kept, dropped, notes = drop_already_present(["Heavy rain patters", "Dog barks", "Man talks"], audio, sr,
                                                taggers=[yam, SpeechTagger()])
    assert kept == ["Dog barks", "Man talks"]
    assert dropped[0].text == "Heavy rain patters" and "yamnet Rain" in dropped[0].reason
    # Through the stage: the drop is recorded, silent audio drops nothing.
    cap = _caption("Heavy rain patters\nDog barks")
    res = finish_scene_prompts(cap, FRAMES, original_audio=audio, sample_rate=sr, taggers=[yam])
    assert res.texts == ["Dog barks"] and res.dropped[0].stage == "present"
    silent = finish_scene_prompts(cap, FRAMES, original_audio=np.zeros(16000, np.float32), sample_rate=16000,
                                  taggers=[yam])
    assert silent.texts == ["Heavy rain patters", "Dog barks"] and "silent" in silent.notes[0]


def test_stage_on_a_real_tiny_vlm(tmp_path: Path) -> None:
    from tests.models.test_captioner import build_tiny_idefics3

    vlm = VLMCaptioner(build_tiny_idefics3(tmp_path / "vlm"), settings=GenerationSettings(num_frames=2, max_new_tokens=16))
    frames = np.random.default_rng(0).integers(0, 256, (24, 40, 40, 3), dtype=np.uint8)
    res = propose_scene_prompts(frames, vlm, k=3, seed=3, user_prompts=[UserPrompt("a.mp4", "Bell rings")])
    assert res.prompts[0].text == "Bell rings" and res.prompts[0].source == "user"
    assert len(res.prompts) <= 3 and all(p.text.strip() for p in res.prompts)
    assert res.captioner["backend"] == "vlm" and res.captioner["k"] == 5  # k + spare asked of the model
    assert res.to_json()["prompts"][0]["order"] == 1


def test_stage_on_foleyworld_orders_and_leaves_out_what_is_there() -> None:
    """Default captioner + scorer on held-out FoleyWorld scenes with two sources, the first one
    already in the original audio: its prompt is dropped as present, the other is kept."""
    fw = pytest.importorskip("models.training.foleyworld")
    from models.prompting.captioner import FoleyCaptioner
    from models.training.captioner_train import scene_sample_rate
    from models.prompting.scorer import FoleyScorer
    from tests.models.test_captioner import foley_captioner_dir
    from tests.models.test_scorer import foley_scorer_dir

    captioner, scorer = FoleyCaptioner(foley_captioner_dir()), FoleyScorer(foley_scorer_dir())
    present_dropped = present_total = absent_kept = absent_total = 0
    for seed in list(fw.SPLITS["test"])[:12]:
        scene = fw.make_scene(int(seed), 8.0, 2, 64)
        have, missing = scene.sources[0].cls, scene.sources[1].cls
        sr = scene_sample_rate(scene)
        res = propose_scene_prompts(scene.frames, captioner, k=5, seed=int(seed), scorer=scorer,
                                    original_audio=np.asarray(scene.sources[0].audio), sample_rate=sr)
        kept = {fw.class_of_caption(p.text) for p in res.prompts}
        scores = [p.score for p in res.prompts]
        assert scores == sorted(scores, reverse=True)  # salience order, recorded
        dropped = {fw.class_of_caption(d.text) for d in res.dropped if d.stage == "present"}
        proposed = kept | dropped
        if have in proposed:
            present_total += 1
            present_dropped += have in dropped
        if missing in proposed:
            absent_total += 1
            absent_kept += missing in kept
    print(f"present dropped {present_dropped}/{present_total}, absent kept {absent_kept}/{absent_total}")
    assert present_total >= 6 and absent_total >= 6
    assert present_dropped / present_total >= 0.8 and absent_kept / absent_total >= 0.8


def test_silent_footage_never_loads_the_audio_taggers(rain: tuple[np.ndarray, int]) -> None:
    """The taggers only judge an audible original soundtrack: the stage on footage without one
    (or with a silent one) does not load them; an audible one does."""
    from tasks.shot_prompts import _real_taggers, scene_prompts
    from tests.models.test_captioner import foley_captioner_dir

    captioner = foley_captioner_dir()
    _real_taggers.cache_clear()  # type: ignore[attr-defined]
    scene_prompts(FRAMES, captioner, k=2)
    scene_prompts(FRAMES, captioner, k=2, original_audio=np.zeros(16000, np.float32), sample_rate=16000)
    assert _real_taggers.cache_info().currsize == 0  # type: ignore[attr-defined]
    audio, sr = rain
    scene_prompts(FRAMES, captioner, k=2, original_audio=audio, sample_rate=sr)
    assert _real_taggers.cache_info().currsize == 1  # type: ignore[attr-defined]
