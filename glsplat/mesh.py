"""Triangle meshes: a small container, loading from files, and normals."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

from .images import read_pixels

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class Mesh:
    """A triangle mesh with optional per-vertex colors and a face-varying UV texture.

    Attributes:
        verts: float ``[V, 3]`` or ``[B, V, 3]`` positions.
        faces: int64 ``[F, 3]``, counter-clockwise seen from outside.
        uvs: float ``[T, 2]`` texture coordinates (u right, v up, as in OBJ files), or None.
        uv_faces: int64 ``[F, 3]`` indices into ``uvs`` (face-varying, so seams need no split
            vertices), or None.
        texture: float ``[Ht, Wt, C]`` in [0, 1], row 0 at the top (as stored in image files),
            or None.
        colors: float ``[V, C]`` or ``[B, V, C]`` per-vertex colors, or None.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    colors: torch.Tensor | None = None

    def __repr__(self) -> str:
        def describe(x):
            return "None" if x is None else f"{x.dtype} {list(x.shape)}".replace("torch.", "")
        fields = ", ".join(f"{name}={describe(getattr(self, name))}" for name in
                           ("verts", "faces", "uvs", "uv_faces", "texture", "colors"))
        return f"Mesh({fields}, device={self.verts.device})"

    def replace(self, **changes) -> "Mesh":
        """A copy with some fields replaced, e.g. ``mesh.replace(verts=deformed)``."""
        return replace(self, **changes)

    def normalized(self) -> "Mesh":
        """The mesh scaled and moved so its bounding box is centered at 0 with longest side 1."""
        lo = self.verts.reshape(-1, 3).min(0).values
        hi = self.verts.reshape(-1, 3).max(0).values
        extent = (hi - lo).max()
        if not bool(extent > 0):
            raise ValueError(f"mesh: cannot normalize a mesh of zero extent (all {self.verts.shape[-2]} vertices at "
                             f"one point, {lo.tolist()}): it is degenerate")
        return self.replace(verts=(self.verts - (lo + hi) / 2) / extent)

    def to(self, device=None, dtype=None) -> "Mesh":
        """The mesh with its float tensors cast/moved and its index tensors moved."""
        def move(x, floating):
            if x is None:
                return None
            return x.to(device=device, dtype=dtype if floating else None)
        return Mesh(move(self.verts, True), move(self.faces, False), move(self.uvs, True),
                    move(self.uv_faces, False), move(self.texture, True), move(self.colors, True))


def normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x`` scaled to unit length along ``dim`` (zero vectors stay zero).

    As ``F.normalize(x, dim=dim, eps=1e-12)``, through a multiply by ``rsqrt`` of the summed
    squares: on the CPU, torch's vector norm over a short axis is several times slower.
    """
    return x * (x * x).sum(dim, keepdim=True).clamp(min=1e-24).rsqrt()


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[..., V, 3]``, differentiable in ``verts``."""
    flat = verts.reshape(-1, 3)  # the batch's vertices one after the other
    count = verts.shape[-2]
    index = faces.to(device=verts.device, dtype=torch.long).reshape(-1)
    if flat.shape[0] > count:
        index = (index + torch.arange(0, flat.shape[0], count, device=index.device)[:, None]).reshape(-1)
    # index_select / index_add along the first axis of a 2-D tensor: torch's fast paths (along
    # another axis, or with advanced indexing, they are several times slower on the CPU).
    corners = flat.index_select(0, index).view(-1, 3, 3)
    edges = corners[:, 1:] - corners[:, :1]  # [B * F, 2, 3]
    if edges.numel():
        # The normals do not depend on the mesh's scale, but the areas go as its square: divide
        # each mesh's edges by their largest coordinate (a constant) so that the cross products
        # neither overflow (float32: from a size of ~1e19) nor underflow (below ~1e-19).
        per_mesh = edges.view(flat.shape[0] // count, -1, 2, 3)  # [B, F, 2, 3]
        scale = per_mesh.detach().abs().amax((1, 2, 3), keepdim=True).clamp(min=torch.finfo(edges.dtype).tiny)
        edges = (per_mesh / scale).view_as(edges)
    face_normals = torch.linalg.cross(edges[:, 0], edges[:, 1])
    normals = torch.zeros_like(flat).index_add(0, index, face_normals.repeat_interleave(3, 0))
    return normalize(normals).view(verts.shape)


def _texture(pixels: np.ndarray, dtype) -> torch.Tensor:
    """``uint8 [H, W, 3]`` pixels as a float texture in [0, 1]."""
    return torch.from_numpy(pixels).to(dtype) / 255


def load_texture(path, dtype=torch.float32) -> torch.Tensor:
    """An image file as a float ``[H, W, 3]`` texture in [0, 1], row 0 at the top."""
    return _texture(read_pixels(path, "RGB", "texture")[0], dtype)


def _check_obj(path: Path, text: str, materials: bool) -> bool:
    """Refuse an OBJ whose faces index missing ``v`` or ``vt`` lines (trimesh drops or wraps them
    silently); with ``materials``, warn about material libraries and texture images that are
    missing or unreadable.

    Returns whether the materials name texture images and all can be read: trimesh puts a
    gray placeholder in place of a texture that is missing or was never named.
    """
    counts = {"v": 0, "vt": 0}
    libraries = []
    for number, line in enumerate(text.splitlines(), 1):
        keyword, _, rest = line.strip().partition(" ")
        if keyword in counts:
            counts[keyword] += 1
        elif keyword == "mtllib":
            libraries.append(rest.strip())
        elif keyword == "f":
            for token in rest.split():
                for kind, index in zip(("v", "vt"), token.split("/")):
                    try:
                        index = int(index) if index else None
                    except ValueError:
                        continue  # not a number: trimesh reports the file malformed
                    count = counts[kind]
                    if index is not None and not (1 <= index <= count or -count <= index <= -1):
                        raise ValueError(f"{path}, line {number}: face corner {token!r} refers to {kind} {index}, but "
                                         f"{count} {kind} lines come before it (OBJ indices start at 1)")
    found = failed = False
    for library in libraries if materials else ():
        mtl = path.parent / library
        if not mtl.is_file():
            warnings.warn(f"{path}: material library {library!r} not found ({mtl}); loading it untextured", stacklevel=3)
            failed = True
            continue
        for line in mtl.read_text(errors="replace").splitlines():
            keyword, _, rest = line.strip().partition(" ")
            if keyword == "map_Kd" and rest.split():
                image = mtl.parent / rest.split()[-1]  # options (-s 1 1 1 ...) come before the file
                try:
                    with Image.open(image):  # reads the header only; trimesh loads the image
                        found = True
                except (OSError, ValueError) as error:
                    warnings.warn(f"{path}: texture image {rest.split()[-1]!r} of material library {library!r} "
                                  f"cannot be read ({error}); loading it untextured", stacklevel=3)
                    failed = True
    return found and not failed


def load_mesh(path, texture_file=None, device=None, dtype=torch.float32) -> Mesh:
    """Load a triangle mesh (OBJ, PLY, GLB, STL, OFF, ... anything trimesh reads).

    Polygons are triangulated. Vertices that trimesh split at UV seams are welded back by
    position, so ``verts``/``faces`` describe a connected surface and the UVs keep their own
    ``uv_faces`` index. A texture image referenced by the file's material is loaded as
    ``texture``, unless ``texture_file`` (an image path) overrides it; per-vertex colors stored in
    the file become ``colors``. Scenes are merged.

    Raises ``ValueError`` naming the file for a file that is not a mesh, faces that index
    missing vertices or UVs, and vertices that are NaN, infinite or beyond ``dtype``'s range.
    Warns and loads the mesh untextured when an OBJ's material library or texture image is
    missing or unreadable (unless ``texture_file`` is given).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a mesh file")
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    textured = True
    if path.suffix.lower() == ".obj":
        textured = _check_obj(path, path.read_bytes().decode("utf-8", errors="replace"), materials=texture_file is None)
    try:
        loaded = trimesh.load(path, process=False, force="mesh")
    except ImportError as error:  # trimesh guesses the encoding of text that is not UTF-8 with an optional package
        raise ValueError(f"{path}: could not read a mesh (not UTF-8 text: binary data or another encoding; "
                         f"{error})") from error
    except Exception as error:  # trimesh fails on bad files with many types
        # trimesh's own messages ("Not a ply file!") do not say which file.
        raise ValueError(f"{path}: could not read a mesh ({error})") from error
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{path} holds no triangles")
    split_verts = np.asarray(loaded.vertices, dtype=np.float64)
    if not np.isfinite(split_verts).all():
        raise ValueError(f"{path}: {int((~np.isfinite(split_verts)).any(1).sum())} vertices are NaN or infinite")
    largest = np.abs(split_verts).max() if split_verts.size else 0.0
    if largest > torch.finfo(dtype).max:
        raise ValueError(f"{path}: vertex coordinates reach {largest:.3g}, beyond {dtype}'s largest "
                         f"({torch.finfo(dtype).max:.3g})")
    split_faces = np.asarray(loaded.faces, dtype=np.int64)
    if split_faces.min() < 0 or split_faces.max() >= len(split_verts):
        raise ValueError(f"{path}: face indices must lie in 0..{len(split_verts) - 1} (there are {len(split_verts)} "
                         f"vertices), got indices from {split_faces.min()} to {split_faces.max()}")
    verts, weld = np.unique(split_verts, axis=0, return_inverse=True)
    faces = weld.reshape(-1)[split_faces]

    uvs = uv_faces = texture = colors = None
    visual = loaded.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None and len(visual.uv):
        uvs = torch.as_tensor(np.asarray(visual.uv), dtype=dtype)
        uv_faces = torch.as_tensor(split_faces)
        image = getattr(visual.material, "image", None)
        if image is None:
            image = getattr(visual.material, "baseColorTexture", None)
        if image is not None and textured:
            texture = _texture(np.array(image.convert("RGB")), dtype)
    elif isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
        per_split = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3] / 255
        colors = np.zeros((len(verts), 3))
        colors[weld.reshape(-1)] = per_split
        colors = torch.as_tensor(colors, dtype=dtype)

    if texture_file is not None:
        texture = load_texture(texture_file, dtype)
    mesh = Mesh(torch.as_tensor(verts, dtype=dtype), torch.as_tensor(faces), uvs, uv_faces,
                texture, colors)
    return mesh.to(device=device)


def _blob() -> trimesh.Trimesh:
    """A smooth lumpy sphere with no symmetry, so that its pose can be read from any view."""
    sphere = trimesh.creation.icosphere(subdivisions=4)
    x, y, z = sphere.vertices.T
    radius = 1 + 0.25 * np.sin(3 * x + 1) * np.cos(2 * y) + 0.2 * np.sin(2 * z + 3 * y) + 0.3 * np.maximum(x + z, 0) ** 2
    sphere.vertices *= radius[:, None] * np.array([1.0, 0.8, 0.6])
    return sphere


# Untextured procedural shapes (no color: shaders give them their default albedo).
_PROCEDURAL = {
    "blob": _blob,
    "capsule": lambda: trimesh.creation.capsule(height=0.6, radius=0.25, count=[32, 32]),
    "torus": lambda: trimesh.creation.torus(major_radius=0.35, minor_radius=0.15, major_sections=64,
                                            minor_sections=32),
}


def load_example(name: str = "spot", device=None, dtype=torch.float32) -> Mesh:
    """A mesh that ships with glsplat.

    ``"spot"``: Keenan Crane's textured cow (public domain). Untextured procedural shapes, made
    on the fly: ``"blob"`` (a lumpy sphere with no symmetry), ``"capsule"``, ``"torus"``. All
    have counter-clockwise outward faces; none is normalized (call :meth:`Mesh.normalized`).
    """
    names = ["spot", *_PROCEDURAL]
    if name not in names:
        raise ValueError(f"name: unknown example {name!r}; available: {names}")
    if name == "spot":
        return load_mesh(ASSETS / "spot" / "spot_triangulated.obj", texture_file=ASSETS / "spot" / "spot_texture.png",
                         device=device, dtype=dtype)
    shape = _PROCEDURAL[name]()
    return Mesh(torch.as_tensor(shape.vertices, dtype=dtype), torch.as_tensor(shape.faces, dtype=torch.long)).to(device)
