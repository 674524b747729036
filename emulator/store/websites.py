"""The S3 buckets that host a static website, as the website endpoint sees them (moto's S3 models, read here).

A bucket is a website once PutBucketWebsite gave it a configuration (CloudFormation's ``WebsiteConfiguration``).
The website endpoint serves anonymous requests only, so an object is served when the bucket policy lets
everyone (``"Principal": "*"``) ``s3:GetObject`` it, no statement denies that, and the bucket's public access
block does not restrict public policies: what S3 answers otherwise is 403 AccessDenied.
"""

from __future__ import annotations

import fnmatch
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

from emulator.store.backends import s3_backend


@dataclass(frozen=True)
class WebsiteConfig:
    index_suffix: str | None
    error_key: str | None
    redirect_host: str | None = None  # RedirectAllRequestsTo
    redirect_protocol: str | None = None


@dataclass(frozen=True)
class WebObject:
    body: bytes
    content_type: str
    etag: str
    last_modified: str


def _text(root: ElementTree.Element, path: str) -> str | None:
    found = root.find(path)
    return found.text.strip() if found is not None and found.text else None


def parse_website(document: bytes) -> WebsiteConfig:
    """A PutBucketWebsite body as the endpoint uses it (routing rules are not emulated)."""
    root = ElementTree.fromstring(document)
    for element in root.iter():  # drop the namespace: clients send it or not
        element.tag = element.tag.rpartition("}")[2]
    return WebsiteConfig(
        index_suffix=_text(root, "IndexDocument/Suffix"),
        error_key=_text(root, "ErrorDocument/Key"),
        redirect_host=_text(root, "RedirectAllRequestsTo/HostName"),
        redirect_protocol=_text(root, "RedirectAllRequestsTo/Protocol"),
    )


def _listed(value: Any, wanted: str) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and fnmatch.fnmatchcase(wanted.lower(), v.lower()) for v in values)


def _everyone(principal: Any) -> bool:
    """``"*"`` or ``{"AWS": "*"}`` (or a list holding ``"*"``): anyone, signed or not."""
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    return principal == "*" or (isinstance(principal, list) and "*" in principal)


def anonymous(policy: bytes | None, action: str, arn: str) -> bool:
    """Whether ``policy`` lets anyone do ``action`` on ``arn``: an Allow for everyone matches and no Deny does.
    An Allow with a Condition is not taken (an anonymous website request carries nothing to meet it); a Deny
    is taken whatever its condition, except aws:SecureTransport's, which templates pair with HTTPS clients."""
    if not policy:
        return False
    try:
        statements = json.loads(policy).get("Statement", [])
    except (ValueError, AttributeError):
        return False
    allowed = False
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or not _everyone(statement.get("Principal")):
            continue
        if not (_listed(statement.get("Action"), action) and _listed(statement.get("Resource"), arn)):
            continue
        condition = statement.get("Condition") or {}
        if statement.get("Effect") == "Deny" and "aws:securetransport" not in json.dumps(condition).lower():
            return False
        if statement.get("Effect") == "Allow" and not condition:
            allowed = True
    return allowed


class Websites:
    """The website-enabled buckets of one account."""

    def __init__(self, account: str) -> None:
        self.account = account

    def _bucket(self, name: str) -> Any:
        backend = s3_backend(self.account)
        return backend.buckets.get(name)

    def exists(self, name: str) -> bool:
        return self._bucket(name) is not None

    def config(self, name: str) -> WebsiteConfig | None:
        bucket = self._bucket(name)
        if bucket is None or not bucket.website_configuration:
            return None
        return parse_website(bucket.website_configuration)

    def names(self) -> list[str]:
        """Every bucket with a website configuration."""
        buckets = s3_backend(self.account).buckets
        return sorted(name for name, bucket in list(buckets.items()) if bucket.website_configuration)

    def allows(self, name: str, action: str, key: str | None = None) -> bool:
        """Whether an anonymous request may do ``action`` (``s3:GetObject`` on ``key``, ``s3:ListBucket`` on the
        bucket): the bucket policy, unless the public access block restricts public buckets."""
        bucket = self._bucket(name)
        if bucket is None:
            return False
        block = bucket.public_access_block
        if block is not None and block.restrict_public_buckets:
            return False
        arn = f"arn:aws:s3:::{name}" + (f"/{key}" if key is not None else "")
        return anonymous(bucket.policy, action, arn)

    def get(self, name: str, key: str) -> WebObject | None:
        bucket = self._bucket(name)
        found = bucket.keys.get(key) if bucket is not None and key else None
        if found is None or not hasattr(found, "value"):  # missing, or a delete marker
            return None
        return WebObject(
            body=found.value,
            content_type=found.metadata.get("Content-Type") or "binary/octet-stream",
            etag=found.etag,
            last_modified=found.last_modified_RFC1123,
        )
