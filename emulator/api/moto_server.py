"""The emulator's adaptations of moto's server (``moto.server``, ``moto.core.responses``), in one module.

moto's server is built for tests, one request at a time; the emulator serves fleets, so three of its
habits are changed here, for moto's 5.2 series (tests/unit/emulator/test_moto_server.py fails loudly
when an upgrade moves what they rely on):

- which of moto's services serves a host name is found anew for every request by listing moto's own
  package folder (about 200 ``stat`` calls) under a lock every request waits for; the answer for a
  host name never changes, so :func:`cached_dispatcher` remembers it;
- every request lists its response class's methods with ``inspect.getmembers`` to find the action's;
  :func:`remember_response_methods` remembers each class's list (classes do not change);
- the request handler logs a line per request, has no socket timeout and speaks HTTP/1.0;
  :func:`quiet_request_handler` answers with neither log line nor idle connections held for ever, and
  HTTP/1.1 keeps a client's connection open between its calls, as AWS's endpoints do.
"""

from __future__ import annotations

import functools
from typing import Any


def cached_dispatcher(create_backend_app: Any) -> Any:
    """moto's dispatcher of requests to its services, remembering which backend serves a host name."""
    from moto.server import DomainDispatcherApplication

    class CachedDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Any) -> None:
            super().__init__(create_app)
            self._backends: dict[str, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host is None:
                return None
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return CachedDispatcher(create_backend_app)


def remember_response_methods() -> None:
    """Have moto's responses look a class's methods up once, not on every request (idempotent)."""
    from moto.core import responses

    if not hasattr(responses.method_names_from_class, "cache_info"):
        responses.method_names_from_class = functools.cache(responses.method_names_from_class)


def quiet_request_handler(timeout: float) -> Any:
    from moto.server import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):
        """moto's handler, without an access-log line per request, with a socket timeout, and HTTP/1.1."""

        protocol_version = "HTTP/1.1"

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

    QuietRequestHandler.timeout = timeout
    return QuietRequestHandler
