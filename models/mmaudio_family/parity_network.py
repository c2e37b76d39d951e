"""Parity of the MM-DiT network (``models/generation/mmaudio.py``) against fixtures made with the
official MMAudio network code (the layout of ``fixtures/mmaudio/``).

A fixture is ``<stem>.json`` (the official ``MMAudio`` constructor arguments: latent_dim, clip_dim,
…, v2), ``<stem>.safetensors`` (official state dict, or shards ``<stem>.part*.safetensors``) and ``<stem>_io.safetensors``. Every output is
recomputed from the io file's inputs with the shapes those inputs have (batch, lengths):

    flow              = u(latent, t | clip_f, sync_f, text_f)
    flow_empty        = u(latent, t | ∅)                      (learned empty clip / sync, empty_string_feat)
    x1                = Euler(x0; K uniform steps) of  α·u(x | cond) + (1 − α)·u(x | ∅)
    x1_unnormalized   = x1 · latent_std + latent_mean
    x1_negative_text  = the same with neg_text_f as the null branch's text (MMAudio's negative prompt)

α and K are the sampler settings the fixture README states (4.5, 4 steps); a JSON may override them
with ``cfg_strength`` / ``num_steps``. Tolerance: 1e-4 on every output; the fixtures' README expects
the integrated x1 within 1e-3 (four steps compound the per-step error); we report and hold 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from models.generation.mmaudio import MMAudio, PRESETS
from models.generation.nag import cfg_velocity
from models.generation.sampling import euler_sample

CFG_STRENGTH = 4.5
NUM_STEPS = 4
# Constructor fields whose presence marks a network fixture JSON.
NETWORK_FIELDS = {"latent_dim", "hidden_dim", "depth", "fused_depth", "num_heads"}


def is_network_fixture(meta: Any) -> bool:
    return isinstance(meta, dict) and NETWORK_FIELDS <= set(meta)


def _x1(net: MMAudio, io: dict[str, torch.Tensor], steps: int, alpha: float,
        negative_text: torch.Tensor | None) -> torch.Tensor:
    b, n = io["x0"].shape[:2]
    cond = net.preprocess_conditions(io["clip_f"], io["sync_f"], io["text_f"], n)
    null = net.get_empty_conditions(b, negative_text_features=negative_text, latent_len=n,
                                    clip_len=io["clip_f"].shape[1], sync_len=io["sync_f"].shape[1])

    def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.expand(x.shape[0])
        return cfg_velocity(net.predict_flow(x, tt, null), net.predict_flow(x, tt, cond), alpha)

    return euler_sample(velocity, io["x0"], steps)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``<stem>.safetensors``, or its shards ``<stem>.part*.safetensors`` merged (the repo's copy)."""
    whole = path.with_suffix(".safetensors")
    if whole.is_file():
        return load_file(str(whole))
    parts = sorted(path.parent.glob(f"{path.stem}.part*.safetensors"))
    if not parts:
        raise FileNotFoundError(f"{whole.name}: the network fixture's state dict is missing")
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        merged.update(load_file(str(part)))
    return merged


@torch.no_grad()
def recompute(json_path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{output: (ours, reference)} for the outputs the io file holds."""
    path = Path(json_path)
    meta = json.loads(path.read_text())
    allowed = set(PRESETS["tiny"]) | {"mlp_ratio"}
    net = MMAudio.load_official(_state_dict(path), {k: v for k, v in meta.items() if k in allowed})
    io = load_file(str(path.with_name(path.stem + "_io.safetensors")))
    steps = int(meta.get("num_steps", NUM_STEPS))
    alpha = float(meta.get("cfg_strength", CFG_STRENGTH))
    cache: dict[str, torch.Tensor] = {}

    def x1() -> torch.Tensor:
        if "x1" not in cache:
            cache["x1"] = _x1(net, io, steps, alpha, None)
        return cache["x1"]

    def flow() -> torch.Tensor:
        return net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"])

    def flow_empty() -> torch.Tensor:
        b, n = io["latent"].shape[:2]
        null = net.get_empty_conditions(b, latent_len=n, clip_len=io["clip_f"].shape[1],
                                        sync_len=io["sync_f"].shape[1])
        return net.predict_flow(io["latent"], io["t"], null)

    todo: dict[str, Callable[[], torch.Tensor]] = {
        "flow": flow, "flow_empty": flow_empty, "x1": x1,
        "x1_unnormalized": lambda: net.unnormalize(x1()),
        "x1_negative_text": lambda: _x1(net, io, steps, alpha, io["neg_text_f"]),
    }
    return {k: (fn(), io[k]) for k, fn in todo.items() if k in io}


def parity(json_path: str | Path) -> dict[str, float]:
    """Max abs error per output of one network fixture."""
    out = {}
    for name, (ours, ref) in recompute(json_path).items():
        if ours.shape != ref.shape:
            raise ValueError(f"{Path(json_path).name}: {name} has shape {list(ours.shape)}, reference {list(ref.shape)}")
        out[name] = float((ours.double() - ref.double()).abs().max())
    return out
