"""A script under ``scripts/`` imported by path as a module, once per test session.

The scripts are not a package, so a test imports them by file. The module is registered in
``sys.modules`` under the script's name before it runs: a dataclass defined in it looks its module up
there. Imported as ``from script_module import load_script``: pytest puts ``tests/`` on ``sys.path``
(the root conftest lives there).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: Path) -> ModuleType:
    """The module the script at ``path`` defines, named after its file (loaded on the first call)."""
    name = path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
