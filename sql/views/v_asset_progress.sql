-- One row per asset: status, windows, current tracks, model seconds, timings.
SELECT a.id AS asset_id, a.uri, a.sha256, a.status, a.error, a.library, a.duration_s,
       (SELECT COUNT(DISTINCT s."index") FROM scene s WHERE s.asset_id = a.id) AS scenes,
       (SELECT COUNT(*) FROM scene s WHERE s.asset_id = a.id) AS windows,
       (SELECT COUNT(*) FROM track t JOIN scene s ON s.id = t.scene_id
         WHERE s.asset_id = a.id AND t.status = 'current') AS tracks,
       (SELECT COALESCE(SUM(t.wall_s), 0) FROM track t JOIN scene s ON s.id = t.scene_id
         WHERE s.asset_id = a.id) AS model_seconds,
       a.created_at, a.started_at, a.finished_at
FROM asset a
