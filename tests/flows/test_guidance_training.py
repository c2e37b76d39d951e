"""u_ψ trained on real footage (#17 §4): extract → train → the held-out probe loss falls and
the branch reports how much it uses x̃; the trained branch loads and `--mode nag` runs; two
gloo processes equal one process drawing both micro-batches; kill -9 and resume equals an
uninterrupted run exactly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.flows.conftest import stepfoley
from tests.flows.test_extract_features import SOUNDS, _clip

pytestmark = pytest.mark.heavy

TRAIN = """
import sys, json
from pathlib import Path
from models.training.guidance import train_guidance_on
from models.training.guidance_sources import ShardPairs
from models.training.distributed import rank_and_world, finish
bundle, feats, steps, accum, ckpt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rank, world = rank_and_world()
r = train_guidance_on(Path(bundle), ShardPairs(feats), steps=steps, batch=2,
                      grad_accum=accum, ckpt_every=ckpt, threads=1, quiet=True, bf16=False)
finish()
print(json.dumps({k: r[k] for k in ("probe_loss_before", "probe_loss_after", "resumed_from")}))
"""


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> Path:
    root = tmp_path_factory.mktemp("guidance")
    lib = root / "lib"
    lib.mkdir()
    for name, secs in (("dog", 12.5), ("rain", 12.5), ("clock", 9.0), ("footsteps", 9.0), ("bell", 9.0)):
        src = next((SOUNDS / name).glob("*.flac"), None) or next((SOUNDS / "fire").glob("*.flac"))
        _clip(lib / f"{name}.mp4", secs, src)
    out = root / "feats"
    proc = stepfoley(["--data-dir", str(root / "data"), "extract-features", str(lib), "--out", str(out),
                      "--bundle", str(tiny_bundle), "--shard-size", "3"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _bundle(tiny_bundle: Path, dst: Path) -> Path:
    shutil.copytree(tiny_bundle, dst)
    return dst


def _train(bundle: Path, feats: Path, steps: int, accum: int = 1, ckpt: int = 100,
           env: dict[str, str] | None = None, **kw) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(bundle), str(feats), str(steps), str(accum), str(ckpt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kw)


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    return load_file(str(bundle / "controlnet" / "diffusion_pytorch_model.safetensors"))


def test_train_on_real_footage_then_nag_runs(tmp_path: Path, tiny_bundle: Path, features: Path) -> None:
    bundle = _bundle(tiny_bundle, tmp_path / "b")
    proc = stepfoley(["train", "guidance", "--out", str(bundle), "--features", str(features),
                      "--steps", "40", "--batch", "4", "--threads", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((bundle / "controlnet" / "training.json").read_text())
    summary = record["summary"]
    assert summary["probe_loss_after"] < summary["probe_loss_before"]
    assert record["data"]["kind"] == "shards" and record["data"]["listing_sha256"]
    assert record["base_weights_sha256"] and record["steps"] == 40
    dep = summary["xtilde_dependence"]
    assert set(dep) == {"t=0.2", "t=0.5", "t=0.8"} and all("gain_silent" in r for r in dep.values())
    lib = tmp_path / "lib"
    lib.mkdir()
    _clip(lib / "walk.mp4", 3.0)
    (lib / "walk.mp4.prompts.txt").write_text("a dog barks\nrain falls\n")
    run = stepfoley(["--data-dir", str(tmp_path / "data"), "run", str(lib), "--bundle", str(bundle),
                     "--mode", "nag", "--steps", "2", "--tracks", "2"])
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def test_features_of_other_weights_are_refused(tmp_path: Path, features: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"
    other = _bundle(shipped, tmp_path / "other")
    proc = stepfoley(["train", "guidance", "--out", str(other), "--features", str(features), "--steps", "2"])
    assert proc.returncode != 0 and "extract them again" in proc.stdout + proc.stderr
    assert json.loads((other / "controlnet" / "config.json").read_text())  # untouched


def test_two_gloo_processes_equal_one_process_with_both_micro_batches(tmp_path: Path, tiny_bundle: Path,
                                                                     features: Path) -> None:
    one = _bundle(tiny_bundle, tmp_path / "one")
    p = _train(one, features, steps=4, accum=2)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    two = _bundle(tiny_bundle, tmp_path / "two")
    store = tmp_path / "rendezvous"
    env = {"WORLD_SIZE": "2", "STEPFOLEY_DIST_INIT": f"file://{store}", "GLOO_SOCKET_IFNAME": "lo"}
    procs = [_train(two, features, steps=4, accum=1, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(2)]
    for q in procs:
        _, err = q.communicate(timeout=600)
        assert q.returncode == 0, err[-3000:]
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - load_file(str(tiny_bundle / "controlnet" / "diffusion_pytorch_model.safetensors"))[k]).abs().max())
                for k in a)
    # The same samples and noise; only the order of the gradient sums differs.
    assert diff < 1e-5 < moved


def test_kill_9_then_resume_equals_uninterrupted(tmp_path: Path, tiny_bundle: Path, features: Path) -> None:
    full = _bundle(tiny_bundle, tmp_path / "full")
    p = _train(full, features, steps=12, ckpt=3)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    cut = _bundle(tiny_bundle, tmp_path / "cut")
    state = cut / "_runs" / "guidance" / "state.pt"
    p = _train(cut, features, steps=12, ckpt=3)
    deadline = time.monotonic() + 600
    while not state.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert state.exists(), "killed before the first checkpoint"
    assert torch.load(state, weights_only=False)["step"] < 12
    p = _train(cut, features, steps=12, ckpt=3)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["resumed_from"] > 0
    a, b = _weights(full), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
