"""Argument checks shared by the public entry points.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
range or value) with a message that starts with the argument's name and says what was expected.
They sit on the hot path of training loops, so they look at shapes and dtypes only, except for
index ranges, which the unchecked C++ kernels need: those cost a pass over the indices (and a
GPU->CPU sync for CUDA tensors), so an index tensor's range is found once and remembered until
it is modified in place (:func:`index_range`). The public entry points check; what they call
inside does not check again.
"""
from __future__ import annotations

import math
import operator
import weakref

import numpy as np
import torch

# Index tensors whose range is known: id -> (weak reference, version, low, high). An entry goes
# when its tensor does; one whose tensor was modified in place (another version) is ignored.
_RANGES: dict[int, tuple] = {}


def tensor(x, name: str, dims: tuple[int, ...], last: int | None = None, what: str = "") -> torch.Tensor:
    """``x`` as it is, after checking it is a floating-point tensor with ``len(shape)`` in ``dims``.

    ``last``: the required size of the last axis. ``what``: the expected shape, for the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor {what}, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name}: expected float32 or float64, got {x.dtype}")
    if x.dim() not in dims or (last is not None and x.shape[-1] != last):
        raise ValueError(f"{name}: expected shape {what}, got {list(x.shape)}")
    return x


def faces(x, num_verts: int, name: str = "faces") -> torch.Tensor:
    """Check an integer ``[F, 3]`` index tensor whose entries lie in ``0..num_verts - 1``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected an integer torch.Tensor [F, 3], got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer dtype (int64 or int32), got {x.dtype}")
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected shape [F, 3], got {list(x.shape)}")
    if x.numel() == 0:
        return x
    low, high = index_range(x)
    if low < 0 or high >= num_verts:
        raise ValueError(f"{name}: indices must lie in 0..{num_verts - 1} (there are {num_verts} vertices), "
                         f"got indices from {low} to {high}")
    return x


def stamp(x: torch.Tensor, callback=None) -> tuple[weakref.ref, int] | None:
    """What :func:`unchanged` recognizes ``x`` by: a weak reference (with ``callback``, called when
    ``x`` is freed) and its version. None for an inference tensor, which keeps no version."""
    return None if x.is_inference() else (weakref.ref(x, callback), x._version)


def unchanged(x: torch.Tensor, seen: tuple[weakref.ref, int] | None) -> bool:
    """Whether ``x`` is the tensor ``seen`` was :func:`stamp`-ed from, not modified in place since."""
    return seen is not None and seen[0]() is x and seen[1] == x._version


def index_range(x: torch.Tensor) -> tuple[int, int]:
    """``(low, high)``: the entries of the non-empty integer tensor ``x`` lie in ``low..high``.

    Found by one pass over ``x`` (:func:`_scan`) the first time, then remembered for this tensor
    until it is modified in place (its version changes), so that the checks of a render's
    several steps, and of a training loop's steps, look at a mesh's faces once. ``high`` may be
    a bound known from how ``x`` was made (:func:`remember`) rather than its largest entry.
    """
    entry = _RANGES.get(id(x))
    if entry is not None and unchanged(x, entry[0]):
        return entry[1], entry[2]
    return _scan(x)


def _scan(x: torch.Tensor) -> tuple[int, int]:
    """The smallest and largest entries of ``x`` (one pass; a sync for a CUDA tensor), remembered."""
    low, high = (int(v) for v in torch.aminmax(x))
    remember(x, low, high)
    return low, high


def remember(x: torch.Tensor, low: int, high: int) -> None:
    """Note that ``x``'s entries lie in ``low..high`` (e.g. what made ``x`` guarantees it), until
    ``x`` is modified in place. Inference tensors, which keep no version, are not remembered."""
    key = id(x)

    def forget(ref):
        if _RANGES.get(key, ((None,),))[0][0] is ref:
            _RANGES.pop(key, None)

    seen = stamp(x, forget)
    if seen is not None:
        _RANGES[key] = (seen, low, high)


