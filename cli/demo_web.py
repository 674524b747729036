"""``jitr demo``'s web page: uploaded to the stack's hosting bucket as deploy.sh uploads it, read back through
the emulator's website endpoint, and (``--serve``) kept up for a person with a browser."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from base.errors import AwsError
from cli.fleet_website import upload_site


def get_from_loopback(url: str) -> bytes:
    """GET a ``http://NAME.localhost:PORT/...`` URL from 127.0.0.1 with NAME in the Host header: browsers resolve
    such names to loopback themselves, while the system resolver may ask DNS."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port or 80, timeout=10)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": parts.netloc})
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    if answer.status != 200:
        raise AwsError(f"The website endpoint answered {url} with HTTP {answer.status}.")
    return body


def host_web_page(stack: str, site: Path, users_api_url: str) -> tuple[str, str]:
    """Upload the page; its URL, and the demo's line about it."""
    report = upload_site(stack, site)
    url = report["url"]
    served = json.loads(get_from_loopback(f"{url}/config.json"))
    if served.get("usersApiUrl") != users_api_url:
        raise AwsError(f"The website endpoint serves another config.json than the one uploaded: {served}.")
    get_from_loopback(f"{url}/")  # the index document
    return url, f"{report['uploaded']} files in {report['bucket']}; open {url}/"


def serve(info: dict[str, Any], website: str, user: str, password: str) -> None:
    """Keep the emulator up until SIGINT or SIGTERM, saying how to open the page."""
    typer.echo(
        f"\nThe web page: {website}/ (sign in as {user} / {password}).\n"
        "Its live view connects to the emulator's broker, whose certificate no browser knows; trust that key only:\n"
        f"  chromium --user-data-dir=$(mktemp -d) --ignore-certificate-errors-spki-list={info['endpoint_spki_sha256']} "
        f"{website}/\nThe emulator keeps running; Ctrl-C stops it."
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
