"""The emulator serves the user's region: a shell with AWS_DEFAULT_REGION=eu-central-1 registers a CA and
its devices connect; a device whose CA is registered in another region is refused, and told why."""

from __future__ import annotations

import logging

import pytest

from base.errors import InvalidInputError
from cli.local_app import check_region
from tests.e2e.conftest import JITP_ROLE, NOT_AUTHORIZED, Device, mint, register_ca, running_emulator

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def frankfurt(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("eu-central-1"), region="eu-central-1") as iot:
        yield iot


def test_an_emulator_serving_eu_central_1_onboards_a_ca_registered_from_a_shell_in_that_region(
    jitr, frankfurt, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert frankfurt.info()["region"] == "eu-central-1"
    assert frankfurt.environment()["AWS_REGION"] == "eu-central-1"
    pki = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--intermediate").exit_code == 0
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    client, history = Device(frankfurt, *mint(jitr, pki, "fra-1"), "fra-1").connect_until_accepted()
    assert history == [0]
    client.disconnect()
    assert frankfurt.api.registry(region="eu-central-1").thing("fra-1") is not None


def test_a_device_whose_ca_is_registered_in_another_region_is_refused_and_the_log_says_where(
    jitr, frankfurt, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # the CA goes to another region than the broker serves
    pki = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--intermediate").exit_code == 0
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    with caplog.at_level(logging.WARNING, logger="jitr.emulator"):
        rc, client = Device(frankfurt, *mint(jitr, pki, "oregon-1"), "oregon-1").connect_once()
    assert (rc, client) == (NOT_AUTHORIZED, None)
    assert any("registered in us-west-2, not in eu-central-1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", ["europe", "EU-CENTRAL-1", "eu-central", ""])
def test_a_region_that_is_not_shaped_like_one_is_refused(bad):
    with pytest.raises(InvalidInputError, match="is not an AWS region name"):
        check_region(bad)
