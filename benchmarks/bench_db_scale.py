"""The provenance database and the dashboard at archive scale (issue #18 §5, on demand).

    .venv/bin/python benchmarks/bench_db_scale.py [--assets 100000] [--reps 7] [--sqlite]
        [--json FILE] [--plans FILE]

Starts a throwaway PostgreSQL on 127.0.0.1 (the tests' own helper, tests/pg.py), migrates it
to the head, fills it with synthetic rows in bulk (INSERT … SELECT over a numbers table: no
Python loop) shaped like a nightly-processed archive:

  asset        N (90 % done, 3 % failed, 5 % pending, 2 % running), one path each, finished
               over the last year
  scene_window 5 per asset that got past planning (3 shots: 2 + 2 + 1 windows)
  prompt       2 per window (the second of every 7th window dropped)
  track        2 current per window, and on every 5th window a superseded take of track 1
               (≈ 2.2 per window: ≥ 1,000,000 at N = 100,000)
  mix, output  one per done asset
  run          one nightly run per day, run_asset linking each asset to its night
  failure      one per failed asset, one per 50th done asset (a retried generate), naming
               the window and track

then times, warm (median of ``--reps`` after one untimed call), every dashboard page and JSON
endpoint through the real app (FastAPI's TestClient over create_app), `stepfoley status` and
`status --json` in-process through the CLI entry point, a SELECT of each view as the dashboard
and a user read it, and the claim (sql/claims.py) on a pending asset with 1,000 and with N
pending assets, printing EXPLAIN ANALYZE of the claim and of each view. ``--sqlite`` runs the
same on an SQLite file too. Absolute numbers depend on the machine and its load (printed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from sql import migrate  # noqa: E402
from sql import rollups  # noqa: E402
from sql.claims import claim_asset, release_claim  # noqa: E402
from sql.session import make_engine, session_scope  # noqa: E402

# Per-dialect pieces of the otherwise shared fill SQL.
DIALECT = {
    "postgresql": {
        "numbers": "INSERT INTO nums (i) SELECT g FROM generate_series(1, :n) AS g",
        "sha": "lpad(to_hex({x}), 64, '0')",
        "ts": "(TIMESTAMPTZ '2025-12-05 00:00:00+00' + ({m}) * INTERVAL '1 minute')",
        "temp": "CREATE TEMP TABLE nums (i integer PRIMARY KEY)",
        "few": "CREATE TEMP TABLE few AS SELECT i FROM nums WHERE i <= 5",
    },
    "sqlite": {
        "numbers": "INSERT INTO nums (i) WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                   "FROM g WHERE i < :n) SELECT i FROM g",
        "sha": "printf('%064x', {x})",
        "ts": "strftime('%Y-%m-%d %H:%M:%f', '2025-12-05 00:00:00', '+' || ({m}) || ' minutes')",
        "temp": "CREATE TEMP TABLE nums (i integer PRIMARY KEY)",
        "few": "CREATE TEMP TABLE few AS SELECT i FROM nums WHERE i <= 5",
    },
}
MINUTES_PER_ASSET = 5  # N = 100,000 spreads the archive over ~347 days


def fill(engine: Engine, n: int) -> dict[str, int]:
    """The synthetic archive (module docstring); returns the row count of each table."""
    d = DIALECT[engine.dialect.name]
    ts = d["ts"].format
    status = ("CASE WHEN n.i % 100 < 90 THEN 'done' WHEN n.i % 100 < 93 THEN 'failed' "
              "WHEN n.i % 100 < 98 THEN 'pending' ELSE 'running' END")
    created = ts(m=f"n.i * {MINUTES_PER_ASSET}")
    stmts = [
        d["temp"], d["numbers"], d["few"],
        f"""INSERT INTO asset (id, sha256, uri, library, size_bytes, container, duration_s, fps, vfr,
                width, height, rotation, video_codec, has_audio, status, error, created_at, updated_at,
                started_at, finished_at)
            SELECT n.i, {d['sha'].format(x='n.i')}, '/archive/lib' || (n.i % 10) || '/clip' || n.i || '.mp4',
                '/archive/lib' || (n.i % 10), 10000000 + n.i, 'mov,mp4', 20.0 + n.i % 40, 25.0, FALSE,
                1920, 1080, 0, 'h264', n.i % 3 = 0, {status},
                CASE WHEN n.i % 100 BETWEEN 90 AND 92 THEN 'MediaError: no video stream' END,
                {created}, {ts(m=f'n.i * {MINUTES_PER_ASSET} + 30')},
                CASE WHEN n.i % 100 < 93 OR n.i % 100 >= 98 THEN {ts(m=f'n.i * {MINUTES_PER_ASSET} + 1')} END,
                CASE WHEN n.i % 100 < 93 THEN {ts(m=f'n.i * {MINUTES_PER_ASSET} + 30')} END
            FROM nums n""",
        """INSERT INTO asset_path (id, asset_id, uri, last_seen_at)
            SELECT id, id, uri, updated_at FROM asset""",
        # windows w = 0..4 of every asset past planning: shots 0,0,1,1,2
        """INSERT INTO scene_window (id, asset_id, shot_index, window_index, start_s, end_s, shot_start_s,
                shot_end_s, start_transition, end_transition, created_at)
            SELECT (a.id - 1) * 5 + w.i, a.id, (w.i - 1) / 2, (w.i - 1) % 2, (w.i - 1) * 6.0,
                (w.i - 1) * 6.0 + 8.0, ((w.i - 1) / 2) * 12.0, ((w.i - 1) / 2) * 12.0 + 14.0,
                CASE WHEN w.i = 1 THEN 'start' ELSE 'cut' END, 'cut', a.created_at
            FROM asset a JOIN few w ON w.i <= 5 WHERE a.status != 'pending'""",
        """INSERT INTO prompt (id, window_id, "order", text, source, score, dropped, drop_reason,
                captioner_id, created_at)
            SELECT (s.id - 1) * 2 + k.i, s.id, k.i, 'sound ' || k.i || ' of shot ' || s.shot_index,
                'captioner', 0.5, k.i = 2 AND s.id % 7 = 0,
                CASE WHEN k.i = 2 AND s.id % 7 = 0 THEN 'same sound' END, 'foleyworld:tiny', s.created_at
            FROM scene_window s JOIN few k ON k.i <= 2""",
        f"""INSERT INTO track (id, window_id, "order", version, prompt_id, prompt_text, seed, alpha, beta,
                steps, mode, bundle_id, weights_sha256, config_hash, stem_uri, stem_sha256,
                loudness_lufs, gain_db, started_at, finished_at, device, wall_s, status)
            SELECT (s.id - 1) * 3 + k.i, s.id, CASE WHEN k.i = 3 THEN 1 ELSE k.i END,
                CASE WHEN k.i = 3 THEN 2 ELSE 1 END, (s.id - 1) * 2 + (CASE WHEN k.i = 3 THEN 1 ELSE k.i END),
                'sound', s.id * 3 + k.i, 4.5, 1.5, 25, 'nag', 'foleyworld-tiny@0123456789ab',
                {d['sha'].format(x='7')}, 'c0ffee', '/data/stems/' || s.asset_id || '/w' || s.id || '_t' || k.i || '.flac',
                {d['sha'].format(x='s.id * 3 + k.i')}, -20.0, 0.0,
                {ts(m=f'a.id * {MINUTES_PER_ASSET} + 2')}, {ts(m=f'a.id * {MINUTES_PER_ASSET} + 3')},
                CASE WHEN a.id % 2 = 0 THEN 'cuda:0@gpu1' ELSE 'cuda:0@gpu2' END, 0.5 + (s.id % 10) * 0.1,
                CASE WHEN k.i = 1 AND s.id % 5 = 0 THEN 'superseded' ELSE 'current' END
            FROM scene_window s JOIN asset a ON a.id = s.asset_id
            JOIN few k ON k.i <= 2 OR (k.i = 3 AND s.id % 5 = 0)""",
        """INSERT INTO mix (id, asset_id, config_hash, uri, sha256, loudness_lufs, true_peak_dbtp,
                sample_rate, created_at)
            SELECT id, id, 'c0ffee', '/data/work/' || id || '/mix.wav', sha256, -23.0, -1.0, 44100, finished_at
            FROM asset WHERE status = 'done'""",
        """INSERT INTO output (id, asset_id, mix_id, uri, sha256, container, video_codec, streams, created_at)
            SELECT id, id, id, '/data/outputs/clip' || id || '.mkv', sha256, 'mkv', 'h264', 4, finished_at
            FROM asset WHERE status = 'done'""",
        f"""INSERT INTO run (id, kind, status, started_at, finished_at)
            SELECT n.i, 'backfill', 'completed', {ts(m=f'n.i * 1440')}, {ts(m=f'n.i * 1440 + 600')}
            FROM nums n WHERE n.i <= (SELECT MAX(id) FROM asset) * {MINUTES_PER_ASSET} / 1440 + 1""",
        f"""INSERT INTO run_asset (id, run_id, asset_id)
            SELECT id, id * {MINUTES_PER_ASSET} / 1440 + 1, id FROM asset""",
        f"""INSERT INTO failure (id, run_id, asset_id, window_id, track_id, uri, stage, error_class,
                message, traceback_digest, created_at)
            SELECT a.id, a.id * {MINUTES_PER_ASSET} / 1440 + 1, a.id,
                CASE WHEN a.status = 'done' THEN (a.id - 1) * 5 + 1 END,
                CASE WHEN a.status = 'done' THEN (a.id - 1) * 15 + 1 END, a.uri,
                CASE WHEN a.status = 'done' THEN 'generate' ELSE 'ingest' END,
                CASE WHEN a.status = 'done' THEN 'RuntimeError' ELSE 'MediaError' END,
                CASE WHEN a.status = 'done' THEN 'CUDA out of memory (retried)' ELSE 'no video stream' END,
                'digest', a.finished_at
            FROM asset a WHERE a.status = 'failed' OR (a.status = 'done' AND a.id % 50 = 0)""",
        "DROP TABLE nums", "DROP TABLE few",
    ]
    with engine.begin() as conn:
        for sql in stmts:
            conn.execute(text(sql), {"n": n})
        if engine.dialect.name == "postgresql":
            for table in ("asset", "asset_path", "scene_window", "prompt", "track", "mix", "output",
                          "run", "run_asset", "failure"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    with engine.begin() as conn:
        rollups.rebuild_all(conn)  # the rows went around the repository: count them once
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                for t in ("asset", "scene_window", "prompt", "track", "mix", "output", "failure")}


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median wall time (ms) of ``reps`` calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def dashboard_calls(url: str, data_dir: Path, n: int) -> dict[str, Callable[[], Any]]:
    from fastapi.testclient import TestClient

    from flows.dashboard.app import create_app

    client = TestClient(create_app(url, data_dir, token=None))

    def get(path: str) -> Callable[[], Any]:
        def call() -> Any:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            return r
        return call

    mid = n // 2 - n // 2 % 100
    done_id, failed_id = mid + 5, mid + 91  # by the fill's i % 100 rule: done, failed
    calls = {}
    for path in ("/", "/assets", "/assets?status=failed", "/assets?library=/archive/lib3",
                 "/assets?since=2026-11-01", "/assets?page=1000", f"/assets/{done_id}",
                 f"/assets/{failed_id}", "/failures", "/failures?page=50"):
        calls[f"page {path}"] = get(path)
    for path in ("/api/overview", "/api/assets", "/api/assets?status=pending&per_page=200",
                 "/api/assets?page=1000", f"/api/assets/{done_id}", "/api/failures",
                 "/api/failures?page=50", "/api/jobs"):
        calls[f"api {path}"] = get(path)
    return calls


def status_calls(url: str, data_dir: Path) -> dict[str, Callable[[], Any]]:
    from flows.cli import main

    def run(*args: str) -> Callable[[], Any]:
        def call() -> Any:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                rc = main(["--data-dir", str(data_dir), "--db", url, "status", *args])
            assert rc == 0, (args, rc, buf.getvalue()[-300:])
            return buf
        return call

    return {"status": run(), "status --json": run("--json"),
            "status --status failed": run("--status", "failed"),
            "status --json --page 100": run("--json", "--page", "100")}


VIEW_QUERIES = {
    "v_asset_progress (one asset)": "SELECT * FROM v_asset_progress WHERE asset_id = 1205",
    "v_asset_progress (page of 50)": "SELECT * FROM v_asset_progress ORDER BY asset_id DESC LIMIT 50",
    "v_asset_progress (all)": "SELECT * FROM v_asset_progress",
    "v_failures (page of 50)": "SELECT * FROM v_failures ORDER BY created_at DESC, failure_id DESC LIMIT 50",
    "v_failures (all)": "SELECT * FROM v_failures",
    "v_throughput_daily (all)": "SELECT * FROM v_throughput_daily",
    "v_generation_seconds_daily (all)": "SELECT * FROM v_generation_seconds_daily",
}


# The views as they were before migration 0007 (correlated counts over windows and tracks per
# asset; a scan of every track), timed on the same database as the baseline.
OLD_VIEWS = {
    "v_asset_progress": """SELECT a.id AS asset_id, a.uri, a.sha256, a.status, a.error, a.library, a.duration_s,
       (SELECT COUNT(DISTINCT s.shot_index) FROM scene_window s WHERE s.asset_id = a.id) AS scenes,
       (SELECT COUNT(*) FROM scene_window s WHERE s.asset_id = a.id) AS windows,
       (SELECT COUNT(*) FROM track t JOIN scene_window s ON s.id = t.window_id
         WHERE s.asset_id = a.id AND t.status = 'current') AS tracks,
       (SELECT COALESCE(SUM(t.wall_s), 0) FROM track t JOIN scene_window s ON s.id = t.window_id
         WHERE s.asset_id = a.id) AS model_seconds, a.created_at, a.started_at, a.finished_at
       FROM asset a""",
    "v_throughput_daily": """SELECT date(a.finished_at) AS day, COUNT(*) AS assets,
       COALESCE(SUM(a.duration_s), 0) AS footage_seconds,
       COALESCE(SUM((SELECT COUNT(DISTINCT s.shot_index) FROM scene_window s WHERE s.asset_id = a.id)), 0) AS scenes,
       COALESCE(SUM((SELECT COUNT(*) FROM scene_window s WHERE s.asset_id = a.id)), 0) AS windows,
       COALESCE(SUM((SELECT COUNT(*) FROM track t JOIN scene_window s ON s.id = t.window_id
                      WHERE s.asset_id = a.id)), 0) AS tracks
       FROM asset a WHERE a.status = 'done' AND a.finished_at IS NOT NULL GROUP BY date(a.finished_at)""",
    "v_generation_seconds_daily": """SELECT date(t.finished_at) AS day, t.device,
       COUNT(*) AS tracks, COALESCE(SUM(t.wall_s), 0) AS model_seconds
       FROM track t WHERE t.finished_at IS NOT NULL GROUP BY date(t.finished_at), t.device""",
}


def view_calls(engine: Engine, n: int) -> dict[str, Callable[[], Any]]:
    def run(sql: str) -> Callable[[], Any]:
        def call() -> Any:
            with engine.connect() as conn:
                return conn.execute(text(sql)).all()
        return call
    calls = {name: run(sql) for name, sql in VIEW_QUERIES.items()}
    for name, sql in VIEW_QUERIES.items():
        view = name.split()[0]
        # the old per-asset counts over a whole archive take minutes on SQLite: left out there
        if view in OLD_VIEWS and not (engine.dialect.name == "sqlite" and "(all)" in name and n > 5000):
            calls[f"{name} [before 0007]"] = run(sql.replace(f"FROM {view}", f"FROM ({OLD_VIEWS[view]}) old"))
    return calls


def explain(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> str:
    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        rows = conn.execute(text(("EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN ") + sql),
                            params or {}).all()
        conn.rollback()
    return "\n".join(" | ".join(str(c) for c in r) if not pg else str(r[0]) for r in rows)


CLAIM_SQL = ("UPDATE asset SET claimed_by = :owner, claim_expires_at = :exp WHERE asset.id = :id "
             "AND asset.status != 'done' AND (asset.claimed_by IS NULL OR asset.claim_expires_at < :now "
             "OR asset.claimed_by = :owner)")


def claim_bench(engine: Engine, pending: int, reps: int) -> tuple[float, str]:
    """Median ms of claim + release of a pending asset with ``pending`` assets pending, and the
    claim's plan. The pending set is made by one UPDATE and undone after."""
    from datetime import datetime, timedelta, timezone

    with engine.begin() as conn:
        conn.execute(text("UPDATE asset SET status = 'pending' WHERE status = 'running'"))
        have = conn.execute(text("SELECT COUNT(*) FROM asset WHERE status = 'pending'")).scalar_one()
        if have < pending:
            conn.execute(text("UPDATE asset SET status = 'pending' WHERE id IN "
                              "(SELECT id FROM asset WHERE status != 'pending' ORDER BY id LIMIT :k)"),
                         {"k": pending - have})
        elif have > pending:
            conn.execute(text("UPDATE asset SET status = 'done' WHERE id IN (SELECT id FROM asset "
                              "WHERE status = 'pending' ORDER BY id LIMIT :k)"), {"k": have - pending})
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE asset"))
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM asset WHERE status = 'pending' ORDER BY id"))]
    assert len(ids) == pending, (len(ids), pending)
    picks = iter(ids[:: max(1, len(ids) // (reps + 2))])

    def one() -> None:
        aid = next(picks)
        with session_scope(engine) as s:
            assert claim_asset(s, aid, "bench", 60.0)
        with session_scope(engine) as s:
            release_claim(s, aid, "bench")

    ms = timed(one, reps)
    now = datetime.now(timezone.utc)
    plan = explain(engine, CLAIM_SQL, {"owner": "bench", "exp": now + timedelta(seconds=60),
                                       "now": now, "id": ids[len(ids) // 2]})
    return ms, plan


def bench(url: str, n: int, reps: int, data_dir: Path, plans: list[str]) -> dict[str, Any]:
    engine = make_engine(url)
    t0 = time.perf_counter()
    migrate.upgrade(url)
    rows = fill(engine, n)
    fill_s = time.perf_counter() - t0
    print(f"{engine.dialect.name}: filled in {fill_s:.1f} s: {rows}", flush=True)
    out: dict[str, Any] = {"dialect": engine.dialect.name, "rows": rows, "fill_s": round(fill_s, 1),
                           "ms": {}}
    groups = [("dashboard", dashboard_calls(url, data_dir, n)), ("cli", status_calls(url, data_dir)),
              ("views", view_calls(engine, n))]
    for group, calls in groups:
        for name, call in calls.items():
            try:
                ms = timed(call, reps)
            except Exception as exc:  # e.g. an option this version lacks: say so, go on
                msg = " ".join(str(exc).split())[:160]
                print(f"  {group:9s} {name:45s}     error: {type(exc).__name__}: {msg}", flush=True)
                continue
            out["ms"][name] = round(ms, 1)
            print(f"  {group:9s} {name:45s} {ms:9.1f} ms{'  > 200 ms' if ms > 200 else ''}", flush=True)
    for name, sql in VIEW_QUERIES.items():
        plans.append(f"## {engine.dialect.name}: {name}\n{sql}\n{explain(engine, sql)}\n")
    for pending in (1000, max(1000, n)):
        ms, plan = claim_bench(engine, pending, reps * 3)
        out["ms"][f"claim ({pending} pending)"] = round(ms, 2)
        print(f"  claim     {pending:7d} pending {'':29s} {ms:9.2f} ms", flush=True)
        plans.append(f"## {engine.dialect.name}: claim with {pending} pending\n{plan}\n")
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--sqlite", action="store_true", help="also on an SQLite file")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--plans", type=Path, help="write the query plans here")
    ap.add_argument("--keep", action="store_true",
                    help="leave the PostgreSQL cluster running (its URL is printed; stop it with pg_ctl)")
    args = ap.parse_args()
    from tests.pg import start_cluster

    print(f"load: {os.getloadavg()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="stepfoley-scale-"))
    os.chmod(tmp, 0o755)
    cluster = start_cluster(tmp / "pg")
    results, plans = [], []
    try:
        results.append(bench(cluster.createdb("scale"), args.assets, args.reps, tmp / "data", plans))
        if args.sqlite:
            results.append(bench(f"sqlite:///{tmp / 'scale.db'}", args.assets, args.reps,
                                 tmp / "data-sqlite", plans))
    finally:
        if args.keep:
            print(f"kept: {cluster.url('scale')} (data {cluster.data})", flush=True)
        else:
            cluster.stop()
    print(f"load: {os.getloadavg()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"load_before_after": os.getloadavg(), "results": results},
                                        indent=2))
    if args.plans:
        args.plans.write_text("\n".join(plans))
    else:
        print("\n".join(plans))


if __name__ == "__main__":
    main()
