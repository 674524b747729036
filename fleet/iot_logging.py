"""AWS IoT's own logs for a stack's account (``jitr fleet logging``, run by ``deploy.sh``; undone by reset).

Logging is one setting per account and region: a stack turns v2 logging on (default level ERROR, with its
IotLoggingRole) only when it is off (never configured, all logs disabled, or level DISABLED), and leaves a
configuration that is on alone, whoever made it. ``jitr fleet reset`` (``delete.sh``) turns it off again
only when it uses the stack's role, which goes with the stack; ``jitr audit`` then says logging is off.
"""

from __future__ import annotations

from cloud.iot_account import IotAccount

LEVEL = "ERROR"


def logging_on(options: dict | None) -> bool:
    return options is not None and not options.get("disableAllLogs") and options.get("defaultLogLevel") != "DISABLED"


def ensure_logging(iot: IotAccount, role_arn: str) -> str:
    """``kept`` (logging is on already) or ``enabled`` (turned on with ``role_arn``)."""
    if logging_on(iot.v2_logging_options()):
        return "kept"
    iot.set_v2_logging_options(role_arn=role_arn, level=LEVEL)
    return "enabled"


def release_logging(iot: IotAccount, role_arn: str | None) -> bool:
    """Turn logging off if it uses ``role_arn`` (the stack's, about to be deleted); whether it did."""
    options = iot.v2_logging_options()
    if role_arn is None or options is None or options.get("roleArn") != role_arn or not logging_on(options):
        return False
    iot.set_v2_logging_options(role_arn=role_arn, level="DISABLED", disable_all=True)
    return True
