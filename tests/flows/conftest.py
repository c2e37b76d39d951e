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


def stack_diagnosis(info: dict, state: Path) -> str:
    """Why a run on a stack went wrong, for an assertion message: the assets' states and
    errors, the failure rows, every task run's name and state (Prefect's view of the windows),
    the leases held, and the tails of the agents', workers' and server's logs. Best effort:
    each part that cannot be read says so instead."""
    import json

    parts: list[str] = []
    data = Path(info["data_dir"])
    url = info.get("db_url") or f"sqlite:///{data / 'stepfoley.db'}"
    try:
        from sqlalchemy import select

        from sql.schema import Asset, Failure
        from sql.session import make_engine, session_scope

        with session_scope(make_engine(url)) as s:
            parts.append(f"assets {s.execute(select(Asset.uri, Asset.status, Asset.error)).all()}")
            parts.append("failures "
                         f"{s.execute(select(Failure.stage, Failure.error_class, Failure.message)).all()}")
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure it explains
        parts.append(f"database unreadable: {exc!r}")
    code = ("from prefect import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    for r in sorted(c.read_task_runs(limit=200), key=lambda r: str(r.created)):\n"
            "        st = r.state\n"
            "        print(r.created, r.name, st.type.value if st else None,"
            " st.timestamp if st else None, (st.message or '')[:200] if st else '')\n")
    try:
        runs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                   "PREFECT_HOME": str(state / "prefect-home")})
        parts.append("task runs\n" + runs.stdout[-4000:] + runs.stderr[-1000:])
    except Exception as exc:  # noqa: BLE001
        parts.append(f"task runs unreadable: {exc!r}")
    leases = data / "leases"
    held = sorted(p for p in leases.rglob("*.json")) if leases.is_dir() else []
    parts.append("leases " + json.dumps({str(p.relative_to(leases)): p.read_text(errors="replace")
                                         for p in held if p.exists()}))
    for p in sorted((state / "logs").glob("*.log")):
        if p.name != "deploy.log":
            parts.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def start_spare_agent(info: dict, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A GPU agent started the way the stack starts its agent-0 (its launch spec in pids.json:
    command and environment), logging to ``log``: the replacement a test brings up after it
    killed an agent. ``env``: the environment the stack was started with."""
    spec = info["launch"]["agent-0"]
    return subprocess.Popen(list(spec["cmd"]), env={**env, **spec["env"]},
                            cwd=Path(__file__).resolve().parents[2], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
