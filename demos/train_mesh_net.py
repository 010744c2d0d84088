"""Train a small network that turns one image of an object into a mesh, with a rendering loss only.

The network (a small CNN encoder and an MLP) maps one shaded view of a shape to offsets of the
vertices of an icosphere template. It never sees a 3D shape: its loss compares glsplat renders of
the predicted mesh from several other views with renders of the true shape (shaded color and
silhouette), plus the smoothness regularizers of shape fitting.

Shapes: random deformations (anisotropic scaling, bending, twisting; then normalized to a
longest side of 1) of Spot, the teapot, Suzanne and the bunny (``--meshes``; all but Spot come from the
optional shared mesh folder and are skipped when it is absent, the procedural blob, capsule and torus
ship with glsplat). Held out: unseen deformations of those, and deformations of a mesh never trained
on (fandisk, ``--unseen-mesh``). The held-out Chamfer distance
(mean, both directions; a fraction of the object's size) is reported before training, after each
epoch, and for two baselines: the template sphere, and the mean shape (the network's average
output over the training images, i.e. what it predicts if it ignores its input).

Writes, into the output folder (default out/mesh_net/):
  mesh_net_table.md    held-out Chamfer per epoch and for the baselines (also printed)
  mesh_net.png         held-out shapes: input image | true shape | prediction, from a new view

    python demos/train_mesh_net.py                   # 64 px, 96 training shapes, 12 epochs
    python demos/train_mesh_net.py --epochs 30 --train-per-mesh 40
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from torch import nn
from tqdm import tqdm

import demo_common
import glsplat
from glsplat.fitting.metrics import surface_distance
from glsplat.images import save_image
from glsplat.fitting.shape import ShapeWeights, Topology, fitting_shader, icosphere, orbit_cameras, regularizers, view_cameras

INPUT_VIEW = (30.0, 20.0)  # azimuth, elevation of the input image (degrees)
FIGURE_VIEW = (-60.0, 25.0)  # a view that is neither the input nor a supervising one


def load(name: str) -> glsplat.Mesh | None:
    """:func:`demo_common.load_geometry`'s mesh, or None when absent."""
    loaded = demo_common.load_geometry(name)
    return None if loaded is None else loaded[1]


def deform(mesh: glsplat.Mesh, generator: torch.Generator) -> glsplat.Mesh:
    """A random smooth deformation of a normalized mesh, normalized again.

    Per-axis scaling in [0.7, 1.3], a twist about the vertical axis of up to 1.2 radians per
    unit of height, and a bend (x shifts with the square of the height), in that order.
    """
    u = torch.rand(5, generator=generator)
    verts = mesh.verts * (0.7 + 0.6 * u[:3])
    x, y, z = verts.unbind(-1)
    angle = (2 * u[3] - 1) * 1.2 * y
    x, z = x * torch.cos(angle) - z * torch.sin(angle), x * torch.sin(angle) + z * torch.cos(angle)
    x = x + (2 * u[4] - 1) * 0.8 * y ** 2
    return mesh.replace(verts=torch.stack([x, y, z], -1)).normalized()


