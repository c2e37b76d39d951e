"""The model-bundle provenance row: one per bundle id, every file's sha256, written idempotently;
an asset's detail names the bundles its tracks were made with."""

from __future__ import annotations

from sql import repository as r
from sql.migrate import upgrade
from sql.session import make_engine, session_scope

FILES = {"model_index.json": "a" * 64, "transformer/diffusion_pytorch_model.safetensors": "b" * 64,
         "codec/vae.safetensors": "c" * 64}


def test_recorded_once_with_every_file_and_named_by_asset_detail(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        first = r.record_model_bundle(s, bundle_id="tiny@0123456789ab", content_sha256="d" * 64,
                                      weights_sha256="e" * 64, files=FILES, path="/bundles/tiny")
    with session_scope(engine) as s:  # a rerun from another place: same row, new path, same files
        again = r.record_model_bundle(s, bundle_id="tiny@0123456789ab", content_sha256="d" * 64,
                                      weights_sha256="e" * 64, files=FILES, path="/mnt/tiny")
    assert again["id"] == first["id"] and again["files"] == FILES and again["path"] == "/mnt/tiny"
    with session_scope(engine) as s:
        assert [b["bundle_id"] for b in r.model_bundles(s, ["tiny@0123456789ab", "other@x"])] == ["tiny@0123456789ab"]
        assert r.model_bundles(s, []) == []
        a = r.upsert_asset(s, sha256="ab" * 32, uri="/lib/a.mp4")
        w = r.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0.0, end_s=8.0)
        detail = r.asset_detail(s, a["id"])
        assert detail is not None and detail["bundles"] == []  # no track yet: no bundle named
        r.upsert_track(s, window_id=w["id"], order=1, version=1, prompt_text="rain", seed=1, alpha=4.5,
                       beta=1.5, steps=25, mode="nag", bundle_id="tiny@0123456789ab", weights_sha256="e" * 64,
                       config_hash="c" * 16, stem_uri="/s.flac", stem_sha256="f" * 64)
        (named,) = r.asset_detail(s, a["id"])["bundles"]  # type: ignore[index]
        assert named["bundle_id"] == "tiny@0123456789ab" and named["files"] == FILES
