"""Data-parallel training across processes, launched by ``torchrun`` (or ``accelerate launch``).

Each rank computes the loss of its own micro-batches (drawn from its own generators and its own
1/world of the data) and the gradients are averaged over ranks before the optimiser step:

    g = (1 / W) Σ_r g_r,   g_r = (1 / A) Σ_m ∇ loss(batch_{r·A + m})

which is exactly the gradient of one process that draws the W·A micro-batches itself (the same
samples, the same noise): only the order of the floating-point sums differs. Gradients are
all-reduced by hand after ``backward`` instead of through ``DistributedDataParallel``, because the
trainable branch runs through ``AudioControlNet.predict_flow`` (not ``forward``) beside a frozen
backbone, and a flat all-reduce of a few tensors is all DDP would do for it. Backend: NCCL on
CUDA, gloo on the CPU. ``torchrun`` sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; with
``STEPFOLEY_DIST_INIT=file:///shared/path`` the ranks meet through a file instead of a TCP store
(no listening socket: what the tests use, with gloo bound to loopback by GLOO_SOCKET_IFNAME=lo).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """This process's (rank, world size); joins the process group on first call under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("STEPFOLEY_DEVICE", "cpu") == "cuda" else "gloo"
        init = os.environ.get("STEPFOLEY_DIST_INIT")
        if init:
            dist.init_process_group(backend=backend, init_method=init, world_size=world,
                                    rank=int(os.environ["RANK"]))
        else:
            dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace every gradient by its mean over ranks (no-op in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def average_scalar(x: float) -> float:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
