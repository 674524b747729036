"""The emulator's S3 website endpoint: every bucket with a website configuration, served on 127.0.0.1.

On AWS a bucket's website is ``http://{bucket}.s3-website-{region}.amazonaws.com`` (some regions spell it
``s3-website.{region}``). Here it is ``http://{bucket}.s3-website-{region}.localhost:{port}``: browsers and
curl resolve every ``*.localhost`` name to the loopback address themselves, so the page has an origin of its
own, as on AWS (its API's CORS configuration names it). A client that cannot resolve such names sends that
``Host`` header to 127.0.0.1, or asks ``http://127.0.0.1:{port}/{bucket}/{key}``.

Requests are answered as S3's website endpoint answers them (the user guide's "Configuring an index
document", "Configuring a custom error document"):

- GET and HEAD only (405 MethodNotAllowed otherwise); anonymous, so the bucket policy must let everyone
  ``s3:GetObject`` (403 AccessDenied otherwise);
- a key that is empty or ends in ``/`` gets the index document's suffix; a missing key whose ``key/`` plus
  the suffix exists is redirected there (302);
- a missing key is 404 NoSuchKey when everyone may ``s3:ListBucket``, and 403 AccessDenied when not;
- an error answers with the error document (with the error's status) when there is one to read, else with
  S3's own HTML error page; no bucket is 404 NoSuchBucket, no configuration 404 NoSuchWebsiteConfiguration.

Routing rules are not emulated; RedirectAllRequestsTo is.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator.api.loopback import LoopbackServer
from emulator.store.websites import WebObject, Websites

log = logging.getLogger("jitr.emulator.website")
_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.s3-website[.-](?P<region>[a-z0-9-]+)\.")
_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def local_website_url(url: str, bucket: str, region: str) -> str:
    """Where the website of ``bucket`` is served by the website endpoint at ``url`` (``http://127.0.0.1:PORT``)."""
    port = url.rsplit(":", 1)[1]
    return f"http://{bucket}.s3-website-{region}.localhost:{port}"


def _error(status: int, code: str, message: str, **details: str) -> Answer:
    """S3's own HTML error page."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    items = [("Code", code), ("Message", message), *details.items(), ("RequestId", uuid.uuid4().hex[:16].upper())]
    lines = "\n".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in items)
    head = f"<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
    body = f"{head}<ul>\n{lines}\n</ul>\n<hr/>\n</body>\n</html>\n"
    return Answer(status, [("Content-Type", "text/html; charset=utf-8")], body.encode())


def _object(found: WebObject, status: int = 200) -> Answer:
    headers = [
        ("Content-Type", found.content_type),
        ("ETag", found.etag),
        ("Last-Modified", found.last_modified),
    ]
    return Answer(status, headers, found.body)


class WebsiteEndpoint(LoopbackServer):
    """Serves the website of every bucket of ``account`` that has one, on a loopback port."""

    def __init__(self, *, account_id: str, port: int = 0) -> None:
        super().__init__(port=port, name="jitr-website")
        self.websites = Websites(account_id)

    def sites(self, region: str) -> dict[str, str]:
        """Each website bucket's local URL (what ``jitr local up --json`` lists)."""
        return {name: local_website_url(self.url, name, region) for name in self.websites.names()}

    # -- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            answer = self._answer(method, environ)
        except Exception:  # the endpoint itself failed: S3's 500, and the emulator keeps serving
            log.exception("website request failed")
            answer = _error(500, "InternalError", "We encountered an internal error. Please try again.")
        headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
        start_response(f"{answer.status} {_REASONS.get(answer.status, 'Error')}", headers)
        return [b"" if method == "HEAD" else answer.body]

    def _answer(self, method: str, environ: dict[str, Any]) -> Answer:
        path = environ.get("PATH_INFO", "") or "/"
        path = path.encode("latin-1").decode("utf-8", errors="replace")  # WSGI's PATH_INFO is latin-1 bytes
        host = (environ.get("HTTP_HOST") or "").split(":")[0].lower()
        matched = _HOST_RE.match(host)
        if matched:
            bucket, key, prefix = matched["bucket"], path.lstrip("/"), "/"
        else:  # http://127.0.0.1:PORT/BUCKET/KEY
            bucket, _, key = path.lstrip("/").partition("/")
            prefix = f"/{bucket}/"
            if not bucket:
                return _error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName="")
            if "/" not in path.lstrip("/"):
                return Answer(302, [("Location", prefix)])
        if method not in ("GET", "HEAD"):
            return _error(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                Method=method,
                ResourceType="OBJECT",
            )
        if not self.websites.exists(bucket):
            return _error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
        config = self.websites.config(bucket)
        if config is None:
            return _error(
                404,
                "NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration",
                BucketName=bucket,
            )
        if config.redirect_host:
            return Answer(301, [("Location", f"{config.redirect_protocol or 'http'}://{config.redirect_host}/{key}")])
        if config.index_suffix and (not key or key.endswith("/")):
            key += config.index_suffix
        found = self.websites.get(bucket, key)
        if found is None and config.index_suffix and self.websites.get(bucket, f"{key}/{config.index_suffix}"):
            return Answer(302, [("Location", f"{prefix}{key}/")])
        if found is not None and self.websites.allows(bucket, "s3:GetObject", key):
            if environ.get("HTTP_IF_NONE_MATCH") == found.etag:
                return Answer(304, [("ETag", found.etag)])
            return _object(found)
        if found is None and self.websites.allows(bucket, "s3:ListBucket"):
            failure = _error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        else:
            failure = _error(403, "AccessDenied", "Access Denied")
        page = self.websites.get(bucket, config.error_key) if config.error_key else None
        if page is not None and self.websites.allows(bucket, "s3:GetObject", config.error_key):
            return _object(page, failure.status)
        return failure
