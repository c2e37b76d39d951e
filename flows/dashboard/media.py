"""Media by row id only: stems, their spectrograms, mixes and output videos. Starlette's
FileResponse answers Range requests (206), so players can seek. What may be served is
``containment``'s call."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from flows.dashboard.containment import contained_file
from flows.dashboard.spectrogram import spectrogram_png
from flows.dashboard.state import Dashboard, dashboard
from sql.schema import Mix, Output, Track

router = APIRouter()


def _no_media() -> HTTPException:
    return HTTPException(404, "no such media")


def _in_data_dir(d: Dashboard, uri: str | None) -> Path:
    path = contained_file(uri, d.data_dir, [d.data_dir.resolve()])
    if path is None:
        raise _no_media()
    return path


@router.get("/media/track/{track_id}")
def media_track(track_id: int, d: Dashboard = Depends(dashboard)) -> FileResponse:
    with d.sessions() as s:
        row = s.get(Track, track_id)
        uri = row.stem_uri if row is not None else None
    return FileResponse(_in_data_dir(d, uri))


@router.get("/media/track/{track_id}/spectrogram.png")
def media_spectrogram(track_id: int, d: Dashboard = Depends(dashboard)) -> FileResponse:
    with d.sessions() as s:
        row = s.get(Track, track_id)
        uri, sha = (row.stem_uri, row.stem_sha256) if row is not None else (None, None)
    path = _in_data_dir(d, uri)
    if not sha:
        raise _no_media()
    return FileResponse(spectrogram_png(path, d.data_dir / "spectrograms", sha), media_type="image/png")


@router.get("/media/mix/{mix_id}")
def media_mix(mix_id: int, d: Dashboard = Depends(dashboard)) -> FileResponse:
    with d.sessions() as s:
        row = s.get(Mix, mix_id)
        uri = row.uri if row is not None else None
    return FileResponse(_in_data_dir(d, uri))


@router.get("/media/output/{output_id}")
def media_output(output_id: int, d: Dashboard = Depends(dashboard)) -> FileResponse:
    """An output video, inside the data dir or an output directory a run declared."""
    with d.sessions() as s:
        row = s.get(Output, output_id)
        uri = row.uri if row is not None else None
        roots = d.output_roots.current(s) if uri else frozenset()
    path = contained_file(uri, d.data_dir, roots)
    if path is None:
        raise _no_media()
    return FileResponse(path)
