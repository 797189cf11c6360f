"""A pickled object whose unpickling runs a shell command: what a hostile checkpoint would carry."""

from __future__ import annotations

import os
from pathlib import Path


class ShellPayload:
    """Unpickling this runs ``touch marker``: the marker file appearing means the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)
