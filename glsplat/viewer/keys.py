"""The viewer's key and mouse bindings, as data: the window dispatches on them, ``--help`` prints them."""
from __future__ import annotations

from .panels import PANELS

SCREENSHOT_PATTERN = "glsplat_view_{:03d}.png"

# (key, what it does); the window matches on the first column's key names.
COMMANDS = (
    ("Tab / Shift+Tab", "next / previous panel"),
    ("O", "start / stop optimising (Adam on the pose or on the vertex positions)"),
    ("M", "switch what is optimised: pose <-> vertex positions (resets the parameters)"),
    ("R", "reset the view, the parameters and the loss plot; stops optimising"),
    ("P", f"screenshot of the window to {SCREENSHOT_PATTERN.format(0).replace('000', 'NNN')}"),
    ("Esc / Q", "quit"),
)
MOUSE = (
    ("left drag", "orbit around the mesh"),
    ("right or middle drag", "pan"),
    ("scroll", "zoom"),
)


def help_text() -> str:
    """The bindings as an indented table for ``glsplat view --help``."""
    rows = [(panel.key, f"panel '{panel.name}': {panel.help}") for panel in PANELS] + list(COMMANDS) + list(MOUSE)
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key:<{width}}  {text}" for key, text in rows)
