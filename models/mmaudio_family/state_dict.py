"""Reading official checkpoints and checking their keys strictly, shared by the family's modules.

Official files come as ``.pth`` / ``.pt`` (``torch.load(weights_only=True)``, sometimes wrapped as
``{"generator": sd}`` or ``{"state_dict": sd}``), ``.safetensors``, or an in-memory dict. A strict
load must fail loudly and in one line, naming what was expected, so a wrong checkpoint (e.g. the
44k VAE given to the 16k codec) is caught before any number is computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import torch

# Containers official training code wraps its weights in (BigVGAN: "generator").
WRAPPERS = ("generator", "state_dict", "model", "weights")


def read_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a checkpoint path or mapping, unwrapping known containers."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: object = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    else:
        sd = source
    while isinstance(sd, Mapping) and len(sd) == 1 and next(iter(sd)) in WRAPPERS:
        sd = next(iter(sd.values()))
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TypeError("checkpoint is not a flat state dict of tensors")
    return dict(sd)


def _short(keys: Iterable[str], limit: int = 4) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(what: str, expected: Mapping[str, torch.Size | tuple[int, ...]],
                     got: Mapping[str, torch.Tensor]) -> None:
    """Raise one ``ValueError`` line if keys or shapes differ from ``expected``."""
    missing = set(expected) - set(got)
    unexpected = set(got) - set(expected)
    if missing or unexpected:
        raise ValueError(
            f"{what}: state dict does not match (expected {len(expected)} keys such as "
            f"{_short(expected, 2)}; missing: {_short(missing) or 'none'}; unexpected: {_short(unexpected) or 'none'})"
        )
    wrong = [k for k in expected if tuple(got[k].shape) != tuple(expected[k])]
    if wrong:
        listed = "; ".join(f"{k} expected {list(expected[k])}, got {list(got[k].shape)}" for k in sorted(wrong)[:3])
        more = f" … (+{len(wrong) - 3})" if len(wrong) > 3 else ""
        raise ValueError(f"{what}: {len(wrong)} tensor(s) of the wrong shape: {listed}{more}")
