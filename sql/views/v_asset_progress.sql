-- One row per asset: status, windows, current tracks, model seconds, timings.
-- The counts are the asset's rollups, kept exact by every window and track write
-- (sql/rollups.py); NULL until the asset has its first window, so 0.
SELECT a.id AS asset_id, a.uri, a.sha256, a.status, a.error, a.library, a.duration_s,
       COALESCE(a.n_shots, 0) AS scenes,
       COALESCE(a.n_windows, 0) AS windows,
       COALESCE(a.n_current_tracks, 0) AS tracks,
       COALESCE(a.model_seconds, 0) AS model_seconds,
       a.created_at, a.started_at, a.finished_at
FROM asset a
