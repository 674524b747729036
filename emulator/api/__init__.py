"""The emulator's AWS API endpoint: moto server plus the AWS IoT behaviour moto lacks.

:class:`EmulatorApi` serves it on 127.0.0.1; :class:`Registry` is the broker's and rules
engine's typed view of the IoT state behind it.
"""

from emulator.api.server import DEFAULT_ACCOUNT, EmulatorApi
from emulator.store.registry import CaCertificate, DeviceCertificate, Policy, Registry, Thing, TopicRule

__all__ = [
    "DEFAULT_ACCOUNT",
    "CaCertificate",
    "DeviceCertificate",
    "EmulatorApi",
    "Policy",
    "Registry",
    "Thing",
    "TopicRule",
]
