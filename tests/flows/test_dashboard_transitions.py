"""The dashboard's asset page shows how each shot begins and ends (issue #22)."""
from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flows.dashboard.app import create_app
from sql import migrate
from sql import repository as repo
from sql.session import make_engine


def test_asset_page_shows_shot_transitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        a = repo.upsert_asset(s, sha256="a" * 64, uri="file:///x.mp4", library="lib")
        repo.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0.0, end_s=2.92,
                          shot_start_s=0.0, shot_end_s=3.5, start_transition="start",
                          end_transition="fade", start_transition_s=0.0, end_transition_s=0.88)
        repo.upsert_window(s, asset_id=a["id"], shot_index=1, window_index=0, start_s=4.12, end_s=7.0,
                          shot_start_s=3.5, shot_end_s=7.0, start_transition="fade",
                          end_transition="end", start_transition_s=0.88, end_transition_s=0.0)
        repo.upsert_window(s, asset_id=a["id"], shot_index=2, window_index=0, start_s=7.0, end_s=8.0)
    engine.dispose()
    html = TestClient(create_app(url, tmp_path, token=None)).get(f"/assets/{a['id']}").text
    assert "start → fade 0.88 s" in html and "fade 0.88 s → end" in html
    assert html.count('class="transition"') == 2  # a row from before the migration shows nothing
