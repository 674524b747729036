"""Where the emulator's services are, for the emulator's own tools: ``GET /_jitr/info`` on its API port.

This is plumbing between ``jitr local deploy`` and the running emulator, not an AWS API: the deployer
asks it where API Gateway APIs are served, to write stack outputs that work locally. No AWS request
has this path (and the endpoint has no authentication anyway: it listens on loopback only).
"""

from __future__ import annotations

import json
from typing import Any

INFO_PATH = "/_jitr/info"


def answer(info: dict[str, Any] | None) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, [("Content-Type", "application/json")], json.dumps(info or {}).encode()
