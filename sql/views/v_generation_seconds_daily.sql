-- Model seconds per UTC day and device (every generated take, current or not: work done).
-- Read from the generation_daily rollup (sql/rollups.py), kept exact by every track write.
SELECT g.day, NULLIF(g.device, '') AS device, g.tracks, g.model_seconds
FROM generation_daily g
