"""``jitr fleet website``: upload the stack's web page (``make web`` builds it in build/web) to the stack's
hosting bucket, with a ``config.json`` of the stack's public settings. deploy.sh runs it for USERS=true, and
``jitr demo`` does what it does.

Registered on the ``fleet`` sub-app by :mod:`cli.fleet_app`; what goes up is :mod:`fleet.website`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from base import config
from base.errors import NotFoundError
from base.names import check_stack_name
from cli.common import JsonOption, emit
from cli.wiring import stack_source
from cloud.iot import IotApi
from cloud.s3 import publish_site
from cloud.session import make_session
from fleet.website import CONFIG_KEY, SiteFile, site_config, site_files, upload_order

StackOption = Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")]


def upload_site(stack: str, site: Path) -> dict[str, Any]:
    """Put the built page in ``site`` and its config.json in the stack's hosting bucket; what was done."""
    check_stack_name(stack)
    files = site_files(site)  # before any AWS call: a missing build is the user's to fix
    session = make_session()
    info = stack_source(session).stack(stack)
    if info is None:
        raise NotFoundError(f"There is no stack {stack}: deploy it first (USERS=true PROVISIONING=api ./deploy.sh).")
    settings = site_config(
        info,
        region=session.region_name or config.region(None),
        iot_endpoint=IotApi.connect().data_endpoint(),
        cognito_endpoint=config.resolve(None, config.ENV_AWS_ENDPOINT_URL),
    )
    bucket = info.hosting_bucket
    assert bucket is not None  # site_config refuses a stack without one
    body = json.dumps(settings, indent=2).encode()
    ordered = upload_order([*files, SiteFile(CONFIG_KEY, body, "application/json")])
    uploaded, removed = publish_site(session.client("s3"), bucket, [(f.key, f.body, f.content_type) for f in ordered])
    return {"stack": stack, "bucket": bucket, "url": settings["websiteUrl"], "uploaded": uploaded, "removed": removed}


def website(
    stack: StackOption,
    site: Annotated[Path, typer.Option("--site", help="The built web page ('make web' writes build/web).")] = Path(
        "build/web"
    ),
    as_json: JsonOption = False,
) -> None:
    """Upload the web page to the stack's hosting bucket, with its config.json, and print its URL.

    config.json holds the users API's URL, the user pool and app client ids, the region and the IoT
    endpoint (and, on the local emulator, its Cognito endpoint): public settings, never a secret.
    index.html goes up last, and files of an earlier upload that the new one lacks are deleted. Running
    it again uploads the same files again.
    """
    report = upload_site(stack, site)
    emit(report, as_json, f"Uploaded the web page ({report['uploaded']} files) to {report['bucket']}: {report['url']}")
