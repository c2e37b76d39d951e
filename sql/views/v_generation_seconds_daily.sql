-- Model seconds per UTC day and device (every generated take, current or not: work done).
SELECT date(t.finished_at) AS day, t.device,
       COUNT(*) AS tracks, COALESCE(SUM(t.wall_s), 0) AS model_seconds
FROM track t
WHERE t.finished_at IS NOT NULL
GROUP BY date(t.finished_at), t.device
