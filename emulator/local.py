"""The local AWS IoT Core: API endpoint, MQTT/TLS broker, rules engine, Lambda runtime and API Gateway, wired.

Everything listens on 127.0.0.1 only. ``LocalIot`` is what ``jitr local up``, ``jitr demo`` and
the test fixture start.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.errors import InvalidInputError
from emulator.api.calls import DEFAULT_REGION
from emulator.api.server import EmulatorApi
from emulator.apigateway.server import ApiGateway
from emulator.iot.core import IotCore
from emulator.lambdas.runtime import LambdaRuntime
from emulator.mqtt import tls
from emulator.mqtt.broker import Broker
from emulator.persistence import DEFAULT_INTERVAL, Persistence
from emulator.regional import ENDPOINT_HOST, RegionServer, RegionSettings
from emulator.rules.engine import RulesEngine
from emulator.website.server import WebsiteEndpoint


@dataclass
class Options:
    state_dir: Path
    api_port: int = 0
    mqtt_port: int = 0  # the first region's broker; other regions' get free ports (or their last run's)
    apigateway_port: int = 0  # the first region's API Gateway, likewise
    website_port: int = 0  # the S3 website endpoint (one for every region: buckets are global)
    quotas: dict[str, float] = field(default_factory=dict)
    jitp_drops_first_connect: bool = False
    lambda_retry_delays: tuple[float, ...] = (60.0, 120.0)  # AWS's; tests and the demo pass shorter ones
    region: str = DEFAULT_REGION  # the first region served: what info() and environment() describe
    more_regions: tuple[str, ...] = ()  # regions served as well, each with a broker and API Gateway of its own
    persist: bool = False  # keep the state in STATE/emulator.snapshot across restarts ('jitr local up' does)
    fresh: bool = False  # with persist: set the snapshot aside and start empty
    snapshot_interval: float = DEFAULT_INTERVAL

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region served, the first one first, each once."""
        return tuple(dict.fromkeys((self.region, *self.more_regions)))


class LocalIot:
    """Start, use and stop the emulator in this process.

    ``broker``, ``rules``, ``lambdas``, ``core`` and ``gateway`` are those of the first region;
    ``regions`` has every region's :class:`RegionServer`.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.api = EmulatorApi(port=options.api_port, quotas=options.quotas or None)
        self.regions: dict[str, RegionServer] = {}
        self.persistence: Persistence | None = None
        self.website: WebsiteEndpoint | None = None

    def _first(self) -> RegionServer | None:
        return self.regions.get(self.options.region)

    @property
    def broker(self) -> Broker | None:
        first = self._first()
        return first.broker if first else None

    @property
    def rules(self) -> RulesEngine | None:
        first = self._first()
        return first.rules if first else None

    @property
    def lambdas(self) -> LambdaRuntime | None:
        first = self._first()
        return first.lambdas if first else None

    @property
    def core(self) -> IotCore | None:
        first = self._first()
        return first.core if first else None

    @property
    def gateway(self) -> ApiGateway | None:
        first = self._first()
        return first.gateway if first else None

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
            self.website = WebsiteEndpoint(
                account_id=self.api.registry().account, port=_port(self.options.website_port, previous.get("website"))
            ).start()
            for region in self.options.regions:
                first = region == self.options.region
                server = self.regions[region] = RegionServer(
                    self.api,
                    RegionSettings(
                        region=region,
                        state_dir=state,
                        work_dir=state if first else state / "regions" / region,
                        mqtt_port=_port(self.options.mqtt_port if first else 0, previous.get(f"mqtt:{region}")),
                        apigateway_port=_port(
                            self.options.apigateway_port if first else 0, previous.get(f"apigateway:{region}")
                        ),
                        jitp_drops_first_connect=self.options.jitp_drops_first_connect,
                        lambda_retry_delays=self.options.lambda_retry_delays,
                    ),
                )
                self.api.settings.regions[region] = services = server.start()
                if first:
                    self.api.mqtt_endpoint = services.mqtt_endpoint
            self.api.settings.local_info = self.info()  # where jitr local deploy finds each region's gateway
            if self.persistence is not None:
                ports = {"api": self.api.port, "website": self.website.port}
                for server in self.regions.values():
                    ports |= server.ports()
                self.persistence.start(ports)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.api.settings.regions.clear()
        self.api.settings.local_info = None
        for server in self.regions.values():
            server.stop()
        self.regions.clear()
        if self.website is not None:
            self.website.stop()
            self.website = None
        self.api.stop()
        if self.persistence is not None:  # every server has stopped: this snapshot is whole
            self.persistence.stop()
            self.persistence = None

    def __enter__(self) -> LocalIot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """Where everything is: what ``jitr local up --json`` prints. The first region's broker and API
        Gateway are at the top level; ``regions`` has each region's."""
        registry = self.api.registry(region=self.options.region)
        regions = {region: server.info() for region, server in self.regions.items()}
        first = regions.get(self.options.region) or dict.fromkeys(("mqtt_port", "endpoint_ca", "apigateway_url"))
        return {
            "aws_endpoint_url": self.api.url,
            "mqtt_host": ENDPOINT_HOST,
            "mqtt_port": first["mqtt_port"],
            "endpoint_ca": first["endpoint_ca"],
            "endpoint_spki_sha256": self._endpoint_spki(),
            "apigateway_url": first["apigateway_url"],
            "website_endpoint_url": self.website.url if self.website else None,
            "websites": self.website.sites(registry.region) if self.website else {},
            "region": registry.region,
            "regions": regions,
            "account_id": registry.account,
            "state_dir": str(self.options.state_dir),
        } | (self.persistence.info() if self.persistence else {})

    def _endpoint_spki(self) -> str | None:
        """The broker certificate's key hash, for a browser told to trust it (chromium's
        --ignore-certificate-errors-spki-list); None before the broker made its certificate."""
        cert = Path(self.options.state_dir) / tls.SERVER_CERT_FILE
        return tls.spki_sha256(cert) if cert.is_file() else None

    def environment(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and ``jitr`` at this emulator."""
        return api_environment(self.info())


def for_region(info: dict[str, Any], region: str) -> dict[str, Any]:
    """``info`` (of :meth:`LocalIot.info`) as the region ``region`` sees it: its broker, its API Gateway."""
    served = info.get("regions") or {info["region"]: {}}
    if region not in served:
        raise InvalidInputError(
            f"The emulator serves {', '.join(served)}, not {region}; start it with --region {region} as well."
        )
    return info | served[region] | {"region": region}


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
