"""Rules for the names that end up in certificates and in AWS IoT."""

from __future__ import annotations

import re

from base.errors import InvalidCountryError, InvalidInputError, InvalidThingNameError

THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
STACK_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
MAX_CN_LENGTH = 64  # ub-common-name (RFC 5280)
DEFAULT_TOPIC_ROOT = "devices"  # devices publish under <root>/<thing>/; a stack's root is devices/<stack>
# The thing attribute naming the CA whose devices a thing belongs to: the activation function, `jitr fleet
# register` and the JITP template set it, and a thing of another CA is refused (docs: two CAs, one account).
OWNER_ATTRIBUTE = "caCertificateId"


def check_thing_name(name: str) -> str:
    """Return ``name`` if it is a valid AWS IoT thing name that fits a certificate CN."""
    if not THING_NAME_RE.match(name):
        raise InvalidThingNameError(f"Invalid thing name {name!r}: use 1-128 letters, digits, ':', '_' or '-'.")
    if len(name) > MAX_CN_LENGTH:
        raise InvalidThingNameError(
            f"Thing name {name[:20]}... is {len(name)} characters; a certificate CN holds at most {MAX_CN_LENGTH}."
        )
    return name


def check_country(code: str) -> str:
    """Return ``code`` if it is two upper-case letters (ISO 3166-1 alpha-2 form)."""
    if not COUNTRY_RE.match(code):
        raise InvalidCountryError(f"Invalid country code {code!r}: use two upper-case letters, such as DE or US.")
    return code


def check_common_name(cn: str) -> str:
    """Return ``cn`` if it is a non-empty CN of at most 64 characters."""
    if not cn or len(cn) > MAX_CN_LENGTH:
        raise InvalidInputError(f"Invalid common name {cn!r}: use 1 to {MAX_CN_LENGTH} characters.")
    return cn


def check_stack_name(name: str) -> str:
    """A CloudFormation stack name: a letter, then letters, digits and hyphens, at most 128 characters."""
    if not STACK_NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"Invalid stack name {name!r}: use letters, digits and hyphens, starting with a letter (at most 128)."
        )
    return name


TEMPLATE_NAME_RE = re.compile(r"[0-9A-Za-z_-]{1,36}")


def check_template_name(name: str) -> str:
    """A provisioning template name as AWS IoT accepts it: 1 to 36 letters, digits, '_' or '-'."""
    if not TEMPLATE_NAME_RE.fullmatch(name):
        raise InvalidInputError(f"Invalid template name {name!r}: use 1 to 36 letters, digits, '_' or '-'.")
    return name
