"""Train a small CNN to read Spot's rotation from an image, with glsplat's rendering loss and no pose labels.

Spot (textured, Phong-lit, translation fixed) is rendered at rotations drawn uniformly within
--max-angle degrees (about any axis) of a three-quarter view. Two identical networks (same
architecture, same initial weights, same batches) predict the rotation in the 6D representation
of Zhou et al. (CVPR 2019), as an offset from the canonical view:

  * "render loss": renders its predicted pose with glsplat and minimizes the image difference
    to the input (blurred a little early on, as in glsplat.fitting); it never sees a label.
  * "supervised": minimizes the squared difference of its rotation matrix and the true one.

Writes, into the output folder (default out/pose_net/):
  pose_net_table.md   held-out median rotation error per epoch, for both networks
  pose_net.png        error curves, and held-out inputs next to renders of the label-free predictions

    python demos/train_pose_net.py              # 40 px, 320 training images, 10 epochs: a few minutes
    python demos/train_pose_net.py --quick      # a smoke run
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from tqdm import tqdm

import demo_common
import glsplat
from glsplat.fitting import posed
from glsplat.fitting.pose import blur
from glsplat.transforms import axis_angle_to_matrix, rotation_6d_to_matrix, rotation_angle

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

# Spot's head points toward -z and the camera sits on -z: a 35-degree yaw shows face and flank.
CANONICAL = axis_angle_to_matrix(torch.tensor([0.0, math.radians(35.0), 0.0]))
NETWORKS = ("render loss", "supervised")


def sample_rotations(n: int, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """``[n, 3, 3]`` rotations ``exp(w) @ CANONICAL``, ``w`` uniform in the ball of radius ``max_degrees``."""
    direction = F.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    radius = math.radians(max_degrees) * torch.rand(n, 1, generator=generator) ** (1 / 3)
    return axis_angle_to_matrix(direction * radius) @ CANONICAL


class PoseNet(torch.nn.Module):
    """Premultiplied RGBA ``[B, S, S, 4]`` -> rotation ``[B, 3, 3]``; an untrained net predicts about CANONICAL."""

    def __init__(self, size: int, width: int = 16):
        super().__init__()
        layers, channels = [], 4
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [torch.nn.Conv2d(channels, out, 3, stride=2, padding=1), torch.nn.ReLU()]
            channels = out
        self.features = torch.nn.Sequential(*layers, torch.nn.Flatten())
        side = size
        for _ in range(4):
            side = (side + 1) // 2
        self.head = torch.nn.Sequential(torch.nn.Linear(channels * side * side, 128), torch.nn.ReLU(),
                                        torch.nn.Linear(128, 6))
        # Small last layer: the prediction starts at the identity offset (the 6D identity below).
        with torch.no_grad():
            self.head[-1].weight.mul_(0.1)
            self.head[-1].bias.zero_()
        self.register_buffer("identity_6d", torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        d6 = self.head(self.features(image.permute(0, 3, 1, 2))) + self.identity_6d
        return rotation_6d_to_matrix(d6) @ CANONICAL


def held_out_error(net: PoseNet, images: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """``[N]`` rotation errors in degrees."""
    with torch.no_grad():
        return rotation_angle(net(images), rotations)


def plot(history: dict, examples: tuple, path: Path) -> None:
    """Error curves (left) and held-out inputs over renders of the label-free predictions (right)."""
    fig = plt.figure(figsize=(10, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    for name, errors in history.items():
        ax.plot(range(len(errors)), errors, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out median rotation error (°)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    inputs, predictions = examples
    grid = torch.cat([torch.cat(list(inputs), 1), torch.cat(list(predictions), 1)], 0)
    ax = fig.add_subplot(1, 2, 2)
    ax.imshow(glsplat.over_background(grid[None], (1.0, 1.0, 1.0))[0, ..., :3].clamp(0, 1).numpy())
    ax.set_title("held-out inputs (top), renders of label-free predictions (bottom)", fontsize=9)
    ax.axis("off")
    demo_common.save_figure(fig, path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_common.parser(__doc__, "pose_net")
    demo_common.add_training(parser, size=40, lr=2e-3, seed="data, initial weights and batches")
    parser.add_argument("--train", type=int, default=320, help="training images")
    parser.add_argument("--test", type=int, default=64, help="held-out images")
    demo_common.add_epochs(parser, epochs=10, epochs_help="epochs", batch=16, batch_help="batch size")
    parser.add_argument("--max-angle", type=float, default=45.0,
                        help="rotations within this many degrees of the canonical view")
    parser.add_argument("--sigma", type=float, default=1.0,
                        help="blur (px) of the rendering loss in epoch 1, falling to 0 by mid-run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, 128 training images, 3 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.train, args.test, args.epochs = 32, 128, 32, 3
    if min(args.size, args.train, args.test, args.epochs, args.batch) < 1:
        parser.error("--size, --train, --test, --epochs and --batch must be positive")
    return args


def main(argv=None, ctx: glsplat.Context | None = None) -> dict:
    """Train both networks; returns ``{network: [median held-out error in degrees, epochs 0..E]}``."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    # One OpenGL context per process: callers that hold one (tests) pass it in.
    ctx = glsplat.Context() if ctx is None else ctx
    spot = glsplat.load_example("spot").normalized()
    camera, shader = demo_common.pose_scene(args.size)
    zero = torch.zeros(1, 3)

    def render(rotations: torch.Tensor) -> torch.Tensor:
        return glsplat.render(ctx, posed(spot, rotations, zero.expand(len(rotations), 3)), camera=camera, shader=shader)

    rotations = sample_rotations(args.train + args.test, args.max_angle, g)
    with torch.no_grad():
        images = torch.cat([render(chunk) for chunk in rotations.split(64)])
    train_images, test_images = images[:args.train], images[args.train:]
    train_rot, test_rot = rotations[:args.train], rotations[args.train:]

    nets = {"render loss": PoseNet(args.size)}
    nets["supervised"] = copy.deepcopy(nets["render loss"])
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=args.lr) for name, net in nets.items()}
    history = {name: [held_out_error(net, test_images, test_rot).median().item()] for name, net in nets.items()}
    seconds = dict.fromkeys(nets, 0.0)

    steps_per_epoch = math.ceil(args.train / args.batch)
    bar = tqdm(total=args.epochs * steps_per_epoch, unit="batch", desc="training")
    for epoch in range(1, args.epochs + 1):
        sigma = max(0.0, args.sigma * (1 - 2 * (epoch - 1) / args.epochs))
        order = torch.randperm(args.train, generator=g)
        for batch in order.split(args.batch):
            image, true = train_images[batch], train_rot[batch]
            for name, net in nets.items():
                start = time.perf_counter()
                predicted = net(image)
                if name == "render loss":
                    loss = ((blur(render(predicted), sigma) - blur(image, sigma)) ** 2).mean()
                else:
                    loss = ((predicted - true) ** 2).sum((1, 2)).mean()
                optimizers[name].zero_grad()
                loss.backward()
                optimizers[name].step()
                seconds[name] += time.perf_counter() - start
            bar.update()
        for name, net in nets.items():
            history[name].append(held_out_error(net, test_images, test_rot).median().item())
        bar.set_postfix({name: f"{errors[-1]:.1f}°" for name, errors in history.items()})
    bar.close()

    lines = ["| epoch | " + " | ".join(f"{name}: median error" for name in NETWORKS) + " |",
             "|---:|" + "---:|" * len(NETWORKS)]
    for epoch in range(args.epochs + 1):
        lines.append(f"| {epoch} | " + " | ".join(f"{history[name][epoch]:.1f}°" for name in NETWORKS) + " |")
    table = "\n".join(lines)
    setting = (f"Spot, {args.size}x{args.size} px, rotations within {args.max_angle:g}° of a three-quarter view, "
               f"{args.train} training / {args.test} held-out images, batch {args.batch}, Adam lr {args.lr}, "
               f"seed {args.seed}; epoch 0 is the untrained network. Training time: "
               + ", ".join(f"{name} {seconds[name]:.0f} s" for name in NETWORKS) + ".")
    print(table)
    (args.out / "pose_net_table.md").write_text(f"{setting}\n\n{table}\n")

    with torch.no_grad():
        shown = test_images[:6]
        examples = (shown, render(nets["render loss"](shown)))
    plot(history, examples, args.out / "pose_net.png")
    print(f"{setting}\nwrote {args.out}/pose_net_table.md, pose_net.png")
    return history


if __name__ == "__main__":
    main()
