"""What the agent fault runs share: a synthetic library, the stack's command line, and the audit.

Used by benchmarks/bench_agent_faults.py (200 assets, on demand) and by
tests/flows/test_agents_at_scale.py (20 assets, heavy). Nothing here fakes a component: the
library is real video written by ffmpeg, the stack is deployments/stack.py's real processes,
the audit reads the real provenance database and data directory.

The audit of one finished run (``audit``) and its comparison with a clean run (``compare``):

* every asset of the library ``done``, one ``run`` row, one ``run_asset`` row per asset;
* no duplicate rows: per window one current track per order, all version 1 (a redone window
  that regenerated instead of resuming would show as version 2); one mix and one output per
  asset;
* files: no temp file (``*.tmp*``) anywhere in the data directory, no lease left, every stem,
  mix and output file the database names exists with the recorded sha256, and every file
  under ``stems/`` and ``outputs/`` is named by a row (no orphan);
* ``compare``: per asset (by content sha256) the same windows, track seeds and stem sha256,
  mix sha256 and output sha256 as the clean run; ``compare_trees``: the same files, byte for
  byte, under the same paths (stems/, work/*/ mixes, outputs/) as a clean run's data dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from models.generation.bundle import file_sha256 as sha256

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "deployments" / "stack.py"
PROMPTS = ["footsteps on gravel", "a dog barks", "rain falls", "wind", "a bell rings",
           "knocking on a door", "an engine hums", "birdsong", "water splashing", "a clock ticks"]


def build_library(dst: Path, n: int) -> Path:
    """``n`` short videos (1.0–2.0 s, 128×96, 12 fps, Conway's life from seed i, a sine bed on
    every other one): different content, so different sha256; a prompts sidecar per file."""
    from tasks.ffmpeg_bin import run_ffmpeg

    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        out = dst / f"clip{i:04d}.mp4"
        if out.exists():
            continue
        dur = 1.0 + (i % 11) / 10
        tmp = dst / f".clip{i:04d}.tmp.mp4"
        args = ["-y", "-f", "lavfi", "-i",
                f"life=s=128x96:seed={i + 1}:rate=12:mold=10:"
                f"life_color=#{(i * 2654435761) % 0xFFFFFF:06x},format=yuv420p"]
        if i % 2 == 0:
            args += ["-f", "lavfi", "-i", f"sine=frequency={220 + 7 * i}:sample_rate=16000",
                     "-c:a", "aac"]
        args += ["-t", f"{dur:.1f}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "12",
                 str(tmp)]
        run_ffmpeg(args)
        os.replace(tmp, out)
        prompts = [PROMPTS[i % len(PROMPTS)], PROMPTS[(i * 3 + 1) % len(PROMPTS)]]
        (dst / f"{out.name}.prompts.txt").write_text("\n".join(prompts) + "\n")
    return dst


def stack(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """``deployments/stack.py ARGS``; its stdout, or SystemExit with its output."""
    p = subprocess.run([sys.executable, str(STACK), *args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env=env)
    if p.returncode != 0:
        raise SystemExit(f"stack.py {' '.join(args)} failed: {p.stdout[-2000:]}{p.stderr[-4000:]}")
    return p.stdout


def agent_timings(logs: Path) -> list[dict[str, Any]]:
    """Every agent's per-window timing lines (tasks/gpu_agent.py), with the log they came from."""
    out = []
    for log in sorted(logs.glob("agent-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "stepfoley-window-timing " in line:
                rec = json.loads(line.split("stepfoley-window-timing ", 1)[1])
                rec["log"] = log.name
                out.append(rec)
    return out


def snapshot(db_url: str) -> dict[str, Any]:
    """The run's record, keyed by natural keys (asset sha256, shot, window, order)."""
    from sqlalchemy import select

    from sql.schema import Asset, Mix, Output, Run, RunAsset, SceneWindow, Track
    from sql.session import make_engine, session_scope

    engine = make_engine(db_url)
    with session_scope(engine) as s:
        assets = {a.id: a for a in s.execute(select(Asset)).scalars()}
        windows = {w.id: w for w in s.execute(select(SceneWindow)).scalars()}
        tracks = list(s.execute(select(Track)).scalars())
        mixes = list(s.execute(select(Mix)).scalars())
        outputs = list(s.execute(select(Output)).scalars())
        runs = [{"kind": r.kind, "status": r.status, "counts": r.counts}
                for r in s.execute(select(Run)).scalars()]
        run_assets = Counter(ra.asset_id for ra in s.execute(select(RunAsset)).scalars())
        per: dict[str, dict[str, Any]] = {}
        for a in assets.values():
            per[a.sha256] = {"status": a.status, "error": a.error, "tracks": [], "mixes": [],
                             "outputs": [], "windows": [], "run_rows": run_assets.get(a.id, 0),
                             "finished_at": a.finished_at.timestamp() if a.finished_at else None}
        for w in windows.values():
            per[assets[w.asset_id].sha256]["windows"].append((w.shot_index, w.window_index))
        for t in tracks:
            w = windows[t.window_id]
            per[assets[w.asset_id].sha256]["tracks"].append(
                {"key": (w.shot_index, w.window_index, t.order, t.version), "seed": t.seed,
                 "stem_sha256": t.stem_sha256, "stem_uri": t.stem_uri, "status": t.status})
        for m in mixes:
            st = m.stems_json or []
            stems = list(st.values()) if isinstance(st, dict) else list(st)
            per[assets[m.asset_id].sha256]["mixes"].append(
                {"sha256": m.sha256, "uri": m.uri, "stems": stems})
        for o in outputs:
            per[assets[o.asset_id].sha256]["outputs"].append(
                {"sha256": o.sha256, "uri": o.uri, "sidecars": list(o.sidecars or [])})
    engine.dispose()
    return {"assets": per, "runs": runs}


def _named_files(snap: dict[str, Any]) -> dict[Path, str | None]:
    """Every file the database names, with the sha256 it recorded (None: not recorded)."""
    named: dict[Path, str | None] = {}
    for a in snap["assets"].values():
        for t in a["tracks"]:
            named[Path(t["stem_uri"]).resolve()] = t["stem_sha256"]
        for m in a["mixes"]:
            named[Path(m["uri"]).resolve()] = m["sha256"]
            for st in m["stems"]:
                if isinstance(st, dict) and st.get("path"):
                    named[Path(st["path"]).resolve()] = st.get("sha256")
        for o in a["outputs"]:
            named[Path(o["uri"]).resolve()] = o["sha256"]
            for side in o["sidecars"]:
                named.setdefault(Path(side).resolve(), None)
    return named


def audit(snap: dict[str, Any], data_dir: Path, n_assets: int) -> dict[str, Any]:
    """The checks of the module docstring on one run; ``problems`` is empty when all hold."""
    problems: list[str] = []
    assets = snap["assets"]
    if len(assets) != n_assets:
        problems.append(f"{len(assets)} asset rows for {n_assets} files")
    not_done = {k[:12]: (a["status"], a["error"]) for k, a in assets.items() if a["status"] != "done"}
    if not_done:
        problems.append(f"{len(not_done)} assets not done: {dict(list(not_done.items())[:5])}")
    if len(snap["runs"]) != 1:
        problems.append(f"{len(snap['runs'])} run rows: {snap['runs']}")
    bad_links = {k[:12]: a["run_rows"] for k, a in assets.items() if a["run_rows"] != 1}
    if bad_links:
        problems.append(f"run_asset rows != 1 for {len(bad_links)} assets: {dict(list(bad_links.items())[:5])}")
    for k, a in assets.items():
        keys = Counter((t["key"][0], t["key"][1], t["key"][2]) for t in a["tracks"]
                       if t["status"] == "current")
        dup = [key for key, c in keys.items() if c != 1]
        later = [t["key"] for t in a["tracks"] if t["key"][3] != 1]
        if dup or later:
            problems.append(f"asset {k[:12]}: duplicate tracks {dup}, versions > 1 {later}")
        if len(a["mixes"]) != 1 or len(a["outputs"]) != 1:
            problems.append(f"asset {k[:12]}: {len(a['mixes'])} mixes, {len(a['outputs'])} outputs")
    tmp = [str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
           if ".tmp" in p.name and p.is_file()]
    if tmp:
        problems.append(f"{len(tmp)} temp files left: {tmp[:5]}")
    leases = list((data_dir / "leases").glob("*.json")) if (data_dir / "leases").is_dir() else []
    if leases:
        problems.append(f"{len(leases)} leases left: {[p.name for p in leases[:5]]}")
    named = _named_files(snap)
    missing = [str(p) for p in named if not p.is_file()]
    wrong = [str(p) for p, h in named.items() if h and p.is_file() and sha256(p) != h]
    if missing:
        problems.append(f"{len(missing)} files named by rows are missing: {missing[:5]}")
    if wrong:
        problems.append(f"{len(wrong)} files differ from their recorded sha256: {wrong[:5]}")
    orphans = [str(p.relative_to(data_dir))
               for sub in ("stems", "outputs") if (data_dir / sub).is_dir()
               for p in (data_dir / sub).rglob("*") if p.is_file() and p.resolve() not in named]
    if orphans:
        problems.append(f"{len(orphans)} files no row names: {orphans[:5]}")
    return {"assets": len(assets), "tracks": sum(len(a["tracks"]) for a in assets.values()),
            "files_checked": len(named), "problems": problems}


def fingerprint(snap: dict[str, Any]) -> dict[str, Any]:
    """Per asset what must be byte-identical between two runs (paths left out: data dirs differ)."""
    return {k: {"windows": sorted(a["windows"]),
                "tracks": sorted((t["key"], t["seed"], t["stem_sha256"]) for t in a["tracks"]),
                "mix": sorted(m["sha256"] for m in a["mixes"]),
                "outputs": sorted(o["sha256"] for o in a["outputs"])}
            for k, a in snap["assets"].items()}


def compare(snap: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    """Where ``snap`` differs from the clean run ([] when byte-identical)."""
    a, b = fingerprint(snap), fingerprint(clean)
    out = []
    if set(a) != set(b):
        out.append(f"asset sets differ: {len(set(a) ^ set(b))} assets")
    for k in sorted(set(a) & set(b)):
        for part in ("windows", "tracks", "mix", "outputs"):
            if a[k][part] != b[k][part]:
                out.append(f"asset {k[:12]}: {part} differ")
    return out


def tree_hashes(data_dir: Path) -> dict[str, str]:
    """sha256 of every stem, mix and output file by its path in the data dir (the paths are
    deterministic: asset sha256 and names), for comparing two runs without their databases."""
    out = {}
    for sub in ("stems", "outputs", "work"):
        root = data_dir / sub
        for p in sorted(root.rglob("*")) if root.is_dir() else ():
            if p.is_file() and p.suffix in (".flac", ".mkv", ".mov", ".mp4", ".wav"):
                out[str(p.relative_to(data_dir))] = sha256(p)
    return out


def compare_trees(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Files present in one tree only, or with different bytes ([] when identical)."""
    only = sorted(set(a) ^ set(b))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    return [f"only in one run: {k}" for k in only] + [f"bytes differ: {k}" for k in differ]


def wait_for(pred: Any, timeout: float, step: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
