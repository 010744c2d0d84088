"""Shaders: torch callables from rasterized fragments to straight RGBA.

A shader is any callable ``shader(frags: Fragments) -> [N, 4]`` returning straight (not
premultiplied) RGBA for the ``N`` covered samples of the raster (all images and layers, in the
order of ``frags.index``); alpha is usually 1 (``frags.mask``), less for translucent surfaces.
Shading only the covered samples, rather than whole frames, is what makes it cheap: the
background can be most of an image. The built-in shaders take their base color ("albedo")
from the mesh: its texture if it has one and UVs, else its vertex colors, else a neutral gray
(:data:`DEFAULT_ALBEDO`); pass ``albedo=`` a color to override it.

Their default light weights conserve energy: ambient + headlight (+ specular) sum to 1, so a
white surface facing the camera is at most white, and an untextured mesh is mid-gray with its
shape shaded, readable over a white or black background. Brighter set-ups (several lights,
colors above 1) go through :func:`soft_clamp`, which keeps every color in [0, 1] (so the
render is valid premultiplied RGBA, ``rgb <= alpha``) while keeping a gradient: it is the
identity up to :data:`KNEE` and compresses what lies above it smoothly towards 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch
import torch.nn.functional as F

from . import checks
from .camera import Camera
from .interpolate import interpolate
from .mesh import Mesh, normalize, vertex_normals
from .raster import Raster


# Base color of a mesh with neither texture nor vertex colors: a neutral gray (linear), like
# Blender's default material (0.8) and PyTorch3D's white under its 0.5 ambient, a bit darker so
# that lit faces still stand out from a white background.
DEFAULT_ALBEDO = (0.75, 0.75, 0.75)
# Lit colors are the identity up to here; above, soft_clamp compresses them into [KNEE, 1).
KNEE = 0.9


def soft_clamp(x: torch.Tensor, knee: float = KNEE) -> torch.Tensor:
    """``x`` below ``knee``; above, ``knee + (1 - knee) * s / (1 + s)`` with ``s = (x - knee) / (1 - knee)``.

    Continuous with a continuous slope at the knee, strictly increasing and below 1 everywhere:
    its slope ``1 / (1 + s) ** 2`` falls off slowly (1/49 at ``x = 1.5``), so over-bright pixels
    still pass a gradient, unlike ``clamp(max=1)``.
    """
    return _SoftClamp.apply(x, knee)


class _SoftClamp(torch.autograd.Function):
    """:func:`soft_clamp` as ``x - d^2 / (1 - knee + d)``, ``d = max(x - knee, 0)``, slope
    ``((1 - knee) / (1 - knee + d))^2``: a few whole-tensor passes each way (it runs on every
    covered sample of every render)."""

    @staticmethod
    def forward(ctx, x, knee):
        denominator = (x - knee).clamp_(min=0).add_(1 - knee)  # 1 - knee + d
        ctx.save_for_backward(denominator)
        ctx.width = 1 - knee
        return x - (denominator - ctx.width).square_().div_(denominator)

    @staticmethod
    def backward(ctx, grad):
        (denominator,) = ctx.saved_tensors
        return grad * (ctx.width / denominator).square_(), None


def power(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """``x ** exponent``; for a whole exponent up to 256, by repeated squaring (torch's pow is slow on the CPU)."""
    whole = int(exponent)
    if whole != exponent or not 0 < whole <= 256:
        return x**exponent
    result, square = None, x
    while whole:
        if whole & 1:
            result = square if result is None else result * square
        whole >>= 1
        if whole:
            square = square * square
    return result


@dataclass
class Fragments:
    """The covered samples of a raster of a mesh seen by a camera, with lazily computed surface quantities.

    Every per-sample quantity is ``[N, C]`` over the ``N`` covered samples; :meth:`scatter`
    turns one into full frames ``[B, K, H, W, C]``. ``mesh.verts`` is batched ``[B, V, 3]`` in
    world space (B matching the raster).
    """

    rast: Raster
    mesh: Mesh
    camera: Camera

    @property
    def index(self) -> torch.Tensor:
        """int64 ``[N]``: each covered sample's flat index into the raster's ``[B, K, H, W]`` (``rast.index``)."""
        return self.rast.index

    @cached_property
    def batch_index(self) -> torch.Tensor:
        """int64 ``[N]``: the image each sample belongs to (ascending)."""
        _, layers, height, width = self.rast.shape
        return self.index // (layers * height * width)

    @cached_property
    def _samples(self) -> Raster:
        """The covered samples as the raster of one image of 1 x N pixels (for :func:`glsplat.interpolate`)."""
        # index_select rather than advanced indexing: several times faster on the CPU.
        tri_id = self.rast.tri_id.reshape(-1).index_select(0, self.index)
        bary = self.rast.bary.reshape(-1, 2).index_select(0, self.index)
        return Raster(tri_id.view(1, 1, 1, -1), bary.view(1, 1, 1, -1, 2), bary.new_zeros(1, 1, 1, tri_id.shape[0]))

    def interpolate(self, attr: torch.Tensor, faces: torch.Tensor | None = None) -> torch.Tensor:
        """Per-vertex ``attr`` (``[V, C]`` / ``[B, V, C]``) at every covered sample, ``[N, C]``.

        ``faces`` (default: the mesh's) index ``attr``'s ``V`` axis; face-varying attributes
        pass their own index (as :func:`glsplat.interpolate`).
        """
        faces = self.mesh.faces if faces is None else faces
        if attr.dim() == 3 and attr.stride(0) == 0:
            attr = attr[:1]  # a mesh expanded over a batch of cameras: one set of vertices
        if attr.dim() == 2 or attr.shape[0] == 1:
            # One set of vertices for every sample: interpolate's compiled gather and scatter.
            return interpolate(attr.reshape(1, *attr.shape[-2:]), self._samples, faces).view(-1, attr.shape[-1])
        samples = self._samples
        face = samples.tri_id.view(-1).long() - 1
        rows = faces.to(device=face.device, dtype=torch.long).index_select(0, face)
        rows = rows + self.batch_index[:, None] * attr.shape[1]
        values = attr.reshape(-1, attr.shape[-1]).index_select(0, rows.reshape(-1)).view(*rows.shape, -1)
        b01 = samples.bary.view(-1, 2).to(attr.dtype)
        return values[:, 0] * b01[:, :1] + values[:, 1] * b01[:, 1:] + values[:, 2] * (1 - b01.sum(-1, keepdim=True))

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """Per-sample ``values`` ``[N, C]`` as full frames ``[B, K, H, W, C]`` (``rast.scatter``)."""
        return self.rast.scatter(values)

    @cached_property
    def mask(self) -> torch.Tensor:
        """``[N, 1]`` ones in the mesh's dtype: the alpha of an opaque surface."""
        return self.mesh.verts.new_ones(self.index.shape[0], 1)

    @cached_property
    def positions(self) -> torch.Tensor:
        """``[N, 3]`` world-space surface points."""
        return self.interpolate(self.mesh.verts)

    @cached_property
    def _smooth_normals(self) -> torch.Tensor:
        verts = self.mesh.verts
        if verts.dim() == 3 and verts.stride(0) == 0:
            verts = verts[:1]  # a mesh expanded over a batch of cameras: its normals once
        return self.interpolate(vertex_normals(verts, self.mesh.faces))

    @cached_property
    def normals(self) -> torch.Tensor:
        """``[N, 3]`` unit normals, smooth (interpolated area-weighted vertex normals)."""
        return normalize(self._smooth_normals)

    @cached_property
    def _center(self) -> torch.Tensor:
        """The camera center of every sample, ``[N, 3]``, or ``[1, 3]`` for one camera."""
        center = self.camera.center.to(self.mesh.verts.dtype).reshape(-1, 3)
        return center[self.batch_index] if center.shape[0] > 1 else center

    @cached_property
    def view_dirs(self) -> torch.Tensor:
        """``[N, 3]`` unit vectors from the surface towards the camera."""
        return normalize(self._center - self.positions)

    # Channels first, ``[C, N]`` (or ``[C, 1]``), for the built-in lighting: torch's CPU kernels
    # broadcast and reduce across the rows of a contiguous [3, N] several times faster than
    # along the short last axis of [N, 3].
    @cached_property
    def _positions_cf(self) -> torch.Tensor:
        return self.positions.t().contiguous()

    @cached_property
    def _normals_cf(self) -> torch.Tensor:
        return normalize(self._smooth_normals.t().contiguous(), dim=0)

    @cached_property
    def _view_dirs_cf(self) -> torch.Tensor:
        return normalize(self._center.t() - self._positions_cf, dim=0)

    @cached_property
    def uv(self) -> torch.Tensor:
        """``[N, 2]`` texture coordinates (face-varying UVs interpolated)."""
        if self.mesh.uvs is None:
            raise ValueError("mesh: this shader needs UVs but the mesh has none")
        faces = self.mesh.faces if self.mesh.uv_faces is None else self.mesh.uv_faces
        return self.interpolate(self.mesh.uvs, faces)

    def sample_texture(self, texture: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` bilinear lookups at :attr:`uv` of ``[Ht, Wt, C]`` or per-image ``[B, Ht, Wt, C]``."""
        if texture.dim() == 3 or texture.shape[0] == 1:
            return sample_texture(texture.reshape(texture.shape[-3:]), self.uv)
        counts = torch.bincount(self.batch_index, minlength=texture.shape[0]).tolist()
        return torch.cat([sample_texture(texture[b], uv) for b, uv in enumerate(self.uv.split(counts))])


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup, differentiable in ``texture`` and ``uv``.

    Args:
        texture: ``[Ht, Wt, C]``, or ``[B, Ht, Wt, C]`` with ``uv`` ``[B, ..., 2]``; row 0 at the
            top of the image.
        uv: ``[..., 2]``; u runs left to right, v bottom to top (OBJ's convention), texel
            centers at ((j + 0.5) / Wt, 1 - (i + 0.5) / Ht); outside [0, 1] the border texel
            is repeated.

    Returns:
        ``[..., C]``.
    """
    checks.texture_lookup(texture, uv)
    batch = 1 if texture.dim() == 3 else uv.shape[0]
    image = texture.reshape(-1, *texture.shape[-3:]).permute(0, 3, 1, 2).to(uv.dtype).expand(batch, -1, -1, -1)
    grid = torch.stack([2 * uv[..., 0] - 1, 1 - 2 * uv[..., 1]], -1).reshape(batch, 1, -1, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2).reshape(*uv.shape[:-1], texture.shape[-1])


def mesh_albedo(frags: Fragments) -> torch.Tensor:
    """``[N, C]`` base color: texture, else vertex colors, else :data:`DEFAULT_ALBEDO`."""
    mesh = frags.mesh
    if mesh.texture is not None and mesh.uvs is not None:
        return frags.sample_texture(mesh.texture)
    if mesh.colors is not None:
        return frags.interpolate(mesh.colors)
    return torch.tensor(DEFAULT_ALBEDO, dtype=frags.mask.dtype, device=frags.mask.device).expand(frags.mask.shape[0], 3)


def _albedo(frags: Fragments, albedo) -> torch.Tensor:
    if albedo is None:
        return mesh_albedo(frags)
    return torch.as_tensor(albedo, dtype=frags.mask.dtype, device=frags.mask.device).expand(*frags.mask.shape[:-1], -1)


def _rgba(rgb: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Straight RGBA of the lit shaders: colors through :func:`soft_clamp`, alpha 1."""
    return torch.cat([soft_clamp(rgb), frags.mask], -1)


def _dot_cf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(0, keepdim=True)


@dataclass
class DirectionalLight:
    """Light arriving from ``direction`` (pointing from the surface towards the light, world space).

    Attributes:
        direction: ``[3]`` world-space direction towards the light (normalized when used); a
            tensor may require grad.
        color: ``[3]`` RGB intensity, linear (1 = the albedo at normal incidence).
    """

    direction: Sequence[float] | torch.Tensor = (0.0, 0.0, 1.0)
    color: Sequence[float] | torch.Tensor = (1.0, 1.0, 1.0)

    def incident(self, frags: Fragments) -> torch.Tensor:
        """Unit vectors from the surface towards the light, channels first: ``[3, N]`` or ``[3, 1]``."""
        direction = torch.as_tensor(self.direction, dtype=frags.mesh.verts.dtype, device=frags.mesh.verts.device)
        return normalize(direction.reshape(3, 1), dim=0)


@dataclass
class PointLight:
    """Light from a point, without falloff with distance.

    Attributes:
        position: ``[3]`` world-space position; ``None`` puts it at each camera's center (a headlight).
        color: ``[3]`` RGB intensity, linear.
    """

    position: Sequence[float] | torch.Tensor | None = None
    color: Sequence[float] | torch.Tensor = (1.0, 1.0, 1.0)

    def incident(self, frags: Fragments) -> torch.Tensor:
        """As :meth:`DirectionalLight.incident`: ``[3, N]``."""
        if self.position is None:
            return frags._view_dirs_cf
        position = torch.as_tensor(self.position, dtype=frags.mesh.verts.dtype, device=frags.mesh.verts.device)
        return normalize(position.reshape(3, 1) - frags._positions_cf, dim=0)


def _light_color(light, frags: Fragments) -> torch.Tensor:
    """``[3, 1]``."""
    return torch.as_tensor(light.color, dtype=frags.mesh.verts.dtype, device=frags.mesh.verts.device).reshape(3, 1)


class UnlitShader:
    """The albedo as it is (texture, vertex colors or a constant color), clamped to [0, 1].

    Args:
        albedo: ``None`` takes the mesh's own color: its texture (with uvs), else its vertex
            colors, else :data:`DEFAULT_ALBEDO`; or an RGB color ``[3]`` for every sample.

    Called on :class:`Fragments` it returns straight RGBA ``[N, 4]`` (alpha 1), as :func:`glsplat.render`
    expects of a shader.
    """

    def __init__(self, albedo=None):
        self.albedo = albedo

    def __call__(self, frags: Fragments) -> torch.Tensor:
        return torch.cat([_albedo(frags, self.albedo).clamp(0, 1), frags.mask], -1)


class LambertShader:
    """Diffuse shading: ``albedo * (ambient + sum_lights color * max(n . l, 0))``, through :func:`soft_clamp`.

    Args:
        lights: :class:`DirectionalLight` and :class:`PointLight` objects; ``None`` is one headlight
            (:class:`PointLight` at the camera) of 0.7, so that with the default ambient the
            weights sum to 1.
        ambient: light reaching every surface, a scalar (white) in [0, 1] for usual scenes.
        albedo: as in :class:`UnlitShader`: ``None`` for the mesh's texture or vertex colors,
            or an RGB color ``[3]``.

    Normals are the area-weighted vertex normals (:func:`glsplat.vertex_normals`), interpolated
    (:attr:`Fragments.normals`). Returns straight RGBA ``[N, 4]`` (alpha 1) for the ``N`` samples.
    """

    def __init__(self, lights=None, ambient: float = 0.3, albedo=None):
        self.lights = [PointLight(color=(0.7, 0.7, 0.7))] if lights is None else list(lights)
        self.ambient = ambient
        self.albedo = albedo

    def diffuse(self, frags: Fragments) -> torch.Tensor:
        """The light reaching the surface, channels first ``[3, N]``."""
        total = frags._normals_cf.new_full((3, 1), self.ambient)
        for light in self.lights:
            total = total + _light_color(light, frags) * _dot_cf(frags._normals_cf, light.incident(frags)).clamp(min=0)
        return total

    def __call__(self, frags: Fragments) -> torch.Tensor:
        return _rgba((_albedo(frags, self.albedo).t() * self.diffuse(frags)).t(), frags)


class PhongShader(LambertShader):
    """Lambert plus a white Phong highlight: ``specular * color * max(r . v, 0) ** shininess``.

    Args:
        lights, albedo: as in :class:`LambertShader`; ``lights=None`` is one headlight of 0.65.
        ambient: as in :class:`LambertShader`.
        specular: weight of the highlight; the defaults (ambient 0.25, headlight 0.65, specular
            0.1) sum to 1.
        shininess: the Phong exponent: larger is a smaller, sharper highlight.
    """

    def __init__(self, lights=None, ambient: float = 0.25, specular: float = 0.1,
                 shininess: float = 32.0, albedo=None):
        super().__init__([PointLight(color=(0.65, 0.65, 0.65))] if lights is None else lights, ambient, albedo)
        self.specular = specular
        self.shininess = shininess

    def __call__(self, frags: Fragments) -> torch.Tensor:
        normals, view_dirs = frags._normals_cf, frags._view_dirs_cf
        rgb = _albedo(frags, self.albedo).t() * self.diffuse(frags)
        for light in self.lights:
            incident = light.incident(frags)
            cosine = _dot_cf(normals, incident)
            reflected = 2 * cosine * normals - incident
            highlight = power(_dot_cf(reflected, view_dirs).clamp(min=0), self.shininess)
            rgb = rgb + self.specular * _light_color(light, frags) * highlight * (cosine > 0)
        return _rgba(rgb.t(), frags)
