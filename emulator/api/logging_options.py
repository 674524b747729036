"""GetV2LoggingOptions and SetV2LoggingOptions, which moto does not have: the account's AWS IoT logging.

Until SetV2LoggingOptions is called, GetV2LoggingOptions answers NotConfiguredException (404), as AWS
does; ``jitr audit`` reports that as LOGGING_DISABLED_CHECK. The emulator writes no AWSIotLogsV2 logs:
it keeps the setting only, for the calls that read it.
"""

from __future__ import annotations

from typing import Any

from emulator.api.calls import Call
from emulator.store.errors import InvalidRequest, NotConfigured, choice

LEVELS = ("DEBUG", "INFO", "ERROR", "WARN", "DISABLED")


def get_v2_logging_options(call: Call) -> dict[str, Any]:
    options = getattr(call.state, "logging_options", None)  # a snapshot from before the field: never configured
    if options is None:
        raise NotConfigured("Logging options are not configured.")
    return dict(options)


def set_v2_logging_options(call: Call) -> dict[str, Any]:
    level = choice(call.text("defaultLogLevel"), LEVELS, "defaultLogLevel")
    disable = call.body.get("disableAllLogs", False)
    if not isinstance(disable, bool):
        raise InvalidRequest("disableAllLogs must be a boolean.")
    role = call.text("roleArn", max_length=2048)
    options: dict[str, Any] = {"defaultLogLevel": level or "ERROR", "disableAllLogs": disable}
    if role:
        options["roleArn"] = role
    with call.state.lock:
        call.state.logging_options = options
    return {}


HANDLERS = {"GetV2LoggingOptions": get_v2_logging_options, "SetV2LoggingOptions": set_v2_logging_options}
