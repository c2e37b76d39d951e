"""How well does the out-of-domain check (models/prompting/domain_check.py) separate real-ish
footage from held-out FoleyWorld scenes?

Both go through the path the prompt stage uses: an h264 file decoded by ffmpeg at 4 fps, 64 px.
FoleyWorld: training-split seeds calibrate μ, Σ (printed, to paste into domain_check.py);
test-split seeds are the held-out negatives. Real-ish: ffmpeg's synthetic sources (testsrc2,
mandelbrot, cellauto, life, bars, gradients, zoneplate, ...) and a real photograph (matplotlib's
grace_hopper.jpg) panned, zoomed and darkened.

    .venv/bin/python benchmarks/ood_signal.py [--train 80] [--test 60]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import matplotlib
from models.prompting.domain_check import THRESHOLD, keyframe_features
from models.training.foleyworld import make_scene
from tasks.ffmpeg_bin import ffmpeg_path

HOPPER = str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
REAL: dict[str, tuple[list[str], str]] = {
    "testsrc2": (["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"], ""),
    "testsrc": (["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"], ""),
    "mandelbrot": (["-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=25"], ""),
    "mandelbrot-hue": (["-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=25:start_scale=0.5"], "hue=h=t*40"),
    "cellauto": (["-f", "lavfi", "-i", "cellauto=size=320x240:rate=25"], ""),
    "cellauto-rule30": (["-f", "lavfi", "-i", "cellauto=size=320x240:rate=25:rule=30:random_fill_ratio=0.3"], "negate"),
    "life": (["-f", "lavfi", "-i", "life=size=320x240:rate=25:mold=10:ratio=0.5"], ""),
    "smptehdbars": (["-f", "lavfi", "-i", "smptehdbars=size=320x240:rate=25"], ""),
    "rgbtestsrc": (["-f", "lavfi", "-i", "rgbtestsrc=size=320x240:rate=25"], ""),
    "gradients": (["-f", "lavfi", "-i", "gradients=size=320x240:rate=25:speed=0.05"], ""),
    "zoneplate": (["-f", "lavfi", "-i", "zoneplate=size=320x240:rate=25:kt2=10"], ""),
    "grey-noise": (["-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=25"], "noise=alls=40:allf=t"),
    "flat-dark": (["-f", "lavfi", "-i", "color=c=0x203040:size=320x240:rate=25"], ""),
    "photo-pan": (["-loop", "1", "-i", HOPPER], "scale=640:-1,crop=320:240:'t*30':'t*20'"),
    "photo-zoom": (["-loop", "1", "-i", HOPPER], "zoompan=z='1+0.005*on':d=200:s=320x240:fps=25"),
    "photo-dark": (["-loop", "1", "-i", HOPPER], "scale=320:240,eq=brightness=-0.3"),
}


def decode(args: list[str], vf: str = "") -> np.ndarray:
    chain = (vf + "," if vf else "") + "fps=4,scale=64:64:flags=lanczos"
    raw = subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", *args, "-t", "8", "-vf", chain,
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 64, 64, 3)


def foleyworld(seed: int, tmp: Path) -> np.ndarray:
    scene = make_scene(seed, duration=8.0, size=128)
    path = tmp / f"fw{seed}.mp4"
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", "128x128", "-r", "25", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
                   input=scene.frames.tobytes(), check=True)
    return decode(["-i", str(path)])


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    return float(((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=80)
    ap.add_argument("--test", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = np.stack([keyframe_features(foleyworld(s, Path(tmp))) for s in range(args.train)])
        test = np.stack([keyframe_features(foleyworld(s, Path(tmp))) for s in range(2_000_000, 2_000_000 + args.test)])
    real = {name: keyframe_features(decode(a, vf)) for name, (a, vf) in REAL.items()}
    mu, cov = train.mean(0), np.cov(train.T)
    print("FOLEYWORLD_MEAN =", np.round(mu, 4).tolist())
    print("FOLEYWORLD_COV =", np.round(cov, 6).tolist())

    def dist(f: np.ndarray) -> float:
        d = f - mu
        return float(np.sqrt(d @ np.linalg.solve(cov, d)))

    d_test = np.array([dist(f) for f in test])
    d_real = np.array([dist(f) for f in real.values()])
    print(f"AUC (real vs held-out FoleyWorld, Mahalanobis distance): {auc(d_real, d_test):.3f}")
    print(f"at THRESHOLD={THRESHOLD}: real flagged {int((d_real > THRESHOLD).sum())}/{len(d_real)}, "
          f"FoleyWorld flagged {int((d_test > THRESHOLD).sum())}/{len(d_test)}")
    print(f"FoleyWorld test distance: median {np.median(d_test):.2f}, max {d_test.max():.2f}")
    for name, d in zip(real, d_real):
        print(f"  {name:16s} d = {d:7.2f}")


if __name__ == "__main__":
    main()
