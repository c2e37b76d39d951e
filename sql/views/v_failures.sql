-- Failures with the asset they belong to (when known) and the Prefect flow run of their run.
SELECT f.id AS failure_id, f.created_at, f.stage, f.error_class, f.message, f.uri,
       f.asset_id, a.sha256 AS asset_sha256, f.window_id, f.track_id, f.run_id,
       r.kind AS run_kind, r.prefect_flow_run_id
FROM failure f
LEFT JOIN asset a ON a.id = f.asset_id
LEFT JOIN run r ON r.id = f.run_id
