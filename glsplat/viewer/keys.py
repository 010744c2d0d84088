"""The viewer's key and mouse bindings, as data: the window dispatches on them, ``--help`` prints them."""
from __future__ import annotations

from dataclasses import dataclass

from .panels import PANELS

SCREENSHOT_PATTERN = "glsplat_view_{:03d}.png"



@dataclass(frozen=True)
class Command:
    """A key binding: the window calls ``Viewer.<action>()`` when one of ``keys`` is pressed
    (``Viewer.<shift_action>()`` with Shift held, when given); ``--help`` prints ``label`` and ``help``."""

    keys: tuple[str, ...]  # glfw's key names (glfw.KEY_<name>)
    label: str
    help: str
    action: str
    shift_action: str | None = None


# Every key besides the panels' digits; nothing else reaches the window's dispatch.
COMMANDS = (
    Command(("TAB",), "Tab / Shift+Tab", "next / previous panel", "next_panel", shift_action="previous_panel"),
    Command(("O",), "O", "start / stop optimizing (Adam on the pose or on the vertex positions)", "toggle_optimize"),
    Command(("M",), "M", "switch what is optimized: pose <-> vertex positions (resets the parameters)", "switch_mode"),
    Command(("R",), "R", "reset the view, the parameters and the loss plot; stops optimizing", "reset"),
    Command(("P",), "P", f"screenshot of the window to {SCREENSHOT_PATTERN.format(0).replace('000', 'NNN')}",
            "report_screenshot"),
    Command(("ESCAPE", "Q"), "Esc / Q", "quit", "quit"),
)
MOUSE = (
    ("left drag", "orbit around the mesh"),
    ("right or middle drag", "pan"),
    ("scroll", "zoom"),
)


def help_text() -> str:
    """The bindings as an indented table for ``glsplat view --help``."""
    rows = ([(panel.key, f"panel '{panel.name}': {panel.help}") for panel in PANELS]
            + [(command.label, command.help) for command in COMMANDS] + list(MOUSE))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key:<{width}}  {text}" for key, text in rows)
