"""Every upsert is idempotent: running it twice leaves one row (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from sql import repository as r
from sql.claims import claim_asset, release_claim, renew_claim
from sql.migrate import upgrade
from sql.schema import Asset, AssetPath, Failure, Mix, Output, Prompt, RunAsset, SceneWindow, Track
from sql.session import make_engine, session_scope

SHA = "0123456789abcdef" * 4


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    upgrade(db_url)
    return make_engine(db_url)


def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _track(window_id: int, **kw: Any) -> dict[str, Any]:
    base = dict(window_id=window_id, order=1, version=1, prompt_text="a dog barks", seed=7,
                alpha=4.5, beta=1.5, steps=25, mode="nag", bundle_id="b@1", weights_sha256="w" * 64,
                config_hash="c" * 16, stem_uri="/stems/a.flac", stem_sha256="s" * 64, wall_s=1.5,
                device="cpu@host")
    return {**base, **kw}


def _twice(engine, fn: Callable[[Any], Any]) -> list[Any]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(2):
        with session_scope(engine) as s:
            out.append(fn(s))
    return out


def test_every_upsert_is_idempotent(engine) -> None:  # type: ignore[no-untyped-def]
    a1, a2 = _twice(engine, lambda s: r.upsert_asset(s, sha256=SHA, uri="/lib/a.mp4", duration_s=3.0))
    assert a1["id"] == a2["id"] and _count(engine, Asset) == 1
    aid = a1["id"]
    _twice(engine, lambda s: r.record_asset_path(s, aid, "/lib/a.mp4"))
    assert _count(engine, AssetPath) == 1
    sc = _twice(engine, lambda s: r.upsert_window(s, asset_id=aid, shot_index=0, window_index=0,
                                                 start_s=0.0, end_s=3.0))[0]
    assert _count(engine, SceneWindow) == 1
    p = _twice(engine, lambda s: r.upsert_prompt(s, window_id=sc["id"], order=1, text="a dog barks",
                                                 score=0.9))[0]
    assert _count(engine, Prompt) == 1
    ids = _twice(engine, lambda s: r.upsert_track(s, **_track(sc["id"], prompt_id=p["id"])))
    assert ids[0] == ids[1] and _count(engine, Track) == 1
    m = _twice(engine, lambda s: r.upsert_mix(s, asset_id=aid, config_hash="h", uri="/m.flac",
                                              sha256="m" * 64, loudness_lufs=-20.0))[0]
    assert _count(engine, Mix) == 1
    _twice(engine, lambda s: r.upsert_output(s, asset_id=aid, uri="/o.mkv", sha256="o" * 64,
                                             mix_id=m["id"], container="mkv", streams=3))
    assert _count(engine, Output) == 1
    run = _twice(engine, lambda s: r.start_run(s, kind="local", parameters={}))[0]
    _twice(engine, lambda s: r.link_run_asset(s, run, aid))
    assert _count(engine, RunAsset) == 1
    _twice(engine, lambda s: r.record_failure(s, run_id=run, uri="/bad.mp4", stage="ingest",
                                              error_class="MediaError", message="x",
                                              traceback_digest="d"))
    assert _count(engine, Failure) == 1


def test_upsert_updates_facts_but_keeps_status(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        a = r.upsert_asset(s, sha256=SHA, uri="/lib/a.mp4")
        r.set_asset_status(s, a["id"], "done")
    with session_scope(engine) as s:
        b = r.upsert_asset(s, sha256=SHA, uri="/lib/renamed.mp4", duration_s=4.0)
    assert b["status"] == "done" and b["uri"] == "/lib/renamed.mp4" and b["duration_s"] == 4.0


def test_versions_status_and_detail(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        a = r.upsert_asset(s, sha256=SHA, uri="/a.mp4")
        sc = r.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0, end_s=8)
        t1 = r.upsert_track(s, **_track(sc["id"]))
        assert r.next_track_version(s, sc["id"], 1) == 2
        r.set_track_status(s, t1, "superseded")
        r.upsert_track(s, **_track(sc["id"], version=2, seed=8))
        assert [t["version"] for t in r.current_tracks(s, sc["id"])] == [2]
        detail = r.asset_detail(s, a["id"])
        assert [t["version"] for t in detail["windows"][0]["tracks"]] == [1, 2]
        with pytest.raises(ValueError):
            r.set_track_status(s, t1, "bogus")
    with session_scope(engine) as s:  # by id and by sha prefix
        assert r.find_asset(s, SHA[:10])["id"] == a["id"]
        assert r.find_asset(s, f" {SHA[:12].upper()} ")["id"] == a["id"]  # "0123456789AB"
        assert r.find_asset(s, str(a["id"]))["id"] == a["id"]
        assert r.find_asset(s, "ffffffff") is None
        assert r.find_asset(s, SHA[:6])["id"] == a["id"]  # six hex digits are enough ...
        assert r.find_asset(s, SHA[:5]) is None  # ... five are too short to name an asset
        twin = r.upsert_asset(s, sha256=SHA[:8] + "f" * 56, uri="/twin.mp4")
        assert r.find_asset(s, SHA[:8]) is None  # ambiguous: two assets share it
        assert r.find_asset(s, SHA[:9])["id"] == a["id"]
        assert r.find_asset(s, twin["sha256"][:9])["id"] == twin["id"]


def test_claims_exactly_one_winner_and_expiry(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        aid = r.upsert_asset(s, sha256=SHA, uri="/a.mp4")["id"]
    wins: list[str] = []
    barrier = threading.Barrier(6)

    def racer(name: str) -> None:
        barrier.wait()
        with session_scope(engine) as s:
            if claim_asset(s, aid, name, 60):
                wins.append(name)

    threads = [threading.Thread(target=racer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    with session_scope(engine) as s:
        assert renew_claim(s, aid, wins[0], -1)  # lease now expired
    with session_scope(engine) as s:
        assert claim_asset(s, aid, "taker", 60)
        release_claim(s, aid, "taker")
    with session_scope(engine) as s:
        r.set_asset_status(s, aid, "done")
    with session_scope(engine) as s:
        assert not claim_asset(s, aid, "late", 60)  # done assets are never claimed
