"""The glfw window: input to requests for the worker, its snapshots to frames on screen.

This thread never renders with glsplat: the worker does, in its own headless context, and this
one composes the newest snapshot into a picture, uploads it as a texture and draws it as a
full-window quad. The window therefore stays responsive however long a gradient takes.
Everything a user can do (keys, drags, scrolls) is also a method, so tests drive it without a human.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import glfw
import moderngl
import numpy as np
from PIL import Image

from .. import kernels
from .compose import compose, waiting
from .keys import COMMANDS, SCREENSHOT_PATTERN
from .orbit import OrbitController, OrbitView
from .panels import PANELS
from .problem import MODES, FitProblem, Snapshot
from .worker import Request, Worker

HINT = "set DISPLAY to a running X server, or run under a virtual one: xvfb-run -a glsplat view ..."
# The window's longer side when no size is given; the render is scaled up to fill it.
DEFAULT_WINDOW = 640

QUAD_VERTEX = """
#version 330
in vec2 in_pos;
out vec2 uv;
void main() {
    // Row 0 of the uploaded frame is its top.
    uv = vec2(in_pos.x + 1.0, 1.0 - in_pos.y) * 0.5;
    gl_Position = vec4(in_pos, 0.0, 1.0);
}
"""
QUAD_FRAGMENT = """
#version 330
uniform sampler2D frame;
in vec2 uv;
out vec4 color;
void main() {
    color = vec4(texture(frame, uv).rgb, 1.0);
}
"""


class NoDisplayError(RuntimeError):
    """No window can be opened (no X server, or no OpenGL 3.3 through GLX on it)."""


def _last_glfw_error() -> str:
    description = glfw.get_error()[1]
    return description.decode(errors="replace") if description else "no details"


def _open_window(size: tuple[int, int], title: str):
    """A glfw window with a current OpenGL 3.3 core context; errors as :class:`NoDisplayError`."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        raise NoDisplayError(f"no display to open a window on (DISPLAY is not set): {HINT}")
    # glfw's Python binding turns errors into warnings by default; here they become one message.
    reporting, glfw.ERROR_REPORTING = glfw.ERROR_REPORTING, "ignore"
    try:
        if not glfw.init():
            raise NoDisplayError(f"cannot open a window on display {display!r} ({_last_glfw_error()}): {HINT}")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        window = glfw.create_window(size[1], size[0], title, None, None)
        if not window:
            error = _last_glfw_error()
            glfw.terminate()
            raise NoDisplayError(f"cannot open an OpenGL 3.3 window on display {display!r} ({error}); "
                                 "on Debian/Ubuntu GLX comes with: apt-get install libgl1 libglx-mesa0")
    finally:
        glfw.ERROR_REPORTING = reporting
    glfw.make_context_current(window)
    glfw.swap_interval(0)  # frames are paced by waiting for events, not by vsync
    return window


