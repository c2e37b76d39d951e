"""The NAG β a bundle declares for its guidance branch (``guidance.json`` at the bundle root).

β scales the negative-audio term of every NAG step (``models.generation.nag``)::

    ũ = u(∅) + α · [u(V, C_k) − u(∅)] + β · [u(V, C_k) − u_ψ(V, ∅, x̃)]

so the push away from the audio already there is β times how far u_ψ moves when it is given
x̃. That distance is a property of the trained branch, not of the method: the demo's
2026-12-05 branch reacts to x̃ about three times as strongly as the one before it (held-out x̃
gain 36 / 14 / 4 % against 12 / 4 / 1 % at t = 0.2 / 0.5 / 0.8), and the paper's β = 1.5,
right for the older branch, overshoots it (docs/evaluation.md). A bundle therefore carries the
β its branch was measured at, beside the branch it was measured for::

    {"beta": 0.75,
     "controlnet_sha256": "<sha256 of controlnet/diffusion_pytorch_model.safetensors>",
     "measured": "<how: command, scenes, what it traded>"}

Resolution (``resolve_beta``): an explicit β (a flag, ``STEPFOLEY_BETA``, an API body) wins;
otherwise the bundle's declaration if it names the branch the bundle holds now; otherwise the
paper's 1.5 (``guidance_settings.DEFAULT``), which is what a converted MMAudio bundle without a
declaration gets. A declaration for another branch (one retrained in place) is ignored with a
warning: the β was measured on weights that are gone.

The branch file is hashed once per process while its size, mtime and inode are unchanged (a
real branch is hundreds of MB).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

from models.generation.guidance_settings import DEFAULT, GuidanceError, check_beta

DECLARATION = "guidance.json"
BRANCH_WEIGHTS = Path("controlnet") / "diffusion_pytorch_model.safetensors"

log = logging.getLogger("stepfoley.bundle_beta")


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def branch_sha256(bundle: str | Path) -> str | None:
    """sha256 of the bundle's guidance branch weights; None when it has no branch."""
    path = Path(bundle) / BRANCH_WEIGHTS
    try:
        st = path.stat()
    except OSError:
        return None
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def declared_beta(bundle: str | Path) -> float | None:
    """The β ``bundle`` declares for the branch it holds, or None (no declaration, or one for
    another branch). A declaration that is not valid JSON or whose β is out of range raises
    GuidanceError naming the file: a broken bundle is reported, not silently run at 1.5.

    Every Settings construction asks (tasks/config.py), so the answer is kept per process while
    the declaration and the branch file are unchanged: two stat calls, and a void declaration
    warns once, not once per task."""
    root = Path(bundle)
    decl = _stat(root / DECLARATION)
    if decl is None:
        return None
    return _declared(str(root.resolve()), decl, _stat(root / BRANCH_WEIGHTS))


@functools.lru_cache(maxsize=16)
def _declared(bundle: str, decl: tuple[int, int, int],
              branch: tuple[int, int, int] | None) -> float | None:
    path = Path(bundle) / DECLARATION
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GuidanceError("beta", f"declared in {path} cannot be read: {exc.strerror or exc}") from None
    try:
        record = json.loads(text)
        beta = check_beta(record["beta"], f"beta (declared in {path})")
    except GuidanceError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise GuidanceError("beta", f"declared in {path} is not a {{\"beta\": number, ...}} record: "
                                    f"{type(exc).__name__}: {exc}") from None
    want = record.get("controlnet_sha256")
    have = branch_sha256(bundle)
    if want is not None and want != have:
        log.warning("ignoring %s: its beta %g was measured for branch %s, the bundle holds %s",
                    path, beta, str(want)[:12], (have or "no branch")[:12])
        return None
    return beta


def resolve_beta(beta: float | None, bundle: str | Path) -> float:
    """The β a run uses: ``beta`` when given, else the bundle's declaration, else the paper's."""
    if beta is not None:
        return check_beta(beta)
    declared = declared_beta(bundle)
    return DEFAULT.beta if declared is None else declared
