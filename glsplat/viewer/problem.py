"""The fitting problem the viewer shows: parameters, loss against a target, gradients, optimizer.

Everything here runs in one thread (the viewer's worker): the OpenGL context is made on first
use in the thread that evaluates, and the parameters change only there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..camera import Camera
from ..context import Context
from ..fitting.metrics import laplacian_loss, mesh_edges
from ..mesh import Mesh
from ..shading import PhongShader
from ..splat import SplatBuffers
from ..transforms import axis_angle_to_matrix
from .probe import probed_render, visible_vertices
from .targets import ImageTarget, PoseTarget

POSE, VERTICES = "pose", "vertices"
MODES = (POSE, VERTICES)
# Adam step sizes: radians / world units per step for the pose, world units per vertex.
LEARNING_RATE = {POSE: 0.01, VERTICES: 0.002}
# Vertex mode: weight of the umbrella (Laplacian) term that keeps the surface from crumpling
# where the image loss moves vertices independently.
SMOOTHNESS = 2.0


@dataclass
class Snapshot:
    """One evaluation of the loss and its gradients for one view; tensors detached, batch dropped."""

    step: int  # optimizer steps taken before this evaluation
    mode: str
    loss: float
    camera: Camera
    image: torch.Tensor  # [H, W, 4] premultiplied render
    target: torch.Tensor  # [H, W, 4] premultiplied target as seen by this camera
    buffers: SplatBuffers  # S+, S0, S-, each [H, W, 4]
    image_grad: torch.Tensor  # [H, W, 4] dLoss/d(render)
    position_grad: torch.Tensor  # [H, W, 2] dLoss/d(sample position), pixels, summed over layers
    verts: torch.Tensor  # [V, 3] world positions
    vert_grad: torch.Tensor  # [V, 3] dLoss/d(verts)
    visible: torch.Tensor  # bool [V], corners of faces seen in the first layer
    layers: int


class FitProblem:
    """A mesh fitted to a target by a pose (axis-angle + translation) or per-vertex offsets.

    Args:
        mesh: the mesh (``[V, 3]`` verts), normalized or not.
        target: :class:`PoseTarget` or :class:`ImageTarget`.
        image_size: (H, W) of the renders the loss compares.
        shader: a glsplat shader; Phong with a headlight by default.
        layers: depth layers; two or more give the S+ and S- buffers something to hold.
        mode: ``"pose"`` or ``"vertices"``.
        ctx: an OpenGL context to render with; by default one is made on first use, in the
            thread that evaluates (the viewer's worker), and released by :meth:`close`.
        init_rotation: axis-angle ``[3]`` in radians: the pose mode's start (and reset) rotation.
    """

    def __init__(self, mesh: Mesh, target: PoseTarget | ImageTarget, image_size: tuple[int, int],
                 shader=None, layers: int = 2, mode: str = POSE, ctx: Context | None = None,
                 init_rotation=(0.0, 0.0, 0.0)):
        if mode not in MODES:
            raise ValueError(f"mode: one of {MODES}, got {mode!r}")
        self.mesh = mesh
        self.target = target
        self.image_size = tuple(image_size)
        self.shader = PhongShader() if shader is None else shader
        self.layers = layers
        self.mode = mode
        self.ctx = ctx
        self._owns_ctx = ctx is None
        self._edges = mesh_edges(mesh.faces.long())
        self._target_cache: tuple | None = None
        self.init_rotation = torch.as_tensor(init_rotation, dtype=torch.float32).reshape(3)
        self.reset()

    def reset(self, mode: str | None = None) -> None:
        """Back to the mesh as given, with a fresh optimizer (and optionally another mode)."""
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"mode: one of {MODES}, got {mode!r}")
            self.mode = mode
        if self.mode == POSE:
            self.params = [self.init_rotation.clone().requires_grad_(True), torch.zeros(3, requires_grad=True)]
        else:
            self.params = [torch.zeros_like(self.mesh.verts, requires_grad=True)]
        self.optimizer = torch.optim.Adam(self.params, lr=LEARNING_RATE[self.mode])
        self.steps = 0

    def verts(self) -> torch.Tensor:
        """``[V, 3]`` current vertex positions, differentiable in the parameters."""
        if self.mode == POSE:
            axis_angle, translation = self.params
            return self.mesh.verts @ axis_angle_to_matrix(axis_angle).T + translation
        return self.mesh.verts + self.params[0]

    def target_image(self, camera: Camera) -> torch.Tensor:
        """``[1, H, W, 4]`` premultiplied target for ``camera`` (re-rendered for a pose target)."""
        if isinstance(self.target, ImageTarget):
            return self.target.premultiplied()
        key = (camera.R.numpy().tobytes(), camera.t.numpy().tobytes(), camera.projection.numpy().tobytes())
        if self._target_cache is None or self._target_cache[0] != key:
            with torch.no_grad():
                mesh = self.mesh.replace(verts=self.target.apply(self.mesh.verts))
                image = probed_render(self._context(), mesh, camera, self.shader, self.layers).image
            self._target_cache = (key, image)
        return self._target_cache[1]

    def _context(self) -> Context:
        """The context to render with: made on first use unless given. After :meth:`close` it is
        the released one, so that every use raises the context's documented error."""
        if self.ctx is None:
            self.ctx = Context()
        return self.ctx

    def evaluate(self, camera: Camera) -> Snapshot:
        """Loss and gradients for ``camera``; leaves the parameters' gradients for :meth:`step`."""
        if tuple(camera.image_size) != self.image_size:
            raise ValueError(f"camera: image size {camera.image_size}, expected {self.image_size}")
        target = self.target_image(camera)
        self.optimizer.zero_grad()
        verts = self.verts()
        verts.retain_grad()
        probe = probed_render(self._context(), self.mesh.replace(verts=verts), camera, self.shader, self.layers)
        probe.image.retain_grad()
        if isinstance(self.target, ImageTarget):
            loss = ((self.target.comparable(probe.image) - self.target.image) ** 2).mean()
        else:
            loss = ((probe.image - target) ** 2).mean()
        if self.mode == VERTICES:  # the umbrella term of the vertex offsets
            total = loss + SMOOTHNESS * laplacian_loss(self.params[0], self.mesh.faces, edges=self._edges, squared=True)
        else:
            total = loss
        total.backward()
        return Snapshot(
            step=self.steps, mode=self.mode, loss=loss.item(), camera=camera,
            image=probe.image.detach()[0], target=target[0],
            buffers=SplatBuffers(*(b.detach()[0] for b in probe.buffers)),
            image_grad=probe.image.grad[0], position_grad=probe.position_grad(),
            verts=verts.detach(), vert_grad=verts.grad,
            visible=visible_vertices(probe.rast, self.mesh.faces, verts.shape[0]), layers=self.layers,
        )

    def step(self) -> None:
        """One Adam step on the gradients of the last :meth:`evaluate`."""
        self.optimizer.step()
        self.steps += 1

    def close(self) -> None:
        """Release the OpenGL context it made (call from the thread that evaluated), through
        :meth:`Context.release`, the context's one release path. The released context stays in
        ``ctx``: using it (or :meth:`evaluate`) afterwards raises its ``RuntimeError``, rather
        than an ``AttributeError`` on ``None`` or a new context made behind the caller's back."""
        if self.ctx is not None and self._owns_ctx:
            self.ctx.release()
