"""`stepfoley models pull` against a local HTTP server on 127.0.0.1 that answers like the hub:
HEAD / GET ``/{repo}/resolve/{revision}/{path}`` with X-Repo-Commit, ETag and Content-Length,
and ``/api/models/{repo}/revision/{revision}`` for snapshots. huggingface_hub (pointed at it by
HF_ENDPOINT) downloads a tiny official-format release, stepfoley converts it; ext_weights/ come
from a plain URL base as MMAudio's GitHub release serves them; a VLM captioner snapshot lands in
a directory; HF_HUB_OFFLINE=1 refuses with one line."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from models.generation.bundle import bundle_identity
from tests.flows.conftest import stepfoley
from tests.models.mmaudio_family.release_helpers import build_tiny_release

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _repos(release: Path, vlm: Path) -> dict[str, dict[str, Path]]:
    clip = release / "DFN5B-CLIP-ViT-H-14-384"
    return {
        "hkchengrex/MMAudio": {"weights/mmaudio_small_16k.pth": release / "weights" / "mmaudio_small_16k.pth",
                               "ext_weights/v1-16.pth": release / "ext_weights" / "v1-16.pth"},
        "apple/DFN5B-CLIP-ViT-H-14-384": {p.name: p for p in clip.iterdir()},
        "someone/tiny-vlm": {p.name: p for p in vlm.iterdir()},
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    release = tmp_path_factory.mktemp("release")
    sizes = build_tiny_release(release)
    vlm = tmp_path_factory.mktemp("vlm")
    (vlm / "config.json").write_text(json.dumps({"model_type": "idefics3"}))
    (vlm / "model.safetensors").write_bytes(b"\0" * 64)
    (vlm / "notes.bin").write_bytes(b"not pulled")
    repos = _repos(release, vlm)
    ext = {p.name: p for p in (release / "ext_weights").iterdir()}
    hits: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _file(self, path: Path | None, body: bool) -> None:
            if path is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _route(self, body: bool) -> None:
            path = unquote(self.path.split("?", 1)[0])
            hits.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and "tree" in parts:  # list_repo_tree (snapshot_download)
                files = repos.get("/".join(parts[2:parts.index("tree")]), {})
                payload = json.dumps([{"type": "file", "path": f, "size": p.stat().st_size,
                                       "oid": hashlib.sha1(p.read_bytes()).hexdigest()}
                                      for f, p in files.items()]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)
                return
            if parts[:2] == ["api", "models"] and "revision" in parts:
                repo = "/".join(parts[2:parts.index("revision")])
                files = repos.get(repo)
                payload = json.dumps({"id": repo, "sha": COMMIT,
                                      "siblings": [{"rfilename": f} for f in (files or {})]}).encode()
                self.send_response(200 if files else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)
                return
            if parts[0] == "ext":
                return self._file(ext.get(parts[1]), body)
            if "resolve" in parts:
                i = parts.index("resolve")
                repo, rel = "/".join(parts[:i]), "/".join(parts[i + 2:])
                return self._file(repos.get(repo, {}).get(rel), body)
            self._file(None, body)

        def do_HEAD(self) -> None:
            self._route(False)

        def do_GET(self) -> None:
            self._route(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", sizes, hits
    server.shutdown()


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "0", **extra}


def test_pull_release_and_convert(tmp_path: Path, hub) -> None:
    endpoint, sizes, hits = hub
    proc = stepfoley(["models", "pull", "--variant", "small_16k", "--to", str(tmp_path / "mm"),
                      "--ext-weights-url", f"{endpoint}/ext", "--config", str(sizes), "--no-md5-check"],
                     env=_env(tmp_path, endpoint))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle = tmp_path / "mm" / "bundle"
    assert (bundle / "model_index.json").is_file() and bundle_identity(bundle)["bundle_id"] in proc.stdout
    release = tmp_path / "mm" / "release"
    for rel in ("weights/mmaudio_small_16k.pth", "ext_weights/best_netG.pt", "ext_weights/synchformer_state_dict.pth",
                "DFN5B-CLIP-ViT-H-14-384/open_clip_pytorch_model.bin"):
        assert (release / rel).is_file(), rel
    assert any(h.startswith("HEAD /hkchengrex/MMAudio/resolve/main/weights/") for h in hits)
    assert any(h == "GET /ext/best_netG.pt" for h in hits)  # the GitHub-release files by URL base
    assert any(h == "GET /ext/v1-16.pth" for h in hits)


def test_pull_captioner_snapshot(tmp_path: Path, hub) -> None:
    endpoint, _, _ = hub
    proc = stepfoley(["models", "pull", "--captioner", "someone/tiny-vlm", "--to", str(tmp_path / "vlm")],
                     env=_env(tmp_path, endpoint))
    assert proc.returncode == 0, proc.stdout + proc.stderr + str([h for h in hub[2] if "vlm" in h])
    assert json.loads((tmp_path / "vlm" / "config.json").read_text()) == {"model_type": "idefics3"}
    assert (tmp_path / "vlm" / "model.safetensors").stat().st_size == 64
    assert not (tmp_path / "vlm" / "notes.bin").exists()  # weights, configs and tokenizers only


def test_offline_refuses_in_one_line(tmp_path: Path, hub) -> None:
    endpoint, _, _ = hub
    proc = stepfoley(["models", "pull", "--captioner", "someone/tiny-vlm", "--to", str(tmp_path / "vlm")],
                     env=_env(tmp_path, endpoint, HF_HUB_OFFLINE="1"))
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "someone/tiny-vlm" in lines[0], proc.stderr
    assert not (tmp_path / "vlm" / "config.json").exists()
