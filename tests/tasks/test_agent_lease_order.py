"""An agent holds a batch's leases while it loads the batch's bundle (tasks/gpu_agent.py): the
caller presumes a run dead once it has been RUNNING for the lease TTL without a lease, and a
bundle the agent has not preloaded can take longer than that to load. Shown with a bundle whose
transformer is corrupt: its load takes the other components first, then fails; the lease must
exist during that load (before the fix it was taken only after a successful load: never)."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import pytest

from tasks.config import DEFAULT_BUNDLE, load_settings
from tasks.gpu_agent import ModelLoadError, serve_windows
from tasks.window_lease import lease_path


def test_the_lease_is_held_while_the_bundle_loads(tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, broken)
    (broken / "guidance.json").unlink()
    weights = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    s = load_settings({"data_dir": tmp_path / "data", "bundle": broken}).to_json()
    key = uuid.uuid4().hex
    lease = lease_path(Path(s["data_dir"]), key)
    job = {"window_id": 1, "asset_sha256": "0" * 64, "scene_index": 0, "window_index": 0}
    seen, done = [], threading.Event()

    def watch() -> None:
        while not done.is_set():
            if lease.exists():
                seen.append(True)
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(ModelLoadError):
            serve_windows([job], s, [key], 30.0, "0.0")
    finally:
        done.set()
        watcher.join()
    assert seen, "no lease while the bundle was loading"
    assert not lease.exists()  # dropped with the failed batch
