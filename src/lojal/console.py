"""The CLI's rich consoles: they read the terminal width when they print, not when they are made.

rich's ``Console`` freezes ``COLUMNS`` into a fixed width at construction, so a module-level console
keeps whatever width the process had when the module was first imported (a narrow terminal at import
time wrapped every later table). A ``LiveConsole`` keeps only an explicitly given width or height;
otherwise rich measures the terminal (and ``COLUMNS``/``LINES``) again on every print.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console


class LiveConsole(Console):
    """A rich ``Console`` whose size is measured when it prints unless ``width``/``height`` are given."""

    def __init__(self, *args: Any, width: int | None = None, height: int | None = None, **kwargs: Any):
        super().__init__(*args, width=width, height=height, **kwargs)
        self._width = width  # rich copied COLUMNS here; None makes Console.size read it at print time
        self._height = height


def make_console(**kwargs: Any) -> Console:
    """The console every CLI module uses (same arguments as ``rich.console.Console``)."""
    return LiveConsole(**kwargs)