class MeshNet(nn.Module):
    """Image ``[B, H, W, 4]`` (premultiplied RGBA) to vertex offsets ``[B, V, 3]`` of a template.

    Four stride-2 convolutions, global average pooling, and a two-layer MLP whose last layer
    starts at zero, so the untrained network predicts the template itself.
    """

    def __init__(self, verts: int, width: int = 32, hidden: int = 256):
        super().__init__()
        layers, channels = [], 4
        for out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU()]
            channels = out
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4 * channels, hidden), nn.ReLU(), nn.Linear(hidden, verts * 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.verts = verts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.encoder(images.permute(0, 3, 1, 2))
        return self.head(features).view(-1, self.verts, 3)


class Shapes:
    """Deformed meshes with their input images ``[N, H, W, 4]`` and supervising views ``[N, K, H, W, 4]``."""

    def __init__(self, ctx, meshes: list[glsplat.Mesh], names: list[str], input_camera, cameras, shader):
        self.meshes, self.names = meshes, names
        with torch.no_grad():
            self.inputs = torch.cat([glsplat.render(ctx, m, camera=input_camera, shader=shader) for m in meshes])
            self.views = torch.stack([glsplat.render(ctx, m, camera=cameras, shader=shader) for m in meshes])


def make_shapes(ctx, sources: dict[str, glsplat.Mesh], per_mesh: int, generator, input_camera, cameras, shader) -> Shapes:
    meshes, names = [], []
    for name, mesh in sources.items():
        for _ in range(per_mesh):
            meshes.append(deform(mesh, generator))
            names.append(name)
    return Shapes(ctx, meshes, names, input_camera, cameras, shader)


def held_out_chamfer(template: glsplat.Mesh, offsets: torch.Tensor, shapes: Shapes, samples: int) -> float:
    """Mean Chamfer distance of ``template + offsets[i]`` (``[N, V, 3]``) to ``shapes.meshes[i]``."""
    distances = [surface_distance((template.verts + o, template.faces), m, samples)[0]
                 for o, m in zip(offsets, shapes.meshes)]
    return sum(distances) / len(distances)


def picture(ctx, template, offsets, shapes: Shapes, indices: list[int], shader) -> torch.Tensor:
    """Columns of held-out shapes; rows: input image, true shape and prediction from ``FIGURE_VIEW``."""
    size = shapes.inputs.shape[1]
    camera = orbit_cameras([FIGURE_VIEW[0]], FIGURE_VIEW[1], (size, size))
    columns = []
    with torch.no_grad():
        for i in indices:
            truth = glsplat.render(ctx, shapes.meshes[i], camera=camera, shader=shader)
            guess = glsplat.render(ctx, template.verts + offsets[i], camera, faces=template.faces, shader=shader)
            stack = torch.cat([shapes.inputs[i:i + 1], truth, guess])
            columns.append(torch.cat(list(glsplat.over_background(stack, (1.0, 1.0, 1.0))[..., :3]), 0))
    return torch.cat(columns, 1).clamp(0, 1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_common.parser(__doc__, "mesh_net")
    demo_common.add_training(parser, size=64, lr=1e-3, seed="the shapes and the network")
    parser.add_argument("--views", type=int, default=6, help="supervising views per shape")
    parser.add_argument("--level", type=int, default=2, help="icosphere subdivision level of the template")
    parser.add_argument("--train-per-mesh", type=int, default=24, help="training deformations of each mesh")
    parser.add_argument("--test-per-mesh", type=int, default=3, help="held-out deformations of each mesh")
    demo_common.add_epochs(parser, epochs=12, epochs_help="passes over the training shapes", batch=8,
                           batch_help="shapes per step")
    parser.add_argument("--samples", type=int, default=3000, help="surface samples per mesh for Chamfer")
    names = [*demo_common.EXAMPLES, *demo_common.SHARED]
    parser.add_argument("--meshes", nargs="+", choices=names, default=["spot", "teapot", "suzanne", "bunny"],
                        help=f"training meshes; {', '.join(demo_common.SHARED)} come from the optional folder "
                             f"{demo_common.MESHES} and are skipped when absent")
    parser.add_argument("--unseen-mesh", choices=names, default="fandisk",
                        help="a mesh never trained on, for a second test set")
    parser.add_argument("--no-unseen-mesh", action="store_true", help="skip the unseen-mesh test set")
    args = parser.parse_args(argv)
    if min(args.size, args.views, args.train_per_mesh, args.test_per_mesh, args.epochs, args.batch) < 1 or args.size < 16:
        parser.error("sizes and counts must be positive (--size at least 16)")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    ctx = glsplat.Context()
    shader = fitting_shader()
    size = (args.size, args.size)
    input_camera = orbit_cameras([INPUT_VIEW[0]], INPUT_VIEW[1], size)
    cameras = view_cameras(args.views, size)
    sources = {name: mesh for name in args.meshes if (mesh := load(name)) is not None}
    train = make_shapes(ctx, sources, args.train_per_mesh, generator, input_camera, cameras, shader)
    tests = {"unseen deformations": make_shapes(ctx, sources, args.test_per_mesh, generator, input_camera, cameras, shader)}
    unseen = None if args.no_unseen_mesh else load(args.unseen_mesh)
    if unseen is not None:
        tests[f"unseen mesh ({args.unseen_mesh})"] = make_shapes(ctx, {args.unseen_mesh: unseen}, args.test_per_mesh,
                                                                generator, input_camera, cameras, shader)

    template = icosphere(args.level)
    topology = Topology(template)
    weights = ShapeWeights()
    net = MeshNet(len(template.verts))
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

    def evaluate() -> dict[str, float]:
        net.eval()
        with torch.no_grad():
            result = {name: held_out_chamfer(template, net(s.inputs), s, args.samples) for name, s in tests.items()}
        net.train()
        return result

    rows = [dict(epoch=0, loss=float("nan"), **evaluate())]
    steps_per_epoch = math.ceil(len(train.meshes) / args.batch)
    bar = tqdm(total=args.epochs * steps_per_epoch, unit="step", desc="training")
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train.meshes), generator=generator)
        total = 0.0
        for first in range(0, len(order), args.batch):
            batch = order[first:first + args.batch]
            verts = template.verts + net(train.inputs[batch])
            images = glsplat.render(ctx, verts.repeat_interleave(args.views, 0), glsplat.Camera.cat([cameras] * len(batch)),
                                    faces=template.faces, shader=shader)
            targets = train.views[batch].flatten(0, 1)
            loss = (weights.image * ((images[..., :3] - targets[..., :3]) ** 2).mean()
                    + weights.silhouette * ((images[..., 3] - targets[..., 3]) ** 2).mean()
                    + sum(getattr(weights, name) * value for name, value in regularizers(verts, topology, weights).items()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4g}")
        rows.append(dict(epoch=epoch, loss=total / len(train.meshes), **evaluate()))
        tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows[-1].items() if k != "epoch"))
    bar.close()
    seconds = time.perf_counter() - start

    net.eval()
    with torch.no_grad():
        mean_offsets = net(train.inputs).mean(0, keepdim=True)
        predictions = {name: net(s.inputs) for name, s in tests.items()}
    baselines = {
        "template sphere": {name: held_out_chamfer(template, torch.zeros(len(s.meshes), *template.verts.shape), s, args.samples)
                            for name, s in tests.items()},
        "mean shape": {name: held_out_chamfer(template, mean_offsets.expand(len(s.meshes), -1, -1), s, args.samples)
                       for name, s in tests.items()},
    }

    table = markdown_table(rows, baselines, list(tests))
    command = " ".join(["python demos/train_mesh_net.py", *(sys.argv[1:] if argv is None else argv)])
    setting = (f"`{command}`: {len(train.meshes)} training shapes ({args.train_per_mesh} deformations each of "
               f"{', '.join(sources)}), {args.test_per_mesh} held-out deformations per mesh, icosphere level "
               f"{args.level} ({len(template.verts)} vertices), {args.views} supervising views at {args.size}x{args.size} px, "
               f"{args.epochs} epochs of batch {args.batch}, {seconds:.0f} s of training. Held-out Chamfer = mean distance "
               f"(both directions averaged, {args.samples} samples per surface), shapes normalized to longest side 1.")
    print(table)
    (args.out / "mesh_net_table.md").write_text(f"{setting}\n\n{table}\n")

    # Two held-out shapes of each mesh keep the figure small.
    figure = torch.cat([picture(ctx, template, predictions[name], s, [i for i in range(len(s.meshes)) if i % args.test_per_mesh < 2], shader)
                        for name, s in tests.items()], 1)
    save_image(args.out / "mesh_net.png", figure)
    print(f"wrote {args.out}/mesh_net_table.md, mesh_net.png (columns: held-out shapes; rows: input, truth, prediction)")
    return dict(rows=rows, baselines=baselines, seconds=seconds)


def markdown_table(rows: list[dict], baselines: dict[str, dict[str, float]], sets: list[str]) -> str:
    lines = ["| model | train loss | " + " | ".join(f"held-out Chamfer: {s}" for s in sets) + " |",
             "|---|--:|" + "--:|" * len(sets)]
    for name, values in baselines.items():
        lines.append(f"| baseline: {name} | | " + " | ".join(f"{values[s]:.4f}" for s in sets) + " |")
    for row in rows:
        label = "before training" if row["epoch"] == 0 else f"epoch {row['epoch']}"
        loss = "" if math.isnan(row["loss"]) else f"{row['loss']:.5f}"
        lines.append(f"| {label} | {loss} | " + " | ".join(f"{row[s]:.4f}" for s in sets) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
