"""Orbit / pan / zoom camera control, turned into a :class:`glsplat.Camera`.

The home view is the one ``glsplat render`` uses for its first view (azimuth 0, elevation 15
degrees, 2.5 units from the origin, 40 degree field of view), so a PNG written by
``glsplat render MESH --out target.png`` lines up with the viewer's home view as a target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..camera import ORBIT_DISTANCE, ORBIT_FOV_Y, Camera

# Radians of orbit per pixel of mouse drag: half the window's width turns the mesh ~90 degrees.
ORBIT_PER_PIXEL = math.radians(0.4)
# Each scroll notch moves the camera this factor closer.
ZOOM_PER_NOTCH = 0.9
MIN_DISTANCE, MAX_DISTANCE = 0.3, 20.0
# Elevation stays short of the poles, where look_at's up vector degenerates.
MAX_ELEVATION = math.radians(89.0)


@dataclass(frozen=True)
class OrbitView:
    """Where the camera is: spherical coordinates around a (pannable) point it looks at."""

    azimuth: float = 0.0  # radians, about world +y; 0 looks from -z towards +z
    elevation: float = math.radians(15.0)  # radians above the xz plane
    distance: float = ORBIT_DISTANCE
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_y: float = ORBIT_FOV_Y  # degrees

    def eye(self) -> torch.Tensor:
        """``[3]`` camera position in world space."""
        return self.camera((1, 1)).center[0]

    def camera(self, image_size: tuple[int, int]) -> Camera:
        """The :class:`Camera` for an image of ``(H, W)`` pixels.

        The depth range scales with the distance (0.2 d to 2 d), which at the home distance is
        ``glsplat render``'s 0.5 to 5 and keeps a unit-size mesh inside it when zooming.
        """
        return Camera.orbit(math.degrees(self.azimuth), math.degrees(self.elevation), self.distance,
                            target=self.target, fov_y=self.fov_y, image_size=image_size)


class OrbitController:
    """Mouse gestures in pixels to an :class:`OrbitView`; pure state, no window.

    Args:
        home: the view ``reset`` returns to.
        viewport_height: window height in pixels, which sets how far a pan drag moves.
    """

    def __init__(self, home: OrbitView | None = None, viewport_height: int = 512):
        self.home = OrbitView() if home is None else home
        self.view = self.home
        self.viewport_height = viewport_height

    def orbit(self, dx: float, dy: float) -> None:
        """Turn the camera around the target as if dragging the mesh's front: right turns it right, down shows its top."""
        elevation = self.view.elevation + dy * ORBIT_PER_PIXEL
        elevation = max(-MAX_ELEVATION, min(MAX_ELEVATION, elevation))
        self.view = replace(self.view, azimuth=self.view.azimuth + dx * ORBIT_PER_PIXEL, elevation=elevation)

    def pan(self, dx: float, dy: float) -> None:
        """Slide the target in the image plane so the point under the cursor follows it."""
        camera = self.view.camera((1, 1))
        right, up = camera.R[0, 0], camera.R[0, 1]
        # World units per pixel at the target's depth.
        scale = 2 * self.view.distance * math.tan(math.radians(self.view.fov_y) / 2) / self.viewport_height
        shift = (-dx * right + dy * up) * scale
        target = tuple(float(v) for v in torch.tensor(self.view.target) + shift)
        self.view = replace(self.view, target=target)

    def zoom(self, notches: float) -> None:
        """Scroll up (positive) to move closer."""
        distance = self.view.distance * ZOOM_PER_NOTCH**notches
        self.view = replace(self.view, distance=max(MIN_DISTANCE, min(MAX_DISTANCE, distance)))

    def reset(self) -> None:
        self.view = self.home

    def camera(self, image_size: tuple[int, int]) -> Camera:
        return self.view.camera(image_size)
