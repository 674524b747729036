"""Configuration in one place: environment variable names and how values are resolved.

An explicit argument beats the environment, which beats the default.
"""

from __future__ import annotations

import os

# Environment variables the kit reads.
ENV_PKI_DIR = "JITR_PKI_DIR"
ENV_CA_PASSPHRASE = "JITR_CA_PASSPHRASE"  # default name of the passphrase variable
ENV_AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
ENV_AWS_REGION = "AWS_REGION"
ENV_AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_AWS_PROFILE = "AWS_PROFILE"

DEFAULT_PKI_DIR = "pki"
DEFAULT_REGION = "us-east-1"
DEFAULT_CA_DAYS = 3650
DEFAULT_DEVICE_DAYS = 3650


def resolve(explicit: str | None, env_var: str, default: str | None = None) -> str | None:
    """Return ``explicit`` if given, else the environment variable if set and non-empty, else ``default``."""
    if explicit is not None:
        return explicit
    value = os.environ.get(env_var)
    if value:
        return value
    return default


def region(explicit: str | None = None) -> str:
    """The AWS region: argument, AWS_REGION, AWS_DEFAULT_REGION, then us-east-1."""
    return resolve(explicit, ENV_AWS_REGION) or resolve(None, ENV_AWS_DEFAULT_REGION) or DEFAULT_REGION
