"""Fades, dissolves and flashes on tiny synthetic clips made with ffmpeg at known frames
(25 fps, 128×72), through the same single decoding pass the pipeline uses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tasks.ffmpeg_bin import ffmpeg_path
from tasks.mix import mix_to_files
from tasks.scenes import detect_shots, plan_windows, scan_video, shots_from_cuts
from tasks.transitions import find_transitions

FPS = 25
SIZE = "128x72"
FRAME = 1.0 / FPS


def src(name: str, seconds: float, extra: str = "") -> str:
    return f"{name}=size={SIZE}:rate={FPS}:duration={seconds}" + (f",{extra}" if extra else "")


def make(path: Path, graph: str, inputs: list[str]) -> Path:
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    for i in inputs:
        args += ["-f", "lavfi", "-i", i]
    subprocess.run([*args, "-filter_complex", graph + ",format=yuv420p[v]", "-map", "[v]",
                    "-c:v", "libx264", "-preset", "veryfast", str(path)], check=True)
    return path


def transitions(path: Path):  # type: ignore[no-untyped-def]
    scan = scan_video(path)
    return scan, find_transitions(scan.series, scan.cuts, scan.duration_s, scan.fps)


# ------------------------------------------------------------------ fades
def test_fade_through_black_with_a_hold(tmp_path: Path) -> None:
    # A fades out over 2.0–3.0 s, 1 s of black (frames 75–99), B fades in over 4.0–5.0 s.
    path = make(tmp_path / "f.mp4", "[0:v]fade=t=out:st=2:d=1[a];[2:v]fade=t=in:st=0:d=1[b];"
                "[a][1:v][b]concat=n=3:v=1:a=0",
                [src("testsrc2", 3), f"color=c=black:size={SIZE}:rate={FPS}:duration=1", src("smptebars", 3)])
    scan, tr = transitions(path)
    assert len(scan.cuts) >= 1  # PySceneDetect alone splits here (and fires inside the fade-in)
    assert [b.kind for b in tr.boundaries] == ["fade"]
    b = tr.boundaries[0]
    assert abs(b.time_s - 3.5) <= FRAME + 1e-6  # the middle of the black hold
    assert 2.85 <= b.before_s <= 3.0 + 1e-6 and 4.0 <= b.after_s <= 4.15  # sound stops/starts at the black
    assert 0.7 <= b.before_ramp_s <= 1.0 and 0.7 <= b.after_ramp_s <= 1.0
    shots = detect_shots(path)
    assert [(s.start_kind, s.end_kind) for s in shots] == [("start", "fade"), ("fade", "end")]
    assert abs(shots[0].end_s - 3.5) <= FRAME + 1e-6
    for w in plan_windows(shots):  # no window over the black, each knows its shot's fade
        assert w.end_s <= 3.0 + 1e-6 or w.start_s >= 4.0 - 1e-6, w
    ws = plan_windows(shots)
    assert ws[0].end_transition == "fade" and ws[-1].start_transition == "fade"


def test_fade_to_white_boundary_at_the_brightest_frame(tmp_path: Path) -> None:
    path = make(tmp_path / "w.mp4", "[0:v]fade=t=out:st=2:d=1:color=white[a];"
                "[1:v]fade=t=in:st=0:d=1:color=white[b];[a][b]concat=n=2:v=1:a=0",
                [src("testsrc2", 3), src("rgbtestsrc", 3)])
    _, tr = transitions(path)
    assert [b.kind for b in tr.boundaries] == ["fade"]
    assert abs(tr.boundaries[0].time_s - 3.0) <= FRAME + 1e-6


def test_fade_in_at_the_start_and_out_at_the_end_is_one_shot(tmp_path: Path) -> None:
    path = make(tmp_path / "e.mp4", "[0:v]fade=t=in:st=0:d=1,fade=t=out:st=3:d=1", [src("testsrc2", 4)])
    shots = detect_shots(path)
    assert len(shots) == 1 and (shots[0].start_kind, shots[0].end_kind) == ("fade", "fade")
    assert shots[0].start_s == 0.0 and abs(shots[0].end_s - 4.0) < 1e-6
    # the black head and tail are no scene and get no window
    assert 0.0 < shots[0].sound_start_s <= 0.2 and 3.8 <= shots[0].sound_end_s < 4.0
    assert 0.7 <= shots[0].start_ramp_s <= 1.0 and 0.7 <= shots[0].end_ramp_s <= 1.0


# ------------------------------------------------------------------ dissolves
@pytest.mark.parametrize("grain", [False, True])
def test_dissolve_boundary_at_the_midpoint(tmp_path: Path, grain: bool) -> None:
    # xfade: the dissolve runs 2.0–3.0 s, its midpoint at 2.5 s
    post = ",noise=alls=20:allf=t+u,eq=brightness='0.03*sin(n*2.3)':eval=frame" if grain else ""
    path = make(tmp_path / "d.mp4", "[0:v][1:v]xfade=transition=fade:duration=1:offset=2" + post,
                [src("testsrc2", 3), src("smptebars", 3)])
    scan, tr = transitions(path)
    assert [b.kind for b in tr.boundaries] == ["dissolve"], (scan.cuts, tr.boundaries)
    b = tr.boundaries[0]
    assert abs(b.time_s - 2.5) <= FRAME + 1e-6
    assert b.after_s < 2.3 and b.before_s > 2.7  # the two shots' sound overlaps over the dissolve
    shots = detect_shots(path)
    ws = plan_windows(shots)
    assert [(s.start_kind, s.end_kind) for s in shots] == [("start", "dissolve"), ("dissolve", "end")]
    assert ws[0].end_s > ws[1].start_s  # crossfaded at mix time


# ------------------------------------------------------------------ wipes and irises
@pytest.mark.parametrize("transition, seconds", [("wipeleft", 1.0), ("wipeleft", 0.4), ("wipeup", 1.0),
                                                 ("radial", 1.0)])
def test_wipe_boundary_where_half_the_picture_is_the_new_shot(tmp_path: Path, transition: str,
                                                             seconds: float) -> None:
    # xfade: the wipe runs from 2.0 s for `seconds`; half of the picture is B at its midpoint
    path = make(tmp_path / "w.mp4", f"[0:v][1:v]xfade=transition={transition}:duration={seconds}:offset=2",
                [src("testsrc2", 3), src("smptebars", 3)])
    scan, tr = transitions(path)
    assert [b.kind for b in tr.boundaries] == ["wipe"], tr.boundaries
    b = tr.boundaries[0]
    assert abs(b.time_s - (2.0 + seconds / 2)) <= 3 * FRAME + 1e-6
    # both sounds overlap over the wipe, as over a dissolve
    assert 2.0 - FRAME <= b.after_s <= b.time_s <= b.before_s <= 2.0 + seconds + FRAME
    shots = detect_shots(path)
    assert [(s.start_kind, s.end_kind) for s in shots] == [("start", "wipe"), ("wipe", "end")]


def test_irises_split_the_shot_where_the_picture_changes(tmp_path: Path) -> None:
    # iris out to black and back in (black 3.0–3.5 s): a fade at the middle of the black
    path = make(tmp_path / "i.mp4", "[0:v][1:v]xfade=transition=circleclose:duration=1:offset=2[x];"
                "[x][2:v]xfade=transition=circleopen:duration=1:offset=3.5",
                [src("testsrc2", 3), f"color=c=black:size={SIZE}:rate={FPS}:duration=2.5", src("smptebars", 3)])
    _, tr = transitions(path)
    assert [b.kind for b in tr.boundaries] == ["fade"] and abs(tr.boundaries[0].time_s - 3.25) <= 2 * FRAME
    # iris straight from one shot to the next (2.0–3.0 s): one gradual boundary near 2.5 s
    path = make(tmp_path / "j.mp4", "[0:v][1:v]xfade=transition=circleclose:duration=1:offset=2",
                [src("testsrc2", 3), src("smptebars", 3)])
    _, tr = transitions(path)
    assert len(tr.boundaries) == 1 and tr.boundaries[0].kind in ("dissolve", "wipe")
    assert abs(tr.boundaries[0].time_s - 2.5) <= 3 * FRAME


# ------------------------------------------------------------------ not boundaries
def test_flashes_are_not_boundaries(tmp_path: Path) -> None:
    # two pure white frames (50, 51) and one frame three times as bright (75), same picture after
    path = make(tmp_path / "x.mp4", "[0:v]lutyuv=y=255:u=128:v=128:enable='between(n,50,51)',"
                "lutrgb=r='min(val*3,255)':g='min(val*3,255)':b='min(val*3,255)':enable='eq(n,75)'",
                [src("testsrc2", 4)])
    scan, tr = transitions(path)
    assert scan.cuts  # AdaptiveDetector alone cuts at the flash
    assert tr.boundaries == []
    assert len(detect_shots(path)) == 1


@pytest.mark.parametrize("look", ["archive", "pan", "zoom"])
def test_grain_flicker_scratches_and_camera_moves_are_not_boundaries(tmp_path: Path, look: str) -> None:
    graph, inputs = {
        "archive": ("[0:v]noise=alls=30:allf=t+u,eq=brightness='0.05*sin(n*2.3)':eval=frame,"
                    "drawbox=x='mod(t*925,120)':y=0:w=2:h=ih:color=white@0.8:t=fill", [src("testsrc2", 4)]),
        "pan": ("[0:v]crop=128:72:x='min(t*100,192)':y=0", [f"testsrc2=size=320x72:rate={FPS}:duration=4"]),
        "zoom": ("[0:v]scale=512:288,zoompan=z='min(1+0.01*on,1.8)':d=1:s=128x72:fps=25",
                 [src("testsrc2", 4)]),
    }[look]
    path = make(tmp_path / f"{look}.mp4", graph, inputs)
    _, tr = transitions(path)
    assert tr.boundaries == [], tr.boundaries
    assert len(detect_shots(path)) == 1


# ------------------------------------------------------------------ hard cuts unchanged
def test_hard_cuts_give_the_shots_they_gave_before(tmp_path: Path) -> None:
    args: list[str] = []
    for i, (name, d) in enumerate((("testsrc2", 2.0), ("smptebars", 1.5), ("rgbtestsrc", 2.5))):
        args += [f"{name}=size={SIZE}:rate={FPS}:duration={d}"]
    path = make(tmp_path / "c.mp4", "[0:v][1:v][2:v]concat=n=3:v=1:a=0", args)
    scan = scan_video(path)
    shots = detect_shots(path)
    assert [(s.start_s, s.end_s) for s in shots] == \
        [(s.start_s, s.end_s) for s in shots_from_cuts(scan.cuts, scan.duration_s)]
    assert [s.start_kind for s in shots] == ["start", "cut", "cut"]


# ------------------------------------------------------------------ the mix follows the picture
def _noise(path: Path, seconds: float, seed: int, sr: int = 16000) -> str:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
    return str(path)


def _envelope(x: np.ndarray, sr: int) -> np.ndarray:
    return np.sqrt(np.convolve(x ** 2, np.ones(sr // 10) / (sr // 10), mode="same"))


def test_mix_fades_with_the_picture_and_crossfades_a_dissolve(tmp_path: Path) -> None:
    fade = [
        {"shot_index": 0, "window_index": 0, "start_s": 0.0, "end_s": 3.0, "shot_start_s": 0.0,
         "end_transition": "fade", "end_transition_s": 1.0,
         "tracks": [{"id": 1, "order": 1, "prompt_text": "a", "stem_uri": _noise(tmp_path / "a.wav", 3, 1)}]},
        {"shot_index": 1, "window_index": 0, "start_s": 4.0, "end_s": 7.0, "shot_start_s": 3.5,
         "start_transition": "fade", "start_transition_s": 1.0,
         "tracks": [{"id": 2, "order": 1, "prompt_text": "b", "stem_uri": _noise(tmp_path / "b.wav", 3, 2)}]},
    ]
    res = mix_to_files(fade, tmp_path / "fade", duration_s=7.0)
    x, sr = sf.read(res.stems[0]["path"])
    env = _envelope(x, sr)
    full = env[int(1.0 * sr):int(1.8 * sr)].mean()
    assert env[int(2.5 * sr)] < 0.85 * full and env[int(2.95 * sr)] < 0.15 * full  # fading out
    assert env[int(3.2 * sr):int(3.8 * sr)].max() < 1e-6  # nothing over the black
    assert env[int(4.05 * sr)] < 0.2 * full and env[int(4.5 * sr)] < 0.85 * full  # fading in
    dissolve = [
        {"shot_index": 0, "window_index": 0, "start_s": 0.0, "end_s": 3.0, "shot_start_s": 0.0,
         "end_transition": "dissolve", "end_transition_s": 1.0,
         "tracks": [{"id": 1, "order": 1, "prompt_text": "a", "stem_uri": _noise(tmp_path / "c.wav", 3, 3)}]},
        {"shot_index": 1, "window_index": 0, "start_s": 2.0, "end_s": 5.0, "shot_start_s": 2.5,
         "start_transition": "dissolve", "start_transition_s": 1.0,
         "tracks": [{"id": 2, "order": 1, "prompt_text": "b", "stem_uri": _noise(tmp_path / "d.wav", 3, 4)}]},
    ]
    res = mix_to_files(dissolve, tmp_path / "dis", duration_s=5.0)
    x, sr = sf.read(res.stems[0]["path"])
    env = _envelope(x, sr)[int(0.5 * sr):int(4.5 * sr)]
    # equal-power crossfade over the dissolve: no dip, no bump, no doubled level
    assert 20 * np.log10(env.max() / env.min()) < 2.0
