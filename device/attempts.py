"""What one connection attempt came to, and the rule that says whether to try again.

A device cannot ask the endpoint whether its certificate is being activated: it only sees how each
connection ends. The rule, which works for AWS IoT Core and its local emulator alike:

- **transient, retried until ``attempts`` run out** (exponential backoff, full jitter):
  ``dropped`` (closed before any CONNACK: JITR drops the first connection while it registers the
  certificate PENDING_ACTIVATION, and again on every reconnect until the activation Lambda is done),
  ``timeout`` (no TLS handshake or CONNACK in time), ``unreachable`` (TCP or DNS error) and
  ``unavailable`` (CONNACK "server unavailable").
- **tolerated a bounded number of times**: ``refused`` (CONNACK "not authorized", or a TLS alert
  rejecting the client certificate: in the handshake with TLS 1.2, on the first read with TLS 1.3).
  A certificate being activated is dropped, not refused, but a JITP provisioning or a policy
  attachment still propagating may show as a refusal for a moment, so ``refusals_tolerated``
  refusals (default 1) are retried; one more is permanent: the certificate is revoked, inactive,
  or its CA is unknown.
- **permanent at once**: ``untrusted`` (the server certificate does not verify; retrying cannot help),
  ``not-tls`` (the server does not speak TLS: the wrong port, such as the emulator's HTTP API),
  ``rejected`` (CONNACK "unsupported protocol version" or "identifier rejected"), and, after a
  connection was accepted, ``denied`` (the connection closed while a publish awaited its PUBACK, or
  right after it: AWS IoT answers a publish its policy denies by disconnecting). A key that does not
  match the certificate, or a certificate outside its validity, is found before any connection.
- When attempts run out, the last attempt names the failure: ``refused`` is a refused certificate,
  ``dropped`` a certificate never activated, anything else an unreachable endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from device.errors import (
    CertificateRefusedError,
    ConnectionRejectedError,
    DeviceError,
    EndpointUnreachableError,
    NotActivatedError,
    ServerNotTrustedError,
)


class Outcome(StrEnum):
    """How one connection attempt ended."""

    ACCEPTED = "accepted"  # CONNACK 0
    DROPPED = "dropped"  # closed before a CONNACK (JITR registration in progress)
    REFUSED = "refused"  # CONNACK not authorized / bad credentials, or a TLS alert about the client certificate
    UNAVAILABLE = "unavailable"  # CONNACK server unavailable
    TIMEOUT = "timeout"  # no handshake or CONNACK in time
    UNREACHABLE = "unreachable"  # TCP connect or name resolution failed
    UNTRUSTED = "untrusted"  # the server certificate did not verify
    REJECTED = "rejected"  # CONNACK unsupported protocol version or identifier rejected
    NOT_TLS = "not-tls"  # the server answered the TLS hello with something that is not TLS (HTTP, SSH, ...)


TRANSIENT = frozenset({Outcome.DROPPED, Outcome.TIMEOUT, Outcome.UNREACHABLE, Outcome.UNAVAILABLE})


@dataclass
class Attempt:
    """One connection attempt, timed from the device's start."""

    number: int
    at: float  # seconds from the device's start to the attempt's
    seconds: float  # how long the attempt took
    outcome: Outcome
    detail: str
    retry_in: float | None = None  # the backoff wait before the next attempt, if there is one

    def to_dict(self) -> dict:
        return {
            "attempt": self.number,
            "at": round(self.at, 4),
            "seconds": round(self.seconds, 4),
            "outcome": str(self.outcome),
            "detail": self.detail,
            "retryIn": None if self.retry_in is None else round(self.retry_in, 4),
        }

    def describe(self) -> str:
        """One line for people: ``attempt 2 at 0.41 s: dropped before CONNACK (0.02 s); retrying in 0.83 s``."""
        line = f"attempt {self.number} at {self.at:.2f} s: {self.outcome} ({self.detail}, {self.seconds:.2f} s)"
        return line + (f"; retrying in {self.retry_in:.2f} s" if self.retry_in is not None else "")


def failure(attempt: Attempt, refusals: int, refusals_tolerated: int, endpoint: str) -> DeviceError | None:
    """The permanent failure this attempt proves, or None if the device may try again."""
    if attempt.outcome is Outcome.UNTRUSTED:
        return ServerNotTrustedError(
            f"The endpoint {endpoint} is not trusted ({attempt.detail}); pass --root-ca with the CA that signed "
            "its certificate (the emulator's endpoint-ca.pem, or Amazon Root CA 1 for AWS IoT)."
        )
    if attempt.outcome is Outcome.NOT_TLS:
        return EndpointUnreachableError(
            f"{endpoint} does not speak TLS ({attempt.detail}): is it the MQTT port? (AWS IoT: 8883, or 443 with "
            "ALPN; the emulator: the MQTT/TLS port 'jitr local up' prints, not its AWS API port)."
        )
    if attempt.outcome is Outcome.REJECTED:
        return ConnectionRejectedError(f"The endpoint {endpoint} rejected the MQTT connection: {attempt.detail}.")
    if attempt.outcome is Outcome.REFUSED and refusals > refusals_tolerated:
        return _refused(endpoint, refusals, attempt.detail)
    return None


def exhausted(attempts: list[Attempt], endpoint: str, seconds: float) -> DeviceError:
    """The failure once every attempt was used: named by how the last one ended."""
    last = attempts[-1]
    count = len(attempts)
    if last.outcome is Outcome.REFUSED:
        refusals = sum(a.outcome is Outcome.REFUSED for a in attempts)
        return _refused(endpoint, refusals, last.detail)
    if last.outcome is Outcome.DROPPED:
        return NotActivatedError(
            f"{endpoint} closed the connection before CONNACK on {_times(count)} over {seconds:.1f} s: the "
            "certificate was never activated (is its CA registered with auto-registration, did the activation "
            "run, does its policy allow iot:Connect with this client id?); retry later or with more --attempts."
        )
    return EndpointUnreachableError(f"Cannot reach {endpoint}: {last.detail} ({_times(count)} over {seconds:.1f} s).")


def _refused(endpoint: str, refusals: int, detail: str) -> CertificateRefusedError:
    return CertificateRefusedError(
        f"{endpoint} refused the certificate ({detail}, {refusals} {'time' if refusals == 1 else 'times'}): it is "
        "revoked or inactive, or its CA is not registered in the region of this endpoint (AWS IoT has one "
        "endpoint a region, and a CA registered in another region is unknown here)."
    )


def _times(count: int) -> str:
    return "1 attempt" if count == 1 else f"all {count} attempts"
