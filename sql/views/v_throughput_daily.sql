-- Per UTC day of completion: assets finished, their scenes/windows/tracks and footage seconds.
-- One pass over the done assets' rollups (sql/rollups.py), not a count of their tracks.
SELECT date(a.finished_at) AS day,
       COUNT(*) AS assets,
       COALESCE(SUM(a.duration_s), 0) AS footage_seconds,
       COALESCE(SUM(COALESCE(a.n_shots, 0)), 0) AS scenes,
       COALESCE(SUM(COALESCE(a.n_windows, 0)), 0) AS windows,
       COALESCE(SUM(COALESCE(a.n_tracks, 0)), 0) AS tracks
FROM asset a
WHERE a.status = 'done' AND a.finished_at IS NOT NULL
GROUP BY date(a.finished_at)
