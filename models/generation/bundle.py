"""Local model bundles: identity (content hashes) and loading.

A bundle is a diffusers-layout directory (``model_index.json`` + one folder per component). Its
identity is a pure function of its content:

    files          = every regular file under the bundle except README*, hidden files, training
                     logs (``_runs/``, what `stepfoley train` leaves beside the weights) and
                     non-component extras (captioner/, evaluator/ are hashed too when present:
                     they change what a run produces)
    sha(f)         = sha256 of the bytes of f
    weights_sha256 = sha256( Σ_f∈weights  "relpath\\0sha(f)\\n" )   (weights = *.safetensors|*.bin|*.pth|*.pt)
    content_sha256 = the same over all files (configs and tokenizer included)
    bundle_id      = "<dirname>@<content_sha256[:12]>"

sorted by relative POSIX path, so the id does not depend on the filesystem's listing order or on
where the bundle is stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_digest(entries: dict[str, str]) -> str:
    """sha256 over ``relpath\\0sha\\n`` lines in path order (the bundle hashes' form)."""
    h = hashlib.sha256()
    for rel in sorted(entries):
        h.update(f"{rel}\0{entries[rel]}\n".encode())
    return h.hexdigest()


def bundle_files(path: str | Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every content file of the bundle."""
    root = Path(path)
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (not p.is_file() or any(part.startswith(".") or part == "_runs" for part in rel.parts)
                or rel.name.upper().startswith("README")):
            continue
        out[rel.as_posix()] = file_sha256(p)
    return out


def bundle_identity(path: str | Path) -> dict[str, Any]:
    """Stable id and hashes of a local bundle (see module docstring)."""
    root = Path(path).expanduser().resolve()
    if not (root / "model_index.json").is_file():
        raise FileNotFoundError(f"{root} is not a bundle (no model_index.json)")
    files = bundle_files(root)
    weights = {k: v for k, v in files.items() if k.endswith(WEIGHT_SUFFIXES)}
    content = path_digest(files)
    return {
        "bundle_id": f"{root.name}@{content[:12]}",
        "content_sha256": content,
        "weights_sha256": path_digest(weights),
        "weights": weights,
        "files": files,
    }


def has_guidance_branch(path: str | Path) -> bool:
    """Whether the bundle carries a guidance branch u_ψ (``controlnet/``), which NAG needs; a
    converted official release has none until one is trained."""
    import json

    root = Path(path).expanduser()
    spec = json.loads((root / "model_index.json").read_text()).get("controlnet")
    return isinstance(spec, list) and len(spec) == 2 and spec[0] is not None and (root / "controlnet").is_dir()


# Components whose weights run in the compute dtype; the codec stays float32 (its STFT, mel
# filterbank and vocoder are cheap next to the network and lose accuracy in bf16).
COMPUTE_COMPONENTS = ("transformer", "controlnet", "video_features", "text_encoder")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(device: str, dtype: str = "auto"):
    """``auto`` → bfloat16 on CUDA (as MMAudio runs), float32 elsewhere; else the named dtype."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def place(pipe: Any, device: str, dtype: str = "auto") -> Any:
    """Every component on ``device``; the compute components in ``resolve_dtype(device, dtype)``,
    the codec in float32; all in eval mode."""
    import torch

    from diffusers.utils import logging as dlogging

    dev = torch.device(device)
    compute = resolve_dtype(device, dtype)
    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()  # diffusers warns on every .to(dtype); no module here must stay fp32
    try:
        for name in COMPUTE_COMPONENTS + ("codec",):
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                module.to(dev, compute if name in COMPUTE_COMPONENTS else torch.float32).eval()
    finally:
        dlogging.set_verbosity(level)
    return pipe


def load_bundle(path: str | Path, device: str = "cpu", dtype: str = "auto"):
    """The ``StepByStepV2APipeline`` of a local bundle, on ``device`` in ``dtype``, in eval mode."""
    # pipeline.py imports this module (place, resolve_dtype): imported on use
    from models.generation.pipeline import StepByStepV2APipeline

    pipe = StepByStepV2APipeline.from_pretrained(Path(path).expanduser())
    return place(pipe, device, dtype)
