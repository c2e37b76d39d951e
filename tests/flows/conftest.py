"""Fixtures for flow tests: a tiny bundle (real components, random weights), a small
FoleyWorld library written with ffmpeg, and a runner for the real `stepfoley` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with the shipped layout and random weights: fast, deterministic."""
    import torch

    from models.demo_family.codec import MelCodec
    from models.generation.controlnet import AudioControlNet
    from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer
    from models.generation.mmaudio import MMAudio
    from models.generation.pipeline import StepByStepV2APipeline
    from tests.models.helpers import randomize

    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("tiny"), 1, gain=0.7)
    cn = randomize(AudioControlNet.from_transformer(net), 2, gain=0.7)
    tok = build_tokenizer(["a dog barks", "rain falls", "footsteps", "wind", "a bell rings"],
                          max_length=16)
    pipe = StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MelCodec(griffin_lim_iters=4),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(),
                                 tokenizer=tok)
    out = tmp_path_factory.mktemp("bundle") / "tiny-random"
    pipe.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def demo_footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tasks.demo_library import build_demo_library

    out = tmp_path_factory.mktemp("demo")
    build_demo_library(out)
    return out


def make_library(src: Path, dst: Path, names: list[str], prompts: dict[str, list[str]]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
        (dst / f"{n}.prompts.txt").write_text("\n".join(prompts.get(n, ["a dog barks", "rain falls"])) + "\n")
    return dst


def stepfoley(args: list[str], env: dict[str, str] | None = None, timeout: float = 600,
              **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout, **kw)


def fa_reference(tmp_path: Path, n_assets: int, gen: list[str]) -> tuple[Path, dict]:
    """A library of ``n_assets`` short assets (benchmarks/fault_audit.py) and the snapshot of its
    clean embedded run: the reference a faulted distributed run must reproduce byte for byte."""
    # Imported on use: the flow tests that do not need the fault audit stay light to collect.
    from benchmarks import fault_audit as fa
    from tasks.config import DEFAULT_BUNDLE

    lib = fa.build_library(tmp_path / "lib", n_assets)
    embedded = tmp_path / "embedded"
    proc = stepfoley(["--data-dir", str(embedded), "run", str(lib), "--bundle", str(DEFAULT_BUNDLE),
                      *gen], timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    clean = fa.snapshot(f"sqlite:///{embedded / 'stepfoley.db'}")
    assert not fa.audit(clean, embedded, n_assets)["problems"]  # the reference itself is sound
    return lib, clean


def start_backfill(info: dict, state: Path, params: dict) -> str:
    """Start `backfill-library/on-demand` on a running stack (deployments/stack.py's pids.json
    ``info``) without waiting for it, as an operator would; returns the flow run's id."""
    import json

    code = ("import json,sys\nfrom prefect.deployments import run_deployment\n"
            "print('FLOW_RUN', run_deployment('backfill-library/on-demand',"
            " parameters=json.loads(sys.argv[1]), timeout=0).id)\n")
    start = subprocess.run([sys.executable, "-c", code, json.dumps(params)], capture_output=True, text=True,
                           timeout=300, cwd=Path(__file__).resolve().parents[2],
                           env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                "PREFECT_HOME": str(state / "prefect-home")})
    assert "FLOW_RUN" in start.stdout, start.stdout + start.stderr
    return start.stdout.split("FLOW_RUN", 1)[1].split()[0]
