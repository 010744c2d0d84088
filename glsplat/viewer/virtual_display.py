"""A private Xvfb X server for running the viewer where there is no display (tests, screenshots)."""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess

# Xvfb picks a free display number itself (-displayfd), so parallel runs never collide.
SCREEN = "1280x1024x24"
START_TIMEOUT = 20.0


def xvfb_path() -> str | None:
    return shutil.which("Xvfb")


@contextlib.contextmanager
def virtual_display():
    """Start Xvfb on a free display, point ``DISPLAY`` at it, and stop it afterwards.

    Yields the display name (":N"). Raises FileNotFoundError when Xvfb is not installed and
    RuntimeError when it does not come up.
    """
    binary = xvfb_path()
    if binary is None:
        raise FileNotFoundError("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb)")
    read, write = os.pipe()
    process = subprocess.Popen([binary, "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                               pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], START_TIMEOUT)
        number = os.read(read, 64).decode().strip() if ready else ""
        if not number:
            process.kill()
            error = process.communicate()[1].decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"Xvfb did not start: {error[-1] if error else 'no display number within the timeout'}")
        previous = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = f":{number}"
        try:
            yield f":{number}"
        finally:
            if previous is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = previous
    finally:
        os.close(read)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
