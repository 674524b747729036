"""Every module of the kit imports on its own, whatever was imported before it. (That there is no
import cycle is test_architecture.py's: it reads the imports instead of running them.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("base", "ca", "cli", "cloud", "device", "emulator", "fleet", "rules")

IMPORT_EACH_FRESH = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in {packages!r}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
"""


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_each_module_imports_first_in_a_fresh_interpreter_state():
    found = modules()
    assert len(found) > 40 and "cli.wiring" in found
    script = IMPORT_EACH_FRESH.format(packages=set(PACKAGES))
    done = subprocess.run(
        [sys.executable, "-c", script, *found], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
