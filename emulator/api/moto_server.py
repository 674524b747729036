"""The emulator's adaptations of moto's server (``moto.server``, ``moto.core.responses``), in one module.

moto's server is built for tests, one request at a time; the emulator serves fleets, so three of its
habits are changed here, for moto's 5.2 series (tests/unit/emulator/test_moto_server.py fails loudly
when an upgrade moves what they rely on):

- which of moto's services serves a host name is found anew for every request by listing moto's own
  package folder (about 200 ``stat`` calls) under a lock every request waits for; the answer for a
  host name never changes, so :func:`cached_dispatcher` remembers it;
- every request lists its response class's methods with ``inspect.getmembers`` to find the action's;
  :func:`remember_response_methods` remembers each class's list (classes do not change);
- the request handler logs a line per request, has no socket timeout, and (werkzeug's) closes every
  connection after one response, so each AWS call paid a TCP connection and a server thread;
  :func:`quiet_request_handler` logs nothing, holds an idle connection only for a while, and keeps a
  client's connection open between its calls, as AWS's endpoints do (werkzeug 3.1's handler).
"""

from __future__ import annotations

import functools
import selectors
import socket
import threading
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


class _BoundedInput:
    """A request body of ``length`` bytes read from a kept-alive connection: never past its end (the next
    request follows it on the same connection), and what the application left unread is drained after."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream, self.left = stream, length

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(wanted) if wanted else b""
        self.left -= len(data)
        if wanted and not data:
            self.left = 0  # the client went away mid-body
        return data

    def readline(self, size: int | None = -1) -> bytes:
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.readline(wanted) if wanted else b""
        self.left -= len(data)
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self) -> None:
        while self.left > 0 and self.read(min(self.left, 65536)):
            pass


class _NoDrainSelector:
    """What werkzeug's handler gets for its after-response drain of a kept-alive connection: nothing to wait
    for (the body was drained to its length; what follows is the client's next request)."""

    def register(self, *_args: Any) -> None:
        pass

    def select(self, timeout: float | None = None) -> list:
        return []

    def close(self) -> None:
        pass


_kept_alive = threading.local()


class _WerkzeugSelectors:
    """Stands in for the ``selectors`` module inside ``werkzeug.serving``, which uses it only for that drain."""

    EVENT_READ = selectors.EVENT_READ

    @staticmethod
    def DefaultSelector() -> Any:  # noqa: N802  (the name werkzeug calls)
        return _NoDrainSelector() if getattr(_kept_alive, "on", False) else selectors.DefaultSelector()


def quiet_request_handler(timeout: float) -> Any:
    """moto's request handler without an access-log line per request, with a socket timeout, and with HTTP/1.1
    keep-alive: werkzeug closes every connection after one response (its handler cannot tell where a body
    ends), so each AWS call cost a TCP connection and a server thread. A request with a Content-Length (every
    AWS SDK call) keeps its connection: its body is read to that length and no further, and whatever the
    application left of it is drained before the next request is read. A chunked body, or a client that asks
    to close, closes as before."""
    import werkzeug.serving
    from moto.server import MotoRequestHandler

    werkzeug.serving.selectors = _WerkzeugSelectors  # type: ignore[assignment]

    class QuietRequestHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        _body: _BoundedInput | None = None  # this request's body, on a kept-alive connection

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # werkzeug writes a response's headers and body apart: on a kept-alive connection Nagle's algorithm
            # would hold the body back until the client's delayed ACK of the headers, 40 ms on Linux
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _keeps_alive(self) -> bool:
            length = self.headers.get("Content-Length", "0" if self.command in ("GET", "HEAD", "DELETE") else None)
            return (
                length is not None
                and length.isdigit()
                and "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower()
                and (self.headers.get("Connection") or "").lower() != "close"
            )

        def make_environ(self) -> Any:
            environ = super().make_environ()
            if getattr(_kept_alive, "on", False):
                self._body = _BoundedInput(self.rfile, int(self.headers.get("Content-Length") or 0))
                environ["wsgi.input"] = self._body
            return environ

        def run_wsgi(self) -> None:
            _kept_alive.on = self._keeps_alive()
            try:
                super().run_wsgi()
                if _kept_alive.on and self._body is not None:
                    self._body.drain()
            finally:
                _kept_alive.on = False
                self._body = None

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "connection" and value.lower() == "close" and getattr(_kept_alive, "on", False):
                return  # werkzeug's "always close"; this request's connection is kept
            super().send_header(keyword, value)

    QuietRequestHandler.timeout = timeout
    return QuietRequestHandler
