"""The kit's Lambda functions imported as Lambda imports them: ``functions/<name>/app.py`` with its own folder on
``sys.path`` (for the modules beside it), under a module name of its own (``<name>_app``), so that each
function's ``app`` and sibling modules do not clash in one test process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"


def load_function(name: str, module: str = "app") -> ModuleType:
    """``functions/<name>/<module>.py`` (a function's handler module: ``app``, or ``users`` beside it)."""
    directory = FUNCTIONS / name
    sys.path.insert(0, str(directory))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_{module}", directory / f"{module}.py")
        assert spec is not None and spec.loader is not None, f"cannot load {directory / f'{module}.py'}"
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = loaded  # dataclasses look their module up there
        spec.loader.exec_module(loaded)
        return loaded
    finally:
        sys.path.remove(str(directory))
