"""The viewer's background thread: evaluates (and optimizes) a :class:`FitProblem` off the UI thread.

The UI thread only ever posts the latest :class:`Request` and reads the latest :class:`Snapshot`;
requests it posts while the worker is busy collapse into the newest one, so a slow gradient
never queues up behind mouse motion. The worker owns the problem, and with it its own
headless :class:`glsplat.Context`: an OpenGL context is current in one thread only, and the
UI thread's is the window's.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..camera import Camera
from .problem import POSE, FitProblem, Snapshot


@dataclass(frozen=True)
class Request:
    """What the UI wants computed: the view, whether to optimize, and which parameters."""

    camera: Camera
    optimize: bool = False
    mode: str = POSE
    resets: int = 0  # the UI bumps this to reset the parameters and the loss history


class Worker:
    """Evaluate the newest request, over and over while it asks to optimize.

    Args:
        problem: the problem, used only from the worker's thread from :meth:`start` on.
        wake: called after each new snapshot (the viewer passes ``glfw.post_empty_event`` so a
            waiting event loop redraws at once); must be thread-safe.
    """

    def __init__(self, problem: FitProblem, wake: Callable[[], None] | None = None):
        self.problem = problem
        self._wake = wake
        self._changed = threading.Condition()
        self._request: Request | None = None
        self._posted = 0  # version of the newest request
        self._answered = 0  # version the newest snapshot answers
        self._snapshot: Snapshot | None = None
        self._losses: list[float] = []
        self._stopping = False
        self.error: BaseException | None = None
        self.seconds = 0.0  # wall time of the last evaluation (+ step)
        self._thread = threading.Thread(target=self._run, name="glsplat-viewer-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: Request) -> int:
        """Post ``request`` (replacing any not yet started); returns its version."""
        with self._changed:
            self._request = request
            self._posted += 1
            self._changed.notify_all()
            return self._posted

    def latest(self) -> tuple[Snapshot | None, int, list[float]]:
        """The newest snapshot, the request version it answers, and the loss history."""
        with self._changed:
            return self._snapshot, self._answered, list(self._losses)

    def wait(self, version: int, timeout: float) -> bool:
        """Block until a snapshot answers ``version`` or later (or the worker failed); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._answered >= version or self.error is not None, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next(self) -> tuple[Request, int] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or (self._request is not None and (
                self._posted > self._answered or self._request.optimize)))
            return None if self._stopping else (self._request, self._posted)

    def _run(self) -> None:
        resets = 0
        try:
            while (job := self._next()) is not None:
                request, version = job
                if request.resets != resets or request.mode != self.problem.mode:
                    resets = request.resets
                    self.problem.reset(request.mode)
                    with self._changed:
                        self._losses.clear()
                started = time.perf_counter()
                snapshot = self.problem.evaluate(request.camera)
                if request.optimize:
                    self.problem.step()
                self.seconds = time.perf_counter() - started
                with self._changed:
                    if request.optimize:
                        self._losses.append(snapshot.loss)
                    self._snapshot, self._answered = snapshot, version
                    self._changed.notify_all()
                if self._wake is not None:
                    self._wake()
        except BaseException as error:  # shown by the UI thread, which owns the user's attention
            with self._changed:
                self.error = error
                self._changed.notify_all()
            if self._wake is not None:
                self._wake()
        finally:
            self.problem.close()
