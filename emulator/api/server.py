"""The emulator's AWS API endpoint: moto server, in-process, on 127.0.0.1, with the IoT it lacks.

::

    with EmulatorApi(quotas={"UpdateCertificate": 10}, mqtt_endpoint=("localhost", 8883)) as api:
        os.environ["AWS_ENDPOINT_URL"] = api.url   # boto3 and the AWS CLI now talk to the emulator
        registry = api.registry()                  # the broker's and rules engine's typed view

moto keeps its backends, and its configuration, in process-wide globals: run one EmulatorApi per
process, and do not start ``moto.mock_aws`` while it runs (it resets every backend).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from base.errors import InvalidInputError
from emulator.api import (
    ca_registration,
    devices,
    endpoint,
    logging_options,
    provisioning_templates,
    register_thing,
    registration_tasks,
    topic_rules,
)
from emulator.api.calls import DEFAULT_REGION, ApiSettings
from emulator.api.middleware import IotMiddleware, iot_operations
from emulator.api.moto_server import cached_dispatcher, quiet_request_handler, remember_response_methods
from emulator.api.quotas import Quotas
from emulator.store.backends import untrack_model_instances
from emulator.store.registry import Registry
from emulator.store.state import StateStore

HOST = "127.0.0.1"  # loopback only: the emulator has no authentication
DEFAULT_ACCOUNT = "123456789012"  # moto's default account (any access key it has not issued maps here)
REQUEST_TIMEOUT = 30.0  # seconds an idle or slow connection may hold a server thread
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05  # how soon stop() is noticed

HANDLERS = {
    **ca_registration.HANDLERS,
    **provisioning_templates.HANDLERS,
    **endpoint.HANDLERS,
    **devices.HANDLERS,
    **registration_tasks.HANDLERS,
    **register_thing.HANDLERS,
    **topic_rules.HANDLERS,
    **logging_options.HANDLERS,
}


class EmulatorApi:
    """moto server plus the emulator's IoT operations and quotas, served on 127.0.0.1:``port``."""

    def __init__(
        self,
        *,
        port: int = 0,
        quotas: Mapping[str, float] | None = None,
        mqtt_endpoint: tuple[str, int] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise InvalidInputError(f"Port {port} is not a TCP port; use 0 to pick a free one.")
        self._requested_port = port
        self.quotas = Quotas(quotas, known_operations=iot_operations())
        self.store = StateStore()
        self.settings = ApiSettings(mqtt_endpoint, quotas=self.quotas)
        self._server: Any = None  # werkzeug's server while serving
        self._thread: threading.Thread | None = None
        self._saved_iot_config: Any = None  # moto's iot config while the emulator overrides it

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, port: int | None = None) -> EmulatorApi:
        """Serve on 127.0.0.1 in a daemon thread (on ``port``, if given, instead of the constructor's); returns
        once the port is bound."""
        if self._server is not None:
            return self
        if port is not None:
            self._requested_port = port
        from moto.core.config import default_user_config
        from moto.server import create_backend_app

        remember_response_methods()
        untrack_model_instances()
        from werkzeug.serving import make_server

        self._saved_iot_config = copy.deepcopy(default_user_config.get("iot"))
        default_user_config["iot"] = {"use_valid_cert": True}  # DER-based certificate ids in moto's own calls
        app = IotMiddleware(
            cached_dispatcher(create_backend_app),
            handlers=HANDLERS,
            quotas=self.quotas,
            store=self.store,
            settings=self.settings,
        )
        try:
            self._server = make_server(
                HOST, self._requested_port, app, threaded=True, request_handler=quiet_request_handler(REQUEST_TIMEOUT)
            )
        except OSError as exc:
            self._restore_config()
            raise InvalidInputError(f"Cannot listen on {HOST}:{self._requested_port}: {exc.strerror or exc}.") from exc
        self.settings.api_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="jitr-emulator-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (moto's data stays in the process until reset)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        self._server = None
        self._thread = None
        self._restore_config()

    def _restore_config(self) -> None:
        from moto.core.config import default_user_config

        if self._saved_iot_config is not None:
            default_user_config["iot"] = self._saved_iot_config
            self._saved_iot_config = None

    def __enter__(self) -> EmulatorApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource: moto's backends and the emulator's own state."""
        from moto.core.base_backend import BackendDict

        BackendDict.reset()
        self.store.clear()

    # -- where it is --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The emulator API is not started; call start() first.")
        return self._server.server_port

    @property
    def url(self) -> str:
        """The value for AWS_ENDPOINT_URL (or boto3's ``endpoint_url``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def mqtt_endpoint(self) -> tuple[str, int] | None:
        """The (host, port) DescribeEndpoint answers; the broker sets it once it listens."""
        return self.settings.mqtt_endpoint

    @mqtt_endpoint.setter
    def mqtt_endpoint(self, value: tuple[str, int] | None) -> None:
        self.settings.mqtt_endpoint = value

    def info(self, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
        """What ``jitr local up --json`` prints: where the API and the MQTT broker are."""
        host, port = self.mqtt_endpoint or (None, None)
        return {"endpointUrl": self.url, "region": region, "accountId": account, "mqttHost": host, "mqttPort": port}

    # -- the Python side ----------------------------------------------------------------------------

    def registry(self, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> Registry:
        """Typed access to the IoT state of one account and region (see :mod:`emulator.store.registry`)."""
        return Registry(self.store.region(account, region), account, region)

    def backend(self, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION):
        """moto's IoTBackend for one account and region (prefer :meth:`registry`)."""
        return self.registry(account, region).backend
