"""The viewer's panels: pictures of a :class:`Snapshot` at the render's resolution (numpy, no window).

Each panel is float RGB ``[H, W, 3]`` in [0, 1], row 0 at the top, plus what the frame
composer should add at display resolution (arrows, tile labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .arrows import Arrows, vertex_arrows
from .problem import Snapshot

BACKGROUND = np.array([0.16, 0.17, 0.20])
# Gradient magnitudes are normalized by this quantile of the non-zero ones: the maximum is
# usually a handful of silhouette pixels that would leave the rest of the map black.
HEAT_QUANTILE = 0.98

# Color ramps as evenly spaced anchors, interpolated linearly (no matplotlib at run time).
INFERNO = np.array([[0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
                    [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]]) / 255
# Arrows and edges: readable on the gray render, from faint (blue) to strong (red).
COOL_HOT = np.array([[60, 150, 255], [60, 220, 200], [250, 230, 60], [255, 140, 30], [240, 40, 40]]) / 255


def colormap(values: np.ndarray, ramp: np.ndarray = INFERNO) -> np.ndarray:
    """``[..., 3]`` colors for ``values`` in [0, 1] (clipped)."""
    position = np.clip(values, 0, 1) * (len(ramp) - 1)
    low = np.minimum(position.astype(int), len(ramp) - 2)
    frac = (position - low)[..., None]
    return ramp[low] * (1 - frac) + ramp[low + 1] * frac


def normalize(values: np.ndarray) -> np.ndarray:
    """Non-negative values scaled to [0, 1] by their high quantile (all zeros stay zeros)."""
    nonzero = values[values > 0]
    if nonzero.size == 0:
        return np.zeros_like(values)
    return np.clip(values / np.quantile(nonzero, HEAT_QUANTILE), 0, 1)


def over(rgba: torch.Tensor, background: np.ndarray) -> np.ndarray:
    """Premultiplied ``[H, W, 4]`` over an RGB color or image, as float RGB."""
    rgba = rgba.detach().clamp(0, 1).numpy()
    return rgba[..., :3] + (1 - rgba[..., 3:]) * background


def dimmed(snapshot: Snapshot) -> np.ndarray:
    """The render in gray at reduced contrast, as a base for overlays."""
    rgb = over(snapshot.image, BACKGROUND)
    gray = rgb @ np.array([0.3, 0.59, 0.11])
    return (0.12 + 0.45 * gray)[..., None].repeat(3, -1)


def heat_over(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    """A magnitude map over ``base``: zero leaves the base, larger values are hotter and opaque."""
    level = normalize(values)
    alpha = np.clip(3 * level, 0, 1)[..., None]
    return base * (1 - alpha) + colormap(0.3 + 0.7 * np.sqrt(level)) * alpha


def checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    rows, cols = np.indices((height, width)) // cell
    shade = np.where((rows + cols) % 2 == 0, 0.22, 0.30)
    return shade[..., None].repeat(3, -1)


@dataclass
class PanelImage:
    pixels: np.ndarray  # [H, W, 3] float RGB
    arrows: Arrows | None = None
    # (u, v, text): text whose top-right corner sits at (u, v), fractions of the image.
    labels: list[tuple[float, float, str]] = field(default_factory=list)
    smooth: bool = True  # resample smoothly to the window (False: show pixels as blocks)
    note: str = ""  # appended to the panel's title
    loss_plot: bool = True  # False where the corner plot would hide content (the 2 x 2 grid's last tile)


def render_panel(snapshot: Snapshot) -> PanelImage:
    return PanelImage(over(snapshot.image, BACKGROUND))


def target_panel(snapshot: Snapshot) -> PanelImage:
    """The target, with the current render ghosted over it at half strength."""
    return PanelImage(0.5 * over(snapshot.target, BACKGROUND) + 0.5 * over(snapshot.image, BACKGROUND))


def image_heat_panel(snapshot: Snapshot) -> PanelImage:
    """|dLoss/dImage| per pixel (over RGBA)."""
    return PanelImage(heat_over(snapshot.image_grad.norm(dim=-1).numpy(), dimmed(snapshot)))


def position_heat_panel(snapshot: Snapshot) -> PanelImage:
    """|dLoss/d(splat position)| per pixel: where samples are pulled, i.e. where vertex gradients come from."""
    return PanelImage(heat_over(snapshot.position_grad.norm(dim=-1).numpy(), dimmed(snapshot)))


def arrows_panel(snapshot: Snapshot) -> PanelImage:
    arrows = vertex_arrows(snapshot.camera, snapshot.verts, snapshot.vert_grad, snapshot.visible)
    return PanelImage(dimmed(snapshot), arrows=arrows)


def buffer_gain(buffer: torch.Tensor) -> float:
    """How much a faint buffer is brightened for display: to make its peak alpha 1."""
    peak = buffer[..., 3].max().item()
    return 1.0 if peak == 0 or peak >= 0.99 else 1.0 / peak


def buffer_image(buffer: torch.Tensor) -> np.ndarray:
    """A buffer over a checkerboard; premultiplied, so scaling it keeps its colors."""
    height, width = buffer.shape[:2]
    return over(buffer * buffer_gain(buffer), checkerboard(height, width))


def alpha_edge_image(snapshot: Snapshot) -> np.ndarray:
    """Coverage in gray, with partly covered pixels (the splat's soft edge) colored by their alpha."""
    alpha = snapshot.image[..., 3].clamp(0, 1).numpy()
    gray = alpha[..., None].repeat(3, -1) * 0.85
    edge = ((alpha > 0.02) & (alpha < 0.98))[..., None]
    return np.where(edge, colormap(alpha, COOL_HOT), gray)


def _buffer_note(buffer: torch.Tensor, layers: int) -> str:
    """Most buffers are faint or empty away from edges; say how much they hold."""
    peak = buffer[..., 3].max().item()
    if peak > 0:
        gain = buffer_gain(buffer)
        return f"peak alpha {peak:.2f}" + (f", shown x{gain:.1f}" if gain > 1 else "")
    return "empty" + (" (1 layer)" if layers == 1 else "")


def single_buffer_panel(index: int, name: str) -> Callable[[Snapshot], PanelImage]:
    def panel(snapshot: Snapshot) -> PanelImage:
        buffer = snapshot.buffers[index]
        return PanelImage(buffer_image(buffer), smooth=False, note=_buffer_note(buffer, snapshot.layers))
    panel.__doc__ = f"The {name} buffer (normalized, premultiplied) over a checkerboard."
    return panel


def alpha_edge_panel(snapshot: Snapshot) -> PanelImage:
    return PanelImage(alpha_edge_image(snapshot), smooth=False)


def buffers_panel(snapshot: Snapshot) -> PanelImage:
    """S+, S0, S- and the alpha edge in a 2 x 2 grid."""
    names = ("S+", "S0", "S-")
    tiles = [buffer_image(buffer) for buffer in snapshot.buffers] + [alpha_edge_image(snapshot)]
    pixels = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
    labels = [(u, v, f"{name} {_buffer_note(buffer, snapshot.layers).replace('peak alpha', 'peak')}")
              for (u, v), name, buffer in zip(((0.5, 0.0), (1.0, 0.0), (0.5, 0.5)), names, snapshot.buffers)]
    return PanelImage(pixels, labels=labels + [(1.0, 0.5, "alpha edge")], smooth=False, loss_plot=False)


@dataclass(frozen=True)
class Panel:
    name: str
    key: str  # the key that shows it
    help: str
    make: Callable[[Snapshot], PanelImage]


PANELS = (
    Panel("render", "1", "the splat render of the current parameters", render_panel),
    Panel("target", "2", "the target, with the render ghosted over it", target_panel),
    Panel("heat: dL/dimage", "3", "per-pixel |dLoss/dImage|", image_heat_panel),
    Panel("heat: dL/dposition", "4", "per-pixel |dLoss/d splat position| (what moves vertices)", position_heat_panel),
    Panel("arrows", "5", "per-vertex descent directions, colored by gradient magnitude", arrows_panel),
    Panel("S+", "6", "splat buffer: samples in front of the surface seen there", single_buffer_panel(0, "S+")),
    Panel("S0", "7", "splat buffer: samples on the surface seen there", single_buffer_panel(1, "S0")),
    Panel("S-", "8", "splat buffer: samples behind the surface seen there", single_buffer_panel(2, "S-")),
    Panel("alpha edge", "9", "coverage; the soft edge's partly covered pixels in color", alpha_edge_panel),
    Panel("buffers", "0", "S+, S0, S- and the alpha edge side by side", buffers_panel),
)
