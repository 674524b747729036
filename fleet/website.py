"""The stack's web page as it is uploaded: which files go to the hosting bucket, with which content type, and
the ``config.json`` beside them that tells the page where the stack is.

``config.json`` holds the stack's public settings only (the users API's URL, the user pool and its app
client, the region, the IoT endpoint; on the local emulator also where its Cognito endpoint is): the page
is public, and so is everything in it. Nothing here calls AWS: :func:`cloud.s3.publish_site` uploads.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.errors import InvalidInputError, NotFoundError
from cloud.stacks import StackInfo

CONFIG_KEY = "config.json"
REQUIRED_FILES = ("index.html", "error.html")
MAX_FILES = 200  # a static page of a few modules; more means the wrong folder was given
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
_OUTPUTS = {
    "usersApiUrl": "UsersApiUrl",
    "userPoolId": "UserPoolId",
    "userPoolClientId": "UserPoolClientId",
    "websiteUrl": "WebsiteUrl",
}


@dataclass(frozen=True)
class SiteFile:
    key: str
    body: bytes
    content_type: str


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def site_files(folder: Path) -> list[SiteFile]:
    """The built site in ``folder`` (``make web`` writes build/web), every file keyed by its relative path."""
    if not folder.is_dir():
        raise NotFoundError(f"There is no built web page in {folder}: run 'make web' first.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InvalidInputError(
            f"{folder} is not a built web page: it has no {', '.join(missing)} ('make web' builds one)."
        )
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if len(paths) > MAX_FILES:
        raise InvalidInputError(
            f"{folder} holds {len(paths)} files; a built web page has far fewer (is it the right folder?)."
        )
    files = [SiteFile(p.relative_to(folder).as_posix(), p.read_bytes(), content_type(p.name)) for p in paths]
    return [f for f in files if f.key != CONFIG_KEY]  # the stack's own is written instead


def site_config(info: StackInfo, *, region: str, iot_endpoint: str, cognito_endpoint: str | None) -> dict[str, Any]:
    """What ``config.json`` says: the stack's public settings, and never a secret."""
    missing = [output for output in (*_OUTPUTS.values(), "HostingBucketName") if not info.outputs.get(output)]
    if missing:
        raise InvalidInputError(
            f"Stack {info.name} has no web page (its outputs lack {', '.join(missing)}): deploy it with "
            "USERS=true PROVISIONING=api ./deploy.sh."
        )
    config = {key: info.outputs[output] for key, output in _OUTPUTS.items()}
    config |= {"stack": info.name, "region": region, "iotEndpoint": iot_endpoint}
    if cognito_endpoint:
        config["cognitoEndpoint"] = cognito_endpoint
    return config


def upload_order(files: list[SiteFile]) -> list[SiteFile]:
    """index.html last, so that a visitor never gets a new page whose modules are not there yet."""
    return sorted(files, key=lambda f: (f.key == "index.html", f.key))
