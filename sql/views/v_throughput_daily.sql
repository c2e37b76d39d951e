-- Per UTC day of completion: assets finished, their scenes/windows/tracks and footage seconds.
SELECT date(a.finished_at) AS day,
       COUNT(*) AS assets,
       COALESCE(SUM(a.duration_s), 0) AS footage_seconds,
       COALESCE(SUM((SELECT COUNT(DISTINCT s."index") FROM scene s WHERE s.asset_id = a.id)), 0) AS scenes,
       COALESCE(SUM((SELECT COUNT(*) FROM scene s WHERE s.asset_id = a.id)), 0) AS windows,
       COALESCE(SUM((SELECT COUNT(*) FROM track t JOIN scene s ON s.id = t.scene_id
                      WHERE s.asset_id = a.id)), 0) AS tracks
FROM asset a
WHERE a.status = 'done' AND a.finished_at IS NOT NULL
GROUP BY date(a.finished_at)
