"""How long the ``jitr`` command takes to start: ``jitr --help`` in fresh interpreters, medians.

Moving the CLI out of ``ca/`` and wiring the stack source in ``cli/`` must not make every command
pay for the emulator or moto. Give several checkouts (``--tree``, default this one) to measure them
side by side, round by round, on one machine; each tree runs with this interpreter, its own
packages first on ``sys.path``.

    .venv/bin/python scripts/bench_cli_startup.py --tree . --tree /tmp/before --runs 15 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def entry(tree: Path) -> str:
    """The console script's code for this checkout (``cli:run`` now, ``ca.cli:run`` before issue 12)."""
    module = "cli" if (tree / "cli" / "__init__.py").exists() else "ca.cli"
    return f"import sys; sys.argv = ['jitr', '--help']; from {module} import run; run()"


def one_run(tree: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", entry(tree)], cwd=tree, capture_output=True, timeout=60, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"jitr --help failed in {tree}: {done.stderr.decode()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--runs", type=int, default=15, help="runs per tree per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    results: dict[str, list[float]] = {str(t): [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:  # interleaved, so the machine's load falls on every tree alike
            results[str(tree)].append(statistics.median(one_run(tree) for _ in range(args.runs)))
    report = {
        tree: {"rounds_ms": [round(s * 1000) for s in rounds], "median_ms": round(statistics.median(rounds) * 1000)}
        for tree, rounds in results.items()
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
