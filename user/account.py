"""The app's settings and the signed-in user's tokens, in one 0600 file (``jitr app`` keeps them there).

The file (default ``$XDG_CONFIG_HOME/jitr/app.json``, or ``JITR_APP_CONFIG``) holds the users API's URL,
the user pool's app client and region, the user's e-mail, and once signed in the Cognito tokens: the ID
token the API wants, and the refresh token that renews it. It is written whole, atomically, mode 0600;
a user signing out removes it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from base.errors import InvalidInputError, JitrError, MalformedError
from base.files import ensure_dir
from base.http import check_url
from cloud.user_pool import Tokens, UserPool

ENV_APP_CONFIG = "JITR_APP_CONFIG"
ENV_APP_PASSWORD = "JITR_APP_PASSWORD"
EARLY_REFRESH = 60  # seconds before a token's expiry that it is renewed


class NotSignedInError(JitrError):
    """No user is signed in (or the sign-in cannot be renewed)."""

    exit_code = InvalidInputError.exit_code


def config_path() -> Path:
    explicit = os.environ.get(ENV_APP_CONFIG)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jitr" / "app.json"


@dataclass(frozen=True)
class Account:
    api: str  # the users API's URL
    client_id: str  # the user pool's app client
    region: str
    email: str | None = None
    id_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float = 0.0

    def signed_in(self, tokens: Tokens, email: str, now: float) -> Account:
        return replace(
            self,
            email=email,
            id_token=tokens.id_token,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=now + tokens.expires_in,
        )


def load(path: Path | None = None) -> Account | None:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
        return Account(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"{path} is not the app's settings file ({exc}); remove it and sign in again.") from exc


def save(account: Account, path: Path | None = None) -> Path:
    """Write the whole file atomically, mode 0600 from its first byte."""
    path = path or config_path()
    ensure_dir(path.parent, private=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(account), handle, indent=1)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def settings(api: str | None, client_id: str | None, region: str | None, path: Path | None = None) -> Account:
    """The app's settings: those given (a new API forgets the old sign-in), else the saved ones."""
    saved = load(path)
    if api is None and client_id is None:
        if saved is None:
            raise NotSignedInError(
                "The app is not set up: give --stack STACK once (or run 'jitr app setup --api URL ...')."
            )
        return saved
    if not api or not client_id or not region:
        raise InvalidInputError("Give the users API's URL, the app client id and the region together.")
    fresh = Account(check_url(api, "The users API URL"), client_id, region)
    if saved is not None and (saved.api, saved.client_id, saved.region) == (fresh.api, fresh.client_id, fresh.region):
        return saved
    return fresh


def id_token(
    account: Account,
    pool: Callable[[Account], UserPool],
    path: Path | None = None,
    now: Callable[[], float] = time.time,
) -> str:
    """The signed-in user's ID token, renewed (and saved) when it expires within a minute."""
    if not account.id_token:
        raise NotSignedInError("Nobody is signed in: run 'jitr app login --email E' first.")
    if account.expires_at - EARLY_REFRESH > now():
        return account.id_token
    if not account.refresh_token:
        raise NotSignedInError("The sign-in has expired: run 'jitr app login' again.")
    moment = now()
    tokens = pool(account).refresh(account.refresh_token)
    save(account.signed_in(tokens, account.email or "", moment), path)
    return tokens.id_token
