"""The local AWS IoT Core: API endpoint, MQTT/TLS broker, rules engine, Lambda runtime and API Gateway, wired.

Everything listens on 127.0.0.1 only. ``LocalIot`` is what ``jitr local up``, ``jitr demo`` and
the test fixture start.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.api.calls import DEFAULT_REGION
from emulator.api.server import EmulatorApi
from emulator.apigateway.server import ApiGateway
from emulator.iot.core import CoreSettings, IotCore
from emulator.lambdas.runtime import LambdaRuntime
from emulator.mqtt.broker import Broker, BrokerNotRunningError
from emulator.mqtt.hooks import BrokerHooks
from emulator.persistence import DEFAULT_INTERVAL, Persistence
from emulator.rules.engine import RulesEngine

ENDPOINT_HOST = "localhost"  # the broker's certificate names localhost and 127.0.0.1


@dataclass
class Options:
    state_dir: Path
    api_port: int = 0
    mqtt_port: int = 0
    apigateway_port: int = 0
    quotas: dict[str, float] = field(default_factory=dict)
    jitp_drops_first_connect: bool = False
    lambda_retry_delays: tuple[float, ...] = (60.0, 120.0)  # AWS's; tests and the demo pass shorter ones
    region: str = DEFAULT_REGION  # the region the broker, the rules and the functions serve
    persist: bool = False  # keep the state in STATE/emulator.snapshot across restarts ('jitr local up' does)
    fresh: bool = False  # with persist: set the snapshot aside and start empty
    snapshot_interval: float = DEFAULT_INTERVAL


class LocalIot:
    """Start, use and stop the emulator in this process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.api = EmulatorApi(port=options.api_port, quotas=options.quotas or None)
        self.broker: Broker | None = None
        self.rules: RulesEngine | None = None
        self.lambdas: LambdaRuntime | None = None
        self.core: IotCore | None = None
        self.gateway: ApiGateway | None = None
        self.persistence: Persistence | None = None

    def start(self) -> LocalIot:
        state = self.options.state_dir = Path(self.options.state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        for name in ("amqtt", "transitions", "werkzeug"):
            logging.getLogger(name).setLevel(logging.WARNING)
        previous: dict[str, int] = {}
        if self.options.persist:  # before anything serves: the snapshot replaces moto's backends
            persistence = Persistence(state, self.api.store, interval=self.options.snapshot_interval)
            previous = persistence.load(fresh=self.options.fresh)
            self.persistence = persistence
        self.api.start(_port(self.options.api_port, previous.get("api")))
        try:
            registry = self.api.registry(region=self.options.region)
            settings = CoreSettings(
                account_id=registry.account,
                region=registry.region,
                jitp_drops_first_connect=self.options.jitp_drops_first_connect,
            )
            self.lambdas = LambdaRuntime(
                account_id=registry.account,
                region=registry.region,
                endpoint_url=self.api.url,
                work_dir=state / "lambda",
                retry_delays=self.options.lambda_retry_delays,
                log_dir=state / "logs",
            )
            self.gateway = ApiGateway(
                account_id=registry.account,
                region=registry.region,
                lambdas=self.lambdas,
                port=_port(self.options.apigateway_port, previous.get("apigateway")),
            ).start()
            self.rules = RulesEngine(registry, lambdas=self.lambdas, log_dir=state / "logs")
            self.core = IotCore(registry, on_message=self.rules.handle, settings=settings)
            mqtt_port = _port(self.options.mqtt_port, previous.get("mqtt"))
            self.broker = Broker(_touching(self.core.hooks(), self.api.store.touch), state_dir=state, port=mqtt_port)
            self.broker.start()
            publish = functools.partial(self.broker.publish, wait=False)  # hooks never wait for the loop
            self.core.publish = publish
            self.rules.publish = publish
            port = self.broker.port
            assert port is not None  # start() returns once the broker is bound
            self.api.mqtt_endpoint = (ENDPOINT_HOST, port)
            self.api.settings.data_publish = self._data_publish  # aws iot-data publish: into the broker
            self.api.settings.lambda_runtime = self.lambdas  # aws lambda invoke: the deployed code
            self.api.settings.local_info = self.info()  # where jitr local deploy finds the gateway
            if self.persistence is not None:
                self.persistence.start({"api": self.api.port, "mqtt": port, "apigateway": self.gateway.port})
        except BaseException:
            self.stop()
            raise
        return self

    def _data_publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """An HTTP Publish: delivered like a device's message (subscribers, then the rules)."""
        broker = self.broker
        if broker is None:
            raise BrokerNotRunningError("The MQTT broker is not running.")
        broker.publish(topic, payload, qos, retain)

    def stop(self) -> None:
        self.api.settings.data_publish = None
        self.api.settings.lambda_runtime = None
        self.api.settings.local_info = None
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.lambdas is not None:
            self.lambdas.close()
            self.lambdas = None
        self.api.stop()
        if self.persistence is not None:  # every server has stopped: this snapshot is whole
            self.persistence.stop()
            self.persistence = None

    def __enter__(self) -> LocalIot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """Where everything is: what ``jitr local up --json`` prints."""
        registry = self.api.registry(region=self.options.region)
        return {
            "aws_endpoint_url": self.api.url,
            "mqtt_host": ENDPOINT_HOST,
            "mqtt_port": self.broker.port if self.broker else None,
            "endpoint_ca": str(self.broker.ca_file) if self.broker else None,
            "apigateway_url": self.gateway.url if self.gateway else None,
            "region": registry.region,
            "account_id": registry.account,
            "state_dir": str(self.options.state_dir),
        } | (self.persistence.info() if self.persistence else {})

    def environment(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and ``jitr`` at this emulator."""
        return api_environment(self.info())


def _touching(hooks: BrokerHooks, touch: Callable[[], None]) -> BrokerHooks:
    """The broker's hooks, each connect, message and disconnect also saying the state may have changed
    (JITR/JITP register certificates, rules write to S3): what the periodic snapshot looks for."""

    def after(hook: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if hook is None:
            return None

        @functools.wraps(hook)
        def call(*args: Any) -> Any:
            try:
                return hook(*args)
            finally:
                touch()

        return call

    return dataclasses.replace(
        hooks,
        on_connect=after(hooks.on_connect),
        on_message=after(hooks.on_message),
        on_disconnect=after(hooks.on_disconnect),
    )


def _port(requested: int, previous: int | None) -> int:
    """The port to listen on: the one asked for; else the one of the last run, so that clients configured
    then (devices, AWS_ENDPOINT_URL in a shell, stack outputs) find the emulator again; else a free one."""
    if requested or not previous:
        return requested
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", previous))
        except OSError:
            logging.getLogger("jitr.emulator").warning(
                "Port %s of the last run is taken; listening on another", previous
            )
            return 0
    return previous


def api_environment(info: dict[str, Any]) -> dict[str, str]:
    """What points boto3, the AWS CLI and ``jitr`` at the emulator that ``info`` describes."""
    return {
        "AWS_ENDPOINT_URL": info["aws_endpoint_url"],
        "AWS_REGION": info["region"],
        "AWS_DEFAULT_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
    }


def shell_environment(info: dict[str, Any]) -> dict[str, str]:
    """What ``jitr local env`` exports: :func:`api_environment`, and the broker for devices and deploy.sh."""
    return api_environment(info) | {
        "JITR_MQTT_ENDPOINT": f"{info['mqtt_host']}:{info['mqtt_port']}",
        "JITR_ROOT_CA": info["endpoint_ca"],
    }
