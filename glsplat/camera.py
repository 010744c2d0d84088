"""Cameras: world space to OpenGL clip space, differentiably."""
from __future__ import annotations

import math

import torch

from . import checks

# Camera.orbit's default framing (distance from the target, vertical field of view in degrees): a mesh
# normalized to a longest side of 1 fills most of the image. The command line and the viewer use it.
ORBIT_DISTANCE, ORBIT_FOV_Y = 2.5, 40.0

# OpenCV's camera looks down +z with y down; OpenGL's looks down -z with y up.
_CV_TO_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))


def _batched(x, dims: int, dtype=None, device=None) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=dtype, device=device)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x[None] if x.dim() == dims else x


def _shaped(x: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """``x`` (batched) after checking it is ``[B, *shape]``."""
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        dims = ", ".join(map(str, shape))
        raise ValueError(f"{name}: expected [{dims}] or [B, {dims}], got {list(x.shape)}")
    return x


def _projection(fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, skew: torch.Tensor,
                image_size: tuple[int, int], near: float, far: float) -> torch.Tensor:
    """``[B, 4, 4]`` OpenGL projection of the pinhole with intrinsics ``K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]``.

    ``fx, fy, cx, cy, skew`` are ``[B]`` and in pixels, with OpenCV's convention that the center of the
    top-left pixel is (0, 0); the projection maps OpenGL camera points (looking down -z, y up) to
    clip space with depth ``near .. far`` at NDC z ``-1 .. 1``. The one builder of both
    :meth:`Camera.look_at` and :meth:`Camera.from_intrinsics`.
    """
    height, width = image_size
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    # OpenCV's pixel centers sit half a pixel before ours (ours: pixel (i, j) is centered at x = j + 0.5).
    return torch.stack([
        torch.stack([2 * fx / width, -2 * skew / width, 1 - 2 * (cx + 0.5) / width, zero], -1),
        torch.stack([zero, 2 * fy / height, 2 * (cy + 0.5) / height - 1, zero], -1),
        torch.stack([zero, zero, -(far + near) / (far - near) * one, -2 * far * near / (far - near) * one], -1),
        torch.stack([zero, zero, -one, zero], -1),
    ], -2)


class Camera:
    """A pinhole camera: a rigid world-to-camera transform and a projection to clip space.

    Conventions (stated once, used everywhere):

    * ``R`` ``[B, 3, 3]`` and ``t`` ``[B, 3]`` map world points into OpenGL's camera frame
      (x right, y up, looking down -z): ``p_cam = R @ p_world + t``.
    * ``projection`` ``[B, 4, 4]`` maps camera points to OpenGL clip space; after the divide
      by w, NDC x points right, y up, and z in [-1, 1] runs from the near to the far plane.
    * ``image_size`` is ``(H, W)``; row 0 of an image is its top.

    ``R``, ``t`` and ``projection`` are plain tensors: give them ``requires_grad`` to get
    gradients for the camera. Batches of cameras broadcast against batches of meshes.
    """

    def __init__(self, R: torch.Tensor, t: torch.Tensor, projection: torch.Tensor,
                 image_size: tuple[int, int]):
        self.R = _shaped(_batched(R, 2), "R", (3, 3))
        self.t = _shaped(_batched(t, 1, dtype=self.R.dtype, device=self.R.device), "t", (3,))
        self.projection = _shaped(_batched(projection, 2, dtype=self.R.dtype, device=self.R.device), "projection", (4, 4))
        batches = [x.shape[0] for x in (self.R, self.t, self.projection)]
        if len(set(batches) - {1}) > 1:
            raise ValueError(f"R, t, projection: batches of {batches} do not broadcast (need equal batches, or 1)")
        self.image_size = checks.image_size(image_size, "image_size")

    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), *, fov_y: float = 45.0,
                image_size: tuple[int, int] = (256, 256), near: float = 0.1,
                far: float = 100.0) -> "Camera":
        """A perspective camera at ``eye`` looking at ``target``.

        Args:
            eye, target, up: ``[3]`` or ``[B, 3]`` world-space points / direction. ``eye`` may
                require grad.
            fov_y: vertical field of view in degrees.
            image_size: ``(H, W)``; the aspect ratio is W / H (square pixels).
            near, far: clipping distances, 0 < near < far.
        """
        checks.clip_planes(near, far)
        checks.image_size(image_size, "image_size")
        if not 0 < float(fov_y) < 180:
            raise ValueError(f"fov_y: expected degrees in (0, 180), got {fov_y}")
        eye = _batched(eye, 1)
        target = _batched(target, 1, dtype=eye.dtype, device=eye.device)
        up = _batched(up, 1, dtype=eye.dtype, device=eye.device)
        back = eye - target  # camera +z, normalized after a division by its largest coordinate, whose
        # square could overflow (float32: from 1.8e19)
        back = torch.nn.functional.normalize(back / back.detach().abs().amax(-1, keepdim=True).clamp(min=1e-30), dim=-1)
        right = torch.nn.functional.normalize(torch.cross(up.expand_as(back), back, dim=-1), dim=-1)
        true_up = torch.cross(back, right, dim=-1)
        if not bool((torch.linalg.vector_norm(right.detach(), dim=-1) > 0.5).all()):
            raise ValueError("eye, target, up: eye must differ from target, and up must not be parallel to "
                             "the viewing direction")
        R = torch.stack([right, true_up, back], dim=-2)
        t = -(R @ eye[..., None])[..., 0]
        height, width = image_size
        # The pinhole whose vertical field of view is fov_y, centered: K's focal length in pixels and
        # principal point (OpenCV's pixel centers, as in from_intrinsics).
        focal = torch.full((1,), height / (2 * math.tan(math.radians(fov_y) / 2)), dtype=eye.dtype, device=eye.device)
        zero = torch.zeros_like(focal)
        projection = _projection(focal, focal, (width - 1) / 2 + zero, (height - 1) / 2 + zero, zero, image_size, near, far)
        return cls(R, t, projection.expand(R.shape[0], 4, 4), image_size)

    @classmethod
    def orbit(cls, azimuth=0.0, elevation=0.0, distance=ORBIT_DISTANCE, *, target=(0.0, 0.0, 0.0),
              fov_y: float = ORBIT_FOV_Y, image_size: tuple[int, int] = (256, 256), near: float | None = None,
              far: float | None = None) -> "Camera":
        """Cameras on a sphere around ``target``, looking at it with world +y up.

        Azimuth turns about +y: 0 looks from -z towards +z, 90 from +x. Elevation is above the
        xz plane. The defaults (:data:`ORBIT_DISTANCE`, :data:`ORBIT_FOV_Y`) frame a mesh normalized
        to a longest side of 1 (:meth:`glsplat.Mesh.normalized`).

        Args:
            azimuth, elevation: degrees, scalars or ``[B]`` (broadcast against each other);
                elevation strictly between -90 and 90. Differentiable.
            distance: from ``target``, scalar or ``[B]``, > 0.
            target: ``[3]`` or ``[B, 3]`` world-space point looked at.
            fov_y, image_size: as in :meth:`look_at`.
            near, far: clipping distances; default ``0.2 * distance`` and ``2 * distance``
                (the smallest distance of a batch).
        """
        azimuth, elevation, distance = (torch.as_tensor(x, dtype=torch.get_default_dtype()) if not torch.is_tensor(x)
                                        else x for x in (azimuth, elevation, distance))
        if not bool(torch.isfinite(elevation.detach()).all()) or bool((elevation.detach().abs() >= 90).any()):
            raise ValueError(f"elevation: expected degrees strictly between -90 and 90 (the view up is +y), "
                             f"got {elevation.tolist()}")
        if not bool(torch.isfinite(azimuth.detach()).all()):
            raise ValueError(f"azimuth: expected finite degrees, got {azimuth.tolist()}")
        if not bool(torch.isfinite(distance.detach()).all()) or bool((distance.detach() <= 0).any()):
            raise ValueError(f"distance: expected a positive distance, got {distance.tolist()}")
        azimuth, elevation, distance = torch.broadcast_tensors(torch.deg2rad(azimuth), torch.deg2rad(elevation),
                                                               distance)
        direction = torch.stack([azimuth.sin() * elevation.cos(), elevation.sin(), -azimuth.cos() * elevation.cos()], -1)
        target = _batched(target, 1, dtype=direction.dtype, device=direction.device)
        eye = target + distance[..., None] * direction.reshape(-1, 3)
        closest = float(distance.detach().min())
        return cls.look_at(eye, target, fov_y=fov_y, image_size=image_size,
                           near=0.2 * closest if near is None else near, far=2.0 * closest if far is None else far)

    @classmethod
    def from_intrinsics(cls, K, image_size: tuple[int, int], R=None, t=None, *,
                        near: float = 0.1, far: float = 100.0) -> "Camera":
        """A camera from OpenCV-style intrinsics and extrinsics.

        Args:
            K: ``[3, 3]`` or ``[B, 3, 3]`` intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``
                in pixels, with OpenCV's convention that the center of the top-left pixel is
                (0, 0) (so ``cx = (W - 1) / 2`` is the image center).
            image_size: ``(H, W)``.
            R, t: world-to-camera rotation ``[B, 3, 3]`` and translation ``[B, 3]`` in OpenCV's
                camera frame (x right, y down, looking down +z); identity and zero by default.
                Differentiable.
            near, far: clipping distances along the optical axis, 0 < near < far.
        """
        checks.clip_planes(near, far)
        checks.image_size(image_size, "image_size")
        K = _batched(K, 2)
        if K.shape[-2:] != (3, 3) or K.dim() != 3:
            raise ValueError(f"K: expected [3, 3] or [B, 3, 3] intrinsics, got {list(K.shape)}")
        focal = K.detach()[:, [0, 1], [0, 1]]
        if not bool(torch.isfinite(K.detach()).all() and (focal != 0).all()):
            raise ValueError(f"K: expected finite intrinsics with non-zero focal lengths fx = K[0, 0] and fy = K[1, 1], "
                             f"got fx, fy = {focal.tolist()}")
        flip = _CV_TO_GL.to(dtype=K.dtype, device=K.device)
        R = torch.eye(3, dtype=K.dtype, device=K.device)[None] if R is None else _shaped(_batched(R, 2), "R", (3, 3))
        t = torch.zeros(1, 3, dtype=K.dtype, device=K.device) if t is None else _shaped(_batched(t, 1), "t", (3,))
        projection = _projection(K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1], image_size, near, far)
        return cls(flip @ R, (flip @ t[..., None])[..., 0], projection, image_size)

    @classmethod
    def cat(cls, cameras) -> "Camera":
        """One batch of the cameras of ``cameras`` (a sequence of :class:`Camera` of one image size), in order."""
        cameras = list(cameras)
        if not cameras or not all(isinstance(c, Camera) for c in cameras):
            raise TypeError("cameras: expected a non-empty sequence of glsplat.Camera")
        if len({c.image_size for c in cameras}) > 1:
            raise ValueError(f"cameras: one image size is needed, got {sorted({c.image_size for c in cameras})}")
        full = [c[:] for c in cameras]  # each expanded to its own batch size
        return cls(*(torch.cat([getattr(c, name) for c in full]) for name in ("R", "t", "projection")),
                   cameras[0].image_size)

    def __getitem__(self, index) -> "Camera":
        """The cameras at ``index`` (an int, a slice, or an index tensor) of the batch, still batched."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        batch = self.batch_size
        return Camera(*(x.expand(batch, *x.shape[1:])[index] for x in (self.R, self.t, self.projection)),
                      self.image_size)

    def __len__(self) -> int:
        return self.batch_size

    def to(self, device=None, dtype=None) -> "Camera":
        """The same cameras with their tensors on ``device`` and/or of ``dtype``."""
        return Camera(*(x.to(device=device, dtype=dtype) for x in (self.R, self.t, self.projection)), self.image_size)

    def __repr__(self) -> str:
        return (f"Camera(batch_size={self.batch_size}, image_size={self.image_size}, "
                f"dtype={self.R.dtype}, device={self.R.device})")

    @property
    def batch_size(self) -> int:
        return max(self.R.shape[0], self.t.shape[0], self.projection.shape[0])

    @property
    def center(self) -> torch.Tensor:
        """``[B, 3]`` camera positions in world space."""
        return -(self.R.transpose(-1, -2) @ self.t[..., None])[..., 0]

    def view_matrix(self) -> torch.Tensor:
        """``[B, 4, 4]`` world-to-camera matrix (OpenGL camera frame)."""
        top = torch.cat([self.R, self.t[..., None]], -1).expand(self.batch_size, 3, 4)
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=top.dtype, device=top.device)
        return torch.cat([top, bottom.expand(self.batch_size, 1, 4)], -2)

    def full_matrix(self) -> torch.Tensor:
        """``[B, 4, 4]`` world-to-clip matrix, ``projection @ view``."""
        return self.projection @ self.view_matrix()

    def project(self, verts: torch.Tensor) -> torch.Tensor:
        """World points ``[B, V, 3]`` or ``[V, 3]`` to clip space ``[B, V, 4]``, differentiably.

        Mesh and camera batches broadcast (1 against B).
        """
        if verts.dim() == 2:
            verts = verts[None]
        homogeneous = torch.cat([verts, torch.ones_like(verts[..., :1])], -1)
        return homogeneous @ self.full_matrix().to(verts.dtype).transpose(-1, -2)