def same_device(**tensors: torch.Tensor) -> None:
    """All the named tensors live on one device."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"tensors on different devices: {listed}; move them to one device")


def integer(x, name: str) -> int:
    """``x`` as an int; floats and bools are refused rather than rounded."""
    try:
        if isinstance(x, bool):
            raise TypeError
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(x).__name__} {x!r}") from None


def positive_int(x, name: str) -> int:
    """``x`` as an int of at least 1."""
    value = integer(x, name)
    if value < 1:
        raise ValueError(f"{name}: must be at least 1, got {value}")
    return value


def image_size(size, name: str = "size", limit: int | None = None, border: int = 0) -> tuple[int, int]:
    """``(H, W)`` as ints in ``1..limit - 2 border`` (``limit``: the GL's largest texture and
    viewport; ``border``: a guard band rasterized around the image)."""
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise TypeError(f"{name}: expected (H, W), a pair of integers, got {size!r}")
    height, width = (integer(s, name) for s in size)
    top = limit - 2 * border if limit is not None else max(height, width, 1)
    if not (0 < height <= top and 0 < width <= top):
        band = f", less the guard band of {border} px on each side" if border else ""
        bound = f"1..{top} (this GL's GL_MAX_TEXTURE_SIZE / GL_MAX_VIEWPORT_DIMS{band})" if limit else "at least 1"
        raise ValueError(f"{name}: (H, W) must each be {bound}, got {(height, width)}")
    return height, width


def clip_planes(near, far) -> None:
    """Finite clipping distances with ``0 < near < far``."""
    near, far = float(near), float(far)
    if not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
        raise ValueError(f"near, far: expected finite 0 < near < far, got near={near}, far={far}")


# Largest clip-space coordinate of a float32 render: lengths of ~10x that (camera distances in
# shading) have squares near float32's largest, 3.4e38, and overflow.
FLOAT32_CLIP_LIMIT = 1e18


def finite_corners(corners: np.ndarray, name: str = "clip", limit: float = math.inf) -> None:
    """The triangle corners sent to OpenGL are finite, and at most ``limit`` in magnitude (on the
    CPU already: no sync)."""
    if corners.size == 0 or (-limit <= corners.min() and corners.max() <= limit):  # False for NaN
        return
    if not np.isfinite(corners).all():
        raise ValueError(f"{name}: some triangles have NaN or infinite clip-space corners "
                         "(check the vertex positions and the camera for NaN/inf)")
    raise ValueError(f"{name}: clip-space corners reach {np.abs(corners).max():.3g}, beyond {limit:.0e}, where "
                     "float32 lengths overflow (their squares pass 3.4e38); scale the scene and the camera down "
                     "(e.g. Mesh.normalized()), or render in float64")


def raster_faces(faces_, tri_id: torch.Tensor, num_verts: int) -> None:
    """``faces`` index ``num_verts`` vertices and cover every face id the raster ``tri_id`` refers to.

    The compiled kernels index without bounds checks: out-of-range indices must stop here.
    """
    faces(faces_, num_verts)
    if tri_id.numel() and index_range(tri_id)[1] > faces_.shape[0]:
        high = _scan(tri_id)[1]  # what is remembered may be a bound (rasterize's face count): look
        if high > faces_.shape[0]:
            raise ValueError(f"faces: the raster refers to face {high - 1}, "
                             f"but only {faces_.shape[0]} faces were given")


def splat_clip(clip: torch.Tensor, faces_: torch.Tensor, rast) -> None:
    """The covered samples' points are finite and in front of the camera (w > 0).

    What ``rasterize`` made of ``clip`` always is; a ``clip`` that differs from it need not be,
    and the compiled kernels (built with -ffinite-math-only) would turn a NaN, or a division by
    w = 0, into a wrong finite image. One pass over the vertices; only where some vertex is
    non-finite or has w <= 0 (legitimate on a face that crosses the camera's plane) are the
    samples of the faces using it looked at.
    """
    clip = clip if clip.dim() == 3 else clip[None]
    bad = ~torch.isfinite(clip).all(-1) | (clip[..., 3] <= 0)  # [1 or B, V]
    if faces_.numel() == 0 or not bool(bad.any()):
        return
    raster_faces(faces_, rast.tri_id, clip.shape[1])
    faces_ = faces_.to(device=clip.device, dtype=torch.long)
    corners = clip[:, faces_]  # [1 or B, F, 3, 4]
    suspect = torch.cat([bad.new_zeros(bad.shape[0], 1), bad[:, faces_].any(-1)], 1)  # by face id + 1
    tri_id = rast.tri_id.long()
    batch = tri_id.shape[0]
    hit = suspect.expand(batch, -1).gather(1, tri_id.reshape(batch, -1)).view(tri_id.shape)
    if not bool(hit.any()):
        return
    image = torch.arange(batch, device=clip.device).view(-1, 1, 1, 1).expand_as(tri_id)[hit]
    image = image if corners.shape[0] == batch else torch.zeros_like(image)
    at = corners[image, tri_id[hit] - 1]  # [M, 3, 4] the corners of the suspect samples
    bary = rast.bary[hit].to(clip.dtype)
    weights = torch.cat([bary, 1 - bary.sum(-1, keepdim=True)], -1)
    point = (weights[..., None] * at).sum(-2)
    if not bool(torch.isfinite(at).all()) or not bool(torch.isfinite(point).all()):
        raise ValueError("clip: NaN or infinite corners on faces that the raster covers "
                         "(splat takes the clip-space vertices that were rasterized)")
    if not bool((point[:, 3] > 0).all()):
        raise ValueError(f"clip: w <= 0 at {int((point[:, 3] <= 0).sum())} covered samples, which the camera cannot "
                         "see (splat takes the clip-space vertices that were rasterized, whose w > 0 where covered)")


def splat_colors(colors: torch.Tensor, rast) -> None:
    """``colors`` ``[B, K, H, W, 4]``, or ``[N, 4]`` for the raster's ``N`` covered samples."""
    batch, layers, height, width = rast.shape
    expected = [batch, layers, height, width, 4]
    tensor(colors, "colors", dims=(2, 5), last=4, what=f"{expected} or [N, 4]")
    if colors.dim() == 5 and list(colors.shape) != expected:
        raise ValueError(f"colors: expected shape {expected} (the raster's B, K, H, W and RGBA), "
                         f"got {list(colors.shape)}")
    if colors.dim() == 2 and colors.shape[0] != rast.index.shape[0]:
        raise ValueError(f"colors: expected [N, 4] for the N = {rast.index.shape[0]} covered samples of the raster, "
                         f"got {list(colors.shape)}")


def splat_offset(offset: torch.Tensor, rast) -> None:
    """``offset`` float ``[N, 2]`` for the raster's ``N`` covered samples, on the raster's device."""
    count = rast.index.shape[0]
    tensor(offset, "offset", dims=(2,), last=2, what=f"[{count}, 2] (one row per covered sample)")
    if offset.shape[0] != count:
        raise ValueError(f"offset: expected [{count}, 2] for the {count} covered samples of the raster, "
                         f"got {list(offset.shape)}")
    same_device(offset=offset, rast=rast.tri_id)


def splat_inputs(colors: torch.Tensor, clip: torch.Tensor, rast) -> None:
    """``colors`` as :func:`splat_colors`, ``clip`` ``[1 or B, V, 4]``, one device."""
    splat_colors(colors, rast)
    batch = rast.shape[0]
    tensor(clip, "clip", dims=(2, 3), last=4, what="[B, V, 4] or [V, 4]")
    if clip.dim() == 3 and clip.shape[0] not in (1, batch):
        raise ValueError(f"clip: batch of {clip.shape[0]} for a raster of {batch} images")
    same_device(colors=colors, clip=clip, rast=rast.tri_id)


def mesh(m, name: str = "mesh") -> None:
    """A :class:`glsplat.Mesh`'s fields agree with each other in shape, dtype, range and device."""
    verts = tensor(m.verts, f"{name}.verts", dims=(2, 3), last=3, what="[V, 3] or [B, V, 3]")
    num_verts = verts.shape[-2]
    faces(m.faces, num_verts, f"{name}.faces")
    if m.colors is not None:
        tensor(m.colors, f"{name}.colors", dims=(2, 3), what="[V, C] or [B, V, C]")
        if m.colors.shape[-2] != num_verts:
            raise ValueError(f"{name}.colors: one color per vertex ({num_verts}), got {list(m.colors.shape)}")
    if m.uvs is not None:
        tensor(m.uvs, f"{name}.uvs", dims=(2,), last=2, what="[T, 2]")
        if m.uv_faces is not None:
            faces(m.uv_faces, m.uvs.shape[0], f"{name}.uv_faces")
            if m.uv_faces.shape != m.faces.shape:
                raise ValueError(f"{name}.uv_faces: expected the shape of {name}.faces "
                                 f"{list(m.faces.shape)}, got {list(m.uv_faces.shape)}")
        elif m.uvs.shape[0] != num_verts:
            raise ValueError(f"{name}.uvs: without uv_faces, one UV per vertex ({num_verts}), "
                             f"got {list(m.uvs.shape)}")
    if m.texture is not None:
        tensor(m.texture, f"{name}.texture", dims=(3, 4), what="[Ht, Wt, C] or [B, Ht, Wt, C]")
    same_device(**{f"{name}.{field}": getattr(m, field) for field in ("verts", "colors", "uvs", "texture")})


def camera_for(camera, verts: torch.Tensor) -> None:
    """``camera``'s batch broadcasts against the vertices' and both live on one device."""
    same_device(camera=camera.R, verts=verts)
    cams, meshes = camera.batch_size, (verts.shape[0] if verts.dim() == 3 else 1)
    if 0 in (cams, meshes):
        raise ValueError(f"{'camera' if cams == 0 else 'mesh.verts'}: a batch of 0 views; render needs at least one "
                         f"(got {cams} cameras and {meshes} meshes)")
    if cams != meshes and 1 not in (cams, meshes):
        raise ValueError(f"camera: a batch of {cams} cameras does not broadcast against {meshes} meshes "
                         "(need equal batches, or one of them 1)")


def texture_lookup(texture: torch.Tensor, uv: torch.Tensor) -> None:
    """Arguments of :func:`glsplat.sample_texture`."""
    tensor(texture, "texture", dims=(3, 4), what="[Ht, Wt, C] or [B, Ht, Wt, C]")
    tensor(uv, "uv", dims=tuple(range(1, 9)), last=2, what="[..., 2] ([B, ..., 2] with a batch of textures)")
    if texture.dim() == 4 and (uv.dim() < 2 or texture.shape[0] not in (1, uv.shape[0])):
        raise ValueError(f"texture: batch of {texture.shape[0]} for uv of shape {list(uv.shape)}")
    same_device(texture=texture, uv=uv)
