"""What the viewer's loss compares the render with: the mesh at another pose, or an image."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..images import load_image
from ..render import over_background
from ..transforms import axis_angle_to_matrix

WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class PoseTarget:
    """The mesh itself turned by ``azimuth`` degrees about +y, then ``elevation`` degrees about +x,
    then moved by ``translation`` (world units), seen by the viewer's current camera."""

    azimuth: float = 20.0
    elevation: float = 0.0
    translation: tuple[float, float, float] = (0.08, 0.0, 0.0)

    def rotation(self) -> torch.Tensor:
        turn = axis_angle_to_matrix(torch.tensor([0.0, math.radians(self.azimuth), 0.0]))
        tilt = axis_angle_to_matrix(torch.tensor([math.radians(self.elevation), 0.0, 0.0]))
        return tilt @ turn

    def apply(self, verts: torch.Tensor) -> torch.Tensor:
        """``[V, 3]`` vertices moved to the target pose."""
        return verts @ self.rotation().T.to(verts.dtype) + torch.tensor(self.translation, dtype=verts.dtype)


@dataclass(frozen=True)
class ImageTarget:
    """A fixed image, compared with the render of the current view.

    ``image`` is ``[H, W, 4]`` premultiplied RGBA when the file had alpha, and then the loss
    compares premultiplied RGBA; an opaque ``[H, W, 3]`` image is compared with the render
    composited over white (as ``glsplat render --background white`` writes). It is meant for the viewer's
    home view (key R returns there).
    """

    image: torch.Tensor

    @classmethod
    def load(cls, path: Path, size: tuple[int, int]) -> "ImageTarget":
        """Read an image file (:func:`glsplat.images.load_image`), resized (bilinear) to ``size`` = (H, W) if it differs."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such target image: {path}")
        return cls.from_image(*load_image(path), size)

    @classmethod
    def from_image(cls, rgba: torch.Tensor, has_alpha: bool, size: tuple[int, int]) -> "ImageTarget":
        """A premultiplied RGBA image ``[H, W, 4]`` as :func:`glsplat.images.load_image` reads it,
        resized (bilinear) to ``size`` = (H, W) if it differs."""
        if tuple(rgba.shape[:2]) != tuple(size):
            # Premultiplied, so the resize blends color only where there is coverage.
            rgba = torch.nn.functional.interpolate(rgba.permute(2, 0, 1)[None], size=tuple(size), mode="bilinear",
                                                   antialias=True, align_corners=False)[0].permute(1, 2, 0)
        return cls(rgba if has_alpha else rgba[..., :3])

    def comparable(self, rgba: torch.Tensor) -> torch.Tensor:
        """The render ``[1, H, W, 4]`` in the target's color space (premultiplied RGBA, or RGB over white)."""
        if self.image.shape[-1] == 4:
            return rgba
        return over_background(rgba, WHITE)[..., :3]

    def premultiplied(self) -> torch.Tensor:
        """``[1, H, W, 4]`` for display."""
        if self.image.shape[-1] == 4:
            return self.image[None]
        return torch.cat([self.image, torch.ones_like(self.image[..., :1])], -1)[None]
