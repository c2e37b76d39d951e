"""`stepfoley models pull`: the official MMAudio release (or a VLM captioner) from the Hugging
Face hub into a local directory, then converted into a bundle. The only place stepfoley goes
online, and only when asked: run time never downloads.

Where each file of a preset comes from (MMAudio's own download table, commit 974010a):

    weights/mmaudio_{preset}.pth                 hub hkchengrex/MMAudio
    ext_weights/v1-16.pth | v1-44.pth            hub hkchengrex/MMAudio, folder ext_weights/, or
    ext_weights/best_netG.pt                     ``ext_weights_url`` + name: MMAudio publishes these
    ext_weights/synchformer_state_dict.pth       on its GitHub release v0.1, a plain HTTPS URL base
    bigvgan_v2_44khz_128band_512x/               hub nvidia/bigvgan_v2_44khz_128band_512x (44k presets)
        config.json, bigvgan_generator.pt
    DFN5B-CLIP-ViT-H-14-384/                     hub apple/DFN5B-CLIP-ViT-H-14-384
        open_clip_config.json, open_clip_pytorch_model.bin

Files go through ``huggingface_hub.hf_hub_download`` (so ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``,
``HF_TOKEN`` and the hub cache behave as everywhere else), into ``<to>/release/`` in the layout
``models.mmaudio_family.release.locate_release`` reads; the ``ext_weights_url`` files are
fetched with urllib and written atomically. Every file with a known md5 (MMAudio's table) is
checked before conversion. A file already present with the right md5 is not fetched again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from models.generation.convert import convert_release
from models.mmaudio_family.release import CLIP_DIR, OFFICIAL_MD5, VOCODER_V2_DIR, mode_of
from tasks.config import ConfigError

MMAUDIO_REPO = "hkchengrex/MMAudio"
VOCODER_V2_REPO = "nvidia/bigvgan_v2_44khz_128band_512x"
CLIP_REPO = "apple/DFN5B-CLIP-ViT-H-14-384"
EXT_WEIGHTS_RELEASE = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1"


def release_files(preset: str) -> list[tuple[str, str]]:
    """(hub repo, path in it) of every file the preset needs, the path also its place under release/."""
    mode = mode_of(preset)
    files = [(MMAUDIO_REPO, f"weights/mmaudio_{preset}.pth"),
             (MMAUDIO_REPO, f"ext_weights/{'v1-16.pth' if mode == '16k' else 'v1-44.pth'}"),
             (MMAUDIO_REPO, "ext_weights/synchformer_state_dict.pth"),
             (CLIP_REPO, "open_clip_config.json"), (CLIP_REPO, "open_clip_pytorch_model.bin")]
    if mode == "16k":
        files.append((MMAUDIO_REPO, "ext_weights/best_netG.pt"))
    else:
        files += [(VOCODER_V2_REPO, "config.json"), (VOCODER_V2_REPO, "bigvgan_generator.pt")]
    return files


def _local_path(release: Path, repo: str, path: str) -> Path:
    if repo == CLIP_REPO:
        return release / CLIP_DIR / path
    if repo == VOCODER_V2_REPO:
        return release / VOCODER_V2_DIR / path
    return release / path


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_url(url: str, dest: Path) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ConfigError(f"HF_HUB_OFFLINE is set: not downloading {url} (put {dest.name} at {dest})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (https or a test server)
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, dest)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot download {url}: {exc}") from exc


def _hub_download(repo: str, path: str, release: Path, revision: str | None) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest = _local_path(release, repo, path)
    try:
        got = Path(hf_hub_download(repo, path, revision=revision))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ConfigError(f"cannot download {path} of {repo}: {str(exc).splitlines()[0]}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.copyfile(got, tmp)  # out of the hub cache: the release directory stands alone
    os.replace(tmp, dest)


def pull_release(preset: str, to: str | Path, *, revision: str | None = None,
                 ext_weights_url: str | None = None, force: bool = False, verify_md5: bool = True,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Download the preset's release files into ``<to>/release`` and convert them into the
    bundle ``<to>/bundle``; returns the bundle. ``ext_weights_url``: a URL base the four
    ``ext_weights/`` files are fetched from instead of the hub (``EXT_WEIGHTS_RELEASE`` is
    MMAudio's GitHub release). ``verify_md5=False`` and ``overrides`` (per-component sizes) are
    for releases that are not the official files, e.g. a test release."""
    root = Path(to).expanduser()
    release = root / "release"
    for repo, path in release_files(preset):
        dest = _local_path(release, repo, path)
        want = OFFICIAL_MD5.get(dest.name) if verify_md5 else None
        if dest.is_file() and (want is None or _md5(dest) == want):
            continue
        if ext_weights_url and repo == MMAUDIO_REPO and path.startswith("ext_weights/"):
            _fetch_url(f"{ext_weights_url.rstrip('/')}/{dest.name}", dest)
        else:
            _hub_download(repo, path, release, revision if repo == MMAUDIO_REPO else None)
        if want is not None and _md5(dest) != want:
            raise ConfigError(f"{dest}: md5 {_md5(dest)} is not the official {want} (a partial or different file)")
    return convert_release(release, preset, root / "bundle", overrides=overrides, force=force)


def pull_captioner(repo_id: str, to: str | Path, *, revision: str | None = None) -> Path:
    """A transformers VLM (e.g. HuggingFaceTB/SmolVLM-256M-Instruct) into ``to``: a directory
    ``--captioner`` accepts. Weights, configs, tokenizer and processor files only."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest = Path(to).expanduser()
    try:
        snapshot_download(repo_id, revision=revision, local_dir=dest,
                          allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"])
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ConfigError(f"cannot download {repo_id}: {str(exc).splitlines()[0]}") from exc
    if not (dest / "config.json").is_file():
        raise ConfigError(f"{repo_id} has no config.json: not a transformers model")
    return dest
