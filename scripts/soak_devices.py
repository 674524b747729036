"""The soak's devices (``bench_soak.py``): one generator process drives a shard of the fleet.

Each device is a paho-mqtt client driven through paho's external-loop API: one epoll loop a process (not a
thread and a socket pair per client, nor a select() that cannot see descriptors above 1024), a small pool for
the blocking TLS handshakes, reconnects with backoff and full jitter, one QoS 1 message every interval, and one
drop of the connection for the devices chosen to lose it.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

TOPIC_ROOT = "devices/soak"


class _Device:
    """One device of a generator: its paho client, driven by the generator's loop (paho's external-loop API:
    one epoll loop per process, not a thread and a socket pair per client, and no select() limit of 1024)."""

    def __init__(self, thing: str, client: Any) -> None:
        self.thing, self.client = thing, client
        self.pending: dict[int, int] = {}  # mid -> seq, waiting for its PUBACK
        self.acked: set[int] = set()
        self.connected = False
        self.ever = False
        self.busy = False  # a connect is under way in the pool
        self.retry_at = 0.0
        self.failures = 0
        self.sock: Any = None
        self.fd = -1  # registered with the loop's selector under this number


def generator(shard: list[dict], endpoint: tuple[str, int], root_ca: str, plan: dict, go: float, results) -> None:
    import queue
    import selectors
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    import paho.mqtt.client as mqtt

    rng = random.Random(plan["seed"])
    stats = {"published": 0, "acked": 0, "connects": 0, "drops": 0, "refused": 0, "closed": 0, "failedAttempts": 0}
    folder = tempfile.mkdtemp(prefix="soak-keys-")
    selector = selectors.DefaultSelector()
    opened: queue.SimpleQueue = queue.SimpleQueue()  # (device, error) from the connecting threads
    devices: dict[str, _Device] = {}

    def make(record: dict) -> _Device:
        thing = record["thing"]
        chain, key = Path(folder) / f"{thing}.pem", Path(folder) / f"{thing}.key"
        chain.write_text(record["chain"])
        key.write_text(record["key"])
        context = ssl.create_default_context(cafile=root_ca)
        context.load_cert_chain(str(chain), str(key))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        client.tls_set_context(context)
        client.connect_timeout = 10
        device = _Device(thing, client)

        def on_connect(_c, _u, _f, rc, _p) -> None:
            if rc.is_failure:
                stats["refused"] += 1
                return
            stats["connects"] += 1
            device.connected = device.ever = True
            device.failures = 0

        def on_publish(_c, _u, mid, _rc, _p) -> None:
            seq = device.pending.pop(mid, None)
            if seq is not None and seq not in device.acked:
                device.acked.add(seq)
                stats["acked"] += 1

        client.on_connect, client.on_publish = on_connect, on_publish
        return device

    def connect(device: _Device) -> None:  # in the pool: the TCP and TLS handshakes block
        try:
            if device.ever or device.failures:
                device.client.reconnect()  # paho sends what still waits for its PUBACK again (DUP)
            else:
                device.client.connect(endpoint[0], endpoint[1], keepalive=60)
            opened.put((device, None))
        except (OSError, ValueError) as exc:
            opened.put((device, exc))

    def lost(device: _Device, now: float) -> None:
        """The connection ended (JITR's first drop, a refusal, our drop): unregister, retry with backoff."""
        if device.sock is not None:
            with contextlib.suppress(KeyError):
                selector.unregister(device.fd)
            device.sock, device.fd = None, -1
        with contextlib.suppress(Exception):
            sock = device.client.socket()
            if sock is not None:
                sock.close()
        if device.connected:
            stats["closed"] += 1
        device.connected = False
        device.failures += 1
        device.retry_at = now + rng.uniform(0, min(16.0, 0.5 * 2 ** min(device.failures, 6)))

    for record in shard:
        devices[record["thing"]] = make(record)
    while time.time() < go:
        time.sleep(0.01)
    started = time.monotonic()
    ramp = plan["ramp"]
    order = list(devices)
    rng.shuffle(order)
    for index, thing in enumerate(order):  # switched on over the ramp, in a random order
        devices[thing].retry_at = started + ramp * index / len(order)
    drops = set(rng.sample(order, int(len(order) * plan["drop_share"])))
    drop_at = {thing: started + rng.uniform(ramp, plan["seconds"]) for thing in drops}
    next_at = {thing: started + ramp + rng.uniform(0, plan["interval"]) for thing in order}
    sequence = dict.fromkeys(order, 0)
    end = started + plan["seconds"]
    misc_at = started
    with ThreadPoolExecutor(plan["connectors"]) as pool:
        while True:
            now = time.monotonic()
            if now >= end:
                waiting = any(d.pending for d in devices.values() if d.connected)
                if not waiting or now >= end + plan["settle"]:
                    break
            while not opened.empty():  # connects that finished: hand their sockets to the loop
                device, error = opened.get()
                device.busy = False
                if error is not None:
                    stats["failedAttempts"] += 1
                    lost(device, now)
                    continue
                device.sock = device.client.socket()
                device.fd = device.sock.fileno()
                stale = selector.get_map().get(device.fd)
                if stale is not None:  # paho closed a socket and a connecting thread got its number before we saw
                    lost(stale.data, now)
                selector.register(device.fd, selectors.EVENT_READ, device)
            for device in devices.values():
                if device.sock is None and not device.busy and now >= device.retry_at and now < end:
                    device.busy = True
                    pool.submit(connect, device)
            for key, _events in selector.select(timeout=0.02):
                device = key.data
                if device.client.loop_read(max_packets=10) != mqtt.MQTT_ERR_SUCCESS:
                    lost(device, now)
            for device in devices.values():
                writing = device.sock is not None and device.client.want_write()
                if writing and device.client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    lost(device, now)
            if now >= misc_at:  # keep-alive pings, and paho's own timeouts
                misc_at = now + 1.0
                for device in devices.values():
                    if device.sock is not None and device.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                        lost(device, now)
            if now >= end:
                continue
            for thing in order:
                device = devices[thing]
                if thing in drop_at and now >= drop_at[thing] and device.connected:
                    del drop_at[thing]
                    with contextlib.suppress(OSError):  # the network goes away: no DISCONNECT
                        device.sock.shutdown(socket.SHUT_RDWR)
                        stats["drops"] += 1
                if now < next_at[thing] or not device.connected:
                    continue
                next_at[thing] += plan["interval"]
                _send(device, sequence[thing])
                sequence[thing] += 1
                stats["published"] += 1
    connected_at_end = sum(d.connected for d in devices.values())
    for device in devices.values():
        if device.sock is not None:
            with contextlib.suppress(Exception):
                device.client.disconnect()
                device.client.loop_write()
                device.sock.close()
    results.put(
        {
            **stats,
            "sequences": sequence,
            "acked": {thing: sorted(d.acked) for thing, d in devices.items()},
            "connectedAtEnd": connected_at_end,
            "neverConnected": sorted(thing for thing, d in devices.items() if not d.ever),
        }
    )


def _send(device: _Device, seq: int) -> None:
    payload = json.dumps({"thing": device.thing, "seq": seq, "sent": time.time()})
    info = device.client.publish(f"{TOPIC_ROOT}/{device.thing}/telemetry", payload, qos=1)
    device.pending[info.mid] = seq
