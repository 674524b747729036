"""Shared fixtures: a fixed clock, CA hierarchies in memory and on disk, a CLI runner."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from base.keys import generate_key
from ca.issue import Issuer, issue_root, make_name
from cli import app

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def root_issuer() -> Issuer:
    key = generate_key("ec-p256")
    return Issuer(issue_root(key, make_name("Test Root", org="Acme", country="DE"), now=NOW, days=3650), key)


@pytest.fixture(scope="session")
def intermediate_issuer(root_issuer: Issuer) -> Issuer:
    key = generate_key("ec-p256")
    cert = root_issuer.issue_intermediate(
        key.public_key(), make_name("Test Intermediate", country="DE"), now=NOW, days=1825
    )
    return Issuer(cert, key)


class Jitr:
    """Runs ``jitr`` in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: object, env: dict[str, str] | None = None, input: str | None = None):
        return self.runner.invoke(app, [str(a) for a in args], env=env, input=input)


@pytest.fixture
def jitr() -> Jitr:
    return Jitr()


@pytest.fixture
def pki(tmp_path: Path, jitr: Jitr) -> Path:
    """A CA directory with a root and an intermediate, country DE."""
    directory = tmp_path / "pki"
    result = jitr("ca", "init", "--dir", directory, "--country", "DE", "--org", "Acme", "--intermediate")
    assert result.exit_code == 0, result.output
    return directory
