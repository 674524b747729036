"""What functional tests share: the emulator's AWS API, started once a module, and a fresh IoT client on it."""

from __future__ import annotations

import boto3
import pytest

from emulator.api import EmulatorApi
from tests.functional.emulator.test_emulator_api import NO_RETRIES


@pytest.fixture(scope="module")
def module_api():
    """The emulator's AWS API for one test module (moto's state is the process's: it is reset when done)."""
    started = EmulatorApi().start()
    yield started
    started.reset()
    started.stop()


@pytest.fixture
def fresh_iot(module_api):
    """An IoT client on the module's emulator, emptied first; no retries, so every answer is the first."""
    module_api.reset()
    return boto3.client(
        "iot", region_name="us-east-1", endpoint_url=module_api.url, config=NO_RETRIES,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