class Viewer:
    """An interactive window on a :class:`FitProblem`.

    Args:
        problem: what to show and optimize; handed to the worker thread.
        window_size: (H, W) of the window; by default the render scaled up to ~640 pixels.
        screenshot_dir: where key P writes its PNGs.
        home: the view to start from and return to on R.
        title: the window title's prefix.

    ``run()`` is the interactive loop. Tests call ``step()`` for single frames, the input methods
    (``press``, ``drag``, ``scroll``) and ``sync()`` to wait for the worker.
    """

    def __init__(self, problem: FitProblem, window_size: tuple[int, int] | None = None,
                 screenshot_dir: Path | str = ".", home: OrbitView | None = None, title: str = "glsplat view"):
        height, width = problem.image_size
        if window_size is None:
            scale = max(1.0, DEFAULT_WINDOW / max(height, width))
            window_size = (round(height * scale), round(width * scale))
        self.title = title
        self.screenshot_dir = Path(screenshot_dir)
        self.window = _open_window(window_size, title)
        self.gl = moderngl.create_context()
        program = self.gl.program(vertex_shader=QUAD_VERTEX, fragment_shader=QUAD_FRAGMENT)
        corners = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self._quad = self.gl.vertex_array(program, [(self.gl.buffer(corners.tobytes()), "2f", "in_pos")])
        self._texture: moderngl.Texture | None = None

        self.image_size = (height, width)
        self.orbit = OrbitController(home, viewport_height=window_size[0])
        self.panel = 0
        self.optimize = False
        self.mode = problem.mode
        self.resets = 0
        self.frame_seconds: float | None = None  # compose + upload + draw of the last frame drawn; None before one
        self._shown: tuple | None = None  # what the texture holds: (snapshot, panel, canvas size) or (note, size)
        self._drag: tuple[int, float, float] | None = None  # (button, x, y) while a button is down
        self._title_at = 0.0

        glfw.set_key_callback(self.window, self._on_key)
        glfw.set_mouse_button_callback(self.window, self._on_mouse_button)
        glfw.set_cursor_pos_callback(self.window, self._on_cursor)
        glfw.set_scroll_callback(self.window, self._on_scroll)
        glfw.set_window_refresh_callback(self.window, self._on_refresh)

        self.worker = Worker(problem, wake=glfw.post_empty_event)
        self.worker.start()
        self._version = self._submit()

    # -- state the worker sees ------------------------------------------------------------

    def _submit(self) -> int:
        request = Request(self.orbit.camera(self.image_size), self.optimize, self.mode, self.resets)
        self._version = self.worker.submit(request)
        return self._version

    @property
    def panel_name(self) -> str:
        return PANELS[self.panel].name

    def show(self, name: str) -> None:
        """Switch to the panel called ``name`` (see ``glsplat.viewer.PANELS``)."""
        self.panel = [panel.name for panel in PANELS].index(name)

    def snapshot(self) -> Snapshot | None:
        """The newest evaluation the worker has finished."""
        return self.worker.latest()[0]

    def losses(self) -> list[float]:
        """Losses of the optimization steps since the last reset."""
        return self.worker.latest()[2]

    # -- frames ---------------------------------------------------------------------------

    def step(self, wait: float = 0.0) -> bool:
        """Handle pending input and draw a frame if there is something new; False once closing.

        ``wait`` > 0 sleeps up to that long for input or a new snapshot first (the interactive
        loop's pacing); tests leave it at 0.
        """
        if wait > 0:
            glfw.wait_events_timeout(wait)
        else:
            glfw.poll_events()
        if self.worker.error is not None:
            raise RuntimeError(f"the viewer's worker failed: {self.worker.error!r}") from self.worker.error
        snapshot, _, losses = self.worker.latest()
        size = glfw.get_framebuffer_size(self.window)[::-1]
        if snapshot is None:  # the first evaluation is still running (and may be compiling the kernels)
            note = kernels.building or "computing the first frame..."
            if self._shown != (note, size):
                self._upload(waiting(size, note))
                self._draw()
                glfw.swap_buffers(self.window)
                self._shown = (note, size)
        elif self._shown != (snapshot, self.panel, size):
            started = time.perf_counter()
            self._upload(self._compose(snapshot, losses, size))
            self._draw()
            glfw.swap_buffers(self.window)
            self._shown = (snapshot, self.panel, size)
            self.frame_seconds = time.perf_counter() - started
        now = time.monotonic()
        if snapshot is not None and now - self._title_at > 0.25:
            self._title_at = now
            glfw.set_window_title(self.window, f"{self.title}: {self.panel_name} | {self.timings(' | ')} | loss {snapshot.loss:.4g}")
        return not glfw.window_should_close(self.window)

    def _compose(self, snapshot: Snapshot, losses: list[float], size: tuple[int, int]) -> np.ndarray:
        optimizing = f"optimizing {snapshot.mode}" if self.optimize else f"{snapshot.mode} (O: optimize)"
        status = [f"loss {snapshot.loss:.4g}   step {snapshot.step}   {optimizing}", self.timings("   ")]
        return compose(PANELS[self.panel].make(snapshot), size, f"{self.panel_name} [{PANELS[self.panel].key}]",
                       status, losses)

    def timings(self, separator: str) -> str:
        """The last frame's and gradient's times; a frame not yet timed is not shown as 0 ms."""
        frame = "frame -" if self.frame_seconds is None else f"frame {1000 * self.frame_seconds:.1f} ms"
        return f"{frame}{separator}gradient {1000 * self.worker.seconds:.0f} ms"

    def _upload(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        if self._texture is None or self._texture.size != (width, height):
            if self._texture is not None:
                self._texture.release()
            self._texture = self.gl.texture((width, height), 3, alignment=1)
            self._texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._texture.write(np.ascontiguousarray(frame).tobytes())

    def _draw(self) -> None:
        width, height = glfw.get_framebuffer_size(self.window)
        self.gl.screen.use()
        self.gl.viewport = (0, 0, width, height)
        self.gl.clear(0.0, 0.0, 0.0)
        if self._texture is not None:
            self._texture.use(location=0)
            self._quad.render(moderngl.TRIANGLE_STRIP)

    def run(self) -> None:
        """The interactive loop, until the window is closed (Esc, Q or the close button)."""
        try:
            while self.step(wait=1 / 60):
                pass
        finally:
            self.close()

    def sync(self, timeout: float = 60.0) -> Snapshot:
        """Wait until the worker has answered everything asked so far, then show it."""
        if not self.worker.wait(self._version, timeout):
            raise TimeoutError(f"the viewer's worker did not answer within {timeout} s")
        self.step()
        return self.snapshot()

    def screenshot(self, path: Path | str | None = None) -> np.ndarray:
        """The window's pixels, ``uint8 [h, w, 3]`` row 0 at the top; also written to ``path`` if given."""
        self._draw()  # the back buffer's contents are undefined after a swap: draw the frame again
        width, height = glfw.get_framebuffer_size(self.window)
        data = self.gl.screen.read(viewport=(0, 0, width, height), components=3, alignment=1)
        pixels = np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1].copy()
        if path is not None:
            Image.fromarray(pixels).save(path)
        return pixels

    def close(self) -> None:
        """Stop the worker, then close the window; safe to call twice."""
        self.worker.stop()
        if self.window is not None:
            if self._texture is not None:
                self._texture.release()
            self.gl.release()
            glfw.make_context_current(None)
            glfw.destroy_window(self.window)
            glfw.terminate()
            self.window = None

    # -- input ----------------------------------------------------------------------------

    def _on_key(self, window, key, scancode, action, mods) -> None:
        if action != glfw.PRESS:
            return
        name = KEY_NAMES.get(key)
        for index, panel in enumerate(PANELS):
            if name == panel.key:
                self.panel = index
                return
        for command in COMMANDS:
            if name in command.keys:
                shifted = mods & glfw.MOD_SHIFT and command.shift_action is not None
                getattr(self, command.shift_action if shifted else command.action)()
                return

    # -- what the keys do (keys.COMMANDS binds them) ----------------------------------------

    def next_panel(self) -> None:
        self.panel = (self.panel + 1) % len(PANELS)

    def previous_panel(self) -> None:
        self.panel = (self.panel - 1) % len(PANELS)

    def toggle_optimize(self) -> None:
        """Start or stop optimizing."""
        self.optimize = not self.optimize
        self._submit()

    def switch_mode(self) -> None:
        """Optimize the next of :data:`MODES` (pose, vertices), from fresh parameters."""
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._submit()

    def reset(self) -> None:
        """The home view, fresh parameters, an empty loss plot; not optimizing."""
        self.orbit.reset()
        self.optimize = False
        self.resets += 1
        self._submit()

    def report_screenshot(self) -> None:
        """:meth:`save_screenshot`, saying where on stdout."""
        print(f"screenshot: {self.save_screenshot()}")

    def quit(self) -> None:
        """Close the window at the end of this frame (``step`` returns False)."""
        glfw.set_window_should_close(self.window, True)

    def save_screenshot(self) -> Path:
        """Write the window to the first free ``glsplat_view_NNN.png`` in ``screenshot_dir``."""
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        index = 0
        while (path := self.screenshot_dir / SCREENSHOT_PATTERN.format(index)).exists():
            index += 1
        self.screenshot(path)
        return path

    def _on_mouse_button(self, window, button, action, mods) -> None:
        if action == glfw.PRESS:
            x, y = glfw.get_cursor_pos(window)
            self._drag = (button, x, y)
        elif self._drag is not None and self._drag[0] == button:
            self._drag = None

    def _on_cursor(self, window, x, y) -> None:
        if self._drag is None:
            return
        button, x0, y0 = self._drag
        self._drag = (button, x, y)
        if button == glfw.MOUSE_BUTTON_LEFT:
            self.orbit.orbit(x - x0, y - y0)
        else:
            self.orbit.pan(x - x0, y - y0)
        self._submit()

    def _on_scroll(self, window, dx, dy) -> None:
        self.orbit.zoom(dy)
        self._submit()

    def _on_refresh(self, window) -> None:
        self._shown = None  # exposed or resized: draw again

    # -- the same input, from code ----------------------------------------------------------

    def press(self, key: str, shift: bool = False) -> None:
        """Press a key by name: "O", "5", "TAB", "ESCAPE", ...; as if typed."""
        code = getattr(glfw, f"KEY_{key.upper()}")
        self._on_key(self.window, code, 0, glfw.PRESS, glfw.MOD_SHIFT if shift else 0)

    def drag(self, dx: float, dy: float, button: str = "left", steps: int = 4) -> None:
        """Drag by (dx, dy) window pixels with ``button`` ("left", "right" or "middle")."""
        code = getattr(glfw, f"MOUSE_BUTTON_{button.upper()}")
        x, y = glfw.get_cursor_pos(self.window)
        self._on_mouse_button(self.window, code, glfw.PRESS, 0)
        for i in range(1, steps + 1):
            self._on_cursor(self.window, x + dx * i / steps, y + dy * i / steps)
        self._on_mouse_button(self.window, code, glfw.RELEASE, 0)

    def scroll(self, notches: float) -> None:
        self._on_scroll(self.window, 0.0, notches)


# glfw key codes to the names the bindings use (US layout positions, as glfw names them): the
# commands' keys, and the panels' digits on the main row and the keypad.
KEY_NAMES = {**{getattr(glfw, f"KEY_{name}"): name for command in COMMANDS for name in command.keys},
              **{getattr(glfw, f"KEY_{panel.key}"): panel.key for panel in PANELS},
              **{getattr(glfw, f"KEY_KP_{panel.key}"): panel.key for panel in PANELS}}
