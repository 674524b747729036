"""The kit's one error hierarchy.

Every error the kit raises on purpose derives from :class:`JitrError`. Its message is one
sentence written for the person at the terminal; the CLI prints it and exits with
``exit_code``. Anything else that escapes is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes of the ``jitr`` command: the one table (docs/errors.md).

    0-6 are the kit's; 10-20 are a device's, for ``jitr device connect``, ``simulate`` and ``check``
    (``device/errors.py`` says what each means); a signal N exits 128 + N (130 for Ctrl-C), outside this enum.
    """

    OK = 0
    ERROR = 1
    USAGE = 2  # bad arguments or input (Typer/Click use 2 for usage errors too)
    NOT_FOUND = 3
    CONFLICT = 4  # something already exists and would be overwritten
    CRYPTO = 5  # wrong passphrase, bad signature, chain that does not verify
    AWS = 6  # the AWS (or emulator) API refused or failed
    SERVER_NOT_TRUSTED = 10
    KEY_MISMATCH = 11
    CERTIFICATE_REFUSED = 12
    POLICY_DENIED = 13
    NOT_ACTIVATED = 14
    UNREACHABLE = 15
    CERTIFICATE_EXPIRED = 16
    CONNECTION_REJECTED = 17
    ENROLLMENT_REFUSED = 18
    PROVISIONING_REJECTED = 19
    DEVICES_FAILED = 20
    ROTATION_INCOMPLETE = 21


class JitrError(Exception):
    """Base of every error the kit raises for a person to read."""

    exit_code: ExitStatus = ExitStatus.ERROR


class InvalidInputError(JitrError):
    """An argument or input value is not acceptable."""

    exit_code = ExitStatus.USAGE


class InvalidThingNameError(InvalidInputError):
    """A thing name does not match AWS IoT's rules."""


class InvalidCountryError(InvalidInputError):
    """A country code is not two upper-case letters."""


class InvalidTemplateError(InvalidInputError):
    """A JITP provisioning template is malformed or cannot be filled by the CA's certificates."""


class NotFoundError(JitrError):
    """A file, CA or registration that the command needs does not exist."""

    exit_code = ExitStatus.NOT_FOUND


class AlreadyExistsError(JitrError):
    """The command would overwrite something that already exists."""

    exit_code = ExitStatus.CONFLICT


class MalformedError(InvalidInputError):
    """A certificate, key, CSR or event cannot be parsed."""


class CryptoError(JitrError):
    """A cryptographic check failed."""

    exit_code = ExitStatus.CRYPTO


class WrongPassphraseError(CryptoError):
    """A private key could not be decrypted with the passphrase given (or none was given)."""


class KeyMismatchError(CryptoError):
    """A private key does not belong to the certificate it is paired with."""


class NotACaError(CryptoError):
    """A certificate used as an issuer is not a CA certificate."""


class SignatureError(CryptoError):
    """A signature (of a CSR or certificate) does not verify."""


class ChainError(CryptoError):
    """A certificate does not chain to the CA."""


class OutputError(JitrError):
    """An output file or directory cannot be written."""


class AwsError(JitrError):
    """AWS (or the local emulator) refused or failed a call the kit made.

    ``code`` is AWS's error code when AWS answered (``ResourceNotFoundException``...), None when no
    answer came; ``details`` holds the answer's other members (``resourceId``, ``resourceArn``...).
    """

    exit_code = ExitStatus.AWS

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
