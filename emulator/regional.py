"""What the emulator runs for each region it serves: an MQTT broker (the region's data endpoint) with the
fleet provisioning MQTT API, the rules engine of the region's topic rules, the Lambda runtime of its
functions, and API Gateway for its APIs, each on a loopback port of its own. The AWS API endpoint is one
for every region (the region is in each request's signature), as ``AWS_ENDPOINT_URL`` is one URL.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.api.calls import RegionServices
from emulator.api.server import EmulatorApi
from emulator.apigateway.server import ApiGateway
from emulator.iot.core import CoreSettings, IotCore
from emulator.iot.fleet_provisioning import FleetProvisioning
from emulator.iot.signed_connections import SignedConnections
from emulator.lambdas.runtime import LambdaRuntime
from emulator.mqtt.broker import Broker, BrokerNotRunningError
from emulator.mqtt.hooks import BrokerHooks
from emulator.rules.engine import RulesEngine

ENDPOINT_HOST = "localhost"  # the broker's certificate names localhost and 127.0.0.1


@dataclass(frozen=True)
class RegionSettings:
    region: str
    state_dir: Path  # the endpoint CA (shared by every region's broker)
    work_dir: Path  # the region's own: lambda/ and logs/
    mqtt_port: int = 0
    apigateway_port: int = 0
    jitp_drops_first_connect: bool = False
    lambda_retry_delays: tuple[float, ...] = (60.0, 120.0)


class RegionServer:
    """Start and stop the broker, rules engine, Lambda runtime and API Gateway of one region."""

    def __init__(self, api: EmulatorApi, settings: RegionSettings) -> None:
        self.api = api
        self.settings = settings
        self.region = settings.region
        self.broker: Broker | None = None
        self.rules: RulesEngine | None = None
        self.lambdas: LambdaRuntime | None = None
        self.core: IotCore | None = None
        self.gateway: ApiGateway | None = None
        self.fleet: FleetProvisioning | None = None

    def start(self) -> RegionServices:
        """Start everything (on failure, stop what started); what the API answers this region with."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RegionServices:
        settings = self.settings
        registry = self.api.registry(region=settings.region)
        logs = settings.work_dir / "logs"
        self.lambdas = LambdaRuntime(
            account_id=registry.account,
            region=registry.region,
            endpoint_url=self.api.url,
            work_dir=settings.work_dir / "lambda",
            retry_delays=settings.lambda_retry_delays,
            log_dir=logs,
        )
        self.gateway = ApiGateway(
            account_id=registry.account, region=registry.region, lambdas=self.lambdas, port=settings.apigateway_port
        ).start()
        self.rules = RulesEngine(registry, lambdas=self.lambdas, log_dir=logs)
        core_settings = CoreSettings(
            account_id=registry.account,
            region=registry.region,
            jitp_drops_first_connect=settings.jitp_drops_first_connect,
        )
        self.core = IotCore(registry, on_message=self.rules.handle, settings=core_settings)
        self.fleet = FleetProvisioning(registry, invoke=self.lambdas.invoke)
        signed = SignedConnections(registry, account_id=registry.account, region=registry.region)
        hooks = dataclasses.replace(self.core.hooks(), on_request=self.fleet.answer, on_websocket=signed.on_websocket)
        hooks = _touching(hooks, self.api.store.touch)
        self.broker = Broker(hooks, state_dir=settings.state_dir, port=settings.mqtt_port)
        self.broker.start()
        publish = functools.partial(self.broker.publish, wait=False)  # hooks never wait for the loop
        self.core.publish = publish
        self.core.disconnect_client = self.broker.disconnect_client
        self.rules.publish = publish
        port = self.broker.port
        assert port is not None  # start() returns once the broker is bound
        return RegionServices(
            mqtt_endpoint=(ENDPOINT_HOST, port),
            data_publish=self._data_publish,
            lambda_runtime=self.lambdas,
            certificate_changed=self.core.certificate_changed,
        )

    def _data_publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """An HTTP Publish: delivered like a device's message (subscribers, then the rules)."""
        broker = self.broker
        if broker is None:
            raise BrokerNotRunningError("The MQTT broker is not running.")
        broker.publish(topic, payload, qos, retain)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        if self.lambdas is not None:
            self.lambdas.close()
            self.lambdas = None

    def ports(self) -> dict[str, int]:
        """The ports it listens on, by what a snapshot records them as (``mqtt:REGION``, ``apigateway:REGION``)."""
        found = {}
        if self.broker is not None and self.broker.port is not None:
            found[f"mqtt:{self.region}"] = self.broker.port
        if self.gateway is not None:
            found[f"apigateway:{self.region}"] = self.gateway.port
        return found

    def info(self) -> dict[str, Any]:
        broker = self.broker
        return {
            "mqtt_host": ENDPOINT_HOST,
            "mqtt_port": broker.port if broker else None,
            "endpoint_ca": str(broker.ca_file) if broker else None,
            "apigateway_url": self.gateway.url if self.gateway else None,
            "logs": str(self.settings.work_dir / "logs"),
        }


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
        on_request=after(hooks.on_request),
        on_disconnect=after(hooks.on_disconnect),
    )
