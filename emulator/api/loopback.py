"""A WSGI application served on 127.0.0.1 in a daemon thread: werkzeug's threaded server, without an access-log
line per request, with HTTP/1.1 keep-alive and a timeout on every connection. The emulator's API Gateway and
its S3 website endpoint each run one."""

from __future__ import annotations

import threading
from typing import Any, Self

from base.errors import InvalidInputError

HOST = "127.0.0.1"  # loopback only: nothing the emulator serves has authentication of AWS's strength
REQUEST_TIMEOUT = 30.0  # seconds an idle or slow connection may hold a server thread
STOP_TIMEOUT = 5.0


class LoopbackServer:
    """Serves a WSGI application on ``HOST:port`` (0 picks a free port) from :meth:`start` until :meth:`stop`:
    ``app``, or the subclass itself, whose ``__call__`` is then the application."""

    def __init__(self, *, port: int, name: str, app: Any = None) -> None:
        if not 0 <= port <= 65535:
            raise InvalidInputError(f"Port {port} is not a TCP port; use 0 to pick a free one.")
        self.app: Any = app if app is not None else self
        self.name, self._requested_port = name, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            timeout = REQUEST_TIMEOUT
            protocol_version = "HTTP/1.1"

            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                pass

        try:
            self._server = make_server(HOST, self._requested_port, self.app, threaded=True, request_handler=Handler)
        except OSError as exc:
            raise InvalidInputError(f"Cannot listen on {HOST}:{self._requested_port}: {exc.strerror or exc}.") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(STOP_TIMEOUT)
            self._server = self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started; call start() first.")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"
