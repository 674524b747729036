#!/usr/bin/env bash
# Write requirements.lock: pyproject.toml's dependencies (with the dev extra) resolved in a fresh,
# throwaway venv, every transitive version pinned. `make lock` runs it; commit the result.
set -euo pipefail
python=${1:-python3}
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --upgrade pip
"$scratch/venv/bin/python" -m pip install --quiet '.[dev]'
# AWS's device SDK for the e2e tests: its exact awscrt pin conflicts with botocore[crt]'s, so without its deps
"$scratch/venv/bin/python" -m pip install --quiet --no-deps "awsiotsdk==${AWSIOTSDK_VERSION:-1.31.0}"
{
  echo "# Every package jitr-kit installs, pinned: written by 'make lock' (scripts/lock.sh) from pyproject.toml."
  echo "# 'make deps' installs exactly these, then the kit itself with --no-deps."
  "$scratch/venv/bin/python" -m pip freeze --exclude-editable --all | grep -v -E '^(jitr-kit|pip|setuptools|wheel)([=@ ]|$)' | LC_ALL=C sort -f
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "Wrote requirements.lock ($(grep -c -v '^#' requirements.lock) packages)."
