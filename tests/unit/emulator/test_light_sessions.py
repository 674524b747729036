"""The emulator's amqtt adaptation changes amqtt only when the emulator's broker starts, not on import."""

from __future__ import annotations

import subprocess
import sys

IMPORT_ONLY = """
from amqtt.mqtt.protocol import broker_handler
from amqtt.session import Session
import emulator.mqtt.connection as connection
import emulator.mqtt.aws_broker
assert broker_handler.Session is Session, "importing the emulator swapped amqtt's Session"
connection.use_light_sessions()
assert broker_handler.Session is connection._Session
connection.use_light_sessions()  # idempotent
assert broker_handler.Session is connection._Session
print("ok")
"""


def test_importing_the_emulators_mqtt_package_leaves_amqtt_as_it_is_until_the_broker_starts():
    done = subprocess.run([sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
