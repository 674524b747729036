#!/usr/bin/env bash
# Run the test suite; pytest's exit code 5 (no tests collected) is a failure, not a pass.
set -uo pipefail
python=${1:-.venv/bin/python}
shift || true
"$python" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
