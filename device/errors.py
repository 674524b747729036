"""Why a device could not connect or publish: one class per permanent failure, each with its exit code.

Every class derives from :class:`DeviceError` and from the ``base.errors`` class it is a kind of, so
the CLI's error edge prints its sentence and exits with its code. The codes start at 10, in the same
``base.errors.ExitStatus`` as the kit's (0-6), clear of them, Click's usage error (2) and Ctrl-C (130):

====  =========================  ===========================================================
code  reason                     meaning
====  =========================  ===========================================================
10    ``server-not-trusted``     the endpoint's certificate does not verify (wrong or no --root-ca)
11    ``key-mismatch``           the private key is not the certificate's (found before connecting)
12    ``certificate-refused``    CONNACK "not authorized" beyond the tolerated refusals: revoked,
                                 inactive, or its CA unknown
13    ``policy-denied``          the endpoint closed the connection on a publish (iot:Publish denied)
14    ``not-activated``          the connection was dropped on every attempt: never activated
15    ``unreachable``            no TLS connection or no answer on every attempt
16    ``certificate-expired``    the certificate is expired or not yet valid (found before connecting)
17    ``connection-rejected``    CONNACK "unsupported protocol" or "identifier rejected"
18    ``enrollment-refused``     ``enroll``: the provisioning API refused the device (4xx, its sentence)
19    ``provisioning-rejected``  ``provision``/``rotate``: AWS IoT answered ``.../rejected`` (its message)
20    ``devices-failed``         ``simulate``/``check``: at least one device failed
21    ``rotation-incomplete``    ``rotate``: the new certificate works, the old one is still accepted
====  =========================  ===========================================================
"""

from __future__ import annotations

from base.errors import AwsError, CryptoError, ExitStatus, JitrError, KeyMismatchError


class DeviceError(JitrError):
    """A device could not connect to its endpoint or publish; ``reason`` names the kind in summaries."""

    reason = "error"


class ServerNotTrustedError(DeviceError, CryptoError):
    """The endpoint's server certificate does not verify against the trusted CAs."""

    reason = "server-not-trusted"
    exit_code = ExitStatus.SERVER_NOT_TRUSTED


class DeviceKeyMismatchError(DeviceError, KeyMismatchError):
    """The device's private key does not belong to its certificate."""

    reason = "key-mismatch"
    exit_code = ExitStatus.KEY_MISMATCH


class CertificateExpiredError(DeviceError, CryptoError):
    """The device certificate is expired or not yet valid."""

    reason = "certificate-expired"
    exit_code = ExitStatus.CERTIFICATE_EXPIRED


class CertificateRefusedError(DeviceError, AwsError):
    """The endpoint answered CONNACK not authorized more often than a registration in progress explains."""

    reason = "certificate-refused"
    exit_code = ExitStatus.CERTIFICATE_REFUSED


class PolicyDeniedError(DeviceError, AwsError):
    """The endpoint closed the connection on a publish: the certificate's policy denies it."""

    reason = "policy-denied"
    exit_code = ExitStatus.POLICY_DENIED


class NotActivatedError(DeviceError, AwsError):
    """The endpoint dropped the connection on every attempt: the certificate was never activated."""

    reason = "not-activated"
    exit_code = ExitStatus.NOT_ACTIVATED


class EndpointUnreachableError(DeviceError):
    """No attempt reached an MQTT answer: network errors or timeouts."""

    reason = "unreachable"
    exit_code = ExitStatus.UNREACHABLE


class ConnectionRejectedError(DeviceError, AwsError):
    """The endpoint rejected the MQTT connection itself (protocol version or client identifier)."""

    reason = "connection-rejected"
    exit_code = ExitStatus.CONNECTION_REJECTED


class EnrollmentRefusedError(DeviceError, AwsError):
    """The provisioning API answered 4xx: wrong token, unknown serial, already registered, bad CSR."""

    reason = "enrollment-refused"
    exit_code = ExitStatus.ENROLLMENT_REFUSED


class ProvisioningRejectedError(DeviceError, AwsError):
    """Fleet provisioning over MQTT answered on ``.../rejected``: a bad token, CSR or template, a refusing hook."""

    reason = "provisioning-rejected"
    exit_code = ExitStatus.PROVISIONING_REJECTED


class RotationIncompleteError(DeviceError):
    """A rotation whose new certificate works and is saved, while the old one is still accepted."""

    reason = "rotation-incomplete"
    exit_code = ExitStatus.ROTATION_INCOMPLETE


class UnexpectedDeviceError(DeviceError):
    """A device of a fleet run failed on a bug, not on its endpoint: the exception is its ``__cause__``."""

    reason = "unexpected"


class FleetInterruptedError(DeviceError):
    """A fleet run was interrupted (Ctrl-C) while this device was waiting to retry."""

    reason = "interrupted"


class DevicesFailedError(DeviceError):
    """A fleet run (``simulate`` or ``check``) had at least one failing device."""

    reason = "devices-failed"
    exit_code = ExitStatus.DEVICES_FAILED
