#!/usr/bin/env python
"""Data-parallel training with a rendering loss: fit Spot's per-vertex colors to its texture.

Each rank (one process) renders its own views of Spot with its own OpenGL context
(``glsplat.Context(device=local_rank)`` on a GPU machine, the one llvmpipe device otherwise),
and DistributedDataParallel averages the gradients, so every rank holds the same colors.

    torchrun --standalone --nproc_per_node=2 demos/train_ddp.py          # 2 processes, gloo
    python demos/train_ddp.py --views-per-rank 4                         # the same, in one process

Rank r renders views r * n .. (r + 1) * n - 1 of ``world_size * n`` views evenly spaced around
Spot, so 2 ranks x 2 views and 1 process x 4 views see the same views and, with gradients
averaged, take the same steps. ``--out`` writes the loss curve and the largest difference
between the ranks' parameters as JSON.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import glsplat


class VertexColors(torch.nn.Module):
    """One RGB color per vertex, the thing being trained."""

    def __init__(self, num_verts: int):
        super().__init__()
        self.colors = torch.nn.Parameter(torch.full((num_verts, 3), 0.5))

    def forward(self) -> torch.Tensor:
        return self.colors


def cameras(first: int, count: int, total: int, size: int) -> glsplat.Camera:
    """Views ``first .. first + count - 1`` of ``total`` around Spot, 20 degrees up."""
    azimuth = 360.0 * (torch.arange(first, first + count) + 0.5) / total
    return glsplat.Camera.orbit(azimuth, 20.0, 2.5, fov_y=30.0, image_size=(size, size), near=1.0, far=5.0)


def context_for(local_rank: int) -> glsplat.Context:
    """Rank ``local_rank``'s GL context: its GPU's EGL device, or the software device without GPUs."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return glsplat.Context(device=local_rank)
    return glsplat.Context()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image size in pixels")
    parser.add_argument("--views-per-rank", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", help="write the loss curve and the ranks' parameter difference here (JSON)")
    args = parser.parse_args()

    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)  # the same initial parameters everywhere (DDP also broadcasts rank 0's)

    ctx = context_for(int(os.environ.get("LOCAL_RANK", 0)))
    spot = glsplat.load_example("spot").normalized()
    camera = cameras(rank * args.views_per_rank, args.views_per_rank, world * args.views_per_rank, args.size)
    with torch.no_grad():
        target = glsplat.render(ctx, spot, camera=camera, shader=glsplat.UnlitShader())
    plain = glsplat.Mesh(spot.verts, spot.faces)  # no texture: the colors come from the model

    model = VertexColors(spot.verts.shape[0])
    if distributed:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    losses = []
    for step in range(args.steps):
        image = glsplat.render(ctx, plain.replace(colors=model()), camera=camera, shader=glsplat.UnlitShader())
        loss = (image - target).square().mean()
        optimizer.zero_grad()
        loss.backward()  # DDP averages the gradients of the ranks here
        optimizer.step()
        mean = loss.detach().clone()
        if distributed:
            dist.all_reduce(mean)
            mean /= world
        losses.append(mean.item())
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {mean.item():.6f}", flush=True)

    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    spread = 0.0
    if distributed:
        gathered = [torch.empty_like(params) for _ in range(world)]
        dist.all_gather(gathered, params)
        spread = max((g - params).abs().max().item() for g in gathered)
    if rank == 0:
        print(f"{world} process(es); largest parameter difference between ranks: {spread}")
        if args.out:
            with open(args.out, "w") as out:
                json.dump({"world_size": world, "losses": losses, "param_spread": spread}, out)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
