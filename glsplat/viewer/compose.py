"""One window frame as an image: a panel scaled to the window, arrows, text and the loss plot."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..images import to_uint8
from .arrows import Arrows
from .panels import COOL_HOT, PanelImage, colormap

TEXT = (235, 235, 235)
SHADOW = (0, 0, 0)


@lru_cache(maxsize=4)
def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int, anchor: str = "la") -> None:
    """Light text with a dark outline, readable on any panel."""
    draw.text(xy, text, fill=TEXT, font=font(size), anchor=anchor, stroke_width=max(1, size // 8), stroke_fill=SHADOW)


def draw_arrows(draw: ImageDraw.ImageDraw, arrows: Arrows, scale: tuple[float, float], width: int) -> None:
    """Arrows (image pixels) scaled to the canvas, weakest first so the strong ones stay on top."""
    sx, sy = scale
    colors = (colormap(arrows.strength.numpy(), COOL_HOT) * 255).astype(int)
    head = 3.0 * width + 2
    for i in np.argsort(arrows.strength.numpy()):
        x0, y0 = arrows.start[i, 0].item() * sx, arrows.start[i, 1].item() * sy
        x1, y1 = arrows.end[i, 0].item() * sx, arrows.end[i, 1].item() * sy
        color = tuple(colors[i])
        draw.line([(x0, y0), (x1, y1)], fill=color, width=width)
        length = math.hypot(x1 - x0, y1 - y0)
        if length < 1:
            continue
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        h = min(head, 0.6 * length)
        draw.polygon([(x1 + ux * h * 0.3, y1 + uy * h * 0.3),
                      (x1 - ux * h - uy * h * 0.5, y1 - uy * h + ux * h * 0.5),
                      (x1 - ux * h + uy * h * 0.5, y1 - uy * h - ux * h * 0.5)], fill=color)


def draw_loss_plot(canvas: Image.Image, losses: list[float]) -> None:
    """log10(loss) over the optimization, in the bottom-right corner."""
    if len(losses) < 2:
        return
    width, height = canvas.size
    box_w, box_h = int(width * 0.34), int(height * 0.2)
    x0, y0 = width - box_w - 8, height - box_h - 8
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill=(0, 0, 0, 150), outline=(200, 200, 200, 180))
    logs = np.log10(np.maximum(np.asarray(losses, dtype=float), 1e-12))
    lo, hi = logs.min(), logs.max()
    span = max(hi - lo, 1e-6)
    pad = 6
    xs = x0 + pad + np.linspace(0, box_w - 2 * pad, len(logs))
    size = max(10, box_h // 7)
    ys = y0 + pad + (hi - logs) / span * (box_h - 2 * pad - size - 4)
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(255, 200, 60, 255), width=2)
    draw.text((x0 + pad, y0 + box_h - 3), f"log loss, {len(losses)} steps", fill=TEXT, font=font(size), anchor="ld")
    canvas.alpha_composite(overlay)


def waiting(size: tuple[int, int], text: str) -> np.ndarray:
    """The frame before the first snapshot: ``text`` centered on black, ``uint8 [h, w, 3]``."""
    height, width = size
    canvas = Image.new("RGB", (width, height))
    _text(ImageDraw.Draw(canvas), (width / 2, height / 2), text, max(11, min(height, width) // 32), anchor="mm")
    return np.asarray(canvas)


def compose(panel: PanelImage, size: tuple[int, int], title: str, status: list[str],
            losses: list[float]) -> np.ndarray:
    """The frame: ``uint8 [h, w, 3]`` for a canvas of ``size`` = (h, w), row 0 at the top.

    Args:
        panel: the panel at the render's resolution.
        title: the panel's name, top left.
        status: lines at the bottom left (loss, step, mode, timings).
        losses: the loss history for the corner plot (nothing drawn under two points, nor on a panel
            whose corner holds content, ``panel.loss_plot`` False).
    """
    height, width = size
    pixels = to_uint8(torch.from_numpy(panel.pixels))
    resample = Image.BICUBIC if panel.smooth else Image.NEAREST
    canvas = Image.fromarray(pixels).resize((width, height), resample).convert("RGBA")
    draw = ImageDraw.Draw(canvas)
    text_size = max(11, min(height, width) // 32)
    if panel.arrows is not None and len(panel.arrows.start):
        image_h, image_w = panel.pixels.shape[:2]
        draw_arrows(draw, panel.arrows, (width / image_w, height / image_h), max(1, round(min(height, width) / 300)))
    for u, v, label in panel.labels:  # one line down, clear of the title
        _text(draw, (u * width - 6, v * height + text_size + 14), label, text_size, anchor="ra")
    _text(draw, (6, 6), f"{title}: {panel.note}" if panel.note else title, text_size + 2)
    bottom = height - 6 - (text_size + 4) * (len(status) - 1)
    for i, line in enumerate(status):
        _text(draw, (6, bottom + i * (text_size + 4)), line, text_size, anchor="ld")
    if panel.loss_plot:
        draw_loss_plot(canvas, losses)
    return np.asarray(canvas.convert("RGB"))
